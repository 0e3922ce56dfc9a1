//! The release's provenance and SBOM, made after the push: written to the output folder
//! (`provenance.json`, an in-toto Statement; `sbom.spdx.json`, the SPDX document) for every
//! release with an image, and, when the image is signed, signed as DSSE envelopes and attached
//! to the image in its registry (`signing::attest`).

use crate::error::{Error, Result};
use crate::image::Built;
use crate::oci::attached::Attestation;
use crate::oci::push::Pushed;
use crate::signing::attest::{self, File, FileHasher, Origin};
use crate::signing::SigningKey;
use crate::source::{Content, Entry, EntryKind, Selection};
use crate::spec::image::ImageSpec;

use super::Job;

/// Writes the provenance and SBOM of `built` (pushed as `pushed`), and attaches them, signed,
/// when there is a key.
pub fn attest(
    job: &Job,
    spec: &ImageSpec,
    built: &Built,
    pushed: &Pushed,
    tarball: Option<(String, String)>,
    key: Option<&SigningKey>,
) -> Result<Vec<Attestation>> {
    let env = &job.project.env;
    let version = job.target.version.to_string();
    let origin = Origin {
        name: &job.target.name,
        version: &version,
        tag: job.target.tag.as_deref(),
        commit: &job.target.commit.id,
        time: crate::oci::image::rfc3339(job.target.mtime),
        repository_url: env.lookup("CI_PROJECT_URL"),
        pipeline_url: env.lookup("CI_PIPELINE_URL"),
        job_url: env.lookup("CI_JOB_URL"),
        tarball,
    };
    let repository = pushed
        .reference
        .split('@')
        .next()
        .unwrap_or(&pushed.reference)
        .to_string();
    let documents = documents(&origin, built, &repository, &image_files(job, spec)?);
    let mut written = write_documents(job, &documents)?;
    let Some(key) = key else {
        return Ok(written);
    };
    let envelopes: Vec<(&str, Vec<u8>)> = documents
        .iter()
        .map(|(predicate_type, _, _, statement)| {
            (*predicate_type, attest::envelope(statement, key))
        })
        .collect();
    let stored = crate::signing::attest::attach(built, spec, env, &envelopes, key)?;
    let at = format!(
        "{repository}:{}",
        crate::signing::attestation_tag(&built.digest)
    );
    for (attestation, (_, added)) in written.iter_mut().zip(stored) {
        attestation.attached_to = Some(at.clone());
        attestation.status = if added {
            "attached"
        } else {
            "already_attached"
        }
        .into();
    }
    Ok(written)
}

/// A document: its predicate type, file name, what the file holds, the statement's bytes.
type Document = (&'static str, &'static str, String, Vec<u8>);

/// The provenance and the SBOM. The SBOM file is the SPDX document itself; the provenance
/// file is its whole Statement.
fn documents(origin: &Origin, built: &Built, repository: &str, files: &[File]) -> [Document; 2] {
    let provenance = attest::statement(
        repository,
        &built.digest,
        attest::PROVENANCE,
        attest::provenance(origin, built),
    );
    let sbom = attest::statement(
        repository,
        &built.digest,
        attest::SPDX,
        attest::sbom(origin, built, files),
    );
    [
        (
            attest::PROVENANCE,
            "provenance.json",
            pretty(&provenance),
            serde_json::to_vec(&provenance).expect("a statement is JSON"),
        ),
        (
            attest::SPDX,
            "sbom.spdx.json",
            pretty(&sbom.predicate),
            serde_json::to_vec(&sbom).expect("a statement is JSON"),
        ),
    ]
}

/// A document as the output folder holds it: pretty JSON with a final newline.
fn pretty<T: serde::Serialize>(document: &T) -> String {
    serde_json::to_string_pretty(document).expect("a document is JSON") + "\n"
}

/// Writes each document's text to the output folder.
fn write_documents(job: &Job, documents: &[Document]) -> Result<Vec<Attestation>> {
    let mut written = Vec::new();
    for (predicate_type, file, text, _) in documents {
        let path = job.out.join(file);
        crate::fsutil::write_atomic(&path, text.as_bytes())?;
        written.push(Attestation {
            predicate_type: predicate_type.to_string(),
            file: path.display().to_string(),
            sha256: crate::digest::sha256_hex(text.as_bytes()),
            attached_to: None,
            status: "written".into(),
        });
    }
    Ok(written)
}

/// Every file the image adds: the release tree at `install_path` and the build outputs.
fn image_files(job: &Job, spec: &ImageSpec) -> Result<Vec<File>> {
    let install = job
        .target
        .render(spec.install_path.as_str())
        .map_err(|why| Error::input(format!("image.install_path: {why}")))?;
    let prefix = crate::archive::folder_prefix(&install);
    let excludes = job.project.spec.tarball.excludes()?;
    let selection = Selection {
        excludes: &excludes,
        submodules: job.project.spec.tarball.submodules,
        export_ignore: true,
    };
    let mut hasher = FileHasher::default();
    let read_failed =
        |e: std::io::Error| Error::failed(format!("could not read the release tree: {e}"));
    job.project
        .source
        .walk(&job.target.commit, &selection, &mut |entry: Entry| {
            if let EntryKind::File { .. } = entry.kind {
                let path = format!("{prefix}{}", String::from_utf8_lossy(entry.path));
                match entry.content {
                    Content::Bytes(bytes) => hasher.add(path, &mut &bytes[..]),
                    Content::Stream { reader, .. } => hasher.add(path, reader),
                }
                .map_err(read_failed)?;
            }
            Ok(())
        })?;
    for (path, source) in
        crate::image::artifacts::files_in_workspace(job.project.source.root(), &spec.artifacts)?
    {
        let mut reader = std::fs::File::open(&source).map_err(|e| Error::io("read", &source, e))?;
        hasher
            .add(path, &mut reader)
            .map_err(|e| Error::io("read", &source, e))?;
    }
    Ok(hasher.finish())
}
