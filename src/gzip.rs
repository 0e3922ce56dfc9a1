//! Parallel gzip whose bytes do not depend on the number of threads.
//!
//! The input is cut into fixed [`BLOCK`]-sized blocks. Each block is deflated on its own, primed
//! with the last 32 KiB of the block before it as dictionary (so matches still reach back across
//! the cut), and ends with a sync flush that byte-aligns it; the last block ends the stream. The
//! concatenation is one valid deflate stream (the scheme pigz uses), and because the cut points,
//! dictionaries and level are fixed, the output is the same for 1 worker or 16.
//!
//! Threads: the caller's `write` only fills blocks; workers deflate them; one writer thread puts
//! results back in order, writes them out and computes the CRC-32 trailer. At most a few blocks
//! are in memory at once.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

use flate2::{Compress, Compression, FlushCompress, Status};

/// Uncompressed bytes per block. Part of the output format: changing it changes digests.
pub const BLOCK: usize = 256 * 1024;
/// deflate's window: the most a match can reach back.
const WINDOW: usize = 32 * 1024;
/// gzip header: magic, deflate, no flags, mtime 0, no extra flags, OS "unknown".
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

struct Job {
    index: u64,
    dictionary: Vec<u8>,
    data: Vec<u8>,
    last: bool,
}

struct Deflated {
    index: u64,
    bytes: io::Result<Vec<u8>>,
    crc: crc32fast::Hasher,
    input_len: u64,
}

pub struct ParallelGzip<W: Write + Send + 'static> {
    block: Vec<u8>,
    /// The last [`WINDOW`] bytes of the previous block.
    previous_tail: Vec<u8>,
    next_index: u64,
    jobs: Option<SyncSender<Job>>,
    workers: Vec<JoinHandle<()>>,
    writer: Option<JoinHandle<io::Result<W>>>,
}

/// How many deflate workers to run: one per core.
pub fn default_workers() -> usize {
    thread::available_parallelism().map_or(1, |n| n.get())
}

impl<W: Write + Send + 'static> ParallelGzip<W> {
    pub fn new(out: W, level: u32, workers: usize) -> Self {
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
        drop(done_tx);
        ParallelGzip {
            block: Vec::with_capacity(BLOCK),
            previous_tail: Vec::new(),
            next_index: 0,
            jobs: Some(jobs_tx),
            workers: handles,
            writer: Some(thread::spawn(move || write_in_order(out, done_rx))),
        }
    }

    /// Compresses what is left, writes the trailer and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        let sent = self.dispatch(true);
        self.jobs = None; // closes the queue: workers drain it and stop
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
        let tail_start = data.len().saturating_sub(WINDOW);
        let dictionary = std::mem::replace(&mut self.previous_tail, data[tail_start..].to_vec());
        let job = Job {
            index: self.next_index,
            dictionary,
            data,
            last,
        };
        self.next_index += 1;
        let jobs = self.jobs.as_ref().expect("not finished");
        jobs.send(job)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the gzip writer stopped"))
    }
}

impl<W: Write + Send + 'static> Write for ParallelGzip<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = (BLOCK - self.block.len()).min(data.len());
        self.block.extend_from_slice(&data[..n]);
        if self.block.len() == BLOCK {
            self.dispatch(false)?;
        }
        Ok(n)
    }

    /// Blocks are cut at fixed offsets, never on flush: flushing would change the bytes.
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

fn write_in_order<W: Write>(mut out: W, done: Receiver<Deflated>) -> io::Result<W> {
    out.write_all(&HEADER)?;
    let mut crc = crc32fast::Hasher::new();
    let mut waiting: BTreeMap<u64, Deflated> = BTreeMap::new();
    let mut next = 0u64;
    let mut length = 0u64;
    for block in done {
        waiting.insert(block.index, block);
        while let Some(block) = waiting.remove(&next) {
            out.write_all(&block.bytes?)?;
            crc.combine(&block.crc);
            length += block.input_len;
            next += 1;
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
        let mut gz = ParallelGzip::new(Vec::new(), level, workers);
        for chunk in data.chunks(piece.max(1)) {
            gz.write_all(chunk).unwrap();
        }
        gz.finish().unwrap()
    }

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .unwrap();
        out
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
