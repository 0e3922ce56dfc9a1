//! The walk over a git tree in tree order, the order `git archive` uses: folders and files as
//! entries with their bytes (small files read whole, large ones streamed from their pack),
//! after `.gitattributes export-ignore`, the spec's excludes and the submodule rule.

use git2::{ObjectType, Oid, Repository, Tree};

use crate::error::{Error, Result};

use super::attributes::ExportIgnore;
use super::packs::Packs;
use super::{
    bytes_path, find_blob, git_failed, Content, Entry, EntryKind, Selection, Submodules,
    STREAM_FROM,
};

pub(super) struct Walker<'a, 'v> {
    pub(super) repo: &'a Repository,
    pub(super) odb: git2::Odb<'a>,
    /// Opened on the first large file.
    pub(super) packs: Option<Packs>,
    pub(super) selection: &'a Selection<'a>,
    pub(super) export_ignore: ExportIgnore,
    /// Path of the folder being walked, `/`-terminated unless it is the root.
    pub(super) path: Vec<u8>,
    /// Folders entered but not yet visited, as lengths of `path`: a folder is only visited once
    /// something inside it is, so exclusions and skipped submodules leave no empty folders.
    pub(super) pending_folders: Vec<usize>,
    pub(super) visit: &'v mut dyn FnMut(Entry) -> Result<()>,
}

impl Walker<'_, '_> {
    pub(super) fn folder(&mut self, tree: &Tree) -> Result<()> {
        let base = self.path.strip_suffix(b"/").unwrap_or(&self.path).to_vec();
        let attributes = match tree.get_name(".gitattributes") {
            Some(entry) if entry.kind() == Some(ObjectType::Blob) => {
                Some(find_blob(self.repo, entry.id())?)
            }
            _ => None,
        };
        self.export_ignore
            .enter(&base, attributes.as_ref().map(|b| b.content()));
        for entry in tree.iter() {
            let len = self.path.len();
            self.path.extend_from_slice(entry.name_bytes());
            let result = self.entry(&entry);
            self.path.truncate(len);
            result?;
        }
        self.export_ignore.leave();
        Ok(())
    }

    pub(super) fn entry(&mut self, entry: &git2::TreeEntry) -> Result<()> {
        let is_folder = entry.kind() == Some(ObjectType::Tree);
        let path = self.path.clone();
        if (self.selection.export_ignore && self.export_ignore.is_ignored(&path, is_folder))
            || self.selection.excludes.is_excluded(bytes_path(&path))
        {
            return Ok(());
        }
        match entry.kind() {
            Some(ObjectType::Tree) => {
                let tree = self
                    .repo
                    .find_tree(entry.id())
                    .map_err(git_failed("read a tree"))?;
                self.pending_folders.push(self.path.len());
                self.path.push(b'/');
                let result = self.folder(&tree);
                self.path.pop();
                if self.pending_folders.last() == Some(&self.path.len()) {
                    self.pending_folders.pop();
                }
                result
            }
            Some(ObjectType::Blob) => {
                let kind = match entry.filemode() {
                    0o120000 => EntryKind::Symlink,
                    mode => EntryKind::File {
                        executable: mode & 0o111 != 0,
                    },
                };
                self.visit_pending_folders()?;
                let (size, _) = self
                    .odb
                    .read_header(entry.id())
                    .map_err(git_failed("read a file"))?;
                if kind != EntryKind::Symlink && size > STREAM_FROM {
                    return self.visit_large_file(&path, kind, entry.id(), size as u64);
                }
                let blob = find_blob(self.repo, entry.id())?;
                (self.visit)(Entry {
                    path: &path,
                    kind,
                    content: Content::Bytes(blob.content()),
                })
            }
            Some(ObjectType::Commit) => match self.selection.submodules {
                Submodules::Skip => Ok(()),
                Submodules::Error => Err(Error::input(format!(
                    "`{}` is a git submodule (commit {}): its files are not in this repository, so the archive would silently miss them",
                    String::from_utf8_lossy(&path),
                    entry.id()
                ))
                .with_hint("Set `tarball.submodules: skip` to leave it out, or exclude it with `tarball.exclude`")),
            },
            _ => Ok(()),
        }
    }

    fn visit_pending_folders(&mut self) -> Result<()> {
        for len in std::mem::take(&mut self.pending_folders) {
            (self.visit)(Entry {
                path: &self.path[..len],
                kind: EntryKind::Folder,
                content: Content::Bytes(&[]),
            })?;
        }
        Ok(())
    }

    /// Streams a large file: straight from its pack when stored whole there, else through
    /// libgit2's stream (loose objects); only a deltified blob is read whole.
    fn visit_large_file(&mut self, path: &[u8], kind: EntryKind, id: Oid, size: u64) -> Result<()> {
        let objects = self.repo.path().join("objects");
        let packs = self.packs.get_or_insert_with(|| Packs::open(&objects));
        let read_failed =
            |e: std::io::Error| Error::failed(format!("git: could not read a file: {e}"));
        if let Some(mut stream) = packs
            .blob_stream(id.as_bytes(), size)
            .map_err(read_failed)?
        {
            return (self.visit)(Entry {
                path,
                kind,
                content: Content::Stream {
                    size,
                    reader: &mut stream,
                },
            });
        }
        if let Ok((mut reader, _, ObjectType::Blob)) = self.odb.reader(id) {
            return (self.visit)(Entry {
                path,
                kind,
                content: Content::Stream {
                    size,
                    reader: &mut reader,
                },
            });
        }
        let blob = find_blob(self.repo, id)?;
        (self.visit)(Entry {
            path,
            kind,
            content: Content::Bytes(blob.content()),
        })
    }
}
