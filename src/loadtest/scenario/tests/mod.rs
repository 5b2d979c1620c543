//! Scenarios that validate, with what they type to; the refused ones are in `errors`.

mod errors;

use std::path::Path;
use std::time::Duration;

use crate::loadtest::template::Vars;
use crate::loadtest::yaml::Loc;

use super::validate::{DEFAULT_ACK_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, DEFAULT_WAIT_TIMEOUT};
use super::*;

/// The example of README.md's "Scenario format", without its comments.
const README_EXAMPLE: &str = r#"name: chat-fanout
target: embedded
path: /ws
setup:
  users: "vu-{{vu}}"
  rooms: 10
phases:
  - { duration: 10s, arrival_rate: 50, ramp_to: 200 }
  - { duration: 30s, vus: 500 }
scenarios:
  - name: listener
    weight: 9
    steps:
      - connect
      - join: { chat_id: "{{room}}" }
      - wait_for: { event: serverMessage, count: 10, timeout: 30s }
  - name: sender
    weight: 1
    steps:
      - connect
      - loop:
          count: 10
          steps:
            - post_message: { chat_id: "{{room}}", content: "load {{nonce}}" }
            - think: 1s
thresholds:
  - "connect.p99 < 500ms"
  - "delivery.p99 < 250ms"
  - "delivery.completeness >= 99.9%"
  - "sessions.failed == 0"
grace_period: 30s
"#;

fn ok(src: &str) -> Scenario {
    match parse(src, "s.yaml", &Overrides::default()) {
        Ok(s) => s,
        Err(d) => panic!("{d}"),
    }
}

/// `line:column: message` of every problem in `src`.
fn errors(src: &str) -> Vec<String> {
    errors_with(src, &Overrides::default())
}

fn errors_with(src: &str, overrides: &Overrides) -> Vec<String> {
    match parse(src, "s.yaml", overrides) {
        Ok(_) => panic!("expected errors in:\n{src}"),
        Err(d) => d
            .items
            .iter()
            .map(|i| match &i.loc {
                Loc::File { line, column } => format!("{line}:{column}: {}", i.message),
                Loc::Arg(arg) => format!("{arg}: {}", i.message),
            })
            .collect(),
    }
}

/// A valid scenario around `steps` (indented as list items of one user scenario).
fn with_steps(steps: &str) -> String {
    format!(
        "name: t\nsetup: {{ rooms: 2 }}\nphases:\n  - {{ duration: 1s, vus: 1 }}\nscenarios:\n  - name: a\n    steps:\n{steps}"
    )
}

#[test]
fn the_readme_example_parses() {
    let s = ok(README_EXAMPLE);
    assert_eq!(s.name, "chat-fanout");
    assert_eq!(s.target, Target::Embedded);
    assert_eq!(s.setup.rooms, Some(Rooms::Count(10)));
    assert_eq!(
        s.phases,
        vec![
            Phase::Open {
                duration: Duration::from_secs(10),
                arrival_rate: 50.0,
                ramp_to: Some(200.0)
            },
            Phase::Closed {
                duration: Duration::from_secs(30),
                vus: 500
            }
        ]
    );
    assert_eq!(s.scenarios.len(), 2);
    assert_eq!(s.scenarios[0].weight, 9);
    assert!(matches!(
        &s.scenarios[1].steps[1],
        Step::Loop { repeat: Repeat::Count(10), steps } if steps.len() == 2
    ));
    assert_eq!(s.thresholds.len(), 4);
    assert_eq!(s.grace_period, Duration::from_secs(30));
    let plan = s.plan();
    assert!(plan.contains("about 1250 new sessions"), "{plan}");
    assert!(
        plan.contains("listener         weight   9 ( 90.0%)"),
        "{plan}"
    );
    assert!(plan.contains("at least 500 from closed phases"), "{plan}");
}

#[test]
fn the_grace_period_is_30s_unless_given() {
    let base =
        "name: g\nphases: [{ duration: 1s, vus: 1 }]\nscenarios: [{ name: a, steps: [connect] }]\n";
    assert_eq!(ok(base).grace_period, DEFAULT_GRACE_PERIOD);
    let longer = ok(&format!("{base}grace_period: 4m\n"));
    assert_eq!(longer.grace_period, Duration::from_secs(240));
    assert!(
        longer.plan().contains("grace     4m after the last phase"),
        "{}",
        longer.plan()
    );
    // None at all: users still running when the last phase ends are stopped at once.
    assert_eq!(
        ok(&format!("{base}grace_period: 0s\n")).grace_period,
        Duration::ZERO
    );
    assert_eq!(
        errors(&format!("{base}grace_period: 90\n")),
        vec!["4:15: `grace_period` needs a unit: write a duration such as 250ms, 10s or 5m"]
    );
}

