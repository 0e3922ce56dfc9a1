//! What is being released: which commit, under which tag and version, and what came before.
//! The tag comes from `--tag`, else `CI_COMMIT_TAG`, else a release tag on `HEAD`. A snapshot
//! (dry runs only) releases `HEAD` under a version given on the command line.

use crate::env::Env;
use crate::error::{Error, Result};
use crate::project::Project;
use crate::source::{Commit, Source};
use crate::spec::Spec;
use crate::template;
use crate::version::{previous_release, TagReader, TaggedVersion, Version};

#[derive(Clone, Debug)]
pub struct Target {
    pub name: String,
    /// `None` for a snapshot.
    pub tag: Option<String>,
    pub version: Version,
    pub commit: Commit,
    /// Every entry's mtime: `SOURCE_DATE_EPOCH` when set, else the commit time.
    pub mtime: u64,
    pub previous: Option<TaggedVersion>,
    /// Every release tag of the repository, newest first (decides `previous` and `latest`).
    pub releases: Vec<TaggedVersion>,
}

/// How the user said what to release.
#[derive(Clone, Debug, Default)]
pub struct Request {
    /// `--tag`.
    pub tag: Option<String>,
    /// `--snapshot VERSION`.
    pub snapshot: Option<String>,
}

pub fn tag_reader(spec: &Spec) -> TagReader {
    TagReader {
        scheme: spec.version.scheme,
        prefix: spec.version.tag_prefix.value.clone(),
    }
}

/// The release name: the spec's `name`, else the repository folder.
pub fn release_name(source: &Source, spec: &Spec) -> String {
    spec.name
        .as_ref()
        .map(|n| n.value.clone())
        .unwrap_or_else(|| source.default_name())
}

/// The target the request names in `project` (whose environment gives `CI_COMMIT_TAG` and
/// `SOURCE_DATE_EPOCH`).
pub fn resolve(project: &Project, request: &Request) -> Result<Target> {
    let (source, spec, env) = (&project.source, &project.spec, &project.env);
    let reader = tag_reader(spec);
    let name = release_name(source, spec);
    let (tag, version, commit) = match &request.snapshot {
        Some(text) => {
            let version = Version::parse(text, reader.scheme)
                .map_err(|why| Error::input(format!("--snapshot: {why}")))?;
            (None, version, source.head_commit()?)
        }
        None => {
            let tag = choose_tag(source, &reader, request, env)?;
            let version = reader.read_required(&tag).map_err(|why| {
                Error::input(format!("tag {why}")).with_hint(
                    "Set version.scheme / version.tag_prefix in the spec, or release another tag",
                )
            })?;
            let commit = source.tag_commit(&tag)?;
            (Some(tag), version, commit)
        }
    };
    let (releases, _) = reader.read_all(source.tag_names()?.iter().map(String::as_str));
    let previous = previous_release(&releases, &version).cloned();
    Ok(Target {
        name,
        tag,
        version,
        mtime: mtime(&commit, env)?,
        commit,
        previous,
        releases,
    })
}

fn choose_tag(source: &Source, reader: &TagReader, request: &Request, env: &Env) -> Result<String> {
    if let Some(tag) = &request.tag {
        return Ok(tag.clone());
    }
    if let Some(tag) = env.get("CI_COMMIT_TAG") {
        return Ok(tag.to_string());
    }
    let head = source.head_commit()?;
    let tags = source.tags_at(&head)?;
    let (versions, _) = reader.read_all(tags.iter().map(String::as_str));
    match versions.first() {
        Some(newest) => Ok(newest.tag.clone()),
        None => Err(Error::input(format!(
            "no release tag to build: HEAD ({}) has no tag that fits the version scheme, no --tag was given and CI_COMMIT_TAG is not set",
            &head.id[..12]
        ))
        .with_hint(
            "Pass --tag TAG, or try it out on HEAD with `tagpilot release --dry-run --snapshot 0.0.0-dev`",
        )),
    }
}

/// `SOURCE_DATE_EPOCH` (the reproducible-builds convention) overrides the commit time.
fn mtime(commit: &Commit, env: &Env) -> Result<u64> {
    match env.get("SOURCE_DATE_EPOCH") {
        Some(text) => text.trim().parse().map_err(|_| {
            Error::input(format!(
                "SOURCE_DATE_EPOCH is `{text}`, expected whole seconds since 1970 (or unset it)"
            ))
        }),
        None => u64::try_from(commit.time).map_err(|_| {
            Error::input(format!(
                "commit {} is dated before 1970; set SOURCE_DATE_EPOCH",
                commit.id
            ))
        }),
    }
}

impl Target {
    /// Fills a spec template (`{name}-{version}/`) for this release.
    pub fn render(&self, template_text: &str) -> std::result::Result<String, String> {
        template::render(template_text, &|placeholder| {
            release_placeholder(&self.name, &self.version, self.tag.as_deref(), placeholder)
        })
    }
}

/// The value of a release placeholder (`name`, `version`, `tag`, `major`, `minor`, `patch`).
pub fn release_placeholder(
    name: &str,
    version: &Version,
    tag: Option<&str>,
    placeholder: &str,
) -> Option<String> {
    Some(match placeholder {
        "name" => name.to_string(),
        "version" => version.to_string(),
        "tag" => tag.map_or_else(|| version.to_string(), str::to_string),
        "major" => version.major().to_string(),
        "minor" => version.minor().to_string(),
        "patch" => version.patch().to_string(),
        _ => return None,
    })
}
