//! A registry client for the OCI distribution API, as far as pushing needs it: blob existence,
//! monolithic streamed uploads (chunked when a proxy refuses a big body), manifests, mounts.
//! The transport below it (scheme, authentication, retries) is `transport`.

use std::fs::File;
use std::path::Path;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::net::{self, retryable_status};

use super::auth::Credential;
use super::digest::Digest;
use super::reference::Reference;
use super::transport::{header, Payload, Transport};
use crate::ui::transfers::Transfer;

pub use super::transport::Connection;

/// Bytes per `PATCH` when a registry refuses one big upload.
const CHUNK: usize = 8 << 20;

/// Attempts per request that can be replayed.
const ATTEMPTS: u32 = 5;

/// Every manifest type we push or read.
const MANIFEST_TYPES: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

#[derive(Clone)]
pub struct Client {
    transport: Transport,
}

impl Client {
    pub fn new(
        reference: &Reference,
        credential: Option<Credential>,
        connection: &Connection,
    ) -> Result<Client> {
        Ok(Client {
            transport: Transport::new(reference, credential, connection)?,
        })
    }

    /// Lets this client's tokens also pull from `repository` (to mount blobs from it).
    pub fn also_pull(&mut self, repository: &str) {
        self.transport.also_pull(repository);
    }

    pub fn reference(&self) -> &Reference {
        &self.transport.reference
    }

    fn repo_url(&self, path: &str) -> String {
        let transport = &self.transport;
        format!(
            "{}/v2/{}/{path}",
            transport.base, transport.reference.repository
        )
    }

