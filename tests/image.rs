//! The OCI image stage, read back with independent tools: `skopeo inspect` and `umoci unpack`.
//! They are Debian packages that `.ci/run` installs; on a laptop without them these tests say
//! so and skip, and in CI (`CI=true`) a missing tool is a failure.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn tools() -> bool {
    tool_available("skopeo", "skopeo") && tool_available("umoci", "umoci")
}

fn build_image(repo: &Path, pipeline: &Path, tag: &str, layout: &Path) -> Run {
    run(tagpilot(repo)
        .args(["image", "--output", "json", "--tag", tag, "--pipeline"])
        .arg(pipeline)
        .arg("--oci-layout")
        .arg(layout))
}

fn skopeo_json(args: &[&str], reference: &str) -> Value {
    let out = sh(Command::new("skopeo")
        .arg("inspect")
        .args(args)
        .arg(reference));
    serde_json::from_str(&out).unwrap()
}

fn unpack(layout: &Path, tag: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle");
    sh(Command::new("umoci")
        .args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:{tag}", layout.display()))
        .arg(&bundle));
    (dir, bundle.join("rootfs"))
}

#[test]
fn dirac_image_read_back_by_skopeo_and_umoci() {
    if !tools() {
        return;
    }
    let work = dirac_repo();
    let repo = work.path().join("dirac");
    let layout = work.path().join("layout");
    let pipeline = Path::new(ROOT).join("pipelines/dirac.yaml");
    let result = build_image(&repo, &pipeline, "v8r2p44", &layout).ok();
    let record: Value = serde_json::from_str(&result.stdout).unwrap();
    let digest = record["image"]["digest"].as_str().unwrap();
    assert_eq!(
        record["image"]["tags"],
        serde_json::json!(["8.2.44", "v8r2p44", "8.2", "latest"])
    );

    let reference = format!("oci:{}:8.2.44", layout.display());
    let inspect = skopeo_json(&[], &reference);
    assert_eq!(inspect["Digest"], digest);
    assert_eq!(
        inspect["Created"], "2017-06-07T08:00:00Z",
        "created = the tag's commit time"
    );
    assert_eq!(
        inspect["Labels"]["org.opencontainers.image.version"],
        "8.2.44"
    );
    assert_eq!(inspect["Labels"]["org.opencontainers.image.vendor"], "LHCb");
    let commit = sh(Command::new("git")
        .current_dir(&repo)
        .args(["rev-parse", "v8r2p44^{commit}"]));
    assert_eq!(
        inspect["Labels"]["org.opencontainers.image.revision"],
        commit.trim()
    );
    // The supervisor, the release tree, the files, the supervisor config.
    assert_eq!(inspect["Layers"].as_array().unwrap().len(), 4);
    let provided = &record["image"]["supervisor"]["layers"][0];
    assert_eq!(inspect["Layers"][0], provided["digest"], "{record}");
    assert_eq!(provided["platform"], "linux/amd64");
    assert_eq!(provided["version"], env!("CARGO_PKG_VERSION"));
    let raw = skopeo_json(&["--raw"], &reference);
    assert_eq!(
        raw["annotations"]["org.tagpilot.supervisor.layer"],
        provided["digest"]
    );
    assert_eq!(
        raw["annotations"]["org.tagpilot.supervisor.version"],
        provided["version"]
    );
    let config = skopeo_json(&["--config"], &reference);
    assert_eq!(
        config["config"]["Entrypoint"],
        serde_json::json!(["/usr/local/bin/tagpilot-supervisor"])
    );
    // Docker's health check asks the supervisor, as often as the most frequent job check (5 s).
    // (skopeo drops Docker's extensions of the config unless it prints the raw bytes.)
    let raw_config = skopeo_json(&["--config", "--raw"], &reference);
    assert_eq!(
        raw_config["config"]["Healthcheck"]["Test"],
        serde_json::json!(["CMD", "/usr/local/bin/tagpilot-supervisor", "-health"])
    );
    assert_eq!(
        raw_config["config"]["Healthcheck"]["Interval"],
        5_000_000_000u64
    );
    let env: Vec<&str> = config["config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        env.contains(&"CONTAINERPILOT=/etc/containerpilot.json5"),
        "{env:?}"
    );
    assert!(env.contains(&"DIRAC_ROOT=/opt/dirac"), "{env:?}");
    assert_eq!(
        config["config"]["ExposedPorts"],
        serde_json::json!({"9197/tcp": {}})
    );
    assert_eq!(config["history"].as_array().unwrap().len(), 4);

    // Every tag names the same image.
    for tag in ["v8r2p44", "8.2", "latest"] {
        let other = skopeo_json(&[], &format!("oci:{}:{tag}", layout.display()));
        assert_eq!(other["Digest"], digest, "tag {tag}");
    }

    let (_keep, rootfs) = unpack(&layout, "8.2.44");
    // The supervisor is the one built with this tagpilot, and answers to ContainerPilot's name.
    assert_eq!(
        std::fs::read(rootfs.join("usr/local/bin/tagpilot-supervisor")).unwrap(),
        std::fs::read(env!("CARGO_BIN_EXE_tagpilot-supervisor")).unwrap()
    );
    assert_eq!(
        std::fs::read_link(rootfs.join("usr/local/bin/containerpilot")).unwrap(),
        Path::new("tagpilot-supervisor")
    );
    // The supervisor config, byte for byte, where the entrypoint will look for it.
    assert_eq!(
        std::fs::read(rootfs.join("etc/containerpilot.json5")).unwrap(),
        std::fs::read(Path::new(ROOT).join("images/dirac/containerpilot.json5")).unwrap()
    );
    assert_eq!(
        std::fs::read(rootfs.join("etc/dirac/dirac.cfg")).unwrap(),
        std::fs::read(Path::new(ROOT).join("images/dirac/etc/dirac.cfg")).unwrap()
    );
    // The release tree is the tarball's content, at install_path.
    let out = tempfile::tempdir().unwrap();
    run(tagpilot(&repo)
        .args(["tarball", "--tag", "v8r2p44", "--pipeline"])
        .arg(&pipeline)
        .arg("--out")
        .arg(out.path()))
    .ok();
    let tarball = snapshot(
        &extract(&find_tarball(out.path()))
            .path()
            .join("DIRAC-v8r2p44"),
    );
    assert_eq!(snapshot(&rootfs.join("opt/dirac")), tarball);
    assert!(matches!(
        tarball[Path::new("src/DIRAC/Core/scripts/dirac-service")],
        Node::File {
            executable: true,
            ..
        }
    ));
}

