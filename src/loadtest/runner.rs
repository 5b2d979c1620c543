//! Drives a validated scenario: phases one after another, virtual users by the open or the
//! closed model, then the report.
//!
//! [`run`] reads as its steps: provision the target ([`setup::prepare`]), hold the embedded
//! server (restarting it mid-run when the scenario asks), drive every phase (`Driver::phase`:
//! a schedule of arrivals in the open model, a fixed set of looping users in the closed one),
//! give the users still running a grace period, then measure the generator and build the
//! report. Phase starts and server restarts are marked in the metrics, to be drawn on the
//! report's charts.
//!
//! A virtual user runs inside `catch_unwind`: a panic (a bug in this tool) is counted as an
//! error of kind `panic` with the user's number and message, and fails the run, instead of
//! vanishing into the task set while the run exits 0.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::FutureExt as _;
use time::OffsetDateTime;
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::metrics::{CounterValues, HistogramSet, MarkKind, Metrics, RoomTable, SeriesValues};
use super::progress::Progress;
use super::report::{Generator, Report, RunInfo};
use super::scenario::{Phase, RestartServer, Scenario, UserScenario};
use super::setup::{self, Prepared};
use super::shard::Shard;
use super::vu::{Shared, VirtualUser};

/// How often the progress line is redrawn.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// How a run is driven, beyond what its scenario says.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Draw the live progress line on stderr (when it is a terminal).
    pub show_progress: bool,
    /// Length of the report's time-series intervals.
    pub interval: Duration,
    /// The part of the scenario this generator runs (`--shard`).
    pub shard: Shard,
    /// A worker of `--workers`: progress as JSON status lines on stdout, for the parent.
    pub worker: bool,
    /// `--local-ips`: where the sessions' connections leave from; empty: the system's choice.
    pub local_ips: Arc<[std::net::IpAddr]>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            show_progress: false,
            interval: super::metrics::series::DEFAULT_INTERVAL,
            shard: Shard::WHOLE,
            worker: false,
            local_ips: Arc::from([]),
        }
    }
}

/// Time from the start of an open phase at which arrival `k` (0-based) is due, when the rate
/// ramps linearly from `from` to `to` per second over `duration`: the `k`-th crossing of the
/// cumulative arrival curve `N(t) = from*t + (to-from)*t^2/(2*duration)`.
pub fn arrival_offset(k: u64, from: f64, to: f64, duration: Duration) -> Duration {
    let k = k as f64;
    let d = duration.as_secs_f64();
    let curve = if d > 0.0 {
        (to - from) / (2.0 * d)
    } else {
        0.0
    };
    let t = if curve.abs() < 1e-12 {
        if from > 0.0 { k / from } else { f64::INFINITY }
    } else {
        (-from + (from * from + 4.0 * curve * k).max(0.0).sqrt()) / (2.0 * curve)
    };
    Duration::from_secs_f64(t.clamp(0.0, d.max(0.0)))
}

fn pick(scenarios: &[UserScenario]) -> &UserScenario {
    let total: u32 = scenarios.iter().map(|s| s.weight).sum();
    let mut ticket = fastrand::u32(0..total.max(1));
    for scenario in scenarios {
        if ticket < scenario.weight {
            return scenario;
        }
        ticket -= scenario.weight;
    }
    &scenarios[0]
}

