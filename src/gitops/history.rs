//! What an environment ran, read back from the deployment repository: every commit tagpilot
//! made carries trailers (`Tagpilot-Environment`, `Tagpilot-Release`, `Tagpilot-Image`, ...),
//! so the branch's log is the deploy history, for every orchestrator alike. A repository
//! adopted from before tagpilot, and hand edits in between, count too: a commit without the
//! trailers whose files name another image of the release (read with the same rules as an
//! edit) is a deploy of that image, marked as not made by tagpilot.

use serde::Serialize;

use crate::env::Env;
use crate::error::Result;
use crate::oci::reference::Reference;
use crate::spec::deploy::DeploySpec;
use crate::version::{Scheme, Version};

use super::deploy::{access, file_in};
use super::edit::recorded_image;
use super::repo::Checkout;

/// One recorded deploy of an environment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub commit: String,
    /// Commit time, ISO 8601 with offset.
    pub time: String,
    /// `Name <email>` of the commit's author.
    pub author: String,
    /// The release version, when the commit names one.
    pub version: Option<String>,
    pub image: String,
    /// The image's `sha256:` digest, when the recorded reference pins one.
    pub digest: Option<String>,
    pub pipeline: Option<String>,
    pub job: Option<String>,
    /// Set on a rollback commit: the image that ran before it.
    pub rollback_of: Option<String>,
    pub reason: Option<String>,
    /// Who made the commit that recorded it.
    pub origin: Origin,
}

/// Whether tagpilot made a deploy's commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    Tagpilot,
    /// What the files named before tagpilot's first commit.
    BeforeTagpilot,
    /// A commit by hand (or another tool) between tagpilot's.
    HandEdit,
}

crate::ui::display_as_words!(Origin);

impl Entry {
    pub fn is_rollback(&self) -> bool {
        self.rollback_of.is_some()
    }
}

/// Fields of one commit in `git log` output: unit separator between fields, record
/// separator between commits.
const LOG_FORMAT: &str = "%H%x1f%aI%x1f%an <%ae>%x1f%(trailers:only,unfold)%x1e";

/// Commits read back at most: enough for years of releases, bounded for a huge repository.
const MOST_COMMITS: usize = 500;

/// The environment's deploys, newest first. With `repository` (the released image's), the
/// state before tagpilot and hand edits count as deploys too.
pub fn read(spec: &DeploySpec, repository: Option<&str>, env: &Env) -> Result<Vec<Entry>> {
    let access = access(spec, env)?;
    let checkout = Checkout::clone_history(&spec.repo.value, &spec.branch.value, &access)?;
    let log = checkout.log(LOG_FORMAT)?;
    let Some(repository) = repository else {
        return Ok(parse_log(&log, &spec.environment.value));
    };
    // Only a commit that changed the environment's files can have changed what they name:
    // one `git log` finds those, so the files are read at those commits only.
    let files: Vec<String> = spec.files.iter().map(|f| file_in(spec, f).0).collect();
    let touching = checkout.commits_touching(&files)?;
    let image_at = |commit: &str| {
        if !touching.iter().any(|c| c == commit) {
            return None;
        }
        spec.files.iter().find_map(|file| {
            let (relative, kind) = file_in(spec, file);
            let text = checkout.show(commit, &relative)?;
            let marker = file.marker.as_ref().map(|m| m.as_str());
            recorded_image(&text, repository, kind, marker)
        })
    };
    Ok(with_untagged_deploys(
        &log,
        &spec.environment.value,
        image_at,
    ))
}

/// The log's tagpilot deploys of `environment`, and, between them, the commits without
/// trailers whose files (`image_at`) name an image other than the one recorded before.
fn with_untagged_deploys(
    log: &str,
    environment: &str,
    image_at: impl Fn(&str) -> Option<String>,
) -> Vec<Entry> {
    let records: Vec<&str> = log
        .split('\u{1e}')
        .map(|r| r.trim_start_matches('\n'))
        .filter(|r| !r.is_empty())
        .take(MOST_COMMITS)
        .collect();
    let mut entries = Vec::new();
    let mut running: Option<String> = None;
    let mut seen_tagpilot = false;
    // Oldest first, so each commit is compared with what ran before it.
    for record in records.iter().rev() {
        match parse_commit(record) {
            Some((env, entry)) if env == environment => {
                seen_tagpilot = true;
                running = Some(entry.image.clone());
                entries.push(entry);
            }
            // Another environment's deploy in a shared repository: not this one's business.
            Some(_) => {}
            None => {
                let Some(image) = untagged_image(record, &image_at) else {
                    continue;
                };
                if running.as_deref() == Some(image.image.as_str()) {
                    continue;
                }
                running = Some(image.image.clone());
                entries.push(Entry {
                    origin: if seen_tagpilot {
                        Origin::HandEdit
                    } else {
                        Origin::BeforeTagpilot
                    },
                    ..image
                });
            }
        }
    }
    entries.reverse();
    entries
}

