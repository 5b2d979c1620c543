//! `phases`: open (arrival rate, optionally ramping) or closed (virtual users kept busy).

use crate::loadtest::yaml::{Node, Value};

use super::super::Phase;
use super::Validator;

const PHASE_FIELDS: &[&str] = &["duration", "arrival_rate", "ramp_to", "vus"];

impl Validator {
    pub(super) fn phases(&mut self, node: &Node) -> Option<Vec<Phase>> {
        let Value::Seq(items) = &node.value else {
            self.expected(node, "phases", "a list of phases");
            return None;
        };
        if items.is_empty() {
            self.error(
                &node.loc,
                "`phases` is empty: add at least one, e.g. { duration: 30s, vus: 10 }",
            );
            return None;
        }
        let phases: Vec<Option<Phase>> = items.iter().map(|p| self.phase(p)).collect();
        phases.into_iter().collect()
    }

    pub(super) fn phase(&mut self, node: &Node) -> Option<Phase> {
        let f = self.fields(node, "a phase", PHASE_FIELDS)?;
        let duration = self
            .required(&f, "duration", "a phase")
            .and_then(|d| self.duration(d, "duration", false));
        match (f.get("arrival_rate"), f.get("vus")) {
            (Some(_), Some(vus)) => {
                self.error(
                    &vus.loc,
                    "a phase is open (`arrival_rate`, new sessions per second) or closed (`vus`, sessions kept busy), not both",
                );
                None
            }
            (None, None) => {
                self.error(
                    &node.loc,
                    "a phase needs `arrival_rate` (open model: new sessions per second) or `vus` (closed model: sessions kept busy)",
                );
                None
            }
            (Some(rate), None) => {
                let arrival_rate = self.rate(rate, "arrival_rate");
                let ramp_to = match f.get("ramp_to") {
                    None => Some(None),
                    Some(r) => self.rate(r, "ramp_to").map(Some),
                };
                if let (Some(0.0), Some(None | Some(0.0))) = (arrival_rate, ramp_to) {
                    self.error(
                        &rate.loc,
                        "this phase starts no sessions: `arrival_rate` and `ramp_to` are both 0",
                    );
                    return None;
                }
                Some(Phase::Open {
                    duration: duration?,
                    arrival_rate: arrival_rate?,
                    ramp_to: ramp_to?,
                })
            }
            (None, Some(vus)) => {
                if let Some(ramp) = f.get("ramp_to") {
                    self.error(&ramp.loc, "`ramp_to` belongs to an open phase (`arrival_rate`), not to one with `vus`");
                }
                let why = self.sessions_why();
                let vus = self.bounded_count(vus, "vus", 1, self.max_sessions, &why);
                Some(Phase::Closed {
                    duration: duration?,
                    vus: vus?,
                })
            }
        }
    }
}
