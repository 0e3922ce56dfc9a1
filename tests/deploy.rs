//! `tagpilot deploy` against real deployment repositories (bare repositories over file://):
//! exact edits, trailers, idempotence, dry runs, and eight releases racing for one branch.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const REPO: &str = "registry.example.org/lhcb/dirac";

fn image(version: &str) -> String {
    format!(
        "{REPO}:{version}@sha256:{}",
        "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
    )
}

/// A bare deployment repository whose `main` holds the fixture Deployment.
fn deployment_repo(dir: &Path) -> PathBuf {
    let deployment =
        std::fs::read_to_string(Path::new(ROOT).join("fixtures/deploy/k8s-deployment/input.yaml"))
            .unwrap();
    bare_repository(dir, &[("k8s/filecatalog.yaml", &deployment)])
}

/// The DIRAC sample repository with a spec deploying to `bare`.
fn source_with_spec(work: &Path, bare: &Path) -> (PathBuf, PathBuf) {
    let repo = work.join("dirac");
    let spec = work.join("deploy.yaml");
    std::fs::write(
        &spec,
        format!(
            "name: DIRAC\nversion: {{ scheme: auto }}\ndeploy:\n  - environment: staging\n    repo: file://{}\n    branch: main\n    files:\n      - file: k8s/filecatalog.yaml\n    author: {{ name: Release Bot, email: bot@example.org }}\n",
            bare.display()
        ),
    )
    .unwrap();
    (repo, spec)
}

/// `tagpilot deploy --output json --env ENV --tag TAG --image IMAGE(version) --pipeline SPEC`.
fn deploy_command(
    repo: &Path,
    spec: impl AsRef<std::ffi::OsStr>,
    env: &str,
    tag: &str,
    version: &str,
) -> Command {
    let mut cmd = tagpilot(repo);
    cmd.args([
        "deploy",
        "--output",
        "json",
        "--env",
        env,
        "--tag",
        tag,
        "--image",
        &image(version),
        "--pipeline",
    ])
    .arg(spec);
    cmd
}

/// The sample source repository, a bare deployment repository, and a spec deploying `staging`
/// there: (work folder, bare repository, source repository, spec).
fn fixture() -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
    let work = dirac_repo();
    let bare = deployment_repo(work.path());
    let (repo, spec) = source_with_spec(work.path(), &bare);
    (work, bare, repo, spec)
}

fn deploy(repo: &Path, spec: &Path, tag: &str, version: &str, extra: &[&str]) -> Run {
    run(tagpilot(repo)
        .args([
            "deploy",
            "--output",
            "json",
            "--env",
            "staging",
            "--tag",
            tag,
            "--image",
            &image(version),
            "--pipeline",
        ])
        .arg(spec)
        .args(extra)
        .env(
            "CI_PIPELINE_URL",
            "https://gitlab.example.org/lhcb/dirac/-/pipelines/42",
        ))
}

fn file_on_main(bare: &Path) -> String {
    sh(Command::new("git")
        .current_dir(bare)
        .args(["show", "main:k8s/filecatalog.yaml"]))
}

fn result(run: &Run) -> Value {
    serde_json::from_str::<Value>(&run.stdout).unwrap()["result"].clone()
}

#[test]
fn a_deploy_commits_exactly_the_image_lines_with_trailers() {
    let (_work, bare, repo, spec) = fixture();

    let dry = deploy(&repo, &spec, "v8r2p44", "8.2.44", &["--dry-run"]).ok();
    let diff = result(&dry)["diff"].as_str().unwrap().to_string();
    assert!(
        diff.contains(&format!("+          image: {}", image("8.2.44"))),
        "{diff}"
    );
    assert_eq!(
        sh(Command::new("git")
            .current_dir(&bare)
            .args(["rev-list", "--count", "main"]))
        .trim(),
        "1",
        "a dry run commits nothing"
    );

    let first = deploy(&repo, &spec, "v8r2p44", "8.2.44", &[]).ok();
    assert_eq!(result(&first)["status"], "committed");
    let expected =
        std::fs::read_to_string(Path::new(ROOT).join("fixtures/deploy/k8s-deployment/input.yaml"))
            .unwrap()
            .replace(
                &format!("image: {REPO}:8.2.43"),
                &format!("image: {}", image("8.2.44")),
            );
    assert_eq!(file_on_main(&bare), expected);
    let message = sh(Command::new("git").current_dir(&bare).args([
        "log",
        "-1",
        "--format=%an <%ae>%n%B",
        "main",
    ]));
    for line in [
        "Release Bot <bot@example.org>".to_string(),
        "Tagpilot-Release: DIRAC 8.2.44".to_string(),
        format!("Tagpilot-Image: {}", image("8.2.44")),
        "Tagpilot-Environment: staging".to_string(),
        "Tagpilot-Pipeline: https://gitlab.example.org/lhcb/dirac/-/pipelines/42".to_string(),
    ] {
        assert!(message.contains(&line), "missing {line:?} in\n{message}");
    }

    let again = deploy(&repo, &spec, "v8r2p44", "8.2.44", &[]).ok();
    assert_eq!(result(&again)["status"], "already_there");
    assert_eq!(
        sh(Command::new("git")
            .current_dir(&bare)
            .args(["rev-list", "--count", "main"]))
        .trim(),
        "2"
    );

    // An older release does not overwrite a newer one unless asked.
    let older = deploy(&repo, &spec, "v8r2p43", "8.2.43", &[]).ok();
    assert_eq!(result(&older)["status"], "superseded");
    assert_eq!(result(&older)["by"], "8.2.44");
    let forced = deploy(&repo, &spec, "v8r2p43", "8.2.43", &["--allow-downgrade"]).ok();
    assert_eq!(result(&forced)["status"], "committed");
    assert!(file_on_main(&bare).contains(&image("8.2.43")));
}

