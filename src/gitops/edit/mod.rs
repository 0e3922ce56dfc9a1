//! Surgical edits of image references in deployment files (YAML, and JSON, which parses as YAML).
//!
//! Tools that re-serialise a whole file lose comments, quoting, key order and blank lines. Here
//! the parser only says where each value's bytes are. The bytes of the references to change are
//! replaced in place, in the quoting style they were written in. Then the result is parsed
//! again and checked: exactly those values changed, and nothing else. CRLF line endings,
//! indentation, flow style, comments and a missing final newline survive because no other byte
//! is touched.
//!
//! Which values are image references: the value of any `image` key (Kubernetes containers and
//! init containers, Compose services, Marathon `container.docker.image`, Nomad `config.image`),
//! and any value on a line marked `# tagpilot: NAME`. Of those, only references to the released
//! repository change (same registry and path; the old tag or digest does not matter).
//! Ambiguous values are refused, never guessed: an anchored value or an alias (changing one
//! would change others), a templated value (`{{ … }}`), and block scalars.
mod locate;
mod targets;

use std::fmt;

use serde_saphyr::granit_parser::ScalarStyle;

use crate::oci::reference::Reference;
use crate::version::Version;

use locate::{values, Located, Node, Scalar};
use targets::{
    helm_targets, image_targets, is_kustomization, kustomize_targets, named_images, HelmKeys,
};

pub use locate::Step;

/// What to change: references to `repository` become `new`.
#[derive(Clone, Debug)]
pub struct Rewrite<'a> {
    /// `registry/path` of the released image, as in `image.repository`.
    pub repository: &'a str,
    /// The full new reference, e.g. `registry/path:1.2.3@sha256:…`.
    pub new: &'a str,
    /// Values on lines marked `# tagpilot: MARKER` are references to change too.
    pub marker: Option<&'a str>,
    pub kind: FileKind<'a>,
}

/// How a file names the image.
#[derive(Clone, Copy, Debug, Default)]
pub enum FileKind<'a> {
    /// `image:` values and marked lines anywhere; in a Kustomization (`kind: Kustomization`),
    /// also its `images:` entries (`newTag`, `digest`).
    #[default]
    Auto,
    /// A kustomization file without a `kind` line (named `kustomization.yaml`).
    Kustomization,
    /// Helm values: dotted key paths of the tag, and optionally of the repository (which must
    /// name the released repository) and of the digest.
    Helm {
        tag: &'a str,
        repository: Option<&'a str>,
        registry: Option<&'a str>,
        digest: Option<&'a str>,
    },
}

/// One value that changed (or, when `old == new`, already held the new reference).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// 1-based line of the value.
    pub line: usize,
    pub old: String,
    pub new: String,
    pub holds: Holds,
}

/// What a value holds: a whole reference (`image:`), a tag (Helm `tag:`, kustomize
/// `newTag:`, possibly `1.2.3@sha256:…`) or a digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Holds {
    Reference,
    Tag,
    Digest,
}

impl Change {
    /// The version the old value named, whatever kind of value it is: what the guard
    /// against downgrades compares.
    pub fn old_version(&self) -> Option<Version> {
        match self.holds {
            Holds::Reference => {
                let reference = Reference::parse(compose_default(&self.old).1).ok()?;
                Version::of_image_tag(reference.tag.as_deref()?)
            }
            Holds::Tag => Version::of_image_tag(&self.old),
            Holds::Digest => None,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub struct EditError {
    /// 1-based line, 0 when not tied to one.
    pub line: usize,
    pub message: String,
}

impl fmt::Display for EditError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            0 => f.write_str(&self.message),
            line => write!(f, "line {line}: {}", self.message),
        }
    }
}

/// The edited text and every matching value (unchanged ones included, so a caller can tell
/// "already there" from "no reference found").
#[derive(Debug)]
pub struct Edited {
    pub text: String,
    pub changes: Vec<Change>,
}

