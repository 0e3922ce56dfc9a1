//! Command-line types only. Behaviour lives in `commands/`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::record::StageName;
use crate::version::Scheme;

#[derive(Debug, Parser)]
#[command(
    name = "tagpilot",
    version,
    about = "From a git tag to a running release: reproducible tarball, daemonless OCI image, GitLab release, GitOps commit, rollout; history and rollback",
    after_help = "Exit codes: 0 done, 1 failed, 2 bad usage or bad input (spec, tag, flags, repository), 3 rollout failed, 4 rollout timed out, 5 stopped by SIGTERM/SIGINT at a safe point (re-run to finish)."
)]
pub struct Cli {
    /// How results are printed on stdout: `human` lines or the `json` release record.
    #[arg(long, global = true, value_enum, default_value_t = Output::Human)]
    pub output: Output,
    /// Write a GitLab dotenv report (KEY=value) here. Default in GitLab CI: `tagpilot.env`.
    #[arg(long, global = true, env = "TAGPILOT_DOTENV", value_name = "FILE")]
    pub dotenv: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Release a tag: run every stage in order and write the release record.
    Release(ReleaseArgs),
    /// Build only the release tarball (`<name>-<version>.tar.gz` and `SHA256SUMS`).
    Tarball(TarballArgs),
    /// Build the service's OCI image (the spec's `image:`) and push it, or write it to an OCI layout.
    Image(ImageArgs),
    /// Record the release in an environment's deployment repository (GitOps), then roll it out on its orchestrator.
    Deploy(DeployArgs),
    /// Put an environment back on an earlier deployed version: a new deployment-repository commit, then the rollout.
    Rollback(RollbackArgs),
    /// The versions deployed to an environment, newest first, from its deployment repository.
    History(HistoryArgs),
    /// List the repository's release tags, newest first: TAG<TAB>VERSION<TAB>release|pre.
    Versions(VersionsArgs),
    /// Check a pushed image: its signature and attestations with a public key, and with
    /// --rebuild that the tag rebuilds to exactly its bytes. Needs no write credentials.
    Verify(VerifyArgs),
    /// Check a pipeline spec and report every problem in it, and the supervisor file it names.
    Validate(ValidateArgs),
    /// Print the JSON Schema of tagpilot.yaml (for editor completion).
    Schema,
}

/// Where the project and its spec are.
#[derive(Clone, Debug, Args)]
pub struct ProjectArgs {
    /// Pipeline spec. Default: `tagpilot.yaml` at the repository root, if present.
    #[arg(long, env = "TAGPILOT_PIPELINE", value_name = "FILE")]
    pub pipeline: Option<PathBuf>,
    /// The git repository to release. Default: the one containing the current folder.
    #[arg(long, value_name = "DIR")]
    pub repo: Option<PathBuf>,
}

impl ProjectArgs {
    /// The project these flags name.
    pub fn open(&self, env: &crate::env::Env) -> crate::error::Result<crate::project::Project> {
        crate::project::Project::open(self.repo.as_deref(), self.pipeline.as_deref(), env)
    }
}

#[derive(Clone, Debug, Args)]
pub struct TagArgs {
    /// Tag to release. Default: `$CI_COMMIT_TAG`, else the release tag on HEAD.
    #[arg(long, value_name = "TAG")]
    pub tag: Option<String>,
    /// Output folder for artifacts.
    #[arg(long, value_name = "DIR", default_value = "tagpilot-out")]
    pub out: PathBuf,
}

#[derive(Clone, Debug, Args)]
pub struct ReleaseArgs {
    #[command(flatten)]
    pub project: ProjectArgs,
    #[command(flatten)]
    pub tag: TagArgs,
    /// Compute and build everything locally; write nothing remote.
    #[arg(long)]
    pub dry_run: bool,
    /// Release HEAD under this version instead of a tag (a try-out; needs --dry-run).
    #[arg(
        long,
        value_name = "VERSION",
        requires = "dry_run",
        conflicts_with = "tag"
    )]
    pub snapshot: Option<String>,
    /// Save the dry run's plan here (tag, digests, diffs, rollouts) for `--plan`.
    #[arg(
        long,
        value_name = "FILE",
        requires = "dry_run",
        conflicts_with = "snapshot"
    )]
    pub plan_out: Option<PathBuf>,
    /// Apply exactly this plan (its tag), refusing if the world changed since it was made.
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with_all = ["dry_run", "tag", "snapshot", "plan_out", "only", "skip"]
    )]
    pub plan: Option<PathBuf>,
    /// Replace a version tag, or a published package file, that already holds other bytes.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub guards: GuardArgs,
    /// Run only these stages.
    #[arg(long, value_enum, value_delimiter = ',', value_name = "STAGE,..")]
    pub only: Vec<StageName>,
    /// Skip these stages.
    #[arg(long, value_enum, value_delimiter = ',', value_name = "STAGE,..")]
    pub skip: Vec<StageName>,
}

