//! The release tarball, checked against `git archive` and for bit-for-bit reproducibility.

mod common;

use std::process::Command;

use common::*;

/// A repository exercising what archives get wrong: modes, symlinks, deep and long paths,
/// non-ASCII names, empty and binary files, export-ignore at several depths.
fn tricky_repo() -> Repo {
    let repo = Repo::new();
    let long_dir = "a-rather-long-folder-name-that-keeps-going/".repeat(3);
    repo.write("README.md", "# sample\n")
        .write("src/pkg/__init__.py", "")
        .write("src/pkg/core.py", "def f():\n    return 42\n")
        .write("bin/run", "#!/bin/sh\necho run\n")
        .executable("bin/run")
        .symlink("run-link", "bin/run")
        .symlink("dangling", "does/not/exist")
        .write(
            "data/blob.bin",
            (0..=255u8).cycle().take(70_000).collect::<Vec<u8>>(),
        )
        .write("data/empty", "")
        // Over the streaming threshold, and machine code (which once exposed a compressor bug).
        .write("lib/native.so", machine_code(6 << 20))
        .write("docs/index.md", "not shipped\n")
        .write("src/pkg/tests/test_core.py", "assert True\n")
        .write("src/pkg/generated.c", "int x;\n")
        .write("naïve/ünïcödé.txt", "utf-8 names\n")
        .write(
            &format!("{long_dir}file-with-a-long-name-too.txt"),
            "long path\n",
        )
        .write(".gitattributes", "docs/ export-ignore\n*.c export-ignore\n")
        .write(
            "src/pkg/.gitattributes",
            "tests export-ignore\ngenerated.c -export-ignore\n",
        );
    repo.commit("first").tag("v1.2.3");
    repo
}

/// `len` bytes of real machine code: the start of the tagpilot binary.
fn machine_code(len: usize) -> Vec<u8> {
    let mut bytes = std::fs::read(env!("CARGO_BIN_EXE_tagpilot")).unwrap();
    bytes.truncate(len);
    bytes
}

#[test]
fn content_matches_git_archive() {
    let repo = tricky_repo();
    let out = tempfile::tempdir().unwrap();
    let result = run(tagpilot(repo.path())
        .args(["tarball", "--tag", "v1.2.3", "--out"])
        .arg(out.path()))
    .ok();
    let name = repo.name();
    let tarball = out.path().join(format!("{name}-1.2.3.tar.gz"));
    assert!(
        result.stdout.contains(&tarball.display().to_string()),
        "{}",
        result.stdout
    );

    sh(Command::new("gzip").arg("-t").arg(&tarball));
    let ours = snapshot(extract(&tarball).path());
    let reference =
        snapshot(git_archive_extracted(&repo, "v1.2.3", &format!("{name}-1.2.3/")).path());
    assert_eq!(ours, reference);
    // The archive really exercised the hard cases.
    let root = std::path::PathBuf::from(format!("{name}-1.2.3"));
    assert!(
        !ours.contains_key(&root.join("docs")),
        "export-ignore folder"
    );
    assert!(
        !ours.contains_key(&root.join("src/pkg/tests")),
        "nested export-ignore"
    );
    assert!(
        ours.contains_key(&root.join("src/pkg/generated.c")),
        "deeper -export-ignore wins"
    );
    assert_eq!(
        ours[&root.join("run-link")],
        Node::Symlink("bin/run".into())
    );
    assert!(matches!(
        ours[&root.join("bin/run")],
        Node::File {
            executable: true,
            ..
        }
    ));

    // SHA256SUMS is in `sha256sum -c` format and checks out.
    let sums = std::fs::read_to_string(out.path().join("SHA256SUMS")).unwrap();
    assert!(sums.ends_with(&format!("  {name}-1.2.3.tar.gz\n")));
    sh(Command::new("sha256sum")
        .arg("-c")
        .arg("SHA256SUMS")
        .current_dir(out.path()));
}

