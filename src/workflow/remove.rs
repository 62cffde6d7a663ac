//! `pve remove <name>`: a host out of the fleet, its secrets out of its
//! reach, its VM destroyed.
//!
//! [`preview`] says what goes and refuses readonly VMs before anything
//! happens; the steps (journaled under `vms/.journal/remove-<name>.json`,
//! so `--resume` continues where a run stopped) are:
//!
//! 1. `check-vm`  the VM with that VMID on Proxmox carries the expected name
//!    (refused on a mismatch: nothing has changed yet);
//! 2. `folder`    `hosts/<name>/` removed;
//! 3. `entry`     the hosts.nix entry removed (format-preserving editor);
//! 4. `render`    `.sops.yaml`, known_hosts and the OpenTofu config re-rendered;
//! 5. `rekey`     `sops updatekeys` on every secret file;
//! 6. `rotate`    a new data key for every file the host could decrypt
//!    (updatekeys keeps the data key, which a removed host may have kept);
//! 7. `destroy`   a plan targeted at the VM (the config no longer has it,
//!    so OpenTofu plans its destroy), then that saved plan applied.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::new::rel;
use super::{Journal, Step};
use crate::error::{AppError, Classify, Kind};
use crate::fleet::{self, edit, Loaded};
use crate::fsutil::{write_atomic, RepoLock};
use crate::remote::proxmox::Proxmox;
use crate::report::{Prompt, Reporter};
use crate::secrets::config::ConfigError;
use crate::secrets::{self, rekey, sops::Sops, SopsConfig};
use crate::tofu::{self, Config, PlanKind, Tofu};

pub const WORKFLOW: &str = "remove";

/// What goes, worked out before anything changes (and kept in the journal).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removal {
    pub name: String,
    /// The host's folder (relative to the fleet root): the folder of its
    /// `configurationFile` when that is a folder right under `hosts/`, else
    /// `hosts/<name>`; only when it exists and no other host uses it.
    pub folder: Option<String>,
    /// A folder left in place because other hosts use it too, and who.
    #[serde(default)]
    pub folder_kept: Option<(String, Vec<String>)>,
    /// The host's own secrets folder (`secrets/hosts/<name>`, next to
    /// `.sops.yaml`) when it exists: it served this host only, and once the
    /// host's rule is gone the catch-all rule would hand it to every host.
    #[serde(default)]
    pub host_secrets: Option<String>,
    pub vmid: Option<u32>,
    /// The name the VM must carry on Proxmox.
    pub vm_name: String,
    /// The host's age recipient (from its publicKey).
    pub recipient: Option<String>,
    /// `.sops.yaml` (relative), when the fleet has one.
    pub sops_yaml: Option<String>,
    /// Secret files the host can decrypt now (relative): rotated afterwards.
    pub readable: Vec<String>,
}

impl Removal {
    pub fn address(&self) -> String {
        format!("{}.{}", tofu::guard::VM_RESOURCE, self.name)
    }

    /// The summary shown before asking.
    pub fn describe(&self) -> String {
        let mut s = format!("Removing `{}` takes away:\n", self.name);
        s.push_str("  - its entry in hosts.nix\n");
        match (&self.folder, &self.folder_kept) {
            (Some(f), _) => s.push_str(&format!("  - the host folder {f}/\n")),
            (None, Some((f, users))) => s.push_str(&format!(
                "  - (the folder {f}/ stays: {} use(s) it too)\n",
                users.join(", ")
            )),
            (None, None) => s.push_str("  - (no host folder)\n"),
        }
        if let Some(d) = &self.host_secrets {
            s.push_str(&format!(
                "  - its own secrets folder {d}/ (it stays in git history)\n"
            ));
        }
        match &self.recipient {
            Some(r) => s.push_str(&format!(
                "  - its age recipient {r} from .sops.yaml; secrets are re-keyed without it\n"
            )),
            None => {
                s.push_str("  - (no age recipient: it can decrypt no secret, nothing to revoke)\n")
            }
        }
        if !self.readable.is_empty() {
            s.push_str(&format!(
                "  - a new data key for the {} it could decrypt: {}\n",
                crate::plural::plural(self.readable.len(), "secret file"),
                self.readable.join(", ")
            ));
        }
        match self.vmid {
            Some(v) => s.push_str(&format!(
                "  - the VM {v} (`{}`) on Proxmox, with its disks (OpenTofu destroy)\n",
                self.vm_name
            )),
            None => s.push_str("  - (not a VM: nothing on Proxmox)\n"),
        }
        s
    }
}

