//! `pve new`: a new VM from answers (wizard or flags) to a running clone.
//!
//! The answers are validated field by field, then as a whole the way
//! `pve check` would judge the fleet with the new entry in it. The steps
//! (journaled under `vms/.journal/new-<name>.json`):
//!
//! 1. `entry`    the host entry in hosts.nix (format-preserving editor);
//! 2. `scaffold` `hosts/<name>/` from the fleet's hosts/vm_base or the built-in base (never overwriting);
//! 3. `render`   the rendered files the fleet keeps (config.tf.json, .sops.yaml, known_hosts);
//! 4. `plan`     `tofu plan -target=<the new VM>` saved with the config hash;
//! 5. `apply`    asks, then applies exactly that saved plan;
//! 6. `address`  the VM's IP from `tofu output`, else the guest agent.
//!
//! When a step fails, [`rollback`] undoes everything the journal says was
//! done: the VM destroyed again if the apply created it, hosts.nix restored
//! byte for byte, the created files and folder removed, the journal deleted.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Journal, Step};
use crate::diag::RuleId;
use crate::error::{AppError, Classify, Kind};
use crate::fleet::domain::{DiskSize, HostName, NON_SIZE_DISKS};
use crate::fleet::edit::{self, HostEntry};
use crate::fleet::{self, Loaded, SourceFile};
use crate::fsutil::{write_atomic, RepoLock};
use crate::report::{Prompt, Reporter};
use crate::tofu::{self, ApiToken, Config, PlanKind, SavedPlan, Tofu};

pub const WORKFLOW: &str = "new";

pub const DEFAULT_CORES: u32 = 2;
pub const DEFAULT_MEMORY: u32 = 2048;
pub const DEFAULT_DISK: &str = "32G";

/// Rules that look at files the workflow has not written yet (or at
/// secrets, which a new host does not change): left out of the check of
/// the answers.
const RULES_SKIPPED: &[RuleId] = &[RuleId::Files, RuleId::Configuration, RuleId::Secrets];

/// The answers: what the new host is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewSpec {
    pub name: String,
    pub ssh_alias: Option<String>,
    pub vmid: u32,
    pub description: Option<String>,
    pub cores: u32,
    pub memory: u32,
    pub disk: String,
    /// None: `_proxmox.defaultStorage` (the entry leaves it out).
    pub storage: Option<String>,
    /// The node (`proxmox.node`); None: `_proxmox.node` (left out).
    #[serde(default)]
    pub node: Option<String>,
    /// The attributes the fleet's base expects of every host (`user`,
    /// `authorizedKeys` ...): `_defaults` of hosts.nix and the flags, as
    /// (attribute path, Nix text).
    #[serde(default)]
    pub extra: Vec<(String, String)>,
}

impl NewSpec {
    /// The hosts.nix entry.
    pub fn entry(&self) -> HostEntry {
        HostEntry {
            name: self.name.clone(),
            hostname: None,
            ssh_alias: self.ssh_alias.clone(),
            authorized_keys: None,
            vmid: Some(self.vmid),
            cores: Some(self.cores),
            memory: Some(self.memory),
            disk: Some(self.disk.clone()),
            storage: self.storage.clone(),
            node: self.node.clone(),
            tags: Vec::new(),
            description: self.description.clone(),
            extra: self.extra.clone(),
        }
    }

    pub fn entry_nix(&self) -> Result<String, AppError> {
        self.entry()
            .render()
            .map_err(|e| NewError::Render(e).into())
    }

    /// The OpenTofu address of the new VM.
    pub fn address(&self) -> String {
        format!("{}.{}", tofu::guard::VM_RESOURCE, self.name)
    }
}

// ---- field validation (the wizard asks again; flags exit 2) ----

/// A new host's name: a DNS label starting with a letter (it names the
/// OpenTofu resource and the folder), not taken in hosts.nix or hosts/.
pub fn validate_name(loaded: &Loaded, name: &str) -> Result<(), String> {
    if !HostName::is_valid(name) {
        return Err(format!(
            "{name:?} is not a valid host name: use lowercase letters, digits and `-` (at most 63, not starting or ending with `-`), e.g. `web-1`"
        ));
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(format!(
            "{name:?} must start with a letter (it names the OpenTofu resource), e.g. `vm-{name}`"
        ));
    }
    if name == "vm_base" || loaded.fleet.hosts.iter().any(|h| h.name == name) {
        return Err(format!("hosts.nix already has a host named `{name}`"));
    }
    let dir = loaded.root_dir.join("hosts").join(name);
    if dir.exists() {
        return Err(format!(
            "{} already exists; pick another name or move that folder away",
            dir.display()
        ));
    }
    Ok(())
}

