//! The checks `check` knows, in the order they run: what each asks, the production defect it
//! exists to find (named as in ARCHITECTURE.md) and what it needs. The README's list of checks
//! is this table (a test holds them together); the code of each lives in its family's file.

/// One check as documented.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckSpec {
    pub id: &'static str,
    pub title: &'static str,
    pub defect: Option<&'static str>,
    /// What it needs to run, as flags ("" when it needs nothing).
    pub needs: &'static str,
}

impl CheckSpec {
    /// The part of the id before the dot.
    pub fn family(&self) -> &'static str {
        self.id
            .split_once('.')
            .map_or(self.id, |(family, _)| family)
    }
}

/// Every check, in running order. The destructive one is last: a server it crashes can answer
/// nothing after it.
pub const CHECKS: &[CheckSpec] = &[
    CheckSpec {
        id: "handshake.no-credentials",
        title: "a handshake without cookies is refused, with production's status and body",
        defect: None,
        needs: "",
    },
    CheckSpec {
        id: "handshake.forged-session",
        title: "a forged scmarket.sid session cookie is refused",
        defect: None,
        needs: "",
    },
    CheckSpec {
        id: "handshake.resigned-session",
        title: "user A's session id with a wrong signature is refused",
        defect: None,
        needs: "user A's scmarket.sid (--cookie or --login)",
    },
    CheckSpec {
        id: "handshake.tampered-jwt",
        title: "user A's access token with altered claims is refused",
        defect: None,
        needs: "user A's scmarket.access (--jwt, --cookie or --login)",
    },
    CheckSpec {
        id: "handshake.alg-none",
        title: "an unsigned (alg: none) access token naming user A is refused",
        defect: None,
        needs: "user A's id (from --jwt or --login)",
    },
    CheckSpec {
        id: "handshake.expired-jwt",
        title: "an expired access token is refused (a fresh one with the same secret is accepted)",
        defect: None,
        needs: "--expired-jwt, or --jwt-secret and user A's id",
    },
    CheckSpec {
        id: "handshake.banned-user",
        title: "a banned account's session cookie is refused",
        defect: Some("banned-users-connect"),
        needs: "--banned-cookie",
    },
    CheckSpec {
        id: "handshake.open-packet",
        title: "the open packet's settings are production's (ping interval and timeout, max payload, upgrades)",
        defect: None,
        needs: "user A",
    },
    CheckSpec {
        id: "transport.websocket",
        title: "a websocket from the first request reaches CONNECT",
        defect: None,
        needs: "user A",
    },
    CheckSpec {
        id: "transport.polling",
        title: "long-polling alone reaches CONNECT",
        defect: None,
        needs: "user A",
    },
    CheckSpec {
        id: "transport.upgrade",
        title: "polling upgraded to a websocket reaches CONNECT",
        defect: None,
        needs: "user A",
    },
    CheckSpec {
        id: "origin.foreign-refused",
        title: "a foreign Origin is refused on websocket and polling, even with valid cookies (cross-site websocket hijacking)",
        defect: Some("no-origin-check"),
        needs: "user A",
    },
    CheckSpec {
        id: "origin.cors-credentials",
        title: "an allowed Origin gets CORS with credentials, and its websocket connects",
        defect: None,
        needs: "user A, --origin",
    },
    CheckSpec {
        id: "joins.own-chat",
        title: "user A can join the room of their own chat",
        defect: None,
        needs: "user A, --chat; --post when the server gives no acknowledgements",
    },
    CheckSpec {
        id: "joins.late-listeners",
        title: "a room request sent right after CONNECT is honoured (measures the delay)",
        defect: Some("late-listeners"),
        needs: "user A, --chat; --post when the server gives no acknowledgements",
    },
    CheckSpec {
        id: "joins.refusal-reason",
        title: "a join of a chat that does not exist is answered with its reason",
        defect: Some("swallowed-errors"),
        needs: "user A",
    },
    CheckSpec {
        id: "joins.upper-case-id",
        title: "a join with the chat id in upper case joins a room that receives",
        defect: Some("case-sensitive-rooms"),
        needs: "user A, --chat, --post",
    },
    CheckSpec {
        id: "viewing.other-user",
        title: "user B, not in A's chat, can neither read it nor join its room",
        defect: Some("open-direct-chats"),
        needs: "user A, user B, --chat; --post when the server gives no acknowledgements",
    },
    CheckSpec {
        id: "payload.server-message",
        title: "a serverMessage validates against the schema generated from src/protocol.rs",
        defect: None,
        needs: "user A, --chat, --post",
    },
    CheckSpec {
        id: "rest.refused-post",
        title: "a post by B to A's chat is refused, and neither stored nor broadcast",
        defect: Some("post-after-403"),
        needs: "user A, user B, --post",
    },
    CheckSpec {
        id: "delivery.system-message",
        title: "a message stored by another writer (e.g. an order status change) reaches the room",
        defect: Some("unemitted-messages"),
        needs: "user A, --chat, --system-message-command",
    },
    CheckSpec {
        id: "destructive.null-join",
        title: "a clientJoinRoom with null or no argument leaves the server running",
        defect: Some("crash-on-null-join"),
        needs: "user A, --destructive",
    },
];

/// The check of this id.
pub fn find(id: &str) -> Option<&'static CheckSpec> {
    CHECKS.iter().find(|c| c.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_destructive_runs_last() {
        for (i, a) in CHECKS.iter().enumerate() {
            assert!(
                CHECKS[i + 1..].iter().all(|b| b.id != a.id),
                "{} twice",
                a.id
            );
            assert!(a.id.contains('.'), "{}", a.id);
        }
        assert_eq!(CHECKS.last().map(|c| c.family()), Some("destructive"));
    }

    #[test]
    fn every_defect_has_one_check() {
        for defect in [
            "crash-on-null-join",
            "no-origin-check",
            "post-after-403",
            "case-sensitive-rooms",
            "banned-users-connect",
            "open-direct-chats",
            "swallowed-errors",
            "unemitted-messages",
            "late-listeners",
        ] {
            let finding: Vec<_> = CHECKS.iter().filter(|c| c.defect == Some(defect)).collect();
            assert_eq!(finding.len(), 1, "{defect}");
        }
    }
}
