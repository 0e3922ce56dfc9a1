//! Where each value of a YAML (or JSON) document sits: its path of keys and indexes, and the
//! exact bytes of its scalar, from the parser's events. Edits replace those bytes and nothing
//! else.

use std::collections::HashMap;

use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle, Span};

use super::EditError;

/// A scalar as the parser saw it.
pub(super) struct Scalar {
    pub(super) value: String,
    pub(super) style: ScalarStyle,
    pub(super) anchored: bool,
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) line: usize,
}

/// A value in the document, for finding image values and for verifying an edit.
pub(super) enum Node {
    Scalar(Scalar),
    /// `*name`, with the value and line of the scalar it names (if it names a scalar).
    Alias {
        line: usize,
        target: Option<(String, usize)>,
    },
}

/// One step of a value's path: a mapping key or a sequence index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    Key(String),
    Index(usize),
}

/// A value node and where it sits (`[Key("images"), Index(0), Key("newTag")]`).
pub(super) struct Located {
    pub(super) path: Vec<Step>,
    pub(super) node: Node,
}

impl Located {
    /// The key this value sits under, if it sits in a mapping.
    pub(super) fn key(&self) -> Option<&str> {
        match self.path.last() {
            Some(Step::Key(key)) => Some(key),
            _ => None,
        }
    }
}

/// Every scalar or alias value with its path, in document order (documents of a multi-document
/// file one after the other, each from an empty path).
pub(super) fn values(text: &str) -> Result<Vec<Located>, EditError> {
    enum Kind {
        Mapping {
            expecting_key: bool,
            key: Option<String>,
        },
        Sequence {
            next: usize,
        },
    }
    struct Frame {
        at: Option<Step>,
        kind: Kind,
    }
    let mut stack: Vec<Frame> = Vec::new();
    let mut found = Vec::new();
    let mut anchors: HashMap<usize, (String, usize)> = HashMap::new();
    for item in Parser::new_from_str(text) {
        let (event, span) = item.map_err(|e| EditError {
            line: e.marker().line(),
            message: format!("not valid YAML/JSON: {}", e.info()),
        })?;
        let is_node = matches!(
            event,
            Event::Scalar(..)
                | Event::Alias(_)
                | Event::MappingStart(..)
                | Event::SequenceStart(..)
        );
        // Where this node sits: a key, a value under a key, a sequence item, or a root.
        let mut is_key = false;
        let mut step = None;
        if is_node {
            match stack.last_mut().map(|f| &mut f.kind) {
                Some(Kind::Mapping { expecting_key, key }) => {
                    if *expecting_key {
                        is_key = true;
                    } else {
                        step = key.take().map(Step::Key);
                    }
                    *expecting_key = !*expecting_key;
                }
                Some(Kind::Sequence { next }) => {
                    step = Some(Step::Index(*next));
                    *next += 1;
                }
                None => {}
            }
        }
        let path = || -> Vec<Step> {
            stack
                .iter()
                .filter_map(|f| f.at.clone())
                .chain(step.clone())
                .collect()
        };
        match event {
            Event::Scalar(value, style, anchor, _) => {
                if anchor != 0 {
                    anchors.insert(anchor, (value.to_string(), span.start.line()));
                }
                if is_key {
                    if let Some(Frame {
                        kind: Kind::Mapping { key, .. },
                        ..
                    }) = stack.last_mut()
                    {
                        *key = Some(value.to_string());
                    }
                } else {
                    let node =
                        Node::Scalar(scalar(value.to_string(), style, anchor != 0, &span, text));
                    found.push(Located { path: path(), node });
                }
            }
            Event::Alias(id) if !is_key => {
                let target = anchors.get(&id).cloned();
                let node = Node::Alias {
                    line: span.start.line(),
                    target,
                };
                found.push(Located { path: path(), node });
            }
            Event::MappingStart(..) => stack.push(Frame {
                at: step,
                kind: Kind::Mapping {
                    expecting_key: true,
                    key: None,
                },
            }),
            Event::SequenceStart(..) => stack.push(Frame {
                at: step,
                kind: Kind::Sequence { next: 0 },
            }),
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
