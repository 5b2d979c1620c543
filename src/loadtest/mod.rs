//! `load-test` and `report`: YAML scenarios, metrics, thresholds and reports.
//!
//! `scenario` reads and validates the YAML (`yaml` locates every node, `template` compiles the
//! `{{...}}` strings); `setup` provisions the target, users and rooms before the clock starts;
//! `runner` drives the phases; `vu` is one virtual user on a `src/client/` session; `metrics`
//! records what they see; `report` turns it into the JSON document and its tables. `thresholds`
//! is the language of the pass/fail gates: `scenario` uses it to validate them and `report` to
//! evaluate them, and it uses neither. How the run uses the pieces:
//!
//! 1. [`scenario::load`] gives a validated [`scenario::Scenario`]; nothing it holds can fail to
//!    render or to be evaluated later, so a run never stops on a scenario mistake halfway.
//! 2. One `Arc<`[`metrics::Metrics`]`>` per run, built with the run's rooms
//!    ([`metrics::RoomTable`]), a random run id and the report's interval length
//!    ([`metrics::Metrics::with_clock`]). Each session task takes its own
//!    [`metrics::Recorder`] (`metrics.recorder()`), records latencies into it and drops it at
//!    the end (dropping flushes). Counters are methods on `Metrics` (`session_started`,
//!    `session_connected`, `session_failed(reason)`, `session_closed(reason)`, `error(kind)`);
//!    each is also counted in its interval, and each sample carries the interval its operation
//!    began in, so the report has the run over time (`metrics::series`).
//! 3. Joins and leaves go to `metrics.rooms` so a send knows how many deliveries to expect.
//!    Before a `post_message` (or emit), `metrics.message_sent(room, scheduled_at)` returns the
//!    nonce to put in [`template::Vars::nonce`]; a receiving session calls
//!    `recorder.delivered(content, now)` for every `serverMessage`.
//!    Joining is idempotent on the server, and the server joins a socket to every chat its user
//!    participates in when it connects (with dev rooms, the virtual user's own room). So a
//!    session keeps its stays in rooms, calls `rooms.join` on connect for the automatic room and
//!    only for a room it is not in yet, and `rooms.leave` before it leaves or disconnects.
//!    Sends, joins and leaves of a room take sequence numbers under the room's lock, and a
//!    delivery counts only if the message's number falls inside one of the receiver's stays,
//!    so expected and received agree exactly (see `vu.rs` for the leave barrier).
//! 4. In the open model, pass the *scheduled* instant as the reference and record
//!    [`metrics::Latency::ScheduleLag`] = actual start - scheduled start.
//! 5. The runner marks phase starts and server restarts (`metrics.mark`), and counts a virtual
//!    user whose task panicked as an error of kind `panic` (`metrics.user_panicked`).
//! 6. At the end: `metrics.snapshot()`, `metrics.series_values(now)`,
//!    [`report::Generator::measure`], [`report::Report::build`] with the scenario's thresholds
//!    and [`report::Report::with_series`]; exit 1 unless [`report::Report::passed`] (every
//!    threshold holds and nothing panicked). [`report::render_text`] prints it (with sparklines
//!    over time), [`report::render_html`] draws it as a page.

pub mod local_ips;
pub mod metrics;
pub mod progress;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod setup;
pub mod shard;
pub mod template;
pub mod thresholds;
pub mod vu;
pub mod workers;
pub mod yaml;
