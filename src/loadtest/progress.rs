//! Live progress on stderr while a load test runs: a view of the run's counters, drawn only
//! when stderr is a terminal (and not with `-q`), so logs and CI output stay clean.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::metrics::Metrics;

pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    pub fn new(enabled: bool, total: Duration) -> Progress {
        if !enabled || !std::io::stderr().is_terminal() {
            return Progress { bar: None };
        }
        let bar = ProgressBar::with_draw_target(
            Some(total.as_millis() as u64),
            ProgressDrawTarget::stderr_with_hz(4),
        );
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:24} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Progress { bar: Some(bar) }
    }

    /// Redraw from the counters; `phase` says where in the scenario the run is.
    pub fn update(&self, metrics: &Arc<Metrics>, phase: &str, elapsed: Duration) {
        let Some(bar) = &self.bar else { return };
        let c = metrics.counter_values();
        bar.set_position(elapsed.as_millis() as u64);
        bar.set_message(format!(
            "{phase} | open {} (peak {}) | connected {} failed {} | sent {} received {} | errors {}",
            c.open,
            c.peak_open,
            c.connected,
            c.failed(),
            c.messages_sent,
            c.messages_received,
            c.errors_total()
        ));
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
