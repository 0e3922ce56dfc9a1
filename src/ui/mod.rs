//! What the person watching sees: log lines and progress on stderr (stdout carries results),
//! a redrawn line on a terminal, plain periodic lines in CI logs and pipes, and GitLab log
//! sections around each stage.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::env::Env;

pub mod transfers;

#[derive(Clone, Copy, Debug)]
pub struct Ui {
    tty: bool,
    ci: bool,
}

impl Ui {
    pub fn of(env: &Env) -> Ui {
        Ui {
            tty: std::io::stderr().is_terminal(),
            ci: env.in_gitlab_ci(),
        }
    }

    pub fn info(&self, line: &str) {
        eprintln!("{line}");
    }

    /// Runs `work` inside a collapsible log section when in GitLab CI.
    pub fn section<T>(&self, name: &str, title: &str, work: impl FnOnce() -> T) -> T {
        if self.ci {
            eprintln!("{}", section_start(name, title));
        } else {
            eprintln!("{title}");
        }
        let result = work();
        if self.ci {
            eprintln!("{}", section_end(name));
        }
        result
    }

    /// Progress of `count` uploads of `total` bytes that may run at once.
    pub fn transfers(&self, label: &str, total: u64, count: usize) -> transfers::Transfers {
        transfers::Transfers::new(label, total, count, self.tty)
    }

    pub fn progress(&self, label: &str) -> Progress {
        Progress {
            label: label.to_string(),
            redraw: self.tty,
            start: Instant::now(),
            last_shown: Instant::now(),
            bytes: 0,
            items: 0,
        }
    }
}

/// Bytes and items done so far, shown with a rate.
pub struct Progress {
    label: String,
    redraw: bool,
    start: Instant,
    last_shown: Instant,
    bytes: u64,
    items: u64,
}

impl Progress {
    pub fn advance(&mut self, bytes: u64, items: u64) {
        self.bytes += bytes;
        self.items += items;
        let every = if self.redraw {
            Duration::from_millis(100)
        } else {
            Duration::from_secs(5)
        };
        if self.last_shown.elapsed() >= every {
            self.last_shown = Instant::now();
            self.show(false);
        }
    }

    /// Prints the final line (only if progress was shown at all, or on a terminal).
    pub fn finish(&mut self) {
        if self.redraw {
            self.show(true);
        }
    }

    fn show(&self, last: bool) {
        let seconds = self.start.elapsed().as_secs_f64().max(1e-3);
        let line = format!(
            "{}: {} from {} files, {}/s",
            self.label,
            human_bytes(self.bytes),
            self.items,
            human_bytes((self.bytes as f64 / seconds) as u64)
        );
        let mut err = std::io::stderr().lock();
        let _ = if self.redraw {
            write!(err, "\r{line:<72}{}", if last { "\n" } else { "" })
        } else {
            writeln!(err, "{line}")
        };
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The marker that opens a collapsible section in a GitLab job log.
pub fn section_start(name: &str, title: &str) -> String {
    format!(
        "\x1b[0Ksection_start:{}:{name}[collapsed=false]\r\x1b[0K{title}",
        now()
    )
}

/// The marker that closes it.
pub fn section_end(name: &str) -> String {
    format!("\x1b[0Ksection_end:{}:{name}\r\x1b[0K", now())
}

/// Writes results to stdout. A closed pipe (`tagpilot versions | head -1`) is the reader saying
/// it has enough, not an error, so it ends output quietly instead of panicking like `print!`.
pub fn print_stdout(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// Implements `Display` for status enums as their JSON word with spaces for people
/// (`already_there` → `already there`), so logs, summaries and the record use the same words.
macro_rules! display_as_words {
    ($($status:ty),+ $(,)?) => {$(
        impl std::fmt::Display for $status {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                let word = serde_json::to_value(self).ok();
                let word = word.as_ref().and_then(|v| v.as_str()).unwrap_or("?");
                f.write_str(&word.replace('_', " "))
            }
        }
    )+};
}
pub(crate) use display_as_words;

/// Text from a server (an error message, a header, git's stderr), safe to print in a job log:
/// control characters, ANSI escapes and GitLab's section markers become visible `\u{..}`
/// escapes, so a hostile server cannot forge lines of tagpilot's own output.
pub fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                format!("\\u{{{:x}}}", c as u32)
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// `1.5 MiB`-style sizes for people; exact byte counts go in JSON.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::{printable, section_end, section_start};

    #[test]
    fn section_markers_follow_gitlab_format() {
        let start = section_start("tarball", "Release tarball");
        assert!(start.starts_with("\x1b[0Ksection_start:"));
        assert!(start.ends_with(":tarball[collapsed=false]\r\x1b[0KRelease tarball"));
        assert!(section_end("tarball").ends_with(":tarball\r\x1b[0K"));
    }

    #[test]
    fn server_text_cannot_forge_log_lines_or_sections() {
        let hostile =
            "denied\npushed registry/app@sha256:forged\x1b[32m\x1b[0Ksection_end:1:push\r";
        let shown = printable(hostile);
        assert!(!shown.chars().any(char::is_control), "{shown}");
        assert_eq!(
            shown,
            "denied\\u{a}pushed registry/app@sha256:forged\\u{1b}[32m\\u{1b}[0Ksection_end:1:push\\u{d}"
        );
    }
}
