//! What a session is opened with: the target, the transport, credentials and budgets. Built
//! once from the command line (or a scenario) and shared by every session of a run.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use http::{HeaderName, HeaderValue};
use reqwest::Url;
use serde_json::Value;

use super::ClientError;
use crate::protocol;

/// How the engine connection is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Transport {
    /// A websocket from the first request (what the production web client tries first).
    #[default]
    Websocket,
    /// HTTP long-polling only.
    Polling,
    /// Polling handshake, then upgrade to a websocket (socket.io-client's default, and the
    /// production client's fallback path).
    Upgrade,
}

impl Transport {
    pub fn as_str(&self) -> &'static str {
        match self {
            Transport::Websocket => "websocket",
            Transport::Polling => "polling",
            Transport::Upgrade => "upgrade",
        }
    }

    /// How the session ended up connected, for people.
    pub fn describe(&self) -> &'static str {
        match self {
            Transport::Upgrade => "websocket (upgraded from polling)",
            other => other.as_str(),
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Transport {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "websocket" | "ws" => Ok(Transport::Websocket),
            "polling" => Ok(Transport::Polling),
            "upgrade" => Ok(Transport::Upgrade),
            other => Err(format!(
                "unknown transport {other:?}: use websocket, polling or upgrade"
            )),
        }
    }
}

/// Everything needed to open a session. Built once and shared by every session of a run.
/// Its `Debug` form masks cookie and header values.
#[derive(Clone)]
pub struct ConnectOptions {
    /// Scheme, host and port of the server (`http`/`https`; `ws`/`wss` are mapped to them).
    base: Url,
    /// Engine path without trailing slash, e.g. `/ws`.
    path: String,
    pub transport: Transport,
    cookies: Vec<(String, String)>,
    headers: Vec<(HeaderName, HeaderValue)>,
    /// Socket.IO auth payload sent with the namespace CONNECT.
    pub auth: Option<Value>,
    /// Budget for the whole connect: engine open, upgrade and namespace CONNECT.
    pub timeout: Duration,
    /// Deliver engine pings as [`SessionEvent::Ping`] (for `connect --hold`).
    pub report_pings: bool,
    /// The most the server may send at once (a websocket message, a polling answer), in bytes;
    /// a smaller maxPayload announced by the server lowers it. `None`: production's 1,000,000.
    pub max_payload: Option<u64>,
    /// The address of this machine every connection of the session leaves from (its
    /// websocket, polling requests and REST calls); `None`: the system's choice. One machine
    /// opens at most about 28,000 connections from one address to one server address and port
    /// (the ephemeral port range), and past half of that every new connect scans the range:
    /// `load-test --local-ips` spreads sessions over several addresses.
    pub local_address: Option<std::net::IpAddr>,
}

impl fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cookies: Vec<String> = self
            .cookies
            .iter()
            .map(|(n, v)| format!("{n}={}", mask(v)))
            .collect();
        let headers: Vec<String> = self
            .headers
            .iter()
            .map(|(n, v)| format!("{n}: {}", mask(v.to_str().unwrap_or("<binary>"))))
            .collect();
        f.debug_struct("ConnectOptions")
            .field("target", &self.display_target())
            .field("transport", &self.transport)
            .field("cookies", &cookies)
            .field("headers", &headers)
            .field("auth", &self.auth.as_ref().map(|_| "<set>"))
            .field("timeout", &self.timeout)
            .field("local_address", &self.local_address)
            .finish()
    }
}

