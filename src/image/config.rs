//! The image config tagpilot writes: the recipe from the spec, the standard
//! `org.opencontainers.image.*` labels, the supervisor file to embed, and the tags.

use std::collections::BTreeMap;

use crate::env::Env;
use crate::error::{Error, Result};
use crate::oci::image::{rfc3339, Recipe};
use crate::spec::image::{normalise_port, ImageSpec, SupervisorSpec};
use crate::supervisor;
use crate::target::Target;

use super::Inputs;

/// The config the spec asks for, with the standard labels (as annotations too).
pub fn recipe(image: &ImageSpec, target: &Target, base_digest: Option<&str>, env: &Env) -> Recipe {
    let values = |list: &Option<Vec<crate::spec::Text>>| {
        list.as_ref()
            .map(|l| l.iter().map(|t| t.value.clone()).collect())
    };
    let mut recipe = Recipe {
        created: target.mtime,
        env: image
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.value.clone()))
            .collect(),
        entrypoint: values(&image.entrypoint),
        cmd: values(&image.cmd),
        user: image.user.as_ref().map(|t| t.value.clone()),
        workdir: image.workdir.as_ref().map(|t| t.value.clone()),
        ports: image
            .ports
            .iter()
            .filter_map(|p| normalise_port(p.as_str()))
            .collect(),
        healthcheck: None,
        labels: image
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.value.clone()))
            .collect(),
        annotations: BTreeMap::new(),
    };
    for (key, value) in standard_labels(target, image.base.as_str(), base_digest, env) {
        recipe
            .labels
            .entry(key.clone())
            .or_insert_with(|| value.clone());
        recipe.annotations.insert(key, value);
    }
    recipe
}

/// The config bytes to embed: the user's file verbatim once it validates, or the inline config
/// rendered; and the config as loaded with the image's environment, when that loads.
/// Problems point at the file and line.
pub fn supervisor_file(
    inputs: &Inputs,
    spec: &SupervisorSpec,
) -> Result<(Vec<u8>, Option<supervisor::Config>)> {
    let (file, text) = match (&spec.file, &spec.config) {
        (Some(file), None) => {
            let bytes = inputs
                .source
                .read_file(&inputs.target.commit, file.as_str())?;
            let text = String::from_utf8(bytes).map_err(|_| {
                Error::input(format!("{file}: the supervisor config is not UTF-8 text"))
            })?;
            (file.as_str().to_string(), text)
        }
        (None, Some(config)) => (
            "image.supervisor.config".to_string(),
            supervisor::render_inline(config),
        ),
        _ => {
            return Err(Error::input(
                "image.supervisor: give either `file` or `config`",
            ))
        }
    };
    let checked = supervisor::Config::check_file(&file, &text, &inputs.image.plain_env())?;
    checked.show_warnings();
    Ok((text.into_bytes(), checked.config))
}

/// The Docker `Healthcheck` of an image whose config health-checks a job: the supervisor
/// answers from its control socket whether every such job is healthy. Checked as often as
/// the most frequent job check, with a start period of three of those.
pub fn healthcheck(config: &Option<supervisor::Config>) -> Option<serde_json::Value> {
    let config = config.as_ref()?;
    let every = config
        .jobs
        .iter()
        .filter(|j| j.exec.is_some())
        .filter_map(|j| j.health.as_ref())
        .map(|h| h.interval)
        .min()?;
    let nanos = |d: std::time::Duration| d.as_nanos() as u64;
    Some(serde_json::json!({
        "Test": ["CMD", super::provided::BINARY, "-health"],
        "Interval": nanos(every),
        "Timeout": nanos(std::time::Duration::from_secs(5).max(every)),
        "StartPeriod": nanos(every * 3),
        "Retries": 3,
    }))
}

fn standard_labels(
    target: &Target,
    base: &str,
    base_digest: Option<&str>,
    env: &Env,
) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut put = |key: &str, value: String| {
        labels.insert(format!("org.opencontainers.image.{key}"), value);
    };
    put("title", target.name.clone());
    put("version", target.version.to_string());
    put("revision", target.commit.id.clone());
    put("created", rfc3339(target.mtime));
    // The project's web page, in GitLab CI.
    if let Some(url) = env.lookup("CI_PROJECT_URL") {
        put("source", url);
    }
    if base != "scratch" {
        put("base.name", base.to_string());
    }
    if let Some(digest) = base_digest {
        put("base.digest", digest.to_string());
    }
    labels
}

/// The tags for this release, and which of them are version tags: version tags always, moving
/// tags only for final releases, and `latest` only for the highest release.
pub fn image_tags(image: &ImageSpec, target: &Target) -> Result<(Vec<String>, Vec<String>)> {
    let highest = target
        .releases
        .iter()
        .find(|t| !t.version.is_prerelease())
        .is_none_or(|t| target.version >= t.version);
    let mut tags = Vec::new();
    let mut version_tags = Vec::new();
    for template in &image.tags {
        let text = template.as_str();
        let moving = !text.contains("{version}") && !text.contains("{tag}");
        if moving && target.version.is_prerelease() {
            continue;
        }
        // SemVer build metadata (`+build.7`) is not allowed in tags; `_` is the usual stand-in.
        let tag = target
            .render(text)
            .map_err(|why| Error::input(format!("image.tags: {why}")))?
            .replace('+', "_");
        if tag == "latest" && !highest {
            continue;
        }
        if !is_valid_tag(&tag) {
            return Err(Error::input(format!(
                "image tag `{tag}` (from `{text}`) is not a valid tag: up to 128 of [A-Za-z0-9_.-], not starting with `.` or `-`"
            )));
        }
        if !moving && !version_tags.contains(&tag) {
            version_tags.push(tag.clone());
        }
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    Ok((tags, version_tags))
}

/// The distribution spec's tag grammar: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
fn is_valid_tag(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}
