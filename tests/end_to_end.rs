//! The whole product with real parts: a source repository with tags, the real registry, a
//! deployment repository served over smart HTTP with a token, a real Docker Swarm, and the
//! stateful fake of GitLab's Releases and packages APIs. Release v1 → v2 → a v3 that fails
//! (rolled back automatically) → `tagpilot rollback` to v1 → v4, checking after each step the
//! registry (through skopeo), the deployment repository's history (through git and
//! `tagpilot history`) and the image the Swarm service runs. Bad rollbacks change nothing.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::docker::Docker;
use common::fakes::gitlab::FakeGitLab;
use common::git_http::GitHttp;
use common::registry::{self, Registry};
use common::*;
use serde_json::Value;

const DEPLOY_TOKEN: &str = "glpat-deploy-s3cret";
const JOB_TOKEN: &str = "job-token-s3cret";

/// `run.sh` per release: v3 exits at once.
const RUN: [(&str, &str); 4] = [
    ("v1.0.0", "exec sleep 3601\n"),
    ("v2.0.0", "exec sleep 3602\n"),
    ("v3.0.0", "echo 'cannot open /etc/app.cfg' >&2; exit 3\n"),
    ("v4.0.0", "exec sleep 3604\n"),
];

struct World {
    docker: Docker,
    registry: Registry,
    gitlab: FakeGitLab,
    _git: GitHttp,
    app: Repo,
    bare: PathBuf,
    _work: tempfile::TempDir,
}

impl World {
    fn tagpilot(&self, args: &[&str]) -> Command {
        let mut cmd = tagpilot(self.app.path());
        cmd.args(args)
            .env("DOCKER_HOST", self.docker.host())
            .env("DEPLOY_TOKEN", DEPLOY_TOKEN)
            .env("CI_API_V4_URL", self.gitlab.api_url())
            .env("CI_PROJECT_ID", "42")
            .env("CI_JOB_TOKEN", JOB_TOKEN)
            .env(
                "CI_PIPELINE_URL",
                "https://gitlab.example.org/group/app/-/pipelines/7",
            )
            .env("GITLAB_USER_NAME", "Ada Admin");
        cmd
    }

    /// Releases a tag; returns the run and the pinned reference it pushed.
    fn release(&self, tag: &str) -> (Run, String) {
        let run = run(&mut self.tagpilot(&["release", "--output", "json", "--tag", tag]));
        for secret in [DEPLOY_TOKEN, JOB_TOKEN] {
            assert!(
                !run.stdout.contains(secret) && !run.stderr.contains(secret),
                "a secret was printed"
            );
        }
        (run, self.pushed())
    }

    /// `registry/repo:version@sha256:…` of the last release's push, from its saved record.
    fn pushed(&self) -> String {
        pinned_from_record(&read_json(
            &self.app.path().join("tagpilot-out/release.json"),
        ))
    }

    /// The digest the registry's tag names, read by skopeo.
    fn registry_digest(&self, tag: &str) -> String {
        sh(Command::new("skopeo").args([
            "inspect",
            "--tls-verify=false",
            "--format",
            "{{.Digest}}",
            &format!("docker://{}/team/app:{tag}", self.registry.host()),
        ]))
        .trim()
        .to_string()
    }

    fn deployed_file(&self) -> String {
        sh(Command::new("git")
            .current_dir(&self.bare)
            .args(["show", "main:swarm/stack.yml"]))
    }

    fn commit_count(&self) -> usize {
        commit_count(&self.bare)
    }

    fn last_message(&self) -> String {
        sh(Command::new("git")
            .current_dir(&self.bare)
            .args(["log", "-1", "--format=%B", "main"]))
    }

    fn history(&self) -> Vec<Value> {
        let out = run(&mut self.tagpilot(&["history", "--env", "staging", "--output", "json"]))
            .ok()
            .stdout;
        serde_json::from_str::<Value>(&out)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }

