//! Rollouts on a real Docker Swarm: Debian's dockerd on a private socket as a single-node swarm,
//! images built and pushed by tagpilot to the real test registry, the deployment repository a
//! real bare repository. One engine serves every scenario, in order: a successful rolling
//! update, the re-run that finds it done, a release whose process exits at once (failure
//! reason, automatic rollback, exit 3, the deployment repo put back), a timeout (exit 4) and a
//! concurrent update that supersedes ours.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::docker::Docker;
use common::registry::{self, Registry};
use common::*;
use serde_json::Value;

/// The service's `run.sh` per release: v3 exits at once.
const RUN: [(&str, &str); 4] = [
    ("v1.0.0", "exec sleep 3601\n"),
    ("v2.0.0", "exec sleep 3602\n"),
    ("v3.0.0", "echo 'cannot open /etc/app.cfg' >&2; exit 3\n"),
    ("v4.0.0", "exec sleep 3604\n"),
];

struct Stage {
    docker: Docker,
    registry: Registry,
    app: Repo,
    bare: PathBuf,
    _work: tempfile::TempDir,
}

impl Stage {
    fn service_image(&self) -> String {
        self.docker.service_image("web")
    }

    fn running_images(&self) -> Vec<String> {
        self.docker.running_images("web")
    }

    fn deployed_file(&self) -> String {
        sh(Command::new("git")
            .current_dir(&self.bare)
            .args(["show", "main:swarm/stack.yml"]))
    }

    fn last_commit_message(&self) -> String {
        sh(Command::new("git")
            .current_dir(&self.bare)
            .args(["log", "-1", "--format=%B", "main"]))
    }

    fn release(&self, tag: &str) -> Run {
        run(tagpilot(self.app.path())
            .args(["release", "--output", "json", "--tag", tag])
            .env("DOCKER_HOST", self.docker.host()))
    }

    fn deploy(&self, image: &str) -> Command {
        let mut cmd = tagpilot(self.app.path());
        cmd.args([
            "deploy", "--output", "json", "--env", "staging", "--tag", "v4.0.0",
        ])
        .args(["--image", image])
        .env("DOCKER_HOST", self.docker.host());
        cmd
    }

    /// The pinned reference the last release of the app pushed.
    fn pushed(&self, run: &Run) -> String {
        pinned_from_record(&serde_json::from_str(&run.stdout).unwrap())
    }
}

fn stage() -> Option<Stage> {
    if !registry::available() {
        return None;
    }
    let docker = Docker::start()?;
    docker.swarm_init();
    let registry = Registry::start(false);
    let work = tempfile::tempdir().unwrap();
    let repository = format!("{}/team/app", registry.host());

    // The deployment repository, naming an image of the app that never ran.
    let stack = format!("# the web tier\nservices:\n  web:\n    image: {repository}:0.0.0\n    deploy:\n      replicas: 2\n");
    let bare = bare_repository(work.path(), &[("swarm/stack.yml", &stack)]);

    // The app: busybox and a run.sh, released with a spec that deploys to the swarm.
    let app = swarm_app(
        &repository,
        &format!("file://{}", bare.display()),
        "    orchestrator:\n      kind: swarm\n      services: [web]\n      timeout: ${ROLLOUT_TIMEOUT:-90s}\n",
        &RUN,
    );
    Some(Stage {
        docker,
        registry,
        app,
        bare,
        _work: work,
    })
}

