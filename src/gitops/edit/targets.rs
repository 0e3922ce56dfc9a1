//! Which values of a file are the image references to change, by kind of file: `image:`
//! values and marked lines, kustomization `images:` entries, Helm values at key paths.

use crate::oci::reference::Reference;

use super::locate::{Located, Node, Step};
use super::{ambiguous, EditError, Rewrite, Target};

/// `image:` values of the released repository, and values on marked lines.
pub(super) fn image_targets<'v>(
    text: &str,
    found: &'v [Located],
    rewrite: &Rewrite,
    released: &Reference,
) -> Result<Vec<Target<'v>>, EditError> {
    let mut targets = Vec::new();
    for located in found {
        let line = match &located.node {
            Node::Scalar(scalar) => scalar.line,
            Node::Alias { line, .. } => *line,
        };
        let marked = rewrite
            .marker
            .is_some_and(|marker| line_has_marker(text, line, marker));
        if located.key() != Some("image") && !marked {
            continue;
        }
        match &located.node {
            Node::Alias {
                target: aliased, ..
            } => {
                let ours = aliased
                    .as_ref()
                    .is_some_and(|(value, _)| same_repository(value, released));
                if marked || ours {
                    let defined = aliased.as_ref().map_or(0, |(_, line)| *line);
                    return Err(ambiguous(
                        line,
                        &format!("the image is an alias (*name) of the value on line {defined}; changing it would change every use"),
                    ));
                }
            }
            Node::Scalar(scalar) => {
                // A templated value is never skipped as "not ours": it may render to ours.
                if marked
                    || same_repository(&scalar.value, released)
                    || (scalar.value.contains("{{") && scalar.value.contains(&released.repository))
                {
                    targets.push(Target {
                        scalar,
                        new: rewrite.new.to_string(),
                    });
                }
            }
        }
    }
    Ok(targets)
}

/// Whether a document declares itself a Kustomization.
pub(super) fn is_kustomization(found: &[Located]) -> bool {
    found.iter().any(|v| match (&v.path[..], &v.node) {
        ([Step::Key(key)], Node::Scalar(s)) => {
            (key == "kind" && s.value == "Kustomization")
                || (key == "apiVersion" && s.value.starts_with("kustomize.config.k8s.io/"))
        }
        _ => false,
    })
}

/// `images:` entries naming the released repository (by `newName`, else `name`): their
/// `newTag` and `digest` take the new tag and digest.
pub(super) fn kustomize_targets<'v>(
    found: &'v [Located],
    released: &Reference,
    new: &Reference,
) -> Result<Vec<Target<'v>>, EditError> {
    let field = |i: usize, name: &str| {
        found.iter().find_map(|v| match (&v.path[..], &v.node) {
            ([Step::Key(images), Step::Index(j), Step::Key(f)], Node::Scalar(s))
                if images == "images" && *j == i && f == name =>
            {
                Some(s)
            }
            _ => None,
        })
    };
    let entries: std::collections::BTreeSet<usize> = found
        .iter()
        .filter_map(|v| match &v.path[..] {
            [Step::Key(images), Step::Index(i), _] if images == "images" => Some(*i),
            _ => None,
        })
        .collect();
    let mut targets = Vec::new();
    for i in entries {
        let Some(name) = field(i, "newName").or_else(|| field(i, "name")) else {
            continue;
        };
        if !same_repository(&name.value, released) {
            continue;
        }
        let tag = field(i, "newTag");
        let digest = field(i, "digest");
        if tag.is_none() && digest.is_none() {
            return Err(ambiguous(
                name.line,
                "this images: entry has neither newTag nor digest to update; add the one to use",
            ));
        }
        if let (Some(scalar), Some(value)) = (tag, &new.tag) {
            targets.push(Target {
                scalar,
                new: value.clone(),
            });
        }
        if let (Some(scalar), Some(value)) = (digest, &new.digest) {
            targets.push(Target {
                scalar,
                new: value.clone(),
            });
        }
    }
    Ok(targets)
}

/// Helm values at configured key paths.
pub(super) fn helm_targets<'v>(
    found: &'v [Located],
    released: &Reference,
    new: &Reference,
    tag: &str,
    repository: Option<&str>,
    digest: Option<&str>,
) -> Result<Vec<Target<'v>>, EditError> {
    let at = |dotted: &str| {
        let path: Vec<Step> = dotted
            .split('.')
            .map(|k| Step::Key(k.to_string()))
            .collect();
        found.iter().find_map(|v| match &v.node {
            Node::Scalar(s) if v.path == path => Some(s),
            _ => None,
        })
    };
    let missing =
        |dotted: &str| ambiguous(0, &format!("the Helm values have no value at `{dotted}`"));
    if let Some(path) = repository {
        let value = at(path).ok_or_else(|| missing(path))?;
        if !same_repository(&value.value, released) {
            return Ok(Vec::new()); // another image's values
        }
    }
    let mut targets = Vec::new();
    let tag_value = at(tag).ok_or_else(|| missing(tag))?;
    if let Some(value) = &new.tag {
        targets.push(Target {
            scalar: tag_value,
            new: value.clone(),
        });
    }
    if let Some(path) = digest {
        let scalar = at(path).ok_or_else(|| missing(path))?;
        if let Some(value) = &new.digest {
            targets.push(Target {
                scalar,
                new: value.clone(),
            });
        }
    }
    Ok(targets)
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
