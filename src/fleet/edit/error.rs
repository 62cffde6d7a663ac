//! What can stop [`super::apply_to_file`] and friends. The kinds and help
//! are given by the `Classify` impl in src/error.rs, so `fleet` does not
//! depend on the error module.

use std::path::PathBuf;

use super::EditError;
use crate::fleet::FleetError;

/// An error of the lock, read, edit, verify, write sequence.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// hosts.nix could not be read.
    #[error(transparent)]
    Fleet(#[from] FleetError),
    /// Taking the repository lock failed (the lock's own error, as is).
    #[error(transparent)]
    Lock(Box<dyn std::error::Error + Send + Sync>),
    /// The edit itself failed, at `location` (`file:line:col`, or the path).
    #[error("{location}: {}", error.message)]
    Edit { location: String, error: EditError },
    #[error("cannot read {} again: {source}", path.display())]
    ReadAgain {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} changed on disk while pve was editing it; nothing was written", path.display())]
    Changed { path: PathBuf },
    /// Writing the edited file failed; the old file is intact.
    #[error("{source}; {} was not changed", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}
