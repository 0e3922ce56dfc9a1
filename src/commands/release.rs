//! `tagpilot release`: the stages in order, then the release record. A dry run goes through
//! the same code; it only turns off writes outside the output folder.

use std::path::Path;

use crate::archive::ChannelReader;
use crate::cli::{Cli, Output, ReleaseArgs, StageName};
use crate::environment::deploy_environment;
use crate::error::{Error, ExitCode, Result};
use crate::fsutil;
use crate::gitlab;
use crate::gitlab::packages::FileStatus;
use crate::gitlab::releases::ReleaseStatus;
use crate::gitops::deploy::Release;
use crate::image;
use crate::oci::layer::Layer;
use crate::plan::Plan;
use crate::publish;
use crate::record::{Earlier, Record, Status};
use crate::spec::image::ImageSpec;
use crate::stop;
use crate::tarball::{self as tarball_writer, Existing};
use crate::target::{self, Request, Target};
use crate::ui::{human_bytes, print_stdout, status_word, Ui};

use super::image as image_stage;
use super::{display, tarball, write_dotenv, Project};

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

/// Runs the selected stages for `target` and saves the record (also when a stage fails).
fn execute(project: &Project, target: &Target, args: &ReleaseArgs, ui: &Ui) -> Result<Record> {
    let selected = |stage: StageName| {
        (args.only.is_empty() || args.only.contains(&stage)) && !args.skip.contains(&stage)
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
        publish_stage(project, target, args, &mut record, &mut problems, out, ui)?;
    }

    checkpoint(&mut record, out, StageName::Deploy)?;
    if !selected(StageName::Deploy) {
        record.stage("deploy", Status::NotSelected, "");
    } else {
        deploy_stage(project, target, args, &mut record, &mut problems, out, ui)?;
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

/// A dry run's push stage: what the registry already has, read without writing. A version tag
/// that names other bytes is a problem the release would hit; an unreadable registry is not.
fn preview_push(
    built: &crate::image::Built,
    spec: &ImageSpec,
    force: bool,
    problems: &mut Vec<String>,
    ui: &Ui,
) -> String {
    let configured = spec.repository.is_some()
        || std::env::var("CI_REGISTRY_IMAGE").is_ok_and(|r| !r.is_empty());
    if !configured {
        return "dry run: no registry configured, nothing read".to_string();
    }
    match crate::image::push_preview(built, spec) {
        Ok(preview) => {
            for (tag, there) in &preview.conflicts {
                let problem = format!(
                    "push: {}:{tag} already names other bytes ({there}, this build {}); a release refuses that{}",
                    preview.repository,
                    built.digest,
                    if force { " unless --force, which is given" } else { " (--force replaces it)" }
                );
                if !force {
                    problems.push(problem.clone());
                }
                ui.info(&problem);
            }
            format!(
                "dry run: {} has {} of the {} added layer(s){}",
                preview.repository,
                preview.layers_present,
                preview.layers,
                if preview.already_there.is_empty() {
                    String::new()
                } else {
                    format!(
                        ", and already {} with this digest",
                        preview.already_there.join(",")
                    )
                }
            )
        }
        Err(err) => {
            ui.info(&format!("dry run: the registry could not be read: {err}"));
            format!("dry run: registry not readable ({err})")
        }
    }
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

/// The GitLab Release and package files, when the job runs in GitLab (or the variables say
/// where GitLab is).
fn publish_stage(
    project: &Project,
    target: &Target,
    args: &ReleaseArgs,
    record: &mut Record,
    problems: &mut Vec<String>,
    out: &Path,
    ui: &Ui,
) -> Result<()> {
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

/// Records the release in every automatic environment's deployment repository (in a dry run,
/// computes the diffs it would commit).
fn deploy_stage(
    project: &Project,
    target: &Target,
    args: &ReleaseArgs,
    record: &mut Record,
    problems: &mut Vec<String>,
    out: &Path,
    ui: &Ui,
) -> Result<()> {
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

fn print_summary(record: &Record, record_path: &Path) {
    let mut text = format!(
        "{} {}{}\n",
        record.name,
        record.version,
        if record.dry_run {
            " (dry run: nothing was pushed, published or deployed)"
        } else {
            ""
        }
    );
    for stage in &record.stages {
        let status = match stage.status {
            Status::Done => "done",
            Status::AlreadyDone => "already done",
            Status::NotSelected => "not selected",
            Status::NotConfigured => "not configured",
            Status::Failed => "FAILED",
            Status::Stopped => "STOPPED",
        };
        text.push_str(&format!(
            "  {:<10} {:<14} {}\n",
            stage.name, status, stage.detail
        ));
    }
    if let Some(tarball) = &record.tarball {
        text.push_str(&format!(
            "  tarball:  {} ({})\n",
            tarball.path,
            human_bytes(tarball.size)
        ));
    }
    if let Some(image) = &record.image {
        let first_tag = image.tags.first().map_or("", String::as_str);
        text.push_str(&format!(
            "  image:    {}:{first_tag} ({}, skopeo inspect oci:{}:{first_tag})\n",
            display(&image.layout),
            image.digest,
            display(&image.layout)
        ));
    }
    text.push_str(&format!("  record:   {}\n", display(record_path)));
    print_stdout(&text);
}
