//! The release pipeline: tarball → image → push → publish → deploy. Each stage is one module
//! with the same signature, a [`Job`] in, the [`Work`] to extend, an [`Outcome`] out; [`run`]
//! is the one loop that applies selection, stop checkpoints, failures and the rehearsal's
//! problem collection to all of them. `tagpilot tarball`, `image` and `deploy` call the same
//! stage code directly.

pub mod attestations;
pub mod deploy;
pub mod image;
mod problems;
pub mod publish;
pub mod push;
pub mod tarball;

use std::path::{Path, PathBuf};

use crate::error::{Error, ExitCode, Result};
use crate::fsutil;
use crate::mode::Mode;
use crate::oci::layer::Layer;
use crate::project::Project;
use crate::record::{Record, StageName, Status};
use crate::stop;
use crate::target::Target;
use crate::ui::Ui;

pub use problems::Problems;

/// What every stage of one release run reads.
pub struct Job<'a> {
    pub project: &'a Project,
    pub target: &'a Target,
    /// The output folder: tarball, image layout, `release.json`.
    pub out: &'a Path,
    pub mode: Mode,
    /// Replace a version tag or package file that holds other bytes.
    pub force: bool,
    pub selection: &'a Selection,
    pub ui: &'a Ui,
}

/// Which stages run (`--only`, `--skip`).
#[derive(Clone, Debug, Default)]
pub struct Selection {
    pub only: Vec<StageName>,
    pub skip: Vec<StageName>,
}

impl Selection {
    pub fn includes(&self, stage: StageName) -> bool {
        (self.only.is_empty() || self.only.contains(&stage)) && !self.skip.contains(&stage)
    }
}

/// What the stages build up as they run.
pub struct Work {
    pub record: Record,
    pub problems: Problems,
    /// The release tree layer the tarball stage made from its own stream (so the git tree is
    /// read once), for the image stage.
    release_tree: Option<Result<Layer>>,
    /// Where the tarball's compressed file blocks are, for layers the image stage makes.
    tarball_blocks: Option<crate::gzip::share::Blocks>,
}

impl Work {
    pub fn new(record: Record) -> Work {
        Work {
            record,
            problems: Problems::default(),
            release_tree: None,
            tarball_blocks: None,
        }
    }
}

/// What a stage reports for the record.
pub struct Outcome {
    pub status: Status,
    pub detail: String,
}

impl Outcome {
    pub fn new(status: Status, detail: impl Into<String>) -> Outcome {
        Outcome {
            status,
            detail: detail.into(),
        }
    }
}

struct Stage {
    name: StageName,
    run: fn(&Job, &mut Work) -> Result<Outcome>,
    /// The detail recorded when the stage is not selected.
    skipped: fn(&Record) -> String,
}

/// The stages, in the order they run.
const PIPELINE: [Stage; 5] = [
    Stage {
        name: StageName::Tarball,
        run: tarball::run,
        skipped: tarball::skipped,
    },
    Stage {
        name: StageName::Image,
        run: image::run,
        skipped: image::skipped,
    },
    Stage {
        name: StageName::Push,
        run: push::run,
        skipped: push::skipped,
    },
    Stage {
        name: StageName::Publish,
        run: publish::run,
        skipped: |_| String::new(),
    },
    Stage {
        name: StageName::Deploy,
        run: deploy::run,
        skipped: |_| String::new(),
    },
];

/// Runs the selected stages in order and saves the record, also when a stage fails or the job
/// is stopped. A rehearsal goes on past a failing stage and ends with every problem at once.
pub fn run(job: &Job, work: &mut Work) -> Result<()> {
    for stage in &PIPELINE {
        checkpoint(job, work, stage.name)?;
        if !job.selection.includes(stage.name) {
            let detail = (stage.skipped)(&work.record);
            work.record.stage(stage.name, Status::NotSelected, detail);
            continue;
        }
        let outcome = match (stage.run)(job, work) {
            Ok(outcome) => outcome,
            Err(err) if err.code == ExitCode::Stopped => {
                work.record
                    .stage(stage.name, Status::Stopped, err.summary());
                save_record(job.out, &work.record)?;
                return Err(err);
            }
            Err(err) if job.mode.rehearsing() => {
                work.problems
                    .absorb(stage.name.as_str(), err, Status::NotSelected, job.ui)
            }
            Err(err) => return Err(failed(job.out, &mut work.record, stage.name, err)),
        };
        work.record
            .stage(stage.name, outcome.status, outcome.detail);
    }
    save_record(job.out, &work.record)?;
    std::mem::take(&mut work.problems).into_result("dry run")
}

/// The detail of a stage this job did not run: what it took from the earlier job, if anything.
fn carried(what: Option<&str>) -> String {
    what.map(|w| format!("from the earlier job's record: {w}"))
        .unwrap_or_default()
}

/// A safe point before `next`: when a stop was asked for, the stages not run are recorded as
/// stopped, the record is saved, and the release ends saying what was and was not done.
fn checkpoint(job: &Job, work: &mut Work, next: StageName) -> Result<()> {
    let Some(signal) = stop::requested() else {
        return Ok(());
    };
    let record = &mut work.record;
    let done: Vec<String> = record
        .stages
        .iter()
        .map(|s| format!("{} {}", s.name, s.status))
        .collect();
    let not_run: Vec<StageName> = StageName::ALL
        .into_iter()
        .skip_while(|s| *s != next)
        .collect();
    for stage in &not_run {
        record.stage(
            *stage,
            Status::Stopped,
            format!("not run: stopped by {signal}"),
        );
    }
    save_record(job.out, record)?;
    let not_run: Vec<&str> = not_run.iter().map(|s| s.as_str()).collect();
    Err(stop::stopped(format!(
        "stopped by {signal} before the {next} stage; so far: {}; not run: {}. Re-run the job to finish: what is done is found done",
        if done.is_empty() { "nothing".to_string() } else { done.join(", ") },
        not_run.join(", ")
    )))
}

/// Records a failed stage (the record is saved, so what was done stays known) and passes the
/// error on.
fn failed(out: &Path, record: &mut Record, stage: StageName, err: Error) -> Error {
    record.stage(stage, Status::Failed, err.summary());
    match save_record(out, record) {
        Ok(_) => err,
        Err(save) => Error {
            message: format!("{}; also, {}", err.message, save.summary()),
            ..err
        },
    }
}

/// Writes `release.json` into the output folder.
pub fn save_record(out: &Path, record: &Record) -> Result<PathBuf> {
    fsutil::ensure_folder(out)?;
    let path = out.join("release.json");
    fsutil::write_atomic(&path, record.to_json().as_bytes())?;
    Ok(path)
}
