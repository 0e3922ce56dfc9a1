//! The GitLab CI/CD component (`templates/tagpilot/template.yml`) and the `include:` template
//! built from it (`pipelines/gitlab-ci/tagpilot.gitlab-ci.yml`), run under gitlab-ci-local, an
//! independent implementation of GitLab CI (npm). The component is included the way a project
//! does (`include: component: $CI_SERVER_FQDN/tools/tagpilot/tagpilot@1.0.0`), fetched by
//! gitlab-ci-local with git from a real smart-HTTP server; the project keeps its own
//! `stages:`. The registry and the deployment repository are real, GitLab's API is the fake.
//! A tag pipeline runs twice (the re-run changes nothing), then the manual production deploy,
//! a second tag, and the rollback job.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::fakes::gitlab::FakeGitLab;
use common::git_http::GitHttp;
use common::registry::{self, Registry};
use common::*;
use serde_json::Value;

const COMPONENT: &str = "templates/tagpilot/template.yml";
const LEGACY: &str = "pipelines/gitlab-ci/tagpilot.gitlab-ci.yml";
const JOB_TOKEN: &str = "job-token-s3cret";

/// What the `include:` template says above the jobs it shares with the component.
const LEGACY_HEADER: &str = "\
# tagpilot's GitLab CI template, for `include: project:`. Generated from the CI/CD component
# templates/tagpilot/template.yml with its default inputs (TAGPILOT_BLESS=1 cargo test --test
# ci_component regenerates it); the component is the way in that takes inputs:
#
#   include:
#     - component: $CI_SERVER_FQDN/your-group/tagpilot/tagpilot@0.1
#
# This file:
#
#   include:
#     - project: your-group/tagpilot
#       file: pipelines/gitlab-ci/tagpilot.gitlab-ci.yml
#   variables:
#     TAGPILOT_CI_IMAGE: registry.example.org/tools/tagpilot:0.1   # optional: another job image
#
# Its jobs use GitLab's default stages `build` and `deploy`; a project whose own `stages:` lacks
# them uses the component and names its stages there.

";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The component's inputs and their defaults.
fn component_inputs() -> (Value, String) {
    let text = std::fs::read_to_string(root().join(COMPONENT)).unwrap();
    let (header, body) = text.split_once("\n---\n").expect("spec, ---, jobs");
    let spec: Value = serde_saphyr::from_str(header).unwrap();
    (spec["spec"]["inputs"].clone(), body.to_string())
}

/// The component with every input at its default, `image` as `$TAGPILOT_CI_IMAGE` (which
/// the file sets to the component's default, and a project's own `variables:` overrides).
fn legacy_from_component() -> String {
    let (inputs, mut jobs) = component_inputs();
    let mut image = String::new();
    for (name, input) in inputs.as_object().unwrap() {
        let default = input["default"]
            .as_str()
            .unwrap_or_else(|| panic!("input {name} has no default"));
        let value = if name == "image" {
            image = default.to_string();
            "$TAGPILOT_CI_IMAGE"
        } else {
            default
        };
        jobs = jobs.replace(&format!("$[[ inputs.{name} ]]"), value);
    }
    assert!(!jobs.contains("$[["), "every input is replaced");
    format!("{LEGACY_HEADER}variables:\n  TAGPILOT_CI_IMAGE: {image}\n\n{jobs}")
}

/// The default job image is the one tagpilot's own release of this version pushes: its
/// `tagpilot.yaml` tags the job image `{major}.{minor}` in `$CI_REGISTRY_IMAGE`, which on
/// gitlab.com is `registry.gitlab.com/tagpilot/tagpilot`.
#[test]
fn the_default_job_image_is_this_versions() {
    let (inputs, _) = component_inputs();
    let version: Vec<&str> = env!("CARGO_PKG_VERSION").split('.').collect();
    assert_eq!(
        inputs["image"]["default"],
        format!(
            "registry.gitlab.com/tagpilot/tagpilot:{}.{}",
            version[0], version[1]
        )
    );
    let spec = std::fs::read_to_string(root().join("tagpilot.yaml")).unwrap();
    assert!(
        spec.contains(r#"tags: ["{version}", "{major}.{minor}"]"#),
        "{spec}"
    );
}

#[test]
fn the_include_template_is_the_component_with_its_defaults() {
    let wanted = legacy_from_component();
    let path = root().join(LEGACY);
    if std::env::var_os("TAGPILOT_BLESS").is_some() {
        std::fs::write(&path, &wanted).unwrap();
    }
    let actual = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        actual, wanted,
        "{LEGACY} is out of date: TAGPILOT_BLESS=1 cargo test --test ci_component"
    );
}

