//! OCI image layouts on disk: reading a base image from one, and writing the result into one
//! (`oci-layout`, `index.json`, `blobs/sha256/`), readable by skopeo, umoci, podman and crane.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::fsutil;

use super::base::{self, Documents};
use super::blobs::BlobStore;
use super::digest::Digest;
use super::image::BaseImage;
use super::{Descriptor, Platform, OCI_INDEX, REF_NAME};

/// A base image found in a layout: one [`BaseImage`] per selected platform.
pub struct LayoutBase {
    pub store: BlobStore,
    pub images: Vec<BaseImage>,
    /// Digest of the manifest or index that was selected: what the build is pinned to.
    pub digest: String,
}

/// A layout's blobs as base documents.
impl Documents for BlobStore {
    fn manifest(&mut self, digest: &Digest) -> Result<Value> {
        json_blob(self, digest)
    }

    fn config(&mut self, digest: &Digest) -> Result<Value> {
        json_blob(self, digest)
    }
}

/// Opens `root`, selects the image named `tag` (or the only one), and the `platforms` asked for
/// (all of a multi-platform index when none are).
pub fn open_base(root: &Path, tag: Option<&str>, platforms: &[Platform]) -> Result<LayoutBase> {
    let place = format!("base oci-layout:{}", root.display());
    let index_path = root.join("index.json");
    let index: Value = read_json(&index_path)
        .map_err(|e| e.with_hint(format!("Is {} an OCI image layout?", root.display())))?;
    let mut store = BlobStore::open(root)?;
    let manifests = index["manifests"].as_array().cloned().unwrap_or_default();
    fn named(m: &Value) -> Option<&str> {
        m["annotations"][REF_NAME].as_str()
    }
    let chosen = match tag {
        Some(tag) => manifests.iter().find(|m| named(m) == Some(tag)),
        None if manifests.len() == 1 => manifests.first(),
        None => None,
    };
    let Some(chosen) = chosen else {
        let names: Vec<&str> = manifests.iter().filter_map(named).collect();
        return Err(Error::input(format!(
            "{place}: no image {}; the layout has: {}",
            tag.map_or(
                "chosen (several are there, name one with :TAG)".to_string(),
                |t| format!("named `{t}`")
            ),
            if names.is_empty() {
                "no named images".to_string()
            } else {
                names.join(", ")
            }
        )));
    };
    let chosen: Descriptor = serde_json::from_value(chosen.clone())
        .map_err(|e| Error::input(format!("{place}: bad descriptor in index.json: {e}")))?;
    let images = base::select(&mut store, &chosen, platforms, &place)?;
    Ok(LayoutBase {
        store,
        images,
        digest: chosen.digest.to_string(),
    })
}

/// A document in the store, checked against its digest.
fn json_blob(store: &BlobStore, digest: &Digest) -> Result<Value> {
    let bytes = store.read(digest)?;
    serde_json::from_slice(&bytes).map_err(|e| {
        Error::input(format!(
            "{} is not valid JSON: {e}",
            store.path(digest).display()
        ))
    })
}

fn read_json(path: &Path) -> Result<Value> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("read", path, e))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::input(format!("{} is not valid JSON: {e}", path.display())))
}

/// Writes `oci-layout` and adds `descriptor` to `index.json` once per name in `ref_names`,
/// replacing entries of the same names and keeping all others.
pub fn publish(root: &Path, descriptor: &Descriptor, ref_names: &[String]) -> Result<PathBuf> {
    fsutil::write_atomic(
        &root.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    let index_path = root.join("index.json");
    let mut manifests: Vec<Value> = match read_json(&index_path) {
        Ok(index) => index["manifests"].as_array().cloned().unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    manifests.retain(|m| {
        m["annotations"][REF_NAME]
            .as_str()
            .is_none_or(|name| !ref_names.iter().any(|r| r == name))
    });
    for name in ref_names {
        let mut entry = descriptor.clone();
        entry.platform = None;
        entry.annotations.insert(REF_NAME.to_string(), name.clone());
        manifests.push(serde_json::to_value(entry).expect("descriptor is JSON"));
    }
    let index = json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests });
    let bytes = serde_json::to_vec_pretty(&index).expect("index is JSON");
    fsutil::write_atomic(&index_path, &bytes)?;
    Ok(index_path)
}
