//! Docker Swarm services through the Engine API. An update posts the whole service spec with
//! `?version=N` (the engine refuses it if anyone wrote since we read: "update out of
//! sequence"). Done is `UpdateStatus.State == completed` *and* the desired tasks running the new
//! image; `paused` and `rollback_*` are failures. Tagpilot's `on_failure` becomes the
//! service's `UpdateConfig.FailureAction`, so Swarm itself pauses or rolls back the moment its
//! monitor sees a task fail; a timeout rolls back with `?rollback=previous` (one level).

use std::path::PathBuf;

use serde_json::{json, Value};

use crate::env::Env;
use crate::error::{Error, Result};
use crate::net::{self, percent_encode, Tls};
use crate::oci::auth;
use crate::oci::reference::Reference;
use crate::spec::orchestrator::{OnFailure, OrchestratorSpec};

use super::{same_image, Engine, Live, Object, Observation, Phase, Replicas, Submitted};
use crate::net::api::Api;

/// Compare-and-set attempts when other writers keep changing the service.
const CAS_ATTEMPTS: u32 = 5;

pub struct Swarm {
    api: Api,
    /// For the registry login sent along with an update (`X-Registry-Auth`).
    env: Env,
}

impl Swarm {
    pub fn connect(spec: &OrchestratorSpec, env: &Env) -> Result<Swarm> {
        let endpoint = spec
            .endpoint
            .as_ref()
            .map(|t| t.value.clone())
            .or_else(|| env.lookup("DOCKER_HOST"))
            .unwrap_or_else(|| "unix:///var/run/docker.sock".to_string());
        let api = if let Some(path) = endpoint.strip_prefix("unix://") {
            Api::unix("Docker Swarm", PathBuf::from(path))
        } else if let Some(address) = endpoint.strip_prefix("tcp://") {
            let verify = env.get("DOCKER_TLS_VERIFY").is_some();
            if verify {
                crate::orchestrator::api(
                    "Docker Swarm",
                    &format!("https://{address}"),
                    docker_tls(spec, env)?,
                    spec,
                )
            } else {
                crate::orchestrator::api(
                    "Docker Swarm",
                    &format!("http://{address}"),
                    Tls::default(),
                    spec,
                )
            }
        } else if endpoint.starts_with("http://") || endpoint.starts_with("https://") {
            let tls = Tls {
                roots: super::ca_roots(spec)?,
                ..Default::default()
            };
            crate::orchestrator::api("Docker Swarm", &endpoint, tls, spec)
        } else {
            return Err(Error::input(format!(
                "Docker Swarm endpoint `{endpoint}` is neither unix:///path nor tcp://host:port"
            )));
        };
        Ok(Swarm {
            api,
            env: env.clone(),
        })
    }

    fn service(&self, name: &str) -> Result<Value> {
        self.api
            .get_object(&format!("/services/{name}"), &format!("service `{name}`"))
    }

    /// The service's tasks that should be running, or all of them.
    fn tasks(&self, name: &str, running_only: bool) -> Result<Vec<Value>> {
        let mut filters = json!({ "service": [name] });
        if running_only {
            filters["desired-state"] = json!(["running"]);
        }
        let path = format!("/tasks?filters={}", percent_encode(&filters.to_string()));
        let tasks = self
            .api
            .get_json(&path, &format!("list the tasks of `{name}`"))?;
        Ok(tasks.as_array().cloned().unwrap_or_default())
    }

    /// "container unhealthy: <what its last check said>", when the task's container is on
    /// this engine and Docker found it unhealthy (its `Healthcheck`, such as the supervisor's).
    fn container_health(&self, status: &Value) -> Option<String> {
        let id = status["ContainerStatus"]["ContainerID"].as_str()?;
        let container = self
            .api
            .get_json(
                &format!("/containers/{id}/json"),
                "inspect a task's container",
            )
            .ok()?;
        let health = &container["State"]["Health"];
        if health["Status"] != "unhealthy" {
            return None;
        }
        let last = health["Log"]
            .as_array()
            .and_then(|log| log.last())
            .and_then(|entry| entry["Output"].as_str())
            .map(|output| output.trim().replace('\n', "; "))
            .unwrap_or_default();
        Some(format!("container unhealthy: {last}"))
    }

