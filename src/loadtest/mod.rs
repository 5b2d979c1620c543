//! `load-test` and `report`: YAML scenarios, metrics, thresholds and reports.
//!
//! The runner that drives sessions builds on `src/client/` and is not here yet; everything
//! around it is. How a runner is meant to use these pieces:
//!
//! 1. [`scenario::load`] gives a validated [`scenario::Scenario`]; nothing it holds can fail to
//!    render or to be evaluated later, so a run never stops on a scenario mistake halfway.
//! 2. One `Arc<`[`metrics::Metrics`]`>` per run, built with the run's rooms
//!    ([`metrics::RoomTable`]) and a random run id. Each session task takes its own
//!    [`metrics::Recorder`] (`metrics.recorder()`), records latencies into it and drops it at
//!    the end (dropping flushes). Counters are methods on `Metrics` (`session_started`,
//!    `session_connected`, `session_failed(reason)`, `session_closed(reason)`, `error(kind)`).
//! 3. Joins and leaves go to `metrics.rooms` so a send knows how many deliveries to expect.
//!    Before a `post_message` (or emit), `metrics.message_sent(room, scheduled_at)` returns the
//!    nonce to put in [`template::Vars::nonce`]; a receiving session calls
//!    `recorder.delivered(content, now)` for every `serverMessage`.
//!    Joining is idempotent on the server, and the server joins a socket to every chat its user
//!    participates in when it connects (with dev rooms, the virtual user's own room). So a
//!    session must keep the set of rooms it is in, call `rooms.join` on connect for those
//!    automatic rooms and only for a room it is not in yet, and `rooms.leave` for each on
//!    disconnect; otherwise `received` can exceed `expected`.
//! 4. In the open model, pass the *scheduled* instant as the reference and record
//!    [`metrics::Latency::ScheduleLag`] = actual start - scheduled start.
//! 5. At the end: `metrics.snapshot()`, [`report::Generator::measure`], [`report::Report::build`]
//!    with the scenario's thresholds; exit 1 unless [`report::Report::all_thresholds_pass`].

pub mod command;
pub mod metrics;
pub mod progress;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod setup;
pub mod template;
pub mod thresholds;
pub mod vu;
pub mod yaml;
