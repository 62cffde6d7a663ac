//! `pve remove` and `pve import`.

use crate::error::{AppError, Result};

use super::Context;

/// Remove a host: folder, entry, secrets access, VM.
#[derive(Debug, clap::Args)]
pub struct Args {
    pub name: String,
}

/// Adopt an existing Proxmox VM into hosts.nix.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    pub vmid: String,
}

pub fn run(_ctx: &Context, _a: Args) -> Result<u8> {
    Err(AppError::input("not yet"))
}

pub fn import(_ctx: &Context, _a: ImportArgs) -> Result<u8> {
    Err(AppError::input("not yet"))
}
