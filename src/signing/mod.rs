//! Signing pushed images the way `cosign sign --key` stores signatures, so cosign, skopeo and
//! podman (`sigstoreSigned` policies with `use-sigstore-attachments`) verify them: for each
//! signed digest, cosign's "simple signing" payload is a layer (media type
//! `application/vnd.dev.cosign.simplesigning.v1+json`) of an image tagged `sha256-<hex>.sig`
//! in the image's repository, with the signature in its `dev.cosignproject.cosign/signature`
//! annotation. This tag form works on every registry, GitLab's included (no referrers API).
//! Signatures use RFC 6979 nonces, so a re-run makes the same layer and adds nothing.
//! Keyless signing (Fulcio certificates, Rekor entries) is not done: neither runs here to
//! test it against.

pub mod attest;
pub mod key;
pub mod verify;

use base64::Engine;
use serde_json::{json, Value};

use crate::digest::sha256_hex;
use crate::error::{Error, Result};
use crate::oci::blobs::BlobStore;
use crate::oci::digest::Digest;
use crate::oci::registry::Client;

pub use crate::oci::attached::Signature;
pub use key::SigningKey;

pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// cosign's payload for `digest` in `repository` (`registry/path`), byte for byte as cosign
/// writes it.
pub fn payload(repository: &str, digest: &Digest) -> Vec<u8> {
    let value = json!({
        "critical": {
            "identity": { "docker-reference": repository },
            "image": { "docker-manifest-digest": digest.to_string() },
            "type": "cosign container image signature",
        },
        "optional": null,
    });
    serde_json::to_vec(&value).expect("the payload is JSON")
}

/// The tag cosign keeps a digest's signatures under.
pub fn signature_tag(digest: &Digest) -> String {
    digest.to_string().replacen(':', "-", 1) + ".sig"
}

/// The tag cosign keeps a digest's attestations under.
pub fn attestation_tag(digest: &Digest) -> String {
    digest.to_string().replacen(':', "-", 1) + ".att"
}

/// Signs `digest` in the client's repository, adding a layer to its signature image unless
/// the same signature is there already. `store` holds the blobs on the way up.
pub fn sign_digest(
    client: &mut Client,
    store: &BlobStore,
    repository: &str,
    digest: &Digest,
    key: &SigningKey,
) -> Result<Signature> {
    let payload = payload(repository, digest);
    let signature = base64::engine::general_purpose::STANDARD.encode(key.sign(&payload));
    let payload_digest = format!("sha256:{}", sha256_hex(&payload));
    let tag = signature_tag(digest);
    let stored_at = format!("{repository}:{tag}");
    let mut layers = existing_layers(client, &tag)?;
    let already = layers.iter().any(|layer| {
        layer["digest"] == payload_digest.as_str()
            && layer["annotations"][SIGNATURE_ANNOTATION]
                .as_str()
                .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
                .is_some_and(|der| key.signed(&payload, &der))
    });
    if already {
        return Ok(Signature {
            digest: digest.to_string(),
            stored_at,
            status: "already_signed".into(),
        });
    }
    let layer = store.put(SIMPLE_SIGNING, &payload)?;
    upload(client, store, &layer.digest)?;
    layers.push(json!({
        "mediaType": SIMPLE_SIGNING,
        "size": payload.len(),
        "digest": payload_digest,
        "annotations": { SIGNATURE_ANNOTATION: signature },
    }));
    put_image(client, store, &tag, &layers)?;
    Ok(Signature {
        digest: digest.to_string(),
        stored_at,
        status: "signed".into(),
    })
}

/// Puts an image of `layers` (cosign's signature or attestation image) under `tag`.
fn put_image(client: &mut Client, store: &BlobStore, tag: &str, layers: &[Value]) -> Result<()> {
    let diff_ids: Vec<&Value> = layers.iter().map(|l| &l["digest"]).collect();
    let config = serde_json::to_vec(&json!({
        "architecture": "",
        "config": {},
        "created": "0001-01-01T00:00:00Z",
        "history": layers.iter().map(|_| json!({ "created": "0001-01-01T00:00:00Z" })).collect::<Vec<_>>(),
        "os": "",
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    }))
    .expect("the config is JSON");
    let config = store.put(OCI_CONFIG, &config)?;
    upload(client, store, &config.digest)?;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": { "mediaType": OCI_CONFIG, "size": config.size, "digest": config.digest.to_string() },
        "layers": layers,
    }))
    .expect("the manifest is JSON");
    client.put_manifest(tag, OCI_MANIFEST, &manifest)
}

/// The layers of the image already under `tag` (signatures or attestations), if there is one.
fn existing_layers(client: &mut Client, tag: &str) -> Result<Vec<Value>> {
    if client.manifest_digest(tag)?.is_none() {
        return Ok(Vec::new());
    }
    let (bytes, _, _) = client.get_manifest(tag)?;
    let manifest: Value = serde_json::from_slice(&bytes)
        .map_err(|e| Error::failed(format!("the signature image {tag} is not a manifest: {e}")))?;
    Ok(manifest["layers"].as_array().cloned().unwrap_or_default())
}

fn upload(client: &mut Client, store: &BlobStore, digest: &Digest) -> Result<()> {
    if !client.has_blob(digest)? {
        client.upload_blob(digest, &store.path(digest), None)?;
    }
    Ok(())
}

/// Signs the pushed image: the index (or the one manifest) and each platform manifest in it.
pub fn sign_pushed(
    built: &crate::image::Built,
    image: &crate::spec::image::ImageSpec,
    env: &crate::env::Env,
    key: &SigningKey,
) -> Result<Vec<Signature>> {
    let reference = crate::image::push_repository(image, env)?;
    let mut client = crate::image::registry_client(&reference, image, env)?;
    let store = BlobStore::open(&built.layout)?;
    let repository = format!("{}/{}", reference.registry, reference.repository);
    let mut digests = vec![built.digest.clone()];
    let top: serde_json::Value = serde_json::from_slice(&store.read(&built.digest)?)
        .map_err(|e| Error::failed(format!("the pushed image's top document: {e}")))?;
    for manifest in top["manifests"].as_array().into_iter().flatten() {
        let digest = manifest["digest"].as_str().unwrap_or_default();
        digests.push(
            crate::oci::digest::Digest::parse(digest)
                .map_err(|why| Error::failed(format!("index entry {digest}: {why}")))?,
        );
    }
    digests
        .iter()
        .map(|digest| sign_digest(&mut client, &store, &repository, digest, key))
        .collect()
}
