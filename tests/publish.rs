//! The publish stage against a stateful fake of GitLab's Releases and generic packages APIs:
//! created once, found done on a re-run, other bytes under a released version refused (and
//! replaced only with --force), an upload whose reply was lost not duplicated, a hand-made
//! release reconciled, dry runs that write nothing, GitLab's guards, and a refused token.

mod common;

use std::process::Command;

use common::fakes::gitlab::FakeGitLab;
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
    let mut cmd = tagpilot(repo.path());
    cmd.args(["release", "--output", "json", "--tag", "v1.1.0"])
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
fn a_refused_token_is_reported_without_printing_it() {
    let repo = project();
    let gitlab = FakeGitLab::start("group/app", "another-token");
    let refused = run(&mut release(&repo, &gitlab, &[])).fails_with(1, "GitLab at");
    assert!(refused.stderr.contains("401"), "{}", refused.stderr);
    assert!(
        refused.stderr.contains("GITLAB_TOKEN"),
        "{}",
        refused.stderr
    );
    assert!(!refused.stderr.contains(TOKEN) && !refused.stdout.contains(TOKEN));
}
