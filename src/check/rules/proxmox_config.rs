//! `proxmox-config`: a fleet with managed VMs has the `_proxmox` settings
//! rendering needs (host, node, templateVmid, defaultStorage), and a valid
//! `vmidRange`.
//!
//! Why: the provider block and every clone are written from them; a gap
//! would only show in `tofu plan`.
//!
//! ```nix
//! _proxmox = { node = "pve"; };              # missing-key: host
//! _proxmox = { vmidRange = [ 900 100 ]; };   # vmid-range
//! ```

use crate::diag::{Code, Diagnostic};
use crate::fleet::domain::{MAX_VMID, MIN_VMID};
use crate::fleet::model::PLACEMENT_LEAST_MEMORY;
use crate::fleet::{DiskSize, Loaded, ProxmoxConfig, Vmid};

pub fn proxmox_config(l: &Loaded) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    if let Some(cfg) = &l.fleet.proxmox {
        out.extend(template_vmids_out_of_range(cfg));
    }
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
        cfg.template_vmid.is_some()
            || !cfg.templates.is_empty()
            || !managed.iter().any(|(_, p)| p.clones_template()),
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
    if let Some(n) = &cfg.parallel_clones {
        let max = i64::from(crate::render::tofu::MAX_PARALLEL_CLONES);
        if !(1..=max).contains(&n.value) {
            out.push(
                Diagnostic::error(
                    Code::ProxmoxValue,
                    n.span,
                    format!(
                        "`_proxmox.parallelClones` is {}; it must be between 1 and {max}",
                        n.value
                    ),
                )
                .help(
                    "how many VMs one `pve apply` clones at once; write e.g. `parallelClones = 2;`",
                ),
            );
        }
    }
    if let Some(p) = cfg
        .placement
        .as_ref()
        .filter(|p| p.value != PLACEMENT_LEAST_MEMORY)
    {
        out.push(
            Diagnostic::error(
                Code::ProxmoxValue,
                p.span,
                format!("`_proxmox.placement` is {:?}; the one placement pve knows is \"{PLACEMENT_LEAST_MEMORY}\"", p.value),
            )
            .help("write `placement = \"least-memory\";` (`pve new` then puts a VM without `--node` on the node with the most free memory that has a template), or remove it"),
        );
    }
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

/// `templateVmid` and each `templates.<node>` must be VMIDs Proxmox
/// accepts, as hosts' VMIDs must: a clone from VM 5 fails only in `tofu
/// apply`.
fn template_vmids_out_of_range(cfg: &ProxmoxConfig) -> Vec<Diagnostic> {
    let named = cfg
        .template_vmid
        .iter()
        .map(|t| ("templateVmid".to_string(), t))
        .chain(
            cfg.templates
                .iter()
                .map(|(node, t)| (format!("templates.{node}"), t)),
        );
    named
        .filter(|(_, t)| !Vmid::in_range(t.value))
        .map(|(key, t)| {
            Diagnostic::error(
                Code::ProxmoxValue,
                t.span,
                format!("`_proxmox.{key}` is {}, which is no VMID", t.value),
            )
            .help(format!(
                "a VMID is a whole number from {MIN_VMID} to {MAX_VMID}: the VMID of the NixOS template on Proxmox, e.g. `templateVmid = 9000;`"
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::check::testing::codes;

    #[test]
    fn the_example_fleet_is_clean() {
        assert_eq!(codes(super::proxmox_config, "", ""), Vec::<&str>::new());
    }

    #[test]
    fn a_missing_host() {
        assert_eq!(
            codes(super::proxmox_config, "host = \"192.168.1.12\";", ""),
            ["missing-key"]
        );
    }

    #[test]
    fn placement_is_least_memory_or_nothing() {
        let base = "templateVmid = 9000;";
        assert_eq!(
            codes(
                super::proxmox_config,
                base,
                "templateVmid = 9000; placement = \"least-memory\";"
            ),
            Vec::<&str>::new()
        );
        assert_eq!(
            codes(
                super::proxmox_config,
                base,
                "templateVmid = 9000; placement = \"random\";"
            ),
            ["proxmox-value"]
        );
    }

    #[test]
    fn a_reversed_vmid_range() {
        assert_eq!(
            codes(
                super::proxmox_config,
                "templateVmid = 9000;",
                "templateVmid = 9000; vmidRange = [ 900 100 ];"
            ),
            ["vmid-range"]
        );
    }

    #[test]
    fn template_vmids_out_of_proxmox_s_range() {
        for bad in ["templateVmid = 5;", "templateVmid = 1000000000;"] {
            assert_eq!(
                codes(super::proxmox_config, "templateVmid = 9000;", bad),
                ["proxmox-value"],
                "{bad}"
            );
        }
        assert_eq!(
            codes(
                super::proxmox_config,
                "templateVmid = 9000;",
                "templateVmid = 100; templates = { pve = 9003; pve2 = 99; };"
            ),
            ["proxmox-value"]
        );
        assert_eq!(
            codes(
                super::proxmox_config,
                "templateVmid = 9000;",
                "templateVmid = 999999999;"
            ),
            Vec::<&str>::new()
        );
    }
}
