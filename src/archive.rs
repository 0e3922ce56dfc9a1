//! Normalised tar entries, shared by the release tarball and image layers: one fixed mtime,
//! configured owner with empty names, modes 0644 / 0755 (executables, folders) / 0777
//! (symlinks), GNU format. Nothing about the machine or the moment leaks into the bytes.

use std::io::{self, Write};

use crate::error::{Error, Result};
use crate::source::{bytes_path, Commit, Content, Entry, EntryKind, Selection, Source};
use crate::ui::Progress;

/// What every entry's header gets.
#[derive(Clone, Copy, Debug)]
pub struct Normal {
    pub mtime: u64,
    pub uid: u64,
    pub gid: u64,
}

/// Entries and content bytes written so far.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counts {
    pub entries: u64,
    pub content_bytes: u64,
}

pub fn write_failed(e: io::Error) -> Error {
    Error::failed(format!("could not write the archive: {e}"))
}

/// Combines the outcome of writing entries with the outcome of finishing the compressed file.
/// A failed finish (disk full) is the root cause of any broken pipe the writer saw, so it wins;
/// otherwise the writer's own error (a submodule, say) is the one to report.
pub fn settle<T>(
    written: Result<()>,
    finished: io::Result<T>,
    file: &std::path::Path,
) -> Result<T> {
    match (written, finished) {
        (Ok(()), Ok(value)) => Ok(value),
        (_, Err(e)) if e.kind() != io::ErrorKind::BrokenPipe => Err(Error::io("write", file, e)),
        (Err(e), _) => Err(e),
        (Ok(()), Err(e)) => Err(Error::io("write", file, e)),
    }
}

/// A folder as an entry-path prefix: `/opt/dirac` and `opt/dirac/` give `opt/dirac/`; `/` and
/// the empty string give no prefix at all.
pub fn folder_prefix(folder: &str) -> String {
    match folder.trim_matches('/') {
        "" => String::new(),
        folder => format!("{folder}/"),
    }
}

/// Appends the folders of `prefix` (`a/b/` gives `a` and `a/b`).
pub fn append_prefix_folders<W: Write>(
    tar: &mut tar::Builder<W>,
    normal: Normal,
    prefix: &str,
    counts: &mut Counts,
) -> Result<()> {
    append_folders_below(tar, normal, prefix, "", counts)
}

/// Appends the folders of `folders` that `written` (a leading part of it, `/`-terminated, or
/// empty) does not hold already.
pub fn append_folders_below<W: Write>(
    tar: &mut tar::Builder<W>,
    normal: Normal,
    folders: &str,
    written: &str,
    counts: &mut Counts,
) -> Result<()> {
    let mut path = String::new();
    for part in folders.split('/').filter(|p| !p.is_empty()) {
        if !path.is_empty() {
            path.push('/');
        }
        path.push_str(part);
        if path.len() < written.len() {
            continue;
        }
        let folder = Entry {
            path: path.as_bytes(),
            kind: EntryKind::Folder,
            content: Content::Bytes(&[]),
        };
        append(tar, normal, path.as_bytes(), folder).map_err(write_failed)?;
        counts.entries += 1;
    }
    Ok(())
}

/// Appends the selected tree of `commit` under `prefix` (empty, or ending in `/`).
#[allow(clippy::too_many_arguments)] // each is a distinct input of the one walk
pub fn append_tree<W: Write>(
    tar: &mut tar::Builder<W>,
    normal: Normal,
    source: &Source,
    commit: &Commit,
    selection: &Selection,
    prefix: &str,
    progress: &mut Progress,
    counts: &mut Counts,
) -> Result<()> {
    source.walk(commit, selection, &mut |entry: Entry| {
        let mut path = Vec::with_capacity(prefix.len() + entry.path.len());
        path.extend_from_slice(prefix.as_bytes());
        path.extend_from_slice(entry.path);
        let content = entry.content.len();
        append(tar, normal, &path, entry).map_err(write_failed)?;
        counts.entries += 1;
        counts.content_bytes += content;
        progress.advance(content, 1);
        Ok(())
    })
}

/// Appends one entry at `path` (which may differ from the entry's own path by a prefix).
pub fn append<W: Write>(
    tar: &mut tar::Builder<W>,
    normal: Normal,
    path: &[u8],
    entry: Entry,
) -> io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_mtime(normal.mtime);
    header.set_uid(normal.uid);
    header.set_gid(normal.gid);
    header.set_size(0);
    let path = bytes_path(path);
    match (entry.kind, entry.content) {
        (EntryKind::Folder, _) => {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(0o755);
            tar.append_data(&mut header, path, io::empty())
        }
        (EntryKind::Symlink, content) => {
            let Content::Bytes(target) = content else {
                return Err(io::Error::other("a symlink target is never streamed"));
            };
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_mode(0o777);
            tar.append_link(&mut header, path, bytes_path(target))
        }
        (EntryKind::File { executable }, content) => {
            let mode = if executable { 0o755 } else { 0o644 };
            let size = content.len();
            match content {
                Content::Bytes(bytes) => append_file(tar, normal, path, mode, size, bytes),
                Content::Stream { reader, .. } => {
                    append_file(tar, normal, path, mode, size, reader)
                }
            }
        }
    }
}

