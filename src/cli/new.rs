//! `pve new`: the wizard (or flags + --yes), then the steps of
//! `workflow::new`, with rollback offered when a step fails.

use std::collections::BTreeSet;
use std::io::{BufRead, IsTerminal, Write};

use crate::error::{exit, AppError, Result};
use crate::fleet::Loaded;
use crate::fsutil::RepoLock;
use crate::remote::proxmox::Proxmox;
use crate::tofu::{self, Confirm, Tofu};
use crate::workflow::new::{self as wf, NewRun, NewSpec};
use crate::workflow::{Journal, Progress};

use super::Context;

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
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
pve new                                            the wizard\n  \
pve new --name web-2 --cores 2 --memory 4096 --disk 32G --yes\n  \
pve new --name web-2 --resume                      continue a run that stopped\n  \
pve new --name web-2 --rollback                    undo a run that stopped\n\n\
The Proxmox API token comes from PROXMOX_VE_API_TOKEN or the token file (see `pve plan --help`).")]
pub struct Args {
    /// The host's name (a DNS label starting with a letter).
    #[arg(long)]
    pub name: Option<String>,
    /// SSH alias (default: the name).
    #[arg(long)]
    pub ssh_alias: Option<String>,
    /// Proxmox VMID (default: the next free one in `_proxmox.vmidRange`).
    #[arg(long)]
    pub vmid: Option<u32>,
    /// What the VM is for (its Proxmox description).
    #[arg(long)]
    pub description: Option<String>,
    #[arg(long)]
    pub cores: Option<u32>,
    /// Memory in MiB.
    #[arg(long)]
    pub memory: Option<u32>,
    /// Disk size like `32G`.
    #[arg(long)]
    pub disk: Option<String>,
    /// Proxmox storage (default: `_proxmox.defaultStorage`).
    #[arg(long)]
    pub storage: Option<String>,
    /// Ask nothing: defaults for what is not given, apply, roll back on failure.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// One JSON object per step on stdout.
    #[arg(long)]
    pub json: bool,
    /// Continue the stopped run of --name.
    #[arg(long, conflicts_with = "rollback")]
    pub resume: bool,
    /// Undo the stopped run of --name.
    #[arg(long)]
    pub rollback: bool,
}

/// Asks on the terminal; --yes answers yes; with neither, refuses.
pub(crate) struct Prompt {
    pub yes: bool,
}

impl Confirm for Prompt {
    fn confirm(&mut self, action: &str, question: &str, must_type: Option<&str>) -> Result<bool> {
        if self.yes {
            return Ok(true);
        }
        if !interactive() {
            return Err(AppError::input(format!(
                "refusing to {action} without confirmation: there is no terminal to ask on"
            ))
            .with_help("pass --yes to go ahead from a script"));
        }
        let hint = if must_type.is_some() { "" } else { " [y/N]" };
        let answer = ask_line(&format!("{question}{hint} "))?;
        Ok(match must_type {
            Some(w) => answer == w,
            None => matches!(answer.as_str(), "y" | "Y" | "yes" | "Yes"),
        })
    }
}

pub(crate) fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// One line from stdin after a prompt on stderr (trimmed).
pub(crate) fn ask_line(prompt: &str) -> Result<String> {
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "{prompt}");
    let _ = err.flush();
    drop(err);
    let mut line = String::new();
    let n = std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| AppError::input(format!("cannot read the answer: {e}")))?;
    if n == 0 {
        return Err(AppError::input("no answer: the input ended"));
    }
    Ok(line.trim().to_string())
}

/// Asks until the answer validates (or gives up after 5 tries).
fn ask<T: std::str::FromStr>(
    question: &str,
    default: Option<String>,
    validate: &dyn Fn(&T) -> std::result::Result<(), String>,
) -> Result<T> {
    for _ in 0..5 {
        let shown = default
            .as_deref()
            .map(|d| format!(" [{d}]"))
            .unwrap_or_default();
        let mut answer = ask_line(&format!("{question}{shown}: "))?;
        if answer.is_empty() {
            match &default {
                Some(d) => answer = d.clone(),
                None => {
                    eprintln!("  an answer is needed");
                    continue;
                }
            }
        }
        let Ok(v) = answer.parse::<T>() else {
            eprintln!("  {answer:?} is not a valid answer here");
            continue;
        };
        match validate(&v) {
            Ok(()) => return Ok(v),
            Err(m) => eprintln!("  {m}"),
        }
    }
    Err(AppError::input(format!("no valid answer to {question:?}")))
}

