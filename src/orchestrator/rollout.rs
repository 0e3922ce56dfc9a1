//! The rollout state machine every engine goes through:
//! submitted → observed → progressing → succeeded | failed | paused | timed out | superseded |
//! rolled back. Services are updated one after another; the first that does not succeed stops
//! the rest, and with `on_failure: rollback` those already updated go back too, newest first.
//!
//! A service that already runs the image may still be mid-rollout: every engine keeps the new
//! spec when a rollout stalls, fails, is paused or is abandoned (a stopped tagpilot, a
//! timeout). So "already running" is only said once the engine says that rollout is done; an
//! unfinished one is watched to its end (a re-run finishes the job), a failed or paused one is
//! reported with the engine's reason.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{Error, ExitCode, Result};
use crate::spec::orchestrator::OnFailure;
use crate::stop;
use crate::ui::Ui;

use crate::mode::Mode;

use super::watch::{settle_rollback, watch, End, Settled};
use super::{same_image, Engine, Live, Object, Phase, Submitted};

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
    /// It already ran the image, rolled out to the end: nothing was sent.
    AlreadyRunning,
    /// Dry run: it runs the image, but that rollout has not finished; a release would watch it.
    WouldWatch,
    Succeeded,
    Failed,
    TimedOut,
    Superseded,
    RolledBack,
    /// Not attempted: an earlier service did not succeed.
    NotStarted,
    /// Paused where it stood (`on_failure: pause`).
    Paused,
    /// Submitted, but the engine rolls it out only as pods are deleted (`OnDelete`).
    NotWatched,
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
    /// The change was submitted by an earlier run; this one watched it (a re-run).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub resumed: bool,
    /// The image it runs after a rollback, as the engine reports it (Nomad's `auto_revert`
    /// goes back to the last stable version, which need not be `from`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restored: Option<String>,
}

impl ServiceRollout {
    /// A service's record before anything happened to it.
    fn of(object: &Object, live: &Live, plan: &Plan, state: State) -> ServiceRollout {
        ServiceRollout {
            service: object.name.clone(),
            from: live.image.clone(),
            to: plan.image.to_string(),
            state,
            reason: None,
            resumed: false,
            restored: None,
        }
    }
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
    /// Every change was submitted; some the engine will not roll out by itself.
    NotWatched,
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

    /// The image the first rolled-back service runs again, for the deployment repository.
    pub fn restored_image(&self) -> Option<&str> {
        let name = self.rolled_back.first()?;
        self.services
            .iter()
            .find(|s| &s.service == name)
            .and_then(|s| s.restored.as_deref())
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
        let mut record = ServiceRollout::of(object, live, plan, State::AlreadyRunning);
        let change = if same_image(&live.image, plan.image) {
            resume(engine, object, live, plan, ui).map_err(|e| half_done(e, &rollout))?
        } else if plan.mode.rehearsing() {
            ui.info(&format!(
                "{}: would update {} → {}",
                object.name, live.image, plan.image
            ));
            Change::Settled(State::WouldSubmit)
        } else {
            submit_and_watch(engine, object, live, plan, ui).map_err(|e| half_done(e, &rollout))?
        };
        let (submitted, end, resumed) = match change {
            Change::Settled(state) => {
                record.state = state;
                rollout.services.push(record);
                continue;
            }
            Change::Watched { submitted, end } => (submitted, end, false),
            Change::Resumed { submitted, end } => (submitted, end, true),
        };
        record.resumed = resumed;
        match end {
            End::Succeeded => {
                record.state = State::Succeeded;
                rollout.services.push(record);
                updated.push((index, submitted));
                continue;
            }
            End::NotWatchable(_) | End::Superseded(_) | End::Paused(_) => {
                let go_on = settled_elsewhere(end, &object.name, &mut record, &mut rollout, ui);
                rollout.services.push(record);
                if go_on {
                    continue;
                }
                break;
            }
            End::Failed(_) | End::TimedOut(_) | End::EngineRollingBack(_) => {
                let step = Step {
                    object,
                    // A re-run does not know what ran before the earlier run's change.
                    before: (!resumed).then_some(live),
                    submitted: &submitted,
                };
                after_failure(engine, &step, end, plan, ui, &mut record, &mut rollout)?;
                rollout.services.push(record);
                if plan.on_failure == OnFailure::Rollback {
                    roll_back_earlier(engine, objects, &lives, &updated, plan, ui, &mut rollout)?;
                }
                break;
            }
        }
    }
    for (object, live) in objects.iter().zip(&lives).skip(rollout.services.len()) {
        let record = ServiceRollout::of(object, live, plan, State::NotStarted);
        rollout.services.push(record);
    }
    rollout.outcome = overall(&rollout);
    Ok(rollout)
}

