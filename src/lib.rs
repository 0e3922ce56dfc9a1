//! tagpilot: from a git tag to a running release. See README.md and docs/.

pub mod archive;
pub mod cli;
pub mod commands;
pub mod compress;
pub mod digest;
pub mod env;
pub mod error;
pub mod fsutil;
pub mod gitlab;
pub mod gitops;
pub mod gzip;
pub mod image;
pub mod mode;
pub mod net;
pub mod oci;
pub mod orchestrator;
pub mod plan;
pub mod project;
pub mod publish;
pub mod record;
pub mod signing;
pub mod source;
pub mod spec;
pub mod stages;
pub mod stop;
pub mod supervisor;
pub mod tarball;
pub mod target;
pub mod template;
#[cfg(test)]
mod testutil;
pub mod ui;
pub mod version;
