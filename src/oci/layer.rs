//! One image layer, built in a single streaming pass: tar entries → SHA-256 of the tar (the
//! `diff_id` in the config) → gzip or zstd on every core → SHA-256 of the compressed blob (the descriptor's
//! digest) → a file in the blob store. Nothing is held whole in memory.

use crate::archive::{settle, Counts};
use crate::compress::{Compression, Compressor, Packing};
use crate::digest::HashingWriter;
use crate::error::{Error, Result};
use crate::gzip::share::Share;
use crate::oci::digest::Digest;

use super::blobs::{BlobStore, BlobWriter};
use super::{Descriptor, Family};

/// Where layer entries are written.
pub type LayerTar = tar::Builder<HashingWriter<Compressor<BlobWriter>>>;

/// A layer blob in the store. Its bytes do not depend on the image it goes into; only its
/// media type does (OCI or Docker family), which [`Layer::descriptor`] fills in.
#[derive(Clone, Debug)]
pub struct Layer {
    pub digest: Digest,
    pub size: u64,
    pub compression: Compression,
    /// `sha256:…` of the uncompressed tar.
    pub diff_id: String,
    pub counts: Counts,
}

impl Layer {
    /// The descriptor in a manifest of `family`; Docker v2 manifests have no zstd layers.
    pub fn descriptor(&self, family: Family) -> Result<Descriptor> {
        let media_type = family.layer(self.compression).ok_or_else(|| {
            Error::input("zstd layers need an OCI manifest, and the base is a Docker v2 image")
                .with_hint("Use image.compression: gzip, or an OCI base")
        })?;
        Ok(Descriptor {
            media_type: media_type.to_string(),
            digest: self.digest.clone(),
            size: self.size,
            platform: None,
            annotations: Default::default(),
        })
    }
}

/// Builds a layer from what `fill` writes.
pub fn build(
    store: &BlobStore,
    packing: Packing,
    fill: impl FnOnce(&mut LayerTar, &mut Counts) -> Result<()>,
) -> Result<Layer> {
    build_sharing(store, packing, Share::None, fill)
}

/// Builds a layer from what `fill` writes, taking file blocks another compressor made of the
/// same files (the bytes are the same as [`build`]'s).
pub fn build_sharing(
    store: &BlobStore,
    packing: Packing,
    share: Share,
    fill: impl FnOnce(&mut LayerTar, &mut Counts) -> Result<()>,
) -> Result<Layer> {
    let blob = store.writer()?;
    let temp_path = blob.temp_path().to_path_buf();
    let compressor = Compressor::sharing(packing, blob, share)
        .map_err(|e| Error::failed(format!("could not start the compressor: {e}")))?;
    let mut tar = tar::Builder::new(HashingWriter::new(compressor));
    let mut counts = Counts::default();
    let filled = fill(&mut tar, &mut counts);
    let finished = tar.into_inner().and_then(|hashing| {
        let (gz, diff_id, _) = hashing.finish();
        gz.finish().map(|blob| (blob, diff_id))
    });
    let (blob, diff_id) = settle(filled, finished, &temp_path)?;
    let (digest, size) = blob.commit(store)?;
    Ok(Layer {
        digest,
        size,
        compression: packing.compression,
        diff_id: format!("sha256:{diff_id}"),
        counts,
    })
}
