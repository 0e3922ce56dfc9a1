//! Dry runs and plans. A dry run reports every problem a release would run into at once.
//! `release --dry-run --plan-out` and `release --plan`: the plan is applied exactly (same
//! digests, same diff), and refused with nothing changed when the deployment repository moved,
//! when the plan was edited, when it is for another tag, or when its tag now names another
//! commit. Real registry, real bare deployment repository.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::registry::{self, Registry};
use common::*;
use serde_json::Value;

struct Setup {
    registry: Registry,
    repo: Repo,
    bare: PathBuf,
    _work: tempfile::TempDir,
}

fn setup() -> Option<Setup> {
    if !registry::available() || !tool_available("skopeo", "skopeo") {
        return None;
    }
    let registry = Registry::start(false);
    let work = tempfile::tempdir().unwrap();
    let repository = format!("{}/group/app", registry.host());
    let bare = bare_repository(
        work.path(),
        &[("app.yaml", &format!("image: {repository}:0.9.0\n"))],
    );
    let repo = Repo::new();
    repo.write(
        "tagpilot.yaml",
        format!(
            "name: app\nimage: {{ repository: {repository}, install_path: /srv/app }}\ndeploy:\n  - environment: staging\n    automatic: true\n    repo: file://{}\n    files: [{{ file: app.yaml }}]\n",
            bare.display()
        ),
    )
    .write("app.txt", "one\n")
    .commit("One")
    .tag("v1.0.0");
    Some(Setup {
        registry,
        repo,
        bare,
        _work: work,
    })
}

impl Setup {
    fn plan(&self) -> PathBuf {
        let plan = self.repo.path().join("plan.json");
        run(tagpilot(self.repo.path())
            .args(["release", "--dry-run", "--tag", "v1.0.0", "--plan-out"])
            .arg(&plan))
        .ok();
        plan
    }

    fn apply(&self, plan: &Path) -> Command {
        let mut cmd = tagpilot(self.repo.path());
        cmd.args(["release", "--output", "json", "--plan"])
            .arg(plan);
        cmd
    }

    fn deployed(&self) -> String {
        sh(Command::new("git")
            .current_dir(&self.bare)
            .args(["show", "main:app.yaml"]))
    }

    fn registry_has_release(&self) -> bool {
        Command::new("skopeo")
            .args(["inspect", "--tls-verify=false"])
            .arg(format!("docker://{}/group/app:1.0.0", self.registry.host()))
            .output()
            .unwrap()
            .status
            .success()
    }

    /// Someone else records another image in the deployment repository.
    fn someone_deploys(&self, text: &str) {
        let clone = self._work.path().join("other");
        sh(Command::new("git")
            .arg("clone")
            .arg("-q")
            .arg(&self.bare)
            .arg(&clone));
        std::fs::write(clone.join("app.yaml"), text).unwrap();
        let git = |args: &[&str]| {
            sh(Command::new("git")
                .current_dir(&clone)
                .args(["-c", "user.name=o", "-c", "user.email=o@e"])
                .args(args))
        };
        git(&["commit", "-qam", "hotfix"]);
        git(&["push", "-q", "origin", "main"]);
    }
}

#[test]
fn a_plan_is_applied_exactly() {
    let Some(setup) = setup() else {
        return;
    };
    let plan_path = setup.plan();
    let plan = read_json(&plan_path);
    assert_eq!(plan["tag"], "v1.0.0");
    let digest = plan["image"]["digest"].as_str().unwrap().to_string();
    let diff = plan["deploy"][0]["result"]["diff"].as_str().unwrap();
    assert!(
        diff.contains("-image: ")
            && diff.contains(&format!(
                "+image: {}/group/app:1.0.0@{digest}",
                setup.registry.host()
            )),
        "{diff}"
    );
    assert!(!setup.registry_has_release(), "a dry run pushes nothing");

    let applied = run(&mut setup.apply(&plan_path)).ok();
    assert!(
        applied.stderr.contains("The plan holds"),
        "{}",
        applied.stderr
    );
    let record: Value = serde_json::from_str(&applied.stdout).unwrap();
    assert_eq!(record["image"]["digest"], digest.as_str());
    assert!(record["pushed"]["reference"]
        .as_str()
        .unwrap()
        .ends_with(&digest));
    assert_eq!(
        setup.deployed(),
        format!(
            "image: {}/group/app:1.0.0@{digest}\n",
            setup.registry.host()
        )
    );
    assert!(setup.registry_has_release());
}

