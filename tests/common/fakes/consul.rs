//! A stateful fake of the Consul agent's HTTP API (no Consul can be installed here): services
//! registered and deregistered, TTL checks that turn critical when not updated in time, and
//! `/v1/health/service/<name>?passing=1` with blocking queries by `X-Consul-Index`. It models
//! what a supervisor reads and writes, nothing more.

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::http::{Request, Server};

#[derive(Clone, Debug)]
pub struct Service {
    pub id: String,
    pub name: String,
    pub address: String,
    pub port: u64,
    pub tags: Vec<String>,
    pub ttl: Duration,
    pub status: String,
    updated: Instant,
}

#[derive(Default)]
struct State {
    services: BTreeMap<String, Service>,
    index: u64,
    /// `METHOD PATH` of every call, in order.
    calls: Vec<String>,
    /// Bodies of the registrations, in order.
    registrations: Vec<Value>,
}

pub struct Consul {
    pub server: Server,
    state: Arc<(Mutex<State>, Condvar)>,
}

impl Consul {
    pub fn start() -> Consul {
        Consul::start_on("127.0.0.1")
    }

    /// Listening on `address` (`0.0.0.0` for containers to reach it).
    pub fn start_on(address: &str) -> Consul {
        let state: Arc<(Mutex<State>, Condvar)> = Arc::default();
        let shared = Arc::clone(&state);
        let server = Server::start_on_with_headers(address, move |request| {
            let reply = handle(&shared, request);
            shared.1.notify_all();
            reply
        });
        // TTLs lapse as time passes, and a lapse is a change that wakes blocking queries.
        let ticking = Arc::downgrade(&state);
        std::thread::spawn(move || {
            while let Some(state) = ticking.upgrade() {
                {
                    let mut s = state.0.lock().unwrap();
                    let now = Instant::now();
                    let mut changed = false;
                    for service in s.services.values_mut() {
                        if service.status != "critical" && now - service.updated > service.ttl {
                            service.status = "critical".into();
                            changed = true;
                        }
                    }
                    if changed {
                        s.index += 1;
                        state.1.notify_all();
                    }
                }
                drop(state);
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        Consul { server, state }
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.server.port)
    }

    pub fn services(&self) -> BTreeMap<String, Service> {
        self.state.0.lock().unwrap().services.clone()
    }

    pub fn calls(&self) -> Vec<String> {
        self.state.0.lock().unwrap().calls.clone()
    }

    pub fn registrations(&self) -> Vec<Value> {
        self.state.0.lock().unwrap().registrations.clone()
    }

    /// Registers an instance as another node's agent would, passing.
    pub fn add_instance(&self, id: &str, name: &str, address: &str, port: u64) {
        let mut s = self.state.0.lock().unwrap();
        s.services.insert(
            id.into(),
            Service {
                id: id.into(),
                name: name.into(),
                address: address.into(),
                port,
                tags: Vec::new(),
                ttl: Duration::from_secs(3600),
                status: "passing".into(),
                updated: Instant::now(),
            },
        );
        s.index += 1;
        self.state.1.notify_all();
    }

    /// Waits up to `limit` for `test` to hold of the state.
    pub fn wait_for(&self, limit: Duration, what: &str, test: impl Fn(&Consul) -> bool) {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if test(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "consul fake: no {what} within {limit:?}; calls: {:#?}; services: {:#?}",
            self.calls(),
            self.services()
        );
    }
}

fn handle(
    shared: &Arc<(Mutex<State>, Condvar)>,
    request: &Request,
) -> (u16, Value, Vec<(String, String)>) {
    let mut s = shared.0.lock().unwrap();
    s.calls.push(format!("{} {}", request.method, request.path));
    let path = request.path.as_str();
    let method = request.method.as_str();
    let none = Vec::new();
    if method == "PUT" && path == "/v1/agent/service/register" {
        let body = request.json();
        let Some(id) = body["ID"].as_str().or(body["Name"].as_str()) else {
            return (400, json!("missing service name"), none);
        };
        let ttl = body["Check"]["TTL"]
            .as_str()
            .and_then(|t| t.strip_suffix('s'))
            .and_then(|t| t.parse().ok())
            .map_or(Duration::from_secs(3600), Duration::from_secs);
        let service = Service {
            id: id.into(),
            name: body["Name"].as_str().unwrap_or(id).into(),
            address: body["Address"].as_str().unwrap_or_default().into(),
            port: body["Port"].as_u64().unwrap_or(0),
            tags: serde_json::from_value(body["Tags"].clone()).unwrap_or_default(),
            ttl,
            status: body["Check"]["Status"]
                .as_str()
                .unwrap_or("critical")
                .into(),
            updated: Instant::now(),
        };
        s.services.insert(id.into(), service);
        s.registrations.push(body);
        s.index += 1;
        return (200, Value::Null, none);
    }
    if let Some(id) = path.strip_prefix("/v1/agent/service/deregister/") {
        if method != "PUT" {
            return (405, Value::Null, none);
        }
        return match s.services.remove(id) {
            Some(_) => {
                s.index += 1;
                (200, Value::Null, none)
            }
            None => (404, json!(format!("Unknown service ID {id:?}")), none),
        };
    }
    if let Some(check) = path.strip_prefix("/v1/agent/check/update/") {
        let Some(id) = check.strip_prefix("service:") else {
            return (404, json!("Unknown check ID"), none);
        };
        let body = request.json();
        let status = body["Status"].as_str().unwrap_or_default().to_string();
        if !["passing", "warning", "critical"].contains(&status.as_str()) {
            return (400, json!("invalid check status"), none);
        }
        let Some(service) = s.services.get_mut(id) else {
            return (
                404,
                json!(format!("Unknown check ID \"service:{id}\"")),
                none,
            );
        };
        let changed = service.status != status;
        service.status = status;
        service.updated = Instant::now();
        if changed {
            s.index += 1;
        }
        return (200, Value::Null, none);
    }
    if let Some(name) = path.strip_prefix("/v1/health/service/") {
        // A blocking query waits for the index to move past the one given.
        if let Some(index) = request.param("index").and_then(|i| i.parse::<u64>().ok()) {
            let wait = request
                .param("wait")
                .and_then(|w| w.trim_end_matches('s').parse().ok())
                .map_or(Duration::from_secs(300), Duration::from_secs);
            let end = Instant::now() + wait;
            while s.index <= index && Instant::now() < end {
                s = shared.1.wait_timeout(s, end - Instant::now()).unwrap().0;
            }
        }
        let passing_only = request
            .param("passing")
            .is_some_and(|p| p != "0" && p != "false");
        let entries: Vec<Value> = s
            .services
            .values()
            .filter(|svc| svc.name == name)
            .filter(|svc| !passing_only || svc.status == "passing")
            .map(|svc| {
                json!({
                    "Node": {"Node": "fake", "Address": "127.0.0.1"},
                    "Service": {"ID": svc.id, "Service": svc.name, "Address": svc.address, "Port": svc.port, "Tags": svc.tags},
                    "Checks": [{"CheckID": format!("service:{}", svc.id), "Status": svc.status}],
                })
            })
            .collect();
        let index = s.index.to_string();
        return (200, json!(entries), vec![("X-Consul-Index".into(), index)]);
    }
    if path == "/v1/agent/services" {
        let map: serde_json::Map<String, Value> = s
            .services
            .values()
            .map(|svc| {
                (
                    svc.id.clone(),
                    json!({"ID": svc.id, "Service": svc.name, "Port": svc.port}),
                )
            })
            .collect();
        return (200, Value::Object(map), none);
    }
    (404, json!("no such endpoint in the fake"), none)
}
