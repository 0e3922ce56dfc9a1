//! `tagpilot image`: the image stage, then the push stage (or only the image, into a layout).

use crate::cli::{Cli, ImageArgs, Output};
use crate::env::Env;
use crate::error::{Error, Result};
use crate::fsutil::display;
use crate::mode::Mode;
use crate::record::Record;
use crate::signing::SigningKey;
use crate::stages::image::build;
use crate::stages::push::push;
use crate::target::{self, Request};
use crate::ui::{print_stdout, Ui};

use super::write_dotenv;

pub fn run(cli: &Cli, args: &ImageArgs, env: &Env, ui: &Ui) -> Result<()> {
    let project = args.project.open(env)?;
    let request = Request {
        tag: args.tag.clone(),
        snapshot: None,
    };
    let target = target::resolve(&project, &request)?;
    let layout = args
        .oci_layout
        .clone()
        .unwrap_or_else(|| args.out.join("image"));
    // An explicit layout is the product: it gets the base's layers too, to stand on its own.
    let complete = args.oci_layout.is_some();
    let built =
        build(&project, &target, &layout, complete, Default::default(), ui)?.ok_or_else(|| {
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
        // As in a release: the key is opened before the push, the signatures made after it.
        let key = spec
            .sign
            .as_ref()
            .map(|sign| SigningKey::load(sign, env))
            .transpose()?;
        let mut pushed = push(&built, spec, args.force, Mode::Apply, env, ui)?;
        if let Some(key) = &key {
            pushed.signatures = crate::signing::sign_pushed(&built, spec, env, key)?;
        }
        record.pushed = Some(pushed);
    }
    write_dotenv(cli, env, &record)?;
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
