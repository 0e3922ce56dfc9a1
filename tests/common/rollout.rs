//! A source repository and a deployment repository for rollout tests: `tagpilot deploy` of
//! v1.0.0 (image `fakes::image("1.0.0")`) to `staging`, with the `orchestrator:` block a test
//! gives, and what the deployment repository records afterwards.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use super::fakes::image;
use super::{bare_repository, sh, tagpilot, Repo, Run};

pub struct Setup {
    pub work: tempfile::TempDir,
    pub repo: Repo,
    pub bare: PathBuf,
}

impl Setup {
    /// A source repository tagged v1.0.0 whose spec deploys `staging` to a bare deployment
    /// repository that names 0.9.0, rolling out with this `orchestrator:` block.
    pub fn new(orchestrator: &str) -> Setup {
        let work = tempfile::tempdir().unwrap();
        let file = format!("# staging\napp:\n  image: {}\n", image("0.9.0"));
        let bare = bare_repository(work.path(), &[("app.yaml", &file)]);
        let repo = Repo::new();
        repo.write(
            "tagpilot.yaml",
            format!(
                "name: app\ndeploy:\n  - environment: staging\n    repo: file://{}\n    files: [{{ file: app.yaml }}]\n    author: {{ name: Bot, email: bot@example.org }}\n    orchestrator:\n{}",
                bare.display(),
                indent(orchestrator)
            ),
        )
        .commit("app")
        .tag("v1.0.0");
        Setup { work, repo, bare }
    }

    pub fn deploy(&self) -> Command {
        let mut cmd = tagpilot(self.repo.path());
        cmd.args([
            "deploy", "--output", "json", "--env", "staging", "--tag", "v1.0.0",
        ])
        .args(["--image", &image("1.0.0")]);
        cmd
    }

    pub fn recorded(&self) -> String {
        sh(Command::new("git")
            .current_dir(&self.bare)
            .args(["show", "main:app.yaml"]))
    }

    pub fn log(&self) -> String {
        sh(Command::new("git")
            .current_dir(&self.bare)
            .args(["log", "--format=%s", "main"]))
    }
}

fn indent(block: &str) -> String {
    block.lines().map(|l| format!("      {l}\n")).collect()
}

pub fn json(run: &Run) -> Value {
    serde_json::from_str(&run.stdout).unwrap_or(Value::Null)
}
