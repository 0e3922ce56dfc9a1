//! tagpilot against hostile inputs: base images whose manifests point outside the blob store
//! or whose bytes were changed, servers that redirect credentials elsewhere, and careless
//! specs. Each test plays the hostile party with real parts where they exist (a registry whose
//! storage is tampered with, a redirecting HTTP server) and checks what reaches it.

mod common;

use std::path::{Path, PathBuf};

use std::sync::{Arc, Mutex};

use common::http::Server;
use common::registry::{self, Registry};
use common::*;
use serde_json::Value;

/// Writes `text` as the spec file `name` in `dir`.
fn spec_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let spec = dir.join(name);
    std::fs::write(&spec, text).unwrap();
    spec
}

/// `tagpilot image --output json --tag TAG --pipeline SPEC` in `repo`, then where to put it
/// (`--out DIR` or `--oci-layout DIR`) as the caller adds.
fn image(repo: &Path, tag: &str, spec: &Path) -> std::process::Command {
    let mut cmd = tagpilot(repo);
    cmd.args(["image", "--output", "json", "--tag", tag, "--pipeline"])
        .arg(spec);
    cmd
}

/// Pushes the DIRAC sample to `host` (plain HTTP when `insecure`), logged in as
/// `releaser:registry-s3cret` from a Docker config of its own.
fn push_to(host: &str, insecure: bool) -> (tempfile::TempDir, Run) {
    let work = dirac_repo();
    let repo = work.path().join("dirac");
    let insecure = if insecure { "  insecure: true\n" } else { "" };
    let spec = spec_file(
        work.path(),
        "app.yaml",
        &format!("name: dirac\nimage:\n  repository: {host}/lhcb/dirac\n{insecure}  install_path: /opt/dirac\n"),
    );
    let docker = work.path().join("docker");
    std::fs::create_dir_all(&docker).unwrap();
    // `releaser:registry-s3cret`, base64.
    std::fs::write(
        docker.join("config.json"),
        format!(
            "{{\"auths\": {{\"{host}\": {{\"auth\": \"cmVsZWFzZXI6cmVnaXN0cnktczNjcmV0\"}}}}}}"
        ),
    )
    .unwrap();
    let pushed = run(image(&repo, "v8r2p44", &spec)
        .arg("--out")
        .arg(work.path().join("out"))
        .env("DOCKER_CONFIG", &docker));
    (work, pushed)
}

/// Builds a scratch image with tagpilot into the layout `dir`, tagged `base`.
fn base_layout(repo: &Path, work: &Path, dir: &Path) {
    let spec = spec_file(
        work,
        "base.yaml",
        "name: base\nimage:\n  install_path: /base\n  tags: [\"base\"]\n",
    );
    run(image(repo, "v8r2p43", &spec).arg("--oci-layout").arg(dir)).ok();
}

fn blob_path(layout: &Path, digest: &str) -> PathBuf {
    let (algorithm, hex) = digest.split_once(':').unwrap();
    layout.join("blobs").join(algorithm).join(hex)
}

/// The manifest the layout's only index entry names, and its digest.
fn only_manifest(layout: &Path) -> (String, Value) {
    let index = read_json(&layout.join("index.json"));
    let digest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    (digest.clone(), read_json(&blob_path(layout, &digest)))
}

/// Stores `manifest` in the layout and points the index's only entry at it.
fn replace_manifest(layout: &Path, manifest: &Value) {
    let bytes = serde_json::to_vec(manifest).unwrap();
    let digest = format!("sha256:{}", sha256_hex(&bytes));
    std::fs::write(blob_path(layout, &digest), &bytes).unwrap();
    let mut index = read_json(&layout.join("index.json"));
    index["manifests"][0]["digest"] = Value::String(digest);
    index["manifests"][0]["size"] = Value::from(bytes.len());
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
}

fn app_on(work: &Path, base: &str) -> PathBuf {
    spec_file(
        work,
        "app.yaml",
        &format!("name: dirac\nimage:\n  base: {base}\n  install_path: /opt/dirac\n"),
    )
}

