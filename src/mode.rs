//! Whether a run writes. A command decides it once (`--dry-run`) and hands it only to the
//! few places that write outside the output folder: registry writes, the git push, GitLab's
//! release and package uploads, and orchestrator updates. Everything before those edges runs
//! the same in both modes, so a rehearsal checks what a release would check.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Do it.
    Apply,
    /// Read the world, compute every change, write none of it (`--dry-run`).
    Rehearse,
}

impl Mode {
    pub fn of_dry_run(dry_run: bool) -> Mode {
        if dry_run {
            Mode::Rehearse
        } else {
            Mode::Apply
        }
    }

    pub fn rehearsing(self) -> bool {
        self == Mode::Rehearse
    }
}
