//! What can go wrong around OpenTofu: its working folder, the rendered
//! config, the API token, the state guard and the `tofu` runs themselves.

use std::path::PathBuf;

use crate::error::{Classify, Kind};
use crate::runner::RunError;

use super::guard::ManagedVm;
use super::token::{ENV, FILE_ENV, SHAPE};

#[derive(Debug, thiserror::Error)]
pub enum TofuError {
    #[error("cannot read the current folder: {source}")]
    CurrentDir {
        #[source]
        source: std::io::Error,
    },
    #[error("the rendered OpenTofu config is not valid JSON: {source}")]
    ConfigNotJson {
        #[source]
        source: serde_json::Error,
    },
    #[error("the rendered OpenTofu config is not a JSON object")]
    ConfigNotObject,
    #[error("cannot create the OpenTofu folder {}: {source}", dir.display())]
    CreateDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the OpenTofu folder {} is not a plain folder (a symlink or a file)", dir.display())]
    NotPlainDir { dir: PathBuf },
    #[error("cannot make the OpenTofu folder {} private (0700): {source}", dir.display())]
    MakePrivate {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the OpenTofu folder {}: {source}", dir.display())]
    ReadDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the OpenTofu folder {} holds {} that pve did not write; OpenTofu would load and run {}",
        dir.display(),
        files.join(", "),
        if files.len() == 1 { "it" } else { "them" }
    )]
    ForeignFiles { dir: PathBuf, files: Vec<String> },
    #[error("the backend changed and copying the state was declined")]
    MigrationDeclined,
    /// A `tofu` run that failed (`context` says which).
    #[error("{context}: {source}")]
    Run {
        context: &'static str,
        #[source]
        source: RunError,
    },
    #[error("`tofu plan` failed ({}); its messages are above", exit(*code))]
    PlanFailed { code: Option<i32> },
    #[error("`tofu apply` failed ({}); its messages are above", exit(*code))]
    ApplyFailed { code: Option<i32> },
    /// A run refused because another run holds the state lock; `backend`
    /// (its type) and `dir` (the working folder) shape the advice.
    #[error(
        "`tofu {command}` stopped: another OpenTofu run holds the state lock{}; nothing was changed",
        lock.holder()
    )]
    StateLocked {
        command: &'static str,
        lock: Box<super::lock::HeldLock>,
        backend: String,
        dir: PathBuf,
    },
    #[error("`tofu state pull` printed something that is not JSON: {source}")]
    StateNotJson {
        #[source]
        source: serde_json::Error,
    },
    /// `origin` names where the token came from (never the token).
    #[error("{origin} is empty")]
    TokenEmpty { origin: String },
    #[error("{origin} does not hold a Proxmox API token of the form user@realm!tokenid=secret")]
    TokenShape { origin: String },
    #[error("{ENV} is not valid UTF-8")]
    TokenNotUtf8,
    #[error("cannot read the token file {}: {source}", path.display())]
    TokenFileRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the token file {} is not a regular file", path.display())]
    TokenFileNotRegular { path: PathBuf },
    #[error("the token file {} can be read by other users (mode {mode:04o})", path.display())]
    TokenFileShared { path: PathBuf, mode: u32 },
    /// `file` is where the token file would be.
    #[error("no Proxmox API token: OpenTofu needs one to talk to Proxmox")]
    TokenMissing { file: String },
    /// The state is empty but managed VMs already exist on Proxmox.
    #[error(
        "refusing to plan: the OpenTofu state is empty but {} already exist{} on Proxmox",
        super::guard::clash_list(clashing),
        if clashing.len() == 1 { "s" } else { "" }
    )]
    StateGuard {
        clashing: Vec<ManagedVm>,
        default_node: Option<String>,
    },
    /// Managed VMs live on another node than hosts.nix says (HA moved them).
    #[error("refusing to plan: {}", super::node_moves::describe(moves))]
    NodeMoved {
        moves: Vec<super::node_moves::NodeMove>,
    },
}

fn exit(code: Option<i32>) -> String {
    code.map_or("killed by a signal".into(), |c| format!("exit code {c}"))
}

impl Classify for TofuError {
    fn kind(&self) -> Kind {
        match self {
            TofuError::Run { .. }
            | TofuError::PlanFailed { .. }
            | TofuError::ApplyFailed { .. }
            | TofuError::StateLocked { .. }
            | TofuError::StateNotJson { .. } => Kind::External,
            TofuError::NodeMoved { .. } => Kind::Refused,
            _ => Kind::Input,
        }
    }
    fn help(&self) -> Option<String> {
        Some(match self {
            TofuError::NotPlainDir { .. } => "remove it; pve creates the folder itself".into(),
            TofuError::ForeignFiles { .. } => "pve writes only config.tf.json there (from hosts.nix); move the other files away and run again. Nothing was run".into(),
            TofuError::MigrationDeclined => {
                "put the old backend back in hosts.nix, or run again and accept (--yes)".into()
            }
            TofuError::StateLocked {
                lock, backend, dir, ..
            } => lock.advice(backend, dir),
            TofuError::PlanFailed { .. } => "fix what it reports, then run `pve plan` again".into(),
            TofuError::ApplyFailed { .. } => {
                "the state records what was done; fix what it reports and run `pve apply` again"
                    .into()
            }
            TofuError::TokenEmpty { .. } => {
                format!("it must hold a Proxmox API token: {SHAPE}")
            }
            TofuError::TokenShape { .. } => format!(
                "create one under Datacenter > Permissions > API Tokens and write it as {SHAPE} \
                 (one line, no quotes)"
            ),
            TofuError::TokenNotUtf8 => format!("it must be {SHAPE}"),
            TofuError::TokenFileShared { path, .. } => format!(
                "make it private with `chmod 600 {}`, and consider the token leaked if others share this machine",
                crate::shell::quote(&path.to_string_lossy())
            ),
            TofuError::TokenMissing { file } => format!(
                "set {ENV}, or write the token to {file} (one line, `chmod 600`); \
         its form is {SHAPE}. {FILE_ENV} names another file"
            ),
            TofuError::StateGuard {
                clashing,
                default_node,
            } => super::guard::clash_help(clashing, default_node.as_deref()),
            TofuError::NodeMoved { moves } => super::node_moves::advice(moves),
            _ => return None,
        })
    }
}
