//! `image.layering: release_line`: the release tree as two layers that follow change. The
//! first is the release line's first release (the lowest final release of this
//! `major.minor`), made exactly as that release's own single layer was, so its digest is the
//! one registries and nodes already have. The second holds what changed since then: the
//! entries git's tree diff names (and the folders above them) as this release has them, and
//! an OCI whiteout (`.wh.NAME`) for each removed path. Both are a pure function of the tag
//! and the repository's tags: the same tag gives the same digests anywhere.

use crate::archive::{append, append_prefix_folders, write_failed, Counts, Normal};
use crate::error::Result;
use crate::oci::blobs::BlobStore;
use crate::oci::layer::{self, LayerTar};
use crate::source::{Commit, Content, Entry, EntryKind, Selection};
use crate::spec::image::{ImageSpec, Layering};
use crate::target::Target;
use crate::ui::Ui;
use crate::version::TaggedVersion;

use super::layers::{append_release_tree, tree_selection, Added, Placement};
use super::Inputs;

/// The two layers, or `None` when the release tree is one layer: `layering: single`, or this
/// release is its line's first.
pub fn release_tree(
    inputs: &Inputs,
    placement: &Placement,
    store: &BlobStore,
    ui: &Ui,
) -> Result<Option<Vec<Added>>> {
    let target = inputs.target;
    let Some(first) = splits_from(inputs.image, target) else {
        return Ok(None);
    };
    let base = inputs.source.tag_commit(&first.tag)?;
    let excludes = inputs.spec.tarball.excludes()?;
    let selection = tree_selection(inputs, &excludes);
    let image = inputs.image;
    // The first release's layer, with its own commit time, as its release made it.
    let as_then = Normal {
        mtime: base.time.max(0) as u64,
        ..placement.owned
    };
    let line = layer::build_sharing(store, image.packing(), inputs.sharing(), |tar, counts| {
        append_release_tree(
            tar,
            inputs,
            (&base, as_then),
            &selection,
            &placement.prefix,
            ui,
            counts,
        )
    })?;
    let changes = layer::build_sharing(store, image.packing(), inputs.sharing(), |tar, counts| {
        changes_since(inputs, &base, &selection, placement, tar, counts)
    })?;
    Ok(Some(vec![
        (
            line,
            format!(
                "tagpilot: {} {} at {} (the release line's first release)",
                target.name, first.version, placement.install_path
            ),
        ),
        (
            changes,
            format!(
                "tagpilot: {} {} changes since {}",
                target.name, target.version, first.version
            ),
        ),
    ]))
}

/// The release line's first release, when the release tree is split at it: `release_line`,
/// and the target is not that first release itself.
pub fn splits_from<'t>(image: &ImageSpec, target: &'t Target) -> Option<&'t TaggedVersion> {
    if image.layering != Layering::ReleaseLine {
        return None;
    }
    line_start(target).filter(|first| target.tag.as_deref() != Some(first.tag.as_str()))
}

/// The lowest final release of the target's `major.minor`, at or below it.
fn line_start(target: &Target) -> Option<&TaggedVersion> {
    let now = &target.version;
    target
        .releases
        .iter()
        .filter(|r| {
            !r.version.is_prerelease()
                && r.version.major() == now.major()
                && r.version.minor() == now.minor()
                && r.version <= *now
        })
        .min_by(|a, b| a.version.cmp(&b.version))
}

/// Whiteouts for what is gone, then every entry of this release that changed, with the
/// folders above it.
fn changes_since(
    inputs: &Inputs,
    base: &Commit,
    selection: &Selection,
    placement: &Placement,
    tar: &mut LayerTar,
    counts: &mut Counts,
) -> Result<()> {
    let changes = inputs.source.changes(base, &inputs.target.commit)?;
    let owned: Normal = placement.owned;
    append_prefix_folders(tar, owned, &placement.prefix, counts)?;
    for removed in &changes.removed {
        let (parent, name) = match removed.iter().rposition(|b| *b == b'/') {
            Some(cut) => (&removed[..=cut], &removed[cut + 1..]),
            None => (&b""[..], &removed[..]),
        };
        let path = [placement.prefix.as_bytes(), parent, b".wh.", name].concat();
        let whiteout = Entry {
            path: &path,
            kind: EntryKind::File { executable: false },
            content: Content::Bytes(&[]),
        };
        append(tar, owned, &path, whiteout).map_err(write_failed)?;
        counts.entries += 1;
    }
    inputs
        .source
        .walk(&inputs.target.commit, selection, &mut |entry: Entry| {
            if !changes.touches(entry.path) {
                return Ok(());
            }
            let path = [placement.prefix.as_bytes(), entry.path].concat();
            counts.entries += 1;
            counts.content_bytes += entry.content.len();
            append(tar, owned, &path, entry).map_err(write_failed)
        })
}
