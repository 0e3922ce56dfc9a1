//! Progress of uploads that run at once: on a terminal, one bar per blob and one for the whole
//! push (bytes, rate, time left), redrawn in place by `indicatif`; in CI logs and pipes, plain
//! lines, at most one every few seconds per blob, and one when each is done.

use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::human_bytes;

/// How often a plain line may repeat for one blob.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

/// Every transfer of one push. Cheap to clone; shared by the upload threads.
#[derive(Clone)]
pub struct Transfers {
    inner: Arc<Shared>,
}

struct Shared {
    bars: Option<(MultiProgress, ProgressBar)>,
}

impl Transfers {
    /// `total` bytes in `count` blobs; bars when `redraw` (stderr is a terminal).
    pub fn new(label: &str, total: u64, count: usize, redraw: bool) -> Transfers {
        let bars = redraw.then(|| {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let overall = multi.add(ProgressBar::new(total));
            overall.set_style(
                ProgressStyle::with_template(
                    "{prefix} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec}, {eta} left",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            );
            overall.set_prefix(format!("{label}: {count} blob(s)"));
            (multi, overall)
        });
        Transfers {
            inner: Arc::new(Shared { bars }),
        }
    }

    /// One blob's transfer, shown until it is done.
    pub fn start(&self, name: &str, size: u64) -> Transfer {
        let bar = self.inner.bars.as_ref().map(|(multi, _)| {
            let bar = multi.insert_from_back(1, ProgressBar::new(size));
            bar.set_style(
                ProgressStyle::with_template(
                    "  {prefix} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec}, {eta} left",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            );
            bar.set_prefix(name.to_string());
            bar
        });
        Transfer {
            name: name.to_string(),
            size,
            bar,
            overall: self.inner.bars.as_ref().map(|(_, o)| o.clone()),
            plain: Mutex::new(Plain::new(Instant::now())),
        }
    }

    /// A line above the bars (or a plain line).
    pub fn println(&self, line: &str) {
        match &self.inner.bars {
            Some((multi, _)) => {
                let _ = multi.println(line);
            }
            None => eprintln!("{line}"),
        }
    }

    /// Takes the bars off the screen.
    pub fn finish(&self) {
        if let Some((multi, overall)) = &self.inner.bars {
            overall.finish_and_clear();
            let _ = multi.clear();
        }
    }
}

pub struct Transfer {
    name: String,
    size: u64,
    bar: Option<ProgressBar>,
    overall: Option<ProgressBar>,
    plain: Mutex<Plain>,
}

impl Transfer {
    pub fn advance(&self, bytes: u64) {
        if let (Some(bar), Some(overall)) = (&self.bar, &self.overall) {
            bar.inc(bytes);
            overall.inc(bytes);
            return;
        }
        let mut plain = self.plain.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(line) = plain.advance(bytes, self.size, Instant::now()) {
            eprintln!("  uploading {}: {line}", self.name);
        }
    }

    /// A retry sends the blob again from its start.
    pub fn restart(&self) {
        let mut plain = self.plain.lock().unwrap_or_else(|p| p.into_inner());
        if let (Some(bar), Some(overall)) = (&self.bar, &self.overall) {
            overall.set_position(overall.position().saturating_sub(bar.position()));
            bar.set_position(0);
        }
        plain.done = 0;
    }

    /// Done: the bar goes away.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    /// Counts what `reader` yields as this transfer's progress.
    pub fn reader<R: Read>(&self, reader: R) -> Counted<'_, R> {
        Counted {
            inner: reader,
            transfer: self,
        }
    }
}

/// A reader that reports what it read.
pub struct Counted<'a, R> {
    inner: R,
    transfer: &'a Transfer,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.transfer.advance(n as u64);
        Ok(n)
    }
}

/// The plain-line state of one blob: what is done, and when a line was last printed.
struct Plain {
    started: Instant,
    last: Instant,
    done: u64,
}

impl Plain {
    fn new(now: Instant) -> Plain {
        Plain {
            started: now,
            last: now,
            done: 0,
        }
    }

    /// The line to print at `now`, if one is due.
    fn advance(&mut self, bytes: u64, size: u64, now: Instant) -> Option<String> {
        self.done += bytes;
        if now.duration_since(self.last) < PLAIN_EVERY || self.done >= size {
            return None;
        }
        self.last = now;
        let seconds = now.duration_since(self.started).as_secs_f64().max(1e-3);
        let rate = self.done as f64 / seconds;
        let left = size.saturating_sub(self.done) as f64 / rate.max(1.0);
        Some(format!(
            "{} of {} ({}%), {}/s, about {} s left",
            human_bytes(self.done),
            human_bytes(size),
            self.done * 100 / size.max(1),
            human_bytes(rate as u64),
            left.ceil() as u64
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_come_at_most_every_five_seconds_per_blob() {
        let start = Instant::now();
        let mut plain = Plain::new(start);
        let at = |s: u64| start + Duration::from_secs(s);
        let mib = 1 << 20;
        assert_eq!(plain.advance(10 * mib, 100 * mib, at(1)), None);
        assert_eq!(plain.advance(10 * mib, 100 * mib, at(4)), None);
        let line = plain.advance(30 * mib, 100 * mib, at(5)).unwrap();
        assert_eq!(
            line,
            "50.0 MiB of 100.0 MiB (50%), 10.0 MiB/s, about 5 s left"
        );
        assert_eq!(plain.advance(10 * mib, 100 * mib, at(9)), None);
        assert!(plain.advance(10 * mib, 100 * mib, at(10)).is_some());
        // The last bytes print nothing: the "uploaded" line says it.
        assert_eq!(plain.advance(30 * mib, 100 * mib, at(20)), None);
    }
}
