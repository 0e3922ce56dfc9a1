//! A fake Marathon: apps with a Docker container, `PUT /v2/apps/{id}` answering a deployment id
//! and a new app version (409 while another deployment locks the app), deployments that take
//! a step per instance, a bad image whose deployment never finishes (Marathon keeps retrying
//! with backoff; `lastTaskFailure` and the launch queue say why), and `DELETE
//! /v2/deployments/{id}` that rolls back (or with `force=true` just stops).
//!
//! As Marathon's REST API has it (docs/rest-api, AppInfo): during a deployment the new
//! config's tasks start while the old ones still run, and `tasksRunning`/`tasksHealthy` count
//! both; `embed=app.tasks` lists each task with the app `version` it was launched with and its
//! `healthCheckResults`. A scale changes `version` but not `versionInfo.lastConfigChangeAt`.
//! An app may have no health checks (its tasks then carry no results).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::http::{Request, Server};

pub struct App {
    pub image: String,
    pub instances: u64,
    pub version: String,
    /// `versionInfo.lastConfigChangeAt`: moves with a config change only.
    pub config_version: String,
    pub health_checks: bool,
    /// Versions of the app config, for `{"version": ...}` puts.
    pub versions: BTreeMap<String, String>,
}

pub struct Deployment {
    pub id: String,
    pub app: String,
    pub started: Instant,
    /// Another party's deployment that locks the app for this long.
    pub foreign_for: Option<Duration>,
}

pub struct State {
    pub apps: BTreeMap<String, App>,
    pub deployments: Vec<Deployment>,
    pub bad_images: Vec<String>,
    pub step: Duration,
    pub counter: u64,
    pub locked_answers: u32,
    /// Marathon's `--max_running_deployments`: past it a change is refused with 403.
    pub max_running_deployments: Option<usize>,
}

pub struct FakeMarathon {
    pub server: Server,
    pub state: Arc<Mutex<State>>,
}

impl FakeMarathon {
    pub fn start(apps: &[(&str, &str)]) -> FakeMarathon {
        let state = Arc::new(Mutex::new(State {
            apps: apps
                .iter()
                .map(|(id, image)| {
                    let version = "2026-11-01T00:00:00.000Z".to_string();
                    let app = App {
                        image: image.to_string(),
                        instances: 2,
                        version: version.clone(),
                        config_version: version.clone(),
                        health_checks: true,
                        versions: [(version, image.to_string())].into(),
                    };
                    (id.to_string(), app)
                })
                .collect(),
            deployments: Vec::new(),
            bad_images: Vec::new(),
            step: super::ms(250),
            counter: 0,
            locked_answers: 0,
            max_running_deployments: None,
        }));
        let shared = Arc::clone(&state);
        let server = Server::start(move |request| {
            let mut state = shared.lock().unwrap();
            state.settle();
            handle(&mut state, request)
        });
        FakeMarathon { server, state }
    }

    /// Another party deploys `app` for `duration`: tagpilot's PUTs get 409 meanwhile.
    pub fn lock(&self, app: &str, duration: Duration) {
        let mut state = self.state.lock().unwrap();
        state.deployments.push(Deployment {
            id: "foreign-deployment-1".into(),
            app: app.into(),
            started: Instant::now(),
            foreign_for: Some(duration),
        });
    }

    pub fn image(&self, app: &str) -> String {
        self.state.lock().unwrap().apps[app].image.clone()
    }

    /// Someone scales `app` (`PUT {"instances": n}` in Marathon): a new `version`, the same
    /// config.
    pub fn scale(&self, app: &str, instances: u64) {
        let mut state = self.state.lock().unwrap();
        state.counter += 1;
        let version = format!("2026-11-22T10:00:{:02}.500Z", state.counter);
        let app = state.apps.get_mut(app).unwrap();
        app.instances = instances;
        app.version = version;
    }
}

impl State {
    /// Finishes deployments whose time has come; a bad image's never finishes.
    fn settle(&mut self) {
        let (apps, bad, step) = (&self.apps, &self.bad_images, self.step);
        self.deployments.retain(|d| {
            let app = &apps[&d.app];
            let needed = d.foreign_for.unwrap_or(step * app.instances as u32);
            bad.contains(&app.image) || d.started.elapsed() < needed
        });
    }

    fn deploy(&mut self, id: &str, image: String) -> Value {
        self.counter += 1;
        let version = format!("2026-11-22T10:00:{:02}.000Z", self.counter);
        let deployment = format!("5ed4c0c5-9ff8-4a6f-a0cd-{:012}", self.counter);
        let app = self.apps.get_mut(id).unwrap();
        app.image = image.clone();
        app.version = version.clone();
        app.config_version = version.clone();
        app.versions.insert(version.clone(), image);
        self.deployments.push(Deployment {
            id: deployment.clone(),
            app: id.into(),
            started: Instant::now(),
            foreign_for: None,
        });
        json!({ "deploymentId": deployment, "version": version })
    }

