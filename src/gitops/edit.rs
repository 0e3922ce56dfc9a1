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

use std::fmt;

use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle, Span};

use crate::oci::reference::Reference;

/// What to change: references to `repository` become `new`.
#[derive(Clone, Debug)]
pub struct Rewrite<'a> {
    /// `registry/path` of the released image, as in `image.repository`.
    pub repository: &'a str,
    /// The full new reference, e.g. `registry/path:1.2.3@sha256:…`.
    pub new: &'a str,
    /// Values on lines marked `# tagpilot: MARKER` are references to change too.
    pub marker: Option<&'a str>,
}

/// One value that changed (or, when `old == new`, already held the new reference).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// 1-based line of the value.
    pub line: usize,
    pub old: String,
    pub new: String,
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

/// A scalar as the parser saw it.
struct Scalar {
    value: String,
    style: ScalarStyle,
    anchored: bool,
    start: usize,
    end: usize,
    line: usize,
}

/// A value in the document, for finding image values and for verifying an edit.
enum Node {
    Scalar(Scalar),
    /// `*name`, with the value and line of the scalar it names (if it names a scalar).
    Alias {
        line: usize,
        target: Option<(String, usize)>,
    },
}

/// Applies `rewrite` to `text`. Errors name the line and what is ambiguous or broken.
pub fn rewrite(text: &str, rewrite: &Rewrite) -> Result<Edited, EditError> {
    let released = Reference::parse(rewrite.repository).map_err(|why| EditError {
        line: 0,
        message: why,
    })?;
    let mut replacements: Vec<(usize, usize, String)> = Vec::new();
    let mut changes = Vec::new();
    for (key, node) in values_with_keys(text)? {
        let (line, scalar) = match &node {
            Node::Scalar(scalar) => (scalar.line, Some(scalar)),
            Node::Alias { line, .. } => (*line, None),
        };
        let marked = rewrite
            .marker
            .is_some_and(|marker| line_has_marker(text, line, marker));
        if key.as_deref() != Some("image") && !marked {
            continue;
        }
        let Some(scalar) = scalar else {
            let Node::Alias {
                target: aliased, ..
            } = &node
            else {
                continue;
            };
            let ours = aliased
                .as_ref()
                .is_some_and(|(value, _)| same_repository(value, &released));
            if marked || ours {
                let defined = aliased.as_ref().map_or(0, |(_, line)| *line);
                return Err(ambiguous(
                    line,
                    &format!("the image is an alias (*name) of the value on line {defined}; changing it would change every use"),
                ));
            }
            continue;
        };
        if !marked && !same_repository(&scalar.value, &released) {
            continue;
        }
        if scalar.value.contains("{{") {
            return Err(ambiguous(
                line,
                "the image is templated (`{{ … }}`); tagpilot will not guess what it renders to",
            ));
        }
        if scalar.anchored {
            return Err(ambiguous(line, "the image value carries an anchor (&name), so changing it would change its aliases too"));
        }
        let written = match scalar.style {
            ScalarStyle::Plain => rewrite.new.to_string(),
            ScalarStyle::SingleQuoted => format!("'{}'", rewrite.new),
            ScalarStyle::DoubleQuoted => format!("\"{}\"", rewrite.new),
            _ => {
                return Err(ambiguous(
                    line,
                    "the image is a block scalar (| or >); write it on one line",
                ))
            }
        };
        changes.push(Change {
            line,
            old: scalar.value.clone(),
            new: rewrite.new.to_string(),
        });
        if scalar.value != rewrite.new {
            replacements.push((scalar.start, scalar.end, written));
        }
    }
    let mut edited = text.to_string();
    for (start, end, written) in replacements.iter().rev() {
        edited.replace_range(*start..*end, written);
    }
    verify(text, &edited, &changes)?;
    Ok(Edited {
        text: edited,
        changes,
    })
}

fn ambiguous(line: usize, message: &str) -> EditError {
    EditError {
        line,
        message: message.to_string(),
    }
}

/// Whether `value` names the same registry and repository as `target`, whatever its tag.
fn same_repository(value: &str, target: &Reference) -> bool {
    Reference::parse(value)
        .is_ok_and(|r| r.registry == target.registry && r.repository == target.repository)
}

