//! Telemetry: the config's metrics (set through `/v3/metric`) in Prometheus' text format on
//! `GET /metrics`, and `GET /status` with the jobs, services and watches as JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::TcpListener;
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::http::{serve, Response};
use super::Msg;
use crate::supervisor::config::{Metric, MetricKind};

/// Prometheus' default histogram buckets.
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// The quantiles a summary reports, over its last observations.
const QUANTILES: [f64; 3] = [0.5, 0.9, 0.99];
const WINDOW: usize = 1024;

#[derive(Clone, Default)]
pub struct Metrics(Arc<Mutex<BTreeMap<String, Series>>>);

struct Series {
    metric: Metric,
    value: f64,
    count: u64,
    buckets: [u64; 11],
    recent: Vec<f64>,
}

impl Metrics {
    pub fn new(metrics: &[Metric]) -> Metrics {
        let map = metrics
            .iter()
            .map(|m| {
                let series = Series {
                    metric: m.clone(),
                    value: 0.0,
                    count: 0,
                    buckets: [0; 11],
                    recent: Vec::new(),
                };
                (m.full_name.clone(), series)
            })
            .collect();
        Metrics(Arc::new(Mutex::new(map)))
    }

    /// Counters add, gauges set, histograms and summaries observe. An unknown name is an
    /// error, as in ContainerPilot.
    pub fn record(&self, name: &str, value: f64) -> Result<(), String> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let series = map
            .get_mut(name)
            .ok_or_else(|| format!("no metric named {name:?} in the config"))?;
        match series.metric.kind {
            MetricKind::Counter => series.value += value,
            MetricKind::Gauge => series.value = value,
            MetricKind::Histogram | MetricKind::Summary => {
                series.value += value;
                series.count += 1;
                for (slot, bound) in series.buckets.iter_mut().zip(BUCKETS) {
                    if value <= bound {
                        *slot += 1;
                    }
                }
                series.recent.push(value);
                if series.recent.len() > WINDOW {
                    series.recent.remove(0);
                }
            }
        }
        Ok(())
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        for (name, s) in map.iter() {
            let kind = match s.metric.kind {
                MetricKind::Counter => "counter",
                MetricKind::Gauge => "gauge",
                MetricKind::Histogram => "histogram",
                MetricKind::Summary => "summary",
            };
            let _ = writeln!(out, "# HELP {name} {}", s.metric.help);
            let _ = writeln!(out, "# TYPE {name} {kind}");
            match s.metric.kind {
                MetricKind::Counter | MetricKind::Gauge => {
                    let _ = writeln!(out, "{name} {}", s.value);
                }
                MetricKind::Histogram => {
                    for (count, bound) in s.buckets.iter().zip(BUCKETS) {
                        let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {count}");
                    }
                    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", s.count);
                    let _ = writeln!(out, "{name}_sum {}\n{name}_count {}", s.value, s.count);
                }
                MetricKind::Summary => {
                    let mut sorted = s.recent.clone();
                    sorted.sort_by(f64::total_cmp);
                    for q in QUANTILES {
                        let value = match sorted.len() {
                            0 => f64::NAN,
                            n => sorted[((q * n as f64).ceil() as usize).clamp(1, n) - 1],
                        };
                        let _ = writeln!(out, "{name}{{quantile=\"{q}\"}} {value}");
                    }
                    let _ = writeln!(out, "{name}_sum {}\n{name}_count {}", s.value, s.count);
                }
            }
        }
        out
    }
}

/// Serves `/metrics` and `/status` on `address` (`IP:port`).
pub fn listen(address: &str, metrics: Metrics, core: Sender<Msg>) -> std::io::Result<()> {
    let listener = TcpListener::bind(address)?;
    let core = Mutex::new(core);
    serve(
        move || listener.accept().map(|(s, _)| s),
        move |request| match (request.method.as_str(), request.path.as_str()) {
            ("GET", "/metrics") => Response::new(
                200,
                "text/plain; version=0.0.4",
                metrics.render().into_bytes(),
            ),
            ("GET", "/status") => {
                let (reply, answer) = channel();
                let sent = core
                    .lock()
                    .map(|c| c.send(Msg::Status(reply)).is_ok())
                    .unwrap_or(false);
                match sent.then(|| answer.recv_timeout(Duration::from_secs(10)).ok()) {
                    Some(Some(status)) => Response::new(200, "application/json", status),
                    _ => Response::empty(500),
                }
            }
            (_, "/metrics" | "/status") => Response::empty(405),
            _ => Response::empty(404),
        },
    );
    Ok(())
}