/// A commit without trailers as an entry, when its files name an image of the release.
fn untagged_image(record: &str, image_at: &impl Fn(&str) -> Option<String>) -> Option<Entry> {
    let mut fields = record.split('\u{1f}');
    let (commit, time, author) = (fields.next()?, fields.next()?, fields.next()?);
    let image = image_at(commit)?;
    Some(Entry {
        commit: commit.to_string(),
        time: time.to_string(),
        author: author.to_string(),
        version: super::deploy::version_in(&image).map(|v| v.to_string()),
        digest: Reference::parse(&image).ok().and_then(|r| r.digest),
        image,
        pipeline: None,
        job: None,
        rollback_of: None,
        reason: None,
        origin: Origin::HandEdit,
    })
}

/// The deploy `tagpilot rollback` returns to: with `to`, the newest deploy of that version;
/// otherwise the newest one before the current deploy that ran another image and was not
/// itself rolled back (a release that failed is no place to return to).
pub fn rollback_target<'a>(
    entries: &'a [Entry],
    to: Option<&str>,
    environment: &str,
) -> std::result::Result<&'a Entry, String> {
    let current = entries.first().ok_or_else(|| {
        format!("{environment} has no deploy recorded by tagpilot: there is nothing to roll back")
    })?;
    if let Some(wanted) = to {
        return entries
            .iter()
            .find(|e| e.version.as_deref().is_some_and(|v| same_version(v, wanted)))
            .ok_or_else(|| {
                format!(
                    "version {wanted} was never deployed to {environment}; deployed versions, newest first: {}",
                    deployed_versions(entries)
                )
            });
    }
    let failed: Vec<&str> = entries
        .iter()
        .filter_map(|e| e.rollback_of.as_deref())
        .collect();
    entries
        .iter()
        .find(|e| e.image != current.image && !failed.contains(&e.image.as_str()))
        .ok_or_else(|| {
            format!(
                "{environment} has no earlier deploy to return to (it runs {}); deployed versions: {}",
                current.image,
                deployed_versions(entries)
            )
        })
}

fn deployed_versions(entries: &[Entry]) -> String {
    let mut versions: Vec<&str> = Vec::new();
    for version in entries.iter().filter_map(|e| e.version.as_deref()) {
        if !versions.contains(&version) {
            versions.push(version);
        }
    }
    versions.join(", ")
}

/// `v1.2.0` and `1.2.0` are the same version: compared as parsed versions, else as text.
fn same_version(recorded: &str, wanted: &str) -> bool {
    let parse = |text: &str| Version::parse(text, Scheme::Auto).ok();
    match (parse(recorded), parse(wanted)) {
        (Some(a), Some(b)) => a == b,
        _ => recorded == wanted,
    }
}

fn parse_log(log: &str, environment: &str) -> Vec<Entry> {
    log.split('\u{1e}')
        .filter_map(|record| parse_commit(record.trim_start_matches('\n')))
        .filter(|(env, _)| env == environment)
        .map(|(_, entry)| entry)
        .collect()
}

