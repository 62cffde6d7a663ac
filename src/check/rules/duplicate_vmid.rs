//! `duplicate-vmid`: no two VMs share a VMID.
//!
//! Why: VMIDs are unique per Proxmox cluster; two resources with one VMID
//! would fight over one VM.
//!
//! ```nix
//! web = { proxmox = { vmid = 120; }; };
//! db = { proxmox = { vmid = 120; }; };   # duplicate-vmid, pointing at `web`
//! ```

use rowan::TextRange;

use crate::check::fast_hash::{map_with_capacity, FastMap};
use crate::diag::{Code, Diagnostic};
use crate::fleet::{Host, Loaded};

pub fn duplicate_vmids(l: &Loaded) -> Vec<Diagnostic> {
    let mut seen: FastMap<i64, (&Host, TextRange)> = map_with_capacity(l.fleet.hosts.len());
    let mut out = Vec::new();
    // In file order, so "first" means first in the file.
    let mut vms: Vec<_> = l.fleet.vms().collect();
    vms.sort_by_key(|(h, _)| h.span.start());
    for (h, p) in vms {
        let Some(vmid) = &p.vmid else { continue };
        // VMIDs are unique per cluster, so the node does not matter.
        match seen.get(&vmid.value) {
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
                seen.insert(vmid.value, (h, vmid.span));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::check::testing::codes;

    #[test]
    fn the_example_fleet_is_clean() {
        assert_eq!(codes(super::duplicate_vmids, "", ""), Vec::<&str>::new());
    }

    #[test]
    fn a_vmid_used_twice() {
        assert_eq!(
            codes(super::duplicate_vmids, "vmid = 121;", "vmid = 120;"),
            ["duplicate-vmid"]
        );
    }
}
