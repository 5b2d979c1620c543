//! From a file to a validated [`Scenario`]: read it, apply `--set` and `--target` to the
//! located tree, then validate. Overrides edit the tree rather than the typed model so that a
//! value given on the command line is checked by the same rules, with the same messages, as one
//! written in the file (the message names the argument instead of a line).

use std::path::Path;

use crate::loadtest::yaml::{self, Diagnostic, Diagnostics, Loc, Node, Value};

use super::{Scenario, Users, validate};

/// Command-line changes applied to the document before it is typed.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `key=value` with a dotted key, e.g. `phases.0.vus=10`.
    pub sets: Vec<String>,
    /// `--target`, repeatable: the URLs replace the scenario's `target`.
    pub targets: Vec<String>,
    /// Processes that share the run (`--shard` N times `--workers`; 0 or 1: this one alone):
    /// the ceiling on sessions is theirs together.
    pub generators: u32,
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
    if !overrides.targets.is_empty() {
        let shown = format!("--target {}", overrides.targets.join(" --target "));
        let item = |url: &String| Node {
            loc: Loc::Arg(format!("--target {url}")),
            value: Value::Str(url.clone()),
        };
        let node = match overrides.targets.as_slice() {
            [one] => item(one),
            many => Node {
                loc: Loc::Arg(shown.clone()),
                value: Value::Seq(many.iter().map(item).collect()),
            },
        };
        if let Err(message) = yaml::set_path(&mut root, "target", node) {
            errors.push(Diagnostic {
                loc: Loc::Arg(shown),
                message,
            });
        }
    }
    if !errors.is_empty() {
        return Err(fail(errors));
    }
    validate::scenario(&root, overrides.generators).map_err(fail)
}
