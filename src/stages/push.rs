//! The push stage: the built image to its registry. A rehearsal runs the same push, which
//! reads the registry and stops before writing.

use crate::env::Env;
use crate::error::{Error, Result};
use crate::image::{self, Built};
use crate::mode::Mode;
use crate::oci::push::Pushed;
use crate::record::{Record, StageName, Status};
use crate::spec::image::ImageSpec;
use crate::ui::{human_bytes, Ui};

use super::{carried, Job, Outcome, Work};

pub fn run(job: &Job, work: &mut Work) -> Result<Outcome> {
    let rehearsing = job.mode.rehearsing();
    let (Some(built), Some(spec)) = (work.record.image.clone(), &job.project.spec.image) else {
        return Ok(if rehearsing {
            Outcome::new(Status::NotSelected, "dry run: nothing pushed")
        } else {
            Outcome::new(Status::NotConfigured, "no image built")
        });
    };
    if rehearsing && image::push_repository_name(spec, &job.project.env).is_none() {
        return Ok(Outcome::new(
            Status::NotSelected,
            "dry run: no registry configured, nothing read",
        ));
    }
    if !job.selection.includes(StageName::Image) {
        refuse_changed_artifacts(job, spec, &built)?;
    }
    let pushed = push(&built, spec, job.force, job.mode, &job.project.env, job.ui)?;
    if rehearsing {
        return Ok(Outcome::new(
            Status::NotSelected,
            format!(
                "dry run: would upload {} blob(s) ({}) to {}; {} already there",
                pushed.uploaded_blobs,
                human_bytes(pushed.uploaded_bytes),
                pushed.reference,
                pushed.skipped_blobs
            ),
        ));
    }
    let status = if pushed.was_already_there() {
        Status::AlreadyDone
    } else {
        Status::Done
    };
    let detail = format!("{} tags {}", pushed.reference, pushed.tags.join(","));
    work.record.pushed = Some(pushed);
    Ok(Outcome::new(status, detail))
}

/// An image built by an earlier job is pushed only if the workspace's build outputs, where
/// this job has them, are still the bytes it was built with.
fn refuse_changed_artifacts(job: &Job, spec: &ImageSpec, built: &Built) -> Result<()> {
    let changed = image::artifacts::changed_since(
        job.project.source.root(),
        &spec.artifacts,
        &built.artifacts,
        job.target.mtime,
    )?;
    if changed.is_empty() {
        return Ok(());
    }
    Err(Error::input(format!(
        "the build outputs are not those the image was built with: {}; nothing was pushed",
        changed.join("; ")
    ))
    .with_hint("Re-run the build job, so that the image holds the outputs this pipeline made"))
}

pub fn skipped(record: &Record) -> String {
    carried(record.pushed.as_ref().map(|p| p.reference.as_str()))
}

/// Pushes `built` as `spec` says, in its own log section.
pub fn push(
    built: &Built,
    spec: &ImageSpec,
    force: bool,
    mode: Mode,
    env: &Env,
    ui: &Ui,
) -> Result<Pushed> {
    ui.section("push", &format!("Pushing image {}", built.digest), || {
        image::push(built, spec, force, mode, env, ui)
    })
}
