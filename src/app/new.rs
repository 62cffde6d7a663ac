//! `pve new`: the wizard (or flags + --yes), then the steps of
//! `workflow::new`, with rollback offered when a step fails.

use std::cell::RefCell;
use std::collections::BTreeSet;

use crate::cli::new::Args;
use crate::error::{exit, Result};
use crate::fleet::Loaded;
use crate::fsutil::RepoLock;
use crate::remote::proxmox::Proxmox;
use crate::report::{Prompt, Reporter};
use crate::tofu::{self, Tofu};
use crate::ui::{self, TerminalPrompt};
use crate::workflow::new::{self as wf, NewRun, NewSpec};
use crate::workflow::Journal;

use super::{Context, UsageError};

/// The wizard's questions: asked again until the answer validates.
struct Wizard<'a> {
    prompt: RefCell<&'a mut dyn Prompt>,
    report: &'a dyn Reporter,
}

impl Wizard<'_> {
    /// Asks until the answer validates (or gives up after 5 tries).
    fn ask<T: std::str::FromStr>(
        &self,
        question: &str,
        default: Option<String>,
        validate: &dyn Fn(&T) -> std::result::Result<(), String>,
    ) -> Result<T> {
        let mut prompt = self.prompt.borrow_mut();
        super::wizard::ask_until(
            &mut **prompt,
            self.report,
            "create a VM",
            question,
            default.as_deref(),
            &|a| {
                let v = a
                    .parse::<T>()
                    .map_err(|_| format!("{a:?} is not a valid answer here"))?;
                validate(&v).map(|()| v)
            },
        )
    }

    /// Asks an optional text ("-" or empty with no default: none).
    fn ask_optional(
        &self,
        question: &str,
        default: Option<String>,
        validate: &dyn Fn(&String) -> std::result::Result<(), String>,
    ) -> Result<Option<String>> {
        let v: String = self.ask(
            &format!("{question} (`-` for none)"),
            Some(default.unwrap_or_else(|| "-".into())),
            &|s: &String| if s == "-" { Ok(()) } else { validate(s) },
        )?;
        Ok((v != "-").then_some(v))
    }
}