/// An SSH alias: letters, digits, `.`, `_`, `-`; not an option.
pub fn validate_alias(alias: &str) -> Result<(), String> {
    let ok = !alias.is_empty()
        && alias.len() <= 63
        && !alias.starts_with('-')
        && alias
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{alias:?} is not a usable SSH alias: use letters, digits, `.`, `_` and `-`"
        ))
    }
}

/// A VMID in Proxmox's range and the fleet's `vmidRange`, free in hosts.nix
/// and (when known) on Proxmox.
pub fn validate_vmid(
    loaded: &Loaded,
    on_proxmox: Option<&BTreeSet<u32>>,
    vmid: u32,
) -> Result<(), String> {
    if !(100..=999_999_999).contains(&vmid) {
        return Err(format!(
            "VMID {vmid} is out of range: Proxmox VMIDs are 100 to 999999999"
        ));
    }
    let (lo, hi) = loaded
        .fleet
        .proxmox
        .as_ref()
        .map_or(fleet::model::DEFAULT_VMID_RANGE, |p| p.vmid_range);
    if !(lo..=hi).contains(&i64::from(vmid)) {
        return Err(format!(
            "VMID {vmid} is outside `_proxmox.vmidRange` ({lo}..={hi})"
        ));
    }
    if let Some((h, _)) = loaded
        .fleet
        .vms()
        .find(|(_, s)| s.vmid.as_ref().is_some_and(|v| v.value == i64::from(vmid)))
    {
        return Err(format!(
            "VMID {vmid} is already used by `{}` in hosts.nix",
            h.name
        ));
    }
    if on_proxmox.is_some_and(|u| u.contains(&vmid)) {
        return Err(format!("VMID {vmid} already exists on Proxmox"));
    }
    Ok(())
}

pub fn validate_cores(cores: u32) -> Result<(), String> {
    let max = crate::fleet::domain::MAX_CORES;
    if (1..=max).contains(&i64::from(cores)) {
        Ok(())
    } else {
        Err(format!("cores must be between 1 and {max}"))
    }
}

pub fn validate_memory(mib: u32) -> Result<(), String> {
    use crate::fleet::domain::{MAX_MEMORY, MIN_MEMORY};
    if (MIN_MEMORY..=MAX_MEMORY).contains(&i64::from(mib)) {
        Ok(())
    } else if mib > 0 && mib <= 64 {
        Err(format!(
            "memory is in MiB: {mib} GiB is {} (at least {MIN_MEMORY})",
            mib * 1024
        ))
    } else {
        Err(format!(
            "memory is MiB between {MIN_MEMORY} and {MAX_MEMORY}"
        ))
    }
}

pub fn validate_disk(disk: &str) -> Result<(), String> {
    if disk.parse::<DiskSize>().is_ok() || NON_SIZE_DISKS.contains(&disk) {
        Ok(())
    } else {
        Err(format!(
            "disk {disk:?} is neither a size like \"32G\" / \"1T\" nor one of {}",
            NON_SIZE_DISKS.join(", ")
        ))
    }
}

/// A storage id; when the Proxmox host's storages are known, one of the
/// active ones.
pub fn validate_storage(storage: &str, active: Option<&[String]>) -> Result<(), String> {
    crate::remote::proxmox::check_storage(storage).map_err(|e| e.to_string())?;
    if let Some(list) = active {
        if !list.iter().any(|s| s == storage) {
            return Err(format!(
                "storage `{storage}` is not an active storage on Proxmox (active: {})",
                list.join(", ")
            ));
        }
    }
    Ok(())
}

pub fn validate_description(d: &str) -> Result<(), String> {
    if d.chars().any(char::is_control) {
        return Err("the description must be one line without control characters".into());
    }
    if d.len() > 200 {
        return Err("the description is longer than 200 characters".into());
    }
    Ok(())
}

