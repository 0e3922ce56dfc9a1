//! The GitLab CI template in `pipelines/gitlab-ci/` run the way a runner would: every job's
//! `script:` lines (after `extends:`) in bash, in a fresh clone at the tag, with the artifacts
//! and dotenv reports of the jobs it `needs:`, and GitLab's variables. The services are real
//! where they can be (the registry, the deployment repository) and the GitLab fake for the
//! API. Two tag pipelines run (v1, v2), then the manual rollback job.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::fakes::gitlab::FakeGitLab;
use common::registry::{self, Registry};
use common::*;
use serde_json::{Map, Value};

const TEMPLATE: &str = "pipelines/gitlab-ci/tagpilot.gitlab-ci.yml";
const JOB_TOKEN: &str = "job-token-s3cret";

/// A job with its `extends:` merged in.
struct Job {
    name: String,
    stage: String,
    script: Vec<String>,
    needs: Vec<String>,
    artifacts: Vec<String>,
    dotenv: Option<String>,
    environment: Option<String>,
    manual: bool,
    resource_group: Option<String>,
    rules: String,
}

fn template() -> Value {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(TEMPLATE)).unwrap();
    serde_saphyr::from_str(&text).unwrap()
}

/// `extends:` merged the way GitLab does: maps deeply, anything else replaced by the child.
fn resolved(template: &Map<String, Value>, name: &str) -> Value {
    let job = &template[name];
    let mut merged = match job.get("extends").and_then(Value::as_str) {
        Some(parent) => resolved(template, parent),
        None => Value::Object(Map::new()),
    };
    merge(&mut merged, job);
    merged
}

