//! How `pve deploy` can fail on its own account (the tools and hosts it
//! talks to fail with their own errors).

use std::path::PathBuf;

use crate::error::{Classify, Kind};

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("no host `{name}` in {}", file.display())]
    UnknownHost {
        name: String,
        file: PathBuf,
        suggestion: Option<String>,
    },
    #[error("no host in {} has the tag `{tag}`", file.display())]
    UnknownTag { tag: String, file: PathBuf },
    #[error("nothing to deploy: name hosts, `@tags`, or pass --all")]
    NothingSelected,
    #[error(
        "`{name}` has no configurationFile in hosts.nix: there is no NixOS configuration to deploy"
    )]
    NotNixos { name: String },
    #[error("`{name}` is readonly (`proxmox.readonly`): pve never changes it")]
    Readonly { name: String },
    #[error("{location}: `{name}.deploy.healthCheck` must be a list of strings (shell commands)")]
    BadHealthCheck { name: String, location: String },
    #[error("`--wave {wave}`: a wave is a tag, written `@tag`")]
    BadWave { wave: String },
    #[error("`--parallel 0`: at least one host must deploy at a time")]
    ZeroParallel,
    #[error("`{user}` is not a valid user name")]
    InvalidUser { user: String },
    #[error("`nix build` printed {got} store paths for {want} configurations")]
    BuildCount { got: usize, want: usize },
    #[error("`{path}` is not a Nix store path under {store}")]
    NotAStorePath { path: String, store: String },
    #[error("`nix copy` to {name} failed: {source}")]
    CopyFailed {
        name: String,
        #[source]
        source: Box<crate::runner::RunError>,
    },
    #[error("`nix build` failed: {source}")]
    BuildFailed {
        #[source]
        source: Box<crate::runner::RunError>,
    },
    #[error("an unfinished `pve deploy` run of {hosts} is recorded in {}", journal.display())]
    Unfinished { hosts: String, journal: PathBuf },
    #[error("the deploy journal {} lacks `{fact}`", journal.display())]
    JournalIncomplete {
        journal: PathBuf,
        fact: &'static str,
    },
    #[error("{failed} of {} failed ({names}){}", crate::plural::plural(*.total, "host"), if *not_started > 0 { format!("; {not_started} not started") } else { String::new() })]
    HostsFailed {
        failed: usize,
        total: usize,
        not_started: usize,
        names: String,
    },
    #[error("a deploy worker stopped unexpectedly")]
    WorkerPanicked,
    #[error("{host} did not answer SSH with its pinned key within {secs}s: {last}")]
    NoAnswer {
        host: String,
        secs: u64,
        last: String,
    },
    #[error("{host}: `systemctl is-system-running` says `{state}`")]
    SystemState { host: String, state: String },
    #[error("{host}: health check `{check}` failed ({}){}", code.map_or("killed by a signal".to_string(), |c| format!("exit code {c}")), if stderr.is_empty() { String::new() } else { format!(": {stderr}") })]
    HealthCheckFailed {
        host: String,
        check: String,
        code: Option<i32>,
        stderr: String,
    },
}

impl Classify for DeployError {
    fn kind(&self) -> Kind {
        match self {
            DeployError::BuildCount { .. }
            | DeployError::NotAStorePath { .. }
            | DeployError::CopyFailed { .. }
            | DeployError::BuildFailed { .. }
            | DeployError::HostsFailed { .. }
            | DeployError::WorkerPanicked
            | DeployError::NoAnswer { .. }
            | DeployError::SystemState { .. }
            | DeployError::HealthCheckFailed { .. } => Kind::External,
            _ => Kind::Input,
        }
    }
    fn help(&self) -> Option<String> {
        match self {
            DeployError::UnknownHost { suggestion, .. } => Some(match suggestion {
                Some(s) => format!("did you mean `{s}`?"),
                None => "`pve eval | jq keys` lists the hosts".into(),
            }),
            DeployError::UnknownTag { .. } => {
                Some("tags are `proxmox.tags` in hosts.nix, written `@tag` here".into())
            }
            DeployError::NothingSelected => Some("example: `pve deploy web1 @canary`".into()),
            DeployError::NotNixos { .. } => {
                Some("add `configurationFile = ./hosts/NAME/configuration.nix;`".into())
            }
            DeployError::Readonly { .. } => Some(
                "pass --include-readonly to deploy it anyway (no snapshot is taken of it)".into(),
            ),
            DeployError::BadHealthCheck { .. } => {
                Some("example: `deploy.healthCheck = [ \"curl -fsS localhost:8080/health\" ];`".into())
            }
            DeployError::BadWave { .. } => Some("example: `--wave @canary,@rest`".into()),
            DeployError::Unfinished { .. } => Some(
                "`pve deploy --resume` continues it; `pve deploy --fresh ...` drops it and starts over"
                    .into(),
            ),
            DeployError::JournalIncomplete { .. } => {
                Some("start over with `pve deploy --fresh ...`".into())
            }
            DeployError::HostsFailed { .. } => Some(
                "the summary above says what happened to each host; after fixing it: `pve deploy --resume`"
                    .into(),
            ),
            DeployError::BuildFailed { .. } => {
                Some("`nix build .#nixosConfigurations.NAME.config.system.build.toplevel` shows the full log".into())
            }
            DeployError::SystemState { .. } => Some(
                "`systemctl --failed` on the host lists what failed; --allow-degraded accepts `degraded`"
                    .into(),
            ),
            _ => None,
        }
    }
}
