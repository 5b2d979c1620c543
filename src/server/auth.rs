//! Handshake and REST authentication, exactly as production: the `scmarket.access` JWT first,
//! then the signed `scmarket.sid` express-session cookie. Also the signing side, for the dev
//! login and the `session` command.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use http::HeaderMap;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use uuid::Uuid;

use crate::protocol::{ACCESS_COOKIE, ACCESS_TOKEN_LEEWAY, ChatId, SESSION_COOKIE};
use crate::store::{ChatAccessFacts, Store, StoreError, User};

/// The secret `--dev` falls back to. Logged loudly; never acceptable outside development.
pub const DEV_SECRET: &str = "scmarket-ws-development-secret-do-not-use-in-production";

/// The secrets that sign cookies. The JWT secret falls back to the session secret, as production.
#[derive(Clone)]
pub struct Secrets {
    /// HMAC-SHA256 keyed with the session secret, before any input: the keyed state (the
    /// padded key's two compression rounds) is computed once here, and each signature or
    /// verification clones it instead of keying a new one per cookie.
    session_mac: Hmac<Sha256>,
    jwt: String,
}

impl Secrets {
    pub fn new(session: String, jwt: Option<String>) -> Self {
        let session_mac = <Hmac<Sha256> as KeyInit>::new_from_slice(session.as_bytes())
            .expect("HMAC takes any key length");
        let jwt = jwt.unwrap_or(session);
        Secrets { session_mac, jwt }
    }

    /// The session secret's HMAC, ready for the sid.
    fn session_mac(&self) -> Hmac<Sha256> {
        self.session_mac.clone()
    }
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets { .. }")
    }
}

/// How a user proved who they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    AccessToken,
    SessionCookie,
}

/// Inserted into the handshake request's extensions by the engine middleware; the Socket.IO
/// handlers read it back from the socket's request parts.
#[derive(Clone, Debug)]
pub struct Authenticated {
    pub user: User,
    pub method: AuthMethod,
    /// The user's chats, read with the session in the same lookup on a handshake by session
    /// cookie ([`authenticate_handshake`]), for the auto-join at CONNECT.
    pub chats: Option<HandshakeChats>,
}

/// The chats a handshake read, and when, for the auto-join at CONNECT to take once: the
/// `Authenticated` it rides in stays in the socket's request parts for the socket's life, so
/// the list is moved out rather than cloned and kept there.
#[derive(Clone, Debug)]
pub struct HandshakeChats(Arc<Mutex<Option<ChatsRead>>>);

/// A chat list and when it was read.
type ChatsRead = (Vec<ChatId>, Instant);

impl HandshakeChats {
    fn new(chats: Vec<ChatId>, read_at: Instant) -> Self {
        HandshakeChats(Arc::new(Mutex::new(Some((chats, read_at)))))
    }

    /// The chats, if read no longer than `fresh` ago; the slot is empty afterwards either way.
    pub fn take_fresh(&self, fresh: Duration) -> Option<Vec<ChatId>> {
        let taken = self.0.lock().unwrap_or_else(|p| p.into_inner()).take();
        taken.and_then(|(chats, read_at)| (read_at.elapsed() <= fresh).then_some(chats))
    }
}

/// Why a handshake or a REST call was not authenticated. Production tells the client nothing;
/// the reason goes to the log and to `scmarket_ws_handshakes_refused_total{reason}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Refusal {
    NoCredentials,
    TokenInvalid,
    TokenExpired,
    /// `nbf` (not before) is further ahead than the leeway.
    TokenNotYetValid,
    SessionMalformed,
    SessionBadSignature,
    SessionUnknown,
    UserUnknown,
    UserDisabled,
    StoreError,
}

