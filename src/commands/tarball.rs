//! `tagpilot tarball`, and the tarball stage that `release` runs.

use std::path::Path;
use std::sync::mpsc::SyncSender;

use crate::archive::folder_prefix;
use crate::cli::{Cli, Output, TarballArgs};
use crate::error::{Error, Result};
use crate::record::Record;
use crate::source::Selection;
use crate::tarball::{self, Built, Existing, Plan};
use crate::target::{self, Request, Target};
use crate::ui::{human_bytes, print_stdout, Ui};

use super::{check_out_dir, display, write_dotenv, Project};

pub fn run(cli: &Cli, args: &TarballArgs, ui: &Ui) -> Result<()> {
    let project = Project::open(&args.project)?;
    let request = Request {
        tag: args.tag.tag.clone(),
        snapshot: None,
    };
    let target = target::resolve(&project.source, &project.spec, &request)?;
    let built = build(&project, &target, &args.tag.out, Existing::Refuse, ui, None)?;
    let mut record = Record::new(&target, false);
    record.set_tarball(&built);
    write_dotenv(cli, &record)?;
    match cli.output {
        Output::Json => print_stdout(&record.to_json()),
        Output::Human => print_stdout(&format!(
            "{}\tsha256:{}\n",
            display(&built.path),
            built.sha256
        )),
    }
    Ok(())
}

/// The folder every tarball entry goes under (`name-version/`), or empty.
pub fn prefix(project: &Project, target: &Target) -> Result<String> {
    let prefix = target
        .render(project.spec.tarball.prefix.as_str())
        .map_err(|why| Error::input(format!("tarball.prefix: {why}")))?;
    Ok(folder_prefix(&prefix))
}

/// The tarball stage: packs the target's tree as the spec says, into `out`; `copy` also gets
/// the uncompressed tar stream.
pub fn build(
    project: &Project,
    target: &Target,
    out: &Path,
    existing: Existing,
    ui: &Ui,
    copy: Option<SyncSender<Vec<u8>>>,
) -> Result<Built> {
    check_out_dir(out)?;
    let spec = &project.spec.tarball;
    let excludes = spec.excludes()?;
    let prefix = prefix(project, target)?;
    let file_name = target
        .render(&spec.file_template())
        .map_err(|why| Error::input(format!("tarball.file: {why}")))?;
    let plan = Plan {
        file_name,
        prefix,
        mtime: target.mtime,
        level: spec.level.0,
        compression: spec.compression,
        selection: Selection {
            excludes: &excludes,
            submodules: spec.submodules,
            export_ignore: true,
        },
    };
    ui.section("tarball", &format!("Building {}", plan.file_name), || {
        let mut progress = ui.progress("tarball");
        let built = tarball::build(
            &project.source,
            &target.commit,
            &plan,
            out,
            existing,
            &mut progress,
            copy,
        )?;
        ui.info(&format!(
            "{} {}: {} entries, {} of content, {} compressed, sha256:{}",
            if built.unchanged {
                "unchanged"
            } else {
                "wrote"
            },
            display(&built.path),
            built.entries,
            human_bytes(built.content_bytes),
            human_bytes(built.size),
            built.sha256
        ));
        Ok(built)
    })
}