impl Edited {
    /// Whether any byte changed.
    pub fn changed(&self) -> bool {
        self.changes.iter().any(|c| c.old != c.new)
    }
}

/// A scalar to set, and what to.
struct Target<'v> {
    scalar: &'v Scalar,
    new: String,
    holds: Holds,
}

/// A value to add where the file has none yet (a kustomization's `digest:`).
struct Insert {
    /// Byte offset to insert at.
    at: usize,
    text: String,
    /// Where the new value sits, and what it is, for the check after the edit.
    path: Vec<Step>,
    value: String,
    line: usize,
}

/// Applies `rewrite` to `text`. Errors name the line and what is ambiguous or broken.
pub fn rewrite(text: &str, rewrite: &Rewrite) -> Result<Edited, EditError> {
    let released = Reference::parse(rewrite.repository).map_err(|why| ambiguous(0, &why))?;
    let new = Reference::parse(rewrite.new).map_err(|why| ambiguous(0, &why))?;
    let found = values(text)?;
    let kustomization = matches!(rewrite.kind, FileKind::Kustomization) || is_kustomization(&found);
    let mut targets = match rewrite.kind {
        FileKind::Helm {
            tag,
            repository,
            registry,
            digest,
        } => {
            let keys = HelmKeys {
                tag,
                repository,
                registry,
                digest,
            };
            helm_targets(&found, &released, &new, &keys)?
        }
        _ => image_targets(text, &found, rewrite, &released)?,
    };
    let mut inserts = Vec::new();
    if kustomization {
        let (more, added) = kustomize_targets(text, &found, &released, &new)?;
        targets.extend(more);
        inserts = added;
    }
    let mut replacements: Vec<(usize, usize, String)> = Vec::new();
    let mut changes = Vec::new();
    for target in &targets {
        let scalar = target.scalar;
        if scalar.value != target.new {
            replacements.push(replacement(text, &found, target)?);
        }
        changes.push(Change {
            line: scalar.line,
            old: scalar.value.clone(),
            new: target.new.clone(),
            holds: target.holds,
        });
    }
    for insert in &inserts {
        replacements.push((insert.at, insert.at, insert.text.clone()));
        changes.push(Change {
            line: insert.line,
            old: String::new(),
            new: insert.value.clone(),
            holds: Holds::Digest,
        });
    }
    replacements.sort_by_key(|(start, _, _)| *start);
    let mut edited = text.to_string();
    for (start, end, written) in replacements.iter().rev() {
        edited.replace_range(*start..*end, written);
    }
    verify(&found, &edited, &changes, &inserts)?;
    Ok(Edited {
        text: edited,
        changes,
    })
}

/// A Compose `${VAR:-default}` (or `${VAR-default}`) split into what comes before the
/// default, the default, and what comes after: the default is the reference to edit. Any
/// other value is all default.
pub(super) fn compose_default(value: &str) -> (&str, &str, &str) {
    let Some(inner) = value.strip_prefix("${").and_then(|v| v.strip_suffix('}')) else {
        return ("", value, "");
    };
    let Some(at) = inner.find('-') else {
        return ("", value, "");
    };
    let split = if inner[..at].ends_with(':') {
        at - 1
    } else {
        at
    };
    let name = &inner[..split];
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return ("", value, "");
    }
    let start = 2 + at + 1;
    (&value[..start], &value[start..value.len() - 1], "}")
}

/// The reference of `repository` that `text` records, as deploys read it back: the whole
/// reference, or `repository:tag[@digest]` from tag and digest fields. The same rules as an
/// edit find it; `None` when the file names none.
pub fn recorded_image(
    text: &str,
    repository: &str,
    kind: FileKind,
    marker: Option<&str>,
) -> Option<String> {
    // Any new value will do: only what is there is read.
    let probe = format!("{repository}:0@sha256:{}", "0".repeat(64));
    let rewrite_spec = Rewrite {
        repository,
        new: &probe,
        marker,
        kind,
    };
    let found = rewrite(text, &rewrite_spec).ok()?.changes;
    if let Some(whole) = found.iter().find(|c| c.holds == Holds::Reference) {
        return Some(compose_default(&whole.old).1.to_string());
    }
    let tag = found
        .iter()
        .find(|c| c.holds == Holds::Tag && !c.old.is_empty())?;
    let digest = found
        .iter()
        .find(|c| c.holds == Holds::Digest && !c.old.is_empty())
        .filter(|_| !tag.old.contains('@'));
    Some(match digest {
        Some(digest) => format!("{repository}:{}@{}", tag.old, digest.old),
        None => format!("{repository}:{}", tag.old),
    })
}

