//! The image stage: the release's OCI image, built without a daemon into an OCI image layout.
//!
//! Layers, appended to the base pinned by digest: the release tree at `install_path` (the same
//! entries as the tarball), the spec's extra `files`, and the supervisor config. Every byte
//! comes from the tagged commit and the base, and every time from the commit time, so the same
//! tag on the same base gives the same manifest digest anywhere.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::archive::{
    append, append_prefix_folders, folder_prefix, restamp, write_failed, Counts, Normal,
};
use crate::error::{Error, Result};
use crate::oci::auth;
use crate::oci::blobs::BlobStore;
use crate::oci::image::{assemble, rfc3339, BaseImage, Recipe};
use crate::oci::layer::{self, Layer};
use crate::oci::layout;
use crate::oci::push::{BaseBlobs, Push, Pushed};
use crate::oci::reference::Reference;
use crate::oci::registry::{Client, Connection};
use crate::oci::{self, Descriptor, Platform};
use crate::source::{Content, Entry, EntryKind, Excludes, Selection, Source};
use crate::spec::image::{normalise_port, parse_owner, ImageSpec};
use crate::spec::{Spec, Submodules};
use crate::supervisor;
use crate::target::Target;
use crate::ui::Ui;

/// What the stage produced; also the `image` section of the release record.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Built {
    /// The OCI image layout it was written to.
    pub layout: PathBuf,
    /// Digest of the manifest (one platform) or index (several).
    pub digest: String,
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
    pub fetch_base_layers: bool,
    /// The release tree layer when it was already made (from the tarball's stream, in the
    /// same pass over the git tree); else it is made here from the tree.
    pub release_tree: Option<Layer>,
}

/// Where the release tree goes: its owner and the layer path prefix (`opt/dirac/`), and the
/// install path as rendered.
fn tree_placement(image: &ImageSpec, target: &Target) -> Result<(Normal, String, String)> {
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
    Ok((owned, prefix, install_path))
}

/// The release tree layer, made from the release tarball's uncompressed tar stream, whose
/// entries sit under `tarball_prefix`. It is the same layer [`build`] makes from the tree.
pub fn release_tree_layer(
    layout_dir: &Path,
    image: &ImageSpec,
    target: &Target,
    tarball_prefix: &str,
    tar_stream: impl std::io::Read,
) -> Result<Layer> {
    let (owned, prefix, _) = tree_placement(image, target)?;
    let store = BlobStore::open(layout_dir)?;
    layer::build(&store, image.compression, image.level.0, |tar, counts| {
        append_prefix_folders(tar, owned, &prefix, counts)?;
        restamp(tar_stream, tarball_prefix, tar, owned, &prefix, counts)
    })
}

