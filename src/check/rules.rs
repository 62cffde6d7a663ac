//! The host-spec rules of `pve check`.

use std::collections::BTreeMap;

use rowan::TextRange;

use crate::diag::{Code, Diagnostic};
use crate::fleet::domain::{MAX_CORES, MAX_MEMORY, MIN_MEMORY, NON_SIZE_DISKS};
use crate::fleet::model::Spanned;
use crate::fleet::{DiskSize, Host, HostName, Loaded, MiB, Vmid};

pub fn host_names(l: &Loaded) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for h in &l.fleet.hosts {
        if !HostName::is_valid(&h.name) {
            out.push(
                Diagnostic::error(Code::BadHostName, h.name_span, format!("host name `{}` is not a DNS label", h.name))
                    .help("use lowercase letters, digits and `-` (at most 63, not starting or ending with `-`), e.g. `web-1`"),
            );
        }
        for (key, v) in [("hostname", &h.hostname), ("sshAlias", &h.ssh_alias)] {
            if let Some(v) = v {
                if !HostName::is_valid(&v.value) {
                    out.push(
                        Diagnostic::error(
                            Code::BadHostName,
                            v.span,
                            format!("`{}.{key}` = {:?} is not a DNS label", h.name, v.value),
                        )
                        .help("use lowercase letters, digits and `-`"),
                    );
                }
            }
        }
    }
    out
}