/// A GitLab project as gitlab-ci-local sees it, with the services its jobs reach.
struct Project {
    registry: Registry,
    gitlab: FakeGitLab,
    source: Repo,
    bare: PathBuf,
    /// Serves the component's project over smart HTTP.
    _components: GitHttp,
    git_config: PathBuf,
    home: tempfile::TempDir,
    _work: tempfile::TempDir,
}

impl Project {
    fn new(ci_file: &str) -> Project {
        let registry = Registry::start(false);
        let gitlab = FakeGitLab::start("7", JOB_TOKEN);
        let work = tempfile::tempdir().unwrap();
        let repository = format!("{}/team/app", registry.host());
        let initial = format!("image: {repository}:0.0.0\n");
        let bare = bare_repository(
            work.path(),
            &[
                ("staging/app.yaml", initial.as_str()),
                ("production/app.yaml", initial.as_str()),
            ],
        );

        // The component's project, `tools/tagpilot`, tagged 1.0.0.
        let served = work.path().join("served");
        let tools = Repo::new();
        tools
            .write(
                COMPONENT,
                std::fs::read_to_string(root().join(COMPONENT)).unwrap(),
            )
            .commit("The component")
            .tag("1.0.0");
        std::fs::create_dir_all(served.join("tools")).unwrap();
        sh(Command::new("git")
            .args(["clone", "-q", "--bare"])
            .arg(tools.path())
            .arg(served.join("tools/tagpilot.git")));
        sh(Command::new("git")
            .current_dir(served.join("tools/tagpilot.git"))
            .args(["config", "uploadpack.allowFilter", "true"]));
        let components = GitHttp::start(served, "gitlab-ci-token", "component-reader");
        // gitlab-ci-local fetches `https://$CI_SERVER_FQDN:443/<project>.git`; git sends it to
        // the test server instead.
        let git_config = work.path().join("gitconfig");
        std::fs::write(
            &git_config,
            format!(
                "[url \"http://gitlab-ci-token:component-reader@127.0.0.1:{}/\"]\n\tinsteadOf = https://gitlab.example.org:443/\n[user]\n\tname = CI\n\temail = ci@example.org\n",
                components.port
            ),
        )
        .unwrap();

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
        source
            .write("ci/tagpilot.yaml", spec)
            .write(".gitlab-ci.yml", ci_file)
            .write(
                ".gitignore",
                "tagpilot-out/\ntagpilot.env\n.gitlab-ci-local/\n",
            );
        source.git(&[
            "remote",
            "add",
            "origin",
            "https://gitlab.example.org/group/app.git",
        ]);
        for (tag, text) in [("v1.0.0", "one\n"), ("v2.0.0", "two\n")] {
            source
                .write("app.txt", text)
                .commit(&format!("Release {tag}"))
                .tag(tag);
        }
        Project {
            registry,
            gitlab,
            source,
            bare,
            _components: components,
            git_config,
            home: tempfile::tempdir().unwrap(),
            _work: work,
        }
    }