pub fn build(inputs: &Inputs, layout_dir: &Path, ui: &Ui) -> Result<Built> {
    let image = inputs.image;
    let target = inputs.target;
    let platforms = image
        .platforms
        .iter()
        .map(|p| Platform::parse(p.as_str()).map_err(Error::input))
        .collect::<Result<Vec<_>>>()?;
    // Everything that can be wrong with the input is checked before anything is written.
    let supervisor = match &image.supervisor {
        Some(spec) => Some((spec, supervisor_config(inputs, spec)?)),
        None => None,
    };
    let (tags, version_tags) = image_tags(image, target)?;
    let (bases, base_digest, store) = resolve_base(inputs, &platforms, layout_dir)?;
    let family = bases[0].family;
    let (owned, prefix, install_path) = tree_placement(image, target)?;
    let level = image.level.0;

    let mut layers: Vec<(Layer, String)> = Vec::new();
    let excludes = inputs.spec.tarball.excludes()?;
    let release_tree = Selection {
        excludes: &excludes,
        submodules: inputs.spec.tarball.submodules,
        export_ignore: true,
    };
    let tree_layer = match inputs.release_tree.clone() {
        Some(layer) => layer,
        None => layer::build(&store, image.compression, level, |tar, counts| {
            let mut progress = ui.progress("image layer");
            append_prefix_folders(tar, owned, &prefix, counts)?;
            crate::archive::append_tree(
                tar,
                owned,
                inputs.source,
                &target.commit,
                &release_tree,
                &prefix,
                &mut progress,
                counts,
            )?;
            progress.finish();
            Ok(())
        })?,
    };
    layers.push((
        tree_layer,
        format!(
            "tagpilot: {} {} at {install_path}",
            target.name, target.version
        ),
    ));

    if !image.files.is_empty() {
        let files_layer = layer::build(&store, image.compression, level, |tar, counts| {
            append_files(tar, owned, inputs, counts)
        })?;
        let list: Vec<String> = image
            .files
            .iter()
            .map(|f| format!("{} -> {}", f.src, f.dest))
            .collect();
        layers.push((files_layer, format!("tagpilot: files {}", list.join(", "))));
    }

    let mut recipe = Recipe {
        created: target.mtime,
        env: image
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.value.clone()))
            .collect(),
        entrypoint: image
            .entrypoint
            .as_ref()
            .map(|e| e.iter().map(|t| t.value.clone()).collect()),
        cmd: image
            .cmd
            .as_ref()
            .map(|c| c.iter().map(|t| t.value.clone()).collect()),
        user: image.user.as_ref().map(|t| t.value.clone()),
        workdir: image.workdir.as_ref().map(|t| t.value.clone()),
        ports: image
            .ports
            .iter()
            .filter_map(|p| normalise_port(p.as_str()))
            .collect(),
        labels: image
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.value.clone()))
            .collect(),
        annotations: BTreeMap::new(),
    };
    if let Some((spec, config)) = &supervisor {
        let path = spec.path.value.clone();
        let root_owned = Normal {
            uid: 0,
            gid: 0,
            ..owned
        };
        let supervisor_layer = layer::build(&store, image.compression, level, |tar, counts| {
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
        layers.push((
            supervisor_layer,
            format!("tagpilot: supervisor config {path}"),
        ));
        recipe.env.push(("CONTAINERPILOT".into(), path));
        recipe.entrypoint = Some(vec![spec.binary.value.clone()]);
    }
    let base_name = image.base.value.clone();
    let standard = standard_labels(target, &base_name, base_digest.as_deref());
    for (key, value) in standard {
        recipe
            .labels
            .entry(key.clone())
            .or_insert_with(|| value.clone());
        recipe.annotations.insert(key, value);
    }

    let manifests = bases
        .iter()
        .map(|base| assemble(&store, base, &layers, &recipe))
        .collect::<Result<Vec<_>>>()?;
    let top = if manifests.len() == 1 {
        let mut only = manifests[0].clone();
        only.platform = None;
        only
    } else {
        let mut index = json!({
            "schemaVersion": 2,
            "mediaType": family.index(),
            "manifests": manifests,
        });
        if family == crate::oci::Family::Oci {
            index["annotations"] = json!(recipe.annotations);
        }
        store.put(
            family.index(),
            &serde_json::to_vec(&index).expect("index is JSON"),
        )?
    };
    layout::publish(layout_dir, &top, &tags)?;
    Ok(Built {
        layout: layout_dir.to_path_buf(),
        digest: top.digest.clone(),
        media_type: top.media_type.clone(),
        tags,
        version_tags,
        platforms: bases.iter().map(|b| b.platform.to_string()).collect(),
        base: base_name,
        base_digest,
        layers: layers
            .into_iter()
            .map(|(layer, created_by)| AddedLayer {
                created_by,
                digest: layer.digest,
                size: layer.size,
            })
            .collect(),
    })
}

/// The base images to build on, one per platform, and the output blob store (opened only
/// once the base is found), holding the base's layers.
fn resolve_base(
    inputs: &Inputs,
    platforms: &[Platform],
    layout_dir: &Path,
) -> Result<(Vec<BaseImage>, Option<String>, BlobStore)> {
    let base = inputs.image.base.as_str();
    if base == "scratch" {
        let platforms = if platforms.is_empty() {
            vec![Platform::parse("linux/amd64").expect("a valid platform")]
        } else {
            platforms.to_vec()
        };
        let images = platforms.into_iter().map(BaseImage::scratch).collect();
        return Ok((images, None, BlobStore::open(layout_dir)?));
    }
    let Some(reference) = base.strip_prefix("oci-layout:") else {
        return registry_base(inputs, platforms, layout_dir);
    };
    let (path, tag) = split_layout_reference(reference);
    let path = inputs.root.join(path);
    let found = layout::open_base(&path, tag, platforms)?;
    let store = BlobStore::open(layout_dir)?;
    for image in &found.images {
        for layer in &image.layers {
            let digest = layer["digest"]
                .as_str()
                .ok_or_else(|| Error::input(format!("base {base}: a layer has no digest")))?;
            store.copy_from(&found.store, digest)?;
        }
    }
    Ok((found.images, Some(found.digest), store))
}

/// A base from a registry, pinned to the digest its tag names now.
fn registry_base(
    inputs: &Inputs,
    platforms: &[Platform],
    layout_dir: &Path,
) -> Result<(Vec<BaseImage>, Option<String>, BlobStore)> {
    let base = inputs.image.base.as_str();
    let reference =
        Reference::parse(base).map_err(|why| Error::input(format!("image.base: {why}")))?;
    let mut client = registry_client(&reference, inputs.image)?;
    let (bytes, header_type, digest) = client.get_manifest(reference.manifest_reference())?;
    let document: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| Error::failed(format!("base {base}: the manifest is not JSON: {e}")))?;
    let media_type = document["mediaType"]
        .as_str()
        .map(str::to_string)
        .unwrap_or(header_type);
    let chosen = Descriptor {
        media_type,
        digest: digest.clone(),
        size: bytes.len() as u64,
        platform: None,
        annotations: BTreeMap::new(),
    };
    let images = oci::base::select(&mut client, &chosen, platforms, &format!("base {base}"))?;
    let store = BlobStore::open(layout_dir)?;
    if inputs.fetch_base_layers {
        for layer in images.iter().flat_map(|image| &image.layers) {
            let digest = layer["digest"].as_str().unwrap_or_default();
            if !store.contains(digest) {
                let mut writer = store.writer()?;
                std::io::copy(&mut client.get_blob(digest)?, &mut writer).map_err(|e| {
                    Error::failed(format!(
                        "base {base}: could not download layer {digest}: {e}"
                    ))
                })?;
                let (got, _) = writer.commit(&store)?;
                if got != digest {
                    return Err(Error::failed(format!(
                        "base {base}: layer {digest} arrived as {got}"
                    )));
                }
            }
        }
    }
    Ok((images, Some(digest), store))
}

