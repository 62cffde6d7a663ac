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

use std::cell::Cell;
use std::path::PathBuf;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

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
    // `vm` last in the tree: help lists the commands in this enum's order,
    // but completion scripts and manual pages in the tree's, where vm has
    // always been last (a `mut_subcommand` renaming its examples put it
    // there, now `vm::PveVm` does that).
    mut_subcommand("vm", std::convert::identity),
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

/// Each command's description is here, on its variant, not on its
/// arguments' struct: `pve --help` lists them while the arguments are not
/// defined yet (`Lazy`).
#[derive(Debug, Subcommand)]
pub enum Command {
    // Listed in the order a fleet meets them: validate and render, the
    // workflows, OpenTofu, editing, then the low-level tools.
    /// Start a fleet here: hosts.nix, hosts/vm_base/, flake.nix, .gitignore.
    ///
    /// Writes, in the current folder (or the folder of -f FILE; init never
    /// looks for a hosts.nix in a parent folder):
    ///
    ///   hosts.nix          `_proxmox` (from the flags, else asked, with
    ///                      defaults) and `_sops` with you as the admin
    ///   hosts/vm_base/     the base every new VM's folder is copied from
    ///   flake.nix          the consumer flake using `lib.mkFleet`
    ///   .gitignore         the lines for what pve writes but must not be
    ///                      committed (.pve.lock, vms/tofu/.state/, vms/.journal/)
    ///
    /// The admin's age recipient comes from --admin-age-recipient, else the
    /// identity sops itself would use (SOPS_AGE_KEY_FILE, then
    /// $XDG_CONFIG_HOME/sops/age/keys.txt or ~/.config/sops/age/keys.txt; only
    /// its public recipient is written), else ~/.ssh/id_ed25519.pub converted as
    /// ssh-to-age does.
    ///
    /// Nothing is overwritten: an existing hosts.nix stops init (exit 1, nothing
    /// written); any other file that exists is kept as it is, and .gitignore only
    /// gets the lines it lacks. Works in an empty folder or in an existing flake
    /// repository (its flake.nix is kept: add pve-fleet to it as docs/flake.md
    /// shows). Afterwards `pve check` passes and `pve render` writes
    /// vms/tofu/config.tf.json, secrets/.sops.yaml and vms/known_hosts.
    #[command(
        verbatim_doc_comment,
        about = "Start a fleet here: hosts.nix, hosts/vm_base/, flake.nix, .gitignore"
    )]
    Init(Lazy<init::Args>),
    /// Validate hosts.nix: every host spec, the files it points at, and the
    /// template rules.
    ///
    /// Errors fail the check (exit 1); warnings are shown and fail it only with
    /// --strict. A file that cannot be read or evaluated exits 2.
    ///
    /// A host's `checks.allow = [ "disko" ];` (or the fleet's `_checks.allow`)
    /// sets the findings of a rule or code aside, as clippy's `allow`: counted
    /// in the summary ("1 allowed"), `"allowed": true` in JSON. Syntax and
    /// evaluation errors and missing required keys cannot be allowed: without
    /// them nothing can be rendered. `--show-allowed` lists them, one line each.
    Check(Lazy<check::Args>),
    /// Write the files that follow from hosts.nix: vms/tofu/config.tf.json
    /// (OpenTofu), secrets/.sops.yaml (sops recipients) and vms/known_hosts.
    ///
    /// The same hosts.nix always renders the same bytes. Every file is rendered
    /// before any is written, so an error writes nothing; each write is atomic.
    /// With --check nothing is written: a file that differs from what hosts.nix
    /// renders is shown as a unified diff and the exit code is 1.
    Render(Lazy<render::Args>),
    /// Print hosts.nix evaluated, as JSON.
    ///
    /// The output equals `nix-instantiate --eval --strict --json hosts.nix`,
    /// except that paths print as their text relative to hosts.nix
    /// (`./hosts/web/configuration.nix`) instead of being copied into the store.
    /// Any Nix value in the supported subset prints, not only a fleet.
    Eval(Lazy<eval::Args>),
    /// Create a VM: host entry, host folder, plan, apply.
    ///
    /// Asks for the name, SSH alias, VMID (default: the next free one), a
    /// description, cores, memory, disk and storage, each with its default and
    /// checked as `pve check` would. Then writes the hosts.nix entry and
    /// `hosts/<name>/`, plans the new VM with OpenTofu, shows the plan, asks, and
    /// applies it; finally prints the `pve integrate` command. Every answer can
    /// be given as a flag; with --yes the defaults fill in the rest and nothing is
    /// asked (without a terminal, --yes is required). When a step fails, pve
    /// offers to roll back (with --yes it rolls back): hosts.nix is restored byte
    /// for byte, the host folder removed, a created VM destroyed again.
    New(Lazy<Box<new::Args>>),
    /// Integrate a new VM into the fleet: hardware config, NixOS, Tailscale,
    /// host key, publicKey in hosts.nix, secrets re-keyed. Resumable.
    Integrate(Lazy<integrate::Args>),
    /// Remove a host: its folder, entry, access to secrets, and its VM.
    ///
    /// Shows what goes (host folder, hosts.nix entry, age recipient, VM and
    /// VMID) and asks you to type the name back (or --yes). Checks on Proxmox
    /// that the VM with that VMID carries that name and refuses otherwise. Then
    /// removes the folder and entry, re-renders .sops.yaml and known_hosts,
    /// re-keys every secret (`sops updatekeys`), gives every file the host could
    /// decrypt a new data key (`sops rotate`), and destroys the VM through a
    /// plan targeted at it. Readonly VMs are refused. The steps are journaled:
    /// `--resume` continues a run that stopped.
    Remove(Lazy<remove::Args>),
    /// Update running hosts to what the flake says, with a Proxmox snapshot
    /// to fall back to.
    Deploy(Lazy<deploy::Args>),
    /// Adopt an existing Proxmox VM: write its host entry with `import = true`.
    ///
    /// Reads the VM's name and configuration from Proxmox and writes (or
    /// updates) the host entry with `proxmox = { vmid; import = true;
    /// cloneFromTemplate = false; ... }`, so the next `pve plan` / `pve apply`
    /// adopts it through an OpenTofu import block instead of creating it. A new
    /// host also gets `hosts/<name>/` from the scaffold.
    Import(Lazy<remove::ImportArgs>),
    /// Plan the changes hosts.nix asks for, and save the plan.
    ///
    /// Renders the OpenTofu config from hosts.nix into the working folder, runs
    /// `tofu init` when the provider or backend settings changed, refuses when
    /// the state is empty but the VMs already exist on Proxmox, then runs
    /// `tofu plan` and saves the plan with the hash of the config it was made
    /// from. `pve apply` applies that plan only while hosts.nix stays the same.
    /// When `_proxmox.backend` changed (say from local to pg) while a state
    /// exists, it asks before copying the state there (--yes accepts; without
    /// a terminal and without --yes it stops, exit 2). When another run holds
    /// the state lock, it says who holds it and how the lock is freed.
    Plan(Lazy<tofu::PlanArgs>),
    /// Apply the saved plan, or plan again and ask.
    ///
    /// A plan saved by `pve plan` is applied only when it was made from the
    /// current hosts.nix and the state has not changed since. Otherwise pve plans
    /// again, shows the plan and asks before applying; without a terminal it
    /// refuses unless --yes is given. Exits 1 when you answer no.
    Apply(Lazy<tofu::ApplyArgs>),
    /// Print OpenTofu's outputs (IP addresses and the like).
    ///
    /// Runs `tofu output` in the working folder; with --json its JSON is passed
    /// through unchanged. Sensitive outputs are printed in clear text with --json.
    Output(Lazy<tofu::OutputArgs>),
    /// Destroy every VM the OpenTofu state manages.
    ///
    /// Plans the destroy, shows it, and asks you to type `destroy` (or --yes),
    /// then applies exactly that plan. To remove one VM, use `pve remove`.
    /// Exits 1 when you do not confirm.
    Destroy(Lazy<tofu::DestroyArgs>),
    /// Change hosts.nix: set an attribute, add, remove or rename a host.
    ///
    /// Edits keep every other byte of the file (comments, layout, line
    /// endings). After each edit pve evaluates the file again and writes it only
    /// if exactly the asked-for value changed; writes are atomic and take the
    /// repository lock. `--dry-run` prints a unified diff instead of writing.
    /// A `set` or `add` that would make `pve check` fail is shown and refused
    /// (exit 1, the file unchanged) unless `--force`.
    Host(Lazy<host::Args>),
    /// Read or change the fleet's settings: the `_` sets of hosts.nix.
    ///
    /// KEY is a dotted path that starts with a settings set: `_proxmox.host`,
    /// `_proxmox.templateVmid`, `_sops.admins.alice`. `set` changes hosts.nix
    /// in place with the same editor as `pve host set` (every other byte stays),
    /// creating `_proxmox` or `_sops` (and any set below) when hosts.nix has
    /// none. An edit that would make `pve check` fail is shown and refused
    /// (exit 1, the file unchanged) unless --force is given.
    Config(Lazy<config::Args>),
    /// Create hosts/<NAME>/ for a host: its configuration.nix and home.nix.
    ///
    /// A VM's folder is a copy of the fleet's hosts/vm_base/ (every file in it,
    /// with each `@name@` replaced by the host's name; lines starting with
    /// `# vm_base:` are left out), or of the built-in base for VMs cloned from
    /// the NixOS template when the fleet has none. A host that hosts.nix lists
    /// without `proxmox` (a laptop or desktop), or --machine, gets the built-in
    /// base for a machine that is not a VM: systemd-boot, no guest agent.
    ///
    /// Existing files are never overwritten. Add the host to hosts.nix yourself
    /// (or use `pve new`, which does both).
    Scaffold(Lazy<scaffold::Args>),
    /// Key conversions (no ssh-to-age binary needed).
    Key(Lazy<key::Args>),
    /// Work on the fleet's sops configuration.
    Secrets(Lazy<secrets::Args>),
    /// Show the fleet as it is: state, usage, address and drift of every host.
    ///
    /// One round trip to the cluster (`pvesh get /cluster/resources`) gives
    /// every VM's node, state, uptime, CPU and memory use, tags and sizes;
    /// then, for the VMs on this node, `qm config` (on-boot) and the guest
    /// agent (the address), at most 6 at a time and 10 seconds each
    /// (`--agent-timeout`). Every
    /// value hosts.nix sets that differs live is drift; VMs in
    /// `_proxmox.vmidRange` that hosts.nix does not know are listed as "not in
    /// hosts.nix", hosts without `proxmox` as "not a VM".
    Status(Lazy<status::Args>),
    /// Proxmox operations over SSH (same as `proxmox-ops`).
    Vm(Lazy<vm::PveVm>),
    /// Print a shell completion script for pve.
    ///
    /// The script completes subcommands, flags and their values. Load it in
    /// the running shell, or save it where the shell loads completions from.
    Completions(Lazy<completions::Args>),
    /// Write pve's manual pages: pve.1 and one page per subcommand
    /// (pve-check.1, pve-host-add.1, ...). The package installs them; this
    /// command is how it makes them.
    #[command(hide = true)]
    Man(Lazy<completions::ManArgs>),
}

