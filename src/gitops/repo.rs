//! The deployment repository: a shallow clone of one branch, a commit, and a push that never
//! forces. Network work goes through the `git` command, which speaks every transport users
//! have (file://, HTTPS, SSH) and reports rejected refs exactly; credentials reach it through
//! the environment (`GIT_CONFIG_*`), never its command line, and are never printed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::error::{Error, Result};
use crate::ui::printable;

/// How to log in to the repository.
#[derive(Clone, Default)]
pub struct Access {
    /// `Authorization` header value for HTTPS (Basic with a user and token or password).
    pub http_authorization: Option<String>,
    /// Private key file for SSH.
    pub ssh_key: Option<PathBuf>,
    /// Where the login came from, for messages (`DEPLOY_TOKEN`), never the secret.
    pub source: Option<String>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Access {{ source: {:?} }}", self.source)
    }
}

/// A working copy of one branch of the deployment repository.
pub struct Checkout {
    dir: tempfile::TempDir,
    url: String,
    branch: String,
    access: Access,
}

/// What a push did.
#[derive(Debug, PartialEq, Eq)]
pub enum Pushed {
    /// The branch now points at our commit.
    Landed,
    /// Someone pushed first: the branch moved; fetch, re-apply, try again.
    Rejected,
}

impl Checkout {
    /// Clones only the tip of `branch` (a large deployment repository stays fast).
    pub fn clone(url: &str, branch: &str, access: &Access) -> Result<Checkout> {
        Checkout::clone_with(url, branch, access, &["--depth", "1"])
    }

    /// Clones `branch` with its whole history and no work tree, for reading the log.
    pub fn clone_history(url: &str, branch: &str, access: &Access) -> Result<Checkout> {
        Checkout::clone_with(url, branch, access, &["--no-checkout"])
    }

    fn clone_with(url: &str, branch: &str, access: &Access, how: &[&str]) -> Result<Checkout> {
        let dir = tempfile::Builder::new()
            .prefix("tagpilot-deploy-")
            .tempdir()
            .map_err(|e| Error::failed(format!("could not make a work folder: {e}")))?;
        let checkout = Checkout {
            dir,
            url: url.to_string(),
            branch: branch.to_string(),
            access: access.clone(),
        };
        let target = checkout.path().to_string_lossy().into_owned();
        let mut args = vec!["clone", "--quiet", "--single-branch", "--branch", branch];
        args.extend_from_slice(how);
        args.extend([url, target.as_str()]);
        checkout.git(&args, "clone the deployment repository")?;
        Ok(checkout)
    }

    /// `git log` of the branch in `format` (see git-log's PRETTY FORMATS), newest first.
    pub fn log(&self, format: &str) -> Result<String> {
        let output = self.git(
            &["log", &format!("--format={format}"), "HEAD"],
            "read the deployment history",
        )?;
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The commits (full ids) that changed any of `paths`.
    pub fn commits_touching(&self, paths: &[String]) -> Result<Vec<String>> {
        let mut args = vec!["log", "--format=%H", "HEAD", "--"];
        args.extend(paths.iter().map(String::as_str));
        let output = self.git(&args, "read the deployment files' history")?;
        Ok(String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_string)
            .collect())
    }

    /// The text of `path` at `commit`, or `None` when it is not there.
    pub fn show(&self, commit: &str, path: &str) -> Option<String> {
        let spec = format!("{commit}:{path}");
        let output = self.git(&["show", &spec], "read a file's history").ok()?;
        String::from_utf8(output.stdout).ok()
    }

    /// Moves the work tree to the newest tip of the branch, dropping local changes.
    pub fn refresh(&self) -> Result<()> {
        self.git(
            &["fetch", "--quiet", "--depth", "1", "origin", &self.branch],
            "fetch the deployment branch",
        )?;
        self.git(
            &["reset", "--quiet", "--hard", "FETCH_HEAD"],
            "move to the fetched branch",
        )?;
        Ok(())
    }

