//! Kubernetes workloads (Deployments, StatefulSets, DaemonSets) through the API server. The
//! endpoint and login come from the kubeconfig (`KUBECONFIG`, a `:`-separated list, else
//! `~/.kube/config`; the spec's context or the current one, which is how the GitLab agent's
//! injected contexts are picked), else from the in-cluster service account. An update PUTs the
//! whole object with the `resourceVersion` we read (409 when anyone wrote since). The status
//! right after the write still describes the old generation (the classic false success), so
//! nothing counts until `observedGeneration` reaches ours. Then, as `kubectl rollout status`
//! reads it: a Deployment is done when updated == desired, no old replicas are left and all
//! updated are available (`ProgressDeadlineExceeded` is a failure); a StatefulSet when every
//! replica is updated and ready and `currentRevision == updateRevision`; a DaemonSet when
//! every scheduled pod is updated and available. Pod waiting reasons and warning events say
//! why a rollout is stuck.
//!
//! What never ends by itself is said at once instead of being waited out: a paused
//! Deployment (`spec.paused`, Progressing `DeploymentPaused`); pods the ReplicaSet cannot
//! create (its `ReplicaFailure` condition, copied to the Deployment: a quota, PodSecurity),
//! once it has stood for a grace period in which a surge's quota shortfall clears; and a
//! StatefulSet pod that is broken on another revision than the update revision, which the
//! `OrderedReady` controller waits for forever instead of replacing it
//! (kubernetes/kubernetes#67250, typically after reverting a bad template).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::env::Env;
use crate::error::{Error, Result};
use crate::net;
use crate::spec::orchestrator::{OnFailure, OrchestratorSpec, WorkloadKind};

use super::{
    names_repository, same_image, Engine, Live, Object, Observation, Phase, Replicas, Submitted,
};
use crate::net::api::Api;

const CAS_ATTEMPTS: u32 = 5;

/// How long pods that cannot be created are given before that is the rollout's end (at most;
/// a quarter of a shorter rollout timeout).
const FAILED_CREATE_GRACE: Duration = Duration::from_secs(30);

/// Container waiting reasons a pod does not leave by itself.
const BROKEN: [&str; 6] = [
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
];

pub struct Kubernetes {
    api: Api,
    namespace: String,
    /// How long a `ReplicaFailure` may stand before the rollout fails on it.
    failed_create_grace: Duration,
    /// When each workload's `ReplicaFailure` was first seen by this run.
    failing_since: BTreeMap<String, Instant>,
}

impl Kubernetes {
    pub fn connect(spec: &OrchestratorSpec, env: &Env) -> Result<Kubernetes> {
        let (mut api, namespace) = match super::kubeconfig::kubeconfig_files(env).as_slice() {
            [] => super::kubeconfig::in_cluster(spec, env)?,
            files => super::kubeconfig::from_kubeconfig(files, spec)?,
        };
        if let Some(token) = &spec.credentials.token {
            api = api.with_credential(
                "Authorization",
                format!("Bearer {}", super::credential(token, "Kubernetes", env)?),
                format!("{token} (orchestrator.credentials.token)"),
            );
        }
        let namespace = spec
            .namespace
            .as_ref()
            .map(|n| n.value.clone())
            .or(namespace)
            .unwrap_or_else(|| "default".to_string());
        let failed_create_grace = spec
            .timeout()
            .map(|t| (t / 4).min(FAILED_CREATE_GRACE))
            .unwrap_or(FAILED_CREATE_GRACE);
        Ok(Kubernetes {
            api,
            namespace,
            failed_create_grace,
            failing_since: BTreeMap::new(),
        })
    }

