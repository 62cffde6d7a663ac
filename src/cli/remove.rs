//! `pve remove` (the steps of `workflow::remove`) and `pve import`.

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