/// Parses the command line as `Cli::try_parse` does, defining only the
/// arguments of the command that runs (see `Lazy`). Defining all 22
/// commands' arguments was a third of the instructions of `pve --version`
/// (1.53 M; 0.99 M without) and 0.55-0.7 M of every run.
pub fn parse() -> std::result::Result<Cli, clap::Error> {
    let mut matches = lazy_command().try_get_matches()?;
    // As `try_parse`: a conversion error is shown against the whole tree.
    Cli::from_arg_matches_mut(&mut matches).map_err(|e| e.format(&mut Cli::command()))
}

/// `Cli::command()` with each command's arguments deferred until clap
/// builds that command (to parse its arguments or print its help).
fn lazy_command() -> clap::Command {
    DEFER.set(true);
    let cmd = Cli::command();
    DEFER.set(false);
    cmd
}

thread_local! {
    /// Whether `Lazy` defers: only while `lazy_command` runs.
    static DEFER: Cell<bool> = const { Cell::new(false) };
}

/// A command's arguments, defined when clap builds that command (clap's
/// `Command::defer`) if the tree is made by `lazy_command`, at once
/// otherwise.
///
/// Not deferred everywhere because a deferred command gets the global
/// `--hosts` before its own arguments instead of after them: help does not
/// show it (it sorts), but the completion scripts and manual pages list
/// arguments in that order, and they build every command anyway. So
/// `Cli::command()` (completions, man, error formatting, tests) is the
/// tree as it always was, and only parsing uses the lazy one. clap's
/// derive has `#[command(defer = true)]` too, but always defers.
#[derive(Debug)]
pub struct Lazy<T>(pub T);

