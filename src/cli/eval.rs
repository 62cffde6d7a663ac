use crate::error::Result;

use super::Context;

/// Print hosts.nix evaluated, as JSON.
///
/// The output equals `nix-instantiate --eval --strict --json hosts.nix`,
/// except that paths print as their text relative to hosts.nix
/// (`./hosts/web/configuration.nix`) instead of being copied into the store.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  pve eval | jq '.sandbox.proxmox'")]
pub struct Args {}

pub fn run(ctx: &Context, _args: Args) -> Result<u8> {
    let loaded = ctx.load()?;
    let mut json = loaded.value.to_nix_json(&loaded.root_dir);
    json.push('\n');
    super::print(&json)
}
