//! Release versions read from git tags, in the schemes release engineers actually use:
//! SemVer (`v1.2.3`, `1.2.3-rc.1`; parsed by the `semver` crate), DIRAC (`v8r2p44`,
//! `v7r2-pre12`; our own, no crate knows it) and PEP 440 (`v9.0.0a31`, `1.0.post1`,
//! `1.0a2.dev3`, `1!2.0`, `1.0+local`; parsed by `pep440_rs`). All schemes map onto one
//! comparable [`Version`] (our own key, so the order is total across schemes), and a
//! repository that changed style over the years (as DIRAC did) still sorts correctly.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How tags are read as versions.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// Try semver, then dirac, then pep440; the first that fits wins.
    #[default]
    Auto,
    /// Semantic Versioning 2.0: `v1.2.3`, `1.2.3-rc.1`, `1.2.3+build.5`.
    Semver,
    /// DIRAC / LHCbDIRAC: `v8r2p44` = 8.2.44, `v7r2` = 7.2.0, `v7r2-pre12` = pre-release of 7.2.0.
    Dirac,
    /// PEP 440 releases and pre-releases: `9.0`, `v9.0.0a31`, `1.2b3`, `2.0rc1`.
    Pep440,
}

impl Scheme {
    pub const CONCRETE: [Scheme; 3] = [Scheme::Semver, Scheme::Dirac, Scheme::Pep440];

    pub fn name(self) -> &'static str {
        match self {
            Scheme::Auto => "auto",
            Scheme::Semver => "semver",
            Scheme::Dirac => "dirac",
            Scheme::Pep440 => "pep440",
        }
    }

    fn example(self) -> &'static str {
        match self {
            Scheme::Auto => "",
            Scheme::Semver => "v1.2.3 or 1.2.3-rc.1",
            Scheme::Dirac => "v8r2p44 or v7r2-pre12",
            Scheme::Pep440 => "9.0.0, v9.0.0a31 or 2.0rc1",
        }
    }
}

/// One dot-separated pre-release identifier. Numbers sort before words, numbers numerically,
/// words by ASCII: the SemVer precedence rules, which also order PEP 440's `a` < `b` < `rc`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Ident {
    Num(u64),
    Alpha(String),
}

impl fmt::Display for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ident::Num(n) => write!(f, "{n}"),
            Ident::Alpha(s) => f.write_str(s),
        }
    }
}

/// A parsed version. Ordering ignores the scheme, SemVer build metadata and PEP 440 local
/// versions; `1.2` equals `1.2.0`; a pre-release sorts before its release. Within a release,
/// PEP 440's order holds: `1.0.dev1` < `1.0a1.dev1` < `1.0a1` < `1.0` < `1.0.post1.dev1` <
/// `1.0.post1`, and an epoch (`1!2.0`) outranks everything without one.
#[derive(Clone, Debug)]
pub struct Version {
    scheme: Scheme,
    epoch: u64,
    release: Vec<u64>,
    /// Pre-release identifiers: SemVer's, DIRAC's `pre.N`, PEP 440's `a|b|rc.N`.
    pre: Vec<Ident>,
    /// PEP 440 post-release number.
    post: Option<u64>,
    /// PEP 440 development release number.
    dev: Option<u64>,
    /// The version as its scheme writes it, normalised.
    shown: String,
}

impl Version {
    /// Parses `text` (a tag with any monorepo prefix already removed) with one scheme; `Auto`
    /// tries each. The error lists every scheme tried and why it did not fit.
    pub fn parse(text: &str, scheme: Scheme) -> Result<Version, String> {
        let schemes: &[Scheme] = match scheme {
            Scheme::Auto => &Scheme::CONCRETE,
            Scheme::Semver => &[Scheme::Semver],
            Scheme::Dirac => &[Scheme::Dirac],
            Scheme::Pep440 => &[Scheme::Pep440],
        };
        let mut reasons = Vec::new();
        for &s in schemes {
            let parsed = match s {
                Scheme::Semver => parse_semver(text),
                Scheme::Dirac => parse_dirac(text),
                _ => parse_pep440(text),
            };
            match parsed {
                Ok(v) => return Ok(v),
                Err(why) => reasons.push(format!("{} ({why}; e.g. {})", s.name(), s.example())),
            }
        }
        Err(format!(
            "`{text}` fits no version scheme; tried {}",
            reasons.join(", ")
        ))
    }

    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// A pre-release (`-rc.1`, `-pre3`, `a1`) or a PEP 440 development release (`.dev1`):
    /// never `latest`, never a moving tag.
    pub fn is_prerelease(&self) -> bool {
        !self.pre.is_empty() || self.dev.is_some()
    }