#[derive(Debug, Args)]
pub struct TarballArgs {
    #[command(flatten)]
    pub project: ProjectArgs,
    #[command(flatten)]
    pub tag: TagArgs,
}

#[derive(Debug, Args)]
pub struct ImageArgs {
    #[command(flatten)]
    pub project: ProjectArgs,
    /// Tag to release. Default: `$CI_COMMIT_TAG`, else the release tag on HEAD.
    #[arg(long, value_name = "TAG")]
    pub tag: Option<String>,
    /// Only write the image into this OCI image layout (created if missing; other images in it
    /// stay); push nothing.
    #[arg(long, value_name = "DIR")]
    pub oci_layout: Option<PathBuf>,
    /// Output folder: the image is built into OUT/image, then pushed.
    #[arg(long, value_name = "DIR", default_value = "tagpilot-out")]
    pub out: PathBuf,
    /// Replace a version tag that already names other bytes in the registry.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub project: ProjectArgs,
    /// Check the supervisor file as it is at this tag (a release reads it there). Default: the
    /// working tree.
    #[arg(long, value_name = "TAG")]
    pub tag: Option<String>,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub project: ProjectArgs,
    /// The image, `registry/repository:tag` or `…@sha256:…`. Default: the release of the tag,
    /// in the spec's repository.
    pub image: Option<String>,
    /// The tag whose release it is. Default: `$CI_COMMIT_TAG`, else the release tag on HEAD.
    #[arg(long, value_name = "TAG")]
    pub tag: Option<String>,
    /// The public key (PEM, as `cosign.pub`) the signature and attestations must be made with.
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// Also rebuild the tarball and the image from the tag and compare them byte for byte.
    #[arg(long)]
    pub rebuild: bool,
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    #[command(flatten)]
    pub project: ProjectArgs,
    /// Tag to release. Default: `$CI_COMMIT_TAG`, else the release tag on HEAD.
    #[arg(long, value_name = "TAG")]
    pub tag: Option<String>,
    /// The environment, as the spec's `deploy[].environment` names it. Default:
    /// `$CI_ENVIRONMENT_NAME` (a GitLab job with `environment:`).
    #[arg(long, value_name = "ENV", env = "CI_ENVIRONMENT_NAME")]
    pub env: String,
    /// The image to record, `REPO:TAG@sha256:…`. Default: `$TAGPILOT_IMAGE` (the build job's
    /// dotenv report).
    #[arg(long, env = "TAGPILOT_IMAGE", value_name = "REF")]
    pub image: Option<String>,
    /// Print the diff that would be committed; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Write the image even where a higher version is recorded (a rollback does).
    #[arg(long)]
    pub allow_downgrade: bool,
    #[command(flatten)]
    pub guards: GuardArgs,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub project: ProjectArgs,
    /// The environment, as the spec's `deploy[].environment` names it. Default:
    /// `$CI_ENVIRONMENT_NAME` (a GitLab job with `environment:`).
    #[arg(long, value_name = "ENV", env = "CI_ENVIRONMENT_NAME")]
    pub env: String,
    /// The version to return to. Default: the newest earlier deploy that was not itself rolled back.
    #[arg(long, value_name = "VERSION")]
    pub to: Option<String>,
    /// Why, for the commit's `Tagpilot-Reason` trailer.
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// Check the target and show the diff and the rollout it would make; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    #[command(flatten)]
    pub project: ProjectArgs,
    /// The environment, as the spec's `deploy[].environment` names it. Default:
    /// `$CI_ENVIRONMENT_NAME` (a GitLab job with `environment:`).
    #[arg(long, value_name = "ENV", env = "CI_ENVIRONMENT_NAME")]
    pub env: String,
}

#[derive(Debug, Args)]
pub struct VersionsArgs {
    #[command(flatten)]
    pub project: ProjectArgs,
    /// Version scheme (default: the spec's, else auto).
    #[arg(long, value_enum)]
    pub scheme: Option<Scheme>,
    /// Tag prefix of this component in a monorepo, e.g. `api/` (default: the spec's).
    #[arg(long, value_name = "PREFIX")]
    pub tag_prefix: Option<String>,
}

/// Overrides of GitLab's guards on releasing.
#[derive(Clone, Debug, Args)]
pub struct GuardArgs {
    /// Release even though `CI_COMMIT_REF_PROTECTED` is false (an unprotected tag).
    #[arg(long)]
    pub allow_unprotected: bool,
    /// Release even though a GitLab deploy freeze is on (`CI_DEPLOY_FREEZE`).
    #[arg(long)]
    pub ignore_freeze: bool,
}

impl GuardArgs {
    pub fn overrides(&self) -> crate::gitlab::Overrides {
        crate::gitlab::Overrides {
            unprotected: self.allow_unprotected,
            freeze: self.ignore_freeze,
        }
    }
}
