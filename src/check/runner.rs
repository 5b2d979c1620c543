//! A `check` run: reach the target, resolve users A and B, then run the selected checks in the
//! catalog's order, each bounded in time, into one [`Report`].

use std::time::{Duration, Instant, SystemTime};

use super::catalog::{CHECKS, CheckSpec};
use super::config::CheckConfig;
use super::context::Context;
use super::report::{CheckResult, Outcome, Report, SCHEMA_VERSION, Settings, Summary};
use super::{
    Finding, delivery, destructive, handshake, joins, origin, payload, rest, transport, viewing,
};
use crate::client::{ClientError, ErrorClass, Transport};

/// Run the checks `config` selects. An error only for a configuration that cannot be used
/// (a URL that is not one, a dev login on a server without the dev routes); a target that
/// refuses or cannot be reached is an outcome of the report.
pub async fn run(config: CheckConfig) -> Result<Report, ClientError> {
    let started = Instant::now();
    let started_at =
        crate::protocol::WireTimestamp(time::OffsetDateTime::from(SystemTime::now())).to_string();
    let mut ctx = Context::new(config)?;
    let mut report = Report {
        schema_version: SCHEMA_VERSION,
        tool: format!("scmarket-ws {}", env!("CARGO_PKG_VERSION")),
        target: ctx.target(),
        started_at,
        duration_ms: 0.0,
        settings: settings(&ctx.config),
        outcome: Outcome::Passed,
        exit_code: 0,
        error: None,
        checks: Vec::new(),
        summary: Summary::default(),
    };
    if let Some((outcome, error)) = prepare(&mut ctx).await? {
        report.outcome = outcome;
        report.exit_code = exit_code(outcome);
        report.error = Some(error);
        report.duration_ms = ms(started.elapsed());
        return Ok(report);
    }
    report.settings.user_a = ctx.a.is_some();
    report.settings.user_b = ctx.b.is_some();
    for spec in CHECKS.iter().filter(|c| ctx.config.selects(c.id)) {
        let began = Instant::now();
        tracing::debug!(check = spec.id, "running");
        let finding = match tokio::time::timeout(budget(&ctx.config), run_one(&ctx, spec)).await {
            Ok(finding) => finding,
            Err(_) => Finding::fail(format!(
                "did not finish within {} ms",
                budget(&ctx.config).as_millis()
            )),
        };
        tracing::debug!(check = spec.id, status = finding.status.as_str(), "done");
        report.checks.push(CheckResult {
            id: spec.id.to_string(),
            family: spec.family().to_string(),
            title: spec.title.to_string(),
            defect: spec.defect.map(str::to_string),
            status: finding.status,
            summary: finding.summary,
            needs: finding.needs,
            evidence: finding.evidence,
            measurements: finding.measurements,
            duration_ms: ms(began.elapsed()),
        });
    }
    report.summary = Summary::of(&report.checks);
    report.outcome = if report.summary.fail > 0 {
        Outcome::Failed
    } else {
        Outcome::Passed
    };
    report.exit_code = exit_code(report.outcome);
    report.duration_ms = ms(started.elapsed());
    Ok(report)
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

pub fn exit_code(outcome: Outcome) -> u8 {
    match outcome {
        Outcome::Passed => 0,
        Outcome::Failed => 1,
        Outcome::Refused => 3,
        Outcome::Unreachable => 4,
        Outcome::TimedOut => 5,
    }
}

/// The longest one check may take: its steps are each bounded by these settings, and the
/// largest (late-listeners without acknowledgements) takes connects, a window and a wait.
fn budget(config: &CheckConfig) -> Duration {
    config.timeout * 3 + config.join_window * 4 + config.wait * 4
}

fn settings(config: &CheckConfig) -> Settings {
    Settings {
        post: config.post,
        destructive: config.destructive,
        user_a: !config.user_a.is_empty(),
        user_b: !config.user_b.is_empty(),
        banned_user: config.banned_cookie.is_some(),
        chat: config.chat.map(|c| c.to_string()),
        origin: config.origin.clone(),
        foreign_origin: config.foreign_origin.clone(),
        join_window_ms: ms(config.join_window),
        wait_ms: ms(config.wait),
    }
}

/// Reach the target and resolve the users; `Some` when the target as a whole refuses or
/// cannot be reached.
async fn prepare(ctx: &mut Context) -> Result<Option<(Outcome, String)>, ClientError> {
    // 1. Anything answering at all? (A socket.io server answers this with 400: no cookie.)
    if let Err(e) = ctx.http.get(ctx.polling_url()).send().await {
        let outcome = if e.is_timeout() {
            Outcome::TimedOut
        } else {
            Outcome::Unreachable
        };
        let mut chain = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            chain.push_str(&format!(": {s}"));
            source = s.source();
        }
        return Ok(Some((
            outcome,
            format!("cannot reach {}: {chain}", ctx.target()),
        )));
    }
    // 2. Users A and B, and their credentials accepted.
    let a_credentials = ctx.config.user_a.clone();
    let b_credentials = ctx.config.user_b.clone();
    for (label, credentials) in [("A", a_credentials), ("B", b_credentials)] {
        let user = match ctx.resolve_user(label, &credentials).await {
            Ok(user) => user,
            Err(e) => return failure(e, &format!("logging in user {label}")),
        };
        let Some(user) = user else { continue };
        match ctx.connect(&user, Transport::Websocket).await {
            Ok(session) => session.disconnect().await,
            Err(e) => {
                if let Some(stop) = failure(e, &format!("connecting as user {label}"))? {
                    return Ok(Some(stop));
                }
            }
        }
        if label == "A" {
            ctx.a = Some(user);
        } else {
            ctx.b = Some(user);
        }
    }
    Ok(None)
}

