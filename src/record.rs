//! The release record: what was released and what each stage did. Printed by `--output json`,
//! saved as `release.json` in the output folder for later jobs and re-runs.

use serde::{Deserialize, Serialize};

use std::path::Path;

use crate::error::{Error, Result};
use crate::gitops::deploy::Deployed;
use crate::image::Built as ImageBuilt;
use crate::oci::push::Pushed;
use crate::orchestrator::rollout::Rollout;
use crate::publish::Published;
use crate::tarball::{Built, TarballRecord};
use crate::target::Target;

#[derive(Debug, Serialize)]
pub struct Record {
    pub tool: String,
    pub name: String,
    /// `null` for a snapshot of HEAD.
    pub tag: Option<String>,
    pub version: String,
    pub scheme: String,
    pub prerelease: bool,
    pub commit: String,
    pub commit_time: i64,
    /// The mtime used for every archived entry.
    pub source_date_epoch: u64,
    pub previous: Option<Previous>,
    pub dry_run: bool,
    pub stages: Vec<Stage>,
    pub tarball: Option<TarballRecord>,
    pub image: Option<ImageBuilt>,
    pub pushed: Option<Pushed>,
    /// The GitLab Release and package files.
    pub published: Option<Published>,
    /// What the deploy stage did, per environment.
    pub deployed: Vec<EnvironmentDeployed>,
}

#[derive(Debug, Serialize)]
pub struct Previous {
    pub tag: String,
    pub version: String,
}

/// The stages of a release, in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum StageName {
    Tarball,
    Image,
    Push,
    Publish,
    Deploy,
}

impl StageName {
    pub const ALL: [StageName; 5] = [
        StageName::Tarball,
        StageName::Image,
        StageName::Push,
        StageName::Publish,
        StageName::Deploy,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StageName::Tarball => "tarball",
            StageName::Image => "image",
            StageName::Push => "push",
            StageName::Publish => "publish",
            StageName::Deploy => "deploy",
        }
    }
}

impl std::fmt::Display for StageName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Serialize)]
pub struct Stage {
    pub name: StageName,
    pub status: Status,
    pub detail: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Done,
    /// Found already done (same bytes already there): nothing written.
    AlreadyDone,
    /// Not selected (`--only` / `--skip`).
    NotSelected,
    /// The spec has no section for it.
    NotConfigured,
    Failed,
    /// Not run: the job was stopped (SIGTERM/SIGINT) before it.
    Stopped,
}

impl std::fmt::Display for Status {
    /// The status in words, as summaries and logs show it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Done => "done",
            Status::AlreadyDone => "already done",
            Status::NotSelected => "not selected",
            Status::NotConfigured => "not configured",
            Status::Failed => "failed",
            Status::Stopped => "stopped",
        })
    }
}

/// What an earlier job of the same release left in the output folder (its `release.json`),
/// so a later job (publish, deploy) uses those artifacts instead of building them again.
#[derive(Debug, Deserialize)]
pub struct Earlier {
    commit: String,
    version: String,
    dry_run: bool,
    tarball: Option<TarballRecord>,
    image: Option<ImageBuilt>,
    pushed: Option<Pushed>,
}

impl Earlier {
    /// The record saved at `path`, if there is one for this very release (same commit and
    /// version, and a real run unless this is a dry run).
    pub fn load(path: &Path, target: &Target, dry_run: bool) -> Result<Option<Earlier>> {
        let Ok(text) = std::fs::read_to_string(path) else {
            return Ok(None);
        };
        let earlier: Earlier = serde_json::from_str(&text).map_err(|e| {
            Error::input(format!(
                "{} is not a tagpilot release record: {e}",
                path.display()
            ))
            .with_hint("Delete it, or point --out at another folder")
        })?;
        let same = earlier.commit == target.commit.id
            && earlier.version == target.version.to_string()
            && (dry_run || !earlier.dry_run);
        Ok(same.then_some(earlier))
    }
}

impl Record {
    /// Takes over what an earlier job built, for the stages this job does not run. A tarball
    /// is taken only if its file is still there with the recorded SHA-256.
    pub fn carry_over(
        &mut self,
        earlier: Earlier,
        tarball: bool,
        image: bool,
        push: bool,
    ) -> Result<()> {
        if tarball {
            if let Some(recorded) = earlier.tarball {
                let path = Path::new(&recorded.path);
                let actual =
                    crate::digest::sha256_file(path).map_err(|e| Error::io("read", path, e))?;
                if actual != recorded.sha256 {
                    return Err(Error::input(format!(
                        "{} is not the tarball the earlier job recorded (sha256 {actual}, recorded {})",
                        path.display(),
                        recorded.sha256
                    ))
                    .with_hint("Pass the build job's artifacts unchanged, or run the tarball stage again"));
                }
                self.tarball = Some(recorded);
            }
        }
        if image {
            self.image = earlier.image;
        }
        if push {
            self.pushed = earlier.pushed;
        }
        Ok(())
    }

