//! GitLab: the CI job's manners (the dotenv report that hands values to later jobs, protected
//! refs and deploy freezes) here; its collapsible log sections are the `ui`'s; the API (releases, generic packages)
//! in the modules below.

pub mod api;
pub mod packages;
pub mod releases;

use std::collections::BTreeMap;
use std::path::Path;

use crate::env::Env;
use crate::error::{Error, Result};
use crate::fsutil;

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
pub fn refusals(env: &Env, overrides: Overrides) -> Vec<String> {
    let mut refusals = Vec::new();
    if env.get("CI_COMMIT_REF_PROTECTED") == Some("false") && !overrides.unprotected {
        refusals.push(format!(
            "`{}` is not a protected ref (CI_COMMIT_REF_PROTECTED=false): protect the tag pattern in Settings > Repository > Protected tags, or pass --allow-unprotected",
            env.get("CI_COMMIT_REF_NAME").unwrap_or("this ref")
        ));
    }
    if env.get("CI_DEPLOY_FREEZE").is_some() && !overrides.freeze {
        refusals.push(
            "a GitLab deploy freeze is active (CI_DEPLOY_FREEZE): wait for the window to end, or pass --ignore-freeze".to_string(),
        );
    }
    refusals
}

/// The refusals as one error, before anything is written.
pub fn check_guards(env: &Env, overrides: Overrides, what: &str) -> Result<()> {
    let refusals = refusals(env, overrides);
    if refusals.is_empty() {
        return Ok(());
    }
    Err(Error::input(format!(
        "refusing to {what}; nothing was pushed, published or deployed:\n  - {}",
        refusals.join("\n  - ")
    )))
}