#[test]
fn headers_are_normalised() {
    let repo = tricky_repo();
    let out = tempfile::tempdir().unwrap();
    run(tagpilot(repo.path())
        .args(["tarball", "--tag", "v1.2.3", "--out"])
        .arg(out.path()))
    .ok();
    let tarball = find_tarball(out.path());
    let listing = sh(Command::new("tar")
        .args(["--numeric-owner", "--full-time", "-tvzf"])
        .arg(&tarball)
        .env("TZ", "UTC"));
    for line in listing.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields[1], "0/0", "owner in {line}");
        // The commit time of the tag: 2024-03-01T12:00:00+01:00.
        assert_eq!(&fields[3..5], ["2024-03-01", "11:00:00"], "mtime in {line}");
        let mode = fields[0];
        assert!(
            ["drwxr-xr-x", "-rw-r--r--", "-rwxr-xr-x", "lrwxrwxrwx"].contains(&mode),
            "mode in {line}"
        );
    }
    // gzip header: no name (FLG 0) and no time (MTIME 0).
    let bytes = std::fs::read(&tarball).unwrap();
    assert_eq!(&bytes[..4], &[0x1f, 0x8b, 8, 0]);
    assert_eq!(&bytes[4..8], &[0, 0, 0, 0]);
}

fn tarball_bytes(repo_dir: &std::path::Path, envs: &[(&str, &str)]) -> Vec<u8> {
    let out = tempfile::tempdir().unwrap();
    let mut cmd = tagpilot(repo_dir);
    cmd.args(["tarball", "--tag", "v1.2.3", "--out"])
        .arg(out.path());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    run(&mut cmd).ok();
    let path = find_tarball(out.path());
    std::fs::read(path).unwrap()
}

#[test]
fn reproducible_across_clones_time_zones_and_working_trees() {
    let repo = tricky_repo();
    let first = tarball_bytes(repo.path(), &[("TZ", "UTC"), ("LC_ALL", "C")]);

    // Another "machine": a separate clone, objects packed differently, another time zone and
    // locale, a dirty working tree and a different umask.
    let clone_parent = tempfile::tempdir().unwrap();
    let clone = clone_parent.path().join(repo.path().file_name().unwrap());
    sh(Command::new("git")
        .args(["clone", "-q", "--no-local"])
        .arg(repo.path())
        .arg(&clone));
    sh(Command::new("git")
        .current_dir(&clone)
        .args(["gc", "-q", "--aggressive"]));
    std::fs::write(clone.join("README.md"), "local edits must not leak in\n").unwrap();
    std::fs::write(clone.join("untracked.txt"), "nor untracked files\n").unwrap();
    let second = tarball_bytes(
        &clone,
        &[
            ("TZ", "Pacific/Chatham"),
            ("LC_ALL", "C.UTF-8"),
            ("HOME", "/nonexistent"),
        ],
    );
    assert!(
        first == second,
        "same tag gave different bytes on another clone"
    );

    // SOURCE_DATE_EPOCH overrides the commit time, and so changes the digest.
    let pinned = tarball_bytes(repo.path(), &[("SOURCE_DATE_EPOCH", "1000000000")]);
    assert!(pinned != first);
    assert_eq!(
        pinned,
        tarball_bytes(&clone, &[("SOURCE_DATE_EPOCH", "1000000000")])
    );
}

#[test]
fn spec_excludes_prefix_and_file_name() {
    let repo = Repo::new();
    repo.write("src/a.py", "a = 1\n".repeat(1000))
        .write("tests/t.py", "t\n")
        .write("src/cache/x.pyc", "bytecode")
        .write(
            "tagpilot.yaml",
            "name: svc\ntarball:\n  prefix: \"{name}/{tag}\"\n  file: \"{name}_{major}.{minor}.tar.gz\"\n  exclude: [\"tests/**\", \"**/*.pyc\"]\n",
        );
    repo.commit("c").tag("v2.5.0");
    let out = tempfile::tempdir().unwrap();
    run(tagpilot(repo.path())
        .args(["tarball", "--out"])
        .arg(out.path())
        .args(["--tag", "v2.5.0"]))
    .ok();
    let tree = snapshot(extract(&out.path().join("svc_2.5.tar.gz")).path());
    let paths: Vec<String> = tree.keys().map(|p| p.display().to_string()).collect();
    // `src/cache` held only excluded files: no empty folder is left in its place.
    assert_eq!(
        paths,
        [
            "svc",
            "svc/v2.5.0",
            "svc/v2.5.0/src",
            "svc/v2.5.0/src/a.py",
            "svc/v2.5.0/tagpilot.yaml"
        ]
    );
}

