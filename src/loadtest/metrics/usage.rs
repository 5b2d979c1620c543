//! What the generator process itself costs, for the report's `generator` section.

/// CPU seconds and peak resident memory of this process, read from /proc (Linux only; other
/// systems get `None` and the report says so).
pub fn process_usage() -> Option<(f64, u64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may contain spaces or parentheses; fields resume after the last ')'.
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the file, 12 and 13 after the name.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // USER_HZ is 100 on every Linux ABI in use; /proc reports in those ticks.
    let cpu = (utime + stime) / 100.0;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let hwm_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some((cpu, hwm_kb * 1024))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_usage_reads_proc_on_linux() {
        if cfg!(target_os = "linux") {
            let (cpu, rss) = process_usage().expect("/proc is readable");
            assert!(cpu >= 0.0 && rss > 0);
        }
    }
}