#[test]
fn same_tag_same_digest_on_another_clone() {
    let work = dirac_repo();
    let repo = work.path().join("dirac");
    let pipeline = Path::new(ROOT).join("pipelines/dirac.yaml");
    let first = build_image(&repo, &pipeline, "v8r2p44", &work.path().join("a")).ok();
    let clone = work.path().join("clone");
    sh(Command::new("git")
        .args(["clone", "-q", "--no-local"])
        .arg(&repo)
        .arg(&clone));
    sh(Command::new("git").current_dir(&clone).args(["gc", "-q"]));
    let second = run(tagpilot(&clone)
        .args([
            "image",
            "--output",
            "json",
            "--tag",
            "v8r2p44",
            "--pipeline",
        ])
        .arg(&pipeline)
        .arg("--oci-layout")
        .arg(work.path().join("b"))
        .env("TZ", "Asia/Kolkata"))
    .ok();
    let digest =
        |run: &Run| serde_json::from_str::<Value>(&run.stdout).unwrap()["image"]["digest"].clone();
    assert_eq!(digest(&first), digest(&second));
}

#[test]
fn moving_tags_skip_pre_releases_and_older_releases() {
    let work = dirac_repo();
    let repo = work.path().join("dirac");
    let pipeline = Path::new(ROOT).join("pipelines/dirac.yaml");
    let tags = |tag: &str| {
        let run = build_image(&repo, &pipeline, tag, &work.path().join(tag)).ok();
        serde_json::from_str::<Value>(&run.stdout).unwrap()["image"]["tags"].clone()
    };
    assert_eq!(
        tags("v7r2-pre12"),
        serde_json::json!(["7.2.0-pre12", "v7r2-pre12"])
    );
    assert_eq!(
        tags("v8r2p43"),
        serde_json::json!(["8.2.43", "v8r2p43", "8.2"]),
        "not the highest: no latest"
    );
    assert_eq!(
        tags("v9.0.0rc1"),
        serde_json::json!(["9.0.0rc1", "v9.0.0rc1"])
    );
}