/// Asks an optional text ("-" or empty with no default: none).
fn ask_optional(
    question: &str,
    default: Option<String>,
    validate: &dyn Fn(&String) -> std::result::Result<(), String>,
) -> Result<Option<String>> {
    let v: String = ask(
        &format!("{question} (`-` for none)"),
        Some(default.unwrap_or_else(|| "-".into())),
        &|s: &String| if s == "-" { Ok(()) } else { validate(s) },
    )?;
    Ok((v != "-").then_some(v))
}

pub fn run(ctx: &Context, args: Args) -> Result<u8> {
    let loaded = ctx.load()?;
    let root = loaded.root_dir.clone();
    let hosts_path = loaded.file.path.clone();
    let progress = if args.json {
        Progress::Json
    } else {
        Progress::Human
    };
    let tty = interactive();

    if args.resume || args.rollback {
        let name = args.name.clone().ok_or_else(|| {
            AppError::input("missing --name: which run to continue or undo")
                .with_help("e.g. `pve new --name web-2 --resume`")
        })?;
        if !crate::fleet::HostName::is_valid(&name) {
            return Err(AppError::input(format!(
                "--name: {name:?} is not a host name"
            )));
        }
        crate::workflow::gate::check_for_host(&loaded, wf::WORKFLOW, &name)?;
        let Some((journal, spec)) = wf::load_journal(&root, &name)? else {
            return Err(AppError::input(format!(
                "there is no stopped `pve new` run for `{name}`"
            )));
        };
        let lock = RepoLock::acquire(&root, crate::fleet::edit::LOCK_WAIT)?;
        let tofu = Tofu::new(tofu::workdir(&root)?, tofu::ApiToken::discover()?);
        let mut prompt = Prompt { yes: args.yes };
        if args.rollback {
            let done = wf::rollback(
                &root,
                &hosts_path,
                &name,
                journal,
                Some(&tofu),
                &mut prompt,
                &lock,
            )?;
            report_rollback(&done);
            return Ok(exit::OK);
        }
        let proxmox = Proxmox::from_loaded(&loaded)?;
        let token = wf::token()?;
        let tofu = Tofu::new(tofu::workdir(&root)?, Some(token));
        return execute(
            &root,
            &hosts_path,
            spec,
            tofu,
            &proxmox,
            journal,
            lock,
            &args,
            progress,
            tty,
        );
    }

    if let Some(n) = args.name.as_deref() {
        if !crate::fleet::HostName::is_valid(n) {
            // The full message comes from validate_name.
            wf::validate_name(&loaded, n).map_err(|m| AppError::input(format!("--name: {m}")))?;
        }
    }
    crate::workflow::gate::check(&loaded, wf::WORKFLOW, |_| false)?;
    if let Some(name) = args
        .name
        .as_deref()
        .filter(|n| Journal::path_for(&root, wf::WORKFLOW, n).is_file())
    {
        return Err(AppError::input(format!(
            "a run of `pve new` for `{name}` stopped before it finished"
        ))
        .with_help(format!(
            "continue it with `pve new --name {name} --resume`, or undo it with `pve new --name {name} --rollback`"
        )));
    }

    // Without a terminal every answer must come from flags, and --yes.
    if !tty || args.yes {
        if args.name.is_none() {
            return Err(
                AppError::input("missing --name: there is no terminal to ask on").with_help(
                    "give every answer as a flag and --yes, e.g. `pve new --name web-2 --yes`",
                ),
            );
        }
        if !args.yes {
            let missing = missing_flags(&args);
            return Err(AppError::input(
                "refusing to create a VM without confirmation: there is no terminal to ask on",
            )
            .with_help(if missing.is_empty() {
                "pass --yes to go ahead".to_string()
            } else {
                format!(
                    "pass --yes (defaults are then used for {})",
                    missing.join(", ")
                )
            }));
        }
    }
    // The name first: it needs no Proxmox.
    if let Some(n) = &args.name {
        wf::validate_name(&loaded, n).map_err(|m| AppError::input(format!("--name: {m}")))?;
    }
    if let Some(d) = &args.description {
        wf::validate_description(d).map_err(|m| AppError::input(format!("--description: {m}")))?;
    }
    let token = wf::token()?;
    let proxmox = Proxmox::from_loaded(&loaded)?;
    let used = proxmox.existing_vmids()?;
    let storages: Vec<String> = proxmox
        .storage()?
        .into_iter()
        .filter(|s| s.status == "active")
        .map(|s| s.name)
        .collect();
    let spec = answers(&loaded, &args, &used, &storages, tty && !args.yes)?;
    wf::validate_spec(&loaded, &spec, Some(&used), Some(&storages))?;
    eprintln!(
        "New host `{}`: VMID {}, {} cores, {} MiB, disk {}{}",
        spec.name,
        spec.vmid,
        spec.cores,
        spec.memory,
        spec.disk,
        spec.storage
            .as_deref()
            .map(|s| format!(" on {s}"))
            .unwrap_or_default()
    );
    let lock = RepoLock::acquire(&root, crate::fleet::edit::LOCK_WAIT)?;
    let journal = Journal::new(&root, wf::WORKFLOW, &spec.name);
    let tofu = Tofu::new(tofu::workdir(&root)?, Some(token));
    execute(
        &root,
        &hosts_path,
        spec,
        tofu,
        &proxmox,
        journal,
        lock,
        &args,
        progress,
        tty,
    )
}

