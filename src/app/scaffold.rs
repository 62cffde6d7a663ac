//! `pve scaffold`.

use crate::cli::scaffold::Args;
use crate::error::{exit, AppError, Result};
use crate::render::scaffold::{self, Outcome};

use super::Context;

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
