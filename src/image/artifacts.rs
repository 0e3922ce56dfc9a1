//! Build outputs as image content (`image.artifacts`): files and folders an earlier CI job
//! left in the workspace, which git does not have. They are read from the working tree, in
//! byte order of their names, each with the spec's mode and owner and the commit time, so the
//! same bytes give the same layer digest anywhere. Each is hashed when collected (that SHA-256
//! goes into the release record) and again while it is written into the layer: a file that
//! changes in between is an error, not an image of bytes nobody recorded.

use std::collections::BTreeSet;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::archive::{append, append_file, write_failed, Counts, Normal};
use crate::digest::{sha256_file, sha256_hex, HashingReader};
use crate::error::{Error, Result};
use crate::source::{Content, Entry, EntryKind};
use crate::spec::image::{parse_owner, ArtifactSpec};

/// One artifact as the release record keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactRecord {
    pub src: String,
    pub dest: String,
    /// A file's SHA-256; for a folder, the SHA-256 of its listing (one `MODE SHA256 PATH` or
    /// `MODE -> TARGET PATH` line per entry, in order), so any changed byte, mode or name shows.
    pub sha256: String,
    pub files: u64,
    pub bytes: u64,
}

/// An artifact read from the workspace, ready to be written.
pub struct Collected {
    pub record: ArtifactRecord,
    normal: Normal,
    /// The image path without its leading `/`.
    dest: String,
    /// A folder (its entries go under `dest`), not a single file (at `dest`).
    folder: bool,
    /// A leading part of `dest` whose folders are written already (the tarball's prefix).
    written: String,
    entries: Vec<Found>,
}

struct Found {
    /// Relative to the artifact (empty for a single file).
    relative: Vec<u8>,
    path: PathBuf,
    kind: FoundKind,
}

enum FoundKind {
    Folder,
    File {
        mode: u32,
        sha256: String,
        size: u64,
    },
    Symlink(Vec<u8>),
}

/// Reads every artifact of the spec from the workspace at `root`; a missing one is an input
/// error that says which, and where it was looked for.
pub fn collect(
    root: &Path,
    specs: &[ArtifactSpec],
    owner: (u64, u64),
    mtime: u64,
) -> Result<Vec<Collected>> {
    specs
        .iter()
        .map(|spec| collect_one(root, spec, owner, mtime))
        .collect()
}

/// The artifacts that also go into the release tree (`tarball: true`), as its own files are:
/// at their workspace path under `prefix`, owned by `normal`, 0644 or 0755.
pub fn for_release_tree(
    root: &Path,
    specs: &[ArtifactSpec],
    prefix: &str,
    normal: Normal,
) -> Result<Vec<Collected>> {
    let mut collected = Vec::new();
    for spec in specs.iter().filter(|s| s.tarball) {
        let mut artifact = collect_one(root, spec, (normal.uid, normal.gid), normal.mtime)?;
        artifact.normal = normal;
        artifact.dest = format!("{prefix}{}", spec.src.as_str().trim_matches('/'));
        artifact.written = prefix.to_string();
        for entry in &mut artifact.entries {
            if let FoundKind::File { mode, .. } = &mut entry.kind {
                let workspace = std::fs::metadata(&entry.path)
                    .map_err(|e| Error::io("read", &entry.path, e))?
                    .permissions()
                    .mode();
                *mode = if workspace & 0o111 != 0 { 0o755 } else { 0o644 };
            }
        }
        collected.push(artifact);
    }
    Ok(collected)
}

