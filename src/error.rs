//! One error type for the whole tool. Each error carries the exit code class it maps to, so
//! `main` never has to guess, and a message written for the person reading the job log.

use std::fmt;
use std::path::Path;

/// Exit codes, documented in the README. Keep the numbers stable: CI scripts branch on them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitCode {
    /// Something failed while doing the work (I/O, git, network).
    Failed = 1,
    /// Bad usage or bad input: spec, tag, flags, repository.
    Input = 2,
    /// A rollout failed on the orchestrator (whether or not it was rolled back).
    RolloutFailed = 3,
    /// A rollout did not finish before its timeout.
    RolloutTimedOut = 4,
    /// Stopped by SIGTERM or SIGINT at a safe point; a re-run finishes the work.
    Stopped = 5,
}

#[derive(Debug)]
pub struct Error {
    pub code: ExitCode,
    pub message: String,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Bad input from the user: exit code 2.
    pub fn input(message: impl Into<String>) -> Self {
        Error {
            code: ExitCode::Input,
            message: message.into(),
        }
    }

    /// The work itself failed: exit code 1.
    pub fn failed(message: impl Into<String>) -> Self {
        Error {
            code: ExitCode::Failed,
            message: message.into(),
        }
    }

    /// An I/O error on a path, phrased as "could not <action> <path>: <cause>". A permission or
    /// missing-folder problem on a path the user named is bad input (exit 2); anything else is a
    /// failure of the work.
    pub fn io(action: &str, path: &Path, err: std::io::Error) -> Self {
        use std::io::ErrorKind::*;
        let message = format!("could not {action} {}: {err}", path.display());
        match err.kind() {
            PermissionDenied | NotFound | ReadOnlyFilesystem | NotADirectory | IsADirectory => {
                Error::input(message)
            }
            _ => Error::failed(message),
        }
    }

    /// Adds a hint sentence telling the user what to do next.
    pub fn with_hint(mut self, hint: impl AsRef<str>) -> Self {
        self.message.push_str(". ");
        self.message.push_str(hint.as_ref());
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}
