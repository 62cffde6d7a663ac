use crate::error::{exit, AppError, Result};
use crate::render::scaffold::{self, Outcome};

use super::Context;

/// Create hosts/<NAME>/configuration.nix and home.nix for a new VM, from
/// the base for VMs cloned from the NixOS template (like hosts/vm_base).
///
/// Existing files are never overwritten. Add the host to hosts.nix yourself
/// (or use `pve new`, which does both).
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  pve scaffold web-1")]
pub struct Args {
    /// Host name (a DNS label: lowercase letters, digits, `-`).
    pub name: String,
}

pub fn run(ctx: &Context, args: Args) -> Result<u8> {
    let hosts = ctx.hosts_path()?;
    let root = std::path::absolute(hosts.parent().unwrap_or(std::path::Path::new(".")))
        .map_err(|e| AppError::input(format!("cannot resolve the fleet folder: {e}")))?;
    for o in scaffold::scaffold(&root, &args.name)? {
        match o {
            Outcome::Created(p) => eprintln!("created {}", p.display()),
            Outcome::Kept(p) => eprintln!("kept {} (it exists; not overwritten)", p.display()),
        }
    }
    Ok(exit::OK)
}
