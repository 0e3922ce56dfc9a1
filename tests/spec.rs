//! The pipeline spec through the CLI: `validate`, `schema`, and the errors users will see.

mod common;

use common::*;

fn project_with_spec(spec: &str) -> Repo {
    let repo = Repo::new();
    repo.write("tagpilot.yaml", spec)
        .write("a.txt", "a")
        .commit("c")
        .tag("v1.0.0");
    repo
}

#[test]
fn valid_spec_with_interpolation() {
    let repo = project_with_spec("name: ${SERVICE_NAME:-fallback}\nversion: { scheme: semver }\n");
    let result = run(tagpilot(repo.path())
        .arg("validate")
        .env("SERVICE_NAME", "dirac"))
    .ok();
    assert!(
        result
            .stdout
            .contains("valid (release name `dirac`, version scheme semver)"),
        "{}",
        result.stdout
    );
    let result = run(tagpilot(repo.path())
        .arg("validate")
        .env_remove("SERVICE_NAME"))
    .ok();
    assert!(result.stdout.contains("`fallback`"), "{}", result.stdout);
}

#[test]
fn every_error_names_file_line_and_column() {
    let cases = [
        ("name: x\ntarbal:\n  prefix: y\n", "tagpilot.yaml:2:1: unknown field `tarbal`, expected one of"),
        ("tarball:\n  level: fast\n", "tagpilot.yaml:2:10: expected a compression level from 1"),
        ("tarball:\n  exclude: [a\n", "tagpilot.yaml:2:12: unclosed bracket"),
        ("version:\n  scheme: calver\n", "tagpilot.yaml:2:11: unknown variant `calver`, expected one of auto, semver, dirac, pep440"),
        ("tarball:\n  submodules: maybe\n", "unknown variant `maybe`"),
        ("name: ${UNSET_FOR_TEST}\n", "tagpilot.yaml:1:7: environment variable UNSET_FOR_TEST is not set"),
        ("tarball:\n  file: out.zip\n", "tagpilot.yaml:2:9: tarball.file `out.zip` must be a plain file name ending in `.tar.gz`"),
        ("name: \"bad name!\"\n", "is not a usable release name"),
    ];
    for (spec, expected) in cases {
        let repo = project_with_spec(spec);
        let result = run(tagpilot(repo.path())
            .arg("validate")
            .env_remove("UNSET_FOR_TEST"));
        let result = result.fails_with(2, expected);
        assert!(
            result.stderr.contains("Run `tagpilot schema`"),
            "{}",
            result.stderr
        );
        // The same spec stops a real command before any work, with nothing written.
        let out = repo.path().join("out");
        run(tagpilot(repo.path())
            .args(["tarball", "--out", "out"])
            .env_remove("UNSET_FOR_TEST"))
        .fails_with(2, expected);
        assert!(!out.exists(), "a bad spec wrote output");
    }
}

#[test]
fn all_problems_are_reported_at_once() {
    let repo = project_with_spec(
        "name: ${UNSET_A}\ntarball:\n  prefix: \"{nme}/\"\n  exclude: [\"a[\", \"${UNSET_B}\"]\n",
    );
    let result = run(tagpilot(repo.path()).arg("validate"))
        .fails_with(2, "tagpilot.yaml:1:7: environment variable UNSET_A");
    for needle in [
        "tagpilot.yaml:3:11: tarball.prefix: unknown placeholder `{nme}`",
        "tagpilot.yaml:4:13: tarball.exclude: `a[` is not a valid glob",
        "environment variable UNSET_B is not set",
    ] {
        assert!(
            result.stderr.contains(needle),
            "missing {needle:?} in:\n{}",
            result.stderr
        );
    }
}

#[test]
fn pipeline_flag_and_missing_files() {
    let repo = project_with_spec("name: x\n");
    run(tagpilot(repo.path()).args(["validate", "--pipeline", "nope.yaml"]))
        .fails_with(2, "could not read pipeline spec nope.yaml");
    repo.write("ci/other.yaml", "name: other\n");
    let result = run(tagpilot(repo.path()).args(["validate", "--pipeline", "ci/other.yaml"])).ok();
    assert!(result.stdout.contains("`other`"));
    let bare = Repo::new();
    bare.write("a", "a").commit("c");
    run(tagpilot(bare.path()).arg("validate")).fails_with(2, "has no tagpilot.yaml");
}

#[test]
fn schema_is_json_schema_of_the_spec() {
    let dir = tempfile::tempdir().unwrap();
    let result = run(tagpilot(dir.path()).arg("schema")).ok();
    let schema: serde_json::Value = serde_json::from_str(&result.stdout).unwrap();
    assert!(schema["$schema"]
        .as_str()
        .unwrap()
        .contains("json-schema.org"));
    let props = &schema["properties"];
    for key in ["name", "version", "tarball"] {
        assert!(props.get(key).is_some(), "schema lacks {key}: {schema}");
    }
    assert_eq!(
        schema["additionalProperties"], false,
        "unknown keys must be errors"
    );
    let text = result.stdout;
    for word in [
        "export-ignore",
        "pep440",
        "\"minimum\": 1",
        "\"maximum\": 9",
    ] {
        assert!(text.contains(word), "schema lacks {word}");
    }
}

#[test]
fn the_shipped_example_pipelines_are_valid() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for spec in ["pipelines/example.yaml", "pipelines/dirac.yaml"] {
        run(tagpilot(root).args(["validate", "--pipeline", spec])).ok();
    }
}
