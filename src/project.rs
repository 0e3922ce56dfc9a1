//! The project a command works on: the source repository and its pipeline spec, as the flags
//! name them.

use std::path::PathBuf;

use crate::cli::ProjectArgs;
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
