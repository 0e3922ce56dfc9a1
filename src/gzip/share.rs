//! Compress once: one stream hands its deflated file blocks to others that hold the same files
//! (the release tarball to the image layers of its tree).
//!
//! Under [`super::Cuts::Files`] a file block's deflated bytes depend only on its input, its
//! dictionary (nothing for a file's first block, else the file's 32 KiB before it) and the
//! level, so a block another stream made from the same two is exactly the block this stream
//! would make. Two ways to find it:
//!
//! - in order ([`pair`]): a layer made from the tarball's own tar stream, at the same time,
//!   takes the tarball's blocks as they come, after comparing both byte for byte. Memory
//!   stays bounded without a bound here: the publisher is fed from the same tar stream as the
//!   taker, through a bounded channel, so it is never more than that channel ahead.
//! - by content ([`Blocks`]): a layer made later from git (a release line's first release, a
//!   patch's changes) looks each block up by the SHA-256 of its dictionary and input in the
//!   finished tarball's index, and reads the deflated bytes from the tarball file (checked
//!   against what was written there).
//!
//! A block not found, or not the same, is compressed as usual: sharing can only save time,
//! never change bytes.

use std::collections::HashMap;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};

use sha2::Digest as _;

/// One deflated file block and what it was made from: its input, and the dictionary it was
/// primed with (none for a file's first block; the file's 32 KiB before it for the others, which
/// its matches may reach into, so a block is the same only if both are).
pub struct FileBlock {
    pub dictionary: Vec<u8>,
    pub data: Vec<u8>,
    pub deflated: Vec<u8>,
    pub crc: crc32fast::Hasher,
}

/// A block taken from another stream: its deflated bytes and the CRC-32 of its input.
pub struct TakenBlock {
    pub deflated: Vec<u8>,
    pub crc: crc32fast::Hasher,
}

/// What a compressor does with its file blocks.
pub enum Share {
    None,
    Publish(Publisher),
    Reuse(Reuser),
}

/// Where the file blocks of a gzip file are in it, by the SHA-256 of their dictionary and input.
#[derive(Clone, Default)]
pub struct BlockIndex(Arc<Mutex<HashMap<[u8; 32], Located>>>);

#[derive(Clone)]
struct Located {
    offset: u64,
    len: usize,
    /// Of the input, for the gzip trailer.
    crc: crc32fast::Hasher,
    /// Of the deflated bytes: what is read back from the file must be what was written.
    written: u32,
}

/// A finished gzip file and the index of its file blocks.
pub struct Blocks {
    pub index: BlockIndex,
    pub file: PathBuf,
}

impl Blocks {
    /// A taker that looks blocks up here; `None` when the file cannot be opened (then each
    /// block is compressed as usual).
    pub fn reuser(&self, taken: &Taken) -> Option<Reuser> {
        let file = std::fs::File::open(&self.file).ok()?;
        Some(Reuser {
            from: Origin::Lookup {
                index: self.index.clone(),
                file,
            },
            taken: Arc::clone(&taken.0),
        })
    }
}

/// Where a compressor's file blocks go: to a taker in order, or into an index.
pub enum Publisher {
    InOrder(Sender<FileBlock>),
    Index(BlockIndex),
}

impl Publisher {
    /// Hands a block on, written at `offset` of the gzip file; a taker that stopped taking is
    /// no error.
    pub fn publish(&self, block: FileBlock, offset: u64) {
        match self {
            Publisher::InOrder(to) => {
                let _ = to.send(block);
            }
            Publisher::Index(index) => {
                let key = content_key(&block.dictionary, &block.data);
                let located = Located {
                    offset,
                    len: block.deflated.len(),
                    crc: block.crc,
                    written: crc32fast::hash(&block.deflated),
                };
                if let Ok(mut index) = index.0.lock() {
                    index.entry(key).or_insert(located);
                }
            }
        }
    }
}

pub struct Reuser {
    from: Origin,
    taken: Arc<AtomicU64>,
}

/// Where a taker finds the blocks.
enum Origin {
    InOrder(Option<Receiver<FileBlock>>),
    Lookup {
        index: BlockIndex,
        file: std::fs::File,
    },
}

impl Reuser {
    /// The deflated bytes of `data` primed with `dictionary`, when another stream made them
    /// from exactly those.
    pub fn take(&mut self, dictionary: &[u8], data: &[u8]) -> Option<TakenBlock> {
        let block = match &mut self.from {
            Origin::InOrder(from) => next_in_order(from, dictionary, data),
            Origin::Lookup { index, file } => look_up(index, file, content_key(dictionary, data)),
        }?;
        self.taken.fetch_add(data.len() as u64, Ordering::Relaxed);
        Some(block)
    }
}

/// The next published block, if it was made from exactly these. A publisher that has finished
/// (or failed) leaves this stream to compress the rest itself.
fn next_in_order(
    from: &mut Option<Receiver<FileBlock>>,
    dictionary: &[u8],
    data: &[u8],
) -> Option<TakenBlock> {
    let block = match from.as_ref()?.recv() {
        Ok(block) => block,
        Err(_) => {
            *from = None;
            return None;
        }
    };
    let same = block.data == data && block.dictionary == dictionary;
    same.then_some(TakenBlock {
        deflated: block.deflated,
        crc: block.crc,
    })
}

/// What a block is looked up by: the SHA-256 of its dictionary's length, the dictionary and
/// the input.
fn content_key(dictionary: &[u8], data: &[u8]) -> [u8; 32] {
    let mut hash = sha2::Sha256::new();
    hash.update((dictionary.len() as u64).to_le_bytes());
    hash.update(dictionary);
    hash.update(data);
    hash.finalize().into()
}

/// The block with this key, read from the gzip file.
fn look_up(index: &BlockIndex, file: &std::fs::File, key: [u8; 32]) -> Option<TakenBlock> {
    let located = index.0.lock().ok()?.get(&key)?.clone();
    let mut deflated = vec![0u8; located.len];
    file.read_exact_at(&mut deflated, located.offset).ok()?;
    if crc32fast::hash(&deflated) != located.written {
        return None; // the file changed since: compress the block here
    }
    Some(TakenBlock {
        deflated,
        crc: located.crc,
    })
}

/// Counts the input bytes [`Reuser`]s took instead of compressing.
#[derive(Clone, Default)]
pub struct Taken(Arc<AtomicU64>);

impl Taken {
    pub fn bytes(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A publisher, a reuser fed by it in order, and the count of what the reuser takes.
pub fn pair() -> (Publisher, Reuser, Taken) {
    let (tx, rx) = channel();
    let taken = Taken::default();
    let reuser = Reuser {
        from: Origin::InOrder(Some(rx)),
        taken: Arc::clone(&taken.0),
    };
    (Publisher::InOrder(tx), reuser, taken)
}
