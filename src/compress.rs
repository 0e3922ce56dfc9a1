//! The compressors for tarballs and layers, with their output pinned: the same input and
//! [`Packing`] give the same bytes on any machine, whatever its core count.
//!
//! - gzip: [`crate::gzip::ParallelGzip`] (zlib-rs in pinned blocks on every core).
//! - zstd: libzstd in its multi-worker mode, whose output depends on the level but not on the
//!   number of workers (single-threaded mode would differ, so it is never used).

use std::io::{self, Write};

use crate::gzip::share::Share;
use crate::gzip::{default_workers, Cuts, ParallelGzip};

/// Everything that decides a compressed tarball's or layer's bytes besides its content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packing {
    pub compression: Compression,
    pub level: u32,
    /// gzip only.
    pub cuts: Cuts,
}

impl Packing {
    /// Whether a stream packed this way can take file blocks from one packed `other` way.
    pub fn shares_files_with(self, other: Packing) -> bool {
        self == other && self.compression == Compression::Gzip && self.cuts == Cuts::Files
    }
}

pub enum Compressor<W: Write + Send + 'static> {
    Gzip(ParallelGzip<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write + Send + 'static> Compressor<W> {
    pub fn new(packing: Packing, out: W) -> io::Result<Self> {
        Self::sharing(packing, out, Share::None)
    }

    /// gzip can hand its file blocks to another compressor, or take them ([`crate::gzip::share`]).
    pub fn sharing(packing: Packing, out: W, share: Share) -> io::Result<Self> {
        let level = packing.level;
        Ok(match packing.compression {
            Compression::Gzip => Compressor::Gzip(ParallelGzip::sharing(
                out,
                level,
                default_workers(),
                packing.cuts,
                share,
            )),
            Compression::Zstd => {
                let mut encoder = zstd::stream::write::Encoder::new(out, level as i32)?;
                encoder.multithread(default_workers().max(1) as u32)?;
                encoder.include_checksum(true)?;
                Compressor::Zstd(encoder)
            }
        })
    }

    pub fn finish(self) -> io::Result<W> {
        match self {
            Compressor::Gzip(gz) => gz.finish(),
            Compressor::Zstd(zstd) => zstd.finish(),
        }
    }
}

impl<W: Write + Send + 'static> Write for Compressor<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self {
            Compressor::Gzip(gz) => gz.write(data),
            Compressor::Zstd(zstd) => zstd.write(data),
        }
    }

    /// Block and frame boundaries never depend on flushes, so flushing does nothing here.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zstd_output_does_not_depend_on_the_worker_count() {
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let data = &exe[..exe.len().min(6 << 20)];
        let compress = |workers: u32| {
            let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
            encoder.multithread(workers).unwrap();
            encoder.include_checksum(true).unwrap();
            encoder.write_all(data).unwrap();
            encoder.finish().unwrap()
        };
        let one = compress(1);
        assert!(compress(2) == one && compress(4) == one);
        assert_eq!(zstd::stream::decode_all(&one[..]).unwrap(), data);
        let ours = Compressor::new(
            Packing {
                compression: Compression::Zstd,
                level: 3,
                cuts: Cuts::Files,
            },
            Vec::new(),
        )
        .unwrap();
        let mut ours = ours;
        ours.write_all(data).unwrap();
        assert!(ours.finish().unwrap() == one);
    }
}

/// The compression format of tarballs and layers (the spec's `compression`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// gzip (RFC 1952) through zlib-rs, header without name or time: `.tar.gz`.
    #[default]
    Gzip,
    /// zstd (RFC 8878) through libzstd's multi-worker mode: `.tar.zst`. Faster, smaller; image
    /// layers need a runtime that reads zstd (containerd 1.5+, podman).
    Zstd,
}

impl Compression {
    /// The file name ending of a tarball in this format.
    pub fn extension(self) -> &'static str {
        match self {
            Compression::Gzip => ".tar.gz",
            Compression::Zstd => ".tar.zst",
        }
    }
}
