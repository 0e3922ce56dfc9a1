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
    let supervisor = supervisor_file(&project)?;
    match cli.output {
        Output::Json => print_stdout(&format!(
            "{}\n",
            serde_json::json!({ "file": display(file), "valid": true, "name": name, "supervisor": supervisor })
        )),
        Output::Human => {
            let mut text = format!(
                "{}: valid (release name `{name}`, version scheme {})\n",
                display(file),
                project.spec.version.scheme.name()
            );
            if let Some(path) = &supervisor {
                text.push_str(&format!(
                    "{path}: valid supervisor config (from the working tree)\n"
                ));
            }
            print_stdout(&text)
        }
    }
    Ok(())
}

/// The spec's supervisor file, checked as ContainerPilot reads it at start-up, from the
/// working tree (a release reads it at the tag). Its path when there is one.
fn supervisor_file(project: &crate::project::Project) -> Result<Option<String>> {
    let Some(file) = project
        .spec
        .image
        .as_ref()
        .and_then(|i| i.supervisor.as_ref())
        .and_then(|s| s.file.as_ref())
    else {
        return Ok(None);
    };
    let path = project.source.root().join(file.as_str());
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io("read", &path, e))?;
    crate::supervisor::Config::from_file_text(file.as_str(), &text)?;
    Ok(Some(file.value.clone()))
}
