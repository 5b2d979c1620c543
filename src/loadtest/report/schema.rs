//! The report document: the serde types behind docs/REPORT_SCHEMA.md, field for field.
//!
//! Everything a reader of a saved report can rely on lives here; building, checking and
//! combining reports are in the sibling modules.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::loadtest::metrics::Latency;

/// Raised by any change a reader of an older report could misread; additions keep the version.
/// Version 2 added `timeseries` and the error kind `panic`.
pub const SCHEMA_VERSION: u32 = 2;

/// The versions this build reads: version 1 reports load without a time series.
pub const READABLE_VERSIONS: [u32; 2] = [1, SCHEMA_VERSION];

/// How `histograms` are encoded, stated in every report so other tools can decode them.
pub const HISTOGRAM_ENCODING: &str = "hdrhistogram-v2-deflate-base64";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    pub schema_version: u32,
    pub scenario: String,
    #[serde(with = "rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(with = "rfc3339")]
    pub finished_at: OffsetDateTime,
    pub duration_s: f64,
    pub sessions: Sessions,
    pub latency_ms: PerLatency<Summary>,
    pub delivery: Delivery,
    pub counters: Counters,
    pub thresholds: Vec<ThresholdResult>,
    pub generator: Generator,
    pub histograms: Histograms,
    /// The run over time; `None` in a version-1 report and in a merge that includes one.
    #[serde(default)]
    pub timeseries: Option<TimeSeries>,
}

/// The run interval by interval (docs/REPORT_SCHEMA.md, `timeseries`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeSeries {
    /// Length of every interval; interval starts are multiples of it since the Unix epoch.
    pub interval_ms: u64,
    /// Contiguous, in time order, from the interval the run started in to the one it ended in.
    pub intervals: Vec<Interval>,
    /// Phase starts and server restarts, in time order.
    pub marks: Vec<MarkEntry>,
}

/// One interval. Events count when they happened; latencies and deliveries count in the
/// interval their operation (or message) began in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Interval {
    #[serde(with = "rfc3339")]
    pub start: OffsetDateTime,
    pub sessions_started: u64,
    pub sessions_connected: u64,
    pub sessions_failed: u64,
    /// Only the reasons that occurred.
    pub failed_by_reason: BTreeMap<String, u64>,
    pub reconnects: u64,
    pub disconnects: u64,
    /// Only the reasons that occurred.
    pub disconnects_by_reason: BTreeMap<String, u64>,
    /// Sessions open at the end of the interval.
    pub open: u64,
    /// The most sessions open at once during the interval (merged: the sum over generators).
    pub peak_open: u64,
    pub messages_sent: u64,
    pub messages_received: u64,
    /// Of the messages sent in this interval.
    pub delivery_expected: u64,
    pub delivery_received: u64,
    /// `delivery_received / delivery_expected`; null when nothing was expected.
    pub delivery_completeness: Option<f64>,
    pub errors_total: u64,
    /// Only the kinds that occurred.
    pub errors_by_kind: BTreeMap<String, u64>,
    pub latency_ms: SeriesLatencies<Summary>,
    /// Null where the interval has no sample of that latency.
    pub histograms: SeriesLatencies<Option<String>>,
}

/// One value per latency drawn over time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeriesLatencies<T> {
    pub connect: T,
    pub ack: T,
    pub delivery: T,
}

impl<T> SeriesLatencies<T> {
    /// In the order of [`crate::loadtest::metrics::SERIES_LATENCIES`].
    pub fn as_array(&self) -> [&T; 3] {
        [&self.connect, &self.ack, &self.delivery]
    }

    pub fn from_array([connect, ack, delivery]: [T; 3]) -> SeriesLatencies<T> {
        SeriesLatencies {
            connect,
            ack,
            delivery,
        }
    }
}

/// A moment worth a vertical line on the charts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarkEntry {
    #[serde(with = "rfc3339")]
    pub at: OffsetDateTime,
    /// `phase`, `server_down` or `server_up`.
    pub kind: String,
    pub label: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sessions {
    pub started: u64,
    pub connected: u64,
    pub failed: u64,
    pub failed_by_reason: BTreeMap<String, u64>,
    /// Merged reports: the sum of each generator's peak (an upper bound of the true peak).
    pub peak_open: u64,
    pub open_at_end: u64,
}

