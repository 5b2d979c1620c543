//! Typing the located YAML tree into a [`Scenario`], with an error for every problem.
//!
//! [`Validator`] collects errors instead of stopping at the first, so one run of `--check`
//! shows everything wrong with a file. Each section of the document has its own file:
//! `setup` (target, users, rooms, restart), `phases`, `steps` (the `scenarios:` list and the
//! steps inside it); the top level, the shared checks of scalar values and the thresholds are
//! here.

mod phases;
mod setup;
mod steps;

use std::time::Duration;

use crate::duration::parse as parse_duration;
use crate::loadtest::template::{Template, Var};
use crate::loadtest::thresholds::Threshold;
use crate::loadtest::yaml::{Diagnostic, Key, Loc, Node, Value};
use crate::protocol;

use super::limits::{self, MAX_DURATION};
use super::{Scenario, Setup, Target, Users};
use steps::uses_room;

const TOP_FIELDS: &[&str] = &[
    "name",
    "target",
    "path",
    "setup",
    "phases",
    "scenarios",
    "thresholds",
    "grace_period",
];

/// What a step gets for a timeout it leaves out.
pub(super) const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
pub(super) const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(10);
pub(super) const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_secs(30);
/// Template variables a username may use: it is rendered once per virtual user, before any
/// room or message exists.
const USER_VARS: &[Var] = &[Var::Vu, Var::Uuid];

/// Type the document (after overrides): the scenario, or every problem found in it.
/// `generators`: how many processes share the run (`--shard` N times `--workers`), each
/// holding its share of the sessions, so the ceiling on sessions is theirs together.
pub(super) fn scenario(root: &Node, generators: u32) -> Result<Scenario, Vec<Diagnostic>> {
    let generators = u64::from(generators.max(1));
    let mut v = Validator {
        errors: Vec::new(),
        max_sessions: limits::max_sessions(&Target::Embedded) * generators,
        generators,
    };
    let scenario = v.scenario(root);
    match scenario {
        Some(s) if v.errors.is_empty() => Ok(s),
        _ => Err(v.errors),
    }
}

/// Every check answers `None` when the value is wrong and records why, so the caller carries on
/// with the rest of the document and one pass reports every problem.
struct Validator {
    errors: Vec<Diagnostic>,
    /// Sessions one generator can hold at once against the scenario's target (see `limits`):
    /// set once the target is known, before the phases and rooms are checked against it.
    /// With several generators, theirs together.
    max_sessions: u64,
    generators: u64,
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
            Ok(d) if d > MAX_DURATION => {
                self.error(
                    &node.loc,
                    format!(
                        "`{what}` is {}: durations stop at {} (no run of one generator lasts longer)",
                        humantime::format_duration(d),
                        humantime::format_duration(MAX_DURATION)
                    ),
                );
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

    /// A whole number from `min` to `max`; `why` says where the ceiling comes from.
    fn bounded_count(
        &mut self,
        node: &Node,
        what: &str,
        min: u32,
        max: u64,
        why: &str,
    ) -> Option<u32> {
        let n = self.count(node, what, min)?;
        if u64::from(n) > max {
            self.error(
                &node.loc,
                format!("`{what}` is {n}, more than {max}: {why}"),
            );
            return None;
        }
        Some(n)
    }

    /// Why the session ceiling is what it is, for its error messages.
    fn sessions_why(&self) -> String {
        format!(
            "{} generator(s) hold at most {} sessions at once (a process may open {} files,              {} are kept for the tool, and a session takes one, two with target embedded);              run more generators (--workers, --shard) or combine their reports with `report merge`",
            self.generators,
            self.max_sessions,
            limits::open_files(),
            limits::RESERVED_FILES
        )
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
        if n > self.max_sessions as f64 {
            let why = self.sessions_why();
            self.error(
                &node.loc,
                format!(
                    "`{what}` is {n} sessions per second, more than {}: {why}",
                    self.max_sessions
                ),
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
        if let Some(target) = &target {
            self.max_sessions = limits::max_sessions(target) * self.generators;
        }
        let engine_path = match f.get("path") {
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
        if let (Some(Target::Urls(urls)), Some(setup)) = (&target, &setup)
            && setup.restart_server.is_some()
            && let Some(node) = f.get("setup")
        {
            self.error(
                &node.loc,
                format!(
                    "`setup.restart_server` restarts the embedded server; with target {}, restart that server yourself",
                    urls[0]
                ),
            );
        }
        let phases = self
            .required(&f, "phases", "the scenario")
            .and_then(|n| self.phases(n));
        if let Some(phases) = &phases
            && let Some(node) = f.get("phases")
        {
            let total: Duration = phases.iter().map(super::Phase::duration).sum();
            if total > MAX_DURATION {
                self.error(
                    &node.loc,
                    format!(
                        "the phases last {} in all: a run stops at {}",
                        humantime::format_duration(total),
                        humantime::format_duration(MAX_DURATION)
                    ),
                );
            }
        }
        let scenarios = self
            .required(&f, "scenarios", "the scenario")
            .and_then(|n| self.user_scenarios(n));
        let thresholds = match f.get("thresholds") {
            None => Some(Vec::new()),
            Some(node) => self.thresholds(node),
        };
        let grace_period = match f.get("grace_period") {
            None => Some(super::DEFAULT_GRACE_PERIOD),
            Some(node) => self.duration(node, "grace_period", true),
        };
        // `{{room}}` needs rooms to come from somewhere.
        if let (Some(setup), Some(scenarios)) = (&setup, &scenarios)
            && setup.rooms.is_none()
        {
            for scenario in scenarios {
                if scenario.steps.iter().any(uses_room) {
                    let loc = f
                        .get("scenarios")
                        .map_or(root.loc.clone(), |n| n.loc.clone());
                    self.error(
                        &loc,
                        format!(
                            "scenario `{}` uses {{{{room}}}} but `setup.rooms` is not set: give a room count (dev server) or a list of chat ids",
                            scenario.name
                        ),
                    );
                }
            }
        }
        Some(Scenario {
            name: name?,
            target: target?,
            engine_path: engine_path?,
            setup: setup?,
            phases: phases?,
            scenarios: scenarios?,
            thresholds: thresholds?,
            grace_period: grace_period?,
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
}
