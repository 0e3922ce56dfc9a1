//! A fake Nomad: jobs registered with `EnforceIndex` (refused when the `JobModifyIndex` is
//! stale), one deployment per job version that turns `successful` after a step per
//! allocation, or for a bad image `failed` (with `auto_revert`, Nomad registers the previous
//! version again and says "rolling back to job version N"). A newer registration cancels the
//! running deployment ("Cancelled due to newer version of job"). A deployment that ended
//! (failed, cancelled, successful) cannot be paused: 500 "can't pause terminal deployment",
//! as Nomad's deployment watcher answers. ACL token in `X-Nomad-Token`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::http::{Request, Server};

pub struct Version {
    pub image: String,
    pub modify_index: u64,
}

pub struct Deployment {
    pub id: String,
    pub version: u64,
    pub started: Instant,
    /// Set once it left `running`.
    pub status: Option<(&'static str, String)>,
}

pub struct State {
    pub job: String,
    pub versions: Vec<Version>,
    pub deployments: Vec<Deployment>,
    pub bad_images: Vec<String>,
    pub auto_revert: bool,
    pub step: Duration,
    pub count: u64,
    pub token: String,
    pub index: u64,
}

pub struct FakeNomad {
    pub server: Server,
    pub state: Arc<Mutex<State>>,
}

impl FakeNomad {
    pub fn start(job: &str, image: &str) -> FakeNomad {
        let state = Arc::new(Mutex::new(State {
            job: job.into(),
            versions: vec![Version {
                image: image.into(),
                modify_index: 10,
            }],
            deployments: Vec::new(),
            bad_images: Vec::new(),
            auto_revert: false,
            step: super::ms(200),
            count: 2,
            token: "nomad-secret".into(),
            index: 10,
        }));
        let shared = Arc::clone(&state);
        let server = Server::start(move |request| {
            let mut state = shared.lock().unwrap();
            state.settle();
            handle(&mut state, request)
        });
        FakeNomad { server, state }
    }

    /// Someone else registers `image` (a newer job version).
    pub fn register(&self, image: &str) {
        self.state.lock().unwrap().register(image.into());
    }

    pub fn image(&self) -> String {
        self.state
            .lock()
            .unwrap()
            .versions
            .last()
            .unwrap()
            .image
            .clone()
    }
}

impl State {
    fn register(&mut self, image: String) -> u64 {
        let now = self.versions.len() as u64;
        for d in &mut self.deployments {
            if d.status.is_none() {
                d.status = Some(("cancelled", "Cancelled due to newer version of job".into()));
            }
        }
        self.index += 1;
        self.versions.push(Version {
            image,
            modify_index: self.index,
        });
        self.deployments.push(Deployment {
            id: format!("d{now}-4e1c-9d2b-0000-000000000000"),
            version: now,
            started: Instant::now(),
            status: None,
        });
        now
    }

    fn settle(&mut self) {
        let mut revert = None;
        for d in &mut self.deployments {
            if d.status.is_some() {
                continue;
            }
            let image = &self.versions[d.version as usize].image;
            if self.bad_images.contains(image) {
                if d.started.elapsed() > self.step * 3 {
                    let previous = d.version - 1;
                    d.status = Some(if self.auto_revert {
                        revert = Some(previous);
                        ("failed", format!("Failed due to unhealthy allocations - rolling back to job version {previous}"))
                    } else {
                        ("failed", "Failed due to unhealthy allocations".into())
                    });
                }
            } else if d.started.elapsed() > self.step * self.count as u32 {
                d.status = Some(("successful", "Deployment completed successfully".into()));
            }
        }
        if let Some(version) = revert {
            let image = self.versions[version as usize].image.clone();
            self.register(image);
        }
    }

    fn job_json(&self) -> Value {
        let version = self.versions.len() as u64 - 1;
        let current = &self.versions[version as usize];
        json!({
            "ID": self.job, "Name": self.job, "Type": "service", "Version": version,
            "JobModifyIndex": current.modify_index,
            "TaskGroups": [{ "Name": "web", "Count": self.count, "Tasks": [
                { "Name": "envoy", "Driver": "docker", "Config": { "image": "envoyproxy/envoy:v1.30" } },
                { "Name": "server", "Driver": "docker", "Config": { "image": current.image, "ports": ["http"] } }
            ] }]
        })
    }

