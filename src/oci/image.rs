//! Config and manifest of one platform's image: the base's config with our layers appended and
//! our settings merged in, written as exact, deterministic bytes (JSON objects with sorted keys).

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::error::{Error, Result};

use super::blobs::BlobStore;
use super::digest::Digest;
use super::layer::Layer;
use super::{Descriptor, Family, Platform};

/// What tagpilot sets on top of the base.
#[derive(Clone, Debug, Default)]
pub struct Recipe {
    /// Seconds since the epoch: the tag's commit time.
    pub created: u64,
    pub env: Vec<(String, String)>,
    /// Setting an entrypoint resets the base's `Cmd`, as `docker build` does.
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub user: Option<String>,
    pub workdir: Option<String>,
    pub ports: Vec<String>,
    /// Docker's `Healthcheck` extension of the image config.
    pub healthcheck: Option<Value>,
    pub labels: BTreeMap<String, String>,
    /// Manifest annotations (OCI family only; Docker manifests have none).
    pub annotations: BTreeMap<String, String>,
}

/// The base of one platform: its config and the layer descriptors of its manifest, as written
/// there (kept verbatim, so nothing about the base changes).
#[derive(Clone, Debug)]
pub struct BaseImage {
    pub family: Family,
    pub platform: Platform,
    pub config: Value,
    pub layers: Vec<Value>,
}

impl BaseImage {
    /// The digests of the base's layers, each checked (the base's manifest is input).
    pub fn layer_digests(&self, place: &str) -> Result<Vec<Digest>> {
        self.layers
            .iter()
            .map(|layer| {
                let text = layer["digest"].as_str().unwrap_or_default();
                Digest::parse(text).map_err(|why| Error::input(format!("{place}: a layer: {why}")))
            })
            .collect()
    }

    /// No base at all: an empty filesystem.
    pub fn scratch(platform: Platform) -> BaseImage {
        let mut config = json!({
            "architecture": platform.architecture,
            "os": platform.os,
            "config": {},
            "rootfs": { "type": "layers", "diff_ids": [] },
            "history": [],
        });
        if let Some(variant) = &platform.variant {
            config["variant"] = json!(variant);
        }
        BaseImage {
            family: Family::Oci,
            platform,
            config,
            layers: Vec::new(),
        }
    }
}

/// Writes config and manifest for `base` plus `layers` (each with the history line that says
/// what made it); returns the manifest's descriptor, with its platform.
pub fn assemble(
    store: &BlobStore,
    base: &BaseImage,
    layers: &[(Layer, String)],
    recipe: &Recipe,
) -> Result<Descriptor> {
    let config = config_json(base, layers, recipe)?;
    let config_bytes = serde_json::to_vec(&config).expect("config is JSON");
    let config_descriptor = store.put(base.family.config(), &config_bytes)?;

    let mut layer_list = base.layers.clone();
    for (layer, _) in layers {
        let descriptor = layer.descriptor(base.family)?;
        layer_list.push(serde_json::to_value(descriptor).expect("descriptor is JSON"));
    }
    let mut manifest = json!({
        "schemaVersion": 2,
        "mediaType": base.family.manifest(),
        "config": config_descriptor,
        "layers": layer_list,
    });
    if base.family == Family::Oci && !recipe.annotations.is_empty() {
        manifest["annotations"] = json!(recipe.annotations);
    }
    let bytes = serde_json::to_vec(&manifest).expect("manifest is JSON");
    let mut descriptor = store.put(base.family.manifest(), &bytes)?;
    descriptor.platform = Some(base.platform.clone());
    Ok(descriptor)
}

