//! `image.layering: release_line`: a patch release is its line's first release as one layer
//! (the very layer that release pushed) and a layer of what changed, read back with umoci (the
//! unpacked tree is exactly `git archive` of the tag, removals included) and pushed to the real
//! registry, where the patch uploads only the changes.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::registry::{self, Registry};
use common::*;
use serde_json::Value;

/// A line 1.0 with a first release and a patch: two files changed, one file and one folder
/// removed, one added, one made executable.
fn project(repository: &str) -> Repo {
    let repo = Repo::new();
    repo.write(
        "tagpilot.yaml",
        format!("name: app\nimage:\n  repository: {repository}\n  install_path: /srv/app\n  layering: release_line\n"),
    );
    for n in 0..20 {
        repo.write(&format!("lib/module{n:02}.bin"), noise(100_000 + n));
    }
    repo.write("docs/old/guide.txt", "old guide\n")
        .write("docs/old/faq.txt", "old faq\n")
        .write("bin/tool", "#!/bin/sh\necho tool\n")
        .write("README", "app\n")
        .write("obsolete.txt", "gone soon\n")
        .commit("1.0.0")
        .tag("v1.0.0");
    repo.write("lib/module03.bin", noise(100_033))
        .write("README", "app, patched\n")
        .write("NEW.txt", "new in 1.0.1\n");
    repo.git(&["rm", "-q", "-r", "docs/old", "obsolete.txt"]);
    std::fs::set_permissions(
        repo.path().join("README"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    repo.commit("1.0.1").tag("v1.0.1");
    repo
}

fn image(repo: &Repo, tag: &str, layout: &Path) -> Value {
    let built = run(tagpilot(repo.path())
        .args(["image", "--output", "json", "--tag", tag, "--oci-layout"])
        .arg(layout))
    .ok();
    serde_json::from_str(&built.stdout).unwrap()
}

fn tree_layers(record: &Value) -> Vec<(String, String)> {
    record["image"]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["created_by"].as_str().unwrap().to_string(),
                l["digest"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn a_patch_release_is_its_lines_first_release_plus_what_changed() {
    if !tool_available("umoci", "umoci") {
        return;
    }
    let repo = project("registry.example.org/team/app");
    let work = tempfile::tempdir().unwrap();
    let first = image(&repo, "v1.0.0", &work.path().join("layout"));
    let patch = image(&repo, "v1.0.1", &work.path().join("layout"));
    let first_layers = tree_layers(&first);
    let patch_layers = tree_layers(&patch);
    assert_eq!(
        first_layers.len(),
        1,
        "the line's first release is one layer: {first_layers:?}"
    );
    assert_eq!(patch_layers.len(), 2, "{patch_layers:?}");
    assert_eq!(
        patch_layers[0].1, first_layers[0].1,
        "the patch's first layer is the one 1.0.0 pushed"
    );
    assert!(
        patch_layers[1].0.contains("changes since 1.0.0"),
        "{patch_layers:?}"
    );

    // The same tag again: the same image.
    let again = image(&repo, "v1.0.1", &work.path().join("again"));
    assert_eq!(again["image"]["digest"], patch["image"]["digest"]);

    // Unpacked, the patch is exactly the tag's tree: changes, removals and modes.
    let bundle = work.path().join("bundle");
    sh(Command::new("umoci")
        .args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:1.0.1", work.path().join("layout").display()))
        .arg(&bundle));
    let archived = work.path().join("archived");
    std::fs::create_dir_all(&archived).unwrap();
    sh(Command::new("bash").current_dir(repo.path()).args([
        "-c",
        &format!("git archive v1.0.1 | tar -x -C {}", archived.display()),
    ]));
    let diff = run(Command::new("diff")
        .arg("-r")
        .arg(&archived)
        .arg(bundle.join("rootfs/srv/app")));
    assert_eq!(diff.code, 0, "{}{}", diff.stdout, diff.stderr);
    assert!(
        !bundle.join("rootfs/srv/app/docs/old").exists(),
        "a removed folder is gone"
    );
    let mode = std::fs::metadata(bundle.join("rootfs/srv/app/README"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o111, 0o111, "README became executable");
}

#[test]
fn a_patch_release_pushes_only_what_changed() {
    if !registry::available() {
        return;
    }
    let registry = Registry::start(false);
    let repo = project(&format!("{}/team/app", registry.host()));
    let push = |tag: &str| -> Value {
        let pushed = run(tagpilot(repo.path())
            .args(["image", "--output", "json", "--tag", tag, "--out"])
            .arg(repo.path().join(format!("out-{tag}"))))
        .ok();
        serde_json::from_str::<Value>(&pushed.stdout).unwrap()["pushed"].clone()
    };
    let first = push("v1.0.0");
    let patch = push("v1.0.1");
    let (first_bytes, patch_bytes) = (
        first["uploaded_bytes"].as_u64().unwrap(),
        patch["uploaded_bytes"].as_u64().unwrap(),
    );
    assert!(first_bytes > 1_500_000, "{first}");
    assert!(
        patch_bytes * 100 <= first_bytes * 15,
        "the patch uploads at most 15% of the first release: {patch_bytes} of {first_bytes}"
    );
    drop(registry);
}

/// `release` makes the image with the tarball: from the tarball's own stream for the line's
/// first release, from git for a patch release (whose tree is split, so a layer from the
/// stream would go unused and is not made), taking the tarball's compressed files by content.
/// Either way it is the image `image` makes alone.
#[test]
fn release_makes_the_same_split_image_and_only_the_layers_it_uses() {
    let repo = project("registry.example.org/team/app");
    let work = tempfile::tempdir().unwrap();
    for (tag, from_stream) in [("v1.0.0", true), ("v1.0.1", false)] {
        let released = dry_run_release(repo.path(), tag, None, &work.path().join(tag));
        assert_eq!(
            released
                .stderr
                .contains("image layer: made with the tarball's stream"),
            from_stream,
            "{tag}: {}",
            released.stderr
        );
        // 1.0.1's line layer takes 19 modules of 1.0.0 and its changes layer the 20th.
        let taken =
            "image layers: 1.9 MiB of file content taken from the tarball's compressed files";
        assert_eq!(
            released.stderr.contains(taken),
            !from_stream,
            "{tag}: {}",
            released.stderr
        );
        let alone = image(&repo, tag, &work.path().join(format!("alone-{tag}")));
        let record: Value = serde_json::from_str(&released.stdout).unwrap();
        assert_eq!(record["image"]["digest"], alone["image"]["digest"], "{tag}");
    }
}
