//! `tagpilot validate`: load the spec as a release would, report all problems or a summary.

use crate::cli::{Cli, Output, ValidateArgs};
use crate::env::Env;
use crate::error::{Error, Result};
use crate::target::release_name;
use crate::ui::print_stdout;

use crate::fsutil::display;

pub fn run(cli: &Cli, args: &ValidateArgs, env: &Env) -> Result<()> {
    let project = args.project.open(env)?;
    let Some(file) = &project.spec_file else {
        return Err(Error::input(format!(
            "no pipeline spec: {} has no tagpilot.yaml and no --pipeline was given",
            display(project.source.root())
        )));
    };
    let name = release_name(&project.source, &project.spec);
    let supervisor = supervisor_file(&project, args.tag.as_deref())?;
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
                let from = match &args.tag {
                    Some(tag) => format!("at {tag}"),
                    None => "from the working tree".to_string(),
                };
                text.push_str(&format!("{path}: valid supervisor config ({from})\n"));
            }
            print_stdout(&text)
        }
    }
    Ok(())
}

/// The spec's supervisor file, checked as ContainerPilot reads it at start-up, at `tag` (as a
/// release reads it) or from the working tree. Its path when there is one.
fn supervisor_file(project: &crate::project::Project, tag: Option<&str>) -> Result<Option<String>> {
    let Some(file) = project
        .spec
        .image
        .as_ref()
        .and_then(|i| i.supervisor.as_ref())
        .and_then(|s| s.file.as_ref())
    else {
        return Ok(None);
    };
    let bytes = match tag {
        Some(tag) => {
            let commit = project.source.tag_commit(tag)?;
            project.source.read_file(&commit, file.as_str())?
        }
        None => {
            let path = project.source.root().join(file.as_str());
            std::fs::read(&path).map_err(|e| Error::io("read", &path, e))?
        }
    };
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::input(format!("{file}: the supervisor config is not UTF-8 text")))?;
    let env = project
        .spec
        .image
        .as_ref()
        .map(|i| i.plain_env())
        .unwrap_or_default();
    crate::supervisor::Config::check_file(file.as_str(), &text, &env)?.show_warnings();
    Ok(Some(file.value.clone()))
}
