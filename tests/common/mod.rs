//! Test harness: real git repositories made with the git CLI, the real tagpilot binary, and
//! independent readers (`tar`, `gzip`, `git archive`) to check what it wrote.
#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod docker;
pub mod fakes;
pub mod git_http;
pub mod http;
pub mod proxy;
pub mod registry;
pub mod rollout;
pub mod sshd;
pub mod token;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A finished tagpilot run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "tagpilot failed:\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// Asserts the exit code and that stderr says `needle`.
    pub fn fails_with(self, code: i32, needle: &str) -> Run {
        assert_eq!(
            self.code, code,
            "wrong exit code:\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}:\n{}",
            self.stderr
        );
        self
    }
}

/// A tagpilot command run in `cwd` with a clean environment.
pub fn tagpilot(cwd: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tagpilot"));
    cmd.current_dir(cwd);
    with_clean_env(&mut cmd);
    cmd
}

/// `tagpilot release --dry-run --output json` of `tag` in `repo` (with its own `tagpilot.yaml`
/// unless `pipeline` is given), into `out`; it must succeed.
pub fn dry_run_release(repo: &Path, tag: &str, pipeline: Option<&Path>, out: &Path) -> Run {
    let mut release = tagpilot(repo);
    release.args(["release", "--dry-run", "--output", "json", "--tag", tag]);
    if let Some(pipeline) = pipeline {
        release.arg("--pipeline").arg(pipeline);
    }
    run(release.arg("--out").arg(out)).ok()
}

/// Starts from an empty environment: only `PATH` (to find git, ssh and the shell) and a
/// `HOME` with nothing in it (no docker config, no git config, no kubeconfig). Every variable
/// tagpilot reads is then set by the test that wants it, so the caller's shell or CI job
/// cannot change a result.
pub fn with_clean_env(cmd: &mut Command) -> &mut Command {
    static HOME: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    let home = HOME.get_or_init(|| tempfile::tempdir().expect("an empty HOME"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home.path())
}

pub fn run(cmd: &mut Command) -> Run {
    let out: Output = cmd.output().expect("tagpilot runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs a command that must succeed; returns its stdout.
pub fn sh(cmd: &mut Command) -> String {
    String::from_utf8_lossy(&sh_bytes(cmd)).into_owned()
}

/// Runs a command that must succeed; returns its stdout as bytes.
pub fn sh_bytes(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A git repository in a temporary folder, driven through the git CLI.
pub struct Repo {
    pub dir: tempfile::TempDir,
    commits: std::cell::Cell<u32>,
}

impl Repo {
    pub fn new() -> Repo {
        let repo = Repo {
            dir: tempfile::Builder::new()
                .prefix("tagpilot-src-")
                .tempdir()
                .unwrap(),
            commits: std::cell::Cell::new(0),
        };
        repo.git(&["init", "-q", "-b", "main"]);
        repo
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The folder name, which is tagpilot's default release name.
    pub fn name(&self) -> String {
        self.path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned()
    }

    pub fn git(&self, args: &[&str]) -> String {
        sh(Command::new("git")
            .current_dir(self.path())
            .args(["-c", "user.name=Test", "-c", "user.email=test@example.org"])
            .args(args))
    }

    pub fn write(&self, path: &str, content: impl AsRef<[u8]>) -> &Self {
        let full = self.path().join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, content).unwrap();
        self
    }

    pub fn executable(&self, path: &str) -> &Self {
        let full = self.path().join(path);
        std::fs::set_permissions(&full, std::fs::Permissions::from_mode(0o755)).unwrap();
        self
    }

    pub fn symlink(&self, path: &str, target: &str) -> &Self {
        std::os::unix::fs::symlink(target, self.path().join(path)).unwrap();
        self
    }

    /// Commits everything with a fixed, increasing date, so runs are comparable.
    pub fn commit(&self, message: &str) -> &Self {
        self.commits.set(self.commits.get() + 1);
        let date = format!("2024-03-{:02}T12:00:00+01:00", self.commits.get());
        self.git(&["add", "-A"]);
        sh(Command::new("git")
            .current_dir(self.path())
            .env("GIT_AUTHOR_DATE", &date)
            .env("GIT_COMMITTER_DATE", &date)
            .args(["-c", "user.name=Test", "-c", "user.email=test@example.org"])
            .args(["commit", "-q", "--allow-empty", "-m", message]));
        self
    }

    pub fn tag(&self, name: &str) -> &Self {
        self.git(&["tag", "-a", name, "-m", name]);
        self
    }
}

/// What a folder holds, for comparing two extracted archives: path → kind and content.
#[derive(Debug, PartialEq, Eq)]
pub enum Node {
    Folder,
    File { executable: bool, bytes: Vec<u8> },
    Symlink(PathBuf),
}

pub fn snapshot(root: &Path) -> BTreeMap<PathBuf, Node> {
    let mut nodes = BTreeMap::new();
    collect(root, root, &mut nodes);
    nodes
}

fn collect(root: &Path, dir: &Path, nodes: &mut BTreeMap<PathBuf, Node>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let relative = path.strip_prefix(root).unwrap().to_path_buf();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.file_type().is_symlink() {
            nodes.insert(relative, Node::Symlink(std::fs::read_link(&path).unwrap()));
        } else if meta.is_dir() {
            nodes.insert(relative, Node::Folder);
            collect(root, &path, nodes);
        } else {
            let executable = meta.permissions().mode() & 0o100 != 0;
            nodes.insert(
                relative,
                Node::File {
                    executable,
                    bytes: std::fs::read(&path).unwrap(),
                },
            );
        }
    }
}

/// Extracts a tar (optionally gzip'd) with the system `tar` into a new temporary folder.
pub fn extract(archive: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    sh(Command::new("tar")
        .arg("-xf")
        .arg(archive)
        .arg("-C")
        .arg(dir.path()));
    dir
}

/// `git archive` of `tag` with `prefix`, extracted: the reference for tarball contents.
pub fn git_archive_extracted(repo: &Repo, tag: &str, prefix: &str) -> tempfile::TempDir {
    let tar = repo.path().join("../").join(format!(
        "{}.reference.tar",
        repo.dir.path().file_name().unwrap().to_string_lossy()
    ));
    repo.git(&[
        "archive",
        "--format=tar",
        &format!("--prefix={prefix}"),
        "-o",
        tar.to_str().unwrap(),
        tag,
    ]);
    let dir = extract(&tar);
    std::fs::remove_file(&tar).unwrap();
    dir
}

pub fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The one `.tar.gz` in an output folder.
pub fn find_tarball(dir: &Path) -> PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".tar.gz"))
        .unwrap_or_else(|| panic!("no .tar.gz in {}", dir.display()))
}