/// Run `scenario` to its report.
pub async fn run(scenario: &Scenario, options: &RunOptions) -> anyhow::Result<Report> {
    let (shared, embedded) = share(
        setup::prepare(scenario, options.shard, &options.local_ips).await?,
        options.interval,
        options.shard,
    );
    let metrics = Arc::clone(&shared.metrics);
    let started_at = OffsetDateTime::now_utc();
    let wall = Instant::now();
    let server = EmbeddedServer::hold(
        embedded,
        scenario.setup.restart_server.as_ref(),
        wall,
        Arc::clone(&metrics),
    );

    let progress = if options.worker {
        Progress::for_worker()
    } else {
        Progress::new(options.show_progress, scenario.duration())
    };
    let mut driver = Driver::new(scenario, shared, progress, wall);
    let mut interrupted = false;
    for (index, phase) in scenario.phases.iter().enumerate() {
        if driver.phase(index, scenario.phases.len(), phase).await == Outcome::Interrupted {
            interrupted = true;
            break;
        }
    }
    let stopped = driver.finish(&mut interrupted).await;

    let elapsed = wall.elapsed();
    let embedded = server.release().await;
    let (counters, hists) = metrics.snapshot();
    let series = metrics.series_values(std::time::Instant::now());
    let mut generator = measure_generator(
        elapsed,
        &hists,
        embedded.is_some(),
        stopped,
        interrupted,
        scenario.grace_period,
    );
    if let Some(first) = metrics.first_panic() {
        generator.warnings.push(panic_warning(
            counters.errors_by_kind.get("panic").copied().unwrap_or(0),
            &first,
        ));
    }
    if let Some(server) = embedded {
        server.shutdown().await;
    }
    Ok(build_report(
        scenario, &counters, &hists, &series, started_at, generator,
    ))
}

/// The report's warning when virtual users panicked.
fn panic_warning(count: u64, first: &str) -> String {
    format!(
        "{count} virtual user(s) panicked, the first {first}: this is a bug in scmarket-ws (please report it); the run fails"
    )
}

/// What every virtual user of the run shares: the provisioned target, cookies and rooms, and
/// one [`Metrics`] built with the run's rooms, a random run id and intervals of `interval`.
fn share(
    prepared: Prepared,
    interval: Duration,
    shard: Shard,
) -> (Arc<Shared>, Option<setup::Embedded>) {
    let Prepared {
        nodes,
        cookies,
        rooms,
        auto_joined,
        embedded,
        total_vus,
    } = prepared;
    tracing::info!(
        target = %nodes[0].options.display_target(),
        nodes = nodes.len(),
        %shard,
        virtual_users = total_vus,
        rooms = rooms.len(),
        "setup done; starting phases"
    );
    let metrics = Arc::new(Metrics::with_clock(
        fastrand::u32(..),
        RoomTable::new(rooms.iter().cloned()),
        interval,
        std::time::Instant::now(),
        SystemTime::now(),
    ));
    let shared = Arc::new(Shared {
        metrics,
        nodes,
        shard,
        cookies,
        rooms,
        auto_joined,
        room_acks: std::sync::atomic::AtomicU8::new(0),
    });
    (shared, embedded)
}

/// The embedded server during the run: owned by a task while a restart is scheduled, so the
/// restart happens on time whatever the phases are doing.
enum EmbeddedServer {
    None,
    Held(setup::Embedded),
    Restarting {
        task: tokio::task::JoinHandle<setup::Embedded>,
        /// Tells the task the run is over, so a restart that is not due yet never happens.
        run_over: oneshot::Sender<()>,
    },
}

impl EmbeddedServer {
    /// Hold `embedded`; with `restart`, hand it to a task that restarts it `restart.at` after
    /// `wall`, marking when it went down and came back in `metrics`.
    fn hold(
        embedded: Option<setup::Embedded>,
        restart: Option<&RestartServer>,
        wall: Instant,
        metrics: Arc<Metrics>,
    ) -> EmbeddedServer {
        match (embedded, restart) {
            (Some(mut server), Some(restart)) => {
                let (run_over, rx) = oneshot::channel::<()>();
                let (at, down_for) = (wall + restart.at, restart.down_for);
                let task = tokio::spawn(async move {
                    tokio::select! {
                        _ = tokio::time::sleep_until(at) => {
                            tracing::info!(?down_for, "restarting the embedded server");
                            metrics.mark(
                                std::time::Instant::now(),
                                MarkKind::ServerDown,
                                format!("server stopped for {}", humantime::format_duration(down_for)),
                            );
                            match server.restart(down_for).await {
                                Ok(()) => metrics.mark(
                                    std::time::Instant::now(),
                                    MarkKind::ServerUp,
                                    "server listening again",
                                ),
                                Err(e) => tracing::error!(error = %e, "the embedded server did not come back"),
                            }
                        }
                        _ = rx => {}
                    }
                    server
                });
                EmbeddedServer::Restarting { task, run_over }
            }
            (Some(server), None) => EmbeddedServer::Held(server),
            (None, _) => EmbeddedServer::None,
        }
    }

