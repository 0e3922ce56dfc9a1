//! `tagpilot deploy`: record the release in one environment's deployment repository.

use serde_json::json;

use crate::cli::{Cli, DeployArgs, Output};
use crate::env::Env;
use crate::error::{Error, Result};
use crate::gitops::deploy::{version_in, Release};
use crate::mode::Mode;
use crate::stages::deploy::{deploy_environment, summary};
use crate::stages::Problems;
use crate::target::{self, Request};
use crate::ui::{print_stdout, Ui};

pub fn run(cli: &Cli, args: &DeployArgs, env: &Env, ui: &Ui) -> Result<()> {
    let project = args.project.open(env)?;
    let spec = project.environment(&args.env)?;
    let mode = Mode::of_dry_run(args.dry_run);
    if !mode.rehearsing() {
        crate::gitlab::check_guards(
            env,
            args.guards.overrides(),
            &format!("deploy to {}", args.env),
        )?;
    }
    let image = args.image.as_deref().ok_or_else(|| {
        Error::input("no image to deploy: pass --image REPO:TAG@sha256:… or set TAGPILOT_IMAGE (the build job's dotenv report does)")
    })?;
    let request = Request {
        tag: args.tag.clone(),
        snapshot: None,
    };
    let target = target::resolve(&project, &request)?;
    // The commit's trailers say which release runs: they must not name another one.
    let own_tag = |tag: &str| {
        project.spec.image.as_ref().is_some_and(|spec| {
            crate::image::release_tags(spec, &target)
                .is_ok_and(|(tags, _)| tags.iter().any(|t| t == tag))
        })
    };
    let tag = crate::oci::reference::Reference::parse(image)
        .ok()
        .and_then(|r| r.tag);
    let named = version_in(image).filter(|v| *v != target.version);
    if let Some(named) = named.filter(|_| !tag.as_deref().is_some_and(own_tag)) {
        return Err(Error::input(format!(
            "--image {image} is version {named}, but this is the release of {} {}; nothing was changed",
            target.name, target.version
        ))
        .with_hint("Deploy from the tag of that version (--tag), or pass the image of this one"));
    }
    let release = Release {
        allow_downgrade: args.allow_downgrade,
        ..Release::of_target(&target, image, mode, env)
    };
    let mut problems = Problems::default();
    let deployed = deploy_environment(spec, &release, &mut problems, ui)?;
    match cli.output {
        Output::Json => print_stdout(&format!(
            "{}\n",
            json!({ "environment": args.env, "repository": spec.repo.value, "branch": spec.branch.value, "image": image, "result": deployed.result, "rollout": deployed.rollout, "restored": deployed.restored })
        )),
        Output::Human => print_stdout(&summary(spec, image, &deployed)),
    }
    match deployed.rollout_error() {
        Some(err) => Err(err),
        None => problems.into_result("dry run"),
    }
}
