//! Recording a release in an environment's deployment repository: edit the files that name the
//! image, commit with trailers that later commands read back, push. When someone pushed first,
//! fetch, re-apply the edit on their commit and try again, with jittered backoff; never force.
//! A file that already names this image needs no commit; one that names a higher version is
//! left alone (no downgrade) unless asked.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::env::Env;
use crate::error::{Error, Result};
use crate::mode::Mode;
use crate::net::basic_authorization;
use crate::oci::reference::Reference;
use crate::spec::deploy::{DeployFile, DeployKind, DeploySpec, WriteAs};
use crate::target::Target;
use crate::ui::Ui;
use crate::version::Version;

use super::edit::{rewrite, FileKind, Rewrite};
use super::message;
use super::repo::{Access, Checkout, Pushed};

/// Pushes tried before giving up when others keep pushing first.
const ATTEMPTS: u32 = 8;

/// What to record.
pub struct Release<'a> {
    pub name: &'a str,
    pub version: &'a Version,
    /// The release tag, when recording a tag's release (a rollback records an older image).
    pub tag: Option<&'a str>,
    /// The full image reference to write, `registry/repo:tag@sha256:…`.
    pub image: &'a str,
    pub mode: Mode,
    pub allow_downgrade: bool,
    /// The environment: variables the credentials name, the GitLab author, CI links.
    pub env: &'a Env,
    /// Set when this commit puts back the image that runs again after a rolled-back rollout.
    pub revert: Option<Revert>,
}

impl<'a> Release<'a> {
    /// Recording `image` as the release of `target`.
    pub fn of_target(target: &'a Target, image: &'a str, mode: Mode, env: &'a Env) -> Release<'a> {
        Release {
            name: &target.name,
            version: &target.version,
            tag: target.tag.as_deref(),
            image,
            mode,
            allow_downgrade: false,
            env,
            revert: None,
        }
    }
}

/// Why an older image is being recorded again.
pub struct Revert {
    /// The image that ran before (whose rollout was rolled back, or that is being rolled back).
    pub of: String,
    pub reason: String,
    /// Who asked, for a `tagpilot rollback`; `None` when a failed rollout was rolled back.
    pub by: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum Deployed {
    /// A commit landed on the branch.
    Committed { commit: String, files: Vec<String> },
    /// The files already named this image: nothing to commit.
    AlreadyThere,
    /// A file names a higher version: a newer release got there first.
    Superseded { by: String },
    /// Dry run: the diff that would be committed.
    WouldCommit { diff: String },
}

impl Deployed {
    /// The status word, as in the JSON (`committed`, `already_there`, ...).
    pub fn status(&self) -> &'static str {
        match self {
            Deployed::Committed { .. } => "committed",
            Deployed::AlreadyThere => "already_there",
            Deployed::Superseded { .. } => "superseded",
            Deployed::WouldCommit { .. } => "would_commit",
        }
    }
}

pub fn deploy(spec: &DeploySpec, release: &Release, ui: &Ui) -> Result<Deployed> {
    let image =
        Reference::parse(release.image).map_err(|why| Error::input(format!("--image: {why}")))?;
    let repository = format!("{}/{}", image.registry, image.repository);
    let written = match (spec.write, &image.tag, &image.digest) {
        // What ran before goes back exactly as the engine ran it.
        _ if release.revert.is_some() => release.image.to_string(),
        (WriteAs::Pinned, Some(tag), Some(digest)) => format!("{repository}:{tag}@{digest}"),
        (WriteAs::Digest, _, Some(digest)) => format!("{repository}@{digest}"),
        (WriteAs::Tag, Some(tag), _) => format!("{repository}:{tag}"),
        (how, _, _) => {
            return Err(Error::input(format!(
                "--image `{}` lacks what deploy.write: {} needs (a tag and/or a sha256 digest)",
                release.image,
                format!("{how:?}").to_lowercase()
            )))
        }
    };
    let access = access(spec, release.env)?;
    let checkout = Checkout::clone(&spec.repo.value, &spec.branch.value, &access)?;
    let wanted = Wanted {
        repository: &repository,
        written: &written,
        version: release.version,
        allow_downgrade: release.allow_downgrade || release.revert.is_some(),
    };
    for attempt in 1..=ATTEMPTS {
        let edited = match edit_files(&checkout, spec, &wanted)? {
            Edits::Superseded(by) => return Ok(Deployed::Superseded { by }),
            Edits::Files(files) => files,
        };
        if edited.is_empty() {
            return Ok(Deployed::AlreadyThere);
        }
        if release.mode.rehearsing() {
            let diff = edited
                .iter()
                .map(|f| diff(&f.relative, &f.old, &f.new))
                .collect();
            return Ok(Deployed::WouldCommit { diff });
        }
        for file in &edited {
            write(&checkout.path().join(&file.relative), &file.new)?;
        }
        let files: Vec<String> = edited.iter().map(|f| f.relative.clone()).collect();
        let (name, email) = message::author(spec, release.env);
        let commit = checkout.commit(
            &files,
            &match &release.revert {
                Some(revert) => message::revert_message(spec, release, &written, revert),
                None => message::message(spec, release, &written)?,
            },
            (&name, &email),
        )?;
        match checkout.push()? {
            Pushed::Landed => return Ok(Deployed::Committed { commit, files }),
            Pushed::Rejected => {
                ui.info(&format!(
                    "{} moved on while we committed (attempt {attempt} of {ATTEMPTS}): re-applying on the new head",
                    spec.branch
                ));
                std::thread::sleep(jitter(attempt));
                checkout.refresh()?;
            }
        }
    }
    Err(Error::failed(format!(
        "{} branch {} kept moving: {ATTEMPTS} pushes were rejected; nothing was forced",
        spec.repo, spec.branch
    ))
    .with_hint("Re-run the deploy job; it starts from the newest commit"))
}

/// What the files should name.
struct Wanted<'a> {
    /// `registry/path` of the released image.
    repository: &'a str,
    /// The reference to write.
    written: &'a str,
    version: &'a Version,
    allow_downgrade: bool,
}

