//! The YAML scenario: its typed model, and validation that runs before anything connects.
//!
//! The file is read into a located tree (`yaml.rs`), `--set` and `--target` edit that tree
//! (`load`), and `validate` types it by hand. Typing by hand rather than with derived serde lets
//! every error say where it is (file, line, column), what was expected (the valid fields, the
//! valid steps, the duration format) and lets validation carry on to report every problem in
//! one pass. `plan` renders what `load-test --check` prints.
//!
//! Rust names follow the YAML keys, so a reader goes from a key to its type without a glossary:
//! an entry of `scenarios:` is a [`UserScenario`] (the whole file is the [`Scenario`], so an
//! entry is the scenario of one virtual user), and `path:` is [`Scenario::engine_path`], the
//! Engine.IO path on the target, not a file path like the one [`load`] takes. The renaming went
//! this way, Rust towards the YAML, so that nothing a user writes changes: existing files,
//! `--set scenarios.0.weight=2` and the error messages (which name the keys as written) stay.

pub mod limits;
mod load;
mod plan;
mod validate;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::time::Duration;

use crate::protocol::ChatId;

use super::template::{Template, Vars};
use super::thresholds::Threshold;

pub use load::{LoadError, Overrides, load, parse};

/// A validated scenario, ready for the runner.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub target: Target,
    /// Engine.IO path on the target (`path:` in the YAML).
    pub engine_path: String,
    pub setup: Setup,
    /// Run one after another.
    pub phases: Vec<Phase>,
    /// The `scenarios:` list: what a virtual user does, picked by weight.
    pub scenarios: Vec<UserScenario>,
    pub thresholds: Vec<Threshold>,
    /// `grace_period:` how long users still running when the last phase ends may take to
    /// finish their flow before they are stopped (k6's `gracefulStop`); 30 s unless given.
    pub grace_period: Duration,
}

/// The grace period of a scenario that does not give one.
pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// Start `serve --dev` in-process on `sqlite::memory:`.
    Embedded,
    /// One or more nodes of one deployment (sharing their store and a Socket.IO adapter):
    /// virtual user N connects to `urls[N mod len]`, and a lost session reconnects to the next.
    Urls(Vec<reqwest::Url>),
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
    /// `users: none`: sessions without credentials, for a server that needs none (or takes any
    /// cookie); posts go without a cookie too.
    None,
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

/// One entry of `scenarios:`: the steps a virtual user runs, picked by weight.
#[derive(Debug, Clone)]
pub struct UserScenario {
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

impl Scenario {
    /// Total run time of all phases.
    pub fn duration(&self) -> Duration {
        self.phases.iter().map(Phase::duration).sum()
    }
}

impl Step {
    /// The think time of a `think` step (the tests read it).
    pub fn clone_think(&self) -> Option<Think> {
        match self {
            Step::Think(t) => Some(t.clone()),
            _ => None,
        }
    }
}
