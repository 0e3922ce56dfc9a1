//! The embedded supervisor config (the autopilot pattern): ContainerPilot v3, which reads JSON5
//! after Go-template substitution of environment variables, refuses unknown keys, and runs the
//! image's jobs with health checks and Consul registration.
//!
//! One typed model serves both sources: a user's JSON5 file (embedded byte for byte after it
//! validates) and `jobs:` written inline in tagpilot.yaml (rendered here as JSON, which is
//! JSON5). Checks are the ones ContainerPilot makes at start-up, so a bad config fails the
//! release, not the container.

use std::collections::BTreeSet;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

/// ContainerPilot v3's configuration file.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Config {
    /// Consul agent address (`localhost:8500`) or an object with `address`, `scheme`, `token`, `tls`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consul: Option<Consul>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging: Option<Logging>,
    /// How long to wait for jobs to stop before killing them: whole seconds (an int).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<Seconds>,
    #[serde(default)]
    pub jobs: Vec<Job>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub watches: Vec<Watch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control: Option<Control>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telemetry: Option<Telemetry>,
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Consul {
    Address(String),
    Agent(ConsulAgent),
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsulAgent {
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ConsulTls>,
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConsulTls {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cafile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clientcert: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clientkey: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub servername: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<bool>,
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Logging {
    /// DEBUG, INFO, WARN, ERROR, FATAL, PANIC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    /// default, text or json.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// stdout, stderr or a file path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
}

/// A process ContainerPilot runs, restarts, health-checks and registers in Consul.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Job {
    pub name: String,
    /// The command: a string (split on spaces, no shell) or a list of arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<Exec>,
    /// Port to register in Consul; a job with a port is a service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interfaces: Option<StringOrList>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consul: Option<JobConsul>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging: Option<JobLogging>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<When>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// `unlimited`, `never`, or a number of restarts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarts: Option<Restarts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<Duration>,
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct JobConsul {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_tag_override: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deregister_critical_service_after: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobLogging {
    pub raw: bool,
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Health {
    pub exec: Exec,
    pub interval: Seconds,
    pub ttl: Seconds,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging: Option<JobLogging>,
}

/// When a job starts: after an event of another job (`source` + `once`/`each`), or every
/// `interval`.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct When {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
    /// A job name, or `watch.<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub once: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub each: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Watch {
    pub name: String,
    pub interval: Seconds,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dc: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Control {
    pub socket: String,
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Telemetry {
    pub port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interfaces: Option<StringOrList>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<Metric>,
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Metric {
    pub namespace: String,
    pub subsystem: String,
    pub name: String,
    pub help: String,
    /// counter, gauge, histogram or summary.
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Exec {
    Line(String),
    Args(Vec<String>),
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum StringOrList {
    One(String),
    Many(Vec<String>),
}

/// Whole seconds, or a Go duration string (`300ms`, `10s`, `1m30s`).
#[derive(Clone, Debug, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Duration {
    Seconds(u64),
    Text(String),
}

/// Whole seconds, where ContainerPilot decodes an int (top-level `stopTimeout`,
/// `health.interval`, `health.ttl`, `watches[].interval`): a number, or a string of digits
/// (its decoder converts those), never a unit such as "10s".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Seconds(pub u64);

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        let expected = "expected whole seconds as a number (10): ContainerPilot refuses a unit such as \"10s\" here";
        match Raw::deserialize(deserializer) {
            Ok(Raw::Number(n)) => Ok(Seconds(n)),
            Ok(Raw::Text(text)) => text
                .trim()
                .parse()
                .map(Seconds)
                .map_err(|_| serde::de::Error::custom(format!("`{text}`: {expected}"))),
            Err(_) => Err(serde::de::Error::custom(expected)),
        }
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Seconds(u64),
            Text(String),
        }
        let expected = "expected a duration: whole seconds (10) or a Go duration (\"10s\", \"1m30s\", \"500ms\")";
        match Raw::deserialize(deserializer) {
            Ok(Raw::Seconds(n)) => Ok(Duration::Seconds(n)),
            Ok(Raw::Text(text)) if is_go_duration(&text) => Ok(Duration::Text(text)),
            Ok(Raw::Text(text)) => Err(serde::de::Error::custom(format!("`{text}`: {expected}"))),
            Err(_) => Err(serde::de::Error::custom(expected)),
        }
    }
}

/// Go's `time.ParseDuration` syntax: one or more decimal numbers each with a unit.
fn is_go_duration(text: &str) -> bool {
    const UNITS: [&str; 7] = ["ns", "us", "µs", "ms", "s", "m", "h"];
    let mut rest = text.strip_prefix(['-', '+']).unwrap_or(text);
    if rest == "0" {
        return true;
    }
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if digits == 0 {
            return false;
        }
        rest = &rest[digits..];
        let Some(unit) = UNITS.iter().find(|u| rest.starts_with(**u)) else {
            return false;
        };
        rest = &rest[unit.len()..];
    }
    true
}

#[derive(Clone, Debug, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Restarts {
    Count(u64),
    Policy(String),
}

impl<'de> Deserialize<'de> for Restarts {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Count(u64),
            Policy(String),
        }
        let expected = "expected `unlimited`, `never` or a number of restarts";
        match Raw::deserialize(deserializer) {
            Ok(Raw::Count(n)) => Ok(Restarts::Count(n)),
            Ok(Raw::Policy(p)) if p == "unlimited" || p == "never" => Ok(Restarts::Policy(p)),
            Ok(Raw::Policy(p)) => Err(serde::de::Error::custom(format!("`{p}`: {expected}"))),
            Err(_) => Err(serde::de::Error::custom(expected)),
        }
    }
}

/// Events a `when.once` / `when.each` can wait for.
const EVENTS: [&str; 10] = [
    "startup",
    "exitSuccess",
    "exitFailed",
    "stopping",
    "stopped",
    "healthy",
    "unhealthy",
    "changed",
    "enterMaintenance",
    "exitMaintenance",
];

/// A problem with a config, and where it is (line is 1-based, 0 when unknown).
#[derive(Debug)]
pub struct Problem {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "{}:{}: ", self.line, self.column)?;
        }
        f.write_str(&self.message)
    }
}

