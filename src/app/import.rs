//! `pve import`: adopt an existing Proxmox VM.

use crate::cli::remove::ImportArgs;
use crate::error::Result;
use crate::fleet::edit::{self, names::string_literal, HostEntry};
use crate::fsutil::RepoLock;
use crate::remote::proxmox::{self, Proxmox};
use crate::render::scaffold::{self, HostKind, Outcome};

use super::{Context, UsageError};

pub fn run(ctx: &Context, args: ImportArgs) -> Result<u8> {
    let vmid = proxmox::parse_vmid(&args.vmid)?;
    let loaded = ctx.load()?;
    let root = loaded.root_dir.clone();
    let px = Proxmox::from_loaded(&loaded)?;
    // The cluster says where the VM lives; its config is asked of that node.
    let Some(found) = px.locate(vmid)? else {
        return Err(UsageError::NoSuchVm { vmid }.into());
    };
    let cfg = px.config(vmid)?;
    let other_node = (found.node != px.settings().node).then(|| found.node.clone());
    if cfg.is_template() {
        return Err(UsageError::ImportTemplate { vmid }.into());
    }
    // An entry that already has this VMID is updated.
    let existing = loaded
        .fleet
        .vms()
        .find(|(_, s)| s.vmid.as_ref().is_some_and(|v| v.value == i64::from(vmid)));
    let path = loaded.file.path.clone();
    let lock = RepoLock::take(&root)?;
    if let Some((host, spec)) = existing {
        if spec.readonly {
            return Err(UsageError::ImportReadonly {
                name: host.name.clone(),
                vmid,
            }
            .into());
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
        None => return Err(UsageError::VmWithoutName { vmid }.into()),
    };
    crate::workflow::new::validate_name(&loaded, &name).map_err(|m| UsageError::ImportName {
        vmid,
        name: name.clone(),
        reason: m,
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
    // The host's folder, as `pve new` and `pve scaffold` make it: from the
    // fleet's hosts/vm_base/ when there is one. Read before hosts.nix is
    // edited, so a base pve refuses leaves every file as it was.
    let (_, files) = scaffold::for_host(&root, &name, HostKind::Vm)?;
    let nix = entry
        .render()
        .map_err(|source| UsageError::RenderHostEntry { source })?;
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
        .unwrap_or(crate::render::tofu::DEFAULT_BRIDGE);
    extra.extend(adopted_settings(&cfg, default_bridge));
    if let Some(node) = &other_node {
        // hosts.nix says where it lives, or the next plan would move it.
        extra.push(("node", string_literal(node)));
    }
    edit::apply_to_file_under(&lock, &path, |t| {
        let mut t = edit::add_host(t, &name, &nix)?;
        for (k, v) in &extra {
            t = edit::set_attr(&t, &[&name, "proxmox", k], v)?;
        }
        Ok(t)
    })?;
    let made: Vec<String> = scaffold::scaffold(&root, &files, &lock)?
        .into_iter()
        .filter_map(|o| match o {
            Outcome::Created(p) => Some(p.display().to_string()),
            Outcome::Kept(_) => None,
        })
        .collect();
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
