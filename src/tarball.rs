//! The release tarball: the selected git tree under a prefix folder, as a gzip'd tar whose bytes
//! depend only on the tree, the prefix, the mtime and the (pinned) [`Packing`].
//!
//! Entries are normalised by [`crate::archive`]; compression is [`crate::compress`], on every
//! core, with the same bytes whatever the core count.
//!
//! This thread walks the tree and writes tar bytes; compression, hashing and the file write
//! happen on other threads. Memory holds a few blocks; large files are streamed.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::SyncSender;

use crate::archive::{append_prefix_folders, append_tree, settle, Counts, Normal, Tee};
use crate::compress::{Compression, Compressor, Packing};
use crate::digest::{self, HashingWriter};
use crate::error::{Error, Result};
use crate::fsutil;
use crate::gzip::share::Share;
use crate::gzip::Cuts;
use crate::source::{Commit, Selection, Source};
use crate::ui::Progress;

/// The tarball as the release record keeps it, for later jobs and the publish stage.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct TarballRecord {
    pub file: String,
    pub path: String,
    pub sha256: String,
    pub size: u64,
    pub entries: u64,
    /// How gzip's blocks were cut (none for zstd, and in records of tagpilot 0.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gzip_blocks: Option<Cuts>,
}

impl TarballRecord {
    pub fn of(built: &Built) -> TarballRecord {
        TarballRecord {
            file: built.file_name.clone(),
            path: built.path.display().to_string(),
            sha256: built.sha256.clone(),
            size: built.size,
            entries: built.entries,
            gzip_blocks: built.gzip_blocks,
        }
    }
}

/// How to pack one tarball.
pub struct Plan<'a> {
    /// File name inside the output folder, e.g. `dirac-8.2.44.tar.gz`.
    pub file_name: String,
    /// Folder prefix for every entry, ending in `/` (or empty).
    pub prefix: String,
    /// Seconds since the epoch for every entry's mtime.
    pub mtime: u64,
    pub packing: Packing,
    pub selection: Selection<'a>,
    /// Build outputs that go into the tree too (`image.artifacts` with `tarball: true`).
    pub artifacts: Vec<crate::image::artifacts::Collected>,
}

/// What to do when the output file already exists with other bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Existing {
    /// Never replace a released file with different bytes: stop with an error.
    Refuse,
    /// A throw-away build (dry run, snapshot): replace it.
    Replace,
}

#[derive(Clone, Debug)]
pub struct Built {
    pub path: PathBuf,
    pub file_name: String,
    pub sha256: String,
    /// Compressed size in bytes.
    pub size: u64,
    /// Number of tar entries (folders, files, symlinks), the prefix folders included.
    pub entries: u64,
    /// Total bytes of file contents.
    pub content_bytes: u64,
    /// The file was already there with exactly these bytes.
    pub unchanged: bool,
    /// How gzip's blocks were cut; none for zstd.
    pub gzip_blocks: Option<Cuts>,
}

/// Where the tarball's tree also goes while it is packed, for the image: its uncompressed
/// stream (the release tree layer is made from it, so the git tree is read once for both),
/// and its compressed file blocks (so the image's layers need not compress them again).
pub struct Copy {
    /// The uncompressed tar stream, in chunks.
    pub stream: Option<SyncSender<Vec<u8>>>,
    /// The tarball's compressed file blocks: to that layer, and into an index for later ones.
    pub share: Share,
}

/// Builds the tarball in `out_dir` (atomically) and records it in `out_dir/SHA256SUMS`, sending
/// it to `copy` too.
pub fn build(
    source: &Source,
    commit: &Commit,
    plan: &Plan,
    out_dir: &Path,
    existing: Existing,
    progress: &mut Progress,
    copy: Option<Copy>,
) -> Result<Built> {
    let final_path = out_dir.join(&plan.file_name);
    let temp = fsutil::temp_beside(&final_path)?;
    let file = temp
        .as_file()
        .try_clone()
        .map_err(|e| Error::io("write", temp.path(), e))?;

    let sink = HashingWriter::new(BufWriter::with_capacity(1 << 20, file));
    let (stream, share) = match copy {
        Some(Copy { stream, share }) => (stream, share),
        None => (None, Share::None),
    };
    let compressor = Compressor::sharing(plan.packing, sink, share)
        .map_err(|e| Error::failed(format!("could not start the compressor: {e}")))?;
    let mut tar = tar::Builder::new(Tee::new(compressor, stream));
    let mut counts = Counts::default();
    let normal = Normal {
        mtime: plan.mtime,
        uid: 0,
        gid: 0,
    };
    let packed =
        append_prefix_folders(&mut tar, normal, &plan.prefix, &mut counts).and_then(|()| {
            append_tree(
                &mut tar,
                normal,
                source,
                commit,
                &plan.selection,
                &plan.prefix,
                progress,
                &mut counts,
            )?;
            crate::image::artifacts::append_all(&mut tar, &plan.artifacts, &mut counts)
        });
    let finished = tar
        .into_inner()
        .and_then(Tee::into_inner)
        .and_then(Compressor::finish);
    let sink = settle(packed, finished, temp.path())?;
    let (mut buffered, sha256, size) = sink.finish();
    buffered
        .flush()
        .map_err(|e| Error::io("write", temp.path(), e))?;
    progress.finish();

    let unchanged = settle_file(temp, &final_path, &sha256, existing)?;
    record_checksum(out_dir, &plan.file_name, &sha256)?;
    Ok(Built {
        path: final_path,
        file_name: plan.file_name.clone(),
        sha256,
        size,
        entries: counts.entries,
        content_bytes: counts.content_bytes,
        unchanged,
        gzip_blocks: (plan.packing.compression == Compression::Gzip).then_some(plan.packing.cuts),
    })
}

/// Moves the finished `temp` to `final_path`, unless that already holds these bytes (then it is
/// left as it is, and this says so) or other bytes that must not be replaced.
fn settle_file(
    temp: tempfile::NamedTempFile,
    final_path: &Path,
    sha256: &str,
    existing: Existing,
) -> Result<bool> {
    match digest::sha256_file(final_path) {
        Ok(old) if old == sha256 => return Ok(true),
        Ok(old) if existing == Existing::Refuse => {
            return Err(Error::input(format!(
                "{} already exists with different content (sha256 {old}; this build gives {sha256}). A released file is never replaced by different bytes",
                final_path.display()
            ))
            .with_hint("If the old file is a leftover, remove it; otherwise write elsewhere with --out DIR")
            .with_hint(crate::gzip::FIXED_CUTS_HINT));
        }
        _ => {}
    }
    temp.as_file()
        .sync_all()
        .map_err(|e| Error::io("write", temp.path(), e))?;
    fsutil::persist(temp, final_path)?;
    Ok(false)
}

/// Adds or replaces this file's line in `SHA256SUMS` (the `sha256sum -c` format), keeping lines
/// for other files, sorted by name.
fn record_checksum(out_dir: &Path, file_name: &str, sha256: &str) -> Result<()> {
    let path = out_dir.join("SHA256SUMS");
    let mut lines: Vec<String> = std::fs::read_to_string(&path)
        .unwrap_or_default()
        .lines()
        .filter(|line| {
            line.split_once("  ")
                .is_some_and(|(_, name)| name != file_name)
        })
        .map(str::to_string)
        .collect();
    lines.push(format!("{sha256}  {file_name}"));
    lines.sort_by(|a, b| {
        a.split_once("  ")
            .map(|x| x.1)
            .cmp(&b.split_once("  ").map(|x| x.1))
    });
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    fsutil::write_atomic(&path, text.as_bytes())
}
