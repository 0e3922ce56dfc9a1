//! A fake Kubernetes API server for apps/v1 Deployments, StatefulSets and DaemonSets: PUT with
//! `resourceVersion` compare-and-set (409 on a stale one), a status that still describes the
//! previous generation for a while after the write (the classic false success), replicas
//! replaced one per step (a StatefulSet's `currentRevision` catches up one step after its last
//! replica), and for a bad image pods stuck in `ImagePullBackOff`; a Deployment's progress
//! deadline then sets `Progressing=False, reason ProgressDeadlineExceeded` (the other kinds
//! have none). Bearer-token auth.
//!
//! StatefulSets follow the controller's `updateStrategy` (kubernetes/pkg/controller/statefulset):
//! with `rollingUpdate.partition: P` only the pods with ordinal >= P are updated and
//! `currentRevision` never becomes `updateRevision`; with `OnDelete` (DaemonSets too) no pod
//! changes until it is deleted, so `updatedReplicas` stays 0. With the default
//! `podManagementPolicy: OrderedReady`, a pod left broken by a bad revision blocks the
//! controller: changing the template back does not replace it (kubernetes/kubernetes#67250)
//! until someone deletes the pod.
//!
//! Deployments follow the deployment controller (pkg/controller/deployment): a paused one
//! syncs its status (`observedGeneration` catches up) but creates no new ReplicaSet, and its
//! Progressing condition is `Unknown`/`DeploymentPaused`; pods the ReplicaSet cannot create
//! (a quota) give it a `ReplicaFailure`/`FailedCreate` condition, copied to the Deployment,
//! and `FailedCreate` warning events on the ReplicaSet.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::http::{Request, Server};

pub struct Deployment {
    /// The resource: `deployments`, `statefulsets` or `daemonsets`.
    pub resource: &'static str,
    pub namespace: String,
    /// The image it ran at the start (a rollback to it works).
    pub initial: String,
    pub replicas: u64,
    pub image: String,
    pub generation: u64,
    pub resource_version: u64,
    pub changed: Instant,
    pub paused: bool,
    /// StatefulSet `updateStrategy.rollingUpdate.partition`.
    pub partition: u64,
    /// `updateStrategy.type: OnDelete`.
    pub on_delete: bool,
    /// StatefulSet: the generation and image whose broken pod (the highest ordinal) the
    /// controller will not replace until it is deleted.
    pub stuck: Option<(u64, String)>,
}

impl Deployment {
    /// Three replicas in namespace `apps`, running `image` long since.
    fn settled(resource: &'static str, image: &str) -> Deployment {
        Deployment {
            resource,
            namespace: "apps".into(),
            initial: image.to_string(),
            replicas: 3,
            image: image.to_string(),
            generation: 1,
            resource_version: 100,
            changed: Instant::now() - Duration::from_secs(3600),
            paused: false,
            partition: 0,
            on_delete: false,
            stuck: None,
        }
    }
}

pub struct State {
    pub deployments: BTreeMap<String, Deployment>,
    /// Deployments whose new pods never pull (any image but the initial one).
    pub failing: Vec<String>,
    /// Deployments whose new pods cannot be created: a ResourceQuota is used up.
    pub over_quota: Vec<String>,
    /// How long the status keeps describing the previous generation after a write.
    pub stale_for: Duration,
    /// Time per replica replaced.
    pub step: Duration,
    pub progress_deadline: Duration,
    pub token: String,
    /// Answer 409 to this many PUTs first, as if someone else had just written.
    pub conflicts: u32,
    /// Every GET of a deployment: was its rollout complete at that moment?
    pub reads_complete: Vec<bool>,
    pub puts: u32,
}

pub struct FakeKubernetes {
    pub server: Server,
    pub state: Arc<Mutex<State>>,
}

impl FakeKubernetes {
    pub fn start(deployments: &[(&str, &str)]) -> FakeKubernetes {
        let state = Arc::new(Mutex::new(State {
            deployments: deployments
                .iter()
                .map(|(name, image)| (name.to_string(), Deployment::settled("deployments", image)))
                .collect(),
            failing: Vec::new(),
            over_quota: Vec::new(),
            stale_for: super::ms(600),
            step: super::ms(200),
            progress_deadline: super::ms(1500),
            token: "k8s-token".into(),
            conflicts: 0,
            reads_complete: Vec::new(),
            puts: 0,
        }));
        let shared = Arc::clone(&state);
        let server = Server::start(move |request| handle(&mut shared.lock().unwrap(), request));
        FakeKubernetes { server, state }
    }

