//! `tagpilot history`: what an environment ran, newest first, from its deployment repository.

use crate::cli::{Cli, HistoryArgs, Output};
use crate::env::Env;
use crate::error::Result;
use crate::gitops::history::{self, Origin};
use crate::image::push_repository_name;
use crate::ui::print_stdout;

pub fn run(cli: &Cli, args: &HistoryArgs, env: &Env) -> Result<()> {
    let project = args.project.open(env)?;
    let spec = project.environment(&args.env)?;
    let repository = project
        .spec
        .image
        .as_ref()
        .and_then(|image| push_repository_name(image, env));
    let entries = history::read(spec, repository.as_deref(), env)?;
    match cli.output {
        Output::Json => print_stdout(&format!(
            "{}\n",
            serde_json::to_string_pretty(&entries).expect("entries are JSON")
        )),
        Output::Human if entries.is_empty() => print_stdout(&format!(
            "{} ({} {}) has no deploy recorded by tagpilot\n",
            args.env, spec.repo, spec.branch
        )),
        Output::Human => {
            let mut text = String::new();
            for entry in &entries {
                text.push_str(&format!(
                    "{}\t{}\t{}\t{}\t{}\t{}{}\n",
                    entry.version.as_deref().unwrap_or("-"),
                    entry.time,
                    entry.author,
                    entry.digest.as_deref().unwrap_or(&entry.image),
                    entry.pipeline.as_deref().unwrap_or("-"),
                    &entry.commit[..12.min(entry.commit.len())],
                    match (&entry.rollback_of, &entry.reason, entry.origin) {
                        (Some(of), Some(reason), _) => format!("\trollback of {of}: {reason}"),
                        (Some(of), None, _) => format!("\trollback of {of}"),
                        (None, _, Origin::Tagpilot) => String::new(),
                        (None, _, origin) => format!("\t{origin}"),
                    }
                ));
            }
            print_stdout(&text);
        }
    }
    Ok(())
}
