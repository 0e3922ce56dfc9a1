//! The project's GitLab API, as a CI job finds it: `CI_API_V4_URL` and `CI_PROJECT_ID`, with
//! `GITLAB_TOKEN` (sent as `PRIVATE-TOKEN`) or the job's own `CI_JOB_TOKEN` (`JOB-TOKEN`).
//! `CI_SERVER_TLS_CA_FILE` (set by GitLab for a private CA) is trusted when present.

use std::path::Path;

use crate::env::Env;
use crate::error::{Error, Result};
use crate::net::api::{Api, Hints, Reply};
use crate::net::{self, percent_encode, Tls};

pub struct Project {
    pub api: Api,
    /// `/projects/<url-encoded id>`: the prefix of every path.
    pub prefix: String,
    /// The API base, `https://gitlab.example.org/api/v4`.
    pub base: String,
    /// Whether a token was found (a dry run reads without one where it can).
    pub has_token: bool,
    /// The token is the job's own `CI_JOB_TOKEN`, which older GitLab refuses on some APIs.
    pub job_token: bool,
}

/// The APIs a CI job token is accepted on only from some GitLab version on.
#[derive(Clone, Copy, Debug)]
pub enum JobTokenApi {
    Releases,
    ReleaseLinks,
    Packages,
    PackageFiles,
    GenericUpload,
}

impl JobTokenApi {
    /// The API's name and the first GitLab version that accepts a job token there.
    fn name_and_since(self) -> (&'static str, &'static str) {
        match self {
            JobTokenApi::Releases => ("Releases", "14.5"),
            JobTokenApi::ReleaseLinks => ("Release links", "15.1"),
            JobTokenApi::Packages => ("packages listing", "15.3"),
            JobTokenApi::PackageFiles => ("package files listing", "16.0"),
            JobTokenApi::GenericUpload => ("generic packages", "13.5"),
        }
    }
}

/// The project named by the CI variables, or `None` outside GitLab CI.
pub fn connect(env: &Env) -> Result<Option<Project>> {
    let var = |name: &str| env.lookup(name);
    let (Some(base), Some(id)) = (var("CI_API_V4_URL"), var("CI_PROJECT_ID")) else {
        return Ok(None);
    };
    let base = base.trim_end_matches('/').to_string();
    let roots = match var("CI_SERVER_TLS_CA_FILE") {
        Some(file) => Some(net::read_ca_file(Path::new(&file))?),
        None => None,
    };
    let hints = Hints {
        credential: "Set GITLAB_TOKEN to a token with the api scope, or run in a GitLab CI job (CI_JOB_TOKEN)",
        tls: "GitLab sets CI_SERVER_TLS_CA_FILE for a private CA; set it to the CA's PEM file",
        forbidden: "The token works but may not do this: it needs the api scope (GITLAB_TOKEN) or a role that may release",
    };
    let mut api = Api::http(
        "GitLab",
        &base,
        Tls {
            roots,
            ..Default::default()
        },
    )
    .with_hints(hints);
    let token = match (var("GITLAB_TOKEN"), var("CI_JOB_TOKEN")) {
        (Some(token), _) => Some(("PRIVATE-TOKEN", token, "GITLAB_TOKEN")),
        (None, Some(token)) => Some(("JOB-TOKEN", token, "CI_JOB_TOKEN")),
        _ => None,
    };
    let has_token = token.is_some();
    let job_token = matches!(token, Some(("JOB-TOKEN", _, _)));
    if let Some((header, token, from)) = token {
        api = api.with_credential(header, token, from);
    }
    Ok(Some(Project {
        api,
        prefix: format!("/projects/{}", percent_encode(&id)),
        base,
        has_token,
        job_token,
    }))
}

/// Pages of a listing read at most, 100 items each.
const MAX_PAGES: u32 = 100;

impl Project {
    /// Checks a reply from `api`. A refused login is an input error (exit 2, not retried)
    /// naming the token's variable; a job token refused there may also mean a GitLab older
    /// than the version that accepts one on that API, and that is said too.
    pub fn expect(&self, reply: &Reply, what: &str, api: JobTokenApi) -> Result<()> {
        let refused = reply.status == 401 || (self.job_token && reply.status == 403);
        if !refused {
            return self.api.expect(reply, what);
        }
        let lead = format!(
            "GitLab at {} answered {} to {what} ({})",
            self.api.endpoint,
            reply.status,
            reply.reason()
        );
        let (name, since) = api.name_and_since();
        Err(match (self.has_token, self.job_token) {
            (_, true) => Error::input(format!(
                "{lead}: it refused CI_JOB_TOKEN, which is not valid here, or this GitLab is older than {since}, the first to accept a job token on its {name} API"
            ))
            .with_hint("Set GITLAB_TOKEN (a masked CI/CD variable) to a project access token with the api scope: tagpilot then uses it instead of CI_JOB_TOKEN"),
            (true, false) => Error::input(format!(
                "{lead}: it refused GITLAB_TOKEN, which is wrong, expired or revoked"
            ))
            .with_hint("Set GITLAB_TOKEN to a valid token with the api scope"),
            (false, _) => Error::input(format!("{lead}: no token was sent"))
                .with_hint("Set GITLAB_TOKEN to a token with the api scope, or run in a GitLab CI job (CI_JOB_TOKEN)"),
        })
    }

    /// Sends a request to `api` and checks the reply (see `expect`).
    pub fn send_ok(
        &self,
        method: &str,
        path: &str,
        body: &serde_json::Value,
        what: &str,
        api: JobTokenApi,
    ) -> Result<Reply> {
        let reply = self
            .api
            .send(method, path, Some(("application/json", body)), what)?;
        self.expect(&reply, what, api)?;
        Ok(reply)
    }

    /// Every item of a paginated listing, following GitLab's `X-Next-Page`.
    pub fn all_pages(
        &self,
        path: &str,
        what: &str,
        api: JobTokenApi,
    ) -> Result<Vec<serde_json::Value>> {
        let separator = if path.contains('?') { '&' } else { '?' };
        let mut items = Vec::new();
        let mut page = 1;
        loop {
            if page > MAX_PAGES {
                return Err(Error::failed(format!(
                    "GitLab's listing to {what} goes on past {MAX_PAGES} pages of 100; tagpilot stops there rather than read without end"
                )));
            }
            let reply = self
                .api
                .get(&format!("{path}{separator}per_page=100&page={page}"), what)?;
            self.expect(&reply, what, api)?;
            if let serde_json::Value::Array(listed) = reply.json() {
                items.extend(listed);
            }
            match reply
                .header("X-Next-Page")
                .and_then(|n| n.trim().parse().ok())
            {
                Some(next) if next > page => page = next,
                _ => return Ok(items),
            }
        }
    }

    /// Refuses a write without a token, saying where one comes from.
    pub fn require_token(&self) -> Result<()> {
        if self.has_token {
            Ok(())
        } else {
            Err(Error::input(
                "no GitLab token to publish with: set GITLAB_TOKEN (a token with the api scope), or run in a GitLab CI job, which sets CI_JOB_TOKEN",
            ))
        }
    }
}
