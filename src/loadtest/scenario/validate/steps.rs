//! The `scenarios:` list and the steps inside each entry, including the order of steps that
//! need an open session.

use crate::loadtest::template::{Template, Var};
use crate::loadtest::yaml::{Loc, Node, Value};
use crate::protocol;

use super::super::{Ack, Payload, Repeat, Step, Think, UserScenario};
use super::{DEFAULT_ACK_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, DEFAULT_WAIT_TIMEOUT, Validator, hint};

const USER_SCENARIO_FIELDS: &[&str] = &["name", "weight", "steps"];
const STEP_NAMES: &[&str] = &[
    "connect",
    "join",
    "leave",
    "emit",
    "wait_for",
    "post_message",
    "think",
    "loop",
    "disconnect",
    "reconnect",
];
/// Event names Socket.IO reserves for itself; emitting them is refused by every client.
const RESERVED_EVENTS: &[&str] = &[
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];

impl Validator {
    pub(super) fn user_scenarios(&mut self, node: &Node) -> Option<Vec<UserScenario>> {
        let Value::Seq(items) = &node.value else {
            self.expected(
                node,
                "scenarios",
                "a list of scenarios (name, weight, steps)",
            );
            return None;
        };
        if items.is_empty() {
            self.error(
                &node.loc,
                "`scenarios` is empty: add at least one with `steps`",
            );
            return None;
        }
        let scenarios: Vec<Option<UserScenario>> =
            items.iter().map(|n| self.user_scenario(n)).collect();
        let scenarios: Option<Vec<UserScenario>> = scenarios.into_iter().collect();
        if let Some(scenarios) = &scenarios {
            for (i, scenario) in scenarios.iter().enumerate() {
                if scenarios[..i].iter().any(|s| s.name == scenario.name) {
                    self.error(
                        &items[i].loc,
                        format!("two scenarios are named `{}`", scenario.name),
                    );
                }
            }
        }
        scenarios
    }

    pub(super) fn user_scenario(&mut self, node: &Node) -> Option<UserScenario> {
        let f = self.fields(node, "a scenario", USER_SCENARIO_FIELDS)?;
        let name = self
            .required(&f, "name", "a scenario")
            .and_then(|n| self.string(n, "name"));
        let weight = match f.get("weight") {
            None => Some(1),
            Some(w) => self.bounded_count(
                w,
                "weight",
                1,
                u64::from(super::super::limits::MAX_WEIGHT),
                "weights are relative; scale them down",
            ),
        };
        let steps = self
            .required(&f, "steps", "a scenario")
            .and_then(|s| self.steps(s, "steps"));
        if let Some(steps) = &steps
            && let Some(node) = f.get("steps")
        {
            self.check_session_order(steps, node, false);
        }
        Some(UserScenario {
            name: name?,
            weight: weight?,
            steps: steps?,
        })
    }

    pub(super) fn steps(&mut self, node: &Node, what: &str) -> Option<Vec<Step>> {
        let Value::Seq(items) = &node.value else {
            self.expected(node, what, "a list of steps");
            return None;
        };
        if items.is_empty() {
            self.error(
                &node.loc,
                format!("`{what}` is empty: add at least one step"),
            );
            return None;
        }
        let steps: Vec<Option<Step>> = items.iter().map(|s| self.step(s)).collect();
        steps.into_iter().collect()
    }

    pub(super) fn unknown_step(&mut self, loc: &Loc, name: &str) {
        self.error(
            loc,
            format!(
                "unknown step `{name}`{}; valid steps: {}",
                hint(name, STEP_NAMES),
                STEP_NAMES.join(", ")
            ),
        );
    }

