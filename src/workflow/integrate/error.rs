//! How `pve integrate` can fail on its own account (the Proxmox, SSH,
//! known_hosts and tool failures it passes on have their own types).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{AppError, Classify, Kind};
use crate::remote::ssh::SshError;
use crate::runner::RunError;
use crate::workflow::Journal;

use super::{HOST_KEY_FILE, WORKFLOW};

/// Where to compare a host key by hand.
const COMPARE_ON_CONSOLE: &str = "`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`";

#[derive(Debug, thiserror::Error)]
pub enum IntegrateError {
    #[error("`{user}` is not a valid user name")]
    InvalidUser { user: String },
    #[error("`{name}` is a readonly VM; refusing to integrate it")]
    Readonly { name: String },
    #[error("there is no host `{name}` in {}", file.display())]
    UnknownHost {
        name: String,
        file: PathBuf,
        /// A host of the fleet with a close name.
        suggestion: Option<String>,
    },
    #[error("`{key_name}` (sshAlias or hostname of {name}) is not a usable host name")]
    UnusableKeyName { name: String, key_name: String },
    #[error("no VMID for {name}: hosts.nix has no `proxmox.vmid` for it")]
    NoVmid { name: String },
    #[error("no VMID, so no guest agent to ask")]
    NoVmidForAgent,
    #[error("the hostname of {name} ({alias:?}) is not a DNS label; refusing to pass it to ssh")]
    AliasNotDnsLabel { name: String, alias: String },
    #[error("the journal {} has no IP address", journal.display())]
    JournalWithoutIp { journal: PathBuf },
    #[error("the journal has no pinned host key")]
    JournalWithoutHostKey,
    #[error("the guest agent of {name} reports the host key {got}, not the {accepted} you accepted; refusing to trust either")]
    AgentKeyNotAccepted {
        name: String,
        got: String,
        accepted: String,
    },
    #[error("{ip} offers no ssh-ed25519 host key")]
    NoEd25519Key { ip: IpAddr },
    #[error("{ip} offers an unreadable host key")]
    UnreadableKey { ip: IpAddr },
    #[error("the SSH server at {ip} shows the host key {got}, not the {accepted} you accepted; refusing to trust it")]
    ScannedKeyNotAccepted {
        ip: IpAddr,
        got: String,
        accepted: String,
    },
    #[error("the host key was not confirmed; nothing was trusted")]
    HostKeyNotConfirmed,
    #[error("the guest agent could not give the VM's host key ({agent}); the SSH server at {ip} shows the host key {fingerprint}, which nobody has confirmed")]
    HostKeyUnconfirmed {
        agent: Box<AppError>,
        ip: IpAddr,
        fingerprint: String,
    },
    #[error("`nixos-generate-config --show-hardware-config` on {name} printed no plain hardware module: {problem}; nothing was written")]
    NotAHardwareModule { name: String, problem: String },
    #[error("refusing to write {}: {reason}", path.display())]
    HardwarePathRefused {
        path: PathBuf,
        name: String,
        reason: HardwarePathProblem,
    },
    #[error("nixos-rebuild switch failed: {0}")]
    RebuildFailed(RunError),
    #[error("the nixos-rebuild runner stopped unexpectedly")]
    RebuildRunnerStopped,
    #[error("tailscale is not installed on {name} ({stderr})")]
    TailscaleMissing { name: String, stderr: String },
    #[error("{HOST_KEY_FILE} on {name} holds no usable ssh-ed25519 key")]
    NoUsableHostKey { name: String },
    #[error("{HOST_KEY_FILE} on {name} holds {got}, not the key pinned at first contact ({pinned}); refusing to write it into hosts.nix")]
    HostKeyChangedSincePin {
        name: String,
        got: String,
        pinned: String,
    },
    #[error("the SSH server at {ip} does not present the host key pinned for {name} ({pinned}); refusing to connect\n{source}")]
    PinnedKeyRefused {
        ip: IpAddr,
        name: String,
        pinned: String,
        source: Box<SshError>,
    },
    #[error("{name} did not answer SSH within {}s (last: {last})", wait.as_secs())]
    SshWaitTimedOut {
        name: String,
        wait: Duration,
        last: String,
    },
}