    /// gitlab-ci-local at `tag`, with the shell executor and artifact isolation, and the
    /// variables a GitLab tag pipeline has that it cannot know.
    fn pipeline(&self, tag: &str, args: &[&str]) -> Run {
        self.source.git(&["checkout", "-q", tag]);
        let bin = Path::new(env!("CARGO_BIN_EXE_tagpilot")).parent().unwrap();
        let mut cmd = Command::new("gitlab-ci-local");
        with_clean_env(&mut cmd)
            .current_dir(self.source.path())
            .env(
                "PATH",
                format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
            )
            .env("HOME", self.home.path())
            .env("GIT_CONFIG_GLOBAL", &self.git_config)
            .args(["--force-shell-executor", "--shell-isolation", "--no-color"]);
        let api = self.gitlab.api_url();
        for (name, value) in [
            ("CI_COMMIT_TAG", tag),
            ("CI_COMMIT_REF_NAME", tag),
            ("CI_COMMIT_REF_PROTECTED", "true"),
            ("GITLAB_CI", "true"),
            ("CI_JOB_TOKEN", JOB_TOKEN),
            ("CI_API_V4_URL", api.as_str()),
            ("CI_PROJECT_ID", "7"),
            ("GITLAB_USER_NAME", "Release Manager"),
        ] {
            cmd.arg("--variable").arg(format!("{name}={value}"));
        }
        cmd.args([
            "--ignore-predefined-vars",
            "CI_COMMIT_TAG,CI_COMMIT_REF_NAME,CI_COMMIT_REF_PROTECTED,GITLAB_CI,CI_JOB_TOKEN,CI_API_V4_URL,CI_PROJECT_ID,GITLAB_USER_NAME",
        ])
        .args(args);
        run(&mut cmd)
    }

    fn deployed(&self, environment: &str) -> String {
        sh(Command::new("git")
            .current_dir(&self.bare)
            .args(["show", &format!("main:{environment}/app.yaml")]))
    }

    fn commits(&self) -> usize {
        commit_count(&self.bare)
    }

    /// The dotenv report a job left (gitlab-ci-local keeps each job's artifacts apart).
    fn dotenv_of(&self, job: &str) -> String {
        let found = sh(Command::new("find")
            .arg(self.source.path().join(".gitlab-ci-local"))
            .args(["-path", &format!("*{job}*"), "-name", "tagpilot.env"]));
        let path = found
            .lines()
            .next()
            .unwrap_or_else(|| panic!("no dotenv of {job}"));
        std::fs::read_to_string(path).unwrap()
    }
}

fn available() -> bool {
    registry::available()
        && tool_available("gitlab-ci-local", "gitlab-ci-local@4.73.0 (npm)")
        && tool_available("rsync", "rsync")
}

fn passed(run: Run) -> Run {
    assert_eq!(
        run.code, 0,
        "gitlab-ci-local failed:\n{}\n{}",
        run.stdout, run.stderr
    );
    run
}

const COMPONENT_CI: &str = "\
stages: [test, package, release]   # the project's own stages

include:
  - component: $CI_SERVER_FQDN/tools/tagpilot/tagpilot@1.0.0
    inputs:
      image: registry.example.org/tools/tagpilot:0.1
      build-stage: package
      publish-stage: release
      deploy-stage: release
      spec: ci/tagpilot.yaml

unit-tests:
  stage: test
  script: [test -f app.txt]
";

