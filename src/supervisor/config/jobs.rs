//! `jobs`: what the supervisor runs, when, how often, how it is checked and registered.
//! The rules are ContainerPilot's (jobs/config.go), each confirmed against its binary.

use std::time::Duration;

use serde_json::Value;

use super::decode::{self, go_duration, go_duration_nanos, Issue, Obj};
use super::services::{interfaces, InterfaceSpec};

#[derive(Clone, Debug)]
pub struct Job {
    pub name: String,
    /// The command and its arguments; `None` for a job that only publishes events.
    pub exec: Option<Vec<String>>,
    pub port: Option<i64>,
    pub initial_status: Option<String>,
    pub interfaces: Vec<InterfaceSpec>,
    pub tags: Vec<String>,
    pub enable_tag_override: bool,
    pub deregister_critical_service_after: Option<String>,
    pub health: Option<Health>,
    /// `logging.raw`: pass output through untouched.
    pub raw_logging: bool,
    pub when: When,
    /// `when.timeout`: publish timerExpired and stop waiting after this long.
    pub when_timeout: Option<Duration>,
    /// The exec's own timeout: its process group is killed after this long.
    pub timeout: Option<Duration>,
    pub restarts: Restarts,
    pub stop_timeout: Option<Duration>,
}

impl Job {
    /// A job with a port is a service: registered in Consul and health-checked.
    pub fn is_service(&self) -> bool {
        self.port.is_some_and(|p| p != 0)
    }
}

#[derive(Clone, Debug)]
pub struct Health {
    pub exec: Option<Vec<String>>,
    pub interval: Duration,
    pub ttl: u64,
    pub timeout: Duration,
    pub raw_logging: bool,
}