impl Config {
    /// Parses and checks a ContainerPilot JSON5 file. Go template actions (`{{ .VAR }}`) are
    /// blanked out first, as ContainerPilot substitutes them before parsing.
    pub fn from_json5(text: &str) -> Result<Config, Vec<Problem>> {
        if let Some(problem) = escaped_quotes_in_actions(text) {
            return Err(vec![problem]);
        }
        let untemplated = blank_templates(text);
        let config: Config = json5::from_str(&untemplated).map_err(|e| {
            let (line, column) = e.position().map_or((0, 0), |p| (p.line + 1, p.column + 1));
            let message = e.to_string();
            let message = match message.rfind(" at line ") {
                Some(at) => message[..at].to_string(),
                None => message,
            };
            vec![Problem {
                line,
                column,
                message,
            }]
        })?;
        let problems = config.check(Some(text));
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(problems)
        }
    }

    /// Parses and checks the supervisor file `file` (for messages): one input error listing
    /// every problem at its line, as `FILE:LINE:COL: message`.
    pub fn from_file_text(file: &str, text: &str) -> crate::error::Result<Config> {
        Config::from_json5(text).map_err(|problems| {
            let lines: Vec<String> = problems
                .iter()
                .map(|p| match p.line {
                    0 => format!("{file}: {}", p.message),
                    line => format!("{file}:{line}:{}: {}", p.column.max(1), p.message),
                })
                .collect();
            crate::error::Error::input(format!(
                "the supervisor config would not start ContainerPilot:\n  {}",
                lines.join("\n  ")
            ))
        })
    }

    /// The config as ContainerPilot reads it (JSON is JSON5), with a final newline.
    pub fn render(&self) -> String {
        serde_json::to_string_pretty(self).expect("config is JSON") + "\n"
    }

    /// The checks ContainerPilot makes when it starts. `text` (the file) lets a problem point
    /// at the line of the job it is about.
    pub fn check(&self, text: Option<&str>) -> Vec<Problem> {
        let mut problems = Vec::new();
        let jobs: BTreeSet<&str> = self.jobs.iter().map(|j| j.name.as_str()).collect();
        let watches: BTreeSet<String> = self
            .watches
            .iter()
            .map(|w| format!("watch.{}", w.name))
            .collect();
        let mut seen = BTreeSet::new();
        for (i, job) in self.jobs.iter().enumerate() {
            let line = text.map_or(0, |t| line_of(t, &job.name));
            let mut problem = |message: String| {
                problems.push(Problem {
                    line,
                    column: 0,
                    message: format!("jobs[{i}] `{}`: {message}", job.name),
                })
            };
            if job.name.trim().is_empty() {
                problem("the name is empty".into());
            } else if !seen.insert(job.name.as_str()) {
                problem("another job has the same name".into());
            }
            if let Some(exec) = &job.exec {
                if exec_is_empty(exec) {
                    problem("`exec` is empty: give the command to run".into());
                }
            }
            if let Some(health) = &job.health {
                if exec_is_empty(&health.exec) {
                    problem("`health.exec` is empty: give the check command".into());
                }
                if job.port.is_none() {
                    problem("a health check needs the job's `port` (it is what registers the service in Consul)".into());
                }
            }
            if let Some(when) = &job.when {
                if when.once.is_some() && when.each.is_some() {
                    problem("`when` takes `once` or `each`, not both".into());
                }
                for event in [&when.once, &when.each].into_iter().flatten() {
                    if !EVENTS.contains(&event.as_str()) {
                        problem(format!(
                            "`{event}` is not an event; one of: {}",
                            EVENTS.join(", ")
                        ));
                    }
                }
                if let Some(source) = &when.source {
                    if !jobs.contains(source.as_str()) && !watches.contains(source) {
                        problem(format!(
                            "`when.source` is `{source}`, which is neither a job nor a watch (`watch.<name>`)"
                        ));
                    } else if source == &job.name {
                        problem("`when.source` names the job itself".into());
                    }
                } else if when.interval.is_none() && when.once.as_deref() != Some("startup") {
                    problem(
                        "`when` needs a `source` (or an `interval`, or `once: startup`)".into(),
                    );
                }
            }
        }
        problems
    }
}