fn collect_one(
    root: &Path,
    spec: &ArtifactSpec,
    owner: (u64, u64),
    mtime: u64,
) -> Result<Collected> {
    let path = root.join(spec.src.as_str());
    let metadata = std::fs::symlink_metadata(&path).map_err(|e| {
        Error::input(format!(
            "image.artifacts: `{}` is not in the workspace ({}: {e})",
            spec.src,
            path.display()
        ))
        .with_hint("A build job before this one makes it; hand it on with `artifacts: paths:` (and `needs:`)")
    })?;
    let (uid, gid) = match &spec.owner {
        Some(text) => parse_owner(text.as_str()).ok_or_else(|| {
            Error::input(format!("image.artifacts.owner `{text}` is not UID:GID"))
        })?,
        None => owner,
    };
    let mut entries = Vec::new();
    let folder = metadata.is_dir();
    if folder {
        walk(&path, Vec::new(), spec, &mut entries)?;
    } else {
        entries.push(found(&path, Vec::new(), &metadata, spec)?);
    }
    let mut listing = String::new();
    let (mut files, mut bytes) = (0, 0);
    for entry in &entries {
        let name = String::from_utf8_lossy(&entry.relative);
        match &entry.kind {
            FoundKind::Folder => listing.push_str(&format!("755 - {name}\n")),
            FoundKind::File { mode, sha256, size } => {
                listing.push_str(&format!("{mode:o} {sha256} {name}\n"));
                files += 1;
                bytes += size;
            }
            FoundKind::Symlink(target) => listing.push_str(&format!(
                "777 -> {} {name}\n",
                String::from_utf8_lossy(target)
            )),
        }
    }
    let sha256 = match entries.as_slice() {
        [Found {
            kind: FoundKind::File { sha256, .. },
            relative,
            ..
        }] if relative.is_empty() => sha256.clone(),
        _ => sha256_hex(listing.as_bytes()),
    };
    Ok(Collected {
        record: ArtifactRecord {
            src: spec.src.value.clone(),
            dest: spec.dest.value.clone(),
            sha256,
            files,
            bytes,
        },
        normal: Normal { mtime, uid, gid },
        dest: spec.dest.as_str().trim_matches('/').to_string(),
        folder,
        written: String::new(),
        entries,
    })
}

/// A folder's entries, depth first, each folder's names in byte order.
fn walk(dir: &Path, relative: Vec<u8>, spec: &ArtifactSpec, out: &mut Vec<Found>) -> Result<()> {
    let read = |e| Error::io("read the artifact folder", dir, e);
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .map_err(read)?
        .map(|entry| entry.map(|e| e.file_name()))
        .collect::<std::io::Result<_>>()
        .map_err(read)?;
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    for name in names {
        let path = dir.join(&name);
        let child = if relative.is_empty() {
            name.as_bytes().to_vec()
        } else {
            [relative.as_slice(), b"/", name.as_bytes()].concat()
        };
        let metadata = std::fs::symlink_metadata(&path).map_err(|e| Error::io("read", &path, e))?;
        let entry = found(&path, child.clone(), &metadata, spec)?;
        let is_folder = matches!(entry.kind, FoundKind::Folder);
        out.push(entry);
        if is_folder {
            walk(&path, child, spec, out)?;
        }
    }
    Ok(())
}

fn found(
    path: &Path,
    relative: Vec<u8>,
    metadata: &std::fs::Metadata,
    spec: &ArtifactSpec,
) -> Result<Found> {
    let kind = if metadata.is_dir() {
        FoundKind::Folder
    } else if metadata.file_type().is_symlink() {
        let target = std::fs::read_link(path).map_err(|e| Error::io("read the link", path, e))?;
        FoundKind::Symlink(target.as_os_str().as_bytes().to_vec())
    } else if metadata.is_file() {
        let executable = metadata.permissions().mode() & 0o111 != 0;
        FoundKind::File {
            mode: spec
                .file_mode()
                .unwrap_or(if executable { 0o755 } else { 0o644 }),
            sha256: sha256_file(path).map_err(|e| Error::io("read", path, e))?,
            size: metadata.len(),
        }
    } else {
        return Err(Error::input(format!(
            "image.artifacts: {} is neither a file, a folder nor a symbolic link",
            path.display()
        )));
    };
    Ok(Found {
        relative,
        path: path.to_path_buf(),
        kind,
    })
}

/// Writes the artifacts into a layer's tar, checking each file's bytes against what was
/// collected.
pub fn append_all<W: std::io::Write>(
    tar: &mut tar::Builder<W>,
    collected: &[Collected],
    counts: &mut Counts,
) -> Result<()> {
    // Outputs that share folders (two binaries in /usr/local/bin) write each folder once:
    // a layer with a path twice is refused by Docker.
    let mut written: BTreeSet<Vec<u8>> = BTreeSet::new();
    for artifact in collected {
        // A folder's own entry too; a file's parent folders only.
        let folders = match artifact.folder {
            true => artifact.dest.as_str(),
            false => artifact
                .dest
                .rsplit_once('/')
                .map_or("", |(parent, _)| parent),
        };
        let mut parent = String::new();
        for part in folders.split('/').filter(|p| !p.is_empty()) {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(part);
            if parent.len() >= artifact.written.len() && written.insert(parent.clone().into_bytes())
            {
                let folder = Entry {
                    path: parent.as_bytes(),
                    kind: EntryKind::Folder,
                    content: Content::Bytes(&[]),
                };
                append(tar, artifact.normal, parent.as_bytes(), folder).map_err(write_failed)?;
                counts.entries += 1;
            }
        }
        for entry in &artifact.entries {
            let path = match (artifact.dest.as_str(), entry.relative.is_empty()) {
                (dest, true) => dest.as_bytes().to_vec(),
                // A folder copied to `/` itself.
                ("", false) => entry.relative.clone(),
                (dest, false) => [dest.as_bytes(), b"/", entry.relative.as_slice()].concat(),
            };
            let is_folder = matches!(entry.kind, FoundKind::Folder);
            if !written.insert(path.clone()) {
                if is_folder {
                    continue;
                }
                return Err(Error::input(format!(
                    "image.artifacts: two build outputs write {} in the image; give them different `dest`s",
                    String::from_utf8_lossy(&path)
                )));
            }
            append_entry(tar, artifact, entry, &path, counts)?;
        }
    }
    Ok(())
}

