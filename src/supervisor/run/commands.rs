//! What the control socket asks of the core, and `/status`.

use super::http::Response;
use super::{control, Core, Event};

impl Core {
    pub(super) fn control(&mut self, command: control::Command) -> Response {
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
    pub(super) fn status(&self) -> String {
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
