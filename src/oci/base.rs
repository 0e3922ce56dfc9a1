//! Choosing the base images to build on, wherever they live: from the chosen manifest or index,
//! the manifests of the requested platforms (all of an index when none are requested), each
//! with its config. Layouts and registries differ only in how they hand out documents.

use serde_json::Value;

use crate::error::{Error, Result};

use super::digest::Digest;
use super::image::BaseImage;
use super::{Descriptor, Family, Platform, DOCKER_LIST, OCI_INDEX};

/// Where base documents come from.
pub trait Documents {
    /// A manifest or index, by digest, as JSON.
    fn manifest(&mut self, digest: &Digest) -> Result<Value>;
    /// A config blob, by digest, as JSON.
    fn config(&mut self, digest: &Digest) -> Result<Value>;
}

/// The base images for `platforms` under `chosen`. `place` names the base in errors.
pub fn select(
    documents: &mut dyn Documents,
    chosen: &Descriptor,
    platforms: &[Platform],
    place: &str,
) -> Result<Vec<BaseImage>> {
    if chosen.media_type == OCI_INDEX || chosen.media_type == DOCKER_LIST {
        let list = documents.manifest(&chosen.digest)?;
        let entries: Vec<Descriptor> = serde_json::from_value(list["manifests"].clone())
            .map_err(|e| Error::input(format!("{place}: bad image index: {e}")))?;
        // Attestation manifests carry the platform unknown/unknown: never a base.
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
                        .find(|d| matches(d.platform.as_ref(), want))
                        .copied()
                        .ok_or_else(|| missing(place, want, &offered))
                })
                .collect::<Result<_>>()?
        };
        selected
            .into_iter()
            .map(|d| load(documents, d, place))
            .collect()
    } else {
        let image = load(documents, chosen, place)?;
        if let Some(want) = platforms
            .iter()
            .find(|p| !matches(Some(&image.platform), p))
        {
            return Err(Error::input(format!(
                "{place} is for {} only, not {want}",
                image.platform
            ))
            .with_hint(
                "Use a multi-platform base, or set image.platforms to what the base offers",
            ));
        }
        Ok(vec![image])
    }
}

fn matches(have: Option<&Platform>, want: &Platform) -> bool {
    have.is_some_and(|have| {
        have.os == want.os
            && have.architecture == want.architecture
            && (want.variant.is_none() || have.variant == want.variant)
    })
}

fn missing(place: &str, want: &Platform, offered: &[&Descriptor]) -> Error {
    let offered: Vec<String> = offered
        .iter()
        .filter_map(|d| d.platform.as_ref().map(Platform::to_string))
        .collect();
    Error::input(format!(
        "{place} has no {want} image; it offers {}",
        offered.join(", ")
    ))
}

fn load(documents: &mut dyn Documents, descriptor: &Descriptor, place: &str) -> Result<BaseImage> {
    let manifest = documents.manifest(&descriptor.digest)?;
    let media_type = manifest["mediaType"]
        .as_str()
        .unwrap_or(&descriptor.media_type)
        .to_string();
    let config_digest = manifest["config"]["digest"].as_str().ok_or_else(|| {
        Error::input(format!(
            "{place}: manifest {} has no config",
            descriptor.digest
        ))
    })?;
    let config_digest = Digest::parse(config_digest)
        .map_err(|why| Error::input(format!("{place}: manifest {}: {why}", descriptor.digest)))?;
    let config = documents.config(&config_digest)?;
    let platform = Platform {
        architecture: config["architecture"]
            .as_str()
            .unwrap_or("amd64")
            .to_string(),
        os: config["os"].as_str().unwrap_or("linux").to_string(),
        variant: config["variant"].as_str().map(str::to_string),
    };
    Ok(BaseImage {
        family: Family::of_manifest(&media_type),
        platform,
        config,
        layers: manifest["layers"].as_array().cloned().unwrap_or_default(),
    })
}
