//! The running supervisor: one core thread owns every job's state and reacts to messages (a
//! process ended, a signal, a control request) and to its timers, in order, so events happen
//! in the order ContainerPilot has them. Other threads only read sockets, pipes and signals.

mod consul;
pub mod control;
mod http;
mod interfaces;
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
        let starts_left = match &job.when {
            When::Each { .. } | When::Interval(_) => None,
            _ => Some(1),
        };
        let restarts_left = match job.restarts {
            Restarts::Never => Some(0),
            Restarts::Times(n) => Some(n),
            Restarts::Unlimited => None,
        };
        jobs.push(JobState {
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
        });
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

    fn start_job(&mut self, i: usize) {
        let state = &mut self.jobs[i];
        if state.pid.is_some() || state.done {
            return;
        }
        let first = !state.started_once;
        state.started_once = true;
        let job = state.job.clone();
        if first {
            self.job_started_first(i);
        }
        let Some(args) = job.exec.clone() else {
            return;
        };
        self.log.debug(&format!("{}.Run start", job.name));
        match process::spawn(
            &args,
            &self.env,
            &job.name,
            job.raw_logging,
            &self.log,
            None,
        ) {
            Ok(pid) => {
                let state = &mut self.jobs[i];
                state.pid = Some(pid);
                state.run += 1;
                let run = state.run;
                self.pids.insert(pid, Owner::Job(i));
                self.env.insert(
                    format!("CONTAINERPILOT_{}_PID", env_name(&job.name)),
                    pid.to_string(),
                );
                let timeout = match (job.timeout, &job.when) {
                    (Some(t), _) => Some(t),
                    (None, When::Interval(every)) => Some(*every),
                    _ => None,
                };
                if let Some(timeout) = timeout {
                    self.after(timeout, Timer::ExecTimeout(i, run));
                }
            }
            Err(e) => {
                self.log
                    .error(&format!("{} failed to start: {}: {e}", job.name, args[0]));
                self.job_ended(i, false, &format!("{e}"));
            }
        }
    }

    /// At a job's first start: its health checks begin, and with `initial_status` its
    /// service is registered at once.
    fn job_started_first(&mut self, i: usize) {
        let job = self.jobs[i].job.clone();
        if let Some(health) = &job.health {
            // The first check runs one interval after the start, as ContainerPilot's.
            self.after(health.interval, Timer::HealthTick(i));
        }
        if job.is_service() {
            if let Some(status) = job.initial_status.clone() {
                self.register(i, &status);
            }
        }
    }

    fn exited(&mut self, pid: u32, ended: Ended) {
        let Some(owner) = self.pids.remove(&pid) else {
            return; // an orphan we reaped as PID 1
        };
        match owner {
            Owner::Job(i) => {
                let name = self.jobs[i].job.name.clone();
                self.jobs[i].pid = None;
                self.env
                    .remove(&format!("CONTAINERPILOT_{}_PID", env_name(&name)));
                if ended.success() {
                    self.log.info(&format!("{name} exited without error"));
                } else {
                    self.log
                        .info(&format!("{name} exited with error: {}", ended.describe()));
                }
                if self.config.extensions.main_job.as_deref() == Some(name.as_str())
                    && !self.will_restart(i)
                {
                    self.exit_code = ended.status();
                    self.job_ended(i, ended.success(), &ended.describe());
                    self.begin_shutdown(&format!("the main job {name} ended"));
                } else {
                    self.job_ended(i, ended.success(), &ended.describe());
                }
            }
            Owner::Check(i) => {
                self.jobs[i].check_pid = None;
                self.check_done(i, ended.success(), &ended.describe());
            }
        }
        // A stopping job whose pre-stop jobs are now done goes on stopping.
        for j in 0..self.jobs.len() {
            if self.jobs[j].awaiting_prestop && !self.prestop_running(j) {
                self.finish_stop(j);
            }
        }
    }

    fn will_restart(&self, i: usize) -> bool {
        let state = &self.jobs[i];
        self.shutdown.is_none()
            && !matches!(state.job.when, When::Interval(_))
            && state.restarts_left != Some(0)
    }

    /// After a run: events, then a restart, a wait for the next event, or the end.
    fn job_ended(&mut self, i: usize, success: bool, why: &str) {
        let name = self.jobs[i].job.name.clone();
        self.publish(Event {
            code: if success { "exitSuccess" } else { "exitFailed" },
            source: name.clone(),
        });
        if !success {
            self.publish(Event {
                code: "error",
                source: format!("{name}: {why}"),
            });
        }
        let state = &self.jobs[i];
        if state.done || matches!(state.job.when, When::Interval(_)) && self.shutdown.is_none() {
            return;
        }
        if self.will_restart(i) {
            if let Some(n) = self.jobs[i].restarts_left.as_mut() {
                *n -= 1;
            }
            self.start_job(i);
            return;
        }
        if self.jobs[i].starts_left != Some(0) && self.shutdown.is_none() {
            return; // started by `each`: waits for its next event
        }
        self.log
            .debug(&format!("job exited but restart not permitted: {name}"));
        self.stop_job(i);
    }

    /// Stopping a job: `stopping` (which starts its pre-stop jobs), then, once they are
    /// done, SIGTERM to its process group, deregistration and `stopped`.
    fn stop_job(&mut self, i: usize) {
        if self.jobs[i].done || self.jobs[i].awaiting_prestop {
            return;
        }
        let name = self.jobs[i].job.name.clone();
        self.jobs[i].restarts_left = Some(0);
        self.jobs[i].starts_left = Some(0);
        self.jobs[i].awaiting_prestop = true;
        self.publish(Event {
            code: "stopping",
            source: name,
        });
        if !self.prestop_running(i) {
            self.finish_stop(i);
        }
    }

    fn prestop_running(&self, i: usize) -> bool {
        let name = &self.jobs[i].job.name;
        self.jobs.iter().any(|j| {
            j.pid.is_some()
                && matches!(&j.job.when, When::Once { source, event } | When::Each { source, event }
                    if source == name && event == "stopping")
        })
    }

    /// SIGTERM to the job's process group, deregistration, then `stopped`, without waiting
    /// for the process to exit (as ContainerPilot: its exit events may come after).
    fn finish_stop(&mut self, i: usize) {
        self.jobs[i].awaiting_prestop = false;
        self.jobs[i].done = true;
        self.jobs[i].status = "exited";
        let name = self.jobs[i].job.name.clone();
        if let Some(pid) = self.jobs[i].pid {
            self.log
                .debug(&format!("terminating command '{name}' at pid: {pid}"));
            process::signal_group(pid, libc::SIGTERM);
            if self.config.extensions.job_stop_timeout {
                if let Some(timeout) = self.jobs[i].job.stop_timeout {
                    let run = self.jobs[i].run;
                    self.after(timeout, Timer::StopKill(i, run));
                }
            }
        }
        if self.jobs[i].registered {
            self.deregister(i);
        }
        self.publish(Event {
            code: "stopped",
            source: name,
        });
    }

    fn begin_shutdown(&mut self, why: &str) {
        if self.shutdown.is_some() {
            return;
        }
        self.log.debug(&format!("shutting down: {why}"));
        self.shutdown = Some(Instant::now() + self.config.stop_timeout);
        self.after(self.config.stop_timeout, Timer::ShutdownKill);
        self.publish(Event {
            code: "shutdown",
            source: "global".into(),
        });
        // The jobs that run for a stopping or stopped run once more, then end; they are
        // picked before any job stops, since stopping one may start them.
        let mut stop_now = Vec::new();
        for i in 0..self.jobs.len() {
            self.jobs[i].restarts_left = Some(0);
            if waits_for_stop(&self.jobs[i].job.when) && self.jobs[i].starts_left != Some(0) {
                self.jobs[i].starts_left = Some(1);
            } else {
                stop_now.push(i);
            }
        }
        for i in stop_now {
            self.stop_job(i);
        }
        // Jobs that wait for a stop that will not come (their source is done) end too.
        for i in 0..self.jobs.len() {
            if !self.jobs[i].done && self.jobs[i].pid.is_none() && !self.stop_may_come(i) {
                self.finish_stop(i);
            }
        }
        if let Some((id, _, _)) = self.telemetry_service.clone() {
            if let Some(consul) = &self.consul {
                let _ = consul.deregister(&id);
            }
        }
    }

    /// Whether the stopping/stopped a job waits for can still be published.
    fn stop_may_come(&self, i: usize) -> bool {
        match &self.jobs[i].job.when {
            When::Once { source, .. } | When::Each { source, .. } => self
                .jobs
                .iter()
                .any(|j| &j.job.name == source && (!j.done || j.awaiting_prestop)),
            _ => false,
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

    fn health_tick(&mut self, i: usize) {
        if self.jobs[i].done || self.shutdown.is_some() {
            return;
        }
        let Some(health) = self.jobs[i].job.health.clone() else {
            return;
        };
        self.after(health.interval, Timer::HealthTick(i));
        if self.maintenance || self.jobs[i].check_pid.is_some() {
            return;
        }
        let name = format!("check.{}", self.jobs[i].job.name);
        match &health.exec {
            None => self.check_done(i, true, ""),
            Some(args) => {
                match process::spawn(
                    args,
                    &self.env,
                    &name,
                    health.raw_logging,
                    &self.log,
                    Some(&self.jobs[i].check_output),
                ) {
                    Ok(pid) => {
                        self.jobs[i].check_pid = Some(pid);
                        self.jobs[i].check_run += 1;
                        let run = self.jobs[i].check_run;
                        self.pids.insert(pid, Owner::Check(i));
                        self.after(health.timeout, Timer::CheckTimeout(i, run));
                    }
                    Err(e) => {
                        self.log.error(&format!("{name} failed to start: {e}"));
                        self.check_done(i, false, &e.to_string());
                    }
                }
            }
        }
    }

    /// A health check's result: `healthy` with a TTL pass, or `unhealthy` and nothing sent
    /// (the TTL lapses). Both are published on every check, as ContainerPilot does.
    fn check_done(&mut self, i: usize, passed: bool, why: &str) {
        let name = self.jobs[i].job.name.clone();
        self.publish(Event {
            code: if passed { "exitSuccess" } else { "exitFailed" },
            source: format!("check.{name}"),
        });
        if !passed {
            self.publish(Event {
                code: "error",
                source: format!("check.{name}: {why}"),
            });
        }
        if self.maintenance || self.jobs[i].done {
            return;
        }
        if passed {
            self.jobs[i].fails_in_a_row = 0;
            self.jobs[i].status = "healthy";
            if self.jobs[i].job.is_service() {
                if !self.jobs[i].registered {
                    self.register(i, "passing");
                }
                if self.jobs[i].registered {
                    if let Some(consul) = &self.consul {
                        if let Err(e) = consul.pass(&self.jobs[i].service_id) {
                            self.log.error(&e);
                        }
                    }
                }
            }
            self.publish(Event {
                code: "healthy",
                source: name,
            });
        } else {
            self.jobs[i].fails_in_a_row += 1;
            self.jobs[i].status = "unhealthy";
            self.publish(Event {
                code: "unhealthy",
                source: name.clone(),
            });
            let ext = &self.config.extensions;
            if ext.restart_on_unhealthy.contains(&name)
                && self.jobs[i].fails_in_a_row >= ext.unhealthy_after
            {
                if let Some(pid) = self.jobs[i].pid {
                    self.log.info(&format!(
                        "{name} failed {} health checks in a row: restarting it (tagpilot.restartOnUnhealthy)",
                        self.jobs[i].fails_in_a_row
                    ));
                    self.jobs[i].fails_in_a_row = 0;
                    process::signal_group(pid, libc::SIGTERM);
                    // A job that ignores SIGTERM is killed: after its own stopTimeout with
                    // `jobStopTimeout`, else after the top-level one.
                    let grace = match (ext.job_stop_timeout, self.jobs[i].job.stop_timeout) {
                        (true, Some(own)) => own,
                        _ => self.config.stop_timeout,
                    };
                    let run = self.jobs[i].run;
                    self.after(grace, Timer::StopKill(i, run));
                }
            }
        }
    }

    fn register(&mut self, i: usize, status: &str) {
        let Some(consul) = &self.consul else {
            return;
        };
        let state = &self.jobs[i];
        let Some(health) = &state.job.health else {
            return;
        };
        let registration = consul::Registration {
            id: &state.service_id,
            name: &state.job.name,
            port: state.job.port.unwrap_or(0),
            address: &state.ip,
            tags: &state.job.tags,
            enable_tag_override: state.job.enable_tag_override,
            ttl: health.ttl,
            status,
            deregister_after: state.job.deregister_critical_service_after.as_deref(),
        };
        match consul.register(&registration) {
            Ok(()) => {
                self.log
                    .debug(&format!("service registered: {}", state.service_id));
                self.jobs[i].registered = true;
            }
            // Retried at the next check.
            Err(e) => self.log.error(&format!("service registration failed: {e}")),
        }
    }

    fn deregister(&mut self, i: usize) {
        if let Some(consul) = &self.consul {
            if let Err(e) = consul.deregister(&self.jobs[i].service_id) {
                self.log.error(&e);
            }
        }
    }

    fn poll_watch(&mut self, i: usize) {
        if self.shutdown.is_some() {
            return;
        }
        let watch = self.config.watches[i].clone();
        self.after(watch.interval, Timer::WatchPoll(i));
        let Some(consul) = &self.consul else {
            return;
        };
        let instances = match consul.passing(&watch.name, &watch.tag, &watch.dc) {
            Ok(found) => found,
            Err(e) => {
                self.log.error(&format!("watch.{}: {e}", watch.name));
                return;
            }
        };
        if instances == self.watches[i].instances {
            return;
        }
        let healthy = !instances.is_empty();
        self.watches[i].instances = instances;
        let source = format!("watch.{}", watch.name);
        self.publish(Event {
            code: "changed",
            source: source.clone(),
        });
        self.publish(Event {
            code: if healthy { "healthy" } else { "unhealthy" },
            source,
        });
    }

    /// The telemetry service `containerpilot`: registered, then its TTL passed every 5 s.
    fn heartbeat(&mut self) {
        if self.shutdown.is_some() {
            return;
        }
        self.after(Duration::from_secs(5), Timer::Heartbeat);
        let (Some(consul), Some((id, ip, port))) = (&self.consul, &self.telemetry_service) else {
            return;
        };
        if self.maintenance {
            return;
        }
        let tags = self
            .config
            .telemetry
            .as_ref()
            .map(|t| t.tags.clone())
            .unwrap_or_default();
        let registration = consul::Registration {
            id,
            name: "containerpilot",
            port: *port,
            address: ip,
            tags: &tags,
            enable_tag_override: false,
            ttl: 15,
            status: "passing",
            deregister_after: None,
        };
        if let Err(e) = consul.register(&registration).and_then(|_| consul.pass(id)) {
            self.log.error(&format!("telemetry: {e}"));
        }
    }

    fn control(&mut self, command: control::Command) -> Response {
        match command {
            control::Command::PutEnv(vars) => {
                self.env.extend(vars);
                Response::empty(200)
            }
            control::Command::PutMetric(values) => {
                for (name, value) in values {
                    if let Err(e) = self.metrics.record(&name, value) {
                        self.log.error(&format!("control: {e}"));
                        return Response::new(422, "text/plain", e);
                    }
                }
                Response::empty(200)
            }
            control::Command::Reload => {
                self.log.info("control: reloading");
                self.reload = true;
                self.begin_shutdown("a reload");
                Response::empty(200)
            }
            control::Command::Maintenance(enable) => {
                if enable && !self.maintenance {
                    self.maintenance = true;
                    self.publish(Event {
                        code: "enterMaintenance",
                        source: "global".into(),
                    });
                    for i in 0..self.jobs.len() {
                        if self.jobs[i].registered {
                            self.deregister(i);
                            self.jobs[i].status = "maintenance";
                            // ContainerPilot keeps them marked registered, so they are
                            // not registered again; the extension registers them again.
                            if self.config.extensions.reregister_after_maintenance {
                                self.jobs[i].registered = false;
                            }
                        }
                    }
                    if let (Some(consul), Some((id, _, _))) =
                        (&self.consul, &self.telemetry_service)
                    {
                        let _ = consul.deregister(id);
                    }
                } else if !enable && self.maintenance {
                    self.maintenance = false;
                    self.publish(Event {
                        code: "exitMaintenance",
                        source: "global".into(),
                    });
                }
                Response::empty(200)
            }
            control::Command::Health => {
                let unhealthy: Vec<String> = self
                    .jobs
                    .iter()
                    .filter(|j| j.job.health.is_some() && j.job.exec.is_some())
                    .filter(|j| j.status != "healthy")
                    .map(|j| {
                        let said = j.check_output.lock().map(|s| s.clone()).unwrap_or_default();
                        match (j.status, said.is_empty()) {
                            ("unhealthy", false) => format!("{}: unhealthy: {said}", j.job.name),
                            (status, _) => format!("{}: {status}", j.job.name),
                        }
                    })
                    .collect();
                if self.maintenance {
                    Response::new(503, "text/plain", "maintenance\n")
                } else if unhealthy.is_empty() {
                    Response::new(200, "text/plain", "healthy\n")
                } else {
                    Response::new(503, "text/plain", unhealthy.join("\n") + "\n")
                }
            }
        }
    }

    /// `/status`: the jobs, the services and the watches.
    fn status(&self) -> String {
        let jobs: Vec<serde_json::Value> = self
            .jobs
            .iter()
            .map(|j| serde_json::json!({"Name": j.job.name, "Status": if self.maintenance && j.job.is_service() { "maintenance" } else { j.status }}))
            .collect();
        let services: Vec<serde_json::Value> = self
            .jobs
            .iter()
            .filter(|j| j.job.is_service())
            .map(|j| serde_json::json!({"ID": j.service_id, "Name": j.job.name, "Address": j.ip, "Port": j.job.port, "Status": j.status}))
            .collect();
        let watches: Vec<String> = self
            .config
            .watches
            .iter()
            .map(|w| format!("watch.{}", w.name))
            .collect();
        serde_json::json!({
            "Version": env!("CARGO_PKG_VERSION"),
            "Hostname": self.hostname,
            "Jobs": jobs,
            "Services": services,
            "Watches": watches,
        })
        .to_string()
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