/// When a job starts.
#[derive(Clone, Debug, PartialEq)]
pub enum When {
    /// At start-up (no `when`, or `when` with neither `once`, `each` nor `interval`).
    Startup,
    /// At start-up and then every interval.
    Interval(Duration),
    Once {
        source: String,
        event: String,
    },
    Each {
        source: String,
        event: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Restarts {
    Never,
    Unlimited,
    Times(u64),
}

/// The event codes a `when` can name, exactly as ContainerPilot spells them.
pub const EVENTS: [&str; 14] = [
    "exitSuccess",
    "exitFailed",
    "stopping",
    "stopped",
    "healthy",
    "unhealthy",
    "changed",
    "enterMaintenance",
    "exitMaintenance",
    "startup",
    "shutdown",
    "timerExpired",
    "error",
    "quit",
];

/// The `jobs` list.
pub fn jobs(value: &Value) -> Result<Vec<Job>, Vec<Issue>> {
    decode::each_item("jobs", value, job)
}

fn job(path: &str, value: &Value) -> Result<Job, Issue> {
    let mut obj = Obj::new(path, value)?;
    let name = obj.string("name")?.unwrap_or_default();
    let exec = obj.take("exec").map(command).transpose();
    let port = obj.int("port")?;
    let initial_status = obj.string("initial_status")?;
    let interfaces_value = obj.take("interfaces");
    let tags = obj.strings("tags")?.unwrap_or_default();
    let consul = obj.object("consul")?;
    let health = obj.object("health")?;
    let logging = obj.object("logging")?;
    let when = obj.object("when")?;
    let timeout = obj.string("timeout")?;
    let restarts = obj.take("restarts");
    let stop_timeout = obj.string("stopTimeout")?;
    obj.finish()?;

    let fail = |message: String| Issue::new(path.to_string(), message);
    if name.is_empty() {
        return Err(fail("'name' must not be blank".into()));
    }
    let label = format!("job[{name}]");
    let exec = exec.map_err(|m| fail(format!("{label}.exec: {m}")))?;

    let (enable_tag_override, deregister) = match consul {
        Some(c) => job_consul(c)?,
        None => (false, None),
    };
    let raw_logging = logging.map(raw).transpose()?.unwrap_or(false);
    let health = health.map(|h| health_check(h, &label)).transpose()?;
    let (when, when_timeout) = match when {
        Some(w) => when_clause(w, &label)?,
        None => (When::Startup, None),
    };
    let timeout = timeout
        .map(|t| bounded(&t, &format!("{label}.timeout")))
        .transpose()
        .map_err(fail)?;
    let restarts = restarts_policy(restarts, &when, &label).map_err(fail)?;
    let stop_timeout = stop_timeout
        .map(|t| {
            go_duration(&t).ok_or(format!(
                "unable to parse {label}.stopTimeout '{t}': invalid duration"
            ))
        })
        .transpose()
        .map_err(fail)?;

    let mut job = Job {
        name,
        exec,
        port,
        initial_status,
        interfaces: Vec::new(),
        tags,
        enable_tag_override,
        deregister_critical_service_after: deregister.clone().filter(|d| !d.is_empty()),
        health,
        raw_logging,
        when,
        when_timeout,
        timeout,
        restarts,
        stop_timeout,
    };
    if job.is_service() {
        job.interfaces = service_checks(&job, deregister.as_deref(), interfaces_value)
            .map_err(|message| fail(format!("{label}{message}")))?;
    }
    Ok(job)
}

/// What ContainerPilot checks of a job with a port; its interface specs. Messages start
/// after the job's label.
fn service_checks(
    job: &Job,
    deregister: Option<&str>,
    interfaces_value: Option<&Value>,
) -> Result<Vec<InterfaceSpec>, String> {
    if !is_service_name(&job.name) {
        return Err(": service names must be alphanumeric with dashes to comply with service discovery (`^[a-z][a-zA-Z0-9-]+$`)".into());
    }
    if job.health.is_none() && job.name != "containerpilot" {
        return Err(".health must be set if 'port' is set".into());
    }
    if let Some(status) = &job.initial_status {
        if !["passing", "warning", "critical"].contains(&status.as_str()) {
            return Err(".initialStatus must be one of 'passing', 'warning' or 'critical'".into());
        }
    }
    if let Some(dcsa) = deregister {
        if !is_plain_go_duration(dcsa) {
            return Err(format!(
                ".consul.deregisterCriticalServiceAfter: invalid duration {dcsa:?} (a Go duration with a unit, such as \"10m\")"
            ));
        }
    }
    interfaces(interfaces_value).map_err(|e| format!(".interfaces: {e}"))
}

/// Go's `time.ParseDuration`, which (unlike ContainerPilot's timeouts) wants a unit.
fn is_plain_go_duration(text: &str) -> bool {
    text == "0" || (text.parse::<i64>().is_err() && go_duration_nanos(text).is_some())
}

/// `^[a-z][a-zA-Z0-9-]+$`
pub fn is_service_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && name.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// A job's `consul` block: `enableTagOverride`, and `deregisterCriticalServiceAfter` as
/// given (an empty one is checked, and refused, for a service).
fn job_consul(mut consul: Obj) -> Result<(bool, Option<String>), Issue> {
    let eto = consul.bool("enableTagOverride")?.unwrap_or(false);
    let dcsa = consul
        .string("deregisterCriticalServiceAfter")?
        .unwrap_or_default();
    consul.finish()?;
    Ok((eto, Some(dcsa)))
}

fn raw(mut logging: Obj) -> Result<bool, Issue> {
    let raw = logging.bool("raw")?.unwrap_or(false);
    logging.finish()?;
    Ok(raw)
}

/// An exec: a string split on single spaces (no shell, no quoting), or a list whose items
/// are printed as strings.
pub fn command(value: &Value) -> Result<Vec<String>, String> {
    let args: Vec<String> = match value {
        Value::String(s) if !s.is_empty() => s.split(' ').map(String::from).collect(),
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|v| decode::weak_string(v).unwrap_or_else(|| v.to_string()))
            .collect(),
        _ => Vec::new(),
    };
    if args.is_empty() {
        Err("received zero-length argument".into())
    } else {
        Ok(args)
    }
}

fn health_check(mut obj: Obj, label: &str) -> Result<Health, Issue> {
    let exec = obj.take("exec").map(command).transpose();
    let interval = obj.int("interval")?.unwrap_or(0);
    let ttl = obj.int("ttl")?.unwrap_or(0);
    let timeout = obj.string("timeout")?;
    let logging = obj.object("logging")?;
    let path = obj.path.clone();
    obj.finish()?;
    let fail = |message: String| Issue::new(path.clone(), message);
    let exec = exec.map_err(|m| fail(format!("unable to create {label}.health.exec: {m}")))?;
    if interval <= 0 {
        return Err(fail(format!("{label}.health.interval must be > 0")));
    }
    if ttl <= 0 {
        return Err(fail(format!("{label}.health.ttl must be > 0")));
    }
    let interval = Duration::from_secs(interval as u64);
    let timeout = match timeout {
        Some(t) => go_duration(&t).ok_or_else(|| {
            fail(format!(
                "could not parse {label}.health.timeout '{t}': invalid duration"
            ))
        })?,
        None => interval,
    };
    let raw_logging = match logging {
        Some(l) => raw(l)?,
        None => false,
    };
    Ok(Health {
        exec,
        interval,
        ttl: ttl as u64,
        timeout,
        raw_logging,
    })
}

fn when_clause(mut obj: Obj, label: &str) -> Result<(When, Option<Duration>), Issue> {
    let interval = obj.string("interval")?;
    let source = obj.string("source")?.unwrap_or_default();
    let once = obj.string("once")?;
    let each = obj.string("each")?;
    let timeout = obj.string("timeout")?;
    let path = obj.path.clone();
    obj.finish()?;
    let fail = |message: String| Issue::new(path.clone(), message);
    let given = [&interval, &once, &each]
        .iter()
        .filter(|v| v.is_some())
        .count();
    if given > 1 {
        return Err(fail(format!(
            "{label}.when can have only one of 'interval', 'once', or 'each'"
        )));
    }
    let timeout = timeout
        .map(|t| {
            go_duration(&t).ok_or_else(|| {
                fail(format!(
                    "unable to parse {label}.when.timeout: invalid duration {t:?}"
                ))
            })
        })
        .transpose()?
        .filter(|t| !t.is_zero());
    let event = |code: &String| -> Result<String, Issue> {
        if super::jobs::EVENTS.contains(&code.as_str()) {
            Ok(code.clone())
        } else {
            Err(fail(format!(
                "unable to parse {label}.when.event: {code} is not a valid event code (one of {})",
                EVENTS.join(", ")
            )))
        }
    };
    let when = if let Some(interval) = interval {
        When::Interval(bounded(&interval, &format!("{label}.when.interval")).map_err(fail)?)
    } else if let Some(code) = &once {
        When::Once {
            source,
            event: event(code)?,
        }
    } else if let Some(code) = &each {
        When::Each {
            source,
            event: event(code)?,
        }
    } else if source == "SIGHUP" || source == "SIGUSR2" {
        // A signal trigger: the job runs each time the supervisor gets that signal.
        When::Each {
            source,
            event: "signal".into(),
        }
    } else {
        When::Startup
    };
    Ok((when, timeout))
}

/// A duration that must be at least 1ms.
fn bounded(text: &str, label: &str) -> Result<Duration, String> {
    match go_duration_nanos(text) {
        None => Err(format!(
            "unable to parse {label} '{text}': invalid duration"
        )),
        Some(n) if n < 1_000_000 => Err(format!("{label} '{text}' cannot be less than 1ms")),
        Some(n) => Ok(Duration::from_nanos(n as u64)),
    }
}

fn restarts_policy(value: Option<&Value>, when: &When, label: &str) -> Result<Restarts, String> {
    let Some(value) = value else {
        return Ok(Restarts::Never);
    };
    let shown = decode::weak_string(value).unwrap_or_else(|| value.to_string());
    let shown = if let Value::Bool(b) = value {
        b.to_string()
    } else {
        shown
    };
    let restarts = match value {
        Value::String(s) if s == "unlimited" => Restarts::Unlimited,
        Value::String(s) if s == "never" => Restarts::Never,
        Value::String(s) => match s.parse::<i64>() {
            Ok(n) if n >= 0 => Restarts::Times(n as u64),
            Ok(_) => {
                return Err(format!(
                    "{label}.restarts field '{s}' invalid: number must be positive integer"
                ))
            }
            Err(_) => {
                return Err(format!(
                    "{label}.restarts field '{s}' invalid: accepts positive integers, \"unlimited\", or \"never\""
                ))
            }
        },
        Value::Number(n) => match n.as_f64().map(|f| f as i64) {
            Some(n) if n >= 0 => Restarts::Times(n as u64),
            _ => {
                return Err(format!(
                    "{label}.restarts field '{shown}' invalid: number must be positive integer"
                ))
            }
        },
        _ => {
            return Err(format!(
                "{label}.restarts field '{shown}' invalid: accepts positive integers, \"unlimited\", or \"never\""
            ))
        }
    };
    if restarts == Restarts::Unlimited && matches!(when, When::Each { .. }) {
        return Err(format!(
            "{label}.restarts field 'unlimited' invalid: may not be used when 'job.when.each' is set because it may result in infinite processes"
        ));
    }
    Ok(restarts)
}