    pub(super) fn step(&mut self, node: &Node) -> Option<Step> {
        let (name, name_loc, arg) = match &node.value {
            Value::Str(s) => (s.as_str(), &node.loc, None),
            Value::Map(entries) if entries.len() == 1 => {
                let (k, v) = &entries[0];
                (k.name.as_str(), &k.loc, Some(v))
            }
            Value::Map(entries) => {
                let names: Vec<&str> = entries.iter().map(|(k, _)| k.name.as_str()).collect();
                self.error(
                    &node.loc,
                    format!(
                        "a step is one key, found {} ({}): write each step as its own list item",
                        names.len(),
                        names.join(", ")
                    ),
                );
                return None;
            }
            _ => {
                self.expected(
                    node,
                    "a step",
                    "a step name or a one-key mapping such as `join: { chat_id: \"{{room}}\" }`",
                );
                return None;
            }
        };
        // A bare name (`- connect`) is the same as the step with no arguments.
        let arg = arg.filter(|a| !matches!(a.value, Value::Null));
        let no_arg = |v: &mut Validator, step: Step| -> Option<Step> {
            if let Some(a) = arg {
                v.error(&a.loc, format!("`{name}` takes no arguments"));
                return None;
            }
            Some(step)
        };
        match name {
            "connect" | "reconnect" => {
                let timeout = match arg {
                    None => Some(DEFAULT_CONNECT_TIMEOUT),
                    Some(a) => {
                        let f = self.fields(a, &format!("`{name}`"), &["timeout"])?;
                        match f.get("timeout") {
                            None => Some(DEFAULT_CONNECT_TIMEOUT),
                            Some(t) => self.duration(t, "timeout", false),
                        }
                    }
                }?;
                Some(if name == "connect" {
                    Step::Connect { timeout }
                } else {
                    Step::Reconnect { timeout }
                })
            }
            "disconnect" => no_arg(self, Step::Disconnect),
            "join" | "leave" => {
                let Some(a) = arg else {
                    self.error(
                        name_loc,
                        format!(
                            "`{name}` needs `chat_id`, e.g. {name}: {{ chat_id: \"{{{{room}}}}\" }}"
                        ),
                    );
                    return None;
                };
                let f = self.fields(a, &format!("`{name}`"), &["chat_id"])?;
                let chat_id = self
                    .required(&f, "chat_id", &format!("`{name}`"))
                    .and_then(|c| self.template(c, "chat_id", Var::ALL))?;
                Some(if name == "join" {
                    Step::Join { chat_id }
                } else {
                    Step::Leave { chat_id }
                })
            }
            "emit" => {
                let Some(a) = arg else {
                    self.error(name_loc, "`emit` needs at least `event`");
                    return None;
                };
                let f = self.fields(a, "`emit`", &["event", "data", "ack"])?;
                let event = self
                    .required(&f, "event", "`emit`")
                    .and_then(|e| self.event(e));
                let data = match f.get("data") {
                    None => Some(None),
                    Some(d) => self.payload(d, "data").map(Some),
                };
                let ack = match f.get("ack") {
                    None => Some(None),
                    Some(a) => self.ack(a).map(Some),
                };
                Some(Step::Emit {
                    event: event?,
                    data: data?,
                    ack: ack?,
                })
            }
            "wait_for" => {
                let Some(a) = arg else {
                    self.error(name_loc, "`wait_for` needs at least `event`");
                    return None;
                };
                let f = self.fields(a, "`wait_for`", &["event", "count", "match", "timeout"])?;
                let event = self
                    .required(&f, "event", "`wait_for`")
                    .and_then(|e| self.string(e, "event"));
                let count = match f.get("count") {
                    None => Some(1),
                    Some(c) => self.count(c, "count", 1),
                };
                let matching = match f.get("match") {
                    None => Some(None),
                    Some(m) => self.payload(m, "match").map(Some),
                };
                let timeout = match f.get("timeout") {
                    None => Some(DEFAULT_WAIT_TIMEOUT),
                    Some(t) => self.duration(t, "timeout", false),
                };
                Some(Step::WaitFor {
                    event: event?,
                    count: count?,
                    matching: matching?,
                    timeout: timeout?,
                })
            }
            "post_message" => {
                let Some(a) = arg else {
                    self.error(name_loc, "`post_message` needs `chat_id` and `content`");
                    return None;
                };
                let f = self.fields(a, "`post_message`", &["chat_id", "content"])?;
                let chat_id = self
                    .required(&f, "chat_id", "`post_message`")
                    .and_then(|c| self.template(c, "chat_id", Var::ALL));
                let content = self
                    .required(&f, "content", "`post_message`")
                    .and_then(|c| self.content(c));
                Some(Step::PostMessage {
                    chat_id: chat_id?,
                    content: content?,
                })
            }
            "think" => {
                let Some(a) = arg else {
                    self.error(name_loc, "`think` needs a duration, e.g. think: 1s or think: { min: 500ms, max: 2s }");
                    return None;
                };
                self.think(a).map(Step::Think)
            }
            "loop" => {
                let Some(a) = arg else {
                    self.error(name_loc, "`loop` needs `count` or `duration`, and `steps`");
                    return None;
                };
                let f = self.fields(a, "`loop`", &["count", "duration", "steps"])?;
                let repeat = match (f.get("count"), f.get("duration")) {
                    (Some(_), Some(d)) => {
                        self.error(&d.loc, "a loop takes `count` or `duration`, not both");
                        None
                    }
                    (None, None) => {
                        self.error(
                            &a.loc,
                            "a loop needs `count` (times) or `duration` (how long)",
                        );
                        None
                    }
                    (Some(c), None) => self.count(c, "count", 1).map(Repeat::Count),
                    (None, Some(d)) => self.duration(d, "duration", false).map(Repeat::Duration),
                };
                let steps = self
                    .required(&f, "steps", "`loop`")
                    .and_then(|s| self.steps(s, "loop.steps"));
                Some(Step::Loop {
                    repeat: repeat?,
                    steps: steps?,
                })
            }
            other => {
                self.unknown_step(name_loc, other);
                None
            }
        }
    }

