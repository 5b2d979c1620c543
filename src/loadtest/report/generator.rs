//! What a run cost the generator, and whether the generator rather than the server may be
//! what the numbers measure.

use crate::loadtest::metrics::{self, HistogramSet, Latency};

use super::Generator;
use super::rounded;

/// Share of its CPUs above which the generator may be what is being measured.
const CPU_WARNING_SHARE: f64 = 0.8;
/// Open-model schedule lag (p99) above which arrivals were not started on time.
const LAG_WARNING_MS: f64 = 50.0;

impl Generator {
    /// This process's cost so far, with warnings when it, not the server, may be the bottleneck.
    pub fn measure(wall: std::time::Duration, hists: &HistogramSet) -> Generator {
        let usage = metrics::process_usage();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let lag = hists.get(Latency::ScheduleLag);
        let lag_p99 = (!lag.is_empty()).then(|| lag.value_at_quantile(0.99) as f64 / 1000.0);
        Generator {
            cpu_seconds: usage.map(|(cpu, _)| rounded(cpu)),
            peak_rss_bytes: usage.map(|(_, rss)| rss),
            warnings: bottleneck_warnings(
                usage.map(|(cpu, _)| cpu),
                wall.as_secs_f64(),
                cores,
                lag_p99,
            ),
            ..Generator::default()
        }
    }
}

/// Why the results may describe the generator rather than the server.
pub fn bottleneck_warnings(
    cpu_seconds: Option<f64>,
    wall_seconds: f64,
    cores: usize,
    schedule_lag_p99_ms: Option<f64>,
) -> Vec<String> {
    let mut warnings = Vec::new();
    if let Some(cpu) = cpu_seconds
        && wall_seconds > 0.0
    {
        let share = cpu / (wall_seconds * cores as f64);
        if share > CPU_WARNING_SHARE {
            warnings.push(format!(
                "the generator used {:.0}% of its {cores} CPU(s): latencies may include its own queueing; run fewer sessions per generator or merge several",
                share * 100.0
            ));
        }
    }
    if let Some(lag) = schedule_lag_p99_ms
        && lag > LAG_WARNING_MS
    {
        warnings.push(format!(
            "schedule lag p99 is {lag:.1}ms: sessions started late, the generator could not keep the arrival rate"
        ));
    }
    warnings
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generator_warns_when_it_is_the_bottleneck() {
        assert!(bottleneck_warnings(Some(1.0), 10.0, 2, Some(1.0)).is_empty());
        let w = bottleneck_warnings(Some(18.0), 10.0, 2, None);
        assert_eq!(w.len(), 1);
        assert!(
            w[0].starts_with("the generator used 90% of its 2 CPU(s)"),
            "{w:?}"
        );
        let w = bottleneck_warnings(None, 10.0, 2, Some(120.0));
        assert!(w[0].starts_with("schedule lag p99 is 120.0ms"), "{w:?}");
        let g = Generator::measure(std::time::Duration::from_secs(1), &HistogramSet::default());
        if cfg!(target_os = "linux") {
            assert!(g.cpu_seconds.is_some() && g.peak_rss_bytes.is_some());
        }
    }
}
