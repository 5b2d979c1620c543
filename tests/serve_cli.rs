//! `serve` and `session-cookie` as a user runs them: the real binary, its exit codes and messages.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::raw::RawSocket;
use serde_json::json;

fn bin() -> Command {
    common::binary::command()
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = bin().args(args).output().expect("binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn serve_refuses_to_start_without_secrets() {
    let (code, _, err) = run(&[
        "serve",
        "--database",
        "sqlite::memory:",
        "--listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("SESSION_SECRET") && err.contains("--dev"),
        "{err}"
    );
}

/// Whatever the developer's shell exports, the binary a test runs never sees it: every variable
/// a flag reads is stripped, so a SESSION_SECRET cannot start a server a test expects refused.
#[test]
fn tests_run_the_binary_without_the_developers_environment() {
    let stripped = common::binary::flag_variables();
    for name in [
        "SESSION_SECRET",
        "JWT_SECRET",
        "SCMARKET_WS_DATABASE",
        "SCMARKET_WS_COOKIE",
        "SCMARKET_WS_JWT",
    ] {
        assert!(stripped.iter().any(|v| v == name), "{name} is not stripped");
    }
    let mut serve = Command::new(common::binary::PATH);
    serve
        .env("SESSION_SECRET", "exported-by-the-developer")
        .env("RUST_LOG", "trace");
    // A bad --path fails fast either way: after the secret check, or at it when it is clean.
    let out = common::binary::clean(&mut serve)
        .args(["serve", "--database", "sqlite::memory:", "--path", "ws"])
        .output()
        .expect("binary runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("no session secret"), "{err}");
    assert!(!err.contains("TRACE"), "RUST_LOG leaked: {err}");
}

#[test]
fn bad_flags_and_files_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let bad_seed = dir.path().join("seed.yaml");
    std::fs::write(&bad_seed, "users:\n  - username: a\n    colour: red\n").unwrap();
    let dangling = dir.path().join("dangling.yaml");
    std::fs::write(&dangling, "chats:\n  - participants: [nobody]\n").unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["--path".into(), "ws".into()], "--path"),
        (vec!["--ping-interval".into(), "soon".into()], "duration"),
        (vec!["--listen".into(), "nowhere".into()], "--listen"),
        (
            vec!["--seed".into(), bad_seed.display().to_string()],
            "colour",
        ),
        (
            vec!["--seed".into(), dangling.display().to_string()],
            "nobody",
        ),
        (
            vec![
                "--seed".into(),
                dir.path().join("missing.yaml").display().to_string(),
            ],
            "missing.yaml",
        ),
        (
            vec![
                "--database".into(),
                dir.path().join("no/such/dir/x.db").display().to_string(),
            ],
            "cannot open SQLite database",
        ),
    ];
    for (extra, needle) in cases {
        let mut args = vec!["serve", "--dev"];
        for (flag, default) in [
            ("--listen", "127.0.0.1:0"),
            ("--database", "sqlite::memory:"),
        ] {
            if !extra.iter().any(|a| a == flag) {
                args.extend([flag, default]);
            }
        }
        args.extend(extra.iter().map(String::as_str));
        let (code, _, err) = run(&args);
        assert!(!err.contains("cannot be used multiple times"), "{err}");
        assert_eq!(code, 2, "{extra:?}: {err}");
        assert!(
            err.contains(needle),
            "{extra:?}: expected {needle:?} in {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn busy_port_is_explained() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, _, err) = run(&[
        "serve",
        "--dev",
        "--database",
        "sqlite::memory:",
        "--listen",
        &addr,
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("cannot listen") && err.contains("--listen"),
        "{err}"
    );
}

/// Start `serve` as a process on a free port; answers the child and its base URL.
fn spawn_serve(args: &[&str]) -> (std::process::Child, String) {
    let mut child = bin()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let base = loop {
        let line = lines.next().expect("serve logs its address").unwrap();
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    // Keep draining stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, base)
}

#[test]
fn session_cookie_from_the_command_works_on_serve_and_sigterm_stops_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("demo.db");
    let db = db.to_str().unwrap();
    let secret = ["--session-secret", "a-test-secret"];

    let (code, cookie, err) = run(&[
        &["session-cookie", "--user", "erin", "--database", db][..],
        &secret[..],
    ]
    .concat());
    assert_eq!(code, 0, "{err}");
    let cookie = cookie.trim().to_string();
    assert!(cookie.starts_with("scmarket.sid=s%3A"), "{cookie}");
    let (code, jwt, _) = run(&[
        &[
            "session-cookie",
            "--user",
            "erin",
            "--kind",
            "jwt",
            "--database",
            db,
        ][..],
        &secret[..],
    ]
    .concat());
    assert_eq!(code, 0);
    let jwt = jwt.trim().to_string();
    assert!(jwt.starts_with("scmarket.access=ey"), "{jwt}");
    let (code, _, err) = run(&[
        &["session-cookie", "--user", "nobody", "--database", db][..],
        &secret[..],
    ]
    .concat());
    assert_eq!(code, 2);
    assert!(err.contains("nobody"), "{err}");
    let (code, _, err) = run(&[
        &["session-cookie", "--user", "dave", "--database", db][..],
        &secret[..],
    ]
    .concat());
    assert_eq!(code, 2, "banned dave gets no cookie: {err}");

    let (mut child, base) = spawn_serve(&[&["--database", db][..], &secret[..]].concat());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        RawSocket::connect(&base, Some(&cookie))
            .await
            .expect("session cookie accepted");
        RawSocket::connect(&base, Some(&jwt))
            .await
            .expect("jwt accepted");
        let health = reqwest::get(format!("{base}/healthz"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(health, "ok");
    });
    // Graceful shutdown on SIGTERM, exit 0.
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "serve did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "serve exit status {status}");
}

#[tokio::test]
async fn seed_file_loads_custom_fixtures() {
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("seed.yaml");
    std::fs::write(
        &seed,
        "users:\n  - { username: zed }\n  - { username: yan }\n\
         chats:\n  - id: 11111111-2222-4333-8444-555555555555\n    name: ours\n    participants: [zed, yan]\n\
         \x20   messages:\n      - { author: yan, content: first }\n",
    )
    .unwrap();
    let server = common::start_dev_server_with(|c| c.store.seed = Some(seed.clone())).await;
    let base = server.http_url();
    let cookie = common::session_cookie(&base, "zed").await;
    let chats: serde_json::Value = common::get_json(
        format!("{base}/api/chats/11111111-2222-4333-8444-555555555555"),
        &cookie,
    )
    .await;
    assert_eq!(chats["data"]["name"], "ours");
    assert_eq!(
        chats["data"]["participants"],
        serde_json::json!(["yan", "zed"])
    );
    assert_eq!(chats["data"]["messages"][0]["content"], "first");
    // With --seed on a new database, the demo data is not added.
    let alice_chats: serde_json::Value = reqwest::Client::new()
        .get(format!("{base}/api/chats"))
        .header("cookie", common::session_cookie(&base, "alice").await)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(alice_chats["data"], serde_json::json!([]));
    server.shutdown().await;
}

/// Another process writes to the file `serve` is using: `serve` must answer from the file as it
/// is now, never from what it read before (new sessions, new users, new chats, bans, expiry).
#[test]
fn a_database_file_shared_with_other_processes_is_read_fresh() {
    use scmarket_ws::server::auth::{Secrets, sign_session_cookie};
    use scmarket_ws::store::{SqliteStore, Store};

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shared.db");
    let db = db.to_str().unwrap();
    let secret = ["--session-secret", "a-test-secret"];
    let (mut child, base) = spawn_serve(&[&["--database", db][..], &secret[..]].concat());

    // Written by other processes while serve runs.
    let (code, erin, err) = run(&[
        &["session-cookie", "--user", "erin", "--database", db][..],
        &secret[..],
    ]
    .concat());
    assert_eq!(code, 0, "{err}");
    let (code, newcomer, err) = run(&[
        // `session` is the alias kept for scripts written before the rename.
        &["session", "--dev", "--user", "newcomer", "--database", db][..],
        &secret[..],
    ]
    .concat());
    assert_eq!(code, 0, "{err}");

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut erin_socket = RawSocket::connect(&base, Some(erin.trim()))
            .await
            .expect("a session inserted by another process is accepted at once");
        RawSocket::connect(&base, Some(newcomer.trim()))
            .await
            .expect("a user created by another process is accepted at once");

        // A third writer: the store opened on the same file from this test process.
        let (other, fresh) = SqliteStore::open(db).await.expect("open the shared file");
        assert!(!fresh, "serve created and seeded the file");
        let erin_user = other.user_by_username("erin").await.unwrap().unwrap();
        let chat = other
            .create_chat(Some("made elsewhere"), &[erin_user.user_id])
            .await
            .unwrap();
        let join = json!({ "chat_id": chat.to_string() });
        assert_eq!(
            erin_socket.emit_ack("clientJoinRoom", join.clone()).await,
            json!({"ok": true}),
            "a chat created by another process can be joined at once"
        );

        // A session that expires: accepted before, refused after, with no restart.
        let alice = other.user_by_username("alice").await.unwrap().unwrap();
        let sid = other
            .create_login_session(alice.user_id, Duration::from_millis(800))
            .await
            .unwrap();
        let short = format!(
            "scmarket.sid={}",
            sign_session_cookie(&sid, &Secrets::new("a-test-secret".into(), None))
        );
        RawSocket::connect(&base, Some(&short))
            .await
            .expect("an unexpired session is accepted");
        tokio::time::sleep(Duration::from_millis(900)).await;
        assert!(
            RawSocket::connect(&base, Some(&short)).await.is_err(),
            "an expired session is refused at once"
        );

        // A ban written by another process takes effect at erin's next join.
        other.set_banned(erin_user.user_id, true).await.unwrap();
        assert_eq!(
            erin_socket.emit_ack("clientJoinRoom", join).await,
            json!({"ok": false, "error": "account_disabled"})
        );
        assert!(
            erin_socket.closed_within(Duration::from_secs(5)).await,
            "the banned user's socket is closed"
        );
        let refused = RawSocket::connect(&base, Some(erin.trim())).await;
        assert!(
            refused.is_err(),
            "a banned user's handshake is refused at once"
        );
    });
    let _ = child.kill();
    let _ = child.wait();
}

