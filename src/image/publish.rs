//! The registry side of the image: which repository it goes to, a client with the login and
//! TLS settings for a registry, and the push.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::env::Env;
use crate::error::{Error, Result};
use crate::mode::Mode;
use crate::oci::auth;
use crate::oci::blobs::BlobStore;
use crate::oci::push::{BaseBlobs, Push, Pushed};
use crate::oci::reference::Reference;
use crate::oci::registry::{Client, Connection};
use crate::oci::{self, Descriptor};
use crate::spec::image::ImageSpec;
use crate::ui::Ui;

use super::Built;

/// The digest of the manifest `reference` names (its digest, else its tag) in its registry, or
/// `None` when the registry no longer has it. Reads only; `image` gives the TLS settings.
pub fn registry_digest(
    reference: &Reference,
    image: Option<&ImageSpec>,
    env: &Env,
) -> Result<Option<String>> {
    let connection = image.map(connection).unwrap_or_default();
    client_with(reference, &connection, env)?.manifest_digest(reference.manifest_reference())
}

/// The repository the image goes to, as written: `image.repository`, else
/// `$CI_REGISTRY_IMAGE` (GitLab CI's project registry); `None` when neither is set.
pub fn push_repository_name(image: &ImageSpec, env: &Env) -> Option<String> {
    match &image.repository {
        Some(repository) => Some(repository.value.clone()),
        None => env.lookup("CI_REGISTRY_IMAGE"),
    }
}

/// The repository to push to, checked.
pub fn push_repository(image: &ImageSpec, env: &Env) -> Result<Reference> {
    let repository = push_repository_name(image, env).ok_or_else(|| {
        Error::input("no repository to push the image to: image.repository is not set and CI_REGISTRY_IMAGE is empty")
            .with_hint("Set image.repository in the spec (GitLab CI sets CI_REGISTRY_IMAGE), or build without pushing: --dry-run, --skip push or `tagpilot image --oci-layout DIR`")
    })?;
    let reference = Reference::parse(&repository).map_err(Error::input)?;
    if reference.digest.is_some() || reference.tag.is_some() {
        return Err(Error::input(format!(
            "image.repository `{repository}` names a tag or digest; give the repository only (tags come from image.tags)"
        )));
    }
    Ok(reference)
}

/// A client for `reference`'s registry, with the login found for it and the spec's TLS settings.
pub fn registry_client(reference: &Reference, image: &ImageSpec, env: &Env) -> Result<Client> {
    client_with(reference, &connection(image), env)
}

fn client_with(reference: &Reference, connection: &Connection, env: &Env) -> Result<Client> {
    let credential = auth::find(&reference.registry, &|name| env.lookup(name));
    Client::new(reference, credential, connection)
}

fn connection(image: &ImageSpec) -> Connection {
    Connection {
        insecure: image.insecure,
        ca_file: image.ca_file.as_ref().map(|f| PathBuf::from(f.as_str())),
    }
}

/// Pushes a built image to `image.repository` (or `$CI_REGISTRY_IMAGE`); a rehearsal reads
/// what the registry has and stops before writing.
pub fn push(
    built: &Built,
    image: &ImageSpec,
    force: bool,
    mode: Mode,
    env: &Env,
    ui: &Ui,
) -> Result<Pushed> {
    let reference = push_repository(image, env)?;
    let mut client = registry_client(&reference, image, env)?;
    let mut base = match image.base.as_str() {
        "scratch" => None,
        base if base.starts_with("oci-layout:") => None,
        base => {
            let base_reference = Reference::parse(base).map_err(Error::input)?;
            let same_registry = base_reference.registry == reference.registry;
            if same_registry {
                client.also_pull(&base_reference.repository);
            }
            Some(BaseBlobs {
                client: registry_client(&base_reference, image, env)?,
                repository: base_reference.repository.clone(),
                same_registry,
            })
        }
    };
    let store = BlobStore::open(&built.layout)?;
    let top = Descriptor {
        media_type: built.media_type.clone(),
        digest: built.digest.clone(),
        size: 0,
        platform: None,
        annotations: BTreeMap::new(),
    };
    let job = Push {
        store: &store,
        top: &top,
        repository: format!("{}/{}", reference.registry, reference.repository),
        tags: &built.tags,
        immutable: &built.version_tags,
        force,
        mode,
    };
    oci::push::push(&mut client, &job, base.as_mut(), ui)
}
