//! The source of a release: the git tree at a tag, read with libgit2, never the working
//! directory. Entries come out in git tree order (the order `git archive` uses) with their
//! bytes, after `.gitattributes export-ignore` and the spec's excludes.

mod attributes;
mod changes;
mod excludes;
mod packs;
mod walk;

use std::io::Read;
use std::path::{Path, PathBuf};

use git2::{ObjectType, Oid, Repository};

use crate::error::{Error, Result};
use attributes::ExportIgnore;
pub use excludes::Excludes;
use walk::Walker;

/// Files larger than this are streamed rather than read whole.
const STREAM_FROM: usize = 4 << 20;

/// A git repository that releases are cut from.
pub struct Source {
    repo: Repository,
    root: PathBuf,
}

/// The commit a release is built from.
#[derive(Clone, Debug)]
pub struct Commit {
    pub id: String,
    /// Committer time, seconds since the epoch: the mtime of every archived entry.
    pub time: i64,
    tree: Oid,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    Folder,
    File { executable: bool },
    Symlink,
}

/// One archived path. `path` is relative to the repository root, `/`-separated, with no
/// trailing slash. `content` is a file's bytes or a symlink's target (empty for folders).
pub struct Entry<'a> {
    pub path: &'a [u8],
    pub kind: EntryKind,
    pub content: Content<'a>,
}

pub enum Content<'a> {
    Bytes(&'a [u8]),
    /// A large file, read as a stream of exactly `size` bytes.
    Stream {
        size: u64,
        reader: &'a mut dyn Read,
    },
}

impl Content<'_> {
    pub fn len(&self) -> u64 {
        match self {
            Content::Bytes(bytes) => bytes.len() as u64,
            Content::Stream { size, .. } => *size,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What to leave out of the tree, and how to treat submodules.
pub struct Selection<'a> {
    pub excludes: &'a Excludes,
    pub submodules: Submodules,
    /// Apply `.gitattributes` `export-ignore` (the release tree does; files the user listed
    /// one by one do not).
    pub export_ignore: bool,
}

/// libgit2 maps packfiles into memory in windows, by default up to 8 GiB of them: a release
/// from a large repository would then "use" as much memory as its pack is big. Reads go through
/// the page cache either way; capping the mapping keeps the resident size flat.
const PACK_WINDOW: usize = 4 << 20;
const PACK_MAPPED_LIMIT: usize = 16 << 20;

/// Also: libgit2 re-hashes every object it reads with collision-detecting SHA-1, a quarter of
/// the time a release of a big tree spent reading it. git itself does not on reads (`git fsck`
/// does), and inflating still checks each object's zlib checksum; big blobs streamed from the
/// packs (`packs`) were never re-hashed. So reads here skip it, as git's do.
fn limit_pack_mapping() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: libgit2's global options must not change while other threads use libgit2;
        // this runs once, before the first repository is opened.
        unsafe {
            let _ = git2::opts::set_mwindow_size(PACK_WINDOW);
            let _ = git2::opts::set_mwindow_mapped_limit(PACK_MAPPED_LIMIT);
        }
        git2::opts::strict_hash_verification(false);
    });
}

impl Source {
    /// Opens the repository containing `dir` (like git, searching parent folders).
    pub fn open(dir: &Path) -> Result<Source> {
        limit_pack_mapping();
        let repo = Repository::discover(dir).map_err(|e| {
            Error::input(format!(
                "{} is not inside a git repository ({})",
                dir.display(),
                e.message()
            ))
            .with_hint("Run tagpilot in the checkout of the project to release, or pass --repo DIR")
        })?;
        // Rebuilt from components: libgit2 ends the folder with a slash, which reads badly in
        // messages ("in /src/dirac/.").
        let root = repo
            .workdir()
            .unwrap_or_else(|| repo.path())
            .components()
            .collect();
        Ok(Source { repo, root })
    }

