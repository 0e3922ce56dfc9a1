//! Marathon apps through its REST API. `PUT /v2/apps/{id}` answers a `deploymentId` and the
//! app `version` it creates, or 409 while another deployment holds the app (we wait, never
//! `force`). Marathon never fails a deployment by itself: it retries with backoff, so the
//! timeout is ours. Done is: our deployment gone from `/v2/deployments`, the app's config
//! ours, and every instance of it running (healthy, when the app has health checks; an app
//! without any is ready when running). The app's `version` also moves on a scale or restart,
//! so "ours" is `versionInfo.lastConfigChangeAt`. During a deployment `tasksRunning` and
//! `tasksHealthy` count old and new tasks together, so the counts come from the app's tasks
//! (`embed=app.tasks`), each launched with the config version it runs. Reasons come from
//! `lastTaskFailure` and `/v2/queue`. Rollback deletes our deployment (Marathon then deploys
//! the previous version), or puts the previous app version back once it is gone.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::env::Env;
use crate::error::{Error, Result};
use crate::net::api::Hints;
use crate::net::{self, Tls};
use crate::spec::orchestrator::{OnFailure, OrchestratorSpec};

use super::{same_image, Engine, Live, Object, Observation, Phase, Replicas, Submitted};
use crate::net::api::Api;

/// How long a locked app is waited for before giving up.
const LOCK_WAIT: Duration = Duration::from_secs(120);

pub struct Marathon {
    api: Api,
}

impl Marathon {
    pub fn connect(spec: &OrchestratorSpec, env: &Env) -> Result<Marathon> {
        let url = spec
            .endpoint
            .as_ref()
            .map(|t| t.value.clone())
            .or_else(|| env.lookup("MARATHON_URL"))
            .ok_or_else(|| {
                Error::input("Marathon needs orchestrator.endpoint (or MARATHON_URL)")
            })?;
        let tls = Tls {
            roots: super::ca_roots(spec)?,
            ..Default::default()
        };
        let mut api = crate::orchestrator::api("Marathon", &url, tls, spec).with_hints(Hints {
            credential: "Check the variables named in orchestrator.credentials",
            tls: "For a private CA set orchestrator.ca_file",
            forbidden: "Marathon answers 403 when the login may not change this app, and also when it already runs as many deployments as --max_running_deployments allows: wait for them, then re-run",
        });
        let c = &spec.credentials;
        if let Some(token) = &c.token {
            api = api.with_credential(
                "Authorization",
                format!("token={}", super::credential(token, "Marathon", env)?),
                format!("{token} (orchestrator.credentials.token)"),
            );
        } else if let (Some(user), Some(password)) = (&c.user, &c.password) {
            api = api.with_credential(
                "Authorization",
                net::basic_authorization(
                    &super::credential(user, "Marathon", env)?,
                    &super::credential(password, "Marathon", env)?,
                ),
                format!("{user} and {password} (orchestrator.credentials)"),
            );
        }
        Ok(Marathon { api })
    }

    fn app(&self, id: &str) -> Result<Value> {
        let answer = self.api.get_object(
            &format!("/v2/apps/{}?embed=app.tasks", app_path(id)),
            &format!("app `{id}`"),
        )?;
        Ok(answer["app"].clone())
    }

    /// The deployment that holds the app now, if any.
    fn deployment_of(&self, id: &str) -> Result<Option<Value>> {
        let id = format!("/{}", app_path(id));
        Ok(self.deployments()?.into_iter().find(|d| {
            d["affectedApps"]
                .as_array()
                .is_some_and(|apps| apps.iter().any(|a| a.as_str() == Some(id.as_str())))
        }))
    }

    fn deployments(&self) -> Result<Vec<Value>> {
        let list = self.api.get_json("/v2/deployments", "list deployments")?;
        Ok(list.as_array().cloned().unwrap_or_default())
    }