    /// A kubeconfig with a GitLab-agent-style context (and a decoy current context).
    pub fn kubeconfig(&self, dir: &std::path::Path) -> std::path::PathBuf {
        let path = dir.join("kubeconfig");
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\ncurrent-context: other\nclusters:\n  - name: gitlab\n    cluster:\n      server: {url}\n  - name: elsewhere\n    cluster:\n      server: http://127.0.0.1:9\ncontexts:\n  - name: team/deploy:prod-agent\n    context: {{ cluster: gitlab, user: agent:1, namespace: apps }}\n  - name: other\n    context: {{ cluster: elsewhere, user: agent:1 }}\nusers:\n  - name: agent:1\n    user:\n      token: k8s-token\n",
                url = self.server.url()
            ),
        )
        .unwrap();
        path
    }

    /// Adds a workload of another kind (`statefulsets`, `daemonsets`) in namespace `apps`.
    pub fn add(&self, resource: &'static str, name: &str, image: &str) {
        self.state
            .lock()
            .unwrap()
            .deployments
            .insert(name.to_string(), Deployment::settled(resource, image));
    }

    /// Sets a workload's update strategy: a partition, or `OnDelete`.
    pub fn strategy(&self, name: &str, partition: u64, on_delete: bool) {
        let mut state = self.state.lock().unwrap();
        let d = state.deployments.get_mut(name).unwrap();
        d.partition = partition;
        d.on_delete = on_delete;
    }

    pub fn image(&self, name: &str) -> String {
        self.state.lock().unwrap().deployments[name].image.clone()
    }

    /// `kubectl rollout pause` / `resume`: a resumed Deployment starts its rollout then.
    pub fn set_paused(&self, name: &str, paused: bool) {
        let mut state = self.state.lock().unwrap();
        let stale_for = state.stale_for;
        let d = state.deployments.get_mut(name).unwrap();
        d.paused = paused;
        if !paused {
            d.changed = Instant::now() - stale_for;
        }
    }
}

/// Why the new ReplicaSet cannot create its pods (a quota).
fn quota_message(name: &str) -> String {
    format!("pods \"{name}-5d8-x7k2q\" is forbidden: exceeded quota: compute, requested: limits.cpu=500m, used: limits.cpu=2, limited: limits.cpu=2")
}

