//! The supervisor config: ContainerPilot v3's file, loaded the way ContainerPilot loads it (Go
//! template over the environment, then JSON5, then mapstructure-style decoding and its
//! validators), plus tagpilot's extensions under the top-level `tagpilot` key.
//!
//! One loader serves both ends: `tagpilot` checks the file at build time with it, and
//! `tagpilot-supervisor` starts from it, so "tagpilot accepts it" means "the supervisor starts
//! it". What can only be known in the running container (which interfaces exist, whether TLS
//! files and log folders are there) is checked at start-up only.

mod decode;
pub mod gotemplate;
mod jobs;
mod services;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

pub use decode::{go_duration, weak_string};

/// A JSON value as the text a process sees in its environment.
pub fn plain_string(value: &serde_json::Value) -> String {
    weak_string(value).unwrap_or_else(|| value.to_string())
}
use decode::Issue;
pub use jobs::{Health, Job, Restarts, When};
pub use services::{
    Consul, Control, Extensions, Format, InterfaceSpec, Level, Logging, Metric, MetricKind,
    Telemetry, Watch,
};

/// A loaded, valid config.
#[derive(Clone, Debug)]
pub struct Config {
    /// `None` only with the `tagpilot.consulOptional` extension.
    pub consul: Option<Consul>,
    pub logging: Logging,
    /// The top-level `stopTimeout`: how long shutdown waits before SIGKILL (default 5 s).
    pub stop_timeout: Duration,
    pub jobs: Vec<Job>,
    pub watches: Vec<Watch>,
    pub control: Control,
    pub telemetry: Option<Telemetry>,
    pub extensions: Extensions,
    /// Lint findings ContainerPilot does not make: the config starts, but may not do what
    /// its author meant.
    pub warnings: Vec<String>,
}

/// A supervisor file as the build-time check found it.
#[derive(Debug)]
pub struct Checked {
    /// As the image's environment loads it; `None` when that needs variables set at run time.
    pub config: Option<Config>,
    pub warnings: Vec<String>,
}

impl Checked {
    /// Shows the warnings on stderr: they do not stop the build.
    pub fn show_warnings(&self) {
        for warning in &self.warnings {
            eprintln!("warning: {warning}");
        }
    }
}

/// A problem with a config, and where it is (line is 1-based, 0 when unknown).
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "{}:{}: ", self.line, self.column.max(1))?;
        }
        f.write_str(&self.message)
    }
}

const TOP_LEVEL: [&str; 8] = [
    "consul",
    "logging",
    "stopTimeout",
    "jobs",
    "watches",
    "telemetry",
    "control",
    "tagpilot",
];

impl Config {
    /// Loads a config as ContainerPilot does at start-up: the template rendered over `env`,
    /// then JSON5, then every check. Every problem found is returned.
    pub fn load(text: &str, env: &BTreeMap<String, String>) -> Result<Config, Vec<Problem>> {
        let rendered = gotemplate::render(text, env).map_err(|e| {
            let hint = if gotemplate::has_escaped_quotes(text) {
                ": escaped quotes (\\\") inside a `{{ }}` action are a template error (ContainerPilot sees the backslashes); single-quote the JSON5 string ('-x={{ .X | default \"y\" }}') and use plain quotes in the action"
            } else {
                ""
            };
            vec![Problem {
                line: e.line,
                column: e.column,
                message: format!("template: {}{hint}", e.message),
            }]
        })?;
        let value: serde_json::Value = json5::from_str(&rendered).map_err(|e| {
            let (line, column) = e.position().map_or((0, 0), |p| (p.line + 1, p.column + 1));
            let message = e.to_string();
            let message = match message.rfind(" at line ") {
                Some(at) => message[..at].to_string(),
                None => message,
            };
            vec![Problem {
                line,
                column,
                message: format!("parse error: {message}"),
            }]
        })?;
        Config::from_value(&value).map_err(|issues| {
            issues
                .into_iter()
                .map(|issue| Problem {
                    line: line_of_issue(&rendered, &value, &issue),
                    column: 0,
                    message: if issue.path.is_empty() {
                        issue.message
                    } else {
                        format!("{}: {}", issue.path, issue.message)
                    },
                })
                .collect()
        })
    }

