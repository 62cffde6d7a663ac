//! How an ssh invocation failed, told apart so a person knows what to fix,
//! and how ssh's stderr is read to tell them apart.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Classify, Kind};
use crate::runner::RunError;

#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("{target} refused the SSH connection{}", tail(stderr))]
    Refused { target: String, stderr: String },
    #[error("connecting to {target} timed out{}", tail(stderr))]
    ConnectTimeout { target: String, stderr: String },
    #[error("cannot resolve the host name of {target}{}", tail(stderr))]
    Resolve { target: String, stderr: String },
    #[error(
        "{target} did not accept our SSH key (authentication failed){}",
        tail(stderr)
    )]
    AuthFailed { target: String, stderr: String },
    #[error(
        "the host key of {target} is not in the project's known_hosts{}",
        tail(stderr)
    )]
    HostKeyUnknown { target: String, stderr: String },
    #[error(
        "the host key of {target} has CHANGED since it was trusted; refusing to connect{}",
        tail(stderr)
    )]
    HostKeyChanged { target: String, stderr: String },
    #[error(
        "the connection to {target} dropped while `{command}` ran{}",
        tail(stderr)
    )]
    Dropped {
        target: String,
        command: String,
        stderr: String,
    },
    #[error("`{command}` on {target} did not finish within {}s", after.as_secs())]
    Timeout {
        target: String,
        command: String,
        after: Duration,
    },
    #[error("{0}")]
    RemoteFailed(Box<RemoteFailure>),
    #[error("ssh to {target} failed{}", tail(stderr))]
    Other { target: String, stderr: String },
    #[error(transparent)]
    Run(#[from] RunError),
    // Refused before ssh runs: the values would not reach ssh intact.
    #[error("`{host}` is not a valid host name or address")]
    InvalidHost { host: String },
    #[error("`{user}` is not a valid user name")]
    InvalidUser { user: String },
    #[error("`{alias}` is not a valid host key alias")]
    InvalidAlias { alias: String },
    #[error("cannot pass the path {} to ssh (it contains a quote or newline)", path.display())]
    UnquotablePath { path: PathBuf },
    #[error("cannot create the SSH control folder: {0}")]
    ControlFolder(std::io::Error),
    #[error("the ssh option {key}={value:?} cannot be passed through NIX_SSHOPTS (spaces, quotes, `%` or shell characters)")]
    NixSshOption { key: &'static str, value: String },
}

fn tail(stderr: &str) -> String {
    let t = stderr.replace('\r', "");
    let t = t.trim();
    if t.is_empty() {
        String::new()
    } else {
        let lines: Vec<&str> = t.lines().collect();
        let start = lines.len().saturating_sub(12);
        format!(":\n{}", lines[start..].join("\n"))
    }
}

impl SshError {
    /// The remote command's stderr, when it ran and failed.
    pub fn remote_stderr(&self) -> Option<&str> {
        match self {
            SshError::RemoteFailed(f) => Some(&f.stderr),
            _ => None,
        }
    }
}

impl Classify for SshError {
    fn kind(&self) -> Kind {
        match self {
            SshError::InvalidHost { .. }
            | SshError::InvalidUser { .. }
            | SshError::InvalidAlias { .. }
            | SshError::UnquotablePath { .. }
            | SshError::ControlFolder(_)
            | SshError::NixSshOption { .. }
            | SshError::Run(RunError::Missing { .. }) => Kind::Input,
            _ => Kind::External,
        }
    }

    fn help(&self) -> Option<String> {
        Some(match self {
            SshError::Refused { .. } => "check that sshd runs on the Proxmox host and the address/port are right (_proxmox.host, PROXMOX_HOST, PROXMOX_SSH_PORT)".into(),
            SshError::ConnectTimeout { .. } => "check the network path and the address (_proxmox.host or PROXMOX_HOST); PROXMOX_CONNECT_TIMEOUT sets the limit".into(),
            SshError::Resolve { .. } => "check _proxmox.host (or PROXMOX_HOST)".into(),
            SshError::AuthFailed { .. } => "check that your key is loaded (ssh-add -l) and in the Proxmox host's authorized_keys, and the user (_proxmox.user / PROXMOX_USER)".into(),
            SshError::HostKeyUnknown { .. } => "run `proxmox-ops trust` to see the host's fingerprint and record it after comparing it with the one on the Proxmox console (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub)".into(),
            SshError::HostKeyChanged { .. } => "someone may be intercepting the connection, or the host was reinstalled. Compare the fingerprint on the Proxmox console (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub); only if it is the new genuine key, run `proxmox-ops trust --replace`".into(),
            SshError::Dropped { .. } => "the operation may or may not have completed on Proxmox: check with `proxmox-ops status <vmid>` before retrying".into(),
            SshError::Timeout { .. } => "the command may still be running on Proxmox; check with `proxmox-ops status <vmid>`, or raise --timeout".into(),
            SshError::NixSshOption { .. } => "move the fleet (or the key) to a path of letters, digits and `-_./`, and keep hosts.nix values to DNS labels".into(),
            SshError::Run(e) => return e.help(),
            _ => return None,
        })
    }
}

/// A remote command that ran and failed: its exit status and output.
#[derive(Debug, Clone, thiserror::Error)]
#[error("`{command}` failed on {target} ({status}){}", tail(stderr))]
pub struct RemoteFailure {
    pub target: String,
    pub command: String,
    pub status: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Whether ssh's stderr says the connection dropped.
pub(super) fn is_drop(stderr: &str) -> bool {
    let s = stderr.to_ascii_lowercase();
    [
        "closed by remote host",
        "connection reset",
        "broken pipe",
        "mux_client_read_packet",
        "timeout, server",
        "client_loop: send disconnect",
    ]
    .iter()
    .any(|p| s.contains(p))
}

/// Which failure ssh's stderr describes, when the remote command never
/// started.
pub(super) fn connect_error(target: String, stderr: String) -> SshError {
    let s = stderr.to_ascii_lowercase();
    if s.contains("remote host identification has changed")
        || s.contains("host key for") && s.contains("has changed")
    {
        SshError::HostKeyChanged { target, stderr }
    } else if s.contains("host key verification failed")
        || s.contains("no ") && s.contains("host key is known")
    {
        SshError::HostKeyUnknown { target, stderr }
    } else if s.contains("connection refused") {
        SshError::Refused { target, stderr }
    } else if s.contains("timed out") {
        SshError::ConnectTimeout { target, stderr }
    } else if s.contains("could not resolve hostname") || s.contains("name or service not known") {
        SshError::Resolve { target, stderr }
    } else if s.contains("permission denied") || s.contains("too many authentication failures") {
        SshError::AuthFailed { target, stderr }
    } else if is_drop(&s) || s.contains("connection closed by") {
        SshError::Dropped {
            target,
            command: String::new(),
            stderr,
        }
    } else {
        SshError::Other { target, stderr }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_failures_are_told_apart() {
        let t = || "root@h".to_string();
        assert!(matches!(
            connect_error(
                t(),
                "ssh: connect to host h port 22: Connection refused\r\n".into()
            ),
            SshError::Refused { .. }
        ));
        assert!(matches!(
            connect_error(
                t(),
                "ssh: connect to host 192.0.2.1 port 22: Connection timed out\r\n".into()
            ),
            SshError::ConnectTimeout { .. }
        ));
        assert!(matches!(
            connect_error(t(), "root@h: Permission denied (publickey).\r\n".into()),
            SshError::AuthFailed { .. }
        ));
        assert!(matches!(
            connect_error(t(), "No ED25519 host key is known for [127.0.0.1]:2299 and you have requested strict checking.\r\nHost key verification failed.\r\n".into()),
            SshError::HostKeyUnknown { .. }
        ));
        assert!(matches!(
            connect_error(t(), "@@@@@@@@@@@\r\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\r\nHost key verification failed.\r\n".into()),
            SshError::HostKeyChanged { .. }
        ));
    }
}
