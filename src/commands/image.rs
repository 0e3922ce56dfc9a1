//! `tagpilot image`, and the image stage that `release` runs.

use std::path::Path;

use crate::cli::{Cli, ImageArgs, Output};
use crate::error::{Error, Result};
use crate::image::{self, Built, Inputs};
use crate::oci::layer::Layer;
use crate::record::Record;
use crate::target::{self, Request, Target};
use crate::ui::{print_stdout, Ui};

use super::{display, write_dotenv, Project};

pub fn run(cli: &Cli, args: &ImageArgs, ui: &Ui) -> Result<()> {
    let project = Project::open(&args.project)?;
    let request = Request {
        tag: args.tag.clone(),
        snapshot: None,
    };
    let target = target::resolve(&project.source, &project.spec, &request)?;
    let layout = args
        .oci_layout
        .clone()
        .unwrap_or_else(|| args.out.join("image"));
    // An explicit layout is the product: it gets the base's layers too, to stand on its own.
    let complete = args.oci_layout.is_some();
    let built = build(&project, &target, &layout, complete, None, ui)?.ok_or_else(|| {
        Error::input(format!(
            "the pipeline spec has no `image:` section ({})",
            project
                .spec_file
                .as_deref()
                .map_or("no tagpilot.yaml found".to_string(), display)
        ))
        .with_hint("Add one (see `tagpilot schema`), or pass --pipeline FILE")
    })?;
    let mut record = Record::new(&target, false);
    record.set_image(&built);
    if args.oci_layout.is_none() {
        let spec = project.spec.image.as_ref().expect("built from it");
        record.pushed = Some(push(&built, spec, args.force, ui)?);
    }
    write_dotenv(cli, &record)?;
    match cli.output {
        Output::Json => print_stdout(&record.to_json()),
        Output::Human => {
            let place = match &record.pushed {
                Some(pushed) => pushed.reference.clone(),
                None => format!("{}@{}", display(&built.layout), built.digest),
            };
            print_stdout(&format!("{place}\t{}\n", built.tags.join(",")))
        }
    }
    Ok(())
}

/// The push stage.
pub fn push(
    built: &Built,
    spec: &crate::spec::image::ImageSpec,
    force: bool,
    ui: &Ui,
) -> Result<crate::oci::push::Pushed> {
    ui.section("push", &format!("Pushing image {}", built.digest), || {
        image::push(built, spec, force, ui)
    })
}

/// The image stage: `None` when the spec has no `image:` section. `complete` also downloads a
/// registry base's layers into the layout; `release_tree` is the layer when already made.
pub fn build(
    project: &Project,
    target: &Target,
    layout: &Path,
    complete: bool,
    release_tree: Option<Layer>,
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
        fetch_base_layers: complete,
        release_tree,
    };
    let title = format!(
        "Building image {} {} into {}",
        target.name,
        target.version,
        display(layout)
    );
    ui.section("image", &title, || {
        let built = image::build(&inputs, layout, ui)?;
        ui.info(&format!(
            "image {} for {} ({} layers added), tags {}",
            built.digest,
            built.platforms.join(", "),
            built.layers.len(),
            built.tags.join(", ")
        ));
        Ok(Some(built))
    })
}
