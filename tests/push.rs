//! Pushing images to a real registry (Debian's docker-registry, htpasswd auth), read back with
//! skopeo; faults injected by a proxy in front of it.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::proxy::{Fault, Proxy};
use common::registry::{self, token_registry, Registry, PASSWORD, USER};
use common::*;
use serde_json::Value;
use std::sync::atomic::Ordering;
use std::time::Duration;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn ready() -> bool {
    tool_available("skopeo", "skopeo") && registry::available()
}

/// `tagpilot image --output json --tag v8r2p44 --pipeline SPEC --out OUT`, run in `repo`.
fn image_command(
    repo: &Path,
    spec: impl AsRef<std::ffi::OsStr>,
    out: impl AsRef<std::ffi::OsStr>,
) -> Command {
    let mut cmd = tagpilot(repo);
    cmd.args([
        "image",
        "--output",
        "json",
        "--tag",
        "v8r2p44",
        "--pipeline",
    ])
    .arg(spec)
    .arg("--out")
    .arg(out);
    cmd
}

/// `tagpilot image` pushing the DIRAC example to `host` with the registry's docker config.
fn push(repo: &Path, out: &Path, host: &str, registry: &Registry, extra: &[&str]) -> Run {
    run(
        image_command(repo, Path::new(ROOT).join("pipelines/dirac.yaml"), out)
            .args(extra)
            .env("CI_REGISTRY_IMAGE", format!("{host}/lhcb/dirac"))
            .env("DOCKER_CONFIG", registry.docker_config()),
    )
}

fn skopeo(args: &[&str], reference: &str) -> std::process::Output {
    Command::new("skopeo")
        .arg("inspect")
        .args([
            "--tls-verify=false",
            "--creds",
            &format!("{USER}:{PASSWORD}"),
        ])
        .args(args)
        .arg(format!("docker://{reference}"))
        .output()
        .unwrap()
}

