//! The layers tagpilot adds on the base: the release tree at `install_path`, the spec's extra
//! `files`, and the supervisor config. Each is a pure function of the tagged commit and spec.

use crate::archive::{
    append, append_prefix_folders, append_tree, folder_prefix, restamp, write_failed, Counts,
    Normal,
};
use crate::error::{Error, Result};
use crate::gzip::share::Share;
use crate::oci::blobs::BlobStore;
use crate::oci::layer::{self, Layer};
use crate::source::{Content, Entry, EntryKind, Excludes, Selection, Submodules};
use crate::spec::image::{parse_owner, ImageSpec, SupervisorSpec};
use crate::target::Target;
use crate::ui::Ui;

use super::Inputs;

/// A layer and the history line that says what made it.
pub type Added = (Layer, String);

/// Where the release tree goes.
pub struct Placement {
    /// Owner and times of every entry.
    pub owned: Normal,
    /// The path prefix in the layer (`opt/dirac/`; empty for `/`).
    pub prefix: String,
    /// The install path as rendered.
    pub install_path: String,
}

impl Placement {
    pub fn of(image: &ImageSpec, target: &Target) -> Result<Placement> {
        let (uid, gid) = parse_owner(image.owner.as_str())
            .ok_or_else(|| Error::input(format!("image.owner `{}` is not UID:GID", image.owner)))?;
        let owned = Normal {
            mtime: target.mtime,
            uid,
            gid,
        };
        let install_path = target
            .render(image.install_path.as_str())
            .map_err(|why| Error::input(format!("image.install_path: {why}")))?;
        // Paths in layers are relative to the root; `/` itself means no prefix at all.
        let prefix = folder_prefix(&install_path);
        Ok(Placement {
            owned,
            prefix,
            install_path,
        })
    }
}

/// The release tree layer, made from the release tarball's uncompressed tar stream, whose
/// entries sit under `tarball_prefix`, taking the tarball's compressed files through `share`.
/// It is the same layer [`release_tree`] makes from the tree.
pub fn release_tree_layer(
    layout_dir: &std::path::Path,
    image: &ImageSpec,
    target: &Target,
    tarball_prefix: &str,
    (tar_stream, share): (impl std::io::Read, Share),
) -> Result<Layer> {
    let placement = Placement::of(image, target)?;
    let store = BlobStore::open(layout_dir)?;
    layer::build_sharing(&store, image.packing(), share, |tar, counts| {
        append_prefix_folders(tar, placement.owned, &placement.prefix, counts)?;
        restamp(
            tar_stream,
            tarball_prefix,
            tar,
            placement.owned,
            &placement.prefix,
            counts,
        )
    })
}

/// The release tree: taken when already made from the tarball's stream, else walked here.
pub fn release_tree(
    inputs: &Inputs,
    placement: &Placement,
    store: &BlobStore,
    ui: &Ui,
) -> Result<Added> {
    let (image, target) = (inputs.image, inputs.target);
    let made = match inputs.from_tarball.release_tree.clone() {
        Some(layer) => layer,
        None => {
            let selection_excludes = inputs.spec.tarball.excludes()?;
            let selection = tree_selection(inputs, &selection_excludes);
            layer::build(store, image.packing(), |tar, counts| {
                let tree = (&target.commit, placement.owned);
                append_release_tree(tar, inputs, tree, &selection, &placement.prefix, ui, counts)?;
                // The build outputs the tarball holds too, as it holds them.
                let outputs = super::artifacts::for_release_tree(
                    inputs.root,
                    &image.artifacts,
                    &placement.prefix,
                    placement.owned,
                )?;
                super::artifacts::append_all(tar, &outputs, counts)
            })?
        }
    };
    let history = format!(
        "tagpilot: {} {} at {}",
        target.name, target.version, placement.install_path
    );
    Ok((made, history))
}

/// What the release tree holds of a commit's tree: the tarball's selection.
pub fn tree_selection<'a>(inputs: &Inputs, excludes: &'a crate::source::Excludes) -> Selection<'a> {
    Selection {
        excludes,
        submodules: inputs.spec.tarball.submodules,
        export_ignore: true,
    }
}

