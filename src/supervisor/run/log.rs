//! The supervisor's log, in ContainerPilot's three formats: `default` (`<RFC3339Nano> <msg>`,
//! and `<RFC3339Nano> <job> <pid> <line>` for what a job prints), logrus `text`
//! (`time="…" level=info msg="…"`) and `json`.

use std::fs::File;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::supervisor::config::{Format, Level, Logging};

#[derive(Clone)]
pub struct Log {
    path: Option<String>,
    level: Level,
    format: Format,
    sink: Arc<Mutex<Sink>>,
}

enum Sink {
    Stdout,
    Stderr,
    File(File),
}

impl Log {
    /// Opens the output; a file that cannot be opened is an error at start-up, as in
    /// ContainerPilot.
    pub fn open(config: &Logging) -> Result<Log, String> {
        let sink = match config.output.as_str() {
            "stdout" => Sink::Stdout,
            "stderr" => Sink::Stderr,
            path => Sink::File(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| format!("Error initializing log file '{path}': {e}"))?,
            ),
        };
        Ok(Log {
            path: matches!(sink, Sink::File(_)).then(|| config.output.clone()),
            level: config.level,
            format: config.format,
            sink: Arc::new(Mutex::new(sink)),
        })
    }

    /// The log before the config is read: default format, info, stdout.
    pub fn bootstrap() -> Log {
        Log::open(&Logging::default()).expect("stdout opens")
    }

    /// Reopens a log file (SIGUSR1), after a rotation moved it away.
    pub fn reopen(&self) {
        let mut sink = self.sink.lock().unwrap_or_else(|p| p.into_inner());
        if let (Sink::File(_), Some(path)) = (&*sink, &self.path) {
            match std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                Ok(file) => *sink = Sink::File(file),
                Err(e) => eprintln!("reopening the log file {path}: {e}"),
            }
        }
    }

    pub fn info(&self, message: &str) {
        self.write(Level::Info, message, None);
    }

    pub fn debug(&self, message: &str) {
        self.write(Level::Debug, message, None);
    }

    pub fn error(&self, message: &str) {
        self.write(Level::Error, message, None);
    }

    /// A line a job's process printed.
    pub fn job_line(&self, job: &str, pid: u32, line: &str) {
        self.write(Level::Info, line, Some((job, pid)));
    }

    fn write(&self, level: Level, message: &str, job: Option<(&str, u32)>) {
        if level > self.level {
            return;
        }
        let time = now_rfc3339_nano();
        let level_name = match level {
            Level::Panic => "panic",
            Level::Fatal => "fatal",
            Level::Error => "error",
            Level::Warn => "warning",
            Level::Info => "info",
            Level::Debug => "debug",
        };
        let line = match (self.format, job) {
            (Format::Default, None) => format!("{time} {message}\n"),
            (Format::Default, Some((name, pid))) => format!("{time} {name} {pid} {message}\n"),
            (Format::Text, job) => {
                let mut line = format!("time=\"{time}\" level={level_name} msg={message:?}");
                if let Some((name, pid)) = job {
                    line.push_str(&format!(" job={name} pid={pid}"));
                }
                line + "\n"
            }
            (Format::Json, job) => {
                let mut object =
                    serde_json::json!({"level": level_name, "msg": message, "time": time});
                if let Some((name, pid)) = job {
                    object["job"] = name.into();
                    object["pid"] = pid.into();
                }
                object.to_string() + "\n"
            }
        };
        let mut sink = self.sink.lock().unwrap_or_else(|p| p.into_inner());
        let _ = match &mut *sink {
            Sink::Stdout => std::io::stdout().write_all(line.as_bytes()),
            Sink::Stderr => std::io::stderr().write_all(line.as_bytes()),
            Sink::File(file) => file.write_all(line.as_bytes()),
        };
    }
}

fn now_rfc3339_nano() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let seconds = crate::oci::image::rfc3339(now.as_secs());
    let date = seconds.trim_end_matches('Z');
    format!("{date}.{:09}Z", now.subsec_nanos())
}
