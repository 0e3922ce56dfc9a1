//! The autopilot pattern end to end on a real Docker Swarm: images built by tagpilot on a
//! busybox base that has no supervisor, whose entrypoint is tagpilot's own supervisor running
//! a service job with a health check. Docker learns the job's health from the image's
//! `Healthcheck`, so Swarm's rolling update waits for the new task to be healthy, and a
//! release whose check fails turns unhealthy: Swarm rolls it back, and tagpilot exits 3.

mod common;

use common::docker::Docker;
use common::registry::{self, Registry};
use common::*;
use serde_json::Value;

/// The health check of each release: v3's fails.
const HEALTH: [(&str, &str); 3] = [
    ("v1.0.0", "exit 0\n"),
    ("v2.0.0", "exit 0\n"),
    ("v3.0.0", "echo 'the database is unreachable' >&2; exit 1\n"),
];

#[test]
fn swarm_rolls_on_health_the_supervisor_reports() {
    if !registry::available() {
        return;
    }
    let Some(docker) = Docker::start() else {
        return;
    };
    docker.swarm_init();
    let registry = Registry::start(false);
    let base = busybox_base(&registry, &["sh", "sleep", "echo"]);
    let work = tempfile::tempdir().unwrap();
    let built = static_build(&work.path().join("dist"));
    let repository = format!("{}/team/app", registry.host());
    let stack = format!("services:\n  web:\n    image: {repository}:0.0.0\n");
    let bare = bare_repository(work.path(), &[("swarm/stack.yml", &stack)]);

    let app = supervised_app(
        &built.supervisor,
        &format!(
            r#"name: app
image:
  base: {base}
  repository: {repository}
  install_path: /app
  tags: ["{{version}}"]
  supervisor:
    binaries: {{ linux/amd64: dist/tagpilot-supervisor }}
    config:
      tagpilot: {{ consulOptional: true }}
      jobs:
        - name: web
          exec: ["sleep", "3600"]
          port: 8080
          health: {{ exec: ["sh", "/app/health.sh"], interval: 1, ttl: 5 }}
deploy:
  - environment: staging
    automatic: true
    repo: file://{}
    files: [{{ file: swarm/stack.yml }}]
    author: {{ name: Release Bot, email: bot@example.org }}
    orchestrator:
      kind: swarm
      services: [web]
      timeout: 120s
"#,
            bare.display()
        ),
    );
    for (tag, script) in HEALTH {
        app.write("health.sh", script).commit(tag).tag(tag);
    }
    let release = |tag: &str, extra: &[&str]| {
        run(tagpilot(app.path())
            .args(["release", "--output", "json", "--tag", tag])
            .args(extra)
            .env("DOCKER_HOST", docker.host()))
    };

    // v1 by hand: the service's tasks run once Docker has seen them healthy.
    let v1 = pinned_from_record(
        &serde_json::from_str(&release("v1.0.0", &["--skip", "deploy"]).ok().stdout).unwrap(),
    );
    docker.create_service("web", &v1);
    wait_for(
        || {
            let healthy = sh(docker.command().args([
                "ps",
                "--filter",
                "health=healthy",
                "--format",
                "{{.Image}}",
            ]));
            healthy.lines().count() == 2
        },
        "both v1 tasks healthy",
    );

    // v2: a healthy release rolls through.
    let v2_run = release("v2.0.0", &[]).ok();
    let record: Value = serde_json::from_str(&v2_run.stdout).unwrap();
    let v2 = pinned_from_record(&record);
    assert_eq!(
        record["deployed"][0]["rollout"]["outcome"], "succeeded",
        "{record}"
    );
    assert_eq!(docker.running_images("web"), vec![v2.clone(), v2.clone()]);

    // v3: its check fails, so the new task turns unhealthy; Swarm rolls back; exit 3.
    let v3_run = release("v3.0.0", &[]);
    assert_eq!(v3_run.code, 3, "{}\n{}", v3_run.stdout, v3_run.stderr);
    let record: Value = serde_json::from_str(
        &std::fs::read_to_string(app.path().join("tagpilot-out/release.json")).unwrap(),
    )
    .unwrap();
    let rollout = &record["deployed"][0]["rollout"];
    assert_eq!(rollout["outcome"], "failed", "{rollout}");
    assert_eq!(rollout["services"][0]["state"], "rolled_back", "{rollout}");
    let reason = rollout["services"][0]["reason"]
        .as_str()
        .unwrap_or_default();
    let tasks = sh(docker.command().args([
        "service",
        "ps",
        "web",
        "--no-trunc",
        "--format",
        "{{.Image}} {{.CurrentState}} {{.Error}}",
    ]));
    // Swarm stopped the unhealthy task (so it completed); the reason says why, from the
    // container's last health check: the supervisor's answer.
    assert!(
        reason.contains("container unhealthy: web: unhealthy: the database is unreachable"),
        "{rollout}\n{tasks}"
    );
    assert_eq!(docker.service_image("web"), v2);
    wait_for(
        || docker.running_images("web") == vec![v2.clone(), v2.clone()],
        "the rollback to v2",
    );
    // What the supervisor said in the failing task's container reached its log.
    let logs = sh(docker
        .command()
        .args(["service", "logs", "--raw", "web"])
        .stderr(std::process::Stdio::null()));
    assert!(logs.contains("check.web"), "{logs}");
}
