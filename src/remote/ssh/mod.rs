//! The OpenSSH client, used safely: every remote argument shell-quoted, host
//! keys pinned in the project's known_hosts files with strict checking, a
//! connect timeout and a per-command timeout, and one reused connection
//! (ControlMaster in a private 0700 folder, closed and removed on drop).
//!
//! Users' `~/.ssh/config` and agent keep working: we only add options.
//!
//! One file per job: [`options`] (every ssh option pve passes, to ssh
//! itself and through `NIX_SSHOPTS`), [`client`] (running commands),
//! `control` (the shared connection), [`error`] (failures told apart so a person knows what to fix: refused,
//! timed out, authentication failed, unknown or changed host key,
//! connection dropped, or the remote command itself failed),
//! [`interrupt`] (closing shared connections on Ctrl-C), [`keyscan`]
//! (reading a host's keys before trusting them) and [`probe`] (is SSH
//! answering at an address). The known_hosts files themselves are
//! [`crate::known_hosts`].

pub mod client;
mod control;
pub mod error;
pub mod interrupt;
pub mod keyscan;
pub mod options;
pub mod probe;

use std::path::PathBuf;
use std::time::Duration;

pub use crate::known_hosts::{fingerprint, known_keys, HostKey as ScannedKey};
pub use client::{RemoteOutput, Ssh};
pub use error::{RemoteFailure, SshError};
pub use keyscan::scan;
pub use probe::ssh_banner;

/// Where and as whom to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub user: String,
    pub port: Option<u16>,
    /// A private key to use (`-i`, with IdentitiesOnly); else ssh's defaults.
    pub identity: Option<PathBuf>,
}

impl Endpoint {
    /// `host` as known_hosts and ssh-keyscan write it: `[host]:port` for a
    /// port other than 22.
    pub fn known_hosts_name(&self) -> String {
        match self.port {
            Some(p) if p != 22 => format!("[{}]:{p}", self.host),
            _ => self.host.clone(),
        }
    }

    fn shown(&self) -> String {
        match self.port {
            Some(p) if p != 22 => format!("{}@{}:{p}", self.user, self.host),
            _ => format!("{}@{}", self.user, self.host),
        }
    }
}

/// Checks a host name or IP address before it goes into ssh's argv: no
/// leading `-` (it would be read as an option), no spaces or shell text.
pub fn valid_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && !h.starts_with('-')
        && h.chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:_".contains(c))
}

/// A remote login name: POSIX-ish user names only.
pub fn valid_user(u: &str) -> bool {
    !u.is_empty()
        && u.len() <= 32
        && !u.starts_with('-')
        && u.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

#[derive(Debug, Clone)]
pub struct Options {
    /// Known hosts files, all passed to ssh (`UserKnownHostsFile`).
    pub known_hosts: Vec<PathBuf>,
    pub connect_timeout: Duration,
    /// Share one connection between commands (ControlMaster).
    pub reuse: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_hosts_and_users_are_refused() {
        for h in ["-oProxyCommand=x", "a b", "x;id", ""] {
            assert!(!valid_host(h), "{h}");
        }
        assert!(valid_host("pve.example.org"));
        assert!(valid_host("fe80::1"));
        assert!(!valid_user("-l"));
        assert!(!valid_user("a;b"));
    }
}
