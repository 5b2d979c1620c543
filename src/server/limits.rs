//! The limits of the README's `serve` flag table: handshakes per IP, events per socket, sockets
//! per user.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use dashmap::DashMap;
use governor::clock::DefaultClock;
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use uuid::Uuid;

use super::config::LimitsConfig;

/// A steady rate and a burst; `None` when the rate is 0 (limit off).
fn quota(per_second: u32, burst: u32) -> Option<Quota> {
    let rate = NonZeroU32::new(per_second)?;
    let burst = NonZeroU32::new(burst.max(per_second)).unwrap_or(rate);
    Some(Quota::per_second(rate).allow_burst(burst))
}

pub struct Limits {
    handshakes: Option<DefaultKeyedRateLimiter<IpAddr>>,
    event_quota: Option<Quota>,
    /// One clock for every per-socket limiter: creating a clock probes the CPU (cpuid), which
    /// showed up at 2.5% of server CPU in a connect storm when done per socket.
    clock: DefaultClock,
    max_connections_per_user: u32,
    connections: DashMap<Uuid, u32>,
}

/// The per-socket event limiter, kept in the socket's extensions.
#[derive(Clone)]
pub struct EventLimiter(Option<Arc<DefaultDirectRateLimiter>>);

impl EventLimiter {
    /// Whether one more event fits in the socket's budget.
    pub fn allow(&self) -> bool {
        self.0.as_ref().is_none_or(|l| l.check().is_ok())
    }
}

impl Limits {
    pub fn new(config: &LimitsConfig) -> Self {
        Limits {
            handshakes: quota(config.handshake_rate, config.handshake_burst)
                .map(RateLimiter::keyed),
            event_quota: quota(config.event_rate, config.event_burst),
            clock: DefaultClock::default(),
            max_connections_per_user: config.max_connections_per_user,
            connections: DashMap::new(),
        }
    }

    pub fn allow_handshake(&self, ip: IpAddr) -> bool {
        self.handshakes
            .as_ref()
            .is_none_or(|l| l.check_key(&ip).is_ok())
    }

    /// Forget IPs whose budget is full again, so the keyed state stays small.
    pub fn forget_idle(&self) {
        if let Some(l) = &self.handshakes {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }

    pub fn event_limiter(&self) -> EventLimiter {
        EventLimiter(
            self.event_quota
                .map(|q| Arc::new(RateLimiter::direct_with_clock(q, self.clock.clone()))),
        )
    }

    /// Whether the user may open one more socket (checked on the handshake).
    pub fn user_has_room(&self, user: Uuid) -> bool {
        self.max_connections_per_user == 0
            || self.connections.get(&user).map_or(0, |c| *c) < self.max_connections_per_user
    }

    /// The user's open sockets as counted for the per-user cap.
    pub fn open_sockets(&self, user: Uuid) -> u32 {
        self.connections.get(&user).map_or(0, |c| *c)
    }

    /// Count a socket in, unless the user is at the cap (checked and counted at once, so
    /// concurrent connects cannot pass it together); answers the user's open sockets including
    /// this one.
    pub fn try_connect(&self, user: Uuid) -> Option<u32> {
        let mut count = self.connections.entry(user).or_insert(0);
        if self.max_connections_per_user != 0 && *count >= self.max_connections_per_user {
            return None;
        }
        *count += 1;
        Some(*count)
    }

    /// Count a socket out; answers the user's remaining open sockets.
    pub fn disconnected(&self, user: Uuid) -> u32 {
        let remaining = match self.connections.get_mut(&user) {
            Some(mut count) => {
                *count = count.saturating_sub(1);
                *count
            }
            None => 0,
        };
        if remaining == 0 {
            self.connections.remove_if(&user, |_, c| *c == 0);
        }
        remaining
    }
}