    /// `namespace/name` or `name` in the default namespace.
    fn place<'a>(&'a self, object: &'a Object) -> (&'a str, &'a str) {
        object
            .name
            .split_once('/')
            .unwrap_or((self.namespace.as_str(), object.name.as_str()))
    }

    fn workload_path(&self, object: &Object) -> String {
        let (namespace, name) = self.place(object);
        let resource = match object.kind {
            WorkloadKind::Deployment => "deployments",
            WorkloadKind::StatefulSet => "statefulsets",
            WorkloadKind::DaemonSet => "daemonsets",
        };
        format!("/apis/apps/v1/namespaces/{namespace}/{resource}/{name}")
    }

    fn workload(&self, object: &Object) -> Result<Value> {
        let (namespace, name) = self.place(object);
        self.api.get_object(
            &self.workload_path(object),
            &format!("{} `{name}` in namespace `{namespace}`", object.kind.word()),
        )
    }

    /// PUTs the deployment with `image` in the chosen container, re-reading on a conflict.
    fn put_image(&self, object: &Object, mut deployment: Value, image: &str) -> Result<Submitted> {
        let what = format!("update {} `{}`", object.kind.word(), object.name);
        for _ in 0..CAS_ATTEMPTS {
            let index = container_index(&deployment, object)?;
            deployment["spec"]["template"]["spec"]["containers"][index]["image"] = json!(image);
            let reply = self.api.send(
                "PUT",
                &self.workload_path(object),
                Some(("application/json", &deployment)),
                &what,
            )?;
            if reply.status == 409 {
                deployment = self.workload(object)?;
                continue;
            }
            self.api.expect(&reply, &what)?;
            let generation = reply.json()["metadata"]["generation"].as_u64().unwrap_or(0);
            return Ok(Submitted {
                image: image.to_string(),
                mark: format!("generation {generation}"),
                version: None,
            });
        }
        Err(Error::failed(format!(
            "Kubernetes {} `{}` kept changing under us ({CAS_ATTEMPTS} conflicts); nothing was overwritten",
            object.kind.word(),
            object.name
        )))
    }

    fn pods(&self, object: &Object, deployment: &Value) -> Result<Vec<Value>> {
        let (namespace, _) = self.place(object);
        let selector: Vec<String> = deployment["spec"]["selector"]["matchLabels"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
            .collect();
        let path = format!(
            "/api/v1/namespaces/{namespace}/pods?labelSelector={}",
            net::percent_encode(&selector.join(","))
        );
        let list = self
            .api
            .get_json(&path, &format!("list the pods of `{}`", object.name))?;
        Ok(list["items"].as_array().cloned().unwrap_or_default())
    }
}

impl Kubernetes {
    /// Pods the controller cannot create, once that has stood for the grace period.
    fn cannot_create(&mut self, object: &Object, failure: Option<String>) -> Option<String> {
        let Some(why) = failure else {
            self.failing_since.remove(&object.name);
            return None;
        };
        let since = *self
            .failing_since
            .entry(object.name.clone())
            .or_insert_with(Instant::now);
        (since.elapsed() >= self.failed_create_grace)
            .then(|| format!("pods cannot be created ({why})"))
    }

    /// A StatefulSet pod broken on another revision than the update revision: with
    /// `OrderedReady` the controller waits for it to become ready before it replaces
    /// anything, so it never is (kubernetes/kubernetes#67250). Says what the operator must do.
    fn stuck_pod(&self, object: &Object, workload: &Value) -> Result<Option<String>> {
        if object.kind != WorkloadKind::StatefulSet
            || workload["spec"]["podManagementPolicy"] == "Parallel"
        {
            return Ok(None);
        }
        let update_revision = workload["status"]["updateRevision"].as_str().unwrap_or("");
        let (namespace, _) = self.place(object);
        for pod in self.pods(object, workload)? {
            let revision = pod["metadata"]["labels"]["controller-revision-hash"]
                .as_str()
                .unwrap_or(update_revision);
            if revision == update_revision {
                continue;
            }
            let broken = pod["status"]["containerStatuses"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["state"]["waiting"]["reason"].as_str())
                .find(|reason| BROKEN.contains(reason));
            if let Some(reason) = broken {
                let name = pod["metadata"]["name"].as_str().unwrap_or("?");
                return Ok(Some(format!(
                    "pod {name} is stuck in {reason} on revision {revision}, and a StatefulSet with podManagementPolicy OrderedReady does not replace a broken pod when its template changes (kubernetes/kubernetes#67250): delete it (`kubectl delete pod -n {namespace} {name}`) and the controller recreates it from the current template"
                )));
            }
        }
        Ok(None)
    }
}