pub fn required_keys(l: &Loaded) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (h, p) in l.fleet.vms() {
        let missing: Vec<&str> = [
            ("vmid", p.vmid.is_none()),
            ("cores", p.cores.is_none()),
            ("memory", p.memory.is_none()),
        ]
        .into_iter()
        .filter(|(key, absent)| *absent && !p.readonly && (*key == "vmid" || p.clones_template()))
        .map(|(k, _)| k)
        .collect();
        if let Some(first) = missing.first() {
            let example = match *first {
                "vmid" => "vmid = 120;",
                "cores" => "cores = 2;",
                _ => "memory = 4096;",
            };
            out.push(
                Diagnostic::error(
                    Code::MissingKey,
                    p.span,
                    format!(
                        "`{}.proxmox` lacks {}",
                        h.name,
                        missing
                            .iter()
                            .map(|k| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
                .help(format!(
                    "add e.g. `{example}` (`pve new` picks the next free VMID)"
                )),
            );
        }
    }
    out
}

pub fn proxmox_config(l: &Loaded) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let managed: Vec<_> = l.fleet.vms().filter(|(_, p)| !p.readonly).collect();
    if managed.is_empty() {
        return out;
    }
    let Some(cfg) = &l.fleet.proxmox else {
        let (h, p) = managed[0];
        out.push(
            Diagnostic::error(Code::MissingKey, p.span, format!("`{}` is a VM but hosts.nix has no `_proxmox` settings", h.name))
                .help("add `_proxmox = { host = \"192.168.1.12\"; node = \"pve\"; defaultStorage = \"local-lvm\"; templateVmid = 9000; };`"),
        );
        return out;
    };
    let mut need = |present: bool, key: &str, example: &str| {
        if !present {
            out.push(
                Diagnostic::error(
                    Code::MissingKey,
                    cfg.span,
                    format!("`_proxmox` lacks `{key}`"),
                )
                .help(format!("add `{key} = {example};`")),
            );
        }
    };
    need(
        cfg.host.is_some() || cfg.endpoint.is_some(),
        "host",
        "\"192.168.1.12\"",
    );
    need(
        cfg.node.is_some() || managed.iter().all(|(_, p)| p.node.is_some()),
        "node",
        "\"pve\"",
    );
    need(
        cfg.template_vmid.is_some() || !managed.iter().any(|(_, p)| p.clones_template()),
        "templateVmid",
        "9000",
    );
    let disk_without_storage = managed.iter().any(|(_, p)| {
        p.storage.is_none()
            && p.disk
                .as_ref()
                .is_some_and(|d| d.value.parse::<DiskSize>().is_ok())
    });
    need(
        cfg.default_storage.is_some() || !disk_without_storage,
        "defaultStorage",
        "\"local-lvm\"",
    );
    let (lo, hi) = cfg.vmid_range;
    if !Vmid::in_range(lo) || lo > hi || !Vmid::in_range(hi) {
        out.push(
            Diagnostic::error(
                Code::VmidRange,
                cfg.vmid_range_span.unwrap_or(cfg.span),
                format!("`_proxmox.vmidRange` [ {lo} {hi} ] is not a valid range"),
            )
            .help("Proxmox VMIDs run from 100 to 999999999; write `vmidRange = [ 100 999 ];`"),
        );
    }
    out
}

pub fn duplicate_vmids(l: &Loaded) -> Vec<Diagnostic> {
    let mut seen: BTreeMap<(Option<String>, i64), (&Host, TextRange)> = BTreeMap::new();
    let mut out = Vec::new();
    // In file order, so "first" means first in the file.
    let mut vms: Vec<_> = l.fleet.vms().collect();
    vms.sort_by_key(|(h, _)| h.span.start());
    for (h, p) in vms {
        let Some(vmid) = &p.vmid else { continue };
        // VMIDs are unique per cluster, so the node does not matter.
        match seen.get(&(None, vmid.value)) {
            Some((first, first_span)) => out.push(
                Diagnostic::error(
                    Code::DuplicateVmid,
                    vmid.span,
                    format!(
                        "VMID {} is used by both `{}` and `{}`",
                        vmid.value, first.name, h.name
                    ),
                )
                .related(*first_span, format!("first used by `{}` here", first.name))
                .help(format!(
                    "give `{}` a free VMID (`proxmox-ops next-vmid` finds one)",
                    h.name
                )),
            ),
            None => {
                seen.insert((None, vmid.value), (h, vmid.span));
            }
        }
    }
    out
}

pub fn vmid_range(l: &Loaded) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let (lo, hi, template) = match &l.fleet.proxmox {
        Some(c) => (
            c.vmid_range.0,
            c.vmid_range.1,
            c.template_vmid.as_ref().map(|t| t.value),
        ),
        None => (100, 999, None),
    };
    for (h, p) in l.fleet.vms() {
        let Some(vmid) = &p.vmid else { continue };
        if Some(vmid.value) == template {
            out.push(
                Diagnostic::error(
                    Code::VmidIsTemplate,
                    vmid.span,
                    format!(
                        "`{}` uses VMID {}, which is the NixOS template",
                        h.name, vmid.value
                    ),
                )
                .help("pick another VMID; the template is cloned, never managed as a VM"),
            );
        } else if !(lo..=hi).contains(&vmid.value)
            && !p.readonly
            && !p.import
            && p.clones_template()
        {
            out.push(
                Diagnostic::error(
                    Code::VmidRange,
                    vmid.span,
                    format!(
                        "VMID {} of `{}` is outside the allowed range {lo}–{hi}",
                        vmid.value, h.name
                    ),
                )
                .help("pick a VMID inside `_proxmox.vmidRange`, or widen the range"),
            );
        }
    }
    out
}

pub fn duplicate_names(l: &Loaded) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut aliases: BTreeMap<String, (&str, TextRange)> = BTreeMap::new();
    let mut hostnames: BTreeMap<String, (&str, TextRange)> = BTreeMap::new();
    let mut hosts: Vec<_> = l.fleet.hosts.iter().collect();
    hosts.sort_by_key(|h| h.span.start());
    for h in hosts {
        let hostname_span = h.hostname.as_ref().map_or(h.name_span, |s| s.span);
        let checks = [
            (
                Code::DuplicateHostname,
                "hostname",
                Some((h.hostname().to_string(), hostname_span)),
                &mut hostnames,
            ),
            (
                Code::DuplicateSshAlias,
                "sshAlias",
                h.ssh_alias.as_ref().map(|s| (s.value.clone(), s.span)),
                &mut aliases,
            ),
        ];
        for (code, key, value, seen) in checks {
            let Some((value, span)) = value else { continue };
            match seen.get(&value) {
                Some((first, first_span)) => out.push(
                    Diagnostic::error(
                        code,
                        span,
                        format!("{key} `{value}` is used by both `{first}` and `{}`", h.name),
                    )
                    .related(*first_span, format!("`{first}` uses it here"))
                    .help(format!("every host needs its own {key}")),
                ),
                None => {
                    seen.insert(value, (&h.name, span));
                }
            }
        }
    }
    out
}