#[test]
fn a_plan_is_refused_when_the_world_changed() {
    let Some(setup) = setup() else {
        return;
    };
    let plan = setup.plan();
    let repository = format!("{}/group/app", setup.registry.host());
    setup.someone_deploys(&format!("image: {repository}:0.9.1\n"));
    let refused = run(&mut setup.apply(&plan)).fails_with(
        2,
        "the world changed since the plan was made; nothing was done",
    );
    assert!(
        refused
            .stderr
            .contains("the deployment repository of staging changed"),
        "{}",
        refused.stderr
    );
    assert!(!setup.registry_has_release(), "nothing was pushed");
    assert_eq!(setup.deployed(), format!("image: {repository}:0.9.1\n"));
}

#[test]
fn an_edited_plan_another_tag_and_a_moved_tag_are_refused() {
    let Some(setup) = setup() else {
        return;
    };
    let plan = setup.plan();
    let text = std::fs::read_to_string(&plan).unwrap();

    let edited = setup.repo.path().join("edited.json");
    std::fs::write(&edited, text.replacen("\"v1.0.0\"", "\"v1.0.1\"", 1)).unwrap();
    run(&mut setup.apply(&edited)).fails_with(2, "was changed after it was made");

    run(setup.apply(&plan).env("CI_COMMIT_TAG", "v2.0.0")).fails_with(
        2,
        "the plan is for tag v1.0.0, but this job releases v2.0.0",
    );

    setup.repo.write("app.txt", "two\n").commit("Two");
    sh(Command::new("git")
        .current_dir(setup.repo.path())
        .args(["tag", "-f", "v1.0.0"]));
    run(&mut setup.apply(&plan)).fails_with(2, "tag v1.0.0 now names commit");
    assert!(!setup.registry_has_release());
    assert!(setup.deployed().contains(":0.9.0"));
}

#[test]
fn a_dry_run_reports_every_problem_at_once() {
    let Some(setup) = setup() else {
        return;
    };
    run(tagpilot(setup.repo.path()).args(["release", "--tag", "v1.0.0"])).ok();
    // The tag moves: its build now gives other bytes than the registry's 1.0.0.
    setup.repo.write("app.txt", "changed\n").commit("Changed");
    sh(Command::new("git")
        .current_dir(setup.repo.path())
        .args(["tag", "-f", "v1.0.0"]));
    let spec = setup._work.path().join("broken.yaml");
    std::fs::write(
        &spec,
        format!(
            "name: app\nimage: {{ repository: {}/group/app, install_path: /srv/app }}\ndeploy:\n  - environment: staging\n    automatic: true\n    repo: file://{}\n    files: [{{ file: missing.yaml }}]\n  - environment: production\n    automatic: true\n    repo: file:///nonexistent/deploy.git\n    files: [{{ file: app.yaml }}]\n",
            setup.registry.host(),
            setup.bare.display()
        ),
    )
    .unwrap();
    let dry = run(tagpilot(setup.repo.path())
        .args(["release", "--dry-run", "--tag", "v1.0.0", "--pipeline"])
        .arg(&spec))
    .fails_with(2, "the dry run found 3 problem(s)");
    for needle in [
        "push: ",
        "1.0.0 already names other bytes",
        "deploy staging: missing.yaml is not in",
        "deploy production: ",
        "/nonexistent/deploy.git",
    ] {
        assert!(dry.stderr.contains(needle), "{needle}: {}", dry.stderr);
    }
    let record = read_json(&setup.repo.path().join("tagpilot-out/release.json"));
    assert_eq!(record["dry_run"], true);
}
