//! Pass/fail gates such as `connect.p99 < 500ms` or `delivery.completeness >= 99.9%`.
//!
//! A threshold is evaluated against [`Measurements`], never against live state. The report is
//! the one implementation, so a merged report re-evaluates its thresholds from the merged data
//! exactly as a single run would.
//!
//! Dependencies point one way: `report` and `scenario` use this module, and this module uses
//! neither. The expression language (metric names, units, operators) is what a scenario is
//! validated with before anything runs, when no report exists; the report only answers "what
//! is the value of this metric" through [`Measurements`] and calls [`Threshold::evaluate`].
//! Keeping the language free of the report also keeps the report's schema free to change
//! without touching how thresholds are written.

use std::fmt;

use super::metrics::Latency;

/// A statistic of a latency histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stat {
    Count,
    Min,
    Mean,
    P50,
    P90,
    P95,
    P99,
    P999,
    Max,
}

impl Stat {
    pub const ALL: [Stat; 9] = [
        Stat::Count,
        Stat::Min,
        Stat::Mean,
        Stat::P50,
        Stat::P90,
        Stat::P95,
        Stat::P99,
        Stat::P999,
        Stat::Max,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Stat::Count => "count",
            Stat::Min => "min",
            Stat::Mean => "mean",
            Stat::P50 => "p50",
            Stat::P90 => "p90",
            Stat::P95 => "p95",
            Stat::P99 => "p99",
            Stat::P999 => "p999",
            Stat::Max => "max",
        }
    }
}

/// What a threshold measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    Latency(Latency, Stat),
    DeliveryCompleteness,
    DeliveryExpected,
    DeliveryReceived,
    SessionsStarted,
    SessionsConnected,
    SessionsFailed,
    SessionsPeakOpen,
    MessagesSent,
    MessagesReceived,
    Reconnects,
    Disconnects,
    ErrorsTotal,
}

/// The unit a metric's threshold value must be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    /// `us`, `ms` or `s`; compared in milliseconds.
    Time,
    /// `%`; compared as a ratio (99.9% = 0.999).
    Percent,
    /// A plain number.
    Count,
}

const COUNTERS: &[(&str, Metric)] = &[
    ("delivery.completeness", Metric::DeliveryCompleteness),
    ("delivery.expected", Metric::DeliveryExpected),
    ("delivery.received", Metric::DeliveryReceived),
    ("sessions.started", Metric::SessionsStarted),
    ("sessions.connected", Metric::SessionsConnected),
    ("sessions.failed", Metric::SessionsFailed),
    ("sessions.peak_open", Metric::SessionsPeakOpen),
    ("messages.sent", Metric::MessagesSent),
    ("messages.received", Metric::MessagesReceived),
    ("reconnects", Metric::Reconnects),
    ("disconnects", Metric::Disconnects),
    ("errors.total", Metric::ErrorsTotal),
];

impl Metric {
    pub fn parse(name: &str) -> Option<Metric> {
        if let Some((_, m)) = COUNTERS.iter().find(|(n, _)| *n == name) {
            return Some(*m);
        }
        let (latency, stat) = name.split_once('.')?;
        let latency = Latency::from_name(latency)?;
        let stat = Stat::ALL.into_iter().find(|s| s.name() == stat)?;
        Some(Metric::Latency(latency, stat))
    }

    /// Every valid name, for error messages.
    pub fn valid_names() -> String {
        let latencies: Vec<&str> = Latency::ALL.iter().map(|l| l.name()).collect();
        let stats: Vec<&str> = Stat::ALL.iter().map(|s| s.name()).collect();
        let counters: Vec<&str> = COUNTERS.iter().map(|(n, _)| *n).collect();
        format!(
            "<latency>.<stat> with latency one of {} and stat one of {}; or one of {}",
            latencies.join(", "),
            stats.join(", "),
            counters.join(", ")
        )
    }

    fn unit(self) -> Unit {
        match self {
            Metric::Latency(_, Stat::Count) => Unit::Count,
            Metric::Latency(..) => Unit::Time,
            Metric::DeliveryCompleteness => Unit::Percent,
            _ => Unit::Count,
        }
    }
}

