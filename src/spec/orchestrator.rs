//! `deploy[].orchestrator`: the engine that runs an environment, the objects to roll to the new
//! image (in order), and what to do when a rollout fails.

use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;

use super::Text;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrchestratorSpec {
    /// `swarm`, `marathon`, `kubernetes` or `nomad`.
    pub kind: EngineKind,
    /// Where the engine's API is. Defaults: Swarm `DOCKER_HOST` (else the local socket);
    /// Marathon `MARATHON_URL`; Kubernetes the `KUBECONFIG` context (else in-cluster); Nomad
    /// `NOMAD_ADDR` (else `http://127.0.0.1:4646`). Swarm takes `unix:///path` or
    /// `tcp://host:port` (TLS with `DOCKER_CERT_PATH` when `DOCKER_TLS_VERIFY` is set).
    #[serde(default)]
    pub endpoint: Option<Text>,
    /// Kubernetes: the kubeconfig context (default: its current context). GitLab agent
    /// contexts look like `group/project:agent-name`.
    #[serde(default)]
    pub context: Option<Text>,
    /// Kubernetes: namespace for services written without one (default: the context's, else
    /// `default`). Nomad: the job namespace.
    #[serde(default)]
    pub namespace: Option<Text>,
    /// The objects to update, in order: Swarm services, Marathon app ids, Kubernetes
    /// deployments (`name` or `namespace/name`), Nomad jobs. A failure stops the rest.
    pub services: Vec<ServiceRef>,
    /// Names of environment variables with the engine's credentials.
    #[serde(default)]
    pub credentials: EngineCredentials,
    /// A PEM file of CA certificates the endpoint's TLS certificate is checked against.
    #[serde(default)]
    pub ca_file: Option<Text>,
    /// How long a rollout may take before it counts as timed out: `90s`, `10m`, `1h`.
    /// Default `10m`.
    #[serde(default)]
    pub timeout: Option<Text>,
    /// What to do when a rollout fails or times out: `rollback` (default) to the image that
    /// ran before, `pause` it where it stands, or `fail` and leave it to the engine.
    #[serde(default)]
    pub on_failure: OnFailure,
    /// Nomad: promote a deployment's canaries once they are all healthy, when the job's
    /// `update` has `canary` but not `auto_promote`. Default `false`: tagpilot stops there,
    /// says the deployment waits for promotion, and does not count it as done.
    #[serde(default)]
    pub promote_canaries: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    Swarm,
    Marathon,
    Kubernetes,
    Nomad,
}

impl EngineKind {
    pub fn title(self) -> &'static str {
        match self {
            EngineKind::Swarm => "Docker Swarm",
            EngineKind::Marathon => "Marathon",
            EngineKind::Kubernetes => "Kubernetes",
            EngineKind::Nomad => "Nomad",
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    #[default]
    Rollback,
    Pause,
    Fail,
}

/// A service to update: its name, or its name and the container (Kubernetes) or task (Nomad)
/// to change, and on Kubernetes the kind of workload. Without a container, the one whose
/// image is the released repository is changed.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ServiceRef {
    Name(Text),
    Detailed {
        name: Text,
        #[serde(default)]
        container: Option<Text>,
        /// Kubernetes only: `deployment` (default), `statefulset` or `daemonset`.
        #[serde(default)]
        kind: Option<WorkloadKind>,
    },
}

/// The kind of Kubernetes workload a service is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum WorkloadKind {
    #[default]
    Deployment,
    StatefulSet,
    DaemonSet,
}

impl WorkloadKind {
    /// The lower-case word, as in messages: `statefulset`.
    pub fn word(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "deployment",
            WorkloadKind::StatefulSet => "statefulset",
            WorkloadKind::DaemonSet => "daemonset",
        }
    }
}

impl ServiceRef {
    pub fn name(&self) -> &Text {
        match self {
            ServiceRef::Name(name) | ServiceRef::Detailed { name, .. } => name,
        }
    }

