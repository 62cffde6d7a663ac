//! The application layer: one module per command. Each takes the command's
//! parsed flags (from `crate::cli`), loads what it needs, takes the
//! repository lock once when the command changes the fleet, calls the
//! library, and shows the results through `crate::ui` (a [`Reporter`] and a
//! [`Prompt`] for the terminal or `--json`). It decides policy (when to
//! ask, resume or roll back) but neither prints nor reads the terminal
//! itself.
//!
//! [`Reporter`]: crate::report::Reporter
//! [`Prompt`]: crate::report::Prompt

pub mod check;
mod checked_edit;
pub mod completions;
pub mod config;
pub mod deploy;
mod error;
pub mod eval;
mod flags;
pub mod host;
pub mod import;
pub mod init;
pub mod integrate;
pub mod key;
pub mod new;
pub mod remove;
pub mod render;
pub mod scaffold;
pub mod secrets;
pub mod status;
pub mod tofu;
pub mod vm;
mod wizard;

use std::path::PathBuf;

pub use error::{KeyCommandError, UsageError, VmCommandError};

use crate::error::Result;
use crate::fleet::{self, Loaded};
use crate::report::Reporter;

/// What every command may need: where hosts.nix is.
pub struct Context {
    pub hosts: Option<PathBuf>,
}

impl Context {
    pub fn hosts_path(&self) -> Result<PathBuf> {
        let cwd = std::env::current_dir().map_err(|source| UsageError::CurrentFolder { source })?;
        Ok(fleet::find_hosts_file(self.hosts.as_deref(), &cwd)?)
    }

    pub fn load(&self) -> Result<Loaded> {
        Ok(fleet::load(&self.hosts_path()?)?)
    }
}

/// Where a command's progress goes: JSON step events with `--json`, else
/// the terminal.
pub fn reporter(json: bool) -> Box<dyn Reporter> {
    if json {
        Box::new(crate::ui::Json)
    } else {
        Box::new(crate::ui::Terminal::new())
    }
}

/// The command's result on stdout (a closed pipe is not an error).
pub fn print(text: &str) -> Result<u8> {
    crate::ui::print(text)
}
