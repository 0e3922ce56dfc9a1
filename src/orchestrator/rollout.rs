//! The rollout state machine every engine goes through:
//! submitted → observed → progressing → succeeded | failed | timed out | superseded | rolled back.
//! Services are updated one after another; the first that does not succeed stops the rest,
//! and with `on_failure: rollback` those already updated go back too, newest first.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{Error, ExitCode, Result};
use crate::spec::orchestrator::OnFailure;
use crate::stop;
use crate::ui::Ui;

use crate::mode::Mode;

use super::{same_image, Engine, Live, Object, Observation, Phase, Replicas, Submitted};

/// How often the engine is asked for news.
const POLL: Duration = Duration::from_millis(500);

/// What to roll out and how.
pub struct Plan<'a> {
    pub image: &'a str,
    pub timeout: Duration,
    pub on_failure: OnFailure,
    pub mode: Mode,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Dry run: the request that would be sent.
    WouldSubmit,
    /// It already ran the image: nothing was sent.
    AlreadyRunning,
    Succeeded,
    Failed,
    TimedOut,
    Superseded,
    RolledBack,
    /// Not attempted: an earlier service did not succeed.
    NotStarted,
    /// Paused where it stood (`on_failure: pause`).
    Paused,
}

#[derive(Clone, Debug, Serialize)]
pub struct ServiceRollout {
    pub service: String,
    /// The image it ran before.
    pub from: String,
    pub to: String,
    pub state: State,
    /// The engine's reason, when it did not succeed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Rollout {
    pub engine: String,
    pub endpoint: String,
    pub services: Vec<ServiceRollout>,
    /// How it ended: `failed` or `timed_out` win over the rollback that followed them.
    pub outcome: Outcome,
    /// Services that run the image from before again because of a rollback.
    pub rolled_back: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Succeeded,
    AlreadyRunning,
    WouldSubmit,
    Superseded,
    Failed,
    TimedOut,
}

crate::ui::display_as_words!(State, Outcome);

impl Rollout {
    /// The error a failed or timed-out rollout ends the command with (exit 3 or 4).
    pub fn error(&self) -> Option<Error> {
        let code = match self.outcome {
            Outcome::Failed => ExitCode::RolloutFailed,
            Outcome::TimedOut => ExitCode::RolloutTimedOut,
            _ => return None,
        };
        let failed = self
            .services
            .iter()
            .find(|s| matches!(s.state, State::Failed | State::TimedOut | State::Paused))
            .or_else(|| self.services.iter().find(|s| s.reason.is_some()));
        let what = match failed {
            Some(s) => format!(
                "{} `{}` did not reach {}: {}",
                self.engine,
                s.service,
                s.to,
                s.reason.as_deref().unwrap_or("no reason given")
            ),
            None => format!("{} rollout did not succeed", self.engine),
        };
        let after = if self.rolled_back.is_empty() {
            String::new()
        } else {
            format!(
                "; rolled back to the previous image: {}",
                self.rolled_back.join(", ")
            )
        };
        Some(Error::new(code, format!("{what}{after}")))
    }

    /// The image each rolled-back service runs again (the first), for the deployment repo.
    pub fn restored_image(&self) -> Option<&str> {
        let name = self.rolled_back.first()?;
        self.services
            .iter()
            .find(|s| &s.service == name)
            .map(|s| s.from.as_str())
    }
}

