//! `pve remove` (the steps of `workflow::remove`) and `pve import`.

/// Remove a host: its folder, entry, access to secrets, and its VM.
///
/// Shows what goes (host folder, hosts.nix entry, age recipient, VM and
/// VMID) and asks you to type the name back (or --yes). Checks on Proxmox
/// that the VM with that VMID carries that name and refuses otherwise. Then
/// removes the folder and entry, re-renders .sops.yaml and known_hosts,
/// re-keys every secret (`sops updatekeys`), gives every file the host could
/// decrypt a new data key (`sops rotate`), and destroys the VM through a
/// plan targeted at it. Readonly VMs are refused. The steps are journaled:
/// `--resume` continues a run that stopped.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  pve remove web-2\n  pve remove web-2 --yes\n  pve remove web-2 --resume\n\n\
sops finds the admin age key as usual (SOPS_AGE_KEY_FILE, ~/.config/sops/age/keys.txt). \
The Proxmox API token comes from PROXMOX_VE_API_TOKEN or the token file (see `pve plan --help`)."
)]
pub struct Args {
    /// The host to remove.
    pub name: String,
    /// Do not ask (for scripts).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Continue a run that stopped.
    #[arg(long)]
    pub resume: bool,
    /// One JSON object per step on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Adopt an existing Proxmox VM: write its host entry with `import = true`.
///
/// Reads the VM's name and configuration from Proxmox and writes (or
/// updates) the host entry with `proxmox = { vmid; import = true;
/// cloneFromTemplate = false; ... }`, so the next `pve plan` / `pve apply`
/// adopts it through an OpenTofu import block instead of creating it. A new
/// host also gets `hosts/<name>/` from the scaffold.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  pve import 120\n  pve import 120 --name web-old\n  pve plan        shows `1 to import`"
)]
pub struct ImportArgs {
    /// The VMID on Proxmox.
    pub vmid: String,
    /// The host name (default: the VM's name on Proxmox).
    #[arg(long)]
    pub name: Option<String>,
}