/// A failure while preparing: a usage problem is the caller's error; a refusal, an unreachable
/// target or a timeout stops the run with that outcome; anything else is left to the checks.
fn failure(e: ClientError, doing: &str) -> Result<Option<(Outcome, String)>, ClientError> {
    let outcome = match e.class() {
        ErrorClass::Usage => return Err(e),
        ErrorClass::Refused => Outcome::Refused,
        ErrorClass::Unreachable => Outcome::Unreachable,
        ErrorClass::Timeout => Outcome::TimedOut,
        ErrorClass::Other => {
            tracing::warn!("{doing}: {e}");
            return Ok(None);
        }
    };
    let mut message = format!("{doing}: {e}");
    if let Some(hint) = e.hint() {
        message.push_str(&format!(" (try: {hint})"));
    }
    Ok(Some((outcome, message)))
}

async fn run_one(ctx: &Context, spec: &CheckSpec) -> Finding {
    match spec.id {
        "handshake.no-credentials" => handshake::no_credentials(ctx).await,
        "handshake.forged-session" => handshake::forged_session(ctx).await,
        "handshake.resigned-session" => handshake::resigned_session(ctx).await,
        "handshake.tampered-jwt" => handshake::tampered_jwt(ctx).await,
        "handshake.alg-none" => handshake::alg_none(ctx).await,
        "handshake.expired-jwt" => handshake::expired_jwt(ctx).await,
        "handshake.banned-user" => handshake::banned_user(ctx).await,
        "handshake.open-packet" => handshake::open_packet(ctx).await,
        "transport.websocket" => transport::reaches_connect(ctx, Transport::Websocket).await,
        "transport.polling" => transport::reaches_connect(ctx, Transport::Polling).await,
        "transport.upgrade" => transport::reaches_connect(ctx, Transport::Upgrade).await,
        "origin.foreign-refused" => origin::foreign_refused(ctx).await,
        "origin.cors-credentials" => origin::cors_credentials(ctx).await,
        "joins.own-chat" => joins::own_chat(ctx).await,
        "joins.late-listeners" => joins::late_listeners(ctx).await,
        "joins.refusal-reason" => joins::refusal_reason(ctx).await,
        "joins.upper-case-id" => joins::upper_case_id(ctx).await,
        "viewing.other-user" => viewing::other_user(ctx).await,
        "payload.server-message" => payload::server_message(ctx).await,
        "rest.refused-post" => rest::refused_post(ctx).await,
        "delivery.system-message" => delivery::system_message(ctx).await,
        "destructive.null-join" => destructive::null_join(ctx).await,
        other => Finding::warning(format!("{other} has no implementation in this build")),
    }
}