/// Whether line `line` (1-based) carries `# tagpilot: MARKER` after its value.
fn line_has_marker(text: &str, line: usize, marker: &str) -> bool {
    text.lines().nth(line.saturating_sub(1)).is_some_and(|l| {
        l.split_once('#').is_some_and(|(_, comment)| {
            comment
                .trim()
                .strip_prefix("tagpilot:")
                .is_some_and(|m| m.trim() == marker)
        })
    })
}

/// Every value node with the key it sits under in its mapping (`None` in sequences and at
/// the top).
fn values_with_keys(text: &str) -> Result<Vec<(Option<String>, Node)>, EditError> {
    enum Frame {
        Mapping {
            expecting_key: bool,
            key: Option<String>,
        },
        Sequence,
    }
    let mut stack: Vec<Frame> = Vec::new();
    let mut found = Vec::new();
    let mut anchors: std::collections::HashMap<usize, (String, usize)> =
        std::collections::HashMap::new();
    for item in Parser::new_from_str(text) {
        let (event, span) = item.map_err(|e| EditError {
            line: e.marker().line(),
            message: format!("not valid YAML/JSON: {}", e.info()),
        })?;
        // What this event is inside: a key, a value under a key, or a sequence item.
        let mut under: Option<Option<String>> = None;
        let is_key = matches!(
            stack.last(),
            Some(Frame::Mapping {
                expecting_key: true,
                ..
            })
        );
        if let Some(Frame::Mapping { expecting_key, key }) = stack.last_mut() {
            if !*expecting_key {
                under = Some(key.take());
            }
            if matches!(
                event,
                Event::Scalar(..)
                    | Event::Alias(_)
                    | Event::MappingStart(..)
                    | Event::SequenceStart(..)
            ) {
                *expecting_key = !*expecting_key;
            }
        } else if matches!(stack.last(), Some(Frame::Sequence)) {
            under = Some(None);
        }
        match event {
            Event::Scalar(value, style, anchor, _) => {
                if anchor != 0 {
                    anchors.insert(anchor, (value.to_string(), span.start.line()));
                }
                if is_key {
                    if let Some(Frame::Mapping { key, .. }) = stack.last_mut() {
                        *key = Some(value.to_string());
                    }
                } else if let Some(key) = under {
                    found.push((
                        key,
                        Node::Scalar(scalar(value.to_string(), style, anchor != 0, &span, text)),
                    ));
                }
            }
            Event::Alias(id) => {
                if let Some(key) = under {
                    let target = anchors.get(&id).cloned();
                    found.push((
                        key,
                        Node::Alias {
                            line: span.start.line(),
                            target,
                        },
                    ));
                }
            }
            Event::MappingStart(..) => stack.push(Frame::Mapping {
                expecting_key: true,
                key: None,
            }),
            Event::SequenceStart(..) => stack.push(Frame::Sequence),
            Event::MappingEnd | Event::SequenceEnd => {
                stack.pop();
            }
            _ => {}
        }
    }
    Ok(found)
}

fn scalar(value: String, style: ScalarStyle, anchored: bool, span: &Span, text: &str) -> Scalar {
    let start = span
        .start
        .byte_offset()
        .unwrap_or_else(|| char_to_byte(text, span.start.index()));
    let end = span
        .end
        .byte_offset()
        .unwrap_or_else(|| char_to_byte(text, span.end.index()));
    Scalar {
        value,
        style,
        anchored,
        start,
        end,
        line: span.start.line(),
    }
}

fn char_to_byte(text: &str, chars: usize) -> usize {
    text.char_indices()
        .nth(chars)
        .map_or(text.len(), |(i, _)| i)
}

/// Parses both texts and checks that the same values are there in the same places, except the
/// changed ones, which now hold exactly the new reference.
fn verify(before: &str, after: &str, changes: &[Change]) -> Result<(), EditError> {
    let broken = |message: String| EditError { line: 0, message };
    let old = values_with_keys(before)?;
    let new = values_with_keys(after).map_err(|e| {
        broken(format!(
            "the edited file no longer parses ({e}); nothing was changed"
        ))
    })?;
    if old.len() != new.len() {
        return Err(broken(
            "the edit changed the file's structure; nothing was changed".into(),
        ));
    }
    for ((old_key, old_node), (new_key, new_node)) in old.iter().zip(&new) {
        let same_place = old_key == new_key;
        let ok = match (old_node, new_node) {
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
            },
        )
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
            ("image: \"{{ .Values.registry }}/lhcb/dirac:1\"\n", 0, ""),
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