#[test]
fn eight_releases_racing_for_one_branch() {
    let (_work, bare, repo, spec) = fixture();
    let versions: Vec<String> = (1..=8).map(|n| format!("8.3.{n}")).collect();
    for n in 1..=8 {
        sh(Command::new("git")
            .current_dir(&repo)
            .args(["tag", &format!("v8r3p{n}")]));
    }
    let commands = versions
        .iter()
        .enumerate()
        .map(|(i, version)| {
            deploy_command(&repo, &spec, "staging", &format!("v8r3p{}", i + 1), version)
        })
        .collect();
    race_deploys("eight releases", commands, &bare);
    assert!(
        file_on_main(&bare).contains(&image("8.3.8")),
        "the highest version wins:\n{}",
        file_on_main(&bare)
    );
}

#[test]
fn unknown_environment_and_missing_image_are_clear() {
    let (work, _bare, repo, spec) = fixture();
    run(&mut deploy_command(
        &repo,
        &spec,
        "production",
        "v8r2p44",
        "8.2.44",
    ))
    .fails_with(
        2,
        "no environment `production` in the spec's deploy section; it has: staging",
    );
    run(tagpilot(&repo)
        .args([
            "deploy",
            "--env",
            "staging",
            "--tag",
            "v8r2p44",
            "--pipeline",
        ])
        .arg(&spec))
    .fails_with(2, "no image to deploy");
    let wrong = work.path().join("wrong.yaml");
    std::fs::write(
        &wrong,
        std::fs::read_to_string(&spec)
            .unwrap()
            .replace("k8s/filecatalog.yaml", "k8s/missing.yaml"),
    )
    .unwrap();
    run(&mut deploy_command(
        &repo, &wrong, "staging", "v8r2p44", "8.2.44",
    ))
    .fails_with(2, "k8s/missing.yaml is not in");
}

/// Over smart HTTP with Basic auth, as a GitLab HTTPS remote with a project access token: the
/// token comes from the variable the spec names and is never printed; a wrong one is refused
/// with a hint about which kind of token can push.
#[test]
fn over_smart_http_with_a_token() {
    let work = dirac_repo();
    let bare = deployment_repo(work.path());
    let server =
        common::git_http::GitHttp::start(work.path().to_path_buf(), "oauth2", "glpat-secret-token");
    let (repo, _) = source_with_spec(work.path(), &bare);
    let spec = work.path().join("http.yaml");
    std::fs::write(
        &spec,
        format!(
            "name: DIRAC\ndeploy:\n  - environment: staging\n    repo: {}\n    files: [{{ file: k8s/filecatalog.yaml }}]\n    credentials: {{ token: DEPLOY_TOKEN }}\n",
            server.url("deployment.git")
        ),
    )
    .unwrap();
    let attempt = |token: &str| {
        run(deploy_command(&repo, &spec, "staging", "v8r2p44", "8.2.44").env("DEPLOY_TOKEN", token))
    };
    let refused = attempt("wrong-token").fails_with(2, "with the login from DEPLOY_TOKEN");
    assert!(
        refused.stderr.contains("write_repository"),
        "{}",
        refused.stderr
    );
    assert!(!refused.stderr.contains("wrong-token"));
    let landed = run(deploy_command(&repo, &spec, "staging", "v8r2p44", "8.2.44")
        .env("DEPLOY_TOKEN", "glpat-secret-token")
        .env("GITLAB_USER_NAME", "Christophe Haen")
        .env("GITLAB_USER_EMAIL", "christophe@example.org"))
    .ok();
    assert_eq!(result(&landed)["status"], "committed");
    let author = sh(Command::new("git").current_dir(&bare).args([
        "log",
        "-1",
        "--format=%an <%ae>",
        "main",
    ]));
    assert_eq!(
        author.trim(),
        "Christophe Haen <christophe@example.org>",
        "the author comes from GitLab's variables"
    );
    assert!(
        !landed.stderr.contains("glpat-secret-token"),
        "the token is never printed"
    );
    assert!(file_on_main(&bare).contains(&image("8.2.44")));
    run(&mut deploy_command(
        &repo, &spec, "staging", "v8r2p44", "8.2.44",
    ))
    .fails_with(
        2,
        "environment variable DEPLOY_TOKEN (deploy staging credentials) is not set",
    );
}