#[test]
fn the_level_changes_compression_not_content() {
    let repo = Repo::new();
    repo.write(
        "src/a.py",
        "value = 'some compressible text'\n".repeat(5000),
    );
    repo.commit("c").tag("v1.2.3");
    let gz = |level: &str| {
        repo.write(
            "tagpilot.yaml",
            format!("name: svc\ntarball:\n  level: {level}\n"),
        );
        let bytes = tarball_bytes(repo.path(), &[]);
        let tar = sh_bytes(Command::new("gzip").arg("-dc"), &bytes);
        (bytes, tar)
    };
    let (fast, fast_tar) = gz("1");
    let (small, small_tar) = gz("9");
    assert!(fast != small, "level 1 and 9 produced the same bytes");
    assert!(
        small.len() < fast.len(),
        "level 9 ({}) not smaller than level 1 ({})",
        small.len(),
        fast.len()
    );
    assert_eq!(
        fast_tar, small_tar,
        "the tar inside must not depend on the level"
    );
}

fn sh_bytes(cmd: &mut Command, stdin: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || input.write_all(&data));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success());
    out.stdout
}

#[test]
fn submodules_are_an_error_or_skipped_never_empty() {
    let sub = Repo::new();
    sub.write("lib.py", "x = 1\n").commit("lib");
    let repo = Repo::new();
    repo.write("main.py", "import lib\n");
    repo.git(&[
        "-c",
        "protocol.file.allow=always",
        "submodule",
        "add",
        "-q",
        sub.path().to_str().unwrap(),
        "vendor/lib",
    ]);
    repo.commit("with submodule").tag("v1.0.0");

    let out = tempfile::tempdir().unwrap();
    run(tagpilot(repo.path())
        .args(["tarball", "--tag", "v1.0.0", "--out"])
        .arg(out.path()))
    .fails_with(2, "`vendor/lib` is a git submodule");
    let left: Vec<_> = std::fs::read_dir(out.path()).unwrap().collect();
    assert!(
        left.is_empty(),
        "a failed build leaves nothing behind: {left:?}"
    );

    repo.write("tagpilot.yaml", "tarball:\n  submodules: skip\n");
    run(tagpilot(repo.path())
        .args(["tarball", "--tag", "v1.0.0", "--out"])
        .arg(out.path()))
    .ok();
    let tarball = find_tarball(out.path());
    let tree = snapshot(extract(&tarball).path());
    assert!(
        tree.keys().all(|p| !p.to_string_lossy().contains("vendor")),
        "{tree:?}"
    );
}

#[test]
fn a_released_file_is_never_replaced_by_different_bytes() {
    let repo = Repo::new();
    repo.write("a.txt", "a\n");
    repo.commit("c").tag("v1.0.0");
    let out = tempfile::tempdir().unwrap();
    let first = run(tagpilot(repo.path())
        .args(["tarball", "--tag", "v1.0.0", "--out"])
        .arg(out.path()))
    .ok();
    // Same build again: same bytes, accepted, reported unchanged.
    let again = run(tagpilot(repo.path())
        .args(["tarball", "--tag", "v1.0.0", "--out"])
        .arg(out.path()))
    .ok();
    assert_eq!(first.stdout, again.stdout);
    assert!(again.stderr.contains("unchanged"), "{}", again.stderr);

    let name = repo.name();
    let path = out.path().join(format!("{name}-1.0.0.tar.gz"));
    let before = std::fs::read(&path).unwrap();
    repo.write("tagpilot.yaml", "tarball:\n  prefix: other/\n");
    run(tagpilot(repo.path())
        .args(["tarball", "--tag", "v1.0.0", "--out"])
        .arg(out.path()))
    .fails_with(2, "already exists with different content");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the released file is untouched"
    );
    let stray: Vec<_> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(stray.is_empty(), "no temporary files left: {stray:?}");
}