fn build(repo: &Path, spec: &Path, layout: &Path) -> Run {
    run(image(repo, "v8r2p44", spec).arg("--oci-layout").arg(layout))
}

/// No file in `dir` (recursively) holds `needle`.
fn nowhere_in(dir: &Path, needle: &[u8]) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return true;
    };
    entries.flatten().all(|entry| {
        let path = entry.path();
        if path.is_dir() {
            nowhere_in(&path, needle)
        } else {
            let bytes = std::fs::read(&path).unwrap_or_default();
            !bytes.windows(needle.len()).any(|w| w == needle)
        }
    })
}

const PINNED: &str = "registry.example.org/lhcb/dirac:8.2.44@sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";

/// A spec in `work` whose `staging` environment records the image in `app.yaml` of the
/// repository at `url`; `extra` is added to the environment (indented by four spaces).
fn deploy_spec(work: &Path, url: &str, extra: &str) -> PathBuf {
    let spec = work.join("deploy.yaml");
    std::fs::write(
        &spec,
        format!("name: DIRAC\ndeploy:\n  - environment: staging\n    repo: {url}\n    files: [{{ file: app.yaml }}]\n{extra}"),
    )
    .unwrap();
    spec
}

/// A bare deployment repository in `work` whose `app.yaml` names DIRAC 8.2.43.
fn deployment_repo(work: &Path) -> PathBuf {
    bare_repository(
        work,
        &[(
            "app.yaml",
            "image: registry.example.org/lhcb/dirac:8.2.43\n",
        )],
    )
}

/// `tagpilot deploy --env staging --tag v8r2p44 --image IMAGE --pipeline SPEC` in `repo`.
fn deploy(repo: &Path, spec: &Path, image: &str) -> std::process::Command {
    let mut cmd = tagpilot(repo);
    cmd.args([
        "deploy",
        "--env",
        "staging",
        "--tag",
        "v8r2p44",
        "--image",
        image,
        "--pipeline",
    ])
    .arg(spec);
    cmd
}

#[test]
fn a_layer_digest_that_climbs_out_of_the_layout_is_refused() {
    let work = dirac_repo();
    let repo = work.path().join("dirac");
    let base = work.path().join("base");
    base_layout(&repo, work.path(), &base);
    // What a hostile base would take with it: any file the runner can read.
    let secret = work.path().join("secret");
    std::fs::write(&secret, "the runner's private key\n").unwrap();
    let (_, mut manifest) = only_manifest(&base);
    let climb = format!(
        "sha256:../../../{}",
        secret.strip_prefix("/").unwrap().display()
    );
    manifest["layers"][0]["digest"] = Value::String(climb);
    replace_manifest(&base, &manifest);

    let out = work.path().join("out");
    let spec = app_on(work.path(), &format!("oci-layout:{}:base", base.display()));
    let refused = build(&repo, &spec, &out).fails_with(2, "is not a digest");
    assert!(refused
        .stderr
        .contains("sha256 needs 64 lower-case hex digits"));
    assert!(
        nowhere_in(&out, b"the runner's private key"),
        "the secret was copied into the layout"
    );
}

#[test]
fn a_base_config_changed_under_its_digest_is_refused() {
    let work = dirac_repo();
    let repo = work.path().join("dirac");
    let base = work.path().join("base");
    base_layout(&repo, work.path(), &base);
    let (_, manifest) = only_manifest(&base);
    let config_digest = manifest["config"]["digest"].as_str().unwrap();
    let config_path = blob_path(&base, config_digest);
    let mut config = read_json(&config_path);
    config["config"]["Env"] = serde_json::json!(["LD_PRELOAD=/tmp/evil.so"]);
    config["config"]["Entrypoint"] = serde_json::json!(["/tmp/evil"]);
    std::fs::write(&config_path, serde_json::to_vec(&config).unwrap()).unwrap();

    let out = work.path().join("out");
    let spec = app_on(work.path(), &format!("oci-layout:{}:base", base.display()));
    build(&repo, &spec, &out).fails_with(1, &format!("content named {config_digest} hashes to"));
    assert!(nowhere_in(&out, b"LD_PRELOAD"));
}

