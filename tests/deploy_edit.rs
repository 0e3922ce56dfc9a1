//! The deployment-file editor against fixtures of real-world styles (`fixtures/deploy/*`):
//! each case's `input.*` must become exactly `expected.*`, or be refused with `error.txt`.

use std::path::Path;

use tagpilot::gitops::edit::{rewrite, FileKind, Rewrite};

const REPOSITORY: &str = "registry.example.org/lhcb/dirac";
const NEW: &str = "registry.example.org/lhcb/dirac:8.2.44@sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";

fn file_starting(dir: &Path, stem: &str) -> Option<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_stem().is_some_and(|s| s == stem))
}

#[test]
fn every_fixture_case() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/deploy");
    let mut cases: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    cases.sort();
    assert!(cases.len() >= 12, "the fixture set is there");
    for case in cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let input = std::fs::read_to_string(file_starting(&case, "input").unwrap()).unwrap();
        let settings: serde_json::Value = std::fs::read_to_string(case.join("case.json"))
            .map(|t| serde_json::from_str(&t).unwrap())
            .unwrap_or_default();
        let kind = match settings["kind"].as_str() {
            Some("kustomization") => FileKind::Kustomization,
            Some("helm") => FileKind::Helm {
                tag: settings["tag"].as_str().unwrap(),
                repository: settings["repository"].as_str(),
                registry: settings["registry"].as_str(),
                digest: settings["digest"].as_str(),
            },
            _ => FileKind::Auto,
        };
        // A case may release another repository (a Docker Hub image, say).
        let result = rewrite(
            &input,
            &Rewrite {
                repository: settings["released"].as_str().unwrap_or(REPOSITORY),
                new: settings["new"].as_str().unwrap_or(NEW),
                marker: Some(settings["marker"].as_str().unwrap_or("dirac")),
                kind,
            },
        );
        match file_starting(&case, "expected") {
            Some(expected) => {
                let edited = result.unwrap_or_else(|e| panic!("{name}: {e}"));
                let expected = std::fs::read_to_string(expected).unwrap();
                assert!(
                    edited.text == expected,
                    "{name}: got\n{}\nexpected\n{expected}",
                    edited.text
                );
                assert!(
                    !edited.changes.is_empty(),
                    "{name}: the reference was found"
                );
                assert_eq!(edited.changed(), input != expected, "{name}");
            }
            None => {
                let wanted = std::fs::read_to_string(case.join("error.txt")).unwrap();
                let error = result
                    .err()
                    .unwrap_or_else(|| panic!("{name}: should be refused"));
                assert!(
                    error.to_string().starts_with(wanted.trim()),
                    "{name}: {error}"
                );
            }
        }
    }
}