#[test]
fn rollouts_on_a_real_swarm() {
    let Some(stage) = stage() else {
        return;
    };

    // v1 is built without deploying, and the service created from it by hand.
    let v1_run = run(tagpilot(stage.app.path()).args([
        "release", "--output", "json", "--tag", "v1.0.0", "--skip", "deploy",
    ]))
    .ok();
    let v1 = stage.pushed(&v1_run);
    stage.docker.create_service("web", &v1);

    // v2: committed to the deployment repo, rolled out, every task on it.
    let v2_run = stage.release("v2.0.0").ok();
    let v2 = stage.pushed(&v2_run);
    let record: Value = serde_json::from_str(&v2_run.stdout).unwrap();
    let staging = &record["deployed"][0];
    assert_eq!(staging["result"]["status"], "committed", "{staging}");
    assert_eq!(staging["rollout"]["outcome"], "succeeded", "{staging}");
    assert_eq!(staging["rollout"]["services"][0]["from"], v1.as_str());
    assert_eq!(stage.service_image(), v2);
    assert_eq!(stage.running_images(), vec![v2.clone(), v2.clone()]);
    assert!(stage.deployed_file().contains(&format!("image: {v2}\n")));
    for line in ["web: submitted", "web: succeeded"] {
        assert!(v2_run.stderr.contains(line), "{}", v2_run.stderr);
    }

    // The same release again: nothing to commit, nothing to roll out, at once.
    let version_before = service_version(&stage);
    let again = stage.release("v2.0.0").ok();
    let record: Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(record["deployed"][0]["result"]["status"], "already_there");
    assert_eq!(
        record["deployed"][0]["rollout"]["outcome"],
        "already_running"
    );
    assert_eq!(service_version(&stage), version_before, "no new update");

    // v3 exits at once: Swarm's monitor sees it, the reason is shown, Swarm rolls back,
    // tagpilot exits 3 and records v2 in the deployment repository again.
    let v3_run = stage.release("v3.0.0");
    assert_eq!(v3_run.code, 3, "{}", v3_run.stderr);
    assert!(
        v3_run.stderr.contains("non-zero exit (3)"),
        "the task error is shown: {}",
        v3_run.stderr
    );
    assert!(v3_run.stderr.contains("rolled back"), "{}", v3_run.stderr);
    assert_eq!(stage.service_image(), v2);
    wait_for(
        || stage.running_images() == vec![v2.clone(), v2.clone()],
        "v2 running again",
    );
    assert!(stage.deployed_file().contains(&format!("image: {v2}\n")));
    let message = stage.last_commit_message();
    assert!(
        message.starts_with(&format!("Roll back app in staging to {v2}")),
        "{message}"
    );
    assert!(
        message.contains("Tagpilot-Release: app 2.0.0\n"),
        "{message}"
    );
    assert!(message.contains("Tagpilot-Rollback-Of: "), "{message}");
    let record: Value = serde_json::from_str(
        &std::fs::read_to_string(stage.app.path().join("tagpilot-out/release.json")).unwrap(),
    )
    .unwrap();
    let rollout = &record["deployed"][0]["rollout"];
    assert_eq!(rollout["outcome"], "failed", "{rollout}");
    assert_eq!(rollout["services"][0]["state"], "rolled_back", "{rollout}");
    assert_eq!(rollout["rolled_back"][0], "web");

    // Swarm pauses a failing update by itself (its default failure action). A re-run with
    // that image finds the spec already naming it, and reports the update paused with
    // Swarm's reason (exit 3): not "already running".
    let v3 = pinned_from_record(&record);
    sh(stage.docker.command().args([
        "service",
        "update",
        "--detach",
        "--quiet",
        "--update-failure-action",
        "pause",
        "--update-monitor",
        "3s",
        "--image",
        &v3,
        "web",
    ]));
    wait_for(
        || update_state(&stage) == "paused",
        "Swarm pausing the update",
    );
    let rerun = run(tagpilot(stage.app.path())
        .args([
            "deploy", "--output", "json", "--env", "staging", "--tag", "v3.0.0",
        ])
        .args(["--image", &v3])
        .env("DOCKER_HOST", stage.docker.host()));
    assert_eq!(rerun.code, 3, "{}", rerun.stderr);
    let service = &serde_json::from_str::<Value>(&rerun.stdout).unwrap()["rollout"]["services"][0];
    assert_eq!(service["state"], "paused", "{service}");
    assert_eq!(service["resumed"], true, "{service}");
    assert!(
        service["reason"]
            .as_str()
            .unwrap()
            .contains("update paused"),
        "{service}"
    );
    sh(stage
        .docker
        .command()
        .args(["service", "rollback", "--detach", "--quiet", "web"]));
    wait_for(
        || {
            update_state(&stage) == "rollback_completed"
                && stage.running_images() == vec![v2.clone(), v2.clone()]
        },
        "the hand rollback to v2",
    );

    // v4 on a service whose update waits 30 s between tasks, with a 5 s timeout: exit 4 and
    // tagpilot rolls it back itself (`?rollback=previous`).
    let v4_run = run(tagpilot(stage.app.path()).args([
        "release", "--output", "json", "--tag", "v4.0.0", "--skip", "deploy",
    ]))
    .ok();
    let v4 = stage.pushed(&v4_run);
    sh(stage.docker.command().args([
        "service",
        "update",
        "--detach",
        "--quiet",
        "--update-delay",
        "30s",
        "web",
    ]));
    let timed_out = run(stage.deploy(&v4).env("ROLLOUT_TIMEOUT", "5s"));
    assert_eq!(timed_out.code, 4, "{}", timed_out.stderr);
    assert!(
        timed_out.stderr.contains("timed out"),
        "{}",
        timed_out.stderr
    );
    wait_for(|| stage.service_image() == v2, "rolled back to v2");
    assert!(
        stage.deployed_file().contains(&format!("image: {v2}\n")),
        "{}\n{}",
        stage.deployed_file(),
        timed_out.stderr
    );

    // A second writer changes the service while tagpilot watches its own update: superseded.
    let watching = stage
        .deploy(&v4)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(
        || stage.service_image() == v4,
        "tagpilot's update submitted",
    );
    sh(stage.docker.command().args([
        "service", "update", "--detach", "--quiet", "--image", &v1, "web",
    ]));
    let output = watching.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let result: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(result["rollout"]["outcome"], "superseded", "{stdout}");
    assert!(stderr.contains("superseded"), "{stderr}");
    assert_eq!(stage.service_image(), v1, "the other writer's image stays");

    private_registry(&stage, &v1);
    drop(stage.registry);
}

