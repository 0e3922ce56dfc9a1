//! `tagpilot release`: the stages in order, then the release record. A dry run goes through
//! the same code; it only turns off writes outside the output folder.

use std::path::Path;

use crate::archive::ChannelReader;
use crate::cli::{Cli, Output, ReleaseArgs, StageName};
use crate::error::{Error, Result};
use crate::fsutil;
use crate::gitlab;
use crate::image;
use crate::oci::layer::Layer;
use crate::plan::Plan;
use crate::record::{Earlier, Record, Status};
use crate::spec::image::ImageSpec;
use crate::stop;
use crate::tarball::{self as tarball_writer, Existing};
use crate::target::{self, Request, Target};
use crate::ui::{print_stdout, status_word, Ui};

mod deploy;
mod publish;
mod push;
mod summary;

use super::image as image_stage;
use super::{display, tarball, write_dotenv, Project};
use deploy::deploy_stage;
use publish::publish_stage;
use push::preview_push;
use summary::print_summary;

pub fn run(cli: &Cli, args: &ReleaseArgs, ui: &Ui) -> Result<()> {
    let project = Project::open(&args.project)?;
    let plan = args.plan.as_deref().map(Plan::load).transpose()?;
    let request = Request {
        tag: plan
            .as_ref()
            .map(|p| p.tag.clone())
            .or_else(|| args.tag.tag.clone()),
        snapshot: args.snapshot.clone(),
    };
    let target = target::resolve(&project.source, &project.spec, &request)?;
    let record = match &plan {
        None => execute(&project, &target, args, ui)?,
        Some(plan) => {
            let ci_tag = std::env::var("CI_COMMIT_TAG").ok();
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
    write_dotenv(cli, &record)?;
    match cli.output {
        Output::Json => print_stdout(&record.to_json()),
        Output::Human => print_summary(&record, &args.tag.out.join("release.json")),
    }
    Ok(())
}

/// What every stage of one release run reads.
#[derive(Clone, Copy)]
struct Job<'a> {
    project: &'a Project,
    target: &'a Target,
    args: &'a ReleaseArgs,
    out: &'a Path,
    ui: &'a Ui,
}

/// Runs the selected stages for `target` and saves the record (also when a stage fails).
fn execute(project: &Project, target: &Target, args: &ReleaseArgs, ui: &Ui) -> Result<Record> {
    let selected = |stage: StageName| {
        (args.only.is_empty() || args.only.contains(&stage)) && !args.skip.contains(&stage)
    };
    let out = &args.tag.out;
    let job = Job {
        project,
        target,
        args,
        out,
        ui,
    };
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
        if args.dry_run { " [dry run]" } else { "" }
    ));

    let writes = [StageName::Push, StageName::Publish, StageName::Deploy]
        .into_iter()
        .any(selected);
    if writes && !args.dry_run {
        gitlab::check_guards(args.guards.overrides(), "release")?;
    }
    if args.dry_run {
        for refusal in gitlab::refusals(&|n| std::env::var(n).ok(), args.guards.overrides()) {
            ui.info(&format!("a real release would be refused: {refusal}"));
        }
    }

    let mut record = Record::new(target, args.dry_run);
    // Problems a dry run finds that a release would run into, reported together at the end.
    let mut problems = Vec::new();
    // A later CI job (publish, deploy) runs without the build stages: it takes their results
    // from the build job's record, handed over as an artifact, instead of rebuilding.
    let skipped = |stage| !selected(stage);
    if [StageName::Tarball, StageName::Image, StageName::Push]
        .into_iter()
        .any(skipped)
    {
        if let Some(earlier) = Earlier::load(&out.join("release.json"), target, args.dry_run)? {
            record.carry_over(
                earlier,
                skipped(StageName::Tarball),
                skipped(StageName::Image),
                skipped(StageName::Push),
            )?;
        }
    }
    // A dry run or snapshot is a throw-away build: it may replace its own earlier output.
    let existing = if args.dry_run {
        Existing::Replace
    } else {
        Existing::Refuse
    };

    let layout = out.join("image");
    let image_spec = project
        .spec
        .image
        .as_ref()
        .filter(|_| selected(StageName::Image));
    let mut release_tree = None;
    checkpoint(&mut record, out, StageName::Tarball)?;
    if selected(StageName::Tarball) {
        let (built, layer) =
            tarball_and_tree_layer(project, target, out, existing, image_spec, &layout, ui);
        let built = built.map_err(|err| failed(&mut record, out, "tarball", err))?;
        let status = if built.unchanged {
            Status::AlreadyDone
        } else {
            Status::Done
        };
        record.stage(
            "tarball",
            status,
            format!("{} sha256:{}", built.file_name, built.sha256),
        );
        record.set_tarball(&built);
        release_tree = layer.map_err(|err| failed(&mut record, out, "image", err))?;
    } else {
        let detail = carried(record.tarball.as_ref().map(|t| t.file.as_str()));
        record.stage("tarball", Status::NotSelected, detail);
    }

    checkpoint(&mut record, out, StageName::Image)?;
    if !selected(StageName::Image) {
        let detail = carried(record.image.as_ref().map(|i| i.digest.as_str()));
        record.stage("image", Status::NotSelected, detail);
    } else {
        // A dry run's layout is what people inspect: complete it; a real release pushes instead.
        let built = image_stage::build(project, target, &layout, args.dry_run, release_tree, ui)
            .map_err(|err| failed(&mut record, out, "image", err))?;
        match built {
            Some(built) => {
                let detail = format!(
                    "OCI layout {}@{} tags {}",
                    display(&built.layout),
                    built.digest,
                    built.tags.join(",")
                );
                record.stage("image", Status::Done, detail);
                record.set_image(&built);
            }
            None => record.stage("image", Status::NotConfigured, "no `image:` in the spec"),
        }
    }

    checkpoint(&mut record, out, StageName::Push)?;
    match (record.image.clone(), &project.spec.image) {
        _ if !selected(StageName::Push) => {
            let detail = carried(record.pushed.as_ref().map(|p| p.reference.as_str()));
            record.stage("push", Status::NotSelected, detail)
        }
        (Some(built), Some(spec)) if args.dry_run => {
            let detail = preview_push(&built, spec, args.force, &mut problems, ui);
            record.stage("push", Status::NotSelected, detail)
        }
        _ if args.dry_run => record.stage("push", Status::NotSelected, "dry run: nothing pushed"),
        (Some(built), Some(spec)) => {
            let pushed = image_stage::push(&built, spec, args.force, ui)
                .map_err(|err| failed(&mut record, out, "push", err))?;
            let status = if pushed.was_already_there() {
                Status::AlreadyDone
            } else {
                Status::Done
            };
            record.stage(
                "push",
                status,
                format!("{} tags {}", pushed.reference, pushed.tags.join(",")),
            );
            record.pushed = Some(pushed);
        }
        _ => record.stage("push", Status::NotConfigured, "no image built"),
    }

    checkpoint(&mut record, out, StageName::Publish)?;
    if !selected(StageName::Publish) {
        record.stage("publish", Status::NotSelected, "");
    } else {
        publish_stage(&job, &mut record, &mut problems)?;
    }

    checkpoint(&mut record, out, StageName::Deploy)?;
    if !selected(StageName::Deploy) {
        record.stage("deploy", Status::NotSelected, "");
    } else {
        deploy_stage(&job, &mut record, &mut problems)?;
    }

    save_record(out, &record)?;
    if !problems.is_empty() {
        return Err(Error::input(format!(
            "the dry run found {} problem(s) a release would run into:\n  - {}",
            problems.len(),
            problems.join("\n  - ")
        )));
    }
    Ok(record)
}

