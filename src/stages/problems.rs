//! The one place a rehearsal decides what an error means. An error a release would run into
//! is a problem: counted, and the dry run ends with all of them at once. An error that only
//! says a server could not be reached to look (a laptop off the network) is noted and does
//! not fail the dry run.

use crate::error::{Error, Result};
use crate::record::Status;
use crate::ui::Ui;

use super::Outcome;

#[derive(Debug, Default)]
pub struct Problems {
    found: Vec<String>,
}

impl Problems {
    /// Takes `err` from the part of the work called `what` (`push`, `deploy staging`) and
    /// says what to record for it; `noted` is the status when the server could not be reached.
    pub fn absorb(&mut self, what: &str, err: Error, noted: Status, ui: &Ui) -> Outcome {
        if err.unreachable {
            ui.info(&format!("dry run: {what}: could not look: {err}"));
            return Outcome::new(noted, format!("dry run: could not look: {}", err.summary()));
        }
        self.found.push(format!("{what}: {}", err.summary()));
        Outcome::new(Status::Failed, err.summary())
    }

    /// `Ok` when nothing was found; else one error (exit 2) listing every problem.
    pub fn into_result(self, run: &str) -> Result<()> {
        if self.found.is_empty() {
            return Ok(());
        }
        Err(Error::input(format!(
            "the {run} found {} problem(s) a release would run into:\n  - {}",
            self.found.len(),
            self.found.join("\n  - ")
        )))
    }
}
