use super::*;

fn env() -> BTreeMap<String, String> {
    BTreeMap::new()
}

/// Each config in `tests/supervisor-configs/` starts with `// containerpilot: ACCEPT` or
/// `REJECT`: the verdict of ContainerPilot 3.8's own start-up checks on it (recorded with
/// `bench/supervisor-conformance.sh`, which compares again against the reference binary).
#[test]
fn verdicts_match_containerpilot() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/supervisor-configs");
    let mut checked = 0;
    let mut wrong = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let first = text.lines().next().unwrap_or_default();
        let accept = match first.strip_prefix("// containerpilot: ") {
            Some("ACCEPT") => true,
            Some("REJECT") => false,
            _ => panic!("{}: no verdict on the first line", path.display()),
        };
        let ours = Config::load(&text, &env());
        if ours.is_ok() != accept {
            wrong.push(format!("{}: {:?}", path.display(), ours.err()));
        }
        checked += 1;
    }
    assert!(checked >= 100, "only {checked} configs");
    assert!(
        wrong.is_empty(),
        "{} differ:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[test]
fn problems_point_at_the_job() {
    let text = "{\n  consul: \"localhost:8500\",\n  jobs: [\n    { name: \"a\", exec: \"x\" },\n    { name: \"web\", exec: \"y\", port: 80 },\n  ],\n}\n";
    let problems = Config::load(text, &env()).unwrap_err();
    assert_eq!(problems[0].line, 5, "{problems:?}");
    assert!(
        problems[0].message.contains("health must be set"),
        "{problems:?}"
    );
}

#[test]
fn lint_finds_what_never_fires() {
    let text = r#"{ consul: "x:1", jobs: [
        { name: "a", exec: "x", when: { once: "startup" } },
        { name: "b", exec: "x", when: { source: "nobody", once: "healthy" } },
        { name: "c", exec: "x", when: { source: "watch.db", each: "changed" } } ],
      watches: [ { name: "db", interval: 3 } ] }"#;
    let config = Config::load(text, &env()).unwrap();
    assert_eq!(config.warnings.len(), 2, "{:?}", config.warnings);
    assert!(config.warnings[0].contains("`a`") && config.warnings[0].contains("never fires"));
    assert!(config.warnings[1].contains("`nobody`"));
}

#[test]
fn build_time_check_tolerates_run_time_variables() {
    let text = "{ consul: \"x:1\", jobs: [ { name: \"web\", exec: \"y\", port: {{ .PORT }}, health: { interval: 1, ttl: 3 } } ] }";
    let warnings = Config::check_file("cp.json5", text, &env())
        .unwrap()
        .warnings;
    assert!(warnings[0].contains("PORT"), "{warnings:?}");
    let with_port: BTreeMap<String, String> = [("PORT".to_string(), "80".to_string())].into();
    assert!(Config::check_file("cp.json5", text, &with_port)
        .unwrap()
        .warnings
        .is_empty());
    // A template error does not depend on the environment.
    let bad = "{ consul: \"{{ .X | default \\\"y\\\" }}\" }";
    let error = Config::check_file("cp.json5", bad, &env()).unwrap_err();
    assert!(error.to_string().contains("cp.json5:1:"), "{error}");
}

#[test]
fn extensions_are_checked() {
    let base = r#"{ jobs: [ { name: "app", exec: "x" } ], tagpilot: EXT }"#;
    let ok = base.replace("EXT", r#"{ consulOptional: true, mainJob: "app" }"#);
    let config = Config::load(&ok, &env()).unwrap();
    assert_eq!(config.extensions.main_job.as_deref(), Some("app"));
    assert!(config.consul.is_none());
    for (ext, needle) in [
        (r#"{ consulOptional: true, mainJob: "nope" }"#, "not a job"),
        (
            r#"{ consulOptional: true, restartOnUnhealthy: ["app"] }"#,
            "no `health`",
        ),
        (r#"{ consulOptional: true, foo: 1 }"#, "unknown keys: foo"),
        (r#"{ mainJob: "app" }"#, "no discovery backend"),
    ] {
        let problems = Config::load(&base.replace("EXT", ext), &env()).unwrap_err();
        assert!(
            problems.iter().any(|p| p.message.contains(needle)),
            "{ext}: {problems:?}"
        );
    }
}
