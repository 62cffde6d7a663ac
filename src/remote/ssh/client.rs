//! Running commands on a remote host through `ssh`, with the options of
//! [`super::options`] and, when asked, one shared connection.

use std::path::PathBuf;
use std::time::Duration;

use super::error::{connect_error, is_drop};
use super::{control, options, Endpoint, Options, RemoteFailure, SshError};
use crate::runner::{Cmd, RunError, Tool};

/// Printed on the remote stderr before the command runs: if it is missing,
/// the command never started and any failure is ssh's own.
const BEGIN: &str = "pve-ops:begin";

/// What a remote command printed and how it ended.
#[derive(Debug, Clone)]
pub struct RemoteOutput {
    pub stdout: String,
    pub stderr: String,
    pub code: Option<i32>,
}

/// An SSH client for one endpoint. Cheap to create: nothing connects
/// until the first command.
pub struct Ssh {
    endpoint: Endpoint,
    options: Options,
    /// Private folder of the control socket (0700), removed on drop.
    control: Option<tempfile::TempDir>,
    /// The name the host key is looked up under (`HostKeyAlias`), so a
    /// VM's pinned key keeps matching when its DHCP address changes.
    host_key_alias: Option<String>,
}

impl std::fmt::Debug for Ssh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ssh")
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

impl Ssh {
    pub fn new(endpoint: Endpoint, options: Options) -> Result<Ssh, SshError> {
        if !super::valid_host(&endpoint.host) {
            return Err(SshError::InvalidHost {
                host: endpoint.host.clone(),
            });
        }
        if !super::valid_user(&endpoint.user) {
            return Err(SshError::InvalidUser {
                user: endpoint.user.clone(),
            });
        }
        let control = if options.reuse {
            Some(control::create(&endpoint.host)?)
        } else {
            None
        };
        Ok(Ssh {
            endpoint,
            options,
            control,
            host_key_alias: None,
        })
    }