pub fn run(ctx: &Context, args: Args) -> Result<u8> {
    // Before anything is read or contacted: every bad flag at once.
    super::flags::check_vm_flags(&args.vm)?;
    let loaded = ctx.load()?;
    let root = loaded.root_dir.clone();
    let hosts_path = loaded.file.path.clone();
    let report = super::reporter(args.json);
    let report = report.as_ref();
    let tty = ui::interactive();

    if args.resume || args.rollback {
        let name = args
            .name
            .clone()
            .ok_or_else(|| UsageError::ResumeWithoutName)?;
        if !crate::fleet::HostName::is_valid(&name) {
            return Err(UsageError::NameNotHostName { name }.into());
        }
        crate::workflow::gate::check_for_host(&loaded, wf::WORKFLOW, &name)?;
        let Some((journal, spec)) = wf::load_journal(&root, &name)? else {
            return Err(UsageError::NoStoppedNewRun { name }.into());
        };
        let lock = RepoLock::take(&root)?;
        let tofu = Tofu::new(tofu::workdir(&root)?, tofu::ApiToken::discover()?);
        let mut prompt = TerminalPrompt::new(args.yes);
        if args.rollback {
            let done = wf::rollback(
                &root,
                &hosts_path,
                &name,
                journal,
                Some((&tofu, &mut prompt)),
                report,
                &lock,
            )?;
            report_rollback(report, &done);
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
            report,
            tty,
        );
    }

    if let Some(n) = args.name.as_deref() {
        if !crate::fleet::HostName::is_valid(n) {
            // The full message comes from validate_name.
            wf::validate_name(&loaded, n).map_err(|reason| UsageError::BadFlag {
                flag: "--name",
                reason,
            })?;
        }
    }
    crate::workflow::gate::check(&loaded, wf::WORKFLOW, |_| false)?;
    if let Some(name) = args
        .name
        .as_deref()
        .filter(|n| Journal::path_for(&root, wf::WORKFLOW, n).is_file())
    {
        return Err(UsageError::NewRunStopped {
            name: name.to_string(),
        }
        .into());
    }

    // Without a terminal every answer must come from flags, and --yes.
    if !tty || args.yes {
        if args.name.is_none() {
            return Err(UsageError::NoTerminalWithoutName.into());
        }
        if !args.yes {
            let missing = missing_flags(&args);
            return Err(UsageError::NewNotConfirmed { missing }.into());
        }
    }
    // The name first: it needs no Proxmox.
    if let Some(n) = &args.name {
        wf::validate_name(&loaded, n).map_err(|reason| UsageError::BadFlag {
            flag: "--name",
            reason,
        })?;
    }
    if let Some(d) = &args.description {
        wf::validate_description(d).map_err(|reason| UsageError::BadFlag {
            flag: "--description",
            reason,
        })?;
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
    let mut prompt = TerminalPrompt::new(args.yes);
    let wizard = (tty && !args.yes).then(|| Wizard {
        prompt: RefCell::new(&mut prompt),
        report,
    });
    let mut spec = answers(&loaded, &args, &used, &storages, wizard.as_ref())?;
    spec.node = choose_node(&loaded, &args, &proxmox, report)?;
    wf::validate_spec(&loaded, &spec, Some(&used), Some(&storages), report)?;
    report.note(
        &(format!(
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
        ) + &spec
            .node
            .as_deref()
            .map(|n| format!(", node {n}"))
            .unwrap_or_default()),
    );
    let lock = RepoLock::take(&root)?;
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
        report,
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
    report: &dyn Reporter,
    tty: bool,
) -> Result<u8> {
    let mut prompt = TerminalPrompt::new(args.yes);
    let inventory = PxInventory(proxmox);
    let agent_ip = |vmid: u32| proxmox.get_ip(vmid).ok().map(|i| i.ip.to_string());
    let mut r = NewRun {
        root: root.to_path_buf(),
        hosts_path: hosts_path.to_path_buf(),
        spec: spec.clone(),
        tofu,
        prompt: &mut prompt,
        report,
        inventory: &inventory,
        agent_ip: &agent_ip,
        ip: None,
        lock,
    };
    match wf::run(&mut r, &mut journal) {
        Ok(()) => {
            journal.finish()?;
            let ip = r.ip.clone();
            // The run may have followed a VMID changed in hosts.nix.
            let spec = r.spec.clone();
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
                report.note(&format!("error: {e}\nRolling back (--yes)."));
                true
            } else if tty {
                report.note(&format!("error: {e}"));
                let a = TerminalPrompt::new(false)
                    .ask("roll back", "Roll back what pve new did so far? [Y/n]")?;
                !matches!(a.as_str(), "n" | "N" | "no")
            } else {
                false
            };
            if roll {
                let mut p = TerminalPrompt::new(true);
                match wf::rollback(
                    root,
                    hosts_path,
                    &spec.name,
                    journal,
                    Some((&tofu, &mut p)),
                    report,
                    &lock,
                ) {
                    Ok(done) => {
                        report_rollback(report, &done);
                        return Err(after_rollback(e));
                    }
                    Err(re) => {
                        report.note(&format!("error: the rollback stopped: {re}"));
                        report.note(&format!(
                            "  = help: run `pve new --name {} --rollback` to try again",
                            spec.name
                        ));
                    }
                }
            } else {
                report.note(&format!(
                    "Kept what was done. Continue with `pve new --name {0} --resume` or undo it with `pve new --name {0} --rollback`.",
                    spec.name
                ));
            }
            Err(e)
        }
    }
}

/// The error of a run that was rolled back: a lost VMID is fixed by
/// running `pve new` again (its advice to resume no longer applies).
fn after_rollback(e: crate::error::AppError) -> crate::error::AppError {
    match &e {
        crate::error::AppError::New(wf::NewError::VmidTaken { next, .. }) => {
            let help = match next {
                Some(v) => format!(
                    "everything was rolled back; run `pve new` again with `--vmid {v}` (the next free VMID), or without --vmid to take the next free one"
                ),
                None => "everything was rolled back; run `pve new` again with another --vmid, or without --vmid to take the next free one".to_string(),
            };
            e.with_help(help)
        }
        _ => e,
    }
}

fn report_rollback(report: &dyn Reporter, done: &[String]) {
    if done.is_empty() {
        report.note("Rolled back: nothing had changed.");
    } else {
        report.note(&format!("Rolled back: {}.", done.join("; ")));
    }
}

