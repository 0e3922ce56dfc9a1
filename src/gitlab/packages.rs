//! Release files in the project's generic package registry. An upload of a file that is
//! already there adds a duplicate in GitLab, so the stored file is compared first: the same
//! bytes are skipped, other bytes under the same version are refused (a released version is
//! never silently replaced) unless forced. The comparison is by SHA-256; older GitLab lists
//! package files without `file_sha256`, and then size and MD5 decide. A listing with neither
//! (MD5 is left out in FIPS mode) cannot tell, and that is said rather than risk a duplicate.

use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::mode::Mode;
use crate::net::api::{Payload, Reply};

use super::api::{JobTokenApi, Project};
use crate::net::percent_encode;

/// Tries of check-then-upload when the network fails (re-checking first makes a retry safe).
const ATTEMPTS: u32 = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileStatus {
    Uploaded,
    /// The registry already holds these exact bytes under this name.
    AlreadyThere,
    /// Other bytes were there; uploaded again with `--force` (the newest file wins downloads).
    Replaced,
    /// Dry run: would be uploaded.
    WouldUpload,
}

crate::ui::display_as_words!(FileStatus);

/// One file to publish.
pub struct PackageFile<'a> {
    pub name: &'a str,
    pub content: Payload<'a>,
    pub sha256: &'a str,
    /// The first upload stands: other bytes already there are kept, not refused (a
    /// provenance names its job, so a re-run's differs from the first run's).
    pub first_wins: bool,
}

/// Where a package's files live.
pub struct Package<'a> {
    pub name: &'a str,
    pub version: &'a str,
}

impl Package<'_> {
    /// The download address of one of its files.
    pub fn file_url(&self, project: &Project, file: &str) -> String {
        format!("{}{}", project.base, self.file_path(project, file))
    }

    fn file_path(&self, project: &Project, file: &str) -> String {
        format!(
            "{}/packages/generic/{}/{}/{}",
            project.prefix,
            percent_encode(self.name),
            percent_encode(self.version),
            percent_encode(file)
        )
    }
}

pub fn upload(
    project: &Project,
    package: &Package,
    file: &PackageFile,
    force: bool,
    mode: Mode,
) -> Result<FileStatus> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match check_then_upload(project, package, file, force, mode) {
            // A failed transfer may or may not have landed: the next check tells.
            Err(e) if e.code == crate::error::ExitCode::Failed && attempt < ATTEMPTS => {
                crate::net::retry::pause(attempt);
            }
            other => return other,
        }
    }
}

fn check_then_upload(
    project: &Project,
    package: &Package,
    file: &PackageFile,
    force: bool,
    mode: Mode,
) -> Result<FileStatus> {
    let stored = stored_files(project, package, file.name)?;
    let status = match stored.last() {
        None => FileStatus::Uploaded,
        Some(newest) => match same_bytes(newest, file)? {
            Sameness::Same => return Ok(FileStatus::AlreadyThere),
            _ if file.first_wins => return Ok(FileStatus::AlreadyThere),
            _ if force => FileStatus::Replaced,
            Sameness::Differs(how) => {
                return Err(Error::input(format!(
                    "{} of package {} {} is already in GitLab with other bytes ({how}); a released version is not replaced",
                    file.name, package.name, package.version
                ))
                .with_hint("Release a new version, or pass --force to upload it again (the newest file wins downloads)")
            .with_hint(crate::gzip::FIXED_CUTS_HINT))
            }
            Sameness::Unknown => {
                return Err(Error::input(format!(
                    "{} of package {} {} is already in GitLab, listed without a SHA-256 or MD5 (an older GitLab, or one in FIPS mode), so tagpilot cannot tell whether it holds these bytes; it does not upload what may be a duplicate",
                    file.name, package.name, package.version
                ))
                .with_hint("Compare the file in GitLab by hand; --force uploads it again"))
            }
        },
    };
    if mode.rehearsing() {
        return Ok(FileStatus::WouldUpload);
    }
    project.require_token()?;
    let what = format!("upload {}", file.name);
    let path = format!(
        "{}?select=package_file",
        package.file_path(project, file.name)
    );
    let reply = project.api.upload(
        "PUT",
        &path,
        "application/octet-stream",
        file.content,
        &what,
    )?;
    refused_by_settings(&reply, package, file)?;
    project.expect(&reply, &what, JobTokenApi::GenericUpload)?;
    // GitLab reports the stored file's digest: a difference means the bytes changed on the way.
    if let Some(sha256) = reply.json().get("file_sha256").and_then(Value::as_str) {
        if sha256 != file.sha256 {
            return Err(Error::failed(format!(
                "GitLab stored {} with sha256 {sha256}, not {}: the upload was damaged",
                file.name, file.sha256
            )));
        }
    }
    Ok(status)
}

