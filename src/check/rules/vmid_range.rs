//! `vmid-range`: a clone's VMID lies inside `_proxmox.vmidRange` (default
//! 100–999) and is not the template's.
//!
//! Why: the range is the part of the cluster this fleet manages; a VM
//! with the template's VMID would manage (and destroy) the template.
//!
//! ```nix
//! web = { proxmox = { vmid = 5000; }; };   # vmid-range
//! db = { proxmox = { vmid = 9000; }; };    # vmid-is-template
//! ```

use crate::diag::{Code, Diagnostic};
use crate::fleet::Loaded;

pub fn vmid_range(l: &Loaded) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let (lo, hi, template) = match &l.fleet.proxmox {
        Some(c) => (c.vmid_range.0, c.vmid_range.1, c.template_vmids()),
        None => (100, 999, Vec::new()),
    };
    for (h, p) in l.fleet.vms() {
        let Some(vmid) = &p.vmid else { continue };
        if template.contains(&vmid.value) {
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

#[cfg(test)]
mod tests {
    use crate::check::testing::codes;

    #[test]
    fn the_example_fleet_is_clean() {
        assert_eq!(codes(super::vmid_range, "", ""), Vec::<&str>::new());
    }

    #[test]
    fn a_vmid_outside_the_range() {
        assert_eq!(
            codes(super::vmid_range, "vmid = 120;", "vmid = 5000;"),
            ["vmid-range"]
        );
    }

    #[test]
    fn the_template_vmid() {
        assert_eq!(
            codes(super::vmid_range, "vmid = 121;", "vmid = 9000;"),
            ["vmid-is-template"]
        );
    }
}