/// The bytes that replace a target's value: the new value in the value's own quoting.
/// Refuses what cannot be changed safely: a templated value, an anchor also used for
/// something other than an image, a block scalar.
fn replacement(
    text: &str,
    found: &[Located],
    target: &Target,
) -> Result<(usize, usize, String), EditError> {
    let (scalar, new) = (target.scalar, &target.new);
    let line = scalar.line;
    if scalar.value.contains("{{") {
        return Err(ambiguous(
            line,
            "the image is templated (`{{ … }}`); tagpilot will not guess what it renders to",
        ));
    }
    // An anchored value is only a target when its aliases were all checked to be images.
    if scalar.anchored && !shared_anchor(found, scalar) {
        return Err(ambiguous(line, "the image value carries an anchor (&name) that is also used for something other than an image, so changing it would change that too"));
    }
    // `tag:` with nothing after it (charts default it to appVersion): the parser places the
    // empty value at the colon; the new one goes after it and a space.
    let (start, end) = match text[scalar.start..].starts_with(':') {
        true if scalar.start == scalar.end => (scalar.start + 1, scalar.start + 1),
        _ => (scalar.start, scalar.end),
    };
    let written = match scalar.style {
        ScalarStyle::Plain if start != scalar.start => format!(" {new}"),
        ScalarStyle::Plain => new.clone(),
        ScalarStyle::SingleQuoted => format!("'{new}'"),
        ScalarStyle::DoubleQuoted => format!("\"{new}\""),
        _ => {
            return Err(ambiguous(
                line,
                "the image is a block scalar (| or >); write it on one line",
            ))
        }
    };
    Ok((start, end, written))
}

/// Whether every alias of the anchored `scalar` is an image value (see `shared_image`).
fn shared_anchor(found: &[Located], scalar: &Scalar) -> bool {
    found.iter().all(|v| match &v.node {
        Node::Alias {
            target: Some((_, line)),
            ..
        } if *line == scalar.line => v.key() == Some("image"),
        _ => true,
    })
}

/// The images `text` names (any repository), with their lines; empty when it does not parse.
pub fn images_in(text: &str) -> Vec<(usize, String)> {
    values(text)
        .map(|found| named_images(&found))
        .unwrap_or_default()
}

pub(super) fn ambiguous(line: usize, message: &str) -> EditError {
    EditError {
        line,
        message: message.to_string(),
    }
}