impl<T: clap::Args> clap::Args for Lazy<T> {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        if DEFER.get() {
            cmd.defer(T::augment_args)
        } else {
            T::augment_args(cmd)
        }
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        if DEFER.get() {
            cmd.defer(T::augment_args_for_update)
        } else {
            T::augment_args_for_update(cmd)
        }
    }

    fn group_id() -> Option<clap::Id> {
        T::group_id()
    }
}

impl<T: FromArgMatches> FromArgMatches for Lazy<T> {
    fn from_arg_matches(matches: &clap::ArgMatches) -> std::result::Result<Self, clap::Error> {
        T::from_arg_matches(matches).map(Lazy)
    }

    fn from_arg_matches_mut(
        matches: &mut clap::ArgMatches,
    ) -> std::result::Result<Self, clap::Error> {
        T::from_arg_matches_mut(matches).map(Lazy)
    }

    fn update_from_arg_matches(
        &mut self,
        matches: &clap::ArgMatches,
    ) -> std::result::Result<(), clap::Error> {
        self.0.update_from_arg_matches(matches)
    }

    fn update_from_arg_matches_mut(
        &mut self,
        matches: &mut clap::ArgMatches,
    ) -> std::result::Result<(), clap::Error> {
        self.0.update_from_arg_matches_mut(matches)
    }
}

