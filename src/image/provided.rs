//! tagpilot's own supervisor in the image (`image.supervisor.binary: provided`): found for
//! each platform, checked to be an ELF executable for that platform's CPU (never an amd64
//! binary in an arm64 image), and added as its own layer that depends on nothing but the
//! binary's bytes: fixed owner, mode and time, so the same supervisor gives the same layer
//! digest in every release, and a node pulls it once for all of them.

use std::path::{Path, PathBuf};

use crate::archive::{append, append_file, append_prefix_folders, write_failed, Normal};
use crate::error::{Error, Result};
use crate::oci::blobs::BlobStore;
use crate::oci::image::{BaseImage, Recipe};
use crate::oci::Platform;
use crate::source::{Content, Entry, EntryKind};
use crate::spec::image::{ImageSpec, SupervisorSpec};

use super::layers::Added;

/// Where the provided supervisor is in the image.
pub const BINARY: &str = "/usr/local/bin/tagpilot-supervisor";
/// Configs call the supervisor by ContainerPilot's name (`containerpilot -putmetric …`).
pub const ALIAS: &str = "/usr/local/bin/containerpilot";

/// The supervisor binary for one platform.
pub struct Binary {
    pub platform: Platform,
    pub from: PathBuf,
    pub bytes: Vec<u8>,
    /// What `-version` says, when the binary runs on this machine.
    pub version: Option<String>,
}

/// The binary for each platform, checked; `root` is the job's workspace.
pub fn find(spec: &SupervisorSpec, platforms: &[Platform], root: &Path) -> Result<Vec<Binary>> {
    platforms
        .iter()
        .map(|platform| {
            let key = platform.to_string();
            let given = spec
                .binaries
                .iter()
                .find(|(k, _)| Platform::parse(k).is_ok_and(|p| &p == platform));
            let from = match given {
                Some((_, path)) => root.join(path.as_str()),
                None if machine_of(platform) == Some(host_machine()) => sibling()?,
                None => {
                    return Err(Error::input(format!(
                        "image.supervisor: the image is for {key}, and no tagpilot-supervisor for {key} is given: build one for that platform and name it in image.supervisor.binaries (`{key}: PATH`); the one next to tagpilot is for {}",
                        host_platform()
                    )))
                }
            };
            let bytes = std::fs::read(&from).map_err(|e| {
                Error::input(format!(
                    "image.supervisor: the supervisor for {key} at {}: {e}",
                    from.display()
                ))
            })?;
            check_elf(&bytes, platform, &from)?;
            let version = (machine_of(platform) == Some(host_machine()))
                .then(|| version_of(&from))
                .flatten();
            Ok(Binary {
                platform: platform.clone(),
                from,
                bytes,
                version,
            })
        })
        .collect()
}

/// `tagpilot-supervisor` next to the running tagpilot.
fn sibling() -> Result<PathBuf> {
    let exe = std::env::current_exe()
        .map_err(|e| Error::input(format!("image.supervisor: where tagpilot runs from: {e}")))?;
    let path = exe.with_file_name("tagpilot-supervisor");
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::input(format!(
            "image.supervisor: no tagpilot-supervisor next to tagpilot ({}): install both from the same build (packaging/build-static.sh makes them), name one in image.supervisor.binaries, or set `binary:` to the supervisor your base carries",
            path.display()
        )))
    }
}

fn version_of(binary: &Path) -> Option<String> {
    let out = std::process::Command::new(binary)
        .arg("-version")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "Version: 0.1.0 (tagpilot-supervisor, …)": the version alone.
    let line = text.lines().next()?.trim();
    let version = line.strip_prefix("Version: ").unwrap_or(line);
    version.split_whitespace().next().map(String::from)
}

/// ELF `e_machine` for a platform's architecture.
fn machine_of(platform: &Platform) -> Option<u16> {
    match platform.architecture.as_str() {
        "amd64" => Some(62),
        "arm64" => Some(183),
        "arm" => Some(40),
        "386" => Some(3),
        "ppc64le" => Some(21),
        "s390x" => Some(22),
        "riscv64" => Some(243),
        _ => None,
    }
}

fn host_machine() -> u16 {
    machine_of(&host_platform()).unwrap_or(0)
}

fn host_platform() -> Platform {
    let architecture = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    };
    Platform {
        architecture: architecture.into(),
        os: "linux".into(),
        variant: None,
    }
}

