//! `pve integrate <name> [ip] [vmid]`: brings a freshly cloned VM into the
//! fleet, as ordered, idempotent steps with a journal (`vms/.journal/`):
//!
//!  1. resolve the IP (argument, `tofu output`, or the guest agent)
//!     ([`resolve_ip`]);
//!  2. pin the VM's host key, read through the guest agent over the
//!     authenticated Proxmox connection; without an agent, only a
//!     fingerprint the user confirmed (`--accept-host-key`, or the
//!     [`Prompt`] the caller passes) — never blind trust. It goes into
//!     `vms/known_hosts` under the host's names, and every later SSH
//!     connection looks it up there (`HostKeyAlias`), so a DHCP address
//!     change does not matter ([`host_key`]);
//!  3. wait for SSH (re-resolving the address through the guest agent)
//!     ([`wait_ssh`]);
//!  4. `hardware-configuration.nix` from `nixos-generate-config
//!     --show-hardware-config` (kept when present unless forced)
//!     ([`hardware_config`]);
//!  5. `nixos-rebuild switch --flake .#<name> --target-host`, watching the
//!     address: when it goes away (a rebuild restarts networking, DHCP hands
//!     out a new address) the guest agent says where the VM went, and the
//!     switch is confirmed there ([`rebuild`]);
//!  6. Tailscale: a one-off tagged key minted with OAuth client credentials,
//!     `tailscale up` with the key on stdin (skipped when already enrolled)
//!     ([`tailscale`]);
//!  7. read `/etc/ssh/ssh_host_ed25519_key.pub` and compare it with the key
//!     pinned at first contact ([`host_key`]);
//!  8. publicKey into hosts.nix (format-preserving editor);
//!  9. re-render `.sops.yaml` and `vms/known_hosts`;
//! 10. `sops updatekeys` on every secret file, in parallel, each reported
//!     (8–10: [`fleet_files`]);
//! 11. a summary with next steps ([`summary`]).
//!
//! The steps print nothing and read nothing: notes and the hardware diff go
//! to the caller's [`Reporter`], the host key question to its [`Prompt`].

mod error;
mod fleet_files;
mod hardware_config;
mod host_key;
mod rebuild;
mod resolve_ip;
mod summary;
mod tailscale;
mod wait_ssh;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use error::{HardwarePathProblem, IntegrateError};

use crate::error::Result;
use crate::fleet::{Host, Loaded};
use crate::fsutil::LockOnDemand;
use crate::remote::proxmox::{IpSource, Proxmox};
use crate::remote::ssh::{self, Endpoint, Ssh};
use crate::report::{Prompt, Reporter};
use crate::workflow::{Journal, Step};

pub const WORKFLOW: &str = "integrate";
/// Where the Tailscale OAuth client credentials are looked for (sops
/// encrypted) when the environment has none.
pub const DEFAULT_TS_CREDENTIALS: &str = "secrets/tailscale.yaml";

const HOST_KEY_FILE: &str = "/etc/ssh/ssh_host_ed25519_key.pub";
const REMOTE_TIMEOUT: Duration = Duration::from_secs(120);
/// How long an SSH connection to the VM may take to open (for pve's own
/// connections and nixos-rebuild's alike).
const VM_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What the user asked for (flags converted and validated once).
#[derive(Debug, Clone)]
pub struct Options {
    pub name: String,
    pub ip: Option<IpAddr>,
    pub vmid: Option<u32>,
    /// The login on the VM; other than root, commands that need root go
    /// through `sudo -n` (and nixos-rebuild gets `--use-remote-sudo`).
    pub user: String,
    pub port: u16,
    pub identity: Option<PathBuf>,
    /// `SHA256:...` the user compared out of band.
    pub accept_host_key: Option<String>,
    pub force_hardware_config: bool,
    pub skip_tailscale: bool,
    pub tailscale_tags: Vec<String>,
    /// The sops-encrypted credentials file (relative to the fleet root).
    pub tailscale_credentials: PathBuf,
    /// How long to wait for SSH to answer.
    pub ssh_wait: Duration,
    pub rebuild_timeout: Duration,
    /// How often the address is checked during the rebuild.
    pub watch_interval: Duration,
}

impl Options {
    pub fn new(name: impl Into<String>) -> Options {
        Options {
            name: name.into(),
            ip: None,
            vmid: None,
            user: "root".into(),
            port: 22,
            identity: None,
            accept_host_key: None,
            force_hardware_config: false,
            skip_tailscale: false,
            tailscale_tags: vec!["tag:vm".into()],
            tailscale_credentials: PathBuf::from(DEFAULT_TS_CREDENTIALS),
            ssh_wait: Duration::from_secs(300),
            rebuild_timeout: Duration::from_secs(2 * 3600),
            watch_interval: Duration::from_secs(2),
        }
    }
}

