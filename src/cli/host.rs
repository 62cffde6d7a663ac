//! `pve host`: change hosts.nix in place, one attribute or host at a time.

use clap::Subcommand;

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
pve host set web1 proxmox.cores 4\n  \
pve host set web1 publicKey '\"ssh-ed25519 AAAA...\"'\n  \
pve host add web2 --vmid 120 --cores 2 --memory 4096 --disk 32G --dry-run\n  \
pve host rm web2 --yes")]
pub struct Args {
    #[command(subcommand)]
    pub command: HostCommand,
}

#[derive(Debug, Subcommand)]
pub enum HostCommand {
    Set(SetArgs),
    Add(Box<AddArgs>),
    Rm(RmArgs),
    Rename(RenameArgs),
}

/// Set an attribute of a host to a Nix value (missing sets are created).
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
pve host set web1 proxmox.cores 4\n  \
pve host set web1 hostname '\"web-one\"'\n  \
pve host set web1 proxmox.tags '[ \"a\" \"b\" ]'\n  \
pve host set _proxmox node '\"pve2\"'")]
pub struct SetArgs {
    /// The host (or a `_config` set such as `_proxmox`).
    pub name: String,
    /// Dotted path below the host: `proxmox.cores`; quote odd names:
    /// `'"my.key".x'`.
    pub attr_path: String,
    /// The value as Nix text: `4`, `'"a string"'`, `'[ "a" "b" ]'`, `true`.
    pub nix_expression: String,
    /// Print the change as a unified diff; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Write the change even when it makes `pve check` fail.
    #[arg(long)]
    pub force: bool,
}

/// Add a host entry (after the last host, or in order when hosts are sorted).
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  pve host add web2 --vmid 120 --cores 2 --memory 4096 --disk 32G --tag web",
    mut_arg("vmid", |a| a.help("Proxmox VM id (100-999999999); omit for a machine that is not a VM")),
    mut_arg("disk", |a| a.help("Disk size like `32G`, or a non-size like `passthrough`")),
)]
pub struct AddArgs {
    /// The new host's name (a DNS label: letters, digits, `-`).
    pub name: String,
    #[command(flatten)]
    pub vm: super::VmResources,
    /// Proxmox node (clusters).
    #[arg(long)]
    pub node: Option<String>,
    /// A tag (repeat for several).
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// The VM's Proxmox description.
    #[arg(long)]
    pub description: Option<String>,
    /// Defaults to the name.
    #[arg(long)]
    pub hostname: Option<String>,
    /// SSH alias (unique in the fleet).
    #[arg(long)]
    pub ssh_alias: Option<String>,
    /// Nix expression for authorizedKeys, e.g. `adminKeys` (a `let` name).
    #[arg(long, value_name = "NIX")]
    pub authorized_keys: Option<String>,
    /// Print the change as a unified diff; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Write the entry even when it makes `pve check` fail.
    #[arg(long)]
    pub force: bool,
}

/// Remove a host's entry with the comment lines above it.
///
/// Only hosts.nix changes: the host folder, the VM and its secrets stay
/// (`pve remove` does the whole job).
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  pve host rm web2 --yes")]
pub struct RmArgs {
    /// The host to remove from hosts.nix.
    pub name: String,
    /// Do not ask (needed when stdin is not a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Print the change as a unified diff; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Rename a host's attribute (its `hostname` value stays as it is).
///
/// The old name goes into the host as `renamedFrom = "web2";`: render
/// emits an OpenTofu `moved` block, so the next `pve plan` moves the VM's
/// resource instead of destroying and re-creating the VM, and the host's
/// secrets rule keeps covering `hosts/web2/`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  pve host rename web2 web3")]
pub struct RenameArgs {
    /// The host's current name.
    pub old: String,
    /// Its new name (a DNS label).
    pub new: String,
    /// Print the change as a unified diff; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}