pub fn resources(l: &Loaded) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (h, p) in l.fleet.vms() {
        if let Some(c) = &p.cores {
            if !(1..=MAX_CORES).contains(&c.value) {
                out.push(
                    Diagnostic::error(
                        Code::CoresRange,
                        c.span,
                        format!("`{}` asks for {} cores", h.name, c.value),
                    )
                    .help(format!("cores must be between 1 and {MAX_CORES}")),
                );
            }
        }
        if let Some(m) = &p.memory {
            if !MiB::in_range(m.value) {
                let hint = if MiB::looks_like_gib(m.value) {
                    format!(" (memory is in MiB: {} GiB is {})", m.value, m.value * 1024)
                } else {
                    String::new()
                };
                out.push(
                    Diagnostic::error(
                        Code::MemoryRange,
                        m.span,
                        format!("`{}` asks for {} MiB of memory", h.name, m.value),
                    )
                    .help(format!(
                        "memory is MiB between {MIN_MEMORY} and {MAX_MEMORY}{hint}"
                    )),
                );
            }
        }
        if let Some(v) = &p.vlan {
            if !(1..=4094).contains(&v.value) {
                out.push(Diagnostic::error(
                    Code::VlanRange,
                    v.span,
                    format!("VLAN tag {} is outside 1–4094", v.value),
                ));
            }
        }
    }
    out
}

pub fn disk(l: &Loaded) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (h, p) in l.fleet.vms() {
        let Some(d) = &p.disk else { continue };
        if d.value.parse::<DiskSize>().is_ok() || NON_SIZE_DISKS.contains(&d.value.as_str()) {
            continue;
        }
        let digits: String = d.value.chars().take_while(char::is_ascii_digit).collect();
        let suggestion = if digits.is_empty() {
            "64".to_string()
        } else {
            digits
        };
        out.push(
            Diagnostic::error(
                Code::BadDisk,
                d.span,
                format!(
                    "disk {:?} of `{}` is neither a size nor a known non-size",
                    d.value, h.name
                ),
            )
            .help(format!(
                "write a size in whole GiB like \"{suggestion}G\" (or \"1T\"), or one of {}",
                NON_SIZE_DISKS.join(", ")
            )),
        );
    }
    out
}

/// The old README's "common mistakes": a clone of the SeaBIOS/virtio0
/// template must not change firmware, disk bus or machine type.
pub fn template_compatibility(l: &Loaded) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (h, p) in l.fleet.vms() {
        if !p.clones_template() || p.readonly {
            continue;
        }
        let template = l
            .fleet
            .proxmox
            .as_ref()
            .and_then(|c| c.template_vmid.as_ref())
            .map_or("the template".to_string(), |t| {
                format!("template {}", t.value)
            });
        let bad: [(&str, &Option<Spanned<String>>, &str); 3] = [
            ("bios", &p.bios, "seabios"),
            ("diskInterface", &p.disk_interface, "virtio0"),
            ("machine", &p.machine, ""),
        ];
        for (key, v, ok) in bad {
            let Some(v) = v else { continue };
            if !ok.is_empty() && v.value == ok {
                continue;
            }
            out.push(
                Diagnostic::error(Code::TemplateMismatch, v.span, format!("`{}` is cloned from {template} but sets `{key} = {:?}`: the clone will not boot", h.name, v.value))
                    .help(format!("{template} uses SeaBIOS and virtio0; remove `{key}` (or set `cloneFromTemplate = false` for an imported VM)")),
            );
        }
    }
    out
}

