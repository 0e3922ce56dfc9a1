//! Pushes an image from the local blob store to a registry, in the order that never leaves a
//! tag pointing at something incomplete: every blob first (skipping those the registry has),
//! then each platform's manifest by digest, then the index or manifest under each tag.
//! A released version tag that already names other bytes is refused before anything is sent.
//! A rehearsal makes every check and every read, and stops before the first write.
//! Blobs go up to [`PARALLEL_UPLOADS`] at a time, each on a clone of the client.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Instant;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::mode::Mode;
use crate::ui::transfers::Transfer;
use crate::ui::{human_bytes, Ui};

use super::blobs::BlobStore;
use super::digest::Digest;
use super::registry::Client;
use super::{Descriptor, DOCKER_LIST, OCI_INDEX};

#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Pushed {
    /// `registry/repository@sha256:…`: the pinned reference of what was pushed.
    pub reference: String,
    pub tags: Vec<String>,
    /// (In a rehearsal: the blobs that would be uploaded.)
    pub uploaded_blobs: u64,
    pub uploaded_bytes: u64,
    /// Base blobs linked from the base's repository on the same registry (no bytes moved).
    pub mounted_blobs: u64,
    /// Base blobs streamed from the base's registry to this one.
    pub copied_blobs: u64,
    pub copied_bytes: u64,
    /// Blobs the registry already had.
    pub skipped_blobs: u64,
    /// The signatures of what was pushed (`image.sign`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signatures: Vec<super::attached::Signature>,
    /// Its provenance and SBOM: written to the output folder, attached when signed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attestations: Vec<super::attached::Attestation>,
}

impl Pushed {
    /// Nothing had to be sent: the registry had it all.
    pub fn was_already_there(&self) -> bool {
        self.uploaded_blobs + self.mounted_blobs + self.copied_blobs == 0
    }
}

/// Where base layers that are not in the local layout come from.
#[derive(Clone)]
pub struct BaseBlobs {
    pub client: Client,
    /// The base's repository, to mount from when it is on the same registry.
    pub repository: String,
    pub same_registry: bool,
}

/// What to push and how.
pub struct Push<'a> {
    pub store: &'a BlobStore,
    pub top: &'a Descriptor,
    /// `registry/repository`, for the pinned reference.
    pub repository: String,
    pub tags: &'a [String],
    /// Tags that name this release and must never move (the rest are moving tags).
    pub immutable: &'a [String],
    /// Replace an immutable tag that names other bytes.
    pub force: bool,
    pub mode: Mode,
}

/// A manifest to put: its digest, media type and exact bytes.
type Manifest = (Digest, String, Vec<u8>);

/// Pushes in the safe order: check the version tags, every blob, the platform manifests,
/// then the tags. A rehearsal makes the same checks and reads and stops before the first
/// write.
pub fn push(
    client: &mut Client,
    job: &Push,
    base: Option<&mut BaseBlobs>,
    ui: &Ui,
) -> Result<Pushed> {
    check_version_tags(client, job)?;
    let top_bytes = job.store.read(&job.top.digest)?;
    let manifests = manifests_under(job, &top_bytes)?;
    let mut report = Pushed {
        reference: format!("{}@{}", job.repository, job.top.digest),
        tags: job.tags.to_vec(),
        ..Pushed::default()
    };
    let mut missing = Vec::new();
    for (digest, size) in blobs_of(&manifests)? {
        if client.has_blob(&digest)? {
            report.skipped_blobs += 1;
        } else if job.mode.rehearsing() {
            report.uploaded_blobs += 1;
            report.uploaded_bytes += size;
        } else {
            missing.push((digest, size));
        }
    }
    send_blobs(client, job, base.as_deref(), &missing, &mut report, ui)?;
    if job.mode.rehearsing() {
        ui.info(&format!(
            "dry run: {} would get {} blob(s) ({}); {} already there; nothing was pushed",
            job.repository,
            report.uploaded_blobs,
            human_bytes(report.uploaded_bytes),
            report.skipped_blobs
        ));
        return Ok(report);
    }
    if manifests.len() > 1 || manifests[0].0 != job.top.digest {
        for (digest, media_type, bytes) in &manifests {
            client.put_manifest(digest.as_str(), media_type, bytes)?;
        }
    }
    for tag in job.tags {
        client.put_manifest(tag, &job.top.media_type, &top_bytes)?;
    }
    ui.info(&format!(
        "pushed {} as {}: {} blob(s) uploaded ({}), {} mounted, {} copied ({}), {} already there",
        report.reference,
        job.tags.join(", "),
        report.uploaded_blobs,
        human_bytes(report.uploaded_bytes),
        report.mounted_blobs,
        report.copied_blobs,
        human_bytes(report.copied_bytes),
        report.skipped_blobs
    ));
    Ok(report)
}

