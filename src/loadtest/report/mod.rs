//! The load-test report: a stable JSON document (docs/REPORT_SCHEMA.md), its human view, and
//! the merge and compare operations behind `report merge` and `report compare`.
//!
//! Each latency histogram travels inside the report (HdrHistogram V2 + DEFLATE, base64), so
//! merging reports from several generators adds histograms, never averages percentiles: the
//! merged p99 is the p99 of all samples.
//!
//! - `schema`: the document itself, the types serde reads and writes;
//! - `build`: a report from a run's counters and histograms, and the values its thresholds are
//!   checked against (the report implements [`crate::loadtest::thresholds::Measurements`]; the
//!   thresholds module does not know reports, see its module comment);
//! - `generator`: what the run cost the generator, and the warnings when it was the bottleneck;
//! - `io`: saving, and loading with every check;
//! - `series`: the time series (per-interval counters and histograms): built, checked, and
//!   combined when reports merge;
//! - `merge`, `compare`: `report merge` and `report compare`;
//! - `text`: the tables printed for people, with sparklines of the run over time;
//! - `html`: the self-contained page of `report html` and `load-test --html`, with charts.

mod build;
mod compare;
mod generator;
mod html;
mod io;
mod merge;
mod schema;
mod series;
mod text;

#[cfg(test)]
mod fixtures;

pub use build::RunInfo;
pub use compare::{CompareRow, compare};
pub use generator::bottleneck_warnings;
pub use html::render_html;
pub use io::ReportError;
pub use merge::merge;
pub use schema::{
    Counters, Delivery, Generator, HISTOGRAM_ENCODING, Histograms, Interval, MarkEntry, PerLatency,
    READABLE_VERSIONS, Report, SCHEMA_VERSION, SeriesLatencies, Sessions, Summary, ThresholdResult,
    TimeSeries,
};
pub use series::merge_series;
pub use text::{render_compare, render_text};

/// Derived numbers (ratios, CPU seconds, threshold values) are written with six decimals, so a
/// report does not carry binary noise such as 0.9990000000000001.
fn rounded(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}
