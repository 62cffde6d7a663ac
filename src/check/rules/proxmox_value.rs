//! Values Proxmox itself would refuse, caught by `pve check` at their
//! position instead of by `pve apply` halfway through a plan: MAC
//! addresses, bridges, storages, CPU types, tags and the Proxmox host's
//! address. The formats are Proxmox VE's own (its JSON schema formats
//! `pve-macaddr`, `pve-bridge-id`, `pve-storage-id`, `pve-tag`) and the
//! CPU types the bpg provider accepts (`../shared/reference/bpg-proxmox/`).

use rowan::TextRange;

use crate::diag::{Code, Diagnostic};
use crate::fleet::{Loaded, Value};

/// The provider's list of CPU models; anything else must be `custom-NAME`.
const CPU_TYPES: &[&str] = &[
    "486",
    "Broadwell",
    "Broadwell-IBRS",
    "Broadwell-noTSX",
    "Broadwell-noTSX-IBRS",
    "Cascadelake-Server",
    "Cascadelake-Server-noTSX",
    "Cascadelake-Server-v2",
    "Cascadelake-Server-v4",
    "Cascadelake-Server-v5",
    "Conroe",
    "Cooperlake",
    "Cooperlake-v2",
    "EPYC",
    "EPYC-Genoa",
    "EPYC-IBPB",
    "EPYC-Milan",
    "EPYC-Rome",
    "EPYC-Rome-v2",
    "EPYC-Rome-v3",
    "EPYC-Rome-v4",
    "EPYC-v3",
    "EPYC-v4",
    "Haswell",
    "Haswell-IBRS",
    "Haswell-noTSX",
    "Haswell-noTSX-IBRS",
    "Icelake-Client",
    "Icelake-Client-noTSX",
    "Icelake-Server",
    "Icelake-Server-noTSX",
    "Icelake-Server-v3",
    "Icelake-Server-v4",
    "Icelake-Server-v5",
    "Icelake-Server-v6",
    "IvyBridge",
    "IvyBridge-IBRS",
    "KnightsMill",
    "Nehalem",
    "Nehalem-IBRS",
    "Opteron_G1",
    "Opteron_G2",
    "Opteron_G3",
    "Opteron_G4",
    "Opteron_G5",
    "Penryn",
    "SandyBridge",
    "SandyBridge-IBRS",
    "SapphireRapids",
    "Skylake-Client",
    "Skylake-Client-IBRS",
    "Skylake-Client-noTSX-IBRS",
    "Skylake-Client-v4",
    "Skylake-Server",
    "Skylake-Server-IBRS",
    "Skylake-Server-noTSX-IBRS",
    "Skylake-Server-v4",
    "Skylake-Server-v5",
    "Westmere",
    "Westmere-IBRS",
    "athlon",
    "core2duo",
    "coreduo",
    "host",
    "kvm32",
    "kvm64",
    "max",
    "pentium",
    "pentium2",
    "pentium3",
    "phenom",
    "qemu32",
    "qemu64",
    "x86-64-v2",
    "x86-64-v2-AES",
    "x86-64-v3",
    "x86-64-v4",
];

/// Every Proxmox value of every host, and `_proxmox`.
pub fn proxmox_values(l: &Loaded) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let cfg = l.value.as_attrs().and_then(|r| r.get("_proxmox"));
    if let Some(cfg) = cfg.map(|a| &a.value) {
        check_config(cfg, &mut out);
    }
    for (h, set) in crate::check::host_sets(l) {
        let proxmox = set.and_then(|a| a.get("proxmox"));
        if let Some(p) = proxmox {
            check_vm(&h.name, &p.value, &mut out);
        }
    }
    out
}

fn check_config(cfg: &Value, out: &mut Vec<Diagnostic>) {
    let at = |k: &str| cfg.as_attrs().and_then(|a| a.get(k)).map(|a| &a.value);
    if let Some((s, span)) = at("host").and_then(string) {
        if s.parse::<std::net::IpAddr>().is_err() && !is_dns_name(s) {
            out.push(bad(
                span,
                format!("`_proxmox.host` {s:?} is neither a host name nor an IP address"),
                "write the Proxmox host's address, e.g. \"192.168.1.12\" or \"pve.example.org\"",
            ));
        }
    }
    if let Some((s, span)) = at("defaultStorage").and_then(string) {
        check_storage(|| "_proxmox.defaultStorage".into(), s, span, out);
    }
    if let Some((s, span)) = at("bridge").and_then(string) {
        check_bridge(|| "_proxmox.bridge".into(), s, span, out);
    }
}

fn check_vm(host: &str, p: &Value, out: &mut Vec<Diagnostic>) {
    // One pass over the set, not a look-up per name: this runs for every
    // host, and the findings are sorted by position afterwards.
    for (name, attr) in p.as_attrs().into_iter().flat_map(|a| a.iter()) {
        let value = &attr.value;
        match &**name {
            "macAddress" => check_mac(host, value, out),
            "bridge" => {
                if let Some((s, span)) = string(value) {
                    check_bridge(|| format!("{host}.proxmox.bridge"), s, span, out);
                }
            }
            "storage" => {
                if let Some((s, span)) = string(value) {
                    check_storage(|| format!("{host}.proxmox.storage"), s, span, out);
                }
            }
            "cpuType" => check_cpu_type(host, value, out),
            "tags" => check_tags(host, value, out),
            _ => {}
        }
    }
}

