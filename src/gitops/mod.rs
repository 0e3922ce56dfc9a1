//! The deployment repository (GitOps): recording each release in the files an orchestrator
//! reads.

pub mod deploy;
pub mod edit;
pub mod history;
mod message;
pub mod repo;
