//! What tagpilot pushes runs on a real Docker engine: pulled from the test registry, started
//! with an entrypoint override that shows the embedded supervisor config and environment.

mod common;

use std::path::Path;
use std::process::Command;

use common::docker::Docker;
use common::registry::{self, Registry};
use common::*;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

#[test]
fn docker_pulls_and_runs_the_pushed_image() {
    if !registry::available() {
        return;
    }
    let Some(docker) = Docker::start() else {
        return;
    };
    let registry = Registry::start(false);

    // A base with a shell: busybox at the root, built and pushed by tagpilot itself.
    let base = Repo::new();
    std::fs::create_dir_all(base.path().join("bin")).unwrap();
    std::fs::copy("/bin/busybox", base.path().join("bin/busybox")).unwrap();
    for tool in ["sh", "cat", "ls"] {
        base.symlink(&format!("bin/{tool}"), "busybox");
    }
    base.write(
        "tagpilot.yaml",
        format!("name: busybox\nimage:\n  repository: {}/base/busybox\n  install_path: /\n  tags: [\"base\"]\n", registry.host()),
    );
    base.commit("busybox").tag("v1.0.0");
    run(tagpilot(base.path())
        .args(["image", "--tag", "v1.0.0", "--out"])
        .arg(base.path().join("out")))
    .ok();

    // The DIRAC example on that base.
    let work = tempfile::tempdir().unwrap();
    sh(Command::new("bash")
        .arg(Path::new(ROOT).join("fixtures/make-dirac-repo.sh"))
        .arg(work.path().join("dirac")));
    let spec = std::fs::read_to_string(Path::new(ROOT).join("pipelines/dirac.yaml"))
        .unwrap()
        .replace(
            "base: scratch",
            &format!("base: {}/base/busybox:base", registry.host()),
        );
    std::fs::write(work.path().join("dirac.yaml"), spec).unwrap();
    let image = format!("{}/lhcb/dirac:8.2.44", registry.host());
    run(tagpilot(&work.path().join("dirac"))
        .args(["image", "--tag", "v8r2p44", "--pipeline"])
        .arg(work.path().join("dirac.yaml"))
        .arg("--out")
        .arg(work.path().join("out"))
        .env(
            "CI_REGISTRY_IMAGE",
            format!("{}/lhcb/dirac", registry.host()),
        ))
    .ok();

    // Docker treats 127.0.0.0/8 registries as insecure (plain HTTP), like tagpilot.
    sh(docker.command().args(["pull", "-q", &image]));
    let config = sh(docker.command().args([
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "/bin/cat",
        &image,
        "/etc/containerpilot.json5",
    ]));
    assert_eq!(
        config,
        std::fs::read_to_string(Path::new(ROOT).join("images/dirac/containerpilot.json5")).unwrap()
    );
    let shown = sh(docker.command().args([
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "/bin/sh",
        &image,
        "-c",
        "echo $CONTAINERPILOT $DIRAC_ROOT; pwd; ls /opt/dirac /etc/dirac",
    ]));
    assert!(
        shown.starts_with("/etc/containerpilot.json5 /opt/dirac\n/opt/dirac\n"),
        "{shown}"
    );
    assert!(
        shown.contains("RELEASE") && shown.contains("dirac.cfg"),
        "{shown}"
    );
    let entrypoint =
        sh(docker
            .command()
            .args(["inspect", "--format", "{{json .Config.Entrypoint}}", &image]));
    assert_eq!(entrypoint.trim(), r#"["/usr/local/bin/containerpilot"]"#);
}
