//! Where the Kubernetes API server is and how to log in: the kubeconfig (`KUBECONFIG`, a
//! `:`-separated list, else `~/.kube/config`; the spec's context or the current one, which is
//! how the GitLab agent's injected contexts are picked), else the in-cluster service account.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::env::Env;
use crate::error::{Error, Result};
use crate::net::api::Api;
use crate::net::{self, Tls};
use crate::spec::orchestrator::OrchestratorSpec;

const SERVICE_ACCOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The kubeconfig files: `KUBECONFIG` (a `:`-separated list), else `~/.kube/config`.
pub(super) fn kubeconfig_files(env: &Env) -> Vec<PathBuf> {
    match env.get("KUBECONFIG") {
        Some(list) => list
            .split(':')
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .collect(),
        None => env
            .get("HOME")
            .map(|home| PathBuf::from(home).join(".kube/config"))
            .into_iter()
            .filter(|p| p.exists())
            .collect(),
    }
}

/// The API server and login of the chosen context; the first file naming a thing wins, as
/// kubectl merges them.
pub(super) fn from_kubeconfig(
    files: &[PathBuf],
    spec: &OrchestratorSpec,
) -> Result<(Api, Option<String>)> {
    let mut configs = Vec::new();
    for file in files {
        let text =
            std::fs::read_to_string(file).map_err(|e| Error::io("read kubeconfig", file, e))?;
        let config: Value = serde_saphyr::from_str(&text)
            .map_err(|e| Error::input(format!("{}: not a kubeconfig: {e}", file.display())))?;
        configs.push((file.clone(), config));
    }
    let context_name = match &spec.context {
        Some(name) => name.value.clone(),
        None => configs
            .iter()
            .find_map(|(_, c)| c["current-context"].as_str().filter(|s| !s.is_empty()))
            .map(String::from)
            .ok_or_else(|| {
                Error::input("the kubeconfig has no current-context: set orchestrator.context")
            })?,
    };
    let find = |list: &str, name: &str| {
        configs.iter().find_map(|(file, c)| {
            c[list]
                .as_array()
                .into_iter()
                .flatten()
                .find(|entry| entry["name"] == name)
                .map(|entry| (file.clone(), entry.clone()))
        })
    };
    let (_, context) = find("contexts", &context_name).ok_or_else(|| {
        let known: Vec<String> = configs
            .iter()
            .flat_map(|(_, c)| c["contexts"].as_array().cloned().unwrap_or_default())
            .filter_map(|c| c["name"].as_str().map(String::from))
            .collect();
        Error::input(format!(
            "the kubeconfig has no context `{context_name}`; it has: {}",
            known.join(", ")
        ))
    })?;
    let context = &context["context"];
    let cluster_name = context["cluster"].as_str().unwrap_or("");
    let (cluster_file, cluster) = find("clusters", cluster_name).ok_or_else(|| {
        Error::input(format!(
            "kubeconfig context `{context_name}` names cluster `{cluster_name}`, which no file defines"
        ))
    })?;
    let cluster = &cluster["cluster"];
    let base = cluster_file.parent().unwrap_or(Path::new("."));
    let server = spec
        .endpoint
        .as_ref()
        .map(|e| e.value.clone())
        .or_else(|| cluster["server"].as_str().map(String::from))
        .ok_or_else(|| {
            Error::input(format!("kubeconfig cluster `{cluster_name}` has no server"))
        })?;
    let mut tls = Tls {
        roots: crate::orchestrator::ca_roots(spec)?,
        skip_verify: cluster["insecure-skip-tls-verify"] == true,
        ..Default::default()
    };
    if tls.roots.is_none() {
        if let Some(pem) = file_or_data(cluster, "certificate-authority", base)? {
            tls.roots = Some(net::certificates(
                &pem,
                &format!("cluster `{cluster_name}` CA"),
            )?);
        }
    }
    let user_name = context["user"].as_str().unwrap_or("");
    let (user_file, user) = find("users", user_name).unwrap_or_default();
    let user = &user["user"];
    let user_base = user_file.parent().unwrap_or(Path::new("."));
    if let (Some(cert), Some(key)) = (
        file_or_data(user, "client-certificate", user_base)?,
        file_or_data(user, "client-key", user_base)?,
    ) {
        tls.client = Some(net::client_cert(
            &cert,
            &key,
            &format!("kubeconfig user `{user_name}`"),
        )?);
    }
    let mut api = crate::orchestrator::api("Kubernetes", &server, tls, spec);
    let token = match (user["token"].as_str(), user["tokenFile"].as_str()) {
        (Some(token), _) => Some(token.to_string()),
        (None, Some(file)) => Some(read_trimmed(&user_base.join(file))?),
        _ => None,
    };
    if let Some(token) = token {
        api = api.with_credential(
            "Authorization",
            format!("Bearer {token}"),
            format!("kubeconfig user `{user_name}`"),
        );
    }
    let namespace = context["namespace"].as_str().map(String::from);
    Ok((api, namespace))
}

/// A kubeconfig's `<key>` (a path, relative to the file) or `<key>-data` (base64 PEM).
fn file_or_data(section: &Value, key: &str, base: &Path) -> Result<Option<Vec<u8>>> {
    use base64::Engine as _;
    if let Some(data) = section[format!("{key}-data")].as_str() {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map_err(|e| Error::input(format!("kubeconfig {key}-data is not base64: {e}")))?;
        return Ok(Some(bytes));
    }
    match section[key].as_str() {
        Some(path) => {
            let path = base.join(path);
            std::fs::read(&path)
                .map(Some)
                .map_err(|e| Error::io("read kubeconfig file", &path, e))
        }
        None => Ok(None),
    }
}

fn read_trimmed(path: &Path) -> Result<String> {
    std::fs::read_to_string(path)
        .map(|t| t.trim().to_string())
        .map_err(|e| Error::io("read", path, e))
}

/// Inside a pod: the API server from the environment, the service account's token and CA.
pub(super) fn in_cluster(spec: &OrchestratorSpec, env: &Env) -> Result<(Api, Option<String>)> {
    let host = env.get("KUBERNETES_SERVICE_HOST").ok_or_else(|| {
        Error::input(
            "no kubeconfig (KUBECONFIG or ~/.kube/config) and not inside a cluster (KUBERNETES_SERVICE_HOST unset)",
        )
    })?;
    let port = env.get("KUBERNETES_SERVICE_PORT").unwrap_or("443");
    let account = Path::new(SERVICE_ACCOUNT);
    let roots = match crate::orchestrator::ca_roots(spec)? {
        Some(roots) => roots,
        None => net::read_ca_file(&account.join("ca.crt"))?,
    };
    let token = read_trimmed(&account.join("token"))?;
    let server = spec
        .endpoint
        .as_ref()
        .map(|e| e.value.clone())
        .unwrap_or_else(|| format!("https://{host}:{port}"));
    let api = crate::orchestrator::api(
        "Kubernetes",
        &server,
        Tls {
            roots: Some(roots),
            ..Default::default()
        },
        spec,
    )
    .with_credential(
        "Authorization",
        format!("Bearer {token}"),
        "the in-cluster service account token",
    );
    let namespace = read_trimmed(&account.join("namespace")).ok();
    Ok((api, namespace))
}
