//! Build outputs as image content (`image.artifacts`): files and folders from the workspace,
//! not from git, in their own layer with the spec's modes and owners, read back with GNU tar;
//! the same bytes give the same digest whatever their times; their SHA-256 is in the record;
//! a missing one stops the build, and a later job does not push an image whose outputs changed.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::registry::{self, Registry};
use common::*;
use serde_json::Value;

/// A tagged repository whose spec ships two build outputs; the workspace has them (untracked).
fn project(repository: &str) -> Repo {
    let repo = Repo::new();
    repo.write(
        "tagpilot.yaml",
        format!(
            "name: app\nimage:\n  repository: {repository}\n  install_path: /srv/app\n  artifacts:\n    - {{ src: build/app, dest: /usr/local/bin/app, mode: \"0755\" }}\n    - {{ src: dist, dest: /srv/www, owner: \"101:101\" }}\n    - {{ src: build/appctl, dest: /usr/local/bin/appctl, mode: \"0755\" }}\n"
        ),
    )
    .write(".gitignore", "build/\ndist/\ntagpilot-out/\n")
    .write("main.c", "int main() { return 0; }\n")
    .commit("The app")
    .tag("v1.0.0");
    write_outputs(repo.path(), b"\x7fELF the binary");
    repo
}

fn write_outputs(root: &Path, binary: &[u8]) {
    std::fs::create_dir_all(root.join("build")).unwrap();
    std::fs::create_dir_all(root.join("dist/js")).unwrap();
    std::fs::write(root.join("build/app"), binary).unwrap();
    std::fs::write(root.join("build/appctl"), "#!/bin/sh\n").unwrap();
    std::fs::write(root.join("dist/index.html"), "<h1>app</h1>\n").unwrap();
    std::fs::write(root.join("dist/js/app.js"), "console.log(1)\n").unwrap();
    let link = root.join("dist/latest.js");
    if !link.exists() {
        std::os::unix::fs::symlink("js/app.js", link).unwrap();
    }
}

fn build(repo: &Repo, layout: &Path) -> Run {
    run(tagpilot(repo.path())
        .args([
            "image",
            "--output",
            "json",
            "--tag",
            "v1.0.0",
            "--oci-layout",
        ])
        .arg(layout))
}

/// `tar -tv` of the artifacts layer of the image in `layout`.
fn artifacts_layer(record: &Value, layout: &Path) -> String {
    let layer = record["image"]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| {
            l["created_by"]
                .as_str()
                .unwrap()
                .starts_with("tagpilot: artifacts")
        })
        .expect("an artifacts layer");
    let digest = layer["digest"].as_str().unwrap();
    let blob: PathBuf = layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"));
    sh(Command::new("tar")
        .args(["-tvz", "--numeric-owner", "-f"])
        .arg(blob))
}

#[test]
fn build_outputs_go_into_the_image_with_their_modes_owners_and_digests() {
    let repo = project("registry.example.org/team/app");
    let work = tempfile::tempdir().unwrap();
    let first = build(&repo, &work.path().join("one")).ok();
    let record: Value = serde_json::from_str(&first.stdout).unwrap();
    let artifacts = &record["image"]["artifacts"];
    assert_eq!(artifacts[0]["src"], "build/app");
    assert_eq!(
        artifacts[0]["sha256"],
        sha256_hex(b"\x7fELF the binary").as_str()
    );
    assert_eq!(artifacts[1]["files"], 2, "{artifacts}");

    let listing = artifacts_layer(&record, &work.path().join("one"));
    let listing: String = listing
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ") + "\n")
        .collect();
    for line in [
        // The binary: 0755 from the spec (0644 in the workspace), owned by image.owner.
        "-rwxr-xr-x 0/0 15 2024-03-01 11:00 usr/local/bin/app",
        "drwxr-xr-x 101/101 0 2024-03-01 11:00 srv/www\n",
        "-rw-r--r-- 101/101 13 2024-03-01 11:00 srv/www/index.html",
        "-rw-r--r-- 101/101 15 2024-03-01 11:00 srv/www/js/app.js",
        "srv/www/latest.js -> js/app.js",
    ] {
        assert!(listing.contains(line), "{line}:\n{listing}");
    }
    // Each path once, the folders two outputs share too (Docker refuses a layer with a path
    // twice: "duplicates of file paths not supported").
    let paths: Vec<&str> = listing
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .collect();
    let unique: std::collections::BTreeSet<&str> = paths.iter().copied().collect();
    assert_eq!(unique.len(), paths.len(), "{listing}");
    assert!(listing.contains("usr/local/bin/appctl"), "{listing}");
    // Byte order: index.html, js/, js/app.js, latest.js.
    let order: Vec<&str> = listing
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|p| p.starts_with("srv/www"))
        .collect();
    assert_eq!(
        order,
        [
            "srv/www",
            "srv/www/index.html",
            "srv/www/js",
            "srv/www/js/app.js",
            "srv/www/latest.js"
        ]
    );

    // New times, same bytes: the same image. One byte more: another.
    std::fs::write(repo.path().join("dist/index.html"), "<h1>app</h1>\n").unwrap();
    let again = build(&repo, &work.path().join("two")).ok();
    let again: Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(again["image"]["digest"], record["image"]["digest"]);
    std::fs::write(repo.path().join("dist/index.html"), "<h1>app!</h1>\n").unwrap();
    let changed = build(&repo, &work.path().join("three")).ok();
    let changed: Value = serde_json::from_str(&changed.stdout).unwrap();
    assert_ne!(changed["image"]["digest"], record["image"]["digest"]);
    assert_ne!(
        changed["image"]["artifacts"][1]["sha256"],
        record["image"]["artifacts"][1]["sha256"]
    );
}

