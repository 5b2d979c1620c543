//! What the client commands print: stream lines, timestamps, colours, cut text.

use std::io::IsTerminal;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use time::{OffsetDateTime, UtcOffset};

static LOCAL_OFFSET: OnceLock<UtcOffset> = OnceLock::new();

/// Read the local UTC offset; call while the process is single-threaded (the `time` crate
/// refuses to read it later, because other threads could change the environment).
pub fn init_local_offset() {
    let offset = UtcOffset::current_local_offset().unwrap_or(UtcOffset::UTC);
    let _ = LOCAL_OFFSET.set(offset);
}

/// Print one line of a stream; false once stdout is gone (e.g. `listen | head -3`), so the
/// stream can end quietly instead of panicking inside `println!`.
pub(crate) fn emit_line(line: &str) -> bool {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").and_then(|_| out.flush()).is_ok()
}

/// RFC 3339 in UTC with milliseconds, for JSON output.
pub(crate) fn rfc3339(at: SystemTime) -> String {
    crate::protocol::WireTimestamp(OffsetDateTime::from(at)).to_string()
}

/// `HH:MM:SS.mmm` in local time, for the human view.
pub(crate) fn local_clock(at: SystemTime) -> String {
    let offset = LOCAL_OFFSET.get().copied().unwrap_or(UtcOffset::UTC);
    let t = OffsetDateTime::from(at).to_offset(offset);
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

pub(crate) fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

/// Colours only for a terminal, and never with NO_COLOR set.
pub(crate) struct Style {
    on: bool,
}

impl Style {
    pub(crate) fn for_stdout() -> Self {
        Style {
            on: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        }
    }
    pub(crate) fn paint(&self, code: &str, text: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
    pub(crate) fn is_terminal(&self) -> bool {
        self.on
    }
}

/// Cut text to `max` characters, marking the cut.
pub(crate) fn cut(text: &str, max: usize) -> String {
    let single_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if single_line.chars().count() <= max {
        single_line
    } else {
        let mut out: String = single_line.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutting_marks_the_cut_and_flattens_lines() {
        assert_eq!(cut("hello", 10), "hello");
        assert_eq!(cut("hello world", 6), "hello…");
        assert_eq!(cut("a\nb", 10), "a b");
    }

    #[test]
    fn timestamps() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_767_323_045_678);
        assert_eq!(rfc3339(at), "2026-01-02T03:04:05.678Z");
        assert_eq!(local_clock(at).len(), 12);
    }
}
