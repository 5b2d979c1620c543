//! `/metrics`: what operators track (the README's "`/metrics`" section lists every metric), in
//! Prometheus text format.

use std::collections::HashSet;
use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RoomLabel {
    pub room: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabel {
    pub limit: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabel {
    pub event: String,
}

/// A REST call: its route as the router matched it (`/api/chats/{chat_id}/messages`, so the
/// label values are the routes' few), its method and its status code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RestLabel {
    pub route: String,
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

pub struct Metrics {
    registry: Registry,
    pub connections_active: Gauge,
    pub connections_total: Counter,
    pub users_connected: Gauge,
    /// Observed at each connect: how many sockets that user has open, this one included.
    pub connections_per_user: Histogram,
    pub connection_duration: Histogram,
    pub messages_sent: Family<RoomLabel, Counter>,
    pub room_joins: Counter,
    pub room_leaves: Counter,
    pub failed_joins: Family<ReasonLabel, Counter>,
    pub handshakes_refused: Family<ReasonLabel, Counter>,
    pub rate_limited: Family<LimitLabel, Counter>,
    pub events_received: Family<EventLabel, Counter>,
    pub disconnects: Family<ReasonLabel, Counter>,
    pub deliveries_dropped: Counter,
    pub adapter_errors: Counter,
    pub tcp_connections_open: Gauge,
    pub tcp_connections_refused: Family<ReasonLabel, Counter>,
    pub tcp_connections_timed_out: Counter,
    pub rest_requests: Family<RestLabel, Counter>,
    pub rest_duration: HistogramFamily<RouteLabel>,
    labelled_rooms: Mutex<HashSet<String>>,
    room_label_cap: usize,
}

/// Label for messages to rooms beyond the labelled ones.
pub const OTHER_ROOMS: &str = "other";

impl Metrics {
    pub fn new(room_label_cap: usize) -> Self {
        let mut registry = Registry::with_prefix("scmarket_ws");
        let connections_active: Gauge = Gauge::default();
        registry.register(
            "connections_active",
            "Socket.IO sockets currently connected",
            connections_active.clone(),
        );
        let connections_total = Counter::default();
        registry.register(
            "connections",
            "Socket.IO sockets accepted since start",
            connections_total.clone(),
        );
        let users_connected = Gauge::default();
        registry.register(
            "users_connected",
            "Distinct users with at least one open socket",
            users_connected.clone(),
        );
        let connections_per_user = Histogram::new([1.0, 2.0, 3.0, 5.0, 8.0, 16.0, 32.0, 64.0]);
        registry.register(
            "connections_per_user",
            "Open sockets of the connecting user, observed at each connect",
            connections_per_user.clone(),
        );
        let connection_duration = Histogram::new(exponential_buckets(0.1, 4.0, 10));
        registry.register(
            "connection_duration_seconds",
            "How long sockets stayed connected",
            connection_duration.clone(),
        );
        let messages_sent = Family::<RoomLabel, Counter>::default();
        registry.register(
            "messages_sent",
            "serverMessage broadcasts per room (rooms past the label cap count as room=\"other\")",
            messages_sent.clone(),
        );
        let room_joins = Counter::default();
        registry.register(
            "room_joins",
            "Successful clientJoinRoom events",
            room_joins.clone(),
        );
        let room_leaves = Counter::default();
        registry.register(
            "room_leaves",
            "clientLeaveRoom events handled",
            room_leaves.clone(),
        );
        let failed_joins = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "failed_joins",
            "clientJoinRoom events refused, by reason",
            failed_joins.clone(),
        );
        let handshakes_refused = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "handshakes_refused",
            "Engine handshakes refused, by reason (the client only sees HTTP 400/403/429)",
            handshakes_refused.clone(),
        );
        let rate_limited = Family::<LimitLabel, Counter>::default();
        registry.register(
            "rate_limited",
            "Requests or events dropped by a rate limit or cap",
            rate_limited.clone(),
        );
        let events_received = Family::<EventLabel, Counter>::default();
        registry.register(
            "events_received",
            "Socket.IO events received (unknown event names count as event=\"unknown\")",
            events_received.clone(),
        );
        let disconnects = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "disconnects",
            "Socket.IO sockets disconnected, by reason (slow_consumer: its buffer overflowed)",
            disconnects.clone(),
        );
        let deliveries_dropped = Counter::default();
        registry.register(
            "deliveries_dropped",
            "Broadcast deliveries dropped on a full socket buffer (each such socket is disconnected)",
            deliveries_dropped.clone(),
        );
        let adapter_errors = Counter::default();
        registry.register(
            "adapter_errors",
            "Broadcasts and disconnects the adapter could not pass to the other nodes (Redis or PostgreSQL unreachable or too slow): applied to this node's sockets only",
            adapter_errors.clone(),
        );
        let tcp_connections_open: Gauge = Gauge::default();
        registry.register(
            "tcp_connections_open",
            "TCP connections open (HTTP requests, polling and websockets)",
            tcp_connections_open.clone(),
        );
        let tcp_connections_refused = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "tcp_connections_refused",
            "TCP connections closed on accept, by reason (per_ip_cap)",
            tcp_connections_refused.clone(),
        );
        let tcp_connections_timed_out = Counter::default();
        registry.register(
            "tcp_connections_timed_out",
            "Connections closed for not sending a complete request head in time (slow or idle)",
            tcp_connections_timed_out.clone(),
        );
        let rest_requests = Family::<RestLabel, Counter>::default();
        registry.register(
            "rest_requests",
            "REST calls by route, method and status code (refusals by the Origin and body checks included)",
            rest_requests.clone(),
        );
        let rest_duration = HistogramFamily::<RouteLabel>::new_with_constructor(|| {
            Histogram::new(crate::store::metered::seconds_buckets())
        });
        registry.register_with_unit(
            "rest_request_duration",
            "How long REST calls took to answer, by route",
            Unit::Seconds,
            rest_duration.clone(),
        );
        Metrics {
            registry,
            connections_active,
            connections_total,
            users_connected,
            connections_per_user,
            connection_duration,
            messages_sent,
            room_joins,
            room_leaves,
            failed_joins,
            handshakes_refused,
            rate_limited,
            events_received,
            disconnects,
            deliveries_dropped,
            adapter_errors,
            tcp_connections_open,
            tcp_connections_refused,
            tcp_connections_timed_out,
            rest_requests,
            rest_duration,
            labelled_rooms: Mutex::new(HashSet::new()),
            room_label_cap,
        }
    }

    /// Count a broadcast; the first `room_label_cap` rooms get their own label so the metric's
    /// cardinality stays bounded however many chats exist.
    pub fn message_sent(&self, room: &str) {
        let label = {
            let mut rooms = self
                .labelled_rooms
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if rooms.contains(room) {
                room.to_string()
            } else if rooms.len() < self.room_label_cap {
                rooms.insert(room.to_string());
                room.to_string()
            } else {
                OTHER_ROOMS.to_string()
            }
        };
        self.messages_sent
            .get_or_create(&RoomLabel { room: label })
            .inc();
    }

    pub fn reason(family: &Family<ReasonLabel, Counter>, reason: &str) {
        family
            .get_or_create(&ReasonLabel {
                reason: reason.to_string(),
            })
            .inc();
    }

    pub fn disconnect_reason(&self, reason: &str) {
        Self::reason(&self.disconnects, reason);
    }

    pub fn connection_refused(&self, reason: &str) {
        Self::reason(&self.tcp_connections_refused, reason);
    }

    /// Count and time one REST call (`rest::observe`).
    pub fn rest_call(&self, route: &str, method: &str, status: u16, took: std::time::Duration) {
        self.rest_requests
            .get_or_create(&RestLabel {
                route: route.to_string(),
                method: method.to_string(),
                status,
            })
            .inc();
        self.rest_duration
            .get_or_create(&RouteLabel {
                route: route.to_string(),
            })
            .observe(took.as_secs_f64());
    }

    pub fn limited(&self, limit: &str) {
        self.rate_limited
            .get_or_create(&LimitLabel {
                limit: limit.to_string(),
            })
            .inc();
    }

    pub fn event(&self, event: &str) {
        self.events_received
            .get_or_create(&EventLabel {
                event: event.to_string(),
            })
            .inc();
    }

    /// For parts that register their own metrics (the store: `store::metered`).
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
