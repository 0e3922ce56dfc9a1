//! `tagpilot verify`: what a site checks before it runs a release. The image's signature and
//! its attestations (provenance, SBOM) with a public key, the provenance read back, and with
//! `--rebuild` the tag rebuilt here and compared byte for byte with the registry's image.
//! Registry reads only. Exit 0 only when everything holds; otherwise exit 1 with every reason.

use crate::cli::{Cli, Output, VerifyArgs};
use crate::env::Env;
use crate::error::{Error, Result};
use crate::image;
use crate::oci::digest::Digest;
use crate::oci::reference::Reference;
use crate::oci::registry::Client;
use crate::signing::attest::{PROVENANCE, SPDX};
use crate::signing::verify::{attestations, signed, PublicKey};
use crate::target::{self, Request, Target};
use crate::ui::{print_stdout, Ui};

pub fn run(cli: &Cli, args: &VerifyArgs, env: &Env, ui: &Ui) -> Result<()> {
    let project = args.project.open(env)?;
    let spec = project
        .spec
        .image
        .as_ref()
        .ok_or_else(|| Error::input("the pipeline spec has no `image:` section to verify"))?;
    let key = PublicKey::read(&args.key)?;
    let target = target::resolve(
        &project,
        &Request {
            tag: args.tag.clone(),
            snapshot: None,
        },
    )?;
    let text = match &args.image {
        Some(image) => image.clone(),
        None => {
            let repository = image::push_repository_name(spec, env)
                .ok_or_else(|| Error::input("name the image to verify, or set image.repository"))?;
            let (_, version_tags) = image::release_tags(spec, &target)?;
            let tag = version_tags
                .first()
                .cloned()
                .unwrap_or_else(|| target.version.to_string());
            format!("{repository}:{tag}")
        }
    };
    let reference = Reference::parse(&text).map_err(Error::input)?;
    let repository = format!("{}/{}", reference.registry, reference.repository);
    let mut client = image::registry_client(&reference, spec, env)?;
    let digest = client
        .manifest_digest(reference.manifest_reference())?
        .ok_or_else(|| Error::input(format!("{text} is not in its registry")))?;
    let digest = Digest::parse(&digest).map_err(Error::failed)?;
    ui.info(&format!("verifying {repository}@{digest}"));

    let mut findings = Findings::default();
    check_signatures(&mut client, &repository, &digest, &key, &mut findings)?;
    let provenance = check_attestations(&mut client, &digest, &key, &mut findings)?;
    if let Some(provenance) = &provenance {
        check_provenance(provenance, &target, &mut findings);
    }
    if args.rebuild {
        let tarball = provenance.as_ref().and_then(|p| {
            let made = p["runDetails"]["byproducts"].get(0)?;
            Some((
                made["name"].as_str()?.to_string(),
                made["digest"]["sha256"].as_str()?.to_string(),
            ))
        });
        let found = Found {
            client: &mut client,
            digest: &digest,
            tarball,
        };
        rebuild(&project, &target, found, ui, &mut findings)?;
    }
    let image = format!("{repository}@{digest}");
    print(cli, &image, &findings, provenance.as_ref());
    if findings.problems.is_empty() {
        Ok(())
    } else {
        Err(Error::failed(format!(
            "{image} did not verify: {}",
            findings.problems.join("; ")
        )))
    }
}

/// What held, and what did not.
#[derive(Default)]
struct Findings {
    checked: Vec<String>,
    problems: Vec<String>,
}

/// The index and each platform manifest in it are signed by the key.
fn check_signatures(
    client: &mut Client,
    repository: &str,
    digest: &Digest,
    key: &PublicKey,
    findings: &mut Findings,
) -> Result<()> {
    let mut digests = vec![digest.clone()];
    let (top, _, _) = client.get_manifest(digest.as_str())?;
    let top: serde_json::Value = serde_json::from_slice(&top).unwrap_or_default();
    for entry in top["manifests"].as_array().into_iter().flatten() {
        if let Ok(platform) = Digest::parse(entry["digest"].as_str().unwrap_or_default()) {
            digests.push(platform);
        }
    }
    for each in &digests {
        match signed(client, repository, each, key)? {
            Ok(()) => findings.checked.push(format!("signature of {each}: good")),
            Err(why) => findings.problems.push(why),
        }
    }
    Ok(())
}

