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
/// rendered. Problems point at the file and line.
pub fn supervisor_file(inputs: &Inputs, spec: &SupervisorSpec) -> Result<Vec<u8>> {
    match (&spec.file, &spec.config) {
        (Some(file), None) => {
            let bytes = inputs
                .source
                .read_file(&inputs.target.commit, file.as_str())?;
            let text = String::from_utf8(bytes).map_err(|_| {
                Error::input(format!("{file}: the supervisor config is not UTF-8 text"))
            })?;
            check(inputs, file.as_str(), &text)?;
            Ok(text.into_bytes())
        }
        (None, Some(config)) => {
            let text = supervisor::render_inline(config);
            check(inputs, "image.supervisor.config", &text)?;
            Ok(text.into_bytes())
        }
        _ => Err(Error::input(
            "image.supervisor: give either `file` or `config`",
        )),
    }
}

/// Checks a supervisor config as the supervisor will load it, with the image's environment;
/// what the lint finds is shown, not refused.
fn check(inputs: &Inputs, file: &str, text: &str) -> Result<()> {
    let env = inputs.image.plain_env();
    for warning in supervisor::Config::check_file(file, text, &env)? {
        eprintln!("warning: {warning}");
    }
    Ok(())
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
