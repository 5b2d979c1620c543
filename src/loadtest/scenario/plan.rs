//! What `load-test --check` prints: the plan of a valid scenario, without connecting anywhere.

use std::fmt::Write as _;
use std::time::Duration;

use super::{Phase, Rooms, Scenario, Step, Target, Users};

fn human(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

impl Scenario {
    /// What `load-test --check` prints: the plan, without connecting anywhere.
    pub fn plan(&self) -> String {
        let mut out = String::new();
        let target = match &self.target {
            Target::Embedded => "embedded (serve --dev in-process, sqlite::memory:)".to_owned(),
            Target::Urls(urls) if urls.len() == 1 => urls[0].to_string(),
            Target::Urls(urls) => format!(
                "{} nodes ({}), virtual user N on node N mod {}",
                urls.len(),
                urls.iter()
                    .map(|u| u.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                urls.len()
            ),
        };
        // Writing to a String cannot fail.
        let _ = writeln!(out, "scenario {}: valid", self.name);
        let _ = writeln!(out, "target    {target}, path {}", self.engine_path);
        let users = match &self.setup.users {
            Users::Template(t) => format!("dev login as \"{t}\""),
            Users::SessionsFile(p) => format!("sessions from {}", p.display()),
            Users::None => "no credentials (users: none)".to_string(),
        };
        let rooms = match &self.setup.rooms {
            None => "no rooms".to_owned(),
            Some(Rooms::Count(n)) => {
                format!("{n} dev-created room(s), virtual user N in room N mod {n}")
            }
            Some(Rooms::Ids(ids)) => format!("{} existing room(s)", ids.len()),
        };
        let _ = writeln!(out, "setup     {users}; {rooms}");
        if let Some(r) = &self.setup.restart_server {
            let _ = writeln!(
                out,
                "restart   the embedded server stops {:?} into the run and listens again {:?} later",
                r.at, r.down_for
            );
        }
        let _ = writeln!(
            out,
            "phases    (run one after another, {} in all)",
            human(self.duration())
        );
        let mut arrivals = 0.0;
        let mut peak_vus = 0;
        for (i, phase) in self.phases.iter().enumerate() {
            match phase {
                Phase::Open {
                    duration,
                    arrival_rate,
                    ramp_to,
                } => {
                    let rate = match ramp_to {
                        Some(to) => format!("{arrival_rate}/s ramping to {to}/s"),
                        None => format!("{arrival_rate}/s"),
                    };
                    let n = phase.arrivals().unwrap_or(0.0);
                    arrivals += n;
                    let _ = writeln!(
                        out,
                        "  {}. open    {:>8}  {rate}: about {} new sessions",
                        i + 1,
                        human(*duration),
                        n.round()
                    );
                }
                Phase::Closed { duration, vus } => {
                    peak_vus = peak_vus.max(*vus);
                    let _ = writeln!(
                        out,
                        "  {}. closed  {:>8}  {vus} virtual users kept busy (each starts again when it finishes)",
                        i + 1,
                        human(*duration)
                    );
                }
            }
        }
        let total: u32 = self.scenarios.iter().map(|s| s.weight).sum();
        let _ = writeln!(out, "scenarios (a virtual user picks one by weight)");
        for scenario in &self.scenarios {
            let share = f64::from(scenario.weight) / f64::from(total.max(1));
            let _ = writeln!(
                out,
                "  {:<16} weight {:>3} ({:>5.1}%), {} step(s)",
                scenario.name,
                scenario.weight,
                share * 100.0,
                count_steps(&scenario.steps)
            );
        }
        let mut expected = Vec::new();
        if arrivals > 0.0 {
            expected.push(format!("about {} from open phases", arrivals.round()));
        }
        if peak_vus > 0 {
            expected.push(format!("at least {peak_vus} from closed phases"));
        }
        let _ = writeln!(out, "sessions  {}", expected.join(", "));
        let _ = writeln!(
            out,
            "grace     {} after the last phase for users still running",
            humantime::format_duration(self.grace_period)
        );
        if self.thresholds.is_empty() {
            let _ = writeln!(out, "thresholds none (exit 0 whatever the results)");
        } else {
            let _ = writeln!(out, "thresholds");
            for t in &self.thresholds {
                let _ = writeln!(out, "  {t}");
            }
        }
        out
    }
}

fn count_steps(steps: &[Step]) -> usize {
    steps
        .iter()
        .map(|s| match s {
            Step::Loop { steps, .. } => 1 + count_steps(steps),
            _ => 1,
        })
        .sum()
}
