//! Live progress while a load test runs: a view of the run's counters, drawn on stderr only
//! when it is a terminal (and not with `-q`), so logs and CI output stay clean. A worker of
//! `--workers` writes its counters as one JSON line per redraw on stdout instead, and its parent
//! draws the sum of its workers' lines as one progress display.

use std::io::{IsTerminal, Write as _};
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};

use super::metrics::Metrics;

/// The counters one progress redraw shows; a worker's status line.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Status {
    pub phase: String,
    pub open: u64,
    pub peak_open: u64,
    pub connected: u64,
    pub failed: u64,
    pub sent: u64,
    pub received: u64,
    pub errors: u64,
}

impl Status {
    fn of(metrics: &Metrics, phase: &str) -> Status {
        let c = metrics.counter_values();
        Status {
            phase: phase.to_owned(),
            open: c.open,
            peak_open: c.peak_open,
            connected: c.connected,
            failed: c.failed(),
            sent: c.messages_sent,
            received: c.messages_received,
            errors: c.errors_total(),
        }
    }

    /// The workers' statuses added up (a peak is the sum of peaks: an upper bound).
    pub fn sum<'a>(all: impl IntoIterator<Item = &'a Status>) -> Status {
        let mut total = Status::default();
        for s in all {
            if total.phase.is_empty() {
                total.phase.clone_from(&s.phase);
            }
            total.open += s.open;
            total.peak_open += s.peak_open;
            total.connected += s.connected;
            total.failed += s.failed;
            total.sent += s.sent;
            total.received += s.received;
            total.errors += s.errors;
        }
        total
    }

    fn line(&self) -> String {
        format!(
            "{} | open {} (peak {}) | connected {} failed {} | sent {} received {} | errors {}",
            self.phase,
            self.open,
            self.peak_open,
            self.connected,
            self.failed,
            self.sent,
            self.received,
            self.errors
        )
    }
}

pub struct Progress {
    bar: Option<ProgressBar>,
    /// A worker: status lines on stdout instead of a bar.
    worker: bool,
}

impl Progress {
    pub fn new(enabled: bool, total: Duration) -> Progress {
        if !enabled || !std::io::stderr().is_terminal() {
            return Progress {
                bar: None,
                worker: false,
            };
        }
        let bar = ProgressBar::with_draw_target(
            Some(total.as_millis() as u64),
            ProgressDrawTarget::stderr_with_hz(4),
        );
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:24} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Progress {
            bar: Some(bar),
            worker: false,
        }
    }

    /// A worker of `--workers`: one JSON [`Status`] line on stdout per redraw.
    pub fn for_worker() -> Progress {
        Progress {
            bar: None,
            worker: true,
        }
    }

    /// Redraw from the counters; `phase` says where in the scenario the run is.
    pub fn update(&self, metrics: &Arc<Metrics>, phase: &str, elapsed: Duration) {
        if self.worker {
            if let Ok(line) = serde_json::to_string(&Status::of(metrics, phase)) {
                let mut out = std::io::stdout().lock();
                // The parent may be gone (Ctrl-C): nothing to report to then.
                let _ = writeln!(out, "{line}").and_then(|()| out.flush());
            }
            return;
        }
        let Some(bar) = &self.bar else { return };
        bar.set_position(elapsed.as_millis() as u64);
        bar.set_message(Status::of(metrics, phase).line());
    }

    /// Draw a status made elsewhere (the sum of the workers').
    pub fn show(&self, status: &Status, elapsed: Duration) {
        if let Some(bar) = &self.bar {
            bar.set_position(elapsed.as_millis() as u64);
            bar.set_message(status.line());
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
