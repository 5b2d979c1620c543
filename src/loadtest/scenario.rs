//! The YAML scenario: its typed model, and validation that runs before anything connects.
//!
//! The file is read into a located tree (`yaml.rs`), `--set` and `--target` edit that tree, and
//! this module types it by hand. Typing by hand rather than with derived serde lets every error
//! say where it is (file, line, column), what was expected (the valid fields, the valid steps,
//! the duration format) and lets validation carry on to report every problem in one pass.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::duration::parse as parse_duration;
use crate::protocol::{self, ChatId};

use super::template::{Template, Var, Vars};
use super::thresholds::Threshold;
use super::yaml::{self, Diagnostic, Diagnostics, Key, Loc, Node, Value};

/// A validated scenario, ready for the runner.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub target: Target,
    /// Engine.IO path on the target.
    pub path: String,
    pub setup: Setup,
    /// Run one after another.
    pub phases: Vec<Phase>,
    /// The `scenarios:` list: what a virtual user does, picked by weight.
    pub flows: Vec<Flow>,
    pub thresholds: Vec<Threshold>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// Start `serve --dev` in-process on `sqlite::memory:`.
    Embedded,
    Url(reqwest::Url),
}

#[derive(Debug, Clone)]
pub struct Setup {
    pub users: Users,
    pub rooms: Option<Rooms>,
    /// Stop the embedded server mid-run and start it again, to see sessions come back.
    pub restart_server: Option<RestartServer>,
}

/// `setup.restart_server: { at: 5s, down_for: 1s }` (embedded target only).
#[derive(Debug, Clone, PartialEq)]
pub struct RestartServer {
    /// From the start of the first phase.
    pub at: Duration,
    /// How long the server stays down before it listens again on the same port.
    pub down_for: Duration,
}

#[derive(Debug, Clone)]
pub enum Users {
    /// Dev login (`serve --dev`) with a username rendered per virtual user.
    Template(Template),
    /// One cookie or JWT per line, resolved relative to the scenario file.
    SessionsFile(PathBuf),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Rooms {
    /// Dev server: create this many chats; virtual user `vu` joins room `vu mod count`.
    Count(u32),
    /// Existing chats on a real server; virtual user `vu` uses `ids[vu mod len]`.
    Ids(Vec<ChatId>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    /// Open model: new sessions arrive at a rate (per second), ramping linearly to `ramp_to`.
    Open {
        duration: Duration,
        arrival_rate: f64,
        ramp_to: Option<f64>,
    },
    /// Closed model: keep `vus` virtual users busy; each starts again when it finishes.
    Closed { duration: Duration, vus: u32 },
}

impl Phase {
    pub fn duration(&self) -> Duration {
        match self {
            Phase::Open { duration, .. } | Phase::Closed { duration, .. } => *duration,
        }
    }

    /// Sessions an open phase starts: the area under the (linear) rate curve.
    pub fn arrivals(&self) -> Option<f64> {
        match self {
            Phase::Open {
                duration,
                arrival_rate,
                ramp_to,
            } => Some(
                (arrival_rate + ramp_to.unwrap_or(*arrival_rate)) / 2.0 * duration.as_secs_f64(),
            ),
            Phase::Closed { .. } => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Flow {
    pub name: String,
    pub weight: u32,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone)]
pub enum Step {
    Connect {
        timeout: Duration,
    },
    Join {
        chat_id: Template,
    },
    Leave {
        chat_id: Template,
    },
    Emit {
        event: String,
        data: Option<Payload>,
        ack: Option<Ack>,
    },
    WaitFor {
        event: String,
        count: u32,
        matching: Option<Payload>,
        timeout: Duration,
    },
    PostMessage {
        chat_id: Template,
        content: Template,
    },
    Think(Think),
    Loop {
        repeat: Repeat,
        steps: Vec<Step>,
    },
    Disconnect,
    Reconnect {
        timeout: Duration,
    },
}

#[derive(Debug, Clone)]
pub struct Ack {
    pub timeout: Duration,
    /// The ack's first argument must contain this (see [`Payload::matches`]).
    pub expect: Option<Payload>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Think {
    Fixed(Duration),
    Range { min: Duration, max: Duration },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Repeat {
    Count(u32),
    Duration(Duration),
}

/// A JSON value whose strings are templates: `emit` data, `ack.expect`, `wait_for.match`.
#[derive(Debug, Clone)]
pub enum Payload {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    Str(Template),
    Array(Vec<Payload>),
    Object(Vec<(String, Payload)>),
}

impl Payload {
    pub fn render(&self, vars: &Vars<'_>) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Payload::Null => J::Null,
            Payload::Bool(b) => J::Bool(*b),
            Payload::Number(n) => J::Number(n.clone()),
            Payload::Str(t) => J::String(t.render(vars)),
            Payload::Array(items) => J::Array(items.iter().map(|p| p.render(vars)).collect()),
            Payload::Object(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.clone(), v.render(vars)))
                    .collect(),
            ),
        }
    }

    /// Whether `actual` contains this pattern: objects match when every listed key matches
    /// (extra keys in `actual` are fine), arrays element by element, scalars by equality.
    pub fn matches(&self, vars: &Vars<'_>, actual: &serde_json::Value) -> bool {
        use serde_json::Value as J;
        match (self, actual) {
            (Payload::Null, J::Null) => true,
            (Payload::Bool(a), J::Bool(b)) => a == b,
            (Payload::Number(a), J::Number(b)) => a.as_f64() == b.as_f64(),
            (Payload::Str(t), J::String(s)) => match t.as_literal() {
                Some(lit) => lit == s,
                None => t.render(vars) == *s,
            },
            (Payload::Array(items), J::Array(values)) => {
                items.len() == values.len()
                    && items.iter().zip(values).all(|(p, v)| p.matches(vars, v))
            }
            (Payload::Object(entries), J::Object(map)) => entries
                .iter()
                .all(|(k, p)| map.get(k).is_some_and(|v| p.matches(vars, v))),
            _ => false,
        }
    }
}

/// Command-line changes applied to the document before it is typed.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `key=value` with a dotted key, e.g. `phases.0.vus=10`.
    pub sets: Vec<String>,
    pub target: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: cannot read the scenario: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(Diagnostics),
}

/// Read, override and validate a scenario file.
pub fn load(path: &Path, overrides: &Overrides) -> Result<Scenario, LoadError> {
    let name = path.display().to_string();
    let source = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: name.clone(),
        source,
    })?;
    let mut scenario = parse(&source, &name, overrides).map_err(LoadError::Invalid)?;
    // A relative sessions file is relative to the scenario, not to wherever the tool runs.
    if let Users::SessionsFile(file) = &mut scenario.setup.users
        && file.is_relative()
        && let Some(dir) = path.parent()
    {
        *file = dir.join(&*file);
    }
    Ok(scenario)
}