#[allow(clippy::too_many_arguments)]
fn execute(
    root: &std::path::Path,
    hosts_path: &std::path::Path,
    spec: NewSpec,
    tofu: Tofu,
    proxmox: &Proxmox,
    mut journal: Journal,
    lock: RepoLock,
    args: &Args,
    progress: Progress,
    tty: bool,
) -> Result<u8> {
    let mut prompt = Prompt { yes: args.yes };
    let inventory = PxInventory(proxmox);
    let agent_ip = |vmid: u32| proxmox.get_ip(vmid).ok().map(|i| i.ip.to_string());
    let mut r = NewRun {
        root: root.to_path_buf(),
        hosts_path: hosts_path.to_path_buf(),
        spec: spec.clone(),
        tofu,
        confirm: &mut prompt,
        inventory: &inventory,
        agent_ip: &agent_ip,
        ip: None,
        lock,
    };
    match wf::run(&mut r, &mut journal, progress) {
        Ok(()) => {
            journal.finish()?;
            let ip = r.ip.clone();
            let cmd = wf::integrate_command(&spec.name, ip.as_deref(), spec.vmid);
            if !args.json {
                super::print(&format!(
                    "Created `{}` (VMID {}). Next, make it a member of the fleet:\n  {cmd}\n",
                    spec.name, spec.vmid
                ))?;
            } else {
                super::print(
                    &(serde_json::json!({"workflow": "new", "host": spec.name, "vmid": spec.vmid, "ip": ip, "next": cmd})
                        .to_string()
                        + "\n"),
                )?;
            }
            Ok(exit::OK)
        }
        Err(e) => {
            let NewRun { tofu, lock, .. } = r;
            let roll = if args.yes {
                eprintln!("error: {e}\nRolling back (--yes).");
                true
            } else if tty {
                eprintln!("error: {e}");
                let a = ask_line("Roll back what pve new did so far? [Y/n] ")?;
                !matches!(a.as_str(), "n" | "N" | "no")
            } else {
                false
            };
            if roll {
                let mut p = Prompt { yes: true };
                match wf::rollback(
                    root,
                    hosts_path,
                    &spec.name,
                    journal,
                    Some(&tofu),
                    &mut p,
                    &lock,
                ) {
                    Ok(done) => report_rollback(&done),
                    Err(re) => {
                        eprintln!("error: the rollback stopped: {re}");
                        eprintln!(
                            "  = help: run `pve new --name {} --rollback` to try again",
                            spec.name
                        );
                    }
                }
            } else {
                eprintln!(
                    "Kept what was done. Continue with `pve new --name {0} --resume` or undo it with `pve new --name {0} --rollback`.",
                    spec.name
                );
            }
            Err(e)
        }
    }
}

