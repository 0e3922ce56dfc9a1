//! The control plane: HTTP on the unix socket `control.socket`, as ContainerPilot serves it
//! (`/v3/environ`, `/v3/reload`, `/v3/metric`, `/v3/maintenance/{enable,disable}`,
//! `/v3/ping`), plus `GET /v3/health` for the image's health check; and the client side of the
//! `-putenv`, `-putmetric`, `-reload`, `-maintenance`, `-ping` and `-health` flags.

use std::collections::BTreeMap;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::mpsc::{channel, Sender};
use std::time::Duration;

use super::http::{serve, Response};
use super::Msg;

/// What the core is asked to do.
pub enum Command {
    PutEnv(BTreeMap<String, String>),
    PutMetric(BTreeMap<String, f64>),
    Reload,
    Maintenance(bool),
    Health,
}

/// Listens on `socket` (its folder is made if missing; a stale socket is replaced).
pub fn listen(socket: &Path, core: Sender<Msg>) -> std::io::Result<()> {
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let _ = std::fs::remove_file(socket);
    let listener = UnixListener::bind(socket)?;
    let core = std::sync::Mutex::new(core);
    serve(
        move || listener.accept().map(|(s, _)| s),
        move |request| {
            let ask = |command: Command| {
                let (reply, answer) = channel();
                let sent = core
                    .lock()
                    .map(|c| c.send(Msg::Control(command, reply)).is_ok())
                    .unwrap_or(false);
                match sent {
                    true => answer
                        .recv_timeout(Duration::from_secs(30))
                        .unwrap_or_else(|_| Response::empty(500)),
                    false => Response::empty(500),
                }
            };
            let post = request.method == "POST";
            match request.path.as_str() {
                "/v3/ping" => Response::empty(200),
                "/v3/health" if request.method == "GET" => ask(Command::Health),
                "/v3/environ" if post => match parse_object(&request.body) {
                    Some(map) => {
                        let env = map
                            .into_iter()
                            .map(|(k, v)| (k, crate::supervisor::config::plain_string(&v)))
                            .collect();
                        ask(Command::PutEnv(env))
                    }
                    None => Response::empty(422),
                },
                "/v3/metric" if post => match parse_object(&request.body) {
                    Some(map) => {
                        let values: Option<BTreeMap<String, f64>> = map
                            .into_iter()
                            .map(|(k, v)| Some((k, number(&v)?)))
                            .collect();
                        match values {
                            Some(values) => ask(Command::PutMetric(values)),
                            None => Response::empty(422),
                        }
                    }
                    None => Response::empty(422),
                },
                "/v3/reload" if post => ask(Command::Reload),
                "/v3/maintenance/enable" if post => ask(Command::Maintenance(true)),
                "/v3/maintenance/disable" if post => ask(Command::Maintenance(false)),
                "/v3/health"
                | "/v3/environ"
                | "/v3/metric"
                | "/v3/reload"
                | "/v3/maintenance/enable"
                | "/v3/maintenance/disable" => Response::empty(405),
                _ => Response::empty(404),
            }
        },
    );
    Ok(())
}

fn parse_object(body: &[u8]) -> Option<serde_json::Map<String, serde_json::Value>> {
    match serde_json::from_slice(body).ok()? {
        serde_json::Value::Object(map) => Some(map),
        _ => None,
    }
}

fn number(value: &serde_json::Value) -> Option<f64> {
    match value {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A client request to a running supervisor; the reply's status and body.
pub fn request(
    socket: &Path,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> Result<(u16, String), String> {
    let api = crate::net::api::Api::unix("the supervisor", socket.to_path_buf())
        .with_deadline(Duration::from_secs(30));
    let reply = api
        .send(
            method,
            path,
            body.map(|b| ("application/json", b)),
            "ask it",
        )
        .map_err(|e| e.to_string())?;
    Ok((
        reply.status,
        String::from_utf8_lossy(&reply.body).into_owned(),
    ))
}