/// Validate scenario text; `file` names it in errors.
pub fn parse(source: &str, file: &str, overrides: &Overrides) -> Result<Scenario, Diagnostics> {
    let fail = |items: Vec<Diagnostic>| Diagnostics {
        file: file.to_owned(),
        source: source.to_owned(),
        items,
    };
    let mut root = yaml::parse(source).map_err(|d| fail(vec![d]))?;
    let mut errors = Vec::new();
    for arg in &overrides.sets {
        let shown = format!("--set {arg}");
        let result = match arg.split_once('=') {
            None => Err("write --set key=value, e.g. --set phases.0.vus=10".to_owned()),
            Some((key, value)) => yaml::parse_override(value, &shown)
                .and_then(|node| yaml::set_path(&mut root, key.trim(), node)),
        };
        if let Err(message) = result {
            errors.push(Diagnostic {
                loc: Loc::Arg(shown),
                message,
            });
        }
    }
    if let Some(url) = &overrides.target {
        let node = Node {
            loc: Loc::Arg(format!("--target {url}")),
            value: Value::Str(url.clone()),
        };
        if let Err(message) = yaml::set_path(&mut root, "target", node) {
            errors.push(Diagnostic {
                loc: Loc::Arg(format!("--target {url}")),
                message,
            });
        }
    }
    if !errors.is_empty() {
        return Err(fail(errors));
    }
    let mut v = Validator { errors: Vec::new() };
    let scenario = v.scenario(&root);
    match scenario {
        Some(s) if v.errors.is_empty() => Ok(s),
        _ => Err(fail(v.errors)),
    }
}

const TOP_FIELDS: &[&str] = &[
    "name",
    "target",
    "path",
    "setup",
    "phases",
    "scenarios",
    "thresholds",
];
const SETUP_FIELDS: &[&str] = &["users", "sessions_file", "rooms", "restart_server"];
const RESTART_FIELDS: &[&str] = &["at", "down_for"];
const PHASE_FIELDS: &[&str] = &["duration", "arrival_rate", "ramp_to", "vus"];
const FLOW_FIELDS: &[&str] = &["name", "weight", "steps"];
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