/// Every field, then the whole fleet with the new entry as `pve check`
/// judges it (rules about files not yet written left out). Errors are
/// shown (`report`) with positions in the would-be hosts.nix.
pub fn validate_spec(
    loaded: &Loaded,
    spec: &NewSpec,
    on_proxmox: Option<&BTreeSet<u32>>,
    storages: Option<&[String]>,
    report: &dyn Reporter,
) -> Result<(), AppError> {
    let field = |flag: &'static str, r: Result<(), String>| {
        r.map_err(|message| NewError::Field { flag, message })
    };
    field("name", validate_name(loaded, &spec.name))?;
    if let Some(a) = &spec.ssh_alias {
        field("ssh-alias", validate_alias(a))?;
    }
    field("vmid", validate_vmid(loaded, on_proxmox, spec.vmid))?;
    if let Some(d) = &spec.description {
        field("description", validate_description(d))?;
    }
    field("cores", validate_cores(spec.cores))?;
    field("memory", validate_memory(spec.memory))?;
    field("disk", validate_disk(&spec.disk))?;
    let default_storage = loaded
        .fleet
        .proxmox
        .as_ref()
        .and_then(|p| p.default_storage.as_ref())
        .map(|s| s.value.as_str());
    match (&spec.storage, default_storage) {
        (Some(s), _) => field("storage", validate_storage(s, storages))?,
        (None, Some(d)) => {
            validate_storage(d, storages).map_err(|message| NewError::DefaultStorage { message })?
        }
        (None, None) => {}
    }
    check_with_entry(loaded, spec, report)
}

/// `pve check` on hosts.nix with the entry added, in memory: any error the
/// current file does not already have refuses the answers.
fn check_with_entry(
    loaded: &Loaded,
    spec: &NewSpec,
    report: &dyn Reporter,
) -> Result<(), AppError> {
    let nix = spec.entry_nix()?;
    let path = &loaded.file.path;
    let after = edit::add_host(&loaded.file.text, &spec.name, &nix)
        .map_err(|e| e.located(path, &loaded.file.text))?;
    let candidate = fleet::load_source(SourceFile::new(path, after))?;
    let errors = |l: &Loaded| -> Vec<crate::diag::Diagnostic> {
        let mut out: Vec<_> = l
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .cloned()
            .collect();
        for (id, rule) in crate::check::RULES {
            if !RULES_SKIPPED.contains(id) {
                out.extend(rule(l).into_iter().filter(|d| d.is_error()));
            }
        }
        out
    };
    let old: Vec<String> = errors(loaded).into_iter().map(|d| d.message).collect();
    let fresh: Vec<_> = errors(&candidate)
        .into_iter()
        .filter(|d| !old.contains(&d.message))
        .collect();
    if fresh.is_empty() {
        return Ok(());
    }
    report.block(&crate::diag::render_human(&fresh, &candidate.file));
    Err(NewError::WouldFailCheck {
        name: spec.name.clone(),
    }
    .into())
}

// ---- the run ----

/// Everything the steps need.
pub struct NewRun<'a> {
    pub root: PathBuf,
    pub hosts_path: PathBuf,
    pub spec: NewSpec,
    pub tofu: Tofu,
    pub prompt: &'a mut dyn Prompt,
    pub report: &'a dyn Reporter,
    /// The VMIDs on Proxmox, asked again right before planning.
    pub inventory: &'a dyn tofu::Inventory,
    /// The VM's IP from the guest agent (None when it cannot be asked).
    pub agent_ip: &'a dyn Fn(u32) -> Option<String>,
    pub ip: Option<String>,
    /// Held for the whole run.
    pub lock: RepoLock,
}

pub fn steps<'a>() -> Vec<Step<NewRun<'a>>> {
    vec![
        Step {
            name: "entry",
            title: "Add the host to hosts.nix",
            slow: false,
            run: step_entry,
        },
        Step {
            name: "scaffold",
            title: "Write the host folder",
            slow: false,
            run: step_scaffold,
        },
        Step {
            name: "render",
            title: "Render the generated files",
            slow: false,
            run: step_render,
        },
        Step {
            name: "plan",
            title: "Plan the new VM",
            // OpenTofu shows its own progress on the terminal.
            slow: false,
            run: step_plan,
        },
        Step {
            name: "apply",
            title: "Create the VM",
            // OpenTofu shows its own progress on the terminal.
            slow: false,
            run: step_apply,
        },
        Step {
            name: "address",
            title: "Find the VM's address",
            slow: false,
            run: step_address,
        },
    ]
}

/// Runs the steps; the journal keeps what rollback needs.
pub fn run(run: &mut NewRun, journal: &mut Journal) -> Result<(), AppError> {
    if journal.fact("spec").is_none() {
        let spec = serde_json::to_string(&run.spec).map_err(NewError::Serialize)?;
        journal.set_fact("spec", spec)?;
    }
    let report = run.report;
    super::run(run, &steps(), journal, report)
}

