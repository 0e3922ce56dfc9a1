//! `tagpilot versions`: release tags newest first, as TAG<TAB>VERSION<TAB>release|pre.

use serde::Serialize;

use crate::cli::{Cli, Output, VersionsArgs};
use crate::env::Env;
use crate::error::Result;
use crate::target::tag_reader;
use crate::ui::print_stdout;

#[derive(Serialize)]
struct Row<'a> {
    tag: &'a str,
    version: String,
    scheme: &'static str,
    prerelease: bool,
}

pub fn run(cli: &Cli, args: &VersionsArgs, env: &Env) -> Result<()> {
    let project = args.project.open(env)?;
    let mut reader = tag_reader(&project.spec);
    if let Some(scheme) = args.scheme {
        reader.scheme = scheme;
    }
    if let Some(prefix) = &args.tag_prefix {
        reader.prefix = prefix.clone();
    }
    let tags = project.source.tag_names()?;
    let (versions, skipped) = reader.read_all(tags.iter().map(String::as_str));
    if !skipped.is_empty() {
        let examples: Vec<&str> = skipped.iter().take(5).copied().collect();
        eprintln!(
            "skipped {} tag(s) that fit no version scheme ({}): {}{}",
            skipped.len(),
            reader.scheme.name(),
            examples.join(", "),
            if skipped.len() > examples.len() {
                ", ..."
            } else {
                ""
            }
        );
    }
    let mut out = String::new();
    match cli.output {
        Output::Human => {
            for t in &versions {
                let kind = if t.version.is_prerelease() {
                    "pre"
                } else {
                    "release"
                };
                out.push_str(&format!("{}\t{}\t{kind}\n", t.tag, t.version));
            }
        }
        Output::Json => {
            let rows: Vec<Row> = versions
                .iter()
                .map(|t| Row {
                    tag: &t.tag,
                    version: t.version.to_string(),
                    scheme: t.version.scheme().name(),
                    prerelease: t.version.is_prerelease(),
                })
                .collect();
            out = serde_json::to_string_pretty(&rows).expect("rows are JSON") + "\n";
        }
    }
    print_stdout(&out);
    Ok(())
}