    pub(super) fn event(&mut self, node: &Node) -> Option<String> {
        let event = self.string(node, "event")?;
        if event.is_empty() {
            self.error(&node.loc, "`event` must not be empty");
            return None;
        }
        if RESERVED_EVENTS.contains(&event.as_str()) {
            self.error(
                &node.loc,
                format!(
                    "`{event}` is reserved by Socket.IO and cannot be emitted (reserved: {})",
                    RESERVED_EVENTS.join(", ")
                ),
            );
            return None;
        }
        Some(event)
    }

    pub(super) fn content(&mut self, node: &Node) -> Option<Template> {
        let content = self.template(node, "content", Var::ALL)?;
        if let Some(lit) = content.as_literal() {
            let chars = lit.chars().count();
            if chars == 0 || chars > protocol::MAX_CONTENT_CHARS {
                self.error(
                    &node.loc,
                    format!(
                        "`content` must be 1 to {} characters, found {chars}",
                        protocol::MAX_CONTENT_CHARS
                    ),
                );
                return None;
            }
        }
        if !content.uses(Var::Nonce) {
            // Without a nonce the message cannot be matched at the receivers.
            self.error(
                &node.loc,
                "`content` must contain {{nonce}}: deliveries are matched and timed through it",
            );
            return None;
        }
        Some(content)
    }

    pub(super) fn ack(&mut self, node: &Node) -> Option<Ack> {
        // `ack: true` asks for an ack with the default timeout.
        if let Value::Bool(true) = node.value {
            return Some(Ack {
                timeout: DEFAULT_ACK_TIMEOUT,
                expect: None,
            });
        }
        let f = self.fields(node, "`ack`", &["timeout", "expect"])?;
        let timeout = match f.get("timeout") {
            None => Some(DEFAULT_ACK_TIMEOUT),
            Some(t) => self.duration(t, "ack.timeout", false),
        };
        let expect = match f.get("expect") {
            None => Some(None),
            Some(e) => self.payload(e, "ack.expect").map(Some),
        };
        Some(Ack {
            timeout: timeout?,
            expect: expect?,
        })
    }

    pub(super) fn think(&mut self, node: &Node) -> Option<Think> {
        if let Value::Map(_) = node.value {
            let f = self.fields(node, "`think`", &["min", "max"])?;
            let min = self
                .required(&f, "min", "`think`")
                .and_then(|m| self.duration(m, "min", true));
            let max = self
                .required(&f, "max", "`think`")
                .and_then(|m| self.duration(m, "max", true));
            let (min, max) = (min?, max?);
            if min > max {
                let loc = f.get("max").map_or(node.loc.clone(), |n| n.loc.clone());
                self.error(&loc, "`think.max` must not be shorter than `think.min`");
                return None;
            }
            return Some(Think::Range { min, max });
        }
        self.duration(node, "think", true).map(Think::Fixed)
    }