    fn app_json(&self, id: &str) -> Value {
        let app = &self.apps[id];
        let deploying = self.deployments.iter().find(|d| d.app == id);
        let bad = self.bad_images.contains(&app.image);
        // Tasks of the current config, and old ones still running beside them.
        let (new, old) = match deploying {
            _ if bad => (0, app.instances),
            Some(d) if d.foreign_for.is_none() => {
                let started =
                    (d.started.elapsed().as_millis() / self.step.as_millis().max(1)) as u64;
                let started = started.min(app.instances);
                (started, app.instances - started)
            }
            _ => (app.instances, 0),
        };
        let task = |n: u64, version: &str| {
            let mut task = json!({ "id": format!("{}.{n}-{version}", id.trim_start_matches('/')),
                "appId": id, "version": version, "state": "TASK_RUNNING" });
            if app.health_checks {
                task["healthCheckResults"] = json!([{ "alive": true }]);
            }
            task
        };
        let mut tasks: Vec<Value> = (0..new).map(|n| task(n, &app.config_version)).collect();
        tasks.extend((0..old).map(|n| task(100 + n, "2026-01-01T00:00:00.000Z")));
        let checks = if app.health_checks {
            json!([{ "protocol": "MESOS_HTTP", "path": "/health" }])
        } else {
            json!([])
        };
        let mut body = json!({
            "id": id, "instances": app.instances, "version": app.version,
            "versionInfo": { "lastConfigChangeAt": app.config_version,
                             "lastScalingAt": app.version },
            "container": { "type": "DOCKER", "docker": { "image": app.image, "network": "BRIDGE" },
                           "volumes": [] },
            "healthChecks": checks,
            // Old and new together, as Marathon counts them.
            "tasksRunning": new + old,
            "tasksHealthy": if app.health_checks { new + old } else { 0 },
            "tasksStaged": 0, "tasksUnhealthy": 0,
            "tasks": tasks,
            "deployments": deploying.map(|d| vec![json!({ "id": d.id })]).unwrap_or_default(),
        });
        if bad {
            body["lastTaskFailure"] = json!({ "appId": id, "state": "TASK_FAILED", "version": app.version,
                "timestamp": "2026-11-22T10:00:30.000Z",
                "message": "Docker container run error: Container exited with non-zero exit code: 1" });
        }
        body
    }
}

fn handle(state: &mut State, request: &Request) -> (u16, Value) {
    let path = request.path.as_str();
    if let Some(id) = path.strip_prefix("/v2/apps") {
        if !state.apps.contains_key(id) {
            return (
                404,
                json!({ "message": format!("App '{id}' does not exist") }),
            );
        }
        return match request.method.as_str() {
            "GET" => (200, json!({ "app": state.app_json(id) })),
            "PUT" => {
                let holders: Vec<Value> = state
                    .deployments
                    .iter()
                    .filter(|d| d.app == id)
                    .map(|d| json!({ "id": d.id }))
                    .collect();
                if state
                    .max_running_deployments
                    .is_some_and(|max| state.deployments.len() >= max)
                {
                    let max = state.max_running_deployments.unwrap_or(0);
                    return (
                        403,
                        json!({ "message": format!("Max number of running deployments is exceeded (max: {max})") }),
                    );
                }
                if !holders.is_empty() {
                    state.locked_answers += 1;
                    return (
                        409,
                        json!({ "message": "App is locked by one or more deployments. Override with the option '?force=true'. View details at '/v2/deployments/<DEPLOYMENT_ID>'.", "deployments": holders }),
                    );
                }
                let body = request.json();
                let image = match body["version"].as_str() {
                    Some(version) => state.apps[id].versions[version].clone(),
                    None => body["container"]["docker"]["image"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                };
                (200, state.deploy(id, image))
            }
            _ => (405, json!({ "message": "method not allowed" })),
        };
    }
    match (request.method.as_str(), path) {
        ("GET", "/v2/deployments") => {
            let list: Vec<Value> = state
                .deployments
                .iter()
                .map(|d| {
                    json!({ "id": d.id, "version": state.apps[&d.app].version,
                    "affectedApps": [d.app], "currentStep": 1, "totalSteps": 1,
                    "currentActions": [{ "action": "RestartApplication", "app": d.app }] })
                })
                .collect();
            (200, json!(list))
        }
        ("GET", "/v2/queue") => {
            let queue: Vec<Value> = state
                .apps
                .iter()
                .filter(|(_, a)| state.bad_images.contains(&a.image))
                .map(|(id, a)| {
                    json!({ "app": { "id": id }, "count": a.instances,
                    "delay": { "timeLeftSeconds": 17, "overdue": false } })
                })
                .collect();
            (200, json!({ "queue": queue }))
        }
        ("DELETE", _) if path.starts_with("/v2/deployments/") => {
            let id = path.trim_start_matches("/v2/deployments/");
            let Some(index) = state.deployments.iter().position(|d| d.id == id) else {
                return (
                    404,
                    json!({ "message": format!("DeploymentPlan {id} does not exist") }),
                );
            };
            let deployment = state.deployments.remove(index);
            if request.param("force") == Some("true") {
                return (202, Value::Null);
            }
            // The rollback deployment: back to the version before ours.
            let app = &state.apps[&deployment.app];
            let previous = app
                .versions
                .range(..app.version.clone())
                .next_back()
                .map(|(_, image)| image.clone())
                .unwrap();
            (200, state.deploy(&deployment.app, previous))
        }
        _ => (404, json!({ "message": format!("no route {path}") })),
    }
}