/// The detail of a stage this job did not run: what it took from the earlier job, if anything.
fn carried(what: Option<&str>) -> String {
    what.map(|w| format!("from the earlier job's record: {w}"))
        .unwrap_or_default()
}

/// The tarball; with an image to build, also its release tree layer, made from the tarball's
/// stream on a second thread so the git tree is read once.
fn tarball_and_tree_layer(
    project: &Project,
    target: &Target,
    out: &Path,
    existing: Existing,
    image_spec: Option<&ImageSpec>,
    layout: &Path,
    ui: &Ui,
) -> (Result<tarball_writer::Built>, Result<Option<Layer>>) {
    let Some(image_spec) = image_spec else {
        return (
            tarball::build(project, target, out, existing, ui, None),
            Ok(None),
        );
    };
    let tarball_prefix = match tarball::prefix(project, target) {
        Ok(prefix) => prefix,
        Err(err) => return (Err(err), Ok(None)),
    };
    let (copy, stream) = std::sync::mpsc::sync_channel(8);
    std::thread::scope(|scope| {
        let layer = scope.spawn(|| {
            image::release_tree_layer(
                layout,
                image_spec,
                target,
                &tarball_prefix,
                ChannelReader::new(stream),
            )
        });
        let built = tarball::build(project, target, out, existing, ui, Some(copy));
        let layer = match layer.join() {
            // When the tarball failed, the layer only saw a cut-off stream: its error says nothing new.
            _ if built.is_err() => Ok(None),
            Ok(layer) => layer.map(Some),
            Err(_) => Err(Error::failed("the image layer thread panicked")),
        };
        (built, layer)
    })
}

/// A safe point before `next`: when a stop was asked for, the stages not run are recorded as
/// stopped, the record is saved, and the release ends saying what was and was not done.
fn checkpoint(record: &mut Record, out: &Path, next: StageName) -> Result<()> {
    let Some(signal) = stop::requested() else {
        return Ok(());
    };
    let done: Vec<String> = record
        .stages
        .iter()
        .map(|s| format!("{} {}", s.name, status_word(&s.status)))
        .collect();
    let not_run: Vec<&str> = StageName::ALL
        .iter()
        .skip_while(|s| **s != next)
        .map(|s| s.as_str())
        .collect();
    for stage in &not_run {
        record.stage(
            stage,
            Status::Stopped,
            format!("not run: stopped by {signal}"),
        );
    }
    save_record(out, record)?;
    Err(stop::stopped(format!(
        "stopped by {signal} before the {} stage; so far: {}; not run: {}. Re-run the job to finish: what is done is found done",
        next.as_str(),
        if done.is_empty() { "nothing".to_string() } else { done.join(", ") },
        not_run.join(", ")
    )))
}

/// Records a failed stage (the record is saved, so what was done stays known) and passes the
/// error on.
fn failed(record: &mut Record, out: &Path, stage: &str, err: Error) -> Error {
    record.stage(stage, Status::Failed, err.message.clone());
    match save_record(out, record) {
        Ok(_) => err,
        Err(save) => Error {
            message: format!("{}; also, {}", err.message, save.message),
            ..err
        },
    }
}

fn save_record(out: &Path, record: &Record) -> Result<std::path::PathBuf> {
    fsutil::ensure_folder(out)?;
    let path = out.join("release.json");
    fsutil::write_atomic(&path, record.to_json().as_bytes())?;
    Ok(path)
}