/// `serve`'s stderr up to its "listening on" line (or its end, when it exits first); the
/// child is killed afterwards.
fn serve_log_until_listening(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut command = bin();
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command
        .args(["serve", "--database", "sqlite::memory:"])
        .args(args)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut log = String::new();
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        log.push_str(&line);
        log.push('\n');
        if line.contains("listening on") {
            let _ = child.kill();
            let _ = child.wait();
            return (None, log);
        }
    }
    (child.wait().unwrap().code(), log)
}

#[test]
fn dev_mode_refuses_a_non_loopback_address_unless_told() {
    let (code, log) = serve_log_until_listening(&["--dev", "--listen", "0.0.0.0:0"], &[]);
    assert_eq!(code, Some(2), "{log}");
    assert!(log.contains("--dev-allow-remote"), "{log}");
    assert!(!log.contains("listening on"), "{log}");

    // Told: a loud warning, then the server goes on to bind. A documentation address
    // (TEST-NET-1) is not on this machine, so binding fails and nothing is exposed.
    let (code, log) = serve_log_until_listening(
        &["--dev", "--dev-allow-remote", "--listen", "192.0.2.1:0"],
        &[],
    );
    assert_eq!(code, Some(2), "{log}");
    assert!(
        log.contains("WARN") && log.contains("NON-LOOPBACK") && log.contains("cannot listen"),
        "{log}"
    );

    let (code, log) = serve_log_until_listening(&["--dev-allow-remote"], &[]);
    assert_eq!(
        code,
        Some(2),
        "without --dev the flag is a usage error: {log}"
    );
}

