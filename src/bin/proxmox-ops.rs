//! `proxmox-ops`: the low-level Proxmox operations over SSH (also `pve vm`).
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use pve_fleet::app::{self, Context};
use pve_fleet::cli::{vm, EXIT_CODES};

/// Proxmox operations over SSH: qm / pvesh / pvesm on the Proxmox host,
/// typed and guarded (same as `pve vm`).
#[derive(Debug, Parser)]
#[command(name = "proxmox-ops", version, after_help = EXIT_CODES, after_long_help = vm::EXAMPLES)]
struct Cli {
    /// hosts.nix to use (default: ./hosts.nix or the nearest one in a parent
    /// folder). `_proxmox` in it says where the Proxmox host is.
    #[arg(
        short = 'f',
        long = "hosts",
        global = true,
        value_name = "FILE",
        env = "PVE_HOSTS"
    )]
    hosts: Option<PathBuf>,

    #[command(flatten)]
    vm: vm::Args,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let ctx = Context { hosts: cli.hosts };
    let result = app::vm::run(&ctx, cli.vm);
    // An interrupted op fails as a side effect of closing its connection;
    // the interrupt handler owns the exit then (130, after cleanup).
    pve_fleet::remote::ssh::interrupt::wait_if_interrupted();
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            pve_fleet::ui::report_error(&err);
            ExitCode::from(err.exit_code())
        }
    }
}
