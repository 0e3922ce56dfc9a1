//! One environment's deploy, as `release` and `deploy` run it: record the image in the
//! deployment repository, roll it out on the orchestrator, and when the rollout was rolled
//! back, record the image that runs again (a new commit), so the repository keeps describing
//! what runs.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::gitops::deploy::{deploy, Deployed, Release, Revert};
use crate::oci::reference::Reference;
use crate::orchestrator::rollout::{roll_out, Plan, Rollout};
use crate::orchestrator::{self, Object};
use crate::spec::deploy::DeploySpec;
use crate::spec::orchestrator::OrchestratorSpec;
use crate::ui::{status_word, Ui};

#[derive(Debug, Serialize)]
pub struct EnvironmentDeployed {
    pub environment: String,
    /// What happened in the deployment repository.
    pub result: Deployed,
    /// What happened on the orchestrator, when the environment has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
    /// The commit that put the previous image back after a rollback.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restored: Option<Deployed>,
}

impl EnvironmentDeployed {
    /// The error the command ends with when the rollout failed (exit 3) or timed out (4).
    pub fn rollout_error(&self) -> Option<Error> {
        self.rollout.as_ref().and_then(Rollout::error)
    }

    /// One phrase for summaries: `committed, rollout succeeded`.
    pub fn summary(&self) -> String {
        let mut text = self.result.status().to_string();
        if let Some(rollout) = &self.rollout {
            text.push_str(&format!(", rollout {}", status_word(&rollout.outcome)));
        }
        if self.restored.is_some() {
            text.push_str(", previous image recorded again");
        }
        text
    }
}

pub fn deploy_environment(
    spec: &DeploySpec,
    release: &Release,
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
    let rollout = ui.section("rollout", &title, || {
        run_rollout(orchestrator, release.image, release.dry_run, ui)
    });
    let rollout = match rollout {
        Ok(rollout) => rollout,
        // A dry run reads live state where it can, and says so where it cannot.
        Err(e) if release.dry_run => {
            ui.info(&format!("dry run: the live state could not be read: {e}"));
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
    if let Some(image) = rollout.restored_image().filter(|_| !release.dry_run) {
        let reason = rollout
            .error()
            .map(|e| e.message)
            .unwrap_or_else(|| "rolled back".to_string());
        let revert = Release {
            name: release.name,
            version: release.version,
            tag: release.tag,
            image,
            dry_run: false,
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
        let restored = ui
            .section("deploy", &title, || deploy(spec, &revert, ui))
            .map_err(|e| Error {
                message: format!(
                    "the rollout was rolled back to {image}, but the deployment repository could not be updated to say so: {}",
                    e.message
                ),
                ..e
            })?;
        deployed.restored = Some(restored);
    }
    deployed.rollout = Some(rollout);
    Ok(deployed)
}

fn run_rollout(spec: &OrchestratorSpec, image: &str, dry_run: bool, ui: &Ui) -> Result<Rollout> {
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
        dry_run,
    };
    let mut engine = orchestrator::connect(spec)?;
    roll_out(engine.as_mut(), &objects, &plan, ui)
}