    fn component(&self, i: usize) -> u64 {
        self.release.get(i).copied().unwrap_or(0)
    }

    pub fn major(&self) -> u64 {
        self.component(0)
    }

    pub fn minor(&self) -> u64 {
        self.component(1)
    }

    pub fn patch(&self) -> u64 {
        self.component(2)
    }

    /// Release components with trailing zeros removed, so `1.2` and `1.2.0` compare equal.
    fn significant_release(&self) -> &[u64] {
        let len = self
            .release
            .iter()
            .rposition(|&n| n != 0)
            .map_or(0, |i| i + 1);
        &self.release[..len]
    }

    /// Where the version stands among the forms of one release: a development release of
    /// the final (`1.0.dev1`), a pre-release, or the final and its post-releases.
    fn stage(&self) -> u8 {
        match (self.pre.is_empty(), self.post, self.dev) {
            (true, None, Some(_)) => 0,
            (false, _, _) => 1,
            _ => 2,
        }
    }
}

impl Ord for Version {
    /// One key for every scheme, compared field by field, so the order is total across
    /// schemes: epoch, release, stage, pre-release, post-release (none first), development
    /// release (none last).
    fn cmp(&self, other: &Self) -> Ordering {
        let dev = |v: &Version| v.dev.map_or((1, 0), |n| (0, n));
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| self.significant_release().cmp(other.significant_release()))
            .then_with(|| self.stage().cmp(&other.stage()))
            .then_with(|| self.pre.cmp(&other.pre))
            .then_with(|| self.post.cmp(&other.post))
            .then_with(|| dev(self).cmp(&dev(other)))
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

/// The normalised version text, in the notation of the scheme that parsed it:
/// `8.2.44`, `7.2.0-pre12`, `1.2.3-rc.1`, `9.0.0a31`, `1.0.post1`, `1!2.0`.
impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

fn strip_v(text: &str) -> &str {
    text.strip_prefix(['v', 'V']).unwrap_or(text)
}

/// A decimal number without sign or leading zero rule (DIRAC's numbers).
fn number(text: &str) -> Result<u64, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("`{text}` is not a number"));
    }
    text.parse().map_err(|_| format!("`{text}` is too large"))
}

/// SemVer 2.0 by the `semver` crate: `MAJOR.MINOR.PATCH[-PRE][+BUILD]`, after an optional `v`.
fn parse_semver(text: &str) -> Result<Version, String> {
    let parsed = semver::Version::parse(strip_v(text)).map_err(|e| e.to_string())?;
    let pre = if parsed.pre.is_empty() {
        Vec::new()
    } else {
        parsed
            .pre
            .as_str()
            .split('.')
            .map(|id| match id.parse() {
                // The crate refuses leading zeros, so digits are a number.
                Ok(n) if id.bytes().all(|b| b.is_ascii_digit()) => Ident::Num(n),
                _ => Ident::Alpha(id.to_string()),
            })
            .collect()
    };
    Ok(Version {
        scheme: Scheme::Semver,
        epoch: 0,
        release: vec![parsed.major, parsed.minor, parsed.patch],
        pre,
        post: None,
        dev: None,
        shown: parsed.to_string(),
    })
}

/// Splits `text` at the first non-digit: ("123", rest).
fn leading_digits(text: &str) -> (&str, &str) {
    let end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    text.split_at(end)
}

