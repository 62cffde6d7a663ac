//! `pve render`.

use crate::cli::render::{Args, What};
use crate::error::{exit, Result};
use crate::fsutil::RepoLock;
use crate::render::{self, Target};
use crate::report::Reporter as _;

use super::Context;

pub fn run(ctx: &Context, args: Args) -> Result<u8> {
    let loaded = ctx.load()?;
    let report = crate::ui::Terminal::new();
    let options = render::Options {
        compact: args.compact,
        skip_read_back: false,
        paths_only: false,
    };
    let files = match args.what {
        What::All => render::all_with(&loaded, options)?,
        What::Tofu => render::render_with(&loaded, &[Target::Tofu], options)?,
        What::Sops => render::render_with(&loaded, &[Target::Sops], options)?,
        What::KnownHosts => render::render_with(&loaded, &[Target::KnownHosts], options)?,
    };
    let dir = args.out_dir.unwrap_or_else(|| loaded.root_dir.clone());
    if args.check {
        let stale = render::check(&dir, &files)?;
        if stale.is_empty() {
            report.note(&format!(
                "{} up to date",
                crate::plural::plural(files.len(), "file")
            ));
            return Ok(exit::OK);
        }
        let mut text = String::new();
        for s in &stale {
            text.push_str(&s.diff);
        }
        super::print(&text)?;
        for s in &stale {
            report.note(&format!(
                "stale: {} (run `pve render` and commit the result)",
                s.path.display()
            ));
        }
        return Ok(exit::FINDINGS);
    }
    let lock = if render::writes_into_fleet(&loaded, &dir) {
        Some(RepoLock::take(&loaded.root_dir)?)
    } else {
        None
    };
    let changed = render::write(&loaded, &dir, &files, lock.as_ref())?;
    for f in &files {
        let verb = if changed.contains(&f.path) {
            "wrote"
        } else {
            "unchanged"
        };
        report.note(&format!("{verb} {}", f.path.display()));
    }
    drop(lock);
    // The process ends here: freeing a large fleet's values and files
    // piece by piece would only delay the exit (the OS takes the memory
    // back at once), as in `pve check`.
    std::mem::forget(files);
    std::mem::forget(loaded);
    Ok(exit::OK)
}
