//! The image stage: the release's OCI image, built into an OCI image layout in the output folder.

use std::path::Path;

use crate::error::Result;
use crate::fsutil::display;
use crate::gzip::share::Taken;
use crate::image::{self, Built, Inputs};
use crate::project::Project;
use crate::record::{Record, Status};
use crate::target::Target;
use crate::ui::{human_bytes, Ui};

use super::{carried, Job, Outcome, Work};

pub fn run(job: &Job, work: &mut Work) -> Result<Outcome> {
    let from_tarball = image::FromTarball {
        release_tree: work.release_tree.take().transpose()?,
        blocks: work.tarball_blocks.take(),
    };
    // A dry run's layout is what people inspect: complete it; a real release pushes instead.
    let complete_layout = job.mode.rehearsing();
    let layout = job.out.join("image");
    let built = build(
        job.project,
        job.target,
        &layout,
        complete_layout,
        from_tarball,
        job.ui,
    )?;
    let Some(built) = built else {
        return Ok(Outcome::new(
            Status::NotConfigured,
            "no `image:` in the spec",
        ));
    };
    let detail = format!(
        "OCI layout {}@{} tags {}",
        display(&built.layout),
        built.digest,
        built.tags.join(",")
    );
    work.record.set_image(&built);
    Ok(Outcome::new(Status::Done, detail))
}

pub fn skipped(record: &Record) -> String {
    carried(record.image.as_ref().map(|i| i.digest.as_str()))
}

/// Builds the image into `layout`; `None` when the spec has no `image:` section.
/// `complete_layout` also downloads a registry base's layers into the layout (a push does not
/// need them); `from_tarball` is what the tarball stage made for it.
pub fn build(
    project: &Project,
    target: &Target,
    layout: &Path,
    complete_layout: bool,
    from_tarball: image::FromTarball,
    ui: &Ui,
) -> Result<Option<Built>> {
    let Some(image) = &project.spec.image else {
        return Ok(None);
    };
    let inputs = Inputs {
        source: &project.source,
        root: project.source.root(),
        spec: &project.spec,
        image,
        target,
        complete_layout,
        env: &project.env,
        from_tarball,
        taken: Taken::default(),
    };
    let title = format!(
        "Building image {} {} into {}",
        target.name,
        target.version,
        display(layout)
    );
    ui.section("image", &title, || {
        let built = image::build(&inputs, layout, ui)?;
        if inputs.taken.bytes() > 0 {
            ui.info(&format!(
                "image layers: {} of file content taken from the tarball's compressed files",
                human_bytes(inputs.taken.bytes())
            ));
        }
        let supervisor = match &built.supervisor {
            Some(s) => format!(
                ", and that of tagpilot-supervisor {}",
                s.layers[0]
                    .version
                    .as_deref()
                    .unwrap_or("(version unknown)")
            ),
            None => String::new(),
        };
        ui.info(&format!(
            "image {} for {} ({} layers added{supervisor}), tags {}",
            built.digest,
            built.platforms.join(", "),
            built.layers.len(),
            built.tags.join(", ")
        ));
        Ok(Some(built))
    })
}