    /// The server back from whoever holds it, once the run is over.
    async fn release(self) -> Option<setup::Embedded> {
        match self {
            EmbeddedServer::None => None,
            EmbeddedServer::Held(server) => Some(server),
            EmbeddedServer::Restarting { task, run_over } => {
                let _ = run_over.send(());
                task.await.ok()
            }
        }
    }
}

/// How a phase ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Its time was up and every arrival of its schedule was started.
    Done,
    /// Ctrl-C: no further phase starts, and the users still running are stopped at once.
    Interrupted,
}

/// Starts and reaps the virtual users of a run, phase after phase.
struct Driver {
    shared: Arc<Shared>,
    scenarios: Arc<[UserScenario]>,
    users: JoinSet<()>,
    next_vu: u64,
    progress: Progress,
    /// When the first phase started: the progress line's clock.
    wall: Instant,
    /// Pinned once for the whole run: a Ctrl-C during a phase or during the grace period stops
    /// the run. It is never polled again once it has fired.
    ctrl_c: Pin<Box<dyn Future<Output = std::io::Result<()>> + Send>>,
    /// The scenario's `grace_period`.
    grace_period: Duration,
}

impl Driver {
    fn new(scenario: &Scenario, shared: Arc<Shared>, progress: Progress, wall: Instant) -> Driver {
        Driver {
            shared,
            scenarios: scenario.scenarios.clone().into(),
            users: JoinSet::new(),
            next_vu: 0,
            progress,
            wall,
            ctrl_c: Box::pin(tokio::signal::ctrl_c()),
            grace_period: scenario.grace_period,
        }
    }

    /// The next virtual user number of the whole run, if it is this shard's.
    fn take_vu(&mut self) -> Option<u64> {
        let vu = self.next_vu;
        self.next_vu += 1;
        self.shared.shard.owns(vu).then_some(vu)
    }

    /// Run virtual user `vu`'s `body` as a task of the run. A panic is caught at the task's
    /// edge and counted (see the module comment).
    fn spawn_user(&mut self, vu: u64, body: impl Future<Output = ()> + Send + 'static) {
        let metrics = Arc::clone(&self.shared.metrics);
        self.users.spawn(async move {
            // The user's own state is dropped with the panic; what it shares (atomic counters,
            // the room table and histogram shards behind poison-tolerant locks) stays usable,
            // so observing it after the unwind is sound.
            if let Err(panic) = AssertUnwindSafe(body).catch_unwind().await {
                let message = panic_message(panic.as_ref());
                tracing::error!(vu, %message, "a virtual user panicked");
                metrics.user_panicked(vu, &message);
            }
        });
    }

    /// Closed model: a user that starts a scenario again each time it finishes one, until the
    /// phase ends (it finishes the one it is in).
    fn start_looping_user(&mut self, phase_end: Instant) {
        let Some(vu) = self.take_vu() else { return };
        let (shared, scenarios) = (Arc::clone(&self.shared), Arc::clone(&self.scenarios));
        self.spawn_user(vu, async move {
            let mut user = VirtualUser::new(shared, vu, None);
            while Instant::now() < phase_end {
                user.run(pick(&scenarios)).await;
            }
        });
    }

