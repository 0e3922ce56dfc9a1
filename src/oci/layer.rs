//! One image layer, built in a single streaming pass: tar entries → SHA-256 of the tar (the
//! `diff_id` in the config) → parallel gzip → SHA-256 of the compressed blob (the descriptor's
//! digest) → a file in the blob store. Nothing is held whole in memory.

use crate::archive::{settle, Counts};
use crate::digest::HashingWriter;
use crate::error::Result;
use crate::gzip::{self, ParallelGzip};

use super::blobs::{BlobStore, BlobWriter};
use super::{Descriptor, Family};

/// Where layer entries are written.
pub type LayerTar = tar::Builder<HashingWriter<ParallelGzip<BlobWriter>>>;

#[derive(Clone, Debug)]
pub struct Layer {
    pub descriptor: Descriptor,
    /// `sha256:…` of the uncompressed tar.
    pub diff_id: String,
    pub counts: Counts,
}

/// Builds a layer from what `fill` writes.
pub fn build(
    store: &BlobStore,
    family: Family,
    level: u32,
    fill: impl FnOnce(&mut LayerTar, &mut Counts) -> Result<()>,
) -> Result<Layer> {
    let blob = store.writer()?;
    let temp_path = blob.temp_path().to_path_buf();
    let gz = ParallelGzip::new(blob, level, gzip::default_workers());
    let mut tar = tar::Builder::new(HashingWriter::new(gz));
    let mut counts = Counts::default();
    let filled = fill(&mut tar, &mut counts);
    let finished = tar.into_inner().and_then(|hashing| {
        let (gz, diff_id, _) = hashing.finish();
        gz.finish().map(|blob| (blob, diff_id))
    });
    let (blob, diff_id) = settle(filled, finished, &temp_path)?;
    let (digest, size) = blob.commit(store)?;
    Ok(Layer {
        descriptor: Descriptor {
            media_type: family.gzip_layer().to_string(),
            digest,
            size,
            platform: None,
            annotations: Default::default(),
        },
        diff_id: format!("sha256:{diff_id}"),
        counts,
    })
}