    /// Posts a spec with compare-and-set on `version`; `rollback` asks for the previous spec.
    fn update(&self, name: &str, version: u64, spec: &Value, rollback: bool) -> Result<Reply> {
        let query = if rollback { "&rollback=previous" } else { "" };
        let image = spec["TaskTemplate"]["ContainerSpec"]["Image"]
            .as_str()
            .unwrap_or_default();
        // Nodes pull with the login sent here; without one, Swarm keeps the login the service
        // already has (a spec read back never shows it).
        let auth = registry_auth(image, &self.env);
        let headers: Vec<(&str, &str)> = auth
            .iter()
            .map(|value| ("X-Registry-Auth", value.as_str()))
            .collect();
        let path = format!("/services/{name}/update?version={version}{query}");
        let what = format!("update service `{name}`");
        let reply = self.api.send_with_headers(
            "POST",
            &path,
            Some(("application/json", spec)),
            &headers,
            &what,
        )?;
        if reply.ok() {
            return Ok(Reply::Accepted);
        }
        if reply.reason().contains("out of sequence") {
            return Ok(Reply::Raced);
        }
        self.api.expect(&reply, &what)?;
        unreachable!("expect returns an error for a non-2xx reply")
    }
}

/// Docker's `X-Registry-Auth` for the image's registry: base64url of the login as JSON, when
/// tagpilot has a login for it (the same places a push looks).
fn registry_auth(image: &str, env: &Env) -> Option<String> {
    use base64::Engine;
    let registry = Reference::parse(image).ok()?.registry;
    let credential = auth::find(&registry, &|name| env.lookup(name))?;
    let login = json!({
        "username": credential.user,
        "password": credential.secret,
        "serveraddress": registry,
    });
    Some(base64::engine::general_purpose::URL_SAFE.encode(login.to_string()))
}

enum Reply {
    Accepted,
    /// Someone else wrote the service since we read its version.
    Raced,
}

fn docker_tls(spec: &OrchestratorSpec, env: &Env) -> Result<Tls> {
    let folder = env
        .get("DOCKER_CERT_PATH")
        .map(PathBuf::from)
        .or_else(|| env.get("HOME").map(|h| PathBuf::from(h).join(".docker")))
        .ok_or_else(|| Error::input("DOCKER_TLS_VERIFY is set but DOCKER_CERT_PATH is not"))?;
    let read = |file: &str| {
        let path = folder.join(file);
        std::fs::read(&path).map_err(|e| Error::io("read Docker TLS file", &path, e))
    };
    let roots = match super::ca_roots(spec)? {
        Some(roots) => roots,
        None => net::certificates(
            &read("ca.pem")?,
            &folder.join("ca.pem").display().to_string(),
        )?,
    };
    Ok(Tls {
        roots: Some(roots),
        client: Some(net::client_cert(
            &read("cert.pem")?,
            &read("key.pem")?,
            &folder.display().to_string(),
        )?),
        skip_verify: false,
    })
}

