//! The pipeline spec, `tagpilot.yaml`: typed, strict (unknown keys are errors), with `${VAR}`
//! interpolation from the environment. Later stages (image, deploy) add their own sections
//! here as new optional fields; each section owns its types, defaults and checks.

pub mod deploy;
pub mod image;
mod interpolate;
pub mod orchestrator;
pub mod publish;
mod text;

use std::path::Path;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::compress::{Compression, Packing};
use crate::error::{Error, Result};
use crate::gzip::Cuts;
use crate::source::{Excludes, Submodules};
use crate::template;
use crate::version::Scheme;

pub use interpolate::{interpolate, Lookup};
pub use text::Text;

/// The file tagpilot looks for at the repository root when `--pipeline` is not given.
pub const DEFAULT_FILE: &str = "tagpilot.yaml";

/// tagpilot pipeline spec. Every key is optional; an empty file (or none) means all defaults.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "tagpilot pipeline spec (tagpilot.yaml)")]
pub struct Spec {
    /// Release name, used in file names and templates as `{name}`. Default: the name of the
    /// repository's folder.
    #[serde(default)]
    pub name: Option<Text>,
    /// How git tags are read as versions.
    #[serde(default)]
    pub version: VersionSpec,
    /// The release tarball: the git tree at the tag, reproducibly packed.
    #[serde(default)]
    pub tarball: TarballSpec,
    /// The service's OCI image: the release tree, extra files and an embedded supervisor
    /// config on a pinned base.
    #[serde(default)]
    pub image: Option<image::ImageSpec>,
    /// The GitLab Release and the release files in the generic package registry.
    #[serde(default)]
    pub publish: publish::PublishSpec,
    /// Deployment repositories, one per environment, where each release is recorded (GitOps).
    #[serde(default)]
    pub deploy: Vec<deploy::DeploySpec>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VersionSpec {
    /// `auto` (default) tries semver, dirac, then pep440.
    #[serde(default)]
    pub scheme: Scheme,
    /// Only tags starting with this belong to this release (monorepos: `api/`). Stripped
    /// before the version is read.
    #[serde(default)]
    pub tag_prefix: Text,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TarballSpec {
    /// Folder every entry is placed under. Placeholders: {name} {version} {tag} {major}
    /// {minor} {patch}. Default `{name}-{version}/`.
    #[serde(default = "default_prefix")]
    pub prefix: Text,
    /// File name of the tarball in the output folder; must end in `.tar.gz` (or `.tar.zst`
    /// with zstd). Same placeholders. Default `{name}-{version}.tar.gz` (`.tar.zst`).
    #[serde(default)]
    pub file: Option<Text>,
    /// Globs (from the repository root) of paths to leave out, on top of `.gitattributes`
    /// `export-ignore`. `*` stays within a folder, `**` crosses folders, `dir/**` also drops
    /// the folder itself.
    #[serde(default)]
    pub exclude: Vec<Text>,
    /// What to do with git submodules, whose content is not in this repository.
    #[serde(default)]
    pub submodules: Submodules,
    /// Compression format. The implementation and level are pinned so digests are stable.
    #[serde(default)]
    pub compression: Compression,
    /// Compression level, 1 (fastest) to 9 (smallest). Default 6, like `gzip`.
    #[serde(default)]
    pub level: Level,
    /// Where gzip's deflate blocks are cut, which is part of the bytes: `files` (default; each
    /// file of 16 KiB or more starts a block, so the image layer of the same tree reuses the
    /// tarball's compressed files) or `fixed` (every 256 KiB: the bytes tagpilot 0.1 made).
    /// gzip only.
    #[serde(default)]
    pub gzip_blocks: Cuts,
}

impl TarballSpec {
    /// The file name template: the spec's, or `{name}-{version}` with the format's ending.
    pub fn file_template(&self) -> String {
        match &self.file {
            Some(file) => file.value.clone(),
            None => format!("{{name}}-{{version}}{}", self.compression.extension()),
        }
    }

    /// How the tarball is compressed.
    pub fn packing(&self) -> Packing {
        Packing {
            compression: self.compression,
            level: self.level.0,
            cuts: self.gzip_blocks,
        }
    }

    /// The excludes as a matcher (checked at load, so this fails only on unchecked specs).
    pub fn excludes(&self) -> Result<Excludes> {
        Excludes::new(self.exclude.iter().map(|t| t.as_str()))
            .map_err(|why| Error::input(format!("tarball.exclude: {why}")))
    }
}

impl Default for TarballSpec {
    fn default() -> Self {
        TarballSpec {
            prefix: default_prefix(),
            file: None,
            exclude: Vec::new(),
            submodules: Submodules::default(),
            compression: Compression::default(),
            level: Level::default(),
            gzip_blocks: Cuts::default(),
        }
    }
}

fn default_prefix() -> Text {
    Text::unplaced("{name}-{version}/")
}

/// A compression level from 1 to 9, checked while parsing so the error points at it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[schemars(transparent)]
pub struct Level(#[schemars(range(min = 1, max = 9))] pub u32);

impl Default for Level {
    fn default() -> Self {
        Level(6)
    }
}

impl<'de> Deserialize<'de> for Level {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        let expected = "expected a compression level from 1 (fastest) to 9 (smallest)";
        match u64::deserialize(deserializer) {
            Ok(n @ 1..=9) => Ok(Level(n as u32)),
            Ok(n) => Err(serde::de::Error::custom(format!(
                "{n} is out of range: {expected}"
            ))),
            Err(_) => Err(serde::de::Error::custom(expected)),
        }
    }
}

impl Spec {
    /// Reads and checks a spec file; see [`Spec::parse`].
    pub fn load(path: &Path, lookup: Lookup) -> Result<Spec> {
        let text =
            std::fs::read_to_string(path).map_err(|e| Error::io("read pipeline spec", path, e))?;
        Spec::parse(&text, &path.display().to_string(), lookup)
    }

    /// Parses `yaml`, expands `${VAR}`s and checks every value. All problems are reported
    /// at once, each as `file:line:column: what is wrong`.
    pub fn parse(yaml: &str, file: &str, lookup: Lookup) -> Result<Spec> {
        let mut spec = if is_blank_yaml(yaml) {
            Spec::default()
        } else {
            serde_saphyr::from_str::<Spec>(yaml).map_err(|e| yaml_error(file, &e))?
        };
        let mut problems = Vec::new();
        let mut unresolved = Vec::new();
        for text in spec.texts_mut() {
            match interpolate(&text.value, lookup) {
                // Names reach files, reports and logs: a control character there forges lines
                // (multi-line messages and notes keep their newlines and tabs).
                Ok(value)
                    if value
                        .chars()
                        .any(|c| c.is_control() && c != '\n' && c != '\t') =>
                {
                    problems.push(format!(
                        "{}: contains a control character",
                        text.place(file)
                    ));
                }
                Ok(value) => text.value = value,
                Err(why) => {
                    unresolved.push(text.place(file));
                    problems.push(format!("{}: {why}", text.place(file)));
                }
            }
        }
        for deploy in &mut spec.deploy {
            deploy.take_url_login();
        }
        // A value whose variable is missing would only produce a second, misleading error.
        problems.extend(spec.check(file).into_iter().filter(|p| {
            !unresolved
                .iter()
                .any(|place| p.starts_with(&format!("{place}:")))
        }));
        if problems.is_empty() {
            Ok(spec)
        } else {
            Err(invalid(file, problems))
        }
    }

    /// Every string value, for interpolation. A new section adds its strings here.
    fn texts_mut(&mut self) -> Vec<&mut Text> {
        let mut texts: Vec<&mut Text> = self.name.iter_mut().collect();
        texts.push(&mut self.version.tag_prefix);
        texts.push(&mut self.tarball.prefix);
        texts.extend(self.tarball.file.iter_mut());
        texts.extend(self.tarball.exclude.iter_mut());
        if let Some(image) = &mut self.image {
            texts.extend(image.texts_mut());
        }
        texts.extend(self.publish.texts_mut());
        for deploy in &mut self.deploy {
            texts.extend(deploy.texts_mut());
        }
        texts
    }

    /// Checks beyond the types: templates, globs, ranges.
    fn check(&self, file: &str) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(name) = &self.name {
            if let Err(why) = check_name(name.as_str()) {
                problems.push(format!("{}: name: {why}", name.place(file)));
            }
        }
        let prefix = &self.tarball.prefix;
        if let Err(why) = template::check(prefix.as_str()) {
            problems.push(format!("{}: tarball.prefix: {why}", prefix.place(file)));
        } else if prefix.as_str().starts_with('/')
            || prefix.as_str().split('/').any(|c| c == "..")
            || prefix.as_str().contains(['\n', '\t'])
        {
            problems.push(format!(
                "{}: tarball.prefix `{prefix}` must be a relative folder without `..`",
                prefix.place(file)
            ));
        }
        if let Some(file_name) = &self.tarball.file {
            let ending = self.tarball.compression.extension();
            if let Err(why) = template::check(file_name.as_str()) {
                problems.push(format!("{}: tarball.file: {why}", file_name.place(file)));
            } else if file_name.as_str().contains(['/', '\n', '\t'])
                || !file_name.as_str().ends_with(ending)
            {
                problems.push(format!(
                    "{}: tarball.file `{file_name}` must be a plain file name ending in `{ending}`",
                    file_name.place(file)
                ));
            }
        }
        for pattern in &self.tarball.exclude {
            if let Err(why) = Excludes::new([pattern.as_str()]) {
                problems.push(format!("{}: tarball.exclude: {why}", pattern.place(file)));
            }
        }
        if let Some(image) = &self.image {
            problems.extend(image.check(file));
        }
        problems.extend(self.publish.check(file));
        for deploy in &self.deploy {
            problems.extend(deploy.check(file));
        }
        problems
    }
}

/// Credential fields name environment variables (`token: DEPLOY_TOKEN`). They are never
/// `${VAR}`-expanded: a value that is not a variable name may be the secret itself, so the
/// problem says where it is and never repeats it.
fn check_variable_names(
    file: &str,
    section: &str,
    fields: &[(&str, &Option<Text>)],
) -> Vec<String> {
    fields
        .iter()
        .filter_map(|(field, value)| {
            let value = value.as_ref()?;
            (!is_variable_name(value.as_str())).then(|| {
                format!(
                    "{}: {section}.{field} must be the name of an environment variable (like DEPLOY_TOKEN), not its value or `${{…}}`",
                    value.place(file)
                )
            })
        })
        .collect()
}

/// `DEPLOY_TOKEN`: what an environment variable's name looks like.
fn is_variable_name(text: &str) -> bool {
    let mut chars = text.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A release name ends up in file names and image paths: keep it to a safe alphabet.
pub fn check_name(name: &str) -> std::result::Result<(), String> {
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && !name.starts_with(['.', '-']);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a usable release name: use letters, digits, `.`, `_` and `-`, not starting with `.` or `-`"
        ))
    }
}

