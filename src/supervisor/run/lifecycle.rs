//! A job's life: its runs, its exit events, restarts, stopping (with its pre-stop jobs) and
//! the supervisor's shutdown.

use std::time::Instant;

use super::process::{self, Ended};
use super::{env_name, waits_for_stop, Core, Event, Owner, Timer};
use crate::supervisor::config::When;

impl Core {
    pub(super) fn start_job(&mut self, i: usize) {
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
    pub(super) fn job_started_first(&mut self, i: usize) {
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

    pub(super) fn exited(&mut self, pid: u32, ended: Ended) {
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

    pub(super) fn will_restart(&self, i: usize) -> bool {
        let state = &self.jobs[i];
        self.shutdown.is_none()
            && !matches!(state.job.when, When::Interval(_))
            && state.restarts_left != Some(0)
    }

    /// After a run: events, then a restart, a wait for the next event, or the end.
    pub(super) fn job_ended(&mut self, i: usize, success: bool, why: &str) {
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
    pub(super) fn stop_job(&mut self, i: usize) {
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

    pub(super) fn prestop_running(&self, i: usize) -> bool {
        let name = &self.jobs[i].job.name;
        self.jobs.iter().any(|j| {
            j.pid.is_some()
                && matches!(&j.job.when, When::Once { source, event } | When::Each { source, event }
                    if source == name && event == "stopping")
        })
    }

    /// SIGTERM to the job's process group, deregistration, then `stopped`, without waiting
    /// for the process to exit (as ContainerPilot: its exit events may come after).
    pub(super) fn finish_stop(&mut self, i: usize) {
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

    pub(super) fn begin_shutdown(&mut self, why: &str) {
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
    pub(super) fn stop_may_come(&self, i: usize) -> bool {
        match &self.jobs[i].job.when {
            When::Once { source, .. } | When::Each { source, .. } => self
                .jobs
                .iter()
                .any(|j| &j.job.name == source && (!j.done || j.awaiting_prestop)),
            _ => false,
        }
    }
}