fn exec_is_empty(exec: &Exec) -> bool {
    match exec {
        Exec::Line(line) => line.trim().is_empty(),
        Exec::Args(args) => args.first().is_none_or(|a| a.trim().is_empty()),
    }
}

/// A `{{ }}` action with escaped quotes: ContainerPilot renders the template over the raw
/// file, so the template parser sees the backslashes and refuses the whole config.
fn escaped_quotes_in_actions(text: &str) -> Option<Problem> {
    let mut at = 0;
    while let Some(start) = text[at..].find("{{").map(|i| at + i) {
        let end = text[start..]
            .find("}}")
            .map_or(text.len(), |i| start + i + 2);
        if let Some(offset) = text[start..end].find("\\\"") {
            let before = &text[..start + offset];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            return Some(Problem {
                line,
                column,
                message: "escaped quotes (\\\") inside a `{{ }}` action are a template error in ContainerPilot: single-quote the string ('-x={{ .X | default \"y\" }}') and use plain quotes in the action".into(),
            });
        }
        at = end;
    }
    None
}

/// Replaces each `{{ ... }}` with spaces of the same length, keeping lines and columns.
fn blank_templates(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start..].find("}}") else {
            break;
        };
        out.push_str(&rest[..start]);
        let action = &rest[start..start + len + 2];
        out.extend(action.chars().map(|c| if c == '\n' { '\n' } else { 'x' }));
        rest = &rest[start + len + 2..];
    }
    out.push_str(rest);
    out
}

/// The 1-based line where `name` first appears as a quoted string, 0 if nowhere.
fn line_of(text: &str, name: &str) -> usize {
    let quoted = [format!("\"{name}\""), format!("'{name}'")];
    text.lines()
        .position(|line| quoted.iter().any(|q| line.contains(q.as_str())))
        .map_or(0, |i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIRAC: &str = r#"{
  // Comments, unquoted keys and trailing commas: this is JSON5.
  consul: "{{ .CONSUL | default "localhost" }}:8500",
  logging: { level: "INFO" },
  jobs: [
    { name: "consul-agent", exec: ["/usr/local/bin/consul", "agent", "-data-dir=/data"], restarts: "unlimited" },
    {
      name: "filecatalog",
      exec: "dirac-service DataManagement/FileCatalog",
      port: 9197,
      health: { exec: "dirac-ping FileCatalog", interval: 10, ttl: 25, timeout: "5s" },
      when: { source: "consul-agent", once: "healthy" },
    },
  ],
}
"#;

    #[test]
    fn accepts_a_real_config_with_templates() {
        let config = Config::from_json5(DIRAC).unwrap();
        assert_eq!(config.jobs.len(), 2);
        // What tagpilot renders from the model parses back to the same model.
        let again = Config::from_json5(&config.render()).unwrap();
        assert_eq!(again.render(), config.render());
    }

    #[test]
    fn refuses_what_containerpilot_refuses() {
        let cases = [
            (
                DIRAC.replace("restarts:", "restart:"),
                "unknown field `restart`",
                6,
            ),
            (
                DIRAC.replace("\"dirac-service DataManagement/FileCatalog\"", "\"  \""),
                "`exec` is empty",
                8,
            ),
            (
                DIRAC.replace("source: \"consul-agent\"", "source: \"consul\""),
                "neither a job nor a watch",
                8,
            ),
            (
                DIRAC.replace("ttl: 25", "ttl: \"25s\""),
                "ContainerPilot refuses a unit",
                11,
            ),
            (
                DIRAC.replace(
                    "\"-data-dir=/data\"",
                    "\"-join={{ .X | default \\\"y\\\" }}\"",
                ),
                "escaped quotes",
                6,
            ),
            (
                DIRAC.replace("once: \"healthy\"", "once: \"ready\""),
                "`ready` is not an event",
                8,
            ),
            (
                DIRAC.replace("port: 9197,", ""),
                "needs the job's `port`",
                8,
            ),
        ];
        for (text, needle, line) in cases {
            let problems = Config::from_json5(&text).unwrap_err();
            let all: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
            let hit = problems.iter().find(|p| p.message.contains(needle));
            let hit = hit.unwrap_or_else(|| panic!("no {needle:?} in {all:?}"));
            assert_eq!(hit.line, line, "{all:?}");
        }
    }

    #[test]
    fn go_durations() {
        for ok in ["10s", "1m30s", "500ms", "1.5h", "0", "2us"] {
            assert!(is_go_duration(ok), "{ok}");
        }
        for bad in ["", "10", "s", "10 s", "10sec", "1d"] {
            assert!(!is_go_duration(bad), "{bad}");
        }
    }
}
