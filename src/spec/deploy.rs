//! The `deploy:` section: the deployment repositories each environment's release is recorded in.

use schemars::JsonSchema;
use serde::Deserialize;

use super::orchestrator::OrchestratorSpec;
use super::Text;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeploySpec {
    /// The environment's name (`staging`, `production`), as `tagpilot deploy --env` names it.
    pub environment: Text,
    /// `tagpilot release` records the release here too (after the push). Default false: an
    /// environment like production stays a manual `tagpilot deploy`.
    #[serde(default)]
    pub automatic: bool,
    /// The deployment repository: `https://…`, `ssh://…`, `git@host:path`, `file://…` or a path.
    pub repo: Text,
    /// Branch to commit to. Default `main`.
    #[serde(default = "default_branch")]
    pub branch: Text,
    /// Folder in the repository that `files` are relative to.
    #[serde(default)]
    pub path: Option<Text>,
    /// The files that name the image: `{ file: PATH, ... }`, or just `PATH`.
    #[serde(deserialize_with = "files_or_paths")]
    #[schemars(with = "Vec<FileOrPath>")]
    pub files: Vec<DeployFile>,
    /// Names of environment variables holding the login (never the secrets themselves).
    #[serde(default)]
    pub credentials: Credentials,
    /// A `user:password@` login written into `repo` (after `${VAR}`s), taken out of it so that
    /// the address tagpilot prints and records never shows it; git gets it as a header.
    #[serde(skip)]
    #[schemars(skip)]
    pub url_login: Option<(String, String)>,
    /// Commit author. Default: `GITLAB_USER_NAME` / `GITLAB_USER_EMAIL`, else tagpilot.
    #[serde(default)]
    pub author: Option<Author>,
    /// Commit message. Placeholders: {name} {version} {tag} {major} {minor} {patch}
    /// {environment} {image}. tagpilot's trailers are always added after it.
    /// Default `Deploy {name} {version} to {environment}`.
    #[serde(default = "default_message")]
    pub message: Text,
    /// How the image is written into the files: `pinned` (default, `repo:tag@sha256:…`),
    /// `digest` (`repo@sha256:…`) or `tag` (`repo:tag`).
    #[serde(default)]
    pub write: WriteAs,
    /// The engine to roll out on once the deployment repository records the release.
    #[serde(default)]
    pub orchestrator: Option<OrchestratorSpec>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum WriteAs {
    #[default]
    Pinned,
    Digest,
    Tag,
}

/// Placeholders a deploy message may use on top of the release's.
pub const MESSAGE_PLACEHOLDERS: [&str; 2] = ["environment", "image"];

fn default_message() -> Text {
    Text::unplaced("Deploy {name} {version} to {environment}")
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeployFile {
    /// Path of the file in the repository (under `path`).
    pub file: Text,
    /// `auto` (default): `image:` values anywhere, marked lines, and a Kustomization's
    /// `images:`; `kustomization` for a kustomization without `kind:`; `helm` with key paths.
    #[serde(default)]
    pub kind: DeployKind,
    /// Helm: dotted key path of the tag (`image.tag`; list items as `sidecars[0].image.tag`).
    #[serde(default)]
    pub tag: Option<Text>,
    /// Helm: dotted key path of the registry (`image.registry`), for charts that keep it apart
    /// from the repository (Bitnami's layout): registry and repository must name the release.
    #[serde(default)]
    pub registry: Option<Text>,
    /// Helm: dotted key path of the repository, which must name the released image.
    #[serde(default)]
    pub repository: Option<Text>,
    /// Helm: dotted key path of the digest.
    #[serde(default)]
    pub digest: Option<Text>,
    /// Values on lines ending in `# tagpilot: MARKER` are changed too.
    #[serde(default)]
    pub marker: Option<Text>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeployKind {
    #[default]
    Auto,
    Kustomization,
    Helm,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    /// Variable with a token for HTTPS (a GitLab project access token with write_repository).
    #[serde(default)]
    pub token: Option<Text>,
    /// Variable with the user name for HTTPS (default `oauth2` with a token).
    #[serde(default)]
    pub user: Option<Text>,
    /// Variable with a password for HTTPS (instead of a token).
    #[serde(default)]
    pub password: Option<Text>,
    /// Variable with the path of an SSH private key (a deploy key with write access).
    #[serde(default)]
    pub ssh_key: Option<Text>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Author {
    pub name: Text,
    pub email: Text,
}

fn default_branch() -> Text {
    Text::unplaced("main")
}

impl DeploySpec {
    pub fn texts_mut(&mut self) -> Vec<&mut Text> {
        let mut texts = vec![
            &mut self.environment,
            &mut self.repo,
            &mut self.branch,
            &mut self.message,
        ];
        texts.extend(self.path.iter_mut());
        for file in &mut self.files {
            texts.push(&mut file.file);
            texts.extend(file.tag.iter_mut());
            texts.extend(file.repository.iter_mut());
            texts.extend(file.registry.iter_mut());
            texts.extend(file.digest.iter_mut());
            texts.extend(file.marker.iter_mut());
        }
        // Credentials name variables: they are never expanded, so a secret written as
        // `${DEPLOY_TOKEN}` is refused by name instead of ending up in messages.
        if let Some(author) = &mut self.author {
            texts.push(&mut author.name);
            texts.push(&mut author.email);
        }
        if let Some(orchestrator) = &mut self.orchestrator {
            texts.extend(orchestrator.texts_mut());
        }
        texts
    }

    /// Moves a `user:password@` login out of `repo` (see `url_login`).
    pub fn take_url_login(&mut self) {
        let (url, login) = crate::net::split_login(&self.repo.value);
        self.repo.value = url;
        self.url_login = login;
    }

    pub fn check(&self, file: &str) -> Vec<String> {
        let mut problems = Vec::new();
        let c = &self.credentials;
        problems.extend(super::check_variable_names(
            file,
            "deploy credentials",
            &[
                ("token", &c.token),
                ("user", &c.user),
                ("password", &c.password),
                ("ssh_key", &c.ssh_key),
            ],
        ));
        if self.files.is_empty() {
            problems.push(format!(
                "{}: deploy `{}` lists no files",
                self.environment.place(file),
                self.environment
            ));
        }
        if self.message.as_str().trim().is_empty() {
            problems.push(format!(
                "{}: deploy message is empty: a commit needs a subject above its trailers (history and rollback read them)",
                self.message.place(file)
            ));
        } else if let Err(why) =
            crate::template::check_with(self.message.as_str(), &MESSAGE_PLACEHOLDERS)
        {
            problems.push(format!(
                "{}: deploy message: {why}",
                self.message.place(file)
            ));
        }
        if let Some(path) = &self.path {
            if !inside_repository(path.as_str()) {
                problems.push(format!(
                    "{}: deploy path `{path}` must be a folder inside the repository (relative, without `..`)",
                    path.place(file)
                ));
            }
        }
        for f in &self.files {
            if f.kind == DeployKind::Helm && f.tag.is_none() {
                problems.push(format!("{}: deploy files: kind helm needs `tag:` (the key path of the tag, e.g. image.tag)", f.file.place(file)));
            }
            if !inside_repository(f.file.as_str()) {
                problems.push(format!(
                    "{}: deploy files: `{}` must be a path inside the repository",
                    f.file.place(file),
                    f.file
                ));
            }
        }
        if let Some(orchestrator) = &self.orchestrator {
            problems.extend(orchestrator.check(file, &self.environment));
        }
        problems
    }
}

/// A relative path that stays inside the repository as written (no `..`, not absolute).
fn inside_repository(path: &str) -> bool {
    !path.starts_with('/') && !path.split('/').any(|c| c == "..")
}

/// A `files:` item as written: a path alone, or the full entry (whose errors stay precise:
/// an unknown key is named, not "no variant matched").
struct FileOrPath(DeployFile);

impl<'de> Deserialize<'de> for FileOrPath {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Item;
        impl<'de> serde::de::Visitor<'de> for Item {
            type Value = FileOrPath;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a file path, or a mapping with `file:`")
            }

            fn visit_str<E: serde::de::Error>(self, path: &str) -> Result<FileOrPath, E> {
                Ok(FileOrPath(DeployFile {
                    file: Text::unplaced(path),
                    kind: DeployKind::default(),
                    tag: None,
                    registry: None,
                    repository: None,
                    digest: None,
                    marker: None,
                }))
            }

            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                map: M,
            ) -> Result<FileOrPath, M::Error> {
                let entry =
                    DeployFile::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(FileOrPath(entry))
            }
        }
        deserializer.deserialize_any(Item)
    }
}

impl JsonSchema for FileOrPath {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "DeployFileOrPath".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let entry = generator.subschema_for::<DeployFile>();
        schemars::json_schema!({ "anyOf": [{ "type": "string" }, entry] })
    }
}

/// `files: [a.yaml, { file: b.yaml, kind: helm, ... }]`: a path alone means `{ file: PATH }`.
fn files_or_paths<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<DeployFile>, D::Error> {
    let items = Vec::<FileOrPath>::deserialize(deserializer)?;
    Ok(items.into_iter().map(|item| item.0).collect())
}
