//! Several `serve` nodes as one deployment: one store (a SQLite file in WAL mode, which every
//! node opens) and the Redis adapter (Redis at 127.0.0.1:6379; each test its own channel
//! prefix). A post on any node reaches every socket of the room once, whichever node holds it;
//! a ban on one node closes the user's sockets on the others; a polling request for a sid that
//! lives on another node is answered as engine.io answers an unknown sid.

mod common;

use std::time::Duration;

use common::raw::RawSocket;
use common::*;
use scmarket_ws::server::{AdapterConfig, Config, LimitsConfig, RunningServer};

const REDIS: &str = "redis://127.0.0.1:6379";
const QUIET: Duration = Duration::from_millis(500);

const POSTGRES: &str = "host=127.0.0.1 user=postgres";

/// A database of its own on the local PostgreSQL, dropped with it.
struct Database {
    name: String,
}

impl Database {
    async fn create() -> Database {
        let name = format!(
            "scmarket_ws_cluster_{}_{:08x}",
            std::process::id(),
            fastrand::u32(..)
        );
        admin(&format!("CREATE DATABASE {name}")).await;
        Database { name }
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }

    async fn drop(self) {
        admin(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .await;
    }
}

async fn admin(statement: &str) {
    let (client, connection) = tokio_postgres::connect(
        &format!("{POSTGRES} dbname=postgres"),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap_or_else(|e| panic!("PostgreSQL at 127.0.0.1:5432 (is it running?): {e}"));
    tokio::spawn(connection);
    client
        .batch_execute(statement)
        .await
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
}

/// A deployment of `count` nodes on one store file and one Redis prefix.
struct Cluster {
    nodes: Vec<RunningServer>,
    _dir: tempfile::TempDir,
    database: Option<Database>,
}

impl Cluster {
    async fn start(count: usize) -> Cluster {
        Cluster::start_on(count, false).await
    }

    /// With `postgres`, the nodes share rooms through PostgreSQL NOTIFY on a database of their
    /// own instead of Redis.
    async fn start_on(count: usize, postgres: bool) -> Cluster {
        let pg = if postgres {
            Some(Database::create().await)
        } else {
            None
        };
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("cluster.db").display().to_string();
        let prefix = format!(
            "scmarket-ws-test-{}-{:08x}",
            std::process::id(),
            fastrand::u32(..)
        );
        let mut nodes = Vec::new();
        // One after the other: the first creates and seeds the store, the others open it.
        for _ in 0..count {
            let mut config = Config::ephemeral_dev();
            config.store.database = database.clone();
            config.limits = LimitsConfig::off();
            config.adapter = match &pg {
                None => AdapterConfig::Redis {
                    url: REDIS.into(),
                    prefix: prefix.clone(),
                },
                Some(db) => AdapterConfig::Postgres {
                    url: db.url(),
                    prefix: "scmarket_ws".into(),
                },
            };
            let node = scmarket_ws::server::start(config)
                .await
                .unwrap_or_else(|e| panic!("a node on Redis at {REDIS} (is it running?): {e:#}"));
            nodes.push(node);
        }
        Cluster {
            nodes,
            _dir: dir,
            database: pg,
        }
    }

    fn url(&self, i: usize) -> String {
        self.nodes[i].http_url()
    }

    async fn shutdown(self) {
        for node in self.nodes {
            node.shutdown().await;
        }
        if let Some(db) = self.database {
            db.drop().await;
        }
    }
}

async fn connect(base: &str, user: &str) -> RawSocket {
    let cookie = session_cookie(base, user).await;
    RawSocket::connect(base, Some(&cookie))
        .await
        .unwrap_or_else(|r| panic!("{user} refused on {base}: {r:?}"))
}

/// The next `serverMessage`'s content, and that no second one follows.
async fn receives_once(socket: &mut RawSocket, who: &str) -> String {
    let (event, args) = socket
        .next_event_within(Duration::from_secs(5))
        .await
        .unwrap_or_else(|| panic!("{who} received nothing"));
    assert_eq!(event, "serverMessage", "{who}");
    if let Some(again) = socket.next_event_within(QUIET).await {
        panic!("{who} received a second event: {again:?}");
    }
    args["content"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_post_on_any_node_reaches_every_socket_of_the_room_once() {
    posts_reach_every_socket_once(Cluster::start(3).await).await;
}

/// The same over the PostgreSQL adapter (the one measured against Redis).
#[tokio::test(flavor = "multi_thread")]
async fn the_postgres_adapter_reaches_every_socket_once_too() {
    posts_reach_every_socket_once(Cluster::start_on(3, true).await).await;
}

async fn posts_reach_every_socket_once(cluster: Cluster) {
    let (a, b, c) = (cluster.url(0), cluster.url(1), cluster.url(2));
    // alice and bob share the direct chat; each is joined to it on connect.
    let mut alice_on_a = connect(&a, "alice").await;
    let mut bob_on_b = connect(&b, "bob").await;
    let mut alice_on_c = connect(&c, "alice").await;
    let bob = session_cookie(&b, "bob").await;
    for (node, text) in [(&b, "through b"), (&a, "through a"), (&c, "through c")] {
        let (status, body) = post_message(node, &bob, DIRECT_CHAT, text).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(receives_once(&mut alice_on_a, "alice on a").await, text);
        assert_eq!(receives_once(&mut bob_on_b, "bob on b").await, text);
        assert_eq!(receives_once(&mut alice_on_c, "alice on c").await, text);
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ban_on_one_node_closes_the_users_sockets_on_the_others() {
    let cluster = Cluster::start(2).await;
    let (a, b) = (cluster.url(0), cluster.url(1));
    let mut frank_on_b = connect(&b, "frank").await;
    let mut alice_on_b = connect(&b, "alice").await;
    let response = reqwest::Client::new()
        .post(format!("{a}/api/dev/ban"))
        .json(&serde_json::json!({"username": "frank"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        frank_on_b.closed_within(Duration::from_secs(5)).await,
        "frank's socket on b is still open after a ban on a"
    );
    assert!(
        !alice_on_b.closed_within(QUIET).await,
        "the ban closed someone else's socket"
    );
    cluster.shutdown().await;
}

/// Engine sessions live in one node's memory: a polling request for a sid of node a sent to
/// node b gets engine.io's "Session ID unknown" (so a load balancer must keep a client on its
/// node: README, "Several nodes").
#[tokio::test(flavor = "multi_thread")]
async fn polling_to_another_nodes_sid_is_session_id_unknown() {
    let cluster = Cluster::start(2).await;
    let (a, b) = (cluster.url(0), cluster.url(1));
    let cookie = session_cookie(&a, "alice").await;
    let http = reqwest::Client::new();
    let open = http
        .get(format!("{a}/ws/?EIO=4&transport=polling"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(open.status(), 200);
    let text = open.text().await.unwrap();
    let handshake: serde_json::Value =
        serde_json::from_str(text.strip_prefix('0').expect("an open packet")).unwrap();
    let sid = handshake["sid"].as_str().unwrap().to_owned();
    let elsewhere = http
        .get(format!("{b}/ws/?EIO=4&transport=polling&sid={sid}"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), 400);
    assert_eq!(
        elsewhere.json::<serde_json::Value>().await.unwrap(),
        serde_json::json!({"code": 1, "message": "Session ID unknown"})
    );
    // On its own node the sid works.
    let home = http
        .get(format!("{a}/ws/?EIO=4&transport=polling&sid={sid}"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(home.status(), 200);
    cluster.shutdown().await;
}

/// `serve` as a process of its own (so it can be killed); its base URL once it listens.
fn serve_process(database: &str, prefix: &str) -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    let mut child = common::binary::command()
        .args([
            "serve",
            "--dev",
            "--listen",
            "127.0.0.1:0",
            "--database",
            database,
        ])
        .args(["--adapter", REDIS, "--adapter-prefix", prefix])
        .args(["--handshake-rate", "0", "--event-rate", "0"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("serve starts");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let url = loop {
        let line = lines
            .next()
            .and_then(Result::ok)
            .expect("serve says where it listens");
        if let Some(at) = line.find("listening on http://") {
            let rest = &line[at + "listening on ".len()..];
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    // Keep reading, so the node never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, url)
}

/// A node is killed (SIGKILL) 2 s into a load test over two nodes: its sessions come back on
/// the other node, and every message posted after that reaches every member of its room.
#[test]
fn a_killed_nodes_sessions_come_back_on_the_other_and_receive() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("cluster.db").display().to_string();
    let prefix = format!("scmarket-ws-test-kill-{}", std::process::id());
    let (mut doomed, a) = serve_process(&database, &prefix);
    let (mut survivor, b) = serve_process(&database, &prefix);
    let report = dir.path().join("report.json");
    let fixture = format!(
        "{}/tests/fixtures/node-loss.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let run = common::binary::command()
        .args([
            "-q",
            "load-test",
            &fixture,
            "--target",
            &a,
            "--target",
            &b,
            "-o",
        ])
        .arg(&report)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    doomed.kill().unwrap();
    let _ = doomed.wait();
    let out = run.wait_with_output().unwrap();
    let _ = survivor.kill();
    let _ = survivor.wait();
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert_eq!(report["sessions"]["connected"], 40, "{report}");
    assert_eq!(report["counters"]["reconnects"], 40, "{report}");
    // Half the sessions were on the killed node: the server closed nothing, the network did.
    let lost = report["counters"]["disconnects_by_reason"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| *k != "client")
                .map(|(_, v)| v.as_u64().unwrap())
                .sum::<u64>()
        })
        .unwrap_or(0);
    assert_eq!(lost, 20, "{report}");
    assert_eq!(report["delivery"]["expected"], 400, "{report}");
    assert_eq!(report["delivery"]["received"], 400, "{report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_without_its_redis_refuses_to_start() {
    let mut config = Config::ephemeral_dev();
    config.adapter = AdapterConfig::Redis {
        url: "redis://127.0.0.1:1".into(),
        prefix: "scmarket-ws-test-unreachable".into(),
    };
    let error = match scmarket_ws::server::start(config).await {
        Ok(_) => panic!("started without its Redis"),
        Err(e) => format!("{e:#}"),
    };
    assert!(error.contains("cannot use Redis"), "{error}");
}
