//! One socket's place in the connection counts: the per-user count behind
//! `--max-connections-per-user`, `scmarket_ws_connections_active` and
//! `scmarket_ws_users_connected`.
//!
//! The place is taken in the connect middleware and given back when socketioxide drops the
//! socket, however it ended. A disconnect handler is not enough: when the engine closes while
//! the middleware runs, socketioxide cannot send CONNECT, removes the socket and never calls
//! the disconnect handler, so a count kept there grew by one for every client that left at
//! that moment until the user was refused for good.

use std::sync::Arc;
use std::time::Instant;

use uuid::Uuid;

use super::AppState;

/// Held in the socket's extensions for the socket's whole life.
pub struct OpenSocket {
    app: AppState,
    user_id: Uuid,
    opened_at: Instant,
}

impl OpenSocket {
    /// Count one more socket for `user_id`, unless the user is at the per-user cap.
    pub fn take(app: &AppState, user_id: Uuid) -> Option<Arc<OpenSocket>> {
        let open = app.limits.try_connect(user_id)?;
        if open == 1 {
            app.metrics.users_connected.inc();
        }
        app.metrics.connections_per_user.observe(f64::from(open));
        app.metrics.connections_active.inc();
        app.metrics.connections_total.inc();
        Some(Arc::new(OpenSocket {
            app: app.clone(),
            user_id,
            opened_at: Instant::now(),
        }))
    }
}

impl Drop for OpenSocket {
    fn drop(&mut self) {
        let metrics = &self.app.metrics;
        if self.app.limits.disconnected(self.user_id) == 0 {
            metrics.users_connected.dec();
        }
        metrics.connections_active.dec();
        metrics
            .connection_duration
            .observe(self.opened_at.elapsed().as_secs_f64());
    }
}
