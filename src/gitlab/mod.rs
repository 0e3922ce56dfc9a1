//! GitLab: the CI job's manners (collapsible log sections, the dotenv report that hands values
//! to later jobs, protected refs and deploy freezes) here; the API (releases, generic packages)
//! in the modules below.

pub mod api;
pub mod packages;
pub mod releases;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};
use crate::fsutil;

/// True inside a GitLab CI job.
pub fn in_ci() -> bool {
    std::env::var("GITLAB_CI").is_ok_and(|v| v == "true")
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The marker that opens a collapsible section in the job log.
pub fn section_start(name: &str, title: &str) -> String {
    format!(
        "\x1b[0Ksection_start:{}:{name}[collapsed=false]\r\x1b[0K{title}",
        now()
    )
}

/// The marker that closes it.
pub fn section_end(name: &str) -> String {
    format!("\x1b[0Ksection_end:{}:{name}\r\x1b[0K", now())
}

/// GitLab rejects dotenv reports over 5 KB; keep a margin for what later jobs add.
const DOTENV_LIMIT: usize = 5 * 1024;

/// Adds or replaces `KEY=value` lines in a dotenv report, keeping keys other stages wrote.
/// Values cannot be quoted or span lines in GitLab's dotenv format, so such values are refused.
pub fn update_dotenv(path: &Path, pairs: &[(&str, String)]) -> Result<()> {
    let mut entries = BTreeMap::new();
    if let Ok(existing) = std::fs::read_to_string(path) {
        for line in existing.lines() {
            if let Some((key, value)) = line.split_once('=') {
                entries.insert(key.to_string(), value.to_string());
            }
        }
    }
    for (key, value) in pairs {
        if value.contains(['\n', '\r']) {
            return Err(Error::failed(format!("dotenv value for {key} spans lines")));
        }
        entries.insert(key.to_string(), value.clone());
    }
    let text: String = entries
        .iter()
        .map(|(key, value)| format!("{key}={value}\n"))
        .collect();
    if text.len() > DOTENV_LIMIT {
        return Err(Error::failed(format!(
            "the dotenv report {} would be {} bytes, over GitLab's 5 KB limit",
            path.display(),
            text.len()
        )));
    }
    fsutil::write_atomic(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotenv_merges_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tagpilot.env");
        update_dotenv(&path, &[("TAGPILOT_VERSION", "1.0.0".into())]).unwrap();
        update_dotenv(
            &path,
            &[
                ("TAGPILOT_IMAGE", "r@sha256:ab".into()),
                ("TAGPILOT_VERSION", "1.0.1".into()),
            ],
        )
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "TAGPILOT_IMAGE=r@sha256:ab\nTAGPILOT_VERSION=1.0.1\n"
        );
        assert!(update_dotenv(&path, &[("X", "a\nb".into())]).is_err());
    }

    #[test]
    fn section_markers_follow_gitlab_format() {
        let start = section_start("tarball", "Release tarball");
        assert!(start.starts_with("\x1b[0Ksection_start:"));
        assert!(start.ends_with(":tarball[collapsed=false]\r\x1b[0KRelease tarball"));
        assert!(section_end("tarball").ends_with(":tarball\r\x1b[0K"));
    }
}

/// What lets a job write a release despite GitLab's guards.
#[derive(Clone, Copy, Debug, Default)]
pub struct Overrides {
    /// `--allow-unprotected`.
    pub unprotected: bool,
    /// `--ignore-freeze`.
    pub freeze: bool,
}

/// Why GitLab's settings say this job should not write a release: it runs on an unprotected
/// ref (`CI_COMMIT_REF_PROTECTED=false`: protected variables and review are missing), or a
/// deploy freeze is on (`CI_DEPLOY_FREEZE`). Empty when writing is fine.
pub fn refusals(env: &dyn Fn(&str) -> Option<String>, overrides: Overrides) -> Vec<String> {
    let mut refusals = Vec::new();
    if env("CI_COMMIT_REF_PROTECTED").as_deref() == Some("false") && !overrides.unprotected {
        refusals.push(format!(
            "`{}` is not a protected ref (CI_COMMIT_REF_PROTECTED=false): protect the tag pattern in Settings > Repository > Protected tags, or pass --allow-unprotected",
            env("CI_COMMIT_REF_NAME").unwrap_or_else(|| "this ref".to_string())
        ));
    }
    if env("CI_DEPLOY_FREEZE").is_some_and(|v| !v.is_empty()) && !overrides.freeze {
        refusals.push(
            "a GitLab deploy freeze is active (CI_DEPLOY_FREEZE): wait for the window to end, or pass --ignore-freeze".to_string(),
        );
    }
    refusals
}

/// The refusals as one error, before anything is written.
pub fn check_guards(overrides: Overrides, what: &str) -> Result<()> {
    let refusals = refusals(&|name| std::env::var(name).ok(), overrides);
    if refusals.is_empty() {
        return Ok(());
    }
    Err(Error::input(format!(
        "refusing to {what}; nothing was pushed, published or deployed:\n  - {}",
        refusals.join("\n  - ")
    )))
}
