//! The one JSON-over-HTTP API client (orchestrators, GitLab): HTTPS/HTTP through ureq, or
//! HTTP/1.1 over a unix socket (Docker's default endpoint), which ureq does not speak. Reads
//! are retried on transport errors and 5xx; writes are sent once (callers re-read state
//! instead). Every error names the service, the endpoint and what was being done.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use ureq::Agent;

use crate::error::{Error, Result};
use crate::net::{self, is_tls, retryable_error, retryable_status};
use crate::ui::printable;

const READ_ATTEMPTS: u32 = 4;

/// The largest reply read from an API, headers and body: far more than any listing or object
/// tagpilot asks for, and a bound on what a hostile server can make it hold.
pub(super) const REPLY_LIMIT: u64 = 64 << 20;

/// The longest one API request may take, body included: a server that trickles its answer
/// cannot hold a release.
const REQUEST_DEADLINE: Duration = Duration::from_secs(120);

pub struct Api {
    /// `Docker Swarm`, `GitLab`, ...: how errors name the service.
    pub engine: &'static str,
    /// What to check when a login (401) or a TLS handshake fails.
    hints: Hints,
    /// The endpoint as the user knows it (in messages).
    pub endpoint: String,
    transport: Transport,
    /// Header carrying the credential (`Authorization`, `X-Nomad-Token`) and its value.
    credential: Option<(&'static str, String)>,
    /// Where the credential came from (`NOMAD_TOKEN`, a kubeconfig user), for a refusal.
    credential_from: Option<String>,
    /// The longest one request may take, body included.
    deadline: Duration,
}

/// Where the user sets what a failed login or handshake needs.
#[derive(Clone, Copy)]
pub struct Hints {
    pub credential: &'static str,
    pub tls: &'static str,
    /// What a 403 means on this API (Nomad answers it for a missing or unknown token too).
    pub forbidden: &'static str,
}

const ORCHESTRATOR_HINTS: Hints = Hints {
    credential: "Check the variable named in orchestrator.credentials",
    tls: "For a private CA set orchestrator.ca_file; for a plain-HTTP endpoint use http://",
    forbidden: "The credential works but may not change this object",
};

enum Transport {
    /// `base` is `http(s)://host:port` plus any path prefix.
    Http {
        agent: Agent,
        base: String,
    },
    Unix(PathBuf),
}

pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
    pub(super) headers: Vec<(String, String)>,
}

impl Reply {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The engine's own words for an error: its `message` field, else the start of the body.
    pub fn reason(&self) -> String {
        let json = self.json();
        for key in ["message", "Message", "error"] {
            if let Some(text) = json.get(key).and_then(Value::as_str) {
                return printable(text.trim());
            }
        }
        let text = String::from_utf8_lossy(&self.body);
        let text: String = text.trim().chars().take(300).collect();
        printable(&text)
    }
}

impl Api {
    pub fn http(engine: &'static str, base: &str, tls: net::Tls) -> Api {
        Api {
            engine,
            // Messages show the address without a login in it.
            endpoint: net::split_login(base).0,
            transport: Transport::Http {
                agent: net::agent(tls, Duration::from_secs(60), net::Redirects::Refuse),
                base: base.trim_end_matches('/').to_string(),
            },
            credential: None,
            credential_from: None,
            hints: ORCHESTRATOR_HINTS,
            deadline: REQUEST_DEADLINE,
        }
    }

    pub fn unix(engine: &'static str, socket: PathBuf) -> Api {
        Api {
            engine,
            endpoint: format!("unix://{}", socket.display()),
            transport: Transport::Unix(socket),
            credential: None,
            credential_from: None,
            hints: ORCHESTRATOR_HINTS,
            deadline: REQUEST_DEADLINE,
        }
    }

    /// Lowers the per-request deadline (a rollout's watch is bound by its own timeout).
    pub fn with_deadline(mut self, deadline: Duration) -> Api {
        self.deadline = self.deadline.min(deadline);
        self
    }

    pub fn with_hints(mut self, hints: Hints) -> Api {
        self.hints = hints;
        self
    }