/// Appends a regular file of `size` bytes with an explicit mode (build outputs keep theirs).
pub fn append_file<W: Write>(
    tar: &mut tar::Builder<W>,
    normal: Normal,
    path: impl AsRef<std::path::Path>,
    mode: u32,
    size: u64,
    content: impl io::Read,
) -> io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_mtime(normal.mtime);
    header.set_uid(normal.uid);
    header.set_gid(normal.gid);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(mode);
    header.set_size(size);
    tar.append_data(&mut header, path, content)
}

/// Re-writes the entries of a tar stream (a release tarball's) under another prefix and owner:
/// `strip` (the tarball's prefix folder, `/`-terminated) is replaced by `prefix`. The folders of
/// `strip` itself are left out; the caller writes `prefix`'s own. Files stream through.
pub fn restamp<R: io::Read, W: Write>(
    from: R,
    strip: &str,
    tar: &mut tar::Builder<W>,
    normal: Normal,
    prefix: &str,
    counts: &mut Counts,
) -> Result<()> {
    let read_failed = |e: io::Error| Error::failed(format!("could not read the release tree: {e}"));
    let mut archive = tar::Archive::new(from);
    for entry in archive.entries().map_err(read_failed)? {
        let mut entry = entry.map_err(read_failed)?;
        let path = entry.path_bytes().into_owned();
        let Some(relative) = path.strip_prefix(strip.as_bytes()) else {
            continue; // a folder of the tarball's prefix
        };
        let relative = relative.strip_suffix(b"/").unwrap_or(relative);
        let kind = match entry.header().entry_type() {
            tar::EntryType::Directory => EntryKind::Folder,
            tar::EntryType::Symlink => EntryKind::Symlink,
            _ => EntryKind::File {
                executable: entry.header().mode().map_err(read_failed)? & 0o100 != 0,
            },
        };
        let target = match kind {
            EntryKind::Symlink => entry
                .link_name_bytes()
                .map(|t| t.into_owned())
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        let size = entry.size();
        let content = match kind {
            EntryKind::Symlink => Content::Bytes(&target),
            EntryKind::Folder => Content::Bytes(&[]),
            EntryKind::File { .. } => Content::Stream {
                size,
                reader: &mut entry,
            },
        };
        let new_path = [prefix.as_bytes(), relative].concat();
        append(
            tar,
            normal,
            &new_path,
            Entry {
                path: &new_path,
                kind,
                content,
            },
        )
        .map_err(write_failed)?;
        counts.entries += 1;
        counts.content_bytes += size;
    }
    Ok(())
}

/// Passes writes through, and sends a copy of the bytes, in chunks, to another thread.
pub struct Tee<W> {
    inner: W,
    copy: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
    chunk: Vec<u8>,
}

const TEE_CHUNK: usize = 256 * 1024;

impl<W: Write> Tee<W> {
    pub fn new(inner: W, copy: Option<std::sync::mpsc::SyncSender<Vec<u8>>>) -> Tee<W> {
        Tee {
            inner,
            copy,
            chunk: Vec::new(),
        }
    }

    /// Sends what is left and closes the copy; returns the inner writer.
    pub fn into_inner(mut self) -> io::Result<W> {
        self.send()?;
        Ok(self.inner)
    }

    fn send(&mut self) -> io::Result<()> {
        if let Some(copy) = &self.copy {
            if !self.chunk.is_empty() {
                let chunk = std::mem::take(&mut self.chunk);
                copy.send(chunk).map_err(|_| {
                    io::Error::new(io::ErrorKind::BrokenPipe, "the copy's reader stopped")
                })?;
            }
        }
        Ok(())
    }
}

impl<W: Write> Write for Tee<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(data)?;
        if self.copy.is_some() {
            self.chunk.extend_from_slice(&data[..n]);
            if self.chunk.len() >= TEE_CHUNK {
                self.send()?;
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Reads what a [`Tee`] sends, until it closes.
pub struct ChannelReader {
    from: std::sync::mpsc::Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    at: usize,
}

impl ChannelReader {
    pub fn new(from: std::sync::mpsc::Receiver<Vec<u8>>) -> ChannelReader {
        ChannelReader {
            from,
            chunk: Vec::new(),
            at: 0,
        }
    }
}

impl io::Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.chunk.len() {
            match self.from.recv() {
                Ok(chunk) => {
                    self.chunk = chunk;
                    self.at = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}
