//! The process environment, read once when tagpilot starts into one value that commands pass
//! down. Nothing else reads `std::env`: what a run depends on is visible in its signatures,
//! and a test can give a function exactly the variables it wants.

use std::collections::BTreeMap;

#[derive(Clone, Debug, Default)]
pub struct Env {
    vars: BTreeMap<String, String>,
}

impl Env {
    /// The variables of this process (names or values that are not UTF-8 are left out: no
    /// variable tagpilot reads has one).
    pub fn capture() -> Env {
        Env::of(std::env::vars_os().filter_map(|(name, value)| {
            Some((name.into_string().ok()?, value.into_string().ok()?))
        }))
    }

    /// An environment holding just these variables.
    pub fn of<N: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (N, V)>) -> Env {
        Env {
            vars: pairs
                .into_iter()
                .map(|(n, v)| (n.into(), v.into()))
                .collect(),
        }
    }

    /// The value of `name` when it is set and not empty. GitLab sets many variables to an
    /// empty string when they do not apply, so empty means unset everywhere in tagpilot.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// Like [`Env::get`], owned: the form logins look values up in.
    pub fn lookup(&self, name: &str) -> Option<String> {
        self.get(name).map(str::to_string)
    }

    /// The value as set, empty or not: what `${VAR}` in the spec expands to.
    pub fn raw(&self, name: &str) -> Option<String> {
        self.vars.get(name).cloned()
    }

    /// `GITLAB_CI=true`: running as a GitLab CI job.
    pub fn in_gitlab_ci(&self) -> bool {
        self.get("GITLAB_CI") == Some("true")
    }
}

#[cfg(test)]
mod tests {
    use super::Env;

    #[test]
    fn an_empty_value_is_unset() {
        let env = Env::of([("A", "1"), ("EMPTY", "")]);
        assert_eq!(env.get("A"), Some("1"));
        assert_eq!(env.get("EMPTY"), None);
        assert_eq!(env.get("MISSING"), None);
        assert!(!env.in_gitlab_ci());
        assert!(Env::of([("GITLAB_CI", "true")]).in_gitlab_ci());
    }
}
