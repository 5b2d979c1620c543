//! `serve` on PostgreSQL beyond what both stores share (`on_both_stores!` in the other suites):
//! messages inserted by other processes, the NOTIFY listener losing its connection, bad input
//! (URLs, missing tables, wrong column types, malformed sessions) and the database going away.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::binary;
use common::postgres::TestDatabase;
use common::raw::RawSocket;
use common::stores::TestStore;
use common::*;
use scmarket_ws::server::auth::{self, Secrets};
use scmarket_ws::store::postgres::notify;
use serde_json::{Value, json};

const ALICE: &str = "5c000000-0000-4000-8000-000000000001";

async fn connect(base: &str, user: &str) -> RawSocket {
    let cookie = session_cookie(base, user).await;
    RawSocket::connect(base, Some(&cookie))
        .await
        .unwrap_or_else(|r| panic!("{user} refused: {r:?}"))
}

/// The demo data on a database of the test's own, with the notify trigger installed.
async fn store_with_trigger() -> TestStore {
    let store = TestStore::postgres().await;
    store.database().unwrap().execute(notify::INSTALL_SQL).await;
    store
}

fn insert_sql(chat: &str, content: &str) -> String {
    format!(
        "INSERT INTO messages (content, author, chat_id) VALUES ('{content}', '{ALICE}', '{chat}')"
    )
}

/// Every `serverMessage` that arrives until `quiet` passes without one.
async fn messages_until_quiet(socket: &mut RawSocket, quiet: Duration) -> Vec<Value> {
    let mut seen = Vec::new();
    while let Some((event, payload)) = socket.next_event_within(quiet).await {
        if event == "serverMessage" {
            seen.push(payload);
        }
    }
    seen
}

