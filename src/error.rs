//! The errors a command can end with, and the exit code each maps to:
//! 2 for bad input or usage, 3 for a remote or external tool that failed.
//! (1, "check failed or output stale", is a result, not an error.)

//!
//! Shape: every area has its own leaf error enum (thiserror), whose
//! variants say what went wrong with typed fields, and which implements
//! [`Classify`] (its [`Kind`] and its advice). `AppError` wraps each leaf
//! type in one `#[from]` variant; [`Kind::exit_code`] is the one place a
//! kind becomes an exit code. There is no string-typed catch-all: a new
//! failure gets a variant in its area's enum.

use crate::fleet::FleetError;

/// What kind of failure an error is; it alone decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Bad input or usage (exit 2).
    Input,
    /// A remote host or an external tool failed (exit 3).
    External,
    /// The fleet is not in a state the command can act on safely (exit 1).
    Refused,
}

impl Kind {
    pub fn exit_code(self) -> u8 {
        match self {
            Kind::Input => exit::INPUT,
            Kind::External => exit::EXTERNAL,
            Kind::Refused => exit::FINDINGS,
        }
    }
}

/// Implemented by every leaf error type: its kind, and advice for the user.
pub trait Classify {
    fn kind(&self) -> Kind;
    /// What the user can do about it, shown as `help:` under the error.
    fn help(&self) -> Option<String> {
        None
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Fleet(#[from] FleetError),
    /// A question could not be asked or answered.
    /// A value that is not a VMID, host name or size.
    #[error(transparent)]
    Domain(#[from] crate::fleet::DomainError),
    #[error(transparent)]
    Prompt(#[from] crate::report::PromptError),
    /// `pve secrets adopt` could not adopt the file.
    #[error(transparent)]
    Adopt(#[from] crate::secrets::adopt::AdoptError),
    #[error(transparent)]
    Ssh(#[from] crate::remote::ssh::SshError),
    #[error(transparent)]
    KnownHosts(#[from] crate::known_hosts::KnownHostsError),
    #[error(transparent)]
    Integrate(#[from] crate::workflow::integrate::IntegrateError),
    #[error(transparent)]
    Tailscale(#[from] crate::tailscale::TsError),
    #[error(transparent)]
    Proxmox(#[from] crate::remote::proxmox::ProxmoxError),
    #[error(transparent)]
    Usage(#[from] crate::app::UsageError),
    #[error(transparent)]
    VmCommand(#[from] crate::app::VmCommandError),
    #[error(transparent)]
    KeyCommand(#[from] crate::app::KeyCommandError),
    #[error(transparent)]
    Output(#[from] crate::ui::OutputError),
    #[error(transparent)]
    Tofu(#[from] crate::tofu::TofuError),
    #[error(transparent)]
    Render(#[from] crate::render::RenderError),
    #[error(transparent)]
    Edit(crate::fleet::edit::ApplyError),
    #[error(transparent)]
    Fs(#[from] crate::fsutil::FsError),
    #[error(transparent)]
    Journal(#[from] crate::workflow::journal::JournalError),
    #[error(transparent)]
    RekeyStep(#[from] crate::workflow::rekey_step::RekeyStepError),
    #[error(transparent)]
    New(#[from] crate::workflow::new::NewError),
    #[error(transparent)]
    Remove(#[from] crate::workflow::remove::RemoveError),
    #[error(transparent)]
    Status(#[from] crate::app::status::StatusError),
    #[error(transparent)]
    Snapshot(#[from] crate::remote::proxmox::snapshot::SnapshotError),
    #[error(transparent)]
    Deploy(#[from] crate::workflow::deploy::DeployError),
    #[error(transparent)]
    Init(#[from] crate::app::init::InitError),
    #[error(transparent)]
    Config(#[from] crate::app::config::ConfigError),
    /// A typed error with the caller's advice in place of its own.
    #[error("{error}")]
    Helped { error: Box<AppError>, help: String },
    /// A program pve ran failed or was missing.
    #[error(transparent)]
    Run(#[from] crate::runner::RunError),
}

impl AppError {
    pub fn with_help(self, h: impl Into<String>) -> Self {
        let help = h.into();
        match self {
            // A hosts.nix diagnostic carries its own fix at its position.
            fleet @ AppError::Fleet(_) => fleet,
            // A typed error given other advice stays typed: it is wrapped,
            // keeping its message and kind.
            AppError::Helped { error, .. } => AppError::Helped { error, help },
            typed => AppError::Helped {
                error: Box::new(typed),
                help,
            },
        }
    }
    pub fn kind(&self) -> Kind {
        match self {
            AppError::Helped { error, .. } => error.kind(),
            AppError::Ssh(e) => e.kind(),
            AppError::KnownHosts(e) => e.kind(),
            AppError::Integrate(e) => e.kind(),
            AppError::Tailscale(e) => e.kind(),
            AppError::Proxmox(e) => e.kind(),
            AppError::Usage(e) => e.kind(),
            AppError::VmCommand(e) => e.kind(),
            AppError::KeyCommand(e) => e.kind(),
            AppError::Output(e) => e.kind(),
            AppError::Tofu(e) => e.kind(),
            AppError::Render(e) => e.kind(),
            AppError::Edit(e) => e.kind(),
            AppError::Fs(e) => e.kind(),
            AppError::Journal(e) => e.kind(),
            AppError::RekeyStep(e) => e.kind(),
            AppError::New(e) => e.kind(),
            AppError::Remove(e) => e.kind(),
            AppError::Status(e) => e.kind(),
            AppError::Snapshot(e) => e.kind(),
            AppError::Deploy(e) => e.kind(),
            AppError::Init(e) => e.kind(),
            AppError::Config(e) => e.kind(),
            AppError::Fleet(_) | AppError::Domain(_) | AppError::Prompt(_) => Kind::Input,
            AppError::Run(e) => e.kind(),
            AppError::Adopt(e) => e.kind(),
        }
    }
    pub fn exit_code(&self) -> u8 {
        self.kind().exit_code()
    }
    pub fn help(&self) -> Option<String> {
        match self {
            AppError::Helped { help, .. } => Some(help.clone()),
            AppError::Ssh(e) => e.help(),
            AppError::KnownHosts(e) => e.help(),
            AppError::Integrate(e) => e.help(),
            AppError::Tailscale(e) => e.help(),
            AppError::Proxmox(e) => e.help(),
            AppError::Usage(e) => e.help(),
            AppError::VmCommand(e) => e.help(),
            AppError::KeyCommand(e) => e.help(),
            AppError::Output(e) => e.help(),
            AppError::Tofu(e) => e.help(),
            AppError::Render(e) => e.help(),
            AppError::Edit(e) => e.help(),
            AppError::Fs(e) => e.help(),
            AppError::Journal(e) => e.help(),
            AppError::RekeyStep(e) => e.help(),
            AppError::New(e) => e.help(),
            AppError::Remove(e) => e.help(),
            AppError::Status(e) => e.help(),
            AppError::Snapshot(e) => e.help(),
            AppError::Deploy(e) => e.help(),
            AppError::Init(e) => e.help(),
            AppError::Config(e) => e.help(),
            AppError::Fleet(e) => e.help(),
            AppError::Domain(e) => e.help(),
            AppError::Prompt(crate::report::PromptError::NoTerminal { help, .. }) => Some(
                help.clone()
                    .unwrap_or_else(|| "pass --yes to go ahead from a script".to_string()),
            ),
            AppError::Prompt(_) => None,
            AppError::Adopt(e) => Classify::help(e),
            AppError::Run(e) => Classify::help(e),
        }
    }
}

/// A missing program is the user's to install (exit 2); one that ran and
/// failed is an external failure (exit 3).
impl Classify for crate::runner::RunError {
    fn kind(&self) -> Kind {
        match self {
            crate::runner::RunError::Missing { .. } => Kind::Input,
            _ => Kind::External,
        }
    }
    fn help(&self) -> Option<String> {
        crate::runner::RunError::help(self)
    }
}

/// hosts.nix's own problems and the lock's errors come back out as they
/// were; the rest of the edit sequence's errors stay typed.
impl From<crate::fleet::edit::ApplyError> for AppError {
    fn from(e: crate::fleet::edit::ApplyError) -> Self {
        use crate::fleet::edit::ApplyError;
        match e {
            ApplyError::Fleet(f) => AppError::Fleet(f),
            ApplyError::Lock(l) => match l.downcast::<AppError>() {
                Ok(app) => *app,
                Err(other) => AppError::Edit(ApplyError::Lock(other)),
            },
            other => AppError::Edit(other),
        }
    }
}

/// The kinds and help of the edit sequence's errors live here, so that
/// `fleet` does not depend on this module.
impl Classify for crate::fleet::edit::ApplyError {
    fn kind(&self) -> Kind {
        use crate::fleet::edit::ApplyError;
        match self {
            ApplyError::Lock(e) | ApplyError::Write { source: e, .. } => e
                .downcast_ref::<AppError>()
                .map_or(Kind::Input, AppError::kind),
            _ => Kind::Input,
        }
    }
    fn help(&self) -> Option<String> {
        use crate::fleet::edit::ApplyError;
        match self {
            ApplyError::Fleet(e) => e.help(),
            ApplyError::Lock(e) | ApplyError::Write { source: e, .. } => {
                e.downcast_ref::<AppError>().and_then(AppError::help)
            }
            ApplyError::Edit { error, .. } => error.help.clone(),
            ApplyError::Changed { .. } => {
                Some("run the command again (it reads the file afresh)".into())
            }
            ApplyError::ReadAgain { .. } => None,
        }
    }
}

pub type Result<T, E = AppError> = std::result::Result<T, E>;

/// Exit codes, as documented in `--help`.
pub mod exit {
    pub const OK: u8 = 0;
    pub const FINDINGS: u8 = 1;
    pub const INPUT: u8 = 2;
    pub const EXTERNAL: u8 = 3;
}
