//! A fake Nomad, following its HTTP API and the deployment watcher and reconciler
//! (nomad/deploymentwatcher, scheduler/reconcile.go, structs.go's status descriptions):
//!
//! - Jobs are registered with `EnforceIndex` (refused when the `JobModifyIndex` is stale).
//!   Each registration is a new job version.
//! - A service job with an `update` block (`max_parallel` > 0) gets one deployment per job
//!   version. It turns `successful` after a step per allocation; that version becomes
//!   `Stable`. For a bad image it turns `failed`.
//! - With `auto_revert`, Nomad registers the latest *stable* version again and says "- rolling
//!   back to job version N". When the failing job already has that spec, it says "- not
//!   rolling back to stable job version N as current job has same specification" and does not.
//! - A newer registration cancels the running deployment ("Cancelled due to newer version of
//!   job").
//! - With `canary` and no `auto_promote`, the canaries are placed and the deployment stays
//!   `running`, "requires manual promotion", until `/v1/deployment/promote`. Then the rest are
//!   placed.
//! - A deployment that ended (failed, cancelled, successful) cannot be paused: 500 "can't
//!   pause terminal deployment".
//! - A batch job, or one without an `update` block, gets no deployment at all. Its
//!   allocations are all there is: pending, then running (batch: complete), or failed for a
//!   bad image. The allocations of older versions stop once the new ones run.
//! - ACL token in `X-Nomad-Token`: an unknown one is 403 "ACL token not found", one whose policy
//!   does not allow the request 403 "Permission denied" (Nomad has no 401).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::http::{Request, Server};

pub struct Version {
    pub image: String,
    pub modify_index: u64,
    pub registered: Instant,
    pub stable: bool,
}

pub struct Deployment {
    pub id: String,
    pub version: u64,
    pub started: Instant,
    /// Set once it left `running`.
    pub status: Option<(&'static str, String)>,
    /// When its canaries were promoted.
    pub promoted: Option<Instant>,
}

pub struct State {
    pub job: String,
    /// `service` or `batch`.
    pub kind: &'static str,
    pub versions: Vec<Version>,
    pub deployments: Vec<Deployment>,
    pub bad_images: Vec<String>,
    pub auto_revert: bool,
    /// The job has an `update` block with `max_parallel` > 0 (so a service job gets deployments).
    pub update_block: bool,
    /// `update { canary = N }` without `auto_promote`.
    pub canaries: u64,
    pub step: Duration,
    pub count: u64,
    pub token: String,
    /// A known token whose policy may only read.
    pub read_only_token: Option<String>,
    pub index: u64,
}

pub struct FakeNomad {
    pub server: Server,
    pub state: Arc<Mutex<State>>,
}

impl FakeNomad {
    /// A service job running `image` as its only, stable version.
    pub fn start(job: &str, image: &str) -> FakeNomad {
        FakeNomad::with_history(job, &[(image, true)])
    }

