//! Parallel gzip whose bytes do not depend on the number of threads.
//!
//! The input is cut into blocks of at most [`BLOCK`] bytes. Each block is deflated on its own,
//! primed with the 32 KiB of input before it as dictionary (so matches still reach back across
//! the cut), and ends with a sync flush that byte-aligns it; the last block ends the stream. The
//! concatenation is one valid deflate stream (the scheme pigz uses), and because the cut points,
//! dictionaries and level are fixed, the output is the same for 1 worker or 16.
//!
//! Where the cuts are is part of the output format ([`Cuts`]):
//! - [`Cuts::Fixed`]: every [`BLOCK`] bytes of the stream (tagpilot 0.1's tarballs and layers).
//! - [`Cuts::Files`]: the input is a tar stream, and each regular file's content of at least
//!   [`tar_regions::MIN_FILE`] bytes starts a block with no dictionary, in blocks counted from
//!   its own start. Its deflated bytes then depend on the content and level alone, so a second
//!   stream holding the same file (the image layer of the release tarball's tree) can take them
//!   as they are instead of compressing the file again: see [`share`].
//!
//! Threads: the caller's `write` only fills blocks; workers deflate them; one writer thread puts
//! results back in order, writes them out and computes the CRC-32 trailer. At most a few blocks
//! are in memory at once.

pub mod share;
mod tar_regions;

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

use flate2::{Compress, Compression, FlushCompress, Status};

use share::{FileBlock, Share, TakenBlock};
use tar_regions::{Region, TarRegions};

/// Uncompressed bytes per block at most. Part of the output format: changing it changes digests.
pub const BLOCK: usize = 256 * 1024;
/// deflate's window: the most a match can reach back.
const WINDOW: usize = 32 * 1024;
/// gzip header: magic, deflate, no flags, mtime 0, no extra flags, OS "unknown".
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// Where gzip's blocks are cut (the spec's `gzip_blocks`): part of the output format.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    serde::Deserialize,
    serde::Serialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Cuts {
    /// At the start and end of each file of 16 KiB or more, and every 256 KiB in between:
    /// the image layer reuses the tarball's compressed files instead of compressing them again.
    #[default]
    Files,
    /// Every 256 KiB of the tar stream: the bytes tagpilot 0.1 made.
    Fixed,
}

/// Said where a re-run meets a released file or image with other bytes: the likely cause when
/// tagpilot 0.1 made it.
pub const FIXED_CUTS_HINT: &str = "If tagpilot 0.1 made the released one, set `gzip_blocks: fixed` under `tarball` and `image`: it cut gzip blocks every 256 KiB, and that rebuilds its bytes";

/// What the block being filled is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Other,
    /// The first block of a file's content: no dictionary.
    FileStart,
    /// A later block of a file's content.
    FileRest,
}

struct Job {
    index: u64,
    dictionary: Vec<u8>,
    data: Vec<u8>,
    last: bool,
    /// A file block another stream will take: its input comes back with the result.
    publish: bool,
}

struct Deflated {
    index: u64,
    bytes: io::Result<Vec<u8>>,
    crc: crc32fast::Hasher,
    input_len: u64,
    /// The dictionary and input, for a block to publish.
    published: Option<(Vec<u8>, Vec<u8>)>,
}

pub struct ParallelGzip<W: Write + Send + 'static> {
    /// `None` for [`Cuts::Fixed`].
    regions: Option<TarRegions>,
    block: Vec<u8>,
    kind: Kind,
    /// The last [`WINDOW`] bytes before the block being filled.
    history: Vec<u8>,
    next_index: u64,
    publishing: bool,
    reuse: Option<share::Reuser>,
    jobs: Option<SyncSender<Job>>,
    /// Where blocks taken from another stream go, straight to the writer.
    taken: Option<Sender<Deflated>>,
    workers: Vec<JoinHandle<()>>,
    writer: Option<JoinHandle<io::Result<W>>>,
}

