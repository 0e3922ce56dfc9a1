//! The publish stage against a stateful fake of GitLab's Releases and generic packages APIs:
//! created once, found done on a re-run, other bytes under a released version refused (and
//! replaced only with --force), an upload whose reply was lost not duplicated, a hand-made
//! release reconciled, dry runs that write nothing, GitLab's guards, a refused token, and
//! jobs stopped by SIGTERM or killed mid-publish that a re-run finishes without duplicates.

mod common;

use std::process::Command;

use common::fakes::gitlab::FakeGitLab;
use common::registry::{self, Registry};
use common::*;
use serde_json::Value;

const TOKEN: &str = "job-token-s3cr3t";

/// Two releases with commits between them, and no image (the tarball is what is published).
fn project() -> Repo {
    let repo = Repo::new();
    repo.write("tagpilot.yaml", "name: app\n")
        .write("app.py", "print(1)\n")
        .commit("Add the app")
        .tag("v1.0.0");
    repo.write("app.py", "print(2)\n")
        .commit("Fix the greeting")
        .write("README", "app\n")
        .commit("Document the app")
        .tag("v1.1.0");
    repo
}

fn release(repo: &Repo, gitlab: &FakeGitLab, extra: &[&str]) -> Command {
    release_of("v1.1.0", repo, gitlab, extra)
}

fn release_of(tag: &str, repo: &Repo, gitlab: &FakeGitLab, extra: &[&str]) -> Command {
    let mut cmd = tagpilot(repo.path());
    cmd.args(["release", "--output", "json", "--tag", tag])
        .args(extra)
        .env("CI_API_V4_URL", gitlab.api_url())
        .env("CI_PROJECT_ID", "group/app")
        .env("CI_PROJECT_URL", "https://gitlab.example.org/group/app")
        .env("CI_JOB_TOKEN", TOKEN);
    cmd
}

fn stage<'a>(record: &'a Value, name: &str) -> &'a Value {
    record["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap()
}