impl Refusal {
    pub const ALL: [Refusal; 10] = [
        Refusal::NoCredentials,
        Refusal::TokenInvalid,
        Refusal::TokenExpired,
        Refusal::TokenNotYetValid,
        Refusal::SessionMalformed,
        Refusal::SessionBadSignature,
        Refusal::SessionUnknown,
        Refusal::UserUnknown,
        Refusal::UserDisabled,
        Refusal::StoreError,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Refusal::NoCredentials => "no_credentials",
            Refusal::TokenInvalid => "token_invalid",
            Refusal::TokenExpired => "token_expired",
            Refusal::TokenNotYetValid => "token_not_yet_valid",
            Refusal::SessionMalformed => "session_malformed",
            Refusal::SessionBadSignature => "session_bad_signature",
            Refusal::SessionUnknown => "session_unknown",
            Refusal::UserUnknown => "user_unknown",
            Refusal::UserDisabled => "user_disabled",
            Refusal::StoreError => "store_error",
        }
    }
}

/// Claims of the access JWT.
#[derive(Debug, Serialize, Deserialize)]
pub struct AccessClaims {
    pub sub: String,
    #[serde(default)]
    pub role: String,
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub iat: u64,
    pub exp: u64,
}

/// The value of the first cookie called `name` in the request's `Cookie` headers.
pub fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| k.trim() == name)
        .map(|(_, v)| v.trim().trim_matches('"'))
}

fn session_signature(sid: &str, secrets: &Secrets) -> Vec<u8> {
    let mut mac = secrets.session_mac();
    mac.update(sid.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// `s:<sid>.<signature>` URL-encoded as express-session (cookie-signature) writes it.
pub fn sign_session_cookie(sid: &str, secrets: &Secrets) -> String {
    let signature =
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(session_signature(sid, secrets));
    let raw = format!("s:{sid}.{signature}");
    percent_encoding::utf8_percent_encode(&raw, COOKIE_VALUE_ESCAPES).to_string()
}

/// What `encodeURIComponent` escapes in the characters a signed cookie can contain.
const COOKIE_VALUE_ESCAPES: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

/// The sid inside a signed cookie value, when its signature is right.
pub fn verify_session_cookie(value: &str, secrets: &Secrets) -> Result<String, Refusal> {
    let decoded = percent_encoding::percent_decode_str(value)
        .decode_utf8()
        .map_err(|_| Refusal::SessionMalformed)?;
    let signed = decoded
        .strip_prefix("s:")
        .ok_or(Refusal::SessionMalformed)?;
    let (sid, signature) = signed.rsplit_once('.').ok_or(Refusal::SessionMalformed)?;
    if sid.is_empty() || sid.len() > 256 {
        return Err(Refusal::SessionMalformed);
    }
    let given = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(signature.trim_end_matches('='))
        .map_err(|_| Refusal::SessionBadSignature)?;
    let mut mac = secrets.session_mac();
    mac.update(sid.as_bytes());
    // verify_slice compares in constant time.
    mac.verify_slice(&given)
        .map_err(|_| Refusal::SessionBadSignature)?;
    Ok(sid.to_string())
}

pub fn issue_access_token(user: &User, secrets: &Secrets, ttl: Duration) -> String {
    let now = jsonwebtoken::get_current_timestamp();
    let claims = AccessClaims {
        sub: user.user_id.to_string(),
        role: user.role.clone(),
        username: user.username.clone(),
        iat: now,
        exp: now + ttl.as_secs(),
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secrets.jwt.as_bytes()),
    )
    .expect("HS256 signing of plain claims cannot fail")
}

/// The user id in a valid access token. Only HS256 is accepted, so `alg: none` and tokens
/// signed with another algorithm are refused. `exp` and, when present, `nbf` are checked with
/// the leeway, as production's jsonwebtoken checks them.
pub fn verify_access_token(token: &str, secrets: &Secrets) -> Result<Uuid, Refusal> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = ACCESS_TOKEN_LEEWAY.as_secs();
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.set_required_spec_claims(&["exp", "sub"]);
    let data = jsonwebtoken::decode::<AccessClaims>(
        token,
        &DecodingKey::from_secret(secrets.jwt.as_bytes()),
        &validation,
    )
    .map_err(|e| match e.kind() {
        jsonwebtoken::errors::ErrorKind::ExpiredSignature => Refusal::TokenExpired,
        jsonwebtoken::errors::ErrorKind::ImmatureSignature => Refusal::TokenNotYetValid,
        _ => Refusal::TokenInvalid,
    })?;
    Uuid::try_parse(&data.claims.sub).map_err(|_| Refusal::TokenInvalid)
}