/// Rolls `objects` to the plan's image in order, watching each until it settles.
pub fn roll_out(
    engine: &mut dyn Engine,
    objects: &[Object],
    plan: &Plan,
    ui: &Ui,
) -> Result<Rollout> {
    // Every object is read first: an unknown one stops the rollout before anything changes.
    let mut lives = Vec::new();
    for object in objects {
        lives.push(engine.live(object)?);
    }
    let mut rollout = Rollout {
        engine: engine.api().engine.to_string(),
        endpoint: engine.api().endpoint.clone(),
        services: Vec::new(),
        outcome: Outcome::Succeeded,
        rolled_back: Vec::new(),
    };
    let mut updated: Vec<(usize, Submitted)> = Vec::new();
    for (index, (object, live)) in objects.iter().zip(&lives).enumerate() {
        let mut record = ServiceRollout {
            service: object.name.clone(),
            from: live.image.clone(),
            to: plan.image.to_string(),
            state: State::AlreadyRunning,
            reason: None,
        };
        if same_image(&live.image, plan.image) {
            ui.info(&format!("{}: already runs {}", object.name, plan.image));
            rollout.services.push(record);
            continue;
        }
        if plan.mode.rehearsing() {
            ui.info(&format!(
                "{}: would update {} → {}",
                object.name, live.image, plan.image
            ));
            record.state = State::WouldSubmit;
            rollout.services.push(record);
            continue;
        }
        if let Some(signal) = stop::requested() {
            let stopped = stop::stopped(format!(
                "stopped by {signal} before updating {}",
                object.name
            ));
            return Err(half_done(stopped, &rollout));
        }
        let submitted = engine
            .submit(object, live, plan.image, plan.on_failure)
            .map_err(|e| half_done(e, &rollout))?;
        ui.info(&format!(
            "{}: submitted {} ({})",
            object.name, plan.image, submitted.mark
        ));
        let deadline = Instant::now() + plan.timeout;
        let end =
            watch(engine, object, &submitted, deadline, ui).map_err(|e| half_done(e, &rollout))?;
        let timed_out = matches!(end, End::TimedOut(_));
        let engine_rolls_back = matches!(end, End::EngineRollingBack(_));
        match end {
            End::Succeeded => {
                record.state = State::Succeeded;
                rollout.services.push(record);
                updated.push((index, submitted));
                continue;
            }
            End::Superseded(by) => {
                ui.info(&format!(
                    "{}: superseded: it now runs {by}; leaving it to that change",
                    object.name
                ));
                record.state = State::Superseded;
                record.reason = Some(format!("superseded by {by}"));
                rollout.outcome = Outcome::Superseded;
                rollout.services.push(record);
                break;
            }
            End::Failed(reason) | End::TimedOut(reason) | End::EngineRollingBack(reason) => {
                record.state = if timed_out {
                    State::TimedOut
                } else {
                    State::Failed
                };
                rollout.outcome = if timed_out {
                    Outcome::TimedOut
                } else {
                    Outcome::Failed
                };
                let details = engine.explain(object, &submitted).unwrap_or_default();
                ui.info(&format!(
                    "{}: {}: {reason}",
                    object.name,
                    word(record.state)
                ));
                for line in &details {
                    ui.info(&format!("  {line}"));
                }
                record.reason = Some(match details.first() {
                    Some(first) => format!("{reason} ({first})"),
                    None => reason,
                });
                match plan.on_failure {
                    _ if engine_rolls_back => {
                        if settle_rollback(engine, object, &submitted, plan, ui)? {
                            record.state = State::RolledBack;
                            rollout.rolled_back.push(object.name.clone());
                        }
                    }
                    OnFailure::Rollback => {
                        ui.info(&format!("{}: rolling back to {}", object.name, live.image));
                        let back = engine.roll_back(object, &submitted, live)?;
                        if settle_rollback(engine, object, &back, plan, ui)? {
                            record.state = State::RolledBack;
                            rollout.rolled_back.push(object.name.clone());
                        }
                    }
                    OnFailure::Pause => {
                        if engine.pause(object, &submitted)? {
                            ui.info(&format!("{}: paused where it stands", object.name));
                            record.state = State::Paused;
                        } else {
                            ui.info(&format!(
                                "{}: {} cannot pause a change in flight; left as it is",
                                object.name,
                                engine.api().engine
                            ));
                        }
                    }
                    OnFailure::Fail => {}
                }
                rollout.services.push(record);
                if plan.on_failure == OnFailure::Rollback {
                    roll_back_earlier(engine, objects, &lives, &updated, plan, ui, &mut rollout)?;
                }
                break;
            }
        }
    }
    for object in objects.iter().skip(rollout.services.len()) {
        let live = &lives[rollout.services.len()];
        rollout.services.push(ServiceRollout {
            service: object.name.clone(),
            from: live.image.clone(),
            to: plan.image.to_string(),
            state: State::NotStarted,
            reason: None,
        });
    }
    rollout.outcome = match rollout.outcome {
        Outcome::Succeeded
            if rollout
                .services
                .iter()
                .all(|s| s.state == State::AlreadyRunning) =>
        {
            Outcome::AlreadyRunning
        }
        Outcome::Succeeded
            if rollout
                .services
                .iter()
                .any(|s| s.state == State::WouldSubmit) =>
        {
            Outcome::WouldSubmit
        }
        other => other,
    };
    Ok(rollout)
}