/// The flags not given (their defaults are used with --yes).
fn missing_flags(a: &Args) -> Vec<&'static str> {
    [
        ("--ssh-alias", a.ssh_alias.is_none()),
        ("--vmid", a.vm.vmid.is_none()),
        ("--description", a.description.is_none()),
        ("--cores", a.vm.cores.is_none()),
        ("--memory", a.vm.memory.is_none()),
        ("--disk", a.vm.disk.is_none()),
        ("--storage", a.vm.storage.is_none()),
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
    wizard: Option<&Wizard>,
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
        // Without a wizard, --name is required (checked before).
        None => wizard
            .ok_or(UsageError::MissingName)?
            .ask("Name", None, &|n: &String| wf::validate_name(loaded, n))?,
    };
    let pick = |flag: Option<String>,
                q: &str,
                d: String,
                v: &dyn Fn(&String) -> std::result::Result<(), String>|
     -> Result<String> {
        match flag {
            Some(x) => Ok(x),
            None => match wizard {
                Some(w) => w.ask(q, Some(d), v),
                None => Ok(d),
            },
        }
    };
    let ssh_alias = pick(a.ssh_alias.clone(), "SSH alias", name.clone(), &|s| {
        wf::validate_alias(s)
    })?;
    let vmid = match a.vm.vmid {
        Some(v) => v,
        None => match wizard {
            Some(w) => w.ask("VMID", Some(next.to_string()), &|v: &u32| {
                wf::validate_vmid(loaded, Some(used), *v)
            })?,
            None => next,
        },
    };
    let description = match &a.description {
        Some(d) => Some(d.clone()),
        None => match wizard {
            Some(w) => w.ask_optional("Purpose (description)", None, &|d| {
                wf::validate_description(d)
            })?,
            None => None,
        },
    };
    let num = |flag: Option<u32>,
               q: &str,
               d: u32,
               v: fn(u32) -> std::result::Result<(), String>|
     -> Result<u32> {
        match flag {
            Some(x) => Ok(x),
            None => match wizard {
                Some(w) => w.ask(q, Some(d.to_string()), &|x: &u32| v(*x)),
                None => Ok(d),
            },
        }
    };
    let cores = num(a.vm.cores, "Cores", wf::DEFAULT_CORES, wf::validate_cores)?;
    let memory = num(
        a.vm.memory,
        "Memory (MiB)",
        wf::DEFAULT_MEMORY,
        wf::validate_memory,
    )?;
    let disk = pick(a.vm.disk.clone(), "Disk", wf::DEFAULT_DISK.into(), &|d| {
        wf::validate_disk(d)
    })?;
    let storage = match &a.vm.storage {
        Some(s) => Some(s.clone()),
        None => match wizard {
            Some(w) => {
                let d = default_storage
                    .clone()
                    .or_else(|| storages.first().cloned())
                    .unwrap_or_else(|| "local-lvm".into());
                Some(w.ask("Storage", Some(d), &|s: &String| {
                    wf::validate_storage(s, Some(storages))
                })?)
            }
            None => None,
        },
    };
    // The default storage is implied: the entry leaves it out.
    let storage = storage.filter(|s| Some(s) != default_storage.as_ref());
    let extra = extra_attributes(loaded, a)?;
    Ok(NewSpec {
        extra,
        ssh_alias: Some(ssh_alias).filter(|s| *s != name),
        name,
        vmid,
        description,
        cores,
        memory,
        disk,
        storage,
        node: None,
    })
}

