//! The deploy stage: every automatic environment's deployment commit and rollout, in the
//! spec's order (in a rehearsal, the diffs it would commit and the updates it would send).

mod environment;

pub use environment::{deploy_environment, summary};

use crate::error::Result;
use crate::gitops::deploy::Release;
use crate::image::push_repository_name;
use crate::record::Status;
use crate::stop;

use super::{Job, Outcome, Work};

pub fn run(job: &Job, work: &mut Work) -> Result<Outcome> {
    let automatic: Vec<_> = job
        .project
        .spec
        .deploy
        .iter()
        .filter(|d| d.automatic)
        .collect();
    if automatic.is_empty() {
        return Ok(Outcome::new(
            Status::NotConfigured,
            "no automatic environment in the spec",
        ));
    }
    // The pinned reference: pushed, or (dry run) the one the push would make.
    let record = &work.record;
    let would_push = || {
        let repository = push_repository_name(job.project.spec.image.as_ref()?, &job.project.env)?;
        record.pinned_in(&repository)
    };
    let Some(image) = record.pinned_image().or_else(would_push) else {
        return Ok(Outcome::new(
            Status::NotSelected,
            "no image with a repository to record",
        ));
    };
    let release = Release::of_target(job.target, &image, job.mode, &job.project.env);
    let mut details = Vec::new();
    let mut status = Status::Done;
    for (index, spec) in automatic.iter().enumerate() {
        if let (Some(signal), Some(done)) = (stop::requested(), index.checked_sub(1)) {
            let names = |specs: &[&crate::spec::deploy::DeploySpec]| {
                specs
                    .iter()
                    .map(|d| d.environment.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(stop::stopped(format!(
                "stopped by {signal} after deploying to {}; not deployed: {}; re-run the job to finish",
                names(&automatic[..=done]),
                names(&automatic[index..])
            )));
        }
        let deployed = match deploy_environment(spec, &release, &mut work.problems, job.ui) {
            Ok(deployed) => deployed,
            // A rehearsal goes on to the next environment, to report every problem at once.
            Err(err) if job.mode.rehearsing() => {
                let what = format!("deploy {}", spec.environment);
                let outcome = work.problems.absorb(&what, err, Status::Failed, job.ui);
                details.push(format!("{}: {}", spec.environment, outcome.detail));
                status = outcome.status;
                continue;
            }
            Err(err) => return Err(err),
        };
        details.push(format!("{}: {}", spec.environment, deployed.summary()));
        let rollout_error = deployed.rollout_error();
        work.record.deployed.push(deployed);
        if let Some(err) = rollout_error {
            return Err(err);
        }
    }
    Ok(Outcome::new(status, details.join(", ")))
}
