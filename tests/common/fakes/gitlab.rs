//! A fake GitLab: the parts of the REST API v4 that publishing uses. Releases (`GET`, `POST`
//! answering 409 when the release exists, `PUT`, asset links whose names must be unique) and
//! the generic package registry (`PUT` of a file, which like GitLab's adds another file when
//! the name is already there; the packages and package-files listings with `file_sha256`).
//! Every request needs the job token (`JOB-TOKEN`) or a `PRIVATE-TOKEN`; anything else is 401.
//! It is a fake: it models only what tagpilot reads and writes.
//!
//! It can play an older GitLab (`version`): as GitLab's docs on the CI job token and each API
//! say, a job token is accepted on the Releases API from 14.5, on Release links from 15.1, on
//! the packages listing from 15.3 and on package files listings from 16.0; before that it is
//! answered 401. Older `PackageFile` entities have no `file_sha256`, and FIPS mode leaves
//! out `file_md5` (`lists_sha256`, `lists_md5`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use crate::common::http::{Request, Server};
use crate::common::sha256_hex;

#[derive(Clone, Debug)]
pub struct Link {
    pub id: u64,
    pub name: String,
    pub url: String,
    pub link_type: String,
    pub direct_asset_path: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Release {
    pub tag: String,
    pub name: String,
    pub description: String,
    pub links: Vec<Link>,
}

#[derive(Clone, Debug)]
pub struct PackageFile {
    pub id: u64,
    pub name: String,
    pub sha256: String,
    pub md5: String,
    pub size: usize,
}

#[derive(Clone, Debug)]
pub struct Package {
    pub id: u64,
    pub name: String,
    pub version: String,
    pub files: Vec<PackageFile>,
}

pub struct State {
    pub project: String,
    /// The GitLab version it plays, `(major, minor)`.
    pub version: (u32, u32),
    pub lists_sha256: bool,
    pub lists_md5: bool,
    pub token: String,
    pub releases: Vec<Release>,
    pub packages: Vec<Package>,
    /// Requests that changed something.
    pub writes: u32,
    /// Every request, answered or refused.
    pub requests: u32,
    /// The next upload is stored, then answered 502, as when a connection drops after the
    /// server took the file.
    pub drop_next_upload_reply: bool,
    /// The next release creation finds that another job created the release a moment before
    /// (with other notes and no links), and is answered 409 "Release already exists".
    pub another_job_creates_first: bool,
    /// The project's package settings: "Reject duplicates" (a second file of the same name
    /// in a version is refused, 400) and protected packages (no upload at all, 403).
    pub reject_duplicates: bool,
    pub protected_packages: bool,
    next_id: u64,
}

pub struct FakeGitLab {
    pub server: Server,
    pub state: Arc<Mutex<State>>,
    /// Holds release creation until opened, so a test can act while a client waits on it.
    pub gate: Arc<Gate>,
}

#[derive(Default)]
pub struct Gate {
    armed: AtomicBool,
    arrived: AtomicBool,
    open: AtomicBool,
}

impl Gate {
    pub fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }

    pub fn arrived(&self) -> bool {
        self.arrived.load(Ordering::SeqCst)
    }

    pub fn open(&self) {
        self.open.store(true, Ordering::SeqCst);
    }

