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
use crate::signing::attest::{PROVENANCE, SPDX};
use crate::signing::verify::{attestations, signed, PublicKey};
use crate::target::{self, Request};
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

    let mut problems = Vec::new();
    let mut checked = Vec::new();
    // The index and each platform manifest are signed.
    let mut digests = vec![digest.clone()];
    let (top, _, _) = client.get_manifest(digest.as_str())?;
    let top: serde_json::Value = serde_json::from_slice(&top).unwrap_or_default();
    for entry in top["manifests"].as_array().into_iter().flatten() {
        if let Ok(platform) = Digest::parse(entry["digest"].as_str().unwrap_or_default()) {
            digests.push(platform);
        }
    }
    for each in &digests {
        match signed(&mut client, &repository, each, &key)? {
            Ok(()) => checked.push(format!("signature of {each}: good")),
            Err(why) => problems.push(why),
        }
    }
    let (statements, unverified) = attestations(&mut client, &digest, &key)?;
    if unverified > 0 {
        problems.push(format!(
            "{unverified} attestation(s) of {digest} are not signed by this key or not about it"
        ));
    }
    for predicate_type in [PROVENANCE, SPDX] {
        match statements
            .iter()
            .find(|s| s["predicateType"] == predicate_type)
        {
            Some(_) => checked.push(format!("attestation {predicate_type}: good")),
            None => problems.push(format!(
                "no attestation {predicate_type} signed by this key"
            )),
        }
    }
    let provenance = statements
        .iter()
        .find(|s| s["predicateType"] == PROVENANCE)
        .map(|s| s["predicate"].clone());
    if let Some(provenance) = &provenance {
        let build = &provenance["buildDefinition"];
        let commit = build["externalParameters"]["source"]["digest"]["gitCommit"]
            .as_str()
            .unwrap_or("?");
        checked.push(format!(
            "provenance: tag {}, commit {commit}, source {}, job {}",
            build["externalParameters"]["tag"]
                .as_str()
                .unwrap_or("none"),
            build["externalParameters"]["source"]["uri"]
                .as_str()
                .unwrap_or("?"),
            build["internalParameters"]["job"]
                .as_str()
                .unwrap_or("none"),
        ));
        if commit != target.commit.id {
            problems.push(format!(
                "the provenance names commit {commit}, but tag {} is commit {}",
                target.tag.as_deref().unwrap_or("HEAD"),
                target.commit.id
            ));
        }
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
        rebuild(&project, &target, found, ui, &mut checked, &mut problems)?;
    }
    let report = checked
        .iter()
        .chain(problems.iter().map(|p| p as &String))
        .map(|l| format!("{l}\n"))
        .collect::<String>();
    match cli.output {
        Output::Json => print_stdout(
            &(serde_json::to_string_pretty(&serde_json::json!({
                "image": format!("{repository}@{digest}"),
                "verified": problems.is_empty(),
                "checked": checked,
                "problems": problems,
                "provenance": provenance,
            }))
            .expect("JSON")
                + "\n"),
        ),
        Output::Human => print_stdout(&report),
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::failed(format!(
            "{repository}@{digest} did not verify: {}",
            problems.join("; ")
        )))
    }
}

/// What the registry and the provenance hold, to compare a rebuild with.
struct Found<'a> {
    client: &'a mut crate::oci::registry::Client,
    digest: &'a Digest,
    /// The tarball the provenance names: `(file, sha256)`.
    tarball: Option<(String, String)>,
}

/// Rebuilds the tag's tarball and image into a scratch folder and compares them with what the
/// provenance and the registry hold.
fn rebuild(
    project: &crate::project::Project,
    target: &crate::target::Target,
    found: Found,
    ui: &Ui,
    checked: &mut Vec<String>,
    problems: &mut Vec<String>,
) -> Result<()> {
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
    let built = crate::stages::image::build(project, target, &layout, false, None, ui)?
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
