//! The `publish:` section: the GitLab Release for the tag and the release files in the
//! project's generic package registry. In GitLab CI it needs no settings at all.

use schemars::JsonSchema;
use serde::Deserialize;

use super::Text;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishSpec {
    /// Publish to GitLab when the job's variables say where (`CI_API_V4_URL`, `CI_PROJECT_ID`).
    /// Default true; false turns the stage off.
    #[serde(default = "super::yes")]
    pub gitlab: bool,
    /// Release notes (Markdown). Default: `notes_file`, else the subjects of the commits since
    /// the previous release.
    #[serde(default)]
    pub notes: Option<Text>,
    /// A file in the repository at the tag holding the release notes.
    #[serde(default)]
    pub notes_file: Option<Text>,
    /// Name of the generic package the tarball and SHA256SUMS go to. Default: the release name.
    #[serde(default)]
    pub package: Option<Text>,
    /// More links to add to the release's assets.
    #[serde(default)]
    pub links: Vec<LinkSpec>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkSpec {
    pub name: Text,
    /// An `http(s)://` address.
    pub url: Text,
}

impl Default for PublishSpec {
    fn default() -> Self {
        PublishSpec {
            gitlab: true,
            notes: None,
            notes_file: None,
            package: None,
            links: Vec::new(),
        }
    }
}

impl PublishSpec {
    pub fn texts_mut(&mut self) -> Vec<&mut Text> {
        let mut texts: Vec<&mut Text> = self.notes.iter_mut().collect();
        texts.extend(self.notes_file.iter_mut());
        texts.extend(self.package.iter_mut());
        for link in &mut self.links {
            texts.push(&mut link.name);
            texts.push(&mut link.url);
        }
        texts
    }

    pub fn check(&self, file: &str) -> Vec<String> {
        let mut problems = Vec::new();
        if let (Some(_), Some(notes_file)) = (&self.notes, &self.notes_file) {
            problems.push(format!(
                "{}: publish: set `notes` or `notes_file`, not both",
                notes_file.place(file)
            ));
        }
        if let Some(package) = &self.package {
            if let Err(why) = super::check_name(package.as_str()) {
                problems.push(format!("{}: publish.package: {why}", package.place(file)));
            }
        }
        for link in &self.links {
            let url = link.url.as_str();
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                problems.push(format!(
                    "{}: publish.links: `{url}` must start with https:// or http://",
                    link.url.place(file)
                ));
            }
        }
        problems
    }
}