#[test]
fn a_registry_serving_a_tampered_base_config_is_refused() {
    if !registry::available() {
        return;
    }
    let registry = Registry::start(true);
    let work = dirac_repo();
    let repo = work.path().join("dirac");
    let spec = spec_file(
        work.path(),
        "base.yaml",
        &format!(
            "name: base\nimage:\n  repository: {}/base/mini\n  install_path: /base\n  tags: [\"base\"]\n",
            registry.host()
        ),
    );
    let pushed = run(image(&repo, "v8r2p43", &spec)
        .arg("--out")
        .arg(work.path().join("base-out"))
        .env("DOCKER_CONFIG", registry.docker_config()))
    .ok();
    let record: Value = serde_json::from_str(&pushed.stdout).unwrap();
    let layout = PathBuf::from(record["image"]["layout"].as_str().unwrap());
    let (_, manifest) = only_manifest(&layout);
    let config_digest = manifest["config"]["digest"].as_str().unwrap();
    // The registry's own storage, changed behind its back: it serves what is on disk.
    let hex = config_digest.trim_start_matches("sha256:");
    let stored = registry
        .storage()
        .join("data/docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data");
    let mut config: Value = serde_json::from_slice(&std::fs::read(&stored).unwrap()).unwrap();
    config["config"]["Env"] = serde_json::json!(["LD_PRELOAD=/tmp/evil.so"]);
    std::fs::write(&stored, serde_json::to_vec(&config).unwrap()).unwrap();

    let out = work.path().join("out");
    let app = app_on(work.path(), &format!("{}/base/mini:base", registry.host()));
    run(image(&repo, "v8r2p44", &app)
        .arg("--oci-layout")
        .arg(&out)
        .env("DOCKER_CONFIG", registry.docker_config()))
    .fails_with(1, &format!("content named {config_digest} hashes to"));
    assert!(nowhere_in(&out, b"LD_PRELOAD"));
}

/// A server that logs every request it gets and answers 200 `{}`: the other place a hostile
/// server sends tagpilot to.
fn elsewhere() -> (Server, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let server = Server::start(move |request| {
        let headers: Vec<String> = request
            .headers
            .iter()
            .map(|(n, v)| format!("{n}: {v}"))
            .collect();
        log.lock().unwrap().push(format!(
            "{} {}\n{}",
            request.method,
            request.path,
            headers.join("\n")
        ));
        (200, serde_json::json!({}))
    });
    (server, seen)
}

#[test]
fn a_gitlab_api_redirect_is_not_followed_with_the_job_token() {
    let (other, seen) = elsewhere();
    let target = format!("http://127.0.0.1:{}", other.port);
    let hostile = Server::start_with_headers(move |request| {
        let location = format!("{target}{}", request.path);
        (302, Value::Null, vec![("Location".to_string(), location)])
    });
    let repo = Repo::new();
    repo.write("tagpilot.yaml", "name: app\n")
        .write("app.py", "print(1)\n")
        .commit("Add the app")
        .tag("v1.0.0");
    let refused = run(tagpilot(repo.path())
        .args(["release", "--tag", "v1.0.0", "--skip", "deploy"])
        .env(
            "CI_API_V4_URL",
            format!("http://127.0.0.1:{}/api/v4", hostile.port),
        )
        .env("CI_PROJECT_ID", "group/app")
        .env("CI_JOB_TOKEN", "job-token-s3cret"))
    .fails_with(1, "which tagpilot does not follow");
    assert!(!refused.stderr.contains("job-token-s3cret"));
    let seen = seen.lock().unwrap();
    assert!(
        seen.is_empty(),
        "requests reached the redirect's target: {seen:?}"
    );
}