/// DIRAC's own scheme (no crate knows it): `v8r2p44` = 8.2.44, `v7r2` = 7.2.0,
/// `v7r2-pre12` = pre-release 12 of 7.2.0.
fn parse_dirac(text: &str) -> Result<Version, String> {
    let rest = text
        .strip_prefix('v')
        .ok_or_else(|| "does not start with `v`".to_string())?;
    let (major, rest) = leading_digits(rest);
    let major = number(major)?;
    let rest = rest
        .strip_prefix('r')
        .ok_or_else(|| "no `r<minor>` after the major number".to_string())?;
    let (minor, mut rest) = leading_digits(rest);
    let minor = number(minor)?;
    let mut patch = 0;
    if let Some(after_p) = rest.strip_prefix('p') {
        let (digits, after) = leading_digits(after_p);
        patch = number(digits)?;
        rest = after;
    }
    let (pre, shown) = match rest {
        "" => (Vec::new(), format!("{major}.{minor}.{patch}")),
        _ => {
            let digits = rest
                .strip_prefix("-pre")
                .ok_or_else(|| format!("unexpected `{rest}` (only `-preN` may follow)"))?;
            let n = number(digits)?;
            (
                vec![Ident::Alpha("pre".into()), Ident::Num(n)],
                format!("{major}.{minor}.{patch}-pre{n}"),
            )
        }
    };
    Ok(Version {
        scheme: Scheme::Dirac,
        epoch: 0,
        release: vec![major, minor, patch],
        pre,
        post: None,
        dev: None,
        shown,
    })
}

/// PEP 440 by the `pep440_rs` crate: releases, pre-releases (`a`, `b`, `rc` and their
/// spellings), post-releases, development releases, epochs and local versions, normalised
/// (`1.0-beta.2` is `1.0b2`).
fn parse_pep440(text: &str) -> Result<Version, String> {
    let parsed = pep440_rs::Version::from_str(text).map_err(|e| {
        let why = e.to_string();
        why.lines().next().unwrap_or(&why).to_string()
    })?;
    let pre = parsed
        .pre()
        .map(|p| {
            let label = match p.kind {
                pep440_rs::PrereleaseKind::Alpha => "a",
                pep440_rs::PrereleaseKind::Beta => "b",
                pep440_rs::PrereleaseKind::Rc => "rc",
            };
            vec![Ident::Alpha(label.into()), Ident::Num(p.number)]
        })
        .unwrap_or_default();
    Ok(Version {
        scheme: Scheme::Pep440,
        epoch: parsed.epoch(),
        release: parsed.release().to_vec(),
        pre,
        post: parsed.post(),
        dev: parsed.dev(),
        shown: parsed.to_string(),
    })
}

impl Version {
    /// The version an image tag names (`8.2.44`, `v1.0`, or `1.2.3@sha256:…` as Helm values
    /// and kustomize's `newTag` write a pinned tag), read with every scheme: image tags hold
    /// normalised versions, not the release's tag.
    pub fn of_image_tag(tag: &str) -> Option<Version> {
        let tag = tag.split('@').next().unwrap_or(tag).trim();
        Version::parse(tag, Scheme::Auto).ok()
    }
}

/// A release tag and the version it names.
#[derive(Clone, Debug)]
pub struct TaggedVersion {
    pub tag: String,
    pub version: Version,
}

/// Reads tags as versions: strips the monorepo prefix, then applies the scheme.
#[derive(Clone, Debug, Default)]
pub struct TagReader {
    pub scheme: Scheme,
    pub prefix: String,
}

impl TagReader {
    /// `Ok(None)` for a tag outside this prefix (another component of a monorepo).
    pub fn read(&self, tag: &str) -> Result<Option<Version>, String> {
        match tag.strip_prefix(self.prefix.as_str()) {
            None => Ok(None),
            Some(rest) => Version::parse(rest, self.scheme).map(Some),
        }
    }

    /// Like [`TagReader::read`], but a tag outside the prefix is an error too, for a tag the
    /// user asked for by name.
    pub fn read_required(&self, tag: &str) -> Result<Version, String> {
        match self.read(tag)? {
            Some(v) => Ok(v),
            None => Err(format!(
                "`{tag}` does not start with the tag prefix `{}` set in version.tag_prefix",
                self.prefix
            )),
        }
    }

    /// Reads many tags; returns the versions newest first and the tags that fitted no scheme.
    pub fn read_all<'a>(
        &self,
        tags: impl IntoIterator<Item = &'a str>,
    ) -> (Vec<TaggedVersion>, Vec<&'a str>) {
        let mut skipped = Vec::new();
        let mut versions: Vec<TaggedVersion> = tags
            .into_iter()
            .filter_map(|tag| match self.read(tag) {
                Ok(Some(version)) => Some(TaggedVersion {
                    tag: tag.to_string(),
                    version,
                }),
                Ok(None) => None,
                Err(_) => {
                    skipped.push(tag);
                    None
                }
            })
            .collect();
        sort_newest_first(&mut versions);
        (versions, skipped)
    }
}