    /// `true` if the repository has the blob.
    pub fn has_blob(&mut self, digest: &Digest) -> Result<bool> {
        let url = self.repo_url(&format!("blobs/{digest}"));
        let response =
            self.transport
                .send("HEAD", &url, &[], Payload::None, "check a blob", ATTEMPTS)?;
        match response.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(self
                .transport
                .refusal(response, &format!("check blob {digest}"))),
        }
    }

    /// Uploads a blob from a file in one streamed PUT (the most widely accepted way). A PUT
    /// that breaks off leaves its upload session in an unknown state, so a retry starts a new
    /// session rather than repeating the PUT.
    pub fn upload_blob(
        &mut self,
        digest: &Digest,
        path: &Path,
        shown: Option<&Transfer>,
    ) -> Result<()> {
        let headers = [("Content-Type", "application/octet-stream")];
        let mut attempt = 0;
        loop {
            attempt += 1;
            let location = self.open_upload(digest)?;
            let url = with_digest(&location, digest);
            let payload = match shown {
                Some(transfer) => Payload::Shown(path, transfer),
                None => Payload::File(path),
            };
            let outcome = self
                .transport
                .send("PUT", &url, &headers, payload, "upload a blob", 1);
            match outcome {
                Ok(response) if matches!(response.status().as_u16(), 201 | 204) => return Ok(()),
                // Too big for one request (a proxy's body limit): send it in chunks instead.
                Ok(response) if response.status().as_u16() == 413 => {
                    return self.upload_chunked(digest, path, shown)
                }
                Ok(response)
                    if attempt < ATTEMPTS
                        && (retryable_status(response.status().as_u16())
                            || response.status().as_u16() == 404) => {}
                Ok(response) => {
                    return Err(self
                        .transport
                        .refusal(response, &format!("upload blob {digest}")))
                }
                Err(_) if attempt < ATTEMPTS => {}
                Err(e) => return Err(e),
            }
            net::retry::pause(attempt);
        }
    }

    /// Uploads a blob in `PATCH` chunks (`Content-Range: first-last`, inclusive), following the
    /// newest `Location` after each, then closes the session with `PUT ?digest=`.
    fn upload_chunked(
        &mut self,
        digest: &Digest,
        path: &Path,
        shown: Option<&Transfer>,
    ) -> Result<()> {
        use std::io::Read;
        if let Some(transfer) = shown {
            transfer.restart();
        }
        let mut location = self.open_upload(digest)?;
        let mut file = File::open(path).map_err(|e| Error::io("read", path, e))?;
        let mut chunk = vec![0u8; CHUNK];
        let mut offset = 0u64;
        loop {
            let mut filled = 0;
            while filled < chunk.len() {
                match file
                    .read(&mut chunk[filled..])
                    .map_err(|e| Error::io("read", path, e))?
                {
                    0 => break,
                    n => filled += n,
                }
            }
            if filled == 0 {
                break;
            }
            let range = format!("{offset}-{}", offset + filled as u64 - 1);
            let headers = [
                ("Content-Type", "application/octet-stream"),
                ("Content-Range", range.as_str()),
            ];
            let response = self.transport.send(
                "PATCH",
                &location,
                &headers,
                Payload::Bytes(&chunk[..filled]),
                "upload a chunk",
                1,
            )?;
            if response.status().as_u16() != 202 {
                return Err(self
                    .transport
                    .refusal(response, &format!("upload bytes {range} of blob {digest}")));
            }
            location = self.transport.location(&response)?;
            offset += filled as u64;
            if let Some(transfer) = shown {
                transfer.advance(filled as u64);
            }
        }
        let url = with_digest(&location, digest);
        let response = self.transport.send(
            "PUT",
            &url,
            &[],
            Payload::Bytes(&[]),
            "finish a chunked upload",
            ATTEMPTS,
        )?;
        match response.status().as_u16() {
            201 | 204 => Ok(()),
            _ => Err(self
                .transport
                .refusal(response, &format!("finish the upload of blob {digest}"))),
        }
    }

    /// Opens an upload session; returns its location.
    fn open_upload(&mut self, digest: &Digest) -> Result<String> {
        let start = self.repo_url("blobs/uploads/");
        let response = self.transport.send(
            "POST",
            &start,
            &[],
            Payload::None,
            "start an upload",
            ATTEMPTS,
        )?;
        if response.status().as_u16() != 202 {
            return Err(self
                .transport
                .refusal(response, &format!("start the upload of blob {digest}")));
        }
        self.transport.location(&response)
    }

    /// The digest a tag (or digest) points at now, or `None` if it does not exist.
    pub fn manifest_digest(&mut self, reference: &str) -> Result<Option<String>> {
        let url = self.repo_url(&format!("manifests/{reference}"));
        let response = self.transport.send(
            "HEAD",
            &url,
            &[("Accept", MANIFEST_TYPES)],
            Payload::None,
            "check a tag",
            ATTEMPTS,
        )?;
        match response.status().as_u16() {
            200 => Ok(response
                .headers()
                .get("Docker-Content-Digest")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)),
            404 => Ok(None),
            _ => Err(self
                .transport
                .refusal(response, &format!("check tag {reference}"))),
        }
    }

    /// A manifest's exact bytes, its media type and its digest (from the registry's header, or
    /// computed when it sends none).
    pub fn get_manifest(&mut self, reference: &str) -> Result<(Vec<u8>, String, Digest)> {
        let url = self.repo_url(&format!("manifests/{reference}"));
        let response = self.transport.send(
            "GET",
            &url,
            &[("Accept", MANIFEST_TYPES)],
            Payload::None,
            "read a manifest",
            ATTEMPTS,
        )?;
        if response.status().as_u16() != 200 {
            return Err(self
                .transport
                .refusal(response, &format!("read manifest {reference}")));
        }
        let media_type = header(&response, "Content-Type").unwrap_or_default();
        let bytes = response
            .into_body()
            .with_config()
            .limit(8 << 20)
            .read_to_vec()
            .map_err(|e| {
                Error::failed(format!(
                    "{}: could not read manifest {reference}: {e}",
                    self.transport.reference
                ))
            })?;
        let digest = Digest::sha256(&crate::digest::sha256_hex(&bytes));
        if reference.contains(':') && digest != *reference {
            return Err(Error::failed(format!(
                "{}: the registry sent a manifest whose digest is {digest}, not the {reference} asked for",
                self.transport.reference
            )));
        }
        Ok((bytes, media_type, digest))
    }

    /// A blob as a stream of its bytes (a config, or a layer to copy elsewhere).
    pub fn get_blob(&mut self, digest: &Digest) -> Result<impl std::io::Read + use<>> {
        let url = self.repo_url(&format!("blobs/{digest}"));
        let response =
            self.transport
                .send("GET", &url, &[], Payload::None, "read a blob", ATTEMPTS)?;
        if response.status().as_u16() != 200 {
            return Err(self
                .transport
                .refusal(response, &format!("read blob {digest}")));
        }
        Ok(response
            .into_body()
            .into_with_config()
            .limit(u64::MAX)
            .reader())
    }

    /// Asks the registry to link a blob from another repository on it. `Ok(true)` when it did
    /// (201); `Ok(false)` when it opened an upload instead (a legal 202) or cannot mount.
    pub fn mount_blob(&mut self, digest: &Digest, from: &str) -> Result<bool> {
        let url = self.repo_url(&format!(
            "blobs/uploads/?mount={}&from={from}",
            digest.as_str().replace(':', "%3A")
        ));
        let response =
            self.transport
                .send("POST", &url, &[], Payload::None, "mount a blob", ATTEMPTS)?;
        Ok(response.status().as_u16() == 201)
    }

    /// Uploads a blob streamed from `source` (another registry), `size` bytes long.
    pub fn upload_blob_from(
        &mut self,
        digest: &Digest,
        size: u64,
        source: &mut dyn std::io::Read,
    ) -> Result<()> {
        let location = self.open_upload(digest)?;
        let url = with_digest(&location, digest);
        let response = self.transport.put_stream(&url, size, source).map_err(|e| {
            Error::failed(format!(
                "{}: could not copy blob {digest}: {e}",
                self.transport.reference
            ))
        })?;
        match response.status().as_u16() {
            201 | 204 => Ok(()),
            _ => Err(self
                .transport
                .refusal(response, &format!("copy blob {digest}"))),
        }
    }

    /// Puts a manifest's exact bytes under `reference` (a tag or its digest).
    pub fn put_manifest(&mut self, reference: &str, media_type: &str, bytes: &[u8]) -> Result<()> {
        let url = self.repo_url(&format!("manifests/{reference}"));
        let headers = [("Content-Type", media_type)];
        let response = self.transport.send(
            "PUT",
            &url,
            &headers,
            Payload::Bytes(bytes),
            "put a manifest",
            ATTEMPTS,
        )?;
        match response.status().as_u16() {
            201 | 200 | 204 => Ok(()),
            _ => Err(self
                .transport
                .refusal(response, &format!("put manifest {reference}"))),
        }
    }
}