    /// Checks the supervisor file `file` at build time, where the container's environment is
    /// not known: `env` is the image's. Returns the config as loaded, and the lint warnings. A config that fails only
    /// with variables it reads left unset here is accepted with a warning naming them: the
    /// orchestrator may set them at run time.
    pub fn check_file(
        file: &str,
        text: &str,
        env: &BTreeMap<String, String>,
    ) -> crate::error::Result<Checked> {
        let problems = match Config::load(text, env) {
            Ok(config) => {
                return Ok(Checked {
                    warnings: config.warnings.clone(),
                    config: Some(config),
                })
            }
            Err(problems) => problems,
        };
        // Does it fail because of what is unset? Then it passes with each of those set to a
        // value that fits anywhere (a number is a string too, after weak decoding).
        let unset: Vec<String> = gotemplate::variables(text)
            .into_iter()
            .filter(|v| !env.contains_key(v))
            .collect();
        let mut filled = env.clone();
        filled.extend(unset.iter().map(|v| (v.clone(), "1".to_string())));
        let depends_on_unset = !unset.is_empty() && Config::load(text, &filled).is_ok();
        let shown: Vec<String> = problems
            .iter()
            .map(|p| match p.line {
                0 => format!("{file}: {}", p.message),
                line => format!("{file}:{line}:{}: {}", p.column.max(1), p.message),
            })
            .collect();
        if depends_on_unset {
            return Ok(Checked {
                config: None,
                warnings: vec![format!(
                    "{file}: not fully checked: it reads {} (unset in the image), and with them empty it would not start:\n  {}",
                    unset.join(", "),
                    shown.join("\n  ")
                )],
            });
        }
        Err(crate::error::Error::input(format!(
            "the supervisor config would not start (ContainerPilot refuses it too):\n  {}",
            shown.join("\n  ")
        )))
    }

    fn from_value(value: &serde_json::Value) -> Result<Config, Vec<Issue>> {
        let mut issues = Vec::new();
        let serde_json::Value::Object(map) = value else {
            return Err(vec![Issue::new("", "the config is not an object")]);
        };
        // Top-level keys are exact (ContainerPilot decodes them into a map, not a struct).
        let unknown: Vec<&str> = map
            .keys()
            .map(String::as_str)
            .filter(|k| !TOP_LEVEL.contains(k))
            .collect();
        if !unknown.is_empty() {
            issues.push(Issue::new(
                "",
                format!("unknown config keys: [{}]", unknown.join(" ")),
            ));
        }
        let get = |key: &str| map.get(key).filter(|v| !v.is_null());
        let extensions = get("tagpilot")
            .and_then(|v| note(&mut issues, services::extensions(v)))
            .unwrap_or_default();
        let consul = get("consul")
            .and_then(|v| note(&mut issues, services::consul(v)))
            .flatten();
        if consul.is_none() && !extensions.consul_optional {
            issues.push(Issue::new("", "no discovery backend defined (give `consul`, or set `tagpilot: {consulOptional: true}`)"));
        }
        let logging = get("logging")
            .and_then(|v| note(&mut issues, services::logging(v)))
            .unwrap_or_default();
        let stop_timeout = get("stopTimeout")
            .and_then(|v| note(&mut issues, stop_timeout(v)))
            .unwrap_or(Duration::from_secs(5));
        let jobs = get("jobs").map_or_else(Vec::new, |v| notes(&mut issues, jobs::jobs(v)));
        let watches =
            get("watches").map_or_else(Vec::new, |v| notes(&mut issues, services::watches(v)));
        let control = get("control")
            .and_then(|v| note(&mut issues, services::control(v)))
            .unwrap_or_default();
        let telemetry = get("telemetry").and_then(|v| note(&mut issues, services::telemetry(v)));
        if consul.is_none() && !watches.is_empty() {
            issues.push(Issue::new("watches", "watches need `consul`"));
        }
        note(&mut issues, extensions.check(&jobs));
        if !issues.is_empty() {
            return Err(issues);
        }
        let mut config = Config {
            consul,
            logging,
            stop_timeout,
            jobs,
            watches,
            control,
            telemetry,
            extensions,
            warnings: Vec::new(),
        };
        config.warnings = config.lint();
        Ok(config)
    }