#[test]
fn a_git_redirect_to_another_host_gets_no_deploy_token() {
    let (other, seen) = elsewhere();
    let target = format!("http://127.0.0.1:{}", other.port);
    let hostile = Server::start_with_headers(move |request| {
        let location = format!("{target}{}?{}", request.path, request.query);
        (302, Value::Null, vec![("Location".to_string(), location)])
    });
    let work = dirac_repo();
    let repo = work.path().join("dirac");
    let url = format!("http://127.0.0.1:{}/group/deploy.git", hostile.port);
    let spec = deploy_spec(
        work.path(),
        &url,
        "    credentials: { token: DEPLOY_TOKEN }\n",
    );
    let refused = run(deploy(&repo, &spec, PINNED).env("DEPLOY_TOKEN", "deploy-token-s3cret"));
    assert_ne!(refused.code, 0);
    assert!(!refused.stderr.contains("deploy-token-s3cret"));
    let seen = seen.lock().unwrap();
    assert!(
        seen.iter()
            .all(|r| !r.to_lowercase().contains("authorization")),
        "the token followed the redirect: {seen:?}"
    );
}

#[test]
fn an_upload_location_on_another_host_gets_no_registry_credential() {
    let (other, seen) = elsewhere();
    let other_port = other.port;
    // A registry that wants a Basic login, has nothing, and sends uploads to another host.
    let hostile = Server::start_with_headers(move |request| {
        if request.header("authorization").is_none() {
            let challenge = (
                "WWW-Authenticate".to_string(),
                "Basic realm=\"r\"".to_string(),
            );
            return (401, Value::Null, vec![challenge]);
        }
        if request.method == "POST" && request.path.ends_with("/blobs/uploads/") {
            let location = format!("http://127.0.0.1:{other_port}/upload/session");
            return (202, Value::Null, vec![("Location".to_string(), location)]);
        }
        (404, Value::Null, Vec::new())
    });
    let host = format!("127.0.0.1:{}", hostile.port);
    let (_work, pushed) = push_to(&host, true);
    assert!(!pushed.stderr.contains("registry-s3cret"));
    let seen = seen.lock().unwrap();
    assert!(
        !seen.is_empty(),
        "the upload was not sent elsewhere at all: {}",
        pushed.stderr
    );
    assert!(
        seen.iter()
            .all(|r| !r.to_lowercase().contains("authorization")),
        "the registry credential went to the other host: {seen:?}"
    );
}

/// `tagpilot validate` of a spec written into `dir`.
fn validate(dir: &Path, spec: &str) -> Run {
    let file = dir.join("tagpilot-spec.yaml");
    std::fs::write(&file, spec).unwrap();
    let repo = Repo::new();
    repo.write("app.py", "print(1)\n").commit("app");
    run(tagpilot(repo.path())
        .args(["validate", "--pipeline"])
        .arg(&file))
}

#[test]
fn a_deploy_path_outside_the_repository_is_refused_at_validate_time() {
    let dir = tempfile::tempdir().unwrap();
    for path in ["/etc", "../../outside", "overlays/../../x"] {
        let spec = format!(
            "name: app\ndeploy:\n  - environment: staging\n    repo: file:///srv/deploy.git\n    path: {path}\n    files: [{{ file: app.yaml }}]\n"
        );
        validate(dir.path(), &spec).fails_with(
            2,
            &format!("tagpilot-spec.yaml:5:11: deploy path `{path}` must be a folder inside the repository"),
        );
    }
}

#[test]
fn a_symlink_in_the_deployment_repository_is_not_followed_out_of_the_clone() {
    let work = dirac_repo();
    let repo = work.path().join("dirac");
    let outside = work.path().join("outside.yaml");
    let before = "image: registry.example.org/lhcb/dirac:8.2.43\n";
    std::fs::write(&outside, before).unwrap();
    let seed = Repo::new();
    seed.write("README", "deployments\n")
        .symlink("app.yaml", outside.to_str().unwrap())
        .commit("seed");
    let bare = work.path().join("deploy.git");
    sh(std::process::Command::new("git")
        .args(["clone", "-q", "--bare"])
        .arg(seed.path())
        .arg(&bare));
    let spec = deploy_spec(work.path(), &format!("file://{}", bare.display()), "");
    run(&mut deploy(&repo, &spec, PINNED)).fails_with(2, "app.yaml in file://");
    assert_eq!(
        std::fs::read_to_string(&outside).unwrap(),
        before,
        "a file outside the clone changed"
    );
}