    /// Commits `files` (paths inside the checkout) with `message`; returns the commit id.
    pub fn commit(&self, files: &[String], message: &str, author: (&str, &str)) -> Result<String> {
        let mut add = vec!["add", "--"];
        add.extend(files.iter().map(String::as_str));
        self.git(&add, "stage the edited files")?;
        let identity = format!("{} <{}>", author.0, author.1);
        let mut cmd = self.command();
        cmd.args([
            "-c",
            &format!("user.name={}", author.0),
            "-c",
            &format!("user.email={}", author.1),
        ])
        .args([
            "commit",
            "--quiet",
            "--no-verify",
            "--author",
            &identity,
            "-F",
            "-",
        ]);
        run_with_input(cmd, message.as_bytes(), "commit the deployment change")?;
        let id = self.git(&["rev-parse", "HEAD"], "read the new commit")?;
        Ok(String::from_utf8_lossy(&id.stdout).trim().to_string())
    }

    /// Pushes the commit to the branch, fast-forward only: a branch that moved is `Rejected`.
    pub fn push(&self) -> Result<Pushed> {
        let refspec = format!("HEAD:refs/heads/{}", self.branch);
        let output = self
            .command()
            .args(["push", "--porcelain", "origin", &refspec])
            .output()
            .map_err(|e| Error::failed(format!("could not run git: {e}")))?;
        let report = String::from_utf8_lossy(&output.stdout);
        // Porcelain lines: `<flag>\t<from>:<to>\t<summary>`; `!` is a rejected ref.
        let ours = report
            .lines()
            .find(|l| l.contains(&format!("refs/heads/{}", self.branch)));
        match ours.and_then(|l| l.chars().next()) {
            Some('!') => Ok(Pushed::Rejected),
            Some(' ' | '+' | '*' | '=') if output.status.success() => Ok(Pushed::Landed),
            _ => Err(self.git_error("push to the deployment repository", &output)),
        }
    }

    /// Runs git in the checkout with the login set up.
    fn git(&self, args: &[&str], what: &str) -> Result<Output> {
        let output = self
            .command()
            .args(args)
            .output()
            .map_err(|e| Error::failed(format!("could not run git (is it installed?): {e}")))?;
        if output.status.success() {
            Ok(output)
        } else {
            Err(self.git_error(what, &output))
        }
    }

    fn git_error(&self, what: &str, output: &Output) -> Error {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let login = self
            .access
            .source
            .as_deref()
            .map_or("without a login".to_string(), |s| {
                format!("with the login from {s}")
            });
        let message = format!(
            "could not {what} ({} branch {}, {login}): {}",
            self.url,
            self.branch,
            printable(stderr.trim())
        );
        // A refused HTTPS login makes git ask for a user name, which it may not do here.
        let refused = [
            "Authentication failed",
            "could not read Username",
            "403",
            "401",
            "Permission denied",
        ]
        .iter()
        .any(|sign| stderr.contains(sign));
        if refused {
            Error::input(message).with_hint(
                "Pushing needs a project access token with write_repository (HTTPS) or a deploy key with write access (SSH); GitLab deploy tokens and CI_JOB_TOKEN cannot push to another project",
            )
        } else {
            Error::failed(message)
        }
    }

    /// `git` with the work tree, no prompts, and the login passed through the environment.
    fn command(&self) -> Command {
        let mut cmd = Command::new("git");
        cmd.current_dir(self.dir.path())
            .env("GIT_TERMINAL_PROMPT", "0")
            .env_remove("GIT_DIR")
            .env_remove("GIT_WORK_TREE");
        let mut config: Vec<(&str, String)> = vec![
            ("protocol.file.allow", "always".to_string()),
            // The login goes in a header for this host: a redirect would carry it elsewhere.
            ("http.followRedirects", "false".to_string()),
        ];
        if let Some(authorization) = &self.access.http_authorization {
            config.push((
                "http.extraHeader",
                format!("Authorization: {authorization}"),
            ));
        }
        cmd.env("GIT_CONFIG_COUNT", config.len().to_string());
        for (i, (key, value)) in config.iter().enumerate() {
            cmd.env(format!("GIT_CONFIG_KEY_{i}"), key);
            cmd.env(format!("GIT_CONFIG_VALUE_{i}"), value);
        }
        if let Some(key) = &self.access.ssh_key {
            cmd.env(
                "GIT_SSH_COMMAND",
                format!(
                    "ssh -i {} -o IdentitiesOnly=yes -o StrictHostKeyChecking=accept-new",
                    shell_quoted(&key.display().to_string())
                ),
            );
        }
        cmd
    }
}