// The VM resource flags `pve new` and `pve host add` share. Each command
// words the help of `--vmid`, `--disk` and `--storage` for itself (with
// `mut_arg`): their defaults differ. (Not a doc comment: clap would make it
// the description of the command that flattens this, when that command
// has none of its own, as `new` has not: its description is on `Command::New`.)
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
        Command::Init(Lazy(a)) => app::init::run(&ctx, a),
        Command::Config(Lazy(a)) => app::config::run(&ctx, a),
        Command::Check(Lazy(a)) => app::check::run(&ctx, a),
        Command::Eval(Lazy(a)) => app::eval::run(&ctx, a),
        Command::Plan(Lazy(a)) => app::tofu::plan(&ctx, a),
        Command::Apply(Lazy(a)) => app::tofu::apply(&ctx, a),
        Command::Output(Lazy(a)) => app::tofu::output(&ctx, a),
        Command::Destroy(Lazy(a)) => app::tofu::destroy(&ctx, a),
        Command::Host(Lazy(a)) => app::host::run(&ctx, a),
        Command::Vm(Lazy(vm::PveVm(a))) => app::vm::run(&ctx, a),
        Command::Render(Lazy(a)) => app::render::run(&ctx, a),
        Command::Key(Lazy(a)) => app::key::run(&ctx, a),
        Command::Secrets(Lazy(a)) => app::secrets::run(&ctx, a),
        Command::Scaffold(Lazy(a)) => app::scaffold::run(&ctx, a),
        Command::Integrate(Lazy(a)) => app::integrate::run(&ctx, a),
        Command::New(Lazy(a)) => app::new::run(&ctx, *a),
        Command::Remove(Lazy(a)) => app::remove::run(&ctx, a),
        Command::Deploy(Lazy(a)) => app::deploy::run(&ctx, a),
        Command::Import(Lazy(a)) => app::import::run(&ctx, a),
        Command::Status(Lazy(a)) => app::status::run(&ctx, a),
        Command::Completions(Lazy(a)) => app::completions::run(&ctx, a),
        Command::Man(Lazy(a)) => app::completions::man(&ctx, a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every command's path in `cmd`'s tree (built), depth first; clap's
    /// own `help` commands aside.
    fn walk<'a>(
        cmd: &'a clap::Command,
        path: Vec<String>,
        out: &mut Vec<(Vec<String>, &'a clap::Command)>,
    ) {
        for sub in cmd.get_subcommands().filter(|c| c.get_name() != "help") {
            let mut p = path.clone();
            p.push(sub.get_name().to_string());
            walk(sub, p, out);
        }
        out.push((path, cmd));
    }

    /// Command lines for every command: its help three ways, usage errors
    /// (an unknown flag, missing or extra arguments, a misspelled command),
    /// and, for a command without commands of its own, its required
    /// arguments with each of its flags in turn.
    fn command_lines() -> Vec<Vec<String>> {
        let mut root = Cli::command();
        root.build();
        let mut commands = Vec::new();
        walk(&root, Vec::new(), &mut commands);
        let mut lines = Vec::new();
        for (path, cmd) in commands {
            let with = |extra: &[&str]| {
                let mut l = path.clone();
                l.extend(extra.iter().map(|s| s.to_string()));
                l
            };
            lines.extend([
                with(&[]),
                with(&["--help"]),
                with(&["-h"]),
                with(&["-V"]),
                with(&["--bogus"]),
                with(&["1", "2", "3", "4", "5", "6", "7"]),
                [&["help".to_string()], &path[..]].concat(),
                [
                    &["-f".to_string(), "x.nix".to_string()],
                    &path[..],
                    &["--help".to_string()],
                ]
                .concat(),
            ]);
            if let Some(last) = path.last() {
                let mut typo = path.clone();
                typo.pop();
                typo.push(format!("{}x", last));
                lines.push(typo);
            }
            if cmd.has_subcommands() {
                continue;
            }
            // A value clap accepts where it can (the first possible one).
            let value = |a: &clap::Arg| {
                a.get_possible_values()
                    .first()
                    .map_or("1".to_string(), |v| v.get_name().to_string())
            };
            let required: Vec<String> = cmd
                .get_positionals()
                .filter(|a| a.is_required_set())
                .map(value)
                .collect();
            lines.push(with(
                &required.iter().map(String::as_str).collect::<Vec<_>>(),
            ));
            for arg in cmd.get_arguments() {
                let Some(long) = arg.get_long() else { continue };
                if matches!(long, "help" | "version") {
                    continue;
                }
                let mut l = with(&required.iter().map(String::as_str).collect::<Vec<_>>());
                l.push(format!("--{long}"));
                if arg.get_action().takes_values() {
                    l.push(value(arg));
                }
                lines.push(l);
            }
        }
        lines
    }

    /// What clap makes of `pve ARGS` with the tree `cmd`: the parsed
    /// command line, or the error as printed (styles too) and its exit code.
    fn outcome(cmd: clap::Command, args: &[String]) -> String {
        let argv = std::iter::once("pve").chain(args.iter().map(String::as_str));
        match cmd.try_get_matches_from(argv) {
            Ok(mut m) => format!("{:?}", Cli::from_arg_matches_mut(&mut m)),
            Err(e) => format!("{:?} {}\n{}", e.kind(), e.exit_code(), e.render().ansi()),
        }
    }

    /// The tree `parse` uses defines a command's arguments only when clap
    /// builds that command; every help text, usage error and parsed
    /// command line must be what the tree built at once gives.
    #[test]
    fn the_lazy_tree_parses_and_prints_as_the_whole_tree() {
        let lines = command_lines();
        let mut parsed = 0;
        for args in &lines {
            let whole = outcome(Cli::command(), args);
            assert_eq!(
                outcome(lazy_command(), args),
                whole,
                "pve {}",
                args.join(" ")
            );
            parsed += usize::from(whole.starts_with("Ok("));
        }
        // The walk reached the nested commands, and the lines parse too.
        assert!(lines.len() > 500, "{} lines", lines.len());
        assert!(parsed > 150, "{parsed} of {} lines parse", lines.len());
    }

    /// `parse` defines only what it parses: the command that runs.
    #[test]
    fn the_lazy_tree_defines_only_the_command_that_runs() {
        let mut cmd = lazy_command();
        let m = cmd.try_get_matches_from_mut(["pve", "check", "--strict"]);
        assert!(m.is_ok());
        let arguments = |name: &str| -> Vec<String> {
            let sub = cmd.find_subcommand(name).expect("a command");
            sub.get_arguments()
                .map(|a| a.get_id().to_string())
                .collect()
        };
        assert!(arguments("check").contains(&"strict".to_string()));
        // Not defined: only the global --hosts is there, which clap gives
        // every command.
        assert_eq!(arguments("render"), ["hosts"]);
        assert_eq!(arguments("vm"), ["hosts"]);
    }

    /// clap's debug asserts (in debug builds) over both trees: `build`
    /// builds every command, deferred or not.
    #[test]
    fn clap_debug_asserts_hold_for_both_trees() {
        Cli::command().debug_assert();
        lazy_command().debug_assert();
        let mut lazy = lazy_command();
        lazy.build();
        let vm = lazy.find_subcommand("vm").expect("vm");
        let list = vm.find_subcommand("list").expect("vm list");
        assert!(list.get_arguments().any(|a| a.get_id() == "json"));
        // PveVm's part of the definition ran too.
        let examples = list
            .get_after_help()
            .map(|h| h.to_string())
            .unwrap_or_default();
        assert!(examples.contains("pve vm list --json"), "{examples}");
    }
}
