//! The GitLab Release of a tag, through the Releases API. GitLab CI's own `release:` keyword
//! fails when the release exists; here a re-run compares and updates instead, so a retried
//! pipeline finishes the job: name and notes are set when they differ, missing asset links
//! are added and links whose address changed are corrected.

use serde::Serialize;
use serde_json::{json, Value};

use crate::error::Result;
use crate::mode::Mode;

use super::api::{JobTokenApi, Project};
use crate::net::percent_encode;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Link {
    pub name: String,
    pub url: String,
    /// `package`, `image`, `runbook` or `other`.
    pub link_type: String,
    /// The permanent path under the release (`/app-1.0.0.tar.gz`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direct_asset_path: Option<String>,
}

pub struct WantedRelease<'a> {
    pub tag: &'a str,
    pub name: &'a str,
    pub notes: &'a str,
    pub links: &'a [Link],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseStatus {
    Created,
    Updated,
    AlreadyThere,
    /// Dry run: would be created.
    WouldCreate,
    /// Dry run: would be updated.
    WouldUpdate,
}

crate::ui::display_as_words!(ReleaseStatus);

/// Makes the release match `wanted`; returns what was done and the release's web address.
pub fn ensure(
    project: &Project,
    wanted: &WantedRelease,
    mode: Mode,
) -> Result<(ReleaseStatus, Option<String>)> {
    let path = format!("{}/releases/{}", project.prefix, percent_encode(wanted.tag));
    let what = format!("read the release of {}", wanted.tag);
    let mut reply = project.api.get(&path, &what)?;
    if reply.status == 404 {
        if mode.rehearsing() {
            return Ok((ReleaseStatus::WouldCreate, None));
        }
        if let Some(created) = create(project, wanted)? {
            return Ok((ReleaseStatus::Created, created));
        }
        // Another job created it since we looked ("Release already exists"): reconcile it,
        // as a release made by hand.
        reply = project.api.get(&path, &what)?;
    }
    project.expect(&reply, &what, JobTokenApi::Releases)?;
    let release = reply.json();
    let url = web_url(&release);
    let text_differs = release["name"] != wanted.name || release["description"] != wanted.notes;
    let existing: Vec<&Value> = release["assets"]["links"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let link_changes: Vec<(&Link, Option<u64>)> = wanted
        .links
        .iter()
        .filter_map(
            |link| match existing.iter().find(|e| e["name"] == link.name.as_str()) {
                None => Some((link, None)),
                Some(e) if e["url"] != link.url.as_str() => Some((link, e["id"].as_u64())),
                Some(_) => None,
            },
        )
        .collect();
    if !text_differs && link_changes.is_empty() {
        return Ok((ReleaseStatus::AlreadyThere, url));
    }
    if mode.rehearsing() {
        return Ok((ReleaseStatus::WouldUpdate, url));
    }
    project.require_token()?;
    if text_differs {
        let body = json!({ "name": wanted.name, "description": wanted.notes });
        project.send_ok(
            "PUT",
            &path,
            &body,
            &format!("update the release of {}", wanted.tag),
            JobTokenApi::Releases,
        )?;
    }
    for (link, id) in link_changes {
        let body = serde_json::to_value(link).expect("a link is JSON");
        let (method, link_path) = match id {
            Some(id) => ("PUT", format!("{path}/assets/links/{id}")),
            None => ("POST", format!("{path}/assets/links")),
        };
        project.send_ok(
            method,
            &link_path,
            &body,
            &format!("link {} to the release", link.name),
            JobTokenApi::ReleaseLinks,
        )?;
    }
    Ok((ReleaseStatus::Updated, url))
}

/// Creates the release; `Ok(None)` when another job created it since we looked (GitLab's
/// 409 "Release already exists"), for the caller to reconcile. `Some` holds its web address.
fn create(project: &Project, wanted: &WantedRelease) -> Result<Option<Option<String>>> {
    project.require_token()?;
    let body = json!({
        "tag_name": wanted.tag,
        "name": wanted.name,
        "description": wanted.notes,
        "assets": { "links": wanted.links },
    });
    let what = format!("create the release of {}", wanted.tag);
    let created = project.api.send(
        "POST",
        &format!("{}/releases", project.prefix),
        Some(("application/json", &body)),
        &what,
    )?;
    if created.status == 409 {
        return Ok(None);
    }
    project.expect(&created, &what, JobTokenApi::Releases)?;
    Ok(Some(web_url(&created.json())))
}

fn web_url(release: &Value) -> Option<String> {
    release["_links"]["self"].as_str().map(str::to_string)
}
