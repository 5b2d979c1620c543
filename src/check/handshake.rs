//! The handshake family: who gets in. Production checks credentials once, on the first engine
//! request: the `scmarket.access` JWT (HS256), else the signed `scmarket.sid` session cookie;
//! everything else is refused with HTTP 400. Each probe sends exactly one kind of credential,
//! never user A's real cookies alongside, so an acceptance can only mean the probe got in.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use percent_encoding::{NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde_json::{Value, json};
use sha2::Sha256;
use uuid::Uuid;

use super::context::{Context, User, parse_cookies};
use super::probe::{Handshake, handshake};
use super::{Finding, NEEDS_A};
use crate::client::Transport;
use crate::protocol::{self, ACCESS_COOKIE, SESSION_COOKIE};

/// `handshake.no-credentials`: refused on both transports, as production answers.
pub async fn no_credentials(ctx: &Context) -> Finding {
    let (ws, ws_evidence) = handshake(
        ctx,
        "websocket handshake without cookies",
        &[],
        Transport::Websocket,
        None,
    )
    .await;
    let (polling, polling_evidence) = handshake(
        ctx,
        "polling handshake without cookies",
        &[],
        Transport::Polling,
        None,
    )
    .await;
    let evidence = vec![ws_evidence, polling_evidence];
    let as_production = |h: &Handshake, polling: bool| match h {
        Handshake::Refused {
            status: Some(400),
            body,
        } => !polling || body.trim() == protocol::HANDSHAKE_REFUSAL_BODY,
        _ => false,
    };
    let verdict = if ws.accepted() || polling.accepted() {
        Finding::fail("a session was opened without any credentials")
    } else if as_production(&ws, false) && as_production(&polling, true) {
        Finding::pass(format!(
            "refused on both transports with HTTP 400 ({} on polling), as production",
            protocol::HANDSHAKE_REFUSAL_BODY
        ))
    } else if matches!(ws, Handshake::Refused { .. })
        && matches!(polling, Handshake::Refused { .. })
    {
        Finding::warning(format!(
            "refused, but not as production answers (HTTP 400, and {} on polling): clients that read the refusal may misreport it",
            protocol::HANDSHAKE_REFUSAL_BODY
        ))
    } else {
        Finding::warning("no clear refusal: the server failed or did not answer the handshake")
    };
    ws.close().await;
    polling.close().await;
    verdict.with(evidence)
}

/// Refused → pass, accepted → fail, anything else → warning: the verdict of a forged
/// credential.
async fn forged(ctx: &Context, step: &str, cookies: Vec<(String, String)>, what: &str) -> Finding {
    let (outcome, evidence) = handshake(ctx, step, &cookies, Transport::Websocket, None).await;
    let finding = match &outcome {
        Handshake::Refused { .. } => Finding::pass(format!("{what} was refused")),
        Handshake::Accepted(_) => Finding::fail(format!("{what} opened a session")),
        Handshake::Failed(e) => Finding::warning(format!(
            "{what} got no clear refusal: {e}; the server should answer HTTP 400"
        )),
    };
    outcome.close().await;
    finding.with(vec![evidence])
}

/// `handshake.forged-session`: a session cookie with an id and signature made up here.
pub async fn forged_session(ctx: &Context) -> Finding {
    let sid = Uuid::new_v4().simple().to_string();
    let signature = sign_sid(&sid, Uuid::new_v4().as_bytes());
    forged(
        ctx,
        "websocket handshake with a made-up session cookie",
        vec![(
            SESSION_COOKIE.into(),
            session_cookie_value(&sid, &signature),
        )],
        "a made-up scmarket.sid",
    )
    .await
}

/// `handshake.resigned-session`: user A's real session id, signed with another secret.
pub async fn resigned_session(ctx: &Context) -> Finding {
    let Some(value) = ctx.a.as_ref().and_then(|a| a.cookie(SESSION_COOKIE)) else {
        return Finding::skipped(&["user A's scmarket.sid (--cookie or --login)"]);
    };
    let decoded = percent_decode_str(value).decode_utf8_lossy().into_owned();
    let Some((sid, _signature)) = decoded
        .strip_prefix("s:")
        .and_then(|signed| signed.rsplit_once('.'))
    else {
        return Finding::warning(
            "user A's scmarket.sid is not an express-session signed cookie (s:<sid>.<signature>): nothing to re-sign",
        );
    };
    let signature = sign_sid(sid, b"scmarket-ws check: not the deployment's secret");
    forged(
        ctx,
        "websocket handshake with user A's session id under a wrong signature",
        vec![(SESSION_COOKIE.into(), session_cookie_value(sid, &signature))],
        "user A's session id with a wrong signature",
    )
    .await
}

