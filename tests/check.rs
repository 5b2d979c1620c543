//! `scmarket-ws check URL`, the binary, against real servers on loopback: `serve --dev` (every
//! check passes), the production twin with every production defect (each found by the check
//! meant to find it, nothing else failing), and the twin with one defect at a time (exactly
//! that check fails: every check can fail). Also: safe by default, the exit codes of a target
//! that cannot be checked, and the `--json` document against its checked-in schema and doc.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::twin::{DEFECTS, ProductionTwin};
use common::{DIRECT_CHAT, ORDER_CHAT, binary, dev_login, ensure_node_modules, get_json};
use scmarket_ws::check::catalog::CHECKS;
use scmarket_ws::server::auth::DEV_SECRET;
use serde_json::Value;

/// The web client's dev origin: `serve --dev` allows it; the twin is started with it.
const ALLOWED_ORIGIN: &str = "http://localhost:5173";

/// How late the twin registers its listeners where `late-listeners` is present. Production's
/// (and the twin's default) 5-50 ms is shorter than this client's own delay between receiving
/// CONNECT and sending on a loaded 2-core CI machine running the suite in parallel; then a
/// request "right after CONNECT" is not early any more and the defect cannot show. 100-150 ms
/// keeps it unambiguous; the check and its verdict are the same.
const LISTENER_DELAY: [&str; 2] = ["--listener-delay", "100-150"];

/// A session cookie of a banned account: log in, then ban (both servers' dev routes).
async fn banned_cookie(base: &str) -> String {
    let login = dev_login(base, "mallory").await;
    let response = reqwest::Client::new()
        .post(format!("{base}/api/dev/ban"))
        .json(&serde_json::json!({ "username": "mallory" }))
        .send()
        .await
        .expect("dev ban");
    assert!(
        response.status().is_success(),
        "dev ban: {}",
        response.status()
    );
    login.session_cookie
}

/// Every flag, so that every check runs: users A (alice) and B (carol, not in alice's direct
/// chat with bob), the direct chat, posting and destructive requests allowed.
async fn full_run(base: &str, system_message: &str) -> Vec<String> {
    let script = ensure_node_modules().join("check-system-message.js");
    let mut args: Vec<String> = [
        "check",
        base,
        "--login",
        "alice",
        "--other-login",
        "carol",
        "--chat",
        DIRECT_CHAT,
        "--post",
        "--destructive",
        "--origin",
        ALLOWED_ORIGIN,
        "--jwt-secret",
        DEV_SECRET,
        "--json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push("--banned-cookie".into());
    args.push(banned_cookie(base).await);
    args.push("--system-message-command".into());
    args.push(format!("node '{}' {system_message}", script.display()));
    args
}

struct Run {
    code: i32,
    report: Value,
    stderr: String,
}

async fn run(args: &[String]) -> Run {
    let output = binary::async_command()
        .args(args)
        .output()
        .await
        .expect("run scmarket-ws check");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let report = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("--json printed no JSON ({e}): {stdout}"));
    Run {
        code: output.status.code().unwrap_or(-1),
        report,
        stderr: String::from_utf8_lossy(&output.stderr).to_string(),
    }
}