    /// Open model: a new user that runs one scenario, scheduled for `due` (its schedule lag is
    /// measured from there).
    fn start_arrival(&mut self, due: Instant) {
        let Some(vu) = self.take_vu() else { return };
        let (shared, scenarios) = (Arc::clone(&self.shared), Arc::clone(&self.scenarios));
        self.spawn_user(vu, async move {
            VirtualUser::new(shared, vu, Some(due))
                .run(pick(&scenarios))
                .await;
        });
    }

    /// Run phase `index` (0-based) of `count`: start its closed-model users at once, or its
    /// open-model arrivals as they fall due, until the phase's time is up.
    async fn phase(&mut self, index: usize, count: usize, phase: &Phase) -> Outcome {
        let label = phase_label(index, count, phase);
        let phase_start = Instant::now();
        self.shared
            .metrics
            .mark(phase_start.into_std(), MarkKind::Phase, label.clone());
        let phase_end = phase_start + phase.duration();
        let mut arrivals = match phase {
            Phase::Open { .. } => Some(arrival_schedule(phase, phase_start)),
            Phase::Closed { vus, .. } => {
                for _ in 0..*vus {
                    self.start_looping_user(phase_end);
                }
                None
            }
        };
        let mut next_arrival = arrivals.as_mut().and_then(|a| a.next());
        let mut tick = tokio::time::interval(PROGRESS_EVERY);
        loop {
            let wake = next_arrival.unwrap_or(phase_end).min(phase_end);
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => {}
                _ = tick.tick() => {
                    self.progress.update(&self.shared.metrics, &label, self.wall.elapsed());
                    self.shared.metrics.compact_series(std::time::Instant::now());
                    continue;
                }
                _ = &mut self.ctrl_c => return Outcome::Interrupted,
                // Reap finished users so the set does not grow with every arrival.
                Some(_) = self.users.join_next(), if !self.users.is_empty() => continue,
            }
            // Start every arrival that is due (several at once when the rate is high).
            while let Some(due) = next_arrival.filter(|at| *at <= Instant::now()) {
                self.start_arrival(due);
                next_arrival = arrivals.as_mut().and_then(|a| a.next());
            }
            if next_arrival.is_none() && Instant::now() >= phase_end {
                return Outcome::Done;
            }
        }
    }

    /// After the last phase: let users finish their scenarios for up to the scenario's
    /// `grace_period` (none after a Ctrl-C, and a Ctrl-C cuts it short), then stop the rest.
    /// Answers how many were stopped.
    async fn finish(&mut self, interrupted: &mut bool) -> usize {
        let grace_end = Instant::now() + self.grace_period;
        let mut tick = tokio::time::interval(PROGRESS_EVERY);
        while !*interrupted && !self.users.is_empty() {
            tokio::select! {
                _ = self.users.join_next() => {}
                _ = tick.tick() => {
                    self.progress.update(&self.shared.metrics, "finishing", self.wall.elapsed());
                    self.shared.metrics.compact_series(std::time::Instant::now());
                }
                _ = tokio::time::sleep_until(grace_end) => break,
                _ = &mut self.ctrl_c => *interrupted = true,
            }
        }
        let stopped = self.users.len();
        self.users.shutdown().await;
        self.progress.finish();
        stopped
    }
}

/// What the progress line says during a phase.
fn phase_label(index: usize, count: usize, phase: &Phase) -> String {
    let n = index + 1;
    match phase {
        Phase::Open {
            arrival_rate,
            ramp_to: Some(to),
            ..
        } => format!("phase {n}/{count} open {arrival_rate}->{to}/s"),
        Phase::Open { arrival_rate, .. } => format!("phase {n}/{count} open {arrival_rate}/s"),
        Phase::Closed { vus, .. } => format!("phase {n}/{count} closed {vus} vus"),
    }
}