/// `handshake.tampered-jwt`: user A's access token with its expiry moved and its role raised,
/// the signature kept.
pub async fn tampered_jwt(ctx: &Context) -> Finding {
    let Some(token) = ctx.a.as_ref().and_then(|a| a.cookie(ACCESS_COOKIE)) else {
        return Finding::skipped(&["user A's scmarket.access (--jwt, --cookie or --login)"]);
    };
    let parts: Vec<&str> = token.split('.').collect();
    let Some(mut claims) = super::context::jwt_claims(token).filter(|_| parts.len() == 3) else {
        return Finding::warning("user A's scmarket.access is not a JWT: nothing to tamper with");
    };
    claims.insert("exp".into(), json!(now_s() + 3600));
    claims.insert("role".into(), json!("admin"));
    let payload = b64(&Value::Object(claims).to_string());
    let tampered = format!("{}.{payload}.{}", parts[0], parts[2]);
    forged(
        ctx,
        "websocket handshake with user A's access token, claims altered, signature kept",
        vec![(ACCESS_COOKIE.into(), tampered)],
        "an access token with altered claims",
    )
    .await
}

/// `handshake.alg-none`: an unsigned token naming user A.
pub async fn alg_none(ctx: &Context) -> Finding {
    let Some(a) = ctx.a.as_ref().filter(|a| a.user_id.is_some()) else {
        return Finding::skipped(&["user A's id (from --jwt or --login)"]);
    };
    let header = b64(&json!({"alg": "none", "typ": "JWT"}).to_string());
    let payload = b64(&claims_for(a, now_s() as i64, 900).to_string());
    forged(
        ctx,
        "websocket handshake with an unsigned (alg: none) access token naming user A",
        vec![(ACCESS_COOKIE.into(), format!("{header}.{payload}."))],
        "an alg: none access token",
    )
    .await
}

/// `handshake.expired-jwt`: an access token past its expiry and the 30 s leeway. Given as
/// `--expired-jwt`, or signed here with `--jwt-secret`, together with a fresh token of the same
/// secret that must be accepted (else the refusal proves nothing).
pub async fn expired_jwt(ctx: &Context) -> Finding {
    if let Some(token) = &ctx.config.expired_jwt {
        return forged(
            ctx,
            "websocket handshake with the expired access token of --expired-jwt",
            vec![(ACCESS_COOKIE.into(), token.trim().to_string())],
            "the expired access token",
        )
        .await;
    }
    let (Some(secret), Some(a)) = (
        ctx.config.jwt_secret.as_deref(),
        ctx.a.as_ref().filter(|a| a.user_id.is_some()),
    ) else {
        return Finding::skipped(&[
            "--expired-jwt, or --jwt-secret and user A's id (from --jwt or --login)",
        ]);
    };
    let now = now_s() as i64;
    let leeway = protocol::ACCESS_TOKEN_LEEWAY.as_secs() as i64;
    let fresh = sign_hs256(&claims_for(a, now, 900), secret);
    let expired = sign_hs256(&claims_for(a, now - 1000 - leeway, 900), secret);
    let (control, control_evidence) = handshake(
        ctx,
        "control: a fresh access token for user A signed with --jwt-secret",
        &[(ACCESS_COOKIE.into(), fresh)],
        Transport::Websocket,
        None,
    )
    .await;
    let control_ok = control.accepted();
    control.close().await;
    let mut finding = forged(
        ctx,
        "websocket handshake with an access token of user A expired 100 s beyond the leeway",
        vec![(ACCESS_COOKIE.into(), expired)],
        "an expired access token",
    )
    .await;
    finding.evidence.insert(0, control_evidence);
    if !control_ok && finding.status == super::Status::Pass {
        finding = Finding::warning(
            "the expired token was refused, but so was a fresh one signed with --jwt-secret: the secret is not this deployment's, so the refusal proves nothing",
        )
        .with(finding.evidence)
        .needing(&["--jwt-secret of this deployment"]);
    }
    finding
}