/// Check id → status.
fn statuses(report: &Value) -> BTreeMap<String, String> {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap().to_string(),
                c["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The checks not in `expected` status, with their summaries, for assertion messages.
fn unexpected(report: &Value, expected: impl Fn(&str) -> &'static str) -> Vec<String> {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["status"] != expected(c["id"].as_str().unwrap()))
        .map(|c| format!("{} {}: {}", c["status"], c["id"], c["summary"]))
        .collect()
}

/// The report validates against the checked-in JSON Schema (python `jsonschema`, pinned in
/// tests/requirements.txt).
fn assert_matches_schema(report: &Value) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("check-reports");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("{}.json", uuid::Uuid::new_v4()));
    std::fs::write(&file, report.to_string()).unwrap();
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/check-report.schema.json");
    let output = std::process::Command::new(common::python::venv().join("bin/python"))
        .args([
            "-c",
            "import json, sys, jsonschema\n\
             schema = json.load(open(sys.argv[1]))\n\
             jsonschema.Draft202012Validator.check_schema(schema)\n\
             jsonschema.Draft202012Validator(schema).validate(json.load(open(sys.argv[2])))",
        ])
        .arg(&schema)
        .arg(&file)
        .output()
        .expect("run python");
    assert!(
        output.status.success(),
        "the report does not match docs/check-report.schema.json: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let _ = std::fs::remove_file(file);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_serve_every_check_passes() {
    let server = common::start_dev_server().await;
    let base = server.http_url();
    let args = full_run(&base, "serve").await;
    let run = run(&args).await;
    let wrong = unexpected(&run.report, |_| "pass");
    assert!(
        wrong.is_empty(),
        "against serve --dev every check passes; these did not:\n{}\n{}",
        wrong.join("\n"),
        run.stderr
    );
    assert_eq!(statuses(&run.report).len(), CHECKS.len(), "every check ran");
    assert_eq!(run.code, 0);
    assert_eq!(run.report["outcome"], "passed");
    assert_eq!(run.report["exit_code"], 0);
    // Secrets never appear: the dev login's cookies are masked wherever they are shown.
    let login = dev_login(&base, "alice").await;
    let sid_value = login.session_cookie.split_once('=').unwrap().1.to_string();
    assert!(!run.report.to_string().contains(&sid_value[..40]));
    assert_matches_schema(&run.report);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_the_twin_each_defect_is_found_by_its_check_and_nothing_else_fails() {
    let twin = ProductionTwin::start(&[
        "--allowed-origin",
        ALLOWED_ORIGIN,
        LISTENER_DELAY[0],
        LISTENER_DELAY[1],
    ]);
    let args = full_run(&twin.url(), "twin").await;
    let run = run(&args).await;
    let expected = |id: &str| {
        let spec = CHECKS.iter().find(|c| c.id == id).expect("known check");
        if spec.defect.is_some() {
            "fail"
        } else {
            "pass"
        }
    };
    let wrong = unexpected(&run.report, expected);
    assert!(
        wrong.is_empty(),
        "against the twin with every defect, exactly the defects' checks fail; these did not as expected:\n{}\n{}",
        wrong.join("\n"),
        run.stderr
    );
    for check in run.report["checks"].as_array().unwrap() {
        if check["status"] == "fail" {
            let defect = check["defect"].as_str().unwrap();
            assert!(
                check["summary"].as_str().unwrap().contains(defect),
                "a failure names its defect: {check}"
            );
            assert!(!check["evidence"].as_array().unwrap().is_empty(), "{check}");
        }
    }
    assert_eq!(run.code, 1);
    assert_eq!(run.report["outcome"], "failed");
    assert_eq!(run.report["summary"]["fail"], DEFECTS.len());
    // The measurement the late-listener check reports: the twin registers its listeners 100
    // to 150 ms after CONNECT, so requests at once are dropped and later ones honoured.
    let late = run.report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "joins.late-listeners")
        .unwrap();
    assert!(
        late["measurements"]["dropped_at_once"].as_f64().unwrap() >= 1.0,
        "{late}"
    );
    let honoured = late["measurements"]["honoured_after_ms"].as_f64().unwrap();
    assert!((100.0..=250.0).contains(&honoured), "{late}");
    assert_matches_schema(&run.report);
}

/// The twin with only `defect` present: the run fails exactly the check that finds it.
async fn only_this_defect_fails_its_check(defect: &str) {
    let mut twin_args = vec!["--allowed-origin", ALLOWED_ORIGIN];
    for other in DEFECTS.iter().filter(|d| **d != defect) {
        twin_args.extend(["--fix", other]);
    }
    if defect == "late-listeners" {
        twin_args.extend(LISTENER_DELAY);
    }
    let twin = ProductionTwin::start(&twin_args);
    let args = full_run(&twin.url(), "twin").await;
    let run = run(&args).await;
    let finder = CHECKS
        .iter()
        .find(|c| c.defect == Some(defect))
        .expect("a check for every defect")
        .id;
    let wrong = unexpected(&run.report, |id| if id == finder { "fail" } else { "pass" });
    assert!(
        wrong.is_empty(),
        "with only {defect} present, exactly {finder} fails; these did not as expected:\n{}\n{}",
        wrong.join("\n"),
        run.stderr
    );
    assert_eq!(run.code, 1);
}

macro_rules! one_defect {
    ($($name:ident => $defect:literal),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            only_this_defect_fails_its_check($defect).await;
        }
    )*};
}

one_defect! {
    only_crash_on_null_join => "crash-on-null-join",
    only_no_origin_check => "no-origin-check",
    only_post_after_403 => "post-after-403",
    only_case_sensitive_rooms => "case-sensitive-rooms",
    only_banned_users_connect => "banned-users-connect",
    only_open_direct_chats => "open-direct-chats",
    only_swallowed_errors => "swallowed-errors",
    only_unemitted_messages => "unemitted-messages",
    only_late_listeners => "late-listeners",
}