/// What `pve remove <name>` would do; refuses an unknown host or a
/// readonly VM (exit 2) before anything happens.
pub fn preview(loaded: &Loaded, name: &str) -> Result<Removal, AppError> {
    let Some(host) = loaded.fleet.hosts.iter().find(|h| h.name == name) else {
        let names: Vec<&str> = loaded.fleet.hosts.iter().map(|h| h.name.as_str()).collect();
        return Err(RemoveError::UnknownHost {
            name: name.to_string(),
            suggestion: crate::diag::did_you_mean(name, names.iter().copied())
                .map(|s| s.to_string()),
        }
        .into());
    };
    if named_in_sops_rules(loaded, name) {
        return Err(RemoveError::NamedInSopsRules {
            name: name.to_string(),
        }
        .into());
    }
    let spec = host.proxmox.as_ref();
    if spec.is_some_and(|s| s.readonly) {
        return Err(RemoveError::Readonly {
            name: name.to_string(),
        }
        .into());
    }
    let vmid = match spec.and_then(|s| s.vmid.as_ref()) {
        Some(v) => Some(u32::try_from(v.value).map_err(|_| RemoveError::NotAVmid {
            name: name.to_string(),
            value: v.value,
        })?),
        None => None,
    };
    let vm_name = spec
        .and_then(|s| s.name.as_ref())
        .map_or_else(|| host.name.clone(), |n| n.value.clone());
    let recipient = host
        .public_key
        .as_ref()
        .and_then(|k| crate::keys::ssh_to_age(&k.value).ok());
    let root = &loaded.root_dir;
    let (folder, folder_kept) = host_folder(loaded, host);
    let sops_path = crate::render::sops::config_path(loaded)
        .ok()
        .map(|p| root.join(p))
        .filter(|p| p.is_file());
    let host_secrets = sops_path
        .as_ref()
        .and_then(|p| p.parent())
        .map(|d| d.join("hosts").join(name))
        .filter(|d| d.is_dir());
    let readable = match (&sops_path, &recipient) {
        (Some(p), Some(r)) => {
            let cfg = SopsConfig::load(p).map_err(RemoveError::SopsConfig)?;
            let readable: Vec<String> = secrets::files_readable_by(&cfg, r)
                .iter()
                .filter(|f| host_secrets.as_ref().is_none_or(|d| !f.starts_with(d)))
                .map(|f| rel(root, f))
                .collect();
            refuse_unmanaged(loaded, name, &cfg, r, &readable)?;
            readable
        }
        _ => Vec::new(),
    };
    // A host no rule gives secrets to and no file lists (`secrets = false`,
    // a Home Manager-only host) has nothing to revoke: claim nothing.
    let recipient = recipient.filter(|r| {
        !readable.is_empty() || crate::secrets::listed_in_rules(sops_path.as_deref(), r)
    });
    Ok(Removal {
        name: name.to_string(),
        folder: folder.map(|f| rel(root, &f)),
        folder_kept: folder_kept.map(|(f, users)| (rel(root, &f), users)),
        host_secrets: host_secrets.map(|d| rel(root, &d)),
        vmid,
        vm_name,
        recipient,
        sops_yaml: sops_path.map(|p| rel(root, &p)),
        readable,
    })
}

/// Whether a `hosts` list of `_sops.rules` names the host.
fn named_in_sops_rules(loaded: &Loaded, name: &str) -> bool {
    let Some(rules) = loaded.fleet.sops.rules.as_ref().and_then(|v| v.as_list()) else {
        return false;
    };
    rules.iter().any(|rule| {
        rule.as_attrs()
            .and_then(|a| a.get("hosts"))
            .and_then(|h| h.value.as_list())
            .is_some_and(|hosts| hosts.iter().any(|h| h.as_str() == Some(name)))
    })
}