fn step_entry(r: &mut NewRun, j: &mut Journal) -> Result<String, AppError> {
    let nix = r.spec.entry_nix()?;
    let before = std::fs::read_to_string(&r.hosts_path).map_err(|source| NewError::ReadHosts {
        path: r.hosts_path.clone(),
        source,
    })?;
    // Recorded first: a crash between the write and the record still
    // finds the old text for rollback.
    j.set_fact("hosts_before", before.clone())?;
    let applied = edit::apply_to_file_under(&r.lock, &r.hosts_path, |t| {
        if t != before {
            return Err(edit::EditError::new(
                edit::ErrorKind::Changed,
                "hosts.nix changed while pve new was running",
            ));
        }
        edit::add_host(t, &r.spec.name, &nix)
    })?;
    j.set_fact("hosts_after", applied.after.clone())?;
    Ok(format!(
        "added `{}` to {}",
        r.spec.name,
        rel(&r.root, &r.hosts_path)
    ))
}

fn step_scaffold(r: &mut NewRun, j: &mut Journal) -> Result<String, AppError> {
    use crate::render::scaffold::{self, HostKind, Source};
    let (source, files) = scaffold::for_host(&r.root, &r.spec.name, HostKind::Vm)?;
    let dir = r.root.join("hosts").join(&r.spec.name);
    if !dir.exists() {
        j.set_fact("created_dir", rel(&r.root, &dir))?;
    }
    let mut created: Vec<String> = j
        .fact("created_files")
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or_default();
    let mut created_dirs: Vec<String> = j
        .fact("created_dirs")
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or_default();
    let mut kept = 0;
    for f in files {
        let target = r.root.join(&f.path);
        if target.symlink_metadata().is_ok() {
            kept += 1;
            continue;
        }
        // Sub-folders of the base: recorded before they are made, so a
        // rollback removes them too (deepest first).
        let mut missing: Vec<String> = target
            .ancestors()
            .skip(1)
            .take_while(|d| *d != dir && d.starts_with(&dir) && !d.exists())
            .map(|d| rel(&r.root, d))
            .collect();
        missing.reverse();
        missing.retain(|d| !created_dirs.contains(d));
        if !missing.is_empty() {
            created_dirs.extend(missing);
            j.set_fact(
                "created_dirs",
                serde_json::to_string(&created_dirs).unwrap_or_default(),
            )?;
        }
        let p = f.path.to_string_lossy().into_owned();
        if !created.contains(&p) {
            created.push(p);
            j.set_fact(
                "created_files",
                serde_json::to_string(&created).unwrap_or_default(),
            )?;
        }
        crate::fsutil::write_new(&target, f.contents.as_bytes())?;
    }
    Ok(format!(
        "{} written from {}{}",
        rel(&r.root, &dir),
        match source {
            Source::Base => scaffold::BASE_DIR,
            Source::BuiltIn => "the built-in base",
        },
        if kept > 0 {
            format!(" ({} kept)", crate::plural::plural(kept, "existing file"))
        } else {
            String::new()
        }
    ))
}

/// The files `pve render` writes follow hosts.nix: each one the fleet
/// keeps (`vms/tofu/config.tf.json`, `.sops.yaml` with the new host's
/// admins-only rule, `vms/known_hosts`) is rendered again, its old text
/// journaled for rollback, so `pve render --check` passes afterwards.
fn step_render(r: &mut NewRun, j: &mut Journal) -> Result<String, AppError> {
    let loaded = fleet::load(&r.hosts_path)?;
    let mut kept: Vec<String> = j
        .fact("rendered_files")
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or_default();
    let mut updated = Vec::new();
    for f in crate::render::all(&loaded)? {
        let target = r.root.join(&f.path);
        let Ok(old) = std::fs::read_to_string(&target) else {
            continue;
        };
        let shown = f.path.display().to_string();
        let key = format!("render_before:{shown}");
        if j.fact(&key).is_none() {
            j.set_fact(&key, old.clone())?;
            kept.push(shown.clone());
            j.set_fact(
                "rendered_files",
                serde_json::to_string(&kept).unwrap_or_default(),
            )?;
        }
        if f.contents != old {
            write_atomic(&target, f.contents.as_bytes())?;
            updated.push(shown);
        }
    }
    Ok(match (kept.is_empty(), updated.is_empty()) {
        (true, _) => "no rendered files kept in this fleet".into(),
        (false, true) => "rendered files unchanged".into(),
        (false, false) => format!("{} updated", updated.join(", ")),
    })
}

