//! What a virtual user sends with `emit` and what it reads: `wait_for`, and the events that
//! arrive meanwhile (deliveries timed against the room table, server acks answered, the end
//! of the session noticed).

use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::{DISCONNECT_EVENT, VirtualUser};
use crate::client::{self, SessionEvent};
use crate::loadtest::metrics::{ErrorKind, Latency};
use crate::loadtest::scenario::{Ack, Payload};
use crate::loadtest::template::Vars;
use crate::protocol::{CLIENT_JOIN_ROOM, CLIENT_LEAVE_ROOM, SERVER_MESSAGE};

/// Received events kept for a later `wait_for`; older ones are dropped past this.
const PENDING_EVENTS: usize = 256;

impl VirtualUser {
    pub(super) async fn emit(
        &mut self,
        event: &str,
        data: Option<&Payload>,
        ack: Option<&Ack>,
        iteration: u64,
    ) {
        // A nonce unique to this step, so payloads can be told apart; emits are not counted as
        // chat messages (only post_message has a room to expect deliveries in).
        self.next_nonce += 1;
        let nonce = format!(
            "e{:x}.{:x}.{:x}",
            self.shared.metrics.run_id(),
            self.vu,
            self.next_nonce
        );
        let vars = Vars {
            vu: self.vu,
            iteration,
            room: &self.room,
            nonce: &nonce,
        };
        let args: Vec<Value> = data.map(|d| vec![d.render(&vars)]).unwrap_or_default();
        let room = args
            .first()
            .and_then(|a| a.get("chat_id"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let Some(live) = &self.session else {
            self.shared.metrics.error(ErrorKind::Send);
            return;
        };
        match ack {
            Some(ack) => {
                let started = Instant::now();
                match live.handle.emit_with_ack(event, args, ack.timeout).await {
                    Ok(answer) => {
                        self.recorder.record_since(Latency::Ack, started.into_std());
                        let vars = Vars {
                            vu: self.vu,
                            iteration,
                            room: &self.room,
                            nonce: &nonce,
                        };
                        let first = answer.first().unwrap_or(&Value::Null);
                        if ack
                            .expect
                            .as_ref()
                            .is_some_and(|e| !e.matches(&vars, first))
                        {
                            self.shared.metrics.error(ErrorKind::AckMismatch);
                        }
                    }
                    Err(client::ClientError::AckTimeout(_)) => {
                        self.shared.metrics.error(ErrorKind::AckTimeout)
                    }
                    Err(_) => self.shared.metrics.error(ErrorKind::Send),
                }
            }
            None => {
                if live.handle.emit(event, args).is_err() {
                    self.shared.metrics.error(ErrorKind::Send);
                    return;
                }
                // A raw room event (production has no acks): a join is sent again until a
                // message from the room proves it landed, and counts from then.
                if let Some(room) = room {
                    if event == CLIENT_JOIN_ROOM {
                        self.send_join(room);
                    } else if event == CLIENT_LEAVE_ROOM {
                        let _ = self.left_room(&room);
                    }
                }
            }
        }
    }

    pub(super) async fn wait_for(
        &mut self,
        event: &str,
        count: u32,
        matching: Option<&Payload>,
        timeout: Duration,
        iteration: u64,
    ) {
        let started = Instant::now();
        let deadline = started + timeout;
        if event == DISCONNECT_EVENT {
            self.wait_for_disconnect(started, deadline).await;
            return;
        }
        let mut needed = count;
        loop {
            needed -= self.take_matching(event, matching, needed, iteration);
            if needed == 0 {
                self.recorder
                    .record_since(Latency::WaitFor, started.into_std());
                return;
            }
            if self.session.is_none() || !self.read_one(deadline).await {
                self.shared.metrics.error(ErrorKind::WaitForTimeout);
                return;
            }
        }
    }

    /// Until the session is lost (or already is).
    async fn wait_for_disconnect(&mut self, started: Instant, deadline: Instant) {
        loop {
            if self.session.is_none() {
                self.recorder
                    .record_since(Latency::WaitFor, started.into_std());
                return;
            }
            if !self.read_one(deadline).await {
                self.shared.metrics.error(ErrorKind::WaitForTimeout);
                return;
            }
        }
    }

    /// Remove up to `limit` pending events that match; answers how many.
    fn take_matching(
        &mut self,
        event: &str,
        matching: Option<&Payload>,
        limit: u32,
        iteration: u64,
    ) -> u32 {
        let vars = Vars {
            vu: self.vu,
            iteration,
            room: &self.room,
            nonce: "",
        };
        let mut taken = 0;
        self.pending.retain(|(name, first)| {
            if taken < limit && name == event && matching.is_none_or(|p| p.matches(&vars, first)) {
                taken += 1;
                false
            } else {
                true
            }
        });
        taken
    }

    /// Read events until `deadline` (a think): deliveries are timed and counted meanwhile.
    pub(super) async fn pump_until(&mut self, deadline: Instant) {
        while self.session.is_some() {
            if !self.read_one(deadline).await {
                return;
            }
        }
        tokio::time::sleep_until(deadline).await;
    }

    /// Read and absorb one event, or notice that the session ended; `false` when `deadline`
    /// came first (or there is no session).
    pub(super) async fn read_one(&mut self, deadline: Instant) -> bool {
        // A join due to be sent again wakes the read early.
        let wake = self.next_resend().filter(|at| *at < deadline);
        let Some(live) = &mut self.session else {
            return false;
        };
        let next = tokio::time::timeout_at(wake.unwrap_or(deadline), live.events.recv()).await;
        match next {
            Ok(Some(ev)) => self.absorb(ev),
            Ok(None) => self.lost_session(client::DisconnectReason::TransportClose),
            Err(_) if wake.is_some() => self.resend_due(),
            Err(_) => return false,
        }
        true
    }

    /// Whatever has already arrived, without waiting.
    pub(super) fn drain_ready(&mut self) {
        if !self.joining.is_empty() {
            self.resend_due();
        }
        while let Some(live) = &mut self.session {
            match live.events.try_recv() {
                Ok(ev) => self.absorb(ev),
                Err(tokio::sync::mpsc::error::TryRecvError::Empty) => return,
                Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => {
                    self.lost_session(client::DisconnectReason::TransportClose)
                }
            }
        }
    }

    fn absorb(&mut self, event: SessionEvent) {
        match event {
            SessionEvent::Event(e) => {
                // At its arrival stamp: counting it in its interval costs no clock read.
                self.shared.metrics.message_received_at(e.received);
                if e.name == SERVER_MESSAGE
                    && let Some(message) = e.args.first()
                    && let Some(content) = message.get("content").and_then(Value::as_str)
                {
                    let room = message.get("chat_id").and_then(Value::as_str).unwrap_or("");
                    let stays = &self.stays;
                    let mut stay = None;
                    let counted = self.recorder.delivered_if(content, e.received, |sent| {
                        stay = stays.iter().position(|s| {
                            s.room.eq_ignore_ascii_case(room)
                                && s.since < sent
                                && s.until.is_none_or(|u| sent < u)
                        });
                        stay.is_some()
                    });
                    if counted && let Some(i) = stay {
                        self.stays[i].received += 1;
                    }
                    if !self.joining.is_empty() {
                        let room = room.to_string();
                        self.message_from(&room);
                    }
                }
                if let (Some(id), Some(live)) = (e.ack_id, &self.session) {
                    // A server that asks for an ack gets an empty one, as a browser client would.
                    let _ = live.handle.ack(id, Vec::new());
                }
                if self.pending.len() == PENDING_EVENTS {
                    self.pending.pop_front();
                }
                let first = e.args.into_iter().next().unwrap_or(Value::Null);
                self.pending.push_back((e.name, first));
            }
            SessionEvent::Ping { .. } => {}
            SessionEvent::Disconnected(reason) => self.lost_session(reason),
        }
    }

    /// The server or the network ended the session.
    fn lost_session(&mut self, reason: client::DisconnectReason) {
        if self.session.take().is_some() {
            tracing::debug!(vu = self.vu, %reason, "session lost");
            self.shared.metrics.session_closed(reason.kind());
            self.left_all_rooms(false);
        }
    }
}
