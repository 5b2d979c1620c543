//! What `connect`, `join` and `listen` share: connect options from the common flags, chat ids,
//! and client failures as exit codes. (Room requests are the client's: `client::rooms`.)

use serde_json::Value;

use crate::cli::ClientArgs;
use crate::client::{ApiClient, ClientError, ConnectOptions, ErrorClass, mask};
use crate::exit::{CommandError, ExitCode};
use crate::protocol::{self, ChatId};

/// Turn a client failure into the command's error: what happened, what to try, which exit code.
pub(crate) fn client_failure(error: ClientError, doing: &str) -> anyhow::Error {
    let code = match error.class() {
        ErrorClass::Usage => ExitCode::Usage,
        ErrorClass::Refused => ExitCode::Refused,
        ErrorClass::Unreachable => ExitCode::Unreachable,
        ErrorClass::Timeout => ExitCode::TimedOut,
        ErrorClass::Other => ExitCode::Failure,
    };
    let mut message = format!("{doing}: {error}");
    if let Some(hint) = error.hint() {
        message.push_str(crate::exit::HINT_MARK);
        message.push_str(hint);
    }
    CommandError::new(code, message)
        .with_status(error.http_status())
        .into()
}

/// Build the connect options from the shared flags, logging in first with `--login`.
pub(crate) async fn options(args: &ClientArgs) -> anyhow::Result<ConnectOptions> {
    let usage = |e: ClientError| -> anyhow::Error { CommandError::usage(e.to_string()).into() };
    let mut options = ConnectOptions::new(&args.url, args.path.as_deref()).map_err(usage)?;
    options.transport = args.transport;
    options.timeout = args.timeout;
    options.max_payload = Some(args.max_payload);
    for cookie in &args.cookies {
        options.add_cookies(cookie).map_err(usage)?;
    }
    if let Some(jwt) = &args.jwt {
        options
            .add_cookies(&format!("{}={}", protocol::ACCESS_COOKIE, jwt.trim()))
            .map_err(usage)?;
    }
    for header in &args.headers {
        options.add_header(header).map_err(usage)?;
    }
    if let Some(origin) = &args.origin {
        options.set_origin(origin).map_err(usage)?;
    }
    if let Some(auth) = &args.auth {
        let value: Value = serde_json::from_str(auth).map_err(|e| {
            CommandError::usage(format!(
                "--auth is not JSON ({e}): write e.g. --auth '{{\"token\":\"...\"}}'"
            ))
        })?;
        options.auth = Some(value);
    }
    if let Some(user) = &args.login {
        let login = ApiClient::for_target(&options)
            .with_timeout(options.timeout)
            .dev_login(user)
            .await
            .map_err(|e| client_failure(e, &format!("dev login as {user:?}")))?;
        tracing::debug!(
            user = %login.username,
            session_cookie = %mask(&login.session_cookie),
            access_cookie = %mask(&login.access_cookie),
            "dev login"
        );
        options.add_cookies(&login.session_cookie).map_err(usage)?;
        options.add_cookies(&login.access_cookie).map_err(usage)?;
    }
    let cookies: Vec<&str> = options.cookie_names().collect();
    tracing::debug!(target = %options.display_target(), transport = %options.transport, ?cookies, "connecting");
    Ok(options)
}

/// Chat ids as the server will get them: checked to be UUIDs, sent as typed unless
/// `normalize` lower-cases them. An id that is not lower-case gets a warning, since production
/// names its rooms by the lower-case id and joins the room named as sent (`case-sensitive-rooms`).
pub(crate) fn chat_ids(ids: &[String], normalize: bool) -> anyhow::Result<Vec<String>> {
    ids.iter()
        .map(|id| {
            let typed = id.trim();
            let chat = ChatId::parse(typed).map_err(|e| {
                anyhow::Error::from(CommandError::usage(format!("chat id {id:?}: {e}")))
            })?;
            let canonical = chat.to_string();
            if normalize {
                return Ok(canonical);
            }
            if typed != canonical {
                tracing::warn!(
                    "chat id {typed} is not lower-case; it is sent as typed, and production would \
                     join a room of that name, which never receives messages (its rooms are \
                     named by the lower-case id): pass --normalize-ids to send {canonical}"
                );
            }
            Ok(typed.to_string())
        })
        .collect()
}