/// Copies an image out of a registry into an OCI layout: only works if every blob is there.
fn copy_out(reference: &str, layout: &Path) {
    let out = Command::new("skopeo")
        .args([
            "copy",
            "--src-tls-verify=false",
            "--src-creds",
            &format!("{USER}:{PASSWORD}"),
        ])
        .arg(format!("docker://{reference}"))
        .arg(format!("oci:{}:x", layout.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The registry serves `reference` (skopeo reads its manifest and config).
fn assert_in_registry(reference: &str) {
    let inspect = skopeo(&[], reference);
    assert!(
        inspect.status.success(),
        "{reference}: {}",
        String::from_utf8_lossy(&inspect.stderr)
    );
}

fn pushed(run: &Run) -> Value {
    serde_json::from_str::<Value>(&run.stdout).unwrap()["pushed"].clone()
}

#[test]
fn push_read_back_and_rerun_uploads_nothing() {
    if !ready() {
        return;
    }
    let registry = Registry::start(true);
    let work = dirac_repo();
    let repo = work.path().join("dirac");
    let out = work.path().join("out");
    let first = push(&repo, &out, &registry.host(), &registry, &[]).ok();
    let record: Value = serde_json::from_str(&first.stdout).unwrap();
    let digest = record["image"]["digest"].as_str().unwrap().to_string();
    assert_eq!(
        record["pushed"]["reference"],
        format!("{}/lhcb/dirac@{digest}", registry.host())
    );
    assert_eq!(
        record["pushed"]["uploaded_blobs"], 5,
        "the supervisor, 3 layers and the config"
    );
    assert!(
        !first.stderr.contains(PASSWORD),
        "the secret is never printed"
    );

    // The registry serves the exact manifest bytes under every tag.
    let local = std::fs::read(
        out.join("image/blobs/sha256")
            .join(digest.trim_start_matches("sha256:")),
    )
    .unwrap();
    for tag in ["8.2.44", "v8r2p44", "8.2", "latest"] {
        let raw = skopeo(&["--raw"], &format!("{}/lhcb/dirac:{tag}", registry.host()));
        assert!(
            raw.status.success(),
            "{}",
            String::from_utf8_lossy(&raw.stderr)
        );
        assert!(raw.stdout == local, "tag {tag} serves other bytes");
    }

    let again = push(&repo, &out, &registry.host(), &registry, &[]).ok();
    let second = pushed(&again);
    assert_eq!(second["uploaded_blobs"], 0);
    assert_eq!(second["uploaded_bytes"], 0);
    assert_eq!(second["skipped_blobs"], 5);
    assert_eq!(second["reference"], record["pushed"]["reference"]);
}

#[test]
fn ci_credentials_and_a_full_release() {
    if !ready() {
        return;
    }
    let registry = Registry::start(true);
    let work = dirac_repo();
    let repo = work.path().join("dirac");
    let dotenv = work.path().join("tagpilot.env");
    let result = run(tagpilot(&repo)
        .args(["release", "--tag", "v8r2p44", "--pipeline"])
        .arg(Path::new(ROOT).join("pipelines/dirac.yaml"))
        .arg("--out")
        .arg(work.path().join("out"))
        .env("GITLAB_CI", "true")
        .env("TAGPILOT_DOTENV", &dotenv)
        .env("CI_REGISTRY", registry.host())
        .env(
            "CI_REGISTRY_IMAGE",
            format!("{}/lhcb/dirac", registry.host()),
        )
        .env("CI_REGISTRY_USER", USER)
        .env("CI_REGISTRY_PASSWORD", PASSWORD))
    .ok();
    assert!(
        result.stderr.contains(":push[collapsed=false]"),
        "{}",
        result.stderr
    );
    let record = read_json(&work.path().join("out/release.json"));
    let stages: Vec<(&str, &str)> = record["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        stages,
        [
            ("tarball", "done"),
            ("image", "done"),
            ("push", "done"),
            ("publish", "not_configured"),
            ("deploy", "not_configured")
        ]
    );
    let dotenv = std::fs::read_to_string(dotenv).unwrap();
    assert!(
        dotenv.contains(&format!("TAGPILOT_IMAGE={}\n", pinned_from_record(&record))),
        "{dotenv}"
    );
    assert!(
        skopeo(&[], &format!("{}/lhcb/dirac:8.2.44", registry.host()))
            .status
            .success()
    );
}

#[test]
fn credential_errors_say_which_credential_and_never_the_secret() {
    if !ready() {
        return;
    }
    let registry = Registry::start(true);
    let work = dirac_repo();
    let repo = work.path().join("dirac");
    let pipeline = Path::new(ROOT).join("pipelines/dirac.yaml");
    let attempt = |user: Option<&str>, password: &str| {
        let mut cmd = tagpilot(&repo);
        cmd.args(["image", "--tag", "v8r2p44", "--pipeline"])
            .arg(&pipeline)
            .arg("--out")
            .arg(work.path().join("out"))
            .env("CI_REGISTRY", registry.host())
            .env(
                "CI_REGISTRY_IMAGE",
                format!("{}/lhcb/dirac", registry.host()),
            );
        if let Some(user) = user {
            cmd.env("CI_REGISTRY_USER", user)
                .env("CI_REGISTRY_PASSWORD", password);
        }
        run(&mut cmd)
    };
    let wrong = attempt(Some(USER), "not-the-password").fails_with(
        2,
        "signed in as user `releaser` from CI_REGISTRY_USER/CI_REGISTRY_PASSWORD",
    );
    assert!(!wrong.stderr.contains("not-the-password"));
    attempt(None, "").fails_with(2, "requires a login and no credential was found");
    let repositories = registry
        .storage()
        .join("data/docker/registry/v2/repositories/lhcb/dirac/_manifests");
    assert!(!repositories.exists(), "nothing was pushed");
}

#[test]
fn a_released_version_tag_is_never_moved() {
    if !ready() {
        return;
    }
    let registry = Registry::start(true);
    let work = dirac_repo();
    let repo = work.path().join("dirac");
    push(
        &repo,
        &work.path().join("a"),
        &registry.host(),
        &registry,
        &[],
    )
    .ok();
    let before = skopeo(
        &["--raw"],
        &format!("{}/lhcb/dirac:8.2.44", registry.host()),
    )
    .stdout;

    // Same tag, different bytes: the spec changed since the release.
    let changed = work.path().join("changed.yaml");
    let spec = std::fs::read_to_string(Path::new(ROOT).join("pipelines/dirac.yaml")).unwrap();
    std::fs::write(
        &changed,
        spec.replace(
            "DIRAC_ROOT: /opt/dirac",
            "DIRAC_ROOT: /opt/dirac\n    EXTRA: changed",
        ),
    )
    .unwrap();
    let changed_push = |extra: &[&str]| {
        run(image_command(&repo, &changed, work.path().join("b"))
            .args(extra)
            .env(
                "CI_REGISTRY_IMAGE",
                format!("{}/lhcb/dirac", registry.host()),
            )
            .env("DOCKER_CONFIG", registry.docker_config()))
    };
    changed_push(&[]).fails_with(2, "lhcb/dirac:8.2.44 already exists as sha256:");
    assert_eq!(
        skopeo(
            &["--raw"],
            &format!("{}/lhcb/dirac:8.2.44", registry.host())
        )
        .stdout,
        before
    );
    let forced = changed_push(&["--force"]).ok();
    let after = skopeo(
        &["--raw"],
        &format!("{}/lhcb/dirac:8.2.44", registry.host()),
    )
    .stdout;
    assert!(after != before);
    assert!(pushed(&forced)["reference"]
        .as_str()
        .unwrap()
        .contains("@sha256:"));
}

#[test]
fn transient_faults_are_retried() {
    if !ready() {
        return;
    }
    let registry = Registry::start(true);
    // Connections 0 and 3 are reset, 1 and 4 answered 503, 2 cut mid-upload; the rest work.
    let proxy = Proxy::start(registry.port, |n| match n {
        0 | 3 => Fault::Reset,
        1 | 4 => Fault::Unavailable,
        2 => Fault::CutAfter(2000),
        _ => Fault::Forward,
    });
    let work = dirac_repo();
    let repo = work.path().join("dirac");
    let auth = registry.docker_config_for(&[proxy.host()]);
    run(image_command(
        &repo,
        Path::new(ROOT).join("pipelines/dirac.yaml"),
        work.path().join("out"),
    )
    .env("CI_REGISTRY_IMAGE", format!("{}/lhcb/dirac", proxy.host()))
    .env("DOCKER_CONFIG", &auth))
    .ok();
    assert!(
        proxy.faults.load(std::sync::atomic::Ordering::Relaxed) >= 5,
        "the faults happened"
    );
    assert!(
        skopeo(&[], &format!("{}/lhcb/dirac:8.2.44", registry.host()))
            .status
            .success()
    );
}

#[test]
fn a_registry_that_dies_mid_push_leaves_no_tag_and_a_rerun_completes() {
    if !ready() {
        return;
    }
    let mut registry = Registry::start(true);
    let work = dirac_repo();
    let repo = work.path().join("dirac");
    // Big and incompressible, so the push is cut inside this layer's upload.
    commit_file_and_retag(&repo, "big.bin", &noise(6_000_000), "v8r2p44");
    // After 3 MB in total, on whatever connections, the registry "crashes".
    let budget = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(3_000_000));
    let proxy = Proxy::start(registry.port, move |_| Fault::Budget(budget.clone()));
    let auth = registry.docker_config_for(&[proxy.host()]);
    let attempt = |host: &str| {
        run(image_command(
            &repo,
            Path::new(ROOT).join("pipelines/dirac.yaml"),
            work.path().join("out"),
        )
        .env("CI_REGISTRY_IMAGE", format!("{host}/lhcb/dirac"))
        .env("DOCKER_CONFIG", &auth))
    };
    let failed = attempt(&proxy.host());
    assert_eq!(failed.code, 1, "{}", failed.stderr);
    assert!(failed.stderr.contains("attempt"), "{}", failed.stderr);
    assert!(
        failed.stderr.contains(
            "missing blob(s) reached the registry before this; no manifest and no tag was pushed"
        ),
        "it died mid-push, and says what got there: {}",
        failed.stderr
    );
    let tag = format!("{}/lhcb/dirac:8.2.44", registry.host());
    assert!(
        !skopeo(&[], &tag).status.success(),
        "a half-pushed image must not be tagged"
    );

    registry.restart();
    let rerun = attempt(&registry.host()).ok();
    assert!(skopeo(&[], &tag).status.success());
    assert!(pushed(&rerun)["reference"]
        .as_str()
        .unwrap()
        .starts_with(&registry.host()));
}

#[test]
fn a_release_killed_mid_push_is_finished_by_a_rerun() {
    if !ready() {
        return;
    }
    let registry = Registry::start(false);
    let repo = Repo::new();
    // Big and incompressible, so the push hangs inside this layer's upload.
    repo.write("big.bin", noise(4_000_000));
    // The proxy forwards 1 MB, then hangs, until the test lets it forward again.
    let stalling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let budget = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(1_000_000));
    let (stall, left) = (stalling.clone(), budget.clone());
    let proxy = Proxy::start(registry.port, move |_| {
        if stall.load(Ordering::SeqCst) {
            Fault::Stall(left.clone())
        } else {
            Fault::Forward
        }
    });
    repo.write(
        "tagpilot.yaml",
        format!(
            "name: app\nimage: {{ repository: {}/group/app, install_path: /srv/app }}\n",
            proxy.host()
        ),
    )
    .commit("App")
    .tag("v1.0.0");
    let release = || {
        let mut cmd = tagpilot(repo.path());
        cmd.args(["release", "--output", "json", "--tag", "v1.0.0"]);
        cmd
    };
    let mut child = release()
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(
        || budget.load(Ordering::SeqCst) == 0,
        "the push to be under way",
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let tag = format!("{}/group/app:1.0.0", registry.host());
    assert!(!skopeo(&[], &tag).status.success(), "no tag on a half push");

    stalling.store(false, Ordering::SeqCst);
    let rerun = run(&mut release()).ok();
    let record: Value = serde_json::from_str(&rerun.stdout).unwrap();
    let digest = record["image"]["digest"].as_str().unwrap();
    let inspected = skopeo(&["--format", "{{.Digest}}"], &tag);
    assert!(inspected.status.success(), "the re-run tagged the image");
    assert_eq!(String::from_utf8_lossy(&inspected.stdout).trim(), digest);
    // Once more: everything is there, nothing is sent again.
    let again = run(&mut release()).ok();
    let record: Value = serde_json::from_str(&again.stdout).unwrap();
    let push = record["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "push")
        .unwrap();
    assert_eq!(push["status"], "already_done", "{push}");
}

/// GitLab's registry flow: a 401 with a Bearer challenge, a token from the realm for the Basic
/// login, then the push with the token.
#[test]
fn bearer_tokens_from_the_challenge_realm() {
    if !ready() {
        return;
    }
    let (_keys, issuer, registry) = token_registry();
    let work = dirac_repo();
    let repo = work.path().join("dirac");
    let result = push(
        &repo,
        &work.path().join("out"),
        &registry.host(),
        &registry,
        &[],
    )
    .ok();
    assert_eq!(pushed(&result)["uploaded_blobs"], 5);
    assert!(
        issuer.issued.load(Ordering::Relaxed) >= 1,
        "a token was issued"
    );

    // A wrong password is refused by the token service, and the message says whose login it was.
    let refused = run(image_command(
        &repo,
        Path::new(ROOT).join("pipelines/dirac.yaml"),
        work.path().join("out2"),
    )
    .env("CI_REGISTRY", registry.host())
    .env(
        "CI_REGISTRY_IMAGE",
        format!("{}/lhcb/dirac", registry.host()),
    )
    .env("CI_REGISTRY_USER", USER)
    .env("CI_REGISTRY_PASSWORD", "wrong"))
    .fails_with(
        2,
        "refused user `releaser` from CI_REGISTRY_USER/CI_REGISTRY_PASSWORD",
    );
    assert!(!refused.stderr.contains("wrong\n"));
    assert!(issuer.refused.load(Ordering::Relaxed) >= 1);
}

/// Builds and pushes a one-layer base image `REGISTRY/base/mini:base` with tagpilot itself.
fn push_base(repo: &Path, work: &Path, registry: &Registry) {
    let spec = work.join("base.yaml");
    std::fs::write(
        &spec,
        format!(
            "name: base\nimage:\n  repository: {}/base/mini\n  install_path: /base\n  env: {{ LANG: C.UTF-8 }}\n  tags: [\"base\"]\n",
            registry.host()
        ),
    )
    .unwrap();
    run(tagpilot(repo)
        .args(["image", "--tag", "v8r2p43", "--pipeline"])
        .arg(&spec)
        .arg("--out")
        .arg(work.join("base-out"))
        .env("DOCKER_CONFIG", registry.docker_config()))
    .ok();
}

/// A spec for the app on `base`, pushed to `target/lhcb/dirac`.
fn app_spec(work: &Path, base: &str, target: &str) -> std::path::PathBuf {
    let spec = work.join("app.yaml");
    std::fs::write(
        &spec,
        format!("name: dirac\nimage:\n  repository: {target}/lhcb/dirac\n  base: {base}\n  install_path: /opt/dirac\n"),
    )
    .unwrap();
    spec
}

#[test]
fn a_base_in_the_same_registry_is_mounted_not_uploaded() {
    if !ready() {
        return;
    }
    let registry = Registry::start(true);
    let work = dirac_repo();
    let repo = work.path().join("dirac");
    push_base(&repo, work.path(), &registry);
    let spec = app_spec(
        work.path(),
        &format!("{}/base/mini:base", registry.host()),
        &registry.host(),
    );
    let result = run(image_command(&repo, &spec, work.path().join("out"))
        .env("DOCKER_CONFIG", registry.docker_config()))
    .ok();
    let report = pushed(&result);
    assert_eq!(report["mounted_blobs"], 1, "the base layer: {report}");
    assert_eq!(report["copied_blobs"], 0);
    assert_eq!(report["uploaded_blobs"], 2, "our layer and config");
    let record: Value = serde_json::from_str(&result.stdout).unwrap();
    let base_digest = skopeo(&[], &format!("{}/base/mini:base", registry.host()));
    let base_digest: Value = serde_json::from_slice(&base_digest.stdout).unwrap();
    assert_eq!(
        record["image"]["base_digest"], base_digest["Digest"],
        "pinned to the base's digest"
    );
    let inspect: Value = serde_json::from_slice(
        &skopeo(&[], &format!("{}/lhcb/dirac:8.2.44", registry.host())).stdout,
    )
    .unwrap();
    assert_eq!(inspect["Layers"].as_array().unwrap().len(), 2);
    assert!(
        inspect["Env"].to_string().contains("LANG=C.UTF-8"),
        "the base's config is kept"
    );

    // The same build into a layout of its own downloads the base layer: complete, unpackable.
    let layout = work.path().join("layout");
    run(tagpilot(&repo)
        .args(["image", "--tag", "v8r2p44", "--pipeline"])
        .arg(&spec)
        .arg("--oci-layout")
        .arg(&layout)
        .env("DOCKER_CONFIG", registry.docker_config()))
    .ok();
    let bundle = tempfile::tempdir().unwrap();
    sh(Command::new("umoci")
        .args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:8.2.44", layout.display()))
        .arg(bundle.path().join("b")));
    assert!(bundle.path().join("b/rootfs/base/RELEASE").is_file());
    assert!(bundle.path().join("b/rootfs/opt/dirac/RELEASE").is_file());
}

#[test]
fn a_base_in_another_registry_is_streamed_across() {
    if !ready() {
        return;
    }
    let source = Registry::start(true);
    let target = Registry::start(true);
    let work = dirac_repo();
    let repo = work.path().join("dirac");
    push_base(&repo, work.path(), &source);
    let spec = app_spec(
        work.path(),
        &format!("{}/base/mini:base", source.host()),
        &target.host(),
    );
    let result = run(image_command(&repo, &spec, work.path().join("out"))
        .env("DOCKER_CONFIG", source.docker_config_for(&[target.host()])))
    .ok();
    let report = pushed(&result);
    assert_eq!(report["copied_blobs"], 1, "{report}");
    assert_eq!(report["mounted_blobs"], 0);
    // Every blob really is in the target: skopeo can copy the whole image out of it.
    copy_out(
        &format!("{}/lhcb/dirac:8.2.44", target.host()),
        &work.path().join("copy"),
    );
}

#[test]
fn a_missing_or_unreachable_base_is_a_clear_error() {
    if !ready() {
        return;
    }
    let registry = Registry::start(true);
    let work = dirac_repo();
    let repo = work.path().join("dirac");
    let attempt = |base: &str| {
        let spec = app_spec(work.path(), base, &registry.host());
        run(image_command(&repo, &spec, work.path().join("out"))
            .env("DOCKER_CONFIG", registry.docker_config()))
    };
    attempt(&format!("{}/base/none:1", registry.host()))
        .fails_with(2, "could not read manifest 1: HTTP 404");
    let closed = format!("127.0.0.1:{}/base/mini:1", registry::free_port());
    attempt(&closed).fails_with(1, "could not read a manifest");
}

#[test]
fn a_multi_platform_image_is_pushed_as_an_index() {
    if !ready() {
        return;
    }
    let registry = Registry::start(true);
    let work = dirac_repo();
    let repo = work.path().join("dirac");
    let spec = work.path().join("multi.yaml");
    std::fs::write(
        &spec,
        format!(
            "name: dirac\nimage:\n  repository: {}/lhcb/dirac\n  platforms: [linux/amd64, linux/arm64/v8]\n  cmd: [\"/opt/dirac/dirac-service\"]\n",
            registry.host()
        ),
    )
    .unwrap();
    let result = run(image_command(&repo, &spec, work.path().join("out"))
        .env("DOCKER_CONFIG", registry.docker_config()))
    .ok();
    let report = pushed(&result);
    assert_eq!(
        report["uploaded_blobs"], 3,
        "one shared layer, two configs: {report}"
    );
    let reference = format!("{}/lhcb/dirac:8.2.44", registry.host());
    let raw: Value = serde_json::from_slice(&skopeo(&["--raw"], &reference).stdout).unwrap();
    assert_eq!(raw["mediaType"], "application/vnd.oci.image.index.v1+json");
    assert_eq!(raw["manifests"].as_array().unwrap().len(), 2);
    for arch in ["amd64", "arm64"] {
        let inspect: Value =
            serde_json::from_slice(&skopeo(&["--override-arch", arch], &reference).stdout).unwrap();
        assert_eq!(inspect["Architecture"], arch);
    }
}

/// Behind a proxy that refuses big request bodies, large blobs go up in chunks.
/// The DIRAC example with a layer of `noise` incompressible bytes, pushed through a proxy
/// that misbehaves as `plan` says.
fn push_through(
    plan: impl Fn(usize) -> Fault + Send + 'static,
    noise_bytes: usize,
) -> (Registry, Proxy, tempfile::TempDir, Run) {
    let registry = Registry::start(true);
    let proxy = Proxy::start(registry.port, plan);
    let work = dirac_repo();
    let repo = work.path().join("dirac");
    commit_file_and_retag(&repo, "noise.bin", &noise(noise_bytes), "v8r2p44");
    let auth = registry.docker_config_for(&[proxy.host()]);
    let result = run(image_command(
        &repo,
        Path::new(ROOT).join("pipelines/dirac.yaml"),
        work.path().join("out"),
    )
    .env("CI_REGISTRY_IMAGE", format!("{}/lhcb/dirac", proxy.host()))
    .env("DOCKER_CONFIG", &auth));
    (registry, proxy, work, result)
}

#[test]
fn a_refused_big_upload_falls_back_to_chunks() {
    if !ready() {
        return;
    }
    // A layer of a few MB: more than the proxy's limit, more than one 8 MiB chunk.
    let (registry, _proxy, work, result) = push_through(|_| Fault::LimitBody(64 * 1024), 9_000_000);
    let result = result.ok();
    assert!(pushed(&result)["uploaded_bytes"].as_u64().unwrap() > 9_000_000);
    // The image is complete in the registry: skopeo copies every blob out of it.
    copy_out(
        &format!("{}/lhcb/dirac:8.2.44", registry.host()),
        &work.path().join("copy"),
    );
}

/// A token that stops being enough mid-push (as an expired one does) is replaced by a new one.
#[test]
fn a_token_that_stops_working_is_fetched_again() {
    if !ready() {
        return;
    }
    let (_keys, issuer, registry) = token_registry();
    issuer.pull_only_first.store(1, Ordering::Relaxed);
    let work = dirac_repo();
    let repo = work.path().join("dirac");
    let result = push(
        &repo,
        &work.path().join("out"),
        &registry.host(),
        &registry,
        &[],
    )
    .ok();
    assert_eq!(pushed(&result)["uploaded_blobs"], 5);
    assert_eq!(
        issuer.issued.load(Ordering::Relaxed),
        2,
        "a pull-only token, then a new one"
    );
    // skopeo goes through the same token service and finds the image complete.
    assert_in_registry(&format!("{}/lhcb/dirac:8.2.44", registry.host()));
}

/// A registry with a certificate from a private CA: trusted with `image.ca_file`, refused
/// without it (with a hint), never silently downgraded to plain HTTP.
#[test]
fn tls_with_a_private_ca() {
    if !ready() {
        return;
    }
    let registry = Registry::start_tls(registry::Auth::Htpasswd);
    let work = dirac_repo();
    let repo = work.path().join("dirac");
    let ca = registry.storage().join("ca.pem");
    let spec = |ca_file: Option<&Path>| {
        let path = work.path().join("tls.yaml");
        let ca_line = ca_file.map_or(String::new(), |f| format!("  ca_file: {}\n", f.display()));
        std::fs::write(
            &path,
            format!(
                "name: dirac\nimage:\n  repository: {}/lhcb/dirac\n{ca_line}",
                registry.host()
            ),
        )
        .unwrap();
        path
    };
    let refused = run(image_command(&repo, spec(None), work.path().join("out"))
        .env("DOCKER_CONFIG", registry.docker_config()))
    .fails_with(1, "invalid peer certificate");
    assert!(
        refused.stderr.contains("image.ca_file"),
        "{}",
        refused.stderr
    );
    let result = run(
        image_command(&repo, spec(Some(&ca)), work.path().join("out"))
            .env("DOCKER_CONFIG", registry.docker_config()),
    )
    .ok();
    assert_eq!(pushed(&result)["uploaded_blobs"], 2);
    assert_in_registry(&format!("{}/lhcb/dirac:8.2.44", registry.host()));
}

/// The whole release: tarball, image, push, and the commit in the deployment repository.
#[test]
fn a_release_ends_with_the_deployment_commit() {
    if !ready() {
        return;
    }
    let registry = Registry::start(true);
    let work = dirac_repo();
    let repo = work.path().join("dirac");
    // A deployment repository whose manifest names this registry's image.
    let seed = work.path().join("seed");
    std::fs::create_dir_all(&seed).unwrap();
    std::fs::write(
        seed.join("app.yaml"),
        format!(
            "containers:\n  - name: fc\n    image: {}/lhcb/dirac:8.2.43\n",
            registry.host()
        ),
    )
    .unwrap();
    let git = |dir: &Path, args: &[&str]| {
        sh(Command::new("git")
            .current_dir(dir)
            .args(["-c", "user.name=t", "-c", "user.email=t@e"])
            .args(args))
    };
    git(&seed, &["init", "-q", "-b", "main"]);
    git(&seed, &["add", "-A"]);
    git(&seed, &["commit", "-qm", "app"]);
    let bare = work.path().join("deployment.git");
    git(
        work.path(),
        &[
            "clone",
            "-q",
            "--bare",
            seed.to_str().unwrap(),
            bare.to_str().unwrap(),
        ],
    );
    let spec = work.path().join("release.yaml");
    // The example's own deploy section (Marathon) is replaced by one to the test repository.
    let example = std::fs::read_to_string(Path::new(ROOT).join("pipelines/dirac.yaml")).unwrap();
    let base = &example[..example.find("\ndeploy:").map_or(example.len(), |i| i + 1)];
    std::fs::write(
        &spec,
        format!("{base}deploy:\n  - environment: staging\n    automatic: true\n    repo: file://{}\n    files: [{{ file: app.yaml }}]\n", bare.display()),
    )
    .unwrap();
    let out = work.path().join("out");
    run(tagpilot(&repo)
        .args(["release", "--tag", "v8r2p44", "--pipeline"])
        .arg(&spec)
        .arg("--out")
        .arg(&out)
        .env(
            "CI_REGISTRY_IMAGE",
            format!("{}/lhcb/dirac", registry.host()),
        )
        .env("DOCKER_CONFIG", registry.docker_config()))
    .ok();
    let record = read_json(&out.join("release.json"));
    let stages: Vec<&str> = record["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        stages,
        ["done", "done", "done", "not_configured", "done"],
        "{}",
        record["stages"]
    );
    assert_eq!(record["deployed"][0]["result"]["status"], "committed");
    let digest = record["image"]["digest"].as_str().unwrap();
    let file = sh(Command::new("git")
        .current_dir(&bare)
        .args(["show", "main:app.yaml"]));
    assert_eq!(
        file,
        format!(
            "containers:\n  - name: fc\n    image: {}/lhcb/dirac:8.2.44@{digest}\n",
            registry.host()
        )
    );
}

/// The blobs go up several at a time over a slow link, and never more than the bound; in a
/// pipe (this test's stderr) progress is plain lines, and each blob's upload is reported.
#[test]
fn blobs_are_uploaded_in_parallel_within_a_bound() {
    if !ready() {
        return;
    }
    let (registry, proxy, _work, result) =
        push_through(|_| Fault::Slow(Duration::from_millis(2)), 2_000_000);
    let result = result.ok();
    assert_eq!(pushed(&result)["uploaded_blobs"], 5);
    let most = proxy.most_open.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        (2..=4).contains(&most),
        "connections open at once: {most} (4 uploads at most)"
    );
    assert_eq!(
        result.stderr.matches("  uploaded sha256:").count(),
        5,
        "{}",
        result.stderr
    );
    assert!(!result.stderr.contains('\r'), "no redrawing in a pipe");
    assert_in_registry(&format!("{}/lhcb/dirac:8.2.44", registry.host()));
}

/// On a terminal (`script` gives tagpilot one) the uploads are bars, redrawn in place, with
/// bytes, rate and time left for each blob and for the whole push.
#[test]
fn a_terminal_gets_live_bars() {
    if !ready() || !tool_available("script", "bsdutils") {
        return;
    }
    let registry = Registry::start(true);
    let proxy = Proxy::start(registry.port, |_| Fault::Slow(Duration::from_millis(5)));
    let work = dirac_repo();
    let repo = work.path().join("dirac");
    commit_file_and_retag(&repo, "noise.bin", &noise(3_000_000), "v8r2p44");
    let auth = registry.docker_config_for(&[proxy.host()]);
    let command = format!(
        "{} image --tag v8r2p44 --pipeline {} --out {}",
        env!("CARGO_BIN_EXE_tagpilot"),
        Path::new(ROOT).join("pipelines/dirac.yaml").display(),
        work.path().join("out").display()
    );
    let typescript = work.path().join("typescript");
    let out = Command::new("script")
        .args(["-qefc", &command])
        .arg(&typescript)
        .current_dir(&repo)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .env("HOME", work.path())
        .env("TERM", "xterm")
        .env("CI_REGISTRY_IMAGE", format!("{}/lhcb/dirac", proxy.host()))
        .env("DOCKER_CONFIG", &auth)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let screen = String::from_utf8_lossy(&std::fs::read(&typescript).unwrap()).into_owned();
    assert!(screen.contains("lhcb/dirac: 5 blob(s) ["), "{screen}");
    assert!(screen.contains(" left"), "{screen}");
    assert!(screen.contains("\x1b["), "redrawn with terminal controls");
    assert_in_registry(&format!("{}/lhcb/dirac:8.2.44", registry.host()));
}
