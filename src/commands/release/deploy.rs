//! The deploy stage: every automatic environment's deployment commit and rollout.

use crate::environment::deploy_environment;
use crate::error::Result;
use crate::gitops::deploy::Release;
use crate::record::{Record, Status};
use crate::stop;

use super::{failed, save_record, Job};

/// Records the release in every automatic environment's deployment repository (in a dry run,
/// computes the diffs it would commit).
pub fn deploy_stage(job: &Job, record: &mut Record, problems: &mut Vec<String>) -> Result<()> {
    let Job {
        project,
        target,
        args,
        out,
        ui,
    } = *job;
    let automatic: Vec<_> = project.spec.deploy.iter().filter(|d| d.automatic).collect();
    if automatic.is_empty() {
        record.stage(
            "deploy",
            Status::NotConfigured,
            "no automatic environment in the spec",
        );
        return Ok(());
    }
    // The pinned reference: pushed, or (dry run) the one the push would make.
    let pushed = record.pinned_image();
    let would_push = || {
        let spec = project.spec.image.as_ref()?;
        let repository = spec
            .repository
            .as_ref()
            .map(|r| r.value.clone())
            .or_else(|| std::env::var("CI_REGISTRY_IMAGE").ok())?;
        record.pinned_in(&repository)
    };
    let image = match pushed.or_else(would_push) {
        Some(image) => image,
        None => {
            record.stage(
                "deploy",
                Status::NotSelected,
                "no image with a repository to record",
            );
            return Ok(());
        }
    };
    let release = Release::of_target(target, &image, args.dry_run);
    let mut details = Vec::new();
    let mut status = Status::Done;
    for (index, spec) in automatic.iter().enumerate() {
        if let (Some(signal), Some(done)) = (stop::requested(), index.checked_sub(1)) {
            let message = format!(
                "stopped by {signal} after deploying to {}; not deployed: {}; re-run the job to finish",
                automatic[..=done]
                    .iter()
                    .map(|d| d.environment.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                automatic[index..]
                    .iter()
                    .map(|d| d.environment.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            record.stage("deploy", Status::Stopped, message.clone());
            save_record(out, record)?;
            return Err(stop::stopped(message));
        }
        let deployed = match deploy_environment(spec, &release, ui) {
            Ok(deployed) => deployed,
            // A dry run goes on to the next environment, to report every problem at once.
            Err(err) if args.dry_run => {
                problems.push(format!("deploy {}: {err}", spec.environment));
                details.push(format!("{}: {err}", spec.environment));
                status = Status::Failed;
                continue;
            }
            Err(err) => return Err(failed(record, out, "deploy", err)),
        };
        details.push(format!("{}: {}", spec.environment, deployed.summary()));
        let rollout_error = deployed.rollout_error();
        record.deployed.push(deployed);
        if let Some(err) = rollout_error {
            return Err(failed(record, out, "deploy", err));
        }
    }
    record.stage("deploy", status, details.join(", "));
    Ok(())
}
