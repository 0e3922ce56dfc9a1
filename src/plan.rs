//! Release plans: `release --dry-run --plan-out F` saves what a release would do (the tag and
//! commit, the tarball's SHA-256, the image digest, each deployment repository's diff, each
//! rollout's from → to), and `release --plan F` applies exactly that. Before writing
//! anything it rehearses (a dry run) and refuses, listing every difference, when the world
//! moved on: the tag points elsewhere, the build gives other bytes, a deployment repository
//! or a service changed. A checksum catches a plan edited by hand.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::fsutil;
use crate::record::Record;
use crate::target::Target;

const FORMAT: u32 = 1;

#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub tagpilot_plan: u32,
    pub tool: String,
    pub name: String,
    pub tag: String,
    pub commit: String,
    pub version: String,
    pub tarball: Option<PlannedFile>,
    pub image: Option<PlannedImage>,
    pub deploy: Vec<PlannedDeploy>,
    /// `sha256:` of the plan with this field empty.
    pub checksum: String,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub struct PlannedFile {
    pub file: String,
    pub sha256: String,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub struct PlannedImage {
    pub digest: String,
    pub tags: Vec<String>,
    /// `(src, sha256)` of each build output in the image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<(String, String)>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub struct PlannedDeploy {
    pub environment: String,
    /// The deployment repository result: `would_commit` with its diff, `already_there`, ...
    pub result: Value,
    /// `(service, from, to)` per service, when the live state could be read.
    pub rollout: Option<Vec<(String, String, String)>>,
}

impl Plan {
    /// The plan of a dry run's record.
    pub fn of(record: &Record) -> Result<Plan> {
        let tag = record.tag.clone().ok_or_else(|| {
            Error::input("a snapshot cannot be planned: plans are applied to a tag")
        })?;
        let mut plan = Plan {
            tagpilot_plan: FORMAT,
            tool: record.tool.clone(),
            name: record.name.clone(),
            tag,
            commit: record.commit.clone(),
            version: record.version.clone(),
            tarball: record.tarball.as_ref().map(|t| PlannedFile {
                file: t.file.clone(),
                sha256: t.sha256.clone(),
            }),
            image: record.image.as_ref().map(|i| PlannedImage {
                digest: i.digest.to_string(),
                tags: i.tags.clone(),
                artifacts: i
                    .artifacts
                    .iter()
                    .map(|a| (a.src.clone(), a.sha256.clone()))
                    .collect(),
            }),
            deploy: planned_deploys(record),
            checksum: String::new(),
        };
        plan.checksum = plan.computed_checksum();
        Ok(plan)
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).expect("a plan is JSON") + "\n";
        fsutil::write_atomic(path, text.as_bytes())
    }

    /// Reads a plan, refusing one that is not a plan or was changed after it was made.
    pub fn load(path: &Path) -> Result<Plan> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))?;
        let plan: Plan = serde_json::from_str(&text)
            .map_err(|e| Error::input(format!("{} is not a tagpilot plan: {e}", path.display())))?;
        if plan.tagpilot_plan != FORMAT {
            return Err(Error::input(format!(
                "{} is a plan of format {}; this tagpilot reads format {FORMAT}",
                path.display(),
                plan.tagpilot_plan
            )));
        }
        if plan.checksum != plan.computed_checksum() {
            return Err(Error::input(format!(
                "{} was changed after it was made (its checksum does not match); nothing was done",
                path.display()
            ))
            .with_hint("Make a new plan with `tagpilot release --dry-run --plan-out FILE`"));
        }
        Ok(plan)
    }

    /// Refuses a release of another tag, or of a tag that now names another commit.
    pub fn check_target(&self, target: &Target, ci_tag: Option<&str>) -> Result<()> {
        if let Some(ci_tag) = ci_tag.filter(|t| *t != self.tag) {
            return Err(Error::input(format!(
                "the plan is for tag {}, but this job releases {ci_tag}; nothing was done",
                self.tag
            )));
        }
        if target.commit.id != self.commit {
            return Err(Error::input(format!(
                "tag {} now names commit {}, not the planned {}; nothing was done",
                self.tag,
                &target.commit.id[..12],
                &self.commit[..12.min(self.commit.len())]
            ))
            .with_hint("Make a new plan"));
        }
        Ok(())
    }

    /// Every way a rehearsal (dry run now) differs from the plan; empty when it holds.
    pub fn differences(&self, rehearsal: &Record) -> Vec<String> {
        let now = match Plan::of(rehearsal) {
            Ok(now) => now,
            Err(e) => return vec![e.message],
        };
        let mut differences = Vec::new();
        if now.tarball != self.tarball {
            differences.push(format!(
                "the tarball is now {}, the plan has {}",
                describe_file(&now.tarball),
                describe_file(&self.tarball)
            ));
        }
        if now.image != self.image {
            differences.push(format!(
                "the image is now {}, the plan has {}",
                describe_image(&now.image),
                describe_image(&self.image)
            ));
        }
        let artifacts = |plan: &Plan| plan.image.as_ref().map(|i| i.artifacts.clone());
        for (src, planned) in artifacts(self).unwrap_or_default() {
            let current = artifacts(&now)
                .unwrap_or_default()
                .into_iter()
                .find(|(s, _)| *s == src);
            match current {
                Some((_, sha256)) if sha256 == planned => {}
                Some((_, sha256)) => differences.push(format!(
                    "build output {src} is now sha256 {sha256}, the plan has {planned}"
                )),
                None => differences.push(format!("build output {src} is no longer in the image")),
            }
        }
        for planned in &self.deploy {
            let current = now
                .deploy
                .iter()
                .find(|d| d.environment == planned.environment);
            match current {
                None => differences.push(format!(
                    "{} is no longer deployed by this release",
                    planned.environment
                )),
                Some(current) => {
                    if current.result != planned.result {
                        differences.push(format!(
                            "the deployment repository of {} changed: the plan {}, now {}",
                            planned.environment,
                            describe_result(&planned.result),
                            describe_result(&current.result)
                        ));
                    }
                    if current.rollout != planned.rollout {
                        differences.push(format!(
                            "the services of {} changed: the plan {:?}, now {:?}",
                            planned.environment, planned.rollout, current.rollout
                        ));
                    }
                }
            }
        }
        differences
    }

    fn computed_checksum(&self) -> String {
        let mut value = serde_json::to_value(self).expect("a plan is JSON");
        value["checksum"] = Value::String(String::new());
        format!(
            "sha256:{}",
            crate::digest::sha256_hex(value.to_string().as_bytes())
        )
    }
}

fn planned_deploys(record: &Record) -> Vec<PlannedDeploy> {
    record
        .deployed
        .iter()
        .map(|d| PlannedDeploy {
            environment: d.environment.clone(),
            result: serde_json::to_value(&d.result).expect("a result is JSON"),
            rollout: d.rollout.as_ref().map(|r| {
                r.services
                    .iter()
                    .map(|s| (s.service.clone(), s.from.clone(), s.to.clone()))
                    .collect()
            }),
        })
        .collect()
}

fn describe_file(file: &Option<PlannedFile>) -> String {
    file.as_ref().map_or("none".to_string(), |f| {
        format!("{} sha256:{}", f.file, f.sha256)
    })
}

fn describe_image(image: &Option<PlannedImage>) -> String {
    image
        .as_ref()
        .map_or("none".to_string(), |i| i.digest.clone())
}

fn describe_result(result: &Value) -> String {
    match result["status"].as_str() {
        Some("would_commit") => format!("diff\n{}", result["diff"].as_str().unwrap_or("")),
        Some(status) => status.replace('_', " "),
        None => result.to_string(),
    }
}