/// Large files are streamed, whether loose, packed whole or packed as a delta; every path gives
/// the same bytes as `git archive`.
#[test]
fn large_files_on_every_storage_path() {
    let repo = Repo::new();
    let mut big = machine_code(5 << 20);
    repo.write("big.bin", &big).commit("v1").tag("v1.0.0");
    big[1000..1010].copy_from_slice(b"0123456789");
    repo.write("big.bin", &big).commit("v2").tag("v2.0.0");
    let check = |tag: &str, label: &str| {
        let out = tempfile::tempdir().unwrap();
        run(tagpilot(repo.path())
            .args(["tarball", "--tag", tag, "--out"])
            .arg(out.path()))
        .ok();
        let version = tag.trim_start_matches('v');
        let ours = snapshot(extract(&find_tarball(out.path())).path());
        let reference = snapshot(
            git_archive_extracted(&repo, tag, &format!("{}-{version}/", repo.name())).path(),
        );
        assert!(
            ours == reference,
            "{label}: content differs from git archive"
        );
    };
    check("v2.0.0", "loose objects");
    repo.git(&["gc", "-q", "--aggressive"]);
    let verify = repo.git(&["verify-pack", "-v", &pack_index(&repo)]);
    assert!(
        verify
            .lines()
            .any(|l| l.contains(" blob ") && l.split_whitespace().count() > 5),
        "one version of big.bin should be stored as a delta:\n{verify}"
    );
    check("v1.0.0", "packed");
    check("v2.0.0", "packed");
}

fn pack_index(repo: &Repo) -> String {
    let packs = repo.path().join(".git/objects/pack");
    std::fs::read_dir(&packs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "idx"))
        .unwrap()
        .display()
        .to_string()
}

#[test]
fn zstd_tarballs_match_git_archive_too() {
    let repo = tricky_repo();
    repo.write(
        "tagpilot.yaml",
        "tarball:\n  compression: zstd\n  level: 3\n",
    );
    let out = tempfile::tempdir().unwrap();
    run(tagpilot(repo.path())
        .args(["tarball", "--tag", "v1.2.3", "--out"])
        .arg(out.path()))
    .ok();
    let tarball = out.path().join(format!("{}-1.2.3.tar.zst", repo.name()));
    sh(Command::new("zstd").arg("-tq").arg(&tarball));
    let tar = out.path().join("plain.tar");
    sh(Command::new("zstd")
        .args(["-dq", "-o"])
        .arg(&tar)
        .arg(&tarball));
    let ours = snapshot(extract(&tar).path());
    let reference =
        snapshot(git_archive_extracted(&repo, "v1.2.3", &format!("{}-1.2.3/", repo.name())).path());
    assert_eq!(ours, reference);
    // Same tag, same bytes, again.
    let again = tempfile::tempdir().unwrap();
    run(tagpilot(repo.path())
        .args(["tarball", "--tag", "v1.2.3", "--out"])
        .arg(again.path()))
    .ok();
    assert!(
        std::fs::read(&tarball).unwrap()
            == std::fs::read(again.path().join(format!("{}-1.2.3.tar.zst", repo.name()))).unwrap()
    );
    // A .tar.gz name with zstd is a spec error.
    repo.write(
        "tagpilot.yaml",
        "tarball:\n  compression: zstd\n  file: x.tar.gz\n",
    );
    run(tagpilot(repo.path())
        .args(["tarball", "--tag", "v1.2.3", "--out"])
        .arg(again.path()))
    .fails_with(2, "must be a plain file name ending in `.tar.zst`");
}
