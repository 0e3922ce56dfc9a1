//! One module per subcommand. Each only sequences stages and prints; the work is below.

pub mod deploy;
pub mod history;
pub mod image;
pub mod release;
pub mod rollback;
pub mod schema;
pub mod tarball;
pub mod validate;
pub mod versions;

use std::path::{Path, PathBuf};

use crate::cli::{Cli, Command, ProjectArgs};
use crate::error::{Error, Result};
use crate::record::Record;
use crate::source::Source;
use crate::spec::deploy::DeploySpec;
use crate::spec::{Spec, DEFAULT_FILE};
use crate::{gitlab, ui::Ui};

pub fn run(cli: Cli) -> Result<()> {
    let ui = Ui::from_env();
    match &cli.command {
        Command::Release(args) => release::run(&cli, args, &ui),
        Command::Tarball(args) => tarball::run(&cli, args, &ui),
        Command::Image(args) => image::run(&cli, args, &ui),
        Command::Deploy(args) => deploy::run(&cli, args, &ui),
        Command::Rollback(args) => rollback::run(&cli, args, &ui),
        Command::History(args) => history::run(&cli, args),
        Command::Versions(args) => versions::run(&cli, args),
        Command::Validate(args) => validate::run(&cli, args),
        Command::Schema => schema::run(),
    }
}

/// The repository and its spec, as the flags name them.
pub struct Project {
    pub source: Source,
    pub spec: Spec,
    /// The spec file read, if any (none: all defaults).
    pub spec_file: Option<PathBuf>,
}

impl Project {
    pub fn open(args: &ProjectArgs) -> Result<Project> {
        let dir = args.repo.clone().unwrap_or_else(|| PathBuf::from("."));
        let source = Source::open(&dir)?;
        let spec_file = match &args.pipeline {
            Some(file) => Some(file.clone()),
            None => Some(source.root().join(DEFAULT_FILE)).filter(|f| f.is_file()),
        };
        let lookup = |name: &str| std::env::var(name).ok();
        let spec = match &spec_file {
            Some(file) => Spec::load(file, &lookup)?,
            None => Spec::default(),
        };
        Ok(Project {
            source,
            spec,
            spec_file,
        })
    }
}

impl Project {
    /// The spec's `deploy` entry for `environment`; the error lists the ones there are.
    pub fn environment(&self, environment: &str) -> Result<&DeploySpec> {
        let deploy = &self.spec.deploy;
        deploy
            .iter()
            .find(|d| d.environment.as_str() == environment)
            .ok_or_else(|| {
                let known: Vec<&str> = deploy.iter().map(|d| d.environment.as_str()).collect();
                Error::input(format!(
                    "no environment `{environment}` in the spec's deploy section; it has: {}",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ))
            })
    }
}

/// Where the dotenv report goes: `--dotenv`, or `tagpilot.env` when in GitLab CI.
pub fn dotenv_path(cli: &Cli) -> Option<PathBuf> {
    cli.dotenv
        .clone()
        .or_else(|| gitlab::in_ci().then(|| PathBuf::from("tagpilot.env")))
}

/// Writes the dotenv report, if one is wanted.
pub fn write_dotenv(cli: &Cli, record: &Record) -> Result<()> {
    match dotenv_path(cli) {
        Some(path) => gitlab::update_dotenv(&path, &record.dotenv()),
        None => Ok(()),
    }
}

pub fn display(path: &Path) -> String {
    path.display().to_string()
}

/// Refuses an output folder that exists as something other than a folder.
pub fn check_out_dir(out: &Path) -> Result<()> {
    if out.exists() && !out.is_dir() {
        return Err(Error::input(format!(
            "output folder {} exists and is not a folder",
            out.display()
        ))
        .with_hint("Choose another with --out DIR"));
    }
    Ok(())
}