    /// Sends `value` in `header` with every request; `from` names where it came from.
    pub fn with_credential(
        mut self,
        header: &'static str,
        value: String,
        from: impl Into<String>,
    ) -> Api {
        self.credential = Some((header, value));
        self.credential_from = Some(from.into());
        self
    }

    pub fn get(&self, path: &str, what: &str) -> Result<Reply> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.send_once("GET", path, None, &[]) {
                Ok(reply) if retryable_status(reply.status) && attempt < READ_ATTEMPTS => {}
                Ok(reply) => return Ok(reply),
                Err(Failure::Http(e)) if retryable_error(&e) && attempt < READ_ATTEMPTS => {}
                Err(Failure::Unix(_)) if attempt < READ_ATTEMPTS => {}
                Err(failure) => return Err(self.unreachable(failure, what)),
            }
            super::retry::pause(attempt);
        }
    }

    /// A write, sent once: `body` is JSON, or `(content type, JSON)` for a PATCH flavour.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, &Value)>,
        what: &str,
    ) -> Result<Reply> {
        self.send_with_headers(method, path, body, &[], what)
    }

    /// A write with headers of its own on top of the client's (a per-request login).
    pub fn send_with_headers(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, &Value)>,
        headers: &[(&str, &str)],
        what: &str,
    ) -> Result<Reply> {
        let body = body.map(|(content_type, value)| (content_type, value.to_string()));
        let payload = body
            .as_ref()
            .map(|(t, b)| (*t, Payload::Bytes(b.as_bytes())));
        self.send_once(method, path, payload, headers)
            .map_err(|failure| self.unreachable(failure, what))
    }

    /// An upload of raw bytes, or of a file streamed from disk (never held in memory), sent
    /// once.
    pub fn upload(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        payload: Payload,
        what: &str,
    ) -> Result<Reply> {
        self.send_once(method, path, Some((content_type, payload)), &[])
            .map_err(|failure| self.unreachable(failure, what))
    }

    /// A GET of one named object (`job \`shop\``), as JSON: a 404 is bad input naming it.
    pub fn get_object(&self, path: &str, object: &str) -> Result<Value> {
        let what = format!("read {object}");
        let reply = self.get(path, &what)?;
        if reply.status == 404 {
            return Err(Error::input(format!(
                "{} at {} has no {object}",
                self.engine, self.endpoint
            )));
        }
        self.expect(&reply, &what)?;
        Ok(reply.json())
    }

    /// A write that must succeed.
    pub fn send_ok(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, &Value)>,
        what: &str,
    ) -> Result<Reply> {
        let reply = self.send(method, path, body, what)?;
        self.expect(&reply, what)?;
        Ok(reply)
    }

    /// A GET that must succeed, as JSON.
    pub fn get_json(&self, path: &str, what: &str) -> Result<Value> {
        let reply = self.get(path, what)?;
        self.expect(&reply, what)?;
        Ok(reply.json())
    }

    /// Turns a non-2xx reply into an error that says who refused what, and why.
    pub fn expect(&self, reply: &Reply, what: &str) -> Result<()> {
        if reply.ok() {
            return Ok(());
        }
        let reason = reply.reason();
        let lead = format!(
            "{} at {} answered {} to {what}",
            self.engine, self.endpoint, reply.status
        );
        Err(match reply.status {
            // A refused login is the user's to fix (exit 2), and no retry mends it. Nomad
            // answers an unknown ACL token with 403.
            401 => self.refused_login(&lead, &reason),
            403 if reason.contains("ACL token not found") => self.refused_login(&lead, &reason),
            403 => Error::failed(format!("{lead}: permission denied ({reason})"))
                .with_hint(self.hints.forbidden),
            404 => Error::input(format!("{lead}: not found ({reason})")),
            300..=399 => Error::failed(format!(
                "{lead}: a redirect to {}, which tagpilot does not follow, so the credential stays with {}",
                printable(reply.header("location").unwrap_or("nowhere given")),
                self.endpoint
            ))
            .with_hint("Point the endpoint at the address the API answers on itself"),
            _ => Error::failed(format!("{lead}: {reason}")),
        })
    }

    fn refused_login(&self, lead: &str, reason: &str) -> Error {
        let from = match &self.credential_from {
            Some(from) => format!("the credential from {from} was refused"),
            None => "no credential was sent".to_string(),
        };
        Error::input(format!("{lead}: not authenticated ({reason}): {from}"))
            .with_hint(self.hints.credential)
    }

    fn unreachable(&self, failure: Failure, what: &str) -> Error {
        let (cause, tls) = match failure {
            Failure::Http(e) => (e.to_string(), is_tls(&e)),
            Failure::Unix(e) => (e.to_string(), false),
        };
        let error = Error::failed(format!(
            "{} at {} could not be reached to {what}: {cause}",
            self.engine, self.endpoint
        ));
        // A TLS refusal is an answer: a release would hit it too.
        if tls {
            error.with_hint(self.hints.tls)
        } else {
            error
                .with_hint("Check the endpoint and that the engine is up and reachable from here")
                .unreachable()
        }
    }

    fn send_once(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, Payload)>,
        extra: &[(&str, &str)],
    ) -> std::result::Result<Reply, Failure> {
        let mut headers: Vec<(&str, &str)> = vec![("Accept", "application/json")];
        headers.extend_from_slice(extra);
        if let Some((name, value)) = &self.credential {
            headers.push((name, value));
        }
        if let Some((content_type, _)) = body {
            headers.push(("Content-Type", content_type));
        }
        match &self.transport {
            Transport::Http { agent, base } => {
                let url = format!("{base}{path}");
                http_request(agent, method, &url, &headers, body, self.deadline)
                    .map_err(Failure::Http)
            }
            Transport::Unix(socket) => {
                let bytes = match body {
                    None => None,
                    Some((content_type, Payload::Bytes(bytes))) => Some((content_type, bytes)),
                    Some((_, Payload::File(path))) => {
                        return Err(Failure::Unix(std::io::Error::other(format!(
                            "file uploads over a unix socket are not supported ({})",
                            path.display()
                        ))))
                    }
                };
                super::unix::request(socket, method, path, &headers, bytes, self.deadline)
                    .map_err(Failure::Unix)
            }
        }
    }
}

