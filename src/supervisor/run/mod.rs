//! The running supervisor: one core thread owns every job's state and reacts to messages (a
//! process ended, a signal, a control request) and to its timers, in order, so events happen
//! in the order ContainerPilot has them. Other threads only read sockets, pipes and signals.

mod commands;
mod consul;
pub mod control;
mod health;
mod http;
mod interfaces;
mod lifecycle;
pub mod log;
mod process;
mod telemetry;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::path::PathBuf;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::time::{Duration, Instant};

use crate::supervisor::config::{Config, Job, Restarts, When};
use http::Response;
use log::Log;
use process::Ended;

/// What reaches the core.
pub enum Msg {
    Exited(u32, Ended),
    Signal(i32),
    Control(control::Command, Sender<Response>),
    Status(Sender<String>),
}

/// An event: a code from a source (a job, `check.<job>`, `watch.<name>`, `global`, a signal).
#[derive(Clone, Debug, PartialEq)]
struct Event {
    code: &'static str,
    source: String,
}

/// ContainerPilot's event codes, its Go names (as its log prints them) and config names.
const CODES: [(&str, &str); 15] = [
    ("exitSuccess", "ExitSuccess"),
    ("exitFailed", "ExitFailed"),
    ("stopping", "Stopping"),
    ("stopped", "Stopped"),
    ("healthy", "StatusHealthy"),
    ("unhealthy", "StatusUnhealthy"),
    ("changed", "StatusChanged"),
    ("enterMaintenance", "EnterMaintenance"),
    ("exitMaintenance", "ExitMaintenance"),
    ("startup", "Startup"),
    ("shutdown", "Shutdown"),
    ("timerExpired", "TimerExpired"),
    ("error", "Error"),
    ("quit", "Quit"),
    ("signal", "Signal"),
];

fn code(name: &str) -> &'static str {
    CODES
        .iter()
        .find(|(c, _)| *c == name)
        .map_or("error", |(c, _)| c)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    /// An interval job's next run.
    JobTick(usize),
    HealthTick(usize),
    /// The job's exec timeout, for that run.
    ExecTimeout(usize, u64),
    CheckTimeout(usize, u64),
    WhenTimeout(usize),
    WatchPoll(usize),
    Heartbeat,
    /// The extension's per-job stop timeout, for that run.
    StopKill(usize, u64),
    ShutdownKill,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Owner {
    Job(usize),
    Check(usize),
}

struct JobState {
    job: Job,
    pid: Option<u32>,
    run: u64,
    /// `None`: unlimited.
    restarts_left: Option<u64>,
    /// How many more times the job's event may start it; `None`: unlimited.
    starts_left: Option<u64>,
    started_once: bool,
    status: &'static str,
    done: bool,
    /// Stopping, waiting for its pre-stop jobs (those that run `once: stopping` for it).
    awaiting_prestop: bool,
    check_pid: Option<u32>,
    check_run: u64,
    /// The last line the health check printed: why it fails.
    check_output: process::LastLine,
    fails_in_a_row: u64,
    registered: bool,
    ip: String,
    service_id: String,
}

impl JobState {
    /// A job before its first run, its service (if any) at `ip`.
    fn new(job: &Job, ip: String, hostname: &str) -> JobState {
        let starts_left = match &job.when {
            When::Each { .. } | When::Interval(_) => None,
            _ => Some(1),
        };
        let restarts_left = match job.restarts {
            Restarts::Never => Some(0),
            Restarts::Times(n) => Some(n),
            Restarts::Unlimited => None,
        };
        JobState {
            service_id: format!("{}-{hostname}", job.name),
            job: job.clone(),
            pid: None,
            run: 0,
            restarts_left,
            starts_left,
            started_once: false,
            status: "unknown",
            done: false,
            awaiting_prestop: false,
            check_pid: None,
            check_run: 0,
            check_output: Default::default(),
            fails_in_a_row: 0,
            registered: false,
            ip,
        }
    }
}

struct WatchState {
    instances: Vec<consul::Instance>,
}

/// Why the supervisor stopped: how it exits.
pub struct Outcome {
    pub code: i32,
    /// A reload asked for: the caller starts again from the config file.
    pub reload: bool,
}

pub struct Core {
    config: Config,
    log: Log,
    env: BTreeMap<String, String>,
    consul: Option<consul::Agent>,
    jobs: Vec<JobState>,
    watches: Vec<WatchState>,
    timers: BinaryHeap<Reverse<(Instant, u64, Timer)>>,
    seq: u64,
    pids: HashMap<u32, Owner>,
    maintenance: bool,
    shutdown: Option<Instant>,
    reload: bool,
    exit_code: i32,
    metrics: telemetry::Metrics,
    telemetry_service: Option<(String, String, i64)>,
    hostname: String,
    rx: Receiver<Msg>,
}

