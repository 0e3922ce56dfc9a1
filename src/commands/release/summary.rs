//! The human summary of a release record.

use std::path::Path;

use crate::record::{Record, Status};
use crate::ui::{human_bytes, print_stdout};

use super::super::display;

pub fn print_summary(record: &Record, record_path: &Path) {
    let mut text = format!(
        "{} {}{}\n",
        record.name,
        record.version,
        if record.dry_run {
            " (dry run: nothing was pushed, published or deployed)"
        } else {
            ""
        }
    );
    for stage in &record.stages {
        let status = match stage.status {
            Status::Done => "done",
            Status::AlreadyDone => "already done",
            Status::NotSelected => "not selected",
            Status::NotConfigured => "not configured",
            Status::Failed => "FAILED",
            Status::Stopped => "STOPPED",
        };
        text.push_str(&format!(
            "  {:<10} {:<14} {}\n",
            stage.name, status, stage.detail
        ));
    }
    if let Some(tarball) = &record.tarball {
        text.push_str(&format!(
            "  tarball:  {} ({})\n",
            tarball.path,
            human_bytes(tarball.size)
        ));
    }
    if let Some(image) = &record.image {
        let first_tag = image.tags.first().map_or("", String::as_str);
        text.push_str(&format!(
            "  image:    {}:{first_tag} ({}, skopeo inspect oci:{}:{first_tag})\n",
            display(&image.layout),
            image.digest,
            display(&image.layout)
        ));
    }
    text.push_str(&format!("  record:   {}\n", display(record_path)));
    print_stdout(&text);
}