/// An empty file or one with only comments is a spec with all defaults.
fn is_blank_yaml(yaml: &str) -> bool {
    yaml.lines().all(|line| {
        let line = line.trim();
        line.is_empty() || line.starts_with('#') || line == "---"
    })
}

/// `file:line:column: message`, then the parser's snippet of the offending lines.
fn yaml_error(file: &str, err: &serde_saphyr::Error) -> Error {
    let place = match err.location() {
        Some(at) if at.line() > 0 => format!("{file}:{}:{}", at.line(), at.column()),
        _ => file.to_string(),
    };
    let plain = err.render_with_options(
        serde_saphyr::render_options! { snippets: serde_saphyr::SnippetMode::Off },
    );
    // The plain rendering ends with " at line L, column C", which `place` already says.
    let message = match plain.rfind(" at line ") {
        Some(at) => &plain[..at],
        None => plain.as_str(),
    };
    let rendered =
        err.render_with_options(serde_saphyr::render_options! { source_name: Some(file) });
    let mut problem = format!("{place}: {message}");
    for line in rendered.lines().skip(1) {
        problem.push_str("\n  ");
        problem.push_str(line);
    }
    invalid(file, vec![problem])
}

fn invalid(file: &str, problems: Vec<String>) -> Error {
    Error::input(format!(
        "invalid pipeline spec {file}:\n  {}\nRun `tagpilot schema` for every key and its type; `tagpilot validate --pipeline {file}` re-checks it",
        problems.join("\n  ")
    ))
}

/// The JSON Schema of `tagpilot.yaml`, for editors.
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Spec)).expect("a schema is always JSON")
}

/// serde's default for flags that are on unless turned off.
fn yes() -> bool {
    true
}