    pub fn container(&self) -> Option<&Text> {
        match self {
            ServiceRef::Name(_) => None,
            ServiceRef::Detailed { container, .. } => container.as_ref(),
        }
    }

    pub fn kind(&self) -> Option<WorkloadKind> {
        match self {
            ServiceRef::Name(_) => None,
            ServiceRef::Detailed { kind, .. } => *kind,
        }
    }
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EngineCredentials {
    /// Variable with a bearer token (Kubernetes, Marathon/DC/OS) or ACL token (Nomad).
    #[serde(default)]
    pub token: Option<Text>,
    /// Variable with a user name for HTTP Basic auth (Marathon).
    #[serde(default)]
    pub user: Option<Text>,
    /// Variable with the password for `user`.
    #[serde(default)]
    pub password: Option<Text>,
}

/// Ten minutes: long enough for a slow rolling update of a few replicas.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

impl OrchestratorSpec {
    pub fn texts_mut(&mut self) -> Vec<&mut Text> {
        let mut texts: Vec<&mut Text> = Vec::new();
        texts.extend(self.endpoint.iter_mut());
        texts.extend(self.context.iter_mut());
        texts.extend(self.namespace.iter_mut());
        texts.extend(self.ca_file.iter_mut());
        texts.extend(self.timeout.iter_mut());
        // Credentials name variables and are never expanded (see `check_variable_names`).
        for service in &mut self.services {
            match service {
                ServiceRef::Name(name) => texts.push(name),
                ServiceRef::Detailed {
                    name, container, ..
                } => {
                    texts.push(name);
                    texts.extend(container.iter_mut());
                }
            }
        }
        texts
    }

    /// The rollout deadline, parsed from `timeout`.
    pub fn timeout(&self) -> Result<Duration, String> {
        match &self.timeout {
            None => Ok(DEFAULT_TIMEOUT),
            Some(text) => parse_duration(text.as_str()),
        }
    }

    pub fn check(&self, file: &str, environment: &Text) -> Vec<String> {
        let mut problems = Vec::new();
        if self.services.is_empty() {
            problems.push(format!(
                "{}: deploy `{environment}` orchestrator lists no services",
                environment.place(file)
            ));
        }
        if let (Some(text), Err(why)) = (&self.timeout, self.timeout()) {
            problems.push(format!("{}: orchestrator timeout: {why}", text.place(file)));
        }
        for service in &self.services {
            if service.kind().is_some() && self.kind != EngineKind::Kubernetes {
                problems.push(format!(
                    "{}: orchestrator service `{}`: `kind` is for Kubernetes workloads only",
                    service.name().place(file),
                    service.name()
                ));
            }
        }
        if self.promote_canaries && self.kind != EngineKind::Nomad {
            problems.push(format!(
                "{}: deploy `{environment}` orchestrator: `promote_canaries` is for Nomad only",
                environment.place(file)
            ));
        }
        let c = &self.credentials;
        problems.extend(super::check_variable_names(
            file,
            "orchestrator credentials",
            &[
                ("token", &c.token),
                ("user", &c.user),
                ("password", &c.password),
            ],
        ));
        if self.credentials.user.is_some() != self.credentials.password.is_some() {
            problems.push(format!(
                "{}: orchestrator credentials: `user` and `password` go together",
                environment.place(file)
            ));
        }
        problems
    }
}

/// `90s`, `10m`, `1h`, `1h30m` or plain seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    let mut total = 0u64;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            _ => return Err(format!("`{text}` is not a duration like 90s, 10m or 1h")),
        };
        let n: u64 = number
            .parse()
            .map_err(|_| format!("`{text}` is not a duration like 90s, 10m or 1h"))?;
        total += n * unit;
        number.clear();
    }
    if !number.is_empty() || total == 0 {
        return Err(format!(
            "`{text}` is not a positive duration like 90s, 10m or 1h"
        ));
    }
    Ok(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert!(parse_duration("10 minutes").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5").is_ok());
        assert!(parse_duration("m").is_err());
    }
}