#[test]
fn publishes_once_and_a_rerun_finds_it_done() {
    let repo = project();
    let gitlab = FakeGitLab::start("group/app", TOKEN);

    let first = run(&mut release(&repo, &gitlab, &[])).ok();
    assert!(!first.stdout.contains(TOKEN) && !first.stderr.contains(TOKEN));
    let record: Value = serde_json::from_str(&first.stdout).unwrap();
    assert_eq!(stage(&record, "publish")["status"], "done", "{record}");
    assert_eq!(record["published"]["release"], "created");
    let tarball = record["tarball"]["file"].as_str().unwrap();
    let sha256 = record["tarball"]["sha256"].as_str().unwrap();
    assert_eq!(tarball, "app-1.1.0.tar.gz");

    let stored = gitlab.files("app", "1.1.0", tarball);
    assert_eq!(stored.len(), 1);
    assert_eq!(
        stored[0].sha256, sha256,
        "the bytes GitLab holds are the tarball's"
    );
    let sums = gitlab.files("app", "1.1.0", "SHA256SUMS");
    assert_eq!(sums.len(), 1);

    let published = gitlab.release("v1.1.0").unwrap();
    assert_eq!(published.name, "app 1.1.0");
    assert!(
        published.description.contains("Changes since v1.0.0")
            && published.description.contains("- Fix the greeting")
            && published.description.contains("- Document the app")
            && !published.description.contains("Add the app"),
        "notes are the commits since the previous release: {}",
        published.description
    );
    let link = published.links.iter().find(|l| l.name == tarball).unwrap();
    assert_eq!(
        link.url,
        format!(
            "{}/projects/group%2Fapp/packages/generic/app/1.1.0/{tarball}",
            gitlab.api_url()
        )
    );
    assert_eq!(link.link_type, "package");
    assert_eq!(link.direct_asset_path.as_deref(), Some("/app-1.1.0.tar.gz"));
    let annotations = read_json(&repo.path().join("tagpilot-out/annotations.json"));
    let labels: Vec<&str> = annotations["tagpilot"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["external_link"]["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["Release", tarball, "SHA256SUMS"]);

    // The pipeline retried: nothing is written twice.
    let writes = gitlab.writes();
    let again = run(&mut release(&repo, &gitlab, &[])).ok();
    let record: Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(stage(&record, "publish")["status"], "already_done");
    assert_eq!(record["published"]["release"], "already_there");
    assert_eq!(record["published"]["files"][0]["status"], "already_there");
    assert_eq!(gitlab.writes(), writes, "no request changed anything");
    assert_eq!(gitlab.files("app", "1.1.0", tarball).len(), 1);
    assert_eq!(gitlab.release("v1.1.0").unwrap().links.len(), 2);
}

#[test]
fn other_bytes_under_a_released_version_are_refused_unless_forced() {
    let repo = project();
    let gitlab = FakeGitLab::start("group/app", TOKEN);
    run(&mut release(&repo, &gitlab, &[])).ok();
    // Someone else's build of 1.1.0 was published with other bytes.
    {
        let mut state = gitlab.state.lock().unwrap();
        state.packages[0].files[0].sha256 = "0".repeat(64);
    }
    let writes = gitlab.writes();
    let refused = run(&mut release(&repo, &gitlab, &[])).fails_with(2, "other bytes");
    assert!(refused.stderr.contains("--force"), "{}", refused.stderr);
    assert_eq!(gitlab.writes(), writes, "nothing was uploaded");
    let record = read_json(&repo.path().join("tagpilot-out/release.json"));
    assert_eq!(stage(&record, "publish")["status"], "failed");

    let forced = run(&mut release(&repo, &gitlab, &["--force"])).ok();
    let record: Value = serde_json::from_str(&forced.stdout).unwrap();
    assert_eq!(record["published"]["files"][0]["status"], "replaced");
    assert_eq!(gitlab.files("app", "1.1.0", "app-1.1.0.tar.gz").len(), 2);
}

#[test]
fn package_settings_that_force_cannot_override_are_named() {
    let repo = project();
    let gitlab = FakeGitLab::start("group/app", TOKEN);
    run(&mut release(&repo, &gitlab, &[])).ok();
    {
        let mut state = gitlab.state.lock().unwrap();
        state.packages[0].files[0].sha256 = "0".repeat(64);
        state.reject_duplicates = true;
    }
    let refused =
        run(&mut release(&repo, &gitlab, &["--force"])).fails_with(2, "rejects duplicate files");
    assert!(
        refused.stderr.contains("--force cannot replace"),
        "{}",
        refused.stderr
    );
    {
        let mut state = gitlab.state.lock().unwrap();
        state.reject_duplicates = false;
        state.protected_packages = true;
    }
    run(&mut release(&repo, &gitlab, &["--force"])).fails_with(2, "protects this package");
    assert_eq!(gitlab.files("app", "1.1.0", "app-1.1.0.tar.gz").len(), 1);
}

#[test]
fn an_older_gitlab_that_refuses_the_job_token_is_named_and_not_retried() {
    let repo = project();
    let gitlab = FakeGitLab::start("group/app", TOKEN);
    // 15.10 takes a job token on the packages listing, but not yet on package files.
    gitlab.state.lock().unwrap().version = (15, 10);
    let refused = run(&mut release(&repo, &gitlab, &[])).fails_with(2, "refused CI_JOB_TOKEN");
    assert!(
        refused.stderr.contains(
            "older than 16.0, the first to accept a job token on its package files listing API"
        ),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("GITLAB_TOKEN"),
        "{}",
        refused.stderr
    );
    // The first file found no package to compare with and went up; the second needed the
    // files listing, which this GitLab refuses, so it did not.
    assert_eq!(gitlab.files("app", "1.1.0", "app-1.1.0.tar.gz").len(), 1);
    assert!(gitlab.files("app", "1.1.0", "SHA256SUMS").is_empty());

    // With a project access token it goes through.
    let mut with_token = release(&repo, &gitlab, &[]);
    with_token.env("GITLAB_TOKEN", TOKEN);
    run(&mut with_token).ok();
    assert_eq!(gitlab.files("app", "1.1.0", "app-1.1.0.tar.gz").len(), 1);
}

#[test]
fn without_a_listed_sha256_a_rerun_compares_size_and_md5() {
    let repo = project();
    let gitlab = FakeGitLab::start("group/app", TOKEN);
    gitlab.state.lock().unwrap().lists_sha256 = false;
    run(&mut release(&repo, &gitlab, &[])).ok();
    let again = run(&mut release(&repo, &gitlab, &[])).ok();
    let record: Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(record["published"]["files"][0]["status"], "already_there");
    assert_eq!(
        gitlab.files("app", "1.1.0", "app-1.1.0.tar.gz").len(),
        1,
        "no duplicate"
    );

    // Other bytes stored: told by their MD5.
    gitlab.state.lock().unwrap().packages[0].files[0].md5 = "0".repeat(32);
    let writes = gitlab.writes();
    run(&mut release(&repo, &gitlab, &[]))
        .fails_with(2, &format!("other bytes (md5 {}", "0".repeat(32)));
    assert_eq!(gitlab.writes(), writes);

    // Neither SHA-256 nor MD5 listed (FIPS mode): it says it cannot tell, and uploads nothing.
    gitlab.state.lock().unwrap().lists_md5 = false;
    let unknown = run(&mut release(&repo, &gitlab, &[]))
        .fails_with(2, "cannot tell whether it holds these bytes");
    assert!(unknown.stderr.contains("--force"), "{}", unknown.stderr);
    assert_eq!(gitlab.writes(), writes);
}

#[test]
fn an_upload_whose_reply_was_lost_is_not_uploaded_twice() {
    let repo = project();
    let gitlab = FakeGitLab::start("group/app", TOKEN);
    gitlab.state.lock().unwrap().drop_next_upload_reply = true;
    let done = run(&mut release(&repo, &gitlab, &[])).ok();
    let record: Value = serde_json::from_str(&done.stdout).unwrap();
    // The re-check before the retry found the file stored.
    assert_eq!(record["published"]["files"][0]["status"], "already_there");
    assert_eq!(gitlab.files("app", "1.1.0", "app-1.1.0.tar.gz").len(), 1);
    assert_eq!(gitlab.files("app", "1.1.0", "SHA256SUMS").len(), 1);
}

#[test]
fn a_release_made_by_hand_is_completed_not_duplicated() {
    let repo = project();
    let gitlab = FakeGitLab::start("group/app", TOKEN);
    gitlab
        .state
        .lock()
        .unwrap()
        .releases
        .push(common::fakes::gitlab::Release {
            tag: "v1.1.0".into(),
            name: "draft".into(),
            description: "to be written".into(),
            links: Vec::new(),
        });
    let done = run(&mut release(&repo, &gitlab, &[])).ok();
    let record: Value = serde_json::from_str(&done.stdout).unwrap();
    assert_eq!(record["published"]["release"], "updated");
    let published = gitlab.release("v1.1.0").unwrap();
    assert_eq!(published.name, "app 1.1.0");
    assert_eq!(published.links.len(), 2);
    assert_eq!(gitlab.state.lock().unwrap().releases.len(), 1);
}

#[test]
fn a_release_another_job_created_a_moment_before_is_reconciled() {
    let repo = project();
    let gitlab = FakeGitLab::start("group/app", TOKEN);
    gitlab.state.lock().unwrap().another_job_creates_first = true;
    let done = run(&mut release(&repo, &gitlab, &[])).ok();
    let record: Value = serde_json::from_str(&done.stdout).unwrap();
    assert_eq!(stage(&record, "publish")["status"], "done", "{record}");
    assert_eq!(record["published"]["release"], "updated");
    let published = gitlab.release("v1.1.0").unwrap();
    assert!(
        published.description.contains("- Fix the greeting"),
        "{}",
        published.description
    );
    assert_eq!(published.links.len(), 2);
    assert_eq!(gitlab.state.lock().unwrap().releases.len(), 1);
}

#[test]
fn build_metadata_in_the_version_still_makes_valid_release_links() {
    let repo = project();
    repo.tag("v1.2.0+build.7");
    let gitlab = FakeGitLab::start("group/app", TOKEN);
    let done = run(&mut release_of("v1.2.0+build.7", &repo, &gitlab, &[])).ok();
    let record: Value = serde_json::from_str(&done.stdout).unwrap();
    assert_eq!(record["tarball"]["file"], "app-1.2.0+build.7.tar.gz");
    let published = gitlab.release("v1.2.0+build.7").unwrap();
    let link = published
        .links
        .iter()
        .find(|l| l.name == "app-1.2.0+build.7.tar.gz")
        .unwrap();
    assert_eq!(
        link.direct_asset_path.as_deref(),
        Some("/app-1.2.0-build.7.tar.gz")
    );
}

#[test]
fn a_dry_run_reads_gitlab_and_writes_nothing() {
    let repo = project();
    let gitlab = FakeGitLab::start("group/app", TOKEN);
    let dry = run(&mut release(&repo, &gitlab, &["--dry-run"])).ok();
    let record: Value = serde_json::from_str(&dry.stdout).unwrap();
    assert_eq!(record["published"]["release"], "would_create");
    assert_eq!(record["published"]["files"][0]["status"], "would_upload");
    assert_eq!(gitlab.writes(), 0);
    assert!(!repo.path().join("tagpilot-out/annotations.json").exists());
}

#[test]
fn unprotected_refs_and_deploy_freezes_stop_a_release_before_it_starts() {
    let repo = project();
    let gitlab = FakeGitLab::start("group/app", TOKEN);
    let refused = run(release(&repo, &gitlab, &[])
        .env("CI_COMMIT_REF_PROTECTED", "false")
        .env("CI_COMMIT_REF_NAME", "v1.1.0")
        .env("CI_DEPLOY_FREEZE", "true"))
    .fails_with(2, "`v1.1.0` is not a protected ref");
    assert!(
        refused.stderr.contains("deploy freeze"),
        "{}",
        refused.stderr
    );
    assert!(refused
        .stderr
        .contains("nothing was pushed, published or deployed"));
    assert_eq!(gitlab.writes(), 0);
    assert!(
        !repo.path().join("tagpilot-out").exists(),
        "nothing was built"
    );

    // A dry run says what a real run would refuse, and goes on.
    let dry = run(release(&repo, &gitlab, &["--dry-run"]).env("CI_DEPLOY_FREEZE", "true")).ok();
    assert!(dry
        .stderr
        .contains("a real release would be refused: a GitLab deploy freeze"));

    // Told otherwise, it releases.
    run(
        release(&repo, &gitlab, &["--allow-unprotected", "--ignore-freeze"])
            .env("CI_COMMIT_REF_PROTECTED", "false")
            .env("CI_DEPLOY_FREEZE", "true"),
    )
    .ok();
    assert!(gitlab.release("v1.1.0").is_some());
}

#[test]
fn a_missing_token_is_said_before_any_request() {
    let repo = project();
    let gitlab = FakeGitLab::start("group/app", TOKEN);
    let mut cmd = release(&repo, &gitlab, &[]);
    cmd.env_remove("CI_JOB_TOKEN");
    run(&mut cmd).fails_with(2, "no GitLab token to publish with");
    assert_eq!(gitlab.state.lock().unwrap().requests, 0);
}

#[test]
fn a_refused_token_is_reported_without_printing_it() {
    let repo = project();
    let gitlab = FakeGitLab::start("group/app", "another-token");
    // A refused login is exit 2, named by its variable, and not retried.
    let refused = run(&mut release(&repo, &gitlab, &[])).fails_with(2, "GitLab at");
    assert!(refused.stderr.contains("401"), "{}", refused.stderr);
    assert!(
        refused.stderr.contains("it refused CI_JOB_TOKEN"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("GITLAB_TOKEN"),
        "{}",
        refused.stderr
    );
    assert!(!refused.stderr.contains(TOKEN) && !refused.stdout.contains(TOKEN));
}

/// The project with an image pushed to the real registry and an automatic environment
/// recorded in a bare repository: stages before and after publish.
fn project_with_deploy(work: &std::path::Path, registry: &Registry) -> (Repo, std::path::PathBuf) {
    let repository = format!("{}/group/app", registry.host());
    let bare = bare_repository(
        work,
        &[("app.yaml", &format!("image: {repository}:0.0.0\n"))],
    );
    let repo = project();
    repo.write(
        "tagpilot.yaml",
        format!(
            "name: app\nimage: {{ repository: {repository}, install_path: /srv/app }}\ndeploy:\n  - environment: staging\n    automatic: true\n    repo: file://{}\n    files: [{{ file: app.yaml }}]\n",
            bare.display()
        ),
    )
    .commit("Deploy to staging")
    .tag("v1.2.0");
    (repo, bare)
}

/// A release of v1.2.0 running, its GitLab release creation request held by the fake.
struct Held {
    _registry: Registry,
    _work: tempfile::TempDir,
    repo: Repo,
    bare: std::path::PathBuf,
    gitlab: FakeGitLab,
    child: std::process::Child,
}

fn held_at_release_creation() -> Option<Held> {
    if !registry::available() {
        return None;
    }
    let registry = Registry::start(false);
    let work = tempfile::tempdir().unwrap();
    let (repo, bare) = project_with_deploy(work.path(), &registry);
    let gitlab = FakeGitLab::start("group/app", TOKEN);
    gitlab.gate.arm();
    let child = release_of("v1.2.0", &repo, &gitlab, &[])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(|| gitlab.gate.arrived(), "the release creation request");
    Some(Held {
        _registry: registry,
        _work: work,
        repo,
        bare,
        gitlab,
        child,
    })
}

#[test]
fn sigterm_stops_at_the_next_stage_and_a_rerun_finishes() {
    let Some(held) = held_at_release_creation() else {
        return;
    };
    let Held {
        repo,
        bare,
        gitlab,
        child,
        ..
    } = held;
    sh(Command::new("kill").args(["-TERM", &child.id().to_string()]));
    gitlab.gate.open();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(5), "{stderr}");
    assert!(
        stderr.contains("stopped by SIGTERM before the deploy stage")
            && stderr.contains("publish done")
            && stderr.contains("not run: deploy"),
        "{stderr}"
    );
    let record = read_json(&repo.path().join("tagpilot-out/release.json"));
    assert_eq!(stage(&record, "publish")["status"], "done");
    assert_eq!(stage(&record, "deploy")["status"], "stopped");
    let commits = || {
        sh(Command::new("git")
            .current_dir(&bare)
            .args(["rev-list", "--count", "main"]))
    };
    assert_eq!(commits().trim(), "1", "nothing was deployed");

    let rerun = run(&mut release_of("v1.2.0", &repo, &gitlab, &[])).ok();
    let record: Value = serde_json::from_str(&rerun.stdout).unwrap();
    assert_eq!(stage(&record, "publish")["status"], "already_done");
    assert_eq!(stage(&record, "deploy")["status"], "done");
    assert_eq!(commits().trim(), "2");
    assert_eq!(gitlab.files("app", "1.2.0", "app-1.2.0.tar.gz").len(), 1);
    assert_eq!(gitlab.state.lock().unwrap().releases.len(), 1);
}

#[test]
fn a_job_killed_mid_publish_is_finished_by_a_rerun_without_duplicates() {
    let Some(held) = held_at_release_creation() else {
        return;
    };
    let Held {
        repo,
        bare,
        gitlab,
        mut child,
        ..
    } = held;
    child.kill().unwrap();
    child.wait().unwrap();
    // GitLab finishes the request the killed job sent.
    gitlab.gate.open();
    wait_for(
        || gitlab.release("v1.2.0").is_some(),
        "the release to exist",
    );

    let rerun = run(&mut release_of("v1.2.0", &repo, &gitlab, &[])).ok();
    let record: Value = serde_json::from_str(&rerun.stdout).unwrap();
    assert_eq!(record["published"]["release"], "already_there", "{record}");
    assert_eq!(record["published"]["files"][0]["status"], "already_there");
    assert_eq!(stage(&record, "deploy")["status"], "done");
    assert_eq!(gitlab.files("app", "1.2.0", "app-1.2.0.tar.gz").len(), 1);
    assert_eq!(gitlab.files("app", "1.2.0", "SHA256SUMS").len(), 1);
    // The tarball, SHA256SUMS, the provenance and SBOM of the image, and the image, each once.
    let links = gitlab.release("v1.2.0").unwrap().links;
    let names: Vec<&str> = links.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names.len(), 5, "{names:?}");
    assert_eq!(
        names[2..4],
        ["provenance.json", "sbom.spdx.json"],
        "{names:?}"
    );
    assert!(names[4].starts_with("Container image "), "{names:?}");
    assert_eq!(gitlab.files("app", "1.2.0", "sbom.spdx.json").len(), 1);
    assert!(sh(Command::new("git")
        .current_dir(&bare)
        .args(["show", "main:app.yaml"]))
    .contains("1.2.0"));
}

#[test]
fn notes_package_and_links_come_from_the_spec() {
    let repo = project();
    repo.write(
        "tagpilot.yaml",
        "name: app\npublish:\n  notes_file: CHANGES.md\n  package: app-source\n  links: [{ name: Docs, url: \"https://docs.example.org/app\" }]\n",
    )
    .write("CHANGES.md", "## 1.2.0\n\n- Faster greetings.\n")
    .commit("Notes")
    .tag("v1.2.0");
    let gitlab = FakeGitLab::start("group/app", TOKEN);
    run(&mut release_of("v1.2.0", &repo, &gitlab, &[])).ok();
    let published = gitlab.release("v1.2.0").unwrap();
    assert_eq!(published.description, "## 1.2.0\n\n- Faster greetings.\n");
    assert_eq!(
        gitlab
            .files("app-source", "1.2.0", "app-1.2.0.tar.gz")
            .len(),
        1
    );
    let docs = published.links.iter().find(|l| l.name == "Docs").unwrap();
    assert_eq!(
        (docs.url.as_str(), docs.link_type.as_str()),
        ("https://docs.example.org/app", "other")
    );

    // Both notes and notes_file, and a link that is not a web address: every problem, placed.
    repo.write(
        "tagpilot.yaml",
        "name: app\npublish:\n  notes: hi\n  notes_file: CHANGES.md\n  links: [{ name: Docs, url: \"docs.example.org\" }]\n",
    );
    let invalid = run(tagpilot(repo.path()).arg("validate")).fails_with(2, "tagpilot.yaml:4:");
    assert!(
        invalid
            .stderr
            .contains("set `notes` or `notes_file`, not both")
            && invalid.stderr.contains("tagpilot.yaml:5:")
            && invalid.stderr.contains("must start with https://"),
        "{}",
        invalid.stderr
    );
}

#[test]
fn a_version_on_a_later_page_of_the_package_listing_is_found() {
    let repo = project();
    let gitlab = FakeGitLab::start("group/app", TOKEN);
    // 150 earlier versions of the package: 1.1.0 lands on the listing's second page (this
    // fake, like older GitLab versions, ignores the `package_version` filter).
    {
        let mut state = gitlab.state.lock().unwrap();
        for n in 0..150 {
            state.packages.push(common::fakes::gitlab::Package {
                id: 10_000 + n,
                name: "app".into(),
                version: format!("0.0.{n}"),
                files: Vec::new(),
            });
        }
    }
    run(&mut release(&repo, &gitlab, &[])).ok();
    let again = run(&mut release(&repo, &gitlab, &[])).ok();
    let record: Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(record["published"]["files"][0]["status"], "already_there");
    assert_eq!(gitlab.files("app", "1.1.0", "app-1.1.0.tar.gz").len(), 1);
}

#[test]
fn a_second_sigint_ends_the_process_at_once() {
    let Some(held) = held_at_release_creation() else {
        return;
    };
    let Held {
        gitlab, mut child, ..
    } = held;
    let pid = child.id().to_string();
    sh(Command::new("kill").args(["-INT", &pid]));
    std::thread::sleep(std::time::Duration::from_millis(200));
    sh(Command::new("kill").args(["-INT", &pid]));
    // The request is still held: only the second signal can have ended it.
    let mut status = None;
    wait_for(
        || {
            status = child.try_wait().unwrap();
            status.is_some()
        },
        "the process to end",
    );
    assert_eq!(status.unwrap().code(), Some(130));
    assert!(gitlab.release("v1.2.0").is_none(), "nothing was created");
    gitlab.gate.open();
}
