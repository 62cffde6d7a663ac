//! The errors a command can end with, and the exit code each maps to:
//! 2 for bad input or usage, 3 for a remote or external tool that failed.
//! (1, "check failed or output stale", is a result, not an error.)

use crate::fleet::FleetError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Fleet(#[from] FleetError),
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
    pub fn exit_code(&self) -> u8 {
        match self {
            AppError::Fleet(_) | AppError::Input { .. } => 2,
            AppError::External { .. } => 3,
            AppError::Refused { .. } => 1,
        }
    }
    pub fn help(&self) -> Option<String> {
        match self {
            AppError::Fleet(e) => e.help(),
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
