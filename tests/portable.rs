//! The portable binary and the job image, as a team would get tagpilot into CI: the static
//! build of `packaging/build-static.sh` needs no shared library and no GLIBC symbol version
//! (read with readelf and objdump), and the job image this repository's own `tagpilot.yaml`
//! makes from it runs under the real Docker engine: `tagpilot --version`, `git --version`, and
//! a dry-run release of the example, with no network. The base is a stand-in built here
//! (`fixtures/make-job-base.sh`: busybox, Debian's git, the CA bundle), pushed by tagpilot.

mod common;

use std::path::Path;
use std::process::Command;

use common::docker::Docker;
use common::registry::{self, Registry};
use common::*;
use serde_json::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn readelf(args: &[&str], binary: &Path) -> String {
    let out = Command::new("readelf")
        .args(args)
        .arg(binary)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_static_binary_runs_in_a_job_image_built_by_its_own_spec() {
    if !registry::available() || !tool_available("readelf", "binutils") {
        return;
    }
    let Some(docker) = Docker::start() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let built = static_build(&work.path().join("dist"));
    let binary = built.tagpilot.clone();

    // No loader, no shared libraries, no versioned glibc symbols: nothing asked of the base,
    // by tagpilot or by its supervisor.
    for binary in [&built.tagpilot, &built.supervisor] {
        assert!(
            !readelf(&["-l"], binary).contains("INTERP"),
            "{}: no program interpreter",
            binary.display()
        );
        assert!(
            !readelf(&["-d"], binary).contains("NEEDED"),
            "{}: no shared libraries",
            binary.display()
        );
        let symbols = sh(Command::new("objdump").arg("-T").arg(binary));
        assert!(!symbols.contains("GLIBC_"), "{symbols}");
    }

    // The stand-in base: busybox, git and the CA bundle at the root, pushed by tagpilot.
    let registry = Registry::start(false);
    let base = Repo::new();
    sh(Command::new("bash")
        .arg(Path::new(ROOT).join("fixtures/make-job-base.sh"))
        .arg(base.path().join("rootfs")));
    base.write(
        "tagpilot.yaml",
        format!(
            "name: job-base\nimage:\n  repository: {}/tools/job-base\n  install_path: /usr/share/job-base\n  artifacts: [{{ src: rootfs, dest: / }}]\n  tags: [base]\n",
            registry.host()
        ),
    )
    .write(".gitignore", "rootfs/\nout/\n")
    .commit("The job base")
    .tag("v1.0.0");
    run(tagpilot(base.path())
        .args(["image", "--tag", "v1.0.0", "--out"])
        .arg(base.path().join("out")))
    .ok();

    // This repository's spec, in a repository of its own with the binary as its build output.
    let release = Repo::new();
    release
        .write(
            "tagpilot.yaml",
            std::fs::read_to_string(Path::new(ROOT).join("tagpilot.yaml")).unwrap(),
        )
        .write(".gitignore", "dist/\ntagpilot-out/\n")
        .commit("tagpilot")
        .tag("v0.1.0");
    std::fs::create_dir_all(release.path().join("dist")).unwrap();
    std::fs::copy(&binary, release.path().join("dist/tagpilot")).unwrap();
    std::fs::copy(
        &built.supervisor,
        release.path().join("dist/tagpilot-supervisor"),
    )
    .unwrap();
    let image_of = |out: &str| {
        let built = run(tagpilot(release.path())
            .args([
                "release",
                "--output",
                "json",
                "--only",
                "tarball,image,push",
                "--out",
            ])
            .arg(release.path().join(out))
            .env(
                "TAGPILOT_JOB_BASE",
                format!("{}/tools/job-base:base", registry.host()),
            )
            .env(
                "CI_REGISTRY_IMAGE",
                format!("{}/tools/tagpilot", registry.host()),
            ))
        .ok();
        let record: Value = serde_json::from_str(&built.stdout).unwrap();
        record["image"]["digest"].as_str().unwrap().to_string()
    };
    let digest = image_of("out-1");
    assert_eq!(image_of("out-2"), digest, "the same job image again");

    let image = format!("{}/tools/tagpilot:0.1", registry.host());
    sh(docker.command().args(["pull", "-q", &image]));
    // A clone of this repository for the job to work in (a worktree's `.git` would point
    // outside the container).
    let source = work.path().join("source");
    sh(Command::new("git").args(["clone", "-q", ROOT]).arg(&source));
    let mount = format!("{}:/src:ro", source.display());
    let in_job = |args: &[&str]| {
        run(docker
            .command()
            .args(["run", "--rm", "--network", "none"])
            .args(["-v", &mount, "-w", "/src"])
            .arg(&image)
            .args(args))
    };
    let version = in_job(&["tagpilot", "--version"]).ok();
    assert_eq!(version.stdout.trim(), "tagpilot 0.1.0");
    let supervisor = in_job(&["tagpilot-supervisor", "-version"]).ok();
    assert!(
        supervisor.stdout.starts_with("Version: 0.1.0"),
        "{}",
        supervisor.stdout
    );
    let git = in_job(&["git", "--version"]).ok();
    assert!(git.stdout.starts_with("git version"), "{}", git.stdout);
    // GitLab runs the job's script with the image's shell: the README's first command.
    let dry_run = in_job(&[
        "/bin/sh",
        "-c",
        "tagpilot release --dry-run --snapshot 0.0.0-dev --pipeline pipelines/example.yaml --out /tmp/out && ls /tmp/out",
    ])
    .ok();
    assert!(
        dry_run.stdout.contains("release.json"),
        "{}",
        dry_run.stdout
    );
    drop(registry);
}
