//! Attestations of a pushed image: in-toto Statements v1 whose subject is the image digest, with
//! a SLSA provenance v1 predicate (the tag, commit and repository, the pipeline and job, the
//! tagpilot version, the base by digest, the build outputs' digests, the tarball) and an SPDX
//! 2.3 SBOM (every file of the release tree and of the build outputs with its SHA-256 and SHA-1,
//! the base by digest). Each is signed as a DSSE envelope (ECDSA P-256 over the envelope's
//! pre-authentication encoding) and stored as `cosign attest` stores it: a layer
//! (`application/vnd.dsse.envelope.v1+json`, annotated with its `predicateType`) of an image
//! tagged `sha256-<hex>.att`. An attestation of a predicate type that the image already has,
//! signed by this key, is not added again. Nothing here reads a clock: the times are the
//! commit's, so the same release gives the same documents.

use base64::Engine;
use serde_json::{json, Value};
use sha1::Digest as _;

use crate::error::Result;
use crate::image::Built;
use crate::oci::blobs::BlobStore;
use crate::oci::digest::Digest;
use crate::oci::registry::Client;

use super::SigningKey;

pub const PROVENANCE: &str = "https://slsa.dev/provenance/v1";
pub const SPDX: &str = "https://spdx.dev/Document";
pub const STATEMENT: &str = "https://in-toto.io/Statement/v1";
pub const DSSE_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
const DSSE_LAYER: &str = "application/vnd.dsse.envelope.v1+json";

/// What the provenance says about where the release came from.
pub struct Origin<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub tag: Option<&'a str>,
    pub commit: &'a str,
    /// The commit time, RFC 3339.
    pub time: String,
    pub repository_url: Option<String>,
    pub pipeline_url: Option<String>,
    pub job_url: Option<String>,
    /// `(file, sha256)` of the release tarball.
    pub tarball: Option<(String, String)>,
}

/// One file the SBOM lists: its path in the image and its digests.
pub struct File {
    pub path: String,
    pub sha256: String,
    pub sha1: String,
}

/// Hashes files on a thread of its own while the caller reads the next one: reading a big
/// release tree out of git takes about as long as hashing it, so the two overlap.
pub struct FileHasher {
    pieces: Option<std::sync::mpsc::SyncSender<Piece>>,
    thread: Option<std::thread::JoinHandle<Vec<File>>>,
}

enum Piece {
    Start(String),
    Data(Vec<u8>),
}

impl Default for FileHasher {
    fn default() -> Self {
        let (pieces, received) = std::sync::mpsc::sync_channel::<Piece>(32);
        let thread = std::thread::spawn(move || {
            let mut files = Vec::new();
            let mut current: Option<(String, sha2::Sha256, sha1::Sha1)> = None;
            let mut done = |current: Option<(String, sha2::Sha256, sha1::Sha1)>| {
                if let Some((path, sha256, sha1)) = current {
                    files.push(File {
                        path,
                        sha256: crate::digest::hex(&sha256.finalize()),
                        sha1: crate::digest::hex(&sha1.finalize()),
                    });
                }
            };
            for piece in received {
                match piece {
                    Piece::Start(path) => {
                        done(current.take());
                        current = Some((path, sha2::Sha256::new(), sha1::Sha1::new()));
                    }
                    Piece::Data(data) => {
                        if let Some((_, sha256, sha1)) = &mut current {
                            sha256.update(&data);
                            sha1.update(&data);
                        }
                    }
                }
            }
            done(current);
            files
        });
        FileHasher {
            pieces: Some(pieces),
            thread: Some(thread),
        }
    }
}

impl FileHasher {
    /// The file at `path` in the image, read from `content`.
    pub fn add(&mut self, path: String, content: &mut dyn std::io::Read) -> std::io::Result<()> {
        self.send(Piece::Start(path))?;
        loop {
            let mut buf = vec![0u8; 1 << 16];
            let n = content.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            buf.truncate(n);
            self.send(Piece::Data(buf))?;
        }
    }

    fn send(&self, piece: Piece) -> std::io::Result<()> {
        let pieces = self.pieces.as_ref().expect("not finished");
        pieces
            .send(piece)
            .map_err(|_| std::io::Error::other("the file hashing thread stopped"))
    }

    /// Every file added, in order.
    pub fn finish(mut self) -> Vec<File> {
        self.pieces = None;
        let thread = self.thread.take().expect("finish runs once");
        thread.join().unwrap_or_default()
    }
}

/// An in-toto Statement about an image, its fields in the order serde_json's maps keep
/// (sorted), so the bytes are the same as a `json!` document's.
#[derive(serde::Serialize)]
pub struct Statement<P> {
    #[serde(rename = "_type")]
    kind: &'static str,
    pub predicate: P,
    #[serde(rename = "predicateType")]
    predicate_type: &'static str,
    subject: [Value; 1],
}