    /// `PUT /v2/apps/{id}`, waiting while a deployment locks the app (409).
    fn put_app(&self, id: &str, body: &Value) -> Result<Submitted> {
        let what = format!("update app `{id}`");
        let until = Instant::now() + LOCK_WAIT;
        loop {
            let reply = self.api.send(
                "PUT",
                &format!("/v2/apps/{}", app_path(id)),
                Some(("application/json", body)),
                &what,
            )?;
            if reply.status == 409 && Instant::now() < until {
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
            if reply.status == 409 {
                let holders: Vec<String> = reply.json()["deployments"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|d| d["id"].as_str().map(String::from))
                    .collect();
                return Err(Error::failed(format!(
                    "Marathon app `{id}` stayed locked by deployment(s) {} for {}s; nothing was forced",
                    holders.join(", "),
                    LOCK_WAIT.as_secs()
                ))
                .with_hint("Wait for that deployment to finish (or cancel it in Marathon), then re-run"));
            }
            self.api.expect(&reply, &what)?;
            let answer = reply.json();
            return Ok(Submitted {
                image: String::new(),
                mark: format!(
                    "deployment {}",
                    answer["deploymentId"].as_str().unwrap_or("?")
                ),
                version: answer["version"].as_str().map(String::from),
            });
        }
    }
}

/// App ids are absolute paths (`/group/app`); the URL takes them without the leading slash.
fn app_path(id: &str) -> &str {
    id.trim_start_matches('/')
}

fn image_of(app: &Value) -> String {
    app["container"]["docker"]["image"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn deployment_id(submitted: &Submitted) -> &str {
    submitted.mark.trim_start_matches("deployment ")
}

/// The version of the app's config: `versionInfo.lastConfigChangeAt`, which a scale or a
/// restart leaves alone (`version` moves with them).
fn config_version(app: &Value) -> Option<&str> {
    app["versionInfo"]["lastConfigChangeAt"]
        .as_str()
        .or(app["version"].as_str())
}

/// Instances of the config `version`: launched (at or after it), and ready (running, and
/// healthy when the app has health checks).
fn instances_of(app: &Value, version: Option<&str>) -> (u64, u64) {
    let checked = app["healthChecks"]
        .as_array()
        .is_some_and(|c| !c.is_empty());
    let Some(version) = version else {
        return (0, 0);
    };
    let mut launched = 0;
    let mut ready = 0;
    for task in app["tasks"].as_array().into_iter().flatten() {
        // Versions are ISO-8601 timestamps of one format: they order as text. A task of a
        // later scale still runs our config.
        if task["version"].as_str().is_none_or(|v| v < version) {
            continue;
        }
        launched += 1;
        let running = task["state"] == "TASK_RUNNING";
        let healthy = task["healthCheckResults"]
            .as_array()
            .is_some_and(|r| !r.is_empty() && r.iter().all(|h| h["alive"] == true));
        if running && (!checked || healthy) {
            ready += 1;
        }
    }
    (launched, ready)
}

impl Engine for Marathon {
    fn api(&self) -> &Api {
        &self.api
    }

    fn live(&mut self, object: &Object) -> Result<Live> {
        let app = self.app(&object.name)?;
        if app["container"]["docker"].is_null() {
            return Err(Error::input(format!(
                "Marathon app `{}` runs no Docker container to change the image of",
                object.name
            )));
        }
        Ok(Live {
            image: image_of(&app),
            raw: app,
        })
    }

    fn submit(
        &mut self,
        object: &Object,
        live: &Live,
        image: &str,
        _on_failure: OnFailure,
    ) -> Result<Submitted> {
        let mut container = live.raw["container"].clone();
        container["docker"]["image"] = json!(image);
        let mut submitted = self.put_app(&object.name, &json!({ "container": container }))?;
        submitted.image = image.to_string();
        Ok(submitted)
    }

    fn observe(&mut self, object: &Object, submitted: &Submitted) -> Result<Observation> {
        let id = deployment_id(submitted);
        let deployment = self
            .deployments()?
            .into_iter()
            .find(|d| d["id"].as_str() == Some(id));
        let app = self.app(&object.name)?;
        let desired = app["instances"].as_u64().unwrap_or(0);
        let ours = config_version(&app) == submitted.version.as_deref();
        let (launched, ready) = if ours {
            instances_of(&app, submitted.version.as_deref())
        } else {
            (0, 0)
        };
        let note = match &deployment {
            Some(d) => Some(format!(
                "step {} of {}",
                d["currentStep"].as_u64().unwrap_or(0),
                d["totalSteps"].as_u64().unwrap_or(0)
            )),
            None => app["lastTaskFailure"]["message"]
                .as_str()
                .filter(|_| app["lastTaskFailure"]["version"] == app["version"])
                .map(|m| format!("last task failure: {m}")),
        };
        let phase = if deployment.is_some() {
            Phase::Progressing
        } else if !ours && !same_image(&image_of(&app), &submitted.image) {
            Phase::Superseded(image_of(&app))
        } else if ready >= desired && app["tasksStaged"].as_u64().unwrap_or(0) == 0 {
            Phase::Succeeded
        } else {
            Phase::Progressing
        };
        Ok(Observation {
            phase,
            replicas: Some(Replicas {
                desired,
                updated: launched.min(desired),
                ready: ready.min(desired),
            }),
            note,
        })
    }

    fn current(&mut self, object: &Object, live: &Live) -> Result<Submitted> {
        let mark = match self.deployment_of(&object.name)? {
            Some(d) => format!("deployment {}", d["id"].as_str().unwrap_or("?")),
            None => "no deployment running".to_string(),
        };
        Ok(Submitted {
            image: live.image.clone(),
            mark,
            version: config_version(&live.raw).map(String::from),
        })
    }

    fn explain(&mut self, object: &Object, _submitted: &Submitted) -> Result<Vec<String>> {
        let app = self.app(&object.name)?;
        let mut lines = Vec::new();
        let failure = &app["lastTaskFailure"];
        if let Some(message) = failure["message"].as_str() {
            lines.push(format!(
                "last task failure ({}, {}): {message}",
                failure["state"].as_str().unwrap_or("?"),
                failure["timestamp"].as_str().unwrap_or("?")
            ));
        }
        let queue = self.api.get_json("/v2/queue", "read the launch queue")?;
        for entry in queue["queue"].as_array().into_iter().flatten() {
            // Marathon's ids always start with `/`; the spec may leave it out (`shop/web`).
            let id = format!("/{}", app_path(&object.name));
            if entry["app"]["id"].as_str() != Some(id.as_str()) {
                continue;
            }
            let mut line = format!(
                "queued: {} instance(s) waiting to launch",
                entry["count"].as_u64().unwrap_or(0)
            );
            if let Some(left) = entry["delay"]["timeLeftSeconds"].as_u64() {
                line.push_str(&format!(", backing off {left}s after failures"));
            }
            if let Some(reasons) =
                entry["processedOffersSummary"]["rejectSummaryLastOffers"].as_array()
            {
                let declined: Vec<String> = reasons
                    .iter()
                    .filter(|r| r["declined"].as_u64().unwrap_or(0) > 0)
                    .filter_map(|r| r["reason"].as_str().map(String::from))
                    .collect();
                if !declined.is_empty() {
                    line.push_str(&format!(", offers declined for {}", declined.join(", ")));
                }
            }
            lines.push(line);
        }
        Ok(lines)
    }

    fn roll_back(
        &mut self,
        object: &Object,
        submitted: &Submitted,
        before: Option<&Live>,
    ) -> Result<Option<Submitted>> {
        let id = deployment_id(submitted);
        let still_running = self
            .deployments()?
            .iter()
            .any(|d| d["id"].as_str() == Some(id));
        let mut back = if still_running {
            // Without `force`, Marathon answers with a new deployment that rolls back.
            let what = format!("cancel deployment {id} of `{}`", object.name);
            let reply =
                self.api
                    .send_ok("DELETE", &format!("/v2/deployments/{id}"), None, &what)?;
            let answer = reply.json();
            Submitted {
                image: String::new(),
                mark: format!(
                    "deployment {}",
                    answer["deploymentId"].as_str().unwrap_or("?")
                ),
                version: answer["version"].as_str().map(String::from),
            }
        } else if let Some(before) = before {
            let version = before.raw["version"].clone();
            self.put_app(&object.name, &json!({ "version": version }))?
        } else {
            return Ok(None);
        };
        back.image = before
            .map(|b| b.image.clone())
            .unwrap_or_else(|| "the app version before it".to_string());
        Ok(Some(back))
    }

    fn pause(&mut self, object: &Object, submitted: &Submitted) -> Result<bool> {
        // `force=true` stops the deployment where it is, without rolling back.
        let id = deployment_id(submitted);
        let what = format!("stop deployment {id} of `{}`", object.name);
        let reply = self.api.send(
            "DELETE",
            &format!("/v2/deployments/{id}?force=true"),
            None,
            &what,
        )?;
        if reply.status == 404 {
            return Ok(false);
        }
        self.api.expect(&reply, &what)?;
        Ok(true)
    }
}