/// The node the new VM goes to (None: `_proxmox.node`, left out of the
/// entry). `--node NODE` is taken as given (a host name, one of
/// `_proxmox.nodes` when that is set); `--node auto`, or no `--node` with
/// `_proxmox.placement = "least-memory"` on a cluster of more than one
/// node, asks the cluster once and picks the online node with the most
/// free memory that a template reaches. The choice goes into hosts.nix.
fn choose_node(
    loaded: &Loaded,
    a: &Args,
    proxmox: &Proxmox,
    report: &dyn Reporter,
) -> Result<Option<String>> {
    use crate::fleet::model::PLACEMENT_LEAST_MEMORY;
    use crate::remote::proxmox::placement::least_memory_node;
    let Some(cfg) = loaded.fleet.proxmox.as_ref() else {
        return Ok(a.node.clone().filter(|n| n != "auto"));
    };
    let auto = match a.node.as_deref() {
        Some("auto") => true,
        Some(n) => {
            let known = cfg
                .nodes
                .as_ref()
                .is_none_or(|ns| ns.iter().any(|k| k == n));
            if !crate::remote::ssh::valid_host(n) || !known {
                return Err(UsageError::BadFlag {
                    flag: "--node",
                    reason: format!(
                        "{n:?} is not a node of the cluster ({}); give one of them, or `auto`",
                        cfg.nodes.as_deref().unwrap_or_default().join(", ")
                    ),
                }
                .into());
            }
            return Ok(Some(n.to_string()));
        }
        None => cfg
            .placement
            .as_ref()
            .is_some_and(|p| p.value == PLACEMENT_LEAST_MEMORY),
    };
    if !auto {
        return Ok(None);
    }
    let nodes = proxmox.node_loads()?;
    if a.node.is_none() && nodes.len() < 2 {
        // One node: nothing to choose, `_proxmox.node` it is.
        return Ok(None);
    }
    let Some(chosen) = least_memory_node(&nodes, cfg) else {
        let names: Vec<String> = nodes
            .iter()
            .map(|n| format!("{}{}", n.node, if n.online { "" } else { " (offline)" }))
            .collect();
        return Err(UsageError::BadFlag {
            flag: "--node",
            reason: format!(
                "no online node has a template to clone from (nodes: {}); add the node's template to `_proxmox.templates`, or give --node NODE",
                names.join(", ")
            ),
        }
        .into());
    };
    let free = nodes
        .iter()
        .find(|n| n.node == chosen)
        .map_or(0, |n| n.free_mem);
    report.note(&format!(
        "Placement: node {chosen} ({:.1} GiB free, the most of the online nodes with a template)",
        free as f64 / f64::from(1u32 << 30)
    ));
    Ok(Some(chosen))
}

/// What `pve new` writes besides its own answers: every attribute of
/// `_defaults` in hosts.nix (the ones the fleet's base expects of each
/// host, such as `user` and `authorizedKeys`), then --user and
/// --authorized-keys over them. The entry's own attributes are never taken
/// from `_defaults`.
fn extra_attributes(loaded: &Loaded, a: &Args) -> Result<Vec<(String, String)>> {
    const OWN: &[&str] = &[
        "configurationFile",
        "homeFile",
        "hostname",
        "sshAlias",
        "publicKey",
        "proxmox",
    ];
    let text = &loaded.file.text;
    let mut extra: Vec<(String, String)> = crate::fleet::edit::config_entries(text, DEFAULTS)
        .map_err(|e| e.located(&loaded.file.path, text))?
        .into_iter()
        .filter(|(k, _)| !OWN.contains(&k.split('.').next().unwrap_or_default()))
        .collect();
    let mut set = |key: &str, nix: String| {
        extra.retain(|(k, _)| k != key);
        extra.push((key.to_string(), nix));
    };
    if let Some(u) = &a.user {
        set("user", crate::fleet::edit::names::string_literal(u));
    }
    if let Some(keys) = &a.authorized_keys {
        crate::fleet::syntax::one_expression(keys).map_err(|why| {
            UsageError::AuthorizedKeysNotOneExpression {
                keys: keys.clone(),
                why,
            }
        })?;
        set("authorizedKeys", keys.clone());
    }
    Ok(extra)
}

/// The settings set whose attributes every new host gets.
pub const DEFAULTS: &str = "_defaults";

/// The VMIDs on Proxmox, for the state guard of the new VM.
struct PxInventory<'a>(&'a Proxmox);

impl tofu::Inventory for PxInventory<'_> {
    fn placements(&self) -> Result<std::collections::BTreeMap<i64, String>> {
        Ok(self
            .0
            .resources()?
            .into_iter()
            .map(|r| (i64::from(r.vmid), r.node))
            .collect())
    }

    /// The guest holding `vmid`, from `/cluster/resources` (its name is
    /// Proxmox's text: shown only, control characters dropped).
    fn holder(&self, vmid: i64) -> Result<Option<tofu::Holder>> {
        let Ok(vmid) = u32::try_from(vmid) else {
            return Ok(None);
        };
        let plain = |s: String| -> String { s.chars().filter(|c| !c.is_control()).collect() };
        Ok(self.0.locate(vmid)?.map(|r| tofu::Holder {
            name: r.name.map(plain),
            node: plain(r.node),
            kind: r.kind,
        }))
    }
}
