//! The `image:` section: what goes into the service's OCI image and how it starts.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

use super::{Compression, Level, Text};
use crate::supervisor;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageSpec {
    /// Repository the image is pushed to, e.g. `registry.example.org/lhcb/dirac`. Default:
    /// `$CI_REGISTRY_IMAGE` (set in GitLab CI).
    #[serde(default)]
    pub repository: Option<Text>,
    /// Speak plain HTTP to this registry (always allowed for loopback addresses).
    #[serde(default)]
    pub insecure: bool,
    /// PEM file of CA certificates to trust for the registry instead of the system's.
    #[serde(default)]
    pub ca_file: Option<Text>,
    /// `scratch` (default); a registry reference (`registry.example.org/base/alma:9`, or
    /// `...@sha256:…`); or `oci-layout:PATH[:TAG]`, an OCI image layout in the repository (or an
    /// absolute path). Pinned to its digest at build time.
    #[serde(default = "scratch")]
    pub base: Text,
    /// Where the release tree goes in the image. Default `/opt/{name}`.
    #[serde(default = "default_install_path")]
    pub install_path: Text,
    /// Extra files or folders from the repository at the tag (for example `images/<name>/etc`),
    /// each copied to `dest` in their own layer.
    #[serde(default)]
    pub files: Vec<FileSpec>,
    /// What an earlier CI job built (a binary, a jar, a wheel, a bundle): files or folders in
    /// the job's workspace, not in git, each copied to `dest` with its own mode and owner, in
    /// one layer after `files`. Their SHA-256 go into the release record.
    #[serde(default)]
    pub artifacts: Vec<ArtifactSpec>,
    /// Owner of the release tree and extra files, `UID:GID`. Default `0:0`.
    #[serde(default = "default_owner")]
    pub owner: Text,
    #[serde(default)]
    pub env: BTreeMap<String, Text>,
    #[serde(default)]
    pub user: Option<Text>,
    #[serde(default)]
    pub workdir: Option<Text>,
    /// Ports the service listens on, `9197/tcp` (or just `9197`).
    #[serde(default)]
    pub ports: Vec<Text>,
    #[serde(default)]
    pub labels: BTreeMap<String, Text>,
    /// Image tags. Templates with `{version}` or `{tag}` name this release; others (such as
    /// `{major}.{minor}` or `latest`) move, and are never applied to pre-releases; `latest`
    /// only to the highest release. Default `["{version}"]`.
    #[serde(default = "default_tags")]
    pub tags: Vec<Text>,
    /// Platforms to build, `os/arch[/variant]`. Default: the base's (all of a multi-platform
    /// base), or `linux/amd64` on scratch.
    #[serde(default)]
    pub platforms: Vec<Text>,
    /// For images without a supervisor: the entrypoint and command.
    #[serde(default)]
    pub entrypoint: Option<Vec<Text>>,
    #[serde(default)]
    pub cmd: Option<Vec<Text>>,
    /// The process supervisor (ContainerPilot v3) and its embedded config.
    #[serde(default)]
    pub supervisor: Option<SupervisorSpec>,
    /// How the release tree is split into layers: `single` (default), one layer; or
    /// `release_line`: the release line's first release (the lowest final release of this
    /// `major.minor`) as one layer, exactly as that release made it, and what changed since it
    /// (with whiteouts for what was removed) as a second, so a patch release pushes, and nodes
    /// pull, only what changed.
    #[serde(default)]
    pub layering: Layering,
    /// Sign every pushed image (the index and each platform manifest) with a key, as `cosign
    /// sign --key` does.
    #[serde(default)]
    pub sign: Option<SignSpec>,
    /// Layer compression: `gzip` (default, what every runtime reads) or `zstd` (OCI bases only).
    #[serde(default)]
    pub compression: Compression,
    /// Compression level for layers, 1 to 9. Default 6.
    #[serde(default)]
    pub level: Level,
    /// Where gzip's deflate blocks are cut: `files` (default) or `fixed` (tagpilot 0.1's
    /// bytes), as `tarball.gzip_blocks`. With the tarball's compression, level and cuts, the
    /// release tree layer takes the tarball's compressed files instead of compressing them again.
    #[serde(default)]
    pub gzip_blocks: crate::gzip::Cuts,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    /// Path in the repository (file or folder), read from the tagged commit.
    pub src: Text,
    /// Absolute path in the image.
    pub dest: Text,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Layering {
    #[default]
    Single,
    ReleaseLine,
}

/// Names of the variables that hold the signing key and its password.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignSpec {
    /// A variable holding the private key (PEM) or the path of a file with it: an ECDSA P-256
    /// PKCS#8 or SEC1 key, or cosign's encrypted key (`cosign generate-key-pair`'s
    /// `cosign.key`).
    pub key: Text,
    /// A variable holding the password of a cosign encrypted key.
    #[serde(default)]
    pub password: Option<Text>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ArtifactSpec {
    /// A file or folder in the workspace, relative to the repository root (`target/release/app`,
    /// `dist/`). Read from the working tree, not from git: a build job before makes it.
    pub src: Text,
    /// Absolute path in the image.
    pub dest: Text,
    /// Octal mode of its files (`"0755"`). Default: 0755 for a file executable in the
    /// workspace, else 0644. Folders are 0755.
    #[serde(default)]
    pub mode: Option<Text>,
    /// Owner, `UID:GID`. Default: `image.owner`.
    #[serde(default)]
    pub owner: Option<Text>,
    /// Also put it in the release tarball, at its workspace path under the tarball's folder
    /// (and so in the image's release tree at `install_path`), as the tree's files are:
    /// 0644, or 0755 when executable in the workspace. Default `false`.
    #[serde(default)]
    pub tarball: bool,
}

impl ArtifactSpec {
    /// The mode its files get, if the spec sets one.
    pub fn file_mode(&self) -> Option<u32> {
        self.mode
            .as_ref()
            .and_then(|m| u32::from_str_radix(m.as_str(), 8).ok())
            .filter(|m| *m <= 0o7777)
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SupervisorSpec {
    /// A ContainerPilot JSON5 file in the repository, embedded byte for byte. Give this or `config`.
    #[serde(default)]
    pub file: Option<Text>,
    /// The ContainerPilot config written inline (jobs, consul, logging, stopTimeout, ...):
    /// rendered as JSON, then checked as the supervisor loads it.
    #[serde(default)]
    pub config: Option<serde_json::Value>,
    /// Where the config goes in the image. Default `/etc/containerpilot.json5`.
    #[serde(default = "default_supervisor_path")]
    pub path: Text,
    /// The supervisor, the image's entrypoint: `provided` (the default) adds tagpilot's own,
    /// `tagpilot-supervisor`, as its own layer at `/usr/local/bin/tagpilot-supervisor` (with
    /// `containerpilot` linked to it); or the path of a supervisor the base image carries,
    /// such as `/usr/local/bin/containerpilot`.
    #[serde(default = "default_supervisor_binary")]
    pub binary: Text,
    /// With `binary: provided`: the supervisor to add, per platform (`linux/arm64: PATH`), a
    /// path in the job's workspace. Default: `tagpilot-supervisor` next to the tagpilot
    /// binary, for the platform it was built for.
    #[serde(default)]
    pub binaries: BTreeMap<String, Text>,
    /// With `binary: provided`: give the image a Docker `Healthcheck` that asks the
    /// supervisor whether its service jobs are healthy. Default true.
    #[serde(default = "super::yes")]
    pub healthcheck: bool,
}

impl SupervisorSpec {
    /// Whether tagpilot adds its own supervisor.
    pub fn provided(&self) -> bool {
        self.binary.as_str() == PROVIDED
    }
}

/// `image.supervisor.binary` for tagpilot's own supervisor.
pub const PROVIDED: &str = "provided";

fn scratch() -> Text {
    Text::unplaced("scratch")
}

fn default_install_path() -> Text {
    Text::unplaced("/opt/{name}")
}

fn default_owner() -> Text {
    Text::unplaced("0:0")
}

fn default_tags() -> Vec<Text> {
    vec![Text::unplaced("{version}")]
}

fn default_supervisor_path() -> Text {
    Text::unplaced("/etc/containerpilot.json5")
}

fn default_supervisor_binary() -> Text {
    Text::unplaced(PROVIDED)
}

impl ImageSpec {
    /// How layers are compressed.
    pub fn packing(&self) -> crate::compress::Packing {
        crate::compress::Packing {
            compression: self.compression,
            level: self.level.0,
            cuts: self.gzip_blocks,
        }
    }

    /// The image's `env` as plain strings: what the supervisor config's templates can read at
    /// build time.
    pub fn plain_env(&self) -> BTreeMap<String, String> {
        self.env
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().to_string()))
            .collect()
    }

    pub fn texts_mut(&mut self) -> Vec<&mut Text> {
        let mut texts: Vec<&mut Text> =
            vec![&mut self.base, &mut self.install_path, &mut self.owner];
        for file in &mut self.files {
            texts.push(&mut file.src);
            texts.push(&mut file.dest);
        }
        for artifact in &mut self.artifacts {
            texts.push(&mut artifact.src);
            texts.push(&mut artifact.dest);
            texts.extend(artifact.mode.iter_mut());
            texts.extend(artifact.owner.iter_mut());
        }
        texts.extend(self.repository.iter_mut());
        texts.extend(self.ca_file.iter_mut());
        texts.extend(self.env.values_mut());
        texts.extend(self.user.iter_mut());
        texts.extend(self.workdir.iter_mut());
        texts.extend(self.ports.iter_mut());
        texts.extend(self.labels.values_mut());
        texts.extend(self.tags.iter_mut());
        texts.extend(self.platforms.iter_mut());
        texts.extend(self.entrypoint.iter_mut().flatten());
        texts.extend(self.cmd.iter_mut().flatten());
        if let Some(supervisor) = &mut self.supervisor {
            texts.extend(supervisor.file.iter_mut());
            texts.push(&mut supervisor.path);
            texts.push(&mut supervisor.binary);
            texts.extend(supervisor.binaries.values_mut());
        }
        texts
    }

    /// Checks beyond the types; each problem as `place: message`.
    pub fn check(&self, file: &str) -> Vec<String> {
        let mut problems = Vec::new();
        let mut problem = |text: &Text, what: &str, why: String| {
            problems.push(format!("{}: image.{what}: {why}", text.place(file)))
        };
        let base = self.base.as_str();
        if base != "scratch" && !base.starts_with("oci-layout:") {
            if let Err(why) = crate::oci::reference::Reference::parse(base) {
                problem(
                    &self.base,
                    "base",
                    format!("{why}; or use `scratch` or `oci-layout:PATH[:TAG]`"),
                );
            }
        }
        for (what, path) in [("install_path", &self.install_path)]
            .into_iter()
            .chain(self.files.iter().map(|f| ("files.dest", &f.dest)))
            .chain(self.artifacts.iter().map(|a| ("artifacts.dest", &a.dest)))
            .chain(self.supervisor.iter().map(|s| ("supervisor.path", &s.path)))
        {
            if let Err(why) = check_absolute(path.as_str()) {
                problem(path, what, why);
            }
        }
        if let Some(repository) = &self.repository {
            if let Err(why) = crate::oci::reference::Reference::parse(repository.as_str()) {
                problem(repository, "repository", why);
            } else if repository
                .as_str()
                .rsplit('/')
                .next()
                .is_some_and(|last| last.contains(':'))
            {
                problem(
                    repository,
                    "repository",
                    "give the repository without a tag; tags come from image.tags".into(),
                );
            }
        }
        if let Err(why) = crate::template::check(self.install_path.as_str()) {
            problem(&self.install_path, "install_path", why);
        }
        if parse_owner(self.owner.as_str()).is_none() {
            problem(
                &self.owner,
                "owner",
                format!("`{}` is not UID:GID (numbers, e.g. 1000:1000)", self.owner),
            );
        }
        for tag in &self.tags {
            if let Err(why) = crate::template::check(tag.as_str()) {
                problem(tag, "tags", why);
            }
        }
        for platform in &self.platforms {
            if let Err(why) = crate::oci::Platform::parse(platform.as_str()) {
                problem(platform, "platforms", why);
            }
        }
        for port in &self.ports {
            if normalise_port(port.as_str()).is_none() {
                problem(
                    port,
                    "ports",
                    format!("`{port}` is not PORT or PORT/tcp|udp|sctp"),
                );
            }
        }
        if let Some(supervisor) = &self.supervisor {
            match (&supervisor.file, &supervisor.config) {
                (Some(_), Some(_)) | (None, None) => problems.push(format!(
                    "{file}: image.supervisor: give either `file` (a ContainerPilot JSON5 file) or `config` (inline), not {}",
                    if supervisor.file.is_some() { "both" } else { "neither" }
                )),
                (None, Some(config)) => {
                    let env = self.plain_env();
                    let text = supervisor::render_inline(config);
                    if let Err(e) = supervisor::Config::check_file("image.supervisor.config", &text, &env) {
                        problems.push(format!("{file}: {e}"));
                    }
                }
                (Some(_), None) => {} // read and checked with the repository at the tag
            }
            if self.entrypoint.is_some() {
                problems.push(format!(
                    "{file}: image.entrypoint: the supervisor is the entrypoint; drop one of them"
                ));
            }
            if !supervisor.provided() && !supervisor.binary.as_str().starts_with('/') {
                problems.push(format!(
                    "{file}: image.supervisor.binary: `{}` is neither `provided` nor an absolute path in the image",
                    supervisor.binary
                ));
            }
            if !supervisor.provided() && !supervisor.binaries.is_empty() {
                problems.push(format!(
                    "{file}: image.supervisor.binaries: only with `binary: provided` (the base carries `{}`)",
                    supervisor.binary
                ));
            }
            for platform in supervisor.binaries.keys() {
                if let Err(why) = crate::oci::Platform::parse(platform) {
                    problems.push(format!("{file}: image.supervisor.binaries: {why}"));
                }
            }
        }
        problems.extend(self.check_outputs_and_signing(file));
        problems
    }

    /// `artifacts` and `sign`, each problem as `place: message`.
    fn check_outputs_and_signing(&self, file: &str) -> Vec<String> {
        let mut problems = Vec::new();
        {
            let mut problem = |text: &Text, what: &str, why: String| {
                problems.push(format!("{}: image.{what}: {why}", text.place(file)))
            };
            for artifact in &self.artifacts {
                let src = artifact.src.as_str();
                if src.starts_with('/') || src.split('/').any(|part| part == "..") || src.is_empty()
                {
                    problem(
                        &artifact.src,
                        "artifacts.src",
                        format!("`{src}` is not a path inside the workspace (relative, no `..`)"),
                    );
                }
                if let (Some(mode), None) = (&artifact.mode, artifact.file_mode()) {
                    problem(
                        mode,
                        "artifacts.mode",
                        format!("`{mode}` is not an octal mode such as 0755"),
                    );
                }
                if let Some(owner) = artifact
                    .owner
                    .as_ref()
                    .filter(|o| parse_owner(o.as_str()).is_none())
                {
                    problem(
                        owner,
                        "artifacts.owner",
                        format!("`{owner}` is not UID:GID"),
                    );
                }
            }
        }
        if let Some(sign) = &self.sign {
            let key = Some(sign.key.clone());
            problems.extend(super::check_variable_names(
                file,
                "image.sign",
                &[("key", &key), ("password", &sign.password)],
            ));
        }
        problems
    }
}

fn check_absolute(path: &str) -> Result<(), String> {
    if !path.starts_with('/') || path.split('/').any(|c| c == "..") {
        Err(format!("`{path}` must be an absolute path without `..`"))
    } else {
        Ok(())
    }
}

/// `UID:GID` as numbers.
pub fn parse_owner(text: &str) -> Option<(u64, u64)> {
    let (uid, gid) = text.split_once(':')?;
    Some((uid.parse().ok()?, gid.parse().ok()?))
}

/// `9197` → `9197/tcp`; `53/udp` stays.
pub fn normalise_port(text: &str) -> Option<String> {
    let (port, proto) = text.split_once('/').unwrap_or((text, "tcp"));
    let _: u16 = port.parse().ok()?;
    ["tcp", "udp", "sctp"]
        .contains(&proto)
        .then(|| format!("{port}/{proto}"))
}
