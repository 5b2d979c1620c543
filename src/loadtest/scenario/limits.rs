//! The ranges a scenario's numbers must fall in: what one generator process can do on this
//! machine, checked before anything runs so that an absurd value is a located error, not an
//! allocation abort or a panic an hour later.
//!
//! Sessions: each open session holds a socket, that is an open file of this process, and with
//! `target: embedded` the server's end of it too. The ceiling is the process's open-file limit
//! (`ulimit -n`, read from /proc on Linux) less a reserve for the tool itself; more sessions than
//! that need several generators (`report merge` combines their reports). The same number caps
//! the arrival rate per second (a session that lives one second at a higher rate would exceed
//! it) and the number of dev-created rooms (each needs a participant). Durations stop at 30 days,
//! far beyond any run yet short enough that no deadline computed from them can overflow.
//!
//! These are upper bounds, not promises: a run near them can still run out of files (sessions
//! fail with reason `unreachable`) or of memory.

use std::time::Duration;

use super::Target;

/// The longest duration a scenario may give (a phase, a think, a timeout, the sum of phases).
pub const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);
/// The largest `weight` of a user scenario (their sum must not overflow).
pub const MAX_WEIGHT: u32 = 1_000_000;
/// Open files kept for the tool itself: the runtime, logs, the HTTP client's pool, listeners.
pub const RESERVED_FILES: u64 = 200;
/// Assumed where the limit cannot be read (not Linux): the limit of the machine this tool is
/// developed and measured on.
pub const DEFAULT_OPEN_FILES: u64 = 20_000;

/// This process's soft limit on open files.
pub fn open_files() -> u64 {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|text| parse_open_files(&text))
        .unwrap_or(DEFAULT_OPEN_FILES)
}

/// The soft "Max open files" of a /proc/PID/limits text ("unlimited" counts as u64::MAX).
fn parse_open_files(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line
        .trim_start_matches("Max open files")
        .split_whitespace()
        .next()?;
    if soft == "unlimited" {
        Some(u64::MAX)
    } else {
        soft.parse().ok()
    }
}

/// Sessions one generator can hold at once against `target`, with `open_files` files.
pub fn max_sessions_with(target: &Target, open_files: u64) -> u64 {
    let per_session = match target {
        // Both ends of every socket live in this process.
        Target::Embedded => 2,
        Target::Urls(_) => 1,
    };
    (open_files.saturating_sub(RESERVED_FILES) / per_session).max(1)
}

/// Sessions one generator can hold at once against `target` on this machine.
pub fn max_sessions(target: &Target) -> u64 {
    max_sessions_with(target, open_files())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_is_read_from_proc() {
        let text = "Limit                     Soft Limit           Hard Limit           Units     \n\
                    Max cpu time              unlimited            unlimited            seconds   \n\
                    Max open files            20000                40000                files     \n";
        assert_eq!(parse_open_files(text), Some(20_000));
        assert_eq!(
            parse_open_files(
                "Max open files            unlimited            unlimited            files"
            ),
            Some(u64::MAX)
        );
        assert_eq!(parse_open_files("nothing here"), None);
        if cfg!(target_os = "linux") {
            assert!(open_files() >= 64);
        }
    }

    #[test]
    fn embedded_sessions_cost_two_files() {
        let url = Target::Urls(vec![reqwest::Url::parse("http://127.0.0.1:7000").unwrap()]);
        assert_eq!(max_sessions_with(&url, 20_000), 19_800);
        assert_eq!(max_sessions_with(&Target::Embedded, 20_000), 9_900);
        assert_eq!(max_sessions_with(&Target::Embedded, 10), 1);
    }
}
