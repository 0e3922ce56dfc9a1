//! `tagpilot deploy` on deployment files as teams write them, in real deployment repositories:
//! Helm values (tags alone, pinned tags, the registry apart), kustomizations found by file
//! name, and the guard that an older release never overwrites a newer one in any of them,
//! also with eight releases racing.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::Value;

const REPO: &str = "registry.example.org/lhcb/dirac";
const DIGEST: &str = "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";

fn image(version: &str) -> String {
    format!("{REPO}:{version}@{DIGEST}")
}

/// A style of deployment file: where it lives, what it holds at first, and the spec's
/// `files` entry for it.
struct Style {
    name: &'static str,
    path: &'static str,
    content: &'static str,
    entry: &'static str,
}

const HELM: Style = Style {
    name: "Helm values",
    path: "charts/dirac/values.yaml",
    content: "image:\n  repository: registry.example.org/lhcb/dirac\n  tag: VERSION\n  pullPolicy: IfNotPresent\n",
    entry: "{ file: charts/dirac/values.yaml, kind: helm, tag: image.tag, repository: image.repository }",
};

const HELM_APART: Style = Style {
    name: "Helm values with the registry apart",
    path: "values.yaml",
    content: "image:\n  registry: registry.example.org\n  repository: lhcb/dirac\n  tag: \"VERSION\"\n",
    entry: "{ file: values.yaml, kind: helm, tag: image.tag, registry: image.registry, repository: image.repository }",
};

const KUSTOMIZATION: Style = Style {
    name: "a kustomization without kind:",
    path: "overlays/prod/kustomization.yaml",
    content: "resources:\n- ../../base\nimages:\n- name: registry.example.org/lhcb/dirac\n  newTag: VERSION\n",
    entry: "{ file: overlays/prod/kustomization.yaml }",
};

const KUSTOMIZATION_PINNED: Style = Style {
    name: "a kustomization with a pinned newTag",
    path: "kustomization.yml",
    content: "images:\n- name: registry.example.org/lhcb/dirac\n  newTag: VERSION@sha256:1111111111111111111111111111111111111111111111111111111111111111\n",
    entry: "{ file: kustomization.yml }",
};

const COMPOSE_DEFAULT: Style = Style {
    name: "a Compose image with a variable and a default",
    path: "docker-compose.yml",
    content: "services:\n  filecatalog:\n    image: ${DIRAC_IMAGE:-registry.example.org/lhcb/dirac:VERSION}\n",
    entry: "{ file: docker-compose.yml }",
};

const SHORTHAND: Style = Style {
    name: "a files: entry written as a path alone",
    path: "k8s/app.yaml",
    content: "spec:\n  image: registry.example.org/lhcb/dirac:VERSION\n",
    entry: "k8s/app.yaml",
};

/// The DIRAC sample with release tags `v8r3p1`..`v8r3p8`, a deployment repository holding
/// the style's file at `version`, and a spec for it.
fn setup(style: &Style, version: &str) -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
    let work = dirac_repo();
    let repo = work.path().join("dirac");
    for n in 1..=8 {
        sh(Command::new("git")
            .current_dir(&repo)
            .args(["tag", &format!("v8r3p{n}")]));
    }
    let content = style.content.replace("VERSION", version);
    let bare = bare_repository(work.path(), &[(style.path, &content)]);
    let spec = work.path().join("deploy.yaml");
    std::fs::write(
        &spec,
        format!(
            "name: DIRAC\ndeploy:\n  - environment: staging\n    repo: file://{}\n    files:\n      - {}\n",
            bare.display(),
            style.entry
        ),
    )
    .unwrap();
    (work, repo, bare, spec)
}

fn deploy(repo: &Path, spec: &Path, tag: &str, version: &str) -> Command {
    let mut cmd = tagpilot(repo);
    cmd.args([
        "deploy", "--output", "json", "--env", "staging", "--tag", tag,
    ])
    .args(["--image", &image(version), "--pipeline"])
    .arg(spec);
    cmd
}

fn on_main(bare: &Path, path: &str) -> String {
    sh(Command::new("git")
        .current_dir(bare)
        .args(["show", &format!("main:{path}")]))
}

fn result(run: &Run) -> Value {
    serde_json::from_str::<Value>(&run.stdout).unwrap()["result"].clone()
}

