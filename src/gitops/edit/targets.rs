//! Which values of a file are the image references to change, by kind of file: `image:`
//! values and marked lines, kustomization `images:` entries, Helm values at key paths.

use crate::oci::reference::Reference;

use super::locate::{Located, Node, Scalar, Step};
use super::{ambiguous, compose_default, EditError, Holds, Insert, Rewrite, Target};

/// `image:` values of the released repository, and values on marked lines. When the file has
/// lines with the spec's marker (tagpilot's `# tagpilot: NAME`, or Flux's
/// `# {"$imagepolicy": "NS:NAME"}` and its `:tag`, `:digest` and `:name` forms), only the
/// marked values change: a marker picks one of several references, the canary of a pair.
pub(super) fn image_targets<'v>(
    text: &str,
    found: &'v [Located],
    rewrite: &Rewrite,
    released: &Reference,
) -> Result<Vec<Target<'v>>, EditError> {
    let marks: Vec<Option<Mark>> = found
        .iter()
        .map(|located| {
            rewrite
                .marker
                .and_then(|marker| mark_on(text, line_of(located), marker))
        })
        .collect();
    let only_marked = marks.iter().any(Option::is_some);
    let new = Reference::parse(rewrite.new).ok();
    let wanted = Wanted {
        released,
        new: new.as_ref(),
        written: rewrite.new,
    };
    let mut targets = Vec::new();
    for (located, &mark) in found.iter().zip(&marks) {
        if only_marked && mark.is_none() {
            continue;
        }
        if located.key() != Some("image") && mark.is_none() && !is_pod_image_id(found, located) {
            continue;
        }
        let target = match &located.node {
            Node::Alias { target, .. } => {
                alias_target(found, line_of(located), target, mark, &wanted)?
            }
            Node::Scalar(scalar) => scalar_target(scalar, mark, &wanted),
        };
        if let Some(target) = target {
            if !targets
                .iter()
                .any(|t: &Target| t.scalar.start == target.scalar.start)
            {
                targets.push(target);
            }
        }
    }
    Ok(targets)
}

/// What the edit writes, for the targets to derive their new values from.
struct Wanted<'a> {
    released: &'a Reference,
    /// The new reference, parsed (it always parses: it is the release's own).
    new: Option<&'a Reference>,
    /// The new reference as given.
    written: &'a str,
}

fn line_of(located: &Located) -> usize {
    match &located.node {
        Node::Scalar(scalar) => scalar.line,
        Node::Alias { line, .. } => *line,
    }
}

/// An image value that is an alias (`image: *img`). The anchor's value is the target when
/// every use of it is an image (`x-image: &img repo:tag`); else changing it would change
/// other things, and the edit is refused.
fn alias_target<'v>(
    found: &'v [Located],
    line: usize,
    aliased: &Option<(String, usize)>,
    mark: Option<Mark>,
    wanted: &Wanted,
) -> Result<Option<Target<'v>>, EditError> {
    let ours = aliased
        .as_ref()
        .is_some_and(|(value, _)| same_repository(value, wanted.released));
    if mark.is_none() && !ours {
        return Ok(None);
    }
    let defined = aliased.as_ref().map_or(0, |(_, line)| *line);
    match shared_image(found, defined) {
        Some(anchor) if ours => Ok(Some(Target {
            scalar: anchor,
            new: wanted
                .new
                .map(|r| r.spelled_as(&anchor.value))
                .unwrap_or_else(|| wanted.written.to_string()),
            holds: Holds::Reference,
        })),
        _ => Err(ambiguous(
            line,
            &format!("the image is an alias (*name) of the value on line {defined}, which is also used for something other than an image; changing it would change every use"),
        )),
    }
}

/// An image value written out: a reference of the release (or marked), a Compose
/// `${VAR:-default}` whose default is one, or a Flux-marked tag or digest.
fn scalar_target<'v>(
    scalar: &'v Scalar,
    mark: Option<Mark>,
    wanted: &Wanted,
) -> Option<Target<'v>> {
    match (mark, wanted.new) {
        // Flux's `:tag` and `:digest` markers: the value is that part alone.
        (Some(Mark::Tag), Some(new)) => {
            return tag_value(Some(scalar), new).map(|value| Target {
                scalar,
                new: value,
                holds: Holds::Tag,
            })
        }
        (Some(Mark::Digest), Some(new)) => {
            return new.digest.clone().map(|value| Target {
                scalar,
                new: value,
                holds: Holds::Digest,
            })
        }
        // `:name` is the repository, which a release does not change.
        (Some(Mark::Name), _) => return None,
        _ => {}
    }
    // In Compose, `${VAR:-repo:tag}`: the default is what gets edited.
    let (before, reference, after) = compose_default(&scalar.value);
    let ours = same_repository(reference, wanted.released);
    // A templated value is never skipped as "not ours": it may render to ours.
    let templated =
        scalar.value.contains("{{") && scalar.value.contains(&wanted.released.repository);
    if mark.is_none() && !ours && !templated {
        return None;
    }
    // Written as the file spells the repository (`alpine`, not `docker.io/library/alpine`),
    // so the diff shows only the version.
    let respelled = match wanted.new {
        Some(r) if ours => r.spelled_as(reference),
        _ => wanted.written.to_string(),
    };
    Some(Target {
        scalar,
        new: format!("{before}{respelled}{after}"),
        holds: Holds::Reference,
    })
}

