//! Nomad jobs through the HTTP API. An update registers the job with `EnforceIndex` and the
//! `JobModifyIndex` we read (refused if anyone registered since). Done is the deployment for
//! our job version `successful`; `failed` is a failure (with `auto_revert`, Nomad rolls back
//! itself and says so in the description); `cancelled` means a newer version replaced ours.
//! Reasons come from the allocations' task events. Rollback is `/v1/job/:id/revert` to the
//! version that ran before, guarded by `EnforcePriorVersion`.

use serde_json::{json, Value};

use crate::env::Env;
use crate::error::{Error, Result};
use crate::net::api::Hints;
use crate::net::Tls;
use crate::spec::orchestrator::{OnFailure, OrchestratorSpec};

use super::{
    names_repository, same_image, Engine, Live, Object, Observation, Phase, Replicas, Submitted,
};
use crate::net::api::Api;

const CAS_ATTEMPTS: u32 = 5;

pub struct Nomad {
    api: Api,
    /// `?namespace=…` or empty.
    query: String,
}

impl Nomad {
    pub fn connect(spec: &OrchestratorSpec, env: &Env) -> Result<Nomad> {
        let address = spec
            .endpoint
            .as_ref()
            .map(|t| t.value.clone())
            .or_else(|| env.lookup("NOMAD_ADDR"))
            .unwrap_or_else(|| "http://127.0.0.1:4646".to_string());
        let tls = Tls {
            roots: super::ca_roots(spec)?,
            ..Default::default()
        };
        // Nomad never answers 401: a missing or unknown ACL token is a 403 too.
        let mut api = crate::orchestrator::api("Nomad", &address, tls, spec).with_hints(Hints {
            credential: "Check NOMAD_TOKEN or the variable in orchestrator.credentials.token",
            tls: "For a private CA set orchestrator.ca_file",
            forbidden: "Nomad answers 403 for a missing or unknown ACL token as well as for one whose policy lacks submit-job on this namespace: check NOMAD_TOKEN (or credentials.token) and its policy",
        });
        let token = match &spec.credentials.token {
            Some(variable) => Some(super::credential(variable, "Nomad", env)?),
            None => env.lookup("NOMAD_TOKEN"),
        };
        if let Some(token) = token {
            api = api.with_credential("X-Nomad-Token", token);
        }
        let namespace = spec
            .namespace
            .as_ref()
            .map(|n| n.value.clone())
            .or_else(|| env.lookup("NOMAD_NAMESPACE"));
        let query = namespace
            .map(|n| format!("?namespace={n}"))
            .unwrap_or_default();
        Ok(Nomad { api, query })
    }

    fn job(&self, id: &str) -> Result<Value> {
        self.api.get_object(
            &format!("/v1/job/{id}{}", self.query),
            &format!("job `{id}`"),
        )
    }

    fn deployments(&self, id: &str) -> Result<Vec<Value>> {
        let list = self.api.get_json(
            &format!("/v1/job/{id}/deployments{}", self.query),
            &format!("list the deployments of `{id}`"),
        )?;
        Ok(list.as_array().cloned().unwrap_or_default())
    }

    fn deployment_of(&self, id: &str, version: u64) -> Result<Option<Value>> {
        Ok(self
            .deployments(id)?
            .into_iter()
            .find(|d| d["JobVersion"].as_u64() == Some(version)))
    }
}

/// The change a write made: with `EnforceIndex` (or `EnforcePriorVersion`) nobody registered
/// between our read and our write, so our version is the one after the version we read. (The
/// job's latest version may already be someone else's by the time we could read it.)
fn next_version(read_version: u64, image: &str) -> Submitted {
    Submitted {
        image: image.to_string(),
        mark: format!("job version {}", read_version + 1),
        version: None,
    }
}

fn job_version(submitted: &Submitted) -> u64 {
    submitted
        .mark
        .trim_start_matches("job version ")
        .parse()
        .unwrap_or(0)
}

/// The task to change: the named one, else the one running the released repository.
fn task_of(job: &Value, object: &Object) -> Result<(usize, usize)> {
    let mut all = Vec::new();
    for (g, group) in job["TaskGroups"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        for (t, task) in group["Tasks"].as_array().into_iter().flatten().enumerate() {
            let name = task["Name"].as_str().unwrap_or("");
            let image = task["Config"]["image"].as_str().unwrap_or("");
            let hit = match &object.container {
                Some(wanted) => name == wanted,
                None => names_repository(image, &object.repository),
            };
            if hit {
                return Ok((g, t));
            }
            all.push(name.to_string());
        }
    }
    Err(Error::input(format!(
        "Nomad job `{}`: {}; its tasks: {}",
        object.name,
        match &object.container {
            Some(wanted) => format!("no task `{wanted}`"),
            None => format!(
                "no task runs {}; name one with `container:`",
                object.repository
            ),
        },
        all.join(", ")
    )))
}

fn counts(deployment: &Value) -> Replicas {
    let mut replicas = Replicas::default();
    for group in deployment["TaskGroups"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.values())
    {
        replicas.desired += group["DesiredTotal"].as_u64().unwrap_or(0);
        replicas.updated += group["PlacedAllocs"].as_u64().unwrap_or(0);
        replicas.ready += group["HealthyAllocs"].as_u64().unwrap_or(0);
    }
    replicas
}

impl Engine for Nomad {
    fn api(&self) -> &Api {
        &self.api
    }

