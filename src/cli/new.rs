//! `pve new`: the wizard (or flags + --yes), then the steps of
//! `workflow::new`, with rollback offered when a step fails.

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
pve new                                            the wizard\n  \
pve new --name web-2 --cores 2 --memory 4096 --disk 32G --yes\n  \
pve new --name web-2 --node auto --yes             on the node with the most free memory\n  \
pve new --name web-2 --resume                      continue a run that stopped\n  \
pve new --name web-2 --rollback                    undo a run that stopped\n\n\
The Proxmox API token comes from PROXMOX_VE_API_TOKEN or the token file (see `pve plan --help`).",
    mut_arg("vmid", |a| a.help("Proxmox VMID (default: the next free one in `_proxmox.vmidRange`)")),
    mut_arg("disk", |a| a.help("Disk size like `32G`")),
    mut_arg("storage", |a| a.help("Proxmox storage (default: `_proxmox.defaultStorage`)")),
)]
pub struct Args {
    /// The host's name (a DNS label starting with a letter).
    #[arg(long)]
    pub name: Option<String>,
    /// SSH alias (default: the name).
    #[arg(long)]
    pub ssh_alias: Option<String>,
    /// What the VM is for (its Proxmox description).
    #[arg(long)]
    pub description: Option<String>,
    #[command(flatten)]
    pub vm: super::VmResources,
    /// The cluster node the VM goes to, written as its `proxmox.node`
    /// (default: `_proxmox.node`; with `_proxmox.placement =
    /// "least-memory"` on a cluster, as `auto`). `auto`: the online node
    /// with the most free memory that has a template.
    #[arg(long, value_name = "NODE|auto")]
    pub node: Option<String>,
    /// The host's `user` attribute (default: `_defaults.user` in hosts.nix).
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// The host's `authorizedKeys` as Nix text, e.g. `adminKeys` (a `let`
    /// name) (default: `_defaults.authorizedKeys`).
    #[arg(long, value_name = "NIX")]
    pub authorized_keys: Option<String>,
    /// Ask nothing: defaults for what is not given, apply, roll back on failure.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// One JSON object per step on stdout.
    #[arg(long)]
    pub json: bool,
    /// Continue the stopped run of --name.
    #[arg(long, conflicts_with = "rollback")]
    pub resume: bool,
    /// Undo the stopped run of --name.
    #[arg(long)]
    pub rollback: bool,
}