fn config_json(base: &BaseImage, layers: &[(Layer, String)], recipe: &Recipe) -> Result<Value> {
    let mut config = base.config.clone();
    let root = config
        .as_object_mut()
        .ok_or_else(|| Error::input("the base image config is not a JSON object"))?;
    let created = rfc3339(recipe.created);
    root.insert("created".into(), json!(created));
    let settings = object_at(root, "config");
    merge_env(settings, &recipe.env);
    if let Some(entrypoint) = &recipe.entrypoint {
        settings.insert("Entrypoint".into(), json!(entrypoint));
        settings.remove("Cmd");
    }
    if let Some(cmd) = &recipe.cmd {
        settings.insert("Cmd".into(), json!(cmd));
    }
    if let Some(user) = &recipe.user {
        settings.insert("User".into(), json!(user));
    }
    if let Some(workdir) = &recipe.workdir {
        settings.insert("WorkingDir".into(), json!(workdir));
    }
    if let Some(healthcheck) = &recipe.healthcheck {
        settings.insert("Healthcheck".into(), healthcheck.clone());
    }
    let ports = object_at(settings, "ExposedPorts");
    for port in &recipe.ports {
        ports.insert(port.clone(), json!({}));
    }
    if ports.is_empty() {
        settings.remove("ExposedPorts");
    }
    let labels = object_at(settings, "Labels");
    for (key, value) in &recipe.labels {
        labels.insert(key.clone(), json!(value));
    }
    if labels.is_empty() {
        settings.remove("Labels");
    }

    let rootfs = object_at(root, "rootfs");
    rootfs.insert("type".into(), json!("layers"));
    let diff_ids = array_at(rootfs, "diff_ids");
    diff_ids.extend(layers.iter().map(|(layer, _)| json!(layer.diff_id)));
    let history = array_at(root, "history");
    history.extend(
        layers
            .iter()
            .map(|(_, created_by)| json!({ "created": created, "created_by": created_by })),
    );
    Ok(config)
}

/// `KEY=value` entries: ours replace the base's for the same key, new ones are appended.
fn merge_env(settings: &mut Map<String, Value>, env: &[(String, String)]) {
    let list = array_at(settings, "Env");
    for (key, value) in env {
        let entry = json!(format!("{key}={value}"));
        let prefix = format!("{key}=");
        match list
            .iter()
            .position(|e| e.as_str().is_some_and(|s| s.starts_with(&prefix)))
        {
            Some(i) => list[i] = entry,
            None => list.push(entry),
        }
    }
    if list.is_empty() {
        settings.remove("Env");
    }
}

fn object_at<'a>(map: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let slot = map.entry(key).or_insert_with(|| json!({}));
    if !slot.is_object() {
        *slot = json!({});
    }
    slot.as_object_mut().expect("just made an object")
}

fn array_at<'a>(map: &'a mut Map<String, Value>, key: &str) -> &'a mut Vec<Value> {
    let slot = map.entry(key).or_insert_with(|| json!([]));
    if !slot.is_array() {
        *slot = json!([]);
    }
    slot.as_array_mut().expect("just made an array")
}

/// `2024-03-01T11:00:00Z` for seconds since the epoch (UTC, civil calendar).
pub fn rfc3339(seconds: u64) -> String {
    let days = (seconds / 86_400) as i64;
    let rest = seconds % 86_400;
    // Days to (year, month, day): the proleptic Gregorian algorithm from "chrono-compatible
    // low-level date algorithms" (H. Hinnant), in 400-year eras starting on March 1.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_709_290_800), "2024-03-01T11:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(4_102_444_799), "2099-12-31T23:59:59Z");
    }

    #[test]
    fn env_and_entrypoint_merge_like_docker() {
        let mut base = BaseImage::scratch(Platform::parse("linux/amd64").unwrap());
        base.config["config"] = json!({ "Env": ["PATH=/usr/bin", "LANG=C"], "Cmd": ["sh"] });
        let recipe = Recipe {
            env: vec![
                ("LANG".into(), "C.UTF-8".into()),
                ("DIRAC_ROOT".into(), "/opt/dirac".into()),
            ],
            entrypoint: Some(vec!["/usr/local/bin/containerpilot".into()]),
            ports: vec!["9197/tcp".into()],
            ..Recipe::default()
        };
        let config = config_json(&base, &[], &recipe).unwrap();
        assert_eq!(
            config["config"]["Env"],
            json!(["PATH=/usr/bin", "LANG=C.UTF-8", "DIRAC_ROOT=/opt/dirac"])
        );
        assert_eq!(
            config["config"]["Entrypoint"],
            json!(["/usr/local/bin/containerpilot"])
        );
        assert!(
            config["config"].get("Cmd").is_none(),
            "an entrypoint resets the base's Cmd"
        );
        assert_eq!(config["config"]["ExposedPorts"], json!({ "9197/tcp": {} }));
        assert_eq!(config["created"], "1970-01-01T00:00:00Z");
    }
}
