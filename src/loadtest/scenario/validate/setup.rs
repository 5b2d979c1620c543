//! `target` and `setup`: where the sessions go, who they log in as, which rooms they use, and
//! the restart of the embedded server.

use std::path::PathBuf;
use std::time::Duration;

use crate::loadtest::template::Template;
use crate::loadtest::yaml::{Node, Value};
use crate::protocol::ChatId;

use super::super::{RestartServer, Rooms, Setup, Target, Users};
use super::{USER_VARS, Validator};

const SETUP_FIELDS: &[&str] = &["users", "sessions_file", "rooms", "restart_server"];
const RESTART_FIELDS: &[&str] = &["at", "down_for"];

impl Validator {
    /// `target: embedded`, one URL, or a list of URLs (the nodes of one deployment).
    pub(super) fn target(&mut self, node: &Node) -> Option<Target> {
        if let Value::Seq(items) = &node.value {
            if items.is_empty() {
                self.error(
                    &node.loc,
                    "`target` lists no URL: give at least one, e.g. [http://127.0.0.1:7000]",
                );
                return None;
            }
            let urls: Vec<Option<reqwest::Url>> =
                items.iter().map(|item| self.target_url(item)).collect();
            return urls
                .into_iter()
                .collect::<Option<Vec<_>>>()
                .map(Target::Urls);
        }
        let text = self.string(node, "target")?;
        if text == "embedded" {
            return Some(Target::Embedded);
        }
        self.target_url(node).map(|url| Target::Urls(vec![url]))
    }

    fn target_url(&mut self, node: &Node) -> Option<reqwest::Url> {
        let text = self.string(node, "target")?;
        match reqwest::Url::parse(&text) {
            Ok(url)
                if matches!(url.scheme(), "http" | "https" | "ws" | "wss")
                    && url.host().is_some() =>
            {
                Some(url)
            }
            Ok(url) => {
                self.error(
                    &node.loc,
                    format!("`target` must be `embedded` or an http(s)/ws(s) URL with a host, found scheme `{}`", url.scheme()),
                );
                None
            }
            Err(e) => {
                self.error(
                    &node.loc,
                    format!("`target` must be `embedded` or a URL such as http://127.0.0.1:7000 ({e}: `{text}`)"),
                );
                None
            }
        }
    }

    pub(super) fn setup(&mut self, node: &Node) -> Option<Setup> {
        let f = self.fields(node, "`setup`", SETUP_FIELDS)?;
        let users = match (f.get("users"), f.get("sessions_file")) {
            (Some(_), Some(file)) => {
                self.error(
                    &file.loc,
                    "`setup` takes `users` (dev login) or `sessions_file`, not both",
                );
                None
            }
            // The one word that is not a username template: sessions without credentials.
            (Some(users), None) if matches!(&users.value, Value::Str(s) if s == "none") => {
                Some(Users::None)
            }
            (Some(users), None) => self
                .template(users, "setup.users", USER_VARS)
                .map(Users::Template),
            (None, Some(file)) => self.string(file, "setup.sessions_file").and_then(|s| {
                if s.trim().is_empty() {
                    self.error(&file.loc, "`setup.sessions_file` must name a file");
                    None
                } else {
                    Some(Users::SessionsFile(PathBuf::from(s)))
                }
            }),
            (None, None) => Template::compile("vu-{{vu}}", USER_VARS)
                .ok()
                .map(Users::Template),
        };
        let rooms = match f.get("rooms") {
            None => Some(None),
            Some(rooms) => self.rooms(rooms).map(Some),
        };
        let restart_server = match f.get("restart_server") {
            None => Some(None),
            Some(node) => self.restart_server(node).map(Some),
        };
        Some(Setup {
            users: users?,
            rooms: rooms?,
            restart_server: restart_server?,
        })
    }

    pub(super) fn restart_server(&mut self, node: &Node) -> Option<RestartServer> {
        let f = self.fields(node, "`setup.restart_server`", RESTART_FIELDS)?;
        let at = self
            .required(&f, "at", "`setup.restart_server`")
            .and_then(|n| self.duration(n, "setup.restart_server.at", false));
        let down_for = match f.get("down_for") {
            None => Some(Duration::from_secs(1)),
            Some(n) => self.duration(n, "setup.restart_server.down_for", true),
        };
        Some(RestartServer {
            at: at?,
            down_for: down_for?,
        })
    }

    pub(super) fn rooms(&mut self, node: &Node) -> Option<Rooms> {
        match &node.value {
            Value::Int(_) => {
                let why = format!(
                    "each dev-created room needs a participant, and a generator has at most {} \
                     users online at once",
                    self.max_sessions
                );
                self.bounded_count(node, "setup.rooms", 1, self.max_sessions, &why)
                    .map(Rooms::Count)
            }
            Value::Seq(items) if items.is_empty() => {
                self.error(
                    &node.loc,
                    "`setup.rooms` is an empty list: give at least one chat id",
                );
                None
            }
            Value::Seq(items) => {
                let mut ids = Vec::new();
                let mut ok = true;
                for item in items {
                    match &item.value {
                        Value::Str(s) => match ChatId::parse(s) {
                            Ok(id) => ids.push(id),
                            Err(e) => {
                                self.error(&item.loc, format!("`{s}` is not a chat id: {e}"));
                                ok = false;
                            }
                        },
                        _ => {
                            self.expected(item, "setup.rooms[]", "a chat id (a UUID string)");
                            ok = false;
                        }
                    }
                }
                ok.then_some(Rooms::Ids(ids))
            }
            _ => {
                self.expected(
                    node,
                    "setup.rooms",
                    "a room count (dev server) or a list of chat ids",
                );
                None
            }
        }
    }
}
