//! Rolling an environment's services to a new image on the engine that runs them. One trait
//! each engine implements (read, submit, observe, explain, roll back, pause) and one rollout
//! state machine (`rollout.rs`) that drives any of them, so "done", "failed", "timed out",
//! "superseded" and "rolled back" mean the same thing on every engine.

mod kubeconfig;
pub mod kubernetes;
pub mod marathon;
pub mod nomad;
pub mod rollout;
pub mod swarm;
mod watch;

use serde::Serialize;
use serde_json::Value;

use crate::env::Env;
use crate::error::Result;
use crate::net::api::Api;
use crate::oci::reference::Reference;
use crate::spec::orchestrator::{EngineKind, OnFailure, OrchestratorSpec, WorkloadKind};

/// One object to update: a Swarm service, Marathon app, Kubernetes deployment or Nomad job.
#[derive(Clone, Debug)]
pub struct Object {
    pub name: String,
    /// The container (Kubernetes) or task (Nomad) to change; `None`: the one running the
    /// released repository.
    pub container: Option<String>,
    /// `registry/path` of the released image, to find that container.
    pub repository: String,
    /// Kubernetes: what kind of workload it is.
    pub kind: WorkloadKind,
}

/// What the engine runs for an object before we change it.
#[derive(Clone, Debug)]
pub struct Live {
    pub image: String,
    /// The engine's own record of the object (its spec and version), for compare-and-set.
    pub raw: Value,
}

/// A change the engine accepted, to watch: the image it moves to and the engine's mark for
/// this change (Swarm service version, Marathon deployment id, Kubernetes generation, Nomad
/// job version).
#[derive(Clone, Debug)]
pub struct Submitted {
    pub image: String,
    pub mark: String,
    /// Marathon: the app version our deployment creates.
    pub version: Option<String>,
}

/// Replica counts, as far as the engine tells them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Replicas {
    pub desired: u64,
    pub updated: u64,
    pub ready: u64,
}

/// What one look at the engine shows about a submitted change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// The engine has not yet taken the change into account (stale status).
    Pending,
    Progressing,
    Succeeded,
    Failed(String),
    /// Stopped where it stands, for this reason: by the engine's own failure action (Swarm's
    /// `FailureAction: pause`), by `on_failure: pause`, or by someone (`kubectl rollout
    /// pause`). It goes on only when someone resumes it.
    Paused(String),
    /// Canaries are placed and healthy, and the engine waits for someone to promote them
    /// (Nomad's "requires manual promotion"), for this reason.
    NeedsPromotion(String),
    /// The engine itself is rolling back (Swarm `failure_action: rollback`, Nomad
    /// `auto_revert`), for this reason.
    RollingBack(String),
    /// The engine finished rolling back on its own.
    RolledBack(String),
    /// Someone else changed the object since: it now runs this image.
    Superseded(String),
    /// The engine took the change but will not roll it out by itself (a StatefulSet or
    /// DaemonSet with `updateStrategy: OnDelete`): there is nothing to watch, for this reason.
    NotWatchable(String),
}

pub struct Observation {
    pub phase: Phase,
    pub replicas: Option<Replicas>,
    /// A progress note worth a line (Marathon's deployment step, the last task failure).
    pub note: Option<String>,
}