/// Runs `config` until every job is done or a signal stops it.
pub fn run(config: Config, env: BTreeMap<String, String>, log: Log) -> Result<Outcome, String> {
    let (tx, rx) = channel();
    process::watch_signals(tx.clone()).map_err(|e| format!("signals: {e}"))?;
    let hostname = hostname();
    let consul = match &config.consul {
        Some(c) => Some(consul::Agent::new(c, &env)?),
        None => None,
    };
    let available = interfaces::addresses();
    let mut env = env;
    env.insert("CONTAINERPILOT_PID".into(), std::process::id().to_string());
    let mut jobs = Vec::new();
    for job in &config.jobs {
        // Without Consul nothing is registered: an address that cannot be found only
        // leaves CONTAINERPILOT_<NAME>_IP empty.
        let ip = match (job.is_service(), &consul) {
            (false, _) => String::new(),
            (true, Some(_)) => interfaces::pick(&job.interfaces, &available)?,
            (true, None) => interfaces::pick(&job.interfaces, &available).unwrap_or_default(),
        };
        if job.is_service() {
            env.insert(
                format!("CONTAINERPILOT_{}_IP", env_name(&job.name)),
                ip.clone(),
            );
        }
        jobs.push(JobState::new(job, ip, &hostname));
    }
    let metrics = telemetry::Metrics::new(
        config
            .telemetry
            .as_ref()
            .map(|t| t.metrics.as_slice())
            .unwrap_or_default(),
    );
    let mut telemetry_service = None;
    if let Some(t) = &config.telemetry {
        let ip = interfaces::pick(&t.interfaces, &available)?;
        let address = format!("{ip}:{}", t.port);
        telemetry::listen(&address, metrics.clone(), tx.clone())
            .map_err(|e| format!("telemetry: listen on {address}: {e}"))?;
        log.info(&format!("telemetry: serving at {address}"));
        telemetry_service = Some((format!("containerpilot-{hostname}"), ip, t.port));
    }
    let socket = PathBuf::from(&config.control.socket);
    control::listen(&socket, tx.clone())
        .map_err(|e| format!("control: listen on {}: {e}", socket.display()))?;
    log.info(&format!("control: serving at {}", socket.display()));
    let watches = config
        .watches
        .iter()
        .map(|_| WatchState {
            instances: Vec::new(),
        })
        .collect();
    let mut core = Core {
        config,
        log,
        env,
        consul,
        jobs,
        watches,
        timers: BinaryHeap::new(),
        seq: 0,
        pids: HashMap::new(),
        maintenance: false,
        shutdown: None,
        reload: false,
        exit_code: 0,
        metrics,
        telemetry_service,
        hostname,
        rx,
    };
    drop(tx);
    let outcome = core.main_loop();
    let _ = std::fs::remove_file(&socket);
    Ok(outcome)
}

