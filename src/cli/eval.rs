/// Print hosts.nix evaluated, as JSON.
///
/// The output equals `nix-instantiate --eval --strict --json hosts.nix`,
/// except that paths print as their text relative to hosts.nix
/// (`./hosts/web/configuration.nix`) instead of being copied into the store.
/// Any Nix value in the supported subset prints, not only a fleet.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  pve eval | jq '.sandbox.proxmox'")]
pub struct Args {}