#[test]
fn every_defect_of_the_twin_has_its_test_above() {
    let source = std::fs::read_to_string(file!()).unwrap();
    for defect in DEFECTS {
        assert!(
            source.contains(&format!("=> \"{defect}\"")),
            "no one_defect! test for {defect}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safe_by_default_nothing_is_posted_and_nothing_crashes() {
    let twin = ProductionTwin::start(&["--allowed-origin", ALLOWED_ORIGIN]);
    let base = twin.url();
    let alice = dev_login(&base, "alice").await.session_cookie;
    let history = |chat: &'static str| {
        let base = base.clone();
        let alice = alice.clone();
        async move {
            get_json(format!("{base}/api/chats/{chat}"), &alice).await["data"]["messages"]
                .as_array()
                .map(Vec::len)
                .expect("messages")
        }
    };
    let before = (history(DIRECT_CHAT).await, history(ORDER_CHAT).await);
    let args: Vec<String> = [
        "check",
        &base,
        "--login",
        "alice",
        "--other-login",
        "carol",
        "--chat",
        DIRECT_CHAT,
        "--json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let run = run(&args).await;
    let after = (history(DIRECT_CHAT).await, history(ORDER_CHAT).await);
    assert_eq!(before, after, "no message was posted without --post");
    let state = get_json(format!("{base}/test/state"), "").await;
    assert_eq!(state["crashes"], 0, "{state}");
    for check in run.report["checks"].as_array().unwrap() {
        if check["status"] == "skipped" {
            assert!(
                !check["needs"].as_array().unwrap().is_empty(),
                "a skipped check says what it needs: {check}"
            );
        }
    }
    let statuses = statuses(&run.report);
    assert_eq!(statuses["destructive.null-join"], "skipped");
    assert_eq!(statuses["payload.server-message"], "skipped");
    assert_eq!(statuses["rest.refused-post"], "skipped");
    // Found without posting: a foreign Origin, and B reading A's direct chat over REST.
    assert_eq!(statuses["origin.foreign-refused"], "fail");
    assert_eq!(statuses["viewing.other-user"], "fail");
    assert_eq!(run.code, 1);
    assert_eq!(run.report["settings"]["post"], false);
}

#[tokio::test]
async fn an_unreachable_target_exits_4_with_a_json_document() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let args: Vec<String> = ["check", &format!("http://127.0.0.1:{port}"), "--json"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let run = run(&args).await;
    assert_eq!(run.code, 4, "{}", run.report);
    assert_eq!(run.report["outcome"], "unreachable");
    assert!(
        run.report["error"]
            .as_str()
            .unwrap()
            .contains("cannot reach")
    );
    assert_eq!(run.report["checks"], Value::Array(vec![]));
    assert_matches_schema(&run.report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_the_target_refuses_exit_3() {
    let server = common::start_dev_server().await;
    let args: Vec<String> = [
        "check",
        &server.http_url(),
        "--cookie",
        "scmarket.sid=s%3Anot-a-session.bad-signature",
        "--json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let run = run(&args).await;
    assert_eq!(run.code, 3, "{}", run.report);
    assert_eq!(run.report["outcome"], "refused");
    assert!(
        run.report["error"]
            .as_str()
            .unwrap()
            .contains("connecting as user A"),
        "{}",
        run.report
    );
    // The cookie itself is never printed.
    assert!(!run.report.to_string().contains("bad-signature"));
    server.shutdown().await;
}

#[test]
fn bad_usage_exits_2() {
    for (args, says) in [
        (
            vec!["--only", "joins.nope"],
            "there is no check \"joins.nope\"",
        ),
        (vec!["--chat", "not-a-uuid"], "--chat"),
        (vec!["--join-window", "10ms"], "--join-window"),
        (
            vec![
                "--origin",
                "https://a.test",
                "--foreign-origin",
                "https://a.test/",
            ],
            "the same",
        ),
        (vec!["--system-message-command", "true"], "needs --chat"),
    ] {
        let output = binary::command()
            .args(["check", "http://127.0.0.1:9"])
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}

#[test]
fn the_checked_in_schema_is_the_generated_one() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/check-report.schema.json");
    let generated = scmarket_ws::check::report::json_schema_text();
    if std::env::var_os("SCMARKET_WS_WRITE_SCHEMA").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "docs/check-report.schema.json is not what src/check/report.rs generates: \
         run `SCMARKET_WS_WRITE_SCHEMA=1 cargo test --test check the_checked_in_schema` \
         and describe the change in docs/CHECK_SCHEMA.md"
    );
}

/// Every field of the schema is described in docs/CHECK_SCHEMA.md (as `name`).
#[test]
fn the_schema_doc_names_every_field() {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/CHECK_SCHEMA.md"))
            .unwrap();
    let schema: Value =
        serde_json::from_str(&scmarket_ws::check::report::json_schema_text()).unwrap();
    fn fields(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                if let Some(Value::Object(props)) = map.get("properties") {
                    out.extend(props.keys().cloned());
                }
                if let Some(Value::String(value)) = map.get("const") {
                    out.push(value.clone());
                }
                if let Some(Value::Array(values)) = map.get("enum") {
                    out.extend(values.iter().filter_map(|v| v.as_str().map(String::from)));
                }
                map.values().for_each(|c| fields(c, out));
            }
            Value::Array(items) => items.iter().for_each(|c| fields(c, out)),
            _ => {}
        }
    }
    let mut names = Vec::new();
    fields(&schema, &mut names);
    assert!(names.len() > 30, "{names:?}");
    for name in names {
        assert!(
            doc.contains(&format!("`{name}`")),
            "docs/CHECK_SCHEMA.md does not describe `{name}`"
        );
    }
}

#[test]
fn the_readme_lists_every_check() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    for check in CHECKS {
        assert!(
            readme.contains(&format!("`{}`", check.id)),
            "README.md does not list the check `{}`",
            check.id
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_b_in_the_chat_is_a_warning_not_a_verdict() {
    let server = common::start_dev_server().await;
    let args: Vec<String> = [
        "check",
        &server.http_url(),
        "--login",
        "alice",
        "--other-login",
        "bob",
        "--chat",
        DIRECT_CHAT,
        "--only",
        "viewing.other-user",
        "--json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let run = run(&args).await;
    let checks = run.report["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 1, "--only runs that check alone");
    assert_eq!(checks[0]["status"], "warning", "{}", checks[0]);
    assert!(
        checks[0]["summary"]
            .as_str()
            .unwrap()
            .contains("takes part in this chat")
    );
    assert_eq!(run.code, 0);
    server.shutdown().await;
}

#[test]
fn the_readme_documents_every_flag_of_check() {
    use clap::CommandFactory;
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = readme
        .split("## `check`")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("a check section in README.md");
    let cli = scmarket_ws::cli::Cli::command();
    let check = cli.find_subcommand("check").expect("check command");
    for arg in check.get_arguments() {
        if let Some(long) = arg.get_long() {
            if ["help", "verbose", "quiet"].contains(&long) {
                continue;
            }
            assert!(
                section.contains(&format!("--{long}")),
                "README's check section does not document --{long}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_or_chatty_system_message_command_is_a_warning() {
    let server = common::start_dev_server().await;
    for (command, says) in [
        (
            "echo cannot reach staging >&2; exit 3",
            "the command failed",
        ),
        // 10 MB of output and no message: read and dropped past a cap, never kept.
        (
            "head -c 10000000 /dev/zero | tr '\\0' x",
            "stored no new message",
        ),
    ] {
        let args: Vec<String> = [
            "check",
            &server.http_url(),
            "--login",
            "alice",
            "--chat",
            DIRECT_CHAT,
            "--only",
            "delivery.system-message",
            "--system-message-command",
            command,
            "--json",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let run = run(&args).await;
        let check = &run.report["checks"][0];
        assert_eq!(check["status"], "warning", "{command}: {check}");
        assert!(check["summary"].as_str().unwrap().contains(says), "{check}");
        assert!(
            !run.report.to_string().contains(command),
            "the command is never shown: {check}"
        );
        let shown = check["evidence"][1]["body"].as_str().unwrap_or_default();
        assert!(shown.chars().count() <= 300, "{shown}");
        assert_eq!(run.code, 0);
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_target_that_never_answers_exits_5() {
    // The kernel accepts connections into the backlog; nobody ever answers them.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let args: Vec<String> = ["check", &url, "--timeout", "500ms", "--json"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let started = std::time::Instant::now();
    let run = run(&args).await;
    assert_eq!(run.code, 5, "{}", run.report);
    assert_eq!(run.report["outcome"], "timed_out");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    drop(silent);
}