/// How many deflate workers to run: one per core.
pub fn default_workers() -> usize {
    thread::available_parallelism().map_or(1, |n| n.get())
}

impl<W: Write + Send + 'static> ParallelGzip<W> {
    pub fn new(out: W, level: u32, workers: usize, cuts: Cuts) -> Self {
        Self::sharing(out, level, workers, cuts, Share::None)
    }

    /// With [`Cuts::Files`], `share` hands this stream's file blocks to another, or takes that
    /// other's; the bytes are the same either way.
    pub fn sharing(out: W, level: u32, workers: usize, cuts: Cuts, share: Share) -> Self {
        let workers = workers.max(1);
        let (jobs_tx, jobs_rx) = sync_channel::<Job>(workers * 2);
        let jobs_rx = Arc::new(Mutex::new(jobs_rx));
        let (done_tx, done_rx) = channel::<Deflated>();
        let handles = (0..workers)
            .map(|_| {
                let jobs = Arc::clone(&jobs_rx);
                let done = done_tx.clone();
                thread::spawn(move || deflate_worker(level, &jobs, &done))
            })
            .collect();
        let files = cuts == Cuts::Files;
        let (publisher, reuse) = match share {
            Share::Publish(publisher) if files => (Some(publisher), None),
            Share::Reuse(reuser) if files => (None, Some(reuser)),
            _ => (None, None),
        };
        ParallelGzip {
            regions: files.then(TarRegions::default),
            block: Vec::with_capacity(BLOCK),
            kind: Kind::Other,
            history: Vec::with_capacity(WINDOW),
            next_index: 0,
            publishing: publisher.is_some(),
            reuse,
            jobs: Some(jobs_tx),
            taken: Some(done_tx),
            workers: handles,
            writer: Some(thread::spawn(move || {
                write_in_order(out, done_rx, publisher)
            })),
        }
    }

    /// Compresses what is left, writes the trailer and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        // A stream cut off inside a file: that file block ends with a sync flush like any
        // other, and the stream's end is a block of its own.
        let sent = match self.kind {
            Kind::FileStart | Kind::FileRest if !self.block.is_empty() => self.dispatch(false),
            _ => Ok(()),
        }
        .and_then(|()| self.dispatch(true));
        self.jobs = None; // closes the queue: workers drain it and stop
        self.taken = None;
        for worker in self.workers.drain(..) {
            worker
                .join()
                .map_err(|_| io::Error::other("a gzip worker panicked"))?;
        }
        let out = self
            .writer
            .take()
            .expect("finish runs once")
            .join()
            .map_err(|_| io::Error::other("the gzip writer panicked"))?;
        // The writer's own error (disk full) explains a failed dispatch, so it comes first.
        let out = out?;
        sent?;
        Ok(out)
    }

    fn dispatch(&mut self, last: bool) -> io::Result<()> {
        let data = std::mem::replace(&mut self.block, Vec::with_capacity(BLOCK));
        let kind = std::mem::replace(&mut self.kind, Kind::Other);
        let dictionary = match kind {
            Kind::FileStart => Vec::new(),
            Kind::Other | Kind::FileRest => self.history.clone(),
        };
        remember(&mut self.history, &data);
        let index = self.next_index;
        self.next_index += 1;
        let file = kind != Kind::Other;
        if file {
            let reuse = self.reuse.as_mut();
            if let Some(block) = reuse.and_then(|r| r.take(&dictionary, &data)) {
                return self.send_taken(index, data.len(), block);
            }
        }
        let job = Job {
            index,
            dictionary,
            data,
            last,
            publish: file && self.publishing,
        };
        let jobs = self.jobs.as_ref().expect("not finished");
        jobs.send(job).map_err(|_| writer_stopped())
    }

    fn send_taken(&mut self, index: u64, input_len: usize, block: TakenBlock) -> io::Result<()> {
        let taken = self.taken.as_ref().expect("not finished");
        taken
            .send(Deflated {
                index,
                bytes: Ok(block.deflated),
                crc: block.crc,
                input_len: input_len as u64,
                published: None,
            })
            .map_err(|_| writer_stopped())
    }

    /// Fills the block with up to `limit` bytes of `data`; cuts it when full, and as soon as a
    /// file's content ends (so a file's last block is on its way before the bytes after it
    /// are even written).
    fn fill(&mut self, data: &[u8], limit: u64) -> io::Result<usize> {
        let n = (BLOCK - self.block.len())
            .min(data.len())
            .min(usize::try_from(limit).unwrap_or(usize::MAX));
        self.block.extend_from_slice(&data[..n]);
        let mut file_ended = false;
        if let Some(regions) = &mut self.regions {
            regions.advance(&data[..n]);
            file_ended = self.kind != Kind::Other && regions.peek().0 != Region::File;
        }
        if self.block.len() == BLOCK || file_ended {
            let kind = self.kind;
            self.dispatch(false)?;
            if kind != Kind::Other && !file_ended {
                self.kind = Kind::FileRest;
            }
        }
        Ok(n)
    }
}