fn check_mac(host: &str, value: &Value, out: &mut Vec<Diagnostic>) {
    if let Some((s, span)) = string(value) {
        if !is_unicast_mac(s) {
            out.push(bad(
                span,
                format!("`{host}.proxmox.macAddress` {s:?} is not a unicast MAC address"),
                "write six hex pairs with an even first octet, e.g. \"BC:24:11:00:00:01\"",
            ));
        }
    }
}

fn check_cpu_type(host: &str, value: &Value, out: &mut Vec<Diagnostic>) {
    let Some((s, span)) = string(value) else {
        return;
    };
    let custom = s
        .strip_prefix("custom-")
        .is_some_and(|n| !n.is_empty() && is_word(n));
    if !CPU_TYPES.contains(&s) && !custom {
        let help = match crate::diag::did_you_mean(s, CPU_TYPES.iter().copied()) {
            Some(m) => format!("did you mean \"{m}\"? (or \"custom-NAME\" for a custom model)"),
            None => "use a CPU model Proxmox knows, e.g. \"x86-64-v2-AES\" or \"host\", or \"custom-NAME\"".into(),
        };
        out.push(
            Diagnostic::error(
                Code::ProxmoxValue,
                span,
                format!("`{host}.proxmox.cpuType` {s:?} is not a CPU type Proxmox knows"),
            )
            .help(help),
        );
    }
}

fn check_tags(host: &str, value: &Value, out: &mut Vec<Diagnostic>) {
    for t in value.as_list().unwrap_or_default() {
        if let Some((s, span)) = string(t) {
            if !is_tag(s) {
                out.push(bad(span, format!("`{host}.proxmox.tags` entry {s:?} is not a Proxmox tag"),
                    "tags are letters, digits, `_`, `-`, `+` and `.`, not starting with `-`, `+` or `.`"));
            }
        }
    }
}

/// `what` names the value in the message: only made when there is one.
fn check_storage(
    what: impl FnOnce() -> String,
    s: &str,
    span: TextRange,
    out: &mut Vec<Diagnostic>,
) {
    if !is_storage_id(s) {
        out.push(bad(
            span,
            format!("`{}` {s:?} is not a Proxmox storage name", what()),
            "name a storage as `pvesm status` lists it, e.g. \"local-lvm\"",
        ));
    }
}

fn check_bridge(
    what: impl FnOnce() -> String,
    s: &str,
    span: TextRange,
    out: &mut Vec<Diagnostic>,
) {
    if s.is_empty() || s.len() > 15 || !is_word(s) {
        out.push(bad(span, format!("`{}` {s:?} is not a network bridge name", what()),
            "name a Linux bridge of the node (at most 15 letters, digits, `-`, `_`, `.`), e.g. \"vmbr0\""));
    }
}

fn string(v: &Value) -> Option<(&str, TextRange)> {
    v.as_str().map(|s| (s, v.span))
}

fn bad(span: TextRange, message: String, help: &str) -> Diagnostic {
    Diagnostic::error(Code::ProxmoxValue, span, message).help(help)
}

fn is_word(s: &str) -> bool {
    s.bytes()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// `pve-storage-id`: `^[a-z][a-z0-9\-_.]*[a-z0-9]$`, ignoring case.
fn is_storage_id(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_alphabetic()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && is_word(s)
}

/// `pve-tag`: `^[a-z0-9_][a-z0-9_\-+.]*$`, ignoring case.
fn is_tag(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'+' | b'.'))
}

/// `pve-macaddr`: six hex pairs, and unicast (the first octet even).
fn is_unicast_mac(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|c| c.is_ascii_hexdigit()))
        && u8::from_str_radix(parts[0], 16).is_ok_and(|o| o & 1 == 0)
}

fn is_dns_name(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|l| {
            let b = l.as_bytes();
            !b.is_empty()
                && b.len() <= 63
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
                && b[0] != b'-'
                && b[b.len() - 1] != b'-'
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_accept_what_proxmox_accepts() {
        assert!(is_unicast_mac("BC:24:11:aa:00:01"));
        assert!(!is_unicast_mac("01:00:5e:00:00:01"), "multicast");
        assert!(!is_unicast_mac("BC:24:11:aa:00"));
        assert!(!is_unicast_mac("BC-24-11-aa-00-01"));
        assert!(is_storage_id("local-lvm") && is_storage_id("nvmeprom"));
        assert!(!is_storage_id("") && !is_storage_id("a b") && !is_storage_id("1disk"));
        assert!(
            is_tag("sandbox")
                && is_tag("k8s+gpu")
                && !is_tag("a b")
                && !is_tag("a\nb")
                && !is_tag("-x")
        );
        assert!(is_dns_name("pve.example.org") && !is_dns_name("pve;rm") && !is_dns_name(""));
    }
}