/// Where a threshold finds the value of its metric: the report of a run (or of merged runs).
pub trait Measurements {
    /// The metric's value: milliseconds for latencies, a ratio for completeness, a count
    /// otherwise. `None` when there is nothing to measure (no samples, no expected deliveries):
    /// a gate without data fails rather than passing silently.
    fn value(&self, metric: Metric) -> Option<f64>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl Op {
    // Two-character operators first, so `<=` is not read as `<` followed by `=`.
    const TOKENS: [(&'static str, Op); 6] = [
        ("<=", Op::Le),
        (">=", Op::Ge),
        ("==", Op::Eq),
        ("!=", Op::Ne),
        ("<", Op::Lt),
        (">", Op::Gt),
    ];

    fn holds(self, value: f64, limit: f64) -> bool {
        // Values come from decimal text and µs-resolution histograms; an epsilon keeps
        // `== 0.1` and `>= 99.9%` from failing on binary rounding.
        let eps = 1e-9 * limit.abs().max(1.0);
        match self {
            Op::Lt => value < limit - eps,
            Op::Le => value <= limit + eps,
            Op::Gt => value > limit + eps,
            Op::Ge => value >= limit - eps,
            Op::Eq => (value - limit).abs() <= eps,
            Op::Ne => (value - limit).abs() > eps,
        }
    }

    fn symbol(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Eq => "==",
            Op::Ne => "!=",
        }
    }
}

/// A parsed threshold expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// The expression as written, echoed in reports.
    pub expr: String,
    pub metric: Metric,
    pub op: Op,
    /// The limit in the metric's unit: milliseconds, a ratio, or a count.
    pub limit: f64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ThresholdError {
    #[error(
        "`{0}` has no comparison: write METRIC OP VALUE with OP one of < <= > >= == !=, e.g. \"connect.p99 < 500ms\""
    )]
    NoOperator(String),
    #[error("unknown metric `{name}`: valid metrics are {valid}")]
    UnknownMetric { name: String, valid: String },
    #[error("`{0}` is not a number followed by a unit (e.g. 500ms, 1s, 250us, 99.9%, 0)")]
    BadValue(String),
    #[error(
        "`{metric}` is a time: write the limit with a unit, us, ms or s (e.g. 500ms), not `{value}`"
    )]
    NeedsTime { metric: String, value: String },
    #[error("`{metric}` is a percentage: write the limit with %, e.g. 99.9%, not `{value}`")]
    NeedsPercent { metric: String, value: String },
    #[error("`{metric}` is a count: write a plain number, not `{value}`")]
    NeedsCount { metric: String, value: String },
}

impl Threshold {
    pub fn parse(expr: &str) -> Result<Threshold, ThresholdError> {
        let (pos, token, op) = Op::TOKENS
            .iter()
            .filter_map(|(t, op)| expr.find(t).map(|p| (p, *t, *op)))
            // The leftmost operator wins; at equal position the two-character one (listed first).
            .min_by_key(|(p, _, _)| *p)
            .ok_or_else(|| ThresholdError::NoOperator(expr.to_owned()))?;
        let name = expr[..pos].trim();
        let value_text = expr[pos + token.len()..].trim();
        let metric = Metric::parse(name).ok_or_else(|| ThresholdError::UnknownMetric {
            name: name.to_owned(),
            valid: Metric::valid_names(),
        })?;
        let split = value_text
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
            .unwrap_or(value_text.len());
        let (number, unit) = value_text.split_at(split);
        let number: f64 = number
            .parse()
            .ok()
            .filter(|n: &f64| n.is_finite())
            .ok_or_else(|| ThresholdError::BadValue(value_text.to_owned()))?;
        let unit = unit.trim();
        let wrong = |make: fn(String, String) -> ThresholdError| {
            Err(make(name.to_owned(), value_text.to_owned()))
        };
        let limit = match (metric.unit(), unit) {
            (Unit::Time, "us" | "µs") => number / 1000.0,
            (Unit::Time, "ms") => number,
            (Unit::Time, "s") => number * 1000.0,
            (Unit::Time, _) => {
                return wrong(|metric, value| ThresholdError::NeedsTime { metric, value });
            }
            (Unit::Percent, "%") => number / 100.0,
            (Unit::Percent, _) => {
                return wrong(|metric, value| ThresholdError::NeedsPercent { metric, value });
            }
            (Unit::Count, "") => number,
            (Unit::Count, _) => {
                return wrong(|metric, value| ThresholdError::NeedsCount { metric, value });
            }
        };
        if matches!(metric.unit(), Unit::Time | Unit::Percent) && unit.is_empty() {
            return Err(ThresholdError::BadValue(value_text.to_owned()));
        }
        Ok(Threshold {
            expr: expr.trim().to_owned(),
            metric,
            op,
            limit,
        })
    }

