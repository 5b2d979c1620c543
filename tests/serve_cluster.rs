//! Several `serve` nodes as one deployment: one PostgreSQL store (each test a database of its
//! own) and the Redis adapter (Redis at 127.0.0.1:6379; each test its own channel prefix), or
//! the PostgreSQL one. A post on any node reaches every socket of the room once, whichever node holds it;
//! a ban on one node closes the user's sockets on the others; a polling request for a sid that
//! lives on another node is answered as engine.io answers an unknown sid.

mod common;

use std::time::Duration;

use common::raw::RawSocket;
use common::stores::TestStore;
use common::*;
use scmarket_ws::server::{
    AdapterConfig, Config, DEFAULT_ADAPTER_TIMEOUT, LimitsConfig, RunningServer,
};
use scmarket_ws::store::postgres::notify;

const REDIS: &str = "redis://127.0.0.1:6379";
const QUIET: Duration = Duration::from_millis(500);
const ALICE: &str = "5c000000-0000-4000-8000-000000000001";

/// The adapter the nodes share rooms through.
#[derive(Clone, PartialEq)]
enum Via {
    /// The machine's Redis (127.0.0.1:6379).
    Redis,
    /// A Redis of the test's own (URL), with this `--adapter-timeout`.
    RedisAt(String, Duration),
    Postgres,
}

/// A deployment of `count` nodes on one PostgreSQL store (a database of the test's own with the
/// demo data) and one adapter (Redis with a prefix of the test's own, or NOTIFY on the same
/// database).
struct Cluster {
    nodes: Vec<RunningServer>,
    store: TestStore,
    /// The adapter's channel prefix.
    prefix: String,
}

impl Cluster {
    async fn start(count: usize) -> Cluster {
        Cluster::start_on(count, Via::Redis, false).await
    }

    /// With `feed`, the database announces every new message (the NOTIFY trigger), and each
    /// node emits what it hears to its own sockets.
    async fn start_on(count: usize, via: Via, feed: bool) -> Cluster {
        Cluster::start_each(&vec![via; count], feed).await
    }

    /// One node per entry of `vias`, each reaching the adapter its own way.
    async fn start_each(vias: &[Via], feed: bool) -> Cluster {
        let store = TestStore::postgres().await;
        let db = store.database().expect("a PostgreSQL store");
        if feed {
            db.execute(notify::INSTALL_SQL).await;
        }
        let prefix = format!(
            "scmarket-ws-test-{}-{:08x}",
            std::process::id(),
            fastrand::u32(..)
        );
        let mut nodes = Vec::new();
        for via in vias {
            let mut config = store.config();
            config.limits = LimitsConfig::off();
            config.adapter = match via {
                Via::Redis => AdapterConfig::Redis {
                    url: REDIS.into(),
                    prefix: prefix.clone(),
                    timeout: DEFAULT_ADAPTER_TIMEOUT,
                },
                Via::RedisAt(url, timeout) => AdapterConfig::Redis {
                    url: url.clone(),
                    prefix: prefix.clone(),
                    timeout: *timeout,
                },
                Via::Postgres => AdapterConfig::Postgres {
                    url: db.url.clone(),
                    prefix: "scmarket_ws".into(),
                },
            };
            let node = scmarket_ws::server::start(config)
                .await
                .unwrap_or_else(|e| panic!("a node (Redis at {REDIS}?): {e:#}"));
            nodes.push(node);
        }
        Cluster {
            nodes,
            store,
            prefix,
        }
    }

    fn url(&self, i: usize) -> String {
        self.nodes[i].http_url()
    }