/// The anchored scalar defined on line `defined`, when every alias of it sits under an
/// `image` key (and it is itself a value of one, or of a key of its own like `x-image`).
fn shared_image(found: &[Located], defined: usize) -> Option<&Scalar> {
    let anchor = found.iter().find_map(|v| match &v.node {
        Node::Scalar(s) if s.anchored && s.line == defined => Some(s),
        _ => None,
    })?;
    let all_images = found.iter().all(|v| match &v.node {
        Node::Alias {
            target: Some((_, line)),
            ..
        } if *line == defined => v.key() == Some("image"),
        _ => true,
    });
    all_images.then_some(anchor)
}

/// A Marathon pod container's `image: { kind: DOCKER, id: REFERENCE }`: the `id` is the
/// reference.
fn is_pod_image_id(found: &[Located], located: &Located) -> bool {
    let [parent @ .., Step::Key(image), Step::Key(id)] = &located.path[..] else {
        return false;
    };
    if image != "image" || id != "id" {
        return false;
    }
    found.iter().any(|v| {
        v.path.len() == parent.len() + 2
            && v.path[..parent.len()] == *parent
            && v.path[parent.len()..] == [Step::Key("image".into()), Step::Key("kind".into())]
            && matches!(&v.node, Node::Scalar(s) if s.value == "DOCKER")
    })
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
    text: &str,
    found: &'v [Located],
    released: &Reference,
    new: &Reference,
) -> Result<(Vec<Target<'v>>, Vec<Insert>), EditError> {
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
    let mut inserts = Vec::new();
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
        if let (Some(scalar), Some(value)) = (tag, tag_value(tag, new)) {
            targets.push(Target {
                scalar,
                new: value,
                holds: Holds::Tag,
            });
        }
        if let (Some(scalar), Some(value)) = (digest, &new.digest) {
            targets.push(Target {
                scalar,
                new: value.clone(),
                holds: Holds::Digest,
            });
        }
        // A pinned release adds `digest:` next to `newTag:`, as `kustomize edit set image`
        // does, rather than dropping the digest.
        if let (None, Some(tag), Some(value)) = (digest, tag, &new.digest) {
            if !tag.value.contains('@') {
                inserts.push(digest_after(text, tag, i, value)?);
            }
        }
    }
    Ok((targets, inserts))
}

/// `digest: VALUE` added after the `newTag:` of entry `index`: on a line of its own at the
/// key's indentation (block style), or after it in the same braces (flow style).
fn digest_after(text: &str, tag: &Scalar, index: usize, digest: &str) -> Result<Insert, EditError> {
    let path = vec![
        Step::Key("images".into()),
        Step::Index(index),
        Step::Key("digest".into()),
    ];
    let rest = &text[tag.end..];
    let flow = rest.trim_start_matches([' ', '\t']).starts_with([',', '}']);
    if flow {
        return Ok(Insert {
            at: tag.end,
            text: format!(", digest: {digest}"),
            path,
            value: digest.to_string(),
            line: tag.line,
        });
    }
    let line_start = text[..tag.start].rfind('\n').map_or(0, |i| i + 1);
    let column = text[line_start..tag.start].find("newTag").ok_or_else(|| {
        ambiguous(
            tag.line,
            "newTag is not written as `newTag: VALUE`; add the digest: line by hand once",
        )
    })?;
    let line_end = rest.find('\n').map_or(text.len(), |i| tag.end + i);
    let (at, eol) = match text[..line_end].strip_suffix('\r') {
        Some(_) => (line_end - 1, "\r\n"),
        None => (line_end, "\n"),
    };
    Ok(Insert {
        at,
        text: format!("{eol}{}digest: {digest}", " ".repeat(column)),
        path,
        value: digest.to_string(),
        line: tag.line,
    })
}

/// The key paths of a Helm values file.
pub(super) struct HelmKeys<'a> {
    pub tag: &'a str,
    pub repository: Option<&'a str>,
    pub registry: Option<&'a str>,
    pub digest: Option<&'a str>,
}