    /// A measured value in the expression's terms: `812.345ms`, `99.950%`, `3`.
    pub fn format_value(&self, value: f64) -> String {
        match self.metric.unit() {
            Unit::Time => format!("{value:.3}ms"),
            Unit::Percent => format!("{:.3}%", value * 100.0),
            Unit::Count => format!("{value}"),
        }
    }

    /// Evaluate against measured values (a report): the value (None without data) and whether
    /// it holds.
    pub fn evaluate(&self, measured: &impl Measurements) -> (Option<f64>, bool) {
        let value = measured.value(self.metric);
        let passed = value.is_some_and(|v| self.op.holds(v, self.limit));
        (value, passed)
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.expr)
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_operator_and_unit() {
        let t = Threshold::parse("connect.p99 < 500ms").expect("parses");
        assert_eq!(t.metric, Metric::Latency(Latency::Connect, Stat::P99));
        assert_eq!((t.op, t.limit), (Op::Lt, 500.0));
        let t = Threshold::parse("delivery.completeness >= 99.9%").expect("parses");
        assert_eq!((t.metric, t.op), (Metric::DeliveryCompleteness, Op::Ge));
        assert!((t.limit - 0.999).abs() < 1e-12);
        let t = Threshold::parse("sessions.failed == 0").expect("parses");
        assert_eq!(
            (t.metric, t.op, t.limit),
            (Metric::SessionsFailed, Op::Eq, 0.0)
        );
        let t = Threshold::parse("ack.p95 <= 1s").expect("parses");
        assert_eq!((t.op, t.limit), (Op::Le, 1000.0));
        let t = Threshold::parse("errors.total < 10").expect("parses");
        assert_eq!((t.metric, t.limit), (Metric::ErrorsTotal, 10.0));
        let t = Threshold::parse("delivery.p999>250us").expect("parses without spaces");
        assert_eq!((t.op, t.limit), (Op::Gt, 0.25));
        let t = Threshold::parse("reconnects != 3").expect("parses");
        assert_eq!(t.op, Op::Ne);
    }

    #[test]
    fn errors_say_what_is_expected() {
        let e = Threshold::parse("conect.p99 < 5ms").expect_err("typo");
        let text = e.to_string();
        assert!(
            text.starts_with("unknown metric `conect.p99`: valid metrics are"),
            "{text}"
        );
        assert!(text.contains("connect, engine_open, ack"), "{text}");
        assert!(text.contains("delivery.completeness"), "{text}");
        assert!(matches!(
            Threshold::parse("connect.p99 500ms"),
            Err(ThresholdError::NoOperator(_))
        ));
        assert!(matches!(
            Threshold::parse("connect.p99 < 500"),
            Err(ThresholdError::NeedsTime { .. })
        ));
        assert!(matches!(
            Threshold::parse("delivery.completeness > 0.99"),
            Err(ThresholdError::NeedsPercent { .. })
        ));
        assert!(matches!(
            Threshold::parse("sessions.failed < 1ms"),
            Err(ThresholdError::NeedsCount { .. })
        ));
        assert!(matches!(
            Threshold::parse("connect.p99 < fast"),
            Err(ThresholdError::BadValue(_))
        ));
    }
}