/// A released version tag that already names other bytes stops the push before anything is
/// sent (unless `--force`).
fn check_version_tags(client: &mut Client, job: &Push) -> Result<()> {
    for tag in job.immutable {
        let Some(existing) = client.manifest_digest(tag)? else {
            continue;
        };
        if job.top.digest != existing && !job.force {
            return Err(Error::input(format!(
                "{}:{tag} already exists as {existing}: the version tag {tag} already names other bytes than this build ({}), and released versions are immutable, so nothing was pushed",
                job.repository, job.top.digest
            ))
            .with_hint("If the old image is wrong and nobody runs it, push with --force; otherwise release a new version")
            .with_hint(crate::gzip::FIXED_CUTS_HINT));
        }
    }
    Ok(())
}

/// The platform manifests under the top document: the index's children, or the manifest.
fn manifests_under(job: &Push, top_bytes: &[u8]) -> Result<Vec<Manifest>> {
    if job.top.media_type != OCI_INDEX && job.top.media_type != DOCKER_LIST {
        let top = &job.top;
        return Ok(vec![(
            top.digest.clone(),
            top.media_type.clone(),
            top_bytes.to_vec(),
        )]);
    }
    let index: Value = parse(top_bytes, &job.top.digest)?;
    let mut manifests = Vec::new();
    for child in index["manifests"].as_array().cloned().unwrap_or_default() {
        let child: Descriptor = serde_json::from_value(child).map_err(|e| {
            Error::failed(format!("bad descriptor in index {}: {e}", job.top.digest))
        })?;
        let bytes = job.store.read(&child.digest)?;
        manifests.push((child.digest, child.media_type, bytes));
    }
    Ok(manifests)
}

/// Every blob the manifests name (configs and layers), once each, with its size.
fn blobs_of(manifests: &[Manifest]) -> Result<Vec<(Digest, u64)>> {
    let mut blobs = Vec::new();
    let mut seen = BTreeSet::new();
    for (digest, _, bytes) in manifests {
        let manifest: Value = parse(bytes, digest)?;
        let descriptors = std::iter::once(&manifest["config"])
            .chain(manifest["layers"].as_array().into_iter().flatten());
        for descriptor in descriptors {
            let blob: Descriptor = serde_json::from_value(descriptor.clone()).map_err(|e| {
                Error::input(format!("manifest {digest} has a bad descriptor: {e}"))
            })?;
            if seen.insert(blob.digest.clone()) {
                blobs.push((blob.digest, blob.size));
            }
        }
    }
    Ok(blobs)
}

/// Blobs uploaded at once, at most: enough to keep a link busy while one blob's upload
/// session opens or closes, few enough for registries that limit connections per client.
pub const PARALLEL_UPLOADS: usize = 4;

/// How one blob got there.
enum Sent {
    Uploaded,
    Mounted,
    Copied,
}