/// Without `_sops` in hosts.nix, `pve` does not write `.sops.yaml`: the
/// host's key would stay in its rules, and re-keying against them would
/// revoke nothing. Refuses (exit 1) rather than claim it did.
fn refuse_unmanaged(
    loaded: &Loaded,
    name: &str,
    cfg: &SopsConfig,
    recipient: &str,
    readable: &[String],
) -> Result<(), AppError> {
    let in_rules = cfg
        .rules
        .iter()
        .any(|r| r.recipients().any(|x| x == recipient));
    if loaded.fleet.sops.span.is_some() || (!in_rules && readable.is_empty()) {
        return Ok(());
    }
    let shown = rel(&loaded.root_dir, &cfg.path);
    Err(RemoveError::Unmanaged {
        sops_yaml: PathBuf::from(shown),
        name: name.to_string(),
        recipient: recipient.to_string(),
        readable: readable.len(),
    }
    .into())
}

/// Everything the steps need.
pub struct RemoveRun<'a> {
    pub root: PathBuf,
    pub hosts_path: PathBuf,
    pub removal: Removal,
    /// None when the host is not a VM.
    pub proxmox: Option<&'a Proxmox>,
    pub tofu: Option<Tofu>,
    pub sops: Option<Sops>,
    pub lock: RepoLock,
    pub prompt: &'a mut dyn Prompt,
    pub report: &'a dyn Reporter,
    /// What the run has to say at the end (rotation, a VM left alone).
    pub notes: Vec<String>,
}

pub fn steps<'a>() -> Vec<Step<RemoveRun<'a>>> {
    vec![
        Step {
            name: "check-vm",
            title: "Check the VM on Proxmox",
            slow: false,
            run: step_check_vm,
        },
        Step {
            name: "folder",
            title: "Remove the host's folders",
            slow: false,
            run: step_folder,
        },
        Step {
            name: "entry",
            title: "Remove the hosts.nix entry",
            slow: false,
            run: step_entry,
        },
        Step {
            name: "render",
            title: "Re-render .sops.yaml and known_hosts",
            slow: false,
            run: step_render,
        },
        Step {
            name: "rekey",
            title: "Re-key secrets (sops updatekeys)",
            slow: true,
            run: step_rekey,
        },
        Step {
            name: "rotate",
            title: "Rotate data keys the host could read",
            slow: true,
            run: step_rotate,
        },
        Step {
            name: "destroy",
            title: "Destroy the VM (OpenTofu)",
            // OpenTofu shows its own progress on the terminal.
            slow: false,
            run: step_destroy,
        },
    ]
}

/// Runs the steps, keeping what was decided up front in the journal.
pub fn run(r: &mut RemoveRun, journal: &mut Journal) -> Result<(), AppError> {
    if journal.fact("removal").is_none() {
        let text = serde_json::to_string(&r.removal).map_err(RemoveError::Serialize)?;
        journal.set_fact("removal", text)?;
    }
    let report = r.report;
    super::run(r, &steps(), journal, report)
}

/// The journal of a stopped run and what it was removing.
pub fn load_journal(root: &Path, name: &str) -> Result<Option<(Journal, Removal)>, AppError> {
    let Some(j) = Journal::load(root, WORKFLOW, name)? else {
        return Ok(None);
    };
    let removal: Removal = j
        .fact("removal")
        .and_then(|t| serde_json::from_str(t).ok())
        .ok_or_else(|| RemoveError::JournalIncomplete {
            name: name.to_string(),
        })?;
    if removal.name != name {
        return Err(RemoveError::JournalOfOtherHost {
            name: name.to_string(),
            other: removal.name,
        }
        .into());
    }
    Ok(Some((j, removal)))
}

fn step_check_vm(r: &mut RemoveRun, j: &mut Journal) -> Result<String, AppError> {
    let (Some(vmid), Some(px)) = (r.removal.vmid, r.proxmox) else {
        return Ok("not a VM".into());
    };
    px.settings().ensure_writable(vmid, "remove")?;
    // Asked of the cluster, and of the node that holds the VM.
    let Some(found) = px.locate(vmid)? else {
        j.set_fact("vm_absent", "1")?;
        return Ok(format!("VM {vmid} is not on Proxmox (already gone)"));
    };
    let actual = px.vm_name_on(vmid, &found.node)?;
    if actual != r.removal.vm_name {
        return Err(RemoveError::VmNameMismatch {
            vmid,
            actual,
            expected: r.removal.vm_name.clone(),
            name: r.removal.name.clone(),
        }
        .into());
    }
    Ok(format!("VM {vmid} is `{actual}`"))
}