/// What became of one service's change before the failure handling.
enum Change {
    /// Nothing to watch: it already ran the image, or this is a rehearsal.
    Settled(State),
    /// Submitted now and watched to its end.
    Watched { submitted: Submitted, end: End },
    /// Submitted by an earlier run, unfinished, and watched to its end now.
    Resumed { submitted: Submitted, end: End },
}

/// A service already running the image: done when the engine says the rollout that put it
/// there is; otherwise that rollout is watched to its end (a rehearsal only says so).
fn resume(
    engine: &mut dyn Engine,
    object: &Object,
    live: &Live,
    plan: &Plan,
    ui: &Ui,
) -> Result<Change> {
    let submitted = engine.current(object, live)?;
    let seen = engine.observe(object, &submitted)?;
    if seen.phase == Phase::Succeeded {
        ui.info(&format!("{}: already runs {}", object.name, plan.image));
        return Ok(Change::Settled(State::AlreadyRunning));
    }
    let how = phase_words(&seen.phase);
    if plan.mode.rehearsing() {
        ui.info(&format!(
            "{}: runs {}, but its rollout has not finished ({how}); a release would watch it",
            object.name, plan.image
        ));
        return Ok(Change::Settled(State::WouldWatch));
    }
    ui.info(&format!(
        "{}: runs {}, but its rollout ({}) has not finished ({how}): watching it",
        object.name, plan.image, submitted.mark
    ));
    let end = watch_for_timeout(engine, object, &submitted, plan, ui)?;
    Ok(Change::Resumed { submitted, end })
}

/// Watches a change to its end, for the rollout's `timeout` from now.
fn watch_for_timeout(
    engine: &mut dyn Engine,
    object: &Object,
    submitted: &Submitted,
    plan: &Plan,
    ui: &Ui,
) -> Result<End> {
    watch(engine, object, submitted, Instant::now() + plan.timeout, ui)
}

/// A phase as a few words, for saying why a re-run watches.
fn phase_words(phase: &Phase) -> String {
    match phase {
        Phase::Pending => "not yet picked up".to_string(),
        Phase::Progressing => "in progress".to_string(),
        Phase::Succeeded => "succeeded".to_string(),
        Phase::Failed(why) => format!("failed: {why}"),
        Phase::Paused(why) => format!("paused: {why}"),
        Phase::RollingBack(why) => format!("rolling back: {why}"),
        Phase::RolledBack(why) => format!("rolled back: {why}"),
        Phase::Superseded(by) => format!("superseded by {by}"),
        Phase::NotWatchable(why) | Phase::NeedsPromotion(why) => why.clone(),
    }
}

/// A change whose end is not tagpilot's to watch: `OnDelete` or canaries awaiting promotion
/// (submitted; the next service follows), paused (by the engine's own failure action or by
/// someone: the rest stop, nothing is rolled back), or superseded by someone else's change
/// (the rest stop). Says which; true when the next service may go on.
fn settled_elsewhere(
    end: End,
    name: &str,
    record: &mut ServiceRollout,
    rollout: &mut Rollout,
    ui: &Ui,
) -> bool {
    match end {
        End::NotWatchable(reason) => {
            ui.info(&format!("{name}: submitted, not watched: {reason}"));
            record.state = State::NotWatched;
            record.reason = Some(reason);
            true
        }
        End::Paused(reason) => {
            ui.info(&format!("{name}: paused: {reason}"));
            record.state = State::Paused;
            record.reason = Some(format!("paused: {reason}"));
            rollout.outcome = Outcome::Failed;
            false
        }
        End::Superseded(by) => {
            ui.info(&format!(
                "{name}: superseded: it now runs {by}; leaving it to that change"
            ));
            record.state = State::Superseded;
            record.reason = Some(format!("superseded by {by}"));
            rollout.outcome = Outcome::Superseded;
            false
        }
        _ => unreachable!("only ends settled elsewhere come here"),
    }
}

