//! Exit codes shared by every command, documented in the README and `--help`.

use std::fmt;

/// What a command's failure means to a script that runs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitCode {
    /// Success.
    Ok = 0,
    /// Failure at run time (including a failed load-test threshold).
    Failure = 1,
    /// Bad usage: a flag, file or scenario that cannot be used as given.
    Usage = 2,
    /// The server refused: a handshake answered with HTTP 400/401/403 or a CONNECT_ERROR.
    Refused = 3,
    /// Cannot connect: unreachable host, connection refused, TLS failure.
    Unreachable = 4,
    /// Timed out, or an expected count was not reached.
    TimedOut = 5,
}

impl ExitCode {
    /// The class of failure a code stands for, as `--json` names it.
    pub fn class(self) -> &'static str {
        match self {
            ExitCode::Ok => "ok",
            ExitCode::Failure => "failure",
            ExitCode::Usage => "usage",
            ExitCode::Refused => "refused",
            ExitCode::Unreachable => "unreachable",
            ExitCode::TimedOut => "timeout",
        }
    }
}

/// An error that carries the exit code it should end the process with. Anything else that
/// reaches `main` exits with [`ExitCode::Failure`]. Its message may end in a hint, after
/// [`HINT_MARK`].
#[derive(Debug)]
pub struct CommandError {
    pub code: ExitCode,
    pub message: String,
    /// The HTTP status the server answered, where the failure was one.
    pub status: Option<u16>,
}

/// Where a message's hint starts: people read it on the next line, `--json` splits it off.
pub const HINT_MARK: &str = "\n  try: ";

impl CommandError {
    pub fn new(code: ExitCode, message: impl Into<String>) -> Self {
        CommandError {
            code,
            message: message.into(),
            status: None,
        }
    }

    pub fn with_status(mut self, status: Option<u16>) -> Self {
        self.status = status;
        self
    }
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(ExitCode::Usage, message)
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CommandError {}

/// A failure as one JSON document, for commands run with `--json`: a script reading stdout
/// gets the class, the HTTP status where there was one, the message, the hint and the exit
/// code instead of an empty document.
pub fn failure_json(error: &anyhow::Error) -> serde_json::Value {
    let command = error
        .chain()
        .find_map(|cause| cause.downcast_ref::<CommandError>());
    let code = command.map_or(ExitCode::Failure, |c| c.code);
    let text = format!("{error:#}");
    let (message, hint) = match text.split_once(HINT_MARK) {
        Some((message, hint)) => (message.to_string(), Some(hint.to_string())),
        None => (text, None),
    };
    serde_json::json!({
        "type": "error",
        "error": {
            "class": code.class(),
            "status": command.and_then(|c| c.status),
            "message": message,
            "hint": hint,
        },
        "exit_code": code as u8,
    })
}

/// The exit code for an error returned by a command.
pub fn code_for(error: &anyhow::Error) -> ExitCode {
    error
        .chain()
        .find_map(|cause| cause.downcast_ref::<CommandError>())
        .map(|e| e.code)
        .unwrap_or(ExitCode::Failure)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_as_json_split_off_the_hint() {
        let e: anyhow::Error = CommandError::new(
            ExitCode::Refused,
            format!("connecting: HTTP 401{HINT_MARK}pass --cookie"),
        )
        .with_status(Some(401))
        .into();
        let j = failure_json(&e);
        assert_eq!(j["error"]["class"], "refused");
        assert_eq!(j["error"]["status"], 401);
        assert_eq!(j["error"]["message"], "connecting: HTTP 401");
        assert_eq!(j["error"]["hint"], "pass --cookie");
        assert_eq!(j["exit_code"], 3);
        let j = failure_json(&anyhow::anyhow!("plain"));
        assert_eq!(j["error"]["class"], "failure");
        assert_eq!(j["error"]["hint"], serde_json::Value::Null);
        assert_eq!(j["exit_code"], 1);
    }
}