fn generation(submitted: &Submitted) -> u64 {
    submitted
        .mark
        .trim_start_matches("generation ")
        .parse()
        .unwrap_or(0)
}

/// The container to change: the named one, else the one running the released repository,
/// else the only one.
fn container_index(deployment: &Value, object: &Object) -> Result<usize> {
    let containers = deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let names: Vec<&str> = containers
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    let found = match &object.container {
        Some(wanted) => containers.iter().position(|c| c["name"] == **wanted),
        None => containers
            .iter()
            .position(|c| names_repository(c["image"].as_str().unwrap_or(""), &object.repository))
            .or((containers.len() == 1).then_some(0)),
    };
    found.ok_or_else(|| {
        Error::input(format!(
            "Kubernetes {} `{}`: {}; its containers: {}",
            object.kind.word(),
            object.name,
            match &object.container {
                Some(wanted) => format!("no container `{wanted}`"),
                None => format!(
                    "no container runs {}; name one with `container:`",
                    object.repository
                ),
            },
            names.join(", ")
        ))
    })
}

fn image_in(deployment: &Value, object: &Object) -> Result<String> {
    let index = container_index(deployment, object)?;
    Ok(
        deployment["spec"]["template"]["spec"]["containers"][index]["image"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

/// A workload's rollout as its kind's status fields tell it (read once the status describes
/// our generation).
struct Progress {
    replicas: Replicas,
    done: bool,
    failed: Option<String>,
    note: Option<String>,
    /// Why the workload will not roll the change out by itself (`OnDelete`).
    not_watchable: Option<String>,
    /// A Deployment paused by `spec.paused`.
    paused: bool,
    /// Why pods cannot be created (`ReplicaFailure`), as the controller says it.
    replica_failure: Option<String>,
}

/// A StatefulSet's or DaemonSet's `updateStrategy: OnDelete`: pods take a new template only
/// when someone deletes them, and `kubectl rollout status` says there is nothing to watch.
fn on_delete(spec: &Value, kind: &str) -> Option<String> {
    (spec["updateStrategy"]["type"] == "OnDelete").then(|| {
        format!("the {kind} has updateStrategy OnDelete: its pods take the new image only when they are deleted")
    })
}

fn progress(kind: WorkloadKind, workload: &Value) -> Progress {
    let (spec, status) = (&workload["spec"], &workload["status"]);
    match kind {
        WorkloadKind::Deployment => deployment_progress(spec, status),
        WorkloadKind::StatefulSet => statefulset_progress(spec, status),
        WorkloadKind::DaemonSet => daemonset_progress(spec, status),
    }
}

fn count(value: &Value) -> u64 {
    value.as_u64().unwrap_or(0)
}

/// Every replica updated and available, none old left; `ProgressDeadlineExceeded` fails it.
fn deployment_progress(spec: &Value, status: &Value) -> Progress {
    let desired = spec["replicas"].as_u64().unwrap_or(1);
    let (total, updated) = (
        count(&status["replicas"]),
        count(&status["updatedReplicas"]),
    );
    let available = count(&status["availableReplicas"]);
    let condition = |kind: &str| {
        status["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == kind)
            .cloned()
    };
    let progressing = condition("Progressing");
    let stalled = progressing
        .as_ref()
        .filter(|c| c["reason"] == "ProgressDeadlineExceeded");
    let paused = spec["paused"] == true
        || progressing
            .as_ref()
            .is_some_and(|c| c["reason"] == "DeploymentPaused");
    let replica_failure = condition("ReplicaFailure")
        .filter(|c| c["status"] == "True")
        .map(|c| {
            format!(
                "{}: {}",
                c["reason"].as_str().unwrap_or("ReplicaFailure"),
                c["message"].as_str().unwrap_or("")
            )
        });
    Progress {
        replicas: Replicas {
            desired,
            updated,
            ready: available.min(updated),
        },
        done: updated >= desired && total == updated && available >= updated,
        failed: stalled.map(|c| {
            format!(
                "ProgressDeadlineExceeded: {}",
                c["message"].as_str().unwrap_or("")
            )
        }),
        note: match &replica_failure {
            Some(why) => Some(format!("pods cannot be created: {why}")),
            None => (total > updated).then(|| format!("{} old replica(s) left", total - updated)),
        },
        not_watchable: None,
        paused,
        replica_failure,
    }
}

/// Every replica updated and ready and the update revision current, or with a partition (a
/// canary) the pods at or above it updated and every pod ready.
fn statefulset_progress(spec: &Value, status: &Value) -> Progress {
    let desired = spec["replicas"].as_u64().unwrap_or(1);
    let updated = count(&status["updatedReplicas"]);
    let ready = count(&status["readyReplicas"]);
    let revisions_match = status["currentRevision"] == status["updateRevision"];
    // A partitioned rollout (a canary) updates only the pods at or above the
    // partition, and `currentRevision` never moves: kubectl counts it done when those
    // are updated and every pod is ready.
    let partition = count(&spec["updateStrategy"]["rollingUpdate"]["partition"]);
    let done = match partition {
        0 => updated >= desired && ready >= desired && revisions_match,
        p => updated >= desired.saturating_sub(p) && ready >= desired,
    };
    Progress {
        replicas: Replicas {
            desired: desired.saturating_sub(partition),
            updated,
            ready: ready.min(updated),
        },
        done,
        failed: None,
        note: match partition {
            0 => (!revisions_match && updated >= desired)
                .then(|| "waiting for the new revision to become current".to_string()),
            p => Some(format!(
                "partitioned at {p}: pods below it keep the old image"
            )),
        },
        not_watchable: on_delete(spec, "StatefulSet"),
        paused: false,
        replica_failure: None,
    }
}

/// Every scheduled pod updated and available.
fn daemonset_progress(spec: &Value, status: &Value) -> Progress {
    let desired = count(&status["desiredNumberScheduled"]);
    let updated = count(&status["updatedNumberScheduled"]);
    let available = count(&status["numberAvailable"]);
    Progress {
        replicas: Replicas {
            desired,
            updated,
            ready: available.min(updated),
        },
        done: updated >= desired && available >= desired,
        failed: None,
        note: None,
        not_watchable: on_delete(spec, "DaemonSet"),
        paused: false,
        replica_failure: None,
    }
}

impl Engine for Kubernetes {
    fn api(&self) -> &Api {
        &self.api
    }

    fn live(&mut self, object: &Object) -> Result<Live> {
        let deployment = self.workload(object)?;
        Ok(Live {
            image: image_in(&deployment, object)?,
            raw: deployment,
        })
    }

    fn submit(
        &mut self,
        object: &Object,
        live: &Live,
        image: &str,
        _on_failure: OnFailure,
    ) -> Result<Submitted> {
        self.put_image(object, live.raw.clone(), image)
    }

    fn observe(&mut self, object: &Object, submitted: &Submitted) -> Result<Observation> {
        let workload = self.workload(object)?;
        let ours = generation(submitted);
        let current_generation = workload["metadata"]["generation"].as_u64().unwrap_or(0);
        let image = image_in(&workload, object)?;
        let progress = progress(object.kind, &workload);
        let observed = workload["status"]["observedGeneration"]
            .as_u64()
            .unwrap_or(0);
        let phase = if current_generation > ours && !same_image(&image, &submitted.image) {
            Phase::Superseded(image)
        } else if observed < ours {
            Phase::Pending
        } else if let Some(reason) = progress.not_watchable {
            Phase::NotWatchable(reason)
        } else if let Some(reason) = progress.failed {
            Phase::Failed(reason)
        } else if progress.done {
            Phase::Succeeded
        } else if progress.paused {
            let (namespace, name) = self.place(object);
            Phase::Paused(format!(
                "the Deployment is paused (spec.paused): `kubectl rollout resume deployment/{name} -n {namespace}` lets it go on, and a re-run watches it"
            ))
        } else if let Some(why) = self.cannot_create(object, progress.replica_failure) {
            Phase::Failed(why)
        } else if let Some(why) = self.stuck_pod(object, &workload)? {
            Phase::Failed(why)
        } else {
            Phase::Progressing
        };
        Ok(Observation {
            phase,
            replicas: Some(progress.replicas),
            note: progress.note,
        })
    }

    fn current(&mut self, _object: &Object, live: &Live) -> Result<Submitted> {
        Ok(Submitted {
            image: live.image.clone(),
            mark: format!(
                "generation {}",
                live.raw["metadata"]["generation"].as_u64().unwrap_or(0)
            ),
            version: None,
        })
    }

    fn explain(&mut self, object: &Object, submitted: &Submitted) -> Result<Vec<String>> {
        let deployment = self.workload(object)?;
        let pods = self.pods(object, &deployment)?;
        let mut lines = Vec::new();
        let mut ours = Vec::new();
        for pod in &pods {
            let name = pod["metadata"]["name"].as_str().unwrap_or("?");
            let runs_ours = pod["spec"]["containers"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| same_image(c["image"].as_str().unwrap_or(""), &submitted.image));
            if !runs_ours {
                continue;
            }
            ours.push(name.to_string());
            for status in pod["status"]["containerStatuses"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let waiting = &status["state"]["waiting"];
                if let Some(reason) = waiting["reason"].as_str() {
                    let mut line = format!("pod {name}: {reason}");
                    if let Some(message) = waiting["message"].as_str() {
                        line.push_str(&format!(": {message}"));
                    }
                    let last = &status["lastState"]["terminated"];
                    if let Some(code) = last["exitCode"].as_i64() {
                        line.push_str(&format!(" (last exit code {code})"));
                    }
                    lines.push(line);
                }
            }
        }
        let (namespace, _) = self.place(object);
        let events = self.api.get_json(
            &format!("/api/v1/namespaces/{namespace}/events?fieldSelector=type%3DWarning"),
            "list warning events",
        )?;
        let (_, workload_name) = self.place(object);
        // A ReplicaSet's (or the workload's own) FailedCreate events say why pods never came.
        let about_workload = |kind: &str, about: &str| match kind {
            "ReplicaSet" => about
                .strip_prefix(workload_name)
                .is_some_and(|rest| rest.starts_with('-')),
            "Deployment" | "StatefulSet" | "DaemonSet" => about == workload_name,
            _ => false,
        };
        for event in events["items"].as_array().into_iter().flatten() {
            let about = event["involvedObject"]["name"].as_str().unwrap_or("");
            let kind = event["involvedObject"]["kind"].as_str().unwrap_or("");
            if ours.iter().any(|p| p == about) || about_workload(kind, about) {
                lines.push(format!(
                    "event on {about}: {}: {}",
                    event["reason"].as_str().unwrap_or("?"),
                    event["message"].as_str().unwrap_or("")
                ));
            }
        }
        lines.dedup();
        lines.truncate(8);
        Ok(lines)
    }

    fn roll_back(
        &mut self,
        object: &Object,
        _submitted: &Submitted,
        before: Option<&Live>,
    ) -> Result<Option<Submitted>> {
        // The API keeps no "previous image" to go back to without knowing it.
        let Some(before) = before else {
            return Ok(None);
        };
        let deployment = self.workload(object)?;
        self.put_image(object, deployment, &before.image).map(Some)
    }

    fn pause(&mut self, object: &Object, _submitted: &Submitted) -> Result<bool> {
        // Only a Deployment has `spec.paused`.
        if object.kind != WorkloadKind::Deployment {
            return Ok(false);
        }
        let what = format!("pause deployment `{}`", object.name);
        let body = json!({ "spec": { "paused": true } });
        self.api.send_ok(
            "PATCH",
            &self.workload_path(object),
            Some(("application/merge-patch+json", &body)),
            &what,
        )?;
        Ok(true)
    }
}