    /// Asserts the service's spec and both running tasks name `image`.
    fn runs(&self, image: &str) {
        assert_eq!(self.docker.service_image("web"), image);
        wait_for(
            || self.docker.running_images("web") == vec![image.to_string(), image.to_string()],
            &format!("both tasks on {image}"),
        );
    }
}

fn world() -> Option<World> {
    if !registry::available() || !tool_available("skopeo", "skopeo") {
        return None;
    }
    let docker = Docker::start()?;
    docker.swarm_init();
    let registry = Registry::start(false);
    let gitlab = FakeGitLab::start("42", JOB_TOKEN);
    let work = tempfile::tempdir().unwrap();
    let repository = format!("{}/team/app", registry.host());
    let stack = format!(
        "services:\n  web:\n    image: {repository}:0.0.0\n    deploy:\n      replicas: 2\n"
    );
    let bare = bare_repository(work.path(), &[("swarm/stack.yml", &stack)]);
    let git = GitHttp::start(work.path().to_path_buf(), "oauth2", DEPLOY_TOKEN);

    let app = swarm_app(
        &repository,
        &git.url("deployment.git"),
        "    credentials: { token: DEPLOY_TOKEN }\n    orchestrator: { kind: swarm, services: [web], timeout: 90s }\n",
        &RUN,
    );
    Some(World {
        docker,
        registry,
        gitlab,
        _git: git,
        app,
        bare,
        _work: work,
    })
}