/// Why hardware-configuration.nix may not be written where hosts.nix says.
#[derive(Debug, thiserror::Error)]
pub enum HardwarePathProblem {
    #[error("it has no folder")]
    NoFolder,
    #[error("it is not in hosts/{name}/")]
    OutsideHostFolder { name: String },
    #[error("it is a symlink or not a plain file")]
    NotPlainFile,
}

impl Classify for IntegrateError {
    fn kind(&self) -> Kind {
        use IntegrateError::*;
        match self {
            InvalidUser { .. }
            | Readonly { .. }
            | UnknownHost { .. }
            | UnusableKeyName { .. }
            | NoVmid { .. }
            | NoVmidForAgent
            | AliasNotDnsLabel { .. }
            | JournalWithoutIp { .. }
            | JournalWithoutHostKey
            | AgentKeyNotAccepted { .. }
            | ScannedKeyNotAccepted { .. }
            | HostKeyNotConfirmed
            | HostKeyUnconfirmed { .. }
            | HardwarePathRefused { .. } => Kind::Input,
            NoEd25519Key { .. }
            | UnreadableKey { .. }
            | NotAHardwareModule { .. }
            | RebuildFailed(_)
            | RebuildRunnerStopped
            | TailscaleMissing { .. }
            | NoUsableHostKey { .. }
            | HostKeyChangedSincePin { .. }
            | PinnedKeyRefused { .. }
            | SshWaitTimedOut { .. } => Kind::External,
        }
    }

    fn help(&self) -> Option<String> {
        use IntegrateError::*;
        Some(match self {
            Readonly { .. } => "it is marked `proxmox.readonly = true` in hosts.nix or listed in PROXMOX_READONLY_VMIDS; change that first if you really mean it".into(),
            UnknownHost { suggestion: Some(s), .. } => format!("did you mean `{s}`?"),
            UnknownHost { suggestion: None, .. } => "add it first (`pve new`, or `pve host add`)".into(),
            NoVmid { name } => format!("give the VMID (`pve integrate {name} <ip> <vmid>`) or the IP"),
            AliasNotDnsLabel { .. } => "fix it in hosts.nix (`pve check` shows where)".into(),
            JournalWithoutIp { .. } | JournalWithoutHostKey => {
                "delete the journal to start from the first step".into()
            }
            AgentKeyNotAccepted { .. } => format!("compare again on the VM console ({COMPARE_ON_CONSOLE}); you may be looking at another VM"),
            ScannedKeyNotAccepted { .. } => format!("compare again on the VM console ({COMPARE_ON_CONSOLE}); someone may be intercepting the connection"),
            HostKeyUnconfirmed { fingerprint, .. } => format!("compare it with the VM console ({COMPARE_ON_CONSOLE}), then run again with `--accept-host-key {fingerprint}`"),
            NotAHardwareModule { .. } => "check the VM on its console; a generated hardware configuration is a plain attribute set".into(),
            HardwarePathRefused { name, .. } => format!("hardware-configuration.nix is written only as hosts/{name}/hardware-configuration.nix, a plain file inside the fleet"),
            TailscaleMissing { name, .. } => format!("enable it in the host's configuration (`services.tailscale.enable = true;`), then `pve integrate {name} --resume`; or pass --skip-tailscale"),
            HostKeyChangedSincePin { .. } => "the VM's host key changed after first contact (a configuration that regenerates host keys, or another machine at this address); check the VM on its console before trusting anything".into(),
            PinnedKeyRefused { name, .. } => format!("someone may be intercepting the connection, or another machine has this address. Check the VM on its console; if the VM was reinstalled, delete {} and run `pve integrate {name}` again", Journal::path_for(Path::new(""), WORKFLOW, name).display()),
            SshWaitTimedOut { name, .. } => format!("check that the VM is running and sshd is enabled; then `pve integrate {name} --resume`"),
            _ => return None,
        })
    }
}
