//! `.gitattributes` `export-ignore`, read from the tree being archived (as `git archive` does,
//! not from the working directory). Rules follow gitattributes(5): a pattern without `/` matches
//! a name at any depth below its file's folder, one with `/` is anchored there, a trailing `/`
//! matches folders only; the last matching line wins, and deeper files override shallower ones.
//! Folders are checked too: an ignored folder is skipped whole.

use globset::GlobMatcher;

use super::bytes_path;
use super::excludes::compile;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Set,
    Unset,
}

#[derive(Debug)]
struct Rule {
    /// Folder of the `.gitattributes` file, relative to the root, `""` for the root.
    base: Vec<u8>,
    matcher: GlobMatcher,
    /// Match against the last path component only.
    basename_only: bool,
    folders_only: bool,
    state: State,
}

/// The rules in force while walking: a stack of per-folder rule files.
#[derive(Debug, Default)]
pub struct ExportIgnore {
    rules: Vec<Rule>,
    /// How many rules each entered folder added, to pop them when leaving it.
    frames: Vec<usize>,
}

impl ExportIgnore {
    /// Adds the rules of the `.gitattributes` in folder `base` (call on entering it).
    pub fn enter(&mut self, base: &[u8], gitattributes: Option<&[u8]>) {
        let before = self.rules.len();
        if let Some(content) = gitattributes {
            self.rules.extend(parse(base, content));
        }
        self.frames.push(self.rules.len() - before);
    }

    pub fn leave(&mut self) {
        let added = self.frames.pop().unwrap_or(0);
        self.rules.truncate(self.rules.len() - added);
    }

    pub fn is_ignored(&self, path: &[u8], is_folder: bool) -> bool {
        let mut ignored = false;
        for rule in &self.rules {
            if rule.folders_only && !is_folder {
                continue;
            }
            let Some(relative) = strip_base(path, &rule.base) else {
                continue;
            };
            let candidate = if rule.basename_only {
                relative.rsplit(|&b| b == b'/').next().unwrap_or(relative)
            } else {
                relative
            };
            if rule.matcher.is_match(bytes_path(candidate)) {
                ignored = rule.state == State::Set;
            }
        }
        ignored
    }
}

fn strip_base<'p>(path: &'p [u8], base: &[u8]) -> Option<&'p [u8]> {
    if base.is_empty() {
        return Some(path);
    }
    path.strip_prefix(base)?.strip_prefix(b"/")
}

fn parse(base: &[u8], content: &[u8]) -> Vec<Rule> {
    let text = String::from_utf8_lossy(content);
    let mut rules = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with("[attr]") {
            continue;
        }
        let mut words = line.split_whitespace();
        let Some(pattern) = words.next() else {
            continue;
        };
        let state = words.fold(None, |state, attr| match attr {
            "export-ignore" => Some(State::Set),
            "-export-ignore" | "!export-ignore" => Some(State::Unset),
            _ => state,
        });
        let Some(state) = state else { continue };
        let folders_only = pattern.ends_with('/');
        let pattern = pattern.trim_end_matches('/');
        let basename_only = !pattern.contains('/');
        let pattern = pattern.trim_start_matches('/');
        // A pattern git would accept but globset cannot compile is skipped rather than failing
        // the release: it can only have matched a name that contains glob syntax literally.
        if let Ok(glob) = compile(pattern) {
            rules.push(Rule {
                base: base.to_vec(),
                matcher: glob.compile_matcher(),
                basename_only,
                folders_only,
                state,
            });
        }
    }
    rules
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_semantics() {
        let mut rules = ExportIgnore::default();
        rules.enter(b"", Some(b"tests/ export-ignore\n*.md export-ignore\nREADME.md -export-ignore\n/ci export-ignore\n"));
        assert!(rules.is_ignored(b"tests", true));
        assert!(
            !rules.is_ignored(b"tests", false),
            "trailing slash matches folders only"
        );
        assert!(rules.is_ignored(b"docs/guide.md", false));
        assert!(!rules.is_ignored(b"README.md", false), "last match wins");
        assert!(rules.is_ignored(b"ci", true));
        assert!(!rules.is_ignored(b"src/ci", true), "leading slash anchors");
        rules.enter(
            b"src",
            Some(b"keep.md -export-ignore\ngen/*.c export-ignore\n"),
        );
        assert!(
            !rules.is_ignored(b"src/keep.md", false),
            "deeper file overrides"
        );
        assert!(rules.is_ignored(b"src/gen/a.c", false));
        assert!(
            !rules.is_ignored(b"gen/a.c", false),
            "rules apply below their folder only"
        );
        rules.leave();
        assert!(rules.is_ignored(b"src/keep.md", false));
    }
}