/// When each session of an open phase is due, from `phase_start`: as many arrivals as the area
/// under the rate curve, spaced along it ([`arrival_offset`]). Empty for a closed phase.
fn arrival_schedule(phase: &Phase, phase_start: Instant) -> impl Iterator<Item = Instant> {
    let (count, from, to, duration) = match phase {
        Phase::Open {
            arrival_rate,
            ramp_to,
            duration,
        } => (
            phase.arrivals().map_or(0, |a| a.ceil() as u64),
            *arrival_rate,
            ramp_to.unwrap_or(*arrival_rate),
            *duration,
        ),
        Phase::Closed { .. } => (0, 0.0, 0.0, Duration::ZERO),
    };
    (0..count).map(move |k| phase_start + arrival_offset(k, from, to, duration))
}

/// The generator's cost over the run, with the warnings that qualify the results: the server
/// ran in this process, or users were stopped before they finished.
fn measure_generator(
    elapsed: Duration,
    hists: &HistogramSet,
    embedded: bool,
    stopped: usize,
    interrupted: bool,
    grace_period: Duration,
) -> Generator {
    let mut generator = Generator::measure(elapsed, hists);
    if embedded {
        generator.warnings.push(
            "target embedded: the server ran in this process, so the generator's CPU and memory include it; \
             target a separate `serve` to measure the generator alone"
                .to_string(),
        );
    }
    if stopped > 0 {
        generator.warnings.push(format!(
            "{stopped} virtual user(s) were stopped before finishing their flow ({})",
            if interrupted {
                "interrupted".to_string()
            } else {
                format!(
                    "grace period of {} after the last phase; a longer `grace_period:` lets them finish",
                    humantime::format_duration(grace_period)
                )
            }
        ));
    }
    generator
}

/// The run's report, its thresholds evaluated, with its time series; it finishes now.
fn build_report(
    scenario: &Scenario,
    counters: &CounterValues,
    hists: &HistogramSet,
    series: &SeriesValues,
    started_at: OffsetDateTime,
    generator: Generator,
) -> Report {
    Report::build(
        &scenario.name,
        counters,
        hists,
        RunInfo {
            started_at,
            finished_at: OffsetDateTime::now_utc(),
            generator,
        },
        &scenario.thresholds,
    )
    .with_series(series)
}

