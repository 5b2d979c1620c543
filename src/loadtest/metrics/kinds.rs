//! The kinds of things a run records (latencies, failures, disconnects, errors), with the names
//! reports and threshold expressions use for them.

/// The latencies a run records, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Latency {
    /// Engine.IO open: from starting the connection to the engine's OPEN packet.
    EngineOpen,
    /// Namespace connect: from starting the connection to the Socket.IO CONNECT answer.
    Connect,
    /// Emit with ack: from the emit to the ack.
    Ack,
    /// `wait_for`: from the start of the wait to the last expected event.
    WaitFor,
    /// From a `post_message` (or emit) to the message's arrival at one session in the room.
    Delivery,
    /// REST request round trip (`post_message`).
    Http,
    /// Open model: how late a session or step started compared with its scheduled time.
    ScheduleLag,
}

impl Latency {
    pub const ALL: [Latency; 7] = [
        Latency::Connect,
        Latency::EngineOpen,
        Latency::Ack,
        Latency::WaitFor,
        Latency::Delivery,
        Latency::Http,
        Latency::ScheduleLag,
    ];

    /// The name in reports and threshold expressions.
    pub fn name(self) -> &'static str {
        match self {
            Latency::Connect => "connect",
            Latency::EngineOpen => "engine_open",
            Latency::Ack => "ack",
            Latency::WaitFor => "wait_for",
            Latency::Delivery => "delivery",
            Latency::Http => "http",
            Latency::ScheduleLag => "schedule_lag",
        }
    }

    pub fn from_name(name: &str) -> Option<Latency> {
        Latency::ALL.into_iter().find(|l| l.name() == name)
    }

    pub(super) fn index(self) -> usize {
        self as usize
    }
}

/// Why a session never reached the connected state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailReason {
    /// HTTP 400/401/403 on the handshake, or a CONNECT_ERROR.
    Refused,
    /// Connection refused, unreachable host, TLS failure.
    Unreachable,
    /// No answer within the connect timeout.
    Timeout,
    /// The server answered something the client could not understand.
    Protocol,
    /// Setup failed before connecting (dev login, sessions file ran out).
    Setup,
}

impl FailReason {
    pub const ALL: [FailReason; 5] = [
        FailReason::Refused,
        FailReason::Unreachable,
        FailReason::Timeout,
        FailReason::Protocol,
        FailReason::Setup,
    ];
    pub fn name(self) -> &'static str {
        match self {
            FailReason::Refused => "refused",
            FailReason::Unreachable => "unreachable",
            FailReason::Timeout => "timeout",
            FailReason::Protocol => "protocol",
            FailReason::Setup => "setup",
        }
    }
}

/// A step that went wrong after the session connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    AckTimeout,
    /// The ack arrived but did not match `ack.expect`.
    AckMismatch,
    /// `wait_for` saw fewer events than `count` before its timeout.
    WaitForTimeout,
    /// `post_message` answered with a non-2xx status or did not answer.
    Http,
    /// An emit, join or leave could not be sent (the socket was closed).
    Send,
    /// A `reconnect` step did not get the session back.
    Reconnect,
    /// A virtual user's task panicked: a bug in this tool, which fails the run whatever the
    /// thresholds say.
    Panic,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 7] = [
        ErrorKind::AckTimeout,
        ErrorKind::AckMismatch,
        ErrorKind::WaitForTimeout,
        ErrorKind::Http,
        ErrorKind::Send,
        ErrorKind::Reconnect,
        ErrorKind::Panic,
    ];
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::AckTimeout => "ack_timeout",
            ErrorKind::AckMismatch => "ack_mismatch",
            ErrorKind::WaitForTimeout => "wait_for_timeout",
            ErrorKind::Http => "http",
            ErrorKind::Send => "send",
            ErrorKind::Reconnect => "reconnect",
            ErrorKind::Panic => "panic",
        }
    }
}
