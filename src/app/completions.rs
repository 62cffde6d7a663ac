//! `pve completions` and `pve man`: shell completions (clap_complete) and
//! manual pages (clap_mangen), both from the same clap command tree as
//! `--help`, so they never drift from it.

use std::path::Path;

use clap::CommandFactory;

use crate::cli::completions::{Args, ManArgs, Shell};
use crate::cli::Cli;
use crate::error::Result;
use crate::fsutil::{self, FsError};

use super::Context;

pub fn run(_ctx: &Context, args: Args) -> Result<u8> {
    let shell = match args.shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "pve", &mut script);
    super::print(&String::from_utf8_lossy(&script))
}

pub fn man(_ctx: &Context, args: ManArgs) -> Result<u8> {
    std::fs::create_dir_all(&args.out).map_err(|source| FsError::Create {
        path: args.out.clone(),
        source,
    })?;
    let mut root = Cli::command().disable_help_subcommand(true);
    root.build();
    write_pages(&root, &args.out)?;
    Ok(0)
}

/// Writes `cmd`'s page and those of its visible subcommands, depth first.
/// The pages are named by clap_mangen from the command path (pve-host-add.1).
fn write_pages(cmd: &clap::Command, out: &Path) -> Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub, out)?;
    }
    // Every page's header names pve and its version (clap_mangen would
    // name the subcommand alone: "add").
    let man = clap_mangen::Man::new(cmd.clone()).source(concat!("pve ", env!("CARGO_PKG_VERSION")));
    let path = out.join(man.get_filename());
    let mut page = Vec::new();
    man.render(&mut page).map_err(|source| FsError::Write {
        what: "render the manual page",
        path: path.clone(),
        source,
    })?;
    fsutil::write_atomic(&path, &page)
}
