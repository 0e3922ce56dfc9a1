//! What changed between two commits' trees, for a layer of only that (`image.layering:
//! release_line`): git's own tree diff, so nothing is read but the trees.

use std::collections::BTreeSet;

use super::{git_failed, Commit, Source};
use crate::error::Result;

/// Paths, as bytes relative to the tree's root.
pub struct Changes {
    /// Added, modified (content, mode, kind) or replaced in the newer tree.
    pub changed: BTreeSet<Vec<u8>>,
    /// Gone from the newer tree: the topmost such path only (a whole folder is one entry).
    pub removed: BTreeSet<Vec<u8>>,
}

impl Changes {
    /// Whether an entry of the newer tree belongs in the layer of changes: it, or a folder
    /// above it, changed; or it is a folder above something that changed.
    pub fn touches(&self, path: &[u8]) -> bool {
        let under = |changed: &Vec<u8>| {
            let (long, short) = if changed.len() >= path.len() {
                (changed.as_slice(), path)
            } else {
                (path, changed.as_slice())
            };
            long.starts_with(short) && (long.len() == short.len() || long[short.len()] == b'/')
        };
        self.changed.iter().any(under)
    }
}

impl Source {
    /// The changes from `from`'s tree to `to`'s.
    pub fn changes(&self, from: &Commit, to: &Commit) -> Result<Changes> {
        let tree = |commit: &Commit| {
            self.repo
                .find_tree(commit.tree)
                .map_err(git_failed("read the tree of the commit"))
        };
        let (old, new) = (tree(from)?, tree(to)?);
        let diff = self
            .repo
            .diff_tree_to_tree(Some(&old), Some(&new), None)
            .map_err(git_failed("compare two trees"))?;
        let mut changes = Changes {
            changed: BTreeSet::new(),
            removed: BTreeSet::new(),
        };
        for delta in diff.deltas() {
            let new_path = delta.new_file().path_bytes().map(<[u8]>::to_vec);
            match delta.status() {
                git2::Delta::Deleted => {
                    let Some(path) = delta.old_file().path_bytes() else {
                        continue;
                    };
                    // The topmost folder that is gone as a whole, else the file.
                    let mut topmost = path.to_vec();
                    while let Some(cut) = topmost.iter().rposition(|b| *b == b'/') {
                        let parent = &topmost[..cut];
                        let parent_path =
                            std::path::Path::new(std::str::from_utf8(parent).unwrap_or(""));
                        if new.get_path(parent_path).is_ok() {
                            break;
                        }
                        topmost.truncate(cut);
                    }
                    changes.removed.insert(topmost);
                }
                _ => {
                    if let Some(path) = new_path {
                        changes.changed.insert(path);
                    }
                }
            }
        }
        Ok(changes)
    }
}
