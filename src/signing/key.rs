//! The signing key, from the variable `image.sign.key` names: PEM text, or the path of a file
//! holding it (GitLab's file-type variables). An ECDSA P-256 key as PKCS#8 (`PRIVATE KEY`) or
//! SEC1 (`EC PRIVATE KEY`), or cosign's encrypted key (`ENCRYPTED SIGSTORE PRIVATE KEY`, or
//! the older `ENCRYPTED COSIGN PRIVATE KEY`): JSON naming scrypt (`N`, `r`, `p`, salt) and NaCl
//! secretbox (nonce) around the PKCS#8 key, opened with the password from
//! `image.sign.password`. Errors name the variables, never what they hold.

use base64::Engine;
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{Signature, SigningKey as EcdsaKey, VerifyingKey};
use p256::pkcs8::DecodePrivateKey;
use serde::Deserialize;

use crate::env::Env;
use crate::error::{Error, Result};
use crate::spec::image::SignSpec;

pub struct SigningKey {
    key: EcdsaKey,
    /// `COSIGN_KEY`, or `COSIGN_KEY (file /path)`: where the key came from, for messages.
    pub source: String,
}

impl SigningKey {
    /// Loads and, for a cosign key, decrypts the key. Everything wrong with it is an input
    /// error (exit 2), found before anything is pushed or signed.
    pub fn load(spec: &SignSpec, env: &Env) -> Result<SigningKey> {
        let variable = spec.key.as_str();
        let value = env.lookup(variable).ok_or_else(|| {
            Error::input(format!(
                "image.sign.key names {variable}, which is not set: no image is signed"
            ))
            .with_hint("Set it to the private key (PEM) or to the path of its file, as a masked, protected CI/CD variable")
        })?;
        let (pem, source) = if value.trim_start().starts_with("-----BEGIN") {
            (value, variable.to_string())
        } else {
            let text = std::fs::read_to_string(&value).map_err(|e| {
                Error::input(format!(
                    "image.sign.key: {variable} holds neither a PEM key nor the path of a readable file ({e})"
                ))
            })?;
            (text, format!("{variable} (file {value})"))
        };
        let key = parse(&pem, spec, env, &source)?;
        Ok(SigningKey { key, source })
    }

    /// The DER ECDSA signature of `payload` (SHA-256). RFC 6979 nonces: the same payload
    /// signed again gives the same bytes.
    pub fn sign(&self, payload: &[u8]) -> Vec<u8> {
        let signature: Signature = self.key.sign(payload);
        signature.to_der().as_bytes().to_vec()
    }

    /// Whether `der` is this key's signature of `payload`.
    pub fn signed(&self, payload: &[u8], der: &[u8]) -> bool {
        Signature::from_der(der).is_ok_and(|s| self.key.verifying_key().verify(payload, &s).is_ok())
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        *self.key.verifying_key()
    }
}

fn parse(pem: &str, spec: &SignSpec, env: &Env, source: &str) -> Result<EcdsaKey> {
    let label = pem
        .trim_start()
        .strip_prefix("-----BEGIN ")
        .and_then(|rest| rest.split_once("-----"))
        .map(|(label, _)| label)
        .unwrap_or("");
    let not_p256 = |why: String| {
        Error::input(format!(
            "image.sign.key: the key in {source} is not an ECDSA P-256 private key ({why})"
        ))
    };
    match label {
        "PRIVATE KEY" => EcdsaKey::from_pkcs8_pem(pem).map_err(|e| not_p256(e.to_string())),
        "EC PRIVATE KEY" => p256::SecretKey::from_sec1_pem(pem)
            .map(EcdsaKey::from)
            .map_err(|e| not_p256(e.to_string())),
        "ENCRYPTED SIGSTORE PRIVATE KEY" | "ENCRYPTED COSIGN PRIVATE KEY" => {
            let der = decrypt_cosign(pem, spec, env, source)?;
            EcdsaKey::from_pkcs8_der(&der).map_err(|e| not_p256(e.to_string()))
        }
        "ENCRYPTED PRIVATE KEY" => Err(Error::input(format!(
            "image.sign.key: the key in {source} is a password-protected PKCS#8 key; give it unencrypted (a masked variable) or as cosign's encrypted key"
        ))),
        other => Err(not_p256(format!("a PEM block `{other}`"))),
    }
}

#[derive(Deserialize)]
struct Encrypted {
    kdf: Kdf,
    cipher: Cipher,
    ciphertext: String,
}

#[derive(Deserialize)]
struct Kdf {
    name: String,
    params: KdfParams,
    salt: String,
}

#[derive(Deserialize)]
#[allow(non_snake_case)] // cosign's own field names
struct KdfParams {
    N: u64,
    r: u32,
    p: u32,
}

#[derive(Deserialize)]
struct Cipher {
    name: String,
    nonce: String,
}

/// Opens cosign's encrypted key: scrypt turns the password into the secretbox key.
fn decrypt_cosign(pem: &str, spec: &SignSpec, env: &Env, source: &str) -> Result<Vec<u8>> {
    use crypto_secretbox::aead::{Aead, KeyInit};
    let b64 = base64::engine::general_purpose::STANDARD;
    let malformed = |why: &str| {
        Error::input(format!(
            "image.sign.key: the cosign key in {source} is malformed ({why})"
        ))
    };
    let body: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----") && !l.trim().is_empty())
        .collect();
    let json = b64
        .decode(body.trim())
        .map_err(|_| malformed("not base64"))?;
    let encrypted: Encrypted =
        serde_json::from_slice(&json).map_err(|e| malformed(&e.to_string()))?;
    if encrypted.kdf.name != "scrypt" || encrypted.cipher.name != "nacl/secretbox" {
        return Err(malformed("not scrypt and nacl/secretbox"));
    }
    let Some(variable) = &spec.password else {
        return Err(Error::input(format!(
            "image.sign.key: the key in {source} is cosign's encrypted key, and image.sign.password names no variable with its password"
        )));
    };
    let password = env.lookup(variable.as_str()).ok_or_else(|| {
        Error::input(format!(
            "image.sign.password names {variable}, which is not set"
        ))
    })?;
    let params = &encrypted.kdf.params;
    if !params.N.is_power_of_two() || params.N < 2 {
        return Err(malformed("scrypt N is not a power of two"));
    }
    let params = scrypt::Params::new(params.N.trailing_zeros() as u8, params.r, params.p)
        .map_err(|e| malformed(&e.to_string()))?;
    let salt = b64
        .decode(&encrypted.kdf.salt)
        .map_err(|_| malformed("salt"))?;
    let mut secret = [0u8; 32];
    scrypt::scrypt(password.as_bytes(), &salt, &params, &mut secret)
        .map_err(|e| malformed(&e.to_string()))?;
    let nonce = b64
        .decode(&encrypted.cipher.nonce)
        .map_err(|_| malformed("nonce"))?;
    if nonce.len() != 24 {
        return Err(malformed("the nonce is not 24 bytes"));
    }
    let ciphertext = b64
        .decode(&encrypted.ciphertext)
        .map_err(|_| malformed("ciphertext"))?;
    crypto_secretbox::XSalsa20Poly1305::new((&secret).into())
        .decrypt(nonce.as_slice().into(), ciphertext.as_slice())
        .map_err(|_| {
            Error::input(format!(
                "image.sign.password: the password in {variable} does not open the cosign key in {source}"
            ))
        })
}
