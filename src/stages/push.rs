//! The push stage: the built image to its registry. A rehearsal runs the same push, which
//! reads the registry and stops before writing.

use crate::env::Env;
use crate::error::{Error, Result};
use crate::image::{self, Built};
use crate::mode::Mode;
use crate::oci::push::Pushed;
use crate::record::{Record, StageName, Status};
use crate::signing::SigningKey;
use crate::spec::image::ImageSpec;
use crate::ui::{human_bytes, Ui};

use super::{attestations, carried, Job, Outcome, Work};

pub fn run(job: &Job, work: &mut Work) -> Result<Outcome> {
    let rehearsing = job.mode.rehearsing();
    let (Some(built), Some(spec)) = (work.record.image.clone(), &job.project.spec.image) else {
        return Ok(if rehearsing {
            Outcome::new(Status::NotSelected, "dry run: nothing pushed")
        } else {
            Outcome::new(Status::NotConfigured, "no image built")
        });
    };
    if rehearsing && image::push_repository_name(spec, &job.project.env).is_none() {
        return Ok(Outcome::new(
            Status::NotSelected,
            "dry run: no registry configured, nothing read",
        ));
    }
    if !job.selection.includes(StageName::Image) {
        refuse_changed_artifacts(job, spec, &built)?;
    }
    // The key is read (and a cosign key opened) before anything is pushed: a missing key or
    // a wrong password leaves nothing half-done. A dry run needs no write credentials: it
    // checks the key only when it has one.
    let key_here = spec
        .sign
        .as_ref()
        .filter(|sign| !rehearsing || job.project.env.lookup(sign.key.as_str()).is_some());
    let key = key_here
        .map(|sign| SigningKey::load(sign, &job.project.env))
        .transpose()?;
    let mut pushed = push(&built, spec, job.force, job.mode, &job.project.env, job.ui)?;
    if rehearsing {
        let signing = match (&key, &spec.sign) {
            (Some(key), _) => format!("; would sign it with the key from {}", key.source),
            (None, Some(sign)) => format!("; would sign it ({} is not set here)", sign.key),
            (None, None) => String::new(),
        };
        return Ok(Outcome::new(
            Status::NotSelected,
            format!(
                "dry run: would upload {} blob(s) ({}) to {}; {} already there{signing}",
                pushed.uploaded_blobs,
                human_bytes(pushed.uploaded_bytes),
                pushed.reference,
                pushed.skipped_blobs
            ),
        ));
    }
    if let Some(key) = &key {
        pushed.signatures = job.ui.section("sign", "Signing the pushed image", || {
            let signatures = crate::signing::sign_pushed(&built, spec, &job.project.env, key)?;
            for signature in &signatures {
                report(
                    job.ui,
                    &signature.digest,
                    &signature.status,
                    &signature.stored_at,
                );
            }
            Ok(signatures)
        })?;
    }
    let tarball = work
        .record
        .tarball
        .as_ref()
        .map(|t| (t.file.clone(), t.sha256.clone()));
    pushed.attestations = job.ui.section("attest", "Provenance and SBOM", || {
        let made = attestations::attest(job, spec, &built, &pushed, tarball, key.as_ref())?;
        for attestation in &made {
            let (file, status) = (&attestation.file, &attestation.status);
            report(job.ui, file, status, &attestation.predicate_type);
        }
        Ok(made)
    })?;
    let newly_signed = pushed.signatures.iter().any(|s| s.status == "signed")
        || pushed.attestations.iter().any(|a| a.status == "attached");
    let status = if pushed.was_already_there() && !newly_signed {
        Status::AlreadyDone
    } else {
        Status::Done
    };
    let detail = format!("{} tags {}", pushed.reference, pushed.tags.join(","));
    work.record.pushed = Some(pushed);
    Ok(Outcome::new(status, detail))
}

/// One line for what signing or attesting did: `what: status (detail)`.
fn report(ui: &Ui, what: &str, status: &str, detail: &str) {
    ui.info(&format!("{what}: {} ({detail})", status.replace('_', " ")));
}

/// An image built by an earlier job is pushed only if the workspace's build outputs, where
/// this job has them, are still the bytes it was built with.
fn refuse_changed_artifacts(job: &Job, spec: &ImageSpec, built: &Built) -> Result<()> {
    let changed = image::artifacts::changed_since(
        job.project.source.root(),
        &spec.artifacts,
        &built.artifacts,
        job.target.mtime,
    )?;
    if changed.is_empty() {
        return Ok(());
    }
    Err(Error::input(format!(
        "the build outputs are not those the image was built with: {}; nothing was pushed",
        changed.join("; ")
    ))
    .with_hint("Re-run the build job, so that the image holds the outputs this pipeline made"))
}

pub fn skipped(record: &Record) -> String {
    carried(record.pushed.as_ref().map(|p| p.reference.as_str()))
}

/// Pushes `built` as `spec` says, in its own log section.
pub fn push(
    built: &Built,
    spec: &ImageSpec,
    force: bool,
    mode: Mode,
    env: &Env,
    ui: &Ui,
) -> Result<Pushed> {
    ui.section("push", &format!("Pushing image {}", built.digest), || {
        image::push(built, spec, force, mode, env, ui)
    })
}