/// The folder `pve remove` takes away with the host (and, when another
/// host uses it too, the folder it keeps with those hosts' names): the
/// folder of the host's `configurationFile` when it sits right under
/// `hosts/` (whatever its name), else `hosts/<name>`; never `hosts/vm_base`.
fn host_folder(
    loaded: &Loaded,
    host: &crate::fleet::model::Host,
) -> (Option<PathBuf>, Option<(PathBuf, Vec<String>)>) {
    let hosts_dir = loaded.root_dir.join("hosts");
    let from_config = host
        .configuration_file
        .as_ref()
        .and_then(|f| f.value.parent())
        .filter(|d| d.parent() == Some(hosts_dir.as_path()))
        .map(Path::to_path_buf);
    let dir = from_config.unwrap_or_else(|| hosts_dir.join(&host.name));
    let base = dir.file_name().is_some_and(|n| n == "vm_base");
    if base || !dir.is_dir() {
        return (None, None);
    }
    let users: Vec<String> = loaded
        .fleet
        .hosts
        .iter()
        .filter(|h| h.name != host.name)
        .filter(|h| {
            [&h.configuration_file, &h.home_file]
                .into_iter()
                .flatten()
                .any(|f| f.value.starts_with(&dir))
        })
        .map(|h| h.name.clone())
        .collect();
    if users.is_empty() {
        (Some(dir), None)
    } else {
        (None, Some((dir, users)))
    }
}

fn step_folder(r: &mut RemoveRun, _j: &mut Journal) -> Result<String, AppError> {
    crate::remote::proxmox::check_name(&r.removal.name)?;
    let mut dirs = Vec::new();
    if let Some(f) = &r.removal.folder {
        // The folder may be named otherwise than the host: checked below
        // to be a plain folder right under the fleet's hosts/.
        let dir = r.root.join(f);
        let own_name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        dirs.push((dir, own_name));
    }
    if let Some(d) = &r.removal.host_secrets {
        dirs.push((r.root.join(d), r.removal.name.clone()));
    }
    let mut removed = Vec::new();
    for (dir, expected) in dirs.iter().filter(|(d, _)| d.symlink_metadata().is_ok()) {
        ensure_host_folder(&r.root, dir, expected)?;
        std::fs::remove_dir_all(dir).map_err(|source| RemoveError::RemoveFolder {
            path: dir.clone(),
            source,
        })?;
        removed.push(format!("{}/", rel(&r.root, dir)));
    }
    Ok(if removed.is_empty() {
        "no host folder".into()
    } else {
        format!("removed {}", removed.join(", "))
    })
}

/// Only a real folder named after the host, directly inside a `hosts/`
/// folder of the fleet (`hosts/<name>`, `secrets/hosts/<name>`), is ever
/// removed: never a symlink, never `..`, never anything outside the fleet.
fn ensure_host_folder(root: &Path, dir: &Path, name: &str) -> Result<(), RemoveError> {
    let refuse = |why: &str| RemoveError::NotAHostFolder {
        path: dir.to_path_buf(),
        why: why.to_string(),
    };
    let meta = dir.symlink_metadata().map_err(|e| refuse(&e.to_string()))?;
    if !meta.is_dir() {
        return Err(refuse("it is not a plain folder (a symlink or a file)"));
    }
    let root = root
        .canonicalize()
        .map_err(|e| refuse(&format!("the fleet folder cannot be resolved: {e}")))?;
    let parent = dir
        .parent()
        .and_then(|p| p.canonicalize().ok())
        .ok_or_else(|| refuse("its parent folder cannot be resolved"))?;
    let named = dir.file_name().and_then(|n| n.to_str()) == Some(name);
    let in_hosts = parent.file_name().and_then(|n| n.to_str()) == Some("hosts");
    if !named || !in_hosts || !parent.starts_with(&root) || parent == root {
        return Err(refuse("it is not a host folder inside the fleet"));
    }
    Ok(())
}