fn image_of(service: &Value) -> String {
    service["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn version_of(service: &Value) -> u64 {
    service["Version"]["Index"].as_u64().unwrap_or(0)
}

impl Engine for Swarm {
    fn api(&self) -> &Api {
        &self.api
    }

    fn live(&mut self, object: &Object) -> Result<Live> {
        let service = self.service(&object.name)?;
        Ok(Live {
            image: image_of(&service),
            raw: service,
        })
    }

    fn submit(
        &mut self,
        object: &Object,
        live: &Live,
        image: &str,
        on_failure: OnFailure,
    ) -> Result<Submitted> {
        let mut service = live.raw.clone();
        for attempt in 1..=CAS_ATTEMPTS {
            let mut spec = service["Spec"].clone();
            spec["TaskTemplate"]["ContainerSpec"]["Image"] = json!(image);
            let action = match on_failure {
                OnFailure::Rollback => Some("rollback"),
                OnFailure::Pause => Some("pause"),
                OnFailure::Fail => None,
            };
            if let Some(action) = action {
                if !spec["UpdateConfig"].is_object() {
                    spec["UpdateConfig"] = json!({});
                }
                spec["UpdateConfig"]["FailureAction"] = json!(action);
            }
            match self.update(&object.name, version_of(&service), &spec, false)? {
                Reply::Accepted => {
                    let now = self.service(&object.name)?;
                    return Ok(Submitted {
                        image: image.to_string(),
                        mark: format!("service version {}", version_of(&now)),
                        version: None,
                    });
                }
                Reply::Raced if attempt < CAS_ATTEMPTS => {
                    service = self.service(&object.name)?;
                }
                Reply::Raced => {}
            }
        }
        Err(Error::failed(format!(
            "Docker Swarm service `{}` kept changing under us ({CAS_ATTEMPTS} updates out of sequence); nothing was overwritten",
            object.name
        )))
    }

    fn observe(&mut self, object: &Object, submitted: &Submitted) -> Result<Observation> {
        let service = self.service(&object.name)?;
        let status = &service["UpdateStatus"];
        let state = status["State"].as_str().unwrap_or("");
        let message = status["Message"].as_str().unwrap_or("").to_string();
        let tasks = self.tasks(&object.name, true)?;
        // While Swarm rolls back, count the tasks of the image it goes back to.
        let counted = if state.starts_with("rollback") {
            image_of(&service)
        } else {
            submitted.image.clone()
        };
        let desired = service["Spec"]["Mode"]["Replicated"]["Replicas"]
            .as_u64()
            .unwrap_or(tasks.len() as u64);
        let ours = |t: &&Value| {
            same_image(
                t["Spec"]["ContainerSpec"]["Image"].as_str().unwrap_or(""),
                &counted,
            )
        };
        let updated = tasks.iter().filter(ours).count() as u64;
        let ready = tasks
            .iter()
            .filter(ours)
            .filter(|t| t["Status"]["State"] == "running")
            .count() as u64;
        let replicas = Some(Replicas {
            desired,
            updated,
            ready,
        });
        let current = image_of(&service);
        let phase = match state {
            "rollback_started" => Phase::RollingBack(message),
            "rollback_completed" => Phase::RolledBack(message),
            "rollback_paused" => Phase::Failed(format!("rollback paused: {message}")),
            _ if !same_image(&current, &submitted.image) => Phase::Superseded(current),
            // Swarm paused the update itself (FailureAction pause, its default): the new spec
            // stays, and only `docker service update` (or `--rollback`) moves it on.
            "paused" => Phase::Paused(format!(
                "{message}; `docker service update --rollback {}` goes back, `docker service update {}` retries",
                object.name, object.name
            )),
            "completed" | "" if ready >= desired => Phase::Succeeded,
            "updating" | "completed" | "" => Phase::Progressing,
            _ => Phase::Pending,
        };
        Ok(Observation {
            phase,
            replicas,
            note: None,
        })
    }

    fn explain(&mut self, object: &Object, submitted: &Submitted) -> Result<Vec<String>> {
        let mut tasks = self.tasks(&object.name, false)?;
        tasks.sort_by(|a, b| {
            b["Status"]["Timestamp"]
                .as_str()
                .cmp(&a["Status"]["Timestamp"].as_str())
        });
        let mut lines: Vec<String> = Vec::new();
        for task in tasks.iter().filter(|t| {
            same_image(
                t["Spec"]["ContainerSpec"]["Image"].as_str().unwrap_or(""),
                &submitted.image,
            )
        }) {
            let status = &task["Status"];
            let state = status["State"].as_str().unwrap_or("");
            // A service task that completes ended early: Swarm stopped it for being
            // unhealthy, or its process exited 0.
            if !matches!(state, "failed" | "rejected" | "orphaned" | "complete") {
                continue;
            }
            let health = self.container_health(status);
            let why = health
                .as_deref()
                .or(status["Err"].as_str().or(status["Message"].as_str()))
                .unwrap_or("no message");
            let exit = status["ContainerStatus"]["ExitCode"]
                .as_i64()
                .map(|code| format!(", exit code {code}"))
                .unwrap_or_default();
            let line = format!("task {state}: {why}{exit}");
            if !lines.contains(&line) {
                lines.push(line);
            }
        }
        lines.truncate(5);
        Ok(lines)
    }

    fn current(&mut self, _object: &Object, live: &Live) -> Result<Submitted> {
        Ok(Submitted {
            image: live.image.clone(),
            mark: format!("service version {}", version_of(&live.raw)),
            version: None,
        })
    }

    fn roll_back(
        &mut self,
        object: &Object,
        _submitted: &Submitted,
        before: Option<&Live>,
    ) -> Result<Option<Submitted>> {
        // Swarm keeps the previous spec itself: `?rollback=previous` needs no `before`.
        let image = before
            .map(|b| b.image.clone())
            .unwrap_or_else(|| "the previous spec".to_string());
        for _ in 0..CAS_ATTEMPTS {
            let service = self.service(&object.name)?;
            if let Reply::Accepted =
                self.update(&object.name, version_of(&service), &service["Spec"], true)?
            {
                return Ok(Some(Submitted {
                    image,
                    mark: "rollback to the previous spec".to_string(),
                    version: None,
                }));
            }
        }
        Err(Error::failed(format!(
            "Docker Swarm service `{}` kept changing under us; the rollback was not sent",
            object.name
        )))
    }

    fn pause(&mut self, _object: &Object, _submitted: &Submitted) -> Result<bool> {
        // The Engine API has no call to pause an update in flight; FailureAction=pause (set
        // at submit) is how Swarm pauses, on a task failure.
        Ok(false)
    }
}
