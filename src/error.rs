//! The errors a command can end with, and the exit code each maps to:
//! 2 for bad input or usage, 3 for a remote or external tool that failed.
//! (1, "check failed or output stale", is a result, not an error.)

//!
//! Shape (issue 17, in progress): every area has its own leaf error enum
//! (thiserror), whose variants say what went wrong with typed fields, and
//! which implements [`Classify`]. `AppError` wraps each leaf type in one
//! `#[from]` variant; [`AppError::exit_code`] is the one place kinds become
//! exit codes. The string-typed `Input`/`External`/`Refused` variants are
//! the old catch-alls, being replaced area by area; new code must not add
//! uses of them.

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
    Fs(#[from] crate::fsutil::FsError),
    #[error(transparent)]
    Journal(#[from] crate::workflow::journal::JournalError),
    #[error(transparent)]
    RekeyStep(#[from] crate::workflow::rekey_step::RekeyStepError),
    #[error(transparent)]
    New(#[from] crate::workflow::new::NewError),
    #[error(transparent)]
    Remove(#[from] crate::workflow::remove::RemoveError),
    /// A typed error with the caller's advice in place of its own.
    #[error("{error}")]
    Helped { error: Box<AppError>, help: String },
    /// Bad input: a wrong argument, a file that cannot be used.
    #[error("{message}")]
    Input {
        message: String,
        help: Option<String>,
    },
    /// A remote host or an external tool failed.
    #[error("{message}")]
    External {
        message: String,
        help: Option<String>,
    },
    /// A command refused to go on because the fleet is not in a state it
    /// can act on safely (exit 1, as a failed check: the user must fix
    /// the fleet first).
    #[error("{message}")]
    Refused {
        message: String,
        help: Option<String>,
    },
}

impl AppError {
    pub fn input(message: impl Into<String>) -> Self {
        AppError::Input {
            message: message.into(),
            help: None,
        }
    }
    pub fn external(message: impl Into<String>) -> Self {
        AppError::External {
            message: message.into(),
            help: None,
        }
    }
    pub fn refused(message: impl Into<String>) -> Self {
        AppError::Refused {
            message: message.into(),
            help: None,
        }
    }
    pub fn with_help(self, h: impl Into<String>) -> Self {
        let help = h.into();
        let h = Some(help.clone());
        match self {
            AppError::Input { message, .. } => AppError::Input { message, help: h },
            AppError::External { message, .. } => AppError::External { message, help: h },
            AppError::Refused { message, .. } => AppError::Refused { message, help: h },
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
            AppError::Fs(e) => e.kind(),
            AppError::Journal(e) => e.kind(),
            AppError::RekeyStep(e) => e.kind(),
            AppError::New(e) => e.kind(),
            AppError::Remove(e) => e.kind(),
            AppError::Fleet(_)
            | AppError::Domain(_)
            | AppError::Prompt(_)
            | AppError::Input { .. } => Kind::Input,
            AppError::Adopt(e) => e.kind(),
            AppError::External { .. } => Kind::External,
            AppError::Refused { .. } => Kind::Refused,
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
            AppError::Fs(e) => e.help(),
            AppError::Journal(e) => e.help(),
            AppError::RekeyStep(e) => e.help(),
            AppError::New(e) => e.help(),
            AppError::Remove(e) => e.help(),
            AppError::Fleet(e) => e.help(),
            AppError::Domain(e) => e.help(),
            AppError::Prompt(crate::report::PromptError::NoTerminal { help, .. }) => Some(
                help.clone()
                    .unwrap_or_else(|| "pass --yes to go ahead from a script".to_string()),
            ),
            AppError::Prompt(_) => None,
            AppError::Adopt(e) => Classify::help(e),
            AppError::Input { help, .. }
            | AppError::External { help, .. }
            | AppError::Refused { help, .. } => help.clone(),
        }
    }
}

impl From<crate::runner::RunError> for AppError {
    fn from(e: crate::runner::RunError) -> Self {
        let help = e.help();
        let code_two = matches!(e, crate::runner::RunError::Missing { .. });
        let message = e.to_string();
        if code_two {
            AppError::Input { message, help }
        } else {
            AppError::External { message, help }
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