fn step_entry(r: &mut RemoveRun, _j: &mut Journal) -> Result<String, AppError> {
    let loaded = fleet::load(&r.hosts_path)?;
    if !loaded.fleet.hosts.iter().any(|h| h.name == r.removal.name) {
        return Ok("already gone".into());
    }
    let name = r.removal.name.clone();
    edit::apply_to_file_under(&r.lock, &r.hosts_path, |t| edit::remove_host(t, &name))?;
    Ok(format!("removed `{name}`"))
}

fn step_render(r: &mut RemoveRun, _j: &mut Journal) -> Result<String, AppError> {
    let loaded = fleet::load(&r.hosts_path)?;
    let files = crate::render::all(&loaded)?;
    let mut changed = Vec::new();
    for f in files {
        let target = r.root.join(&f.path);
        if std::fs::read(&target).ok().as_deref() == Some(f.contents.as_bytes()) {
            continue;
        }
        write_atomic(&target, f.contents.as_bytes())?;
        changed.push(f.path.display().to_string());
    }
    Ok(if changed.is_empty() {
        "nothing changed".into()
    } else {
        format!("updated {}", changed.join(", "))
    })
}

fn sops_config(r: &RemoveRun) -> Result<Option<SopsConfig>, AppError> {
    let Some(rel) = &r.removal.sops_yaml else {
        return Ok(None);
    };
    SopsConfig::load(&r.root.join(rel))
        .map(Some)
        .map_err(|e| RemoveError::SopsConfig(e).into())
}

fn step_rekey(r: &mut RemoveRun, _j: &mut Journal) -> Result<String, AppError> {
    let (Some(cfg), Some(sops)) = (sops_config(r)?, r.sops.as_ref()) else {
        return Ok("no .sops.yaml: no secrets".into());
    };
    if let Some(key) = &r.removal.recipient {
        if cfg
            .rules
            .iter()
            .any(|rule| rule.recipients().any(|x| x == key))
        {
            return Err(RemoveError::StillARecipient {
                sops_yaml: PathBuf::from(rel(&r.root, &cfg.path)),
                name: r.removal.name.clone(),
                key: key.clone(),
            }
            .into());
        }
    }
    let files = secrets::secret_files(&cfg);
    let report = sops.updatekeys(&files);
    let summary = report.summary("re-keyed", &r.root);
    if !report.is_success() {
        r.report.block(&summary);
        return Err(RemoveError::RekeyFailed {
            failed: report.failed.len(),
            total: files.len(),
        }
        .into());
    }
    let problems = rekey::verify_current(&cfg, &files);
    if !problems.is_empty() {
        return Err(problems_error(r, "re-keyed", &problems));
    }
    Ok(summary.lines().next().unwrap_or_default().to_string())
}

fn problems_error(r: &RemoveRun, what: &'static str, problems: &rekey::Problems) -> AppError {
    let list: Vec<String> = problems
        .iter()
        .map(|(f, why)| format!("  {} {why}", rel(&r.root, f)))
        .collect();
    RemoveError::NotAsRequired {
        what,
        problems: list,
    }
    .into()
}

fn step_rotate(r: &mut RemoveRun, _j: &mut Journal) -> Result<String, AppError> {
    let Some(sops) = r.sops.as_ref() else {
        return Ok("no secrets".into());
    };
    if r.removal.readable.is_empty() {
        return Ok("the host could decrypt no secret file".into());
    }
    let files: Vec<PathBuf> = r
        .removal
        .readable
        .iter()
        .map(|f| r.root.join(f))
        .filter(|f| f.is_file())
        .collect();
    let before = rekey::snapshot(&files);
    let report = sops.rotate(&files);
    let summary = report.summary("rotated", &r.root);
    if !report.is_success() {
        r.report.block(&summary);
        return Err(RemoveError::RotateFailed {
            failed: report.failed.len(),
            total: files.len(),
        }
        .into());
    }
    // "Revoked" only once checked: the key is in no rotated file's
    // metadata and no value is still encrypted with the old data key.
    let revoked: Vec<String> = r.removal.recipient.iter().cloned().collect();
    let problems = rekey::verify_revoked(&files, &revoked, &before);
    if !problems.is_empty() {
        return Err(problems_error(r, "revoked", &problems));
    }
    r.notes.push(format!(
        "`{}` could decrypt {}; each got a new data key (sops rotate) and no longer lists its key (both checked in the files), so a copy the host kept no longer opens them: {}",
        r.removal.name,
        crate::plural::plural(report.ok.len(), "secret file"),
        r.removal.readable.join(", ")
    ));
    Ok(format!(
        "new data key for {}",
        crate::plural::plural(report.ok.len(), "file")
    ))
}

