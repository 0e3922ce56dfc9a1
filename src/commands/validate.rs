//! `tagpilot validate`: load the spec as a release would, report all problems or a summary.

use crate::cli::{Cli, Output, ProjectArgs};
use crate::env::Env;
use crate::error::{Error, Result};
use crate::target::release_name;
use crate::ui::print_stdout;

use crate::fsutil::display;

pub fn run(cli: &Cli, args: &ProjectArgs, env: &Env) -> Result<()> {
    let project = args.open(env)?;
    let Some(file) = &project.spec_file else {
        return Err(Error::input(format!(
            "no pipeline spec: {} has no tagpilot.yaml and no --pipeline was given",
            display(project.source.root())
        )));
    };
    let name = release_name(&project.source, &project.spec);
    match cli.output {
        Output::Json => print_stdout(&format!(
            "{}\n",
            serde_json::json!({ "file": display(file), "valid": true, "name": name })
        )),
        Output::Human => print_stdout(&format!(
            "{}: valid (release name `{name}`, version scheme {})\n",
            display(file),
            project.spec.version.scheme.name()
        )),
    }
    Ok(())
}