/// A spec for the sample repository, with `image:` replaced.
fn spec_with_image(dir: &Path, image: &str) -> PathBuf {
    let path = dir.join("spec.yaml");
    std::fs::write(
        &path,
        format!("name: dirac\nversion: {{ scheme: dirac }}\nimage:\n{image}"),
    )
    .unwrap();
    path
}

#[test]
fn multi_platform_base_gives_an_index() {
    if !tools() {
        return;
    }
    let work = dirac_repo();
    let repo = work.path().join("dirac");
    // A two-platform base, itself built by tagpilot from scratch.
    let base_spec = spec_with_image(
        work.path(),
        "  install_path: /base\n  platforms: [linux/amd64, linux/arm64/v8]\n  env: { LANG: C.UTF-8 }\n  tags: [\"base\"]\n",
    );
    build_image(&repo, &base_spec, "v8r2p43", &work.path().join("base")).ok();

    let app_spec = work.path().join("app.yaml");
    std::fs::write(
        &app_spec,
        format!(
            "name: dirac\nversion: {{ scheme: dirac }}\nimage:\n  base: oci-layout:{}:base\n  install_path: /opt/dirac\n  cmd: [\"python\", \"-m\", \"DIRAC\"]\n",
            work.path().join("base").display()
        ),
    )
    .unwrap();
    let layout = work.path().join("app");
    let result = build_image(&repo, &app_spec, "v8r2p44", &layout).ok();
    let record: Value = serde_json::from_str(&result.stdout).unwrap();
    assert_eq!(
        record["image"]["platforms"],
        serde_json::json!(["linux/amd64", "linux/arm64/v8"])
    );
    assert_eq!(
        record["image"]["media_type"],
        "application/vnd.oci.image.index.v1+json"
    );
    let base_digest = sh(Command::new("skopeo")
        .args(["inspect", "--raw"])
        .arg(format!("oci:{}:base", work.path().join("base").display())));
    assert!(record["image"]["base_digest"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));
    assert!(!base_digest.is_empty());

    for arch in ["amd64", "arm64"] {
        let reference = format!("oci:{}:8.2.44", layout.display());
        let inspect = skopeo_json(&["--override-arch", arch], &reference);
        assert_eq!(inspect["Architecture"], arch);
        assert_eq!(
            inspect["Layers"].as_array().unwrap().len(),
            2,
            "base layer + release tree"
        );
        let config = skopeo_json(&["--config", "--override-arch", arch], &reference);
        let env = config["config"]["Env"].to_string();
        assert!(
            env.contains("LANG=C.UTF-8"),
            "the base's env is kept: {env}"
        );
        assert_eq!(
            config["config"]["Cmd"],
            serde_json::json!(["python", "-m", "DIRAC"])
        );
    }
    // umoci takes one platform: skopeo copies the arm64 image out of the index first.
    let single = work.path().join("single");
    sh(Command::new("skopeo")
        .args(["copy", "--override-arch", "arm64"])
        .arg(format!("oci:{}:8.2.44", layout.display()))
        .arg(format!("oci:{}:arm64", single.display())));
    let (_keep, rootfs) = unpack(&single, "arm64");
    assert!(
        rootfs.join("base/RELEASE").is_file(),
        "the base layer is there"
    );
    assert!(
        rootfs.join("opt/dirac/RELEASE").is_file(),
        "and ours on top"
    );

    // Asking for a platform the base lacks is an error naming what it offers.
    let wrong = spec_with_image(
        work.path(),
        &format!(
            "  base: oci-layout:{}:base\n  platforms: [linux/s390x]\n",
            work.path().join("base").display()
        ),
    );
    let out = work.path().join("never");
    build_image(&repo, &wrong, "v8r2p44", &out).fails_with(
        2,
        "has no linux/s390x image; it offers linux/amd64, linux/arm64/v8",
    );
    assert!(!out.exists(), "nothing written for a bad base");

    // tagpilot's own supervisor on both platforms: each needs a binary for its CPU.
    let with_supervisor = |binaries: &str| {
        let spec = work.path().join("supervised.yaml");
        std::fs::write(
            &spec,
            format!(
                "name: dirac\nversion: {{ scheme: dirac }}\nimage:\n  base: oci-layout:{}:base\n  install_path: /opt/dirac\n  supervisor:\n    binaries: {{ {binaries} }}\n    config: {{ consul: \"localhost:8500\", jobs: [{{ name: app, exec: run }}] }}\n",
                work.path().join("base").display()
            ),
        )
        .unwrap();
        spec
    };
    let out = work.path().join("supervised");
    build_image(&repo, &with_supervisor(""), "v8r2p44", &out).fails_with(
        2,
        "the image is for linux/arm64/v8, and no tagpilot-supervisor for linux/arm64/v8 is given",
    );
    // The amd64 binary named for arm64: refused, never shipped to the other CPU.
    std::fs::copy(
        env!("CARGO_BIN_EXE_tagpilot-supervisor"),
        repo.join("supervisor-amd64"),
    )
    .unwrap();
    build_image(
        &repo,
        &with_supervisor("linux/arm64/v8: supervisor-amd64"),
        "v8r2p44",
        &out,
    )
    .fails_with(2, "but the image is for linux/arm64/v8 (machine 183)");
    assert!(!out.exists(), "nothing written");
    // An arm64 ELF (its header alone) is taken for arm64; amd64 gets the one next to tagpilot.
    let mut arm64 = vec![0u8; 64];
    arm64[..6].copy_from_slice(b"\x7fELF\x02\x01");
    arm64[18..20].copy_from_slice(&183u16.to_le_bytes());
    std::fs::write(repo.join("supervisor-arm64"), &arm64).unwrap();
    let built = build_image(
        &repo,
        &with_supervisor("linux/arm64/v8: supervisor-arm64"),
        "v8r2p44",
        &out,
    )
    .ok();
    let record: Value = serde_json::from_str(&built.stdout).unwrap();
    let layers = record["image"]["supervisor"]["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2, "{record}");
    assert_ne!(layers[0]["digest"], layers[1]["digest"]);
    for (arch, layer) in [("amd64", &layers[0]), ("arm64", &layers[1])] {
        let inspect = skopeo_json(
            &["--override-arch", arch],
            &format!("oci:{}:8.2.44", out.display()),
        );
        assert_eq!(inspect["Layers"][1], layer["digest"], "{arch}: {inspect}");
    }
}

#[test]
fn bad_input_stops_before_anything_is_written() {
    let work = dirac_repo();
    let repo = work.path().join("dirac");
    let cases = [
        (
            "  base: oci-layout:/nonexistent/layout\n".to_string(),
            "could not read /nonexistent/layout/index.json",
        ),
        (
            "  base: Not/A Valid:Ref\n".to_string(),
            "is not an image reference",
        ),
        (
            "  supervisor: { file: images/dirac/missing.json5 }\n".to_string(),
            "`images/dirac/missing.json5` is not in the repository",
        ),
        (
            "  supervisor:\n    config:\n      consul: localhost:8500\n      jobs: [{ name: web, exec: \"\" }]\n".to_string(),
            "job[web].exec: received zero-length argument",
        ),
        (
            "  supervisor:\n    config:\n      jobz: []\n".to_string(),
            "unknown config keys: [jobz]",
        ),
        ("  owner: root\n".to_string(), "`root` is not UID:GID"),
        (
            "  install_path: opt/dirac\n".to_string(),
            "must be an absolute path",
        ),
    ];
    for (image, needle) in cases {
        let spec = spec_with_image(work.path(), &image);
        let out = work.path().join("layout");
        build_image(&repo, &spec, "v8r2p44", &out).fails_with(2, needle);
        assert!(
            !out.join("index.json").exists(),
            "{needle}: an image was published"
        );
    }
}

#[test]
fn a_supervisor_file_with_an_unknown_key_points_at_its_line() {
    let work = dirac_repo();
    let repo = work.path().join("dirac");
    let file = repo.join("images/dirac/containerpilot.json5");
    let text = std::fs::read_to_string(&file).unwrap().replace(
        "restarts: \"unlimited\",\n      port: 8500",
        "restart: \"unlimited\",\n      port: 8500",
    );
    std::fs::write(&file, text).unwrap();
    sh(Command::new("git").current_dir(&repo).args([
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@e",
        "commit",
        "-qam",
        "typo",
    ]));
    sh(Command::new("git")
        .current_dir(&repo)
        .args(["tag", "v8r2p45"]));
    let pipeline = Path::new(ROOT).join("pipelines/dirac.yaml");
    let out = work.path().join("layout");
    let result = build_image(&repo, &pipeline, "v8r2p45", &out)
        .fails_with(2, "images/dirac/containerpilot.json5:19:");
    assert!(
        result.stderr.contains("unknown keys: restart"),
        "{}",
        result.stderr
    );
    assert!(!out.join("index.json").exists());
}

#[test]
fn inline_supervisor_config_is_rendered_and_embedded() {
    if !tools() {
        return;
    }
    let work = dirac_repo();
    let repo = work.path().join("dirac");
    let spec = spec_with_image(
        work.path(),
        "  supervisor:\n    path: /etc/cp/config.json5\n    config:\n      consul: localhost:8500\n      stopTimeout: 5\n      jobs:\n        - name: web\n          exec: [\"python\", \"-m\", \"http.server\", \"8080\"]\n          port: 8080\n          health: { exec: \"curl -fs localhost:8080\", interval: 5, ttl: 10 }\n",
    );
    let layout = work.path().join("layout");
    build_image(&repo, &spec, "v8r2p44", &layout).ok();
    let (_keep, rootfs) = unpack(&layout, "8.2.44");
    let embedded: Value =
        serde_json::from_slice(&std::fs::read(rootfs.join("etc/cp/config.json5")).unwrap())
            .unwrap();
    assert_eq!(embedded["jobs"][0]["name"], "web");
    assert_eq!(embedded["stopTimeout"], 5);
    assert_eq!(embedded["jobs"][0]["health"]["ttl"], 10);
    let config = skopeo_json(&["--config"], &format!("oci:{}:8.2.44", layout.display()));
    assert!(config["config"]["Env"]
        .to_string()
        .contains("CONTAINERPILOT=/etc/cp/config.json5"));
}

#[test]
fn a_release_without_a_repository_says_where_to_set_it() {
    let work = dirac_repo();
    let repo = work.path().join("dirac");
    let pipeline = Path::new(ROOT).join("pipelines/dirac.yaml");
    let out = work.path().join("out");
    run(tagpilot(&repo)
        .args(["release", "--tag", "v8r2p44", "--pipeline"])
        .arg(&pipeline)
        .arg("--out")
        .arg(&out))
    .fails_with(
        2,
        "image.repository is not set and CI_REGISTRY_IMAGE is empty",
    );
    let record = read_json(&out.join("release.json"));
    assert_eq!(record["stages"][2]["name"], "push");
    assert_eq!(record["stages"][2]["status"], "failed");
    assert_eq!(record["stages"][1]["status"], "done", "the image was built");
    // Skipping the push stage releases the rest.
    run(tagpilot(&repo)
        .args([
            "release",
            "--tag",
            "v8r2p44",
            "--skip",
            "push",
            "--pipeline",
        ])
        .arg(&pipeline)
        .arg("--out")
        .arg(&out))
    .ok();
    assert_eq!(
        read_json(&out.join("release.json"))["stages"][2]["status"],
        "not_selected"
    );
}

#[test]
fn zstd_layers_carry_their_media_type() {
    if !tools() {
        return;
    }
    let work = dirac_repo();
    let repo = work.path().join("dirac");
    let spec = spec_with_image(
        work.path(),
        "  install_path: /opt/dirac\n  compression: zstd\n  level: 3\n",
    );
    let layout = work.path().join("layout");
    let first = build_image(&repo, &spec, "v8r2p44", &layout).ok();
    let manifest: Value = serde_json::from_str(&sh(Command::new("skopeo")
        .args(["inspect", "--raw"])
        .arg(format!("oci:{}:8.2.44", layout.display()))))
    .unwrap();
    let layer = &manifest["layers"][0];
    assert_eq!(
        layer["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    let blob = layout.join("blobs/sha256").join(
        layer["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:"),
    );
    let listing = sh(Command::new("sh")
        .arg("-c")
        .arg(format!("zstd -dc '{}' | tar -t", blob.display())));
    assert!(
        listing.lines().any(|l| l == "opt/dirac/RELEASE"),
        "{listing}"
    );
    let again = build_image(&repo, &spec, "v8r2p44", &work.path().join("again")).ok();
    let digest =
        |run: &Run| serde_json::from_str::<Value>(&run.stdout).unwrap()["image"]["digest"].clone();
    assert_eq!(digest(&first), digest(&again));
}

/// `release` makes the image's release tree layer from the tarball's stream (one pass over the
/// git tree); `image` walks the tree itself. Both give the same image, byte for byte.
#[test]
fn one_pass_release_gives_the_same_image_as_walking_the_tree() {
    let work = dirac_repo();
    let repo = work.path().join("dirac");
    let long = format!(
        "{}/deep-file-name-beyond-the-ustar-limit.py",
        "long-folder-name".repeat(8)
    );
    std::fs::create_dir_all(repo.join(long.rsplit_once('/').unwrap().0)).unwrap();
    commit_file_and_retag(&repo, &long, b"x = 1\n", "v8r2p44");
    commit_file_and_retag(&repo, "big.bin", &noise(5 << 20), "v8r2p44");
    let pipeline = Path::new(ROOT).join("pipelines/dirac.yaml");
    let released = dry_run_release(&repo, "v8r2p44", Some(&pipeline), &work.path().join("out"));
    let walked = build_image(&repo, &pipeline, "v8r2p44", &work.path().join("walked")).ok();
    let tarball = extract(&work.path().join("out/DIRAC-v8r2p44.tar.gz"));
    assert!(
        tarball.path().join("DIRAC-v8r2p44").join(&long).is_file(),
        "the long path is in the release"
    );
    let digest =
        |run: &Run| serde_json::from_str::<Value>(&run.stdout).unwrap()["image"]["digest"].clone();
    assert!(digest(&released).is_string());
    assert_eq!(digest(&released), digest(&walked));
    // The layer took the tarball's compressed big.bin instead of compressing it again.
    assert!(
        released
            .stderr
            .contains("image layer: made with the tarball's stream, 5.0 MiB of its"),
        "{}",
        released.stderr
    );
}

/// `gzip_blocks: fixed` keeps tagpilot 0.1's cuts: other bytes than the default's file cuts,
/// the same files, no sharing, and still one image whichever way the layer is made. Both
/// formats are plain gzip to `gzip -t` and `tar`.
#[test]
fn gzip_blocks_choose_the_cuts_and_only_file_cuts_compress_once() {
    let work = dirac_repo();
    let repo = work.path().join("dirac");
    let source: String = (0..4000)
        .map(|i| format!("def handler_{i}(request):\n    return request.value * {i}\n"))
        .collect();
    commit_file_and_retag(&repo, "module.py", source.as_bytes(), "v8r2p44");
    let default = Path::new(ROOT).join("pipelines/dirac.yaml");
    let fixed = work.path().join("fixed.yaml");
    let text = std::fs::read_to_string(&default).unwrap();
    let text = text
        .replacen("tarball:\n", "tarball:\n  gzip_blocks: fixed\n", 1)
        .replacen("image:\n", "image:\n  gzip_blocks: fixed\n", 1);
    std::fs::write(&fixed, text).unwrap();
    let release = |pipeline: &Path, out: &str| {
        dry_run_release(&repo, "v8r2p44", Some(pipeline), &work.path().join(out))
    };
    let files = release(&default, "files");
    let old = release(&fixed, "fixed");
    assert!(
        files.stderr.contains("compressed once for both"),
        "{}",
        files.stderr
    );
    assert!(!old.stderr.contains("compressed once"), "{}", old.stderr);

    let record = |run: &Run| serde_json::from_str::<Value>(&run.stdout).unwrap();
    let sha = |run: &Run| record(run)["tarball"]["sha256"].clone();
    assert_ne!(sha(&files), sha(&old), "the cuts are part of the bytes");
    assert_eq!(record(&files)["tarball"]["gzip_blocks"], "files");
    assert_eq!(record(&old)["tarball"]["gzip_blocks"], "fixed");
    let tarballs: Vec<PathBuf> = ["files", "fixed"]
        .iter()
        .map(|out| work.path().join(out).join("DIRAC-v8r2p44.tar.gz"))
        .collect();
    for tarball in &tarballs {
        sh(Command::new("gzip").arg("-t").arg(tarball));
    }
    let (a, b) = (extract(&tarballs[0]), extract(&tarballs[1]));
    sh(Command::new("diff").arg("-r").arg(a.path()).arg(b.path()));

    let walked = build_image(&repo, &fixed, "v8r2p44", &work.path().join("walked")).ok();
    let digest = |run: &Run| record(run)["image"]["digest"].clone();
    assert_eq!(digest(&old), digest(&walked));
    assert_ne!(digest(&old), digest(&files));
}

#[test]
fn owners_as_configured() {
    let work = dirac_repo();
    let repo = work.path().join("dirac");
    let spec = spec_with_image(
        work.path(),
        "  install_path: /opt/dirac\n  owner: \"1000:1001\"\n  supervisor:\n    config:\n      consul: localhost:8500\n      jobs: [{ name: svc, exec: run }]\n",
    );
    let layout = work.path().join("layout");
    let result = build_image(&repo, &spec, "v8r2p44", &layout).ok();
    let record: Value = serde_json::from_str(&result.stdout).unwrap();
    let listing = |digest: &str| {
        let blob = layout
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"));
        sh(Command::new("tar")
            .args(["--numeric-owner", "-tvzf"])
            .arg(blob))
    };
    let tree = listing(record["image"]["layers"][0]["digest"].as_str().unwrap());
    assert!(tree.lines().count() > 5);
    assert!(
        tree.lines()
            .all(|l| l.split_whitespace().nth(1) == Some("1000/1001")),
        "{tree}"
    );
    let supervisor = listing(record["image"]["layers"][1]["digest"].as_str().unwrap());
    assert!(
        supervisor.contains("etc/containerpilot.json5"),
        "{supervisor}"
    );
    assert!(
        supervisor
            .lines()
            .all(|l| l.split_whitespace().nth(1) == Some("0/0")),
        "{supervisor}"
    );
}

#[test]
fn validate_checks_the_supervisor_file_as_containerpilot_starts_it() {
    let repo = Repo::new();
    repo.write(
        "tagpilot.yaml",
        "name: app\nimage:\n  supervisor: { file: cp.json5 }\n",
    )
    // What the DIRAC example had: escaped quotes in an action, and a unit on stopTimeout.
    .write(
        "cp.json5",
        "{\n  consul: \"localhost:8500\",\n  stopTimeout: 10,\n  jobs: [{ name: \"a\", exec: [\"x\", \"-join={{ .J | default \\\"c\\\" }}\"] }],\n}\n",
    )
    .commit("app");
    let refused = run(tagpilot(repo.path()).arg("validate")).fails_with(2, "cp.json5:4:");
    assert!(
        refused.stderr.contains("escaped quotes"),
        "{}",
        refused.stderr
    );
    repo.write(
        "cp.json5",
        "{\n  consul: \"localhost:8500\",\n  stopTimeout: \"10s\",\n  jobs: [{ name: \"a\", exec: [\"x\", '-join={{ .J | default \"c\" }}'] }],\n}\n",
    );
    let refused = run(tagpilot(repo.path()).arg("validate")).fails_with(2, "cp.json5:3:");
    assert!(
        refused.stderr.contains("without a unit such as"),
        "{}",
        refused.stderr
    );
    repo.write(
        "cp.json5",
        "{\n  consul: \"localhost:8500\",\n  stopTimeout: 10,\n  jobs: [{ name: \"a\", exec: [\"x\", '-join={{ .J | default \"c\" }}'] }],\n}\n",
    );
    let fine = run(tagpilot(repo.path()).arg("validate")).ok();
    assert!(
        fine.stdout
            .contains("cp.json5: valid supervisor config (from the working tree)"),
        "{}",
        fine.stdout
    );
    // At the tag, the committed file is read: the one with escaped quotes.
    repo.tag("v1.0.0");
    let at_tag = run(tagpilot(repo.path()).args(["validate", "--tag", "v1.0.0"]));
    assert_eq!(at_tag.code, 2, "{}", at_tag.stdout);
    assert!(
        at_tag.stderr.contains("escaped quotes"),
        "{}",
        at_tag.stderr
    );
}

/// Compress once over many files of every size around the cuts (empty, under a tar record,
/// just under and at the 16 KiB of a file's own blocks, a 256 KiB block and one byte more,
/// text and noise): the release's layer, which takes the tarball's blocks while both are
/// made, is the image `image` makes alone, and the release does not wait on itself.
#[test]
fn compress_once_over_files_of_every_size_gives_the_same_image() {
    let repo = Repo::new();
    repo.write(
        "tagpilot.yaml",
        "name: app\nimage:\n  repository: registry.example.org/team/app\n  install_path: /srv/app\n",
    );
    let sizes = [
        0, 1, 511, 512, 513, 16_383, 16_384, 16_385, 100_000, 262_144, 262_145, 600_001,
    ];
    let text = |n: usize| -> Vec<u8> {
        let line = b"def handler(request):\n    return request.value\n";
        line.iter().copied().cycle().take(n).collect()
    };
    for i in 0..240 {
        let size = sizes[i % sizes.len()];
        let content = if i % 5 == 0 { noise(size) } else { text(size) };
        repo.write(&format!("pkg{}/file{i:03}.py", i % 7), content);
    }
    repo.commit("many files").tag("v1.0.0");
    let work = tempfile::tempdir().unwrap();
    let released = dry_run_release(repo.path(), "v1.0.0", None, &work.path().join("out"));
    assert!(
        released.stderr.contains("compressed once for both"),
        "{}",
        released.stderr
    );
    let spec = repo.path().join("tagpilot.yaml");
    let alone = build_image(repo.path(), &spec, "v1.0.0", &work.path().join("alone")).ok();
    let digest =
        |run: &Run| serde_json::from_str::<Value>(&run.stdout).unwrap()["image"]["digest"].clone();
    assert_eq!(digest(&released), digest(&alone));
}
