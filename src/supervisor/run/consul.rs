//! The Consul agent API, the calls ContainerPilot makes: register a service with a TTL check,
//! pass the check, deregister, and list the passing instances of a service.
//!
//! Calls are short (2 s to connect, 5 s for the answer) and made from the supervisor's core,
//! so the order of registrations and events stays the order ContainerPilot has.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};

use crate::supervisor::config::Consul;

pub struct Agent {
    base: Target,
    token: String,
    http: ureq::Agent,
}

enum Target {
    Http(String),
    Unix(std::path::PathBuf),
}

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
        let base = match scheme.as_str() {
            "unix" => Target::Unix(address.into()),
            "http" | "https" => Target::Http(format!("{scheme}://{address}")),
            other => return Err(format!("Unknown protocol scheme: {other}")),
        };
        let http = crate::net::agent(tls, Duration::from_secs(5), crate::net::Redirects::Refuse);
        Ok(Agent { base, token, http })
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Vec<u8>, String> {
        let payload = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let mut headers = Vec::new();
        if !self.token.is_empty() {
            headers.push(("X-Consul-Token", self.token.as_str()));
        }
        let (status, reply) = match &self.base {
            Target::Unix(socket) => {
                let reply = crate::net::unix::request(
                    socket,
                    method,
                    path,
                    &headers,
                    body.map(|_| ("application/json", payload.as_slice())),
                    Duration::from_secs(5),
                )
                .map_err(|e| format!("consul at {}: {e}", socket.display()))?;
                (reply.status, reply.body)
            }
            Target::Http(base) => {
                let url = format!("{base}{path}");
                let mut request = ureq::http::Request::builder().method(method).uri(&url);
                for (name, value) in &headers {
                    request = request.header(*name, *value);
                }
                let request = request
                    .header("Content-Type", "application/json")
                    .body(payload)
                    .map_err(|e| e.to_string())?;
                let request = self
                    .http
                    .configure_request(request)
                    .timeout_global(Some(Duration::from_secs(5)))
                    .build();
                let mut response = self
                    .http
                    .run(request)
                    .map_err(|e| format!("consul at {base}: {e}"))?;
                let status = response.status().as_u16();
                let body = response
                    .body_mut()
                    .with_config()
                    .limit(16 << 20)
                    .read_to_vec()
                    .map_err(|e| format!("consul at {base}: {e}"))?;
                (status, body)
            }
        };
        if (200..300).contains(&status) {
            Ok(reply)
        } else {
            Err(format!(
                "consul: {method} {path}: {status} {}",
                String::from_utf8_lossy(&reply).trim()
            ))
        }
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
        self.call("PUT", "/v1/agent/service/register", Some(&body))
            .map(drop)
    }

    pub fn pass(&self, id: &str) -> Result<(), String> {
        let body = json!({"Status": "passing", "Output": "ok"});
        self.call(
            "PUT",
            &format!("/v1/agent/check/update/service:{id}"),
            Some(&body),
        )
        .map(drop)
    }

    pub fn deregister(&self, id: &str) -> Result<(), String> {
        self.call("PUT", &format!("/v1/agent/service/deregister/{id}"), None)
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
        let body = self.call("GET", &path, None)?;
        let entries: Vec<Value> =
            serde_json::from_slice(&body).map_err(|e| format!("consul: {path}: {e}"))?;
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