/// Authenticate a request by its cookies, as production does on the handshake: a valid access
/// token wins; otherwise the session cookie decides. When both fail, the more telling reason
/// is reported (an expired token says more than "no session cookie").
pub async fn authenticate(
    headers: &HeaderMap,
    secrets: &Secrets,
    store: &dyn Store,
) -> Result<Authenticated, Refusal> {
    authenticate_for(headers, secrets, store, Also::Nothing)
        .await
        .map(|(authenticated, _)| authenticated)
}

/// [`authenticate`] for an engine handshake: a session cookie's lookup also reads the user's
/// chats (one round trip for both on PostgreSQL, `Store::session_admission`), which the
/// auto-join at CONNECT uses instead of asking again.
pub async fn authenticate_handshake(
    headers: &HeaderMap,
    secrets: &Secrets,
    store: &dyn Store,
) -> Result<Authenticated, Refusal> {
    authenticate_for(headers, secrets, store, Also::Chats)
        .await
        .map(|(authenticated, _)| authenticated)
}

/// [`authenticate`] for a REST call on one chat (every message post): the same lookup also
/// reads the user's access facts for `chat_id`, `None` when no chat has that id
/// (`Store::session_chat_facts`, or `Store::join_facts` for an access token), so the call
/// makes one store lookup instead of two. Refused exactly as [`authenticate`] refuses.
pub async fn authenticate_for_chat(
    headers: &HeaderMap,
    secrets: &Secrets,
    store: &dyn Store,
    chat_id: ChatId,
) -> Result<(User, Option<ChatAccessFacts>), Refusal> {
    authenticate_for(headers, secrets, store, Also::ChatAccess(chat_id))
        .await
        .map(|(authenticated, facts)| (authenticated.user, facts))
}

/// What an authentication reads with the account.
#[derive(Clone, Copy)]
enum Also {
    Nothing,
    /// The user's chats, for the auto-join.
    Chats,
    /// The user's access facts for this chat.
    ChatAccess(ChatId),
}

async fn authenticate_for(
    headers: &HeaderMap,
    secrets: &Secrets,
    store: &dyn Store,
    also: Also,
) -> Result<(Authenticated, Option<ChatAccessFacts>), Refusal> {
    let mut token_refusal = None;
    if let Some(token) = cookie_value(headers, ACCESS_COOKIE) {
        let found = match verify_access_token(token, secrets) {
            Ok(user_id) => match also {
                Also::ChatAccess(chat_id) => store
                    .join_facts(chat_id, user_id)
                    .await
                    .map_err(store_refusal)
                    .and_then(|found| found.ok_or(Refusal::UserUnknown))
                    .and_then(|(user, facts)| active(user).map(|user| (user, facts))),
                Also::Nothing | Also::Chats => {
                    active_user(store, user_id).await.map(|user| (user, None))
                }
            },
            Err(r) => Err(r),
        };
        match found {
            Ok((user, facts)) => {
                let authenticated = Authenticated {
                    user,
                    method: AuthMethod::AccessToken,
                    chats: None,
                };
                return Ok((authenticated, facts));
            }
            Err(r) => token_refusal = Some(r),
        }
    }
    let Some(cookie) = cookie_value(headers, SESSION_COOKIE) else {
        return Err(token_refusal.unwrap_or(Refusal::NoCredentials));
    };
    let sid = verify_session_cookie(cookie, secrets)?;
    let session = match also {
        Also::Nothing => store
            .session_account(&sid)
            .await
            .map(|found| found.map(|account| account.map(|user| (user, None, None)))),
        Also::Chats => {
            let read_at = Instant::now();
            store.session_admission(&sid).await.map(|found| {
                found.map(|account| {
                    account.map(|(user, chats)| {
                        (user, Some(HandshakeChats::new(chats, read_at)), None)
                    })
                })
            })
        }
        Also::ChatAccess(chat_id) => store
            .session_chat_facts(&sid, chat_id)
            .await
            .map(|found| found.map(|account| account.map(|(user, facts)| (user, None, facts)))),
    };
    let (user, chats, facts) = match session.map_err(store_refusal)? {
        None => return Err(Refusal::SessionUnknown),
        Some(Err(_missing_user)) => return Err(Refusal::UserUnknown),
        Some(Ok((user, _, _))) if !user.is_active() => return Err(Refusal::UserDisabled),
        Some(Ok(found)) => found,
    };
    let authenticated = Authenticated {
        user,
        method: AuthMethod::SessionCookie,
        chats,
    };
    Ok((authenticated, facts))
}