    /// Waits here (without the state lock) while armed and not yet opened.
    fn pass(&self) {
        if !self.armed.load(Ordering::SeqCst) {
            return;
        }
        self.arrived.store(true, Ordering::SeqCst);
        while !self.open.load(Ordering::SeqCst) {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

impl FakeGitLab {
    /// A GitLab holding project `project` (an id or a `group/name` path), open to `token`.
    pub fn start(project: &str, token: &str) -> FakeGitLab {
        let state = Arc::new(Mutex::new(State {
            project: project.to_string(),
            token: token.to_string(),
            version: (17, 6),
            lists_sha256: true,
            lists_md5: true,
            releases: Vec::new(),
            packages: Vec::new(),
            writes: 0,
            requests: 0,
            drop_next_upload_reply: false,
            another_job_creates_first: false,
            reject_duplicates: false,
            protected_packages: false,
            next_id: 100,
        }));
        let shared = Arc::clone(&state);
        let gate = Arc::new(Gate::default());
        let gate_shared = Arc::clone(&gate);
        let server = Server::start_with_headers(move |request| {
            if request.method == "POST" && request.path.ends_with("/releases") {
                gate_shared.pass();
            }
            let (status, body) = handle(&mut shared.lock().unwrap(), request);
            paginated(request, status, body)
        });
        FakeGitLab {
            server,
            state,
            gate,
        }
    }

    /// `CI_API_V4_URL`.
    pub fn api_url(&self) -> String {
        format!("{}/api/v4", self.server.url())
    }

    pub fn release(&self, tag: &str) -> Option<Release> {
        let state = self.state.lock().unwrap();
        state.releases.iter().find(|r| r.tag == tag).cloned()
    }

    /// Every stored file of a package version named `file`, oldest first.
    pub fn files(&self, package: &str, version: &str, file: &str) -> Vec<PackageFile> {
        let state = self.state.lock().unwrap();
        state
            .packages
            .iter()
            .filter(|p| p.name == package && p.version == version)
            .flat_map(|p| p.files.iter().filter(|f| f.name == file).cloned())
            .collect()
    }

    pub fn writes(&self) -> u32 {
        self.state.lock().unwrap().writes
    }
}

impl State {
    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }
}

/// The first GitLab version that accepts a job token on the API of `parts`, if not all do.
fn job_token_since(parts: &[&str]) -> Option<(u32, u32)> {
    match parts {
        ["releases", _, "assets", ..] => Some((15, 1)),
        ["releases", ..] => Some((14, 5)),
        ["packages", _, "package_files"] => Some((16, 0)),
        ["packages"] => Some((15, 3)),
        _ => None,
    }
}

fn handle(state: &mut State, request: &Request) -> (u16, Value) {
    state.requests += 1;
    let job_token = request.header("JOB-TOKEN");
    let token = job_token.or_else(|| request.header("PRIVATE-TOKEN"));
    if token != Some(state.token.as_str()) {
        return (401, json!({ "message": "401 Unauthorized" }));
    }
    let prefix = format!("/api/v4/projects/{}/", encode(&state.project));
    let Some(rest) = request.path.strip_prefix(&prefix) else {
        return not_found("Project");
    };
    let parts: Vec<String> = rest.split('/').map(decode).collect();
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    if job_token.is_some() && job_token_since(&parts).is_some_and(|since| state.version < since) {
        return (401, json!({ "message": "401 Unauthorized" }));
    }
    let method = request.method.as_str();
    match (method, parts.as_slice()) {
        ("GET", ["releases", tag]) => match state.releases.iter().find(|r| r.tag == *tag) {
            Some(release) => (200, release_json(release)),
            None => not_found("Release"),
        },
        ("POST", ["releases"]) => {
            let body = request.json();
            let tag = body["tag_name"].as_str().unwrap_or_default().to_string();
            if std::mem::take(&mut state.another_job_creates_first) {
                state.releases.push(Release {
                    tag: tag.clone(),
                    name: body["name"].as_str().unwrap_or_default().to_string(),
                    description: "Made by the other job.".to_string(),
                    links: Vec::new(),
                });
            }
            if state.releases.iter().any(|r| r.tag == tag) {
                return (409, json!({ "message": "Release already exists" }));
            }
            let mut release = Release {
                tag,
                name: body["name"].as_str().unwrap_or_default().to_string(),
                description: body["description"].as_str().unwrap_or_default().to_string(),
                links: Vec::new(),
            };
            for link in body["assets"]["links"].as_array().into_iter().flatten() {
                let link = new_link(state, link);
                if let Some(refusal) = link_refusal(&release.links, &link) {
                    return refusal;
                }
                release.links.push(link);
            }
            state.writes += 1;
            let reply = release_json(&release);
            state.releases.push(release);
            (201, reply)
        }
        ("PUT", ["releases", tag]) => {
            let body = request.json();
            let Some(release) = state.releases.iter_mut().find(|r| r.tag == *tag) else {
                return not_found("Release");
            };
            if let Some(name) = body["name"].as_str() {
                release.name = name.to_string();
            }
            if let Some(description) = body["description"].as_str() {
                release.description = description.to_string();
            }
            let reply = release_json(release);
            state.writes += 1;
            (200, reply)
        }
        ("POST", ["releases", tag, "assets", "links"]) => {
            let body = request.json();
            let link = new_link(state, &body);
            let Some(release) = state.releases.iter_mut().find(|r| r.tag == *tag) else {
                return not_found("Release");
            };
            if release.links.iter().any(|l| l.name == link.name) {
                return (
                    400,
                    json!({ "message": { "name": ["has already been taken"] } }),
                );
            }
            if let Some(refusal) = link_refusal(&release.links, &link) {
                return refusal;
            }
            let reply = link_json(&link);
            release.links.push(link);
            state.writes += 1;
            (201, reply)
        }
        ("PUT", ["releases", tag, "assets", "links", id]) => {
            let body = request.json();
            let Some(release) = state.releases.iter_mut().find(|r| r.tag == *tag) else {
                return not_found("Release");
            };
            let Some(link) = release.links.iter_mut().find(|l| l.id.to_string() == *id) else {
                return not_found("Link");
            };
            if let Some(url) = body["url"].as_str() {
                link.url = url.to_string();
            }
            let reply = link_json(link);
            state.writes += 1;
            (200, reply)
        }
        ("GET", ["packages"]) => {
            let name = request.param("package_name").map(decode);
            let list: Vec<Value> = state
                .packages
                .iter()
                .filter(|p| name.as_deref().is_none_or(|n| n == p.name))
                .map(|p| {
                    json!({ "id": p.id, "name": p.name, "version": p.version, "package_type": "generic" })
                })
                .collect();
            (200, Value::Array(list))
        }
        ("GET", ["packages", id, "package_files"]) => {
            match state.packages.iter().find(|p| p.id.to_string() == *id) {
                Some(package) => (
                    200,
                    Value::Array(
                        package
                            .files
                            .iter()
                            .map(|f| file_json(state, package.id, f))
                            .collect(),
                    ),
                ),
                None => not_found("Package"),
            }
        }
        ("PUT", ["packages", "generic", name, version, file]) => {
            if state.protected_packages {
                return (
                    403,
                    json!({ "message": "403 Forbidden - Package protected." }),
                );
            }
            let duplicate = state.packages.iter().any(|p| {
                p.name == *name && p.version == *version && p.files.iter().any(|f| f.name == *file)
            });
            if duplicate && state.reject_duplicates {
                return (
                    400,
                    json!({ "message": "Duplicate package is not allowed" }),
                );
            }
            let stored = PackageFile {
                id: state.id(),
                name: file.to_string(),
                sha256: sha256_hex(&request.body),
                md5: {
                    use md5::Digest;
                    md5::Md5::digest(&request.body)
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect()
                },
                size: request.body.len(),
            };
            let package_index = match state
                .packages
                .iter()
                .position(|p| p.name == *name && p.version == *version)
            {
                Some(index) => index,
                None => {
                    let id = state.id();
                    state.packages.push(Package {
                        id,
                        name: name.to_string(),
                        version: version.to_string(),
                        files: Vec::new(),
                    });
                    state.packages.len() - 1
                }
            };
            let package = &state.packages[package_index];
            let reply = file_json(state, package.id, &stored);
            let package = &mut state.packages[package_index];
            package.files.push(stored);
            state.writes += 1;
            if std::mem::take(&mut state.drop_next_upload_reply) {
                return (502, json!({ "message": "502 Bad Gateway" }));
            }
            if request.param("select") == Some("package_file") {
                (201, reply)
            } else {
                (201, json!({ "message": "201 Created" }))
            }
        }
        _ => not_found("Route"),
    }
}

/// GitLab's pagination of a listing: `per_page` (default 20) and `page`, with `X-Next-Page`
/// naming the next page while there is one.
fn paginated(request: &Request, status: u16, body: Value) -> (u16, Value, Vec<(String, String)>) {
    let Value::Array(items) = body else {
        return (status, body, Vec::new());
    };
    let number = |key: &str, default: usize| {
        request
            .param(key)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (per_page, page) = (number("per_page", 20).max(1), number("page", 1).max(1));
    let start = (page - 1) * per_page;
    let shown: Vec<Value> = items.iter().skip(start).take(per_page).cloned().collect();
    let next = if start + per_page < items.len() {
        (page + 1).to_string()
    } else {
        String::new()
    };
    (
        status,
        Value::Array(shown),
        vec![("X-Next-Page".to_string(), next)],
    )
}

/// GitLab's own rules for a release link (`Releases::Link` validations): its URL is unique in
/// the release, and `filepath` is `[-.\w/]+` ending in a letter or digit (so no `+`).
fn link_refusal(links: &[Link], link: &Link) -> Option<(u16, Value)> {
    if links.iter().any(|l| l.url == link.url) {
        return Some((
            400,
            json!({ "message": { "links.url": ["has already been taken"] } }),
        ));
    }
    let path = link.direct_asset_path.as_deref()?;
    let allowed = path
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '-' | '.' | '_' | '/'));
    let ends_well = path.chars().last().is_some_and(char::is_alphanumeric);
    (!allowed || !ends_well).then(|| {
        (
            400,
            json!({ "message": { "links.filepath": ["is in an invalid format"] } }),
        )
    })
}

fn new_link(state: &mut State, body: &Value) -> Link {
    Link {
        id: state.id(),
        name: body["name"].as_str().unwrap_or_default().to_string(),
        url: body["url"].as_str().unwrap_or_default().to_string(),
        link_type: body["link_type"].as_str().unwrap_or("other").to_string(),
        direct_asset_path: body["direct_asset_path"].as_str().map(str::to_string),
    }
}

fn release_json(release: &Release) -> Value {
    json!({
        "tag_name": release.tag,
        "name": release.name,
        "description": release.description,
        "assets": { "links": release.links.iter().map(link_json).collect::<Vec<_>>() },
        "_links": { "self": format!("https://gitlab.example.org/group/app/-/releases/{}", release.tag) },
    })
}

fn link_json(link: &Link) -> Value {
    json!({
        "id": link.id,
        "name": link.name,
        "url": link.url,
        "link_type": link.link_type,
        "direct_asset_url": link.direct_asset_path.as_ref().map(|p| format!("https://gitlab.example.org/group/app/-/releases/x/downloads{p}")),
    })
}

fn file_json(state: &State, package_id: u64, file: &PackageFile) -> Value {
    let mut entity = json!({
        "id": file.id,
        "package_id": package_id,
        "file_name": file.name,
        "size": file.size,
    });
    if state.lists_sha256 {
        entity["file_sha256"] = json!(file.sha256);
    }
    if state.lists_md5 {
        entity["file_md5"] = json!(file.md5);
    }
    entity
}

fn not_found(what: &str) -> (u16, Value) {
    (404, json!({ "message": format!("404 {what} Not Found") }))
}

/// Percent-encoding of one path segment, as clients send it.
fn encode(segment: &str) -> String {
    segment.replace('/', "%2F")
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(byte) = u8::from_str_radix(&text[i + 1..i + 3], 16) {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
