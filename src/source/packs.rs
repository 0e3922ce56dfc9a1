//! Streams a blob straight out of a packfile, so a large file is never whole in memory.
//! libgit2 can stream loose objects but not packed ones, and a CI clone is all packs.
//!
//! Pack index v2 (gitformat-pack(5)): magic, version, 256 cumulative fan-out counts, the sorted
//! object names, their CRCs, 4-byte offsets (high bit: index into the 8-byte offset table), then
//! 8-byte offsets. Lookups binary-search with positioned reads; nothing is loaded up front. Only
//! whole (non-delta) blob entries can be streamed; deltified ones are left to libgit2.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use flate2::read::ZlibDecoder;

const MAGIC: [u8; 4] = [0xff, b't', b'O', b'c'];
const FANOUT_AT: u64 = 8;
const NAMES_AT: u64 = FANOUT_AT + 256 * 4;
const OBJ_BLOB: u8 = 3;

struct PackIndex {
    idx: File,
    pack: PathBuf,
    count: u64,
}

/// The packs of one repository's object store.
pub struct Packs {
    indexes: Vec<PackIndex>,
}

impl Packs {
    /// Opens every `*.idx` (version 2) under `objects/pack`. Unreadable ones are skipped: the
    /// caller falls back to libgit2 for anything not found here.
    pub fn open(objects: &Path) -> Packs {
        let mut indexes = Vec::new();
        if let Ok(entries) = std::fs::read_dir(objects.join("pack")) {
            for path in entries.flatten().map(|e| e.path()) {
                if path.extension().is_some_and(|e| e == "idx") {
                    if let Ok(index) = PackIndex::open(&path) {
                        indexes.push(index);
                    }
                }
            }
        }
        indexes.sort_by(|a, b| a.pack.cmp(&b.pack));
        Packs { indexes }
    }

    /// A reader of exactly `size` bytes of the blob `id`, if it is stored whole in a pack.
    pub fn blob_stream(&self, id: &[u8], size: u64) -> io::Result<Option<BlobStream>> {
        for index in &self.indexes {
            if let Some(offset) = index.find(id)? {
                return index.stream_at(offset, size);
            }
        }
        Ok(None)
    }
}

impl PackIndex {
    fn open(path: &Path) -> io::Result<PackIndex> {
        let idx = File::open(path)?;
        let mut header = [0u8; 8];
        idx.read_exact_at(&mut header, 0)?;
        if header[..4] != MAGIC || header[4..8] != 2u32.to_be_bytes() {
            return Err(io::Error::other("not a version 2 pack index"));
        }
        let count = read_u32(&idx, FANOUT_AT + 255 * 4)? as u64;
        Ok(PackIndex {
            idx,
            pack: path.with_extension("pack"),
            count,
        })
    }

    /// The pack offset of object `id`, by binary search within its fan-out bucket.
    fn find(&self, id: &[u8]) -> io::Result<Option<u64>> {
        let hash_len = id.len() as u64;
        let first = id[0] as u64;
        let mut lo = match first {
            0 => 0,
            _ => read_u32(&self.idx, FANOUT_AT + (first - 1) * 4)? as u64,
        };
        let mut hi = read_u32(&self.idx, FANOUT_AT + first * 4)? as u64;
        let mut name = vec![0u8; id.len()];
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            self.idx
                .read_exact_at(&mut name, NAMES_AT + mid * hash_len)?;
            match name.as_slice().cmp(id) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return self.offset(mid, hash_len).map(Some),
            }
        }
        Ok(None)
    }

    fn offset(&self, position: u64, hash_len: u64) -> io::Result<u64> {
        let small_table = NAMES_AT + self.count * hash_len + self.count * 4;
        let small = read_u32(&self.idx, small_table + position * 4)?;
        if small & 0x8000_0000 == 0 {
            return Ok(small as u64);
        }
        let large_table = small_table + self.count * 4;
        let mut bytes = [0u8; 8];
        let at = large_table + (small & 0x7fff_ffff) as u64 * 8;
        self.idx.read_exact_at(&mut bytes, at)?;
        Ok(u64::from_be_bytes(bytes))
    }

    /// Opens the entry at `offset`; `None` unless it is a whole blob of `size` bytes.
    fn stream_at(&self, offset: u64, size: u64) -> io::Result<Option<BlobStream>> {
        let mut pack = BufReader::with_capacity(1 << 16, File::open(&self.pack)?);
        pack.seek(SeekFrom::Start(offset))?;
        // Entry header: 3 bits of type, then the size in little-endian base-128.
        let mut byte = [0u8; 1];
        pack.read_exact(&mut byte)?;
        let kind = (byte[0] >> 4) & 7;
        let mut entry_size = (byte[0] & 0x0f) as u64;
        let mut shift = 4;
        while byte[0] & 0x80 != 0 {
            pack.read_exact(&mut byte)?;
            entry_size |= ((byte[0] & 0x7f) as u64) << shift;
            shift += 7;
        }
        if kind != OBJ_BLOB || entry_size != size {
            return Ok(None);
        }
        Ok(Some(BlobStream {
            inflate: ZlibDecoder::new(pack),
            remaining: size,
        }))
    }
}

fn read_u32(file: &File, at: u64) -> io::Result<u32> {
    let mut bytes = [0u8; 4];
    file.read_exact_at(&mut bytes, at)?;
    Ok(u32::from_be_bytes(bytes))
}

/// Yields exactly the blob's bytes. At the end it reads on to the end of the zlib stream, so
/// zlib's checksum is verified and a corrupt pack is an error, not a silently wrong archive.
pub struct BlobStream {
    inflate: ZlibDecoder<BufReader<File>>,
    remaining: u64,
}

impl Read for BlobStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let want = buf.len().min(self.remaining as usize);
        let n = self.inflate.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "packed blob is shorter than its header says",
            ));
        }
        self.remaining -= n as u64;
        if self.remaining == 0 {
            let mut extra = [0u8; 1];
            if self.inflate.read(&mut extra)? != 0 {
                return Err(io::Error::other(
                    "packed blob is longer than its header says",
                ));
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::git;

    #[test]
    fn streams_whole_blobs_and_declines_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path();
        git(repo, &["init", "-q"]);
        let big: Vec<u8> = (0..3_000_000u32)
            .flat_map(|n| (n % 251).to_le_bytes())
            .collect();
        std::fs::write(repo.join("big.bin"), &big).unwrap();
        std::fs::write(repo.join("small.txt"), "small\n").unwrap();
        git(repo, &["add", "-A"]);
        git(repo, &["commit", "-qm", "c"]);
        git(repo, &["gc", "-q"]);
        let packs = Packs::open(&repo.join(".git/objects"));

        let id = git(repo, &["rev-parse", "HEAD:big.bin"]);
        let id = git2::Oid::from_str(&id).unwrap();
        let mut stream = packs
            .blob_stream(id.as_bytes(), big.len() as u64)
            .unwrap()
            .unwrap();
        let mut read = Vec::new();
        stream.read_to_end(&mut read).unwrap();
        assert!(read == big);

        // A wrong size or an object that is not a blob is declined, not misread.
        assert!(packs.blob_stream(id.as_bytes(), 5).unwrap().is_none());
        let tree = git2::Oid::from_str(&git(repo, &["rev-parse", "HEAD^{tree}"])).unwrap();
        assert!(packs.blob_stream(tree.as_bytes(), 0).unwrap().is_none());
        let absent = [0x42u8; 20];
        assert!(packs.blob_stream(&absent, 1).unwrap().is_none());
    }
}
