//! `pve remove` (the steps of `workflow::remove`) and `pve import`.

use crate::error::{exit, AppError, Result};
use crate::fleet::edit::{self, names::string_literal, HostEntry};
use crate::fsutil::RepoLock;
use crate::remote::proxmox::{self, Proxmox};
use crate::secrets::sops::Sops;
use crate::tofu::{self, Tofu};
use crate::workflow::remove::{self as wf, RemoveRun};
use crate::workflow::{Journal, Progress};

use super::new::{ask_line, interactive, Prompt};
use super::Context;

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
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  pve remove web-2\n  pve remove web-2 --yes\n  pve remove web-2 --resume\n\n\
sops finds the admin age key as usual (SOPS_AGE_KEY_FILE, ~/.config/sops/age/keys.txt). \
The Proxmox API token comes from PROXMOX_VE_API_TOKEN or the token file (see `pve plan --help`)."
)]
pub struct Args {
    /// The host to remove.
    pub name: String,
    /// Do not ask (for scripts).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Continue a run that stopped.
    #[arg(long)]
    pub resume: bool,
    /// One JSON object per step on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Adopt an existing Proxmox VM: write its host entry with `import = true`.
///
/// Reads the VM's name and configuration from Proxmox and writes (or
/// updates) the host entry with `proxmox = { vmid; import = true;
/// cloneFromTemplate = false; ... }`, so the next `pve plan` / `pve apply`
/// adopts it through an OpenTofu import block instead of creating it. A new
/// host also gets `hosts/<name>/` from the scaffold.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  pve import 120\n  pve import 120 --name web-old\n  pve plan        shows `1 to import`"
)]
pub struct ImportArgs {
    /// The VMID on Proxmox.
    pub vmid: String,
    /// The host name (default: the VM's name on Proxmox).
    #[arg(long)]
    pub name: Option<String>,
}

pub fn run(ctx: &Context, args: Args) -> Result<u8> {
    let loaded = ctx.load()?;
    let root = loaded.root_dir.clone();
    proxmox::check_name(&args.name)?;
    crate::workflow::gate::check_for_host(&loaded, wf::WORKFLOW, &args.name)?;
    let progress = if args.json {
        Progress::Json
    } else {
        Progress::Human
    };
    let (journal, removal) = match wf::load_journal(&root, &args.name)? {
        Some((j, r)) if args.resume => (j, r),
        Some(_) => {
            return Err(AppError::input(format!(
                "a run of `pve remove {}` stopped before it finished",
                args.name
            ))
            .with_help(format!(
                "continue it with `pve remove {} --resume`",
                args.name
            )))
        }
        None if args.resume => {
            return Err(AppError::input(format!(
                "there is no stopped `pve remove` run for `{}`",
                args.name
            )))
        }
        None => {
            let removal = wf::preview(&loaded, &args.name)?;
            eprint!("{}", removal.describe());
            if !args.yes {
                if !interactive() {
                    return Err(AppError::input(format!(
                        "not removing `{}` without confirmation: there is no terminal to ask on",
                        args.name
                    ))
                    .with_help("pass --yes to remove it from a script"));
                }
                let typed = ask_line(&format!("Type `{}` to remove it: ", args.name))?;
                if typed != args.name {
                    eprintln!("The name did not match; nothing was removed.");
                    return Ok(exit::FINDINGS);
                }
            }
            (Journal::new(&root, wf::WORKFLOW, &args.name), removal)
        }
    };
    let proxmox = match removal.vmid {
        Some(_) => Some(Proxmox::from_loaded(&loaded)?),
        None => None,
    };
    let tofu = match removal.vmid {
        Some(_) => Some(Tofu::new(
            tofu::workdir(&root)?,
            Some(crate::workflow::new::token()?),
        )),
        None => None,
    };
    let sops = removal.sops_yaml.as_ref().map(|p| Sops::new(root.join(p)));
    let lock = RepoLock::acquire(&root, edit::LOCK_WAIT)?;
    let mut prompt = Prompt { yes: args.yes };
    let mut journal = journal;
    let mut r = RemoveRun {
        root: root.clone(),
        hosts_path: loaded.file.path.clone(),
        removal,
        proxmox: proxmox.as_ref(),
        tofu,
        sops,
        lock,
        confirm: &mut prompt,
        notes: Vec::new(),
    };
    match wf::run(&mut r, &mut journal, progress) {
        Ok(()) => {
            journal.finish()?;
            for n in &r.notes {
                eprintln!("note: {n}");
            }
            if !args.json {
                super::print(&format!("Removed `{}`.\n", args.name))?;
            }
            Ok(exit::OK)
        }
        Err(e) => {
            if !journal
                .steps
                .values()
                .any(|s| s.status == crate::workflow::Status::Done)
            {
                // Nothing was done: leave nothing behind.
                journal.finish()?;
            } else {
                eprintln!(
                    "Stopped; what was done is kept. Continue with `pve remove {} --resume`.",
                    args.name
                );
            }
            Err(e)
        }
    }
}