    fn live(&mut self, object: &Object) -> Result<Live> {
        let job = self.job(&object.name)?;
        let (group, task) = task_of(&job, object)?;
        Ok(Live {
            image: job["TaskGroups"][group]["Tasks"][task]["Config"]["image"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            raw: job,
        })
    }

    fn submit(
        &mut self,
        object: &Object,
        live: &Live,
        image: &str,
        _on_failure: OnFailure,
    ) -> Result<Submitted> {
        let what = format!("register job `{}`", object.name);
        let mut job = live.raw.clone();
        for _ in 0..CAS_ATTEMPTS {
            let (group, task) = task_of(&job, object)?;
            let index = job["JobModifyIndex"].clone();
            job["TaskGroups"][group]["Tasks"][task]["Config"]["image"] = json!(image);
            let body = json!({ "Job": job, "EnforceIndex": true, "JobModifyIndex": index });
            let reply = self.api.send(
                "POST",
                &format!("/v1/job/{}{}", object.name, self.query),
                Some(("application/json", &body)),
                &what,
            )?;
            if !reply.ok() && reply.reason().contains("job modify index") {
                job = self.job(&object.name)?;
                continue;
            }
            self.api.expect(&reply, &what)?;
            return Ok(next_version(job["Version"].as_u64().unwrap_or(0), image));
        }
        Err(Error::failed(format!(
            "Nomad job `{}` kept changing under us ({CAS_ATTEMPTS} index conflicts); nothing was overwritten",
            object.name
        )))
    }

    fn observe(&mut self, object: &Object, submitted: &Submitted) -> Result<Observation> {
        let ours = job_version(submitted);
        // The deployment first, then the job: a deployment cancelled by a newer version is
        // then always seen with that version (the other order can pair a stale job with it).
        let deployment = self.deployment_of(&object.name, ours)?;
        let job = self.job(&object.name)?;
        let (group, task) = task_of(&job, object)?;
        let image = job["TaskGroups"][group]["Tasks"][task]["Config"]["image"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let Some(deployment) = deployment else {
            if job["Version"].as_u64().unwrap_or(0) > ours && !same_image(&image, &submitted.image)
            {
                return Ok(Observation {
                    phase: Phase::Superseded(image),
                    replicas: None,
                    note: None,
                });
            }
            return Ok(Observation {
                phase: Phase::Pending,
                replicas: None,
                note: None,
            });
        };
        let description = deployment["StatusDescription"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let newer = job["Version"].as_u64().unwrap_or(0) > ours;
        let phase = match deployment["Status"].as_str().unwrap_or("") {
            "successful" => Phase::Succeeded,
            "failed" if description.contains("rolling back") => {
                // auto_revert registered the old job as a newer version: done when that runs.
                let revert = job["Version"].as_u64().unwrap_or(0);
                match self.deployment_of(&object.name, revert)? {
                    Some(d) if newer && d["Status"] == "successful" => {
                        Phase::RolledBack(description)
                    }
                    _ => Phase::RollingBack(description),
                }
            }
            "failed" => Phase::Failed(description),
            "cancelled" if newer => Phase::Superseded(image),
            "cancelled" => Phase::Failed(description),
            _ if newer && !same_image(&image, &submitted.image) => Phase::Superseded(image),
            _ => Phase::Progressing,
        };
        Ok(Observation {
            phase,
            replicas: Some(counts(&deployment)),
            note: None,
        })
    }

    fn explain(&mut self, object: &Object, submitted: &Submitted) -> Result<Vec<String>> {
        let ours = job_version(submitted);
        let allocations = self.api.get_json(
            &format!("/v1/job/{}/allocations{}", object.name, self.query),
            &format!("list the allocations of `{}`", object.name),
        )?;
        let mut lines = Vec::new();
        for alloc in allocations.as_array().into_iter().flatten() {
            if alloc["JobVersion"].as_u64() != Some(ours) {
                continue;
            }
            let id: String = alloc["ID"]
                .as_str()
                .unwrap_or("?")
                .chars()
                .take(8)
                .collect();
            for (task, state) in alloc["TaskStates"].as_object().into_iter().flatten() {
                let events = state["Events"].as_array().cloned().unwrap_or_default();
                for event in events.iter().rev().take(2).rev() {
                    let message = event["DisplayMessage"].as_str().unwrap_or("");
                    if message.is_empty() {
                        continue;
                    }
                    lines.push(format!(
                        "alloc {id} task {task}: {}: {message}",
                        event["Type"].as_str().unwrap_or("?")
                    ));
                }
            }
        }
        lines.dedup();
        lines.truncate(8);
        Ok(lines)
    }

    fn roll_back(
        &mut self,
        object: &Object,
        submitted: &Submitted,
        before: &Live,
    ) -> Result<Submitted> {
        let what = format!("revert job `{}`", object.name);
        let body = json!({
            "JobID": object.name,
            "JobVersion": before.raw["Version"],
            "EnforcePriorVersion": job_version(submitted),
        });
        self.api.send_ok(
            "POST",
            &format!("/v1/job/{}/revert{}", object.name, self.query),
            Some(("application/json", &body)),
            &what,
        )?;
        Ok(next_version(job_version(submitted), &before.image))
    }

    fn pause(&mut self, object: &Object, submitted: &Submitted) -> Result<bool> {
        let Some(deployment) = self.deployment_of(&object.name, job_version(submitted))? else {
            return Ok(false);
        };
        let id = deployment["ID"].as_str().unwrap_or_default();
        let what = format!("pause deployment {id} of `{}`", object.name);
        let body = json!({ "DeploymentID": id, "Pause": true });
        let reply = self.api.send(
            "POST",
            &format!("/v1/deployment/pause/{id}{}", self.query),
            Some(("application/json", &body)),
            &what,
        )?;
        // A failed or cancelled deployment has ended: there is nothing left to pause, and the
        // rollout ends as failed with the deployment's own reason.
        if reply.status == 500 && reply.reason().contains("terminal deployment") {
            return Ok(false);
        }
        self.api.expect(&reply, &what)?;
        Ok(true)
    }
}