/// The user, if it exists and is neither banned nor deleted.
pub async fn active_user(store: &dyn Store, user_id: Uuid) -> Result<User, Refusal> {
    let user = store
        .user_by_id(user_id)
        .await
        .map_err(store_refusal)?
        .ok_or(Refusal::UserUnknown)?;
    active(user)
}

/// The user, unless banned or deleted.
fn active(user: User) -> Result<User, Refusal> {
    if user.is_active() {
        Ok(user)
    } else {
        Err(Refusal::UserDisabled)
    }
}

fn store_refusal(e: StoreError) -> Refusal {
    tracing::error!(error = %e, "store failed during authentication");
    Refusal::StoreError
}

#[cfg(test)]
mod tests {

    #[test]
    fn handshake_chats_are_taken_once_and_only_while_fresh() {
        let chats = vec![ChatId(Uuid::nil())];
        let read = HandshakeChats::new(chats.clone(), Instant::now());
        let kept = read.clone();
        assert_eq!(read.take_fresh(Duration::from_secs(1)), Some(chats.clone()));
        assert_eq!(
            kept.take_fresh(Duration::from_secs(1)),
            None,
            "moved out, not copied"
        );
        let stale = HandshakeChats::new(chats, Instant::now() - Duration::from_secs(2));
        assert_eq!(stale.take_fresh(Duration::from_secs(1)), None);
    }

    use super::*;

    fn secrets() -> Secrets {
        Secrets::new("keyboard cat".into(), None)
    }

    #[test]
    fn session_cookie_matches_express_cookie_signature() {
        // cookie-signature's own test vector: sign('hello', 'tobiiscool').
        let s = Secrets::new("tobiiscool".into(), None);
        assert_eq!(
            sign_session_cookie("hello", &s),
            "s%3Ahello.DGDUkGlIkCzPz%2BC0B064FNgHdEjox7ch8tOBGslZ5QI"
        );
        assert_eq!(
            verify_session_cookie(
                "s%3Ahello.DGDUkGlIkCzPz%2BC0B064FNgHdEjox7ch8tOBGslZ5QI",
                &s
            ),
            Ok("hello".into())
        );
    }

    #[test]
    fn tampered_session_cookies_are_refused() {
        let s = secrets();
        let good = sign_session_cookie("abc", &s);
        assert_eq!(verify_session_cookie(&good, &s), Ok("abc".into()));
        let forged = good.replace("abc", "abd");
        assert_eq!(
            verify_session_cookie(&forged, &s),
            Err(Refusal::SessionBadSignature)
        );
        assert_eq!(
            verify_session_cookie("abc", &s),
            Err(Refusal::SessionMalformed)
        );
        assert_eq!(
            verify_session_cookie("s%3Aabc", &s),
            Err(Refusal::SessionMalformed)
        );
        assert_eq!(
            verify_session_cookie("%FF%FE", &s),
            Err(Refusal::SessionMalformed)
        );
        let other = Secrets::new("other".into(), None);
        assert_eq!(
            verify_session_cookie(&good, &other),
            Err(Refusal::SessionBadSignature)
        );
    }

    #[test]
    fn cookie_header_parsing() {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::COOKIE,
            "a=1; scmarket.sid=xyz ; b=2".parse().unwrap(),
        );
        assert_eq!(cookie_value(&h, "scmarket.sid"), Some("xyz"));
        assert_eq!(cookie_value(&h, "c"), None);
    }
}
