//! Room requests that land on a server that listens late. Production registers its room
//! listeners only after an awaited query (`late-listeners`), so a request sent right after
//! CONNECT is dropped, and it never acknowledges (`swallowed-errors`). Room requests are
//! idempotent, so the checks repeat them: with an acknowledgement asked each time until one
//! arrives, or for the whole join window when none ever does.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use serde_json::Value;

use crate::client::{ClientError, SessionHandle};

/// How a repeated request with acknowledgements went.
#[derive(Clone, Debug, PartialEq)]
pub struct Landing {
    /// The first acknowledgement's arguments; `None` when none came within the window.
    pub answer: Option<Vec<Value>>,
    /// Requests sent.
    pub attempts: usize,
    /// Which request (0-based) was acknowledged first.
    pub acked_attempt: Option<usize>,
    /// When each request was sent, from the call.
    pub sent_at: Vec<Duration>,
}

impl Landing {
    /// When the first acknowledged request was sent, from the call.
    pub fn acked_sent_at(&self) -> Option<Duration> {
        self.acked_attempt
            .and_then(|i| self.sent_at.get(i).copied())
    }

    /// When the last request before the acknowledged one was sent: it was dropped (a server
    /// handles a socket's events in order).
    pub fn last_dropped_at(&self) -> Option<Duration> {
        match self.acked_attempt {
            Some(0) => None,
            Some(i) => self.sent_at.get(i - 1).copied(),
            None => self.sent_at.last().copied(),
        }
    }
}

/// Send `event` (with `arg`, or with no argument) asking for an acknowledgement, again every
/// `step`, until one is acknowledged or `window` has passed (then wait up to one more `step`
/// for late answers). An error only when the session itself fails.
pub async fn land_with_ack(
    handle: &SessionHandle,
    event: &str,
    arg: Option<Value>,
    window: Duration,
    step: Duration,
) -> Result<Landing, ClientError> {
    let start = Instant::now();
    let end = start + window;
    let mut pending = FuturesUnordered::new();
    let mut sent_at = Vec::new();
    let mut next_send = start;
    loop {
        let now = Instant::now();
        if now >= next_send {
            if now < end || sent_at.is_empty() {
                let index = sent_at.len();
                sent_at.push(now - start);
                let handle = handle.clone();
                let event = event.to_string();
                let args: Vec<Value> = arg.clone().into_iter().collect();
                let wait = end.saturating_duration_since(now) + step;
                pending
                    .push(async move { (index, handle.emit_with_ack(&event, args, wait).await) });
                // From now, not from the schedule: a late wake-up sends one request, not a burst.
                next_send = now + step;
            } else {
                // The window is over: only answers are waited for.
                next_send = end;
            }
        }
        let more_to_send = next_send < end;
        tokio::select! {
            Some((index, result)) = pending.next(), if !pending.is_empty() => match result {
                Ok(answer) => {
                    return Ok(Landing {
                        answer: Some(answer),
                        attempts: sent_at.len(),
                        acked_attempt: Some(index),
                        sent_at,
                    });
                }
                Err(ClientError::AckTimeout(_)) => {}
                Err(e) => return Err(e),
            },
            _ = tokio::time::sleep_until(next_send.into()), if more_to_send => {}
            else => break,
        }
    }
    Ok(Landing {
        answer: None,
        attempts: sent_at.len(),
        acked_attempt: None,
        sent_at,
    })
}

/// Send `requests` (event, argument) in order, again every `step` through `window`, without
/// acknowledgements: for servers that never answer. Returns how many rounds were sent.
pub async fn repeat(
    handle: &SessionHandle,
    requests: &[(&str, Value)],
    window: Duration,
    step: Duration,
) -> Result<usize, ClientError> {
    let end = Instant::now() + window;
    let mut rounds = 0;
    loop {
        for (event, arg) in requests {
            handle.emit(event, vec![arg.clone()])?;
        }
        rounds += 1;
        let next = Instant::now() + step;
        if next >= end {
            break;
        }
        tokio::time::sleep_until(next.into()).await;
    }
    // Give the last round time to be read before the caller acts on it.
    tokio::time::sleep(step).await;
    Ok(rounds)
}
