//! The image stage's work: the release's OCI image, built without a daemon into an OCI image
//! layout, and pushed from there.
//!
//! Layers, appended to the base pinned by digest: the release tree at `install_path` (the same
//! entries as the tarball), the spec's extra `files`, the build outputs (`artifacts`, from the
//! workspace), and the supervisor config. Every byte comes from the tagged commit, the
//! artifacts and the base, and every time from the commit time, so the same tag on the same
//! base and artifacts gives the same manifest digest anywhere.
//!
//! - `base`: the base image, pinned (scratch, an OCI layout, or a registry);
//! - `layers`: the layers tagpilot adds;
//! - `artifacts`: build outputs read from the workspace;
//! - `config`: the image config (recipe, standard labels, tags);
//! - `publish`: the registry side (which repository, clients, the push).

pub mod artifacts;
mod base;
pub mod compare;
mod config;
mod layers;
pub mod provided;
mod publish;
pub mod split;

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::env::Env;
use crate::error::{Error, Result};
use crate::gzip::share::{Blocks, Share, Taken};
use crate::oci::blobs::BlobStore;
use crate::oci::digest::Digest;
use crate::oci::image::{assemble, BaseImage};
use crate::oci::layer::Layer;
use crate::oci::{layout, Descriptor, Family, Platform};
use crate::source::Source;
use crate::spec::image::ImageSpec;
use crate::spec::Spec;
use crate::target::Target;
use crate::ui::Ui;

pub use config::image_tags as release_tags;
pub use layers::release_tree_layer;
pub use publish::{push, push_repository, push_repository_name, registry_client, registry_digest};

/// What the stage produced; also the `image` section of the release record.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Built {
    /// The OCI image layout it was written to.
    pub layout: PathBuf,
    /// Digest of the manifest (one platform) or index (several).
    pub digest: Digest,
    pub media_type: String,
    pub tags: Vec<String>,
    /// The tags that name this release and never move (the others are moving tags).
    pub version_tags: Vec<String>,
    pub platforms: Vec<String>,
    /// `scratch`, or the base as written in the spec.
    pub base: String,
    pub base_digest: Option<String>,
    /// The layers tagpilot added, in order.
    pub layers: Vec<AddedLayer>,
    /// The build outputs in the image (`image.artifacts`), with their SHA-256.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<artifacts::ArtifactRecord>,
    /// tagpilot's own supervisor, when the image has it (`binary: provided`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supervisor: Option<provided::SupervisorRecord>,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct AddedLayer {
    pub created_by: String,
    pub digest: String,
    pub size: u64,
}

/// Everything the stage reads.
pub struct Inputs<'a> {
    pub source: &'a Source,
    /// Base layouts given as relative paths are found from here (the repository root).
    pub root: &'a Path,
    pub spec: &'a Spec,
    pub image: &'a ImageSpec,
    pub target: &'a Target,
    /// Download a registry base's layers into the layout, so it is complete on its own (a
    /// push does not need them: it mounts or copies them registry to registry).
    pub complete_layout: bool,
    /// The environment (`CI_PROJECT_URL` for the source label, registry logins).
    pub env: &'a Env,
    /// What the tarball stage made for the image.
    pub from_tarball: FromTarball,
    /// The file content the layers took from the tarball's compressed files.
    pub taken: Taken,
}

/// What the tarball stage, run in the same process, made for the image.
#[derive(Default)]
pub struct FromTarball {
    /// The release tree layer, made from the tarball's stream in the same pass over the git
    /// tree; else it is made here from the tree.
    pub release_tree: Option<Layer>,
    /// The tarball's compressed file blocks, for layers made here to take.
    pub blocks: Option<Blocks>,
}

impl Inputs<'_> {
    /// How a release tree layer made here from git (a split one) takes the tarball's
    /// compressed files.
    pub fn sharing(&self) -> Share {
        let blocks = self.from_tarball.blocks.as_ref();
        blocks
            .and_then(|blocks| blocks.reuser(&self.taken))
            .map_or(Share::None, Share::Reuse)
    }
}

/// Builds the image into the layout at `layout_dir`, in phases: check the inputs, pin the
/// base, make the layers, write the config and manifests, tag them in the layout. A layout
/// this build made is removed again when it fails (a bad supervisor binary is found only
/// once the base, and so the platforms, are known).
pub fn build(inputs: &Inputs, layout_dir: &Path, ui: &Ui) -> Result<Built> {
    let made_here = !layout_dir.exists();
    let built = build_into(inputs, layout_dir, ui);
    if built.is_err() && made_here {
        let _ = std::fs::remove_dir_all(layout_dir);
    }
    built
}

