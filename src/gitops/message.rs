//! The commit tagpilot makes in a deployment repository: its author, and its message, the
//! spec's template followed by the trailers `history` and `rollback` read back
//! (`Tagpilot-Release`, `Tagpilot-Image`, `Tagpilot-Environment`, the CI links, and on a
//! rollback `Tagpilot-Rollback-Of` and `Tagpilot-Reason`).

use crate::env::Env;
use crate::error::{Error, Result};
use crate::spec::deploy::DeploySpec;
use crate::target::release_placeholder;

use super::deploy::{version_in, Release, Revert};

pub(super) fn author(spec: &DeploySpec, env: &Env) -> (String, String) {
    match &spec.author {
        Some(author) => (author.name.value.clone(), author.email.value.clone()),
        None => (
            env.get("GITLAB_USER_NAME")
                .unwrap_or("tagpilot")
                .to_string(),
            env.get("GITLAB_USER_EMAIL")
                .unwrap_or("tagpilot@localhost")
                .to_string(),
        ),
    }
}

/// The commit message from the spec's template, with the trailers `tagpilot history` and
/// `rollback` read back.
pub(super) fn message(spec: &DeploySpec, release: &Release, image: &str) -> Result<String> {
    let subject =
        crate::template::render(spec.message.as_str(), &|placeholder| match placeholder {
            "environment" => Some(spec.environment.value.clone()),
            "image" => Some(image.to_string()),
            other => release_placeholder(release.name, release.version, release.tag, other),
        })
        .map_err(|why| Error::input(format!("deploy message: {why}")))?;
    if subject.trim().is_empty() {
        // The trailers would become the subject, and history and rollback would not see them.
        return Err(Error::input(format!(
            "the deploy message of {} renders empty",
            spec.environment
        )));
    }
    let text = format!(
        "{}\n\nTagpilot-Release: {} {}\nTagpilot-Image: {image}\nTagpilot-Environment: {}\n",
        subject.trim_end(),
        release.name,
        release.version,
        spec.environment
    );
    Ok(with_ci_trailers(text, release.env))
}

/// The message of a commit that records an older image again: after a rolled-back rollout
/// (what failed and why) or a `tagpilot rollback` (who asked). `Tagpilot-Release` names the
/// restored version when its tag tells it.
pub(super) fn revert_message(
    spec: &DeploySpec,
    release: &Release,
    image: &str,
    revert: &Revert,
) -> String {
    let why = match &revert.by {
        Some(who) => format!(
            "{who} rolled back from {} with `tagpilot rollback`.",
            revert.of
        ),
        None => format!(
            "The rollout of {} {} ({}) did not succeed and was rolled back.",
            release.name, release.version, revert.of
        ),
    };
    let mut text = format!(
        "Roll back {} in {} to {image}\n\n{why}\n\n",
        release.name, spec.environment
    );
    if let Some(version) = version_in(image) {
        text.push_str(&format!("Tagpilot-Release: {} {version}\n", release.name));
    }
    let reason: String = revert
        .reason
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    text.push_str(&format!(
        "Tagpilot-Image: {image}\nTagpilot-Environment: {}\nTagpilot-Rollback-Of: {}\nTagpilot-Reason: {reason}\n",
        spec.environment, revert.of
    ));
    with_ci_trailers(text, release.env)
}

/// Adds the pipeline and job links of the CI run that made the commit.
fn with_ci_trailers(mut text: String, env: &Env) -> String {
    for (trailer, variable) in [
        ("Tagpilot-Pipeline", "CI_PIPELINE_URL"),
        ("Tagpilot-Job", "CI_JOB_URL"),
    ] {
        if let Some(url) = env.get(variable) {
            text.push_str(&format!("{trailer}: {url}\n"));
        }
    }
    text
}
