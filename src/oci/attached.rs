//! What is attached to a pushed image, as the release record keeps it: its signatures and
//! its attestations (see `signing`).

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Signature {
    /// The signed manifest or index.
    pub digest: String,
    /// Where the signature is: `registry/repository:sha256-<hex>.sig`.
    pub stored_at: String,
    /// `signed`, or `already_signed` (a re-run: the same signature was there).
    pub status: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Attestation {
    pub predicate_type: String,
    /// The document in the output folder.
    pub file: String,
    pub sha256: String,
    /// `registry/repository:sha256-<hex>.att`, when it was attached to the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attached_to: Option<String>,
    /// `attached`, `already_attached` (a re-run), or `written` (no signing key).
    pub status: String,
}
