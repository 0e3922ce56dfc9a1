//! The Consul agent API, the calls ContainerPilot makes: register a service with a TTL check,
//! pass the check, deregister, and list the passing instances of a service.
//!
//! Calls go through tagpilot's one API client (`net::api::Api`: HTTP(S) or a unix socket),
//! each sent once with a 5 s deadline from the supervisor's core, so the order of
//! registrations and events stays the order ContainerPilot has; a failed call is made again
//! at the next check or poll.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};

use crate::net::api::{Api, Hints};
use crate::supervisor::config::Consul;

pub struct Agent {
    api: Api,
}

const HINTS: Hints = Hints {
    credential: "Check consul.token in the supervisor config, or CONSUL_HTTP_TOKEN",
    tls: "Check consul.tls (cafile, clientcert, clientkey), or CONSUL_CACERT",
    forbidden: "The token may not change this service",
};

/// One passing instance of a watched service.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Instance {
    pub address: String,
    pub port: u64,
}

pub struct Registration<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub port: i64,
    pub address: &'a str,
    pub tags: &'a [String],
    pub enable_tag_override: bool,
    pub ttl: u64,
    pub status: &'a str,
    pub deregister_after: Option<&'a str>,
}

impl Agent {
    /// The agent the config names; what it leaves empty comes from the `CONSUL_*` variables
    /// (`CONSUL_HTTP_ADDR`, `CONSUL_HTTP_TOKEN`, `CONSUL_HTTP_SSL`, `CONSUL_CACERT`,
    /// `CONSUL_CLIENT_CERT`, `CONSUL_CLIENT_KEY`), as Consul's own client does.
    pub fn new(config: &Consul, env: &BTreeMap<String, String>) -> Result<Agent, String> {
        let var = |k: &str| env.get(k).cloned().unwrap_or_default();
        let mut address = config.address.clone();
        let mut scheme = config.scheme.clone();
        if address.is_empty() {
            address = var("CONSUL_HTTP_ADDR");
            if let Some((s, rest)) = address.clone().split_once("://") {
                scheme = s.into();
                address = rest.into();
            }
        }
        if address.is_empty() {
            address = "127.0.0.1:8500".into();
        }
        if scheme.is_empty() {
            scheme = if ["1", "true"].contains(&var("CONSUL_HTTP_SSL").as_str()) {
                "https".into()
            } else {
                "http".into()
            };
        }
        let token = if config.token.is_empty() {
            var("CONSUL_HTTP_TOKEN")
        } else {
            config.token.clone()
        };
        let mut tls = crate::net::Tls::default();
        let pick = |given: Option<&String>, variable: &str| {
            given
                .filter(|v| !v.is_empty())
                .cloned()
                .unwrap_or_else(|| var(variable))
        };
        let c = config.tls.as_ref();
        let cafile = pick(c.map(|t| &t.cafile), "CONSUL_CACERT");
        if !cafile.is_empty() {
            tls.roots = Some(
                crate::net::read_ca_file(std::path::Path::new(&cafile))
                    .map_err(|e| e.to_string())?,
            );
        }
        let cert = pick(c.map(|t| &t.clientcert), "CONSUL_CLIENT_CERT");
        let key = pick(c.map(|t| &t.clientkey), "CONSUL_CLIENT_KEY");
        if !cert.is_empty() {
            let read = |p: &str| std::fs::read(p).map_err(|e| format!("open {p}: {e}"));
            tls.client = Some(
                crate::net::client_cert(&read(&cert)?, &read(&key)?, &cert)
                    .map_err(|e| e.to_string())?,
            );
        }
        tls.skip_verify = c.is_some_and(|t| !t.verify);
        let api = match scheme.as_str() {
            "unix" => Api::unix("Consul", address.into()),
            "http" | "https" => Api::http("Consul", &format!("{scheme}://{address}"), tls),
            other => return Err(format!("Unknown protocol scheme: {other}")),
        };
        let mut api = api.with_deadline(Duration::from_secs(5)).with_hints(HINTS);
        if !token.is_empty() {
            let from = if config.token.is_empty() {
                "CONSUL_HTTP_TOKEN"
            } else {
                "consul.token"
            };
            api = api.with_credential("X-Consul-Token", token, from);
        }
        Ok(Agent { api })
    }

    /// One call, sent once; its JSON reply, or why not.
    fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        what: &str,
    ) -> Result<Value, String> {
        let body = body.map(|b| ("application/json", b));
        let reply = self
            .api
            .send(method, path, body, what)
            .map_err(|e| e.to_string())?;
        self.api.expect(&reply, what).map_err(|e| e.to_string())?;
        Ok(reply.json())
    }

    pub fn register(&self, r: &Registration) -> Result<(), String> {
        let mut check = json!({
            "TTL": format!("{}s", r.ttl),
            "Status": r.status,
            "Notes": format!("TTL for {} set by containerpilot", r.name),
        });
        if let Some(after) = r.deregister_after {
            check["DeregisterCriticalServiceAfter"] = after.into();
        }
        let body = json!({
            "ID": r.id,
            "Name": r.name,
            "Tags": r.tags,
            "Port": r.port,
            "Address": r.address,
            "EnableTagOverride": r.enable_tag_override,
            "Check": check,
        });
        self.call(
            "PUT",
            "/v1/agent/service/register",
            Some(&body),
            "register a service",
        )
        .map(drop)
    }

    pub fn pass(&self, id: &str) -> Result<(), String> {
        let body = json!({"Status": "passing", "Output": "ok"});
        self.call(
            "PUT",
            &format!("/v1/agent/check/update/service:{id}"),
            Some(&body),
            "pass a TTL check",
        )
        .map(drop)
    }

    pub fn deregister(&self, id: &str) -> Result<(), String> {
        self.call(
            "PUT",
            &format!("/v1/agent/service/deregister/{id}"),
            None,
            "deregister a service",
        )
        .map(drop)
    }

    /// The passing instances of `service`, sorted.
    pub fn passing(&self, service: &str, tag: &str, dc: &str) -> Result<Vec<Instance>, String> {
        let mut path = format!("/v1/health/service/{service}?passing=1");
        if !tag.is_empty() {
            path.push_str(&format!("&tag={tag}"));
        }
        if !dc.is_empty() {
            path.push_str(&format!("&dc={dc}"));
        }
        let reply = self.call("GET", &path, None, "list a service's passing instances")?;
        let entries = reply.as_array().cloned().unwrap_or_default();
        let mut instances: Vec<Instance> = entries
            .iter()
            .map(|entry| {
                let service = &entry["Service"];
                let address = service["Address"]
                    .as_str()
                    .filter(|a| !a.is_empty())
                    .or(entry["Node"]["Address"].as_str())
                    .unwrap_or_default();
                Instance {
                    address: address.to_string(),
                    port: service["Port"].as_u64().unwrap_or(0),
                }
            })
            .collect();
        instances.sort();
        Ok(instances)
    }
}