impl Core {
    fn main_loop(&mut self) -> Outcome {
        self.start();
        loop {
            if let Some(outcome) = self.finished() {
                return outcome;
            }
            let now = Instant::now();
            let wait = self
                .timers
                .peek()
                .map_or(Duration::from_secs(3600), |Reverse((at, _, _))| {
                    at.saturating_duration_since(now)
                });
            match self.rx.recv_timeout(wait) {
                Ok(msg) => self.handle(msg),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    return Outcome {
                        code: 1,
                        reload: false,
                    }
                }
            }
            while let Some(Reverse((at, _, _))) = self.timers.peek() {
                if *at > Instant::now() {
                    break;
                }
                let Reverse((_, _, timer)) = self.timers.pop().expect("peeked");
                self.fire(timer);
            }
        }
    }

    /// Done when shutting down and no process is left, or at the shutdown deadline; or
    /// when every job is done.
    fn finished(&mut self) -> Option<Outcome> {
        let all_done = self.jobs.iter().all(|j| j.done);
        if self.shutdown.is_none() && all_done {
            // Nothing is left to stop: ContainerPilot publishes no shutdown event here.
            self.log.debug("every job is done");
            self.shutdown = Some(Instant::now() + self.config.stop_timeout);
        }
        let deadline = self.shutdown?;
        let running = self.pids.values().any(|o| matches!(o, Owner::Job(_)));
        let waiting = self.jobs.iter().any(|j| !j.done);
        if (!running && !waiting) || Instant::now() >= deadline {
            for (pid, _) in self.pids.drain() {
                process::signal_group(pid, libc::SIGKILL);
            }
            return Some(Outcome {
                code: self.exit_code,
                reload: self.reload,
            });
        }
        None
    }

    fn after(&mut self, delay: Duration, timer: Timer) {
        self.seq += 1;
        self.timers
            .push(Reverse((Instant::now() + delay, self.seq, timer)));
    }

    fn start(&mut self) {
        for (i, watch) in self.config.watches.clone().iter().enumerate() {
            let _ = watch;
            self.after(Duration::ZERO, Timer::WatchPoll(i));
        }
        if self.telemetry_service.is_some() && self.consul.is_some() {
            self.after(Duration::ZERO, Timer::Heartbeat);
        }
        for i in 0..self.jobs.len() {
            if let Some(timeout) = self.jobs[i].job.when_timeout {
                self.after(timeout, Timer::WhenTimeout(i));
            }
        }
        self.publish(Event {
            code: "startup",
            source: "global".into(),
        });
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Exited(pid, ended) => self.exited(pid, ended),
            Msg::Signal(signal) => self.signal(signal),
            Msg::Control(command, reply) => {
                let response = self.control(command);
                let _ = reply.send(response);
            }
            Msg::Status(reply) => {
                let _ = reply.send(self.status());
            }
        }
    }

    fn signal(&mut self, signal: i32) {
        match signal {
            libc::SIGTERM | libc::SIGINT => {
                self.log.info(&format!(
                    "received {}: shutting down",
                    if signal == libc::SIGTERM {
                        "SIGTERM"
                    } else {
                        "SIGINT"
                    }
                ));
                self.begin_shutdown("a signal");
            }
            libc::SIGHUP => self.publish(Event {
                code: "signal",
                source: "SIGHUP".into(),
            }),
            libc::SIGUSR2 => self.publish(Event {
                code: "signal",
                source: "SIGUSR2".into(),
            }),
            libc::SIGUSR1 => self.log.reopen(),
            _ => {}
        }
    }

    /// Logs and delivers an event to every job waiting for it.
    fn publish(&mut self, event: Event) {
        let go_name = CODES
            .iter()
            .find(|(c, _)| *c == event.code)
            .map_or(event.code, |(_, g)| g);
        self.log
            .debug(&format!("event: {{{go_name} {}}}", event.source));
        for i in 0..self.jobs.len() {
            let state = &self.jobs[i];
            if state.done || state.starts_left == Some(0) {
                continue;
            }
            let fires = match &state.job.when {
                When::Startup | When::Interval(_) => {
                    event.code == "startup" && event.source == "global"
                }
                When::Once { source, event: e } | When::Each { source, event: e } => {
                    code(e) == event.code && *source == event.source
                }
            };
            if !fires {
                continue;
            }
            // During shutdown only the jobs that run for stopping or stopped start.
            if self.shutdown.is_some() && !waits_for_stop(&state.job.when) {
                continue;
            }
            if let Some(n) = self.jobs[i].starts_left.as_mut() {
                *n -= 1;
            }
            if let When::Interval(every) = self.jobs[i].job.when {
                self.after(every, Timer::JobTick(i));
            }
            self.start_job(i);
        }
    }

    fn fire(&mut self, timer: Timer) {
        match timer {
            Timer::JobTick(i) => {
                if self.jobs[i].done || self.shutdown.is_some() {
                    return;
                }
                if let When::Interval(every) = self.jobs[i].job.when {
                    self.after(every, Timer::JobTick(i));
                }
                self.start_job(i);
            }
            Timer::ExecTimeout(i, run) => {
                if let (Some(pid), true) = (self.jobs[i].pid, self.jobs[i].run == run) {
                    let name = self.jobs[i].job.name.clone();
                    self.log.info(&format!(
                        "{name} timeout after {:?}: killing it",
                        self.jobs[i].job.timeout.unwrap_or_default()
                    ));
                    process::signal_group(pid, libc::SIGKILL);
                }
            }
            Timer::StopKill(i, run) => {
                if let (Some(pid), true) = (self.jobs[i].pid, self.jobs[i].run == run) {
                    process::signal_group(pid, libc::SIGKILL);
                }
            }
            Timer::HealthTick(i) => self.health_tick(i),
            Timer::CheckTimeout(i, run) => {
                if let (Some(pid), true) = (self.jobs[i].check_pid, self.jobs[i].check_run == run) {
                    process::signal_group(pid, libc::SIGKILL);
                }
            }
            Timer::WhenTimeout(i) => {
                if !self.jobs[i].started_once && !self.jobs[i].done {
                    let name = self.jobs[i].job.name.clone();
                    self.publish(Event {
                        code: "timerExpired",
                        source: name,
                    });
                    self.stop_job(i);
                }
            }
            Timer::WatchPoll(i) => self.poll_watch(i),
            Timer::Heartbeat => self.heartbeat(),
            Timer::ShutdownKill => {}
        }
    }
}

fn waits_for_stop(when: &When) -> bool {
    matches!(when, When::Once { event, .. } | When::Each { event, .. } if event == "stopping" || event == "stopped")
}

/// `CONTAINERPILOT_<NAME>_…`: upper-cased, `-` as `_`.
fn env_name(name: &str) -> String {
    name.to_ascii_uppercase().replace(['-', '.'], "_")
}

fn hostname() -> String {
    let mut buffer = [0u8; 256];
    // SAFETY: gethostname(2) writes at most the buffer's length.
    let ok = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) } == 0;
    let end = buffer.iter().position(|b| *b == 0).unwrap_or(0);
    if ok {
        String::from_utf8_lossy(&buffer[..end]).into_owned()
    } else {
        "localhost".into()
    }
}
