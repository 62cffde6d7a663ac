//! Command-line definitions and dispatch. No logic lives here: each command
//! converts its flags once and calls the library.

mod check;
mod eval;
mod host;
mod integrate;
mod key;
mod new;
mod remove;
mod render;
mod scaffold;
mod secrets;
mod tofu;
pub mod vm;

use std::io::Write as _;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::error::{exit, AppError, Result};
use crate::fleet::{self, FleetError, Loaded};

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
    Check(check::Args),
    Render(render::Args),
    Eval(eval::Args),
    New(Box<new::Args>),
    Integrate(integrate::Args),
    Remove(remove::Args),
    Import(remove::ImportArgs),
    Plan(tofu::PlanArgs),
    Apply(tofu::ApplyArgs),
    Output(tofu::OutputArgs),
    Destroy(tofu::DestroyArgs),
    Host(host::Args),
    Scaffold(scaffold::Args),
    Key(key::Args),
    Secrets(secrets::Args),
    /// Proxmox operations over SSH (same as `proxmox-ops`).
    Vm(vm::Args),
}

/// Runs a parsed command line and returns the exit code.
pub fn run(cli: Cli) -> Result<u8> {
    let ctx = Context { hosts: cli.hosts };
    match cli.command {
        Command::Check(a) => check::run(&ctx, a),
        Command::Eval(a) => eval::run(&ctx, a),
        Command::Plan(a) => tofu::plan(&ctx, a),
        Command::Apply(a) => tofu::apply(&ctx, a),
        Command::Output(a) => tofu::output(&ctx, a),
        Command::Destroy(a) => tofu::destroy(&ctx, a),
        Command::Host(a) => host::run(&ctx, a),
        Command::Vm(a) => vm::run(&ctx, a),
        Command::Render(a) => render::run(&ctx, a),
        Command::Key(a) => key::run(&ctx, a),
        Command::Secrets(a) => secrets::run(&ctx, a),
        Command::Scaffold(a) => scaffold::run(&ctx, a),
        Command::Integrate(a) => integrate::run(&ctx, a),
        Command::New(a) => new::run(&ctx, *a),
        Command::Remove(a) => remove::run(&ctx, a),
        Command::Import(a) => remove::import(&ctx, a),
    }
}

/// What every command may need: where hosts.nix is.
pub struct Context {
    pub hosts: Option<PathBuf>,
}

impl Context {
    pub fn hosts_path(&self) -> Result<PathBuf> {
        let cwd = std::env::current_dir()
            .map_err(|e| AppError::input(format!("cannot read the current folder: {e}")))?;
        Ok(fleet::find_hosts_file(self.hosts.as_deref(), &cwd)?)
    }

    pub fn load(&self) -> Result<Loaded> {
        Ok(fleet::load(&self.hosts_path()?)?)
    }
}

/// Prints an error the way a person can act on: rustc-style with the source
/// line when it has a position, then the help.
pub fn report(err: &AppError) {
    let mut stderr = std::io::stderr().lock();
    if let AppError::Fleet(FleetError::Invalid { file, diagnostic }) = err {
        let _ = write!(
            stderr,
            "{}",
            crate::diag::render_human(std::slice::from_ref(diagnostic), file)
        );
        return;
    }
    // Messages carry names and values from hosts.nix and from remotes:
    // escaped, so none can drive the terminal.
    let max = 4000;
    let _ = writeln!(
        stderr,
        "error: {}",
        crate::diag::escape_text(&err.to_string(), max)
    );
    if let Some(h) = err.help() {
        let _ = writeln!(stderr, "  = help: {}", crate::diag::escape_text(&h, max));
    }
}

/// Writes to stdout; a closed pipe (`pve eval | head`) is not an error.
pub fn print(text: &str) -> Result<u8> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(exit::OK),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(exit::OK),
        Err(e) => Err(AppError::external(format!("cannot write to stdout: {e}"))),
    }
}