#[test]
fn a_short_secret_is_used_with_a_loud_warning() {
    let (code, log) =
        serve_log_until_listening(&["--listen", "127.0.0.1:0"], &[("SESSION_SECRET", "x")]);
    assert_eq!(code, None, "a short secret still starts: {log}");
    assert!(
        log.contains("WARN") && log.contains("WEAK SECRET") && log.contains("1 bytes"),
        "{log}"
    );
    let long = "a".repeat(32);
    let (code, log) =
        serve_log_until_listening(&["--listen", "127.0.0.1:0"], &[("SESSION_SECRET", &long)]);
    assert_eq!(code, None, "{log}");
    assert!(!log.contains("WEAK SECRET"), "{log}");
}

/// `completions SHELL` prints a script that the shell loads and that knows every command and
/// flag; bash loads it here, the others are checked for the words they must complete.
#[test]
fn completions_for_bash_zsh_and_fish() {
    for shell in ["bash", "zsh", "fish"] {
        let (code, stdout, stderr) = run(&["completions", shell]);
        assert_eq!(code, 0, "{shell}: {stderr}");
        for word in ["load-test", "listen", "normalize-ids", "resend-until"] {
            assert!(stdout.contains(word), "{shell} script lacks {word}");
        }
    }
    let script = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(script.path(), run(&["completions", "bash"]).1).unwrap();
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {} && complete -p scmarket-ws",
            script.path().display()
        ))
        .output()
        .expect("bash runs");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("scmarket-ws"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, _, stderr) = run(&["completions", "tcsh"]);
    assert_eq!(code, 2, "{stderr}");
}
