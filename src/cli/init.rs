//! `pve init`: a new fleet in the current folder.

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
pve init                                            asks for the Proxmox settings\n  \
pve init --proxmox-host 192.168.1.12 --node pve --storage local-lvm --template-vmid 9000\n  \
pve init --proxmox-host pve.lan --yes --dry-run     what would be written")]
pub struct Args {
    /// API and SSH address of the Proxmox host (`_proxmox.host`), e.g.
    /// `192.168.1.12`.
    #[arg(long, value_name = "HOST")]
    pub proxmox_host: Option<String>,
    /// The Proxmox node new VMs go to (`_proxmox.node`; default `pve`).
    #[arg(long)]
    pub node: Option<String>,
    /// The datastore for VM disks (`_proxmox.defaultStorage`; default
    /// `local-lvm`).
    #[arg(long)]
    pub storage: Option<String>,
    /// The VMID of the NixOS template VMs are cloned from
    /// (`_proxmox.templateVmid`; default 9000).
    #[arg(long, value_name = "VMID")]
    pub template_vmid: Option<u32>,
    /// Your age recipient (`age1...`) for `_sops.admins` (default: derived
    /// from your sops age key or ~/.ssh/id_ed25519.pub).
    #[arg(long, value_name = "AGE1")]
    pub admin_age_recipient: Option<String>,
    /// The admin's name in `_sops.admins`.
    #[arg(long, value_name = "NAME", default_value = "admin")]
    pub admin_name: String,
    /// Ask nothing: defaults for --node, --storage and --template-vmid
    /// (--proxmox-host has none and must be given).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// List what would be written; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The result as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}
