//! Nomad jobs through the HTTP API. An update registers the job with `EnforceIndex` and the
//! `JobModifyIndex` we read (refused if anyone registered since). Done is the deployment for
//! our job version `successful`; `failed` is a failure; `paused` waits for someone to resume
//! it; `cancelled` means a newer version replaced ours. With `auto_revert`, Nomad registers
//! the last *stable* version again and names it in the description ("- rolling back to job
//! version N"; "- not rolling back to stable job version N as current job has same
//! specification" when the failing job already is that spec). Canaries without
//! `auto_promote` keep the deployment `running` until someone promotes them: tagpilot does
//! when `promote_canaries` says so and they are all healthy, else it stops there and says so.
//! Jobs that never get a deployment (batch jobs, no `update` with `max_parallel` > 0, system
//! jobs on older Nomad) are watched through their allocations instead. Reasons come from the
//! allocations' task events. Rollback is `/v1/job/:id/revert` to the version that ran before,
//! guarded by `EnforcePriorVersion`.

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
    /// `promote_canaries` in the spec.
    promote: bool,
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
            Some(variable) => Some((
                super::credential(variable, "Nomad", env)?,
                format!("{variable} (orchestrator.credentials.token)"),
            )),
            None => env
                .lookup("NOMAD_TOKEN")
                .map(|token| (token, "NOMAD_TOKEN".to_string())),
        };
        if let Some((token, from)) = token {
            api = api.with_credential("X-Nomad-Token", token, from);
        }
        let namespace = spec
            .namespace
            .as_ref()
            .map(|n| n.value.clone())
            .or_else(|| env.lookup("NOMAD_NAMESPACE"));
        let query = namespace
            .map(|n| format!("?namespace={n}"))
            .unwrap_or_default();
        Ok(Nomad {
            api,
            query,
            promote: spec.promote_canaries,
        })
    }

    fn allocations(&self, id: &str) -> Result<Vec<Value>> {
        let list = self.api.get_json(
            &format!("/v1/job/{id}/allocations{}", self.query),
            &format!("list the allocations of `{id}`"),
        )?;
        Ok(list.as_array().cloned().unwrap_or_default())
    }

    /// A job without a deployment: done when its allocations of our version run (batch: have
    /// completed) and none of another version still runs; failed when one of ours failed.
    fn allocation_phase(&self, job: &Value, ours: u64, why: &str) -> Result<Observation> {
        let id = job["ID"].as_str().unwrap_or_default();
        let allocations = self.allocations(id)?;
        let batch = matches!(job["Type"].as_str(), Some("batch" | "sysbatch"));
        let (mine, others): (Vec<&Value>, Vec<&Value>) = allocations
            .iter()
            .partition(|a| a["JobVersion"].as_u64() == Some(ours));
        let client = |a: &Value, status: &str| a["ClientStatus"] == status;
        let running = mine.iter().filter(|a| client(a, "running")).count() as u64;
        let complete = mine.iter().filter(|a| client(a, "complete")).count() as u64;
        let old_running = others
            .iter()
            .filter(|a| client(a, "running") && a["DesiredStatus"] == "run")
            .count();
        // A system job runs one allocation per eligible node: what was placed is the count.
        let desired = match job["Type"].as_str() {
            Some("system" | "sysbatch") => mine.len() as u64,
            _ => job["TaskGroups"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|g| g["Count"].as_u64().unwrap_or(1))
                .sum(),
        };
        let done_count = if batch { complete } else { running };
        let phase = if let Some(failed) = mine.iter().find(|a| client(a, "failed")) {
            let alloc: String = failed["ID"]
                .as_str()
                .unwrap_or("?")
                .chars()
                .take(8)
                .collect();
            Phase::Failed(format!(
                "allocation {alloc} of job version {ours} failed ({why}, so Nomad judges no deployment)"
            ))
        } else if desired > 0 && done_count >= desired && old_running == 0 {
            Phase::Succeeded
        } else {
            Phase::Progressing
        };
        Ok(Observation {
            phase,
            replicas: Some(Replicas {
                desired,
                updated: mine.len() as u64,
                ready: done_count,
            }),
            note: Some(format!("{why}: watching its allocations")),
        })
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

/// Why Nomad gives this job no deployment, if it does not: batch jobs never have one, nor
/// jobs without an `update` block with `max_parallel` > 0; older Nomad gives system jobs
/// none either (a newer one's deployment is used when it comes).
fn no_deployment(job: &Value) -> Option<&'static str> {
    match job["Type"].as_str() {
        Some("batch" | "sysbatch") => return Some("a batch job"),
        Some("system") => return Some("a system job"),
        _ => {}
    }
    let rolling = job["TaskGroups"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|g| g["Update"]["MaxParallel"].as_u64().unwrap_or(0) > 0);
    (!rolling).then_some("no update block with max_parallel > 0")
}

/// The version `auto_revert` goes back to, from "… - rolling back to job version N" (not
/// "… - not rolling back to stable job version N …", which means it does not).
fn revert_target(description: &str) -> Option<u64> {
    let (_, rest) = description.split_once(" - rolling back to job version ")?;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
}

