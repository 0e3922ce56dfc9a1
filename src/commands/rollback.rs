//! `tagpilot rollback`: put an environment back on an earlier deployed image. The deployment
//! repository says what ran; the image must still be in the registry (by digest); the change
//! is a new commit (history is never rewritten), then the rollout, exactly as a deploy.

use serde_json::json;

use crate::cli::{Cli, Output, RollbackArgs};
use crate::env::Env;
use crate::error::{Error, Result};
use crate::gitops::deploy::{version_in, Release, Revert};
use crate::gitops::history::{self, Entry};
use crate::image::push_repository_name;
use crate::image::registry_digest;
use crate::mode::Mode;
use crate::oci::reference::Reference;
use crate::project::Project;
use crate::stages::deploy::{deploy_environment, summary};
use crate::stages::Problems;
use crate::target::release_name;
use crate::ui::{print_stdout, Ui};
use crate::version::{Scheme, Version};

pub fn run(cli: &Cli, args: &RollbackArgs, env: &Env, ui: &Ui) -> Result<()> {
    let project = args.project.open(env)?;
    let spec = project.environment(&args.env)?;
    let repository = project
        .spec
        .image
        .as_ref()
        .and_then(|image| push_repository_name(image, env));
    let entries = ui.section(
        "history",
        &format!("Reading the deploy history of {}", args.env),
        || history::read(spec, repository.as_deref(), env),
    )?;
    let chosen = history::rollback_target(&entries, args.to.as_deref(), &args.env)
        .map_err(|why| Error::input(format!("{why}; nothing was changed")))?;
    let current = &entries[0];
    ui.info(&format!(
        "{} runs {} ({}); rolling back to {} ({}, deployed {} by {})",
        args.env,
        current.version.as_deref().unwrap_or("?"),
        current.image,
        chosen.version.as_deref().unwrap_or("?"),
        chosen.image,
        chosen.time,
        chosen.author
    ));
    check_still_in_registry(chosen, &project)?;

    let version = version_of(chosen)?;
    let name = release_name(&project.source, &project.spec);
    let release = Release {
        name: &name,
        version: &version,
        tag: None,
        image: &chosen.image,
        mode: Mode::of_dry_run(args.dry_run),
        env,
        allow_downgrade: true,
        revert: Some(Revert {
            of: current.image.clone(),
            reason: args
                .reason
                .clone()
                .unwrap_or_else(|| "manual rollback".to_string()),
            by: Some(who(env)),
        }),
    };
    let mut problems = Problems::default();
    let deployed = deploy_environment(spec, &release, &mut problems, ui)?;
    match cli.output {
        Output::Json => print_stdout(&format!(
            "{}\n",
            json!({
                "environment": args.env,
                "dry_run": args.dry_run,
                "from": current,
                "to": chosen,
                "result": deployed.result,
                "rollout": deployed.rollout,
                "restored": deployed.restored,
            })
        )),
        Output::Human => print_stdout(&summary(spec, &chosen.image, &deployed)),
    }
    match deployed.rollout_error() {
        Some(err) => Err(err),
        None => problems.into_result("dry run"),
    }
}

/// A rollback to an image the registry lost would leave the service unable to start: refuse it
/// before anything changes.
fn check_still_in_registry(chosen: &Entry, project: &Project) -> Result<()> {
    let reference = Reference::parse(&chosen.image).map_err(|why| {
        Error::input(format!(
            "the deploy commit {} records `{}`: {why}",
            chosen.commit, chosen.image
        ))
    })?;
    let found =
        registry_digest(&reference, project.spec.image.as_ref(), &project.env).map_err(|e| {
            e.context(format!(
                "could not check that {} is still in its registry; nothing was changed",
                chosen.image
            ))
        })?;
    match (found, &reference.digest) {
        (None, _) => Err(Error::input(format!(
            "{} is no longer in the registry (manifest {} not found); nothing was changed",
            chosen.image,
            reference.manifest_reference()
        ))
        .with_hint("Choose another version with --to, or push that image again")),
        (Some(found), Some(recorded)) if &found != recorded => Err(Error::input(format!(
            "the registry's {} is {found}, not the recorded {recorded}; nothing was changed",
            chosen.image
        ))),
        _ => Ok(()),
    }
}

/// The version the rollback records: the commit's `Tagpilot-Release`, else the image's tag.
fn version_of(entry: &Entry) -> Result<Version> {
    entry
        .version
        .as_deref()
        .and_then(|text| Version::parse(text, Scheme::Auto).ok())
        .or_else(|| version_in(&entry.image))
        .ok_or_else(|| {
            Error::input(format!(
                "the deploy commit {} names no version (no Tagpilot-Release trailer, image `{}`)",
                &entry.commit[..12.min(entry.commit.len())],
                entry.image
            ))
        })
}

/// Who asked, for the commit message: the GitLab user in a pipeline, else the login name.
fn who(env: &Env) -> String {
    ["GITLAB_USER_NAME", "USER", "LOGNAME"]
        .iter()
        .find_map(|name| env.lookup(name))
        .unwrap_or_else(|| "an administrator".to_string())
}