/// One pass of edits over the checkout's files.
enum Edits {
    /// A file names a higher version than ours.
    Superseded(String),
    /// The files that change (none when all already name the image).
    Files(Vec<EditedFile>),
}

struct EditedFile {
    relative: String,
    old: String,
    new: String,
}

/// Edits every file of the environment in the checkout (in memory), or finds a newer version.
fn edit_files(checkout: &Checkout, spec: &DeploySpec, wanted: &Wanted) -> Result<Edits> {
    let mut edited = Vec::new();
    for file in &spec.files {
        let (relative, kind) = file_in(spec, file);
        let path = inside_clone(checkout.path(), &relative, spec)?;
        let old = std::fs::read_to_string(path).map_err(|_| {
            Error::input(format!(
                "{relative} is not in {} (branch {})",
                spec.repo, spec.branch
            ))
        })?;
        let rewrite_spec = Rewrite {
            repository: wanted.repository,
            new: wanted.written,
            marker: file.marker.as_ref().map(|m| m.as_str()),
            kind,
        };
        let result = rewrite(&old, &rewrite_spec)
            .map_err(|e| Error::input(format!("{relative}: {e}; nothing was committed")))?;
        if result.changes.is_empty() {
            return Err(names_no_image(&relative, &old, wanted.repository));
        }
        if !wanted.allow_downgrade {
            let newer = result
                .changes
                .iter()
                .filter_map(|c| c.old_version())
                .find(|v| v > wanted.version);
            if let Some(newer) = newer {
                return Ok(Edits::Superseded(newer.to_string()));
            }
        }
        if result.changed() {
            edited.push(EditedFile {
                relative,
                old,
                new: result.text,
            });
        }
    }
    Ok(Edits::Files(edited))
}

/// A deploy file's path in the repository (under `deploy.path`) and how it names the image.
pub(super) fn file_in<'s>(spec: &DeploySpec, file: &'s DeployFile) -> (String, FileKind<'s>) {
    let relative = match &spec.path {
        Some(folder) => format!("{}/{}", folder.value.trim_end_matches('/'), file.file.value),
        None => file.file.value.clone(),
    };
    let kind = match file.kind {
        // Kustomize finds its file by name, and most have no `kind:` line.
        DeployKind::Auto if is_kustomization_file(&relative) => FileKind::Kustomization,
        DeployKind::Auto => FileKind::Auto,
        DeployKind::Kustomization => FileKind::Kustomization,
        DeployKind::Helm => FileKind::Helm {
            tag: file.tag.as_ref().map_or("image.tag", |t| t.as_str()),
            repository: file.repository.as_ref().map(|t| t.as_str()),
            registry: file.registry.as_ref().map(|t| t.as_str()),
            digest: file.digest.as_ref().map(|t| t.as_str()),
        },
    };
    (relative, kind)
}

