//! The base image, pinned by digest at build time: `scratch`, an OCI layout
//! (`oci-layout:PATH[:TAG]`), or a registry reference.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{Error, Result};
use crate::oci::blobs::BlobStore;
use crate::oci::image::BaseImage;
use crate::oci::reference::Reference;
use crate::oci::registry::Client;
use crate::oci::{self, layout, Descriptor, Platform};

use super::publish::registry_client;
use super::{Inputs, Resolved};

/// The base images to build on, one per platform, and the output blob store (opened only
/// once the base is found), holding the base's layers.
pub fn resolve(inputs: &Inputs, platforms: &[Platform], layout_dir: &Path) -> Result<Resolved> {
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
        for digest in image.layer_digests(&format!("base {base}"))? {
            store.copy_from(&found.store, &digest)?;
        }
    }
    Ok((found.images, Some(found.digest), store))
}

/// A base from a registry, pinned to the digest its tag names now.
fn registry_base(inputs: &Inputs, platforms: &[Platform], layout_dir: &Path) -> Result<Resolved> {
    let base = inputs.image.base.as_str();
    let reference =
        Reference::parse(base).map_err(|why| Error::input(format!("image.base: {why}")))?;
    let mut client = registry_client(&reference, inputs.image, inputs.env)?;
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
    if inputs.complete_layout {
        for image in &images {
            download_layers(&mut client, image, &store, base)?;
        }
    }
    Ok((images, Some(digest.to_string()), store))
}

/// Puts a registry base's layers into the layout, each checked against its digest.
fn download_layers(
    client: &mut Client,
    image: &BaseImage,
    store: &BlobStore,
    base: &str,
) -> Result<()> {
    for digest in image.layer_digests(&format!("base {base}"))? {
        if store.contains(&digest) {
            continue;
        }
        let mut writer = store.writer()?;
        std::io::copy(&mut client.get_blob(&digest)?, &mut writer).map_err(|e| {
            Error::failed(format!(
                "base {base}: could not download layer {digest}: {e}"
            ))
        })?;
        let (got, _) = writer.commit(store)?;
        if got != digest {
            return Err(Error::failed(format!(
                "base {base}: layer {digest} arrived as {got}"
            )));
        }
    }
    Ok(())
}

/// `PATH[:TAG]`; a colon only counts as the tag separator after the last `/`.
fn split_layout_reference(reference: &str) -> (&str, Option<&str>) {
    match reference.rsplit_once(':') {
        Some((path, tag)) if !tag.contains('/') && !path.is_empty() => (path, Some(tag)),
        _ => (reference, None),
    }
}