pub fn import(ctx: &Context, args: ImportArgs) -> Result<u8> {
    let vmid = proxmox::parse_vmid(&args.vmid)?;
    let loaded = ctx.load()?;
    let root = loaded.root_dir.clone();
    let px = Proxmox::from_loaded(&loaded)?;
    if !px.existing_vmids()?.contains(&vmid) {
        return Err(
            AppError::input(format!("VM {vmid} does not exist on Proxmox"))
                .with_help("`proxmox-ops list` shows the VMs"),
        );
    }
    let cfg = px.config(vmid)?;
    if cfg.is_template() {
        return Err(AppError::input(format!(
            "VM {vmid} is a template; templates are not hosts"
        )));
    }
    // An entry that already has this VMID is updated.
    let existing = loaded
        .fleet
        .vms()
        .find(|(_, s)| s.vmid.as_ref().is_some_and(|v| v.value == i64::from(vmid)));
    let path = loaded.file.path.clone();
    let lock = RepoLock::acquire(&root, edit::LOCK_WAIT)?;
    if let Some((host, spec)) = existing {
        if spec.readonly {
            return Err(AppError::input(format!(
                "`{}` (VM {vmid}) is readonly; refusing to import it",
                host.name
            )));
        }
        let name = host.name.clone();
        let applied = edit::apply_to_file_under(&lock, &path, |t| {
            let t = edit::set_attr(t, &[&name, "proxmox", "import"], "true")?;
            edit::set_attr(&t, &[&name, "proxmox", "cloneFromTemplate"], "false")
        })?;
        let msg = if applied.changed() {
            format!(
                "Updated `{name}`: VM {vmid} is adopted by the next `pve apply` (import = true).\n"
            )
        } else {
            format!("`{name}` already imports VM {vmid}.\n")
        };
        return super::print(&msg);
    }
    let name = match args.name.clone().or_else(|| cfg.name().map(str::to_string)) {
        Some(n) => n,
        None => {
            return Err(AppError::input(format!("VM {vmid} has no name on Proxmox"))
                .with_help("pass --name NAME"))
        }
    };
    crate::workflow::new::validate_name(&loaded, &name).map_err(|m| {
        AppError::input(format!("cannot import VM {vmid} as `{name}`: {m}"))
            .with_help("pass --name with another name")
    })?;
    let num = |k: &str| cfg.get(k).and_then(|v| v.trim().parse::<u32>().ok());
    let (slot, size) = boot_disk(&cfg);
    let entry = HostEntry {
        name: name.clone(),
        vmid: Some(vmid),
        cores: num("cores"),
        memory: num("memory"),
        disk: size,
        description: cfg
            .description()
            .map(|d| d.lines().next().unwrap_or_default().to_string())
            .filter(|d| !d.is_empty()),
        ..HostEntry::new(&name)
    };
    let nix = entry
        .render()
        .map_err(|e| AppError::input(format!("cannot render the host entry: {e}")))?;
    let mut extra: Vec<(&str, String)> = vec![
        ("import", "true".into()),
        ("cloneFromTemplate", "false".into()),
    ];
    if let Some(s) = slot.filter(|s| s != "virtio0") {
        extra.push(("diskInterface", string_literal(&s)));
    }
    if let Some(b) = cfg.get("bios") {
        extra.push(("bios", string_literal(b)));
    }
    if let Some(m) = cfg.get("machine") {
        extra.push(("machine", string_literal(m)));
    }
    let default_bridge = loaded
        .fleet
        .proxmox
        .as_ref()
        .and_then(|p| p.bridge.as_deref())
        .unwrap_or("vmbr0");
    extra.extend(adopted_settings(&cfg, default_bridge));
    edit::apply_to_file_under(&lock, &path, |t| {
        let mut t = edit::add_host(t, &name, &nix)?;
        for (k, v) in &extra {
            t = edit::set_attr(&t, &[&name, "proxmox", k], v)?;
        }
        Ok(t)
    })?;
    let mut made = Vec::new();
    for f in crate::render::scaffold::files(&name)? {
        let target = root.join(&f.path);
        if !target.exists() {
            crate::fsutil::write_new(&target, f.contents.as_bytes())?;
            made.push(f.path.display().to_string());
        }
    }
    super::print(&format!(
        "Added `{name}` for VM {vmid} with import = true{}.\nNext: `pve plan` shows the import; `pve apply` adopts the VM.\n",
        if made.is_empty() {
            String::new()
        } else {
            format!(" (and wrote {})", made.join(", "))
        }
    ))
}

