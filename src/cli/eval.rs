use crate::error::Result;
use crate::fleet::{self, FleetError, SourceFile};

use super::Context;

/// Print hosts.nix evaluated, as JSON.
///
/// The output equals `nix-instantiate --eval --strict --json hosts.nix`,
/// except that paths print as their text relative to hosts.nix
/// (`./hosts/web/configuration.nix`) instead of being copied into the store.
/// Any Nix value in the supported subset prints, not only a fleet.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  pve eval | jq '.sandbox.proxmox'")]
pub struct Args {}

pub fn run(ctx: &Context, _args: Args) -> Result<u8> {
    let file = SourceFile::read(&ctx.hosts_path()?)?;
    let root_dir = std::path::absolute(file.dir()).map_err(|source| FleetError::Io {
        path: file.path.clone(),
        source,
    })?;
    match fleet::evaluate_text(&file.text, &root_dir) {
        Ok(value) => {
            let mut json = value.to_nix_json(&root_dir);
            json.push('\n');
            super::print(&json)
        }
        Err(d) => Err(FleetError::Invalid {
            file: Box::new(file),
            diagnostic: Box::new(d),
        }
        .into()),
    }
}
