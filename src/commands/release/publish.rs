//! The publish stage: the GitLab Release and package files.

use crate::error::{ExitCode, Result};
use crate::gitlab;
use crate::gitlab::packages::FileStatus;
use crate::gitlab::releases::ReleaseStatus;
use crate::publish;
use crate::record::{Record, Status};
use crate::ui::status_word;

use super::{failed, Job};

/// The GitLab Release and package files, when the job runs in GitLab (or the variables say
/// where GitLab is).
pub fn publish_stage(job: &Job, record: &mut Record, problems: &mut Vec<String>) -> Result<()> {
    let Job {
        project,
        target,
        args,
        out,
        ui,
    } = *job;
    let spec = &project.spec.publish;
    let gitlab = match gitlab::api::connect(&|n| std::env::var(n).ok()) {
        _ if !spec.gitlab => None,
        Ok(gitlab) => gitlab,
        Err(err) => return Err(failed(record, out, "publish", err)),
    };
    let (Some(gitlab), Some(tag)) = (gitlab, target.tag.as_deref()) else {
        let why = if !spec.gitlab {
            "publish.gitlab is false"
        } else if target.tag.is_none() {
            "a snapshot has no tag to release"
        } else {
            "not in GitLab CI (no CI_API_V4_URL / CI_PROJECT_ID)"
        };
        record.stage("publish", Status::NotConfigured, why);
        return Ok(());
    };
    let inputs = publish::Inputs {
        source: &project.source,
        spec,
        target,
        tag,
        tarball: record.tarball.as_ref(),
        pushed: record.pushed.as_ref(),
        force: args.force,
        dry_run: args.dry_run,
    };
    let title = format!("Publishing the GitLab release of {tag}");
    let published = ui.section("publish", &title, || publish::publish(&inputs, &gitlab, ui));
    let published = match published {
        Ok(published) => published,
        // A dry run reads what it can: a refusal a release would hit is a problem, an
        // unreadable GitLab is only reported.
        Err(err) if args.dry_run && err.code == ExitCode::Input => {
            problems.push(format!("publish: {err}"));
            record.stage("publish", Status::Failed, err.message);
            return Ok(());
        }
        Err(err) if args.dry_run => {
            ui.info(&format!("dry run: GitLab could not be read: {err}"));
            record.stage("publish", Status::NotSelected, format!("dry run: {err}"));
            return Ok(());
        }
        Err(err) => return Err(failed(record, out, "publish", err)),
    };
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
        status_word(&published.release),
        published
            .files
            .iter()
            .map(|f| format!("{} {}", f.file, status_word(&f.status)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if !args.dry_run {
        publish::write_annotations(&out.join("annotations.json"), &published)
            .map_err(|err| failed(record, out, "publish", err))?;
    }
    record.stage("publish", status, detail);
    record.published = Some(published);
    Ok(())
}