/// What else the next plan would otherwise change on an adopted VM: its
/// tags, its first network device (bridge when not the fleet's default,
/// VLAN, and the MAC address, which DHCP reservations depend on) and its
/// virtiofs shares, as Nix text per `proxmox` key.
fn adopted_settings(cfg: &proxmox::VmConfig, default_bridge: &str) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let list = |items: Vec<String>| format!("[ {} ]", items.join(" "));
    let tags = cfg.tags();
    if !tags.is_empty() {
        out.push((
            "tags",
            list(tags.iter().map(|t| string_literal(t)).collect()),
        ));
    }
    if let Some(net) = cfg.nets().into_iter().find(|n| n.id == "net0") {
        if let Some(b) = net.bridge.as_deref().filter(|b| *b != default_bridge) {
            out.push(("bridge", string_literal(b)));
        }
        if let Some(tag) = net.vlan {
            out.push(("vlan", tag.to_string()));
        }
        if !net.mac.is_empty() {
            // Proxmox writes MAC addresses in capitals; so must we, or the
            // plan shows a change.
            out.push(("macAddress", string_literal(&net.mac.to_ascii_uppercase())));
        }
    }
    let shares: Vec<String> = cfg
        .virtiofs()
        .iter()
        .map(|v| {
            let mut fields = vec![format!("mapping = {};", string_literal(&v.mapping))];
            if let Some(c) = &v.cache {
                fields.push(format!("cache = {};", string_literal(c)));
            }
            for (key, flag) in [
                ("direct_io", v.direct_io),
                ("expose_acl", v.expose_acl),
                ("expose_xattr", v.expose_xattr),
            ] {
                if let Some(f) = flag {
                    fields.push(format!("{key} = {f};"));
                }
            }
            format!("{{ {} }}", fields.join(" "))
        })
        .collect();
    if !shares.is_empty() {
        out.push(("virtiofs", list(shares)));
    }
    out
}

/// The boot disk's slot and size (`virtio0`, `64G`), from `boot: order=`
/// or the first disk slot.
fn boot_disk(cfg: &proxmox::VmConfig) -> (Option<String>, Option<String>) {
    let is_disk = |k: &str| {
        let bus = k.trim_end_matches(|c: char| c.is_ascii_digit());
        ["virtio", "scsi", "sata", "ide"].contains(&bus) && bus.len() < k.len()
    };
    let from_boot = cfg.get("boot").and_then(|b| {
        b.trim_start_matches("order=")
            .split(';')
            .find(|k| is_disk(k) && cfg.get(k).is_some_and(|v| !v.contains("media=cdrom")))
            .map(str::to_string)
    });
    let slot = from_boot.or_else(|| {
        cfg.entries
            .iter()
            .find(|(k, v)| is_disk(k) && !v.contains("media=cdrom"))
            .map(|(k, _)| k.clone())
    });
    let size = slot.as_deref().and_then(|s| cfg.get(s)).and_then(|v| {
        v.split(',')
            .find_map(|p| p.strip_prefix("size="))
            .filter(|s| s.parse::<crate::fleet::DiskSize>().is_ok())
            .map(str::to_string)
    });
    (slot, size)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> proxmox::VmConfig {
        proxmox::VmConfig {
            entries: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn the_boot_disk_comes_from_the_boot_order_and_skips_cdroms() {
        let c = cfg(&[
            ("boot", "order=ide2;scsi0;net0"),
            ("ide2", "local:iso/nixos.iso,media=cdrom"),
            ("scsi0", "local-lvm:vm-120-disk-0,size=48G"),
            ("virtio1", "local-lvm:vm-120-disk-1,size=8G"),
        ]);
        assert_eq!(boot_disk(&c), (Some("scsi0".into()), Some("48G".into())));
        // No boot order: the first disk slot; a size in M is not a disk size.
        let c = cfg(&[("virtio0", "local-lvm:vm-1-disk-0,size=512M")]);
        assert_eq!(boot_disk(&c), (Some("virtio0".into()), None));
        assert_eq!(boot_disk(&cfg(&[("net0", "virtio=AA")])), (None, None));
    }
}