#[test]
fn the_component_runs_a_tag_pipeline_under_gitlab_ci_local() {
    if !available() {
        return;
    }
    let project = Project::new(COMPONENT_CI);

    // The jobs as GitLab would plan them: the project's stages, production by hand.
    let listed = passed(project.pipeline("v1.0.0", &["--list-json"])).stdout;
    let jobs: Value = serde_json::from_str(&listed).unwrap();
    let job = |name: &str| {
        jobs.as_array()
            .unwrap()
            .iter()
            .find(|j| j["name"] == name)
            .unwrap_or_else(|| panic!("no job {name}: {listed}"))
            .clone()
    };
    assert_eq!(job("tagpilot-build")["stage"], "package");
    assert_eq!(job("tagpilot-publish")["stage"], "release");
    assert_eq!(job("tagpilot-deploy-staging")["when"], "on_success");
    assert_eq!(job("tagpilot-deploy-production")["when"], "manual");
    assert_eq!(job("tagpilot-rollback-production")["when"], "manual");

    // v1: built, published, staging deployed; production waits for a person.
    let first = passed(project.pipeline("v1.0.0", &[]));
    assert!(
        project.deployed("staging").contains(":1.0.0@sha256:"),
        "{}",
        first.stdout
    );
    assert!(project.deployed("production").contains(":0.0.0"));
    assert!(project.gitlab.release("v1.0.0").is_some());
    assert!(
        project
            .dotenv_of("tagpilot-publish")
            .contains("TAGPILOT_RELEASE_URL="),
        "the publish job hands the release address on"
    );

    // The same pipeline again: nothing new anywhere.
    let (commits, writes) = (project.commits(), project.gitlab.writes());
    passed(project.pipeline("v1.0.0", &[]));
    assert_eq!(project.commits(), commits, "no new deployment commit");
    assert_eq!(project.gitlab.writes(), writes, "nothing published twice");

    // The manual production deploy.
    passed(project.pipeline("v1.0.0", &["--manual", "tagpilot-deploy-production"]));
    let v1 = project.deployed("production");
    assert!(v1.contains(":1.0.0@sha256:"), "{v1}");

    // v2, through to production.
    passed(project.pipeline("v2.0.0", &["--manual", "tagpilot-deploy-production"]));
    assert!(project.deployed("production").contains(":2.0.0@sha256:"));
    assert!(project.deployed("staging").contains(":2.0.0@sha256:"));

    // The rollback job of the v2 pipeline puts production back on v1; staging stays.
    passed(project.pipeline(
        "v2.0.0",
        &[
            "--manual",
            "tagpilot-rollback-production",
            "tagpilot-rollback-production",
        ],
    ));
    assert_eq!(project.deployed("production"), v1);
    assert!(project.deployed("staging").contains(":2.0.0@"));
    drop(project.registry);
}