    /// Looks the host key up under `alias` instead of the address
    /// (`HostKeyAlias`); checking stays strict.
    pub fn with_host_key_alias(mut self, alias: &str) -> Result<Ssh, SshError> {
        if !super::valid_host(alias) {
            return Err(SshError::InvalidAlias {
                alias: alias.to_string(),
            });
        }
        self.host_key_alias = Some(alias.to_string());
        Ok(self)
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    fn control_path(&self) -> Option<PathBuf> {
        self.control.as_ref().map(|d| d.path().join("c"))
    }

    /// The options every ssh invocation gets ([`options::client`]).
    fn base_args(&self, batch: bool) -> Result<Vec<String>, SshError> {
        options::client(&options::Client {
            endpoint: &self.endpoint,
            known_hosts: &self.options.known_hosts,
            host_key_alias: self.host_key_alias.as_deref(),
            connect_timeout: self.options.connect_timeout,
            control_path: self.control_path(),
            batch,
        })
    }

    /// Runs `argv` on the remote host (each argument quoted); a non-zero
    /// exit is [`SshError::RemoteFailed`] with the remote stderr.
    pub fn run(&self, argv: &[String], timeout: Duration) -> Result<RemoteOutput, SshError> {
        let out = self.run_unchecked(argv, timeout)?;
        self.checked(argv, out)
    }

    /// Runs `argv` remotely and returns its output whatever its exit code;
    /// only ssh's own failures (connect, auth, host key, drop, timeout)
    /// are errors.
    pub fn run_unchecked(
        &self,
        argv: &[String],
        timeout: Duration,
    ) -> Result<RemoteOutput, SshError> {
        self.run_unchecked_stdin(argv, None, timeout)
    }

    /// Like [`Ssh::run`], with `stdin` fed to the remote command (secrets
    /// travel this way, never in the command line).
    pub fn run_with_stdin(
        &self,
        argv: &[String],
        stdin: &[u8],
        timeout: Duration,
    ) -> Result<RemoteOutput, SshError> {
        let out = self.run_unchecked_stdin(argv, Some(stdin), timeout)?;
        self.checked(argv, out)
    }

    /// `out` when the remote command exited 0, else
    /// [`SshError::RemoteFailed`] naming the host, the command and its exit.
    fn checked(&self, argv: &[String], out: RemoteOutput) -> Result<RemoteOutput, SshError> {
        if out.code == Some(0) {
            return Ok(out);
        }
        Err(SshError::RemoteFailed(Box::new(RemoteFailure {
            target: self.endpoint.shown(),
            command: crate::shell::join(argv),
            status: out
                .code
                .map_or("killed by a signal".into(), |c| format!("exit code {c}")),
            code: out.code,
            stdout: out.stdout,
            stderr: out.stderr,
        })))
    }

    fn run_unchecked_stdin(
        &self,
        argv: &[String],
        stdin: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<RemoteOutput, SshError> {
        let command = crate::shell::join(argv);
        let remote = format!("echo {BEGIN} >&2; exec {command}");
        let mut cmd = Cmd::new(Tool::Ssh)
            .args(self.base_args(true)?)
            .arg(self.endpoint.host.clone())
            .arg(remote)
            .timeout(timeout);
        if let Some(data) = stdin {
            cmd = cmd.stdin(data.to_vec());
        }
        let out = match cmd.run_unchecked() {
            Ok(o) => o,
            Err(RunError::Timeout { after, .. }) => {
                return Err(SshError::Timeout {
                    target: self.endpoint.shown(),
                    command,
                    after,
                })
            }
            Err(e) => return Err(e.into()),
        };
        self.classify(&command, out.stdout, out.stderr, out.code)
    }

    fn classify(
        &self,
        command: &str,
        stdout: String,
        stderr: String,
        code: Option<i32>,
    ) -> Result<RemoteOutput, SshError> {
        let target = self.endpoint.shown();
        let marker = format!("{BEGIN}\n");
        match stderr.find(&marker) {
            None => Err(connect_error(target, stderr)),
            Some(i) => {
                let before = &stderr[..i];
                let after = &stderr[i + marker.len()..];
                // qm/pvesh always explain a failure on stderr; 255 with
                // nothing after the marker is ssh losing the connection.
                if code == Some(255) && (is_drop(after) || after.trim().is_empty()) {
                    return Err(SshError::Dropped {
                        target,
                        command: command.to_string(),
                        stderr: after.to_string(),
                    });
                }
                let mut rest = before.to_string();
                rest.push_str(after);
                Ok(RemoteOutput {
                    stdout,
                    stderr: rest,
                    code,
                })
            }
        }
    }

    /// Runs `argv` with the terminal attached (`ssh -t`), for `console`.
    pub fn interactive(&self, argv: &[String]) -> Result<i32, SshError> {
        let command = crate::shell::join(argv);
        let cmd = Cmd::new(Tool::Ssh)
            .args(self.base_args(false)?)
            .arg("-t")
            .arg(self.endpoint.host.clone())
            .arg(command)
            .timeout(Duration::from_secs(24 * 3600))
            .interactive();
        let out = cmd.run_unchecked()?;
        Ok(out.code.unwrap_or(255))
    }

    /// Closes the shared connection (if any) now.
    pub fn close(&mut self) {
        if let Some(dir) = self.control.as_ref().map(|d| d.path().to_path_buf()) {
            control::close(&dir, &self.endpoint.host);
        }
        self.control = None;
    }
}

impl Drop for Ssh {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn ssh(reuse: bool) -> Ssh {
        Ssh::new(
            Endpoint {
                host: "192.0.2.12".into(),
                user: "root".into(),
                port: Some(2222),
                identity: None,
            },
            Options {
                known_hosts: vec![
                    PathBuf::from("/fleet/vms/proxmox_known_hosts"),
                    PathBuf::from("/my fleet/vms/known_hosts"),
                ],
                connect_timeout: Duration::from_secs(7),
                reuse,
            },
        )
        .expect("valid")
    }

    #[test]
    fn options_pin_host_keys_and_never_disable_checking() {
        let a = ssh(true).base_args(true).expect("args").join(" ");
        assert!(a.contains(
            "UserKnownHostsFile=/fleet/vms/proxmox_known_hosts \"/my fleet/vms/known_hosts\""
        ));
        assert!(a.contains("StrictHostKeyChecking=yes"));
        assert!(a.contains("ConnectTimeout=7"));
        assert!(a.contains("ControlMaster=auto"));
        assert!(a.contains("-p 2222"));
        assert!(!a.contains("/dev/null"));
        let b = ssh(false).base_args(true).expect("args").join(" ");
        assert!(b.contains("ControlMaster=no"));
    }

    #[test]
    fn the_control_folder_is_private_and_removed() {
        use std::os::unix::fs::PermissionsExt as _;
        let mut s = ssh(true);
        let dir = s.control.as_ref().expect("dir").path().to_path_buf();
        let mode = std::fs::metadata(&dir)
            .expect("exists")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        s.close();
        assert!(!dir.exists());
    }
}
