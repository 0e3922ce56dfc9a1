//! `tagpilot release` end to end: tag selection, dry runs and snapshots, the release record,
//! GitLab CI manners, bad input, and the README's first command.

mod common;

use std::process::Command;

use common::*;

fn released_repo() -> Repo {
    let repo = Repo::new();
    repo.write("app.py", "print('v1')\n")
        .commit("one")
        .tag("v1.0.0");
    repo.write("app.py", "print('v1.1')\n")
        .commit("two")
        .tag("v1.1.0");
    repo.write("app.py", "print('v1.2')\n")
        .commit("three")
        .tag("v1.2.0-rc.1");
    repo
}

#[test]
fn snapshot_dry_run_on_a_shallow_clone_without_tags() {
    let origin = Repo::new();
    for n in 0..3 {
        origin
            .write("a.txt", format!("{n}\n"))
            .commit(&format!("c{n}"));
    }
    let parent = tempfile::tempdir().unwrap();
    let clone = parent.path().join("svc");
    sh(Command::new("git")
        .args(["clone", "-q", "--depth", "1"])
        .arg(format!("file://{}", origin.path().display()))
        .arg(&clone));
    assert_eq!(
        sh(Command::new("git")
            .current_dir(&clone)
            .args(["rev-parse", "--is-shallow-repository"]))
        .trim(),
        "true"
    );

    // Without a tag the error says how to try it anyway.
    run(tagpilot(&clone).args(["release", "--dry-run"])).fails_with(2, "--snapshot 0.0.0-dev");
    // A snapshot needs --dry-run: it must never publish.
    let refused = run(tagpilot(&clone).args(["release", "--snapshot", "0.0.0-dev"]));
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("--dry-run"), "{}", refused.stderr);

    let result =
        run(tagpilot(&clone).args(["release", "--dry-run", "--snapshot", "0.0.0-dev"])).ok();
    assert!(result.stdout.contains("dry run"), "{}", result.stdout);
    let out = clone.join("tagpilot-out");
    let record = read_json(&out.join("release.json"));
    assert_eq!(record["tag"], serde_json::Value::Null);
    assert_eq!(record["version"], "0.0.0-dev");
    assert_eq!(record["dry_run"], true);
    assert_eq!(record["stages"][0]["status"], "done");
    let head = sh(Command::new("git")
        .current_dir(&clone)
        .args(["rev-parse", "HEAD"]));
    assert_eq!(record["commit"], head.trim());
    // Paths in the record are as given (relative to where tagpilot ran), so CI artifacts move.
    assert_eq!(
        record["tarball"]["path"],
        "tagpilot-out/svc-0.0.0-dev.tar.gz"
    );
    let tarball = out.join("svc-0.0.0-dev.tar.gz");
    let tree = snapshot(extract(&tarball).path());
    assert_eq!(
        tree.get(std::path::Path::new("svc-0.0.0-dev/a.txt")),
        Some(&Node::File {
            executable: false,
            bytes: b"2\n".to_vec()
        })
    );
    // Re-running a dry run is fine (it may replace its own output).
    run(tagpilot(&clone).args(["release", "--dry-run", "--snapshot", "0.0.0-dev"])).ok();
}