fn step_destroy(r: &mut RemoveRun, j: &mut Journal) -> Result<String, AppError> {
    let Some(vmid) = r.removal.vmid else {
        return Ok("not a VM".into());
    };
    let Some(t) = r.tofu.as_ref() else {
        return Ok("no OpenTofu".into());
    };
    let address = r.removal.address();
    let loaded = fleet::load(&r.hosts_path)?;
    let config = Config::new(&crate::render::tofu::render_json(&loaded)?)?;
    if config
        .managed_vms()
        .iter()
        .any(|v| v.name == r.removal.name)
    {
        return Err(RemoveError::StillConfigured {
            name: r.removal.name.clone(),
        }
        .into());
    }
    t.prepare(&config, r.prompt, r.report)?;
    let state = t.state()?;
    if !state.addresses.contains(&address) {
        let msg = if j.fact("vm_absent").is_some() {
            format!("VM {vmid} was already gone")
        } else {
            r.notes.push(format!(
                "VM {vmid} is not in the OpenTofu state, so it was left on Proxmox; `proxmox-ops destroy {vmid} {}` removes it",
                r.removal.vm_name
            ));
            format!("{address} is not in the OpenTofu state")
        };
        return Ok(msg);
    }
    let meta = t.plan_targeted(
        &config,
        &state,
        PlanKind::Apply,
        std::slice::from_ref(&address),
        r.report,
    )?;
    if !meta.changes {
        t.discard_plan();
        return Ok("nothing to destroy".into());
    }
    t.apply_saved()?;
    Ok(format!("VM {vmid} destroyed"))
}

/// How `pve remove` can fail on its own account.
#[derive(Debug, thiserror::Error)]
pub enum RemoveError {
    #[error("hosts.nix has no host named `{name}`")]
    UnknownHost {
        name: String,
        /// A host of the fleet with a close name.
        suggestion: Option<String>,
    },
    #[error("`_sops.rules` in hosts.nix names `{name}`: once `{name}` is gone, hosts.nix could not be rendered and the removal would stop half-way. Nothing was changed.")]
    NamedInSopsRules { name: String },
    #[error("`{name}` is a readonly VM; refusing to remove it")]
    Readonly { name: String },
    #[error("`{name}.proxmox.vmid` {value} is not a VMID")]
    NotAVmid { name: String, value: i64 },
    #[error(transparent)]
    SopsConfig(ConfigError),
    /// Without `_sops` the host's key cannot be taken out of `.sops.yaml`.
    #[error("hosts.nix has no `_sops`, so pve does not write {} and cannot take `{name}`'s age key ({recipient}) out of it: `{name}` would still decrypt {} after the removal. Nothing was changed.", sops_yaml.display(), crate::plural::plural(*.readable, "secret file"))]
    Unmanaged {
        sops_yaml: PathBuf,
        name: String,
        recipient: String,
        /// How many secret files the host's key can read.
        readable: usize,
    },
    #[error("{0}")]
    Serialize(#[source] serde_json::Error),
    #[error("the journal of `pve remove {name}` is incomplete")]
    JournalIncomplete { name: String },
    #[error("the journal of `pve remove {name}` is about `{other}`")]
    JournalOfOtherHost { name: String, other: String },
    #[error(
        "VM {vmid} on Proxmox is named `{actual}`, not `{expected}`; refusing to remove `{name}`"
    )]
    VmNameMismatch {
        vmid: u32,
        actual: String,
        expected: String,
        name: String,
    },
    #[error("cannot remove {}: {source}", path.display())]
    RemoveFolder {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("refusing to remove {}: {why}", path.display())]
    NotAHostFolder { path: PathBuf, why: String },
    #[error("{} still gives `{name}`'s age recipient {key}: re-keying would keep it", sops_yaml.display())]
    StillARecipient {
        sops_yaml: PathBuf,
        name: String,
        key: String,
    },
    #[error("{failed} of {} could not be re-keyed (listed above)", crate::plural::plural(*.total, "secret file"))]
    RekeyFailed { failed: usize, total: usize },
    #[error("sops reported success, but {} not {what} as they must be:\n{}", crate::plural::plural_of(problems.len(), "secret file is", "secret files are"), problems.join("\n"))]
    NotAsRequired {
        /// "re-keyed" or "revoked".
        what: &'static str,
        /// One line per file: the file and what is wrong with it.
        problems: Vec<String>,
    },
    #[error("{failed} of {total} data keys could not be rotated (listed above)")]
    RotateFailed { failed: usize, total: usize },
    #[error("the OpenTofu config still has `{name}`; not destroying it")]
    StillConfigured { name: String },
}