/// The service's `UpdateStatus.State` (empty before any update).
fn update_state(stage: &Stage) -> String {
    sh(stage.docker.command().args([
        "service",
        "inspect",
        "web",
        "--format",
        "{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}",
    ]))
    .trim()
    .to_string()
}

fn service_version(stage: &Stage) -> String {
    sh(stage.docker.command().args([
        "service",
        "inspect",
        "web",
        "--format",
        "{{.Version.Index}}",
    ]))
}

/// A service moved to images in a registry that needs a login: tagpilot sends its login to
/// Swarm (`X-Registry-Auth`), so the node can pull; an update without a login of its own
/// reuses the one the service was last updated with.
fn private_registry(stage: &Stage, public_v1: &str) {
    let private = Registry::start(true);
    let login = private.docker_config();
    let work = tempfile::tempdir().unwrap();
    let repository = format!("{}/team/api", private.host());
    let stack = format!("services:\n  api:\n    image: {repository}:0.0.0\n");
    let bare = bare_repository(work.path(), &[("swarm/stack.yml", &stack)]);
    let spec = work.path().join("api.yaml");
    std::fs::write(
        &spec,
        format!(
            "name: api\nimage: {{ repository: {repository}, install_path: /, entrypoint: [/bin/sh, /run.sh], tags: [\"{{version}}\"] }}\ndeploy:\n  - environment: api\n    repo: file://{}\n    files: [{{ file: swarm/stack.yml }}]\n    orchestrator: {{ kind: swarm, services: [api], timeout: 90s }}\n",
            bare.display()
        ),
    )
    .unwrap();
    let push = |tag: &str| {
        let done = run(tagpilot(stage.app.path())
            .args(["image", "--output", "json", "--tag", tag, "--pipeline"])
            .arg(&spec)
            .env("DOCKER_CONFIG", &login))
        .ok();
        pinned_from_record(&serde_json::from_str(&done.stdout).unwrap())
    };
    let (v2, v4) = (push("v2.0.0"), push("v4.0.0"));
    // The service starts on the public registry's image: the node has no login for the other.
    stage.docker.create_service("api", public_v1);
    // Each image is deployed from its own tag: the commit's trailers name that release.
    let deploy = |image: &str, tag: &str, with_login: bool| {
        let mut cmd = tagpilot(stage.app.path());
        cmd.args(["deploy", "--env", "api", "--tag", tag, "--pipeline"])
            .arg(&spec)
            .args(["--image", image, "--allow-downgrade"])
            .env("DOCKER_HOST", stage.docker.host());
        if with_login {
            cmd.env("DOCKER_CONFIG", &login);
        }
        run(&mut cmd)
    };
    let with_login = deploy(&v2, "v2.0.0", true).ok();
    assert!(
        !with_login.stderr.contains(registry::PASSWORD),
        "no secret printed"
    );
    wait_for(
        || stage.docker.running_images("api") == vec![v2.clone(), v2.clone()],
        "both api tasks pulled from the private registry",
    );
    // No login here: Swarm uses the one the service was last updated with.
    deploy(&v4, "v4.0.0", false).ok();
    wait_for(
        || stage.docker.running_images("api") == vec![v4.clone(), v4.clone()],
        "both api tasks on v4, pulled with the earlier login",
    );
}
