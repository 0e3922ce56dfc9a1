//! The config's other sections: `consul`, `logging`, `control`, `telemetry`, `watches`, job
//! `interfaces`, and tagpilot's own `tagpilot` extensions.

use std::net::IpAddr;
use std::time::Duration;

use serde_json::Value;

use super::decode::{self, Issue, Obj};
use super::jobs::{is_service_name, Job};

/// Where the Consul agent is.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Consul {
    /// `host:port`, a unix socket path, or empty for the `CONSUL_HTTP_ADDR` / local default.
    pub address: String,
    /// http, https or unix; empty for the default.
    pub scheme: String,
    pub token: String,
    pub tls: Option<ConsulTls>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConsulTls {
    pub cafile: String,
    pub capath: String,
    pub clientcert: String,
    pub clientkey: String,
    pub servername: String,
    pub verify: bool,
}

/// `None` is "no discovery backend": a value that is neither a string nor an object.
pub fn consul(value: &Value) -> Result<Option<Consul>, Issue> {
    match value {
        Value::String(text) => {
            let (scheme, address) = match text.split_once("://") {
                Some((scheme, rest)) => {
                    if !["http", "https", "unix"].contains(&scheme) {
                        return Err(Issue::new(
                            "consul",
                            format!("Unknown protocol scheme: {scheme}"),
                        ));
                    }
                    (scheme.to_string(), rest.to_string())
                }
                None => (String::new(), text.clone()),
            };
            Ok(Some(Consul {
                address,
                scheme,
                ..Consul::default()
            }))
        }
        Value::Object(_) => {
            let mut obj = Obj::new("consul", value)?;
            let mut consul = Consul {
                address: obj.string("address")?.unwrap_or_default(),
                scheme: obj.string("scheme")?.unwrap_or_default(),
                token: obj.string("token")?.unwrap_or_default(),
                tls: None,
            };
            if let Some(mut tls) = obj.object("tls")? {
                consul.tls = Some(ConsulTls {
                    cafile: tls.string("cafile")?.unwrap_or_default(),
                    capath: tls.string("capath")?.unwrap_or_default(),
                    clientcert: tls.string("clientcert")?.unwrap_or_default(),
                    clientkey: tls.string("clientkey")?.unwrap_or_default(),
                    servername: tls.string("servername")?.unwrap_or_default(),
                    verify: tls.bool("verify")?.unwrap_or(true),
                });
                tls.finish()?;
            }
            obj.finish()?;
            Ok(Some(consul))
        }
        _ => Ok(None),
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, PartialOrd)]
pub enum Level {
    Panic,
    Fatal,
    Error,
    Warn,
    #[default]
    Info,
    Debug,
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Format {
    #[default]
    Default,
    Text,
    Json,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Logging {
    pub level: Level,
    pub format: Format,
    /// `stdout`, `stderr` or a file path.
    pub output: String,
}

impl Default for Logging {
    fn default() -> Self {
        Logging {
            level: Level::Info,
            format: Format::Default,
            output: "stdout".into(),
        }
    }
}

pub fn logging(value: &Value) -> Result<Logging, Issue> {
    let mut obj = Obj::new("logging", value)?;
    let level = obj.string("level")?.unwrap_or_else(|| "info".into());
    let format = obj.string("format")?.unwrap_or_else(|| "default".into());
    let output = obj.string("output")?.unwrap_or_else(|| "stdout".into());
    obj.finish()?;
    let fail = |message: String| Issue::new("logging", message);
    let level = match level.to_ascii_lowercase().as_str() {
        "panic" => Level::Panic,
        "fatal" => Level::Fatal,
        "error" => Level::Error,
        "warn" | "warning" => Level::Warn,
        "info" => Level::Info,
        "debug" => Level::Debug,
        _ => {
            return Err(fail(format!(
                "Unknown log level '{level}' (one of panic, fatal, error, warn, info, debug)"
            )))
        }
    };
    let format = match format.to_ascii_lowercase().as_str() {
        "default" => Format::Default,
        "text" => Format::Text,
        "json" => Format::Json,
        _ => {
            return Err(fail(format!(
                "Unknown log format '{format}' (default, text or json)"
            )))
        }
    };
    Ok(Logging {
        level,
        format,
        output,
    })
}

#[derive(Clone, Debug, PartialEq)]
pub struct Control {
    pub socket: String,
}

impl Default for Control {
    fn default() -> Self {
        Control {
            socket: "/var/run/containerpilot.socket".into(),
        }
    }
}

pub fn control(value: &Value) -> Result<Control, Issue> {
    let mut obj = Obj::new("control", value)?;
    let socket = obj.string("socket")?;
    obj.finish()?;
    match socket {
        Some(s) if s.is_empty() => Err(Issue {
            path: "control.socket".into(),
            message: "control server not loading due to missing config: the socket path is empty"
                .into(),
        }),
        Some(socket) => Ok(Control { socket }),
        None => Ok(Control::default()),
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
    Summary,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Metric {
    /// `namespace_subsystem_name`, the parts that are given.
    pub full_name: String,
    pub help: String,
    pub kind: MetricKind,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Telemetry {
    pub port: i64,
    pub interfaces: Vec<InterfaceSpec>,
    pub tags: Vec<String>,
    pub metrics: Vec<Metric>,
}

pub fn telemetry(value: &Value) -> Result<Telemetry, Issue> {
    let mut obj = Obj::new("telemetry", value)?;
    let port = obj.int("port")?.unwrap_or(9090);
    let interfaces_value = obj.take("interfaces");
    let tags = obj.strings("tags")?.unwrap_or_default();
    let metric_objects = obj.objects("metrics")?;
    obj.finish()?;
    let interfaces = interfaces(interfaces_value).map_err(|message| Issue {
        path: "telemetry.interfaces".into(),
        message,
    })?;
    let mut metrics = Vec::new();
    for mut m in metric_objects {
        let namespace = m.string("namespace")?.unwrap_or_default();
        let subsystem = m.string("subsystem")?.unwrap_or_default();
        let name = m.string("name")?.unwrap_or_default();
        let help = m.string("help")?.unwrap_or_default();
        let kind = m.string("type")?.unwrap_or_default();
        let path = m.path.clone();
        m.finish()?;
        let fail = |message: String| Issue::new(path.clone(), message);
        let kind = match kind.as_str() {
            "counter" => MetricKind::Counter,
            "gauge" => MetricKind::Gauge,
            "histogram" => MetricKind::Histogram,
            "summary" => MetricKind::Summary,
            _ => {
                return Err(fail(format!(
                    "invalid metric type: {kind} (counter, gauge, histogram or summary)"
                )))
            }
        };
        let full_name = [namespace, subsystem, name]
            .into_iter()
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join("_");
        if !is_metric_name(&full_name) {
            return Err(fail(format!("{full_name:?} is not a valid metric name")));
        }
        if help.is_empty() {
            return Err(fail(format!("metric {full_name:?}: empty help string")));
        }
        metrics.push(Metric {
            full_name,
            help,
            kind,
        });
    }
    Ok(Telemetry {
        port,
        interfaces,
        tags,
        metrics,
    })
}

/// Prometheus: `^[a-zA-Z_:][a-zA-Z0-9_:]*$`.
fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

#[derive(Clone, Debug, PartialEq)]
pub struct Watch {
    pub name: String,
    pub interval: Duration,
    pub tag: String,
    pub dc: String,
}

pub fn watches(value: &Value) -> Result<Vec<Watch>, Vec<Issue>> {
    decode::each_item("watches", value, watch)
}

fn watch(path: &str, value: &Value) -> Result<Watch, Issue> {
    let mut obj = Obj::new(path, value)?;
    let name = obj.string("name")?.unwrap_or_default();
    let interval = obj.int("interval")?.unwrap_or(0);
    let tag = obj.string("tag")?.unwrap_or_default();
    let dc = obj.string("dc")?.unwrap_or_default();
    obj.finish()?;
    let fail = |message: String| Issue::new(path.to_string(), message);
    if name.is_empty() {
        return Err(fail("'name' must not be blank".into()));
    }
    if !is_service_name(&name) {
        return Err(fail(format!(
            "watch[{name}]: service names must be alphanumeric with dashes to comply with service discovery"
        )));
    }
    if interval <= 0 {
        return Err(fail(format!("watch[{name}].interval must be > 0")));
    }
    Ok(Watch {
        name,
        interval: Duration::from_secs(interval as u64),
        tag,
        dc,
    })
}

/// Which address a service registers: the first spec that matches an interface wins.
#[derive(Clone, Debug, PartialEq)]
pub enum InterfaceSpec {
    /// Any IPv4 (`inet`) or IPv6 (`inet6`) address that is not loopback.
    AnyV4,
    AnyV6,
    /// A named interface, its IPv4 or (with `:inet6`) IPv6 address.
    Named {
        name: String,
        ipv6: bool,
    },
    /// The n-th address of a named interface (`eth0[1]`).
    Indexed {
        name: String,
        index: usize,
    },
    Cidr {
        network: IpAddr,
        prefix: u8,
    },
    Static(IpAddr),
}

/// Interface specs; the default is `["eth0:inet", "inet"]`.
pub fn interfaces(value: Option<&Value>) -> Result<Vec<InterfaceSpec>, String> {
    let specs: Vec<String> = match value {
        None => vec!["eth0:inet".into(), "inet".into()],
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| decode::weak_string(v).unwrap_or_else(|| v.to_string()))
            .collect(),
        Some(other) => return Err(format!("unexpected argument type: {}", decode::kind(other))),
    };
    specs.iter().map(|s| interface(s)).collect()
}

fn interface(spec: &str) -> Result<InterfaceSpec, String> {
    let bad = || format!("Unable to parse interface spec: {spec}");
    if let Some(ip) = spec.strip_prefix("static:") {
        return ip
            .parse()
            .map(InterfaceSpec::Static)
            .map_err(|_| format!("Unable to parse static ip {spec}"));
    }
    if let Some((network, prefix)) = spec.split_once('/') {
        let network: IpAddr = network.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(bad());
        }
        return Ok(InterfaceSpec::Cidr { network, prefix });
    }
    match spec {
        "inet" => return Ok(InterfaceSpec::AnyV4),
        "inet6" => return Ok(InterfaceSpec::AnyV6),
        _ => {}
    }
    if let Some((name, index)) = spec.strip_suffix(']').and_then(|s| s.split_once('[')) {
        let index = index.parse().map_err(|_| bad())?;
        return Ok(InterfaceSpec::Indexed {
            name: name.into(),
            index,
        });
    }
    match spec.split_once(':') {
        Some((name, "inet6")) => Ok(InterfaceSpec::Named {
            name: name.into(),
            ipv6: true,
        }),
        Some((name, "inet")) => Ok(InterfaceSpec::Named {
            name: name.into(),
            ipv6: false,
        }),
        Some(_) => Err(bad()),
        None if spec.is_empty() => Err(bad()),
        None => Ok(InterfaceSpec::Named {
            name: spec.into(),
            ipv6: false,
        }),
    }
}

/// What tagpilot's supervisor does beyond ContainerPilot, each switched on by name under the
/// top-level `tagpilot` key (which ContainerPilot refuses, so a config that uses one says so).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Extensions {
    /// `mainJob`: when this job ends for good, the supervisor shuts down and exits with its
    /// status (ContainerPilot exits 0 whatever happened).
    pub main_job: Option<String>,
    /// `consulOptional`: run without `consul`; services are then not registered.
    pub consul_optional: bool,
    /// `restartOnUnhealthy`: these jobs are restarted after `unhealthyAfter` failed health
    /// checks in a row: SIGTERM to the process group, SIGKILL after a stop timeout.
    pub restart_on_unhealthy: Vec<String>,
    pub unhealthy_after: u64,
    /// `jobStopTimeout`: a job's own `stopTimeout` is honoured (SIGKILL after it).
    pub job_stop_timeout: bool,
    /// `reregisterAfterMaintenance`: services register again when maintenance ends.
    pub reregister_after_maintenance: bool,
}

pub fn extensions(value: &Value) -> Result<Extensions, Issue> {
    let mut obj = Obj::new("tagpilot", value)?;
    let extensions = Extensions {
        main_job: obj.string("mainJob")?,
        consul_optional: obj.bool("consulOptional")?.unwrap_or(false),
        restart_on_unhealthy: obj.strings("restartOnUnhealthy")?.unwrap_or_default(),
        unhealthy_after: obj.int("unhealthyAfter")?.unwrap_or(3).max(1) as u64,
        job_stop_timeout: obj.bool("jobStopTimeout")?.unwrap_or(false),
        reregister_after_maintenance: obj.bool("reregisterAfterMaintenance")?.unwrap_or(false),
    };
    obj.finish()?;
    Ok(extensions)
}

impl Extensions {
    /// The extensions name jobs that exist, with what they need.
    pub fn check(&self, jobs: &[Job]) -> Result<(), Issue> {
        let fail = |message: String| {
            Err(Issue {
                path: "tagpilot".into(),
                message,
            })
        };
        let find = |name: &str| jobs.iter().find(|j| j.name == name);
        if let Some(main) = &self.main_job {
            match find(main) {
                None => return fail(format!("mainJob `{main}` is not a job")),
                Some(job) if job.exec.is_none() => {
                    return fail(format!("mainJob `{main}` has no `exec`"))
                }
                _ => {}
            }
        }
        for name in &self.restart_on_unhealthy {
            match find(name) {
                None => return fail(format!("restartOnUnhealthy: `{name}` is not a job")),
                Some(job) if job.health.is_none() => {
                    return fail(format!(
                        "restartOnUnhealthy: job `{name}` has no `health` check"
                    ))
                }
                _ => {}
            }
        }
        Ok(())
    }
}
