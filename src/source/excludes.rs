//! The spec's `tarball.exclude` globs, matched against paths from the repository root.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

#[derive(Clone, Debug)]
pub struct Excludes {
    set: GlobSet,
}

impl Excludes {
    /// `*` stays within one folder, `**` crosses folders. A pattern `dir/**` also matches `dir`
    /// itself, so an excluded folder leaves no empty directory behind.
    pub fn new<'a>(patterns: impl IntoIterator<Item = &'a str>) -> Result<Excludes, String> {
        let mut builder = GlobSetBuilder::new();
        for pattern in patterns {
            let pattern = pattern.trim_start_matches('/');
            builder.add(compile(pattern)?);
            if let Some(folder) = pattern.strip_suffix("/**") {
                builder.add(compile(folder)?);
            }
        }
        let set = builder.build().map_err(|e| e.to_string())?;
        Ok(Excludes { set })
    }

    pub fn none() -> Excludes {
        Excludes {
            set: GlobSet::empty(),
        }
    }

    pub fn is_excluded(&self, path: &std::path::Path) -> bool {
        self.set.is_match(path)
    }
}

/// Compiles one glob with git's path semantics (`*` does not cross `/`).
pub(super) fn compile(pattern: &str) -> Result<globset::Glob, String> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map_err(|e| format!("`{pattern}` is not a valid glob: {}", e.kind()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn folder_globs_drop_the_folder_too() {
        let ex = Excludes::new(["tests/**", "*.pyc", "docs/*.md"]).unwrap();
        for path in ["tests", "tests/a/b.py", "x.pyc"] {
            assert!(ex.is_excluded(Path::new(path)), "{path}");
        }
        for path in ["src/x.pyc", "docs/a/b.md", "testsuite"] {
            assert!(!ex.is_excluded(Path::new(path)), "{path}");
        }
        assert!(Excludes::new(["a[b"])
            .unwrap_err()
            .contains("not a valid glob"));
    }
}
