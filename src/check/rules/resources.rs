//! `resources`: cores, memory and VLAN tag are within what Proxmox accepts.
//!
//! Why: memory is in MiB, and `memory = 8;` (meant as GiB) would give a VM
//! that cannot boot; Proxmox itself would only refuse mid-apply.
//!
//! ```nix
//! web = { proxmox = { memory = 8; }; };   # memory-range: 8 GiB is 8192
//! ```

use crate::diag::{Code, Diagnostic};
use crate::fleet::domain::{MAX_CORES, MAX_MEMORY, MIN_MEMORY};
use crate::fleet::{Loaded, MiB};

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

#[cfg(test)]
mod tests {
    use crate::check::testing::codes;

    #[test]
    fn the_example_fleet_is_clean() {
        assert_eq!(codes(super::resources, "", ""), Vec::<&str>::new());
    }

    #[test]
    fn memory_in_gib() {
        assert_eq!(
            codes(super::resources, "memory = 2048; disk", "memory = 8; disk"),
            ["memory-range"]
        );
    }

    #[test]
    fn no_cores() {
        assert_eq!(
            codes(
                super::resources,
                "cores = 2; memory = 2048; disk = \"32G\"; node",
                "cores = 0; memory = 2048; disk = \"32G\"; node"
            ),
            ["cores-range"]
        );
    }

    #[test]
    fn a_vlan_out_of_range() {
        assert_eq!(
            codes(super::resources, "vmid = 121;", "vmid = 121; vlan = 4095;"),
            ["vlan-range"]
        );
    }
}