fn report_rollback(done: &[String]) {
    if done.is_empty() {
        eprintln!("Rolled back: nothing had changed.");
    } else {
        eprintln!("Rolled back: {}.", done.join("; "));
    }
}

/// The flags not given (their defaults are used with --yes).
fn missing_flags(a: &Args) -> Vec<&'static str> {
    [
        ("--ssh-alias", a.ssh_alias.is_none()),
        ("--vmid", a.vmid.is_none()),
        ("--description", a.description.is_none()),
        ("--cores", a.cores.is_none()),
        ("--memory", a.memory.is_none()),
        ("--disk", a.disk.is_none()),
        ("--storage", a.storage.is_none()),
    ]
    .into_iter()
    .filter_map(|(flag, missing)| missing.then_some(flag))
    .collect()
}

/// The answers: flags, else asked (wizard), else defaults.
fn answers(
    loaded: &Loaded,
    a: &Args,
    used: &BTreeSet<u32>,
    storages: &[String],
    wizard: bool,
) -> Result<NewSpec> {
    let default_storage = loaded
        .fleet
        .proxmox
        .as_ref()
        .and_then(|p| p.default_storage.as_ref())
        .map(|s| s.value.clone());
    let next = crate::remote::proxmox::next_free_vmid(&loaded.fleet, used)?;
    let name = match &a.name {
        Some(n) => n.clone(),
        None => ask("Name", None, &|n: &String| wf::validate_name(loaded, n))?,
    };
    let pick = |flag: Option<String>,
                q: &str,
                d: String,
                v: &dyn Fn(&String) -> std::result::Result<(), String>|
     -> Result<String> {
        match flag {
            Some(x) => Ok(x),
            None if wizard => ask(q, Some(d), v),
            None => Ok(d),
        }
    };
    let ssh_alias = pick(a.ssh_alias.clone(), "SSH alias", name.clone(), &|s| {
        wf::validate_alias(s)
    })?;
    let vmid = match a.vmid {
        Some(v) => v,
        None if wizard => ask("VMID", Some(next.to_string()), &|v: &u32| {
            wf::validate_vmid(loaded, Some(used), *v)
        })?,
        None => next,
    };
    let description = match &a.description {
        Some(d) => Some(d.clone()),
        None if wizard => ask_optional("Purpose (description)", None, &|d| {
            wf::validate_description(d)
        })?,
        None => None,
    };
    let num = |flag: Option<u32>,
               q: &str,
               d: u32,
               v: fn(u32) -> std::result::Result<(), String>|
     -> Result<u32> {
        match flag {
            Some(x) => Ok(x),
            None if wizard => ask(q, Some(d.to_string()), &|x: &u32| v(*x)),
            None => Ok(d),
        }
    };
    let cores = num(a.cores, "Cores", wf::DEFAULT_CORES, wf::validate_cores)?;
    let memory = num(
        a.memory,
        "Memory (MiB)",
        wf::DEFAULT_MEMORY,
        wf::validate_memory,
    )?;
    let disk = pick(a.disk.clone(), "Disk", wf::DEFAULT_DISK.into(), &|d| {
        wf::validate_disk(d)
    })?;
    let storage = match &a.storage {
        Some(s) => Some(s.clone()),
        None if wizard => {
            let d = default_storage
                .clone()
                .or_else(|| storages.first().cloned())
                .unwrap_or_else(|| "local-lvm".into());
            Some(ask("Storage", Some(d), &|s: &String| {
                wf::validate_storage(s, Some(storages))
            })?)
        }
        None => None,
    };
    // The default storage is implied: the entry leaves it out.
    let storage = storage.filter(|s| Some(s) != default_storage.as_ref());
    Ok(NewSpec {
        ssh_alias: Some(ssh_alias).filter(|s| *s != name),
        name,
        vmid,
        description,
        cores,
        memory,
        disk,
        storage,
    })
}

/// The VMIDs on Proxmox, for the state guard of the new VM.
struct PxInventory<'a>(&'a Proxmox);

impl tofu::Inventory for PxInventory<'_> {
    fn existing_vmids(&self) -> Result<BTreeSet<i64>> {
        Ok(self
            .0
            .existing_vmids()?
            .into_iter()
            .map(i64::from)
            .collect())
    }
}
