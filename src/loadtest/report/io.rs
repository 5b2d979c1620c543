//! A report as a file: JSON out, and JSON in with every check a hand-edited or truncated file
//! would fail.

use std::path::Path;

use crate::loadtest::metrics::{HistogramSet, Latency};
use crate::loadtest::thresholds::{Threshold, ThresholdError};

use super::schema::decode;
use super::{HISTOGRAM_ENCODING, READABLE_VERSIONS, Report, SCHEMA_VERSION};

/// Why a report could not be read, merged or written; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not a load-test report: {message}")]
    Invalid { path: String, message: String },
    #[error(
        "{path}: schema_version {found} is not supported by this build (it reads 1 and {SCHEMA_VERSION})"
    )]
    Version { path: String, found: String },
    #[error("cannot merge reports of different scenarios: {0}")]
    Scenarios(String),
    #[error("{path}: cannot write: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

impl Report {
    /// Decode every histogram.
    pub fn histogram_set(&self) -> Result<HistogramSet, String> {
        let mut set = HistogramSet::default();
        for latency in Latency::ALL {
            let h = decode(self.histograms.data.get(latency))
                .map_err(|e| format!("histograms.{}: {e}", latency.name()))?;
            set.get_mut(latency)
                .add(&h)
                .map_err(|e| format!("histograms.{}: {e:?}", latency.name()))?;
        }
        Ok(set)
    }

    /// The threshold expressions this report was evaluated with, parsed again.
    pub fn parsed_thresholds(&self) -> Result<Vec<Threshold>, ThresholdError> {
        self.thresholds
            .iter()
            .map(|t| Threshold::parse(&t.expr))
            .collect()
    }

    pub fn to_json(&self) -> String {
        // A Report holds only strings, numbers and maps with string keys: always serializable.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Parse and check a report: the version, the histograms, and that the summaries agree
    /// with the histograms (a hand-edited or truncated file is refused, not half-used).
    pub fn from_json(text: &str, path: &str) -> Result<Report, ReportError> {
        let invalid = |message: String| ReportError::Invalid {
            path: path.to_owned(),
            message,
        };
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| invalid(format!("not JSON ({e})")))?;
        match value.get("schema_version") {
            Some(v)
                if v.as_u64()
                    .is_some_and(|v| READABLE_VERSIONS.iter().any(|r| u64::from(*r) == v)) => {}
            Some(v) => {
                return Err(ReportError::Version {
                    path: path.to_owned(),
                    found: v.to_string(),
                });
            }
            None => return Err(invalid("no `schema_version` field".into())),
        }
        let report: Report = serde_json::from_value(value).map_err(|e| invalid(e.to_string()))?;
        if report.histograms.encoding != HISTOGRAM_ENCODING {
            return Err(invalid(format!(
                "histograms.encoding is `{}`, expected `{HISTOGRAM_ENCODING}`",
                report.histograms.encoding
            )));
        }
        let hists = report.histogram_set().map_err(&invalid)?;
        for latency in Latency::ALL {
            let in_summary = report.latency_ms.get(latency).count;
            let in_histogram = hists.get(latency).len();
            if in_summary != in_histogram {
                return Err(invalid(format!(
                    "latency_ms.{name}.count is {in_summary} but histograms.{name} holds {in_histogram} samples",
                    name = latency.name()
                )));
            }
        }
        report
            .parsed_thresholds()
            .map_err(|e| invalid(format!("thresholds: {e}")))?;
        if let Some(series) = &report.timeseries {
            if report.schema_version < 2 {
                return Err(invalid(
                    "timeseries appeared in schema version 2, this report says version 1".into(),
                ));
            }
            series.check(&report).map_err(&invalid)?;
        }
        Ok(report)
    }

    pub fn load(path: &Path) -> Result<Report, ReportError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ReportError::Read {
            path: name.clone(),
            source,
        })?;
        Report::from_json(&text, &name)
    }

    pub fn save(&self, path: &Path) -> Result<(), ReportError> {
        std::fs::write(path, self.to_json() + "\n").map_err(|source| ReportError::Write {
            path: path.display().to_string(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as B64;

    use super::super::fixtures::*;
    use super::*;

    #[test]
    fn json_round_trip_is_lossless() {
        let r = Report::build(
            "x",
            &counters(10, 1, 10, 9),
            &record(&samples(3, 700)),
            run(5, 5),
            &thresholds(),
        );
        let back = Report::from_json(&r.to_json(), "r.json").expect("loads");
        assert_eq!(back, r);
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        let r = Report::build(
            "x",
            &counters(10, 0, 10, 10),
            &record(&samples(4, 70)),
            run(5, 5),
            &[],
        );
        let good = r.to_json();
        let err = |text: &str| {
            Report::from_json(text, "f.json")
                .expect_err("refused")
                .to_string()
        };
        assert!(err("{").starts_with("f.json: not a load-test report: not JSON"));
        assert_eq!(
            err("{}"),
            "f.json: not a load-test report: no `schema_version` field"
        );
        assert!(
            err(&good.replacen("\"schema_version\": 2", "\"schema_version\": 9", 1))
                .contains("schema_version 9 is not supported")
        );
        let edited = good.replacen("\"count\": 10,", "\"count\": 11,", 1);
        assert!(
            err(&edited)
                .contains("latency_ms.connect.count is 11 but histograms.connect holds 10 samples"),
            "{}",
            err(&edited)
        );
        let mut v: serde_json::Value = serde_json::from_str(&good).expect("json");
        v["histograms"]["ack"] = "!!!".into();
        assert!(err(&v.to_string()).contains("histograms.ack: not base64"));
        v["histograms"]["ack"] = B64.encode(b"not a histogram").into();
        assert!(err(&v.to_string()).contains("histograms.ack: not an HdrHistogram"));
        let mut v: serde_json::Value = serde_json::from_str(&good).expect("json");
        v["sessions"]["extra"] = 1.into();
        assert!(err(&v.to_string()).contains("unknown field `extra`"));
        let mut v: serde_json::Value = serde_json::from_str(&good).expect("json");
        v["thresholds"] = serde_json::json!([{"expr": "nope < 1", "value": null, "passed": false}]);
        assert!(err(&v.to_string()).contains("thresholds: unknown metric `nope`"));
    }
}
