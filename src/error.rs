//! One error type for the whole tool. Each error carries the exit code class it maps to, so
//! `main` never has to guess; what failed; the causes under it; and hints on what to do next.
//! It prints as cargo and uv print theirs:
//!
//! ```text
//! error: could not push lhcb/dirac:8.2.44
//! caused by: the registry refused the login of `ci` (from CI_REGISTRY_PASSWORD)
//! hint: check the job token's scopes
//! ```

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
    /// What failed, written for the person reading the job log.
    pub message: String,
    /// What it failed on, outermost first (`caused by:` lines).
    pub causes: Vec<String>,
    /// What to do about it (`hint:` lines).
    pub hints: Vec<String>,
    /// No server answered (connection refused, timed out, no such host): the tool could not
    /// look. A rehearsal notes such an error instead of counting it as a problem.
    pub unreachable: bool,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(code: ExitCode, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
            causes: Vec::new(),
            hints: Vec::new(),
            unreachable: false,
        }
    }

    /// Bad input from the user: exit code 2.
    pub fn input(message: impl Into<String>) -> Self {
        Error::new(ExitCode::Input, message)
    }

    /// The work itself failed: exit code 1.
    pub fn failed(message: impl Into<String>) -> Self {
        Error::new(ExitCode::Failed, message)
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

    /// Adds a hint telling the user what to do next; it prints on its own `hint:` line.
    pub fn with_hint(mut self, hint: impl AsRef<str>) -> Self {
        self.hints.push(hint.as_ref().to_string());
        self
    }

    /// Says what was being done when this error happened: `what` becomes the message, and the
    /// old message the first cause. Code, hints and reachability stay.
    pub fn context(mut self, what: impl Into<String>) -> Self {
        let cause = std::mem::replace(&mut self.message, what.into());
        self.causes.insert(0, cause);
        self
    }

    /// Marks the error as "no server answered".
    pub fn unreachable(mut self) -> Self {
        self.unreachable = true;
        self
    }

    /// The message and its causes on one line (`what: cause: cause`), without hints: for a
    /// record's stage detail or a list of problems.
    pub fn summary(&self) -> String {
        std::iter::once(self.message.as_str())
            .chain(self.causes.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(": ")
    }
}

impl fmt::Display for Error {
    /// The message, then one `caused by:` line per cause and one `hint:` line per hint.
    /// `main` prints it after `error: `.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        for cause in &self.causes {
            write!(f, "\ncaused by: {cause}")?;
        }
        for hint in &self.hints {
            write!(f, "\nhint: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_what_failed_then_causes_then_hints_each_on_its_own_line() {
        let err = Error::input("the registry refused the login")
            .with_hint("check the token")
            .context("could not push app:1.0.0");
        assert_eq!(
            err.to_string(),
            "could not push app:1.0.0\ncaused by: the registry refused the login\nhint: check the token"
        );
        assert_eq!(err.code, ExitCode::Input);
        assert_eq!(
            err.summary(),
            "could not push app:1.0.0: the registry refused the login"
        );
    }

    #[test]
    fn a_wrapped_error_keeps_its_reachability() {
        let err = Error::failed("connection refused")
            .unreachable()
            .context("GitLab");
        assert!(err.unreachable);
        assert_eq!(err.code, ExitCode::Failed);
    }
}
