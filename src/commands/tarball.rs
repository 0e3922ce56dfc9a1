//! `tagpilot tarball`: the tarball stage alone, for the tag.

use crate::cli::{Cli, Output, TarballArgs};
use crate::error::Result;
use crate::fsutil::display;
use crate::project::Project;
use crate::record::Record;
use crate::stages::tarball::build;
use crate::tarball::Existing;
use crate::target::{self, Request};
use crate::ui::{print_stdout, Ui};

use super::write_dotenv;

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