#[test]
fn each_style_gets_exactly_the_new_version() {
    for (style, expected) in [
        (&HELM, "image:\n  repository: registry.example.org/lhcb/dirac\n  tag: 8.3.1\n  pullPolicy: IfNotPresent\n".to_string()),
        (&HELM_APART, "image:\n  registry: registry.example.org\n  repository: lhcb/dirac\n  tag: \"8.3.1\"\n".to_string()),
        // Pinned: the digest goes into a `digest:` of its own, as `kustomize edit set image` does.
        (&KUSTOMIZATION, format!("resources:\n- ../../base\nimages:\n- name: registry.example.org/lhcb/dirac\n  newTag: 8.3.1\n  digest: {DIGEST}\n")),
        (&KUSTOMIZATION_PINNED, format!("images:\n- name: registry.example.org/lhcb/dirac\n  newTag: 8.3.1@{DIGEST}\n")),
        (&SHORTHAND, format!("spec:\n  image: {}\n", image("8.3.1"))),
        (&COMPOSE_DEFAULT, format!("services:\n  filecatalog:\n    image: ${{DIRAC_IMAGE:-{}}}\n", image("8.3.1"))),
    ] {
        let (_work, repo, bare, spec) = setup(style, "8.2.40");
        let done = run(&mut deploy(&repo, &spec, "v8r3p1", "8.3.1")).ok();
        assert_eq!(result(&done)["status"], "committed", "{}", style.name);
        assert_eq!(on_main(&bare, style.path), expected, "{}", style.name);
    }
}

#[test]
fn an_older_release_never_overwrites_a_newer_one_in_any_style() {
    for style in [
        &HELM,
        &HELM_APART,
        &KUSTOMIZATION,
        &KUSTOMIZATION_PINNED,
        &COMPOSE_DEFAULT,
    ] {
        // The file already names 8.4.0 (a bare version, not an image reference).
        let (_work, repo, bare, spec) = setup(style, "8.4.0");
        let before = on_main(&bare, style.path);
        let older = run(&mut deploy(&repo, &spec, "v8r3p1", "8.3.1")).ok();
        assert_eq!(
            result(&older)["status"],
            "superseded",
            "{}: {}",
            style.name,
            older.stdout
        );
        assert_eq!(result(&older)["by"], "8.4.0", "{}", style.name);
        assert_eq!(
            on_main(&bare, style.path),
            before,
            "{}: changed",
            style.name
        );
    }
}

#[test]
fn eight_releases_racing_in_helm_values_and_kustomizations() {
    for style in [&HELM, &KUSTOMIZATION] {
        let (_work, repo, bare, spec) = setup(style, "8.2.40");
        let commands = (1..=8)
            .map(|n| deploy(&repo, &spec, &format!("v8r3p{n}"), &format!("8.3.{n}")))
            .collect();
        race_deploys(style.name, commands, &bare);
        let file = on_main(&bare, style.path);
        assert!(
            file.contains("8.3.8"),
            "{}: the highest wins:\n{file}",
            style.name
        );
        for n in 1..=7 {
            assert!(
                !file.contains(&format!("8.3.{n}")),
                "{}:\n{file}",
                style.name
            );
        }
    }
}

#[test]
fn a_file_naming_other_images_says_which_and_how_to_select_ours() {
    let style = Style {
        name: "a Deployment of other images",
        path: "k8s/app.yaml",
        content: "spec:\n  containers:\n    - name: web\n      image: nginx:1.27\n    - name: dirac\n      image: registry.example.org/lhcb/dirac-legacy:VERSION\n",
        entry: "{ file: k8s/app.yaml }",
    };
    let (_work, repo, _bare, spec) = setup(&style, "8.2.40");
    let refused = run(&mut deploy(&repo, &spec, "v8r3p1", "8.3.1")).fails_with(
        2,
        "k8s/app.yaml names no image of registry.example.org/lhcb/dirac",
    );
    assert!(
        refused.stderr.contains(
            "it names nginx:1.27 (line 4), registry.example.org/lhcb/dirac-legacy:8.2.40 (line 6)"
        ),
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains("hint: "), "{}", refused.stderr);
}

/// Commits `path` with `content` in the deployment repository `bare` as `author`, by hand.
fn hand_edit(work: &Path, bare: &Path, path: &str, content: &str, author: &str) {
    let clone = work.join(format!("hand-{}", author.replace(' ', "-")));
    sh(Command::new("git")
        .args(["clone", "-q"])
        .arg(bare)
        .arg(&clone));
    std::fs::write(clone.join(path), content).unwrap();
    let git = |args: &[&str]| {
        sh(Command::new("git")
            .current_dir(&clone)
            .args([
                "-c",
                &format!("user.name={author}"),
                "-c",
                "user.email=ops@example.org",
            ])
            .args(args))
    };
    git(&["commit", "-qam", "bump by hand"]);
    git(&["push", "-q", "origin", "HEAD:main"]);
}