pub fn nodes(l: &Loaded) -> Vec<Diagnostic> {
    let Some(known) = l.fleet.proxmox.as_ref().and_then(|c| c.nodes.as_ref()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (h, p) in l.fleet.vms() {
        let Some(n) = &p.node else { continue };
        if !known.contains(&n.value) {
            let d = Diagnostic::error(
                Code::UnknownNode,
                n.span,
                format!(
                    "`{}` is placed on node `{}`, which is not in `_proxmox.nodes`",
                    h.name, n.value
                ),
            );
            out.push(
                match crate::diag::did_you_mean(&n.value, known.iter().map(String::as_str)) {
                    Some(s) => d.help(format!("did you mean `{s}`?")),
                    None => d.help(format!("known nodes: {}", known.join(", "))),
                },
            );
        }
    }
    out
}

pub fn host_files(l: &Loaded) -> Vec<Diagnostic> {
    super::per_host_in_parallel(l, |h, out| {
        for (key, f) in [
            ("configurationFile", &h.configuration_file),
            ("homeFile", &h.home_file),
        ] {
            let Some(f) = f else { continue };
            // The configuration rule reads this file anyway and reports it
            // missing; one system call per file matters at 10,000 hosts.
            if key == "configurationFile" && super::config_file::reads_configuration(h) {
                continue;
            }
            if !f.value.is_file() {
                out.push(missing_file(l, h, key, f));
            }
        }
    })
}

pub(super) fn missing_file(
    l: &Loaded,
    h: &crate::fleet::Host,
    key: &str,
    f: &crate::fleet::Spanned<std::path::PathBuf>,
) -> Diagnostic {
    let shown = crate::fleet::value::display_path(&f.value, &l.root_dir);
    Diagnostic::error(
        Code::MissingFile,
        f.span,
        format!("`{}.{key}` points at {shown}, which does not exist", h.name),
    )
    .help(format!(
        "create it (`pve scaffold {}` writes one from hosts/vm_base) or fix the path",
        h.name
    ))
}

pub fn public_keys(l: &Loaded) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for h in &l.fleet.hosts {
        let Some(k) = &h.public_key else { continue };
        match crate::keys::parse_ed25519_public(&k.value) {
            Ok(_) => {}
            Err(crate::keys::KeyError::WrongType(t)) => out.push(
                Diagnostic::error(Code::BadPublicKey, k.span, format!("`{}.publicKey` is a {t} key; sops-nix needs the host's ssh-ed25519 key", h.name))
                    .help(format!("use the content of /etc/ssh/ssh_host_ed25519_key.pub (`pve integrate {}` writes it)", h.name)),
            ),
            Err(e) if looks_like_placeholder(&k.value) => {
                let _ = e;
                out.push(
                    Diagnostic::warning(Code::PlaceholderKey, k.span, format!("`{}.publicKey` is a placeholder, not a host key yet", h.name))
                        .help(format!("normal between `pve new` and `pve integrate`; run `pve integrate {}` to fill it in", h.name)),
                );
            }
            Err(e) => out.push(
                Diagnostic::error(Code::BadPublicKey, k.span, format!("`{}.publicKey` is not a valid ssh-ed25519 key: {e}", h.name))
                    .help("copy /etc/ssh/ssh_host_ed25519_key.pub of the host exactly, or let `pve integrate` write it"),
            ),
        }
    }
    out
}

fn looks_like_placeholder(s: &str) -> bool {
    let t = s.trim();
    t.is_empty()
        || t.contains("...")
        || t.to_ascii_uppercase().contains("PLACEHOLDER")
        || t.to_ascii_uppercase().contains("TODO")
        || t.to_ascii_uppercase().contains("CHANGEME")
}