fn current_config(r: &NewRun) -> Result<Config, AppError> {
    let loaded = fleet::load(&r.hosts_path)?;
    Config::new(&crate::render::tofu::render_json(&loaded)?)
}

fn step_plan(r: &mut NewRun, j: &mut Journal) -> Result<String, AppError> {
    follow_vmid_edit(r, j)?;
    let config = current_config(r)?;
    r.tofu.prepare(&config, r.prompt, r.report)?;
    let state = r.tofu.state()?;
    let address = r.spec.address();
    if !state.addresses.contains(&address) {
        // The state guard for this one VM: its VMID must still be free.
        ensure_vmid_free(r)?;
    }
    let meta = r.tofu.plan_targeted(
        &config,
        &state,
        PlanKind::Apply,
        std::slice::from_ref(&address),
        r.report,
    )?;
    Ok(if meta.changes {
        format!("plan saved for {address}")
    } else {
        "no changes: the VM exists already".to_string()
    })
}

fn step_apply(r: &mut NewRun, j: &mut Journal) -> Result<String, AppError> {
    let config = current_config(r)?;
    let state = r.tofu.state()?;
    match r.tofu.saved_plan(&config, &state) {
        SavedPlan::Usable(meta) if !meta.changes => {
            r.tofu.discard_plan();
            return Ok("nothing to apply".into());
        }
        SavedPlan::Usable(_) => {}
        other => {
            // A resumed run, or the config changed: plan once more (and
            // show it) before asking.
            r.report.note(&format!(
                "Not using the saved plan: {}. Planning again.",
                other.reason()
            ));
            let detail = step_plan(r, j)?;
            if detail.starts_with("no changes") {
                r.tofu.discard_plan();
                return Ok("nothing to apply".into());
            }
        }
    }
    let ok = r.prompt.confirm(
        "create the VM",
        &format!(
            "Create VM {} (`{}`) as planned above?",
            r.spec.vmid, r.spec.name
        ),
        None,
    )?;
    if !ok {
        r.tofu.discard_plan();
        return Err(NewError::PlanDeclined.into());
    }
    // Asked once more right before the clone: the question above may have
    // waited long, and another `pve new` may have taken the VMID meanwhile.
    let in_state = r.tofu.state()?.addresses.contains(&r.spec.address());
    if !in_state {
        if let Err(e) = ensure_vmid_free(r) {
            r.tofu.discard_plan();
            return Err(e);
        }
    }
    // Still no reservation (Proxmox has none): a clone that loses the race
    // after this check fails on the config file, and that is read back.
    let vmid = r.spec.vmid;
    let lost = |text: &str| crate::tofu::vmid_clash::taken(text, vmid).then(|| vmid_taken(r, vmid));
    r.tofu.apply_saved_with(&lost)?;
    Ok(format!("VM {} created", r.spec.vmid))
}

/// Refuses when a guest anywhere in the cluster holds the new VM's VMID.
/// `/cluster/resources` lists what `/cluster/nextid --vmid N` checks (both
/// read the cluster's VM list), and names the holder too.
fn ensure_vmid_free(r: &NewRun) -> Result<(), AppError> {
    match r.inventory.holder(i64::from(r.spec.vmid))? {
        Some(_) => Err(vmid_taken(r, r.spec.vmid)),
        None => Ok(()),
    }
}

/// The error for a VMID another guest holds now: which one, and the next
/// free VMID to continue with (best effort: Proxmox is asked again).
fn vmid_taken(r: &NewRun, vmid: u32) -> AppError {
    let holder = r.inventory.holder(i64::from(vmid)).ok().flatten();
    let next = fleet::load(&r.hosts_path).ok().and_then(|loaded| {
        let used: BTreeSet<u32> = r
            .inventory
            .existing_vmids()
            .ok()?
            .into_iter()
            .filter_map(|v| u32::try_from(v).ok())
            .collect();
        crate::remote::proxmox::next_free_vmid(&loaded.fleet, &used).ok()
    });
    NewError::VmidTaken {
        vmid,
        name: r.spec.name.clone(),
        holder,
        next,
    }
    .into()
}

