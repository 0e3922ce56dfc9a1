//! The human summary of a release record.

use std::path::Path;

use crate::record::{Record, Status};
use crate::ui::{human_bytes, print_stdout};

use crate::fsutil::display;

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
            // What went wrong stands out in a long job log.
            Status::Failed | Status::Stopped => stage.status.to_string().to_uppercase(),
            _ => stage.status.to_string(),
        };
        text.push_str(&format!(
            "  {:<10} {:<14} {}\n",
            stage.name.as_str(),
            status,
            stage.detail
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