/// Appends `commit`'s selected tree under `prefix` (and the prefix's folders), owned and
/// timed by `normal`, with progress.
pub fn append_release_tree(
    tar: &mut layer::LayerTar,
    inputs: &Inputs,
    (commit, normal): (&crate::source::Commit, Normal),
    selection: &Selection,
    prefix: &str,
    ui: &Ui,
    counts: &mut Counts,
) -> Result<()> {
    let mut progress = ui.progress("image layer");
    append_prefix_folders(tar, normal, prefix, counts)?;
    append_tree(
        tar,
        normal,
        inputs.source,
        commit,
        selection,
        prefix,
        &mut progress,
        counts,
    )?;
    progress.finish();
    Ok(())
}

/// The spec's extra `files`, read from the tagged commit.
pub fn files(inputs: &Inputs, placement: &Placement, store: &BlobStore) -> Result<Added> {
    let image = inputs.image;
    let made = layer::build(store, image.packing(), |tar, counts| {
        append_files(tar, placement.owned, inputs, counts)
    })?;
    let list: Vec<String> = image
        .files
        .iter()
        .map(|f| format!("{} -> {}", f.src, f.dest))
        .collect();
    Ok((made, format!("tagpilot: files {}", list.join(", "))))
}

/// The build outputs from the workspace, each with its own mode and owner.
pub fn artifacts(
    image: &ImageSpec,
    collected: &[super::artifacts::Collected],
    store: &BlobStore,
) -> Result<Added> {
    let made = layer::build(store, image.packing(), |tar, counts| {
        super::artifacts::append_all(tar, collected, counts)
    })?;
    let list: Vec<String> = collected
        .iter()
        .map(|c| format!("{} -> {}", c.record.src, c.record.dest))
        .collect();
    Ok((made, format!("tagpilot: artifacts {}", list.join(", "))))
}

/// The supervisor config file, owned by root.
pub fn supervisor(
    image: &ImageSpec,
    spec: &SupervisorSpec,
    config: &[u8],
    placement: &Placement,
    store: &BlobStore,
) -> Result<Added> {
    let path = spec.path.value.as_str();
    let root_owned = Normal {
        uid: 0,
        gid: 0,
        ..placement.owned
    };
    let made = layer::build(store, image.packing(), |tar, counts| {
        let parent = path
            .trim_start_matches('/')
            .rsplit_once('/')
            .map_or("", |(p, _)| p);
        append_prefix_folders(tar, root_owned, parent, counts)?;
        let entry = Entry {
            path: path.as_bytes(),
            kind: EntryKind::File { executable: false },
            content: Content::Bytes(config),
        };
        append(
            tar,
            root_owned,
            path.trim_start_matches('/').as_bytes(),
            entry,
        )
        .map_err(write_failed)?;
        counts.entries += 1;
        Ok(())
    })?;
    Ok((made, format!("tagpilot: supervisor config {path}")))
}

fn append_files(
    tar: &mut layer::LayerTar,
    owned: Normal,
    inputs: &Inputs,
    counts: &mut Counts,
) -> Result<()> {
    let none = Excludes::none();
    let selection = Selection {
        excludes: &none,
        submodules: Submodules::Error,
        export_ignore: false,
    };
    for file in &inputs.image.files {
        let dest = file.dest.as_str().trim_matches('/').to_string();
        let (parent, _) = dest.rsplit_once('/').unwrap_or(("", &dest));
        append_prefix_folders(tar, owned, parent, counts)?;
        inputs.source.walk_path(
            &inputs.target.commit,
            file.src.as_str(),
            &selection,
            &mut |entry: Entry| {
                let path = if entry.path.is_empty() {
                    dest.clone().into_bytes()
                } else {
                    [dest.as_bytes(), b"/", entry.path].concat()
                };
                counts.entries += 1;
                counts.content_bytes += entry.content.len();
                append(tar, owned, &path, entry).map_err(write_failed)
            },
        )?;
    }
    Ok(())
}
