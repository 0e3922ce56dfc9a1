//! OCI image layouts on disk: reading a base image from one, and writing the result into one
//! (`oci-layout`, `index.json`, `blobs/sha256/`), readable by skopeo, umoci, podman and crane.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::fsutil;

use super::blobs::BlobStore;
use super::image::BaseImage;
use super::{Descriptor, Family, Platform, DOCKER_LIST, OCI_INDEX, REF_NAME};

/// A base image found in a layout: one [`BaseImage`] per selected platform.
pub struct LayoutBase {
    pub store: BlobStore,
    pub images: Vec<BaseImage>,
    /// Digest of the manifest or index that was selected: what the build is pinned to.
    pub digest: String,
}

/// Opens `root`, selects the image named `tag` (or the only one), and the `platforms` asked for
/// (all of a multi-platform index when none are).
pub fn open_base(root: &Path, tag: Option<&str>, platforms: &[Platform]) -> Result<LayoutBase> {
    let place = || format!("base oci-layout:{}", root.display());
    let index_path = root.join("index.json");
    let index: Value = read_json(&index_path)
        .map_err(|e| e.with_hint(format!("Is {} an OCI image layout?", root.display())))?;
    let store = BlobStore::open(root)?;
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
            "{}: no image {}; the layout has: {}",
            place(),
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
        .map_err(|e| Error::input(format!("{}: bad descriptor in index.json: {e}", place())))?;

    let images = if chosen.media_type == OCI_INDEX || chosen.media_type == DOCKER_LIST {
        let list: Value = read_json(&store.path(&chosen.digest))?;
        let entries: Vec<Descriptor> = serde_json::from_value(list["manifests"].clone())
            .map_err(|e| Error::input(format!("{}: bad image index: {e}", place())))?;
        let offered: Vec<&Descriptor> = entries
            .iter()
            .filter(|d| d.platform.as_ref().is_some_and(|p| p.os != "unknown"))
            .collect();
        let selected: Vec<&Descriptor> = if platforms.is_empty() {
            offered.clone()
        } else {
            platforms
                .iter()
                .map(|want| {
                    offered
                        .iter()
                        .find(|d| platform_matches(d.platform.as_ref(), want))
                        .copied()
                        .ok_or_else(|| missing_platform(&place(), want, &offered))
                })
                .collect::<Result<_>>()?
        };
        selected
            .into_iter()
            .map(|d| load_image(&store, d, &place()))
            .collect::<Result<Vec<_>>>()?
    } else {
        let image = load_image(&store, &chosen, &place())?;
        if let Some(want) = platforms
            .iter()
            .find(|p| !platform_matches(Some(&image.platform), p))
        {
            return Err(Error::input(format!(
                "{} is for {} only, not {want}",
                place(),
                image.platform
            ))
            .with_hint(
                "Use a multi-platform base, or set image.platforms to what the base offers",
            ));
        }
        vec![image]
    };
    Ok(LayoutBase {
        store,
        images,
        digest: chosen.digest,
    })
}

fn platform_matches(have: Option<&Platform>, want: &Platform) -> bool {
    have.is_some_and(|have| {
        have.os == want.os
            && have.architecture == want.architecture
            && (want.variant.is_none() || have.variant == want.variant)
    })
}

fn missing_platform(place: &str, want: &Platform, offered: &[&Descriptor]) -> Error {
    let offered: Vec<String> = offered
        .iter()
        .filter_map(|d| d.platform.as_ref().map(Platform::to_string))
        .collect();
    Error::input(format!(
        "{place} has no {want} image; it offers {}",
        offered.join(", ")
    ))
}

fn load_image(store: &BlobStore, descriptor: &Descriptor, place: &str) -> Result<BaseImage> {
    let manifest: Value = read_json(&store.path(&descriptor.digest))?;
    let media_type = manifest["mediaType"]
        .as_str()
        .unwrap_or(&descriptor.media_type);
    let config_digest = manifest["config"]["digest"].as_str().ok_or_else(|| {
        Error::input(format!(
            "{place}: manifest {} has no config",
            descriptor.digest
        ))
    })?;
    let config: Value = read_json(&store.path(config_digest))?;
    let platform = Platform {
        architecture: config["architecture"]
            .as_str()
            .unwrap_or("amd64")
            .to_string(),
        os: config["os"].as_str().unwrap_or("linux").to_string(),
        variant: config["variant"].as_str().map(str::to_string),
    };
    Ok(BaseImage {
        family: Family::of_manifest(media_type),
        platform,
        config,
        layers: manifest["layers"].as_array().cloned().unwrap_or_default(),
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