#[test]
fn an_adopted_repository_keeps_what_ran_before_tagpilot_and_hand_edits() {
    if !common::registry::available() {
        return;
    }
    let registry = common::registry::Registry::start(false);
    let work = dirac_repo();
    let repo = work.path().join("dirac");
    // The image that ran before tagpilot, really in the registry.
    let spec = work.path().join("image.yaml");
    std::fs::write(
        &spec,
        format!(
            "name: DIRAC\nimage: {{ repository: {}/lhcb/dirac, install_path: /opt/dirac }}\n",
            registry.host()
        ),
    )
    .unwrap();
    let pushed = run(tagpilot(&repo)
        .args([
            "image",
            "--output",
            "json",
            "--tag",
            "v8r2p43",
            "--pipeline",
        ])
        .arg(&spec)
        .arg("--out")
        .arg(work.path().join("out")))
    .ok();
    let before = pinned_from_record(&serde_json::from_str(&pushed.stdout).unwrap());
    let bare = bare_repository(
        work.path(),
        &[("k8s/app.yaml", &format!("spec:\n  image: {before}\n"))],
    );
    let deploy_spec = work.path().join("deploy.yaml");
    std::fs::write(
        &deploy_spec,
        format!(
            "{}deploy:\n  - environment: staging\n    repo: file://{}\n    files: [{{ file: k8s/app.yaml }}]\n",
            std::fs::read_to_string(&spec).unwrap(),
            bare.display()
        ),
    )
    .unwrap();
    let repository = format!("{}/lhcb/dirac", registry.host());
    let release = format!("{repository}:8.2.44@{DIGEST}");
    run(tagpilot(&repo)
        .args([
            "deploy",
            "--env",
            "staging",
            "--tag",
            "v8r2p44",
            "--image",
            &release,
            "--pipeline",
        ])
        .arg(&deploy_spec))
    .ok();
    let history = |spec: &Path| -> Vec<Value> {
        let out = run(tagpilot(&repo)
            .args([
                "history",
                "--env",
                "staging",
                "--output",
                "json",
                "--pipeline",
            ])
            .arg(spec))
        .ok();
        serde_json::from_str(&out.stdout).unwrap()
    };
    let entries = history(&deploy_spec);
    let origins: Vec<&str> = entries
        .iter()
        .map(|e| e["origin"].as_str().unwrap())
        .collect();
    assert_eq!(origins, ["tagpilot", "before_tagpilot"], "{entries:?}");
    assert_eq!(entries[1]["image"], before.as_str());
    assert_eq!(entries[1]["version"], "8.2.43");
    assert_eq!(entries[1]["author"], "t <t@e>");

    // Rollback goes back to what ran before tagpilot, exactly as to any deploy.
    let back = run(tagpilot(&repo)
        .args([
            "rollback",
            "--env",
            "staging",
            "--output",
            "json",
            "--pipeline",
        ])
        .arg(&deploy_spec))
    .ok();
    let back: Value = serde_json::from_str(&back.stdout).unwrap();
    assert_eq!(back["result"]["status"], "committed", "{back}");
    assert_eq!(
        on_main(&bare, "k8s/app.yaml"),
        format!("spec:\n  image: {before}\n")
    );

    // A hand edit after tagpilot's commits is a deploy too, with its author.
    let hand = format!("{repository}:8.2.45");
    hand_edit(
        work.path(),
        &bare,
        "k8s/app.yaml",
        &format!("spec:\n  image: {hand}\n"),
        "Jane Ops",
    );
    let entries = history(&deploy_spec);
    assert_eq!(entries[0]["origin"], "hand_edit", "{entries:?}");
    assert_eq!(entries[0]["image"], hand.as_str());
    assert_eq!(entries[0]["author"], "Jane Ops <ops@example.org>");
}

#[test]
fn a_full_files_entry_with_a_typo_is_still_named_with_its_line() {
    let work = tempfile::tempdir().unwrap();
    let repo = Repo::new();
    repo.write("app.py", "print(1)\n").commit("app");
    let spec = work.path().join("deploy.yaml");
    std::fs::write(
        &spec,
        "name: app\ndeploy:\n  - environment: staging\n    repo: file:///srv/deploy.git\n    files:\n      - k8s/app.yaml\n      - { fiel: values.yaml }\n",
    )
    .unwrap();
    let refused = run(tagpilot(repo.path())
        .args(["validate", "--pipeline"])
        .arg(&spec))
    .fails_with(2, "unknown field `fiel`");
    assert!(
        refused.stderr.contains("deploy.yaml:7:"),
        "{}",
        refused.stderr
    );
}
