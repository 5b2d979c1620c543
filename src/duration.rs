//! Durations as people write them, on the command line and in YAML: `250ms`, `10s`, `5m`, `1m30s`.

use std::time::Duration;

/// Parse `250ms`, `10s`, `5m`, `1h` (and combinations such as `1m30s`).
pub fn parse(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("{e}: write a duration such as 250ms, 10s or 5m"))
}