#[test]
fn the_include_template_plans_the_same_jobs_on_the_default_stages() {
    if !available() {
        return;
    }
    let ci = "include:\n  - local: tagpilot.gitlab-ci.yml\nvariables:\n  TAGPILOT_CI_IMAGE: registry.example.org/tools/tagpilot:0.1\n";
    let project = Project::new(ci);
    // Its spec is `tagpilot.yaml` at the root, the default.
    let spec = std::fs::read_to_string(project.source.path().join("ci/tagpilot.yaml")).unwrap();
    project.source.write("tagpilot.yaml", spec).write(
        "tagpilot.gitlab-ci.yml",
        std::fs::read_to_string(root().join(LEGACY)).unwrap(),
    );
    project.source.commit("The include template").tag("v1.0.1");
    let listed = passed(project.pipeline("v1.0.1", &["--list-json"])).stdout;
    let jobs: Value = serde_json::from_str(&listed).unwrap();
    let planned: Vec<(String, String, String)> = jobs
        .as_array()
        .unwrap()
        .iter()
        .map(|j| {
            (
                j["name"].as_str().unwrap().to_string(),
                j["stage"].as_str().unwrap().to_string(),
                j["when"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected = [
        ("tagpilot-build", "build", "on_success"),
        ("tagpilot-publish", "deploy", "on_success"),
        ("tagpilot-deploy-staging", "deploy", "on_success"),
        ("tagpilot-deploy-production", "deploy", "manual"),
        ("tagpilot-rollback-production", "deploy", "manual"),
    ];
    for (name, stage, when) in expected {
        assert!(
            planned.contains(&(name.to_string(), stage.to_string(), when.to_string())),
            "{name} in {stage}, {when}: {planned:?}"
        );
    }
    // And it runs: the build job of a tag pipeline.
    passed(project.pipeline("v1.0.1", &["tagpilot-build"]));
    drop(project.registry);
}

/// Included with no `image` input, the component's jobs run in this version's job image, and
/// the include template's in `$TAGPILOT_CI_IMAGE`, which it sets to the same one.
#[test]
fn without_an_image_input_the_jobs_use_this_versions_job_image() {
    if !available() {
        return;
    }
    let ci = COMPONENT_CI.replace("      image: registry.example.org/tools/tagpilot:0.1\n", "");
    let project = Project::new(&ci);
    let preview = passed(project.pipeline("v1.0.0", &["--preview"])).stdout;
    let expanded: Value = serde_saphyr::from_str(&preview).unwrap();
    let (inputs, _) = component_inputs();
    for job in [
        "tagpilot-build",
        "tagpilot-publish",
        "tagpilot-deploy-production",
    ] {
        assert_eq!(
            expanded[job]["image"]["name"], inputs["image"]["default"],
            "{job}: {preview}"
        );
    }
    let legacy: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(root().join(LEGACY)).unwrap()).unwrap();
    assert_eq!(
        legacy["variables"]["TAGPILOT_CI_IMAGE"],
        inputs["image"]["default"]
    );
    assert_eq!(legacy[".tagpilot"]["image"], "$TAGPILOT_CI_IMAGE");
    drop(project.registry);
}

/// What gitlab-ci-local does not show: every job runs in tag pipelines only, and the jobs of
/// an environment share a `resource_group`, so they never overlap.
#[test]
fn every_job_is_for_tags_and_environments_are_serialised() {
    let text = std::fs::read_to_string(root().join(LEGACY)).unwrap();
    let template: Value = serde_saphyr::from_str(&text).unwrap();
    let jobs = template.as_object().unwrap();
    let base = &jobs[".tagpilot"];
    assert!(base["rules"].to_string().contains("$CI_COMMIT_TAG"));
    for (name, job) in jobs.iter().filter(|(name, _)| !name.starts_with('.')) {
        let rules = job.get("rules").unwrap_or(&base["rules"]);
        assert!(rules.to_string().contains("$CI_COMMIT_TAG"), "{name}");
        let deploy = &jobs[".tagpilot-deploy"];
        if job.get("environment").is_some() {
            let group = job.get("resource_group").or(deploy.get("resource_group"));
            assert!(group.is_some(), "{name} is serialised");
        }
    }
}

/// This repository's own `.gitlab-ci.yml`: a tag builds the static binary, then releases
/// with the component, included locally, with no deploy jobs (tagpilot deploys nowhere).
#[test]
fn this_repository_releases_itself_with_its_component() {
    if !tool_available("gitlab-ci-local", "gitlab-ci-local@4.73.0 (npm)") {
        return;
    }
    let copy = Repo::new();
    for file in [".gitlab-ci.yml", COMPONENT, "tagpilot.yaml"] {
        copy.write(file, std::fs::read_to_string(root().join(file)).unwrap());
    }
    copy.commit("tagpilot").tag("v0.1.0");
    copy.git(&[
        "remote",
        "add",
        "origin",
        "https://gitlab.example.org/tools/tagpilot.git",
    ]);
    let home = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("gitlab-ci-local");
    with_clean_env(&mut cmd)
        .current_dir(copy.path())
        .env("HOME", home.path())
        .args(["--list-json", "--variable", "CI_COMMIT_TAG=v0.1.0"]);
    let listed = passed(run(&mut cmd)).stdout;
    let jobs: Value = serde_json::from_str(&listed).unwrap();
    let planned: Vec<(String, String)> = jobs
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["when"] != "never")
        .map(|j| {
            (
                j["name"].as_str().unwrap().to_string(),
                j["stage"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let names: Vec<&str> = planned.iter().map(|(n, _)| n.as_str()).collect();
    for (name, stage) in [
        ("test", "test"),
        ("build-binary", "build"),
        ("tagpilot-build", "release"),
        ("tagpilot-publish", "release"),
    ] {
        assert!(
            planned.contains(&(name.to_string(), stage.to_string())),
            "{name} in {stage}: {planned:?}"
        );
    }
    assert!(
        !names
            .iter()
            .any(|n| n.contains("deploy") || n.contains("rollback")),
        "{names:?}"
    );
    let needs = |name: &str| {
        jobs.as_array()
            .unwrap()
            .iter()
            .find(|j| j["name"] == name)
            .unwrap()["needs"]
            .to_string()
    };
    assert!(needs("tagpilot-build").contains("build-binary"), "{listed}");
    assert!(
        needs("tagpilot-publish").contains("build-binary"),
        "{listed}"
    );
}