#[test]
fn release_fail_roll_back_and_release_again() {
    let Some(w) = world() else {
        return;
    };

    // v1 is built and published first; the service is created from it by hand (a release
    // rolls out existing services); the full release then records it and finds it running.
    run(&mut w.tagpilot(&["release", "--tag", "v1.0.0", "--skip", "deploy"])).ok();
    let v1 = w.pushed();
    w.docker.create_service("web", &v1);
    let (first, v1_again) = w.release("v1.0.0");
    first.ok();
    assert_eq!(
        v1, v1_again,
        "the same bytes: the re-run pushed nothing new"
    );
    assert!(w.deployed_file().contains(&format!("image: {v1}\n")));
    assert_eq!(w.registry_digest("1.0.0"), v1.split('@').nth(1).unwrap());
    assert!(w.gitlab.release("v1.0.0").is_some());

    // v2: pushed, published, committed, rolled out.
    let (v2_run, v2) = w.release("v2.0.0");
    v2_run.ok();
    w.runs(&v2);
    assert_eq!(w.registry_digest("2.0.0"), v2.split('@').nth(1).unwrap());
    let published = w.gitlab.release("v2.0.0").unwrap();
    let v2_digest = v2.split('@').nth(1).unwrap();
    assert!(
        published.description.contains(v2_digest),
        "{}",
        published.description
    );
    assert_eq!(w.gitlab.files("app", "2.0.0", "app-2.0.0.tar.gz").len(), 1);

    // v3 fails: exit 3, Swarm rolls back, the repository records v2 again.
    let (v3_run, v3) = w.release("v3.0.0");
    assert_eq!(v3_run.code, 3, "{}", v3_run.stderr);
    w.runs(&v2);
    assert!(w.deployed_file().contains(&format!("image: {v2}\n")));
    assert_eq!(
        w.registry_digest("3.0.0"),
        v3.split('@').nth(1).unwrap(),
        "the failed image stays in the registry (released versions are immutable)"
    );

    let history = w.history();
    let versions: Vec<&str> = history
        .iter()
        .map(|e| e["version"].as_str().unwrap())
        .collect();
    // The stack file's first commit named 0.0.0: the state before tagpilot is a deploy too.
    assert_eq!(versions, ["2.0.0", "3.0.0", "2.0.0", "1.0.0", "0.0.0"]);
    assert_eq!(history[4]["origin"], "before_tagpilot");
    assert_eq!(history[3]["origin"], "tagpilot");
    assert_eq!(history[0]["rollback_of"], v3.as_str());
    assert_eq!(history[1]["image"], v3.as_str());
    assert_eq!(
        history[1]["pipeline"],
        "https://gitlab.example.org/group/app/-/pipelines/7"
    );
    assert_eq!(history[3]["digest"], v1.split('@').nth(1).unwrap());
    let human = run(&mut w.tagpilot(&["history", "--env", "staging"])).ok();
    assert!(
        human.stdout.lines().next().unwrap().starts_with("2.0.0\t"),
        "{}",
        human.stdout
    );
    assert!(human.stdout.contains("rollback of"), "{}", human.stdout);
    assert!(
        human.stdout.contains("\tbefore tagpilot"),
        "{}",
        human.stdout
    );

    // Bad rollbacks: a version never deployed, and an image the registry lost. Nothing changes.
    let commits = w.commit_count();
    let never = run(&mut w.tagpilot(&["rollback", "--env", "staging", "--to", "9.9.9"]))
        .fails_with(2, "version 9.9.9 was never deployed to staging");
    assert!(
        never.stderr.contains("2.0.0, 3.0.0, 1.0.0, 0.0.0"),
        "{}",
        never.stderr
    );
    let v3_digest = v3.split('@').nth(1).unwrap();
    sh(Command::new("skopeo").args([
        "delete",
        "--tls-verify=false",
        &format!("docker://{}/team/app@{v3_digest}", w.registry.host()),
    ]));
    run(&mut w.tagpilot(&["rollback", "--env", "staging", "--to", "3.0.0"]))
        .fails_with(2, "is no longer in the registry");
    assert_eq!(w.commit_count(), commits, "nothing was committed");
    w.runs(&v2);

    // A dry run says where it would go and changes nothing.
    let dry = run(&mut w.tagpilot(&["rollback", "--env", "staging", "--dry-run"])).ok();
    assert!(
        dry.stderr.contains("rolling back to 1.0.0"),
        "{}",
        dry.stderr
    );
    assert!(
        dry.stdout.contains(&format!("+    image: {v1}")),
        "{}",
        dry.stdout
    );
    assert_eq!(w.commit_count(), commits);

    // The rollback: by default to v1 (v2 runs, v3 failed), committed, rolled out.
    let back = run(&mut w.tagpilot(&[
        "rollback",
        "--env",
        "staging",
        "--reason",
        "v2 leaks memory",
        "--output",
        "json",
    ]))
    .ok();
    let result: Value = serde_json::from_str(&back.stdout).unwrap();
    assert_eq!(result["result"]["status"], "committed", "{result}");
    assert_eq!(result["rollout"]["outcome"], "succeeded", "{result}");
    w.runs(&v1);
    assert!(w.deployed_file().contains(&format!("image: {v1}\n")));
    let message = w.last_message();
    assert!(
        message.starts_with(&format!(
            "Roll back app in staging to {v1}\n\nAda Admin rolled back from {v2}"
        )),
        "{message}"
    );
    for trailer in [
        "Tagpilot-Release: app 1.0.0\n".to_string(),
        format!("Tagpilot-Rollback-Of: {v2}\n"),
        "Tagpilot-Reason: v2 leaks memory\n".to_string(),
    ] {
        assert!(message.contains(&trailer), "{message}");
    }
    assert_eq!(
        w.commit_count(),
        commits + 1,
        "one new commit; history kept"
    );

    // v4 after the rollback: a normal release.
    let (v4_run, v4) = w.release("v4.0.0");
    v4_run.ok();
    w.runs(&v4);
    assert!(w.deployed_file().contains(&format!("image: {v4}\n")));
    let history = w.history();
    assert_eq!(history[0]["version"], "4.0.0");
    assert_eq!(history[1]["version"], "1.0.0");
    assert_eq!(history.len(), 7);
    assert!(w.gitlab.release("v4.0.0").is_some());
    for tag in ["v1.0.0", "v2.0.0", "v3.0.0", "v4.0.0"] {
        let release = w.gitlab.release(tag).unwrap();
        let names: Vec<&str> = release.links.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(
            names[1..],
            ["SHA256SUMS", "provenance.json", "sbom.spdx.json"],
            "{tag}: the tarball, SHA256SUMS, the provenance and the SBOM, once"
        );
    }
    drop(w.registry);
}
