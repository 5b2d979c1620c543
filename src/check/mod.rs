//! `check URL`: is a deployment's realtime layer correct and safe? A list of named checks
//! (`catalog.rs`), each asking one question of the target with real sessions and requests and
//! answering pass, fail, warning or skipped with its evidence.
//!
//! Where things are:
//! - `catalog.rs`: every check, the production defect it finds, what it needs.
//! - `runner.rs`: reach the target, resolve users A and B, run the selected checks in order.
//! - `context.rs`: what the checks share (users, sessions, posts, watching for a message);
//!   `rooms.rs`: room requests repeated until they land on a server that listens late;
//!   `probe.rs`: handshakes with chosen credentials, kept as evidence.
//! - One file per family: `handshake.rs`, `transport.rs`, `origin.rs`, `joins.rs`,
//!   `viewing.rs`, `payload.rs` (with `schema.rs`, a validator for the generated message
//!   schema), `rest.rs`, `delivery.rs`, `destructive.rs`.
//! - `report.rs`: the result as data, the `--json` document (`docs/CHECK_SCHEMA.md`);
//!   `text.rs`: the same for people.
//!
//! Safe by default: nothing is posted without `--post`, and nothing that could crash a server
//! is sent without `--destructive`.

use std::collections::BTreeMap;

pub mod catalog;
pub mod config;
pub mod context;
mod delivery;
mod destructive;
mod handshake;
mod joins;
mod origin;
mod payload;
pub mod probe;
pub mod report;
mod rest;
pub mod rooms;
pub mod runner;
pub mod schema;
pub mod text;
mod transport;
mod viewing;

pub use config::{CheckConfig, UserCredentials};
pub use report::{Report, Status};
pub use runner::run;

use report::Evidence;

/// What one check function concludes.
#[derive(Debug, Clone)]
pub struct Finding {
    pub status: Status,
    pub summary: String,
    pub needs: Vec<String>,
    pub evidence: Vec<Evidence>,
    pub measurements: BTreeMap<String, f64>,
}

impl Finding {
    fn new(status: Status, summary: impl Into<String>) -> Finding {
        Finding {
            status,
            summary: summary.into(),
            needs: Vec::new(),
            evidence: Vec::new(),
            measurements: BTreeMap::new(),
        }
    }

    pub fn pass(summary: impl Into<String>) -> Finding {
        Finding::new(Status::Pass, summary)
    }

    pub fn fail(summary: impl Into<String>) -> Finding {
        Finding::new(Status::Fail, summary)
    }

    pub fn warning(summary: impl Into<String>) -> Finding {
        Finding::new(Status::Warning, summary)
    }

    /// Not run; `needs` are flags, e.g. `--post`.
    pub fn skipped(needs: &[&str]) -> Finding {
        let mut finding = Finding::new(Status::Skipped, format!("needs {}", needs.join(", ")));
        finding.needs = needs.iter().map(|n| n.to_string()).collect();
        finding
    }

    pub fn with(mut self, evidence: Vec<Evidence>) -> Finding {
        self.evidence = evidence;
        self
    }

    pub fn needing(mut self, needs: &[&str]) -> Finding {
        self.needs = needs.iter().map(|n| n.to_string()).collect();
        self
    }

    pub fn measure(mut self, name: &str, value: f64) -> Finding {
        self.measurements.insert(name.to_string(), value);
        self
    }
}

/// The flags that give user A or B, for `needs`.
pub const NEEDS_A: &str = "user A (--cookie, --jwt or --login)";
pub const NEEDS_B: &str = "user B (--other-cookie, --other-jwt or --other-login)";
pub const NEEDS_CHAT: &str = "--chat";
pub const NEEDS_POST: &str = "--post";