/// A file that names no image of the release: what it does name, and which spec key selects
/// the right value.
fn names_no_image(relative: &str, text: &str, repository: &str) -> Error {
    let named = super::edit::images_in(text);
    let found = if named.is_empty() {
        "no image reference at all".to_string()
    } else {
        named
            .iter()
            .map(|(line, image)| format!("{image} (line {line})"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Error::input(format!(
        "{relative} names no image of {repository}; it names {found}; nothing was committed"
    ))
    .with_hint(
        "If one of those is the release, set image.repository to it; for Helm values set `kind: helm` with `tag:` and `repository:` key paths (`registry:` too when it is kept apart); else mark the line with `# tagpilot: NAME` and set `marker: NAME`",
    )
}

/// `kustomization.yaml`, `kustomization.yml` or `Kustomization`: the names kustomize reads.
fn is_kustomization_file(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    matches!(
        name,
        "kustomization.yaml" | "kustomization.yml" | "Kustomization"
    )
}

/// The version a reference's tag names. Image tags hold normalised versions (`8.2.44`, not
/// `v8r2p44`), so they are read with every scheme, not only the release's.
pub fn version_in(reference: &str) -> Option<Version> {
    Version::of_image_tag(&Reference::parse(reference).ok()?.tag?)
}

/// The login from the variables the spec names.
pub fn access(spec: &DeploySpec, env: &Env) -> Result<Access> {
    let var = |name: &crate::spec::Text| {
        env.lookup(name.as_str()).ok_or_else(|| {
            Error::input(format!(
                "environment variable {} (deploy {} credentials) is not set",
                name, spec.environment
            ))
        })
    };
    let c = &spec.credentials;
    let mut access = Access::default();
    if let Some((user, password)) = &spec.url_login {
        access.http_authorization = Some(basic_authorization(user, password));
        access.source = Some("the repository address".to_string());
    }
    if let Some(token) = &c.token {
        let user = match &c.user {
            Some(name) => var(name)?,
            None => "oauth2".to_string(),
        };
        access.http_authorization = Some(basic_authorization(&user, &var(token)?));
        access.source = Some(token.value.clone());
    } else if let (Some(user), Some(password)) = (&c.user, &c.password) {
        access.http_authorization = Some(basic_authorization(&var(user)?, &var(password)?));
        access.source = Some(format!("{}/{}", user, password));
    }
    if let Some(key) = &c.ssh_key {
        access.ssh_key = Some(var(key)?.into());
        access.source = Some(key.value.clone());
    }
    Ok(access)
}

/// A unified diff of a single-line-per-value edit (line counts never change).
fn diff(file: &str, old: &str, new: &str) -> String {
    let mut out = format!("--- a/{file}\n+++ b/{file}\n");
    for (i, (a, b)) in old
        .split_inclusive('\n')
        .zip(new.split_inclusive('\n'))
        .enumerate()
    {
        if a != b {
            out.push_str(&format!("@@ -{0} +{0} @@\n-{a}", i + 1));
            if !a.ends_with('\n') {
                out.push_str("\n\\ No newline at end of file\n");
            }
            out.push_str(&format!("+{b}"));
            if !b.ends_with('\n') {
                out.push_str("\n\\ No newline at end of file\n");
            }
        }
    }
    out
}

/// The file `relative` names in the clone, refused when it leads outside it: a `..`, or a
/// symbolic link committed in the deployment repository. Checked before anything is written.
fn inside_clone(root: &Path, relative: &str, spec: &DeploySpec) -> Result<std::path::PathBuf> {
    let path = root.join(relative);
    let outside = |to: String| {
        Error::input(format!(
            "{relative} in {} (branch {}) leads outside the repository{to}; tagpilot writes only inside the clone, so nothing was changed",
            spec.repo, spec.branch
        ))
    };
    if relative.starts_with('/') || relative.split('/').any(|c| c == "..") {
        return Err(outside(String::new()));
    }
    let (Ok(root), Ok(real)) = (root.canonicalize(), path.canonicalize()) else {
        // Missing: the caller says it is not there.
        return Ok(path);
    };
    if !real.starts_with(&root) {
        return Err(outside(format!(" (a symbolic link to {})", real.display())));
    }
    Ok(path)
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| Error::io("write", path, e))
}

/// 100 ms doubling per attempt, with up to as much again at random, so racing writers spread.
fn jitter(attempt: u32) -> Duration {
    let base = 100u64 << attempt.min(6);
    let noise = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64)
        % base.max(1);
    Duration::from_millis(base + noise)
}
