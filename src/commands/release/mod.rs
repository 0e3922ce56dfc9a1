//! `tagpilot release`: the pipeline of stages (see `stages`), a plan's rehearsal and
//! check, then the release record, the dotenv report and the summary. A dry run goes through
//! the same stages in rehearsal mode: nothing is written outside the output folder.

use crate::cli::{Cli, Output, ReleaseArgs};
use crate::env::Env;
use crate::error::{Error, Result};
use crate::fsutil::display;
use crate::gitlab;
use crate::mode::Mode;
use crate::plan::Plan;
use crate::project::Project;
use crate::record::{Earlier, Record, StageName};
use crate::stages::{self, Job, Selection, Work};
use crate::target::{self, Request, Target};
use crate::ui::{print_stdout, Ui};

mod summary;

use super::write_dotenv;
use summary::print_summary;

pub fn run(cli: &Cli, args: &ReleaseArgs, env: &Env, ui: &Ui) -> Result<()> {
    let project = args.project.open(env)?;
    let plan = args.plan.as_deref().map(Plan::load).transpose()?;
    let request = Request {
        tag: plan
            .as_ref()
            .map(|p| p.tag.clone())
            .or_else(|| args.tag.tag.clone()),
        snapshot: args.snapshot.clone(),
    };
    let target = target::resolve(&project, &request)?;
    let record = match &plan {
        None => execute(&project, &target, args, ui)?,
        Some(plan) => {
            let ci_tag = env.lookup("CI_COMMIT_TAG");
            plan.check_target(&target, ci_tag.as_deref())?;
            ui.info("Checking the plan: a dry run first, then the release if nothing changed");
            let rehearsal = ReleaseArgs {
                dry_run: true,
                ..args.clone()
            };
            let differences = plan.differences(&execute(&project, &target, &rehearsal, ui)?);
            if !differences.is_empty() {
                return Err(Error::input(format!(
                    "the world changed since the plan was made; nothing was done:\n  - {}",
                    differences.join("\n  - ")
                ))
                .with_hint("Make a new plan with `tagpilot release --dry-run --plan-out FILE`"));
            }
            ui.info("The plan holds: applying it");
            execute(&project, &target, args, ui)?
        }
    };
    if let Some(path) = &args.plan_out {
        Plan::of(&record)?.save(path)?;
        ui.info(&format!("plan saved to {}", display(path)));
    }
    write_dotenv(cli, env, &record)?;
    match cli.output {
        Output::Json => print_stdout(&record.to_json()),
        Output::Human => print_summary(&record, &args.tag.out.join("release.json")),
    }
    Ok(())
}

/// Runs the selected stages for `target` and saves the record (also when a stage fails).
fn execute(project: &Project, target: &Target, args: &ReleaseArgs, ui: &Ui) -> Result<Record> {
    let mode = Mode::of_dry_run(args.dry_run);
    let selection = Selection {
        only: args.only.clone(),
        skip: args.skip.clone(),
    };
    let out = &args.tag.out;
    ui.info(&format!(
        "Releasing {} {} ({}, commit {}{}){}",
        target.name,
        target.version,
        match &target.tag {
            Some(tag) => format!("tag {tag}"),
            None => "snapshot of HEAD".to_string(),
        },
        &target.commit.id[..12],
        match &target.previous {
            Some(p) => format!(", previous release {}", p.tag),
            None => String::new(),
        },
        if mode.rehearsing() { " [dry run]" } else { "" }
    ));
    check_guards(args, &selection, mode, &project.env, ui)?;

    let mut record = Record::new(target, mode.rehearsing());
    // A later CI job (publish, deploy) runs without the build stages: it takes their results
    // from the build job's record, handed over as an artifact, instead of rebuilding.
    let skipped = |stage| !selection.includes(stage);
    if [StageName::Tarball, StageName::Image, StageName::Push]
        .into_iter()
        .any(skipped)
    {
        let earlier = Earlier::load(&out.join("release.json"), target, mode.rehearsing())?;
        if let Some(earlier) = earlier {
            record.carry_over(
                earlier,
                skipped(StageName::Tarball),
                skipped(StageName::Image),
                skipped(StageName::Push),
            )?;
        }
    }
    let job = Job {
        project,
        target,
        out,
        mode,
        force: args.force,
        selection: &selection,
        ui,
    };
    let mut work = Work::new(record);
    stages::run(&job, &mut work)?;
    Ok(work.record)
}

/// GitLab's guards (protected ref, deploy freeze): a release that writes anything is refused
/// before anything is built; a rehearsal says what a release would be refused for.
fn check_guards(
    args: &ReleaseArgs,
    selection: &Selection,
    mode: Mode,
    env: &Env,
    ui: &Ui,
) -> Result<()> {
    if mode.rehearsing() {
        for refusal in gitlab::refusals(env, args.guards.overrides()) {
            ui.info(&format!("a real release would be refused: {refusal}"));
        }
        return Ok(());
    }
    let writes = [StageName::Push, StageName::Publish, StageName::Deploy]
        .into_iter()
        .any(|stage| selection.includes(stage));
    if writes {
        gitlab::check_guards(env, args.guards.overrides(), "release")?;
    }
    Ok(())
}
