//! Signed images, checked by an independent verifier: tagpilot signs what it pushes to the
//! real registry (token auth) the way `cosign sign --key` stores signatures; skopeo reads
//! them back and pyca's `cryptography` checks them as cosign's format says (see `verifies`):
//! accepted with the right key, refused with another key and for an image swapped in under
//! the tag. Keys are made by openssl, and cosign's encrypted form by PyNaCl and Python's
//! scrypt from the format cosign documents. A re-run adds no signature; a wrong password or a
//! missing key is exit 2 with nothing pushed, and no secret is printed.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::registry::{self, token_registry, Registry, PASSWORD, USER};
use common::*;
use serde_json::Value;

const COSIGN_PASSWORD: &str = "open-sesame-7";

struct Keys {
    /// PKCS#8 PEM, unencrypted.
    private: PathBuf,
    public: PathBuf,
    /// The same key as DER, for cosign's encrypted form.
    der: PathBuf,
}

fn keys(dir: &Path, name: &str) -> Keys {
    let ec = dir.join(format!("{name}-ec.pem"));
    let keys = Keys {
        private: dir.join(format!("{name}.key")),
        public: dir.join(format!("{name}.pub")),
        der: dir.join(format!("{name}.der")),
    };
    let openssl = |args: &[&str]| sh(Command::new("openssl").current_dir(dir).args(args));
    openssl(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        ec.to_str().unwrap(),
    ]);
    for (out, form) in [(&keys.private, "PEM"), (&keys.der, "DER")] {
        openssl(&[
            "pkcs8",
            "-topk8",
            "-nocrypt",
            "-in",
            ec.to_str().unwrap(),
            "-outform",
            form,
            "-out",
            out.to_str().unwrap(),
        ]);
    }
    openssl(&[
        "ec",
        "-in",
        ec.to_str().unwrap(),
        "-pubout",
        "-out",
        keys.public.to_str().unwrap(),
    ]);
    keys
}

/// cosign's encrypted key (`cosign generate-key-pair`'s `cosign.key`), written with PyNaCl's
/// secretbox and Python's scrypt as cosign documents it.
fn cosign_key(keys: &Keys, password: &str) -> String {
    let script = r#"
import base64, hashlib, json, os, sys
import nacl.secret
der = open(sys.argv[1], 'rb').read()
salt, nonce = os.urandom(32), os.urandom(24)
key = hashlib.scrypt(sys.argv[2].encode(), salt=salt, n=32768, r=8, p=1, dklen=32, maxmem=64 << 20)
box = nacl.secret.SecretBox(key).encrypt(der, nonce).ciphertext
doc = {"kdf": {"name": "scrypt", "params": {"N": 32768, "r": 8, "p": 1},
               "salt": base64.b64encode(salt).decode()},
       "cipher": {"name": "nacl/secretbox", "nonce": base64.b64encode(nonce).decode()},
       "ciphertext": base64.b64encode(box).decode()}
body = base64.b64encode(json.dumps(doc).encode()).decode()
print("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----")
for i in range(0, len(body), 64):
    print(body[i:i + 64])
print("-----END ENCRYPTED SIGSTORE PRIVATE KEY-----")
"#;
    sh(Command::new("python3")
        .args(["-c", script])
        .arg(&keys.der)
        .arg(password))
}

