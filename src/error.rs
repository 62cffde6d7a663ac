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
        let h = Some(h.into());
        match self {
            AppError::Input { message, .. } => AppError::Input { message, help: h },
            AppError::External { message, .. } => AppError::External { message, help: h },
            AppError::Refused { message, .. } => AppError::Refused { message, help: h },
            other => other,
        }
    }
    pub fn kind(&self) -> Kind {
        match self {
            AppError::Fleet(_)
            | AppError::Domain(_)
            | AppError::Prompt(_)
            | AppError::Input { .. } => Kind::Input,
            AppError::External { .. } => Kind::External,
            AppError::Refused { .. } => Kind::Refused,
        }
    }
    pub fn exit_code(&self) -> u8 {
        self.kind().exit_code()
    }
    pub fn help(&self) -> Option<String> {
        match self {
            AppError::Fleet(e) => e.help(),
            AppError::Domain(e) => e.help(),
            AppError::Prompt(crate::report::PromptError::NoTerminal { .. }) => {
                Some("pass --yes to go ahead from a script".to_string())
            }
            AppError::Prompt(_) => None,
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
