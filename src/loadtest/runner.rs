//! Drives a validated scenario: phases one after another, virtual users by the open or the
//! closed model, then the report.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::metrics::{Metrics, RoomTable};
use super::progress::Progress;
use super::report::{Generator, Report, RunInfo};
use super::scenario::{Flow, Phase, Scenario};
use super::setup::{self, Prepared};
use super::vu::{Shared, VirtualUser};

/// How long virtual users still running when the last phase ends may take to finish their
/// flow before they are stopped.
pub const GRACE: Duration = Duration::from_secs(30);

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

fn pick(flows: &[Flow]) -> &Flow {
    let total: u32 = flows.iter().map(|f| f.weight).sum();
    let mut ticket = fastrand::u32(0..total.max(1));
    for flow in flows {
        if ticket < flow.weight {
            return flow;
        }
        ticket -= flow.weight;
    }
    &flows[0]
}

enum EmbeddedServer {
    None,
    Held(setup::Embedded),
    Restarting(tokio::task::JoinHandle<setup::Embedded>),
}

pub async fn run(scenario: &Scenario, show_progress: bool) -> anyhow::Result<Report> {
    let Prepared {
        options,
        api,
        cookies,
        rooms,
        auto_joined,
        embedded,
        total_vus,
    } = setup::prepare(scenario).await?;
    tracing::info!(
        target = %options.display_target(),
        virtual_users = total_vus,
        rooms = rooms.len(),
        "setup done; starting phases"
    );
    let metrics = Arc::new(Metrics::new(
        fastrand::u32(..),
        RoomTable::new(rooms.iter().cloned()),
    ));
    let shared = Arc::new(Shared {
        metrics: Arc::clone(&metrics),
        options,
        cookies,
        rooms,
        auto_joined,
        api,
        room_acks: std::sync::atomic::AtomicU8::new(0),
    });
    let flows: Arc<[Flow]> = scenario.flows.clone().into();

    let started_at = OffsetDateTime::now_utc();
    let wall = Instant::now();
    // The embedded server, owned by a task while a restart is scheduled.
    let (embedded_task, run_over) = match (embedded, &scenario.setup.restart_server) {
        (Some(mut server), Some(restart)) => {
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let (at, down_for) = (wall + restart.at, restart.down_for);
            let task = tokio::spawn(async move {
                tokio::select! {
                    _ = tokio::time::sleep_until(at) => {
                        tracing::info!(?down_for, "restarting the embedded server");
                        if let Err(e) = server.restart(down_for).await {
                            tracing::error!(error = %e, "the embedded server did not come back");
                        }
                    }
                    _ = rx => {}
                }
                server
            });
            (EmbeddedServer::Restarting(task), Some(tx))
        }
        (Some(server), None) => (EmbeddedServer::Held(server), None),
        (None, _) => (EmbeddedServer::None, None),
    };
    let progress = Progress::new(show_progress, scenario.duration());
    let mut users = JoinSet::new();
    let mut next_vu = 0u64;
    let mut interrupted = false;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);

    'phases: for (index, phase) in scenario.phases.iter().enumerate() {
        let label = match phase {
            Phase::Open {
                arrival_rate,
                ramp_to,
                ..
            } => match ramp_to {
                Some(to) => format!(
                    "phase {}/{} open {arrival_rate}->{to}/s",
                    index + 1,
                    scenario.phases.len()
                ),
                None => format!(
                    "phase {}/{} open {arrival_rate}/s",
                    index + 1,
                    scenario.phases.len()
                ),
            },
            Phase::Closed { vus, .. } => {
                format!(
                    "phase {}/{} closed {vus} vus",
                    index + 1,
                    scenario.phases.len()
                )
            }
        };
        let phase_start = Instant::now();
        let phase_end = phase_start + phase.duration();
        // Arrivals still to schedule in this phase (open model), or none.
        let mut arrivals = match phase {
            Phase::Open {
                arrival_rate,
                ramp_to,
                duration,
            } => {
                let count = phase.arrivals().map_or(0, |a| a.ceil() as u64);
                let (from, to, duration) =
                    (*arrival_rate, ramp_to.unwrap_or(*arrival_rate), *duration);
                Some((0..count).map(move |k| phase_start + arrival_offset(k, from, to, duration)))
            }
            Phase::Closed { vus, .. } => {
                for _ in 0..*vus {
                    let vu = next_vu;
                    next_vu += 1;
                    let (shared, flows) = (Arc::clone(&shared), Arc::clone(&flows));
                    users.spawn(async move {
                        // Closed model: the same user starts again until its phase ends.
                        let mut user = VirtualUser::new(shared, vu, None);
                        while Instant::now() < phase_end {
                            user.run(pick(&flows)).await;
                        }
                    });
                }
                None
            }
        };
        let mut next_arrival = arrivals.as_mut().and_then(|a| a.next());
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            let wake = next_arrival.unwrap_or(phase_end).min(phase_end);
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => {}
                _ = tick.tick() => {
                    progress.update(&metrics, &label, wall.elapsed());
                    continue;
                }
                _ = &mut ctrl_c => {
                    interrupted = true;
                    break 'phases;
                }
                // Reap finished users so the set does not grow with every arrival.
                Some(_) = users.join_next(), if !users.is_empty() => continue,
            }
            // Start every arrival that is due (several at once when the rate is high).
            while let Some(due) = next_arrival.filter(|at| *at <= Instant::now()) {
                let vu = next_vu;
                next_vu += 1;
                let (shared, flows) = (Arc::clone(&shared), Arc::clone(&flows));
                users.spawn(async move {
                    VirtualUser::new(shared, vu, Some(due))
                        .run(pick(&flows))
                        .await;
                });
                next_arrival = arrivals.as_mut().and_then(|a| a.next());
            }
            if next_arrival.is_none() && Instant::now() >= phase_end {
                break;
            }
        }
    }

    // Let users finish their flows, up to the grace period.
    let grace_end = Instant::now() + GRACE;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    while !interrupted && !users.is_empty() {
        tokio::select! {
            _ = users.join_next() => {}
            _ = tick.tick() => progress.update(&metrics, "finishing", wall.elapsed()),
            _ = tokio::time::sleep_until(grace_end) => break,
            _ = &mut ctrl_c => interrupted = true,
        }
    }
    let stopped = users.len();
    users.shutdown().await;
    progress.finish();

    let elapsed = wall.elapsed();
    if let Some(tx) = run_over {
        let _ = tx.send(());
    }
    let embedded = match embedded_task {
        EmbeddedServer::None => None,
        EmbeddedServer::Held(server) => Some(server),
        EmbeddedServer::Restarting(task) => task.await.ok(),
    };
    let (counters, hists) = metrics.snapshot();
    let mut generator = Generator::measure(elapsed, &hists);
    if embedded.is_some() {
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
                "interrupted"
            } else {
                "grace period of 30 s after the last phase"
            }
        ));
    }
    if let Some(server) = embedded {
        server.shutdown().await;
    }
    let report = Report::build(
        &scenario.name,
        &counters,
        &hists,
        RunInfo {
            started_at,
            finished_at: OffsetDateTime::now_utc(),
            generator,
        },
        &scenario.thresholds,
    );
    Ok(report)
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

    #[test]
    fn weights_pick_every_flow() {
        use super::super::scenario::Flow;
        let flows = [
            Flow {
                name: "a".into(),
                weight: 9,
                steps: vec![],
            },
            Flow {
                name: "b".into(),
                weight: 1,
                steps: vec![],
            },
        ];
        let mut b = 0;
        for _ in 0..10_000 {
            if pick(&flows).name == "b" {
                b += 1;
            }
        }
        assert!((700..1300).contains(&b), "{b}");
    }
}
