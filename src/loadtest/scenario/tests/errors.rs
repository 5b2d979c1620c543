//! Scenarios that are refused: every message names line and column and says what was expected.

use super::*;

#[test]
fn every_error_names_line_column_and_what_was_expected() {
    let step = |steps: &str| errors(&with_steps(steps));
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            step("      - connect\n      - conect\n"),
            "9:9: unknown step `conect` (did you mean `connect`?); valid steps: connect, join, leave, emit, wait_for, post_message, think, loop, disconnect, reconnect",
        ),
        (
            step("      - connect\n      - join: { chat_id: \"{{room}}\", room: 1 }\n"),
            "9:38: unknown field `room` in `join`; valid fields: chat_id",
        ),
        (
            step("      - connect\n      - join\n"),
            "9:9: `join` needs `chat_id`, e.g. join: { chat_id: \"{{room}}\" }",
        ),
        (
            step("      - connect\n      - join: {}\n"),
            "9:15: `join` needs `chat_id`",
        ),
        (
            step("      - connect\n      - join: { chat_id: \"{{rom}}\" }\n"),
            "9:26: in `chat_id`: unknown template variable `{{rom}}`; available here: vu, iteration, room, nonce, uuid, now",
        ),
        (
            step("      - connect\n      - think: 10\n"),
            "9:16: `think` needs a unit: write a duration such as 250ms, 10s or 5m",
        ),
        (
            step("      - connect\n      - think: 1 parsec\n"),
            "9:16: `think`: `1 parsec` is not a duration (unknown time unit \"parsec\", supported units: ns, us/µs, ms, sec, min, hours, days, weeks, months, years (and few variations): write a duration such as 250ms, 10s or 5m)",
        ),
        (
            step("      - connect\n      - think: { min: 2s, max: 1s }\n"),
            "9:32: `think.max` must not be shorter than `think.min`",
        ),
        (
            step(
                "      - connect\n      - loop: { count: 2, duration: 5s, steps: [disconnect] }\n",
            ),
            "9:37: a loop takes `count` or `duration`, not both",
        ),
        (
            step("      - connect\n      - loop: { steps: [disconnect] }\n"),
            "9:15: a loop needs `count` (times) or `duration` (how long)",
        ),
        (
            step("      - connect\n      - loop: { count: 0, steps: [{ think: 1s }] }\n"),
            "9:24: `count` must be a whole number from 1 up, found 0",
        ),
        (
            step("      - connect\n      - emit: { data: 1 }\n"),
            "9:15: `emit` needs `event`",
        ),
        (
            step("      - connect\n      - emit: { event: disconnect }\n"),
            "9:24: `disconnect` is reserved by Socket.IO and cannot be emitted (reserved: connect, connect_error, disconnect, disconnecting, newListener, removeListener)",
        ),
        (
            step("      - connect\n      - emit: { event: e, ack: { timeout: 0s } }\n"),
            "9:43: `ack.timeout` must be longer than 0",
        ),
        (
            step("      - connect\n      - wait_for: { event: e, count: -1 }\n"),
            "9:38: `count` must be a whole number from 1 up, found -1",
        ),
        (
            step("      - post_message: { chat_id: \"{{room}}\", content: \"hi\" }\n"),
            "8:55: `content` must contain {{nonce}}: deliveries are matched and timed through it",
        ),
        (
            step("      - post_message: { chat_id: \"{{room}}\", content: \"\" }\n"),
            "8:55: `content` must be 1 to 1000 characters, found 0",
        ),
        (
            step("      - join: { chat_id: x }\n"),
            "8:9: `join` needs an open session: add `connect` before it",
        ),
        (
            step("      - connect\n      - disconnect\n      - emit: { event: e }\n"),
            "10:9: `emit` needs an open session: add `connect` before it",
        ),
        (
            step("      - connect\n      - loop: { count: 2, steps: [disconnect] }\n"),
            "9:9: this loop starts with the session open and ends with it closed, so its second iteration would start wrong: make the loop's steps end as they began",
        ),
        (
            step("      - connect\n      - connect\n"),
            "9:9: `connect` on a session that is already open: use `reconnect`, or `disconnect` first",
        ),
        (
            step("      - connect\n      - { join: null, leave: null }\n"),
            "9:9: a step is one key, found 2 (join, leave): write each step as its own list item",
        ),
        (
            step("      - connect\n      - disconnect: now\n"),
            "9:21: `disconnect` takes no arguments",
        ),
        (
            step("      - 42\n"),
            "8:9: `a step` must be a step name or a one-key mapping such as `join: { chat_id: \"{{room}}\" }`, found an integer",
        ),
        (
            step("      []\n"),
            "8:7: `steps` is empty: add at least one step",
        ),
    ];
    let wrong: Vec<String> = cases
        .into_iter()
        .filter(|(got, want)| *got != vec![(*want).to_owned()])
        .map(|(got, want)| format!("got  {got:?}\nwant {want:?}"))
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn document_level_errors() {
    let flows = "scenarios: [{ name: a, steps: [connect] }]\n";
    let phases = "phases: [{ duration: 1s, vus: 1 }]\n";
    let cases: Vec<(String, Vec<&str>)> = vec![
        (
            format!("name: x\nphases: []\n{flows}"),
            vec!["2:9: `phases` is empty: add at least one, e.g. { duration: 30s, vus: 10 }"],
        ),
        (
            format!("name: x\n{flows}"),
            vec!["1:1: the scenario needs `phases`"],
        ),
        (
            format!("{phases}{flows}"),
            vec!["1:1: the scenario needs `name`"],
        ),
        (
            format!("name: x\n{phases}scenarios: []\n"),
            vec!["3:12: `scenarios` is empty: add at least one with `steps`"],
        ),
        (
            format!("name: x\nphase: []\n{phases}{flows}"),
            vec![
                "2:1: unknown field `phase` in the scenario (did you mean `phases`?); valid fields: name, target, path, setup, phases, scenarios, thresholds, grace_period",
            ],
        ),
        (
            format!("name: x\nphases: [{{ duration: 1s }}]\n{flows}"),
            vec![
                "2:10: a phase needs `arrival_rate` (open model: new sessions per second) or `vus` (closed model: sessions kept busy)",
            ],
        ),
        (
            format!("name: x\nphases: [{{ vus: 2 }}]\n{flows}"),
            vec!["2:10: a phase needs `duration`"],
        ),
        (
            format!("name: x\nphases: [{{ duration: 0s, vus: 2 }}]\n{flows}"),
            vec!["2:22: `duration` must be longer than 0"],
        ),
        (
            format!("name: x\nphases: [{{ duration: 1s, vus: 2, arrival_rate: 1 }}]\n{flows}"),
            vec![
                "2:31: a phase is open (`arrival_rate`, new sessions per second) or closed (`vus`, sessions kept busy), not both",
            ],
        ),
        (
            format!("name: x\nphases: [{{ duration: 1s, vus: 2, ramp_to: 5 }}]\n{flows}"),
            vec![
                "2:43: `ramp_to` belongs to an open phase (`arrival_rate`), not to one with `vus`",
            ],
        ),
        (
            format!("name: x\nphases: [{{ duration: 1s, arrival_rate: 0 }}]\n{flows}"),
            vec!["2:40: this phase starts no sessions: `arrival_rate` and `ramp_to` are both 0"],
        ),
        (
            format!("name: x\nphases: [{{ duration: 1s, arrival_rate: -3 }}]\n{flows}"),
            vec!["2:40: `arrival_rate` must be 0 or more sessions per second, found -3"],
        ),
        (
            format!("name: x\nphases: [{{ duration: 1s, vus: 1.5 }}]\n{flows}"),
            vec!["2:31: `vus` must be a whole number from 1 up, found a number"],
        ),
        (
            format!("name: x\n{phases}scenarios: [{{ name: a, weight: 0, steps: [connect] }}]\n"),
            vec!["3:32: `weight` must be a whole number from 1 up, found 0"],
        ),
        (
            format!(
                "name: x\n{phases}scenarios: [{{ name: a, steps: [connect] }}, {{ name: a, steps: [connect] }}]\n"
            ),
            vec!["3:44: two scenarios are named `a`"],
        ),
        (
            format!("name: x\nsetup: {{ rooms: 0 }}\n{phases}{flows}"),
            vec!["2:17: `setup.rooms` must be a whole number from 1 up, found 0"],
        ),
        (
            format!("name: x\nsetup: {{ rooms: [] }}\n{phases}{flows}"),
            vec!["2:17: `setup.rooms` is an empty list: give at least one chat id"],
        ),
        (
            format!("name: x\nsetup: {{ rooms: [nope] }}\n{phases}{flows}"),
            vec![
                "2:18: `nope` is not a chat id: chat_id is not a UUID (expected xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)",
            ],
        ),
        (
            format!("name: x\nsetup: {{ users: \"u{{{{room}}}}\" }}\n{phases}{flows}"),
            vec![
                "2:17: in `setup.users`: template variable `{{room}}` is not available here; available here: vu, uuid",
            ],
        ),
        (
            format!("name: x\nsetup: {{ users: a, sessions_file: b }}\n{phases}{flows}"),
            vec!["2:35: `setup` takes `users` (dev login) or `sessions_file`, not both"],
        ),
        (
            format!("name: x\nsetup: {{ user: a }}\n{phases}{flows}"),
            vec![
                "2:10: unknown field `user` in `setup` (did you mean `users`?); valid fields: users, sessions_file, rooms, restart_server",
            ],
        ),
        (
            format!("name: x\ntarget: localhost:7000\n{phases}{flows}"),
            vec![
                "2:9: `target` must be `embedded` or an http(s)/ws(s) URL with a host, found scheme `localhost`",
            ],
        ),
        (
            format!("name: x\npath: ws\n{phases}{flows}"),
            vec!["2:7: `path` must start with `/`, e.g. /ws; found `ws`"],
        ),
        (
            format!(
                "name: x\n{phases}scenarios: [{{ name: a, steps: [connect, {{ join: {{ chat_id: \"{{{{room}}}}\" }} }}] }}]\n"
            ),
            vec![
                "3:12: scenario `a` uses {{room}} but `setup.rooms` is not set: give a room count (dev server) or a list of chat ids",
            ],
        ),
        (
            format!("name: x\n{phases}{flows}thresholds: [\"connect.p99 < 500\"]\n"),
            vec![
                "4:14: threshold \"connect.p99 < 500\": `connect.p99` is a time: write the limit with a unit, us, ms or s (e.g. 500ms), not `500`",
            ],
        ),
        (
            format!("name: x\n{phases}{flows}thresholds: [\"conect.p99 < 5ms\"]\n"),
            vec![
                "4:14: threshold \"conect.p99 < 5ms\": unknown metric `conect.p99`: valid metrics are <latency>.<stat> with latency one of connect, engine_open, ack, wait_for, delivery, http, schedule_lag and stat one of count, min, mean, p50, p90, p95, p99, p999, max; or one of delivery.completeness, delivery.expected, delivery.received, sessions.started, sessions.connected, sessions.failed, sessions.peak_open, messages.sent, messages.received, reconnects, disconnects, errors.total",
            ],
        ),
        (
            "- a\n".to_owned(),
            vec!["1:1: the scenario must be a mapping, found a list"],
        ),
        (
            String::new(),
            vec![
                "1:1: the file is empty: a scenario needs at least `name`, `phases` and `scenarios`",
            ],
        ),
        (
            "name: x\nphases: [a, b\n".to_owned(),
            vec!["2:9: not valid YAML: unclosed bracket '['"],
        ),
    ];
    let wrong: Vec<String> = cases
        .into_iter()
        .filter(|(src, want)| errors(src) != *want)
        .map(|(src, want)| format!("in {src:?}\ngot  {:?}\nwant {want:?}", errors(&src)))
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn all_problems_are_reported_at_once() {
    let src = "name: x\nsetup: { rooms: 0 }\nphases: [{ duration: 1, vus: 0 }]\nscenarios: [{ name: a, weight: 0, steps: [conect] }]\n";
    assert_eq!(errors(src).len(), 5, "{:?}", errors(src));
}