    /// The repository's folder: the working tree, or the bare repository itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The default release name: the folder name, without a bare repository's `.git`.
    pub fn default_name(&self) -> String {
        let canonical = self
            .root
            .canonicalize()
            .unwrap_or_else(|_| self.root.clone());
        let folder = canonical
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "release".to_string());
        let folder = folder.strip_suffix(".git").unwrap_or(&folder);
        // Keep to the alphabet release names allow.
        folder
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '-'
                }
            })
            .collect::<String>()
            .trim_start_matches(['.', '-'])
            .to_string()
    }

    /// Every tag name in the repository (without `refs/tags/`).
    pub fn tag_names(&self) -> Result<Vec<String>> {
        let names = self.repo.tag_names(None).map_err(git_failed("list tags"))?;
        // Tag names that are not UTF-8 cannot be versions; they are left out.
        Ok(names
            .iter()
            .flatten()
            .flatten()
            .map(str::to_string)
            .collect())
    }

    /// The commit a tag points at (through annotated tags).
    pub fn tag_commit(&self, tag: &str) -> Result<Commit> {
        let reference = format!("refs/tags/{tag}");
        let object = self.repo.revparse_single(&reference).map_err(|_| {
            Error::input(format!("tag `{tag}` does not exist in {}", self.root.display())).with_hint(
                "Check the name with `tagpilot versions` (or `git tag -l`); in CI, make sure the job fetched tags",
            )
        })?;
        let commit = object
            .peel_to_commit()
            .map_err(|_| Error::input(format!("tag `{tag}` does not point at a commit")))?;
        Ok(Commit::from(&commit))
    }

    /// The commit checked out now (`HEAD`).
    pub fn head_commit(&self) -> Result<Commit> {
        let commit = self
            .repo
            .head()
            .and_then(|head| head.peel_to_commit())
            .map_err(|e| {
                Error::input(format!(
                    "{} has no commit checked out: {}",
                    self.root.display(),
                    e.message()
                ))
            })?;
        Ok(Commit::from(&commit))
    }

    /// Tags that point at `commit`.
    pub fn tags_at(&self, commit: &Commit) -> Result<Vec<String>> {
        let mut tags = Vec::new();
        for name in self.tag_names()? {
            let points_here = self
                .repo
                .revparse_single(&format!("refs/tags/{name}"))
                .and_then(|o| o.peel_to_commit())
                .is_ok_and(|c| c.id().to_string() == commit.id);
            if points_here {
                tags.push(name);
            }
        }
        Ok(tags)
    }

    /// Walks the tree of `commit`, calling `visit` for every selected entry, folders before
    /// their contents.
    pub fn walk(
        &self,
        commit: &Commit,
        selection: &Selection,
        visit: &mut dyn FnMut(Entry) -> Result<()>,
    ) -> Result<()> {
        let tree = self
            .repo
            .find_tree(commit.tree)
            .map_err(git_failed("read the tree of the commit"))?;
        self.walker(selection, visit)?.folder(&tree)
    }

    /// Walks the file or folder at `path` in `commit`; entries are relative to it (a file at
    /// `path` itself comes with an empty path). Errors name the path if it is not there.
    pub fn walk_path(
        &self,
        commit: &Commit,
        path: &str,
        selection: &Selection,
        visit: &mut dyn FnMut(Entry) -> Result<()>,
    ) -> Result<()> {
        let object = self.object_at(commit, path)?;
        let mut walker = self.walker(selection, visit)?;
        match object.kind() {
            Some(ObjectType::Tree) => {
                let tree = object.peel_to_tree().map_err(git_failed("read a tree"))?;
                walker.folder(&tree)
            }
            _ => {
                let tree = self
                    .repo
                    .find_tree(commit.tree)
                    .map_err(git_failed("read the tree of the commit"))?;
                let entry = tree
                    .get_path(Path::new(path))
                    .map_err(git_failed("read a path"))?;
                walker.entry(&entry)
            }
        }
    }

    /// Subjects of the commits reachable from `to` and not from `from` (all when `from` is
    /// `None`), newest first, at most `limit`.
    pub fn subjects_between(
        &self,
        from: Option<&Commit>,
        to: &Commit,
        limit: usize,
    ) -> Result<Vec<String>> {
        let oid = |c: &Commit| Oid::from_str(&c.id).map_err(git_failed("read a commit id"));
        let mut walk = self
            .repo
            .revwalk()
            .map_err(git_failed("walk the history"))?;
        walk.push(oid(to)?)
            .map_err(git_failed("walk the history"))?;
        if let Some(from) = from {
            walk.hide(oid(from)?)
                .map_err(git_failed("walk the history"))?;
        }
        let mut subjects = Vec::new();
        for id in walk.take(limit) {
            let id = id.map_err(git_failed("walk the history"))?;
            let commit = self
                .repo
                .find_commit(id)
                .map_err(git_failed("read a commit"))?;
            subjects.push(
                String::from_utf8_lossy(commit.summary_bytes().unwrap_or_default()).into_owned(),
            );
        }
        Ok(subjects)
    }

    /// The bytes of the file at `path` in `commit`.
    pub fn read_file(&self, commit: &Commit, path: &str) -> Result<Vec<u8>> {
        let object = self.object_at(commit, path)?;
        let blob = object.peel_to_blob().map_err(|_| {
            Error::input(format!(
                "`{path}` is a folder at commit {}, not a file",
                &commit.id[..12]
            ))
        })?;
        Ok(blob.content().to_vec())
    }

    fn object_at(&self, commit: &Commit, path: &str) -> Result<git2::Object<'_>> {
        let tree = self
            .repo
            .find_tree(commit.tree)
            .map_err(git_failed("read the tree of the commit"))?;
        let entry = tree.get_path(Path::new(path.trim_matches('/'))).map_err(|_| {
            Error::input(format!(
                "`{path}` is not in the repository at commit {} (files are read from the tagged commit, not the working tree)",
                &commit.id[..12]
            ))
        })?;
        entry
            .to_object(&self.repo)
            .map_err(git_failed("read a path"))
    }

    fn walker<'w, 'v>(
        &'w self,
        selection: &'w Selection<'w>,
        visit: &'v mut dyn FnMut(Entry) -> Result<()>,
    ) -> Result<Walker<'w, 'v>> {
        Ok(Walker {
            repo: &self.repo,
            odb: self
                .repo
                .odb()
                .map_err(git_failed("open the object store"))?,
            packs: None,
            selection,
            export_ignore: ExportIgnore::default(),
            path: Vec::new(),
            pending_folders: Vec::new(),
            visit,
        })
    }
}

impl From<&git2::Commit<'_>> for Commit {
    fn from(commit: &git2::Commit<'_>) -> Self {
        Commit {
            id: commit.id().to_string(),
            time: commit.committer().when().seconds(),
            tree: commit.tree_id(),
        }
    }
}

pub(super) fn find_blob(repo: &Repository, id: Oid) -> Result<git2::Blob<'_>> {
    repo.find_blob(id).map_err(git_failed("read a file"))
}

pub(crate) fn bytes_path(bytes: &[u8]) -> &Path {
    use std::os::unix::ffi::OsStrExt;
    Path::new(std::ffi::OsStr::from_bytes(bytes))
}

pub(super) fn git_failed(action: &'static str) -> impl Fn(git2::Error) -> Error {
    move |e| Error::failed(format!("git: could not {action}: {}", e.message()))
}

/// What to do with submodules in a tree (the spec's `tarball.submodules`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Submodules {
    /// Stop with an error naming the submodule (default): a tarball missing code is worse than none.
    #[default]
    Error,
    /// Leave submodules out entirely (no empty folder either).
    Skip,
}
