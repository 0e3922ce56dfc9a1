//! Processes: each exec in its own process group, its output logged line by line, and every
//! child (ours, and orphans when we are PID 1) reaped by one `waitpid(-1)` loop on SIGCHLD.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use super::log::Log;
use super::Msg;

/// What a process printed last (a health check's reason), kept as its output is logged.
pub type LastLine = Arc<Mutex<String>>;

/// Starts `args` in a new process group with exactly `env`. Its output is logged as `name`'s,
/// or passed through untouched with `raw`; its last line is kept in `last`.
pub fn spawn(
    args: &[String],
    env: &BTreeMap<String, String>,
    name: &str,
    raw: bool,
    log: &Log,
    last: Option<&LastLine>,
) -> std::io::Result<u32> {
    let mut command = Command::new(&args[0]);
    command
        .args(&args[1..])
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .process_group(0);
    if raw {
        command.stdout(Stdio::inherit()).stderr(Stdio::inherit());
    } else {
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
    }
    let mut child = command.spawn()?;
    let pid = child.id();
    for stream in [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let log = log.clone();
        let name = name.to_string();
        let last = last.cloned();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).split(b'\n').map_while(Result::ok) {
                let line = String::from_utf8_lossy(&line);
                let line = line.trim_end_matches('\r');
                log.job_line(&name, pid, line);
                if let Some(last) = &last {
                    *last.lock().unwrap_or_else(|p| p.into_inner()) = line.to_string();
                }
            }
        });
    }
    // The reaper collects its status; `Child` is dropped without waiting.
    drop(child);
    Ok(pid)
}

/// Sends `signal` to the process group led by `pid`.
pub fn signal_group(pid: u32, signal: i32) {
    // SAFETY: kill(2) with a negative pid signals a process group; no memory is involved.
    unsafe {
        libc::kill(-(pid as i32), signal);
    }
}

/// How a process ended: its exit code, or the signal that killed it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Ended {
    Code(i32),
    Signal(i32),
}

impl Ended {
    pub fn success(self) -> bool {
        self == Ended::Code(0)
    }

    /// As a shell reports it: the code, or 128 + the signal.
    pub fn status(self) -> i32 {
        match self {
            Ended::Code(c) => c,
            Ended::Signal(s) => 128 + s,
        }
    }

    pub fn describe(self) -> String {
        match self {
            Ended::Code(c) => format!("exit status {c}"),
            Ended::Signal(s) => format!("signal: {}", signal_name(s)),
        }
    }
}

pub fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGKILL => "killed",
        libc::SIGTERM => "terminated",
        libc::SIGINT => "interrupt",
        libc::SIGHUP => "hangup",
        _ => "signal",
    }
}

/// Reaps every child that has ended, reporting each to the core.
pub fn reap(core: &Sender<Msg>) {
    loop {
        let mut status = 0;
        // SAFETY: waitpid(2) writes the status into a local int.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            return;
        }
        let ended = if libc::WIFEXITED(status) {
            Ended::Code(libc::WEXITSTATUS(status))
        } else if libc::WIFSIGNALED(status) {
            Ended::Signal(libc::WTERMSIG(status))
        } else {
            continue;
        };
        let _ = core.send(Msg::Exited(pid as u32, ended));
    }
}

/// The signal thread: SIGCHLD reaps; the others go to the core.
pub fn watch_signals(core: Sender<Msg>) -> std::io::Result<()> {
    use signal_hook::consts::{SIGCHLD, SIGHUP, SIGINT, SIGTERM, SIGUSR1, SIGUSR2};
    let mut signals =
        signal_hook::iterator::Signals::new([SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2])?;
    std::thread::spawn(move || {
        for signal in signals.forever() {
            if signal == SIGCHLD {
                reap(&core);
            } else if core.send(Msg::Signal(signal)).is_err() {
                return;
            }
        }
    });
    Ok(())
}