fn merge(into: &mut Value, from: &Value) {
    match (into, from) {
        (Value::Object(into), Value::Object(from)) => {
            for (key, value) in from {
                merge(into.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
        (into, from) => *into = from.clone(),
    }
}

fn jobs() -> Vec<Job> {
    let template = template();
    let template = template.as_object().unwrap();
    let stages: Vec<&str> = template["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    let mut jobs: Vec<Job> = template
        .keys()
        .filter(|k| {
            !k.starts_with('.') && !["stages", "variables", "include"].contains(&k.as_str())
        })
        .map(|name| {
            let job = resolved(template, name);
            Job {
                name: name.clone(),
                stage: job["stage"].as_str().unwrap().to_string(),
                script: strings(&job["script"]),
                needs: strings(&job["needs"]),
                artifacts: strings(&job["artifacts"]["paths"]),
                dotenv: job["artifacts"]["reports"]["dotenv"]
                    .as_str()
                    .map(str::to_string),
                environment: job["environment"]["name"].as_str().map(str::to_string),
                manual: job["rules"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|r| r["when"] == "manual"),
                resource_group: job["resource_group"].as_str().map(str::to_string),
                rules: job["rules"].to_string(),
            }
        })
        .collect();
    // GitLab runs the jobs of one stage side by side; here they run in name order.
    jobs.sort_by_key(|j| stages.iter().position(|s| *s == j.stage).unwrap());
    jobs
}

#[test]
fn the_template_is_a_tag_pipeline_with_guarded_environments() {
    let jobs = jobs();
    let names: Vec<&str> = jobs.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "tagpilot-build",
            "tagpilot-publish",
            "tagpilot-deploy-production",
            "tagpilot-deploy-staging",
            "tagpilot-rollback-production"
        ]
    );
    for job in &jobs {
        assert!(
            job.rules.contains("$CI_COMMIT_TAG"),
            "{}: tag pipelines only",
            job.name
        );
        assert!(!job.script.is_empty(), "{}", job.name);
        if job.environment.is_some() {
            assert!(job.resource_group.is_some(), "{} is serialised", job.name);
        }
    }
    let manual: Vec<&str> = jobs
        .iter()
        .filter(|j| j.manual)
        .map(|j| j.name.as_str())
        .collect();
    assert_eq!(
        manual,
        ["tagpilot-deploy-production", "tagpilot-rollback-production"]
    );
}

struct Pipeline {
    registry: Registry,
    gitlab: FakeGitLab,
    source: Repo,
    bare: PathBuf,
    work: tempfile::TempDir,
}

impl Pipeline {
    /// Runs one job for `tag` as a runner would; returns the folder with what GitLab keeps
    /// of it for later jobs (its artifacts and dotenv report).
    fn run_job(
        &self,
        job: &Job,
        tag: &str,
        handed: &BTreeMap<String, PathBuf>,
        extra: &[(&str, &str)],
    ) -> PathBuf {
        // A fresh clone per job run, as a runner makes.
        let dir = tempfile::Builder::new()
            .prefix(&format!("{tag}-{}-", job.name))
            .tempdir_in(self.work.path())
            .unwrap()
            .keep();
        std::fs::remove_dir(&dir).unwrap();
        sh(Command::new("git")
            .args(["clone", "-q", "--branch", tag])
            .arg(self.source.path())
            .arg(&dir));
        let mut dotenv = Vec::new();
        for need in &job.needs {
            let from = &handed[need];
            // The needed job's artifacts, and its dotenv report as variables.
            sh(Command::new("cp")
                .args(["-a", "--"])
                .arg(from.join("artifacts/."))
                .arg(&dir));
            if let Ok(text) = std::fs::read_to_string(from.join("dotenv")) {
                dotenv.extend(
                    text.lines()
                        .filter_map(|l| l.split_once('='))
                        .map(|(k, v)| (k.to_string(), v.to_string())),
                );
            }
        }
        let bin = Path::new(env!("CARGO_BIN_EXE_tagpilot")).parent().unwrap();
        for line in &job.script {
            let mut cmd = Command::new("bash");
            with_clean_env(&mut cmd)
                .current_dir(&dir)
                .args(["-euo", "pipefail", "-c", line])
                .env(
                    "PATH",
                    format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
                )
                .env("GITLAB_CI", "true")
                .env("CI_COMMIT_TAG", tag)
                .env("CI_COMMIT_REF_NAME", tag)
                .env("CI_COMMIT_REF_PROTECTED", "true")
                .env("CI_API_V4_URL", self.gitlab.api_url())
                .env("CI_PROJECT_ID", "7")
                .env("CI_JOB_TOKEN", JOB_TOKEN)
                .env("GITLAB_USER_NAME", "Release Manager")
                .envs(dotenv.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .envs(extra.iter().copied());
            if let Some(environment) = &job.environment {
                cmd.env("CI_ENVIRONMENT_NAME", environment);
            }
            let done = run(&mut cmd);
            assert_eq!(
                done.code, 0,
                "{} `{line}` failed:\n{}\n{}",
                job.name, done.stdout, done.stderr
            );
        }
        // Keep what GitLab would keep for later jobs.
        let kept = dir.with_extension("kept");
        std::fs::create_dir_all(kept.join("artifacts")).unwrap();
        for pattern in &job.artifacts {
            sh(Command::new("bash").current_dir(&dir).args([
                "-c",
                &format!(
                    "cp -a --parents {pattern} {}",
                    kept.join("artifacts").display()
                ),
            ]));
        }
        if let Some(report) = &job.dotenv {
            std::fs::copy(dir.join(report), kept.join("dotenv")).unwrap();
        }
        kept
    }

    fn deployed(&self, environment: &str) -> String {
        sh(Command::new("git")
            .current_dir(&self.bare)
            .args(["show", &format!("main:{environment}/app.yaml")]))
    }
}

#[test]
fn every_script_line_runs_against_the_test_services() {
    if !registry::available() || !tool_available("skopeo", "skopeo") {
        return;
    }
    let registry = Registry::start(false);
    let gitlab = FakeGitLab::start("7", JOB_TOKEN);
    let work = tempfile::tempdir().unwrap();
    let repository = format!("{}/team/app", registry.host());
    let files = [
        ("staging/app.yaml", format!("image: {repository}:0.0.0\n")),
        (
            "production/app.yaml",
            format!("image: {repository}:0.0.0\n"),
        ),
    ];
    let bare = bare_repository(
        work.path(),
        &files
            .iter()
            .map(|(p, c)| (*p, c.as_str()))
            .collect::<Vec<_>>(),
    );
    let source = Repo::new();
    let mut spec = format!(
        "name: app\nimage:\n  repository: {repository}\n  install_path: /srv/app\n  tags: [\"{{version}}\"]\ndeploy:\n"
    );
    for environment in ["staging", "production"] {
        spec.push_str(&format!(
            "  - environment: {environment}\n    repo: file://{}\n    path: {environment}\n    files: [{{ file: app.yaml }}]\n",
            bare.display()
        ));
    }
    source.write("tagpilot.yaml", spec);
    for (tag, text) in [("v1.0.0", "one\n"), ("v2.0.0", "two\n")] {
        source
            .write("app.txt", text)
            .commit(&format!("Release {tag}"))
            .tag(tag);
    }
    let pipeline = Pipeline {
        registry,
        gitlab,
        source,
        bare,
        work,
    };
    let jobs = jobs();
    let (pipelines, rollback): (Vec<&Job>, Vec<&Job>) =
        jobs.iter().partition(|j| !j.name.contains("rollback"));

    for tag in ["v1.0.0", "v2.0.0"] {
        let mut handed = BTreeMap::new();
        for job in &pipelines {
            let kept = pipeline.run_job(job, tag, &handed, &[]);
            handed.insert(job.name.clone(), kept);
        }
        let version = &tag[1..];
        // The registry has the image, GitLab the release and its files, both environments it.
        let digest = sh(Command::new("skopeo").args([
            "inspect",
            "--tls-verify=false",
            "--format",
            "{{.Digest}}",
            &format!("docker://{repository}:{version}"),
        ]));
        let pinned = format!("image: {repository}:{version}@{}\n", digest.trim());
        assert_eq!(pipeline.deployed("staging"), pinned);
        assert_eq!(pipeline.deployed("production"), pinned);
        assert!(pipeline.gitlab.release(tag).is_some());
        assert_eq!(
            pipeline
                .gitlab
                .files("app", version, &format!("app-{version}.tar.gz"))
                .len(),
            1
        );
    }
    let v1 = sh(Command::new("git")
        .current_dir(&pipeline.bare)
        .args(["show", "main~2:production/app.yaml"]));
    assert!(v1.contains(":1.0.0@sha256:"), "{v1}");

    // The manual rollback job of the v2 pipeline puts production back on v1; staging stays.
    pipeline.run_job(rollback[0], "v2.0.0", &BTreeMap::new(), &[]);
    assert_eq!(pipeline.deployed("production"), v1);
    assert!(pipeline.deployed("staging").contains(":2.0.0@"));
    // With TAGPILOT_ROLLBACK_TO, to the version named.
    pipeline.run_job(
        rollback[0],
        "v2.0.0",
        &BTreeMap::new(),
        &[("TAGPILOT_ROLLBACK_TO", "2.0.0")],
    );
    assert!(pipeline.deployed("production").contains(":2.0.0@"));
    drop(pipeline.registry);
}
