//! A cancelled CI job gets SIGTERM, a person at a terminal sends SIGINT. tagpilot does not die
//! in the middle of a write: the signal is noted, and the work stops at the next safe point
//! (before a stage, between environments, while watching a rollout), after saving what was and
//! was not done. A second SIGINT ends the process at once.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::flag;

use crate::error::{Error, ExitCode};

static SIGNAL: AtomicUsize = AtomicUsize::new(0);
static ASKED: AtomicBool = AtomicBool::new(false);

/// Notes SIGTERM and SIGINT from now on instead of dying.
pub fn install() {
    // The exit on a repeated SIGINT is registered first: it sees the flag of the earlier one.
    let _ = flag::register_conditional_shutdown(SIGINT, 130, &ASKED);
    for signal in [SIGTERM, SIGINT] {
        let _ = flag::register(signal, &ASKED);
        let _ = flag::register_usize(signal, &SIGNAL, signal as usize);
    }
}

/// The signal that asked tagpilot to stop, if one did.
pub fn requested() -> Option<&'static str> {
    match SIGNAL.load(Ordering::SeqCst) as i32 {
        0 => None,
        SIGTERM => Some("SIGTERM"),
        SIGINT => Some("SIGINT"),
        _ => Some("a signal"),
    }
}

/// The error that ends a stopped command (exit code 5).
pub fn stopped(message: String) -> Error {
    Error::new(ExitCode::Stopped, message)
}