impl ConnectOptions {
    /// `url` may be `http`, `https`, `ws` or `wss`. Its path, when not `/`, is the engine path
    /// (so `wss://api.sc-market.space/ws` works as written); `path` overrides it.
    pub fn new(url: &str, path: Option<&str>) -> Result<Self, ClientError> {
        let mut base = Url::parse(url).map_err(|e| {
            ClientError::InvalidOption(format!(
                "{url:?} is not a URL ({e}): write it as http://HOST:PORT or wss://HOST/ws"
            ))
        })?;
        let scheme = match base.scheme() {
            "http" | "ws" => "http",
            "https" | "wss" => "https",
            other => {
                return Err(ClientError::InvalidOption(format!(
                    "unsupported URL scheme {other:?}: use http, https, ws or wss"
                )));
            }
        };
        if base.host_str().is_none() {
            return Err(ClientError::InvalidOption(format!("{url:?} has no host")));
        }
        if !base.username().is_empty() || base.password().is_some() {
            // They would end up in messages and logs; SC Market authenticates by cookie anyway.
            return Err(ClientError::InvalidOption(
                "the URL carries a user name or password: pass credentials with --cookie, --jwt or --header instead".into(),
            ));
        }
        let url_path = base.path().trim_end_matches('/').to_string();
        let path = match path {
            Some(p) => p.trim_end_matches('/').to_string(),
            None if !url_path.is_empty() => url_path,
            None => protocol::ENGINE_PATH.to_string(),
        };
        let path = if path.starts_with('/') {
            path
        } else {
            format!("/{path}")
        };
        // Url::set_scheme refuses special-to-special changes only across kinds; ws<->http is fine.
        if base.set_scheme(scheme).is_err() {
            return Err(ClientError::InvalidOption(format!(
                "cannot use {url:?} as an http URL"
            )));
        }
        base.set_path("/");
        base.set_query(None);
        base.set_fragment(None);
        Ok(ConnectOptions {
            base,
            path,
            transport: Transport::default(),
            cookies: Vec::new(),
            headers: Vec::new(),
            auth: None,
            timeout: Duration::from_secs(10),
            report_pings: false,
            max_payload: None,
            local_address: None,
        })
    }

    /// The cap on what the server sends at once, before and after it announced its
    /// maxPayload (`announced`).
    pub(super) fn payload_cap(&self, announced: Option<u64>) -> u64 {
        let configured = self.max_payload.unwrap_or(protocol::DEFAULT_MAX_PAYLOAD);
        announced.map_or(configured, |a| a.min(configured))
    }

    /// `http(s)://host:port/`, for REST calls such as the dev login.
    pub fn http_base(&self) -> &Url {
        &self.base
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// Add cookies from `NAME=VALUE`, or several separated by `;` as in a Cookie header.
    pub fn add_cookies(&mut self, text: &str) -> Result<(), ClientError> {
        for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, value) = part.split_once('=').ok_or_else(|| {
                ClientError::InvalidOption(format!(
                    "cookie {:?} has no '=': write NAME=VALUE, e.g. {}=s%3A...",
                    mask(part),
                    protocol::SESSION_COOKIE
                ))
            })?;
            let (name, value) = (name.trim(), value.trim());
            if name.is_empty() || value.is_empty() || HeaderValue::from_str(value).is_err() {
                return Err(ClientError::InvalidOption(format!(
                    "cookie {name:?} is empty or has characters a Cookie header cannot carry"
                )));
            }
            self.cookies.retain(|(n, _)| n != name);
            self.cookies.push((name.to_string(), value.to_string()));
        }
        Ok(())
    }

    pub fn cookie_names(&self) -> impl Iterator<Item = &str> {
        self.cookies.iter().map(|(n, _)| n.as_str())
    }

    /// Add a header from `Name: value`.
    pub fn add_header(&mut self, text: &str) -> Result<(), ClientError> {
        let (name, value) = text.split_once(':').ok_or_else(|| {
            ClientError::InvalidOption(format!(
                "header {:?} has no ':': write 'Name: value'",
                mask(text)
            ))
        })?;
        let name = HeaderName::from_str(name.trim()).map_err(|_| {
            ClientError::InvalidOption(format!("{:?} is not a header name", name.trim()))
        })?;
        let value = HeaderValue::from_str(value.trim()).map_err(|_| {
            ClientError::InvalidOption(format!("the value of header {name} is not valid"))
        })?;
        self.headers.push((name, value));
        Ok(())
    }

    pub fn set_origin(&mut self, origin: &str) -> Result<(), ClientError> {
        let value = HeaderValue::from_str(origin)
            .map_err(|_| ClientError::InvalidOption(format!("{origin:?} is not a valid Origin")))?;
        self.headers.retain(|(n, _)| n != http::header::ORIGIN);
        self.headers.push((http::header::ORIGIN, value));
        Ok(())
    }

    /// The engine URL for a transport, with the session id once there is one.
    pub(super) fn engine_url(&self, websocket: bool, sid: Option<&str>) -> Url {
        let mut url = self.base.clone();
        if websocket {
            let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
            // Both directions between special schemes are accepted by the url crate.
            let _ = url.set_scheme(scheme);
        }
        url.set_path(&format!("{}/", self.path));
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("EIO", "4");
            q.append_pair("transport", if websocket { "websocket" } else { "polling" });
            if let Some(sid) = sid {
                q.append_pair("sid", sid);
            }
        }
        url
    }

    /// Headers for the handshake: extra headers, Origin, and the Cookie header.
    pub(super) fn request_headers(&self) -> Vec<(HeaderName, HeaderValue)> {
        let mut out = self.headers.clone();
        if !self.cookies.is_empty() {
            let joined = self
                .cookies
                .iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            if let Ok(v) = HeaderValue::from_str(&joined) {
                out.push((http::header::COOKIE, v));
            }
        }
        out
    }

    /// Where we connect, for messages: never includes credentials.
    pub fn display_target(&self) -> String {
        let mut url = self.engine_url(self.transport == Transport::Websocket, None);
        url.set_query(None);
        url.to_string()
    }
}

