//! `pve config`: the fleet's settings (`_proxmox`, `_sops`, ...).

use clap::Subcommand;

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
pve config get _proxmox.templateVmid\n  \
pve config set _proxmox.templateVmid 9003\n  \
pve config set _proxmox.host 192.168.1.12 --string\n  \
pve config set _sops.admins.alice '\"age1...\"'\n  \
pve config get _sops --json")]
pub struct Args {
    #[command(subcommand)]
    pub command: ConfigCommand,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    Get(GetArgs),
    Set(SetArgs),
}

/// Print a setting's evaluated value (a string as it is, anything else as
/// JSON).
///
/// An unset key that pve gives a default (`_proxmox.bridge`,
/// `_proxmox.parallelClones`, ...) prints that default, marked
/// `(default)`; with --json the value alone, as pve will use it.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  pve config get _proxmox.host\n  pve config get _sops.admins --json"
)]
pub struct GetArgs {
    /// Dotted path of the setting: `_proxmox.templateVmid`.
    pub key: String,
    /// Print the value as JSON (strings quoted), as `pve eval` would.
    #[arg(long)]
    pub json: bool,
}

/// Set a setting to a Nix value (missing sets are created).
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
pve config set _proxmox.templateVmid 9003\n  \
pve config set _proxmox.node pve2 --string\n  \
pve config set _sops.admins.alice '\"age1...\"' --dry-run")]
pub struct SetArgs {
    /// Dotted path of the setting: `_proxmox.templateVmid`,
    /// `_sops.admins.alice`; quote odd names: `'_sops.admins."a.b"'`.
    pub key: String,
    /// The value as Nix text: `9003`, `true`, `'"a string"'`, `'[ 100 199 ]'`
    /// (or any text with --string).
    pub value: String,
    /// Take VALUE as a string: `--string pve2` is `"pve2"`.
    #[arg(long, short = 's')]
    pub string: bool,
    /// Print the change as a unified diff; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Write the change even when `pve check` would then fail.
    #[arg(long)]
    pub force: bool,
}