/// The in-toto Statement about `subject` (`repository` at `digest`).
pub fn statement<P: serde::Serialize>(
    repository: &str,
    digest: &Digest,
    predicate_type: &'static str,
    predicate: P,
) -> Statement<P> {
    Statement {
        kind: STATEMENT,
        predicate,
        predicate_type,
        subject: [json!({ "name": repository, "digest": { digest.algorithm(): digest.hex() } })],
    }
}

/// SLSA provenance v1 of the image.
pub fn provenance(origin: &Origin, built: &Built) -> Value {
    let source = origin
        .repository_url
        .clone()
        .unwrap_or_else(|| "urn:tagpilot:local-repository".to_string());
    let mut dependencies = vec![json!({
        "uri": format!("git+{source}@{}", origin.tag.map(|t| format!("refs/tags/{t}")).unwrap_or_else(|| origin.commit.to_string())),
        "digest": { "gitCommit": origin.commit },
    })];
    if let Some(base) = &built.base_digest {
        let hex = base.trim_start_matches("sha256:");
        dependencies
            .push(json!({ "uri": format!("oci://{}", built.base), "digest": { "sha256": hex } }));
    }
    for artifact in &built.artifacts {
        dependencies.push(json!({
            "name": artifact.src,
            "uri": format!("file:{}", artifact.src),
            "digest": { "sha256": artifact.sha256 },
            "annotations": { "dest": artifact.dest, "files": artifact.files },
        }));
    }
    let byproducts: Vec<Value> = origin
        .tarball
        .iter()
        .map(|(file, sha256)| json!({ "name": file, "digest": { "sha256": sha256 } }))
        .collect();
    json!({
        "buildDefinition": {
            "buildType": "urn:tagpilot:release:v1",
            "externalParameters": {
                "tag": origin.tag,
                "source": { "uri": source, "digest": { "gitCommit": origin.commit } },
            },
            "internalParameters": {
                "tagpilot": env!("CARGO_PKG_VERSION"),
                "name": origin.name,
                "version": origin.version,
                "pipeline": origin.pipeline_url,
                "job": origin.job_url,
            },
            "resolvedDependencies": dependencies,
        },
        "runDetails": {
            "builder": { "id": origin.job_url.clone().unwrap_or_else(|| "urn:tagpilot:local".to_string()) },
            "metadata": { "invocationId": origin.job_url.clone().or(origin.pipeline_url.clone()), "startedOn": origin.time },
            "byproducts": byproducts,
        },
    })
}

/// The SPDX 2.3 SBOM of the image. Typed, not a `Value`: a release of tens of thousands of
/// files would otherwise hold a map per file, checksum and relationship (about 95 MiB for
/// 13,473 files). Fields are in sorted order, as a `json!` document's.
#[derive(serde::Serialize)]
pub struct Sbom<'a> {
    #[serde(rename = "SPDXID")]
    id: &'static str,
    #[serde(rename = "creationInfo")]
    creation_info: Value,
    #[serde(rename = "dataLicense")]
    data_license: &'static str,
    #[serde(rename = "documentNamespace")]
    document_namespace: String,
    files: Vec<SpdxFile<'a>>,
    name: String,
    packages: Vec<Value>,
    relationships: Vec<Relationship>,
    #[serde(rename = "spdxVersion")]
    spdx_version: &'static str,
}

#[derive(serde::Serialize)]
struct SpdxFile<'a> {
    #[serde(rename = "SPDXID")]
    id: String,
    checksums: [Checksum<'a>; 2],
    #[serde(rename = "fileName")]
    file_name: String,
}

#[derive(serde::Serialize)]
struct Checksum<'a> {
    algorithm: &'static str,
    #[serde(rename = "checksumValue")]
    value: &'a str,
}

#[derive(serde::Serialize)]
struct Relationship {
    #[serde(rename = "relatedSpdxElement")]
    related: String,
    #[serde(rename = "relationshipType")]
    kind: &'static str,
    #[serde(rename = "spdxElementId")]
    element: &'static str,
}

