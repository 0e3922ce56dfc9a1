//! The publish stage: the tarball and its SHA256SUMS in GitLab's generic package registry, the
//! GitLab Release of the tag linking them (and naming the image), and an annotations report
//! that puts those links on the job page. Every step checks what GitLab already has first,
//! so a re-run adds nothing twice.

use std::path::Path;

use serde::Serialize;
use serde_json::json;

use crate::env::Env;
use crate::error::{Error, Result};
use crate::fsutil;
use crate::gitlab::api::Project as GitLab;
use crate::gitlab::packages::{self, FileStatus, Package, PackageFile};
use crate::gitlab::releases::{self, Link, ReleaseStatus, WantedRelease};
use crate::mode::Mode;
use crate::net::api::Payload;
use crate::oci::push::Pushed;
use crate::source::Source;
use crate::spec::publish::PublishSpec;
use crate::tarball::TarballRecord;
use crate::target::Target;
use crate::ui::Ui;

/// Commit subjects listed in generated notes, at most.
const NOTES_COMMITS: usize = 200;

#[derive(Debug, Serialize)]
pub struct Published {
    pub release: ReleaseStatus,
    /// The release's page, once it exists.
    pub release_url: Option<String>,
    pub package: String,
    pub files: Vec<PublishedFile>,
    pub links: Vec<Link>,
}

#[derive(Debug, Serialize)]
pub struct PublishedFile {
    pub file: String,
    pub sha256: String,
    pub status: FileStatus,
}

pub struct Inputs<'a> {
    pub source: &'a Source,
    pub spec: &'a PublishSpec,
    pub target: &'a Target,
    /// The tag being released (a snapshot has none and is not published).
    pub tag: &'a str,
    pub tarball: Option<&'a TarballRecord>,
    pub pushed: Option<&'a Pushed>,
    pub force: bool,
    pub mode: Mode,
    pub env: &'a Env,
}

pub fn publish(inputs: &Inputs, gitlab: &GitLab, ui: &Ui) -> Result<Published> {
    let target = inputs.target;
    let package = Package {
        name: inputs
            .spec
            .package
            .as_ref()
            .map_or(target.name.as_str(), |p| p.as_str()),
        version: &target.version.to_string(),
    };
    let (mut files, mut links) = match inputs.tarball {
        Some(tarball) => upload_tarball(inputs, gitlab, &package, tarball, ui)?,
        None => (Vec::new(), Vec::new()),
    };
    if let Some(pushed) = inputs.pushed {
        let (more_files, more_links) = upload_attestations(inputs, gitlab, &package, pushed, ui)?;
        files.extend(more_files);
        links.extend(more_links);
    }
    if let (Some(pushed), Some(project_url)) = (inputs.pushed, project_url(inputs.env)) {
        links.push(Link {
            name: format!("Container image {}", image_name(pushed)),
            url: format!("{project_url}/container_registry"),
            link_type: "image".to_string(),
            direct_asset_path: None,
        });
    }
    for link in &inputs.spec.links {
        // GitLab wants a release's link URLs unique: one the release already links is left out.
        if links.iter().any(|l| l.url == link.url.value) {
            continue;
        }
        links.push(Link {
            name: link.name.value.clone(),
            url: link.url.value.clone(),
            link_type: "other".to_string(),
            direct_asset_path: None,
        });
    }
    let notes = notes(inputs)?;
    let name = format!("{} {}", target.name, target.version);
    let wanted = WantedRelease {
        tag: inputs.tag,
        name: &name,
        notes: &notes,
        links: &links,
    };
    let (release, release_url) = releases::ensure(gitlab, &wanted, inputs.mode)?;
    ui.info(&format!("release {}: {}", inputs.tag, release));
    Ok(Published {
        release,
        release_url,
        package: package.name.to_string(),
        files,
        links,
    })
}

/// GitLab's annotations report: the release and its files as links on the job page.
pub fn write_annotations(path: &Path, published: &Published) -> Result<()> {
    let mut links: Vec<_> = published
        .release_url
        .iter()
        .map(|url| json!({ "external_link": { "label": "Release", "url": url } }))
        .collect();
    links.extend(
        published
            .links
            .iter()
            .map(|l| json!({ "external_link": { "label": l.name, "url": l.url } })),
    );
    let report = json!({ "tagpilot": links });
    fsutil::write_atomic(path, format!("{report:#}\n").as_bytes())
}

fn describe(status: FileStatus) -> &'static str {
    match status {
        FileStatus::Uploaded => "uploaded",
        FileStatus::AlreadyThere => "already there (same SHA-256)",
        FileStatus::Replaced => "uploaded again (--force)",
        FileStatus::WouldUpload => "would upload",
    }
}