/// Sends one service's change and watches it to its end (the rollout's `timeout` from now),
/// unless a stop was asked for first.
fn submit_and_watch(
    engine: &mut dyn Engine,
    object: &Object,
    live: &Live,
    plan: &Plan,
    ui: &Ui,
) -> Result<Change> {
    if let Some(signal) = stop::requested() {
        return Err(stop::stopped(format!(
            "stopped by {signal} before updating {}",
            object.name
        )));
    }
    let submitted = engine.submit(object, live, plan.image, plan.on_failure)?;
    ui.info(&format!(
        "{}: submitted {} ({})",
        object.name, plan.image, submitted.mark
    ));
    let end = watch_for_timeout(engine, object, &submitted, plan, ui)?;
    Ok(Change::Watched { submitted, end })
}

/// One service's change in flight.
struct Step<'a> {
    object: &'a Object,
    /// What ran before the change, when this run made it.
    before: Option<&'a Live>,
    submitted: &'a Submitted,
}

/// A service's change failed or timed out: record why (with the engine's explanation), then
/// roll back, pause or leave it, as `on_failure` says.
fn after_failure(
    engine: &mut dyn Engine,
    step: &Step,
    end: End,
    plan: &Plan,
    ui: &Ui,
    record: &mut ServiceRollout,
    rollout: &mut Rollout,
) -> Result<()> {
    let object = step.object;
    let (timed_out, engine_rolls_back, reason) = match end {
        End::TimedOut(reason) => (true, false, reason),
        End::EngineRollingBack(reason) => (false, true, reason),
        End::Failed(reason) => (false, false, reason),
        End::Succeeded | End::Superseded(_) | End::NotWatchable(_) | End::Paused(_) => {
            unreachable!("only failures come here")
        }
    };
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
    let details = engine.explain(object, step.submitted).unwrap_or_default();
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
    let settled = match plan.on_failure {
        _ if engine_rolls_back => {
            settle_rollback(engine, object, step.submitted, plan.timeout, ui)?
        }
        OnFailure::Rollback => match engine.roll_back(object, step.submitted, step.before)? {
            Some(back) => {
                ui.info(&format!("{}: rolling back to {}", object.name, back.image));
                settle_rollback(engine, object, &back, plan.timeout, ui)?
            }
            None => {
                let why = format!(
                    "not rolled back: an earlier run submitted this change, and {} does not say what ran before it; `tagpilot rollback` puts back an image the deployment repository recorded",
                    engine.api().engine
                );
                ui.info(&format!("{}: {why}", object.name));
                Settled::NotRolledBack(why)
            }
        },
        OnFailure::Pause => {
            if engine.pause(object, step.submitted)? {
                ui.info(&format!("{}: paused where it stands", object.name));
                record.state = State::Paused;
            } else {
                ui.info(&format!(
                    "{}: {} cannot pause a change in flight; left as it is",
                    object.name,
                    engine.api().engine
                ));
            }
            return Ok(());
        }
        OnFailure::Fail => return Ok(()),
    };
    record_settled(engine, object, settled, record, rollout)
}

/// How a rollback ended, in the record: the image that runs again, or why it did not.
fn record_settled(
    engine: &mut dyn Engine,
    object: &Object,
    settled: Settled,
    record: &mut ServiceRollout,
    rollout: &mut Rollout,
) -> Result<()> {
    match settled {
        Settled::RolledBack => {
            record.state = State::RolledBack;
            record.restored = Some(engine.live(object)?.image);
            rollout.rolled_back.push(object.name.clone());
        }
        Settled::NotRolledBack(why) => {
            if let Some(reason) = &mut record.reason {
                reason.push_str(&format!("; {why}"));
            }
        }
    }
    Ok(())
}

/// The rollout's outcome once every service is done: a success where every service already
/// ran the image is "already running", one that only rehearsed is "would submit".
fn overall(rollout: &Rollout) -> Outcome {
    let all = |state| rollout.services.iter().all(|s| s.state == state);
    let any = |state| rollout.services.iter().any(|s| s.state == state);
    match rollout.outcome {
        Outcome::Succeeded if all(State::AlreadyRunning) => Outcome::AlreadyRunning,
        Outcome::Succeeded if any(State::WouldSubmit) => Outcome::WouldSubmit,
        Outcome::Succeeded if any(State::NotWatched) => Outcome::NotWatched,
        other => other,
    }
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
        let Some(back) = engine.roll_back(object, submitted, Some(live))? else {
            continue;
        };
        if let Settled::RolledBack = settle_rollback(engine, object, &back, plan.timeout, ui)? {
            rollout.services[*index].state = State::RolledBack;
            rollout.services[*index].restored = Some(engine.live(object)?.image);
            rollout.rolled_back.push(object.name.clone());
        }
    }
    Ok(())
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