    async fn shutdown(self) {
        for node in self.nodes {
            node.shutdown().await;
        }
        drop(self.store);
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
    posts_reach_every_socket_once(Cluster::start_on(3, Via::Postgres, false).await).await;
}

/// With the database announcing every message, each node emits to its own sockets only: a
/// REST post and a row inserted by another process each reach every socket once.
#[tokio::test(flavor = "multi_thread")]
async fn database_announced_messages_reach_every_socket_once() {
    posts_reach_every_socket_once(Cluster::start_on(3, Via::Redis, true).await).await;
    let cluster = Cluster::start_on(2, Via::Redis, true).await;
    let (a, b) = (cluster.url(0), cluster.url(1));
    let mut alice_on_a = connect(&a, "alice").await;
    let mut bob_on_b = connect(&b, "bob").await;
    let db = cluster.store.database().unwrap();
    db.execute(&format!(
        "INSERT INTO messages (content, author, chat_id) VALUES ('from psql', '{ALICE}', '{DIRECT_CHAT}')"
    ))
    .await;
    assert_eq!(
        receives_once(&mut alice_on_a, "alice on a").await,
        "from psql"
    );
    assert_eq!(receives_once(&mut bob_on_b, "bob on b").await, "from psql");
    cluster.shutdown().await;
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

/// A redis-server of the test's own (from PATH) on a free loopback port, to kill and start
/// again on the same port.
struct OwnRedis {
    port: u16,
    dir: tempfile::TempDir,
    process: Option<std::process::Child>,
}

impl OwnRedis {
    fn start() -> OwnRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut redis = OwnRedis {
            port,
            dir: tempfile::tempdir().unwrap(),
            process: None,
        };
        redis.restart();
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// `redis-cli` against this server: its output, `None` when it does not answer.
    fn cli(&self, args: &[&str]) -> Option<String> {
        let out = std::process::Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli on PATH");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.success() && !text.contains("Could not connect")).then_some(text)
    }

    /// Start it (again), without persistence, and wait until it answers.
    fn restart(&mut self) {
        let process = std::process::Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server on PATH");
        self.process = Some(process);
        for _ in 0..100 {
            if self
                .cli(&["PING"])
                .is_some_and(|pong| pong.contains("PONG"))
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server on port {} did not answer", self.port);
    }

    /// SIGKILL, as a crash.
    fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = process.kill();
            let _ = process.wait();
        }
    }

    /// How many connections subscribe the sharded channel `channel`.
    fn shard_subscribers(&self, channel: &str) -> u64 {
        self.cli(&["PUBSUB", "SHARDNUMSUB", channel])
            .and_then(|out| out.lines().nth(1).and_then(|n| n.trim().parse().ok()))
            .unwrap_or(0)
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Redis restarts under two nodes. While it is down, a post reaches the sockets of the node it
/// was posted on once its publish fails (at most `--adapter-timeout` later), and not the other
/// node's: Redis pub/sub keeps nothing for later. Once Redis is back, every node reconnects, subscribes its channels
/// again, and posts reach every socket of the room once, as before.
#[tokio::test(flavor = "multi_thread")]
async fn the_nodes_outlive_a_redis_restart() {
    let mut redis = OwnRedis::start();
    let timeout = Duration::from_secs(2);
    let cluster = Cluster::start_on(2, Via::RedisAt(redis.url(), timeout), false).await;
    let (a, b) = (cluster.url(0), cluster.url(1));
    let requests = format!("{}-request#/#", cluster.prefix);
    assert_eq!(redis.shard_subscribers(&requests), 2);
    let mut alice_on_a = connect(&a, "alice").await;
    let mut bob_on_b = connect(&b, "bob").await;
    let bob = session_cookie(&b, "bob").await;
    let (status, body) = post_message(&b, &bob, DIRECT_CHAT, "before").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(receives_once(&mut alice_on_a, "alice on a").await, "before");
    assert_eq!(receives_once(&mut bob_on_b, "bob on b").await, "before");

    redis.kill();
    // The publish fails when the node finds the connection gone, or after `timeout` queued.
    let (status, body) = post_message(&a, &bob, DIRECT_CHAT, "while down").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        receives_once(&mut alice_on_a, "alice on a").await,
        "while down"
    );
    assert!(
        bob_on_b.next_event_within(QUIET).await.is_none(),
        "bob on b received a post made while Redis was down"
    );
    let metrics = metrics_text(&a).await;
    assert!(
        metrics.contains("scmarket_ws_adapter_errors_total 1\n"),
        "{metrics}"
    );

    redis.restart();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while redis.shard_subscribers(&requests) < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the nodes did not subscribe again within 30 s of Redis's restart"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (node, text) in [(&a, "after, through a"), (&b, "after, through b")] {
        let (status, body) = post_message(node, &bob, DIRECT_CHAT, text).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(receives_once(&mut alice_on_a, "alice on a").await, text);
        assert_eq!(receives_once(&mut bob_on_b, "bob on b").await, text);
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

/// A TCP proxy in front of the machine's Redis that holds back, by `delay`, the frames Redis
/// sends: only push frames (RESP3 `>`, what a subscription hears: the node behind it hears the
/// other nodes' broadcasts late, while replies to its own commands, its publishes included,
/// come at once), or every frame (a slow Redis: each publish waits `delay` for its answer).
struct SlowRedis {
    url: String,
    task: tokio::task::JoinHandle<()>,
}

/// Which frames from Redis [`SlowRedis`] holds back.
#[derive(Clone, Copy, PartialEq)]
enum Held {
    Pushes,
    Everything,
}

impl SlowRedis {
    async fn start(held: Held, delay: Duration) -> SlowRedis {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("redis://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(SlowRedis::relay(client, held, delay));
            }
        });
        SlowRedis { url, task }
    }

    async fn relay(client: tokio::net::TcpStream, held: Held, delay: Duration) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        use tokio::time::Instant;
        let Ok(server) = tokio::net::TcpStream::connect("127.0.0.1:6379").await else {
            return;
        };
        let (mut client_rx, mut client_tx) = client.into_split();
        let (mut server_rx, mut server_tx) = server.into_split();
        tokio::spawn(async move { tokio::io::copy(&mut client_rx, &mut server_tx).await });
        // The writer to the node: frames due now go out at once, held ones in order when due.
        let (frames, mut incoming) = tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
        tokio::spawn(async move {
            let mut waiting = std::collections::VecDeque::<(Instant, Vec<u8>)>::new();
            loop {
                let next_due = waiting.front().map(|(due, _)| *due);
                let frame = tokio::select! {
                    item = incoming.recv() => match item {
                        Some((due, frame)) if due <= Instant::now() => frame,
                        Some(item) => {
                            waiting.push_back(item);
                            continue;
                        }
                        None => return,
                    },
                    () = async {
                        match next_due {
                            Some(due) => tokio::time::sleep_until(due).await,
                            None => std::future::pending().await,
                        }
                    } => waiting.pop_front().expect("a held frame").1,
                };
                if client_tx.write_all(&frame).await.is_err() {
                    return;
                }
            }
        });
        let mut pending = Vec::new();
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(n @ 1..) = server_rx.read(&mut buf).await {
            pending.extend_from_slice(&buf[..n]);
            while let Some(len) = resp3_frame_len(&pending) {
                let frame: Vec<u8> = pending.drain(..len).collect();
                let due = Instant::now()
                    + if held == Held::Everything || frame[0] == b'>' {
                        delay
                    } else {
                        Duration::ZERO
                    };
                if frames.send((due, frame)).is_err() {
                    return;
                }
            }
        }
    }
}