fn writer_stopped() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the gzip writer stopped")
}

/// Keeps the last [`WINDOW`] bytes of `history` followed by `data`.
fn remember(history: &mut Vec<u8>, data: &[u8]) {
    if data.len() >= WINDOW {
        history.clear();
        history.extend_from_slice(&data[data.len() - WINDOW..]);
    } else {
        history.extend_from_slice(data);
        let excess = history.len().saturating_sub(WINDOW);
        history.drain(..excess);
    }
}

impl<W: Write + Send + 'static> Write for ParallelGzip<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let Some(regions) = &self.regions else {
            return self.fill(data, u64::MAX);
        };
        let (region, run) = regions.peek();
        if region == Region::File && self.kind == Kind::Other {
            if !self.block.is_empty() {
                self.dispatch(false)?;
            }
            self.kind = Kind::FileStart;
        }
        self.fill(data, run)
    }

    /// Blocks are cut at fixed places, never on flush: flushing would change the bytes.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn deflate_worker(level: u32, jobs: &Mutex<Receiver<Job>>, done: &Sender<Deflated>) {
    loop {
        let job = match jobs.lock() {
            Ok(queue) => match queue.recv() {
                Ok(job) => job,
                Err(_) => return, // queue closed: all work handed out
            },
            Err(_) => return,
        };
        let mut crc = crc32fast::Hasher::new();
        crc.update(&job.data);
        let bytes = deflate_block(level, &job);
        let result = Deflated {
            index: job.index,
            bytes,
            crc,
            input_len: job.data.len() as u64,
            published: job.publish.then_some((job.dictionary, job.data)),
        };
        if done.send(result).is_err() {
            return; // the writer stopped; its error is reported by finish
        }
    }
}

/// Deflates one block with a fresh compressor. Reusing one per worker (`reset`) is not enough:
/// zlib-rs then produced different bytes depending on which block the worker did before, which
/// made the output depend on thread scheduling.
fn deflate_block(level: u32, job: &Job) -> io::Result<Vec<u8>> {
    let mut compress = Compress::new(Compression::new(level), false);
    if !job.dictionary.is_empty() {
        compress
            .set_dictionary(&job.dictionary)
            .map_err(io::Error::other)?;
    }
    let flush = if job.last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    // Room for incompressible data plus block overhead, so one call usually suffices.
    let mut out = Vec::with_capacity(job.data.len() + job.data.len() / 8 + 1024);
    loop {
        let consumed = compress.total_in() as usize;
        let status = compress
            .compress_vec(&job.data[consumed..], &mut out, flush)
            .map_err(io::Error::other)?;
        let all_in = compress.total_in() as usize == job.data.len();
        let complete = match flush {
            FlushCompress::Finish => status == Status::StreamEnd,
            // A sync flush is complete once all input is in and output space was left over.
            _ => all_in && out.len() < out.capacity(),
        };
        if complete {
            return Ok(out);
        }
        out.reserve(out.capacity().max(4096));
    }
}