/// A secret as it may appear in output and logs: its start and its length, never the whole.
pub fn mask(secret: &str) -> String {
    let shown: String = secret.chars().take(4).collect();
    format!("{shown}…({} chars)", secret.chars().count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_map_to_engine_urls() {
        let o = ConnectOptions::new("ws://127.0.0.1:7000", None).unwrap();
        assert_eq!(
            o.engine_url(true, None).as_str(),
            "ws://127.0.0.1:7000/ws/?EIO=4&transport=websocket"
        );
        assert_eq!(
            o.engine_url(false, Some("abc")).as_str(),
            "http://127.0.0.1:7000/ws/?EIO=4&transport=polling&sid=abc"
        );
        let o = ConnectOptions::new("wss://api.sc-market.space/ws", None).unwrap();
        assert_eq!(
            o.engine_url(true, None).as_str(),
            "wss://api.sc-market.space/ws/?EIO=4&transport=websocket"
        );
        let o = ConnectOptions::new("https://x.test/ws", Some("socket.io")).unwrap();
        assert_eq!(o.path(), "/socket.io");
        assert!(ConnectOptions::new("ftp://x", None).is_err());
        assert!(ConnectOptions::new("localhost:7000", None).is_err());
        assert!(ConnectOptions::new("https://user:secret@x.test", None).is_err());
    }

    #[test]
    fn cookies_and_headers() {
        let mut o = ConnectOptions::new("http://h", None).unwrap();
        o.add_cookies("scmarket.sid=s%3Aabc.def; other=1").unwrap();
        o.add_cookies("other=2").unwrap();
        o.add_header("X-Test: yes").unwrap();
        let headers = o.request_headers();
        let cookie = headers
            .iter()
            .find(|(n, _)| n == http::header::COOKIE)
            .unwrap();
        assert_eq!(cookie.1, "scmarket.sid=s%3Aabc.def; other=2");
        assert!(o.add_cookies("novalue").is_err());
        assert!(o.add_header("nocolon").is_err());
        assert!(o.add_header("bad name: x").is_err());
    }

    #[test]
    fn masking_keeps_secrets_out() {
        let m = mask("eyJhbGciOiJIUzI1NiJ9.secret");
        assert!(!m.contains("secret"));
        assert!(m.starts_with("eyJh"));
        let mut o = ConnectOptions::new("http://h", None).unwrap();
        o.add_cookies("scmarket.access=eyJhbGciOiJIUzI1NiJ9.secret")
            .unwrap();
        o.add_header("Authorization: Bearer topsecret").unwrap();
        let debug = format!("{o:?}");
        assert!(debug.contains("scmarket.access=eyJh"), "{debug}");
        assert!(!debug.contains("secret"), "{debug}");
    }
}