#[tokio::test]
async fn a_message_inserted_by_psql_reaches_the_room() {
    let store = store_with_trigger().await;
    let db = store.database().unwrap();
    let server = store.start_dev_server().await;
    let mut bob = connect(&server.http_url(), "bob").await;
    // psql, another process, inserts as the Node backend or a system message would.
    let output = std::process::Command::new("psql")
        .args([&db.url, "-v", "ON_ERROR_STOP=1", "-qc"])
        .arg(insert_sql(DIRECT_CHAT, "from psql"))
        .output()
        .expect("psql runs");
    assert!(
        output.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let (event, message) = bob.next_event().await;
    assert_eq!(event, "serverMessage");
    assert_eq!(message["content"], "from psql");
    assert_eq!(message["author"], "alice");
    assert_eq!(message["chat_id"], DIRECT_CHAT);
    assert!(
        messages_until_quiet(&mut bob, Duration::from_millis(500))
            .await
            .is_empty()
    );
    server.shutdown().await;
}

#[tokio::test]
async fn without_the_trigger_only_what_serve_stores_is_emitted() {
    let store = TestStore::postgres().await;
    let db = store.database().unwrap();
    let server = store.start_dev_server().await;
    let base = server.http_url();
    let mut bob = connect(&base, "bob").await;
    db.execute(&insert_sql(DIRECT_CHAT, "unseen")).await;
    let cookie = session_cookie(&base, "alice").await;
    assert_eq!(
        post_message(&base, &cookie, DIRECT_CHAT, "seen").await.0,
        200
    );
    let got = messages_until_quiet(&mut bob, Duration::from_millis(700)).await;
    let contents: Vec<&str> = got.iter().map(|m| m["content"].as_str().unwrap()).collect();
    assert_eq!(contents, ["seen"]);
    server.shutdown().await;
}

#[tokio::test]
async fn with_the_trigger_a_message_serve_stores_is_emitted_once() {
    let store = store_with_trigger().await;
    let server = store.start_dev_server().await;
    let base = server.http_url();
    let mut bob = connect(&base, "bob").await;
    let cookie = session_cookie(&base, "alice").await;
    for i in 0..5 {
        let (status, _) = post_message(&base, &cookie, DIRECT_CHAT, &format!("rest {i}")).await;
        assert_eq!(status, 200);
    }
    let got = messages_until_quiet(&mut bob, Duration::from_millis(700)).await;
    let contents: Vec<&str> = got.iter().map(|m| m["content"].as_str().unwrap()).collect();
    assert_eq!(contents, ["rest 0", "rest 1", "rest 2", "rest 3", "rest 4"]);
    server.shutdown().await;
}

/// A writer inserts a stream of messages; meanwhile the listener's connection is killed twice
/// (`pg_terminate_backend`). Every message still arrives, exactly once.
#[tokio::test]
async fn killing_the_listen_connection_loses_nothing_and_repeats_nothing() {
    let store = store_with_trigger().await;
    let db = store.database().unwrap();
    let server = store.start_dev_server().await;
    let mut bob = connect(&server.http_url(), "bob").await;
    const COUNT: usize = 120;
    let writer_url = db.url.clone();
    let writer = tokio::spawn(async move {
        let (client, connection) = tokio_postgres::connect(&writer_url, tokio_postgres::NoTls)
            .await
            .expect("writer connects");
        tokio::spawn(connection);
        for i in 0..COUNT {
            client
                .execute(&insert_sql(DIRECT_CHAT, &format!("stream {i}")), &[])
                .await
                .expect("insert");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    let kill = format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = '{}' AND application_name = '{}'",
        db.name,
        notify::LISTENER_APPLICATION_NAME
    );
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        db.execute_as_admin(&kill).await;
    }
    writer.await.unwrap();
    let got = messages_until_quiet(&mut bob, Duration::from_secs(3)).await;
    let mut counts: HashMap<String, usize> = HashMap::new();
    for m in &got {
        *counts
            .entry(m["content"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    for i in 0..COUNT {
        let n = counts.get(&format!("stream {i}")).copied().unwrap_or(0);
        assert_eq!(n, 1, "stream {i} arrived {n} times");
    }
    assert_eq!(got.len(), COUNT);
    server.shutdown().await;
}

#[tokio::test]
async fn malformed_sessions_are_refused_and_serving_goes_on() {
    let store = TestStore::postgres().await;
    let db = store.database().unwrap();
    let server = store.start_dev_server().await;
    let base = server.http_url();
    let secrets = Secrets::new(auth::DEV_SECRET.into(), None);
    let cases = [
        ("s-array", "[]"),
        ("s-string", "\"x\""),
        ("s-number-passport", r#"{"passport": 5}"#),
        ("s-no-user", r#"{"cookie": {}, "passport": {}}"#),
        ("s-number-user", r#"{"passport": {"user": 5}}"#),
        ("s-bad-uuid", r#"{"passport": {"user": "not-a-uuid"}}"#),
        (
            "s-unknown-user",
            r#"{"passport": {"user": "5c000000-0000-4000-8000-0000000000ff"}}"#,
        ),
    ];
    for (sid, sess) in cases {
        db.execute(&format!(
            "INSERT INTO login_sessions (sid, sess, expire) VALUES ('{sid}', '{sess}', \
             (now() AT TIME ZONE 'utc') + interval '1 hour')"
        ))
        .await;
        let cookie = format!("scmarket.sid={}", auth::sign_session_cookie(sid, &secrets));
        let refused = RawSocket::connect(&base, Some(&cookie)).await.err();
        assert_eq!(refused.map(|r| r.status), Some(400), "{sid}: {sess}");
        // The message post reads the session in its own statement (with the chat's access
        // facts): it refuses the same sessions.
        let (status, body) = post_message(&base, &cookie, GROUP_CHAT, "x").await;
        assert_eq!(status, 401, "{sid}: {sess}: {body}");
    }
    // An expired row is no session either.
    db.execute(&format!(
        "INSERT INTO login_sessions (sid, sess, expire) VALUES ('s-expired', \
         '{{\"passport\": {{\"user\": \"{ALICE}\"}}}}', (now() AT TIME ZONE 'utc') - interval '1 second')"
    ))
    .await;
    let cookie = format!(
        "scmarket.sid={}",
        auth::sign_session_cookie("s-expired", &secrets)
    );
    assert!(RawSocket::connect(&base, Some(&cookie)).await.is_err());
    assert_eq!(post_message(&base, &cookie, GROUP_CHAT, "x").await.0, 401);
    connect(&base, "alice").await;
    let metrics = metrics_text(&base).await;
    assert!(!metrics.contains(r#"reason="store_error""#), "{metrics}");
    server.shutdown().await;
}

/// The database stops taking connections, and the open ones are cut.
async fn refuse_connections(db: &TestDatabase) {
    db.execute_as_admin(&format!(
        "ALTER DATABASE {0} ALLOW_CONNECTIONS false; \
         SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{0}'",
        db.name
    ))
    .await;
}

async fn allow_connections(db: &TestDatabase) {
    db.execute_as_admin(&format!(
        "ALTER DATABASE {} ALLOW_CONNECTIONS true",
        db.name
    ))
    .await;
}

/// The database stops taking connections and the open ones are cut: handshakes and joins are
/// refused with `store_error`, open sockets stay, and service resumes when it is back.
#[tokio::test]
async fn the_database_going_away_is_refused_with_store_error_and_service_resumes() {
    let store = TestStore::postgres().await;
    let db = store.database().unwrap();
    let server = store
        .start_dev_server_with(|c| {
            c.limits.event_rate = 0;
            c.store.pool.query_timeout = Duration::from_secs(2);
            c.store.pool.connect_timeout = Duration::from_secs(1);
        })
        .await;
    let base = server.http_url();
    let cookie = session_cookie(&base, "alice").await;
    let mut alice = RawSocket::connect(&base, Some(&cookie)).await.unwrap();
    refuse_connections(db).await;
    let refused = RawSocket::connect(&base, Some(&cookie)).await.err();
    assert_eq!(refused.map(|r| r.status), Some(400));
    let ack = alice
        .emit_ack("clientJoinRoom", json!({ "chat_id": GROUP_CHAT }))
        .await;
    assert_eq!(ack, json!({"ok": false, "error": "store_error"}));
    let metrics = metrics_text(&base).await;
    assert!(
        metrics.contains(r#"scmarket_ws_handshakes_refused_total{reason="store_error"} 1"#),
        "{metrics}"
    );

    allow_connections(db).await;
    let ack = alice
        .emit_ack("clientJoinRoom", json!({ "chat_id": GROUP_CHAT }))
        .await;
    assert_eq!(ack, json!({"ok": true}));
    RawSocket::connect(&base, Some(&cookie))
        .await
        .expect("a handshake once the database is back");
    server.shutdown().await;
}

#[tokio::test]
async fn a_missing_table_or_a_wrong_column_type_stops_serve_at_start() {
    let store = TestStore::postgres().await;
    let db = store.database().unwrap();
    db.execute(
        "ALTER TABLE accounts ALTER COLUMN banned DROP DEFAULT, \
         ALTER COLUMN banned TYPE integer USING banned::int",
    )
    .await;
    db.execute("DROP TABLE contractor_member_roles").await;
    let err = scmarket_ws::server::start(store.config())
        .await
        .err()
        .expect("serve refuses")
        .to_string();
    assert!(
        err.contains("accounts.banned is integer")
            && err.contains("contractor_member_roles is missing"),
        "{err}"
    );

    let out = binary::command()
        .args(["db", "check", "--database", &db.url])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("MISSING  column accounts.banned is integer"),
        "{text}"
    );
    assert!(
        text.contains("MISSING  table contractor_member_roles is missing"),
        "{text}"
    );
    assert!(text.contains("absent   notify trigger"), "{text}");
}

#[tokio::test]
async fn bad_urls_and_unreachable_servers_are_usage_and_connect_errors() {
    let run = |args: &[&str]| {
        let out = binary::command().args(args).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(&["serve", "--dev", "--database", "postgres://u@h:notaport/db"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("not a PostgreSQL URL"), "{err}");
    let (code, err) = run(&[
        "serve",
        "--dev",
        "--database",
        "postgres://postgres:hunter2@127.0.0.1:1/db",
        "--db-connect-timeout",
        "2s",
    ]);
    assert_eq!(code, Some(4), "{err}");
    assert!(
        err.contains("cannot connect") && !err.contains("hunter2"),
        "{err}"
    );
    let (code, err) = run(&["db", "check", "--database", "scmarket-ws.db"]);
    assert_eq!(code, Some(2), "{err}");
    let (code, err) = run(&["serve", "--database", "sqlite::memory:", "--dev", "--init"]);
    assert_eq!(code, Some(2), "{err}");
}

#[tokio::test]
async fn init_creates_and_seeds_an_empty_database_and_refuses_a_used_one() {
    let db = TestDatabase::create().await;
    let mut config = scmarket_ws::server::Config::ephemeral_dev();
    config.store.database = db.url.clone();
    config.store.init = true;
    let server = start_server(config.clone()).await;
    let base = server.http_url();
    let cookie = session_cookie(&base, "alice").await;
    let chats = get_json(format!("{base}/api/chats"), &cookie).await;
    assert_eq!(chats["data"].as_array().unwrap().len(), 3, "{chats}");
    server.shutdown().await;

    let err = scmarket_ws::server::start(config.clone())
        .await
        .err()
        .expect("a second --init is refused")
        .to_string();
    assert!(
        err.contains("--init refused") && err.contains("accounts"),
        "{err}"
    );
    config.dev = false;
    config.secrets.session = Some("s".into());
    let err = scmarket_ws::server::start(config)
        .await
        .err()
        .expect("--init without --dev is refused")
        .to_string();
    assert!(err.contains("with --dev"), "{err}");

    // db install-notify and uninstall-notify are idempotent.
    for args in [
        ["db", "install-notify"],
        ["db", "install-notify"],
        ["db", "uninstall-notify"],
        ["db", "uninstall-notify"],
    ] {
        let out = binary::command()
            .args(args)
            .args(["--database", &db.url])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The trigger removed while serving: the listener notices within a second or two, and the
/// REST route emits what it stores again (rather than nothing emitting it at all).
#[tokio::test]
async fn removing_the_trigger_while_serving_hands_emission_back_to_the_rest_route() {
    let store = store_with_trigger().await;
    let db = store.database().unwrap();
    let server = store.start_dev_server().await;
    let base = server.http_url();
    let mut bob = connect(&base, "bob").await;
    let cookie = session_cookie(&base, "alice").await;
    assert_eq!(
        post_message(&base, &cookie, DIRECT_CHAT, "before").await.0,
        200
    );
    db.execute(notify::UNINSTALL_SQL).await;
    tokio::time::sleep(notify::TRIGGER_CHECK * 3).await;
    assert_eq!(
        post_message(&base, &cookie, DIRECT_CHAT, "after").await.0,
        200
    );
    let got = messages_until_quiet(&mut bob, Duration::from_millis(700)).await;
    let contents: Vec<&str> = got.iter().map(|m| m["content"].as_str().unwrap()).collect();
    assert_eq!(contents, ["before", "after"]);
    server.shutdown().await;
}

/// A connection of the test's own to `db`, as psql would open it.
async fn client_of(db: &TestDatabase) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .expect("the test database answers");
    tokio::spawn(connection);
    client
}

/// The state and last statement of each connection `application_name` holds on `db`.
async fn backends(db: &TestDatabase, application_name: &str) -> Vec<(String, String)> {
    let client = client_of(db).await;
    client
        .query(
            "SELECT state, query FROM pg_stat_activity \
             WHERE datname = $1 AND application_name = $2",
            &[&db.name, &application_name],
        )
        .await
        .expect("pg_stat_activity")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// `serve` opens its whole pool at start and warms every connection (the handshake, join and
/// message post lookups prepared and run once: each backend's last statement is the last warming lookup),
/// so the first sessions after a start meet no cold connection; `--pool-warm 0` opens only
/// the connection that checks the URL. Warmed connections serve handshakes and joins.
#[tokio::test]
async fn serve_starts_with_its_pool_open_and_warm() {
    let store = TestStore::postgres().await;
    let db = store.database().unwrap();
    let url = |name: &str| format!("{}?application_name={name}", db.url);

    let server = store
        .start_dev_server_with(|c| {
            c.store.database = url("warm-test");
            c.store.pool.size = 5;
            c.store.pool.warm = None;
        })
        .await;
    let warm = backends(db, "warm-test").await;
    assert_eq!(warm.len(), 5, "{warm:?}");
    for (state, query) in &warm {
        assert_eq!(state, "idle", "{warm:?}");
        assert!(
            query.starts_with("SELECT a.user_id, COALESCE(a.username, ''), a.role, a.banned FROM accounts a WHERE a.user_id = $1"),
            "a connection that was not warmed: {query}"
        );
    }
    let mut alice = connect(&server.http_url(), "alice").await;
    let ack = alice
        .emit_ack("clientJoinRoom", json!({ "chat_id": GROUP_CHAT }))
        .await;
    assert_eq!(ack, json!({"ok": true}));
    assert_eq!(backends(db, "warm-test").await.len(), 5);
    server.shutdown().await;

    let server = store
        .start_dev_server_with(|c| {
            c.store.database = url("cold-test");
            c.store.pool.size = 5;
            c.store.pool.warm = Some(0);
        })
        .await;
    let cold = backends(db, "cold-test").await;
    assert_eq!(cold.len(), 1, "{cold:?}");
    let mut alice = connect(&server.http_url(), "alice").await;
    let ack = alice
        .emit_ack("clientJoinRoom", json!({ "chat_id": GROUP_CHAT }))
        .await;
    assert_eq!(ack, json!({"ok": true}));
    server.shutdown().await;
}

/// The value of the metric line that starts with `name` (labels included), if any.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// Poll `/metrics` until `line` reads `value` (at most 5 s); answers the last text.
async fn metrics_until(base: &str, line: &str, value: f64) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let text = metrics_text(base).await;
        if metric(&text, line) == Some(value) || tokio::time::Instant::now() > deadline {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `/metrics` shows what holds serving back on the database: a pool of one connection held
/// by a post whose INSERT waits on a lock shows it in use with the next post waiting for it,
/// and once the lock goes, both posts' calls are timed and the wait is counted. A call that
/// fails is counted by its kind.
#[tokio::test]
async fn a_pool_held_by_a_slow_insert_shows_in_metrics() {
    let store = TestStore::postgres().await;
    let db = store.database().unwrap();
    let server = store
        .start_dev_server_with(|c| {
            c.store.pool.size = 1;
            c.store.pool.wait_timeout = Duration::from_secs(10);
            c.store.pool.query_timeout = Duration::from_secs(10);
        })
        .await;
    let base = server.http_url();
    let cookie = session_cookie(&base, "alice").await;
    let text = metrics_text(&base).await;
    assert_eq!(
        metric(&text, r#"scmarket_ws_store_pool_max_connections"#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, r#"scmarket_ws_store_pool_connections{state="idle"}"#),
        Some(1.0),
        "{text}"
    );

    let (locker, connection) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .expect("the test database answers");
    tokio::spawn(connection);
    locker
        .batch_execute("BEGIN; LOCK TABLE messages IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let first = tokio::spawn({
        let (base, cookie) = (base.clone(), cookie.clone());
        async move { post_message(&base, &cookie, GROUP_CHAT, "first").await }
    });
    let text = metrics_until(
        &base,
        r#"scmarket_ws_store_pool_connections{state="in_use"}"#,
        1.0,
    )
    .await;
    assert_eq!(
        metric(
            &text,
            r#"scmarket_ws_store_pool_connections{state="in_use"}"#
        ),
        Some(1.0),
        "{text}"
    );
    let second = tokio::spawn({
        let (base, cookie) = (base.clone(), cookie.clone());
        async move { post_message(&base, &cookie, GROUP_CHAT, "second").await }
    });
    let text = metrics_until(&base, "scmarket_ws_store_pool_waiting", 1.0).await;
    assert_eq!(
        metric(&text, "scmarket_ws_store_pool_waiting"),
        Some(1.0),
        "{text}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    locker.batch_execute("COMMIT").await.unwrap();
    assert_eq!(first.await.unwrap().0, 200);
    assert_eq!(second.await.unwrap().0, 200);

    let text = metrics_text(&base).await;
    assert_eq!(
        metric(
            &text,
            r#"scmarket_ws_store_call_seconds_count{call="insert_message"}"#
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            r#"scmarket_ws_store_call_seconds_count{call="session_chat_facts"}"#
        ),
        Some(2.0),
        "{text}"
    );
    // The second post's lookup waited for the connection the first post's INSERT held.
    let waited = metric(&text, "scmarket_ws_store_pool_wait_seconds_sum").unwrap();
    assert!(waited >= 0.3, "{text}");
    let slowest = metric(
        &text,
        r#"scmarket_ws_store_call_seconds_sum{call="session_chat_facts"}"#,
    )
    .unwrap();
    assert!(slowest >= 0.3, "{text}");
    assert_eq!(metric(&text, "scmarket_ws_store_pool_waiting"), Some(0.0));
    assert!(
        !text.contains("scmarket_ws_store_failures_total{"),
        "{text}"
    );

    // A lookup the database refuses is counted as unavailable.
    refuse_connections(db).await;
    assert!(RawSocket::connect(&base, Some(&cookie)).await.is_err());
    let text = metrics_text(&base).await;
    assert_eq!(
        metric(
            &text,
            r#"scmarket_ws_store_failures_total{call="session_admission",kind="unavailable"}"#
        ),
        Some(1.0),
        "{text}"
    );
    allow_connections(db).await;
    server.shutdown().await;
}

/// Whether each connection `application_name` holds on `db` is encrypted (`pg_stat_ssl`).
async fn encrypted(db: &TestDatabase, application_name: &str) -> Vec<bool> {
    let client = client_of(db).await;
    client
        .query(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.datname = $1 AND a.application_name = $2",
            &[&db.name, &application_name],
        )
        .await
        .expect("pg_stat_ssl")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// The server's own certificate file (`ssl_cert_file`), after checking that it offers TLS:
/// the machine's PostgreSQL does (Debian's, with its snakeoil certificate), and so does the
/// throwaway server `.ci/run` starts when there is none.
async fn server_certificate(db: &TestDatabase) -> String {
    let client = client_of(db).await;
    let ssl: String = client.query_one("SHOW ssl", &[]).await.unwrap().get(0);
    assert_eq!(ssl, "on", "the test server must offer TLS (ssl = on)");
    client
        .query_one("SHOW ssl_cert_file", &[])
        .await
        .unwrap()
        .get(0)
}

/// TLS to PostgreSQL as the URL's `sslmode` asks: `require` encrypts every connection `serve`
/// opens (the pool and the LISTEN connection), no `sslmode` encrypts none (as node-postgres),
/// `verify-full` refuses a certificate the system does not trust, and `verify-ca` with the
/// server's own certificate as the root accepts it.
#[tokio::test]
async fn connections_to_postgres_use_tls_as_the_url_asks() {
    let store = store_with_trigger().await;
    let db = store.database().unwrap();
    let certificate = server_certificate(db).await;
    let url = |query: &str| format!("{}?{query}", db.url);

    let server = store
        .start_dev_server_with(|c| {
            c.store.database = url("application_name=tls-required&sslmode=require")
        })
        .await;
    connect(&server.http_url(), "alice").await;
    let pool = encrypted(db, "tls-required").await;
    assert!(!pool.is_empty() && pool.iter().all(|&e| e), "{pool:?}");
    let listener = encrypted(db, notify::LISTENER_APPLICATION_NAME).await;
    assert_eq!(listener, vec![true]);
    server.shutdown().await;

    let server = store
        .start_dev_server_with(|c| c.store.database = url("application_name=tls-absent"))
        .await;
    connect(&server.http_url(), "alice").await;
    let pool = encrypted(db, "tls-absent").await;
    assert!(!pool.is_empty() && pool.iter().all(|&e| !e), "{pool:?}");
    server.shutdown().await;

    let refused = scmarket_ws::server::start({
        let mut config = store.config();
        config.store.database = url("sslmode=verify-full");
        config
    })
    .await
    .err()
    .expect("an untrusted certificate is refused")
    .to_string();
    assert!(refused.contains("certificate verify failed"), "{refused}");

    let server = store
        .start_dev_server_with(|c| {
            c.store.database = url(&format!(
                "application_name=tls-verified&sslmode=verify-ca&sslrootcert={certificate}"
            ))
        })
        .await;
    connect(&server.http_url(), "alice").await;
    let pool = encrypted(db, "tls-verified").await;
    assert!(!pool.is_empty() && pool.iter().all(|&e| e), "{pool:?}");
    server.shutdown().await;
}