#[test]
fn an_empty_deploy_message_is_refused_at_validate_time() {
    let dir = tempfile::tempdir().unwrap();
    let spec = "name: app\ndeploy:\n  - environment: staging\n    repo: file:///srv/deploy.git\n    message: \"\"\n    files: [{ file: app.yaml }]\n";
    validate(dir.path(), spec).fails_with(2, "tagpilot-spec.yaml:5:14: deploy message is empty");
}

#[test]
fn control_characters_in_names_are_refused_at_validate_time() {
    let dir = tempfile::tempdir().unwrap();
    let spec = "name: app\ntarball:\n  file: \"app.tar.gz\\n0000  evil.tar.gz\"\n";
    validate(dir.path(), spec).fails_with(2, "tagpilot-spec.yaml:3:9: tarball.file");
    let spec = "name: app\nimage:\n  install_path: \"/opt/app\\e[31m\"\n";
    validate(dir.path(), spec)
        .fails_with(2, "tagpilot-spec.yaml:3:17: contains a control character");
}

#[test]
fn an_ssh_key_path_cannot_run_a_command() {
    let Some(sshd) = common::sshd::Sshd::start() else {
        return;
    };
    let work = dirac_repo();
    let repo = work.path().join("dirac");
    let bare = deployment_repo(work.path());
    // A key file whose name would end the quotes around it and run a command (`cd` alone
    // goes to $HOME, so the file it makes can be looked for).
    let keys = work.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let key = keys.join("id'; cd; touch INJECTED; '");
    std::fs::copy(sshd.client_key(), &key).unwrap();
    let spec = deploy_spec(
        work.path(),
        &sshd.url(&bare),
        "    credentials: { ssh_key: DEPLOY_KEY }
",
    );
    let home = work.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    run(deploy(&repo, &spec, PINNED)
        .env("DEPLOY_KEY", &key)
        .env("HOME", &home))
    .ok();
    assert!(
        !home.join("INJECTED").exists(),
        "the key path ran a command"
    );
}

