//! The project a command works on: the source repository and its pipeline spec, as the flags
//! name them.

use std::path::{Path, PathBuf};

use crate::env::Env;
use crate::error::{Error, Result};
use crate::source::Source;
use crate::spec::deploy::DeploySpec;
use crate::spec::{Spec, DEFAULT_FILE};

/// The repository and its spec, as the flags name them.
pub struct Project {
    pub source: Source,
    pub spec: Spec,
    /// The spec file read, if any (none: all defaults).
    pub spec_file: Option<PathBuf>,
    /// The environment tagpilot started with.
    pub env: Env,
}

impl Project {
    /// The repository containing `repo` (default: the current folder) and the spec at
    /// `pipeline` (default: `tagpilot.yaml` at its root, if there is one).
    pub fn open(repo: Option<&Path>, pipeline: Option<&Path>, env: &Env) -> Result<Project> {
        let source = Source::open(repo.unwrap_or(Path::new(".")))?;
        let spec_file = match pipeline {
            Some(file) => Some(file.to_path_buf()),
            None => Some(source.root().join(DEFAULT_FILE)).filter(|f| f.is_file()),
        };
        let lookup = |name: &str| env.raw(name);
        let spec = match &spec_file {
            Some(file) => Spec::load(file, &lookup)?,
            None => Spec::default(),
        };
        Ok(Project {
            source,
            spec,
            spec_file,
            env: env.clone(),
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