/// The state the steps share.
pub struct Integrate<'r> {
    pub opts: Options,
    pub loaded: Loaded,
    proxmox: Option<Proxmox>,
    /// Where notes and the hardware diff go.
    reporter: &'r dyn Reporter,
    /// Asks the user to confirm a host key the guest agent could not give;
    /// [`crate::report::NoPrompt`] refuses with the `--accept-host-key`
    /// advice instead.
    prompt: Box<dyn Prompt + 'r>,
    /// The repository lock, taken with the one lock policy only for the
    /// short steps that write the fleet's files (pinning the host key,
    /// rendering, re-keying), never for the whole minutes-long run.
    lock: LockOnDemand,
    /// Filled by the last step: what to do next.
    pub summary: String,
}

impl<'r> Integrate<'r> {
    /// Checks the host exists in hosts.nix.
    pub fn new(
        opts: Options,
        loaded: Loaded,
        reporter: &'r dyn Reporter,
        prompt: Box<dyn Prompt + 'r>,
    ) -> Result<Integrate<'r>> {
        crate::remote::proxmox::check_name(&opts.name)?;
        if !ssh::valid_user(&opts.user) {
            return Err(IntegrateError::InvalidUser {
                user: opts.user.clone(),
            }
            .into());
        }
        let lock = LockOnDemand::new(&loaded.root_dir);
        let c = Integrate {
            opts,
            lock,
            loaded,
            proxmox: None,
            reporter,
            prompt,
            summary: String::new(),
        };
        c.refuse_readonly()?;
        Ok(c)
    }

    /// A readonly VM is never integrated (it would be contacted, rebuilt
    /// and enrolled), as `remove` and `vm stop` refuse it.
    fn refuse_readonly(&self) -> Result<()> {
        let marked = self.host()?.proxmox.as_ref().is_some_and(|p| p.readonly);
        let listed = match self.vmid() {
            Some(v) => crate::remote::proxmox::readonly_vmids(&self.loaded.fleet)?.contains(&v),
            None => false,
        };
        if marked || listed {
            return Err(IntegrateError::Readonly {
                name: self.opts.name.clone(),
            }
            .into());
        }
        Ok(())
    }

    pub fn root(&self) -> &Path {
        &self.loaded.root_dir
    }

    pub fn host(&self) -> Result<&Host> {
        let name = &self.opts.name;
        let hosts = &self.loaded.fleet.hosts;
        hosts.iter().find(|h| &h.name == name).ok_or_else(|| {
            let names = hosts.iter().map(|h| h.name.as_str());
            IntegrateError::UnknownHost {
                name: name.clone(),
                file: self.loaded.file.path.clone(),
                suggestion: crate::diag::did_you_mean(name, names).map(|s| s.to_string()),
            }
            .into()
        })
    }

    /// The names the host's key is pinned under (`sshAlias`, hostname), as
    /// `pve render` writes them into vms/known_hosts.
    fn key_names(&self) -> Result<Vec<String>> {
        let h = self.host()?;
        let mut names = Vec::new();
        if let Some(a) = &h.ssh_alias {
            names.push(a.value.clone());
        }
        if !names.iter().any(|n| n == h.hostname()) {
            names.push(h.hostname().to_string());
        }
        for n in &names {
            if !ssh::valid_host(n) {
                return Err(IntegrateError::UnusableKeyName {
                    name: self.opts.name.clone(),
                    key_name: n.clone(),
                }
                .into());
            }
        }
        Ok(names)
    }

    /// The name every SSH connection to the VM looks its key up under.
    fn alias(&self) -> Result<String> {
        Ok(self.host()?.hostname().to_string())
    }

    fn vmid(&self) -> Option<u32> {
        self.opts.vmid.or_else(|| {
            self.host()
                .ok()?
                .proxmox
                .as_ref()?
                .vmid
                .as_ref()
                .and_then(|v| u32::try_from(v.value).ok())
        })
    }

    fn require_vmid(&self) -> Result<u32> {
        self.vmid().ok_or_else(|| {
            IntegrateError::NoVmid {
                name: self.opts.name.clone(),
            }
            .into()
        })
    }

    /// The Proxmox connection, opened on first use.
    fn proxmox(&mut self) -> Result<&Proxmox> {
        let px = match self.proxmox.take() {
            Some(px) => px,
            None => Proxmox::from_loaded(&self.loaded)?,
        };
        Ok(self.proxmox.insert(px))
    }

    fn known_hosts(&self) -> PathBuf {
        self.root().join(crate::known_hosts::VMS_PATH)
    }

    fn ssh(&self, ip: IpAddr) -> Result<Ssh> {
        let s = Ssh::new(
            Endpoint {
                host: ip.to_string(),
                user: self.opts.user.clone(),
                port: Some(self.opts.port),
                identity: self.opts.identity.clone(),
            },
            ssh::Options {
                known_hosts: vec![self.known_hosts()],
                connect_timeout: VM_CONNECT_TIMEOUT,
                reuse: true,
            },
        )?;
        Ok(s.with_host_key_alias(&self.alias()?)?)
    }

    /// `sudo -n` in front of commands that need root, for a non-root login.
    fn as_root(&self, argv: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = Vec::new();
        if self.opts.user != "root" {
            v.extend(["sudo".into(), "-n".into()]);
        }
        v.extend(argv.iter().map(|s| s.to_string()));
        v
    }

    /// The address from the guest agent (None without a VMID or agent).
    fn agent_ip(&mut self) -> Option<IpAddr> {
        let vmid = self.vmid()?;
        let px = self.proxmox().ok()?;
        match px.get_ip(vmid) {
            Ok(r) if r.source == IpSource::GuestAgent => Some(r.ip),
            _ => None,
        }
    }

    fn show(&self, p: &Path) -> String {
        p.strip_prefix(self.root())
            .unwrap_or(p)
            .display()
            .to_string()
    }
}