#[test]
fn payload_matching_is_a_subset_match() {
    let s = ok(r#"name: m
setup: { rooms: 1 }
phases: [{ duration: 1s, vus: 1 }]
scenarios:
  - name: a
    steps:
      - connect
      - wait_for: { event: serverMessage, match: { chat_id: "{{room}}", author: null } }
"#);
    let Step::WaitFor {
        matching: Some(p),
        count: 1,
        ..
    } = &s.scenarios[0].steps[1]
    else {
        panic!("wait_for with match")
    };
    let vars = Vars {
        room: "r1",
        ..Vars::default()
    };
    let yes = serde_json::json!({"chat_id": "r1", "author": null, "content": "x"});
    let no = serde_json::json!({"chat_id": "r2", "author": null});
    let missing = serde_json::json!({"chat_id": "r1"});
    assert!(p.matches(&vars, &yes));
    assert!(!p.matches(&vars, &no));
    assert!(!p.matches(&vars, &missing));
}

#[test]
fn every_step_kind_parses() {
    let s = ok(&with_steps(
        r#"      - connect
      - connect: { timeout: 2s }
"#,
    )
    .replace(
        "      - connect: { timeout: 2s }\n",
        "      - disconnect\n      - connect: { timeout: 2s }\n",
    ));
    assert!(
        matches!(s.scenarios[0].steps[2], Step::Connect { timeout } if timeout == Duration::from_secs(2))
    );

    let s = ok(&with_steps(
        r#"      - connect
      - join: { chat_id: "{{room}}" }
      - leave: { chat_id: "{{room}}" }
      - emit: { event: echo, data: { n: 1, text: "vu {{vu}}", list: [1, true, null, 2.5] } }
      - emit: { event: echo, ack: { timeout: 2s, expect: { ok: true } } }
      - emit: { event: ping, ack: true }
      - wait_for: { event: serverMessage, count: 3, match: { chat_id: "{{room}}" }, timeout: 5s }
      - wait_for: { event: serverMessage }
      - post_message: { chat_id: "{{room}}", content: "hi {{nonce}} at {{now}} {{uuid}} #{{iteration}}" }
      - think: 250ms
      - think: { min: 0ms, max: 2s }
      - loop:
          count: 3
          steps:
            - think: 1s
      - loop: { duration: 1m, steps: [ { think: 1s } ] }
      - reconnect
      - reconnect: { timeout: 3s }
      - disconnect
"#,
    ));
    let steps = &s.scenarios[0].steps;
    assert_eq!(steps.len(), 16);
    assert!(matches!(&steps[1], Step::Join { chat_id } if chat_id.to_string() == "{{room}}"));
    assert!(matches!(&steps[2], Step::Leave { .. }));
    let Step::Emit {
        event,
        data: Some(data),
        ack: None,
    } = &steps[3]
    else {
        panic!("emit with data: {:?}", steps[3])
    };
    assert_eq!(event, "echo");
    let vars = Vars {
        vu: 7,
        ..Vars::default()
    };
    assert_eq!(
        data.render(&vars),
        serde_json::json!({"n": 1, "text": "vu 7", "list": [1, true, null, 2.5]})
    );
    let Step::Emit { ack: Some(ack), .. } = &steps[4] else {
        panic!("emit with ack")
    };
    assert_eq!(ack.timeout, Duration::from_secs(2));
    assert!(
        ack.expect
            .as_ref()
            .is_some_and(|e| e.matches(&vars, &serde_json::json!({"ok": true, "x": 1})))
    );
    assert!(
        matches!(&steps[5], Step::Emit { ack: Some(Ack { timeout, expect: None }), .. } if *timeout == DEFAULT_ACK_TIMEOUT)
    );
    assert!(
        matches!(&steps[6], Step::WaitFor { count: 3, matching: Some(_), timeout, .. } if *timeout == Duration::from_secs(5))
    );
    assert!(
        matches!(&steps[7], Step::WaitFor { count: 1, matching: None, timeout, .. } if *timeout == DEFAULT_WAIT_TIMEOUT)
    );
    assert!(matches!(&steps[8], Step::PostMessage { .. }));
    assert_eq!(
        steps[9].clone_think(),
        Some(Think::Fixed(Duration::from_millis(250)))
    );
    assert_eq!(
        steps[10].clone_think(),
        Some(Think::Range {
            min: Duration::ZERO,
            max: Duration::from_secs(2)
        })
    );
    assert!(
        matches!(&steps[11], Step::Loop { repeat: Repeat::Count(3), steps } if steps.len() == 1)
    );
    assert!(
        matches!(&steps[12], Step::Loop { repeat: Repeat::Duration(d), .. } if *d == Duration::from_secs(60))
    );
    assert!(
        matches!(&steps[13], Step::Reconnect { timeout } if *timeout == DEFAULT_CONNECT_TIMEOUT)
    );
    assert!(
        matches!(&steps[14], Step::Reconnect { timeout } if *timeout == Duration::from_secs(3))
    );
    assert!(matches!(&steps[15], Step::Disconnect));
}

#[test]
fn setup_variants_parse() {
    let base = "phases: [{ duration: 1s, vus: 1 }]\nscenarios: [{ name: a, steps: [connect] }]\n";
    let s = ok(&format!("name: n\n{base}"));
    assert!(matches!(&s.setup.users, Users::Template(t) if t.to_string() == "vu-{{vu}}"));
    assert_eq!(
        (
            s.setup.rooms.clone(),
            s.target.clone(),
            s.engine_path.as_str()
        ),
        (None, Target::Embedded, "/ws")
    );
    let s = ok(&format!(
        "name: n\ntarget: http://127.0.0.1:7000\npath: /socket\nsetup:\n  sessions_file: cookies.txt\n  rooms: [\"0B6C5A1E-0000-4000-8000-000000000001\", 0b6c5a1e-0000-4000-8000-000000000002]\n{base}"
    ));
    assert!(matches!(&s.setup.users, Users::SessionsFile(p) if p == Path::new("cookies.txt")));
    assert!(matches!(&s.setup.rooms, Some(Rooms::Ids(ids)) if ids.len() == 2));
    assert!(
        matches!(&s.target, Target::Urls(u) if u.len() == 1 && u[0].as_str() == "http://127.0.0.1:7000/")
    );
    assert_eq!(s.engine_path, "/socket");
}

#[test]
fn x_keys_hold_anchors_for_reuse() {
    let s = ok(
        "x-phase: &p { duration: 2s, vus: 3 }\nname: a\nphases: [*p, { <<: *p, vus: 5 }]\nscenarios: [{ name: a, steps: [connect] }]\n",
    );
    assert_eq!(
        s.phases[1],
        Phase::Closed {
            duration: Duration::from_secs(2),
            vus: 5
        }
    );
}

#[test]
fn set_and_target_override_before_validation() {
    let over = Overrides {
        sets: vec![
            "phases.1.vus=10".into(),
            "name=nightly".into(),
            "setup.rooms=3".into(),
        ],
        targets: vec!["http://127.0.0.1:7000".into()],
        generators: 1,
    };
    let s = parse(README_EXAMPLE, "s.yaml", &over).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(s.name, "nightly");
    assert_eq!(
        s.phases[1],
        Phase::Closed {
            duration: Duration::from_secs(30),
            vus: 10
        }
    );
    assert_eq!(s.setup.rooms, Some(Rooms::Count(3)));
    assert!(matches!(s.target, Target::Urls(_)));

    // An override is validated like the file, and errors name the argument.
    let bad = |sets: &[&str]| {
        errors_with(
            README_EXAMPLE,
            &Overrides {
                sets: sets.iter().map(|s| (*s).to_owned()).collect(),
                targets: vec![],
                generators: 1,
            },
        )
    };
    assert_eq!(
        bad(&["phases.1.vus=0"]),
        vec!["--set phases.1.vus=0: `vus` must be a whole number from 1 up, found 0"]
    );
    assert_eq!(
        bad(&["phases.5.vus=1"]),
        vec!["--set phases.5.vus=1: `phases` has 2 item(s), so index 5 does not exist"]
    );
    assert_eq!(
        bad(&["vus"]),
        vec!["--set vus: write --set key=value, e.g. --set phases.0.vus=10"]
    );
    assert_eq!(
        bad(&["phases.x=1"]),
        vec!["--set phases.x=1: `phases` is a list: index it with a number (0 to 1), not `x`"]
    );
    assert_eq!(
        bad(&["name.x=1"]),
        vec!["--set name.x=1: `name` is a string, so it has no `x` inside"]
    );
    assert_eq!(
        bad(&["setup.bogus.x=1"]),
        vec!["--set setup.bogus.x=1: `setup` has no key `bogus` (it has: users, rooms)"]
    );
    assert_eq!(
        bad(&["phases.0.vus=[1"]),
        vec!["--set phases.0.vus=[1: the value is not valid YAML: unclosed bracket '['"]
    );
    let e = errors_with(
        README_EXAMPLE,
        &Overrides {
            sets: vec![],
            targets: vec!["nope".into()],
            generators: 1,
        },
    );
    assert_eq!(
        e,
        vec![
            "--target nope: `target` must be `embedded` or a URL such as http://127.0.0.1:7000 (relative URL without a base: `nope`)"
        ]
    );
}