/// `text` as one word for the shell git runs `GIT_SSH_COMMAND` with: single-quoted, with each
/// `'` written as `'\''`, so a key path cannot run a command.
fn shell_quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

fn run_with_input(mut cmd: Command, input: &[u8], what: &str) -> Result<()> {
    use std::io::Write;
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| Error::failed(format!("could not run git: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input)
            .map_err(|e| Error::failed(format!("could not {what}: {e}")))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| Error::failed(format!("could not {what}: {e}")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(Error::failed(format!(
            "could not {what}: {}",
            printable(String::from_utf8_lossy(&output.stderr).trim())
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::git as sh;

    /// A bare repository with one commit on `main`, reached over file://.
    fn origin() -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let bare = dir.path().join("deploy.git");
        let seed = dir.path().join("seed");
        std::fs::create_dir_all(&seed).unwrap();
        sh(&seed, &["init", "-q", "-b", "main"]);
        std::fs::write(seed.join("app.yaml"), "image: r.example.org/a:1\n").unwrap();
        sh(&seed, &["add", "-A"]);
        sh(&seed, &["commit", "-qm", "seed"]);
        sh(
            dir.path(),
            &[
                "clone",
                "-q",
                "--bare",
                seed.to_str().unwrap(),
                bare.to_str().unwrap(),
            ],
        );
        let url = format!("file://{}", bare.display());
        (dir, url)
    }

    #[test]
    fn commit_push_and_a_rejected_push_that_lands_after_refresh() {
        let (dir, url) = origin();
        let access = Access::default();
        let first = Checkout::clone(&url, "main", &access).unwrap();
        let second = Checkout::clone(&url, "main", &access).unwrap();

        std::fs::write(first.path().join("app.yaml"), "image: r.example.org/a:2\n").unwrap();
        let id = first
            .commit(
                &["app.yaml".into()],
                "Deploy a 2\n\nTagpilot-Release: a 2\n",
                ("Release Bot", "bot@example.org"),
            )
            .unwrap();
        assert_eq!(first.push().unwrap(), Pushed::Landed);

        // The second checkout is now behind: its push is rejected, never forced.
        std::fs::write(second.path().join("app.yaml"), "image: r.example.org/a:3\n").unwrap();
        second
            .commit(
                &["app.yaml".into()],
                "Deploy a 3\n",
                ("Release Bot", "bot@example.org"),
            )
            .unwrap();
        assert_eq!(second.push().unwrap(), Pushed::Rejected);
        second.refresh().unwrap();
        assert_eq!(
            std::fs::read_to_string(second.path().join("app.yaml")).unwrap(),
            "image: r.example.org/a:2\n"
        );
        std::fs::write(second.path().join("app.yaml"), "image: r.example.org/a:3\n").unwrap();
        second
            .commit(
                &["app.yaml".into()],
                "Deploy a 3\n",
                ("Release Bot", "bot@example.org"),
            )
            .unwrap();
        assert_eq!(second.push().unwrap(), Pushed::Landed);

        let bare = dir.path().join("deploy.git");
        let log = sh(
            &bare,
            &[
                "log",
                "--format=%an|%s|%(trailers:key=Tagpilot-Release,valueonly)",
                "main",
            ],
        );
        let lines: Vec<&str> = log.lines().filter(|l| !l.is_empty()).collect();
        assert_eq!(
            lines,
            [
                "Release Bot|Deploy a 3|",
                "Release Bot|Deploy a 2|a 2",
                "t|seed|"
            ]
        );
        assert!(
            sh(&bare, &["rev-list", "main"]).contains(&id),
            "the first commit is kept"
        );
        assert_eq!(
            sh(&bare, &["rev-list", "--merges", "main"]),
            "",
            "history is linear"
        );
    }

    #[test]
    fn errors_name_the_repository_and_branch() {
        let (_dir, url) = origin();
        let err = Checkout::clone(&url, "production", &Access::default())
            .err()
            .unwrap();
        assert!(err.message.contains("branch production"), "{}", err.message);
        let err = Checkout::clone("file:///nonexistent/repo.git", "main", &Access::default())
            .err()
            .unwrap();
        assert!(
            err.message.contains("/nonexistent/repo.git"),
            "{}",
            err.message
        );
    }
}
