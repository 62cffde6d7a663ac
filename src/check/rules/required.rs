//! `required`: a VM's `proxmox` set names its `vmid`, and a clone of the
//! template also its `cores` and `memory`.
//!
//! Why: without them OpenTofu cannot create the VM; a readonly VM only
//! needs its VMID to be found.
//!
//! ```nix
//! web = { proxmox = { cores = 2; memory = 2048; }; };   # missing-key: vmid
//! ```

use crate::diag::{Code, Diagnostic};
use crate::fleet::Loaded;

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

#[cfg(test)]
mod tests {
    use crate::check::testing::codes;

    #[test]
    fn the_example_fleet_is_clean() {
        assert_eq!(codes(super::required_keys, "", ""), Vec::<&str>::new());
    }

    #[test]
    fn a_vm_without_vmid() {
        assert_eq!(
            codes(super::required_keys, "vmid = 120; ", ""),
            ["missing-key"]
        );
    }

    #[test]
    fn a_clone_without_memory() {
        assert_eq!(
            codes(super::required_keys, "memory = 2048; disk", "disk"),
            ["missing-key"]
        );
    }
}