/// The VMID hosts.nix gives the new host now. After a lost race the user
/// gives it another (`pve host set NAME proxmox.vmid N`) and resumes: the
/// run follows, journals the new answer and renders the files again.
fn follow_vmid_edit(r: &mut NewRun, j: &mut Journal) -> Result<(), AppError> {
    let loaded = fleet::load(&r.hosts_path)?;
    let now = loaded
        .fleet
        .vms()
        .find(|(h, _)| h.name == r.spec.name)
        .and_then(|(_, p)| p.vmid.as_ref())
        .and_then(|v| u32::try_from(v.value).ok());
    let Some(now) = now.filter(|v| *v != r.spec.vmid) else {
        return Ok(());
    };
    r.report.note(&format!(
        "hosts.nix gives `{}` VMID {now} now (was {}); continuing with it.",
        r.spec.name, r.spec.vmid
    ));
    r.spec.vmid = now;
    let spec = serde_json::to_string(&r.spec).map_err(NewError::Serialize)?;
    j.set_fact("spec", spec)?;
    step_render(r, j)?;
    Ok(())
}

fn step_address(r: &mut NewRun, j: &mut Journal) -> Result<String, AppError> {
    let name = format!("{}_ip", r.spec.name);
    let from_tofu = r
        .tofu
        .output_reported(true, None, r.report)
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|v| v.get(&name)?.get("value")?.as_str().map(str::to_string))
        .filter(|s| s.parse::<std::net::IpAddr>().is_ok());
    let (ip, source) = match from_tofu {
        Some(ip) => (Some(ip), "tofu output"),
        None => ((r.agent_ip)(r.spec.vmid), "guest agent"),
    };
    r.ip = ip.clone();
    match ip {
        Some(ip) => {
            j.set_fact("ip", ip.clone())?;
            Ok(format!("{ip} ({source})"))
        }
        None => Ok("not known yet (the guest agent has not reported one)".into()),
    }
}

/// The command that finishes the host.
pub fn integrate_command(name: &str, ip: Option<&str>, vmid: u32) -> String {
    match ip {
        Some(ip) => format!(
            "pve integrate {} {} {vmid}",
            crate::shell::quote(name),
            crate::shell::quote(ip)
        ),
        None => format!("pve integrate {}", crate::shell::quote(name)),
    }
}

// ---- rollback ----

/// Undoes what the journal says was done, newest first: the VM (when the
/// state has it), the rendered config, the host files and folder, the
/// hosts.nix entry; then deletes the journal. Returns what it did.
pub fn rollback(
    root: &Path,
    hosts_path: &Path,
    name: &str,
    journal: Journal,
    tofu: Option<(&Tofu, &mut dyn Prompt)>,
    report: &dyn Reporter,
    lock: &RepoLock,
) -> Result<Vec<String>, AppError> {
    let mut done = Vec::new();
    // 1. hosts.nix as it was.
    if let Some(before) = journal.fact("hosts_before") {
        let now = std::fs::read_to_string(hosts_path).unwrap_or_default();
        if now != before {
            if Some(now.as_str()) == journal.fact("hosts_after") {
                write_atomic(hosts_path, before.as_bytes())?;
            } else {
                // Edited since: take out just the entry.
                edit::apply_to_file_under(lock, hosts_path, |t| {
                    if fleet::load_source(SourceFile::new(hosts_path, t.to_string()))
                        .is_ok_and(|l| l.fleet.hosts.iter().any(|h| h.name == name))
                    {
                        edit::remove_host(t, name)
                    } else {
                        Ok(t.to_string())
                    }
                })?;
            }
            done.push(format!("restored {}", rel(root, hosts_path)));
        }
    }
    // 2. The VM, if the apply created it (the config no longer has it, so a
    //    targeted plan destroys exactly it).
    let address = format!("{}.{name}", tofu::guard::VM_RESOURCE);
    if let Some((t, prompt)) = tofu {
        let in_state = t.state().map(|s| s.addresses.contains(&address));
        match in_state {
            Ok(true) => {
                let loaded = fleet::load(hosts_path)?;
                let config = Config::new(&crate::render::tofu::render_json(&loaded)?)?;
                t.prepare(&config, prompt, report)?;
                let state = t.state()?;
                let meta = t.plan_targeted(
                    &config,
                    &state,
                    PlanKind::Apply,
                    std::slice::from_ref(&address),
                    report,
                )?;
                if meta.changes {
                    t.apply_saved()?;
                    done.push(format!("destroyed {address}"));
                } else {
                    t.discard_plan();
                }
            }
            Ok(false) => t.discard_plan(),
            Err(e) => {
                if journal.is_done("apply") {
                    return Err(e);
                }
            }
        }
    }
    // 3. The rendered files (`render_before`: the config, as journals
    // before the other files were rendered too have it).
    let rendered: Vec<String> = journal
        .fact("rendered_files")
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or_default();
    let old_style = journal
        .fact("render_before")
        .map(|b| (crate::render::TOFU_PATH.to_string(), b));
    let restores = rendered
        .iter()
        .filter_map(|p| {
            journal
                .fact(&format!("render_before:{p}"))
                .map(|b| (p.clone(), b))
        })
        .chain(old_style);
    for (path, before) in restores {
        let target = root.join(&path);
        if std::fs::read_to_string(&target).ok().as_deref() != Some(before) {
            write_atomic(&target, before.as_bytes())?;
            done.push(format!("restored {path}"));
        }
    }
    // 4. The files and folder this run created.
    let created: Vec<String> = journal
        .fact("created_files")
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or_default();
    for f in &created {
        match std::fs::remove_file(root.join(f)) {
            Ok(()) => done.push(format!("removed {f}")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(NewError::RemoveFile {
                    path: PathBuf::from(f),
                    source,
                }
                .into())
            }
        }
    }
    let sub_dirs: Vec<String> = journal
        .fact("created_dirs")
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or_default();
    for d in sub_dirs.iter().rev() {
        // Only what this run wrote: a folder the user filled meanwhile stays.
        if std::fs::remove_dir(root.join(d)).is_ok() {
            done.push(format!("removed {d}/"));
        }
    }
    if let Some(dir) = journal.fact("created_dir") {
        let path = root.join(dir);
        if path.is_dir() {
            // Only what this run wrote: a folder the user filled meanwhile stays.
            std::fs::remove_dir(&path).map_err(|source| NewError::RemoveDir {
                path: PathBuf::from(dir),
                source,
            })?;
            done.push(format!("removed {dir}/"));
        }
    }
    journal.finish()?;
    Ok(done)
}

