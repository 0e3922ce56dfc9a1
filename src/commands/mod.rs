//! One module per subcommand. Each only sequences stages and prints; the work is below.

pub mod deploy;
pub mod history;
pub mod image;
pub mod release;
pub mod rollback;
pub mod schema;
pub mod tarball;
pub mod validate;
pub mod verify;
pub mod versions;

use std::path::PathBuf;

use crate::cli::{Cli, Command};
use crate::env::Env;
use crate::error::Result;
use crate::record::Record;
use crate::{gitlab, ui::Ui};

pub fn run(cli: Cli, env: &Env) -> Result<()> {
    let ui = Ui::of(env);
    match &cli.command {
        Command::Release(args) => release::run(&cli, args, env, &ui),
        Command::Tarball(args) => tarball::run(&cli, args, env, &ui),
        Command::Image(args) => image::run(&cli, args, env, &ui),
        Command::Deploy(args) => deploy::run(&cli, args, env, &ui),
        Command::Rollback(args) => rollback::run(&cli, args, env, &ui),
        Command::History(args) => history::run(&cli, args, env),
        Command::Versions(args) => versions::run(&cli, args, env),
        Command::Verify(args) => verify::run(&cli, args, env, &ui),
        Command::Validate(args) => validate::run(&cli, args, env),
        Command::Schema => schema::run(),
    }
}

/// Where the dotenv report goes: `--dotenv`, or `tagpilot.env` when in GitLab CI.
pub fn dotenv_path(cli: &Cli, env: &Env) -> Option<PathBuf> {
    cli.dotenv
        .clone()
        .or_else(|| env.in_gitlab_ci().then(|| PathBuf::from("tagpilot.env")))
}

/// Writes the dotenv report, if one is wanted.
pub fn write_dotenv(cli: &Cli, env: &Env, record: &Record) -> Result<()> {
    match dotenv_path(cli, env) {
        Some(path) => gitlab::update_dotenv(&path, &record.dotenv()),
        None => Ok(()),
    }
}