    /// Findings ContainerPilot does not refuse, but that are almost surely mistakes.
    fn lint(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        let mut sources: Vec<String> = self.jobs.iter().map(|j| j.name.clone()).collect();
        sources.extend(self.watches.iter().map(|w| format!("watch.{}", w.name)));
        sources.extend(self.jobs.iter().map(|j| format!("check.{}", j.name)));
        sources.extend(["global", "SIGHUP", "SIGUSR2"].map(String::from));
        for job in &self.jobs {
            let (source, event) = match &job.when {
                When::Once { source, event } | When::Each { source, event } => (source, event),
                _ => continue,
            };
            if event == "startup" && source != "global" {
                warnings.push(format!(
                    "job `{}`: `once: startup` without `source: \"global\"` never fires, so the job never starts",
                    job.name
                ));
            } else if !sources.contains(source) {
                warnings.push(format!(
                    "job `{}`: `when.source` is `{source}`, which is no job, watch (`watch.<name>`), health check (`check.<job>`), `global` or signal, so it never fires",
                    job.name
                ));
            }
        }
        warnings
    }
}

/// The value of a result, with its error noted instead.
fn note<T>(issues: &mut Vec<Issue>, result: Result<T, Issue>) -> Option<T> {
    result.map_err(|issue| issues.push(issue)).ok()
}

/// A list's items, or none with every item's problem noted.
fn notes<T>(issues: &mut Vec<Issue>, result: Result<Vec<T>, Vec<Issue>>) -> Vec<T> {
    result.unwrap_or_else(|mut found| {
        issues.append(&mut found);
        Vec::new()
    })
}

/// The top-level `stopTimeout`: whole seconds (0 or less keeps the default, 5).
fn stop_timeout(value: &serde_json::Value) -> Result<Duration, Issue> {
    match decode::weak_int(value) {
        Some(s) if s > 0 => Ok(Duration::from_secs(s as u64)),
        Some(_) => Ok(Duration::from_secs(5)),
        None => Err(Issue {
            path: "stopTimeout".into(),
            message: format!(
                "cannot parse {value} as int: whole seconds, without a unit such as \"10s\""
            ),
        }),
    }
}

/// The line an issue is about: for unknown keys, the first of them after the line of what
/// holds them; otherwise that line.
fn line_of_issue(text: &str, value: &serde_json::Value, issue: &Issue) -> usize {
    let base = line_of_path(text, value, &issue.path);
    let Some(keys) = issue.message.strip_prefix("unknown keys: ") else {
        return base;
    };
    let key = keys.split(", ").next().unwrap_or_default();
    let is_key_at = |line: &str| {
        let line = line.trim_start().trim_start_matches(['{', ' ']);
        [format!("{key}:"), format!("\"{key}\""), format!("'{key}'")]
            .iter()
            .any(|k| line.starts_with(k.as_str()) || line.contains(&format!(", {k}")))
    };
    text.lines()
        .enumerate()
        .skip(base.saturating_sub(1))
        .find(|(_, line)| is_key_at(line))
        .map_or(base, |(i, _)| i + 1)
}

/// The line of the thing a path such as `jobs[1].health` is about: the line of that job's
/// `name`, or of the top-level key, or 0.
fn line_of_path(text: &str, value: &serde_json::Value, path: &str) -> usize {
    let top = path.split(['.', '[']).next().unwrap_or("");
    if top == "jobs" || top == "watches" {
        if let Some(index) = path
            .split_once('[')
            .and_then(|(_, rest)| rest.split(']').next())
            .and_then(|i| i.parse::<usize>().ok())
        {
            if let Some(name) = value[top][index]["name"].as_str() {
                return line_of(text, name);
            }
        }
    }
    if top.is_empty() {
        return 0;
    }
    text.lines()
        .position(|line| {
            let line = line.trim_start();
            line.starts_with(top) || line.starts_with(&format!("\"{top}\""))
        })
        .map_or(0, |i| i + 1)
}

/// The 1-based line where `name` first appears as a quoted string, 0 if nowhere.
fn line_of(text: &str, name: &str) -> usize {
    let quoted = [format!("\"{name}\""), format!("'{name}'")];
    text.lines()
        .position(|line| quoted.iter().any(|q| line.contains(q.as_str())))
        .map_or(0, |i| i + 1)
}

#[cfg(test)]
mod tests;