/// `true` if `tool` runs here. On a laptop without it the caller skips, saying so; in CI
/// (`CI` set) a missing tool is a failure, never a silent skip.
pub fn tool_available(tool: &str, install: &str) -> bool {
    let found = Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("CI").is_err(),
            "{tool} is required in CI (.ci/run installs {install})"
        );
        eprintln!("SKIPPED: {tool} is not installed (apt-get install {install})");
    }
    found
}

/// How many commits a repository's `main` has.
pub fn commit_count(repository: &Path) -> usize {
    sh(Command::new("git")
        .current_dir(repository)
        .args(["rev-list", "--count", "main"]))
    .trim()
    .parse()
    .unwrap()
}

/// The sample DIRAC repository (at `dirac/` in the returned folder), made by the fixture
/// script the README documents.
pub fn dirac_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    sh(Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/make-dirac-repo.sh"))
        .arg(dir.path().join("dirac")));
    dir
}

/// `len` incompressible bytes, the same every run (xorshift64).
pub fn noise(len: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Adds `file` with `content` to the repository at `dir` and moves `tag` onto the new commit.
pub fn commit_file_and_retag(dir: &Path, file: &str, content: &[u8], tag: &str) {
    std::fs::write(dir.join(file), content).unwrap();
    sh(Command::new("git").current_dir(dir).args(["add", file]));
    sh(Command::new("git").current_dir(dir).args([
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@e",
        "commit",
        "-qm",
        file,
    ]));
    sh(Command::new("git")
        .current_dir(dir)
        .args(["tag", "-f", tag]));
}

/// A bare repository under `dir` whose `main` holds one commit with these files, as a
/// deployment repository starts out.
pub fn bare_repository(dir: &Path, files: &[(&str, &str)]) -> PathBuf {
    let seed = dir.join("seed");
    for (path, content) in files {
        let path = seed.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    let git = |args: &[&str]| {
        sh(Command::new("git")
            .current_dir(&seed)
            .args(["-c", "user.name=t", "-c", "user.email=t@e"])
            .args(args))
    };
    git(&["init", "-q", "-b", "main"]);
    git(&["add", "-A"]);
    git(&["commit", "-qm", "seed"]);
    let bare = dir.join("deployment.git");
    sh(Command::new("git")
        .args(["clone", "-q", "--bare"])
        .arg(&seed)
        .arg(&bare));
    bare
}

/// Polls `done` until it holds, failing the test after two minutes.
pub fn wait_for(mut done: impl FnMut() -> bool, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
}

/// A service for the Swarm tests: busybox's `sh`, `sleep` and `echo` under `bin/`, a spec
/// that builds its image into `repository` and records it in `deploy_repo` (`swarm/stack.yml`,
/// service `web`) with `deploy_extra` lines added to the environment, and one tagged commit per
/// `(tag, run.sh)`.
pub fn swarm_app(
    repository: &str,
    deploy_repo: &str,
    deploy_extra: &str,
    releases: &[(&str, &str)],
) -> Repo {
    let app = Repo::new();
    std::fs::create_dir_all(app.path().join("bin")).unwrap();
    std::fs::copy("/bin/busybox", app.path().join("bin/busybox")).unwrap();
    for tool in ["sh", "sleep", "echo"] {
        app.symlink(&format!("bin/{tool}"), "busybox");
    }
    app.write(
        "tagpilot.yaml",
        format!(
            r#"name: app
image:
  repository: {repository}
  install_path: /
  entrypoint: ["/bin/sh", "/run.sh"]
  tags: ["{{version}}"]
deploy:
  - environment: staging
    automatic: true
    repo: {deploy_repo}
    files: [{{ file: swarm/stack.yml }}]
    author: {{ name: Release Bot, email: bot@example.org }}
{deploy_extra}"#
        ),
    );
    for (tag, script) in releases {
        app.write("run.sh", script).commit(tag).tag(tag);
    }
    app
}

/// The image a release record pushed, as deploys write it: `registry/repo:VERSION@sha256:…`.
pub fn pinned_from_record(record: &serde_json::Value) -> String {
    let reference = record["pushed"]["reference"].as_str().unwrap();
    let (repository, digest) = reference.split_once('@').unwrap();
    format!(
        "{repository}:{}@{digest}",
        record["version"].as_str().unwrap()
    )
}

/// Lower-case hex SHA-256 of `bytes`, as digests and checksums write it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Runs the `deploy --output json` commands at once, as racing CI jobs, and checks what the
/// GitOps guarantee promises: every one ends well (committed, or superseded by a newer one),
/// every landed commit is on `main` of `bare`, and the history stays linear. `what` names the
/// case in failures.
pub fn race_deploys(what: &str, commands: Vec<Command>, bare: &Path) {
    let children: Vec<_> = commands
        .into_iter()
        .map(|mut cmd| {
            cmd.stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut committed = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{what}: a racing deploy failed: {stderr}"
        );
        let result =
            serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["result"].clone();
        match result["status"].as_str().unwrap() {
            "committed" => committed.push(result["commit"].as_str().unwrap().to_string()),
            "superseded" => {}
            other => panic!("{what}: unexpected {other}: {result}"),
        }
    }
    assert!(!committed.is_empty(), "{what}");
    let git = |args: &[&str]| sh(Command::new("git").current_dir(bare).args(args));
    let history = git(&["rev-list", "main"]);
    for commit in &committed {
        assert!(
            history.contains(commit.as_str()),
            "{what}: a landed commit was lost: {commit}"
        );
    }
    assert_eq!(
        git(&["rev-list", "--merges", "main"]),
        "",
        "{what}: linear history"
    );
}

/// The static binaries of `packaging/build-static.sh`.
pub struct StaticBuild {
    pub tagpilot: PathBuf,
    pub supervisor: PathBuf,
}

/// `packaging/build-static.sh` into `out`, in its own target folder (it is another build,
/// shared by every test that needs it; cargo's lock makes them wait for one another).
pub fn static_build(out: &Path) -> StaticBuild {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cmd = Command::new("bash");
    cmd.arg(root.join("packaging/build-static.sh"))
        .arg(out)
        .env("CARGO_TARGET_DIR", root.join("target/static"))
        .env_remove("RUSTFLAGS");
    run(&mut cmd).ok();
    StaticBuild {
        tagpilot: out.join("tagpilot"),
        supervisor: out.join("tagpilot-supervisor"),
    }
}

/// A base with a shell: busybox at the root with `tools` linked to it, built and pushed by
/// tagpilot itself as `REGISTRY/base/busybox:base`, which it returns.
pub fn busybox_base(registry: &registry::Registry, tools: &[&str]) -> String {
    let base = Repo::new();
    std::fs::create_dir_all(base.path().join("bin")).unwrap();
    std::fs::copy("/bin/busybox", base.path().join("bin/busybox")).unwrap();
    for tool in tools {
        base.symlink(&format!("bin/{tool}"), "busybox");
    }
    base.write(
        "tagpilot.yaml",
        format!("name: busybox\nimage:\n  repository: {}/base/busybox\n  install_path: /\n  tags: [\"base\"]\n", registry.host()),
    );
    base.commit("busybox").tag("v1.0.0");
    run(tagpilot(base.path())
        .args(["image", "--tag", "v1.0.0", "--out"])
        .arg(base.path().join("out")))
    .ok();
    format!("{}/base/busybox:base", registry.host())
}

/// An app repository (untagged) whose `tagpilot.yaml` is `spec`, with the static supervisor
/// at `dist/tagpilot-supervisor` in its workspace, as a build job would leave it (ignored by
/// git, with `out/` and `tagpilot-out/`). Specs name it with
/// `binaries: { linux/amd64: dist/tagpilot-supervisor }`.
pub fn supervised_app(supervisor: &Path, spec: &str) -> Repo {
    let app = Repo::new();
    std::fs::create_dir_all(app.path().join("dist")).unwrap();
    std::fs::copy(supervisor, app.path().join("dist/tagpilot-supervisor")).unwrap();
    app.write(".gitignore", "dist/\nout/\ntagpilot-out/\n")
        .write("tagpilot.yaml", spec);
    app
}
