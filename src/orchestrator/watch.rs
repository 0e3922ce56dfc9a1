//! Watching one change on an engine until it settles: what each look shows (printed only
//! when it changes), and how the watch ends. Also the watch of a rollback.

use std::time::{Duration, Instant};

use crate::error::Result;
use crate::stop;
use crate::ui::Ui;

use super::{Engine, Object, Observation, Phase, Replicas, Submitted};

/// How often the engine is asked for news.
const POLL: Duration = Duration::from_millis(500);

/// How a watch ended.
pub(super) enum End {
    Succeeded,
    Failed(String),
    TimedOut(String),
    EngineRollingBack(String),
    Superseded(String),
    NotWatchable(String),
    Paused(String),
}

/// Watches one change until it settles or the deadline passes, one line per change of state,
/// replica counts or note.
pub(super) fn watch(
    engine: &mut dyn Engine,
    object: &Object,
    submitted: &Submitted,
    deadline: Instant,
    ui: &Ui,
) -> Result<End> {
    let mut shown = Shown::default();
    loop {
        let seen = engine.observe(object, submitted)?;
        shown.show(ui, &object.name, &seen);
        match seen.phase {
            Phase::Succeeded => return Ok(End::Succeeded),
            Phase::Failed(reason) => return Ok(End::Failed(reason)),
            Phase::RollingBack(reason) | Phase::RolledBack(reason) => {
                return Ok(End::EngineRollingBack(reason))
            }
            Phase::Superseded(by) => return Ok(End::Superseded(by)),
            Phase::NotWatchable(reason) => return Ok(End::NotWatchable(reason)),
            Phase::Paused(reason) => return Ok(End::Paused(reason)),
            Phase::NeedsPromotion(reason) => {
                if !engine.promote(object, submitted)? {
                    return Ok(End::NotWatchable(reason));
                }
                ui.info(&format!("{}: canaries promoted", object.name));
            }
            Phase::Pending | Phase::Progressing => {}
        }
        if let Some(signal) = stop::requested() {
            return Err(stop::stopped(format!(
                "stopped by {signal} while watching {}: the update goes on in {}; re-run to watch it to the end",
                object.name,
                engine.api().engine
            )));
        }
        if Instant::now() >= deadline {
            let counts = seen
                .replicas
                .map(|r| format!(" ({})", counts(r)))
                .unwrap_or_default();
            return Ok(End::TimedOut(format!("not done after the timeout{counts}")));
        }
        std::thread::sleep(POLL);
    }
}

/// How a rollback ended: the old image runs again, or why not.
pub(super) enum Settled {
    RolledBack,
    NotRolledBack(String),
}

/// Watches a rollback (ours or the engine's) to its end.
pub(super) fn settle_rollback(
    engine: &mut dyn Engine,
    object: &Object,
    change: &Submitted,
    timeout: Duration,
    ui: &Ui,
) -> Result<Settled> {
    let deadline = Instant::now() + timeout;
    let mut shown = Shown::default();
    loop {
        let seen = engine.observe(object, change)?;
        shown.show(ui, &object.name, &seen);
        let why = match &seen.phase {
            Phase::Succeeded | Phase::RolledBack(_) => {
                ui.info(&format!("{}: rolled back", object.name));
                return Ok(Settled::RolledBack);
            }
            Phase::Failed(reason) => format!("the rollback failed too: {reason}"),
            Phase::Superseded(by) => {
                format!("changed by someone else during the rollback: runs {by}")
            }
            Phase::NotWatchable(reason) | Phase::Paused(reason) | Phase::NeedsPromotion(reason) => {
                format!("the rollback is not watched: {reason}")
            }
            Phase::Pending | Phase::Progressing | Phase::RollingBack(_) => {
                if Instant::now() < deadline {
                    std::thread::sleep(POLL);
                    continue;
                }
                "the rollback did not finish in time".to_string()
            }
        };
        ui.info(&format!("{}: {why}", object.name));
        return Ok(Settled::NotRolledBack(why));
    }
}

/// The last line shown, so that only changes print.
#[derive(Default)]
struct Shown {
    last: Option<String>,
    observed: bool,
}

impl Shown {
    fn show(&mut self, ui: &Ui, name: &str, seen: &Observation) {
        let state = match &seen.phase {
            Phase::Pending => "submitted, waiting for the engine to pick it up".to_string(),
            Phase::Progressing if !self.observed => "observed".to_string(),
            Phase::Progressing => "progressing".to_string(),
            Phase::Succeeded => "succeeded".to_string(),
            Phase::Failed(_) => "failed".to_string(),
            Phase::RollingBack(reason) => format!("rolling back: {reason}"),
            Phase::RolledBack(reason) => format!("rolled back: {reason}"),
            Phase::Superseded(by) => format!("superseded by {by}"),
            Phase::NotWatchable(reason) => format!("not watched: {reason}"),
            Phase::Paused(reason) => format!("paused: {reason}"),
            Phase::NeedsPromotion(reason) => format!("waiting for promotion: {reason}"),
        };
        let mut line = format!("{name}: {state}");
        if let Some(replicas) = seen.replicas {
            line.push_str(&format!(" — {}", counts(replicas)));
        }
        if let Some(note) = &seen.note {
            line.push_str(&format!(" — {note}"));
        }
        // "observed" and "progressing" with the same counts are one state to the reader.
        let key = line.replacen(": observed", ": progressing", 1);
        self.observed |= seen.phase != Phase::Pending;
        if self.last.as_deref() != Some(key.as_str()) {
            ui.info(&line);
            self.last = Some(key);
        }
    }
}

fn counts(r: Replicas) -> String {
    format!(
        "{}/{} updated, {}/{} ready",
        r.updated, r.desired, r.ready, r.desired
    )
}
