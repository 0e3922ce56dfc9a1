//! Compress once: one stream hands its deflated file blocks to another that holds the same files
//! in the same order (the release tarball to the image layer of its tree).
//!
//! Under [`super::Cuts::Files`] a file block's deflated bytes depend on its input and the level
//! alone, so a block the other stream made from the same input is exactly the block this stream
//! would make. The taker checks that the input is the same, byte for byte, before it takes a
//! block; on any difference it compresses the block itself, so sharing can only save time,
//! never change bytes.
//!
//! Memory stays bounded without a bound here: the publisher is fed from the same tar stream as
//! the taker, through a bounded channel, so it is never more than that channel ahead.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;

/// One deflated file block and the input it was made from.
pub struct FileBlock {
    pub data: Vec<u8>,
    pub deflated: Vec<u8>,
    pub crc: crc32fast::Hasher,
}

/// What a compressor does with its file blocks.
pub enum Share {
    None,
    Publish(Publisher),
    Reuse(Reuser),
}

pub struct Publisher(Sender<FileBlock>);

impl Publisher {
    /// Hands a block on; a taker that stopped taking is no error.
    pub fn publish(&self, block: FileBlock) {
        let _ = self.0.send(block);
    }
}

pub struct Reuser {
    from: Option<Receiver<FileBlock>>,
    taken: Arc<AtomicU64>,
}

impl Reuser {
    /// The next published block, if it was made from exactly `data`. A publisher that has
    /// finished (or failed) leaves this stream to compress the rest itself.
    pub fn take(&mut self, data: &[u8]) -> Option<FileBlock> {
        let block = match self.from.as_ref()?.recv() {
            Ok(block) => block,
            Err(_) => {
                self.from = None;
                return None;
            }
        };
        if block.data != data {
            return None;
        }
        self.taken.fetch_add(data.len() as u64, Ordering::Relaxed);
        Some(block)
    }
}

/// Counts the input bytes a [`Reuser`] took instead of compressing.
#[derive(Clone, Default)]
pub struct Taken(Arc<AtomicU64>);

impl Taken {
    pub fn bytes(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A publisher, a reuser fed by it, and the count of what the reuser takes.
pub fn pair() -> (Publisher, Reuser, Taken) {
    let (tx, rx) = channel();
    let taken = Taken::default();
    let reuser = Reuser {
        from: Some(rx),
        taken: Arc::clone(&taken.0),
    };
    (Publisher(tx), reuser, taken)
}
