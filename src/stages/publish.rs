//! The publish stage: the GitLab Release and its package files, when the job runs in GitLab
//! (or the variables say where GitLab is).

use crate::error::Result;
use crate::gitlab;
use crate::gitlab::packages::FileStatus;
use crate::gitlab::releases::ReleaseStatus;
use crate::publish;
use crate::record::Status;

use super::{Job, Outcome, Work};

pub fn run(job: &Job, work: &mut Work) -> Result<Outcome> {
    let spec = &job.project.spec.publish;
    let gitlab = match spec.gitlab {
        true => gitlab::api::connect(&job.project.env)?,
        false => None,
    };
    let (Some(gitlab), Some(tag)) = (gitlab, job.target.tag.as_deref()) else {
        let why = if !spec.gitlab {
            "publish.gitlab is false"
        } else if job.target.tag.is_none() {
            "a snapshot has no tag to release"
        } else {
            "not in GitLab CI (no CI_API_V4_URL / CI_PROJECT_ID)"
        };
        return Ok(Outcome::new(Status::NotConfigured, why));
    };
    // A release writes: without a token, say so before the first request.
    if !job.mode.rehearsing() {
        gitlab.require_token()?;
    }
    let inputs = publish::Inputs {
        source: &job.project.source,
        spec,
        target: job.target,
        tag,
        tarball: work.record.tarball.as_ref(),
        pushed: work.record.pushed.as_ref(),
        force: job.force,
        mode: job.mode,
        env: &job.project.env,
    };
    let title = format!("Publishing the GitLab release of {tag}");
    let published = job.ui.section("publish", &title, || {
        publish::publish(&inputs, &gitlab, job.ui)
    })?;
    let nothing_new = published.release == ReleaseStatus::AlreadyThere
        && published
            .files
            .iter()
            .all(|f| f.status == FileStatus::AlreadyThere);
    let status = if nothing_new {
        Status::AlreadyDone
    } else {
        Status::Done
    };
    let detail = format!(
        "release {} {}, {}",
        tag,
        published.release,
        published
            .files
            .iter()
            .map(|f| format!("{} {}", f.file, f.status))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if !job.mode.rehearsing() {
        publish::write_annotations(&job.out.join("annotations.json"), &published)?;
    }
    work.record.published = Some(published);
    Ok(Outcome::new(status, detail))
}