/// `handshake.banned-user`: the session cookie of a banned account.
pub async fn banned_user(ctx: &Context) -> Finding {
    let Some(text) = &ctx.config.banned_cookie else {
        return Finding::skipped(&["--banned-cookie"]);
    };
    let mut cookies = Vec::new();
    if let Err(e) = parse_cookies(text, &mut cookies) {
        return Finding::warning(format!("--banned-cookie cannot be used: {e}"));
    }
    let mut finding = forged(
        ctx,
        "websocket handshake with a banned account's cookie",
        cookies,
        "a banned account's cookie",
    )
    .await;
    if finding.status == super::Status::Fail {
        finding.summary = "a banned account's cookie opened a session: banned users keep connecting (banned-users-connect)".into();
    }
    finding
}

/// `handshake.open-packet`: the engine settings user A's polling handshake announces.
pub async fn open_packet(ctx: &Context) -> Finding {
    let Some(a) = &ctx.a else {
        return Finding::skipped(&[NEEDS_A]);
    };
    let (outcome, evidence) = handshake(
        ctx,
        "polling handshake as user A",
        a.cookies(),
        Transport::Polling,
        None,
    )
    .await;
    let Handshake::Accepted(session) = outcome else {
        return Finding::fail("user A's polling handshake did not reach CONNECT")
            .with(vec![evidence]);
    };
    let h = session.info().handshake.clone();
    session.disconnect().await;
    let mut differences = Vec::new();
    let expected_interval = protocol::DEFAULT_PING_INTERVAL.as_millis() as u64;
    let expected_timeout = protocol::DEFAULT_PING_TIMEOUT.as_millis() as u64;
    if h.ping_interval != expected_interval {
        differences.push(format!(
            "pingInterval {} (production {expected_interval})",
            h.ping_interval
        ));
    }
    if h.ping_timeout != expected_timeout {
        differences.push(format!(
            "pingTimeout {} (production {expected_timeout})",
            h.ping_timeout
        ));
    }
    match h.max_payload {
        Some(n) if n == protocol::DEFAULT_MAX_PAYLOAD => {}
        Some(n) => differences.push(format!(
            "maxPayload {n} (production {})",
            protocol::DEFAULT_MAX_PAYLOAD
        )),
        None => differences.push("no maxPayload announced".into()),
    }
    if h.upgrades != ["websocket"] {
        differences.push(format!(
            "upgrades {:?} on polling (production [\"websocket\"])",
            h.upgrades
        ));
    }
    let finding = if differences.is_empty() {
        Finding::pass(format!(
            "ping every {} ms, timeout {} ms, max payload {} bytes, upgrade to websocket: production's settings",
            h.ping_interval,
            h.ping_timeout,
            h.max_payload.unwrap_or_default()
        ))
    } else {
        Finding::warning(format!(
            "settings differ from production's: {}",
            differences.join("; ")
        ))
    };
    let mut finding = finding
        .with(vec![evidence])
        .measure("ping_interval_ms", h.ping_interval as f64)
        .measure("ping_timeout_ms", h.ping_timeout as f64);
    if let Some(n) = h.max_payload {
        finding = finding.measure("max_payload", n as f64);
    }
    finding
}

// ------------------------------------------------------------------ credentials made here

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn b64(text: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text.as_bytes())
}

/// Production's access-token claims for `user`, issued at `iat` for `lifetime_s`.
fn claims_for(user: &User, iat: i64, lifetime_s: i64) -> Value {
    json!({
        "sub": user.user_id,
        "role": "user",
        "username": user.username.clone().unwrap_or_default(),
        "iat": iat,
        "exp": iat + lifetime_s,
    })
}

fn sign_hs256(claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap_or_default()
}

/// cookie-signature's signature of `sid` under `key`: base64 HMAC-SHA256 without padding.
fn sign_sid(sid: &str, key: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(sid.as_bytes());
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(mac.finalize().into_bytes())
}

/// `s:<sid>.<signature>` URL-encoded, as express-session writes the cookie.
fn session_cookie_value(sid: &str, signature: &str) -> String {
    utf8_percent_encode(&format!("s:{sid}.{signature}"), NON_ALPHANUMERIC).to_string()
}