/// What a write sends.
#[derive(Clone, Copy)]
pub enum Payload<'a> {
    Bytes(&'a [u8]),
    /// Streamed from the file, opened for the request.
    File(&'a std::path::Path),
}

enum Failure {
    Http(ureq::Error),
    Unix(std::io::Error),
}

fn http_request(
    agent: &Agent,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, Payload)>,
    deadline: Duration,
) -> std::result::Result<Reply, ureq::Error> {
    let mut builder = ureq::http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let run = |request| run_within(agent, request, deadline);
    let run_file = |request| run_within(agent, request, deadline);
    let run_empty = |request| run_within(agent, request, deadline);
    let mut response = match body {
        Some((_, Payload::File(path))) => {
            let file = std::fs::File::open(path).map_err(ureq::Error::Io)?;
            // A declared length, not chunks: some proxies in front of GitLab refuse chunked
            // uploads.
            let length = file.metadata().map_err(ureq::Error::Io)?.len();
            let builder = builder.header("Content-Length", length.to_string());
            run_file(builder.body(file).map_err(ureq::Error::Http)?)?
        }
        Some((_, Payload::Bytes(bytes))) => run(builder.body(bytes).map_err(ureq::Error::Http)?)?,
        None => run_empty(builder.body(()).map_err(ureq::Error::Http)?)?,
    };
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = response
        .body_mut()
        .with_config()
        .limit(REPLY_LIMIT)
        .read_to_vec()?;
    Ok(Reply {
        status,
        body,
        headers,
    })
}

/// Sends `request` on `agent`; the whole exchange, reply body included, ends by `deadline`.
fn run_within<S: ureq::AsSendBody>(
    agent: &Agent,
    request: ureq::http::Request<S>,
    deadline: Duration,
) -> std::result::Result<ureq::http::Response<ureq::Body>, ureq::Error> {
    let request = agent
        .configure_request(request)
        .timeout_global(Some(deadline))
        .build();
    agent.run(request)
}