/// The project's package settings that no flag overrides: "Reject duplicates" (400
/// `Duplicate package is not allowed`) and protected packages (403 `Package protected`).
fn refused_by_settings(reply: &Reply, package: &Package, file: &PackageFile) -> Result<()> {
    let reason = reply.reason();
    let setting = match reply.status {
        400 if reason.contains("Duplicate package") => {
            "rejects duplicate files (Settings > Packages and registries > Duplicate packages)"
        }
        403 if reason.to_lowercase().contains("protected") => {
            "protects this package (Settings > Packages and registries > Protected packages)"
        }
        _ => return Ok(()),
    };
    Err(Error::input(format!(
        "GitLab refused {} of package {} {}: the project {setting}; --force cannot replace a file there",
        file.name, package.name, package.version
    ))
    .with_hint("Release a new version, or change the project's package settings"))
}

/// What GitLab lists of a stored file: `file_sha256` (missing in older GitLab), `file_md5`
/// (missing in FIPS mode) and `size`.
struct StoredFile {
    sha256: Option<String>,
    md5: Option<String>,
    size: Option<u64>,
}

enum Sameness {
    Same,
    /// Other bytes: how they differ, for the message.
    Differs(String),
    /// Nothing listed to compare with.
    Unknown,
}

/// Compares a stored file with ours: by SHA-256, else by size and MD5.
fn same_bytes(stored: &StoredFile, file: &PackageFile) -> Result<Sameness> {
    if let Some(theirs) = &stored.sha256 {
        return Ok(if theirs == file.sha256 {
            Sameness::Same
        } else {
            Sameness::Differs(format!("sha256 {theirs}, this build {}", file.sha256))
        });
    }
    let Some(theirs) = &stored.md5 else {
        return Ok(Sameness::Unknown);
    };
    let (size, md5) = match file.content {
        Payload::Bytes(bytes) => (bytes.len() as u64, crate::digest::md5_hex(bytes)),
        Payload::File(path) => (
            std::fs::metadata(path)
                .map_err(|e| Error::io("read", path, e))?
                .len(),
            crate::digest::md5_file(path).map_err(|e| Error::io("read", path, e))?,
        ),
    };
    if stored.size.is_some_and(|s| s != size) {
        return Ok(Sameness::Differs(format!(
            "{} bytes, this build {size}",
            stored.size.unwrap_or(0)
        )));
    }
    Ok(if *theirs == md5 {
        Sameness::Same
    } else {
        Sameness::Differs(format!("md5 {theirs}, this build {md5}"))
    })
}

/// Every stored file named `file` in the package version, oldest first.
fn stored_files(project: &Project, package: &Package, file: &str) -> Result<Vec<StoredFile>> {
    let listing = format!(
        "{}/packages?package_type=generic&package_name={}&package_version={}",
        project.prefix,
        percent_encode(package.name),
        percent_encode(package.version)
    );
    let packages = project.all_pages(
        &listing,
        &format!("list the {} packages", package.name),
        JobTokenApi::Packages,
    )?;
    let id = packages.iter().find_map(|p| {
        (p["name"] == package.name && p["version"] == package.version)
            .then(|| p["id"].as_u64())
            .flatten()
    });
    let Some(id) = id else {
        return Ok(Vec::new());
    };
    let files = project.all_pages(
        &format!("{}/packages/{id}/package_files", project.prefix),
        &format!("list the files of {} {}", package.name, package.version),
        JobTokenApi::PackageFiles,
    )?;
    let text = |f: &Value, key: &str| f[key].as_str().filter(|s| !s.is_empty()).map(String::from);
    Ok(files
        .iter()
        .filter(|f| f["file_name"] == file)
        .map(|f| StoredFile {
            sha256: text(f, "file_sha256"),
            md5: text(f, "file_md5"),
            size: f["size"].as_u64(),
        })
        .collect())
}