fn build_into(inputs: &Inputs, layout_dir: &Path, ui: &Ui) -> Result<Built> {
    let image = inputs.image;
    let platforms = image
        .platforms
        .iter()
        .map(|p| Platform::parse(p.as_str()).map_err(Error::input))
        .collect::<Result<Vec<_>>>()?;
    // Everything that can be wrong with the input is checked before anything is written.
    let supervisor = match &image.supervisor {
        Some(spec) => {
            let (bytes, loaded) = config::supervisor_file(inputs, spec)?;
            Some((spec, bytes, loaded))
        }
        None => None,
    };
    let (tags, version_tags) = config::image_tags(image, inputs.target)?;
    let placement = layers::Placement::of(image, inputs.target)?;
    let collected = artifacts::collect(
        inputs.root,
        &image.artifacts,
        (placement.owned.uid, placement.owned.gid),
        placement.owned.mtime,
    )?;

    let (bases, base_digest, store) = base::resolve(inputs, &platforms, layout_dir)?;
    let mut added = match split::release_tree(inputs, &placement, &store, ui)? {
        Some(two) => two,
        None => vec![layers::release_tree(inputs, &placement, &store, ui)?],
    };
    if !image.files.is_empty() {
        added.push(layers::files(inputs, &placement, &store)?);
    }
    if !collected.is_empty() {
        added.push(layers::artifacts(image, &collected, &store)?);
    }
    let mut recipe = config::recipe(image, inputs.target, base_digest.as_deref(), inputs.env);
    let provided = match &supervisor {
        Some(supervisor) => add_supervisor(
            inputs,
            supervisor,
            (&bases, &placement, &store),
            &mut added,
            &mut recipe,
        )?,
        None => provided::Provided::default(),
    };

    let manifests = bases
        .iter()
        .map(|base| {
            let (layers, recipe) = provided.apply(base, &added, &recipe);
            assemble(&store, base, &layers, &recipe)
        })
        .collect::<Result<Vec<_>>>()?;
    let top = top_document(&store, bases[0].family, manifests, &recipe.annotations)?;
    layout::publish(layout_dir, &top, &tags)?;
    Ok(Built {
        layout: layout_dir.to_path_buf(),
        digest: top.digest.clone(),
        media_type: top.media_type.clone(),
        tags,
        version_tags,
        platforms: bases.iter().map(|b| b.platform.to_string()).collect(),
        base: image.base.value.clone(),
        base_digest,
        layers: added
            .into_iter()
            .map(|(layer, created_by)| AddedLayer {
                created_by,
                digest: layer.digest.to_string(),
                size: layer.size,
            })
            .collect(),
        artifacts: collected.into_iter().map(|c| c.record).collect(),
        supervisor: provided.record(),
    })
}

/// The supervisor config's layer and the settings that start it; tagpilot's own supervisor,
/// per platform, when the spec has it provided.
fn add_supervisor(
    inputs: &Inputs,
    (spec, bytes, loaded): &(
        &crate::spec::image::SupervisorSpec,
        Vec<u8>,
        Option<crate::supervisor::Config>,
    ),
    (bases, placement, store): (&[BaseImage], &layers::Placement, &BlobStore),
    added: &mut Vec<layers::Added>,
    recipe: &mut crate::oci::image::Recipe,
) -> Result<provided::Provided> {
    let image = inputs.image;
    added.push(layers::supervisor(image, spec, bytes, placement, store)?);
    recipe
        .env
        .push(("CONTAINERPILOT".into(), spec.path.value.clone()));
    if !spec.provided() {
        recipe.entrypoint = Some(vec![spec.binary.value.clone()]);
        return Ok(provided::Provided::default());
    }
    recipe.entrypoint = Some(vec![provided::BINARY.into()]);
    if spec.healthcheck {
        recipe.healthcheck = config::healthcheck(loaded);
    }
    provided::Provided::build(spec, bases, inputs.root, image, store)
}

/// The document the tags name: the only manifest, or an index of one per platform.
fn top_document(
    store: &BlobStore,
    family: Family,
    manifests: Vec<Descriptor>,
    annotations: &std::collections::BTreeMap<String, String>,
) -> Result<Descriptor> {
    if manifests.len() == 1 {
        let mut only = manifests.into_iter().next().expect("one manifest");
        only.platform = None;
        return Ok(only);
    }
    let mut index = json!({
        "schemaVersion": 2,
        "mediaType": family.index(),
        "manifests": manifests,
    });
    if family == Family::Oci {
        index["annotations"] = json!(annotations);
    }
    store.put(
        family.index(),
        &serde_json::to_vec(&index).expect("index is JSON"),
    )
}

/// A base with its pinned digest and the store it was put in, as the phases pass it on.
type Resolved = (Vec<BaseImage>, Option<String>, BlobStore);