#[test]
fn tag_selection_and_previous_release() {
    let repo = released_repo();
    // HEAD carries v1.2.0-rc.1: picked without --tag.
    let out = tempfile::tempdir().unwrap();
    let result = run(tagpilot(repo.path())
        .args(["release", "--output", "json", "--out"])
        .arg(out.path()))
    .ok();
    let record: serde_json::Value = serde_json::from_str(&result.stdout).unwrap();
    assert_eq!(record["tag"], "v1.2.0-rc.1");
    assert_eq!(record["prerelease"], true);
    assert_eq!(record["previous"]["tag"], "v1.1.0");
    assert_eq!(record["scheme"], "semver");
    assert_eq!(record, read_json(&out.path().join("release.json")));

    // --tag wins over CI_COMMIT_TAG, which wins over the tag on HEAD.
    let out = tempfile::tempdir().unwrap();
    let result = run(tagpilot(repo.path())
        .args(["release", "--output", "json", "--out"])
        .arg(out.path())
        .env("CI_COMMIT_TAG", "v1.0.0"))
    .ok();
    let record: serde_json::Value = serde_json::from_str(&result.stdout).unwrap();
    assert_eq!(record["tag"], "v1.0.0");
    assert_eq!(record["previous"], serde_json::Value::Null);
    let result = run(tagpilot(repo.path())
        .args(["release", "--output", "json", "--tag", "v1.1.0", "--out"])
        .arg(out.path())
        .env("CI_COMMIT_TAG", "v1.0.0"))
    .ok();
    let record: serde_json::Value = serde_json::from_str(&result.stdout).unwrap();
    assert_eq!(record["tag"], "v1.1.0");
    assert_eq!(record["previous"]["tag"], "v1.0.0");
    // The tarball holds the tagged content, not HEAD's.
    let tree = snapshot(extract(&out.path().join(format!("{}-1.1.0.tar.gz", repo.name()))).path());
    assert!(tree.values().any(|n| *n
        == Node::File {
            executable: false,
            bytes: b"print('v1.1')\n".to_vec()
        }));
}

#[test]
fn gitlab_ci_sections_and_dotenv_report() {
    let repo = released_repo();
    let work = tempfile::tempdir().unwrap();
    let result = run(tagpilot(repo.path())
        .args(["release", "--out"])
        .arg(work.path().join("out"))
        .env("GITLAB_CI", "true")
        .env("CI_COMMIT_TAG", "v1.1.0")
        .env("TAGPILOT_DOTENV", work.path().join("tagpilot.env")))
    .ok();
    assert!(
        result.stderr.contains("\x1b[0Ksection_start:"),
        "{}",
        result.stderr
    );
    assert!(
        result
            .stderr
            .contains(":tarball[collapsed=false]\r\x1b[0KBuilding"),
        "{}",
        result.stderr
    );
    assert!(
        result.stderr.contains(":tarball\r\x1b[0K"),
        "{}",
        result.stderr
    );
    assert!(
        !result.stdout.contains('\x1b'),
        "no ANSI on stdout: {:?}",
        result.stdout
    );
    let dotenv = std::fs::read_to_string(work.path().join("tagpilot.env")).unwrap();
    let record = read_json(&work.path().join("out/release.json"));
    let sha = record["tarball"]["sha256"].as_str().unwrap();
    assert!(dotenv.contains("TAGPILOT_VERSION=1.1.0\n"), "{dotenv}");
    assert!(dotenv.contains("TAGPILOT_TAG=v1.1.0\n"), "{dotenv}");
    assert!(
        dotenv.contains(&format!("TAGPILOT_TARBALL_SHA256={sha}\n")),
        "{dotenv}"
    );
    assert!(
        dotenv.lines().all(|l| !l.contains('"') && l.contains('=')),
        "{dotenv}"
    );

    // Without --dotenv, a CI job writes tagpilot.env in its working folder.
    run(tagpilot(repo.path())
        .args(["tarball", "--out"])
        .arg(work.path().join("out"))
        .env("GITLAB_CI", "true")
        .env("CI_COMMIT_TAG", "v1.1.0"))
    .ok();
    assert!(repo.path().join("tagpilot.env").is_file());
}

#[test]
fn stages_can_be_selected() {
    let repo = released_repo();
    let out = tempfile::tempdir().unwrap();
    let result = run(tagpilot(repo.path())
        .args([
            "release", "--tag", "v1.0.0", "--skip", "tarball", "--output", "json", "--out",
        ])
        .arg(out.path()))
    .ok();
    let record: serde_json::Value = serde_json::from_str(&result.stdout).unwrap();
    assert_eq!(record["stages"][0]["status"], "not_selected");
    assert_eq!(record["tarball"], serde_json::Value::Null);
    assert!(!std::fs::read_dir(out.path()).unwrap().any(|e| e
        .unwrap()
        .path()
        .to_string_lossy()
        .ends_with(".tar.gz")));
    let bad = run(tagpilot(repo.path()).args(["release", "--only", "nonsense"]));
    assert_eq!(bad.code, 2);
}