/// A commit's environment and entry; `None` for a commit without tagpilot's trailers.
fn parse_commit(record: &str) -> Option<(String, Entry)> {
    let mut fields = record.split('\u{1f}');
    let (commit, time, author, trailers) = (
        fields.next()?,
        fields.next()?,
        fields.next()?,
        fields.next()?,
    );
    let trailer = |key: &str| {
        trailers.lines().find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(key)
                .then(|| v.trim().to_string())
        })
    };
    let environment = trailer("Tagpilot-Environment")?;
    let image = trailer("Tagpilot-Image")?;
    let digest = Reference::parse(&image).ok().and_then(|r| r.digest);
    Some((
        environment,
        Entry {
            commit: commit.to_string(),
            time: time.to_string(),
            author: author.to_string(),
            // `Tagpilot-Release: NAME VERSION`
            version: trailer("Tagpilot-Release")
                .and_then(|r| r.rsplit(' ').next().map(str::to_string)),
            image,
            digest,
            pipeline: trailer("Tagpilot-Pipeline"),
            job: trailer("Tagpilot-Job"),
            rollback_of: trailer("Tagpilot-Rollback-Of"),
            reason: trailer("Tagpilot-Reason"),
            origin: Origin::Tagpilot,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    fn record(commit: &str, trailers: &str) -> String {
        format!("{commit}\u{1f}2026-11-22T10:00:00+00:00\u{1f}Bot <bot@example.org>\u{1f}{trailers}\u{1e}\n")
    }

    #[test]
    fn keeps_this_environments_tagpilot_commits_newest_first() {
        let log = [
            record(
                "c3",
                &format!("Tagpilot-Release: app 1.0.0\nTagpilot-Image: r.example.org/app:1.0.0@{DIGEST}\nTagpilot-Environment: staging\nTagpilot-Rollback-Of: r.example.org/app:2.0.0\nTagpilot-Reason: task exited (3)\n"),
            ),
            record("c2", "Signed-off-by: someone <s@example.org>\n"),
            record(
                "c1",
                "Tagpilot-Release: app 2.0.0\nTagpilot-Image: r.example.org/app:2.0.0\nTagpilot-Environment: production\n",
            ),
            record(
                "c0",
                &format!("Tagpilot-Release: app 1.0.0\nTagpilot-Image: r.example.org/app:1.0.0@{DIGEST}\nTagpilot-Environment: staging\nTagpilot-Pipeline: https://gitlab.example.org/p/-/pipelines/7\n"),
            ),
        ]
        .concat();
        let entries = parse_log(&log, "staging");
        assert_eq!(
            entries
                .iter()
                .map(|e| e.commit.as_str())
                .collect::<Vec<_>>(),
            ["c3", "c0"]
        );
        assert!(entries[0].is_rollback());
        assert_eq!(entries[0].reason.as_deref(), Some("task exited (3)"));
        assert_eq!(entries[0].version.as_deref(), Some("1.0.0"));
        assert_eq!(entries[1].digest.as_deref(), Some(DIGEST));
        assert_eq!(
            entries[1].pipeline.as_deref(),
            Some("https://gitlab.example.org/p/-/pipelines/7")
        );
        assert_eq!(entries[1].author, "Bot <bot@example.org>");
        assert!(parse_log(&log, "qa").is_empty());
    }

    fn entry(version: &str, rollback_of: Option<&str>) -> Entry {
        Entry {
            commit: format!("c-{version}"),
            time: String::new(),
            author: String::new(),
            version: Some(version.to_string()),
            image: format!("r.example.org/app:{version}"),
            digest: None,
            pipeline: None,
            job: None,
            rollback_of: rollback_of.map(str::to_string),
            reason: None,
            origin: Origin::Tagpilot,
        }
    }

    #[test]
    fn the_state_before_tagpilot_and_hand_edits_are_deploys_too() {
        // Oldest last: a seed naming 1.0.0, a hand edit to 1.1.0, a README change (same image),
        // tagpilot's 2.0.0, a hand edit to 2.0.1.
        let log = [
            record("c4", ""),
            record(
                "c3",
                "Tagpilot-Release: app 2.0.0\nTagpilot-Image: r.example.org/app:2.0.0\nTagpilot-Environment: staging\n",
            ),
            record("c2", ""),
            record("c1", ""),
            record("c0", ""),
        ]
        .concat();
        let images = |commit: &str| {
            let image = match commit {
                "c0" => "r.example.org/app:1.0.0",
                "c1" | "c2" => "r.example.org/app:1.1.0",
                "c3" => "r.example.org/app:2.0.0",
                _ => "r.example.org/app:2.0.1",
            };
            Some(image.to_string())
        };
        let entries = with_untagged_deploys(&log, "staging", images);
        let seen: Vec<(&str, Origin, Option<&str>)> = entries
            .iter()
            .map(|e| (e.commit.as_str(), e.origin, e.version.as_deref()))
            .collect();
        assert_eq!(
            seen,
            [
                ("c4", Origin::HandEdit, Some("2.0.1")),
                ("c3", Origin::Tagpilot, Some("2.0.0")),
                ("c1", Origin::BeforeTagpilot, Some("1.1.0")),
                ("c0", Origin::BeforeTagpilot, Some("1.0.0")),
            ]
        );
        // Rolling back from the hand edit goes to tagpilot's 2.0.0; from there, to 1.1.0.
        assert_eq!(
            rollback_target(&entries, None, "staging").unwrap().commit,
            "c3"
        );
        assert_eq!(
            rollback_target(&entries[1..], None, "staging")
                .unwrap()
                .commit,
            "c1"
        );
    }

    #[test]
    fn rollback_skips_the_current_image_and_releases_that_failed() {
        // v1, v2, v3 (failed, rolled back to v2): the previous good one is v1.
        let entries = [
            entry("2.0.0", Some("r.example.org/app:3.0.0")),
            entry("3.0.0", None),
            entry("2.0.0", None),
            entry("1.0.0", None),
        ];
        let chosen = rollback_target(&entries, None, "staging").unwrap();
        assert_eq!(chosen.version.as_deref(), Some("1.0.0"));
        let chosen = rollback_target(&entries, Some("v3.0.0"), "staging").unwrap();
        assert_eq!(chosen.commit, "c-3.0.0");
        let err = rollback_target(&entries, Some("0.9.0"), "staging").unwrap_err();
        assert!(
            err.contains("0.9.0 was never deployed to staging")
                && err.contains("2.0.0, 3.0.0, 1.0.0"),
            "{err}"
        );
        let err = rollback_target(&entries[3..], None, "staging").unwrap_err();
        assert!(err.contains("no earlier deploy"), "{err}");
        let err = rollback_target(&[], None, "staging").unwrap_err();
        assert!(err.contains("no deploy recorded"), "{err}");
    }
}