/// Services updated before the one that failed go back too, newest first.
fn roll_back_earlier(
    engine: &mut dyn Engine,
    objects: &[Object],
    lives: &[Live],
    updated: &[(usize, Submitted)],
    plan: &Plan,
    ui: &Ui,
    rollout: &mut Rollout,
) -> Result<()> {
    for (index, submitted) in updated.iter().rev() {
        let (object, live) = (&objects[*index], &lives[*index]);
        ui.info(&format!(
            "{}: rolling back to {} (a later service failed)",
            object.name, live.image
        ));
        let back = engine.roll_back(object, submitted, live)?;
        if settle_rollback(engine, object, &back, plan, ui)? {
            rollout.services[*index].state = State::RolledBack;
            rollout.rolled_back.push(object.name.clone());
        }
    }
    Ok(())
}

/// How a watch ended.
enum End {
    Succeeded,
    Failed(String),
    TimedOut(String),
    EngineRollingBack(String),
    Superseded(String),
}

/// Watches one change until it settles or the deadline passes, one line per change of state,
/// replica counts or note.
fn watch(
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

/// Watches a rollback (ours or the engine's) to its end; true when the old image runs again.
fn settle_rollback(
    engine: &mut dyn Engine,
    object: &Object,
    change: &Submitted,
    plan: &Plan,
    ui: &Ui,
) -> Result<bool> {
    let deadline = Instant::now() + plan.timeout;
    let mut shown = Shown::default();
    loop {
        let seen = engine.observe(object, change)?;
        shown.show(ui, &object.name, &seen);
        match &seen.phase {
            Phase::Succeeded | Phase::RolledBack(_) => {
                ui.info(&format!("{}: rolled back", object.name));
                return Ok(true);
            }
            Phase::Failed(reason) => {
                ui.info(&format!(
                    "{}: the rollback failed too: {reason}",
                    object.name
                ));
                return Ok(false);
            }
            Phase::Superseded(by) => {
                ui.info(&format!(
                    "{}: changed by someone else during the rollback: runs {by}",
                    object.name
                ));
                return Ok(false);
            }
            Phase::Pending | Phase::Progressing | Phase::RollingBack(_) => {}
        }
        if Instant::now() >= deadline {
            ui.info(&format!(
                "{}: the rollback did not finish in time",
                object.name
            ));
            return Ok(false);
        }
        std::thread::sleep(POLL);
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

fn word(state: State) -> &'static str {
    match state {
        State::TimedOut => "timed out",
        _ => "failed",
    }
}

/// An engine error in the middle of a rollout, saying which services had already changed.
fn half_done(error: Error, rollout: &Rollout) -> Error {
    let changed: Vec<String> = rollout
        .services
        .iter()
        .filter(|s| s.state == State::Succeeded)
        .map(|s| format!("{} now runs {}", s.service, s.to))
        .collect();
    if changed.is_empty() {
        return error;
    }
    Error {
        message: format!(
            "{}. Already changed before this: {}",
            error.message,
            changed.join("; ")
        ),
        ..error
    }
}