/// Canaries waiting for a promotion nobody automated: every group with canaries to promote
/// has them all healthy. The reason names the deployment and how to promote it.
fn awaiting_promotion(deployment: &Value) -> Option<String> {
    let groups: Vec<&Value> = deployment["TaskGroups"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.values())
        .filter(|g| {
            g["DesiredCanaries"].as_u64().unwrap_or(0) > 0
                && g["Promoted"] != true
                && g["AutoPromote"] != true
        })
        .collect();
    if groups.is_empty() {
        return None;
    }
    let healthy = groups.iter().all(|g| {
        g["HealthyAllocs"].as_u64().unwrap_or(0) >= g["DesiredCanaries"].as_u64().unwrap_or(0)
    });
    let canaries: u64 = groups
        .iter()
        .map(|g| g["DesiredCanaries"].as_u64().unwrap_or(0))
        .sum();
    let id = deployment["ID"].as_str().unwrap_or("?");
    healthy.then(|| {
        format!(
            "{canaries} canary allocation(s) healthy; deployment {id} requires manual promotion: `nomad deployment promote {id}`, or set orchestrator.promote_canaries"
        )
    })
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
        let latest = job["Version"].as_u64().unwrap_or(0);
        let newer = latest > ours;
        let Some(deployment) = deployment else {
            let phase = if newer && !same_image(&image, &submitted.image) {
                Phase::Superseded(image)
            } else if let Some(why) = no_deployment(&job) {
                return self.allocation_phase(&job, ours, why);
            } else {
                Phase::Pending
            };
            return Ok(Observation {
                phase,
                replicas: None,
                note: None,
            });
        };
        let description = deployment["StatusDescription"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let id = deployment["ID"].as_str().unwrap_or("?");
        let phase = match deployment["Status"].as_str().unwrap_or("") {
            "successful" => Phase::Succeeded,
            "failed" => match revert_target(&description) {
                // auto_revert registered the stable version again, as a newer version: done
                // when that one's deployment is.
                Some(_) => match self.deployment_of(&object.name, latest)? {
                    Some(d) if newer && d["Status"] == "successful" => {
                        Phase::RolledBack(description)
                    }
                    Some(d) if newer && d["Status"] == "failed" => Phase::Failed(format!(
                        "{description}; the revert's own deployment failed too: {}",
                        d["StatusDescription"].as_str().unwrap_or("")
                    )),
                    _ => Phase::RollingBack(description),
                },
                None => Phase::Failed(description),
            },
            "paused" => Phase::Paused(format!(
                "{description}: `nomad deployment resume {id}` lets it go on, and a re-run watches it"
            )),
            "cancelled" if newer => Phase::Superseded(image),
            "cancelled" => Phase::Failed(description),
            _ if newer && !same_image(&image, &submitted.image) => Phase::Superseded(image),
            _ => match awaiting_promotion(&deployment) {
                Some(why) => Phase::NeedsPromotion(why),
                None => Phase::Progressing,
            },
        };
        Ok(Observation {
            phase,
            replicas: Some(counts(&deployment)),
            note: None,
        })
    }

    fn current(&mut self, _object: &Object, live: &Live) -> Result<Submitted> {
        Ok(Submitted {
            image: live.image.clone(),
            mark: format!("job version {}", live.raw["Version"].as_u64().unwrap_or(0)),
            version: None,
        })
    }

    fn promote(&mut self, object: &Object, submitted: &Submitted) -> Result<bool> {
        if !self.promote {
            return Ok(false);
        }
        let Some(deployment) = self.deployment_of(&object.name, job_version(submitted))? else {
            return Ok(false);
        };
        let id = deployment["ID"].as_str().unwrap_or_default();
        let body = json!({ "DeploymentID": id, "All": true });
        self.api.send_ok(
            "POST",
            &format!("/v1/deployment/promote/{id}{}", self.query),
            Some(("application/json", &body)),
            &format!(
                "promote the canaries of deployment {id} of `{}`",
                object.name
            ),
        )?;
        Ok(true)
    }

    fn explain(&mut self, object: &Object, submitted: &Submitted) -> Result<Vec<String>> {
        let ours = job_version(submitted);
        let mut lines = Vec::new();
        for alloc in &self.allocations(&object.name)? {
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
        before: Option<&Live>,
    ) -> Result<Option<Submitted>> {
        let Some(before) = before else {
            return Ok(None);
        };
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
        Ok(Some(next_version(job_version(submitted), &before.image)))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_revert_target_is_read_only_where_nomad_rolls_back() {
        let base = "Failed due to unhealthy allocations";
        assert_eq!(
            revert_target(&format!("{base} - rolling back to job version 3")),
            Some(3)
        );
        assert_eq!(
            revert_target(&format!(
                "{base} - not rolling back to stable job version 2 as current job has same specification"
            )),
            None
        );
        assert_eq!(
            revert_target(&format!("{base} - no stable job version to auto revert to")),
            None
        );
    }

    #[test]
    fn jobs_without_deployments_are_told_apart() {
        let rolling =
            json!({ "Type": "service", "TaskGroups": [{ "Update": { "MaxParallel": 1 } }] });
        assert_eq!(no_deployment(&rolling), None);
        let none = json!({ "Type": "service", "TaskGroups": [{ "Update": { "MaxParallel": 0 } }] });
        assert!(no_deployment(&none).is_some());
        assert!(no_deployment(&json!({ "Type": "batch", "TaskGroups": [] })).is_some());
        assert!(no_deployment(&json!({ "Type": "system", "TaskGroups": [] })).is_some());
    }
}
