//! `tagpilot release`: the stages in order, then the release record. A dry run goes through
//! the same code; it only turns off writes outside the output folder.

use crate::archive::ChannelReader;
use crate::cli::{Cli, Output, ReleaseArgs, StageName};
use crate::error::{Error, Result};
use crate::fsutil;
use crate::image;
use crate::record::{Record, Status};
use crate::tarball::Existing;
use crate::target::{self, Request};
use crate::ui::{human_bytes, print_stdout, Ui};

use super::image as image_stage;
use super::{display, tarball, write_dotenv, Project};

pub fn run(cli: &Cli, args: &ReleaseArgs, ui: &Ui) -> Result<()> {
    let project = Project::open(&args.project)?;
    let request = Request {
        tag: args.tag.tag.clone(),
        snapshot: args.snapshot.clone(),
    };
    let selected = |stage: StageName| {
        (args.only.is_empty() || args.only.contains(&stage)) && !args.skip.contains(&stage)
    };
    let target = target::resolve(&project.source, &project.spec, &request)?;
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

    let mut record = Record::new(&target, args.dry_run);
    // A dry run or snapshot is a throw-away build: it may replace its own earlier output.
    let existing = if args.dry_run {
        Existing::Replace
    } else {
        Existing::Refuse
    };

    let layout = out.join("image");
    // The image's release tree layer is made from the tarball's stream: one pass over the tree.
    let image_spec = project
        .spec
        .image
        .as_ref()
        .filter(|_| selected(StageName::Image));
    let mut release_tree = None;
    if selected(StageName::Tarball) {
        let built = match image_spec {
            None => tarball::build(&project, &target, out, existing, ui, None),
            Some(image_spec) => {
                let tarball_prefix = tarball::prefix(&project, &target)?;
                let (copy, stream) = std::sync::mpsc::sync_channel(8);
                let (built, layer) = std::thread::scope(|scope| {
                    let layer = scope.spawn(|| {
                        image::release_tree_layer(
                            &layout,
                            image_spec,
                            &target,
                            &tarball_prefix,
                            ChannelReader::new(stream),
                        )
                    });
                    let built = tarball::build(&project, &target, out, existing, ui, Some(copy));
                    (built, layer.join())
                });
                if built.is_ok() {
                    release_tree = Some(
                        layer.map_err(|_| Error::failed("the image layer thread panicked"))??,
                    );
                }
                built
            }
        };
        match built {
            Ok(built) => {
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
            }
            Err(err) => {
                record.stage("tarball", Status::Failed, err.message.clone());
                save_record(out, &record)?;
                return Err(err);
            }
        }
    } else {
        record.stage("tarball", Status::NotSelected, "");
    }

    if !selected(StageName::Image) {
        record.stage("image", Status::NotSelected, "");
    } else {
        // A dry run's layout is what people inspect: complete it; a real release pushes instead.
        match image_stage::build(&project, &target, &layout, args.dry_run, release_tree, ui) {
            Ok(Some(built)) => {
                let detail = format!(
                    "OCI layout {}@{} tags {}",
                    display(&built.layout),
                    built.digest,
                    built.tags.join(",")
                );
                record.stage("image", Status::Done, detail);
                record.set_image(&built);
            }
            Ok(None) => record.stage("image", Status::NotConfigured, "no `image:` in the spec"),
            Err(err) => {
                record.stage("image", Status::Failed, err.message.clone());
                save_record(out, &record)?;
                return Err(err);
            }
        }
    }

    match (&record.image, &project.spec.image) {
        _ if !selected(StageName::Push) => record.stage("push", Status::NotSelected, ""),
        _ if args.dry_run => record.stage("push", Status::NotSelected, "dry run: nothing pushed"),
        (Some(built), Some(spec)) => {
            let built = built.clone();
            match image_stage::push(&built, spec, args.force, ui) {
                Ok(pushed) => {
                    let status = if pushed.uploaded_blobs == 0 {
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
                Err(err) => {
                    record.stage("push", Status::Failed, err.message.clone());
                    save_record(out, &record)?;
                    return Err(err);
                }
            }
        }
        _ => record.stage("push", Status::NotConfigured, "no image built"),
    }

    let record_path = save_record(out, &record)?;
    write_dotenv(cli, &record)?;
    match cli.output {
        Output::Json => print_stdout(&record.to_json()),
        Output::Human => print_summary(&record, &record_path),
    }
    Ok(())
}

fn save_record(out: &std::path::Path, record: &Record) -> Result<std::path::PathBuf> {
    fsutil::ensure_folder(out)?;
    let path = out.join("release.json");
    fsutil::write_atomic(&path, record.to_json().as_bytes())?;
    Ok(path)
}

fn print_summary(record: &Record, record_path: &std::path::Path) {
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
        };
        text.push_str(&format!(
            "  {:<10} {:<13} {}\n",
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