    pub fn new(target: &Target, dry_run: bool) -> Record {
        Record {
            tool: format!("tagpilot {}", env!("CARGO_PKG_VERSION")),
            name: target.name.clone(),
            tag: target.tag.clone(),
            version: target.version.to_string(),
            scheme: target.version.scheme().name().to_string(),
            prerelease: target.version.is_prerelease(),
            commit: target.commit.id.clone(),
            commit_time: target.commit.time,
            source_date_epoch: target.mtime,
            previous: target.previous.as_ref().map(|p| Previous {
                tag: p.tag.clone(),
                version: p.version.to_string(),
            }),
            dry_run,
            stages: Vec::new(),
            tarball: None,
            image: None,
            pushed: None,
            published: None,
            deployed: Vec::new(),
        }
    }

    pub fn stage(&mut self, name: StageName, status: Status, detail: impl Into<String>) {
        self.stages.push(Stage {
            name,
            status,
            detail: detail.into(),
        });
    }

    pub fn set_tarball(&mut self, built: &Built) {
        self.tarball = Some(TarballRecord::of(built));
    }

    pub fn set_image(&mut self, built: &ImageBuilt) {
        self.image = Some(built.clone());
    }

    /// The pushed image as deploys write it: `registry/repository:VERSION_TAG@sha256:…`.
    pub fn pinned_image(&self) -> Option<String> {
        let pushed = self.pushed.as_ref()?;
        let repository = pushed.reference.split('@').next()?;
        self.pinned_in(repository)
    }

    /// The built image pinned in `repository`, under its first version tag.
    pub fn pinned_in(&self, repository: &str) -> Option<String> {
        let built = self.image.as_ref()?;
        let tag = built
            .version_tags
            .first()
            .cloned()
            .unwrap_or_else(|| self.version.clone());
        Some(format!("{repository}:{tag}@{}", built.digest))
    }

    /// `KEY=value` pairs for the GitLab dotenv report.
    pub fn dotenv(&self) -> Vec<(&'static str, String)> {
        let mut pairs = vec![
            ("TAGPILOT_NAME", self.name.clone()),
            ("TAGPILOT_VERSION", self.version.clone()),
            ("TAGPILOT_PRERELEASE", self.prerelease.to_string()),
        ];
        if let Some(tag) = &self.tag {
            pairs.push(("TAGPILOT_TAG", tag.clone()));
        }
        if let Some(tarball) = &self.tarball {
            pairs.push(("TAGPILOT_TARBALL", tarball.file.clone()));
            pairs.push(("TAGPILOT_TARBALL_SHA256", tarball.sha256.clone()));
        }
        if let Some(image) = &self.image {
            pairs.push(("TAGPILOT_IMAGE_DIGEST", image.digest.to_string()));
            pairs.push(("TAGPILOT_IMAGE_TAGS", image.tags.join(",")));
        }
        if let Some(pinned) = self.pinned_image() {
            // What `tagpilot deploy` takes by default in a later job.
            pairs.push(("TAGPILOT_IMAGE", pinned));
        }
        if let Some(url) = self.published.as_ref().and_then(|p| p.release_url.clone()) {
            pairs.push(("TAGPILOT_RELEASE_URL", url));
        }
        pairs
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the record is always JSON") + "\n"
    }
}

/// What the deploy stage did in one environment: the deployment commit, the rollout, and
/// the commit that records the image running again after a rollback.
#[derive(Debug, Serialize)]
pub struct EnvironmentDeployed {
    pub environment: String,
    /// What happened in the deployment repository.
    pub result: Deployed,
    /// What happened on the orchestrator, when the environment has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
    /// The commit that put the previous image back after a rollback.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restored: Option<Deployed>,
}

impl EnvironmentDeployed {
    /// The error the command ends with when the rollout failed (exit 3) or timed out (4).
    pub fn rollout_error(&self) -> Option<Error> {
        self.rollout.as_ref().and_then(Rollout::error)
    }

    /// One phrase for summaries: `committed, rollout succeeded`.
    pub fn summary(&self) -> String {
        let mut text = self.result.status().to_string();
        if let Some(rollout) = &self.rollout {
            text.push_str(&format!(", rollout {}", rollout.outcome));
        }
        if self.restored.is_some() {
            text.push_str(", previous image recorded again");
        }
        text
    }
}