const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_secs(30);
const USER_VARS: &[Var] = &[Var::Vu, Var::Uuid];

struct Validator {
    errors: Vec<Diagnostic>,
}

/// A mapping whose keys were checked against the valid ones.
struct Fields<'a> {
    node: &'a Node,
    entries: &'a [(Key, Node)],
}

impl<'a> Fields<'a> {
    fn get(&self, name: &str) -> Option<&'a Node> {
        self.entries
            .iter()
            .find(|(k, _)| k.name == name)
            .map(|(_, v)| v)
    }
}

/// The closest valid name, for "did you mean" hints on typos.
fn closest<'a>(name: &str, valid: &[&'a str]) -> Option<&'a str> {
    fn distance(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut prev = row[0];
            row[0] = i + 1;
            for (j, cb) in b.iter().enumerate() {
                let cur = row[j + 1];
                row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
                prev = cur;
            }
        }
        row[b.len()]
    }
    valid
        .iter()
        .map(|v| (distance(name, v), *v))
        .filter(|(d, v)| *d <= 1.max(v.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, v)| v)
}

fn hint(name: &str, valid: &[&str]) -> String {
    closest(name, valid).map_or(String::new(), |c| format!(" (did you mean `{c}`?)"))
}

impl Validator {
    fn error(&mut self, loc: &Loc, message: impl Into<String>) {
        self.errors.push(Diagnostic {
            loc: loc.clone(),
            message: message.into(),
        });
    }

    fn expected(&mut self, node: &Node, what: &str, expected: &str) {
        self.error(
            &node.loc,
            format!("`{what}` must be {expected}, found {}", node.value.kind()),
        );
    }

