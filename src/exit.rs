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

/// An error that carries the exit code it should end the process with. Anything else that
/// reaches `main` exits with [`ExitCode::Failure`].
#[derive(Debug)]
pub struct CommandError {
    pub code: ExitCode,
    pub message: String,
}

impl CommandError {
    pub fn new(code: ExitCode, message: impl Into<String>) -> Self {
        CommandError {
            code,
            message: message.into(),
        }
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

/// The exit code for an error returned by a command.
pub fn code_for(error: &anyhow::Error) -> ExitCode {
    error
        .chain()
        .find_map(|cause| cause.downcast_ref::<CommandError>())
        .map(|e| e.code)
        .unwrap_or(ExitCode::Failure)
}