impl Classify for RemoveError {
    fn kind(&self) -> Kind {
        match self {
            RemoveError::NamedInSopsRules { .. }
            | RemoveError::Unmanaged { .. }
            | RemoveError::StillARecipient { .. } => Kind::Refused,
            RemoveError::RekeyFailed { .. }
            | RemoveError::NotAsRequired { .. }
            | RemoveError::RotateFailed { .. } => Kind::External,
            RemoveError::UnknownHost { .. }
            | RemoveError::Readonly { .. }
            | RemoveError::NotAVmid { .. }
            | RemoveError::SopsConfig(_)
            | RemoveError::Serialize(_)
            | RemoveError::JournalIncomplete { .. }
            | RemoveError::JournalOfOtherHost { .. }
            | RemoveError::VmNameMismatch { .. }
            | RemoveError::RemoveFolder { .. }
            | RemoveError::NotAHostFolder { .. }
            | RemoveError::StillConfigured { .. } => Kind::Input,
        }
    }
    fn help(&self) -> Option<String> {
        let help = match self {
            RemoveError::UnknownHost { suggestion, .. } => {
                return suggestion.as_ref().map(|s| format!("did you mean `{s}`?"))
            }
            RemoveError::NamedInSopsRules { name } => return Some(format!(
                "take `\"{name}\"` out of the `hosts` lists of `_sops.rules`, then run `pve remove {name}` again (the files it could read are still found from their own metadata and get a new data key)"
            )),
            RemoveError::Readonly { .. } => "it is marked `proxmox.readonly = true` in hosts.nix; change that first if you really mean it",
            RemoveError::Unmanaged { sops_yaml, name, .. } => {
                let shown = sops_yaml.display();
                return Some(format!(
                    "run `pve secrets adopt` (it writes the `_sops` block that renders {shown} again; or add `_sops` by hand and check it with `pve render --check`), then run `pve remove {name}` again; or take the key out of {shown} yourself and run `sops updatekeys` and `sops rotate -i` on each file it could read"
                ));
            }
            RemoveError::JournalIncomplete { .. } | RemoveError::JournalOfOtherHost { .. } => {
                "delete it and run `pve remove` again"
            }
            RemoveError::VmNameMismatch { .. } => {
                "check the VMID in hosts.nix against `proxmox-ops list`; nothing was changed"
            }
            RemoveError::NotAHostFolder { .. } => "only `hosts/<name>/` and `<secrets>/hosts/<name>/` inside the fleet are removed; nothing was changed",
            RemoveError::StillARecipient { .. } => "the render step should have taken it out; check `_sops` in hosts.nix and `pve render --check`, then `pve remove --resume`",
            RemoveError::RekeyFailed { .. } => "fix what sops reports (the admin age key: SOPS_AGE_KEY_FILE), then `pve remove --resume`",
            RemoveError::NotAsRequired { .. } => "fix those files (sops updatekeys / sops rotate -i with an admin key), then `pve remove --resume`",
            RemoveError::RotateFailed { .. } => "fix what sops reports, then `pve remove --resume`",
            RemoveError::NotAVmid { .. }
            | RemoveError::SopsConfig(_)
            | RemoveError::Serialize(_)
            | RemoveError::RemoveFolder { .. }
            | RemoveError::StillConfigured { .. } => return None,
        };
        Some(help.to_string())
    }
}