    fn deployment_json(&self, d: &Deployment) -> Value {
        let (status, description) = d
            .status
            .clone()
            .unwrap_or(("running", "Deployment is running".into()));
        let placed = ((d.started.elapsed().as_millis() / self.step.as_millis().max(1)) as u64)
            .min(self.count);
        let healthy = if self
            .bad_images
            .contains(&self.versions[d.version as usize].image)
        {
            0
        } else {
            placed
        };
        json!({ "ID": d.id, "JobID": self.job, "JobVersion": d.version, "Status": status,
                "StatusDescription": description,
                "TaskGroups": { "web": { "DesiredTotal": self.count, "PlacedAllocs": placed,
                                          "HealthyAllocs": healthy, "UnhealthyAllocs": placed - healthy } } })
    }
}

fn handle(state: &mut State, request: &Request) -> (u16, Value) {
    if request.header("x-nomad-token") != Some(state.token.as_str()) {
        return (403, json!("Permission denied"));
    }
    let job_path = format!("/v1/job/{}", state.job);
    let path = request.path.as_str();
    if !path.starts_with("/v1/job/") && !path.starts_with("/v1/deployment/") {
        return (404, json!(format!("no route {path}")));
    }
    if path.starts_with("/v1/job/") && !path.starts_with(&job_path) {
        return (404, json!("job not found"));
    }
    match (request.method.as_str(), path.trim_start_matches(&job_path)) {
        ("GET", "") => (200, state.job_json()),
        ("POST", "") => {
            let body = request.json();
            let current = state.versions.last().unwrap().modify_index;
            if body["EnforceIndex"] == true && body["JobModifyIndex"] != current {
                return (500, json!(format!("Enforcing job modify index {}: job exists with conflicting job modify index: {current}", body["JobModifyIndex"])));
            }
            let image = body["Job"]["TaskGroups"][0]["Tasks"][1]["Config"]["image"]
                .as_str()
                .unwrap()
                .to_string();
            state.register(image);
            (
                200,
                json!({ "EvalID": "e1", "JobModifyIndex": state.index, "Warnings": "" }),
            )
        }
        ("GET", "/deployments") => {
            let list: Vec<Value> = state
                .deployments
                .iter()
                .rev()
                .map(|d| state.deployment_json(d))
                .collect();
            (200, json!(list))
        }
        ("GET", "/allocations") => {
            let list: Vec<Value> = state
                .deployments
                .iter()
                .filter(|d| state.bad_images.contains(&state.versions[d.version as usize].image))
                .map(|d| json!({ "ID": format!("a{}-5b6c7d8e", d.version), "JobVersion": d.version,
                    "ClientStatus": "failed", "TaskStates": { "server": { "State": "dead", "Failed": true,
                    "Events": [
                        { "Type": "Started", "DisplayMessage": "Task started by client" },
                        { "Type": "Terminated", "DisplayMessage": "Exit Code: 1, Exit Message: \"config not found\"" }
                    ] } } }))
                .collect();
            (200, json!(list))
        }
        ("POST", "/revert") => {
            let body = request.json();
            let latest = state.versions.len() as u64 - 1;
            if body["EnforcePriorVersion"] != latest {
                return (
                    500,
                    json!(format!(
                        "current job has version {latest}; enforcing version {}",
                        body["EnforcePriorVersion"]
                    )),
                );
            }
            let image = state.versions[body["JobVersion"].as_u64().unwrap() as usize]
                .image
                .clone();
            state.register(image);
            (
                200,
                json!({ "EvalID": "e2", "JobModifyIndex": state.index }),
            )
        }
        ("POST", p) if p.starts_with("/v1/deployment/pause/") => {
            let id = p.trim_start_matches("/v1/deployment/pause/");
            match state.deployments.iter_mut().find(|d| d.id == id) {
                // Nomad's deploymentwatcher refuses to pause a deployment that has ended.
                Some(d) if d.status.as_ref().is_some_and(|(s, _)| *s != "paused") => {
                    (500, json!("can't pause terminal deployment"))
                }
                Some(d) => {
                    d.status = Some(("paused", "Deployment is paused".into()));
                    (200, json!({ "EvalID": "e3" }))
                }
                None => (404, json!("deployment not found")),
            }
        }
        _ => (404, json!(format!("no route {path}"))),
    }
}