#[test]
fn message_template_and_digest_only_references() {
    let (work, bare, repo, _) = fixture();
    let spec = work.path().join("digest.yaml");
    std::fs::write(
        &spec,
        format!(
            "name: DIRAC\ndeploy:\n  - environment: production\n    repo: file://{}\n    files: [{{ file: k8s/filecatalog.yaml }}]\n    message: \"Release {{name}} {{tag}} ({{version}}) to {{environment}}\"\n    write: digest\n",
            bare.display()
        ),
    )
    .unwrap();
    run(&mut deploy_command(
        &repo,
        &spec,
        "production",
        "v8r2p44",
        "8.2.44",
    ))
    .ok();
    let digest_only =
        format!("{REPO}@sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae");
    assert!(file_on_main(&bare).contains(&format!("image: {digest_only}\n")));
    let subject =
        sh(Command::new("git")
            .current_dir(&bare)
            .args(["log", "-1", "--format=%s%n%b", "main"]));
    assert!(
        subject.starts_with("Release DIRAC v8r2p44 (8.2.44) to production\n"),
        "{subject}"
    );
    assert!(
        subject.contains(&format!("Tagpilot-Image: {digest_only}")),
        "{subject}"
    );
    // A placeholder that does not exist is a spec error.
    std::fs::write(
        &spec,
        std::fs::read_to_string(&spec)
            .unwrap()
            .replace("{environment}", "{envirnoment}"),
    )
    .unwrap();
    run(tagpilot(&repo).args(["validate", "--pipeline"]).arg(&spec))
        .fails_with(2, "unknown placeholder `{envirnoment}`");
}

/// Over SSH with a key file named by a variable, as with a GitLab deploy key that may write.
#[test]
fn over_ssh_with_a_key_file() {
    let Some(sshd) = common::sshd::Sshd::start() else {
        return;
    };
    let (work, bare, repo, _) = fixture();
    let spec = work.path().join("ssh.yaml");
    std::fs::write(
        &spec,
        format!(
            "name: DIRAC\ndeploy:\n  - environment: staging\n    repo: {}\n    files: [{{ file: k8s/filecatalog.yaml }}]\n    credentials: {{ ssh_key: DEPLOY_KEY }}\n",
            sshd.url(&bare)
        ),
    )
    .unwrap();
    let home = work.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let landed = run(deploy_command(&repo, &spec, "staging", "v8r2p44", "8.2.44")
        .env("DEPLOY_KEY", sshd.client_key())
        .env("HOME", &home))
    .ok();
    assert_eq!(result(&landed)["status"], "committed");
    assert!(file_on_main(&bare).contains(&image("8.2.44")));
    // The same key from ssh-agent, with no key file named: plain git finds the agent.
    let agent = sh(Command::new("ssh-agent").arg("-s"));
    let socket = agent
        .split(';')
        .find_map(|part| part.trim().strip_prefix("SSH_AUTH_SOCK="))
        .unwrap()
        .to_string();
    let pid = agent
        .split(';')
        .find_map(|part| part.trim().strip_prefix("SSH_AGENT_PID="))
        .unwrap()
        .to_string();
    sh(Command::new("ssh-add")
        .arg("-q")
        .arg(sshd.client_key())
        .env("SSH_AUTH_SOCK", &socket));
    sh(Command::new("git")
        .current_dir(&repo)
        .args(["tag", "v8r2p45"]));
    let agent_spec = work.path().join("agent.yaml");
    std::fs::write(
        &agent_spec,
        std::fs::read_to_string(&spec)
            .unwrap()
            .replace("    credentials: { ssh_key: DEPLOY_KEY }\n", ""),
    )
    .unwrap();
    let via_agent = run(
        deploy_command(&repo, &agent_spec, "staging", "v8r2p45", "8.2.45")
            .env("SSH_AUTH_SOCK", &socket)
            .env("HOME", &home),
    );
    let _ = Command::new("kill").arg(&pid).status();
    let via_agent = via_agent.ok();
    assert_eq!(result(&via_agent)["status"], "committed");
    assert!(file_on_main(&bare).contains(&image("8.2.45")));
    // Another key is refused, as a read-only or unknown deploy key would be.
    let other = work.path().join("other");
    sh(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other));
    run(deploy_command(&repo, &spec, "staging", "v8r2p44", "8.2.44")
        .env("DEPLOY_KEY", &other)
        .env("HOME", &home))
    .fails_with(2, "with the login from DEPLOY_KEY");
}

