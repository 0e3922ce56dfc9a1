//! Where a rebuilt image differs from the one in a registry: platform by platform, the first
//! layer whose digest differs, and in it the files that differ (by SHA-256 of their content,
//! mode and owner), or else the image config. For `tagpilot verify --rebuild`.

use std::collections::BTreeMap;
use std::io::Read;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::oci::blobs::BlobStore;
use crate::oci::digest::Digest;
use crate::oci::registry::Client;

use super::Built;

/// At most this many files are named per differing layer.
const NAMED: usize = 10;

/// Every difference between `rebuilt` and the registry's image `theirs`, for people.
pub fn differences(rebuilt: &Built, client: &mut Client, theirs: &Digest) -> Result<Vec<String>> {
    let store = BlobStore::open(&rebuilt.layout)?;
    let ours: Value = json(&store.read(&rebuilt.digest)?)?;
    let (bytes, _, _) = client.get_manifest(theirs.as_str())?;
    let registry: Value = json(&bytes)?;
    let mut found = Vec::new();
    for (platform, our_manifest, their_manifest) in pairs(&store, client, &ours, &registry)? {
        let our_layers = layer_digests(&our_manifest);
        let their_layers = layer_digests(&their_manifest);
        let added_from = our_layers.len().saturating_sub(rebuilt.layers.len());
        let differing = our_layers
            .iter()
            .zip(&their_layers)
            .position(|(a, b)| a != b);
        match differing {
            Some(index) => {
                let what = match index.checked_sub(added_from) {
                    Some(added) => rebuilt.layers[added].created_by.clone(),
                    None => format!("base layer {}", index + 1),
                };
                found.push(format!(
                    "{platform}: layer {} ({what}) is {} in the registry, {} rebuilt",
                    index + 1,
                    their_layers[index],
                    our_layers[index]
                ));
                let ours = entries(&mut store.read(&Digest::parse(&our_layers[index]).map_err(Error::failed)?)?.as_slice())?;
                let theirs = entries(&mut client.get_blob(&Digest::parse(&their_layers[index]).map_err(Error::failed)?)?)?;
                found.extend(file_differences(&ours, &theirs));
            }
            None if our_layers.len() != their_layers.len() => found.push(format!(
                "{platform}: {} layers in the registry, {} rebuilt",
                their_layers.len(),
                our_layers.len()
            )),
            None => found.push(format!(
                "{platform}: the layers are the same; the image config differs ({} in the registry, {} rebuilt)",
                their_manifest["config"]["digest"], our_manifest["config"]["digest"]
            )),
        }
    }
    Ok(found)
}

fn json(bytes: &[u8]) -> Result<Value> {
    serde_json::from_slice(bytes).map_err(|e| Error::failed(format!("not a JSON manifest: {e}")))
}

/// The platform manifests to compare, paired by platform (one pair for a single manifest).
fn pairs(
    store: &BlobStore,
    client: &mut Client,
    ours: &Value,
    theirs: &Value,
) -> Result<Vec<(String, Value, Value)>> {
    let (Some(our_list), Some(their_list)) =
        (ours["manifests"].as_array(), theirs["manifests"].as_array())
    else {
        return Ok(vec![(
            "the image".to_string(),
            ours.clone(),
            theirs.clone(),
        )]);
    };
    let mut pairs = Vec::new();
    for entry in our_list {
        let platform = format!(
            "{}/{}",
            entry["platform"]["os"].as_str().unwrap_or("?"),
            entry["platform"]["architecture"].as_str().unwrap_or("?")
        );
        let Some(theirs) = their_list
            .iter()
            .find(|t| t["platform"] == entry["platform"])
        else {
            pairs.push((platform, Value::Null, Value::Null));
            continue;
        };
        let digest = |e: &Value| {
            Digest::parse(e["digest"].as_str().unwrap_or_default()).map_err(Error::failed)
        };
        let our_manifest = json(&store.read(&digest(entry)?)?)?;
        let (bytes, _, _) = client.get_manifest(digest(theirs)?.as_str())?;
        pairs.push((platform, our_manifest, json(&bytes)?));
    }
    Ok(pairs)
}

fn layer_digests(manifest: &Value) -> Vec<String> {
    manifest["layers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["digest"].as_str().map(String::from))
        .collect()
}

/// A layer's entries: path → `mode uid:gid sha256` (or `-> target` for a link).
fn entries(compressed: &mut dyn Read) -> Result<BTreeMap<String, String>> {
    let mut head = [0u8; 4];
    let mut start = Vec::new();
    let n = compressed
        .read(&mut head)
        .map_err(|e| Error::failed(format!("could not read a layer: {e}")))?;
    start.extend_from_slice(&head[..n]);
    let whole = std::io::Cursor::new(start).chain(compressed);
    let reader: Box<dyn Read> = if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::Decoder::new(whole).map_err(|e| Error::failed(e.to_string()))?)
    } else {
        Box::new(flate2::read::GzDecoder::new(whole))
    };
    let failed = |e: std::io::Error| Error::failed(format!("could not read a layer: {e}"));
    let mut archive = tar::Archive::new(reader);
    let mut listed = BTreeMap::new();
    for entry in archive.entries().map_err(failed)? {
        let mut entry = entry.map_err(failed)?;
        let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let header = entry.header();
        let owner = format!(
            "{:o} {}:{}",
            header.mode().unwrap_or(0),
            header.uid().unwrap_or(0),
            header.gid().unwrap_or(0)
        );
        let content = match entry.link_name_bytes() {
            Some(target) => format!("-> {}", String::from_utf8_lossy(&target)),
            None => {
                let mut hashing = crate::digest::HashingReader::new(&mut entry);
                std::io::copy(&mut hashing, &mut std::io::sink()).map_err(failed)?;
                hashing.finish().0
            }
        };
        listed.insert(path, format!("{owner} {content}"));
    }
    Ok(listed)
}

fn file_differences(
    ours: &BTreeMap<String, String>,
    theirs: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut found = Vec::new();
    for (path, mine) in ours {
        match theirs.get(path) {
            Some(other) if other == mine => {}
            Some(other) => found.push(format!("  {path}: {other} in the registry, {mine} rebuilt")),
            None => found.push(format!("  {path}: only in the rebuilt image")),
        }
    }
    for path in theirs.keys().filter(|p| !ours.contains_key(*p)) {
        found.push(format!("  {path}: only in the registry's image"));
    }
    let more = found.len().saturating_sub(NAMED);
    found.truncate(NAMED);
    if more > 0 {
        found.push(format!("  and {more} more"));
    }
    found
}
