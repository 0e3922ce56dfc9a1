//! OCI images without a daemon: layers built straight from the git tree, config and manifest
//! assembled on a pinned base, written to an OCI image layout.

pub mod attached;
pub mod auth;
pub mod base;
pub mod blobs;
pub mod digest;
pub mod image;
pub mod layer;
pub mod layout;
pub mod push;
pub mod reference;
pub mod registry;
pub mod transport;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// The annotation naming a manifest in an OCI layout's `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// A pointer to a blob: what it is, its digest and its size.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: digest::Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// Parses `os/arch[/variant]`, as in `linux/arm64/v8`.
    pub fn parse(text: &str) -> Result<Platform, String> {
        let parts: Vec<&str> = text.split('/').collect();
        match parts.as_slice() {
            [os, arch] | [os, arch, _] if !os.is_empty() && !arch.is_empty() => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: parts.get(2).map(|v| v.to_string()),
            }),
            _ => Err(format!(
                "`{text}` is not a platform: write os/arch or os/arch/variant, e.g. linux/amd64"
            )),
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

/// The two manifest families registries speak. A result keeps its base's family, so its layer
/// media types always match its manifest type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    Oci,
    Docker,
}

impl Family {
    pub fn of_manifest(media_type: &str) -> Family {
        if media_type == DOCKER_MANIFEST || media_type == DOCKER_LIST {
            Family::Docker
        } else {
            Family::Oci
        }
    }

    pub fn manifest(self) -> &'static str {
        match self {
            Family::Oci => OCI_MANIFEST,
            Family::Docker => DOCKER_MANIFEST,
        }
    }

    pub fn index(self) -> &'static str {
        match self {
            Family::Oci => OCI_INDEX,
            Family::Docker => DOCKER_LIST,
        }
    }

    pub fn config(self) -> &'static str {
        match self {
            Family::Oci => OCI_CONFIG,
            Family::Docker => DOCKER_CONFIG,
        }
    }

    /// The layer media type for `compression`; Docker v2 manifests have no zstd layers.
    pub fn layer(self, compression: crate::compress::Compression) -> Option<&'static str> {
        use crate::compress::Compression::*;
        match (self, compression) {
            (Family::Oci, Gzip) => Some(OCI_LAYER_GZIP),
            (Family::Oci, Zstd) => Some(OCI_LAYER_ZSTD),
            (Family::Docker, Gzip) => Some(DOCKER_LAYER_GZIP),
            (Family::Docker, Zstd) => None,
        }
    }
}