/// The digest of the manifest `reference` names (its digest, else its tag) in its registry, or
/// `None` when the registry no longer has it. Reads only; `image` gives the TLS settings.
pub fn registry_digest(reference: &Reference, image: Option<&ImageSpec>) -> Result<Option<String>> {
    let connection = image.map(connection).unwrap_or_default();
    client_with(reference, &connection)?.manifest_digest(reference.manifest_reference())
}

/// What a push would find, read without writing anything: the version tags the registry
/// already has and whether they name these bytes, and how many added layers it holds.
#[derive(Debug)]
pub struct PushPreview {
    pub repository: String,
    /// Version tags already there with this image's digest.
    pub already_there: Vec<String>,
    /// Version tags already naming other bytes: `(tag, digest there)`.
    pub conflicts: Vec<(String, String)>,
    pub layers_present: usize,
    pub layers: usize,
}

pub fn push_preview(built: &Built, image: &ImageSpec) -> Result<PushPreview> {
    let reference = push_repository(image)?;
    let mut client = registry_client(&reference, image)?;
    let mut preview = PushPreview {
        repository: format!("{}/{}", reference.registry, reference.repository),
        already_there: Vec::new(),
        conflicts: Vec::new(),
        layers_present: 0,
        layers: built.layers.len(),
    };
    for tag in &built.version_tags {
        match client.manifest_digest(tag)? {
            Some(digest) if digest == built.digest => preview.already_there.push(tag.clone()),
            Some(digest) => preview.conflicts.push((tag.clone(), digest)),
            None => {}
        }
    }
    for layer in &built.layers {
        if client.has_blob(&layer.digest)? {
            preview.layers_present += 1;
        }
    }
    Ok(preview)
}

/// The repository to push to: `image.repository`, else `$CI_REGISTRY_IMAGE`.
fn push_repository(image: &ImageSpec) -> Result<Reference> {
    let repository = match &image.repository {
        Some(repository) => repository.value.clone(),
        None => std::env::var("CI_REGISTRY_IMAGE").ok().filter(|r| !r.is_empty()).ok_or_else(|| {
            Error::input("no repository to push the image to: image.repository is not set and CI_REGISTRY_IMAGE is empty")
                .with_hint("Set image.repository in the spec (GitLab CI sets CI_REGISTRY_IMAGE), or build without pushing: --dry-run, --skip push or `tagpilot image --oci-layout DIR`")
        })?,
    };
    let reference = Reference::parse(&repository).map_err(Error::input)?;
    if reference.digest.is_some() || reference.tag.is_some() {
        return Err(Error::input(format!(
            "image.repository `{repository}` names a tag or digest; give the repository only (tags come from image.tags)"
        )));
    }
    Ok(reference)
}

/// A client for `reference`'s registry, with the login found for it and the spec's TLS settings.
fn registry_client(reference: &Reference, image: &ImageSpec) -> Result<Client> {
    client_with(reference, &connection(image))
}

fn client_with(reference: &Reference, connection: &Connection) -> Result<Client> {
    let lookup = |name: &str| std::env::var(name).ok();
    let credential = auth::find(&reference.registry, &lookup);
    Client::new(reference, credential, connection)
}

fn connection(image: &ImageSpec) -> Connection {
    Connection {
        insecure: image.insecure,
        ca_file: image.ca_file.as_ref().map(|f| PathBuf::from(f.as_str())),
    }
}