impl Drop for SlowRedis {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The length of the first whole RESP3 frame in `buf`, `None` until all of it has come.
fn resp3_frame_len(buf: &[u8]) -> Option<usize> {
    let line_end = buf.windows(2).position(|w| w == b"\r\n")?;
    let after = line_end + 2;
    let count = || -> Option<i64> { std::str::from_utf8(&buf[1..line_end]).ok()?.parse().ok() };
    match buf.first()? {
        // Blob string, blob error, verbatim string: a length, then that many bytes and CRLF.
        b'$' | b'!' | b'=' => match count()? {
            n if n < 0 => Some(after),
            n => {
                let end = after + n as usize + 2;
                (buf.len() >= end).then_some(end)
            }
        },
        // Array, push, set: that many frames; map, attribute: twice that many.
        kind @ (b'*' | b'>' | b'~' | b'%' | b'|') => {
            let n = count()?.max(0) as usize;
            let items = if matches!(kind, b'%' | b'|') {
                2 * n
            } else {
                n
            };
            let mut at = after;
            for _ in 0..items {
                at += resp3_frame_len(&buf[at..])?;
            }
            Some(at)
        }
        // Everything else is one line.
        _ => Some(after),
    }
}

/// A session that leaves while a message it was counted for is still crossing the adapter
/// waits for it before the server hears of the leave: node b hears node a's broadcasts 2 s
/// late, and its member closes right after its own post, while the other member's message is
/// still on its way. Every delivery is counted, none lost (before, the leave reached node b
/// first and took the socket out of the room: 2 of 3 deliveries).
#[tokio::test(flavor = "multi_thread")]
async fn a_leaving_session_waits_for_messages_still_crossing_the_adapter() {
    let slow = SlowRedis::start(Held::Pushes, Duration::from_secs(2)).await;
    let via = |url: &str| Via::RedisAt(url.to_owned(), DEFAULT_ADAPTER_TIMEOUT);
    let cluster = Cluster::start_each(&[via(REDIS), via(&slow.url)], false).await;
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let fixture = format!(
        "{}/tests/fixtures/owed-across-nodes.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let out = common::binary::async_command()
        .args(["-q", "load-test", &fixture])
        .args([
            "--target",
            &cluster.url(0),
            "--target",
            &cluster.url(1),
            "-o",
        ])
        .arg(&report)
        .stdout(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(report["sessions"]["connected"], 2, "{report}");
    // The first post reaches both members; the second only its sender, as the other member
    // had closed before it was sent.
    assert_eq!(report["delivery"]["expected"], 3, "{report}");
    assert_eq!(report["delivery"]["received"], 3, "{report}");
    // One of them crossed to node b late, and was still counted.
    let slowest = report["latency_ms"]["delivery"]["max"].as_f64().unwrap();
    assert!(slowest >= 2000.0, "{report}");
    assert_eq!(out.status.code(), Some(0), "{report}");
    cluster.shutdown().await;
}

/// A node's own sockets get a post at once, without waiting for Redis: node a's Redis answers
/// 2 s late, yet its member receives within 1 s, and the member on node b (which hears node
/// a's publish only when Redis has it) still receives, once (socketioxide-redis emits to the
/// node's own sockets only after Redis answered the publish; `delivery::to_room` does not wait
/// for that).
#[tokio::test(flavor = "multi_thread")]
async fn a_nodes_own_sockets_get_a_post_without_waiting_for_redis() {
    let slow = SlowRedis::start(Held::Everything, Duration::from_secs(2)).await;
    let via = |url: &str| Via::RedisAt(url.to_owned(), DEFAULT_ADAPTER_TIMEOUT);
    let cluster = Cluster::start_each(&[via(&slow.url), via(REDIS)], false).await;
    let (a, b) = (cluster.url(0), cluster.url(1));
    let mut alice_on_a = connect(&a, "alice").await;
    let mut bob_on_b = connect(&b, "bob").await;
    let alice = session_cookie(&a, "alice").await;
    let posting = tokio::spawn(async move { post_message(&a, &alice, DIRECT_CHAT, "hi").await });
    let (event, args) = alice_on_a
        .next_event_within(Duration::from_secs(1))
        .await
        .expect("alice on a received nothing within 1 s of the post");
    assert_eq!(
        (event.as_str(), args["content"].as_str()),
        ("serverMessage", Some("hi"))
    );
    let (status, body) = posting.await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(receives_once(&mut bob_on_b, "bob on b").await, "hi");
    assert!(
        alice_on_a.next_event_within(QUIET).await.is_none(),
        "alice on a received the post twice"
    );
    cluster.shutdown().await;
}

/// A room joined and left by event on one node of several: a post through that node or
/// another reaches the socket once while it is in the room (the room's part on the node is
/// joined with it, so the broadcast for the other nodes does not bring it back here), and not
/// at all once it left.
#[tokio::test(flavor = "multi_thread")]
async fn a_room_joined_by_event_on_one_node_of_several_gets_each_post_once() {
    let cluster = Cluster::start(2).await;
    let (a, b) = (cluster.url(0), cluster.url(1));
    // The admin may view the order's chat without being one of its participants.
    let mut admin_on_a = connect(&a, "admin").await;
    let joined = admin_on_a
        .emit_ack("clientJoinRoom", serde_json::json!({"chat_id": ORDER_CHAT}))
        .await;
    assert_eq!(joined, serde_json::json!({"ok": true}));
    let alice = session_cookie(&a, "alice").await;
    for (node, text) in [(&a, "through a"), (&b, "through b")] {
        let (status, body) = post_message(node, &alice, ORDER_CHAT, text).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(receives_once(&mut admin_on_a, "admin on a").await, text);
    }
    let left = admin_on_a
        .emit_ack(
            "clientLeaveRoom",
            serde_json::json!({"chat_id": ORDER_CHAT}),
        )
        .await;
    assert_eq!(left, serde_json::json!({"ok": true}));
    for node in [&a, &b] {
        let (status, body) = post_message(node, &alice, ORDER_CHAT, "after the leave").await;
        assert_eq!(status, 200, "{body}");
    }
    assert!(
        admin_on_a.next_event_within(QUIET).await.is_none(),
        "the admin received a post after leaving the room"
    );
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
    let store = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(TestStore::postgres());
    let database = store.database().unwrap().url.clone();
    let dir = tempfile::tempdir().unwrap();
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
        timeout: DEFAULT_ADAPTER_TIMEOUT,
    };
    let error = match scmarket_ws::server::start(config).await {
        Ok(_) => panic!("started without its Redis"),
        Err(e) => format!("{e:#}"),
    };
    assert!(error.contains("cannot use Redis"), "{error}");
}