/// One value per latency, in the fixed order of the schema.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerLatency<T> {
    pub connect: T,
    pub engine_open: T,
    pub ack: T,
    pub wait_for: T,
    pub delivery: T,
    pub http: T,
    pub schedule_lag: T,
}

impl<T> PerLatency<T> {
    pub fn get(&self, latency: Latency) -> &T {
        match latency {
            Latency::Connect => &self.connect,
            Latency::EngineOpen => &self.engine_open,
            Latency::Ack => &self.ack,
            Latency::WaitFor => &self.wait_for,
            Latency::Delivery => &self.delivery,
            Latency::Http => &self.http,
            Latency::ScheduleLag => &self.schedule_lag,
        }
    }

    pub(super) fn from_fn(mut f: impl FnMut(Latency) -> T) -> PerLatency<T> {
        PerLatency {
            connect: f(Latency::Connect),
            engine_open: f(Latency::EngineOpen),
            ack: f(Latency::Ack),
            wait_for: f(Latency::WaitFor),
            delivery: f(Latency::Delivery),
            http: f(Latency::Http),
            schedule_lag: f(Latency::ScheduleLag),
        }
    }
}

/// A latency distribution in milliseconds (microsecond resolution). All zero when count is 0.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Summary {
    pub count: u64,
    pub min: f64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Summary {
    pub fn of(h: &Histogram<u64>) -> Summary {
        if h.is_empty() {
            return Summary::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Summary {
            count: h.len(),
            min: ms(h.min()),
            // The mean is the only derived value that is not a recorded bucket; round it to µs.
            mean: (h.mean()).round() / 1000.0,
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p95: ms(h.value_at_quantile(0.95)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delivery {
    /// For each message sent, the sessions joined to its room at send time, summed.
    pub expected: u64,
    /// Arrivals of this run's messages (matched by nonce) at sessions.
    pub received: u64,
    /// received / expected as a ratio (0.999 = 99.9%); null when nothing was expected.
    pub completeness: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Counters {
    pub messages_sent: u64,
    pub messages_received: u64,
    pub reconnects: u64,
    pub disconnects_by_reason: BTreeMap<String, u64>,
    pub errors_total: u64,
    pub errors_by_kind: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdResult {
    pub expr: String,
    /// Milliseconds for latencies, a ratio for completeness, a count otherwise; null without data.
    pub value: Option<f64>,
    pub passed: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Generator {
    /// How many generator runs this report combines (1 for a single run).
    pub count: u32,
    pub version: String,
    /// Summed over generators.
    pub cpu_seconds: Option<f64>,
    /// The largest single generator's peak resident memory.
    pub peak_rss_bytes: Option<u64>,
    pub warnings: Vec<String>,
}

impl Default for Generator {
    fn default() -> Self {
        Generator {
            count: 1,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            cpu_seconds: None,
            peak_rss_bytes: None,
            warnings: Vec::new(),
        }
    }
}

// No deny_unknown_fields here: serde does not support it together with `flatten`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Histograms {
    pub encoding: String,
    /// The unit of recorded values.
    pub unit: String,
    #[serde(flatten)]
    pub data: PerLatency<String>,
}

/// RFC 3339 timestamps without turning on `time`'s serde feature for the whole crate.
pub(super) mod rfc3339 {
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _, ser::Error as _};
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;

    pub fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.format(&Rfc3339).map_err(S::Error::custom)?)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        let text = String::deserialize(d)?;
        OffsetDateTime::parse(&text, &Rfc3339)
            .map_err(|e| D::Error::custom(format!("`{text}` is not an RFC 3339 time: {e}")))
    }
}

/// One histogram as it is written into `histograms` ([`HISTOGRAM_ENCODING`]).
pub(super) fn encode(h: &Histogram<u64>) -> String {
    let mut bytes = Vec::new();
    // Serializing an in-memory histogram into a Vec cannot fail for valid histograms.
    if V2DeflateSerializer::new().serialize(h, &mut bytes).is_err() {
        return String::new();
    }
    B64.encode(bytes)
}

/// The inverse of [`encode`], with the reason when `text` is not such a histogram.
pub(super) fn decode(text: &str) -> Result<Histogram<u64>, String> {
    let bytes = B64
        .decode(text.trim())
        .map_err(|e| format!("not base64: {e}"))?;
    let mut h: Histogram<u64> = Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| format!("not an HdrHistogram V2 histogram: {e:?}"))?;
    h.auto(true);
    Ok(h)
}