pub trait Engine {
    /// The client, for naming the engine and endpoint.
    fn api(&self) -> &crate::net::api::Api;
    /// The object's current state; an unknown object is an input error naming it.
    fn live(&mut self, object: &Object) -> Result<Live>;
    /// Asks the engine to move the object to `image`, with compare-and-set against `live`.
    fn submit(
        &mut self,
        object: &Object,
        live: &Live,
        image: &str,
        on_failure: OnFailure,
    ) -> Result<Submitted>;
    fn observe(&mut self, object: &Object, submitted: &Submitted) -> Result<Observation>;
    /// Why the change is failing, in the engine's words, most telling first.
    fn explain(&mut self, object: &Object, submitted: &Submitted) -> Result<Vec<String>>;
    /// The change that put the live spec in place (an earlier run's, or anyone's), so that a
    /// re-run can look at how its rollout stands instead of trusting the spec alone.
    fn current(&mut self, object: &Object, live: &Live) -> Result<Submitted>;
    /// Starts going back to what ran before (`before`, when this run knows it); the returned
    /// change is watched. `Ok(None)`: the engine cannot go back without knowing what ran.
    fn roll_back(
        &mut self,
        object: &Object,
        submitted: &Submitted,
        before: Option<&Live>,
    ) -> Result<Option<Submitted>>;
    /// Stops the change where it stands; `Ok(false)` when the engine cannot.
    fn pause(&mut self, object: &Object, submitted: &Submitted) -> Result<bool>;
    /// Promotes healthy canaries when the spec asks for it; `Ok(false)`: left to a person.
    fn promote(&mut self, _object: &Object, _submitted: &Submitted) -> Result<bool> {
        Ok(false)
    }
}

/// Connects to the engine the spec names.
pub fn connect(spec: &OrchestratorSpec, env: &Env) -> Result<Box<dyn Engine>> {
    Ok(match spec.kind {
        EngineKind::Swarm => Box::new(swarm::Swarm::connect(spec, env)?),
        EngineKind::Marathon => Box::new(marathon::Marathon::connect(spec, env)?),
        EngineKind::Kubernetes => Box::new(kubernetes::Kubernetes::connect(spec, env)?),
        EngineKind::Nomad => Box::new(nomad::Nomad::connect(spec, env)?),
    })
}

/// Two references name the same image: equal digests when both have one, else equal text.
/// Engines store what they were given (`repo:tag@sha256:…`) or resolve it, so the digest is
/// what counts.
pub fn same_image(a: &str, b: &str) -> bool {
    let digest = |r: &str| Reference::parse(r).ok().and_then(|r| r.digest);
    match (digest(a), digest(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// The image names `repository` (`registry/path`), whatever its tag or digest.
pub fn names_repository(image: &str, repository: &str) -> bool {
    Reference::parse(image)
        .map(|r| format!("{}/{}", r.registry, r.repository) == repository)
        .unwrap_or(false)
}

/// The value of a required environment variable named in the spec's credentials.
pub fn credential(variable: &crate::spec::Text, engine: &str, env: &Env) -> Result<String> {
    env.lookup(variable.as_str()).ok_or_else(|| {
        crate::error::Error::input(format!(
            "environment variable {variable} ({engine} credentials) is not set"
        ))
    })
}

/// An API client for an engine: each request ends within the rollout's timeout (at most the
/// usual two minutes), so a server that trickles its answers cannot stretch the watch.
pub fn api(engine: &'static str, base: &str, tls: crate::net::Tls, spec: &OrchestratorSpec) -> Api {
    let api = Api::http(engine, base, tls);
    match spec.timeout() {
        Ok(timeout) => api.with_deadline(timeout),
        Err(_) => api,
    }
}

/// The CA certificates the spec names, if any.
pub fn ca_roots(spec: &OrchestratorSpec) -> Result<Option<Vec<ureq::tls::Certificate<'static>>>> {
    spec.ca_file
        .as_ref()
        .map(|path| crate::net::read_ca_file(std::path::Path::new(path.as_str())))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_compare_by_digest() {
        let d = format!("sha256:{}", "a".repeat(64));
        assert!(same_image(
            &format!("r.example/app:1.0@{d}"),
            &format!("r.example/app@{d}")
        ));
        assert!(!same_image("r.example/app:1.0", "r.example/app:1.1"));
        assert!(names_repository(
            &format!("r.example/team/app:1.0@{d}"),
            "r.example/team/app"
        ));
        assert!(!names_repository(
            "r.example/team/other:1",
            "r.example/team/app"
        ));
    }
}