/// The provenance and SBOM are attached, signed by the key; the provenance, if any.
fn check_attestations(
    client: &mut Client,
    digest: &Digest,
    key: &PublicKey,
    findings: &mut Findings,
) -> Result<Option<serde_json::Value>> {
    let (statements, unverified) = attestations(client, digest, key)?;
    if unverified > 0 {
        findings.problems.push(format!(
            "{unverified} attestation(s) of {digest} are not signed by this key or not about it"
        ));
    }
    for predicate_type in [PROVENANCE, SPDX] {
        match statements
            .iter()
            .find(|s| s["predicateType"] == predicate_type)
        {
            Some(_) => findings
                .checked
                .push(format!("attestation {predicate_type}: good")),
            None => findings.problems.push(format!(
                "no attestation {predicate_type} signed by this key"
            )),
        }
    }
    Ok(statements
        .iter()
        .find(|s| s["predicateType"] == PROVENANCE)
        .map(|s| s["predicate"].clone()))
}

/// Says what the provenance claims, and holds its commit against the tag's here.
fn check_provenance(provenance: &serde_json::Value, target: &Target, findings: &mut Findings) {
    let build = &provenance["buildDefinition"];
    let text = |value: &serde_json::Value, default: &'static str| {
        value.as_str().unwrap_or(default).to_string()
    };
    let commit = text(
        &build["externalParameters"]["source"]["digest"]["gitCommit"],
        "?",
    );
    findings.checked.push(format!(
        "provenance: tag {}, commit {commit}, source {}, job {}",
        text(&build["externalParameters"]["tag"], "none"),
        text(&build["externalParameters"]["source"]["uri"], "?"),
        text(&build["internalParameters"]["job"], "none"),
    ));
    if commit != target.commit.id {
        findings.problems.push(format!(
            "the provenance names commit {commit}, but tag {} is commit {}",
            target.tag.as_deref().unwrap_or("HEAD"),
            target.commit.id
        ));
    }
}

fn print(cli: &Cli, image: &str, findings: &Findings, provenance: Option<&serde_json::Value>) {
    match cli.output {
        Output::Json => print_stdout(
            &(serde_json::to_string_pretty(&serde_json::json!({
                "image": image,
                "verified": findings.problems.is_empty(),
                "checked": findings.checked,
                "problems": findings.problems,
                "provenance": provenance,
            }))
            .expect("JSON")
                + "\n"),
        ),
        Output::Human => print_stdout(
            &findings
                .checked
                .iter()
                .chain(&findings.problems)
                .map(|l| format!("{l}\n"))
                .collect::<String>(),
        ),
    }
}

/// What the registry and the provenance hold, to compare a rebuild with.
struct Found<'a> {
    client: &'a mut Client,
    digest: &'a Digest,
    /// The tarball the provenance names: `(file, sha256)`.
    tarball: Option<(String, String)>,
}

/// Rebuilds the tag's tarball and image into a scratch folder and compares them with what the
/// provenance and the registry hold.
fn rebuild(
    project: &crate::project::Project,
    target: &Target,
    found: Found,
    ui: &Ui,
    findings: &mut Findings,
) -> Result<()> {
    let (checked, problems) = (&mut findings.checked, &mut findings.problems);
    let scratch =
        tempfile::tempdir().map_err(|e| Error::failed(format!("a scratch folder: {e}")))?;
    if let Some((file, sha256)) = &found.tarball {
        let made = crate::stages::tarball::build(
            project,
            target,
            scratch.path(),
            crate::tarball::Existing::Replace,
            ui,
            None,
        )?;
        if made.sha256 == *sha256 {
            checked.push(format!("rebuilt {file}: the same bytes (sha256 {sha256})"));
        } else {
            problems.push(format!(
                "{file} rebuilt is sha256 {}, the provenance has {sha256}",
                made.sha256
            ));
        }
    }
    let layout = scratch.path().join("rebuilt");
    let built =
        crate::stages::image::build(project, target, &layout, false, Default::default(), ui)?
            .ok_or_else(|| Error::input("the spec has no image to rebuild"))?;
    let digest = found.digest;
    if built.digest == *digest {
        checked.push(format!(
            "rebuilt from {}: the same image ({digest})",
            target.commit.id
        ));
        return Ok(());
    }
    problems.push(format!(
        "the image rebuilt from commit {} is {}, not the registry's {digest}",
        target.commit.id, built.digest
    ));
    problems.extend(image::compare::differences(&built, found.client, digest)?);
    Ok(())
}