/// The text of a panic payload (`panic!` with a message gives a `&str` or a `String`).
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_rate_arrivals_are_evenly_spaced() {
        let d = Duration::from_secs(5);
        assert_eq!(arrival_offset(0, 50.0, 50.0, d), Duration::ZERO);
        assert_eq!(arrival_offset(50, 50.0, 50.0, d), Duration::from_secs(1));
        assert!((arrival_offset(249, 50.0, 50.0, d).as_secs_f64() - 4.98).abs() < 1e-9);
    }

    #[test]
    fn ramped_arrivals_follow_the_curve() {
        // 0 -> 100/s over 10 s: N(t) = 5 t^2, so arrival 500 (the last of 500) is due at 10 s
        // and arrival 125 at 5 s.
        let d = Duration::from_secs(10);
        assert!((arrival_offset(125, 0.0, 100.0, d).as_secs_f64() - 5.0).abs() < 1e-9);
        assert!((arrival_offset(500, 0.0, 100.0, d).as_secs_f64() - 10.0).abs() < 1e-9);
        // Ramps down too.
        let down = arrival_offset(10, 100.0, 0.0, d).as_secs_f64();
        assert!((down - 0.1005).abs() < 1e-3, "{down}");
    }

    /// A driver of `yaml`'s scenario whose users are spawned by hand, and its metrics.
    fn driver_of(yaml: &str) -> (Scenario, Driver, Arc<Metrics>) {
        let scenario = crate::loadtest::scenario::parse(yaml, "p.yaml", &Default::default())
            .expect("valid scenario");
        let metrics = Arc::new(Metrics::new(1, RoomTable::default()));
        let options =
            crate::client::ConnectOptions::new("http://127.0.0.1:9", None).expect("valid URL");
        let shared = Arc::new(Shared {
            metrics: Arc::clone(&metrics),
            nodes: Arc::from(vec![super::setup::TargetNode::new(options, &Arc::from([]))]),
            shard: Shard::WHOLE,
            cookies: Arc::from(vec!["scmarket.sid=x".to_owned()]),
            rooms: Arc::from(Vec::<String>::new()),
            auto_joined: false,
            room_acks: std::sync::atomic::AtomicU8::new(0),
        });
        let driver = Driver::new(
            &scenario,
            shared,
            Progress::new(false, Duration::ZERO),
            Instant::now(),
        );
        (scenario, driver, metrics)
    }

    /// Users still running after the last phase get the scenario's grace period, then stop.
    #[tokio::test]
    async fn users_still_running_are_stopped_after_the_grace_period() {
        let (_, mut driver, _) = driver_of(
            "name: g\nphases: [{ duration: 1s, vus: 2 }]\nscenarios: [{ name: a, steps: [connect] }]\ngrace_period: 300ms\n",
        );
        driver.spawn_user(1, tokio::time::sleep(Duration::from_millis(50)));
        driver.spawn_user(2, tokio::time::sleep(Duration::from_secs(60)));
        let started = Instant::now();
        let mut interrupted = false;
        assert_eq!(
            driver.finish(&mut interrupted).await,
            1,
            "the long one is stopped"
        );
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(300) && waited < Duration::from_secs(10),
            "{waited:?}"
        );
        let warning = measure_generator(
            waited,
            &HistogramSet::default(),
            false,
            1,
            false,
            Duration::from_millis(300),
        )
        .warnings
        .join("\n");
        assert!(warning.contains("grace period of 300ms"), "{warning}");
    }

    /// A virtual user that panics mid-run, next to one that finishes.
    #[tokio::test]
    async fn a_panicking_virtual_user_is_an_error_and_fails_the_run() {
        let (scenario, mut driver, metrics) = driver_of(
            "name: p\nphases: [{ duration: 1s, vus: 2 }]\nscenarios:\n  - name: a\n    steps: [connect]\n",
        );
        driver.spawn_user(41, async {});
        driver.spawn_user(42, async {
            tokio::task::yield_now().await;
            panic!("overflow when adding duration to instant");
        });
        let mut interrupted = false;
        assert_eq!(driver.finish(&mut interrupted).await, 0, "both tasks ended");

        let (counters, hists) = metrics.snapshot();
        assert_eq!(counters.errors_by_kind["panic"], 1);
        assert_eq!(
            metrics.first_panic().as_deref(),
            Some("virtual user 42: overflow when adding duration to instant")
        );
        let series = metrics.series_values(std::time::Instant::now());
        let report = build_report(
            &scenario,
            &counters,
            &hists,
            &series,
            OffsetDateTime::now_utc(),
            Generator::default(),
        );
        // No threshold fails, yet the run does not pass.
        assert!(report.all_thresholds_pass());
        assert_eq!(report.panics(), 1);
        assert!(!report.passed());
        assert_eq!(report.counters.errors_total, 1);
        let in_series: u64 = report
            .timeseries
            .as_ref()
            .expect("a time series")
            .intervals
            .iter()
            .map(|i| i.errors_by_kind.get("panic").copied().unwrap_or(0))
            .sum();
        assert_eq!(in_series, 1);
        assert!(panic_warning(1, "virtual user 42: boom").contains("bug in scmarket-ws"));
    }

    #[test]
    fn weights_pick_every_user_scenario() {
        let scenarios = [
            UserScenario {
                name: "a".into(),
                weight: 9,
                steps: vec![],
            },
            UserScenario {
                name: "b".into(),
                weight: 1,
                steps: vec![],
            },
        ];
        let mut b = 0;
        for _ in 0..10_000 {
            if pick(&scenarios).name == "b" {
                b += 1;
            }
        }
        assert!((700..1300).contains(&b), "{b}");
    }
}
