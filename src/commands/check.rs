//! `check URL`: flags in, the check run, the report out (text or `--json`), its exit code.

use std::time::Duration;

use super::client_setup::client_failure;
use super::output::Style;
use crate::check::{self, CheckConfig, UserCredentials, catalog};
use crate::cli::CheckArgs;
use crate::exit::{CommandError, ExitCode};
use crate::protocol::ChatId;

/// The longest any of --timeout, --wait and --join-window may be, so a run stays bounded.
const MAX_DURATION: Duration = Duration::from_secs(600);
const MIN_JOIN_WINDOW: Duration = Duration::from_millis(50);

pub async fn run(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let json = args.json;
    let all_evidence = args.evidence;
    let config = config(args)?;
    let report = check::run(config)
        .await
        .map_err(|e| client_failure(e, "preparing the check"))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let colour = Style::for_stdout().is_terminal();
        print!("{}", check::text::render(&report, colour, all_evidence));
    }
    Ok(match report.exit_code {
        0 => ExitCode::Ok,
        3 => ExitCode::Refused,
        4 => ExitCode::Unreachable,
        5 => ExitCode::TimedOut,
        _ => ExitCode::Failure,
    })
}

fn usage(message: impl Into<String>) -> anyhow::Error {
    CommandError::usage(message).into()
}

/// The flags as the library's configuration, every one checked.
pub fn config(args: CheckArgs) -> anyhow::Result<CheckConfig> {
    let known = || {
        catalog::CHECKS
            .iter()
            .map(|c| c.id)
            .collect::<Vec<_>>()
            .join(", ")
    };
    for id in args.only.iter().chain(&args.skip) {
        if catalog::find(id).is_none() {
            return Err(usage(format!(
                "there is no check {id:?}; the checks are: {}",
                known()
            )));
        }
    }
    for (flag, value) in [
        ("--timeout", args.timeout),
        ("--wait", args.wait),
        ("--join-window", args.join_window),
    ] {
        if value.is_zero() || value > MAX_DURATION {
            return Err(usage(format!("{flag} must be more than 0 and at most 10m")));
        }
    }
    if args.join_window < MIN_JOIN_WINDOW {
        return Err(usage("--join-window must be at least 50ms"));
    }
    let chat = match &args.chat {
        None => None,
        Some(text) => {
            Some(ChatId::parse(text.trim()).map_err(|e| usage(format!("--chat {text:?}: {e}")))?)
        }
    };
    if let Some(origin) = &args.origin
        && origin
            .trim_end_matches('/')
            .eq_ignore_ascii_case(args.foreign_origin.trim_end_matches('/'))
    {
        return Err(usage(
            "--origin and --foreign-origin are the same: the foreign Origin must be one the deployment does not allow",
        ));
    }
    if args.system_message_command.is_some() && chat.is_none() {
        return Err(usage(
            "--system-message-command needs --chat: the chat it stores a message in",
        ));
    }
    let mut config = CheckConfig::new(args.url);
    config.path = args.path;
    config.user_a = UserCredentials {
        cookies: args.cookies,
        jwt: args.jwt,
        login: args.login,
    };
    config.user_b = UserCredentials {
        cookies: args.other_cookies,
        jwt: args.other_jwt,
        login: args.other_login,
    };
    config.banned_cookie = args.banned_cookie;
    config.chat = chat;
    config.origin = args.origin;
    config.foreign_origin = args.foreign_origin;
    config.post = args.post;
    config.destructive = args.destructive;
    config.jwt_secret = args.jwt_secret;
    config.expired_jwt = args.expired_jwt;
    config.system_message_command = args.system_message_command;
    config.timeout = args.timeout;
    config.wait = args.wait;
    config.join_window = args.join_window;
    config.only = args.only;
    config.skip = args.skip;
    Ok(config)
}
