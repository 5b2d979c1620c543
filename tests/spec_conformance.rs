//! `serve` against its own `/openapi.json`: schemathesis (pinned in
//! `tests/requirements-schemathesis.txt`) generates requests from the document, valid and
//! invalid, and runs every check it has (status codes and content types documented, schemas of
//! answers, valid requests accepted, invalid ones refused, authentication enforced, 405 for
//! undeclared methods, stateful sequences). Bounded: a fixed seed and example count.

mod common;

use std::time::Duration;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_conforms_to_its_openapi_document() {
    let venv = common::python::schemathesis_venv();
    let server = start_dev_server().await;
    let base = server.http_url();
    // Only the access token: with a session cookie too, a request whose token schemathesis
    // spoils still passes on the cookie (production's fallback), which its auth check reads
    // as accepting a bad credential.
    let cookie = dev_login(&base, "alice").await.access_cookie;
    let run = tokio::process::Command::new(venv.join("bin/schemathesis"))
        .args(["run", &format!("{base}/openapi.json"), "--checks", "all"])
        .args(["--header", &format!("Cookie: {cookie}")])
        .args([
            "--max-examples",
            "15",
            "--seed",
            "1",
            "--request-timeout",
            "5",
        ])
        .args(["--no-color"])
        // Its cache of failures (`.schemathesis/`) goes there, not into the checkout.
        .current_dir(std::env::temp_dir())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(240), run)
        .await
        .expect("schemathesis finishes within 240 s")
        .expect("schemathesis runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found failures:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("passed"), "{stdout}");
    server.shutdown().await;
}