#[test]
fn the_image_repository_and_ca_file_take_variables() {
    if !registry::available() {
        return;
    }
    let registry = Registry::start(true);
    let work = dirac_repo();
    let repo = work.path().join("dirac");
    let spec = spec_file(
        work.path(),
        "app.yaml",
        "name: dirac\nimage:\n  repository: ${REGISTRY_HOST}/lhcb/dirac\n  install_path: /opt/dirac\n",
    );
    let pushed = run(image(&repo, "v8r2p44", &spec)
        .arg("--out")
        .arg(work.path().join("out"))
        .env("REGISTRY_HOST", registry.host())
        .env("DOCKER_CONFIG", registry.docker_config()))
    .ok();
    let record: Value = serde_json::from_str(&pushed.stdout).unwrap();
    assert!(record["pushed"]["reference"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{}/lhcb/dirac@sha256:", registry.host())));

    let with_ca = format!(
        "{}  ca_file: ${{CA_PATH}}\n",
        std::fs::read_to_string(&spec).unwrap()
    );
    std::fs::write(&spec, with_ca).unwrap();
    run(image(&repo, "v8r2p44", &spec)
        .arg("--out")
        .arg(work.path().join("out"))
        .env("REGISTRY_HOST", registry.host())
        .env("CA_PATH", "/nonexistent/expanded-ca.pem")
        .env("DOCKER_CONFIG", registry.docker_config()))
    .fails_with(2, "/nonexistent/expanded-ca.pem");
}

#[test]
fn a_secret_written_as_a_credential_value_is_refused_without_being_printed() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tagpilot-spec.yaml");
    std::fs::write(
        &file,
        "name: app\ndeploy:\n  - environment: staging\n    repo: file:///srv/deploy.git\n    files: [{ file: app.yaml }]\n    credentials: { token: \"${DEPLOY_TOKEN}\" }\n    orchestrator: { kind: nomad, endpoint: http://127.0.0.1:1, services: [shop], credentials: { token: glpat-s3cret-value } }\n",
    )
    .unwrap();
    let repo = Repo::new();
    repo.write("app.py", "print(1)\n").commit("app");
    let refused = run(tagpilot(repo.path())
        .args(["validate", "--pipeline"])
        .arg(&file)
        .env("DEPLOY_TOKEN", "glpat-deploy-s3cret"))
    .fails_with(2, "tagpilot-spec.yaml:6:27: deploy credentials.token must be the name of an environment variable");
    assert!(refused
        .stderr
        .contains("orchestrator credentials.token must be the name"));
    for secret in ["glpat-deploy-s3cret", "glpat-s3cret-value"] {
        assert!(!refused.stderr.contains(secret), "{}", refused.stderr);
    }
}

#[test]
fn a_login_in_the_repository_address_is_used_but_never_printed() {
    let (server, seen) = elsewhere();
    let work = dirac_repo();
    let repo = work.path().join("dirac");
    let url = format!(
        "http://oauth2:${{T}}@127.0.0.1:{}/group/deploy.git",
        server.port
    );
    let spec = deploy_spec(work.path(), &url, "");
    let failed = run(deploy(&repo, &spec, PINNED)
        .args(["--output", "json"])
        .env("T", "url-token-s3cret"));
    assert_ne!(failed.code, 0, "the fake is no git server");
    assert!(
        !failed.stderr.contains("url-token-s3cret"),
        "{}",
        failed.stderr
    );
    assert!(
        !failed.stdout.contains("url-token-s3cret"),
        "{}",
        failed.stdout
    );
    assert!(
        failed.stderr.contains(&format!(
            "http://127.0.0.1:{}/group/deploy.git",
            server.port
        )),
        "{}",
        failed.stderr
    );
    // The login still reached the server it was written for, as a header.
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode("oauth2:url-token-s3cret");
    let seen = seen.lock().unwrap();
    assert!(
        seen.iter().any(|r| r.contains(&format!("Basic {basic}"))),
        "{seen:?}"
    );
}

#[test]
fn a_listing_that_never_ends_is_cut_with_a_clear_error() {
    let pages = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = Arc::clone(&pages);
    let hostile = Server::start_with_headers(move |request| {
        if request.method != "GET" {
            return (403, Value::Null, Vec::new());
        }
        counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let page: u64 = request
            .param("page")
            .and_then(|p| p.parse().ok())
            .unwrap_or(1);
        let next = ("X-Next-Page".to_string(), (page + 1).to_string());
        (200, serde_json::json!([]), vec![next])
    });
    let repo = Repo::new();
    repo.write("tagpilot.yaml", "name: app\n")
        .write("app.py", "print(1)\n")
        .commit("Add the app")
        .tag("v1.0.0");
    run(tagpilot(repo.path())
        .args(["release", "--tag", "v1.0.0", "--skip", "deploy"])
        .env(
            "CI_API_V4_URL",
            format!("http://127.0.0.1:{}/api/v4", hostile.port),
        )
        .env("CI_PROJECT_ID", "group/app")
        .env("CI_JOB_TOKEN", "job-token"))
    .fails_with(1, "goes on past 100 pages");
    // 100 pages and the one that goes past them, for each of the (at most 3) attempts a
    // package check gets: bounded, however long the server would go on.
    let asked = pages.load(std::sync::atomic::Ordering::Relaxed);
    assert!((101..=303).contains(&asked), "{asked} pages asked for");
}

#[test]
fn an_endless_reply_on_the_docker_socket_is_cut_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("docker.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    std::thread::spawn(move || {
        use std::io::Write;
        for stream in listener.incoming().take(4) {
            let Ok(mut stream) = stream else { return };
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n[");
            // At most 256 MiB, then stop: the test bounds itself.
            let block = vec![b' '; 1 << 20];
            for _ in 0..256 {
                if stream.write_all(&block).is_err() {
                    break;
                }
            }
        }
    });
    let work = dirac_repo();
    let repo = work.path().join("dirac");
    let bare = deployment_repo(work.path());
    let spec = deploy_spec(
        work.path(),
        &format!("file://{}", bare.display()),
        "    orchestrator: { kind: swarm, services: [web], timeout: 20s }\n",
    );
    let failed = run(
        deploy(&repo, &spec, PINNED).env("DOCKER_HOST", format!("unix://{}", socket.display()))
    );
    assert_ne!(failed.code, 0);
    assert!(
        failed.stderr.contains("larger than 64 MiB"),
        "{}",
        failed.stderr
    );
}

