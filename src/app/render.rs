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
    let targets = match args.what {
        What::All => render::all_targets(&loaded),
        What::Tofu => vec![Target::Tofu],
        What::Sops => vec![Target::Sops],
        What::KnownHosts => vec![Target::KnownHosts],
    };
    let dir = args.out_dir.unwrap_or_else(|| loaded.root_dir.clone());
    if args.check {
        let files = render::render_with(&loaded, &targets, options)?;
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
    // config.tf.json is written to a temp file beside its destination while
    // it renders (see `render::render_for`).
    let outputs = render::render_for(&loaded, &targets, options, &dir)?;
    let paths: Vec<_> = outputs.iter().map(|o| o.path.clone()).collect();
    let lock = if render::writes_into_fleet(&loaded, &dir) {
        Some(RepoLock::take(&loaded.root_dir)?)
    } else {
        None
    };
    let changed = render::write_outputs(&loaded, &dir, outputs, lock.as_ref())?;
    for path in &paths {
        let verb = if changed.contains(path) {
            "wrote"
        } else {
            "unchanged"
        };
        report.note(&format!("{verb} {}", path.display()));
    }
    drop(lock);
    // The process ends here: freeing a large fleet's values and files
    // piece by piece would only delay the exit (the OS takes the memory
    // back at once), as in `pve check`.
    std::mem::forget(loaded);
    Ok(exit::OK)
}