/// An upload location with `digest=` added, to close the session (it may carry a query already).
fn with_digest(location: &str, digest: &Digest) -> String {
    let separator = if location.contains('?') { '&' } else { '?' };
    format!(
        "{location}{separator}digest={}",
        digest.as_str().replace(':', "%3A")
    )
}

/// A registry's documents, for choosing a base from it.
impl super::base::Documents for Client {
    fn manifest(&mut self, digest: &Digest) -> Result<Value> {
        let (bytes, _, _) = self.get_manifest(digest.as_str())?;
        serde_json::from_slice(&bytes).map_err(|e| {
            Error::failed(format!(
                "{}: manifest {digest} is not JSON: {e}",
                self.transport.reference
            ))
        })
    }

    fn config(&mut self, digest: &Digest) -> Result<Value> {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(
            &mut std::io::Read::take(self.get_blob(digest)?, 8 << 20),
            &mut bytes,
        )
        .map_err(|e| {
            Error::failed(format!(
                "{}: could not read config {digest}: {e}",
                self.transport.reference
            ))
        })?;
        // A config decides the entrypoint and environment: take only the one the manifest names.
        super::blobs::check_bytes(digest, &bytes)
            .map_err(|e| e.context(format!("{}: config {digest}", self.transport.reference)))?;
        serde_json::from_slice(&bytes).map_err(|e| {
            Error::failed(format!(
                "{}: config {digest} is not JSON: {e}",
                self.transport.reference
            ))
        })
    }
}
