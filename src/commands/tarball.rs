//! `tagpilot tarball`: the tarball stage alone, for the tag.

use crate::cli::{Cli, Output, TarballArgs};
use crate::env::Env;
use crate::error::Result;
use crate::fsutil::display;
use crate::record::Record;
use crate::stages::tarball::build;
use crate::tarball::Existing;
use crate::target::{self, Request};
use crate::ui::{print_stdout, Ui};

use super::write_dotenv;

pub fn run(cli: &Cli, args: &TarballArgs, env: &Env, ui: &Ui) -> Result<()> {
    let project = args.project.open(env)?;
    let request = Request {
        tag: args.tag.tag.clone(),
        snapshot: None,
    };
    let target = target::resolve(&project, &request)?;
    let built = build(&project, &target, &args.tag.out, Existing::Refuse, ui, None)?;
    let mut record = Record::new(&target, false);
    record.set_tarball(&built);
    write_dotenv(cli, env, &record)?;
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