fn write_in_order<W: Write>(
    mut out: W,
    done: Receiver<Deflated>,
    publisher: Option<share::Publisher>,
) -> io::Result<W> {
    out.write_all(&HEADER)?;
    let mut crc = crc32fast::Hasher::new();
    let mut waiting: BTreeMap<u64, Deflated> = BTreeMap::new();
    let mut next = 0u64;
    let mut length = 0u64;
    let mut offset = HEADER.len() as u64;
    for block in done {
        waiting.insert(block.index, block);
        while let Some(block) = waiting.remove(&next) {
            let bytes = block.bytes?;
            out.write_all(&bytes)?;
            crc.combine(&block.crc);
            length += block.input_len;
            next += 1;
            let at = offset;
            offset += bytes.len() as u64;
            if let (Some(publisher), Some((dictionary, data))) = (&publisher, block.published) {
                let block = FileBlock {
                    dictionary,
                    data,
                    deflated: bytes,
                    crc: block.crc,
                };
                publisher.publish(block, at);
            }
        }
    }
    if !waiting.is_empty() {
        return Err(io::Error::other("a gzip block went missing"));
    }
    out.write_all(&crc.finalize().to_le_bytes())?;
    // ISIZE is the input length modulo 2^32 (RFC 1952).
    out.write_all(&(length as u32).to_le_bytes())?;
    out.flush()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn sample(len: usize) -> Vec<u8> {
        let words = ["alpha ", "beta ", "gamma ", "delta\n", "epsilon ", "zeta "];
        let mut state = 7u64;
        let mut data = Vec::with_capacity(len);
        while data.len() < len {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let word = words[(state >> 33) as usize % words.len()];
            data.extend_from_slice(word.as_bytes());
            if state % 97 == 0 {
                data.extend_from_slice(&state.to_le_bytes()); // some noise
            }
        }
        data.truncate(len);
        data
    }

    fn gzip(data: &[u8], level: u32, workers: usize, piece: usize) -> Vec<u8> {
        gzip_cut(data, Cuts::Fixed, (level, workers, piece), Share::None)
    }

    fn gzip_cut(data: &[u8], cuts: Cuts, how: (u32, usize, usize), share: Share) -> Vec<u8> {
        let (level, workers, piece) = how;
        let mut gz = ParallelGzip::sharing(Vec::new(), level, workers, cuts, share);
        for chunk in data.chunks(piece.max(1)) {
            gz.write_all(chunk).unwrap();
        }
        gz.finish().unwrap()
    }

    /// A tar stream like a release tree's: files small and large (text and noise), a long path,
    /// a symlink and a folder, under `prefix` and owned by `uid`.
    fn tree_tar(prefix: &str, uid: u64, files: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut tar = tar::Builder::new(Vec::new());
        let mut folder = tar::Header::new_gnu();
        folder.set_entry_type(tar::EntryType::Directory);
        folder.set_mode(0o755);
        folder.set_size(0);
        folder.set_uid(uid);
        tar.append_data(&mut folder, format!("{prefix}lib/"), io::empty())
            .unwrap();
        for (name, content) in files {
            let mut header = tar::Header::new_gnu();
            header.set_mode(0o644);
            header.set_uid(uid);
            header.set_size(content.len() as u64);
            tar.append_data(&mut header, format!("{prefix}{name}"), &content[..])
                .unwrap();
        }
        let mut link = tar::Header::new_gnu();
        link.set_entry_type(tar::EntryType::Symlink);
        link.set_size(0);
        tar.append_link(&mut link, format!("{prefix}latest"), "lib")
            .unwrap();
        tar.into_inner().unwrap()
    }

    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut state = seed;
        (0..len)
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                (state >> 56) as u8
            })
            .collect()
    }

    fn sample_files() -> Vec<(&'static str, Vec<u8>)> {
        let long = "lib/a-folder-name-long-enough-that-the-path-needs-a-gnu-long-name-entry/and-a-file-in-it.py";
        vec![
            ("lib/small.py", sample(900)),
            (
                "lib/exactly-the-minimum.py",
                sample(tar_regions::MIN_FILE as usize),
            ),
            (
                "lib/just-below.py",
                sample(tar_regions::MIN_FILE as usize - 1),
            ),
            (long, sample(40_000)),
            ("lib/module.py", sample(3 * BLOCK + 777)),
            ("lib/asset.bin", noise(BLOCK + 5, 3)),
            ("lib/exact-block.py", sample(BLOCK)),
            ("lib/tail.py", sample(70_000)),
        ]
    }

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    /// `gzip_blocks: fixed` must keep giving the bytes tagpilot 0.1 gave (sha256 of its output,
    /// recorded before file cuts existed).
    #[test]
    fn fixed_cuts_give_tagpilot_0_1s_bytes() {
        let data = sample(3 * BLOCK + 12_345);
        let expected = [
            (
                0,
                "ac73670af3abed54ac6fb4695131f4099be9fbe39d6076c5d0264a6bbdae9d83",
            ),
            (
                BLOCK,
                "2913dbe80547ff728c0068ca1e3c7f31dc5131b0e07e7e9a760cf5b47aa9ee07",
            ),
            (
                data.len(),
                "85cd654e6d2834f9be99fdae6a0d7cda7e8a1406e848cd356d86a9c411d81cfa",
            ),
        ];
        for (len, sha256) in expected {
            let bytes = gzip(&data[..len], 6, 2, 10_000);
            assert_eq!(crate::digest::sha256_hex(&bytes), sha256, "{len} bytes");
        }
    }

    #[test]
    fn file_cuts_give_the_same_bytes_for_any_worker_count_and_write_pattern() {
        let tar = tree_tar("app-1.0/", 0, &sample_files());
        let one = gzip_cut(&tar, Cuts::Files, (6, 1, 8192), Share::None);
        for (workers, piece) in [(2, 1), (3, 511), (4, 513), (5, BLOCK), (16, 3 * BLOCK)] {
            let bytes = gzip_cut(&tar, Cuts::Files, (6, workers, piece), Share::None);
            assert!(
                bytes == one,
                "{workers} workers, {piece}-byte writes differ"
            );
        }
        assert_eq!(gunzip(&one), tar);
        assert!(
            one != gzip(&tar, 6, 2, 8192),
            "the cuts are not the fixed ones"
        );
    }

    /// A large file deflates the same wherever it sits, so its compressed bytes appear as they
    /// are in both streams.
    #[test]
    fn a_large_file_deflates_the_same_wherever_it_sits() {
        let content = sample(100_000);
        let alone = gzip_cut(
            &tree_tar("", 0, &[("x", content.clone())]),
            Cuts::Files,
            (6, 2, 4096),
            Share::None,
        );
        let elsewhere = gzip_cut(
            &tree_tar(
                "deeper/prefix/",
                1000,
                &[("a", sample(5000)), ("y", content)],
            ),
            Cuts::Files,
            (6, 2, 4096),
            Share::None,
        );
        // The deflated content: what the two streams share, at least 10 KiB of it in one run.
        let run = (0..alone.len().saturating_sub(10_240))
            .step_by(512)
            .any(|at| {
                let needle = &alone[at..at + 10_240];
                elsewhere.windows(needle.len()).any(|w| w == needle)
            });
        assert!(run, "no shared run of compressed bytes");
    }

    /// The layer takes the tarball's file blocks: the same bytes as compressing them itself,
    /// with every large file's content taken; a file that differs is compressed, not taken.
    #[test]
    fn a_taker_gives_the_same_bytes_as_compressing_itself() {
        let files = sample_files();
        let tarball = tree_tar("app-1.0/", 0, &files);
        let large: usize = files
            .iter()
            .map(|(_, c)| c.len())
            .filter(|n| *n as u64 >= tar_regions::MIN_FILE)
            .sum();
        let mut changed = files.clone();
        changed[4].1[BLOCK + 10] ^= 1; // the second block of lib/module.py
                                       // The end of the second block: the third is the same input, but its dictionary (the
                                       // 32 KiB before it) is not, so it is not the same block either.
        let mut near_the_end = files.clone();
        near_the_end[4].1[2 * BLOCK - 5] ^= 1;
        for (layer_files, expect_taken) in [
            (&files, large),
            (&changed, large - BLOCK),
            (&near_the_end, large - 2 * BLOCK),
        ] {
            let layer = tree_tar("opt/app/", 1000, layer_files);
            let (publisher, reuser, taken) = share::pair();
            let published = gzip_cut(
                &tarball,
                Cuts::Files,
                (6, 2, 65536),
                Share::Publish(publisher),
            );
            let shared = gzip_cut(&layer, Cuts::Files, (6, 2, 4096), Share::Reuse(reuser));
            assert!(published == gzip_cut(&tarball, Cuts::Files, (6, 2, 1000), Share::None));
            assert!(shared == gzip_cut(&layer, Cuts::Files, (6, 2, 1000), Share::None));
            assert_eq!(taken.bytes(), expect_taken as u64);
            assert_eq!(gunzip(&shared), layer);
        }
    }

    /// A layer made later from another tree (a release line's first release: other files
    /// changed, one gone, in another order) looks the tarball's blocks up by content in the
    /// finished file: the same bytes as compressing alone, and every large file both hold is
    /// taken.
    #[test]
    fn a_later_stream_takes_blocks_by_content_from_the_finished_file() {
        let files = sample_files();
        let index = share::BlockIndex::default();
        let tarball = gzip_cut(
            &tree_tar("app-1.0.1/", 0, &files),
            Cuts::Files,
            (6, 2, 65536),
            Share::Publish(share::Publisher::Index(index.clone())),
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("app.tar.gz");
        std::fs::write(&file, &tarball).unwrap();
        let blocks = share::Blocks { index, file };

        let mut older: Vec<(&str, Vec<u8>)> = files.iter().rev().cloned().collect();
        older.retain(|(name, _)| *name != "lib/tail.py");
        older[1].1[BLOCK - 100] ^= 1; // lib/asset.bin: both its blocks differ (the second by dictionary)
        let in_both: usize = older
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 1)
            .map(|(_, (_, c))| c.len())
            .filter(|n| *n as u64 >= tar_regions::MIN_FILE)
            .sum();
        let layer = tree_tar("opt/app/", 1000, &older);
        let alone = gzip_cut(&layer, Cuts::Files, (6, 2, 1000), Share::None);
        let taking = |blocks: &share::Blocks| {
            let taken = share::Taken::default();
            let reuser = blocks.reuser(&taken).unwrap();
            let bytes = gzip_cut(&layer, Cuts::Files, (6, 2, 4096), Share::Reuse(reuser));
            (bytes, taken.bytes())
        };
        let (shared, taken) = taking(&blocks);
        assert!(shared == alone);
        assert_eq!(taken, in_both as u64);
        assert_eq!(gunzip(&shared), layer);

        // A tarball changed on disk since is not read from: every block is compressed here.
        let mut tampered = tarball.clone();
        for byte in &mut tampered[20..tarball.len() - 20] {
            *byte ^= 0x5a;
        }
        std::fs::write(&blocks.file, &tampered).unwrap();
        let (shared, taken) = taking(&blocks);
        assert_eq!(taken, 0);
        assert!(shared == alone);
    }

    /// File cuts cost some ratio (each large file starts without a dictionary, and every cut
    /// costs a block header): keep it small on real source code, this crate's own.
    #[test]
    fn file_cuts_cost_little_ratio_on_source_code() {
        let mut files = Vec::new();
        let mut folders = vec![std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")];
        while let Some(folder) = folders.pop() {
            let mut entries: Vec<_> = std::fs::read_dir(&folder)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            entries.sort();
            for path in entries {
                if path.is_dir() {
                    folders.push(path);
                } else {
                    files.push((path.display().to_string(), std::fs::read(&path).unwrap()));
                }
            }
        }
        let named: Vec<(&str, Vec<u8>)> = files
            .iter()
            .map(|(n, c)| (n.trim_start_matches('/'), c.clone()))
            .collect();
        let tar = tree_tar("tagpilot/", 0, &named);
        let fixed = gzip(&tar, 6, 2, 65536).len();
        let cut = gzip_cut(&tar, Cuts::Files, (6, 2, 65536), Share::None).len();
        // 2.9% when written; the generated 1 GB benchmark tree, 3.6%; CPython's stdlib, 1.3%.
        assert!(
            cut <= fixed + fixed / 25,
            "file cuts {cut} vs fixed {fixed}"
        );
        eprintln!("{} files: file cuts {cut} B, fixed {fixed} B", named.len());
    }

    #[test]
    fn same_bytes_for_any_worker_count_and_write_pattern() {
        let data = sample(3 * BLOCK + 12_345);
        let one = gzip(&data, 6, 1, 8192);
        for (workers, piece) in [(2, 1000), (5, BLOCK), (16, 3 * BLOCK)] {
            assert!(
                gzip(&data, 6, workers, piece) == one,
                "{workers} workers differ"
            );
        }
        assert_eq!(gunzip(&one), data);
        assert!(one.len() < data.len() / 2, "it compresses");
    }

    /// Workers pick up blocks in a different order every run; the bytes must not care which
    /// block a worker compressed before (mixed text and noise, as in a real source tree).
    #[test]
    fn output_does_not_depend_on_scheduling() {
        let mut data = Vec::new();
        let mut state = 1u64;
        for round in 0..24 {
            if round % 3 == 0 {
                for _ in 0..BLOCK / 8 {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                    data.extend_from_slice(&state.to_le_bytes());
                }
            } else {
                data.extend_from_slice(&sample(BLOCK / 2 + round * 1000));
            }
        }
        let reference = gzip(&data, 6, 1, 65536);
        for run in 0..6 {
            assert!(
                gzip(&data, 6, 2 + run % 3, 65536) == reference,
                "run {run} differs"
            );
        }
        assert_eq!(gunzip(&reference), data);
    }

    /// x86 machine code is what once exposed state leaking between blocks (zlib-rs reused
    /// through `reset`); this test binary is megabytes of it.
    #[test]
    fn machine_code_gives_the_same_bytes_for_any_worker_count() {
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let data = &exe[..exe.len().min(24 * BLOCK)];
        let reference = gzip(data, 6, 1, 65536);
        for workers in [2, 3, 4, 2, 3, 4] {
            assert!(
                gzip(data, 6, workers, 65536) == reference,
                "{workers} workers differ"
            );
        }
        assert_eq!(gunzip(&reference), data);
    }

    #[test]
    fn edge_sizes_round_trip() {
        for len in [0, 1, WINDOW, BLOCK, 2 * BLOCK, BLOCK + 1] {
            let data = sample(len);
            let bytes = gzip(&data, 9, 3, 4096);
            assert_eq!(gunzip(&bytes), data, "length {len}");
            assert_eq!(&bytes[..10], &HEADER);
        }
    }

    #[test]
    fn dictionaries_keep_the_ratio_close_to_one_stream() {
        let data = sample(8 * BLOCK);
        let blocked = gzip(&data, 6, 2, 65536).len();
        let mut single = flate2::write::GzEncoder::new(Vec::new(), Compression::new(6));
        single.write_all(&data).unwrap();
        let single = single.finish().unwrap().len();
        assert!(
            blocked <= single + single / 100,
            "blocked {blocked} vs single stream {single}"
        );
    }
}