#[test]
fn bad_input_is_exit_2_with_the_reason() {
    let repo = released_repo();
    run(tagpilot(repo.path()).args(["release", "--tag", "v9.9.9"]))
        .fails_with(2, "tag `v9.9.9` does not exist");
    repo.git(&["tag", "release-candidate"]);
    let result = run(tagpilot(repo.path()).args(["release", "--tag", "release-candidate"]))
        .fails_with(2, "`release-candidate` fits no version scheme");
    for scheme in ["semver (", "dirac (", "pep440 ("] {
        assert!(result.stderr.contains(scheme), "{}", result.stderr);
    }
    let not_git = tempfile::tempdir().unwrap();
    run(tagpilot(not_git.path()).args(["tarball", "--tag", "v1.0.0"]))
        .fails_with(2, "is not inside a git repository");
    std::fs::write(not_git.path().join("a-file"), "x").unwrap();
    run(tagpilot(repo.path())
        .args(["tarball", "--tag", "v1.0.0", "--out"])
        .arg(not_git.path().join("a-file/sub")))
    .fails_with(2, "a-file/sub");
    run(tagpilot(repo.path())
        .args(["tarball", "--tag", "v1.0.0", "--out"])
        .arg(not_git.path().join("a-file")))
    .fails_with(2, "exists and is not a folder");
    run(tagpilot(repo.path())
        .args(["tarball", "--tag", "v1.0.0"])
        .env("SOURCE_DATE_EPOCH", "yesterday"))
    .fails_with(2, "SOURCE_DATE_EPOCH is `yesterday`");
    run(tagpilot(repo.path()).args(["release", "--dry-run", "--snapshot", "not-a-version"]))
        .fails_with(2, "--snapshot: `not-a-version` fits no version scheme");
}

/// The first command in the README runs as written, from the project's own checkout.
#[test]
fn readme_first_command_works() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let command = readme
        .lines()
        .find(|l| l.starts_with("cargo build --release && target/release/tagpilot "))
        .expect("README has a `cargo build --release && target/release/tagpilot …` command");
    let args: Vec<&str> = command
        .split_once("target/release/tagpilot ")
        .expect("`… target/release/tagpilot ARGS`")
        .1
        .split_whitespace()
        .collect();
    let result = run(tagpilot(root).args(&args)).ok();
    let record = read_json(&root.join("tagpilot-out/release.json"));
    assert_eq!(record["dry_run"], true);
    let tarball = record["tarball"]["path"].as_str().unwrap();
    assert!(result.stdout.contains(tarball), "{}", result.stdout);
    // What the README says it produced is what it produced.
    let file_name = std::path::Path::new(tarball)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(
        readme.contains(&file_name),
        "README should name {file_name}"
    );
    sh(Command::new("gzip").arg("-t").arg(root.join(tarball)));
}

#[test]
fn output_files_follow_the_umask() {
    let repo = released_repo();
    for (umask, mode) in [("022", 0o644), ("077", 0o600)] {
        let out = repo.path().join(format!("out-{umask}"));
        let mut cmd = Command::new("sh");
        with_clean_env(&mut cmd)
            .current_dir(repo.path())
            .args(["-c", &format!("umask {umask} && exec \"$@\""), "sh"])
            .arg(env!("CARGO_BIN_EXE_tagpilot"))
            .args(["release", "--dry-run", "--out"])
            .arg(&out);
        run(&mut cmd).ok();
        let files = sh(Command::new("find").arg(&out).args(["-type", "f"]));
        assert!(files.lines().count() >= 3, "{files}");
        for file in files.lines() {
            use std::os::unix::fs::PermissionsExt;
            let got = std::fs::metadata(file).unwrap().permissions().mode() & 0o777;
            assert_eq!(got, mode, "{file} under umask {umask}: {got:o}");
        }
    }
}
