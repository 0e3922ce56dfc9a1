//! A content-addressed blob store on disk: the `blobs/sha256/` folder of an OCI image layout.
//! Blobs are written to a temporary file and renamed to their digest, so a blob file is always
//! complete and always matches its name. A blob is found only by a checked [`Digest`], so no
//! digest from a manifest can name a file outside the store.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::digest::{self, HashingWriter};
use crate::error::{Error, Result};
use crate::fsutil;

use super::digest::Digest;
use super::Descriptor;

pub struct BlobStore {
    /// The layout's `blobs/` folder; a blob is at `ALGORITHM/HEX` under it.
    dir: PathBuf,
}

impl BlobStore {
    /// The store of the layout at `root` (created if missing).
    pub fn open(root: &Path) -> Result<BlobStore> {
        let dir = root.join("blobs");
        fsutil::ensure_folder(&dir.join("sha256"))?;
        Ok(BlobStore { dir })
    }

    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.dir.join(digest.algorithm()).join(digest.hex())
    }

    pub fn contains(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    /// Stores `bytes` (a config or manifest) and describes it.
    pub fn put(&self, media_type: &str, bytes: &[u8]) -> Result<Descriptor> {
        let digest = Digest::sha256(&digest::sha256_hex(bytes));
        if !self.contains(&digest) {
            fsutil::write_atomic(&self.path(&digest), bytes)?;
        }
        Ok(Descriptor {
            media_type: media_type.to_string(),
            digest,
            size: bytes.len() as u64,
            platform: None,
            annotations: Default::default(),
        })
    }

    /// The blob's bytes, checked against its digest (a layout is input too).
    pub fn read(&self, digest: &Digest) -> Result<Vec<u8>> {
        let path = self.path(digest);
        let bytes = std::fs::read(&path).map_err(|e| Error::io("read blob", &path, e))?;
        check_bytes(digest, &bytes)?;
        Ok(bytes)
    }

    /// A writer for a blob whose digest is known only at the end.
    pub fn writer(&self) -> Result<BlobWriter> {
        let temp = crate::fsutil::output_file_in(&self.dir.join("sha256"))
            .map_err(|e| Error::io("write to", &self.dir, e))?;
        let file = temp
            .as_file()
            .try_clone()
            .map_err(|e| Error::io("write", temp.path(), e))?;
        Ok(BlobWriter {
            temp,
            hashing: HashingWriter::new(BufWriter::with_capacity(1 << 20, file)),
        })
    }

    /// Copies a blob from another store (hard link when possible: same bytes, no copy).
    pub fn copy_from(&self, other: &BlobStore, digest: &Digest) -> Result<()> {
        let target = self.path(digest);
        if target.is_file() {
            return Ok(());
        }
        let source = other.path(digest);
        if std::fs::hard_link(&source, &target).is_ok() {
            return Ok(());
        }
        let bytes = other.read(digest)?;
        fsutil::write_atomic(&target, &bytes)
    }
}

pub struct BlobWriter {
    temp: tempfile::NamedTempFile,
    hashing: HashingWriter<BufWriter<std::fs::File>>,
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.hashing.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.hashing.flush()
    }
}

impl BlobWriter {
    pub fn temp_path(&self) -> &Path {
        self.temp.path()
    }

    /// Names the blob by its digest; returns it and the blob's size.
    pub fn commit(self, store: &BlobStore) -> Result<(Digest, u64)> {
        let (mut buffered, hex, size) = self.hashing.finish();
        buffered
            .flush()
            .map_err(|e| Error::io("write", self.temp.path(), e))?;
        let digest = Digest::sha256(&hex);
        fsutil::persist(self.temp, &store.path(&digest))?;
        Ok((digest, size))
    }
}

/// Fails when `bytes` do not hash to `digest`: a document or blob someone changed.
pub fn check_bytes(digest: &Digest, bytes: &[u8]) -> Result<()> {
    use sha2::Digest as _;
    let actual = match digest.algorithm() {
        "sha512" => digest::hex(&sha2::Sha512::digest(bytes)),
        _ => digest::sha256_hex(bytes),
    };
    if actual != digest.hex() {
        return Err(Error::failed(format!(
            "content named {digest} hashes to {}:{actual}: it was changed or corrupted, so it is not used",
            digest.algorithm()
        )));
    }
    Ok(())
}