/// Sends every blob the registry lacks, [`PARALLEL_UPLOADS`] at a time. The first failure
/// stops the others from starting new ones; the error says how many went up before it.
fn send_blobs(
    client: &Client,
    job: &Push,
    base: Option<&BaseBlobs>,
    missing: &[(Digest, u64)],
    report: &mut Pushed,
    ui: &Ui,
) -> Result<()> {
    if missing.is_empty() {
        return Ok(());
    }
    let total = missing.iter().map(|(_, size)| size).sum();
    let transfers = ui.transfers(&job.repository, total, missing.len());
    let queue = Mutex::new(missing.iter());
    let outcome: Mutex<(Pushed, Option<Error>)> = Mutex::new((Pushed::default(), None));
    std::thread::scope(|scope| {
        for _ in 0..PARALLEL_UPLOADS.min(missing.len()) {
            let (mut client, mut base) = (client.clone(), base.cloned());
            let (queue, outcome, transfers) = (&queue, &outcome, &transfers);
            scope.spawn(move || loop {
                let next = queue.lock().unwrap_or_else(|p| p.into_inner()).next();
                let Some((digest, size)) = next else {
                    return;
                };
                if outcome
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .1
                    .is_some()
                {
                    return;
                }
                let started = Instant::now();
                let transfer = transfers.start(short(digest), *size);
                let sent = send_blob(&mut client, job, base.as_mut(), digest, *size, &transfer);
                transfer.finish();
                let mut done = outcome.lock().unwrap_or_else(|p| p.into_inner());
                match sent {
                    Ok(how) => {
                        let line = count(&mut done.0, how, digest, *size, started, base.as_ref());
                        transfers.println(&line);
                    }
                    Err(e) => {
                        done.1.get_or_insert(e);
                        return;
                    }
                }
            });
        }
    });
    transfers.finish();
    let (sent, failure) = outcome.into_inner().unwrap_or_else(|p| p.into_inner());
    report.uploaded_blobs += sent.uploaded_blobs;
    report.uploaded_bytes += sent.uploaded_bytes;
    report.mounted_blobs += sent.mounted_blobs;
    report.copied_blobs += sent.copied_blobs;
    report.copied_bytes += sent.copied_bytes;
    match failure {
        None => Ok(()),
        Some(e) => {
            let there = sent.uploaded_blobs + sent.mounted_blobs + sent.copied_blobs;
            Err(e.with_hint(format!(
                "{there} of the {} missing blob(s) reached the registry before this; no manifest and no tag was pushed, and a re-run sends only the rest",
                missing.len()
            )))
        }
    }
}

/// Adds one sent blob to the report; the line that says so.
fn count(
    report: &mut Pushed,
    how: Sent,
    digest: &Digest,
    size: u64,
    started: Instant,
    base: Option<&BaseBlobs>,
) -> String {
    let seconds = started.elapsed().as_secs_f64().max(1e-3);
    match how {
        Sent::Uploaded => {
            report.uploaded_blobs += 1;
            report.uploaded_bytes += size;
            format!(
                "  uploaded {} {} in {seconds:.1} s ({}/s)",
                short(digest),
                human_bytes(size),
                human_bytes((size as f64 / seconds) as u64)
            )
        }
        Sent::Mounted => {
            report.mounted_blobs += 1;
            let from = base.map_or("", |b| b.repository.as_str());
            format!("  mounted {} from {from}", short(digest))
        }
        Sent::Copied => {
            report.copied_blobs += 1;
            report.copied_bytes += size;
            let from = base.map_or(String::new(), |b| b.client.reference().to_string());
            format!(
                "  copied {} {} from {from} in {seconds:.1} s",
                short(digest),
                human_bytes(size)
            )
        }
    }
}

/// One blob the registry lacks: uploaded from the layout, or (a base layer not in it)
/// mounted from the base's repository on the same registry, else streamed across.
fn send_blob(
    client: &mut Client,
    job: &Push,
    base: Option<&mut BaseBlobs>,
    digest: &Digest,
    size: u64,
    transfer: &Transfer,
) -> Result<Sent> {
    let path = job.store.path(digest);
    if path.is_file() {
        client.upload_blob(digest, &path, Some(transfer))?;
        return Ok(Sent::Uploaded);
    }
    let Some(base) = base else {
        return Err(Error::failed(format!(
            "blob {digest} is neither in the registry nor in the local layout {}",
            path.display()
        )));
    };
    if base.same_registry && client.mount_blob(digest, &base.repository)? {
        return Ok(Sent::Mounted);
    }
    // The receiving registry checks the bytes against the digest when the upload closes.
    let reader = base.client.get_blob(digest)?;
    let mut shown = transfer.reader(reader);
    client.upload_blob_from(digest, size, &mut shown)?;
    Ok(Sent::Copied)
}

fn parse(bytes: &[u8], digest: &Digest) -> Result<Value> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::failed(format!("manifest {digest} is not JSON: {e}")))
}

fn short(digest: &Digest) -> &str {
    let text = digest.as_str();
    &text[..text.len().min(19)]
}