/// `image.tag`, `sidecars[0].image.tag`: a dotted key path with list indexes, as steps.
fn key_path(dotted: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    for part in dotted.split('.') {
        let (key, mut indexes) = match part.find('[') {
            Some(at) => (&part[..at], &part[at..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            steps.push(Step::Key(key.to_string()));
        }
        while let Some(rest) = indexes.strip_prefix('[') {
            let Some((index, after)) = rest.split_once(']') else {
                break;
            };
            match index.parse() {
                Ok(i) => steps.push(Step::Index(i)),
                Err(_) => steps.push(Step::Key(index.to_string())),
            }
            indexes = after;
        }
    }
    steps
}

/// Helm values at configured key paths. With `repository` (and `registry`), only values
/// that name the released repository are ours; another image's values are left alone.
pub(super) fn helm_targets<'v>(
    found: &'v [Located],
    released: &Reference,
    new: &Reference,
    keys: &HelmKeys,
) -> Result<Vec<Target<'v>>, EditError> {
    let at = |dotted: &str| {
        let path = key_path(dotted);
        found.iter().find_map(|v| match &v.node {
            Node::Scalar(s) if v.path == path => Some(s),
            _ => None,
        })
    };
    let missing =
        |dotted: &str| ambiguous(0, &format!("the Helm values have no value at `{dotted}`"));
    if let Some(path) = keys.repository {
        let repository = at(path).ok_or_else(|| missing(path))?;
        let named = match keys.registry {
            Some(registry_path) => {
                let registry = at(registry_path).ok_or_else(|| missing(registry_path))?;
                format!("{}/{}", registry.value, repository.value)
            }
            None => repository.value.clone(),
        };
        if !same_repository(&named, released) {
            return Ok(Vec::new()); // another image's values
        }
    }
    let mut targets = Vec::new();
    let tag_scalar = at(keys.tag).ok_or_else(|| missing(keys.tag))?;
    if let Some(value) = tag_value(Some(tag_scalar), new) {
        targets.push(Target {
            scalar: tag_scalar,
            new: value,
            holds: Holds::Tag,
        });
    }
    if let Some(path) = keys.digest {
        let scalar = at(path).ok_or_else(|| missing(path))?;
        if let Some(value) = &new.digest {
            targets.push(Target {
                scalar,
                new: value.clone(),
                holds: Holds::Digest,
            });
        }
    }
    Ok(targets)
}

/// The new value of a tag field: the new tag, or `tag@digest` where the field held a tag
/// pinned to a digest (`1.2.3@sha256:…`, as Helm values and kustomize `newTag` allow).
fn tag_value(old: Option<&Scalar>, new: &Reference) -> Option<String> {
    let tag = new.tag.clone()?;
    let pinned = old.is_some_and(|s| s.value.contains("@sha256:"));
    match (&new.digest, pinned) {
        (Some(digest), true) => Some(format!("{tag}@{digest}")),
        _ => Some(tag),
    }
}

/// Whether `value` names the same repository as `target`, whatever its tag, Docker Hub's
/// spellings included (`redis` is `docker.io/library/redis`).
fn same_repository(value: &str, target: &Reference) -> bool {
    Reference::parse(value).is_ok_and(|r| r.canonical_name() == target.canonical_name())
}

/// What a marker on a line says its value is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mark {
    /// A whole reference (`# tagpilot: NAME`, Flux's plain `$imagepolicy`).
    Whole,
    Tag,
    Digest,
    /// The repository alone (Flux's `:name`).
    Name,
}

/// The mark line `line` (1-based) carries for `marker`, after its value: `# tagpilot: MARKER`,
/// or Flux's `# {"$imagepolicy": "MARKER"}` (`MARKER:tag`, `:digest`, `:name`).
fn mark_on(text: &str, line: usize, marker: &str) -> Option<Mark> {
    let line = text.lines().nth(line.saturating_sub(1))?;
    let (_, comment) = line.split_once('#')?;
    let comment = comment.trim();
    if let Some(name) = comment.strip_prefix("tagpilot:") {
        return (name.trim() == marker).then_some(Mark::Whole);
    }
    let policy: serde_json::Value = serde_json::from_str(comment).ok()?;
    let policy = policy.get("$imagepolicy")?.as_str()?;
    match policy.strip_prefix(marker)? {
        "" => Some(Mark::Whole),
        ":tag" => Some(Mark::Tag),
        ":digest" => Some(Mark::Digest),
        ":name" => Some(Mark::Name),
        _ => None,
    }
}

/// Every image a file names, with its line, whatever repository: `image:` values,
/// kustomization `images:` names, and `repository:` values (as Helm charts write them). For
/// the error that says what a file names when it names no image of the release.
pub(super) fn named_images(found: &[Located]) -> Vec<(usize, String)> {
    found
        .iter()
        .filter_map(|v| {
            let Node::Scalar(s) = &v.node else {
                return None;
            };
            let in_images = matches!(&v.path[..], [Step::Key(k), Step::Index(_), Step::Key(f)] if k == "images" && (f == "name" || f == "newName"));
            let named = matches!(v.key(), Some("image" | "repository")) || in_images;
            (named && !s.value.is_empty() && Reference::parse(&s.value).is_ok())
                .then(|| (s.line, s.value.clone()))
        })
        .collect()
}