#[test]
fn a_missing_build_output_stops_the_build_before_anything_is_written() {
    let repo = project("registry.example.org/team/app");
    std::fs::remove_file(repo.path().join("build/app")).unwrap();
    let layout = repo.path().join("layout");
    let failed = build(&repo, &layout).fails_with(2, "`build/app` is not in the workspace");
    assert!(
        failed
            .stderr
            .contains("A build job before this one makes it"),
        "{}",
        failed.stderr
    );
    assert!(!layout.join("index.json").exists());

    let bad = Repo::new();
    bad.write(
        "tagpilot.yaml",
        "name: app\nimage:\n  artifacts:\n    - { src: ../elsewhere, dest: /x, mode: \"999\" }\n",
    )
    .commit("bad")
    .tag("v1.0.0");
    let refused = run(tagpilot(bad.path()).arg("validate"));
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("tagpilot.yaml:4"),
        "{}",
        refused.stderr
    );
    assert!(refused
        .stderr
        .contains("is not a path inside the workspace"));
    assert!(refused.stderr.contains("is not an octal mode"));
}

#[test]
fn a_later_job_does_not_push_an_image_whose_build_outputs_changed() {
    if !registry::available() {
        return;
    }
    let registry = Registry::start(false);
    let repo = project(&format!("{}/team/app", registry.host()));
    let release = |only: &str| {
        run(tagpilot(repo.path()).args(["release", "--tag", "v1.0.0", "--only", only]))
    };
    release("tarball,image").ok();
    // The next job's workspace has other bytes than the image was built with.
    write_outputs(repo.path(), b"\x7fELF another binary");
    let refused = release("push").fails_with(2, "not those the image was built with");
    assert!(
        refused.stderr.contains("build/app is now sha256"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("nothing was pushed"),
        "{}",
        refused.stderr
    );
    // The same bytes as the build: pushed.
    write_outputs(repo.path(), b"\x7fELF the binary");
    release("push").ok();
    drop(registry);
}

#[test]
fn an_output_can_ship_in_the_tarball_too_and_the_image_is_the_same_either_way() {
    let repo = project("registry.example.org/team/app");
    let spec = std::fs::read_to_string(repo.path().join("tagpilot.yaml")).unwrap();
    let spec = spec.replace("mode: \"0755\" }", "mode: \"0755\", tarball: true }");
    repo.write("tagpilot.yaml", spec)
        .commit("Ship the binary in the tarball");
    repo.git(&["tag", "-f", "v1.0.0"]);
    std::fs::set_permissions(
        repo.path().join("build/app"),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let work = tempfile::tempdir().unwrap();
    // The release reads the git tree once for the tarball and the image layer; `image` alone
    // walks the tree again. Both give the same image.
    let released = dry_run_release(repo.path(), "v1.0.0", None, &work.path().join("out"));
    let walked = build(&repo, &work.path().join("walked")).ok();
    let digest =
        |run: &Run| serde_json::from_str::<Value>(&run.stdout).unwrap()["image"]["digest"].clone();
    assert!(digest(&released).is_string());
    assert_eq!(digest(&released), digest(&walked));

    let listing = sh(Command::new("tar")
        .args(["-tvz", "--numeric-owner", "-f"])
        .arg(work.path().join("out/app-1.0.0.tar.gz")));
    let entries: Vec<&str> = listing
        .lines()
        .map(|l| l.split_whitespace().last().unwrap())
        .collect();
    assert_eq!(
        entries,
        [
            "app-1.0.0",
            "app-1.0.0/.gitignore",
            "app-1.0.0/main.c",
            "app-1.0.0/tagpilot.yaml",
            "app-1.0.0/build",
            "app-1.0.0/build/app",
            "app-1.0.0/build/appctl"
        ],
        "{listing}"
    );
    assert!(
        listing.contains("-rwxr-xr-x 0/0"),
        "the tree's modes in the tarball: {listing}"
    );
}