/// The notes: the spec's text, its file at the tag, or the commit subjects since the previous
/// release; then the image, pinned.
fn notes(inputs: &Inputs) -> Result<String> {
    let target = inputs.target;
    let mut text = match (&inputs.spec.notes, &inputs.spec.notes_file) {
        (Some(notes), _) => notes.value.clone(),
        (None, Some(file)) => {
            let bytes = inputs.source.read_file(&target.commit, file.as_str())?;
            String::from_utf8(bytes)
                .map_err(|_| Error::input(format!("publish.notes_file {file} is not UTF-8 text")))?
        }
        (None, None) => {
            let previous = match &target.previous {
                Some(p) => Some(inputs.source.tag_commit(&p.tag)?),
                None => None,
            };
            let subjects =
                inputs
                    .source
                    .subjects_between(previous.as_ref(), &target.commit, NOTES_COMMITS)?;
            let mut text = match &target.previous {
                Some(p) => format!("Changes since {}:\n\n", p.tag),
                None => "Changes:\n\n".to_string(),
            };
            for subject in subjects {
                text.push_str(&format!("- {subject}\n"));
            }
            text
        }
    };
    if let Some(pushed) = inputs.pushed {
        text = format!(
            "{}\n\nContainer image: `{}`\n",
            text.trim_end(),
            pushed.reference
        );
    }
    Ok(text)
}

/// The tarball and its `SHA256SUMS` in the generic package registry, each compared by
/// SHA-256 first; with the release links to them.
fn upload_tarball(
    inputs: &Inputs,
    gitlab: &GitLab,
    package: &Package,
    tarball: &TarballRecord,
    ui: &Ui,
) -> Result<(Vec<PublishedFile>, Vec<Link>)> {
    let mut files = Vec::new();
    let mut links = Vec::new();
    let sums = format!("{}  {}\n", tarball.sha256, tarball.file);
    let sums_sha256 = crate::digest::sha256_hex(sums.as_bytes());
    for file in [
        PackageFile {
            name: &tarball.file,
            content: Payload::File(Path::new(&tarball.path)),
            sha256: &tarball.sha256,
            first_wins: false,
        },
        PackageFile {
            name: "SHA256SUMS",
            content: Payload::Bytes(sums.as_bytes()),
            sha256: &sums_sha256,
            first_wins: false,
        },
    ] {
        let (published, link) = upload_one(inputs, gitlab, package, &file, ui)?;
        files.push(published);
        links.push(link);
    }
    Ok((files, links))
}

/// The provenance and SBOM the push wrote, next to the tarball in the package registry.
fn upload_attestations(
    inputs: &Inputs,
    gitlab: &GitLab,
    package: &Package,
    pushed: &Pushed,
    ui: &Ui,
) -> Result<(Vec<PublishedFile>, Vec<Link>)> {
    let mut files = Vec::new();
    let mut links = Vec::new();
    for attestation in &pushed.attestations {
        let path = Path::new(&attestation.file);
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or(attestation.file.as_str());
        // A later job has it only when the build job handed it over (`artifacts: paths:`).
        if !path.is_file() {
            ui.info(&format!(
                "{name}: not in this job's workspace ({}), so not added to the release; hand it over from the build job as an artifact",
                attestation.file
            ));
            continue;
        }
        let file = PackageFile {
            name,
            content: Payload::File(path),
            sha256: &attestation.sha256,
            first_wins: true,
        };
        let (published, link) = upload_one(inputs, gitlab, package, &file, ui)?;
        files.push(published);
        links.push(link);
    }
    Ok((files, links))
}

/// One file into the package registry (compared first), and the release link to it.
fn upload_one(
    inputs: &Inputs,
    gitlab: &GitLab,
    package: &Package,
    file: &PackageFile,
    ui: &Ui,
) -> Result<(PublishedFile, Link)> {
    let status = packages::upload(gitlab, package, file, inputs.force, inputs.mode)?;
    ui.info(&format!(
        "{} ({} {}): {}",
        file.name,
        package.name,
        package.version,
        describe(status)
    ));
    Ok((
        PublishedFile {
            file: file.name.to_string(),
            sha256: file.sha256.to_string(),
            status,
        },
        Link {
            name: file.name.to_string(),
            url: package.file_url(gitlab, file.name),
            link_type: "package".to_string(),
            direct_asset_path: Some(asset_path(file.name)),
        },
    ))
}

fn image_name(pushed: &Pushed) -> &str {
    pushed
        .reference
        .split('@')
        .next()
        .unwrap_or(&pushed.reference)
}

fn project_url(env: &Env) -> Option<String> {
    env.lookup("CI_PROJECT_URL")
        .filter(|u| u.starts_with("http"))
        .map(|u| u.trim_end_matches('/').to_string())
}

/// The permanent link path of a release file: GitLab takes `[-.\w/]+` ending in a letter or
/// digit, so `app-1.2.0+build.7.tar.gz` is linked as `/app-1.2.0-build.7.tar.gz`.
fn asset_path(file: &str) -> String {
    let safe: String = file
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '-' | '.' | '_') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = safe.trim_end_matches(|c: char| !c.is_alphanumeric());
    format!("/{trimmed}")
}
