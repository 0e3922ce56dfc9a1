//! Health checks and Consul: checks on their interval, registration on the first pass, TTL
//! passes, deregistration, watches of other services, and the telemetry service's heartbeat.

use std::time::Duration;

use super::{consul, process, Core, Event, Owner, Timer};

impl Core {
    pub(super) fn health_tick(&mut self, i: usize) {
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
    pub(super) fn check_done(&mut self, i: usize, passed: bool, why: &str) {
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

    pub(super) fn register(&mut self, i: usize, status: &str) {
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

    pub(super) fn deregister(&mut self, i: usize) {
        if let Some(consul) = &self.consul {
            if let Err(e) = consul.deregister(&self.jobs[i].service_id) {
                self.log.error(&e);
            }
        }
    }

    pub(super) fn poll_watch(&mut self, i: usize) {
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
    pub(super) fn heartbeat(&mut self) {
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
}