/// Refuses what is not a 64-bit little-endian ELF executable for `platform`; warns when it
/// asks for a dynamic loader (it then runs only on bases with a matching libc).
fn check_elf(bytes: &[u8], platform: &Platform, from: &Path) -> Result<()> {
    let refuse = |why: String| {
        Err(Error::input(format!(
            "image.supervisor: {}: {why}",
            from.display()
        )))
    };
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" {
        return refuse("not an ELF executable".into());
    }
    let u16_at = |at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]);
    let machine = u16_at(18);
    let wanted = machine_of(platform);
    if wanted != Some(machine) {
        return refuse(format!(
            "built for ELF machine {machine}, but the image is for {platform} (machine {}): never a binary of another CPU in an image",
            wanted.map_or("unknown".into(), |m| m.to_string())
        ));
    }
    if bytes[4] == 2 && bytes[5] == 1 {
        let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        let table = u64_at(32) as usize;
        let (size, count) = (u16_at(54) as usize, u16_at(56) as usize);
        let interp = (0..count).any(|i| {
            let at = table + i * size;
            at + 4 <= bytes.len()
                && u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) == 3
        });
        if interp {
            eprintln!(
                "warning: image.supervisor: {} is dynamically linked: it starts only on a base with a matching C library; packaging/build-static.sh builds a static one that runs on any base",
                from.display()
            );
        }
    }
    Ok(())
}

/// The supervisor's layer: the binary at [`BINARY`] and the [`ALIAS`] link, owned by root,
/// at time 0.
pub fn layer(image: &ImageSpec, binary: &Binary, store: &BlobStore) -> Result<Added> {
    let root = Normal {
        mtime: 0,
        uid: 0,
        gid: 0,
    };
    let made = crate::oci::layer::build(store, image.packing(), |tar, counts| {
        append_prefix_folders(tar, root, "usr/local/bin", counts)?;
        append_file(
            tar,
            root,
            BINARY.trim_start_matches('/'),
            0o755,
            binary.bytes.len() as u64,
            binary.bytes.as_slice(),
        )
        .map_err(write_failed)?;
        let alias = ALIAS.trim_start_matches('/');
        let entry = Entry {
            path: alias.as_bytes(),
            kind: EntryKind::Symlink,
            content: Content::Bytes(b"tagpilot-supervisor"),
        };
        append(tar, root, alias.as_bytes(), entry).map_err(write_failed)?;
        counts.entries += 2;
        counts.content_bytes += binary.bytes.len() as u64;
        Ok(())
    })?;
    let version = binary.version.as_deref().unwrap_or("version unknown");
    Ok((
        made,
        format!(
            "tagpilot: supervisor {BINARY} ({version}) for {}",
            binary.platform
        ),
    ))
}

/// The supervisor's layer for each platform of an image.
#[derive(Default)]
pub struct Provided {
    layers: Vec<(Binary, Added)>,
}

impl Provided {
    /// The binary and layer for each base's platform.
    pub fn build(
        spec: &SupervisorSpec,
        bases: &[BaseImage],
        root: &Path,
        image: &ImageSpec,
        store: &BlobStore,
    ) -> Result<Provided> {
        let platforms: Vec<Platform> = bases.iter().map(|b| b.platform.clone()).collect();
        let layers = find(spec, &platforms, root)?
            .into_iter()
            .map(|binary| {
                let layer = layer(image, &binary, store)?;
                Ok((binary, layer))
            })
            .collect::<Result<_>>()?;
        Ok(Provided { layers })
    }

    /// One platform's layers and settings: the supervisor's layer first after the base (it is
    /// the same in every release, so it stays cached on the nodes), and the annotations that
    /// name it.
    pub fn apply(
        &self,
        base: &BaseImage,
        added: &[Added],
        recipe: &Recipe,
    ) -> (Vec<Added>, Recipe) {
        let mut layers = added.to_vec();
        let mut recipe = recipe.clone();
        if let Some((binary, layer)) = self
            .layers
            .iter()
            .find(|(b, _)| b.platform == base.platform)
        {
            layers.insert(0, layer.clone());
            recipe.annotations.insert(
                "org.tagpilot.supervisor.layer".into(),
                layer.0.digest.to_string(),
            );
            if let Some(version) = &binary.version {
                recipe
                    .annotations
                    .insert("org.tagpilot.supervisor.version".into(), version.clone());
            }
        }
        (layers, recipe)
    }

    /// What the release record says of it.
    pub fn record(&self) -> Option<SupervisorRecord> {
        (!self.layers.is_empty()).then(|| SupervisorRecord {
            binary: BINARY.into(),
            layers: self
                .layers
                .iter()
                .map(|(binary, (layer, _))| ProvidedLayer {
                    platform: binary.platform.to_string(),
                    version: binary.version.clone(),
                    digest: layer.digest.to_string(),
                    size: layer.size,
                })
                .collect(),
        })
    }
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct SupervisorRecord {
    /// Where it is in the image: the entrypoint.
    pub binary: String,
    /// Its layer in each platform's image (the first after the base).
    pub layers: Vec<ProvidedLayer>,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ProvidedLayer {
    pub platform: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub digest: String,
    pub size: u64,
}