/// Newest first; equal versions under different tags (`v1.0` and `1.0.0`) by tag name.
pub fn sort_newest_first(versions: &mut [TaggedVersion]) {
    versions.sort_by(|a, b| b.version.cmp(&a.version).then_with(|| a.tag.cmp(&b.tag)));
}

/// The release this one follows: the highest final release below `current` on the same
/// `major.minor` line, or, on the first release of a line, the highest final release below it.
pub fn previous_release<'a>(
    newest_first: &'a [TaggedVersion],
    current: &Version,
) -> Option<&'a TaggedVersion> {
    let below = || {
        newest_first
            .iter()
            .filter(|t| !t.version.is_prerelease() && t.version < *current)
    };
    below()
        .find(|t| t.version.major() == current.major() && t.version.minor() == current.minor())
        .or_else(|| below().next())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        Version::parse(text, Scheme::Auto).unwrap()
    }

    /// Tags read with `auto`, newest first.
    fn sorted(tags: &[&str]) -> Vec<TaggedVersion> {
        let (versions, skipped) = TagReader::default().read_all(tags.iter().copied());
        assert!(skipped.is_empty(), "{skipped:?}");
        versions
    }

    #[test]
    fn schemes_parse_and_normalise() {
        let cases = [
            ("v1.2.3", Scheme::Semver, "1.2.3", false),
            ("1.2.3-rc.1", Scheme::Semver, "1.2.3-rc.1", true),
            ("v1.2.3+build.7", Scheme::Semver, "1.2.3+build.7", false),
            ("v8r2p44", Scheme::Dirac, "8.2.44", false),
            ("v7r2", Scheme::Dirac, "7.2.0", false),
            ("v7r2-pre12", Scheme::Dirac, "7.2.0-pre12", true),
            ("v9.0.0a31", Scheme::Pep440, "9.0.0a31", true),
            ("2.0rc1", Scheme::Pep440, "2.0rc1", true),
            ("1.0-beta.2", Scheme::Pep440, "1.0b2", true),
            ("v1.2", Scheme::Pep440, "1.2", false),
            ("1.0c3", Scheme::Pep440, "1.0rc3", true),
            ("1.0.preview2", Scheme::Pep440, "1.0rc2", true),
            ("1.0.post1", Scheme::Pep440, "1.0.post1", false),
            ("v1.0-r2", Scheme::Pep440, "1.0.post2", false),
            ("1.0.dev1", Scheme::Pep440, "1.0.dev1", true),
            ("1.0a2.dev3", Scheme::Pep440, "1.0a2.dev3", true),
            ("1!2.0", Scheme::Pep440, "1!2.0", false),
            ("1.0+ubuntu.1", Scheme::Pep440, "1.0+ubuntu.1", false),
        ];
        for (tag, scheme, shown, pre) in cases {
            let parsed = v(tag);
            assert_eq!(parsed.scheme(), scheme, "{tag}");
            assert_eq!(parsed.to_string(), shown, "{tag}");
            assert_eq!(parsed.is_prerelease(), pre, "{tag}");
        }
        assert_eq!(
            (
                v("v8r2p44").major(),
                v("v8r2p44").minor(),
                v("v8r2p44").patch()
            ),
            (8, 2, 44)
        );
    }

    #[test]
    fn ordering_is_by_version_across_schemes() {
        let tags = sorted(&[
            "v7r2",
            "v7r2-pre12",
            "v7r2-pre3",
            "v7r10p1",
            "v8.0.0a31",
            "v8.0.0b2",
            "v8.0.0rc1",
            "v8.0.0",
            "v10.0.0",
            "v9.0.0",
            "v7r2p9",
            "v7r2p10",
        ]);
        let order: Vec<&str> = tags.iter().map(|t| t.tag.as_str()).collect();
        assert_eq!(
            order,
            [
                "v10.0.0",
                "v9.0.0",
                "v8.0.0",
                "v8.0.0rc1",
                "v8.0.0b2",
                "v8.0.0a31",
                "v7r10p1",
                "v7r2p10",
                "v7r2p9",
                "v7r2",
                "v7r2-pre12",
                "v7r2-pre3"
            ]
        );
        assert_eq!(v("1.2"), v("1.2.0"));
        assert!(v("1.2.3-alpha.1") < v("1.2.3-alpha.beta"));
        assert!(v("1.2.3-rc.2") < v("1.2.3-rc.10"));
    }

    #[test]
    fn pep440_post_dev_and_epoch_releases_sort_as_pep_440_says() {
        let tags = sorted(&[
            "1!0.1",
            "1.1.dev1",
            "1.0.post1",
            "1.0.post1.dev1",
            "1.0",
            "1.0rc1",
            "1.0b1",
            "1.0a1",
            "1.0a1.dev1",
            "1.0.dev1",
        ]);
        let order: Vec<&str> = tags.iter().map(|t| t.tag.as_str()).collect();
        assert_eq!(
            order,
            [
                "1!0.1",
                "1.1.dev1",
                "1.0.post1",
                "1.0.post1.dev1",
                "1.0",
                "1.0rc1",
                "1.0b1",
                "1.0a1",
                "1.0a1.dev1",
                "1.0.dev1"
            ]
        );
        // The same pre-release written in two schemes is the same version.
        assert_eq!(v("1.0.0-rc.1"), v("1.0rc1"));
        assert!(v("1.0.0") < v("1.0.post1"));
        assert!(v("v8r2p44") < v("8.2.44.post1"));
        // A post-release is a final release for `previous`; a dev release is not.
        let tags = sorted(&["1.0.post1", "1.1.dev1", "1.0"]);
        assert_eq!(previous_release(&tags, &v("1.1")).unwrap().tag, "1.0.post1");
    }

    #[test]
    fn any_mix_of_schemes_sorts_without_contradiction() {
        // Rust's sort panics on an order that is not total: sort every permutation seed.
        let mut tags = vec![
            "v8r2p44",
            "8.2.44",
            "8.2.44.post1",
            "v8r2-pre1",
            "8.2.0rc1",
            "8.2.0-rc.1",
            "8.2.dev1",
            "1!1.0",
            "8.2.44+local",
            "8.2.44+build.1",
            "v8r2",
            "8.2",
            "8.2.0-alpha.beta",
        ];
        for rotation in 0..tags.len() {
            tags.rotate_left(1);
            let mut sorted: Vec<Version> = tags.iter().map(|t| v(t)).collect();
            sorted.sort();
            assert!(
                sorted.windows(2).all(|w| w[0] <= w[1]),
                "rotation {rotation}"
            );
        }
    }

    #[test]
    fn bad_tags_name_every_scheme_tried() {
        let err = Version::parse("release-2020", Scheme::Auto).unwrap_err();
        for scheme in ["semver", "dirac", "pep440"] {
            assert!(err.contains(scheme), "{err}");
        }
        assert!(Version::parse("v1.2.3", Scheme::Dirac).is_err());
        assert!(Version::parse("01.2.3", Scheme::Semver).is_err());
        assert!(Version::parse("v7r2-rc1", Scheme::Dirac).is_err());
    }

    #[test]
    fn prefix_and_skip_count() {
        let reader = TagReader {
            scheme: Scheme::Auto,
            prefix: "api/".into(),
        };
        let (versions, skipped) =
            reader.read_all(["api/v1.2.3", "api/v1.10.0", "web/v9.0.0", "api/nightly"]);
        let tags: Vec<&str> = versions.iter().map(|t| t.tag.as_str()).collect();
        assert_eq!(tags, ["api/v1.10.0", "api/v1.2.3"]);
        assert_eq!(skipped, ["api/nightly"]);
        assert!(reader
            .read_required("web/v9.0.0")
            .unwrap_err()
            .contains("tag prefix"));
    }

    #[test]
    fn previous_release_prefers_the_same_line() {
        let tags = sorted(&["v8r2p43", "v8r2p44", "v8r3p1", "v8r3-pre1", "v8r1p9"]);
        assert_eq!(
            previous_release(&tags, &v("v8r2p44")).unwrap().tag,
            "v8r2p43"
        );
        assert_eq!(
            previous_release(&tags, &v("v8r3p0")).unwrap().tag,
            "v8r2p44"
        );
        assert_eq!(previous_release(&tags, &v("v8r3p2")).unwrap().tag, "v8r3p1");
        assert!(previous_release(&tags, &v("v8r1p0")).is_none());
    }
}