/// Parses the edited text and checks that the same values are there in the same places as in
/// the original (`old`), except the changed ones, which now hold exactly the new reference.
fn verify(
    old: &[Located],
    after: &str,
    changes: &[Change],
    inserts: &[Insert],
) -> Result<(), EditError> {
    let broken = |message: String| EditError { line: 0, message };
    let mut new = values(after).map_err(|e| {
        broken(format!(
            "the edited file no longer parses ({e}); nothing was changed"
        ))
    })?;
    // Each added value must be there, once, where it was meant to go; then the rest compares.
    for insert in inserts {
        let at = new.iter().position(|v| {
            v.path == insert.path && matches!(&v.node, Node::Scalar(s) if s.value == insert.value)
        });
        match at {
            Some(at) => {
                new.remove(at);
            }
            None => {
                return Err(broken(format!(
                    "the added digest did not land at line {}; nothing was changed",
                    insert.line
                )))
            }
        }
    }
    if old.len() != new.len() {
        return Err(broken(
            "the edit changed the file's structure; nothing was changed".into(),
        ));
    }
    for (old, new) in old.iter().zip(&new) {
        let same_place = old.path == new.path;
        let ok = match (&old.node, &new.node) {
            (Node::Alias { .. }, Node::Alias { .. }) => same_place,
            (Node::Scalar(a), Node::Scalar(b)) => {
                let changed = changes
                    .iter()
                    .find(|c| c.line == a.line && c.old == a.value);
                same_place && (a.value == b.value || changed.is_some_and(|c| c.new == b.value))
            }
            _ => false,
        };
        if !ok {
            return Err(broken(
                "the edit would change more than the image references; nothing was changed".into(),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEW: &str = "registry.example.org/lhcb/dirac:8.2.44@sha256:0000000000000000000000000000000000000000000000000000000000000000";

    fn apply(text: &str) -> Result<Edited, EditError> {
        rewrite(
            text,
            &Rewrite {
                repository: "registry.example.org/lhcb/dirac",
                new: NEW,
                marker: Some("dirac"),
                kind: FileKind::Auto,
            },
        )
    }

    #[test]
    fn kustomization_images_entries() {
        let text = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [deployment.yaml]\nimages:\n  - name: registry.example.org/lhcb/dirac   # the service\n    newTag: \"8.2.43\"\n    digest: sha256:1111111111111111111111111111111111111111111111111111111111111111\n  - name: busybox\n    newTag: \"1.36\"\n";
        let edited = apply(text).unwrap();
        let digest = NEW.split_once('@').unwrap().1;
        assert_eq!(
            edited.text,
            text.replace("\"8.2.43\"", "\"8.2.44\"").replace(
                "sha256:1111111111111111111111111111111111111111111111111111111111111111",
                digest
            )
        );
        let bare = "images:\n  - name: registry.example.org/lhcb/dirac\n    newName: registry.example.org/lhcb/dirac\n";
        let err = rewrite(
            bare,
            &Rewrite {
                repository: "registry.example.org/lhcb/dirac",
                new: NEW,
                marker: None,
                kind: FileKind::Kustomization,
            },
        )
        .unwrap_err();
        assert!(err.message.contains("neither newTag nor digest"), "{err}");
    }

    #[test]
    fn helm_values_key_paths() {
        let text = "# Values for the File Catalog chart\nreplicaCount: 2\nimage:\n  repository: registry.example.org/lhcb/dirac\n  tag: \"8.2.43\"   # set by tagpilot\n  pullPolicy: IfNotPresent\nsidecar:\n  image:\n    repository: busybox\n    tag: \"1.36\"\n";
        let helm = |text: &str| {
            rewrite(
                text,
                &Rewrite {
                    repository: "registry.example.org/lhcb/dirac",
                    new: NEW,
                    marker: None,
                    kind: FileKind::Helm {
                        tag: "image.tag",
                        repository: Some("image.repository"),
                        registry: None,
                        digest: None,
                    },
                },
            )
        };
        let edited = helm(text).unwrap();
        assert_eq!(
            edited.text,
            text.replace("tag: \"8.2.43\"", "tag: \"8.2.44\"")
        );
        let other = text.replace(
            "repository: registry.example.org/lhcb/dirac",
            "repository: registry.example.org/other",
        );
        assert!(
            helm(&other).unwrap().changes.is_empty(),
            "another image's values are left alone"
        );
        let err = helm("image:\n  repository: registry.example.org/lhcb/dirac\n").unwrap_err();
        assert!(err.message.contains("no value at `image.tag`"), "{err}");
    }

    #[test]
    fn kubernetes_multi_document_with_init_containers_and_other_images() {
        let text = "# Deployment of the File Catalog\r\napiVersion: apps/v1\r\nkind: Deployment\r\nspec:\r\n  template:\r\n    spec:\r\n      initContainers:\r\n        - name: wait\r\n          image: registry.example.org/lhcb/dirac:8.2.43   # same image, older\r\n      containers:\r\n        - name: fc\r\n          image: \"registry.example.org/lhcb/dirac:8.2.43\"\r\n        - name: sidecar\r\n          image: 'docker.io/library/busybox:1.36'\r\n---\r\nkind: Service\r\nmetadata: {name: fc, labels: {image: none}}\r\n";
        let edited = apply(text).unwrap();
        let expected = text
            .replace(
                "image: registry.example.org/lhcb/dirac:8.2.43",
                &format!("image: {NEW}"),
            )
            .replace(
                "image: \"registry.example.org/lhcb/dirac:8.2.43\"",
                &format!("image: \"{NEW}\""),
            );
        assert_eq!(
            edited.text, expected,
            "only the two values changed, CRLF and comments kept"
        );
        assert_eq!(
            edited.changes.iter().map(|c| c.line).collect::<Vec<_>>(),
            [9, 12]
        );
        assert!(edited.changed());
    }

    #[test]
    fn compose_marathon_json_and_markers() {
        let compose = "services:\n  fc:\n    image: registry.example.org/lhcb/dirac:8.2.43\n    ports: [\"9197:9197\"]\n  db:\n    image: mysql:8\n";
        assert_eq!(apply(compose).unwrap().changes.len(), 1);
        let marathon = "{\n  \"id\": \"/datamanagement/filecatalog\",\n  \"container\": {\n    \"type\": \"DOCKER\",\n    \"docker\": { \"image\": \"registry.example.org/lhcb/dirac:v8r2p43\" }\n  }\n}";
        let edited = apply(marathon).unwrap();
        assert_eq!(
            edited.text,
            marathon.replace("registry.example.org/lhcb/dirac:v8r2p43", NEW)
        );
        assert!(
            !edited.text.ends_with('\n'),
            "a missing final newline stays missing"
        );
        let marked = "env:\n  DIRAC_IMAGE: registry.example.org/lhcb/dirac:1.0   # tagpilot: dirac\n  OTHER: registry.example.org/lhcb/dirac:1.0\n";
        let edited = apply(marked).unwrap();
        assert_eq!(edited.changes.len(), 1, "only the marked line");
        assert!(edited
            .text
            .contains(&format!("DIRAC_IMAGE: {NEW}   # tagpilot: dirac")));
    }

    #[test]
    fn idempotent_and_nothing_found() {
        let text = format!("image: {NEW}\n");
        let edited = apply(&text).unwrap();
        assert_eq!(edited.text, text);
        assert_eq!(edited.changes.len(), 1);
        assert!(!edited.changed());
        let none = apply("image: registry.example.org/other/app:1\n").unwrap();
        assert!(none.changes.is_empty());
    }

    #[test]
    fn ambiguous_values_are_refused() {
        let cases = [
            (
                "base: &img registry.example.org/lhcb/dirac:1\nimage: *img\nimage2: *img\n",
                2,
                "alias (*name) of the value on line 1",
            ),
            (
                "image: &img registry.example.org/lhcb/dirac:1\nother: *img\n",
                1,
                "anchor",
            ),
            (
                "image: \"{{ .Values.registry }}/lhcb/dirac:1\"\n",
                1,
                "templated",
            ),
            (
                "image: registry.example.org/lhcb/dirac:{{ .Values.tag }}\n",
                1,
                "templated",
            ),
            (
                "image: |\n  registry.example.org/lhcb/dirac:1\n",
                2,
                "block scalar",
            ),
        ];
        for (text, line, needle) in cases {
            match apply(text) {
                Err(e) => {
                    assert_eq!(e.line, line, "{text}: {e}");
                    assert!(e.message.contains(needle), "{text}: {e}");
                }
                Ok(edited) => assert!(needle.is_empty() && edited.changes.is_empty(), "{text}"),
            }
        }
        let bad = apply("image: [unclosed\n").unwrap_err();
        assert!(bad.message.contains("not valid YAML/JSON"), "{bad}");
    }
}
