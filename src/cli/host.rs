//! `pve host`: change hosts.nix in place, one attribute or host at a time.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::Path;

use clap::Subcommand;

use crate::error::{AppError, Result};
use crate::fleet::edit::{self, names, Applied, HostEntry};
use crate::fleet::{DiskSize, HostName};

use super::Context;

/// Change hosts.nix: set an attribute, add, remove or rename a host.
///
/// Edits keep every other byte of the file (comments, layout, line
/// endings). After each edit pve evaluates the file again and writes it only
/// if exactly the asked-for value changed; writes are atomic and take the
/// repository lock. `--dry-run` prints a unified diff instead of writing.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
pve host set web1 proxmox.cores 4\n  \
pve host set web1 publicKey '\"ssh-ed25519 AAAA...\"'\n  \
pve host add web2 --vmid 120 --cores 2 --memory 4096 --disk 32G --dry-run\n  \
pve host rm web2 --yes")]
pub struct Args {
    #[command(subcommand)]
    pub command: HostCommand,
}

#[derive(Debug, Subcommand)]
pub enum HostCommand {
    Set(SetArgs),
    Add(Box<AddArgs>),
    Rm(RmArgs),
    Rename(RenameArgs),
}

/// Set an attribute of a host to a Nix value (missing sets are created).
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
pve host set web1 proxmox.cores 4\n  \
pve host set web1 hostname '\"web-one\"'\n  \
pve host set web1 proxmox.tags '[ \"a\" \"b\" ]'\n  \
pve host set _proxmox node '\"pve2\"'")]
pub struct SetArgs {
    /// The host (or a `_config` set such as `_proxmox`).
    pub name: String,
    /// Dotted path below the host: `proxmox.cores`; quote odd names:
    /// `'"my.key".x'`.
    pub attr_path: String,
    /// The value as Nix text: `4`, `'"a string"'`, `'[ "a" "b" ]'`, `true`.
    pub nix_expression: String,
    /// Print the change as a unified diff; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Add a host entry (after the last host, or in order when hosts are sorted).
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  pve host add web2 --vmid 120 --cores 2 --memory 4096 --disk 32G --tag web"
)]
pub struct AddArgs {
    /// The new host's name (a DNS label: letters, digits, `-`).
    pub name: String,
    /// Proxmox VM id (100-999999999); omit for a machine that is not a VM.
    #[arg(long)]
    pub vmid: Option<u32>,
    #[arg(long)]
    pub cores: Option<u32>,
    /// Memory in MiB.
    #[arg(long)]
    pub memory: Option<u32>,
    /// Disk size like `32G`, or a non-size like `passthrough`.
    #[arg(long)]
    pub disk: Option<String>,
    #[arg(long)]
    pub storage: Option<String>,
    /// Proxmox node (clusters).
    #[arg(long)]
    pub node: Option<String>,
    /// A tag (repeat for several).
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    #[arg(long)]
    pub description: Option<String>,
    /// Defaults to the name.
    #[arg(long)]
    pub hostname: Option<String>,
    #[arg(long)]
    pub ssh_alias: Option<String>,
    /// Nix expression for authorizedKeys, e.g. `adminKeys` (a `let` name).
    #[arg(long, value_name = "NIX")]
    pub authorized_keys: Option<String>,
    /// Print the change as a unified diff; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Remove a host's entry with the comment lines above it.
///
/// Only hosts.nix changes: the host folder, the VM and its secrets stay
/// (`pve remove` does the whole job).
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  pve host rm web2 --yes")]
pub struct RmArgs {
    pub name: String,
    /// Do not ask (needed when stdin is not a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Print the change as a unified diff; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Rename a host's attribute (its `hostname` value stays as it is).
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  pve host rename web2 web3")]
pub struct RenameArgs {
    pub old: String,
    pub new: String,
    /// Print the change as a unified diff; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(ctx: &Context, args: Args) -> Result<u8> {
    let path = ctx.hosts_path()?;
    match args.command {
        HostCommand::Set(a) => set(&path, a),
        HostCommand::Add(a) => add(&path, *a),
        HostCommand::Rm(a) => rm(&path, a),
        HostCommand::Rename(a) => rename(&path, a),
    }
}

fn set(path: &Path, a: SetArgs) -> Result<u8> {
    let mut attr = vec![a.name.clone()];
    attr.extend(names::split_attr_path(&a.attr_path).map_err(|m| {
        AppError::input(format!("bad attribute path {m}"))
            .with_help("write it like `proxmox.cores`; quote odd names: '\"my-key\".x'")
    })?);
    let refs: Vec<&str> = attr.iter().map(String::as_str).collect();
    let applied = edit::apply_to_file_checked(path, None, a.dry_run, |t| {
        edit::set_attr(t, &refs, &a.nix_expression)
    })?;
    finish(
        &applied,
        a.dry_run,
        &format!("set {}", names::attr_path(&refs)),
    )
}

fn add(path: &Path, a: AddArgs) -> Result<u8> {
    if !HostName::is_valid(&a.name) {
        return Err(
            AppError::input(format!("`{}` is not a valid host name", a.name)).with_help(
                "use a DNS label: lowercase letters, digits and `-`, at most 63 characters",
            ),
        );
    }
    if let Some(v) = a.vmid {
        if !(100..=999_999_999).contains(&v) {
            return Err(AppError::input(format!("--vmid {v} is out of range"))
                .with_help("Proxmox VM ids are 100 to 999999999"));
        }
    }
    for (flag, v) in [("--cores", a.cores), ("--memory", a.memory)] {
        if v == Some(0) {
            return Err(AppError::input(format!("{flag} must be at least 1")));
        }
    }
    if let Some(d) = &a.disk {
        if d.is_empty()
            || (d.starts_with(|c: char| c.is_ascii_digit()) && d.parse::<DiskSize>().is_err())
        {
            return Err(AppError::input(format!("--disk `{d}` is not a size"))
                .with_help("write a size like `32G` or `1T`, or `passthrough` for no disk"));
        }
    }
    if let Some(keys) = &a.authorized_keys {
        crate::fleet::syntax::one_expression(keys).map_err(|why| {
            AppError::input(format!(
                "--authorized-keys `{}` is not one Nix expression: {why}",
                keys.escape_debug()
            ))
            .with_help("pass a single value, e.g. `adminKeys` or `[ \"ssh-ed25519 AAAA...\" ]`")
        })?;
    }
    let entry = HostEntry {
        name: a.name.clone(),
        hostname: a.hostname,
        ssh_alias: a.ssh_alias,
        authorized_keys: a.authorized_keys,
        vmid: a.vmid,
        cores: a.cores,
        memory: a.memory,
        disk: a.disk,
        storage: a.storage,
        node: a.node,
        tags: a.tags,
        description: a.description,
    };
    let nix = entry
        .render()
        .map_err(|e| AppError::input(format!("cannot render the host entry: {e}")))?;
    let applied =
        edit::apply_to_file_checked(path, None, a.dry_run, |t| edit::add_host(t, &a.name, &nix))?;
    finish(&applied, a.dry_run, &format!("added host {}", a.name))
}

fn rm(path: &Path, a: RmArgs) -> Result<u8> {
    let op = |t: &str| edit::remove_host(t, &a.name);
    if a.dry_run {
        let applied = edit::apply_to_file_checked(path, None, true, op)?;
        return finish(&applied, true, "");
    }
    let expected = if a.yes {
        None
    } else {
        // Show what would go, ask, then write only if the file is still
        // what was shown.
        let preview = edit::apply_to_file_checked(path, None, true, op)?;
        if !std::io::stdin().is_terminal() {
            return Err(
                AppError::input(format!("not removing `{}` without confirmation", a.name))
                    .with_help("pass --yes to remove it, or --dry-run to see the change"),
            );
        }
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "{}Remove host `{}` from {}? [y/N] ",
            preview.diff(),
            a.name,
            path.display()
        );
        let _ = err.flush();
        let mut answer = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut answer)
            .map_err(|e| AppError::input(format!("cannot read the answer: {e}")))?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            let _ = writeln!(err, "nothing changed");
            return Ok(crate::error::exit::OK);
        }
        Some(preview.before)
    };
    let applied = edit::apply_to_file_checked(path, expected.as_deref(), false, op)?;
    finish(&applied, false, &format!("removed host {}", a.name))
}

fn rename(path: &Path, a: RenameArgs) -> Result<u8> {
    if !HostName::is_valid(&a.new) {
        return Err(
            AppError::input(format!("`{}` is not a valid host name", a.new)).with_help(
                "use a DNS label: lowercase letters, digits and `-`, at most 63 characters",
            ),
        );
    }
    let applied = edit::apply_to_file_checked(path, None, a.dry_run, |t| {
        edit::rename_host(t, &a.old, &a.new)
    })?;
    finish(
        &applied,
        a.dry_run,
        &format!("renamed host {} to {}", a.old, a.new),
    )
}

fn finish(applied: &Applied, dry_run: bool, what: &str) -> Result<u8> {
    if !applied.new_findings.is_empty() {
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "{}", applied.new_findings);
        let _ = writeln!(
            err,
            "note: the edit is exactly what was asked; `pve check` will report the above"
        );
    }
    if dry_run {
        return super::print(&applied.diff());
    }
    let msg = if applied.changed() {
        format!("{}: {what}\n", applied.path.display())
    } else {
        format!("{}: already so; nothing written\n", applied.path.display())
    };
    super::print(&msg)
}
