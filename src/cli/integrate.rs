//! `pve integrate`: flags converted once, then the workflow in
//! `workflow::integrate`.

use std::path::PathBuf;

use crate::workflow::integrate;

pub const EXAMPLES: &str = "\
Examples:
  pve integrate web1                      # IP from tofu output or the guest agent
  pve integrate web1 192.0.2.50 111
  pve integrate web1 --resume             # continue where a run stopped
  pve integrate --status web1
  pve integrate web1 --json | jq -c 'select(.status != \"started\")'

Steps: resolve IP, pin host key, wait for SSH, hardware-configuration.nix, nixos-rebuild switch,
Tailscale, verify host key, publicKey into hosts.nix, re-render .sops.yaml and known_hosts,
sops updatekeys, summary. A journal in vms/.journal/ records each step.

Environment: TS_OAUTH_CLIENT_ID / TS_OAUTH_CLIENT_SECRET (Tailscale OAuth client), SOPS_AGE_KEY_FILE
(admin key for sops), PROXMOX_* (see `pve vm --help`), PVE_LOG=1 shows every command run,
PVE_INTEGRATE_WATCH_MS how often the address is checked during the rebuild (default 2000).

Exit codes: 0 done; 2 bad input (unknown host, bad IP/VMID, unconfirmed host key, an unfinished
run without --resume); 3 a remote host or tool failed (Proxmox, SSH, nixos-rebuild, Tailscale, sops,
a host key mismatch).";

#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// The host's name in hosts.nix.
    pub name: String,
    /// The VM's IP address (default: `tofu output`, else the guest agent).
    /// A lone number is taken as the VMID.
    pub ip: Option<String>,
    /// The VMID (default: proxmox.vmid in hosts.nix).
    pub vmid: Option<String>,
    /// Continue the run that stopped (the journal in vms/.journal/).
    #[arg(long)]
    pub resume: bool,
    /// Show the steps and what the journal says of each; changes nothing.
    #[arg(long)]
    pub status: bool,
    /// One JSON event per step on stdout.
    #[arg(long)]
    pub json: bool,
    /// Trust this host key fingerprint (SHA256:...) when the guest agent
    /// cannot give the key; compare it on the VM console first.
    #[arg(long, value_name = "FINGERPRINT")]
    pub accept_host_key: Option<String>,
    /// Generate hardware-configuration.nix again even when it exists.
    #[arg(long)]
    pub force_hardware_config: bool,
    /// Leave Tailscale out.
    #[arg(long)]
    pub skip_tailscale: bool,
    /// The login on the VM (not root: commands run through `sudo -n`).
    #[arg(long, default_value = "root", env = "PVE_VM_USER")]
    pub user: String,
    /// The VM's SSH port.
    #[arg(long, default_value_t = 22, env = "PVE_VM_SSH_PORT")]
    pub ssh_port: u16,
    /// The SSH key to log in with (default: ssh's own choice and agent).
    #[arg(long, value_name = "FILE", env = "PVE_VM_SSH_IDENTITY")]
    pub identity: Option<PathBuf>,
    /// Tailscale tag for the VM (repeat for several); the OAuth client must own it.
    #[arg(long = "tailscale-tag", value_name = "TAG", default_value = "tag:vm")]
    pub tailscale_tags: Vec<String>,
    /// sops-encrypted file (relative to the fleet folder) with
    /// TS_OAUTH_CLIENT_ID / TS_OAUTH_CLIENT_SECRET, used when the environment
    /// has neither.
    #[arg(long, value_name = "FILE", default_value = integrate::DEFAULT_TS_CREDENTIALS)]
    pub tailscale_credentials: PathBuf,
    /// Seconds to wait for SSH to answer.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 300,
        env = "PVE_VM_SSH_WAIT"
    )]
    pub ssh_wait: u64,
}
