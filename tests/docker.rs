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
    let base = busybox_base(&registry, &["sh", "cat", "ls"]);

    // The DIRAC example on that base.
    let work = tempfile::tempdir().unwrap();
    sh(Command::new("bash")
        .arg(Path::new(ROOT).join("fixtures/make-dirac-repo.sh"))
        .arg(work.path().join("dirac")));
    let spec = std::fs::read_to_string(Path::new(ROOT).join("pipelines/dirac.yaml"))
        .unwrap()
        .replace("base: scratch", &format!("base: {base}"));
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
    assert_eq!(
        entrypoint.trim(),
        r#"["/usr/local/bin/tagpilot-supervisor"]"#
    );
}

/// Commits and tags the app v1.0.0, builds and pushes its image (which names `image`), and
/// has the engine pull it.
fn release_and_pull(app: &Repo, docker: &Docker, image: &str) -> String {
    app.commit("app").tag("v1.0.0");
    run(tagpilot(app.path())
        .args([
            "release",
            "--only",
            "tarball,image,push",
            "--tag",
            "v1.0.0",
            "--out",
        ])
        .arg(app.path().join("out")))
    .ok();
    sh(docker.command().args(["pull", "-q", image]));
    image.to_string()
}

/// The image's entrypoint is tagpilot's own supervisor, on a base that has none: it runs as
/// PID 1, reaps the orphans its jobs leave, reports health to Docker, and `docker stop` ends
/// it within its stop timeout with exit 0 (a job that ignores SIGTERM is killed at that
/// timeout, before Docker's own 10 s).
#[test]
fn the_provided_supervisor_runs_as_pid_1_on_a_bare_base() {
    if !registry::available() {
        return;
    }
    let Some(docker) = Docker::start() else {
        return;
    };
    let registry = Registry::start(false);
    let base = busybox_base(&registry, &["sh", "cat", "sleep", "grep", "wc", "true"]);
    let work = tempfile::tempdir().unwrap();
    let built = static_build(&work.path().join("dist"));

    let app = supervised_app(
        &built.supervisor,
        &format!(
            r#"name: app
image:
  base: {base}
  repository: {}/team/app
  install_path: /app
  tags: ["{{version}}"]
  supervisor:
    binaries: {{ linux/amd64: dist/tagpilot-supervisor }}
    config:
      tagpilot: {{ consulOptional: true }}
      stopTimeout: 3
      jobs:
        - name: web
          exec: ["sleep", "3600"]
          port: 8080
          health: {{ exec: "true", interval: 1, ttl: 5 }}
        - name: orphans
          exec: ["sh", "-c", "for i in 1 2 3 4 5; do (sleep 0.1 &) ; done"]
          when: {{ interval: "1s" }}
        - name: stubborn
          exec: ["sh", "-c", "trap '' TERM; while true; do sleep 1; done"]
"#,
            registry.host()
        ),
    );
    let image = release_and_pull(
        &app,
        &docker,
        &format!("{}/team/app:1.0.0", registry.host()),
    );
    let container = sh(docker
        .command()
        .args(["run", "-d", "--network", "none", &image]))
    .trim()
    .to_string();
    let exec = |script: &str| {
        sh(docker
            .command()
            .args(["exec", &container, "sh", "-c", script]))
        .trim()
        .to_string()
    };
    let health = || {
        sh(docker.command().args([
            "inspect",
            "--format",
            "{{.State.Status}} {{json .State.Health}}",
            &container,
        ]))
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !health().starts_with("running {\"Status\":\"healthy\"") {
        assert!(
            std::time::Instant::now() < deadline,
            "never healthy: {}\n{}",
            health(),
            run(docker.command().args(["logs", &container])).stdout
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    let pid1 = exec("cat /proc/1/cmdline");
    assert!(pid1.contains("tagpilot-supervisor"), "{pid1}");
    // Five orphans a second for three seconds: every one reaped, none left a zombie.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let zombies = exec("cat /proc/[0-9]*/stat 2>/dev/null | grep -c ') Z ' || true");
    assert_eq!(zombies, "0", "zombies in the container");
    let started = std::time::Instant::now();
    sh(docker.command().args(["stop", "-t", "10", &container]));
    let took = started.elapsed();
    let code =
        sh(docker
            .command()
            .args(["inspect", "--format", "{{.State.ExitCode}}", &container]));
    assert_eq!(
        code.trim(),
        "0",
        "the supervisor exits 0, not Docker's SIGKILL (137)"
    );
    assert!(
        took >= std::time::Duration::from_secs(3) && took < std::time::Duration::from_secs(8),
        "stopped by the supervisor at its 3 s stop timeout: {took:?}"
    );
    let logs = sh(docker.command().args(["logs", &container]));
    assert!(logs.contains("received SIGTERM"), "{logs}");

    // The same image with Consul named by a host name, as in a Docker network: the static
    // supervisor resolves it on a base with no C library, through the container's /etc/hosts.
    let consul = common::fakes::consul::Consul::start();
    let config = work.path().join("with-consul.json5");
    std::fs::write(
        &config,
        format!(
            r#"{{ consul: "consul-agent:{}", jobs: [ {{ name: "web", exec: ["sleep", "3600"], port: 8080,
               interfaces: ["static:192.0.2.10"], health: {{ exec: "true", interval: 1, ttl: 5 }} }} ] }}"#,
            consul.server.port
        ),
    )
    .unwrap();
    let mount = format!("{}:/etc/with-consul.json5:ro", config.display());
    let registered = sh(docker.command().args([
        "run",
        "-d",
        "--network",
        "host",
        "--add-host",
        "consul-agent:127.0.0.1",
        "-v",
        &mount,
        "-e",
        "CONTAINERPILOT=/etc/with-consul.json5",
        &image,
    ]))
    .trim()
    .to_string();
    consul.wait_for(
        std::time::Duration::from_secs(30),
        "the service registered",
        |c| c.registrations().iter().any(|r| r["Name"] == "web"),
    );
    sh(docker.command().args(["rm", "-f", &registered]));

    // On scratch, with no shell, no /var/run and no C library: the supervisor runs its one
    // job (itself, asked its version) and exits with that job's status.
    let bare = supervised_app(
        &built.supervisor,
        &format!(
            r#"name: bare
image:
  repository: {}/team/bare
  install_path: /app
  tags: ["{{version}}"]
  supervisor:
    binaries: {{ linux/amd64: dist/tagpilot-supervisor }}
    config:
      tagpilot: {{ consulOptional: true, mainJob: version }}
      jobs: [ {{ name: version, exec: ["/usr/local/bin/containerpilot", "-version"] }} ]
"#,
            registry.host()
        ),
    );
    let on_scratch = release_and_pull(
        &bare,
        &docker,
        &format!("{}/team/bare:1.0.0", registry.host()),
    );
    let ran = run(docker
        .command()
        .args(["run", "--rm", "--network", "none", &on_scratch]));
    assert_eq!(ran.code, 0, "{}{}", ran.stdout, ran.stderr);
    assert!(
        ran.stdout.contains("version ") && ran.stdout.contains(" Version: 0.1.0"),
        "{}",
        ran.stdout
    );
}