fn ready() -> bool {
    let nacl = Command::new("python3")
        .args(["-c", "import nacl.secret, cryptography, securesystemslib"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !nacl {
        assert!(
            std::env::var("CI").is_err(),
            "PyNaCl, cryptography and securesystemslib are required in CI (.ci/run installs them with pip)"
        );
        eprintln!(
            "SKIPPED: PyNaCl or cryptography is not installed (pip install pynacl cryptography)"
        );
    }
    nacl && registry::available() && tool_available("skopeo", "skopeo")
}

/// A project whose image (two platforms) is signed with the key in `SIGNING_KEY`.
fn project(registry: &Registry) -> Repo {
    let repo = Repo::new();
    repo.write(
        "tagpilot.yaml",
        format!(
            "name: app\nimage:\n  repository: {}/team/app\n  platforms: [linux/amd64, linux/arm64]\n  sign: {{ key: SIGNING_KEY, password: SIGNING_PASSWORD }}\n",
            registry.host()
        ),
    )
    .write("app.txt", "one\n")
    .commit("The app")
    .tag("v1.0.0");
    repo
}

fn release(repo: &Repo, registry: &Registry, key: &str, password: &str) -> Run {
    run(tagpilot(repo.path())
        .args([
            "release",
            "--output",
            "json",
            "--only",
            "tarball,image,push",
        ])
        .env("DOCKER_CONFIG", registry.docker_config())
        .env("SIGNING_KEY", key)
        .env("SIGNING_PASSWORD", password))
}

/// Checks the cosign signature of what `reference` names now, independently of tagpilot:
/// skopeo reads the image and its `sha256-<hex>.sig` image from the registry, and pyca's
/// `cryptography` checks each signature layer as cosign's format says: the layer is the
/// payload's SHA-256, the payload names this digest and repository, and the annotation is an
/// ECDSA P-256 signature of the payload by `public`. (Debian's skopeo and podman would do it
/// all with a `sigstoreSigned` policy, but Debian builds them with sigstore disabled.)
fn verifies(registry: &Registry, reference: &str, public: &Path) -> Run {
    let raw = raw_manifest(reference);
    let digest = format!("sha256:{}", sha256_hex(raw.as_bytes()));
    let repository = format!("{}/team/app", registry.host());
    let dir = tempfile::tempdir().unwrap();
    let copied = run(Command::new("skopeo")
        .args(["copy", "--src-tls-verify=false", "--src-creds"])
        .arg(format!("{USER}:{PASSWORD}"))
        .arg(format!(
            "docker://{repository}:{}.sig",
            digest.replacen(':', "-", 1)
        ))
        .arg(format!("dir:{}", dir.path().display())));
    if copied.code != 0 {
        return copied;
    }
    let script = r#"
import base64, hashlib, json, os, sys
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
folder, digest, repository, public = sys.argv[1:5]
key = serialization.load_pem_public_key(open(public, 'rb').read())
manifest = json.load(open(os.path.join(folder, 'manifest.json')))
for layer in manifest['layers']:
    if layer['mediaType'] != 'application/vnd.dev.cosign.simplesigning.v1+json':
        continue
    payload = open(os.path.join(folder, layer['digest'].split(':')[1]), 'rb').read()
    if 'sha256:' + hashlib.sha256(payload).hexdigest() != layer['digest']:
        continue
    critical = json.loads(payload)['critical']
    if critical['type'] != 'cosign container image signature':
        continue
    if critical['image']['docker-manifest-digest'] != digest:
        continue
    if critical['identity']['docker-reference'] != repository:
        continue
    signature = base64.b64decode(layer['annotations']['dev.cosignproject.cosign/signature'])
    try:
        key.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
    except Exception:
        continue
    print('verified', digest)
    sys.exit(0)
sys.exit('no valid signature by this key for ' + digest)
"#;
    run(Command::new("python3")
        .args(["-c", script])
        .arg(dir.path())
        .arg(&digest)
        .arg(&repository)
        .arg(public))
}

/// The provenance and SBOM in the output folder, and their DSSE envelopes attached to the
/// image (`sha256-<hex>.att`), checked with securesystemslib (PyPI) against the public key.
fn attestations_verify(registry: &Registry, repo: &Repo, digest: &str, public: &Path) {
    let out = repo.path().join("tagpilot-out");
    let read = |file: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(out.join(file)).unwrap()).unwrap()
    };
    let provenance = read("provenance.json");
    assert_eq!(provenance["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(
        provenance["subject"][0]["digest"]["sha256"],
        digest.trim_start_matches("sha256:")
    );
    let build = &provenance["predicate"]["buildDefinition"];
    assert_eq!(build["externalParameters"]["tag"], "v1.0.0");
    assert_eq!(
        build["resolvedDependencies"][0]["digest"]["gitCommit"],
        repo.git(&["rev-parse", "v1.0.0^{commit}"]).trim()
    );
    let sbom = read("sbom.spdx.json");
    assert_eq!(sbom["spdxVersion"], "SPDX-2.3");
    let app = sbom["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["fileName"] == "./opt/app/app.txt")
        .unwrap_or_else(|| panic!("app.txt in the SBOM: {sbom}"))
        .clone();
    assert_eq!(
        app["checksums"][1]["checksumValue"],
        sha256_hex(b"one\n").as_str()
    );

    let dir = tempfile::tempdir().unwrap();
    sh(Command::new("skopeo")
        .args(["copy", "--src-tls-verify=false", "--src-creds"])
        .arg(format!("{USER}:{PASSWORD}"))
        .arg(format!(
            "docker://{}/team/app:{}.att",
            registry.host(),
            digest.replacen(':', "-", 1)
        ))
        .arg(format!("dir:{}", dir.path().display())));
    let script = r#"
import json, os, sys
from cryptography.hazmat.primitives import serialization
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey
folder, public = sys.argv[1:3]
key = SSlibKey.from_crypto(serialization.load_pem_public_key(open(public, 'rb').read()))
types = []
for layer in json.load(open(os.path.join(folder, 'manifest.json')))['layers']:
    data = json.load(open(os.path.join(folder, layer['digest'].split(':')[1])))
    for signature in data['signatures']:
        signature['keyid'] = key.keyid  # cosign leaves keyid empty; securesystemslib matches on it
    envelope = Envelope.from_dict(data)
    envelope.verify([key], 1)
    statement = json.loads(envelope.payload)
    assert statement['predicateType'] == layer['annotations']['predicateType']
    types.append(statement['predicateType'])
print(' '.join(sorted(types)))
"#;
    let checked = sh(Command::new("python3")
        .args(["-c", script])
        .arg(dir.path())
        .arg(public));
    assert_eq!(
        checked.trim(),
        "https://slsa.dev/provenance/v1 https://spdx.dev/Document"
    );
}

fn raw_manifest(reference: &str) -> String {
    sh(Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false", "--creds"])
        .arg(format!("{USER}:{PASSWORD}"))
        .arg(format!("docker://{reference}")))
}

/// What each test starts from: the registry with token auth, two key pairs, and the project.
/// A test binds every field it needs alive (`..` would drop the rest at once).
struct Signed {
    registry: Registry,
    /// The token issuer and its keys live as long as the registry.
    _issuer: (tempfile::TempDir, common::token::TokenIssuer),
    work: tempfile::TempDir,
    ours: Keys,
    other: Keys,
    repo: Repo,
    /// Our private key as PEM text.
    key: String,
}

/// `None` (the test skips, saying why; CI fails instead) without the tools.
fn signed() -> Option<Signed> {
    if !ready() {
        return None;
    }
    let (issuer_keys, issuer, registry) = token_registry();
    let work = tempfile::tempdir().unwrap();
    let ours = keys(work.path(), "ours");
    let other = keys(work.path(), "other");
    let repo = project(&registry);
    let key = std::fs::read_to_string(&ours.private).unwrap();
    Some(Signed {
        registry,
        _issuer: (issuer_keys, issuer),
        work,
        ours,
        other,
        repo,
        key,
    })
}

#[test]
fn signed_images_verify_independently_and_a_rerun_adds_nothing() {
    let Some(Signed {
        registry,
        work,
        ours,
        other,
        repo,
        key,
        _issuer,
    }) = signed()
    else {
        return;
    };

    // The key as PEM text in the variable.
    let first = release(&repo, &registry, &key, "").ok();
    let record: Value = serde_json::from_str(&first.stdout).unwrap();
    let signatures = record["pushed"]["signatures"].as_array().unwrap().clone();
    assert_eq!(
        signatures.len(),
        3,
        "the index and both platform manifests: {signatures:?}"
    );
    assert!(signatures.iter().all(|s| s["status"] == "signed"));
    assert!(
        !first.stderr.contains("PRIVATE KEY"),
        "the key is never printed"
    );

    let image = format!("{}/team/app:1.0.0", registry.host());
    verifies(&registry, &image, &ours.public).ok();
    let top = signatures[0]["digest"].as_str().unwrap().to_string();
    attestations_verify(&registry, &repo, &top, &ours.public);
    let refused = verifies(&registry, &image, &other.public);
    assert_ne!(refused.code, 0, "another key's signature is refused");
    assert!(
        refused.stderr.contains("no valid signature by this key"),
        "{}",
        refused.stderr
    );
    // Each platform manifest is signed too.
    for signature in &signatures[1..] {
        let platform = format!(
            "{}/team/app@{}",
            registry.host(),
            signature["digest"].as_str().unwrap()
        );
        verifies(&registry, &platform, &ours.public).ok();
    }

    // Again, the key now as a file path: the same signatures, nothing added.
    let index = signatures[0]["stored_at"].as_str().unwrap().to_string();
    let before = raw_manifest(&index);
    let again = release(&repo, &registry, ours.private.to_str().unwrap(), "").ok();
    let record: Value = serde_json::from_str(&again.stdout).unwrap();
    assert!(record["pushed"]["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["status"] == "already_signed"));
    assert_eq!(raw_manifest(&index), before, "no duplicate signature");
    let attested = format!(
        "{}/team/app:{}.att",
        registry.host(),
        top.replacen(':', "-", 1)
    );
    assert!(record["pushed"]["attestations"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["status"] == "already_attached"));
    let layers = serde_json::from_str::<Value>(&before).unwrap()["layers"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(layers, 1);
    let attestations: Value = serde_json::from_str(&raw_manifest(&attested)).unwrap();
    assert_eq!(
        attestations["layers"].as_array().unwrap().len(),
        2,
        "no duplicate attestation"
    );

    // An image that was never signed, put under the signed tag by someone else: refused.
    repo.write("app.txt", "two\n")
        .commit("Other bytes")
        .tag("v1.0.1");
    let layout = work.path().join("unsigned");
    run(tagpilot(repo.path())
        .args(["image", "--tag", "v1.0.1", "--oci-layout"])
        .arg(&layout))
    .ok();
    sh(Command::new("skopeo")
        .args(["copy", "--all", "--dest-tls-verify=false", "--dest-creds"])
        .arg(format!("{USER}:{PASSWORD}"))
        .arg(format!("oci:{}:1.0.1", layout.display()))
        .arg(format!("docker://{image}")));
    let tampered = verifies(&registry, &image, &ours.public);
    assert_ne!(
        tampered.code, 0,
        "an unsigned image under the tag is refused"
    );
    drop(registry);
}

#[test]
fn a_cosign_encrypted_key_signs_and_a_wrong_password_pushes_nothing() {
    let Some(Signed {
        registry,
        ours,
        repo,
        _issuer,
        work: _work,
        ..
    }) = signed()
    else {
        return;
    };
    let encrypted = cosign_key(&ours, COSIGN_PASSWORD);

    let wrong = release(&repo, &registry, &encrypted, "not-the-password");
    assert_eq!(wrong.code, 2, "{}", wrong.stderr);
    assert!(
        wrong.stderr.contains(
            "the password in SIGNING_PASSWORD does not open the cosign key in SIGNING_KEY"
        ),
        "{}",
        wrong.stderr
    );
    assert!(!wrong.stderr.contains("not-the-password"));
    let tags = Command::new("skopeo")
        .args(["list-tags", "--tls-verify=false", "--creds"])
        .arg(format!("{USER}:{PASSWORD}"))
        .arg(format!("docker://{}/team/app", registry.host()))
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&tags.stdout).contains("1.0.0"),
        "nothing pushed, nothing half-signed"
    );

    let missing = run(tagpilot(repo.path())
        .args(["release", "--only", "tarball,image,push"])
        .env("DOCKER_CONFIG", registry.docker_config()));
    assert_eq!(missing.code, 2, "{}", missing.stderr);
    assert!(missing
        .stderr
        .contains("image.sign.key names SIGNING_KEY, which is not set"));

    let signed = release(&repo, &registry, &encrypted, COSIGN_PASSWORD).ok();
    assert!(!signed.stderr.contains(COSIGN_PASSWORD));
    // `tagpilot image` signs what it pushes too: here, the same image, already signed.
    let image_run = run(tagpilot(repo.path())
        .args(["image", "--output", "json", "--tag", "v1.0.0"])
        .env("DOCKER_CONFIG", registry.docker_config())
        .env("SIGNING_KEY", &encrypted)
        .env("SIGNING_PASSWORD", COSIGN_PASSWORD))
    .ok();
    let record: Value = serde_json::from_str(&image_run.stdout).unwrap();
    assert_eq!(
        record["pushed"]["signatures"][0]["status"],
        "already_signed"
    );
    // A dry run needs no key: it says it would sign.
    let dry = run(tagpilot(repo.path())
        .args([
            "release",
            "--dry-run",
            "--tag",
            "v1.0.0",
            "--out",
            "dry-out",
        ])
        .env("DOCKER_CONFIG", registry.docker_config()))
    .ok();
    assert!(
        dry.stderr
            .contains("would sign it (SIGNING_KEY is not set here)")
            || dry
                .stdout
                .contains("would sign it (SIGNING_KEY is not set here)"),
        "{}{}",
        dry.stdout,
        dry.stderr
    );

    // The publish job attaches the provenance and the SBOM to the GitLab Release.
    let gitlab = common::fakes::gitlab::FakeGitLab::start("group/app", "job-token");
    run(tagpilot(repo.path())
        .args(["release", "--only", "publish"])
        .env("CI_API_V4_URL", gitlab.api_url())
        .env("CI_PROJECT_ID", "group/app")
        .env("CI_JOB_TOKEN", "job-token"))
    .ok();
    for file in ["provenance.json", "sbom.spdx.json"] {
        assert_eq!(gitlab.files("app", "1.0.0", file).len(), 1, "{file}");
        let release = gitlab.release("v1.0.0").unwrap();
        assert!(
            release.links.iter().any(|l| l.name == file),
            "{file} linked"
        );
    }
    verifies(
        &registry,
        &format!("{}/team/app:1.0.0", registry.host()),
        &ours.public,
    )
    .ok();
    drop(registry);
}

fn verify(repo: &Path, registry: &Registry, key: &Path, extra: &[&str]) -> Run {
    run(tagpilot(repo)
        .args(["verify", "--tag", "v1.0.0", "--key"])
        .arg(key)
        .args(extra)
        .env("DOCKER_CONFIG", registry.docker_config()))
}

#[test]
fn verify_checks_the_signature_and_attestations_and_rebuilds_the_tag() {
    let Some(Signed {
        registry,
        work,
        ours,
        other,
        repo,
        key,
        _issuer,
    }) = signed()
    else {
        return;
    };
    release(&repo, &registry, &key, "").ok();

    // On a fresh clone, with only the public key and a read-only login.
    let clone = work.path().join("clone");
    sh(Command::new("git")
        .args(["clone", "-q"])
        .arg(repo.path())
        .arg(&clone));
    let good = verify(&clone, &registry, &ours.public, &["--rebuild"]).ok();
    for said in [
        "good",
        "attestation https://slsa.dev/provenance/v1: good",
        "provenance: tag v1.0.0",
        "rebuilt app-1.0.0.tar.gz: the same bytes",
        "the same image",
    ] {
        assert!(good.stdout.contains(said), "{said}: {}", good.stdout);
    }
    let wrong = verify(&clone, &registry, &other.public, &[]);
    assert_eq!(wrong.code, 1, "{}", wrong.stderr);
    assert!(wrong.stderr.contains("did not verify"), "{}", wrong.stderr);
    assert!(wrong.stdout.contains("by this key"), "{}", wrong.stdout);

    // Someone pushes, and signs, an image of 1.0.0 built from a modified tree.
    let modified = work.path().join("modified");
    sh(Command::new("git")
        .args(["clone", "-q"])
        .arg(repo.path())
        .arg(&modified));
    std::fs::write(modified.join("app.txt"), "tampered\n").unwrap();
    for args in [
        &[
            "-c",
            "user.name=x",
            "-c",
            "user.email=x@y",
            "commit",
            "-qam",
            "tamper",
        ][..],
        &["tag", "-f", "v1.0.0"][..],
    ] {
        sh(Command::new("git").current_dir(&modified).args(args));
    }
    run(tagpilot(&modified)
        .args(["release", "--force", "--only", "tarball,image,push"])
        .env("DOCKER_CONFIG", registry.docker_config())
        .env("SIGNING_KEY", &key))
    .ok();
    let caught = verify(&clone, &registry, &ours.public, &["--rebuild"]);
    assert_eq!(caught.code, 1, "{}", caught.stdout);
    for said in [
        "the provenance names commit",
        "(tagpilot: app 1.0.0 at /opt/app)",
        "opt/app/app.txt: ",
    ] {
        assert!(caught.stdout.contains(said), "{said}: {}", caught.stdout);
    }
    drop(registry);
}