#[test]
fn a_deploy_of_another_versions_image_is_refused() {
    let work = dirac_repo();
    let repo = work.path().join("dirac");
    let bare = deployment_repo(work.path());
    let spec = deploy_spec(work.path(), &format!("file://{}", bare.display()), "");
    let newer = PINNED.replace(":8.2.44@", ":8.2.45@");
    run(&mut deploy(&repo, &spec, &newer)).fails_with(
        2,
        "is version 8.2.45, but this is the release of DIRAC 8.2.44",
    );
    assert!(
        !sh(std::process::Command::new("git")
            .arg("--git-dir")
            .arg(&bare)
            .args(["show", "main:app.yaml"]))
        .contains("8.2.45"),
        "the deployment repository changed"
    );
}

#[test]
fn a_server_that_trickles_its_answer_cannot_outlast_the_rollout_timeout() {
    // An engine API that answers every request with a head, then one byte a second, for
    // at most 90 s: it never finishes a reply within the test.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(16) {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                use std::io::Write;
                let head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n";
                if stream.write_all(head).is_err() {
                    return;
                }
                for _ in 0..90 {
                    if stream.write_all(b" ").is_err() {
                        return;
                    }
                    std::thread::sleep(std::time::Duration::from_secs(1));
                }
            });
        }
    });
    let work = dirac_repo();
    let repo = work.path().join("dirac");
    let bare = deployment_repo(work.path());
    let spec = deploy_spec(
        work.path(),
        &format!("file://{}", bare.display()),
        &format!("    orchestrator: {{ kind: nomad, endpoint: \"http://127.0.0.1:{port}\", services: [shop], timeout: 3s }}\n"),
    );
    let started = std::time::Instant::now();
    let failed = run(&mut deploy(&repo, &spec, PINNED));
    let took = started.elapsed();
    assert_ne!(failed.code, 0);
    assert!(
        failed.stderr.contains("Nomad at http://127.0.0.1"),
        "{}",
        failed.stderr
    );
    // Four attempts of a 3 s deadline and their backoff, far from the server's 90 s.
    assert!(took.as_secs() < 45, "took {took:?}: {}", failed.stderr);
}

#[test]
fn an_https_registry_with_a_plain_http_token_realm_gets_no_password() {
    if !registry::available() {
        return;
    }
    let keys = tempfile::tempdir().unwrap();
    let issuer = common::token::TokenIssuer::start(keys.path(), registry::USER, registry::PASSWORD);
    let registry = Registry::start_tls(registry::Auth::Token {
        realm: issuer.realm(),
        certificate: issuer.certificate.clone(),
    });
    let work = dirac_repo();
    let repo = work.path().join("dirac");
    let spec = spec_file(
        work.path(),
        "app.yaml",
        &format!(
            "name: dirac\nimage:\n  repository: {}/lhcb/dirac\n  ca_file: {}\n  install_path: /opt/dirac\n",
            registry.host(),
            registry.storage().join("ca.pem").display()
        ),
    );
    let refused = run(image(&repo, "v8r2p44", &spec)
        .arg("--out")
        .arg(work.path().join("out"))
        .env("DOCKER_CONFIG", registry.docker_config()))
    .fails_with(
        2,
        "which is not HTTPS; tagpilot will not send a password there",
    );
    assert!(!refused.stderr.contains(registry::PASSWORD));
    let asked = issuer.issued.load(std::sync::atomic::Ordering::Relaxed)
        + issuer.refused.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(asked, 0, "the token service was asked");
}