    /// A service job whose versions so far ran these images, each stable or not.
    pub fn with_history(job: &str, history: &[(&str, bool)]) -> FakeNomad {
        let long_ago = Instant::now() - Duration::from_secs(3600);
        let state = Arc::new(Mutex::new(State {
            job: job.into(),
            kind: "service",
            versions: history
                .iter()
                .enumerate()
                .map(|(n, (image, stable))| Version {
                    image: image.to_string(),
                    modify_index: 10 + n as u64,
                    registered: long_ago,
                    stable: *stable,
                })
                .collect(),
            deployments: Vec::new(),
            bad_images: Vec::new(),
            auto_revert: false,
            update_block: true,
            canaries: 0,
            step: super::ms(200),
            count: 2,
            token: "nomad-secret".into(),
            read_only_token: None,
            index: 10 + history.len() as u64,
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

    /// Whether any deployment's canaries were promoted.
    pub fn promoted(&self) -> bool {
        let state = self.state.lock().unwrap();
        state.deployments.iter().any(|d| d.promoted.is_some())
    }
}

impl State {
    fn gets_deployments(&self) -> bool {
        self.kind == "service" && self.update_block
    }

    fn is_bad(&self, version: u64) -> bool {
        self.bad_images
            .contains(&self.versions[version as usize].image)
    }

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
            registered: Instant::now(),
            stable: false,
        });
        if self.gets_deployments() {
            self.deployments.push(Deployment {
                id: format!("d{now}-4e1c-9d2b-0000-000000000000"),
                version: now,
                started: Instant::now(),
                status: None,
                promoted: None,
            });
        }
        now
    }

    /// Allocations placed for a deployment so far: canaries first, the rest after promotion.
    fn placed(&self, d: &Deployment) -> u64 {
        let steps =
            |since: Instant| (since.elapsed().as_millis() / self.step.as_millis().max(1)) as u64;
        match (self.canaries, d.promoted) {
            (0, _) => steps(d.started).min(self.count),
            (canaries, None) => steps(d.started).min(canaries),
            (canaries, Some(at)) => (canaries + steps(at)).min(self.count),
        }
    }

    fn settle(&mut self) {
        let mut revert = None;
        let mut stable = Vec::new();
        for index in 0..self.deployments.len() {
            let d = &self.deployments[index];
            if d.status.is_some() {
                continue;
            }
            let outcome = if self.is_bad(d.version) {
                (d.started.elapsed() > self.step * 3).then(|| self.failure(d.version, &mut revert))
            } else if self.placed(d) >= self.count && (self.canaries == 0 || d.promoted.is_some()) {
                stable.push(d.version);
                Some((
                    "successful",
                    "Deployment completed successfully".to_string(),
                ))
            } else {
                None
            };
            if outcome.is_some() {
                self.deployments[index].status = outcome;
            }
        }
        for version in stable {
            self.versions[version as usize].stable = true;
        }
        if let Some(version) = revert {
            let image = self.versions[version as usize].image.clone();
            self.register(image);
        }
    }

    /// A failed deployment's status; with `auto_revert`, which stable version comes back.
    fn failure(&self, version: u64, revert: &mut Option<u64>) -> (&'static str, String) {
        let base = "Failed due to unhealthy allocations";
        if !self.auto_revert {
            return ("failed", base.into());
        }
        let Some(target) = (0..version)
            .rev()
            .find(|v| self.versions[*v as usize].stable)
        else {
            return (
                "failed",
                format!("{base} - no stable job version to auto revert to"),
            );
        };
        if self.versions[target as usize].image == self.versions[version as usize].image {
            return (
                "failed",
                format!("{base} - not rolling back to stable job version {target} as current job has same specification"),
            );
        }
        *revert = Some(target);
        (
            "failed",
            format!("{base} - rolling back to job version {target}"),
        )
    }

    fn job_json(&self) -> Value {
        let version = self.versions.len() as u64 - 1;
        let current = &self.versions[version as usize];
        let update = if self.update_block {
            json!({ "MaxParallel": 1, "Canary": self.canaries, "AutoPromote": false,
                    "AutoRevert": self.auto_revert })
        } else {
            Value::Null
        };
        json!({
            "ID": self.job, "Name": self.job, "Type": self.kind, "Version": version,
            "Stable": current.stable, "JobModifyIndex": current.modify_index,
            "TaskGroups": [{ "Name": "web", "Count": self.count, "Update": update, "Tasks": [
                { "Name": "envoy", "Driver": "docker", "Config": { "image": "envoyproxy/envoy:v1.30" } },
                { "Name": "server", "Driver": "docker", "Config": { "image": current.image, "ports": ["http"] } }
            ] }]
        })
    }

    fn deployment_json(&self, d: &Deployment) -> Value {
        let waiting = self.canaries > 0 && d.promoted.is_none();
        let (status, description) = d.status.clone().unwrap_or(if waiting {
            (
                "running",
                "Deployment is running but requires manual promotion".into(),
            )
        } else {
            ("running", "Deployment is running".into())
        });
        let placed = self.placed(d);
        let healthy = if self.is_bad(d.version) { 0 } else { placed };
        let mut group = json!({ "DesiredTotal": self.count, "PlacedAllocs": placed,
                                "HealthyAllocs": healthy, "UnhealthyAllocs": placed - healthy });
        if self.canaries > 0 {
            group["DesiredCanaries"] = json!(self.canaries);
            group["PlacedCanaries"] = json!((0..placed.min(self.canaries))
                .map(|n| format!("c{n}"))
                .collect::<Vec<_>>());
            group["Promoted"] = json!(d.promoted.is_some());
            group["AutoPromote"] = json!(false);
        }
        json!({ "ID": d.id, "JobID": self.job, "JobVersion": d.version, "Status": status,
                "StatusDescription": description, "TaskGroups": { "web": group } })
    }

    /// Allocations as the scheduler leaves them: each version's, placed a step apart; a bad
    /// image's fail; an older version's stop once the newest version's all run.
    fn allocations_json(&self) -> Vec<Value> {
        let latest = self.versions.len() - 1;
        let steps =
            |since: Instant| (since.elapsed().as_millis() / self.step.as_millis().max(1)) as u64;
        let newest_all_up =
            !self.is_bad(latest as u64) && steps(self.versions[latest].registered) >= self.count;
        let mut list = Vec::new();
        for (v, version) in self.versions.iter().enumerate() {
            let bad = self.is_bad(v as u64);
            let placed = steps(version.registered).min(self.count);
            for n in 0..self.count {
                let (client, desired) = if v < latest {
                    if bad && n < placed {
                        ("failed", "stop")
                    } else if newest_all_up || bad {
                        ("complete", "stop")
                    } else {
                        ("running", "run")
                    }
                } else if n >= placed {
                    ("pending", "run")
                } else if bad {
                    ("failed", "run")
                } else if self.kind == "batch" {
                    ("complete", "run")
                } else {
                    ("running", "run")
                };
                let mut alloc = json!({ "ID": format!("a{v}{n}-5b6c7d8e"), "JobVersion": v,
                    "ClientStatus": client, "DesiredStatus": desired, "TaskStates": {} });
                if client == "failed" {
                    alloc["TaskStates"] = json!({ "server": { "State": "dead", "Failed": true,
                        "Events": [
                            { "Type": "Started", "DisplayMessage": "Task started by client" },
                            { "Type": "Terminated", "DisplayMessage": "Exit Code: 1, Exit Message: \"config not found\"" }
                        ] } });
                }
                list.push(alloc);
            }
        }
        list
    }
}

fn handle(state: &mut State, request: &Request) -> (u16, Value) {
    let token = request.header("x-nomad-token");
    let read_only = token.is_some() && token == state.read_only_token.as_deref();
    if token != Some(state.token.as_str()) && !read_only {
        return (403, json!("ACL token not found"));
    }
    if read_only && request.method != "GET" {
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
        ("GET", "/allocations") => (200, json!(state.allocations_json())),
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
        ("POST", p) if p.starts_with("/v1/deployment/promote/") => {
            let id = p.trim_start_matches("/v1/deployment/promote/");
            let all = request.json()["All"] == true;
            match state.deployments.iter_mut().find(|d| d.id == id) {
                Some(d) if d.status.is_some() => (500, json!("can't promote terminal deployment")),
                Some(d) if all => {
                    d.promoted = Some(Instant::now());
                    (200, json!({ "EvalID": "e4" }))
                }
                Some(_) => (400, json!("must promote all groups or name them")),
                None => (404, json!("deployment not found")),
            }
        }
        _ => (404, json!(format!("no route {path}"))),
    }
}
