//! `pve scaffold`.

use crate::cli::scaffold::Args;
use crate::error::{exit, Result};
use crate::fsutil::RepoLock;
use crate::render::scaffold::{self, Outcome};
use crate::report::Reporter as _;

use super::{Context, UsageError};

pub fn run(ctx: &Context, args: Args) -> Result<u8> {
    let hosts = ctx.hosts_path()?;
    let root =
        crate::fleet::fleet_root(&hosts).map_err(|source| UsageError::FleetFolder { source })?;
    let files = scaffold::files(&args.name)?;
    let lock = RepoLock::take(&root)?;
    let report = crate::ui::Terminal::new();
    for o in scaffold::scaffold(&root, &files, &lock)? {
        match o {
            Outcome::Created(p) => report.note(&format!("created {}", p.display())),
            Outcome::Kept(p) => report.note(&format!(
                "kept {} (it exists; not overwritten)",
                p.display()
            )),
        }
    }
    Ok(exit::OK)
}