/// Runs `f` (a write into the fleet's files: pinning a host key in
/// `vms/known_hosts`) under the repository lock, which `pve render` and
/// the other commands writing the fleet's files take too.
fn with_repository_lock<T>(lock: &LockOnDemand, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let _held = lock.take()?;
    f()
}

/// The steps, in order.
pub fn steps<'r>() -> Vec<Step<Integrate<'r>>> {
    vec![
        Step {
            name: "resolve-ip",
            title: "Resolve the VM's IP address",
            slow: false,
            run: resolve_ip::run,
        },
        Step {
            name: "pin-host-key",
            title: "Pin the VM's SSH host key",
            slow: false,
            run: host_key::pin,
        },
        Step {
            name: "wait-ssh",
            title: "Wait for SSH",
            slow: true,
            run: wait_ssh::run,
        },
        Step {
            name: "hardware-config",
            title: "hardware-configuration.nix",
            slow: false,
            run: hardware_config::run,
        },
        Step {
            name: "rebuild",
            title: "nixos-rebuild switch",
            slow: true,
            run: rebuild::run,
        },
        Step {
            name: "tailscale",
            title: "Enroll in Tailscale",
            slow: true,
            run: tailscale::run,
        },
        Step {
            name: "verify-host-key",
            title: "Verify the host key",
            slow: false,
            run: host_key::verify,
        },
        Step {
            name: "public-key",
            title: "Write publicKey into hosts.nix",
            slow: false,
            run: fleet_files::public_key,
        },
        Step {
            name: "render",
            title: "Re-render .sops.yaml, known_hosts",
            slow: false,
            run: fleet_files::render,
        },
        Step {
            name: "rekey",
            title: "Re-key secrets (sops updatekeys)",
            slow: true,
            run: fleet_files::rekey,
        },
        Step {
            name: "summary",
            title: "Summary",
            slow: false,
            run: summary::run,
        },
    ]
}

/// The VM's address, as the journal last recorded it.
fn fact_ip(j: &Journal) -> Result<IpAddr> {
    j.fact("ip").and_then(|s| s.parse().ok()).ok_or_else(|| {
        IntegrateError::JournalWithoutIp {
            journal: Journal::path_for(Path::new("."), WORKFLOW, &j.host),
        }
        .into()
    })
}

/// The host key pinned at first contact.
fn fact_key(j: &Journal) -> Result<String> {
    j.fact("host_key")
        .map(str::to_string)
        .ok_or_else(|| IntegrateError::JournalWithoutHostKey.into())
}

/// `ssh-ed25519 AAAA...` of a valid public key line, re-encoded from the
/// key itself: leading fields and the comment never come along.
fn normalise_key(line: &str) -> Option<String> {
    crate::keys::normalise_ed25519(line).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_compared_without_comments() {
        let k = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOHz+U0YtjINc54dZiJNclfmEFifF7RXCFlNlTbuZBji";
        assert_eq!(normalise_key(&format!("{k} root@web")).as_deref(), Some(k));
        assert_eq!(normalise_key("ssh-rsa AAAA"), None);
        // Leading junk is not pinned with the key.
        assert_eq!(normalise_key(&format!("zzz {k} c")).as_deref(), Some(k));
    }
}
