//! PostgreSQL for the tests: a database of its own for each test, created on the server at
//! `SCMARKET_WS_TEST_POSTGRES` (default `postgres://postgres@127.0.0.1:5432/postgres`, the
//! machine's trust-auth server) and dropped when the test ends, pass or fail.
//!
//! When no server answers there, the first test to ask starts a throwaway one with `initdb`
//! and `pg_ctl` from PATH in a temporary directory (as the `postgres` user when run as root,
//! since `initdb` refuses root); it is stopped and removed when the test process exits. When
//! neither works the test fails with the reason: it never skips.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use tokio_postgres::NoTls;

const SERVER_VARIABLE: &str = "SCMARKET_WS_TEST_POSTGRES";
const DEFAULT_SERVER: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The maintenance URL of a server that answers, found (or started) once per test process.
static SERVER: OnceLock<Result<String, String>> = OnceLock::new();
/// The throwaway server's watchdog: its stdin closes when this process exits, which stops
/// and removes the server.
static THROWAWAY: Mutex<Option<Child>> = Mutex::new(None);

/// Run `f` on a runtime of its own on another thread: usable from any test runtime and from
/// `Drop` during a panic (a tokio-postgres connection belongs to the runtime that made it).
fn on_own_runtime<T: Send + 'static>(
    f: impl FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>> + Send + 'static,
) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(f())
    })
    .join()
    .expect("the database helper thread")
}

async fn execute(url: &str, sql: &str) -> Result<(), String> {
    let (client, connection) =
        tokio::time::timeout(Duration::from_secs(10), tokio_postgres::connect(url, NoTls))
            .await
            .map_err(|_| format!("{url}: no answer within 10 s"))?
            .map_err(|e| format!("{url}: {e}"))?;
    let driver = tokio::spawn(connection);
    let result = client
        .batch_execute(sql)
        .await
        .map_err(|e| format!("{sql}: {}", scmarket_ws::store::postgres::describe(&e)));
    drop(client);
    let _ = driver.await;
    result
}

/// The server's maintenance URL: the configured one if it answers, else a throwaway one.
pub fn server() -> String {
    SERVER
        .get_or_init(|| {
            let url = std::env::var(SERVER_VARIABLE).unwrap_or_else(|_| DEFAULT_SERVER.into());
            let probe = url.clone();
            match on_own_runtime(move || Box::pin(async move { execute(&probe, "SELECT 1").await }))
            {
                Ok(()) => Ok(url),
                Err(why) => start_throwaway().map_err(|e| {
                    format!(
                        "no PostgreSQL for the tests: {why}; and starting a throwaway server \
                         failed: {e} (set {SERVER_VARIABLE} to a server's maintenance URL, or put \
                         initdb and pg_ctl on PATH)"
                    )
                }),
            }
        })
        .clone()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn start_throwaway() -> Result<String, String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let dir = std::env::temp_dir().join(format!("scmarket-ws-pg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    // Start, say "ready", wait for stdin to close (this process exiting), then stop and clean.
    let script = r#"set -e
D="$1"; P="$2"
initdb -D "$D/data" -U postgres -A trust >"$D/initdb.log" 2>&1 || { cat "$D/initdb.log" >&2; exit 1; }
pg_ctl -D "$D/data" -l "$D/server.log" -w -o "-p $P -k $D -c listen_addresses=127.0.0.1" start >/dev/null || { cat "$D/server.log" >&2; exit 1; }
echo ready
read _ || true
pg_ctl -D "$D/data" -m immediate stop >/dev/null 2>&1 || true
rm -rf "$D"
"#;
    let mut command = if root {
        Command::new("chown")
            .args(["postgres:", dir.to_str().unwrap_or_default()])
            .status()
            .map_err(|e| format!("chown: {e}"))?;
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", "sh", "-c", script, "sh"]);
        c
    } else {
        let mut c = Command::new("sh");
        c.args(["-c", script, "sh"]);
        c
    };
    let mut child = command
        .arg(&dir)
        .arg(port.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run the start script: {e}"))?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped"))
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    if line.trim() != "ready" {
        let mut why = String::new();
        if let Some(mut err) = child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut err, &mut why);
        }
        let _ = child.wait();
        return Err(format!("initdb/pg_ctl: {}", why.trim()));
    }
    let _ = child.stdin.as_mut().map(|s| s.flush());
    *THROWAWAY.lock().unwrap_or_else(|p| p.into_inner()) = Some(child);
    Ok(format!("postgres://postgres@127.0.0.1:{port}/postgres"))
}

/// The URL of database `name` on the test server.
fn database_url(name: &str) -> String {
    let mut url = url::Url::parse(&server()).expect("the server URL parses");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

/// A database of its own, dropped (connections and all) when this is dropped.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

impl TestDatabase {
    pub async fn create() -> TestDatabase {
        let name = format!("scmarket_ws_test_{}", uuid::Uuid::new_v4().simple());
        let admin = server();
        let sql = format!("CREATE DATABASE {name}");
        on_own_runtime(move || Box::pin(async move { execute(&admin, &sql).await }))
            .unwrap_or_else(|e| panic!("creating a test database: {e}"));
        TestDatabase {
            url: database_url(&name),
            name,
        }
    }

    /// The development tables and the demo data, as `serve --dev --init` makes them.
    pub async fn init_dev(&self) {
        use scmarket_ws::store::PostgresStore;
        use scmarket_ws::store::fixtures::{DEMO_YAML, Fixtures};
        use scmarket_ws::store::postgres::{PoolConfig, schema};
        self.execute(schema::DEV_SCHEMA).await;
        let store = PostgresStore::connect(&self.url, &PoolConfig::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        store
            .load_fixtures(&Fixtures::parse(DEMO_YAML, "demo").unwrap())
            .await
            .unwrap_or_else(|e| panic!("seeding the demo data: {e}"));
    }

    /// Run SQL in this database, as another process would (psql).
    pub async fn execute(&self, sql: &str) {
        execute(&self.url, sql)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Run SQL on the server's maintenance database (e.g. `pg_terminate_backend`).
    pub async fn execute_as_admin(&self, sql: &str) {
        execute(&server(), sql)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin = server();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if let Err(e) = on_own_runtime(move || Box::pin(async move { execute(&admin, &sql).await }))
        {
            eprintln!("could not drop the test database: {e}");
        }
    }
}
