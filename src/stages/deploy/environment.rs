//! One environment's deploy, as `release` and `deploy` run it: record the image in the
//! deployment repository, roll it out on the orchestrator, and when the rollout was rolled
//! back, record the image that runs again (a new commit), so the repository keeps describing
//! what runs. `tagpilot deploy` and `tagpilot rollback` run it for one environment.

use crate::error::{Error, Result};
use crate::gitops::deploy::{deploy, Deployed, Release, Revert};
use crate::oci::reference::Reference;
use crate::orchestrator::rollout::{roll_out, Plan, Rollout};
use crate::orchestrator::{self, Object};
use crate::record::{EnvironmentDeployed, Status};
use crate::spec::deploy::DeploySpec;
use crate::spec::orchestrator::OrchestratorSpec;
use crate::stages::Problems;
use crate::ui::Ui;

/// Records and rolls out `release` in the environment `spec`. In a rehearsal, what the live
/// state says a rollout would hit goes to `problems`.
pub fn deploy_environment(
    spec: &DeploySpec,
    release: &Release,
    problems: &mut Problems,
    ui: &Ui,
) -> Result<EnvironmentDeployed> {
    let title = format!(
        "Recording {} {} in {} ({})",
        release.name, release.version, spec.repo, spec.environment
    );
    let result = ui.section("deploy", &title, || deploy(spec, release, ui))?;
    if let Deployed::WouldCommit { diff } = &result {
        ui.info(diff);
    }
    let mut deployed = EnvironmentDeployed {
        environment: spec.environment.value.clone(),
        result,
        rollout: None,
        restored: None,
    };
    let Some(orchestrator) = &spec.orchestrator else {
        return Ok(deployed);
    };
    if let Deployed::Superseded { by } = &deployed.result {
        ui.info(&format!(
            "{} records a newer version ({by}): not rolling out an older one",
            spec.environment
        ));
        return Ok(deployed);
    }
    let title = format!(
        "Rolling out {} {} on {} ({})",
        release.name,
        release.version,
        orchestrator.kind.title(),
        spec.environment
    );
    let rollout = ui.section("rollout", &title, || run_rollout(orchestrator, release, ui));
    let rollout = match rollout {
        Ok(rollout) => rollout,
        Err(e) if release.mode.rehearsing() => {
            let what = format!("rollout {}", spec.environment);
            problems.absorb(&what, e, Status::NotSelected, ui);
            return Ok(deployed);
        }
        Err(e) => {
            let recorded = match &deployed.result {
                Deployed::Committed { commit, .. } => format!(
                    "; the deployment repository already records {} (commit {}), so a re-run finishes the rollout",
                    release.image,
                    &commit[..12.min(commit.len())]
                ),
                _ => String::new(),
            };
            return Err(Error {
                message: format!("{}{recorded}", e.message),
                ..e
            });
        }
    };
    // (A rehearsal submits nothing, so nothing is ever rolled back in one.)
    if let Some(image) = rollout.restored_image() {
        deployed.restored = Some(record_restored(spec, release, &rollout, image, ui)?);
    }
    deployed.rollout = Some(rollout);
    Ok(deployed)
}

/// After the engine rolled back, a new commit records the image that runs again, so the
/// deployment repository keeps describing what runs.
fn record_restored(
    spec: &DeploySpec,
    release: &Release,
    rollout: &Rollout,
    image: &str,
    ui: &Ui,
) -> Result<Deployed> {
    let reason = rollout
        .error()
        .map(|e| e.message)
        .unwrap_or_else(|| "rolled back".to_string());
    let revert = Release {
        name: release.name,
        version: release.version,
        tag: release.tag,
        image,
        mode: release.mode,
        env: release.env,
        allow_downgrade: true,
        revert: Some(Revert {
            of: release.image.to_string(),
            reason,
            by: None,
        }),
    };
    let title = format!(
        "Recording {image} again in {} ({})",
        spec.repo, spec.environment
    );
    ui.section("deploy", &title, || deploy(spec, &revert, ui))
        .map_err(|e| {
            e.context(format!(
                "the rollout was rolled back to {image}, but the deployment repository could not be updated to say so"
            ))
        })
}

fn run_rollout(spec: &OrchestratorSpec, release: &Release, ui: &Ui) -> Result<Rollout> {
    let image = release.image;
    let reference =
        Reference::parse(image).map_err(|why| Error::input(format!("image `{image}`: {why}")))?;
    let repository = format!("{}/{}", reference.registry, reference.repository);
    let objects: Vec<Object> = spec
        .services
        .iter()
        .map(|service| Object {
            name: service.name().value.clone(),
            container: service.container().map(|c| c.value.clone()),
            kind: service.kind().unwrap_or_default(),
            repository: repository.clone(),
        })
        .collect();
    let plan = Plan {
        image,
        timeout: spec.timeout().map_err(Error::input)?,
        on_failure: spec.on_failure,
        mode: release.mode,
    };
    let mut engine = orchestrator::connect(spec, release.env)?;
    roll_out(engine.as_mut(), &objects, &plan, ui)
}

/// What happened, for people: the commit (or the diff), each service's rollout, the restore.
pub fn summary(spec: &DeploySpec, image: &str, deployed: &EnvironmentDeployed) -> String {
    let mut text = match &deployed.result {
        Deployed::Committed { commit, files } => format!(
            "committed {} to {} {} ({})\n",
            &commit[..12.min(commit.len())],
            spec.repo,
            spec.branch,
            files.join(", ")
        ),
        Deployed::AlreadyThere => format!(
            "{} {} already records {image}: nothing to commit\n",
            spec.repo, spec.branch
        ),
        Deployed::Superseded { by } => format!(
            "{} {} already records a newer version ({by}): left alone (--allow-downgrade overrides)\n",
            spec.repo, spec.branch
        ),
        Deployed::WouldCommit { diff } => diff.clone(),
    };
    if let Some(rollout) = &deployed.rollout {
        for service in &rollout.services {
            text.push_str(&format!(
                "{} {}: {}{}\n",
                rollout.engine,
                service.service,
                service.state,
                service
                    .reason
                    .as_ref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            ));
        }
    }
    if let Some(Deployed::Committed { commit, .. }) = &deployed.restored {
        text.push_str(&format!(
            "committed {} to {} {}: the image that runs again after the rollback\n",
            &commit[..12.min(commit.len())],
            spec.repo,
            spec.branch
        ));
    }
    text
}