fn deployment_json(name: &str, d: &Deployment, state: &State) -> Value {
    let elapsed = d.changed.elapsed();
    let bad = is_bad(name, d, state);
    let stale = elapsed < state.stale_for;
    let paused = d.paused && d.resource == "deployments";
    let over_quota = state.over_quota.iter().any(|q| q == name) && d.image != d.initial;
    let (observed, updated, total, available, conditions) = if stale {
        // The previous generation's status: all replicas updated and available.
        (
            d.generation - 1,
            d.replicas,
            d.replicas,
            d.replicas,
            json!([]),
        )
    } else if paused {
        // Synced, but no new ReplicaSet: nothing is updated until it is resumed.
        (
            d.generation,
            0,
            d.replicas,
            d.replicas,
            json!([{ "type": "Progressing", "status": "Unknown", "reason": "DeploymentPaused",
                     "message": "Deployment is paused" }]),
        )
    } else if over_quota {
        (
            d.generation,
            0,
            d.replicas,
            d.replicas,
            json!([
                { "type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated" },
                { "type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
                  "message": quota_message(name) }
            ]),
        )
    } else if bad {
        let condition = if elapsed > state.stale_for + state.progress_deadline {
            json!([{ "type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                     "message": format!("ReplicaSet \"{name}-7d9\" has timed out progressing.") }])
        } else {
            json!([{ "type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated" }])
        };
        (d.generation, 1, d.replicas + 1, d.replicas, condition)
    } else {
        let done = ((elapsed - state.stale_for).as_millis() / state.step.as_millis().max(1)) as u64;
        let updated = done.clamp(1, d.replicas);
        let surge = u64::from(done < d.replicas);
        (
            d.generation,
            updated,
            d.replicas + surge,
            d.replicas,
            json!([{ "type": "Progressing", "status": "True", "reason": if surge == 0 { "NewReplicaSetAvailable" } else { "ReplicaSetUpdated" } }]),
        )
    };
    let kind = match d.resource {
        "statefulsets" => "StatefulSet",
        "daemonsets" => "DaemonSet",
        _ => "Deployment",
    };
    let status = match d.resource {
        "statefulsets" => {
            // One pod is down while it is replaced; the current revision becomes the update
            // revision three steps after the last replica is updated and ready (longer than a
            // client's poll, so a client that reads only the counts is caught).
            let revision = |generation: u64| format!("{name}-rev{generation}");
            let steps = if stale || bad {
                0
            } else {
                ((elapsed - state.stale_for).as_millis() / state.step.as_millis().max(1)) as u64
            };
            // Only the pods at or above the partition take the new revision (none, OnDelete).
            let updatable = if d.on_delete {
                0
            } else {
                d.replicas - d.partition.min(d.replicas)
            };
            let whole = updatable == d.replicas;
            let current = if stale || (whole && steps > d.replicas + 3) {
                revision(observed)
            } else {
                revision(d.generation - 1)
            };
            let ready = if stale || steps >= updatable {
                d.replicas
            } else {
                d.replicas - 1
            };
            let updated = if stale {
                updated
            } else {
                updated.min(updatable)
            };
            // The broken pod of an earlier revision is neither updated nor ready, for good.
            let (updated, ready, current) = match d.stuck {
                Some(_) if !stale => (
                    updated.min(d.replicas - 1),
                    ready.min(d.replicas - 1),
                    revision(d.generation - 1),
                ),
                _ => (updated, ready, current),
            };
            json!({ "observedGeneration": observed, "replicas": d.replicas, "updatedReplicas": updated,
                    "readyReplicas": ready,
                    "currentRevision": current, "updateRevision": revision(observed) })
        }
        "daemonsets" => {
            let updated = if d.on_delete && !stale { 0 } else { updated };
            json!({ "observedGeneration": observed, "desiredNumberScheduled": d.replicas,
                    "updatedNumberScheduled": updated,
                    "numberAvailable": if bad { d.replicas - 1 } else { available } })
        }
        _ => json!({ "observedGeneration": observed, "replicas": total, "updatedReplicas": updated,
                    "availableReplicas": available, "readyReplicas": available, "conditions": conditions }),
    };
    json!({
        "apiVersion": "apps/v1", "kind": kind,
        "metadata": { "name": name, "namespace": d.namespace, "generation": d.generation,
                      "resourceVersion": d.resource_version.to_string() },
        "spec": {
            "replicas": d.replicas, "paused": d.paused,
            "updateStrategy": if d.on_delete {
                json!({ "type": "OnDelete" })
            } else {
                json!({ "type": "RollingUpdate", "rollingUpdate": { "partition": d.partition } })
            },
            "selector": { "matchLabels": { "app": name } },
            "template": { "metadata": { "labels": { "app": name } }, "spec": { "containers": [
                { "name": "log-shipper", "image": "registry.example.org/tools/shipper:2" },
                { "name": "app", "image": d.image }
            ] } }
        },
        "status": status
    })
}

fn is_bad(name: &str, d: &Deployment, state: &State) -> bool {
    state.failing.iter().any(|f| f == name) && d.image != d.initial
}