/// The SPDX 2.3 SBOM of the image: the release as a package of files, on its base.
pub fn sbom<'a>(origin: &Origin, built: &Built, files: &'a [File]) -> Sbom<'a> {
    let mut packages = vec![json!({
        "name": origin.name,
        "SPDXID": "SPDXRef-Package-release",
        "versionInfo": origin.version,
        "downloadLocation": origin.repository_url.clone().unwrap_or_else(|| "NOASSERTION".into()),
        "filesAnalyzed": false,
        "supplier": "NOASSERTION",
    })];
    let relate = |element: &'static str, kind: &'static str, related: String| Relationship {
        related,
        kind,
        element,
    };
    let mut relationships = vec![relate(
        "SPDXRef-DOCUMENT",
        "DESCRIBES",
        "SPDXRef-Package-release".into(),
    )];
    if let Some(base) = &built.base_digest {
        packages.push(json!({
            "name": built.base,
            "SPDXID": "SPDXRef-Package-base",
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "checksums": [{ "algorithm": "SHA256", "checksumValue": base.trim_start_matches("sha256:") }],
        }));
        relationships.push(relate(
            "SPDXRef-Package-release",
            "DEPENDS_ON",
            "SPDXRef-Package-base".into(),
        ));
    }
    let spdx_files: Vec<SpdxFile> = files
        .iter()
        .enumerate()
        .map(|(n, file)| {
            relationships.push(relate(
                "SPDXRef-Package-release",
                "CONTAINS",
                format!("SPDXRef-File-{n}"),
            ));
            SpdxFile {
                id: format!("SPDXRef-File-{n}"),
                checksums: [
                    Checksum {
                        algorithm: "SHA1",
                        value: &file.sha1,
                    },
                    Checksum {
                        algorithm: "SHA256",
                        value: &file.sha256,
                    },
                ],
                file_name: format!("./{}", file.path.trim_start_matches('/')),
            }
        })
        .collect();
    Sbom {
        id: "SPDXRef-DOCUMENT",
        creation_info: json!({ "created": origin.time, "creators": [format!("Tool: tagpilot-{}", env!("CARGO_PKG_VERSION"))] }),
        data_license: "CC0-1.0",
        document_namespace: format!("urn:tagpilot:sbom:{}:{}", origin.name, built.digest),
        files: spdx_files,
        name: format!("{}-{}", origin.name, origin.version),
        packages,
        relationships,
        spdx_version: "SPDX-2.3",
    }
}

/// DSSE's pre-authentication encoding, which is what is signed.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut encoded = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    encoded.extend_from_slice(payload);
    encoded
}

/// The DSSE envelope of a statement's JSON bytes, signed with `key`.
pub fn envelope(payload: &[u8], key: &SigningKey) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let signature = key.sign(&pae(DSSE_PAYLOAD_TYPE, payload));
    serde_json::to_vec(&json!({
        "payloadType": DSSE_PAYLOAD_TYPE,
        "payload": b64.encode(payload),
        "signatures": [{ "keyid": "", "sig": b64.encode(signature) }],
    }))
    .expect("an envelope is JSON")
}

/// Stores the envelopes under the image's `.att` tag; `(predicate type, added?)` for each.
pub fn store_attestations(
    client: &mut Client,
    store: &BlobStore,
    digest: &Digest,
    envelopes: &[(&str, Vec<u8>)],
    key: &SigningKey,
) -> Result<Vec<(String, bool)>> {
    let tag = super::attestation_tag(digest);
    let mut layers = super::existing_layers(client, &tag)?;
    let public = super::verify::PublicKey::of(key);
    let (held, _) = super::verify::attestations_in(client, &layers, digest, &public)?;
    let mut outcome = Vec::new();
    let mut changed = false;
    for (predicate_type, envelope) in envelopes {
        let held = held.iter().any(|s| s["predicateType"] == *predicate_type);
        if held {
            outcome.push((predicate_type.to_string(), false));
            continue;
        }
        let blob = store.put(DSSE_LAYER, envelope)?;
        super::upload(client, store, &blob.digest)?;
        layers.push(json!({
            "mediaType": DSSE_LAYER,
            "size": envelope.len(),
            "digest": blob.digest.to_string(),
            "annotations": { "predicateType": predicate_type, super::SIGNATURE_ANNOTATION: "" },
        }));
        outcome.push((predicate_type.to_string(), true));
        changed = true;
    }
    if changed {
        super::put_image(client, store, &tag, &layers)?;
    }
    Ok(outcome)
}

/// Attaches signed attestations (DSSE envelopes) to the pushed image; whether each was added.
pub fn attach(
    built: &Built,
    image: &crate::spec::image::ImageSpec,
    env: &crate::env::Env,
    envelopes: &[(&str, Vec<u8>)],
    key: &SigningKey,
) -> Result<Vec<(String, bool)>> {
    let reference = crate::image::push_repository(image, env)?;
    let mut client = crate::image::registry_client(&reference, image, env)?;
    let store = BlobStore::open(&built.layout)?;
    store_attestations(&mut client, &store, &built.digest, envelopes, key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pre_authentication_encoding_is_dsse_s() {
        // The example in the DSSE protocol document.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn files_are_hashed_in_order_whole() {
        let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let contents: [&[u8]; 3] = [b"one\n", b"", &big];
        let mut hasher = FileHasher::default();
        for (i, content) in contents.iter().enumerate() {
            hasher.add(format!("f{i}"), &mut &content[..]).unwrap();
        }
        let files = hasher.finish();
        assert_eq!(files.len(), 3);
        for (i, (file, content)) in files.iter().zip(contents).enumerate() {
            assert_eq!(file.path, format!("f{i}"));
            assert_eq!(file.sha256, crate::digest::sha256_hex(content));
            assert_eq!(file.sha1, crate::digest::hex(&sha1::Sha1::digest(content)));
        }
    }
}
