//! `load-test` runs for real: every ready-made scenario at a small size against the embedded
//! server, a running `serve`, a server that loses messages, thresholds and exit codes.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

fn scenario(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(name)
        .display()
        .to_string()
}

/// Run `load-test` quietly with `--output`; exit code, report, stdout, stderr.
fn load_test(args: &[&str]) -> (i32, Value, String, String) {
    load_test_in(Path::new("."), args)
}

/// The same, from the folder `cwd` (relative paths in `args` are relative to it).
fn load_test_in(cwd: &Path, args: &[&str]) -> (i32, Value, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let out = common::binary::command()
        .arg("-q")
        .arg("load-test")
        .args(args)
        .arg("--output")
        .arg(&report)
        .current_dir(cwd)
        .output()
        .expect("the binary runs");
    let json = std::fs::read_to_string(&report)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    (
        out.status.code().unwrap_or(-1),
        json,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `load-test` on a ready-made scenario with `--set` overrides.
fn load_test_with(name: &str, sets: &[&str]) -> (i32, Value, String, String) {
    let file = scenario(name);
    let mut args = vec![file.as_str()];
    for set in sets {
        args.extend(["--set", set]);
    }
    load_test(&args)
}

/// Thresholds that hold on any machine: correctness, not speed (these tests run in debug
/// builds next to other tests on two cores).
const CORRECT: &str = r#"thresholds=["sessions.failed == 0", "delivery.completeness >= 100%"]"#;

fn assert_clean(name: &str, code: i32, report: &Value, stderr: &str) {
    assert_eq!(
        code, 0,
        "{name}: exit {code}\nreport: {report}\nstderr: {stderr}"
    );
    let sessions = &report["sessions"];
    assert!(
        sessions["connected"].as_u64().unwrap() > 0,
        "{name}: {report}"
    );
    assert_eq!(sessions["failed"], 0, "{name}");
    assert_eq!(sessions["started"], sessions["connected"], "{name}");
}

#[test]
fn smoke_runs_the_whole_contract() {
    let (code, report, stdout, stderr) =
        load_test(&[&scenario("smoke.yaml"), "--set", "phases.0.duration=2s"]);
    assert_clean("smoke", code, &report, &stderr);
    let delivery = &report["delivery"];
    assert!(delivery["expected"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(delivery["expected"], delivery["received"], "{report}");
    assert_eq!(report["delivery"]["completeness"], 1.0);
    assert_eq!(report["counters"]["errors_total"], 0, "{report}");
    for latency in [
        "connect",
        "engine_open",
        "ack",
        "wait_for",
        "delivery",
        "http",
    ] {
        assert!(
            report["latency_ms"][latency]["count"].as_u64().unwrap() > 0,
            "{latency} not measured: {report}"
        );
    }
    assert!(
        report["thresholds"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["passed"] == true)
    );
    // The human report goes to stdout.
    assert!(stdout.contains("delivery completeness"), "{stdout}");
}

#[test]
fn chat_fanout_small() {
    let (code, report, _, stderr) = load_test_with(
        "chat-fanout.yaml",
        &[
            "phases.0={duration: 1s, arrival_rate: 8, ramp_to: 16}",
            "phases.1={duration: 2s, vus: 10}",
            "setup.rooms=2",
            // Even odds for senders, so a run always has some (at 1 in 10, 25 users have
            // none 7% of the time and completeness has nothing to measure).
            "scenarios.1.weight=9",
            "scenarios.0.steps.2.wait_for.timeout=2s",
            "scenarios.1.steps.1.loop.count=2",
            "scenarios.1.steps.1.loop.steps.1.think=300ms",
            CORRECT,
        ],
    );
    assert_clean("chat-fanout", code, &report, &stderr);
}

#[test]
fn connect_storm_small_uses_the_open_model() {
    let (code, report, _, stderr) = load_test_with(
        "connect-storm.yaml",
        &[
            "phases.0={duration: 1s, arrival_rate: 20}",
            "phases.1={duration: 2s, arrival_rate: 20, ramp_to: 100}",
            "scenarios.0.steps.1.think=300ms",
            r#"thresholds=["sessions.failed == 0", "errors.total == 0"]"#,
        ],
    );
    assert_clean("connect-storm", code, &report, &stderr);
    // 20 + (20+100)/2*2 arrivals, one session each.
    assert_eq!(report["sessions"]["started"], 140, "{report}");
    assert_eq!(
        report["latency_ms"]["schedule_lag"]["count"], 140,
        "{report}"
    );
}

#[test]
fn soak_small_holds_sessions_and_delivers() {
    let (code, report, _, stderr) = load_test_with(
        "soak.yaml",
        &[
            "phases.0={duration: 2s, vus: 16}",
            "setup.rooms=2",
            "scenarios.0.steps.2.think=2s",
            // At this size the 1-in-100 announcer would rarely be picked: make it common.
            "scenarios.1.weight=99",
            "scenarios.1.steps.1.think=500ms",
            "scenarios.1.steps.3.think=500ms",
            CORRECT,
        ],
    );
    assert_clean("soak", code, &report, &stderr);
    assert!(
        report["sessions"]["peak_open"].as_u64().unwrap() >= 10,
        "{report}"
    );
}

#[test]
fn reconnect_sessions_survive_a_server_restart() {
    let (code, report, _, stderr) = load_test_with(
        "reconnect.yaml",
        &[
            "setup.restart_server={at: 1s, down_for: 500ms}",
            "setup.rooms=1",
            "phases.0={duration: 500ms, arrival_rate: 32}",
            // Flows are picked at random by weight: even odds make a run without a poster
            // (nothing to deliver after the restart) a 1-in-65,000 event instead of 1 in 6.
            "scenarios.1.weight=4",
            "scenarios.0.steps.5.wait_for.timeout=5s",
            "scenarios.1.steps.1.loop.duration=3s",
            "scenarios.1.steps.1.loop.steps.1.think=200ms",
        ],
    );
    // The scenario's own thresholds: no failed session, sessions came back within 10 s,
    // every message posted while they were in the room was delivered.
    assert_eq!(code, 0, "{report}\n{stderr}");
    let reconnects = report["counters"]["reconnects"].as_u64().unwrap();
    let transport_drops = report["counters"]["disconnects_by_reason"]["transport"]
        .as_u64()
        .unwrap();
    assert_eq!(
        transport_drops, 16,
        "every session saw the restart: {report}"
    );
    assert!(reconnects >= 1, "{report}");
    assert_eq!(report["sessions"]["failed"], 0);
    // Recovery is measured: each survivor's wait for a message after its rejoin is answered by
    // what the new session receives, not by a message from before the restart.
    assert_eq!(
        report["counters"]["errors_by_kind"]["wait_for_timeout"], 0,
        "{report}"
    );
    let waits = report["latency_ms"]["wait_for"]["count"].as_u64().unwrap();
    assert!(waits >= 2, "{report}");
}

#[test]
fn restart_server_needs_the_embedded_target() {
    let (code, _, _, stderr) = load_test(&[
        &scenario("reconnect.yaml"),
        "--target",
        "http://127.0.0.1:9",
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("restart_server"), "{stderr}");
}

#[test]
fn a_failed_threshold_exits_1_and_still_writes_the_report() {
    let (code, report, stdout, _) = load_test_with(
        "smoke.yaml",
        &[
            "phases.0.duration=1s",
            r#"thresholds=["connect.p99 < 1us", "sessions.failed == 0"]"#,
        ],
    );
    assert_eq!(code, 1);
    assert_eq!(report["thresholds"][0]["passed"], false, "{report}");
    assert_eq!(report["thresholds"][1]["passed"], true, "{report}");
    assert!(stdout.contains("FAIL"), "{stdout}");
}

#[test]
fn only_loopback_targets_are_allowed() {
    let (code, _, _, stderr) =
        load_test(&[&scenario("smoke.yaml"), "--target", "http://10.1.2.3:7000"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("loopback"), "{stderr}");
}

#[test]
fn one_worker_thread_runs_and_zero_is_a_usage_error() {
    let (code, report, _, stderr) = load_test(&[
        &scenario("smoke.yaml"),
        "--threads",
        "1",
        "--set",
        "phases.0.duration=1s",
    ]);
    assert_clean("smoke on one thread", code, &report, &stderr);
    let (code, _, _, stderr) = load_test(&[&scenario("smoke.yaml"), "--threads", "0"]);
    assert_eq!(code, 2, "{stderr}");
}

#[test]
fn an_unreachable_target_fails_with_a_hint_and_no_report() {
    // Port 9 (discard) on loopback: nothing listens there.
    let (code, report, _, stderr) =
        load_test(&[&scenario("smoke.yaml"), "--target", "http://127.0.0.1:9"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("nothing answers there"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        report,
        Value::Null,
        "no report from a run that never started"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_against_a_running_serve() {
    let server =
        common::start_dev_server_with(|c| (c.limits.handshake_rate, c.limits.event_rate) = (0, 0))
            .await;
    let url = server.http_url();
    let smoke = scenario("smoke.yaml");
    let (code, report, _, stderr) = tokio::task::spawn_blocking(move || {
        load_test(&[&smoke, "--target", &url, "--set", "phases.0.duration=1s"])
    })
    .await
    .unwrap();
    assert_clean("smoke against serve", code, &report, &stderr);
    assert_eq!(report["delivery"]["completeness"], 1.0, "{report}");
    server.shutdown().await;
}

/// Start tests/node/lossy-server.js; its base URL and the child (killed on drop via stdin).
fn start_lossy_server() -> (std::process::Child, String) {
    let dir = common::ensure_node_modules();
    let mut child = Command::new("node")
        .arg(dir.join("lossy-server.js"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("node runs");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .strip_prefix("listening ")
        .expect("port line")
        .to_string();
    (child, format!("http://127.0.0.1:{port}"))
}

#[test]
fn a_listener_that_misses_messages_lowers_completeness() {
    let (mut node, url) = start_lossy_server();
    let dir = tempfile::tempdir().unwrap();
    let sessions: PathBuf = dir.path().join("sessions.txt");
    std::fs::write(
        &sessions,
        "scmarket.sid=ok-a\nscmarket.sid=deaf-b\nscmarket.sid=ok-c\n",
    )
    .unwrap();
    let file = dir.path().join("lossy.yaml");
    std::fs::write(
        &file,
        r#"
name: lossy
target: embedded
setup:
  sessions_file: sessions.txt
  rooms: ["5c0000c4-0000-4000-8000-0000000000aa"]
phases:
  - { duration: 1s, vus: 3 }
scenarios:
  - name: all
    steps:
      - connect
      - emit: { event: clientJoinRoom, data: { chat_id: "{{room}}" } }   # production: no ack
      - think: 500ms
      - post_message: { chat_id: "{{room}}", content: "hello {{nonce}}" }
      - think: 500ms
      - post_message: { chat_id: "{{room}}", content: "again {{nonce}}" }
      - think: 1s
      - disconnect
thresholds:
  - "delivery.completeness >= 100%"
"#,
    )
    .unwrap();
    // A relative scenario path: its sessions_file is found next to it, not next to the cwd.
    let relative = Path::new(dir.path().file_name().unwrap()).join("lossy.yaml");
    let (code, report, _, stderr) = load_test_in(
        dir.path().parent().unwrap(),
        &[relative.to_str().unwrap(), "--target", &url],
    );
    let _ = node.kill();
    let _ = node.wait();
    // Three sessions each post twice to a room of three. A session counts in the room from
    // the first message it sees (its join is known to be in from then), so every "again" post
    // is expected by all three: at least nine deliveries, and the deaf session gets none of
    // its later ones.
    let expected = report["delivery"]["expected"].as_u64().unwrap();
    let received = report["delivery"]["received"].as_u64().unwrap();
    assert!((9..=15).contains(&expected), "{report}\n{stderr}");
    assert!(received >= 6, "{report}");
    assert!(
        expected - received >= 3,
        "the deaf session's losses count: {report}"
    );
    assert_eq!(code, 1, "the completeness threshold fails");
}

/// An open phase of 30 days at 800 arrivals per second is two billion virtual users. Setup used
/// to render every username before logging them in, so the run died on a 48 GB allocation
/// before the first session; users now come from a pool no larger than the sessions one
/// generator can hold, so the run gets as far as the (unreachable) target and says so.
#[cfg(target_os = "linux")]
#[test]
fn a_huge_open_phase_logs_in_a_bounded_pool_of_users() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("huge.yaml");
    std::fs::write(
        &file,
        "name: huge\ntarget: http://127.0.0.1:9\nphases:\n  - { duration: 30days, arrival_rate: 800 }\nscenarios:\n  - name: a\n    steps: [connect]\n",
    )
    .unwrap();
    // 3 GB of address space: plenty for the tool, far too little for two billion usernames.
    let out = Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 3000000 && exec \"$0\" -q load-test \"$1\" --interval 5m")
        .arg(env!("CARGO_BIN_EXE_scmarket-ws"))
        .arg(&file)
        .env_remove("RUST_LOG")
        .output()
        .expect("sh runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("dev login as vu-"), "{stderr}");
    assert!(!stderr.contains("memory allocation"), "{stderr}");
}

/// Two generators run the smoke scenario against one `serve`, the second started 300 ms after
/// the first, with half-second intervals. Their intervals are cut on the wall clock, so they
/// line up, and `report merge` adds them one to one: every merged interval is the sum of the
/// two generators' intervals that start at the same instant.
#[tokio::test(flavor = "multi_thread")]
async fn two_generators_merge_interval_by_interval() {
    let server =
        common::start_dev_server_with(|c| c.limits = scmarket_ws::server::LimitsConfig::off())
            .await;
    let url = server.http_url();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.json"), dir.path().join("b.json"));
    let (pa, pb) = (a.clone(), b.clone());
    tokio::task::spawn_blocking(move || {
        let generator = |report: &Path| {
            common::binary::command()
                .args(["-q", "load-test", &scenario("smoke.yaml"), "--target", &url])
                .args(["--set", "phases.0.duration=2s", "--interval", "500ms", "-o"])
                .arg(report)
                .env_remove("RUST_LOG")
                .stdout(Stdio::null())
                .spawn()
                .expect("the binary runs")
        };
        let mut first = generator(&pa);
        std::thread::sleep(std::time::Duration::from_millis(300));
        let mut second = generator(&pb);
        first.wait().unwrap();
        second.wait().unwrap();
    })
    .await
    .unwrap();
    server.shutdown().await;
    let merged = dir.path().join("merged.json");
    let out = common::binary::command()
        .args(["report", "merge"])
        .args([&a, &b])
        .arg("-o")
        .arg(&merged)
        .output()
        .unwrap();
    assert!(merged.exists(), "{}", String::from_utf8_lossy(&out.stderr));

    let read =
        |p: &Path| -> Value { serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap() };
    let (a, b, merged) = (read(&a), read(&b), read(&merged));
    let intervals = |r: &Value| r["timeseries"]["intervals"].as_array().unwrap().clone();
    let start_ms = |i: &Value| {
        let t = time::OffsetDateTime::parse(
            i["start"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        (t.unix_timestamp_nanos() / 1_000_000) as i64
    };
    for r in [&a, &b, &merged] {
        assert_eq!(r["timeseries"]["interval_ms"], 500, "{}", r["timeseries"]);
        assert!(
            intervals(r).iter().all(|i| start_ms(i) % 500 == 0),
            "aligned"
        );
    }
    let (ia, ib, im) = (intervals(&a), intervals(&b), intervals(&merged));
    let overlap = ia
        .iter()
        .filter(|i| ib.iter().any(|j| start_ms(i) == start_ms(j)))
        .count();
    assert!(
        overlap >= 3,
        "the generators ran together: {overlap} shared intervals"
    );
    let fields = [
        "sessions_started",
        "sessions_connected",
        "sessions_failed",
        "disconnects",
        "open",
        "messages_sent",
        "messages_received",
        "delivery_expected",
        "delivery_received",
        "errors_total",
    ];
    let mut seen = 0;
    for m in &im {
        let at = start_ms(m);
        let of = |list: &[Value]| list.iter().find(|i| start_ms(i) == at).cloned();
        let (x, y) = (of(&ia), of(&ib));
        // A generator without an interval there had not started yet or had ended (with every
        // session closed): it adds nothing, open sessions included.
        let sum =
            |path: &dyn Fn(&Value) -> u64| x.as_ref().map_or(0, path) + y.as_ref().map_or(0, path);
        for field in fields {
            let want = sum(&|i: &Value| i[field].as_u64().unwrap());
            assert_eq!(m[field].as_u64().unwrap(), want, "{field} at {at}");
        }
        for latency in ["connect", "ack", "delivery"] {
            let want = sum(&|i: &Value| i["latency_ms"][latency]["count"].as_u64().unwrap());
            assert_eq!(
                m["latency_ms"][latency]["count"].as_u64().unwrap(),
                want,
                "{latency} at {at}"
            );
        }
        seen += 1;
    }
    assert_eq!(seen, im.len());
    assert!(
        im.iter()
            .map(|i| i["messages_sent"].as_u64().unwrap())
            .sum::<u64>()
            > 0
    );
}

/// Against a server that listens late and never acknowledges (the production twin with its
/// defaults: room listeners registered 5-50 ms after CONNECT, no acks), rooms reached only by
/// joining them, joined right after connecting with no think: by `emit: clientJoinRoom` and by
/// `join`. Every join lands, and every message sent while a session is known to be in its room
/// is delivered to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_land_on_a_server_that_listens_late_and_never_acknowledges() {
    let twin = common::twin::ProductionTwin::start(&[]);
    let base = twin.url();
    let dir = tempfile::tempdir().unwrap();
    // Erin and frank are members of the order's contractor, not participants of its chat: the
    // twin puts neither in its room at connect.
    let mut sessions = String::new();
    for user in ["erin", "frank"] {
        sessions.push_str(&common::dev_login(&base, user).await.session_cookie);
        sessions.push('\n');
    }
    std::fs::write(dir.path().join("sessions.txt"), sessions).unwrap();
    let file = dir.path().join("late.yaml");
    std::fs::write(
        &file,
        format!(
            r#"
name: late-listeners
target: embedded
setup:
  sessions_file: sessions.txt
  rooms: ["{chat}"]
phases:
  - {{ duration: 1s, arrival_rate: 8 }}
scenarios:
  - name: emit
    weight: 1
    steps:
      - connect
      - emit: {{ event: clientJoinRoom, data: {{ chat_id: "{{{{room}}}}" }} }}
      - loop:
          count: 10
          steps:
            - post_message: {{ chat_id: "{{{{room}}}}", content: "late {{{{nonce}}}}" }}
            - think: 100ms
      - think: 500ms
      - disconnect
  - name: join
    weight: 1
    steps:
      - connect
      - join: {{ chat_id: "{{{{room}}}}" }}
      - loop:
          count: 10
          steps:
            - post_message: {{ chat_id: "{{{{room}}}}", content: "late {{{{nonce}}}}" }}
            - think: 100ms
      - think: 500ms
      - leave: {{ chat_id: "{{{{room}}}}" }}
      - disconnect
thresholds:
  - "sessions.failed == 0"
  - "errors.total == 0"
  - "delivery.completeness >= 100%"
"#,
            chat = common::ORDER_CHAT
        ),
    )
    .unwrap();
    let path = file.display().to_string();
    let (code, report, _, stderr) =
        tokio::task::spawn_blocking(move || load_test(&[&path, "--target", &base]))
            .await
            .unwrap();
    assert_eq!(code, 0, "{report}\n{stderr}");
    let received = report["delivery"]["received"].as_u64().unwrap();
    assert_eq!(report["delivery"]["expected"], received, "{report}");
    // 8 sessions, 80 posts to one room: each session counts from its first message on, so
    // the exact number depends on timing; the old client received none.
    assert!(received >= 40, "joins landed: {report}");
}

/// `setup.users: none`: sessions without credentials against a server that needs none; and
/// without `setup`, a URL target without dev helpers gets an error that says how to give users.
#[test]
fn sessions_without_credentials_and_a_target_without_dev_login() {
    let (mut node, url) = start_lossy_server();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("none.yaml");
    let scenario = |setup: &str| {
        format!(
            r#"
name: no-credentials
target: embedded
{setup}
phases:
  - {{ duration: 1s, vus: 2 }}
scenarios:
  - name: all
    steps:
      - connect
      - emit: {{ event: clientJoinRoom, data: {{ chat_id: "5c0000c4-0000-4000-8000-0000000000aa" }} }}
      - loop:
          count: 5
          steps:
            - post_message: {{ chat_id: "5c0000c4-0000-4000-8000-0000000000aa", content: "hi {{{{nonce}}}}" }}
            - think: 100ms
      - disconnect
thresholds:
  - "sessions.failed == 0"
  - "errors.total == 0"
  - "delivery.completeness >= 100%"
"#
        )
    };
    std::fs::write(
        &file,
        scenario("setup:\n  users: none\n  rooms: [\"5c0000c4-0000-4000-8000-0000000000aa\"]"),
    )
    .unwrap();
    let path = file.display().to_string();
    let (code, report, _, stderr) = load_test(&[&path, "--target", &url]);
    assert_eq!(code, 0, "{report}\n{stderr}");
    assert!(
        report["delivery"]["received"].as_u64().unwrap() > 0,
        "{report}"
    );

    std::fs::write(&file, scenario("")).unwrap();
    let (code, _, _, stderr) = load_test(&[&path, "--target", &url]);
    let _ = node.kill();
    let _ = node.wait();
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("setup.sessions_file") && stderr.contains("setup.users: none"),
        "{stderr}"
    );
}

/// The local addresses of the established client connections to `port` on loopback, from
/// `/proc/net/tcp` (a connection's client side: its remote end is the server's port).
fn client_addresses_to(port: u16) -> std::collections::HashSet<std::net::Ipv4Addr> {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (local, remote, state) = (fields.get(1)?, fields.get(2)?, fields.get(3)?);
            let (local_ip, _) = local.split_once(':')?;
            let (_, remote_port) = remote.split_once(':')?;
            // 01: ESTABLISHED. The address is the kernel's u32 in host (little-endian) order.
            (*state == "01" && u16::from_str_radix(remote_port, 16).ok()? == port).then(|| {
                std::net::Ipv4Addr::from(u32::from_str_radix(local_ip, 16).unwrap_or(0).to_be())
            })
        })
        .collect()
}

/// `--local-ips`: every connection of the run (setup's dev logins, websockets, posts) leaves
/// from the addresses given, dealt over the virtual users, none from the system's choice;
/// against the production twin, so the server plays no part in it. A list that is not this
/// machine's, or not addresses, is a usage error before anything connects.
#[test]
fn connections_leave_from_the_local_ips_given() {
    let twin = common::twin::ProductionTwin::start(&[]);
    let base = twin.url();
    let port: u16 = base.rsplit(':').next().unwrap().parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("from.yaml");
    std::fs::write(
        &file,
        r#"
name: local-ips
target: embedded
setup:
  users: "from-{{vu}}"
  rooms: 1
phases:
  - { duration: 1s, arrival_rate: 9 }
scenarios:
  - name: hold-and-post
    steps:
      - connect
      - think: 1500ms
      - post_message: { chat_id: "{{room}}", content: "from {{nonce}}" }
      - think: 1500ms
      - disconnect
thresholds:
  - "sessions.failed == 0"
  - "errors.total == 0"
"#,
    )
    .unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = std::thread::spawn({
        let (seen, done) = (seen.clone(), done.clone());
        move || {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                seen.lock().unwrap().extend(client_addresses_to(port));
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
    });
    let path = file.display().to_string();
    let (code, report, _, stderr) = load_test(&[
        &path,
        "--target",
        &base,
        "--local-ips",
        "127.0.0.2-127.0.0.3",
        "--local-ips",
        "127.0.0.4",
    ]);
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    sampler.join().unwrap();
    assert_eq!(code, 0, "{report}\n{stderr}");
    assert_eq!(report["sessions"]["connected"], 9, "{report}");
    let seen = seen.lock().unwrap().clone();
    let expected: std::collections::HashSet<std::net::Ipv4Addr> =
        ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
    assert_eq!(seen, expected, "connections to the twin came from {seen:?}");

    for (ips, says) in [
        ("192.0.2.1", "192.0.2.1 is not an address of this machine"),
        ("127.0.0.2-127.0.0.1", "ends before it starts"),
    ] {
        let (code, report, _, stderr) = load_test(&[&path, "--target", &base, "--local-ips", ips]);
        assert_eq!(code, 2, "{ips}: {stderr}");
        assert!(stderr.contains(says), "{ips}: {stderr}");
        assert_eq!(report, Value::Null);
    }
}
