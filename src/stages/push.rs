//! The push stage: the built image to its registry. A rehearsal runs the same push, which
//! reads the registry and stops before writing.

use crate::env::Env;
use crate::error::Result;
use crate::image::{self, Built};
use crate::mode::Mode;
use crate::oci::push::Pushed;
use crate::record::{Record, Status};
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