fn append_entry<W: std::io::Write>(
    tar: &mut tar::Builder<W>,
    artifact: &Collected,
    entry: &Found,
    path: &[u8],
    counts: &mut Counts,
) -> Result<()> {
    counts.entries += 1;
    let (mode, sha256, size) = match &entry.kind {
        FoundKind::Folder | FoundKind::Symlink(_) => {
            let (kind, target): (EntryKind, &[u8]) = match &entry.kind {
                FoundKind::Symlink(target) => (EntryKind::Symlink, target),
                _ => (EntryKind::Folder, &[]),
            };
            let entry = Entry {
                path,
                kind,
                content: Content::Bytes(target),
            };
            return append(tar, artifact.normal, path, entry).map_err(write_failed);
        }
        FoundKind::File { mode, sha256, size } => (*mode, sha256, *size),
    };
    let file = std::fs::File::open(&entry.path).map_err(|e| Error::io("read", &entry.path, e))?;
    let mut reading = HashingReader::new(file.take(size));
    append_file(
        tar,
        artifact.normal,
        crate::source::bytes_path(path),
        mode,
        size,
        &mut reading,
    )
    .map_err(write_failed)?;
    let (now, read) = reading.finish();
    if &now != sha256 || read != size {
        return Err(Error::input(format!(
            "image.artifacts: {} changed while the image was built (sha256 {sha256} when collected, {now} when written); nothing was pushed",
            entry.path.display()
        ))
        .with_hint("Let the job that makes it finish before the release job starts"));
    }
    counts.content_bytes += size;
    Ok(())
}

/// Every file of the build outputs the workspace has, as `(path in the image, workspace path)`,
/// for the SBOM. One the workspace does not have is left out (a later job's).
pub fn files_in_workspace(root: &Path, specs: &[ArtifactSpec]) -> Result<Vec<(String, PathBuf)>> {
    let mut files = Vec::new();
    for spec in specs {
        if std::fs::symlink_metadata(root.join(spec.src.as_str())).is_err() {
            continue;
        }
        let artifact = collect_one(root, spec, (0, 0), 0)?;
        for entry in &artifact.entries {
            if let FoundKind::File { .. } = entry.kind {
                let path = match (artifact.dest.as_str(), entry.relative.is_empty()) {
                    (dest, true) => dest.to_string(),
                    ("", false) => String::from_utf8_lossy(&entry.relative).into_owned(),
                    (dest, false) => format!("{dest}/{}", String::from_utf8_lossy(&entry.relative)),
                };
                files.push((path, entry.path.clone()));
            }
        }
    }
    Ok(files)
}

/// How the build outputs in the workspace now differ from those an earlier job built the
/// image with (its record), one message each. One the workspace does not have is left out:
/// the image layout holds its bytes.
pub fn changed_since(
    root: &Path,
    specs: &[ArtifactSpec],
    built_with: &[ArtifactRecord],
    mtime: u64,
) -> Result<Vec<String>> {
    let mut changed = Vec::new();
    for spec in specs {
        let Some(earlier) = built_with.iter().find(|r| r.src == spec.src.value) else {
            continue;
        };
        if std::fs::symlink_metadata(root.join(spec.src.as_str())).is_err() {
            continue;
        }
        let now = collect_one(root, spec, (0, 0), mtime)?.record;
        if now.sha256 != earlier.sha256 {
            changed.push(format!(
                "{} is now sha256 {}, the image was built with {}",
                earlier.src, now.sha256, earlier.sha256
            ));
        }
    }
    Ok(changed)
}