fn handle(state: &mut State, request: &Request) -> (u16, Value) {
    if request.header("authorization") != Some(&format!("Bearer {}", state.token)) {
        return (
            401,
            json!({ "kind": "Status", "status": "Failure", "message": "Unauthorized", "reason": "Unauthorized", "code": 401 }),
        );
    }
    let parts: Vec<&str> = request.path.trim_matches('/').split('/').collect();
    match (request.method.as_str(), parts.as_slice()) {
        (method, ["apis", "apps", "v1", "namespaces", namespace, resource, name]) => {
            let Some(d) = state
                .deployments
                .get(*name)
                .filter(|d| d.namespace == *namespace && d.resource == *resource)
            else {
                return (
                    404,
                    json!({ "kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404,
                    "message": format!("{resource}.apps \"{name}\" not found") }),
                );
            };
            match method {
                "GET" => {
                    let body = deployment_json(name, d, state);
                    let status = &body["status"];
                    let complete = status["observedGeneration"] == body["metadata"]["generation"]
                        && match d.resource {
                            "statefulsets" => {
                                status["currentRevision"] == status["updateRevision"]
                                    && status["readyReplicas"] == body["spec"]["replicas"]
                            }
                            "daemonsets" => {
                                status["updatedNumberScheduled"] == status["desiredNumberScheduled"]
                                    && status["numberAvailable"] == status["desiredNumberScheduled"]
                            }
                            _ => {
                                status["updatedReplicas"] == body["spec"]["replicas"]
                                    && status["replicas"] == body["spec"]["replicas"]
                            }
                        };
                    state.reads_complete.push(complete);
                    (200, body)
                }
                "PUT" => {
                    state.puts += 1;
                    let sent = request.json();
                    if state.conflicts > 0 {
                        state.conflicts -= 1;
                        let d = state.deployments.get_mut(*name).unwrap();
                        d.resource_version += 1;
                    }
                    let was_bad = state.failing.iter().any(|f| f == *name);
                    let d = state.deployments.get_mut(*name).unwrap();
                    if sent["metadata"]["resourceVersion"].as_str()
                        != Some(d.resource_version.to_string().as_str())
                    {
                        return (
                            409,
                            json!({ "kind": "Status", "status": "Failure", "reason": "Conflict", "code": 409,
                            "message": format!("Operation cannot be fulfilled on deployments.apps \"{name}\": the object has been modified; please apply your changes to the latest version and try again") }),
                        );
                    }
                    let image = sent["spec"]["template"]["spec"]["containers"][1]["image"]
                        .as_str()
                        .unwrap_or("")
                        .to_string();
                    if image != d.image {
                        // Leaving a bad revision, the OrderedReady controller keeps its
                        // broken pod.
                        if was_bad && d.image != d.initial && d.resource == "statefulsets" {
                            d.stuck = Some((d.generation, d.image.clone()));
                        }
                        d.image = image;
                        d.generation += 1;
                        d.changed = Instant::now();
                    }
                    d.resource_version += 1;
                    let d = &state.deployments[*name];
                    (200, deployment_json(name, d, state))
                }
                "PATCH" => {
                    let d = state.deployments.get_mut(*name).unwrap();
                    d.paused = request.json()["spec"]["paused"] == true;
                    d.resource_version += 1;
                    let d = &state.deployments[*name];
                    (200, deployment_json(name, d, state))
                }
                _ => (405, json!({ "message": "method not allowed" })),
            }
        }
        ("GET", ["api", "v1", "namespaces", _, "pods"]) => {
            let selector = request
                .param("labelSelector")
                .unwrap_or("")
                .replace("%3D", "=");
            let name = selector.trim_start_matches("app=");
            let Some(d) = state.deployments.get(name) else {
                return (200, json!({ "items": [] }));
            };
            let broken = |pod: String, image: &str, revision: String| {
                json!({ "metadata": { "name": pod,
                        "labels": { "app": name, "controller-revision-hash": revision } },
                    "spec": { "containers": [{ "name": "app", "image": image }] },
                    "status": { "containerStatuses": [{ "name": "app", "ready": false, "state": { "waiting": {
                        "reason": "ImagePullBackOff",
                        "message": format!("Back-off pulling image \"{image}\"") } } }] } })
            };
            let mut items = Vec::new();
            if is_bad(name, d, state) {
                items.push(broken(
                    format!("{name}-7d9-x1"),
                    &d.image,
                    format!("{name}-rev{}", d.generation),
                ));
            }
            if let Some((generation, image)) = &d.stuck {
                items.push(broken(
                    format!("{name}-{}", d.replicas - 1),
                    image,
                    format!("{name}-rev{generation}"),
                ));
            }
            (200, json!({ "items": items }))
        }
        ("DELETE", ["api", "v1", "namespaces", _, "pods", pod]) => {
            // Deleting the stuck pod lets the controller recreate it from the template.
            let stale_for = state.stale_for;
            for (name, d) in state.deployments.iter_mut() {
                if d.stuck.is_some() && *pod == format!("{name}-{}", d.replicas - 1) {
                    d.stuck = None;
                    d.changed = Instant::now() - stale_for;
                    return (200, json!({ "kind": "Pod", "metadata": { "name": pod } }));
                }
            }
            (
                404,
                json!({ "kind": "Status", "code": 404, "message": format!("pods \"{pod}\" not found") }),
            )
        }
        ("GET", ["api", "v1", "namespaces", _, "events"]) => {
            let items: Vec<Value> = state
                .deployments
                .iter()
                .filter(|(name, d)| is_bad(name, d, state))
                .map(|(name, d)| {
                    json!({ "type": "Warning", "reason": "Failed",
                    "involvedObject": { "kind": "Pod", "name": format!("{name}-7d9-x1") },
                    "message": format!("Failed to pull image \"{}\": manifest unknown", d.image) })
                })
                .chain(
                    state
                        .over_quota
                        .iter()
                        .filter(|name| state.deployments.get(*name).is_some_and(|d| d.image != d.initial))
                        .map(|name| {
                            json!({ "type": "Warning", "reason": "FailedCreate",
                            "involvedObject": { "kind": "ReplicaSet", "name": format!("{name}-5d8") },
                            "message": format!("Error creating: {}", quota_message(name)) })
                        }),
                )
                .collect();
            (200, json!({ "items": items }))
        }
        _ => (
            404,
            json!({ "message": format!("no route {}", request.path) }),
        ),
    }
}
