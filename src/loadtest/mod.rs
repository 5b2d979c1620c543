//! `load-test` and `report`: YAML scenarios, metrics, thresholds and reports.
//!
//! The runner that drives sessions builds on `src/client/` and is not here yet; everything it
//! needs around it is: a validated [`scenario::Scenario`], compiled [`template::Template`]s,
//! low-overhead [`metrics::Metrics`], [`thresholds::Threshold`]s and the [`report::Report`].

pub mod command;
pub mod metrics;
pub mod report;
pub mod scenario;
pub mod template;
pub mod thresholds;
pub mod yaml;