/// `PATH[:TAG]`; a colon only counts as the tag separator after the last `/`.
fn split_layout_reference(reference: &str) -> (&str, Option<&str>) {
    match reference.rsplit_once(':') {
        Some((path, tag)) if !tag.contains('/') && !path.is_empty() => (path, Some(tag)),
        _ => (reference, None),
    }
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

/// The config bytes to embed: the user's file verbatim once it validates, or the inline config
/// rendered. Problems point at the file and line.
fn supervisor_config(
    inputs: &Inputs,
    spec: &crate::spec::image::SupervisorSpec,
) -> Result<Vec<u8>> {
    match (&spec.file, &spec.config) {
        (Some(file), None) => {
            let bytes = inputs
                .source
                .read_file(&inputs.target.commit, file.as_str())?;
            let text = String::from_utf8(bytes).map_err(|_| {
                Error::input(format!("{file}: the supervisor config is not UTF-8 text"))
            })?;
            supervisor::Config::from_json5(&text).map_err(|problems| {
                let lines: Vec<String> = problems
                    .iter()
                    .map(|p| match p.line {
                        0 => format!("{file}: {}", p.message),
                        line => format!("{file}:{line}:{}: {}", p.column.max(1), p.message),
                    })
                    .collect();
                Error::input(format!(
                    "the supervisor config would not start ContainerPilot:\n  {}",
                    lines.join("\n  ")
                ))
            })?;
            Ok(text.into_bytes())
        }
        (None, Some(config)) => Ok(config.render().into_bytes()),
        _ => Err(Error::input(
            "image.supervisor: give either `file` or `config`",
        )),
    }
}

fn standard_labels(
    target: &Target,
    base: &str,
    base_digest: Option<&str>,
) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut put = |key: &str, value: String| {
        labels.insert(format!("org.opencontainers.image.{key}"), value);
    };
    put("title", target.name.clone());
    put("version", target.version.to_string());
    put("revision", target.commit.id.clone());
    put("created", rfc3339(target.mtime));
    // The project's web page, in GitLab CI.
    if let Some(url) = std::env::var("CI_PROJECT_URL")
        .ok()
        .filter(|u| !u.is_empty())
    {
        put("source", url);
    }
    if base != "scratch" {
        put("base.name", base.to_string());
    }
    if let Some(digest) = base_digest {
        put("base.digest", digest.to_string());
    }
    labels
}

/// The tags for this release, and which of them are version tags: version tags always, moving
/// tags only for final releases, and `latest` only for the highest release.
fn image_tags(image: &ImageSpec, target: &Target) -> Result<(Vec<String>, Vec<String>)> {
    let highest = target
        .releases
        .iter()
        .find(|t| !t.version.is_prerelease())
        .is_none_or(|t| target.version >= t.version);
    let mut tags = Vec::new();
    let mut version_tags = Vec::new();
    for template in &image.tags {
        let text = template.as_str();
        let moving = !text.contains("{version}") && !text.contains("{tag}");
        if moving && target.version.is_prerelease() {
            continue;
        }
        // SemVer build metadata (`+build.7`) is not allowed in tags; `_` is the usual stand-in.
        let tag = target
            .render(text)
            .map_err(|why| Error::input(format!("image.tags: {why}")))?
            .replace('+', "_");
        if tag == "latest" && !highest {
            continue;
        }
        if !is_valid_tag(&tag) {
            return Err(Error::input(format!(
                "image tag `{tag}` (from `{text}`) is not a valid tag: up to 128 of [A-Za-z0-9_.-], not starting with `.` or `-`"
            )));
        }
        if !moving && !version_tags.contains(&tag) {
            version_tags.push(tag.clone());
        }
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    Ok((tags, version_tags))
}

/// Pushes a built image to `image.repository` (or `$CI_REGISTRY_IMAGE`).
pub fn push(built: &Built, image: &ImageSpec, force: bool, ui: &Ui) -> Result<Pushed> {
    let reference = push_repository(image)?;
    let mut client = registry_client(&reference, image)?;
    let mut base = match image.base.as_str() {
        "scratch" => None,
        base if base.starts_with("oci-layout:") => None,
        base => {
            let base_reference = Reference::parse(base).map_err(Error::input)?;
            let same_registry = base_reference.registry == reference.registry;
            if same_registry {
                client.also_pull(&base_reference.repository);
            }
            Some(BaseBlobs {
                client: registry_client(&base_reference, image)?,
                repository: base_reference.repository.clone(),
                same_registry,
            })
        }
    };
    let store = BlobStore::open(&built.layout)?;
    let top = Descriptor {
        media_type: built.media_type.clone(),
        digest: built.digest.clone(),
        size: 0,
        platform: None,
        annotations: BTreeMap::new(),
    };
    let job = Push {
        store: &store,
        top: &top,
        repository: format!("{}/{}", reference.registry, reference.repository),
        tags: &built.tags,
        immutable: &built.version_tags,
        force,
    };
    oci::push::push(&mut client, &job, base.as_mut(), ui)
}

/// The distribution spec's tag grammar: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
fn is_valid_tag(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}
