//! `pve secrets`: its flags (the logic is in `crate::app::secrets`).

use std::path::PathBuf;

use clap::Subcommand;

#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  pve secrets adopt --dry-run")]
pub struct Args {
    #[command(subcommand)]
    pub command: SecretsCommand,
}

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    Adopt(AdoptArgs),
}

/// Write the `_sops` block into hosts.nix that renders an existing
/// .sops.yaml again.
///
/// Recipients that are a host's key stay that host; the others become
/// `_sops.admins`, named after their YAML anchors (`&admin_alice` →
/// `alice`, else admin1, admin2 …). A recipient whose anchor names a host
/// (`&host_old`, a host's name) but is no current host's key is reported
/// and dropped, so no removed machine keeps access (`--keep-unknown`
/// keeps it as an admin). Each rule becomes one of `_sops.rules`; a last
/// rule for every file that gives every admin and host becomes pve's
/// catch-all. Before writing, pve renders .sops.yaml from the result and
/// checks every rule and every secret file gets the same recipients. An
/// existing `_sops` is never replaced (exit 2).
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
pve secrets adopt --dry-run\n  \
pve secrets adopt secrets/.sops.yaml --json | jq .differences")]
pub struct AdoptArgs {
    /// The .sops.yaml (secrets/.sops.yaml or .sops.yaml of the fleet;
    /// default: whichever exists).
    pub file: Option<PathBuf>,
    /// Keep recipients that look like an old host key, as admins.
    #[arg(long)]
    pub keep_unknown: bool,
    /// Print the `_sops` block and the differences; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}
