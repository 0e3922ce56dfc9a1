//! The push stage of a dry run: what the registry already has, read without writing.

use crate::image::{push_preview, Built};
use crate::spec::image::ImageSpec;
use crate::ui::Ui;

/// A dry run's push stage: what the registry already has, read without writing. A version tag
/// that names other bytes is a problem the release would hit; an unreadable registry is not.
pub fn preview_push(
    built: &Built,
    spec: &ImageSpec,
    force: bool,
    problems: &mut Vec<String>,
    ui: &Ui,
) -> String {
    let configured = spec.repository.is_some()
        || std::env::var("CI_REGISTRY_IMAGE").is_ok_and(|r| !r.is_empty());
    if !configured {
        return "dry run: no registry configured, nothing read".to_string();
    }
    match push_preview(built, spec) {
        Ok(preview) => {
            for (tag, there) in &preview.conflicts {
                let problem = format!(
                    "push: {}:{tag} already names other bytes ({there}, this build {}); a release refuses that{}",
                    preview.repository,
                    built.digest,
                    if force { " unless --force, which is given" } else { " (--force replaces it)" }
                );
                if !force {
                    problems.push(problem.clone());
                }
                ui.info(&problem);
            }
            format!(
                "dry run: {} has {} of the {} added layer(s){}",
                preview.repository,
                preview.layers_present,
                preview.layers,
                if preview.already_there.is_empty() {
                    String::new()
                } else {
                    format!(
                        ", and already {} with this digest",
                        preview.already_there.join(",")
                    )
                }
            )
        }
        Err(err) => {
            ui.info(&format!("dry run: the registry could not be read: {err}"));
            format!("dry run: registry not readable ({err})")
        }
    }
}
