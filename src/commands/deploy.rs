//! `tagpilot deploy`: record the release in one environment's deployment repository.

use serde_json::json;

use crate::cli::{Cli, DeployArgs, Output};
use crate::environment::{deploy_environment, EnvironmentDeployed};
use crate::error::{Error, Result};
use crate::gitops::deploy::{Deployed, Release};
use crate::spec::deploy::DeploySpec;
use crate::target::{self, Request};
use crate::ui::{print_stdout, status_word, Ui};

use super::Project;

pub fn run(cli: &Cli, args: &DeployArgs, ui: &Ui) -> Result<()> {
    let project = Project::open(&args.project)?;
    let spec = project.environment(&args.env)?;
    if !args.dry_run {
        crate::gitlab::check_guards(args.guards.overrides(), &format!("deploy to {}", args.env))?;
    }
    let image = args.image.as_deref().ok_or_else(|| {
        Error::input("no image to deploy: pass --image REPO:TAG@sha256:… or set TAGPILOT_IMAGE (the build job's dotenv report does)")
    })?;
    let request = Request {
        tag: args.tag.clone(),
        snapshot: None,
    };
    let target = target::resolve(&project.source, &project.spec, &request)?;
    let release = Release {
        allow_downgrade: args.allow_downgrade,
        ..Release::of_target(&target, image, args.dry_run)
    };
    let deployed = deploy_environment(spec, &release, ui)?;
    match cli.output {
        Output::Json => print_stdout(&format!(
            "{}\n",
            json!({ "environment": args.env, "repository": spec.repo.value, "branch": spec.branch.value, "image": image, "result": deployed.result, "rollout": deployed.rollout, "restored": deployed.restored })
        )),
        Output::Human => print_stdout(&summary(spec, image, &deployed)),
    }
    match deployed.rollout_error() {
        Some(err) => Err(err),
        None => Ok(()),
    }
}

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
                status_word(&service.state),
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
