//! What `check` found, as data: the document `--json` prints (its JSON Schema is generated from
//! these types and checked in as `docs/check-report.schema.json`; `docs/CHECK_SCHEMA.md` says
//! what each field means) and the text view renders. A change here is a change to that page.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Raised when a field is removed, renamed or changes meaning; adding a field keeps it.
pub const SCHEMA_VERSION: u32 = 1;

/// The whole run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "CheckReport")]
pub struct Report {
    /// Version of this document's layout: 1.
    pub schema_version: u32,
    /// `scmarket-ws X.Y.Z`.
    pub tool: String,
    /// The engine endpoint checked, without credentials, e.g. `wss://api.example/ws/`.
    pub target: String,
    /// RFC 3339, UTC, when the run began.
    pub started_at: String,
    pub duration_ms: f64,
    /// What the run was allowed and given (never the credentials themselves).
    pub settings: Settings,
    /// The verdict on the target as a whole.
    pub outcome: Outcome,
    /// The process's exit code for this outcome (README, "Exit codes").
    pub exit_code: u8,
    /// Why the run stopped before its checks (outcome `refused`, `unreachable`, `timed_out`).
    pub error: Option<String>,
    /// One entry per check, in the order they ran; checks left out by `--only`/`--skip` are
    /// absent. Empty when the target as a whole failed.
    pub checks: Vec<CheckResult>,
    pub summary: Summary,
}

/// The flags that decide which checks can run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Settings {
    /// `--post`: messages may be posted.
    pub post: bool,
    /// `--destructive`: requests that crash a server with `crash-on-null-join` may be sent.
    pub destructive: bool,
    /// Credentials for user A were given.
    pub user_a: bool,
    /// Credentials for user B were given.
    pub user_b: bool,
    /// A session cookie of a banned account was given.
    pub banned_user: bool,
    /// `--chat`.
    pub chat: Option<String>,
    /// `--origin`: an Origin the deployment allows.
    pub origin: Option<String>,
    /// The Origin sent as a hostile page's.
    pub foreign_origin: String,
    /// `--join-window` in milliseconds: how long room requests are repeated after CONNECT.
    pub join_window_ms: f64,
    /// `--wait` in milliseconds: how long a message is waited for (or its absence watched).
    pub wait_ms: f64,
}

/// The target as a whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The checks ran and none failed (exit 0).
    Passed,
    /// At least one check failed (exit 1).
    Failed,
    /// The server refused user A's or B's credentials, so nothing could be checked (exit 3).
    Refused,
    /// The URL cannot be reached: connection refused, DNS, TLS (exit 4).
    Unreachable,
    /// The server did not answer the first request in time (exit 5).
    TimedOut,
}

/// How one check ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The deployment does what the contract says.
    Pass,
    /// It does not: the summary says what, the evidence shows it. Fails the run.
    Fail,
    /// Something worth a look that is not a failure (a setting other than production's, a
    /// result that could not be proven either way). Does not fail the run.
    Warning,
    /// Not run: `needs` says what it needs.
    Skipped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Warning => "warning",
            Status::Skipped => "skipped",
        }
    }
}

/// One check.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CheckResult {
    /// Stable id, `family.name` (e.g. `origin.foreign-refused`); `--skip` and `--only` take it.
    pub id: String,
    /// The family: handshake, transport, origin, joins, viewing, payload, rest, delivery,
    /// destructive.
    pub family: String,
    /// What the check asks, in one line.
    pub title: String,
    /// The production defect this check exists to find, by its name in ARCHITECTURE.md.
    pub defect: Option<String>,
    pub status: Status,
    /// The finding in one or two sentences.
    pub summary: String,
    /// For a skipped check (or one that could not prove its point): what it needs, as flags.
    pub needs: Vec<String>,
    /// What was sent and what came back, step by step; secrets masked.
    pub evidence: Vec<Evidence>,
    /// Figures the check measured, by name (e.g. `honoured_from_ms` of `joins.late-listeners`).
    pub measurements: BTreeMap<String, f64>,
    pub duration_ms: f64,
}

/// One step of a check: a request and its answer, or a session and the packets it saw.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Evidence {
    /// What was done, e.g. `polling handshake without cookies`.
    pub step: String,
    /// The request line or event sent, e.g. `GET /ws/?EIO=4&transport=polling`.
    pub request: Option<String>,
    /// Request headers that matter to the check (cookies masked).
    pub request_headers: BTreeMap<String, String>,
    /// HTTP status of the answer, when there was one.
    pub status: Option<u16>,
    /// Answer headers that matter to the check.
    pub headers: BTreeMap<String, String>,
    /// The start of the answer's body (at most 300 characters).
    pub body: Option<String>,
    /// Engine.IO / Socket.IO packets seen, in wire form (engine sids masked).
    pub packets: Vec<String>,
    /// What this step showed, in words.
    pub note: Option<String>,
}

/// Checks by status.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Summary {
    pub pass: u32,
    pub fail: u32,
    pub warning: u32,
    pub skipped: u32,
}

impl Summary {
    pub fn of(checks: &[CheckResult]) -> Summary {
        let mut s = Summary::default();
        for c in checks {
            match c.status {
                Status::Pass => s.pass += 1,
                Status::Fail => s.fail += 1,
                Status::Warning => s.warning += 1,
                Status::Skipped => s.skipped += 1,
            }
        }
        s
    }
}

/// The JSON Schema of [`Report`] as checked in at `docs/check-report.schema.json`, pretty
/// printed with a trailing newline.
pub fn json_schema_text() -> String {
    let schema = schemars::generate::SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<Report>();
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}

/// Longest body excerpt kept in evidence.
pub const BODY_EXCERPT_CHARS: usize = 300;

/// The start of a body, for evidence.
pub fn excerpt(body: &str) -> String {
    let trimmed = body.trim();
    if trimmed.chars().count() <= BODY_EXCERPT_CHARS {
        trimmed.to_string()
    } else {
        let mut out: String = trimmed.chars().take(BODY_EXCERPT_CHARS - 1).collect();
        out.push('…');
        out
    }
}

impl Evidence {
    pub fn step(step: impl Into<String>) -> Evidence {
        Evidence {
            step: step.into(),
            ..Evidence::default()
        }
    }

    pub fn request(mut self, request: impl Into<String>) -> Evidence {
        self.request = Some(request.into());
        self
    }

    pub fn note(mut self, note: impl Into<String>) -> Evidence {
        self.note = Some(note.into());
        self
    }

    pub fn status(mut self, status: u16) -> Evidence {
        self.status = Some(status);
        self
    }

    pub fn body(mut self, body: &str) -> Evidence {
        self.body = Some(excerpt(body));
        self
    }

    pub fn packet(mut self, packet: impl Into<String>) -> Evidence {
        self.packets.push(packet.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_bounded() {
        assert_eq!(excerpt("  short \n"), "short");
        let long = "x".repeat(1000);
        let cut = excerpt(&long);
        assert_eq!(cut.chars().count(), BODY_EXCERPT_CHARS);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn summary_counts_by_status() {
        let mut c = CheckResult {
            id: "a.b".into(),
            family: "a".into(),
            title: String::new(),
            defect: None,
            status: Status::Pass,
            summary: String::new(),
            needs: vec![],
            evidence: vec![],
            measurements: BTreeMap::new(),
            duration_ms: 0.0,
        };
        let mut all = vec![c.clone()];
        c.status = Status::Skipped;
        all.push(c.clone());
        all.push(c);
        assert_eq!(
            Summary::of(&all),
            Summary {
                pass: 1,
                fail: 0,
                warning: 0,
                skipped: 2
            }
        );
    }
}