/// The journal of a stopped run, with the answers it was started with.
pub fn load_journal(root: &Path, name: &str) -> Result<Option<(Journal, NewSpec)>, AppError> {
    let Some(j) = Journal::load(root, WORKFLOW, name)? else {
        return Ok(None);
    };
    let spec: NewSpec = j
        .fact("spec")
        .and_then(|t| serde_json::from_str(t).ok())
        .ok_or_else(|| NewError::JournalWithoutSpec {
            name: name.to_string(),
        })?;
    Ok(Some((j, spec)))
}

/// The API token, or the error that names where it is looked for.
pub fn token() -> Result<ApiToken, AppError> {
    ApiToken::discover()?.ok_or_else(tofu::token::missing)
}

pub(crate) fn rel(root: &Path, p: &Path) -> String {
    p.strip_prefix(root).unwrap_or(p).display().to_string()
}

/// How long `pve new` waits for the guest agent to report an address.
pub const AGENT_WAIT: Duration = Duration::from_secs(20);

/// How `pve new` can fail on its own account.
#[derive(Debug, thiserror::Error)]
pub enum NewError {
    #[error("cannot render the host entry: {0}")]
    Render(#[source] askama::Error),
    /// A flag whose value does not pass its check.
    #[error("--{flag}: {message}")]
    Field { flag: &'static str, message: String },
    #[error("`_proxmox.defaultStorage`: {message}")]
    DefaultStorage { message: String },
    #[error("the new entry for `{name}` would not pass `pve check`; nothing was written")]
    WouldFailCheck { name: String },
    #[error("{0}")]
    Serialize(#[source] serde_json::Error),
    #[error("cannot read {}: {source}", path.display())]
    ReadHosts {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The new VM's VMID was taken on Proxmox while `pve new` ran (before
    /// the plan, right before the clone, or by a clone that won the race).
    #[error(
        "VMID {vmid} for `{name}` is taken on Proxmox now: {} holds it (another `pve new` or a person created it while this one ran); `{name}` was not created",
        holder.as_ref().map_or("another guest".to_string(), ToString::to_string)
    )]
    VmidTaken {
        vmid: u32,
        name: String,
        holder: Option<crate::tofu::Holder>,
        /// The next VMID free in the cluster and hosts.nix, when known.
        next: Option<u32>,
    },
    #[error("the plan was not applied: you declined")]
    PlanDeclined,
    /// A file this run created could not be removed on rollback.
    #[error("cannot remove {}: {source}", path.display())]
    RemoveFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The folder this run created could not be removed on rollback.
    #[error("cannot remove {}: {source}", path.display())]
    RemoveDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the journal of `pve new {name}` does not say what was asked")]
    JournalWithoutSpec { name: String },
}

impl Classify for NewError {
    fn kind(&self) -> Kind {
        match self {
            NewError::VmidTaken { .. } => Kind::External,
            _ => Kind::Input,
        }
    }
    fn help(&self) -> Option<String> {
        let help = match self {
            NewError::VmidTaken { name, next, .. } => {
                let n = crate::shell::quote(name);
                let vmid = next.map_or("<a free VMID>".to_string(), |v| v.to_string());
                return Some(format!(
                    "give `{name}` {} and continue: `pve host set {n} proxmox.vmid {vmid}`, then \
                     `pve new --name {n} --resume`; or undo this run: `pve new --name {n} --rollback`",
                    match next {
                        Some(v) => format!("the next free VMID, {v},"),
                        None => "a free VMID (`proxmox-ops next-vmid` names one)".into(),
                    }
                ));
            }
            NewError::DefaultStorage { .. } => {
                "pass --storage, or fix `_proxmox.defaultStorage` in hosts.nix"
            }
            NewError::WouldFailCheck { .. } => "change the answers named above",
            NewError::RemoveDir { .. } => {
                "it holds files pve new did not write; move them and remove it"
            }
            NewError::JournalWithoutSpec { .. } => {
                "delete it and undo by hand (`git status` shows what changed)"
            }
            NewError::Render(_)
            | NewError::Field { .. }
            | NewError::Serialize(_)
            | NewError::ReadHosts { .. }
            | NewError::PlanDeclined
            | NewError::RemoveFile { .. } => return None,
        };
        Some(help.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> Loaded {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/hosts.nix"))
            .expect("example");
        fleet::load_source(SourceFile::new(
            concat!(env!("CARGO_MANIFEST_DIR"), "/hosts.nix"),
            text,
        ))
        .expect("loads")
    }

    fn spec(name: &str) -> NewSpec {
        NewSpec {
            name: name.into(),
            ssh_alias: None,
            vmid: 150,
            description: Some("a test".into()),
            cores: 2,
            memory: 2048,
            disk: "32G".into(),
            storage: None,
            node: None,
            extra: Vec::new(),
        }
    }

    #[test]
    fn hostile_and_taken_names_are_refused() {
        let l = example();
        for bad in [
            "",
            "a b",
            "x;rm -rf /",
            "../etc",
            "-x",
            "Web",
            "1web",
            "sandbox",
            "a$(id)",
        ] {
            assert!(validate_name(&l, bad).is_err(), "{bad:?} accepted");
        }
        assert!(validate_name(&l, "web-2").is_ok());
    }

    #[test]
    fn vmids_taken_in_hosts_nix_or_on_proxmox_are_refused() {
        let l = example();
        assert!(validate_vmid(&l, None, 111)
            .expect_err("refused")
            .contains("sandbox"));
        assert!(validate_vmid(&l, None, 99).is_err());
        let used = BTreeSet::from([150]);
        assert!(validate_vmid(&l, Some(&used), 150)
            .expect_err("refused")
            .contains("Proxmox"));
        assert!(validate_vmid(&l, Some(&used), 151).is_ok());
    }

    #[test]
    fn fields_follow_the_check_rules() {
        assert!(validate_memory(8).expect_err("refused").contains("8192"));
        assert!(validate_memory(4096).is_ok());
        assert!(validate_cores(0).is_err());
        assert!(validate_disk("64").is_err() && validate_disk("64G").is_ok());
        assert!(validate_disk("passthrough").is_ok());
        assert!(validate_alias("-oProxyCommand=x").is_err());
        assert!(validate_storage("local-lvm", Some(&["local".into()])).is_err());
        assert!(validate_description("two\nlines").is_err());
    }

    #[test]
    fn a_good_spec_passes_the_whole_fleet_check() {
        let l = example();
        validate_spec(&l, &spec("web-2"), None, None, &crate::report::Silent).expect("valid");
        let mut s = spec("web-2");
        s.vmid = 104; // doc2's
        assert!(validate_spec(&l, &s, None, None, &crate::report::Silent).is_err());
    }

    #[test]
    fn the_integrate_command_quotes_and_drops_the_unknown_ip() {
        assert_eq!(
            integrate_command("web-2", Some("192.0.2.9"), 150),
            "pve integrate web-2 192.0.2.9 150"
        );
        assert_eq!(integrate_command("web-2", None, 150), "pve integrate web-2");
    }
}
