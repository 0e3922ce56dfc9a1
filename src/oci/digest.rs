//! Content digests, `algorithm:hex`, as manifests, indexes, layouts and registries write them.
//! A digest names a file in the blob store and a path on the registry, so one that came from
//! outside (a base manifest, a registry header) could otherwise point anywhere: `sha256:../..`.
//! [`Digest`] can only be made by checking the text, so every digest in the program is one of
//! `sha256:` + 64 or `sha512:` + 128 lower-case hex digits.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

impl Digest {
    /// Checks `text`; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<Digest, String> {
        let (algorithm, hex) = text
            .split_once(':')
            .ok_or_else(|| format!("`{}` is not a digest (algorithm:hex)", shown(text)))?;
        let length = match algorithm {
            "sha256" => 64,
            "sha512" => 128,
            _ => {
                return Err(format!(
                    "`{}` is not a digest: algorithm `{}` is not sha256 or sha512",
                    shown(text),
                    shown(algorithm)
                ))
            }
        };
        let hex_ok = hex.len() == length
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !hex_ok {
            return Err(format!(
                "`{}` is not a digest: {algorithm} needs {length} lower-case hex digits",
                shown(text)
            ));
        }
        Ok(Digest(text.to_string()))
    }

    /// The digest of bytes this program hashed itself.
    pub fn sha256(hex: &str) -> Digest {
        Digest::parse(&format!("sha256:{hex}")).expect("a SHA-256 is 64 hex digits")
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn algorithm(&self) -> &str {
        self.0.split_once(':').map_or("", |(a, _)| a)
    }

    pub fn hex(&self) -> &str {
        self.0.split_once(':').map_or("", |(_, h)| h)
    }
}

/// A bad digest is quoted in errors; keep a hostile one short and printable.
fn shown(text: &str) -> String {
    let printable: String = text
        .chars()
        .take(80)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    printable
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for Digest {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<String> for Digest {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Digest, D::Error> {
        let text = String::deserialize(deserializer)?;
        Digest::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_only_sha256_and_sha512_of_the_exact_length_in_lower_case_hex() {
        let good = format!("sha256:{}", "a".repeat(64));
        assert_eq!(Digest::parse(&good).unwrap().hex(), "a".repeat(64));
        assert!(Digest::parse(&format!("sha512:{}", "0".repeat(128))).is_ok());
        for bad in [
            "sha256:../../../../etc/passwd".to_string(),
            format!("sha256:{}/x", "a".repeat(62)),
            format!("sha256:{}", "A".repeat(64)),
            format!("sha256:{}", "a".repeat(63)),
            format!("sha256:{}", "a".repeat(65)),
            format!("sha512:{}", "a".repeat(64)),
            format!("md5:{}", "a".repeat(32)),
            "a".repeat(64),
            String::new(),
        ] {
            assert!(Digest::parse(&bad).is_err(), "{bad} was taken");
        }
    }

    #[test]
    fn a_manifest_with_a_bad_digest_does_not_deserialize() {
        let bad: Result<Digest, _> = serde_json::from_str("\"sha256:../../secret\"");
        assert!(bad.unwrap_err().to_string().contains("is not a digest"));
    }
}