    /// Check a mapping's keys; unknown keys are reported with the valid ones.
    fn fields<'a>(&mut self, node: &'a Node, what: &str, valid: &[&str]) -> Option<Fields<'a>> {
        let Value::Map(entries) = &node.value else {
            self.error(
                &node.loc,
                format!("{what} must be a mapping, found {}", node.value.kind()),
            );
            return None;
        };
        for (key, _) in entries {
            // Top-level `x-` keys hold YAML anchors for reuse (`x-phase: &p {...}`), as in
            // docker-compose files; they are not part of the model.
            let extension = what == "the scenario" && key.name.starts_with("x-");
            if !extension && !valid.contains(&key.name.as_str()) {
                self.error(
                    &key.loc,
                    format!(
                        "unknown field `{}` in {what}{}; valid fields: {}",
                        key.name,
                        hint(&key.name, valid),
                        valid.join(", ")
                    ),
                );
            }
        }
        Some(Fields { node, entries })
    }

    fn required<'a>(&mut self, f: &Fields<'a>, name: &str, what: &str) -> Option<&'a Node> {
        let found = f.get(name);
        if found.is_none() {
            self.error(&f.node.loc, format!("{what} needs `{name}`"));
        }
        found
    }

    fn string(&mut self, node: &Node, what: &str) -> Option<String> {
        match &node.value {
            Value::Str(s) => Some(s.clone()),
            // Plain scalars such as `echo2` are strings, but `123` or `true` are not what a
            // name field wants; say so instead of silently converting.
            _ => {
                self.expected(node, what, "a string");
                None
            }
        }
    }

    fn template(&mut self, node: &Node, what: &str, vars: &[Var]) -> Option<Template> {
        let text = self.string(node, what)?;
        match Template::compile(&text, vars) {
            Ok(t) => Some(t),
            Err(e) => {
                self.error(&node.loc, format!("in `{what}`: {e}"));
                None
            }
        }
    }

    fn duration(&mut self, node: &Node, what: &str, allow_zero: bool) -> Option<Duration> {
        let text = match &node.value {
            Value::Str(s) => s,
            Value::Int(_) | Value::Float(_) => {
                self.error(
                    &node.loc,
                    format!("`{what}` needs a unit: write a duration such as 250ms, 10s or 5m"),
                );
                return None;
            }
            _ => {
                self.expected(node, what, "a duration such as 250ms, 10s or 5m");
                return None;
            }
        };
        match parse_duration(text) {
            Ok(d) if d.is_zero() && !allow_zero => {
                self.error(&node.loc, format!("`{what}` must be longer than 0"));
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                self.error(
                    &node.loc,
                    format!("`{what}`: `{text}` is not a duration ({e})"),
                );
                None
            }
        }
    }

    /// A whole number from `min` up.
    fn count(&mut self, node: &Node, what: &str, min: u32) -> Option<u32> {
        match node.value {
            Value::Int(n) => match u32::try_from(n) {
                Ok(n) if n >= min => Some(n),
                _ => {
                    self.error(
                        &node.loc,
                        format!("`{what}` must be a whole number from {min} up, found {n}"),
                    );
                    None
                }
            },
            _ => {
                self.expected(node, what, &format!("a whole number from {min} up"));
                None
            }
        }
    }

    fn rate(&mut self, node: &Node, what: &str) -> Option<f64> {
        let n = match node.value {
            Value::Int(n) => n as f64,
            Value::Float(f) => f,
            _ => {
                self.expected(node, what, "a number of sessions per second");
                return None;
            }
        };
        if !n.is_finite() || n < 0.0 {
            self.error(
                &node.loc,
                format!("`{what}` must be 0 or more sessions per second, found {n}"),
            );
            return None;
        }
        Some(n)
    }

    fn scenario(&mut self, root: &Node) -> Option<Scenario> {
        let f = self.fields(root, "the scenario", TOP_FIELDS)?;
        let name = self
            .required(&f, "name", "the scenario")
            .and_then(|n| self.string(n, "name"));
        if let Some(n) = &name
            && n.trim().is_empty()
            && let Some(node) = f.get("name")
        {
            self.error(&node.loc, "`name` must not be empty");
        }
        let target = match f.get("target") {
            None => Some(Target::Embedded),
            Some(node) => self.target(node),
        };
        let path = match f.get("path") {
            None => Some(protocol::ENGINE_PATH.to_owned()),
            Some(node) => self.string(node, "path").and_then(|p| {
                if p.starts_with('/') {
                    Some(p)
                } else {
                    self.error(
                        &node.loc,
                        format!("`path` must start with `/`, e.g. /ws; found `{p}`"),
                    );
                    None
                }
            }),
        };
        let setup = match f.get("setup") {
            None => Some(Setup {
                users: Users::Template(Template::compile("vu-{{vu}}", USER_VARS).ok()?),
                rooms: None,
                restart_server: None,
            }),
            Some(node) => self.setup(node),
        };
        if let (Some(Target::Url(url)), Some(setup)) = (&target, &setup)
            && setup.restart_server.is_some()
            && let Some(node) = f.get("setup")
        {
            self.error(
                &node.loc,
                format!(
                    "`setup.restart_server` restarts the embedded server; with target {url}, restart that server yourself"
                ),
            );
        }
        let phases = self
            .required(&f, "phases", "the scenario")
            .and_then(|n| self.phases(n));
        let flows = self
            .required(&f, "scenarios", "the scenario")
            .and_then(|n| self.flows(n));
        let thresholds = match f.get("thresholds") {
            None => Some(Vec::new()),
            Some(node) => self.thresholds(node),
        };
        // `{{room}}` needs rooms to come from somewhere.
        if let (Some(setup), Some(flows)) = (&setup, &flows)
            && setup.rooms.is_none()
        {
            for flow in flows {
                if flow.steps.iter().any(uses_room) {
                    let loc = f
                        .get("scenarios")
                        .map_or(root.loc.clone(), |n| n.loc.clone());
                    self.error(
                        &loc,
                        format!(
                            "scenario `{}` uses {{{{room}}}} but `setup.rooms` is not set: give a room count (dev server) or a list of chat ids",
                            flow.name
                        ),
                    );
                }
            }
        }
        Some(Scenario {
            name: name?,
            target: target?,
            path: path?,
            setup: setup?,
            phases: phases?,
            flows: flows?,
            thresholds: thresholds?,
        })
    }

    fn target(&mut self, node: &Node) -> Option<Target> {
        let text = self.string(node, "target")?;
        if text == "embedded" {
            return Some(Target::Embedded);
        }
        match reqwest::Url::parse(&text) {
            Ok(url)
                if matches!(url.scheme(), "http" | "https" | "ws" | "wss")
                    && url.host().is_some() =>
            {
                Some(Target::Url(url))
            }
            Ok(url) => {
                self.error(
                    &node.loc,
                    format!("`target` must be `embedded` or an http(s)/ws(s) URL with a host, found scheme `{}`", url.scheme()),
                );
                None
            }
            Err(e) => {
                self.error(
                    &node.loc,
                    format!("`target` must be `embedded` or a URL such as http://127.0.0.1:7000 ({e}: `{text}`)"),
                );
                None
            }
        }
    }

    fn setup(&mut self, node: &Node) -> Option<Setup> {
        let f = self.fields(node, "`setup`", SETUP_FIELDS)?;
        let users = match (f.get("users"), f.get("sessions_file")) {
            (Some(_), Some(file)) => {
                self.error(
                    &file.loc,
                    "`setup` takes `users` (dev login) or `sessions_file`, not both",
                );
                None
            }
            (Some(users), None) => self
                .template(users, "setup.users", USER_VARS)
                .map(Users::Template),
            (None, Some(file)) => self.string(file, "setup.sessions_file").and_then(|s| {
                if s.trim().is_empty() {
                    self.error(&file.loc, "`setup.sessions_file` must name a file");
                    None
                } else {
                    Some(Users::SessionsFile(PathBuf::from(s)))
                }
            }),
            (None, None) => Template::compile("vu-{{vu}}", USER_VARS)
                .ok()
                .map(Users::Template),
        };
        let rooms = match f.get("rooms") {
            None => Some(None),
            Some(rooms) => self.rooms(rooms).map(Some),
        };
        let restart_server = match f.get("restart_server") {
            None => Some(None),
            Some(node) => self.restart_server(node).map(Some),
        };
        Some(Setup {
            users: users?,
            rooms: rooms?,
            restart_server: restart_server?,
        })
    }

    fn restart_server(&mut self, node: &Node) -> Option<RestartServer> {
        let f = self.fields(node, "`setup.restart_server`", RESTART_FIELDS)?;
        let at = self
            .required(&f, "at", "`setup.restart_server`")
            .and_then(|n| self.duration(n, "setup.restart_server.at", false));
        let down_for = match f.get("down_for") {
            None => Some(Duration::from_secs(1)),
            Some(n) => self.duration(n, "setup.restart_server.down_for", true),
        };
        Some(RestartServer {
            at: at?,
            down_for: down_for?,
        })
    }

    fn rooms(&mut self, node: &Node) -> Option<Rooms> {
        match &node.value {
            Value::Int(_) => self.count(node, "setup.rooms", 1).map(Rooms::Count),
            Value::Seq(items) if items.is_empty() => {
                self.error(
                    &node.loc,
                    "`setup.rooms` is an empty list: give at least one chat id",
                );
                None
            }
            Value::Seq(items) => {
                let mut ids = Vec::new();
                let mut ok = true;
                for item in items {
                    match &item.value {
                        Value::Str(s) => match ChatId::parse(s) {
                            Ok(id) => ids.push(id),
                            Err(e) => {
                                self.error(&item.loc, format!("`{s}` is not a chat id: {e}"));
                                ok = false;
                            }
                        },
                        _ => {
                            self.expected(item, "setup.rooms[]", "a chat id (a UUID string)");
                            ok = false;
                        }
                    }
                }
                ok.then_some(Rooms::Ids(ids))
            }
            _ => {
                self.expected(
                    node,
                    "setup.rooms",
                    "a room count (dev server) or a list of chat ids",
                );
                None
            }
        }
    }

    fn phases(&mut self, node: &Node) -> Option<Vec<Phase>> {
        let Value::Seq(items) = &node.value else {
            self.expected(node, "phases", "a list of phases");
            return None;
        };
        if items.is_empty() {
            self.error(
                &node.loc,
                "`phases` is empty: add at least one, e.g. { duration: 30s, vus: 10 }",
            );
            return None;
        }
        let phases: Vec<Option<Phase>> = items.iter().map(|p| self.phase(p)).collect();
        phases.into_iter().collect()
    }

    fn phase(&mut self, node: &Node) -> Option<Phase> {
        let f = self.fields(node, "a phase", PHASE_FIELDS)?;
        let duration = self
            .required(&f, "duration", "a phase")
            .and_then(|d| self.duration(d, "duration", false));
        match (f.get("arrival_rate"), f.get("vus")) {
            (Some(_), Some(vus)) => {
                self.error(
                    &vus.loc,
                    "a phase is open (`arrival_rate`, new sessions per second) or closed (`vus`, sessions kept busy), not both",
                );
                None
            }
            (None, None) => {
                self.error(
                    &node.loc,
                    "a phase needs `arrival_rate` (open model: new sessions per second) or `vus` (closed model: sessions kept busy)",
                );
                None
            }
            (Some(rate), None) => {
                let arrival_rate = self.rate(rate, "arrival_rate");
                let ramp_to = match f.get("ramp_to") {
                    None => Some(None),
                    Some(r) => self.rate(r, "ramp_to").map(Some),
                };
                if let (Some(0.0), Some(None | Some(0.0))) = (arrival_rate, ramp_to) {
                    self.error(
                        &rate.loc,
                        "this phase starts no sessions: `arrival_rate` and `ramp_to` are both 0",
                    );
                    return None;
                }
                Some(Phase::Open {
                    duration: duration?,
                    arrival_rate: arrival_rate?,
                    ramp_to: ramp_to?,
                })
            }
            (None, Some(vus)) => {
                if let Some(ramp) = f.get("ramp_to") {
                    self.error(&ramp.loc, "`ramp_to` belongs to an open phase (`arrival_rate`), not to one with `vus`");
                }
                let vus = self.count(vus, "vus", 1);
                Some(Phase::Closed {
                    duration: duration?,
                    vus: vus?,
                })
            }
        }
    }

    fn flows(&mut self, node: &Node) -> Option<Vec<Flow>> {
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
        let flows: Vec<Option<Flow>> = items.iter().map(|n| self.flow(n)).collect();
        let flows: Option<Vec<Flow>> = flows.into_iter().collect();
        if let Some(flows) = &flows {
            for (i, flow) in flows.iter().enumerate() {
                if flows[..i].iter().any(|f| f.name == flow.name) {
                    self.error(
                        &items[i].loc,
                        format!("two scenarios are named `{}`", flow.name),
                    );
                }
            }
        }
        flows
    }

    fn flow(&mut self, node: &Node) -> Option<Flow> {
        let f = self.fields(node, "a scenario", FLOW_FIELDS)?;
        let name = self
            .required(&f, "name", "a scenario")
            .and_then(|n| self.string(n, "name"));
        let weight = match f.get("weight") {
            None => Some(1),
            Some(w) => self.count(w, "weight", 1),
        };
        let steps = self
            .required(&f, "steps", "a scenario")
            .and_then(|s| self.steps(s, "steps"));
        if let Some(steps) = &steps
            && let Some(node) = f.get("steps")
        {
            self.check_session_order(steps, node, false);
        }
        Some(Flow {
            name: name?,
            weight: weight?,
            steps: steps?,
        })
    }

    fn steps(&mut self, node: &Node, what: &str) -> Option<Vec<Step>> {
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

    fn unknown_step(&mut self, loc: &Loc, name: &str) {
        self.error(
            loc,
            format!(
                "unknown step `{name}`{}; valid steps: {}",
                hint(name, STEP_NAMES),
                STEP_NAMES.join(", ")
            ),
        );
    }

    fn step(&mut self, node: &Node) -> Option<Step> {
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

    fn event(&mut self, node: &Node) -> Option<String> {
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

    fn content(&mut self, node: &Node) -> Option<Template> {
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

    fn ack(&mut self, node: &Node) -> Option<Ack> {
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

    fn think(&mut self, node: &Node) -> Option<Think> {
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

    fn payload(&mut self, node: &Node, what: &str) -> Option<Payload> {
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

    fn thresholds(&mut self, node: &Node) -> Option<Vec<Threshold>> {
        let Value::Seq(items) = &node.value else {
            self.expected(
                node,
                "thresholds",
                "a list of expressions such as \"connect.p99 < 500ms\"",
            );
            return None;
        };
        let parsed: Vec<Option<Threshold>> = items
            .iter()
            .map(|item| {
                let text = self.string(item, "thresholds[]")?;
                match Threshold::parse(&text) {
                    Ok(t) => Some(t),
                    Err(e) => {
                        self.error(&item.loc, format!("threshold \"{text}\": {e}"));
                        None
                    }
                }
            })
            .collect();
        parsed.into_iter().collect()
    }

    /// Steps that use the socket need an open session before them; report the first misuse.
    /// Returns whether the session is open after `steps`.
    fn check_session_order(&mut self, steps: &[Step], node: &Node, mut open: bool) -> bool {
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

fn uses_room(step: &Step) -> bool {
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

fn human(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

impl Scenario {
    /// Total run time of all phases.
    pub fn duration(&self) -> Duration {
        self.phases.iter().map(Phase::duration).sum()
    }

    /// What `load-test --check` prints: the plan, without connecting anywhere.
    pub fn plan(&self) -> String {
        let mut out = String::new();
        let target = match &self.target {
            Target::Embedded => "embedded (serve --dev in-process, sqlite::memory:)".to_owned(),
            Target::Url(url) => url.to_string(),
        };
        // Writing to a String cannot fail.
        let _ = writeln!(out, "scenario {}: valid", self.name);
        let _ = writeln!(out, "target    {target}, path {}", self.path);
        let users = match &self.setup.users {
            Users::Template(t) => format!("dev login as \"{t}\""),
            Users::SessionsFile(p) => format!("sessions from {}", p.display()),
        };
        let rooms = match &self.setup.rooms {
            None => "no rooms".to_owned(),
            Some(Rooms::Count(n)) => {
                format!("{n} dev-created room(s), virtual user N in room N mod {n}")
            }
            Some(Rooms::Ids(ids)) => format!("{} existing room(s)", ids.len()),
        };
        let _ = writeln!(out, "setup     {users}; {rooms}");
        if let Some(r) = &self.setup.restart_server {
            let _ = writeln!(
                out,
                "restart   the embedded server stops {:?} into the run and listens again {:?} later",
                r.at, r.down_for
            );
        }
        let _ = writeln!(
            out,
            "phases    (run one after another, {} in all)",
            human(self.duration())
        );
        let mut arrivals = 0.0;
        let mut peak_vus = 0;
        for (i, phase) in self.phases.iter().enumerate() {
            match phase {
                Phase::Open {
                    duration,
                    arrival_rate,
                    ramp_to,
                } => {
                    let rate = match ramp_to {
                        Some(to) => format!("{arrival_rate}/s ramping to {to}/s"),
                        None => format!("{arrival_rate}/s"),
                    };
                    let n = phase.arrivals().unwrap_or(0.0);
                    arrivals += n;
                    let _ = writeln!(
                        out,
                        "  {}. open    {:>8}  {rate}: about {} new sessions",
                        i + 1,
                        human(*duration),
                        n.round()
                    );
                }
                Phase::Closed { duration, vus } => {
                    peak_vus = peak_vus.max(*vus);
                    let _ = writeln!(
                        out,
                        "  {}. closed  {:>8}  {vus} virtual users kept busy (each starts again when it finishes)",
                        i + 1,
                        human(*duration)
                    );
                }
            }
        }
        let total: u32 = self.flows.iter().map(|f| f.weight).sum();
        let _ = writeln!(out, "scenarios (a virtual user picks one by weight)");
        for flow in &self.flows {
            let share = f64::from(flow.weight) / f64::from(total.max(1));
            let _ = writeln!(
                out,
                "  {:<16} weight {:>3} ({:>5.1}%), {} step(s)",
                flow.name,
                flow.weight,
                share * 100.0,
                count_steps(&flow.steps)
            );
        }
        let mut expected = Vec::new();
        if arrivals > 0.0 {
            expected.push(format!("about {} from open phases", arrivals.round()));
        }
        if peak_vus > 0 {
            expected.push(format!("at least {peak_vus} from closed phases"));
        }
        let _ = writeln!(out, "sessions  {}", expected.join(", "));
        if self.thresholds.is_empty() {
            let _ = writeln!(out, "thresholds none (exit 0 whatever the results)");
        } else {
            let _ = writeln!(out, "thresholds");
            for t in &self.thresholds {
                let _ = writeln!(out, "  {t}");
            }
        }
        out
    }
}

impl Step {
    /// The think time of a `think` step (tests and the runner's planning read it).
    pub fn clone_think(&self) -> Option<Think> {
        match self {
            Step::Think(t) => Some(t.clone()),
            _ => None,
        }
    }
}

fn count_steps(steps: &[Step]) -> usize {
    steps
        .iter()
        .map(|s| match s {
            Step::Loop { steps, .. } => 1 + count_steps(steps),
            _ => 1,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISSUE_EXAMPLE: &str = r#"name: chat-fanout
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
"#;

    fn ok(src: &str) -> Scenario {
        match parse(src, "s.yaml", &Overrides::default()) {
            Ok(s) => s,
            Err(d) => panic!("{d}"),
        }
    }

    #[test]
    fn the_issue_example_parses() {
        let s = ok(ISSUE_EXAMPLE);
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
        assert_eq!(s.flows.len(), 2);
        assert_eq!(s.flows[0].weight, 9);
        assert!(matches!(
            &s.flows[1].steps[1],
            Step::Loop { repeat: Repeat::Count(10), steps } if steps.len() == 2
        ));
        assert_eq!(s.thresholds.len(), 4);
        let plan = s.plan();
        assert!(plan.contains("about 1250 new sessions"), "{plan}");
        assert!(
            plan.contains("listener         weight   9 ( 90.0%)"),
            "{plan}"
        );
        assert!(plan.contains("at least 500 from closed phases"), "{plan}");
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
        } = &s.flows[0].steps[1]
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

    /// A valid scenario around `steps` (indented as list items of one flow).
    fn with_steps(steps: &str) -> String {
        format!(
            "name: t\nsetup: {{ rooms: 2 }}\nphases:\n  - {{ duration: 1s, vus: 1 }}\nscenarios:\n  - name: a\n    steps:\n{steps}"
        )
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
            matches!(s.flows[0].steps[2], Step::Connect { timeout } if timeout == Duration::from_secs(2))
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
        let steps = &s.flows[0].steps;
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
        let base =
            "phases: [{ duration: 1s, vus: 1 }]\nscenarios: [{ name: a, steps: [connect] }]\n";
        let s = ok(&format!("name: n\n{base}"));
        assert!(matches!(&s.setup.users, Users::Template(t) if t.to_string() == "vu-{{vu}}"));
        assert_eq!(
            (s.setup.rooms.clone(), s.target.clone(), s.path.as_str()),
            (None, Target::Embedded, "/ws")
        );
        let s = ok(&format!(
            "name: n\ntarget: http://127.0.0.1:7000\npath: /socket\nsetup:\n  sessions_file: cookies.txt\n  rooms: [\"0B6C5A1E-0000-4000-8000-000000000001\", 0b6c5a1e-0000-4000-8000-000000000002]\n{base}"
        ));
        assert!(matches!(&s.setup.users, Users::SessionsFile(p) if p == Path::new("cookies.txt")));
        assert!(matches!(&s.setup.rooms, Some(Rooms::Ids(ids)) if ids.len() == 2));
        assert!(matches!(&s.target, Target::Url(u) if u.as_str() == "http://127.0.0.1:7000/"));
        assert_eq!(s.path, "/socket");
    }

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
                    "2:1: unknown field `phase` in the scenario (did you mean `phases`?); valid fields: name, target, path, setup, phases, scenarios, thresholds",
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
                vec![
                    "2:40: this phase starts no sessions: `arrival_rate` and `ramp_to` are both 0",
                ],
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
                format!(
                    "name: x\n{phases}scenarios: [{{ name: a, weight: 0, steps: [connect] }}]\n"
                ),
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
    fn all_problems_are_reported_at_once() {
        let src = "name: x\nsetup: { rooms: 0 }\nphases: [{ duration: 1, vus: 0 }]\nscenarios: [{ name: a, weight: 0, steps: [conect] }]\n";
        assert_eq!(errors(src).len(), 5, "{:?}", errors(src));
    }

    #[test]
    fn set_and_target_override_before_validation() {
        let over = Overrides {
            sets: vec![
                "phases.1.vus=10".into(),
                "name=nightly".into(),
                "setup.rooms=3".into(),
            ],
            target: Some("http://127.0.0.1:7000".into()),
        };
        let s = parse(ISSUE_EXAMPLE, "s.yaml", &over).unwrap_or_else(|d| panic!("{d}"));
        assert_eq!(s.name, "nightly");
        assert_eq!(
            s.phases[1],
            Phase::Closed {
                duration: Duration::from_secs(30),
                vus: 10
            }
        );
        assert_eq!(s.setup.rooms, Some(Rooms::Count(3)));
        assert!(matches!(s.target, Target::Url(_)));

        // An override is validated like the file, and errors name the argument.
        let bad = |sets: &[&str]| {
            errors_with(
                ISSUE_EXAMPLE,
                &Overrides {
                    sets: sets.iter().map(|s| (*s).to_owned()).collect(),
                    target: None,
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
            ISSUE_EXAMPLE,
            &Overrides {
                sets: vec![],
                target: Some("nope".into()),
            },
        );
        assert_eq!(
            e,
            vec![
                "--target nope: `target` must be `embedded` or a URL such as http://127.0.0.1:7000 (relative URL without a base: `nope`)"
            ]
        );
    }
}
