//! Checking an image's signatures and attestations with a public key, reading the registry
//! only: cosign's `sha256-<hex>.sig` image (a simple-signing payload that names this digest and
//! repository, signed by the key) and `sha256-<hex>.att` image (DSSE envelopes signed by the
//! key, whose in-toto Statement has this digest as its subject).

use std::io::Read;

use base64::Engine;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::oci::digest::Digest;
use crate::oci::registry::Client;

use super::attest::pae;
use super::SIGNATURE_ANNOTATION;

/// A public key read from a PEM file (`cosign.pub`).
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// The public half of a signing key.
    pub fn of(key: &super::SigningKey) -> PublicKey {
        PublicKey(key.verifying_key())
    }

    pub fn read(path: &std::path::Path) -> Result<PublicKey> {
        let pem = std::fs::read_to_string(path).map_err(|e| Error::io("read the key", path, e))?;
        VerifyingKey::from_public_key_pem(&pem)
            .map(PublicKey)
            .map_err(|e| {
                Error::input(format!(
                    "{} is not an ECDSA P-256 public key in PEM ({e})",
                    path.display()
                ))
            })
    }

    fn verifies(&self, message: &[u8], der: &[u8]) -> bool {
        Signature::from_der(der).is_ok_and(|s| self.0.verify(message, &s).is_ok())
    }
}

/// Whether `digest` has a signature by `key` for `repository`; the reason when not.
pub fn signed(
    client: &mut Client,
    repository: &str,
    digest: &Digest,
    key: &PublicKey,
) -> Result<std::result::Result<(), String>> {
    let tag = super::signature_tag(digest);
    let layers = super::existing_layers(client, &tag)?;
    if layers.is_empty() {
        return Ok(Err(format!(
            "{digest} has no signature ({repository}:{tag})"
        )));
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    for layer in &layers {
        if layer["mediaType"] != super::SIMPLE_SIGNING {
            continue;
        }
        let Some(payload) = blob(client, layer)? else {
            continue;
        };
        let Ok(claim) = serde_json::from_slice::<Value>(&payload) else {
            continue;
        };
        let critical = &claim["critical"];
        let names_us = critical["type"] == "cosign container image signature"
            && critical["image"]["docker-manifest-digest"] == digest.as_str()
            && critical["identity"]["docker-reference"] == repository;
        let signature = layer["annotations"][SIGNATURE_ANNOTATION]
            .as_str()
            .and_then(|s| b64.decode(s).ok())
            .unwrap_or_default();
        if names_us && key.verifies(&payload, &signature) {
            return Ok(Ok(()));
        }
    }
    Ok(Err(format!(
        "no signature of {digest} for {repository} by this key ({} signature(s) there)",
        layers.len()
    )))
}

/// The in-toto Statements attached to `digest` whose envelopes `key` signed and whose subject
/// is `digest`; the others are counted.
pub fn attestations(
    client: &mut Client,
    digest: &Digest,
    key: &PublicKey,
) -> Result<(Vec<Value>, usize)> {
    let layers = super::existing_layers(client, &super::attestation_tag(digest))?;
    attestations_in(client, &layers, digest, key)
}

/// The same, of the layers of an attestation image already read.
pub fn attestations_in(
    client: &mut Client,
    layers: &[Value],
    digest: &Digest,
    key: &PublicKey,
) -> Result<(Vec<Value>, usize)> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut good = Vec::new();
    let mut bad = 0;
    for layer in layers {
        let envelope = blob(client, layer)?
            .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
            .unwrap_or(Value::Null);
        let payload = envelope["payload"]
            .as_str()
            .and_then(|p| b64.decode(p).ok())
            .unwrap_or_default();
        let encoded = pae(
            envelope["payloadType"].as_str().unwrap_or_default(),
            &payload,
        );
        let signed = envelope["signatures"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["sig"].as_str().and_then(|sig| b64.decode(sig).ok()))
            .any(|der| key.verifies(&encoded, &der));
        let statement: Value = serde_json::from_slice(&payload).unwrap_or(Value::Null);
        let about_us = statement["subject"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|s| s["digest"][digest.algorithm()] == digest.hex());
        if signed && about_us {
            good.push(statement);
        } else {
            bad += 1;
        }
    }
    Ok((good, bad))
}

/// A layer's blob, checked against its digest; `None` when it is not there.
fn blob(client: &mut Client, layer: &Value) -> Result<Option<Vec<u8>>> {
    let Some(Ok(digest)) = layer["digest"].as_str().map(Digest::parse) else {
        return Ok(None);
    };
    let mut bytes = Vec::new();
    client
        .get_blob(&digest)?
        .read_to_end(&mut bytes)
        .map_err(|e| Error::failed(format!("could not read blob {digest}: {e}")))?;
    if crate::oci::blobs::check_bytes(&digest, &bytes).is_err() {
        return Ok(None);
    }
    Ok(Some(bytes))
}