#[test]
fn a_loopback_port_slow_to_answer_tls_is_not_downgraded_to_plain_http() {
    // A port that holds the first connection (the HTTPS try) silent past the 5 s probe, then
    // answers plain HTTP as a registry wanting a Basic login. A downgrade would send the
    // password there in clear.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let cleartext = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = Arc::clone(&cleartext);
    std::thread::spawn(move || {
        use std::io::{BufRead, BufReader, Write};
        for (n, stream) in listener.incoming().take(12).enumerate() {
            let Ok(mut stream) = stream else { return };
            if n == 0 {
                std::thread::sleep(std::time::Duration::from_secs(6));
                continue;
            }
            let seen = Arc::clone(&seen);
            std::thread::spawn(move || {
                // A TLS hello has no line end to wait for.
                let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(2)));
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut head = Vec::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    head.push(line);
                }
                let text = head.concat();
                seen.lock().unwrap().push(text.clone());
                let _ = stream.write_all(b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"r\"\r\nContent-Length: 0\r\n\r\n");
            });
        }
    });
    let host = format!("127.0.0.1:{port}");
    let (_work, failed) = push_to(&host, false);
    assert_ne!(failed.code, 0);
    let seen = cleartext.lock().unwrap();
    assert!(
        seen.iter()
            .all(|h| !h.to_lowercase().contains("authorization")),
        "the password went in clear: {seen:?}"
    );
}

#[test]
fn server_error_text_cannot_forge_lines_of_the_log() {
    let forged = "pushed 127.0.0.1/lhcb/dirac@sha256:forged as 8.2.44";
    let message = format!("denied\n{forged}\n\u{1b}[0Ksection_end:1:push\r");
    let hostile = Server::start_with_headers(move |request| {
        if request.header("authorization").is_none() {
            let challenge = (
                "WWW-Authenticate".to_string(),
                "Basic realm=\"r\"".to_string(),
            );
            return (401, Value::Null, vec![challenge]);
        }
        if request.method == "HEAD" {
            return (404, Value::Null, Vec::new());
        }
        let body = serde_json::json!({ "errors": [{ "code": "DENIED", "message": message }] });
        (400, body, Vec::new())
    });
    let host = format!("127.0.0.1:{}", hostile.port);
    let (_work, failed) = push_to(&host, true);
    assert_ne!(failed.code, 0);
    assert!(failed.stderr.contains("DENIED"), "{}", failed.stderr);
    assert!(
        failed.stderr.lines().all(|l| !l.starts_with("pushed ")),
        "a forged line: {}",
        failed.stderr
    );
    assert!(!failed.stderr.contains('\u{1b}'), "{}", failed.stderr);
}

#[test]
fn an_engine_address_with_a_login_in_it_is_never_printed() {
    let work = dirac_repo();
    let repo = work.path().join("dirac");
    let bare = deployment_repo(work.path());
    let spec = deploy_spec(
        work.path(),
        &format!("file://{}", bare.display()),
        "    orchestrator: { kind: nomad, endpoint: \"http://ops:nomad-s3cret@127.0.0.1:1\", services: [shop], timeout: 5s }\n",
    );
    let failed = run(&mut deploy(&repo, &spec, PINNED));
    assert_ne!(failed.code, 0);
    assert!(
        failed.stderr.contains("Nomad at http://127.0.0.1:1"),
        "{}",
        failed.stderr
    );
    assert!(!failed.stderr.contains("nomad-s3cret"), "{}", failed.stderr);
}
