//! The tarball stage: the release tarball of the tagged tree, into the output folder. When an
//! image is to be built, the image's release tree layer is made from the same tar stream on a
//! second thread, so the git tree is read once, and its files are compressed once for both.

use std::path::Path;

use crate::archive::{folder_prefix, ChannelReader};
use crate::error::{Error, Result};
use crate::fsutil::{check_out_dir, display};
use crate::gzip::share::{self, BlockIndex, Blocks, Publisher, Share};
use crate::image;
use crate::oci::layer::Layer;
use crate::project::Project;
use crate::record::{Record, StageName, Status};
use crate::source::Selection;
use crate::spec::image::ImageSpec;
use crate::tarball::{self, Built, Existing, Plan};
use crate::target::Target;
use crate::ui::{human_bytes, Ui};

use super::{carried, Job, Outcome, Work};

pub fn run(job: &Job, work: &mut Work) -> Result<Outcome> {
    // A dry run is a throw-away build: it may replace its own earlier output.
    let existing = if job.mode.rehearsing() {
        Existing::Replace
    } else {
        Existing::Refuse
    };
    let image_spec = job
        .project
        .spec
        .image
        .as_ref()
        .filter(|_| job.selection.includes(StageName::Image));
    // Compress once: with the same packing, the image's layers take the tarball's compressed
    // files instead of compressing them again.
    let shares = image_spec.is_some_and(|image| {
        let tarball = job.project.spec.tarball.packing();
        tarball.shares_files_with(image.packing())
    });
    // A split image makes its release tree layers from git, so it takes the tarball's files
    // from an index of them; any other takes them from the tarball's stream as they come.
    let splits =
        image_spec.is_some_and(|image| image::split::splits_from(image, job.target).is_some());
    let index = (splits && shares).then(BlockIndex::default);
    let for_image = match (image_spec, &index) {
        (_, Some(index)) => ForImage::Index(index.clone()),
        (Some(image), None) if !splits => ForImage::StreamLayer(image, shares),
        _ => ForImage::Nothing,
    };
    let (built, layer) = with_tree_layer(job, existing, for_image);
    let built = built?;
    work.release_tree = layer;
    work.tarball_blocks = index.map(|index| Blocks {
        index,
        file: built.path.clone(),
    });
    work.record.set_tarball(&built);
    let status = if built.unchanged {
        Status::AlreadyDone
    } else {
        Status::Done
    };
    Ok(Outcome::new(
        status,
        format!("{} sha256:{}", built.file_name, built.sha256),
    ))
}

pub fn skipped(record: &Record) -> String {
    carried(record.tarball.as_ref().map(|t| t.file.as_str()))
}

/// What the tarball stage makes for the image besides the tarball.
enum ForImage<'a> {
    Nothing,
    /// The release tree layer, from the tarball's stream (so the git tree is read once);
    /// `true`: taking the tarball's compressed files as they come.
    StreamLayer(&'a ImageSpec, bool),
    /// An index of the tarball's compressed files, for the layers the image stage makes from
    /// git when it splits the tree at the release line's first release.
    Index(BlockIndex),
}

/// The tarball, and what it makes for the image.
fn with_tree_layer(
    job: &Job,
    existing: Existing,
    for_image: ForImage,
) -> (Result<Built>, Option<Result<Layer>>) {
    let (project, target, out, ui) = (job.project, job.target, job.out, job.ui);
    let (image_spec, shares) = match for_image {
        ForImage::StreamLayer(image_spec, shares) => (image_spec, shares),
        ForImage::Nothing => return (build(project, target, out, existing, ui, None), None),
        ForImage::Index(index) => {
            let copy = tarball::Copy {
                stream: None,
                share: Share::Publish(Publisher::Index(index)),
            };
            return (build(project, target, out, existing, ui, Some(copy)), None);
        }
    };
    let tarball_prefix = match prefix(project, target) {
        Ok(prefix) => prefix,
        Err(err) => return (Err(err), None),
    };
    let layout = out.join("image");
    let (stream, received) = std::sync::mpsc::sync_channel(8);
    let (publish, reuse, taken) = if shares {
        let (publisher, reuser, taken) = share::pair();
        (Share::Publish(publisher), Share::Reuse(reuser), Some(taken))
    } else {
        (Share::None, Share::None, None)
    };
    std::thread::scope(|scope| {
        let layer = scope.spawn(|| {
            image::release_tree_layer(
                &layout,
                image_spec,
                target,
                &tarball_prefix,
                (ChannelReader::new(received), reuse),
            )
        });
        let copy = tarball::Copy {
            stream: Some(stream),
            share: publish,
        };
        let built = build(project, target, out, existing, ui, Some(copy));
        let layer = match layer.join() {
            // When the tarball failed, the layer only saw a cut-off stream: its error says nothing new.
            _ if built.is_err() => None,
            Ok(layer) => Some(layer),
            Err(_) => Some(Err(Error::failed("the image layer thread panicked"))),
        };
        if let (Some(Ok(layer)), Some(taken)) = (&layer, taken) {
            ui.info(&format!(
                "image layer: made with the tarball's stream, {} of its {} of file content compressed once for both",
                human_bytes(taken.bytes()),
                human_bytes(layer.counts.content_bytes),
            ));
        }
        (built, layer)
    })
}

/// The folder every tarball entry goes under (`name-version/`), or empty.
pub fn prefix(project: &Project, target: &Target) -> Result<String> {
    let prefix = target
        .render(project.spec.tarball.prefix.as_str())
        .map_err(|why| Error::input(format!("tarball.prefix: {why}")))?;
    Ok(folder_prefix(&prefix))
}

/// Packs the target's tree as the spec says, into `out`; `copy` also gets it.
pub fn build(
    project: &Project,
    target: &Target,
    out: &Path,
    existing: Existing,
    ui: &Ui,
    copy: Option<tarball::Copy>,
) -> Result<Built> {
    check_out_dir(out)?;
    let spec = &project.spec.tarball;
    let excludes = spec.excludes()?;
    let prefix = prefix(project, target)?;
    let file_name = target
        .render(&spec.file_template())
        .map_err(|why| Error::input(format!("tarball.file: {why}")))?;
    let normal = crate::archive::Normal {
        mtime: target.mtime,
        uid: 0,
        gid: 0,
    };
    let artifacts = match &project.spec.image {
        Some(image) => crate::image::artifacts::for_release_tree(
            project.source.root(),
            &image.artifacts,
            &prefix,
            normal,
        )?,
        None => Vec::new(),
    };
    let plan = Plan {
        file_name,
        prefix,
        artifacts,
        mtime: target.mtime,
        packing: spec.packing(),
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