/// `release --dry-run` computes the commit each automatic environment would get, and commits
/// nothing; manual environments are left to `tagpilot deploy`.
#[test]
fn a_dry_run_release_shows_the_deployment_diff() {
    let (work, bare, repo, _) = fixture();
    let spec = work.path().join("release.yaml");
    std::fs::write(
        &spec,
        format!(
            "name: DIRAC\nimage:\n  repository: {REPO}\n  install_path: /opt/dirac\ndeploy:\n  - environment: staging\n    automatic: true\n    repo: file://{0}\n    files: [{{ file: k8s/filecatalog.yaml }}]\n  - environment: production\n    repo: file://{0}\n    files: [{{ file: k8s/filecatalog.yaml }}]\n",
            bare.display()
        ),
    )
    .unwrap();
    let out = work.path().join("out");
    dry_run_release(&repo, "v8r2p44", Some(&spec), &out);
    let record = read_json(&out.join("release.json"));
    let deployed = record["deployed"].as_array().unwrap();
    assert_eq!(deployed.len(), 1, "only the automatic environment");
    assert_eq!(deployed[0]["environment"], "staging");
    assert_eq!(deployed[0]["result"]["status"], "would_commit");
    let digest = record["image"]["digest"].as_str().unwrap();
    let line = format!("+          image: {REPO}:8.2.44@{digest}");
    assert!(
        deployed[0]["result"]["diff"]
            .as_str()
            .unwrap()
            .contains(&line),
        "{}",
        deployed[0]["result"]["diff"]
    );
    assert_eq!(
        sh(Command::new("git")
            .current_dir(&bare)
            .args(["rev-list", "--count", "main"]))
        .trim(),
        "1"
    );
}

#[test]
fn bad_deployment_files_name_the_file_and_push_nothing() {
    let (work, bare, repo, spec) = fixture();
    let with = |edit: &dyn Fn(String) -> String| {
        let path = work.path().join("variant.yaml");
        std::fs::write(&path, edit(std::fs::read_to_string(&spec).unwrap())).unwrap();
        run(&mut deploy_command(
            &repo, path, "staging", "v8r2p44", "8.2.44",
        ))
    };
    with(&|s| s.replace("branch: main", "branch: release")).fails_with(1, "branch release");
    // Commit files that name no image, or do not parse, to the deployment repository.
    let seed = work.path().join("seed");
    std::fs::write(
        seed.join("k8s/other.yaml"),
        "image: docker.io/library/nginx:1.25\n",
    )
    .unwrap();
    std::fs::write(seed.join("k8s/broken.yaml"), "spec:\n  image: [unclosed\n").unwrap();
    let git = |args: &[&str]| {
        sh(Command::new("git")
            .current_dir(&seed)
            .args(["-c", "user.name=t", "-c", "user.email=t@e"])
            .args(args))
    };
    git(&["add", "-A"]);
    git(&["commit", "-qm", "more"]);
    git(&["push", "-q", bare.to_str().unwrap(), "main"]);
    let before = sh(Command::new("git")
        .current_dir(&bare)
        .args(["rev-parse", "main"]));
    with(&|s| s.replace("k8s/filecatalog.yaml", "k8s/other.yaml")).fails_with(
        2,
        "k8s/other.yaml names no image of registry.example.org/lhcb/dirac",
    );
    with(&|s| s.replace("k8s/filecatalog.yaml", "k8s/broken.yaml"))
        .fails_with(2, "k8s/broken.yaml: line 2: not valid YAML/JSON");
    assert_eq!(
        sh(Command::new("git")
            .current_dir(&bare)
            .args(["rev-parse", "main"])),
        before,
        "nothing pushed"
    );
}
