//! `tagpilot versions` on real repositories, including one with thousands of mixed tags.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::*;

/// Creates many lightweight tags on HEAD in one git process.
fn tag_many(repo: &Repo, tags: &[String]) {
    let head = repo.git(&["rev-parse", "HEAD"]).trim().to_string();
    let mut child = Command::new("git")
        .current_dir(repo.path())
        .args(["update-ref", "--stdin"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for tag in tags {
        writeln!(stdin, "create refs/tags/{tag} {head}").unwrap();
    }
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

#[test]
fn thousands_of_mixed_tags_sort_by_version() {
    let repo = Repo::new();
    repo.write("a", "a").commit("c");
    let mut tags = Vec::new();
    for major in 6..=9 {
        for minor in 0..10 {
            for patch in 0..30 {
                tags.push(format!("v{major}r{minor}p{patch}"));
            }
            tags.push(format!("v{major}r{minor}-pre{minor}"));
        }
    }
    for n in 0..900 {
        tags.push(format!("v10.{}.{}", n / 30, n % 30));
    }
    tags.extend(["v11.0.0a1", "v11.0.0b2", "v11.0.0rc1", "v11.0.0"].map(String::from));
    tags.extend((0..50).map(|n| format!("nightly-{n}")));
    tag_many(&repo, &tags);
    assert!(tags.len() > 2000);

    let result = run(tagpilot(repo.path()).arg("versions")).ok();
    let lines: Vec<&str> = result.stdout.lines().collect();
    assert_eq!(lines.len(), tags.len() - 50);
    assert_eq!(lines[0], "v11.0.0\t11.0.0\trelease");
    assert_eq!(lines[1], "v11.0.0rc1\t11.0.0rc1\tpre");
    assert_eq!(lines[2], "v11.0.0b2\t11.0.0b2\tpre");
    assert_eq!(lines[3], "v11.0.0a1\t11.0.0a1\tpre");
    assert_eq!(lines[4], "v10.29.29\t10.29.29\trelease");
    // Numeric, not string, order: v9r9p24 after v9r9p3 would be wrong.
    let pos = |tag: &str| {
        lines
            .iter()
            .position(|l| l.starts_with(&format!("{tag}\t")))
            .unwrap()
    };
    assert!(pos("v9r9p24") < pos("v9r9p3"));
    assert!(pos("v9r9p29") < pos("v9r9p10"));
    assert!(
        pos("v9r9p0") < pos("v9r9-pre9"),
        "a pre-release sorts below its release"
    );
    assert!(pos("v10.0.0") < pos("v9r9p24"));
    assert!(
        result
            .stderr
            .contains("skipped 50 tag(s) that fit no version scheme"),
        "{}",
        result.stderr
    );

    let json =
        run(tagpilot(repo.path()).args(["versions", "--output", "json", "--scheme", "pep440"]))
            .ok();
    let rows: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(rows[0]["tag"], "v11.0.0");
    assert_eq!(rows[0]["scheme"], "pep440");
    assert!(rows
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["scheme"] == "pep440"));
}

#[test]
fn monorepo_prefix_and_schemes() {
    let repo = Repo::new();
    repo.write("a", "a").commit("c");
    tag_many(
        &repo,
        &[
            "api/v1.2.3",
            "api/v1.10.0",
            "web/v3.0.0",
            "api/1.10.0-rc.1",
            "v9.9.9",
        ]
        .map(String::from),
    );
    let result = run(tagpilot(repo.path()).args(["versions", "--tag-prefix", "api/"])).ok();
    assert_eq!(
        result.stdout,
        "api/v1.10.0\t1.10.0\trelease\napi/1.10.0-rc.1\t1.10.0-rc.1\tpre\napi/v1.2.3\t1.2.3\trelease\n"
    );
    // The spec's prefix and scheme are used when no flag is given.
    repo.write(
        "tagpilot.yaml",
        "version:\n  scheme: semver\n  tag_prefix: web/\n",
    );
    let result = run(tagpilot(repo.path()).arg("versions")).ok();
    assert_eq!(result.stdout, "web/v3.0.0\t3.0.0\trelease\n");
}

#[test]
fn a_repository_without_spec_or_tags_is_fine() {
    let repo = Repo::new();
    repo.write("a", "a").commit("c");
    let result = run(tagpilot(repo.path()).arg("versions")).ok();
    assert_eq!(result.stdout, "");
}

/// `tagpilot versions | head -1`: a reader that stops early is not an error.
#[test]
fn a_closed_pipe_ends_output_quietly() {
    let repo = Repo::new();
    repo.write("a", "a").commit("c");
    let tags: Vec<String> = (0..6000)
        .map(|n| format!("v1.{}.{}", n / 100, n % 100))
        .collect();
    tag_many(&repo, &tags);
    let mut child = tagpilot(repo.path())
        .arg("versions")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read one line, then hang up, like `head -1`.
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 16];
    std::io::Read::read_exact(&mut stdout, &mut first).unwrap();
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}: {stderr}", out.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(first.starts_with(b"v1.59.99\t"));
}