    pub(super) fn payload(&mut self, node: &Node, what: &str) -> Option<Payload> {
        Some(match &node.value {
            Value::Null => Payload::Null,
            Value::Bool(b) => Payload::Bool(*b),
            Value::Int(i) => Payload::Number((*i).into()),
            Value::Float(f) => match serde_json::Number::from_f64(*f) {
                Some(n) => Payload::Number(n),
                None => {
                    self.error(&node.loc, format!("`{what}`: {f} cannot be sent as JSON"));
                    return None;
                }
            },
            Value::Str(_) => Payload::Str(self.template(node, what, Var::ALL)?),
            Value::Seq(items) => {
                let items: Vec<Option<Payload>> =
                    items.iter().map(|i| self.payload(i, what)).collect();
                Payload::Array(items.into_iter().collect::<Option<Vec<_>>>()?)
            }
            Value::Map(entries) => {
                let entries: Vec<Option<(String, Payload)>> = entries
                    .iter()
                    .map(|(k, v)| self.payload(v, what).map(|p| (k.name.clone(), p)))
                    .collect();
                Payload::Object(entries.into_iter().collect::<Option<Vec<_>>>()?)
            }
        })
    }

    /// Steps that use the socket need an open session before them; report the first misuse.
    /// Returns whether the session is open after `steps`.
    pub(super) fn check_session_order(
        &mut self,
        steps: &[Step],
        node: &Node,
        mut open: bool,
    ) -> bool {
        let Value::Seq(items) = &node.value else {
            return open;
        };
        for (step, item) in steps.iter().zip(items) {
            let needs_open =
                |name: &str| format!("`{name}` needs an open session: add `connect` before it");
            match step {
                Step::Connect { .. } if open => {
                    self.error(&item.loc, "`connect` on a session that is already open: use `reconnect`, or `disconnect` first");
                }
                Step::Connect { .. } => open = true,
                Step::Disconnect if !open => self.error(&item.loc, needs_open("disconnect")),
                Step::Disconnect => open = false,
                Step::Reconnect { .. } => open = true,
                Step::Join { .. } if !open => self.error(&item.loc, needs_open("join")),
                Step::Leave { .. } if !open => self.error(&item.loc, needs_open("leave")),
                Step::Emit { .. } if !open => self.error(&item.loc, needs_open("emit")),
                Step::WaitFor { .. } if !open => self.error(&item.loc, needs_open("wait_for")),
                Step::Loop { steps, repeat } => {
                    if let Some(body) = item.get("loop").and_then(|l| l.get("steps")) {
                        let after = self.check_session_order(steps, body, open);
                        // One pass over the body checks the first iteration; a body that flips
                        // the session state would start every later iteration in the other one.
                        if after != open && *repeat != Repeat::Count(1) {
                            let state = |o: bool| if o { "open" } else { "closed" };
                            self.error(
                                &item.loc,
                                format!(
                                    "this loop starts with the session {} and ends with it {}, so its second iteration would start wrong: make the loop's steps end as they began",
                                    state(open),
                                    state(after)
                                ),
                            );
                        }
                        open = after;
                    }
                }
                _ => {}
            }
        }
        open
    }
}

pub(super) fn uses_room(step: &Step) -> bool {
    fn payload(p: &Payload) -> bool {
        match p {
            Payload::Str(t) => t.uses(Var::Room),
            Payload::Array(items) => items.iter().any(payload),
            Payload::Object(entries) => entries.iter().any(|(_, v)| payload(v)),
            _ => false,
        }
    }
    match step {
        Step::Join { chat_id } | Step::Leave { chat_id } => chat_id.uses(Var::Room),
        Step::PostMessage { chat_id, content } => {
            chat_id.uses(Var::Room) || content.uses(Var::Room)
        }
        Step::Emit { data, ack, .. } => {
            data.as_ref().is_some_and(payload)
                || ack
                    .as_ref()
                    .and_then(|a| a.expect.as_ref())
                    .is_some_and(payload)
        }
        Step::WaitFor { matching, .. } => matching.as_ref().is_some_and(payload),
        Step::Loop { steps, .. } => steps.iter().any(uses_room),
        _ => false,
    }
}
