//! Command-line definitions: the clap structs of every command, and the
//! dispatch to the application layer. No logic lives here: each command's
//! logic is in `crate::app::<command>`, which calls the library and renders
//! its results through `crate::ui`.

pub mod check;
pub mod completions;
pub mod config;
pub mod deploy;
pub mod eval;
pub mod host;
pub mod init;
pub mod integrate;
pub mod key;
pub mod new;
pub mod remove;
pub mod render;
pub mod scaffold;
pub mod secrets;
pub mod status;
pub mod tofu;
pub mod vm;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::app::{self, Context};
use crate::error::Result;

pub const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  check failed, or a generated file is stale (--check)
  2  bad input or usage: hosts.nix cannot be read or evaluated, a bad argument
  3  a remote host or an external tool failed";

#[derive(Debug, Parser)]
#[command(
    name = "pve",
    version,
    about = "Run a NixOS fleet on Proxmox VE from one hosts.nix",
    long_about = "Run a NixOS fleet on Proxmox VE from one hosts.nix.\n\n\
hosts.nix describes every machine; pve validates it, renders the OpenTofu and sops files that follow from it, and runs the workflows that create, integrate and remove VMs.",
    after_help = EXIT_CODES,
    mut_subcommand("vm", vm::as_pve_vm),
    after_long_help = concat!("Examples:\n  pve check                 validate ./hosts.nix (or the nearest one above)\n  pve -f ~/fleet/hosts.nix eval | jq .sandbox\n\n", "Exit codes:\n  0  success\n  1  check failed, or a generated file is stale (--check)\n  2  bad input or usage: hosts.nix cannot be read or evaluated, a bad argument\n  3  a remote host or an external tool failed"),
)]
pub struct Cli {
    /// hosts.nix to use (default: ./hosts.nix or the nearest one in a parent
    /// folder). Its folder is the fleet root for every relative path.
    #[arg(
        short = 'f',
        long = "hosts",
        global = true,
        value_name = "FILE",
        env = "PVE_HOSTS"
    )]
    pub hosts: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    // Listed in the order a fleet meets them: validate and render, the
    // workflows, OpenTofu, editing, then the low-level tools.
    Init(init::Args),
    Check(check::Args),
    Render(render::Args),
    Eval(eval::Args),
    New(Box<new::Args>),
    Integrate(integrate::Args),
    Remove(remove::Args),
    Deploy(deploy::Args),
    Import(remove::ImportArgs),
    Plan(tofu::PlanArgs),
    Apply(tofu::ApplyArgs),
    Output(tofu::OutputArgs),
    Destroy(tofu::DestroyArgs),
    Host(host::Args),
    Config(config::Args),
    Scaffold(scaffold::Args),
    Key(key::Args),
    Secrets(secrets::Args),
    Status(status::Args),
    /// Proxmox operations over SSH (same as `proxmox-ops`).
    Vm(vm::Args),
    Completions(completions::Args),
    #[command(hide = true)]
    Man(completions::ManArgs),
}

/// The VM resource flags `pve new` and `pve host add` share. Each command
/// words the help of `--vmid`, `--disk` and `--storage` for itself (with
/// `mut_arg`): their defaults differ.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct VmResources {
    /// Proxmox VM id, e.g. 120.
    #[arg(long)]
    pub vmid: Option<u32>,
    /// CPU cores (1-512).
    #[arg(long)]
    pub cores: Option<u32>,
    /// Memory in MiB.
    #[arg(long)]
    pub memory: Option<u32>,
    /// Disk size, e.g. 32G.
    #[arg(long)]
    pub disk: Option<String>,
    /// Proxmox datastore of the disk, e.g. local-lvm.
    #[arg(long)]
    pub storage: Option<String>,
}

/// Runs a parsed command line and returns the exit code.
pub fn run(cli: Cli) -> Result<u8> {
    let ctx = Context { hosts: cli.hosts };
    match cli.command {
        Command::Init(a) => app::init::run(&ctx, a),
        Command::Config(a) => app::config::run(&ctx, a),
        Command::Check(a) => app::check::run(&ctx, a),
        Command::Eval(a) => app::eval::run(&ctx, a),
        Command::Plan(a) => app::tofu::plan(&ctx, a),
        Command::Apply(a) => app::tofu::apply(&ctx, a),
        Command::Output(a) => app::tofu::output(&ctx, a),
        Command::Destroy(a) => app::tofu::destroy(&ctx, a),
        Command::Host(a) => app::host::run(&ctx, a),
        Command::Vm(a) => app::vm::run(&ctx, a),
        Command::Render(a) => app::render::run(&ctx, a),
        Command::Key(a) => app::key::run(&ctx, a),
        Command::Secrets(a) => app::secrets::run(&ctx, a),
        Command::Scaffold(a) => app::scaffold::run(&ctx, a),
        Command::Integrate(a) => app::integrate::run(&ctx, a),
        Command::New(a) => app::new::run(&ctx, *a),
        Command::Remove(a) => app::remove::run(&ctx, a),
        Command::Deploy(a) => app::deploy::run(&ctx, a),
        Command::Import(a) => app::import::run(&ctx, a),
        Command::Status(a) => app::status::run(&ctx, a),
        Command::Completions(a) => app::completions::run(&ctx, a),
        Command::Man(a) => app::completions::man(&ctx, a),
    }
}
