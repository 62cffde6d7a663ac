//! `template`: a clone of the SeaBIOS/virtio0 template does not change
//! firmware, disk bus or machine type.
//!
//! Why: the clone boots from the template's disk; OVMF, another disk bus
//! or q35 leave it unbootable (the old README's "common mistakes").
//!
//! ```nix
//! web = { proxmox = { bios = "ovmf"; }; };   # template-mismatch
//! ```

use crate::diag::{Code, Diagnostic};
use crate::fleet::model::Spanned;
use crate::fleet::Loaded;

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

#[cfg(test)]
mod tests {
    use crate::check::testing::codes;

    #[test]
    fn the_example_fleet_is_clean() {
        assert_eq!(
            codes(super::template_compatibility, "", ""),
            Vec::<&str>::new()
        );
    }

    #[test]
    fn a_clone_with_ovmf() {
        assert_eq!(
            codes(
                super::template_compatibility,
                "vmid = 121;",
                "vmid = 121; bios = \"ovmf\";"
            ),
            ["template-mismatch"]
        );
    }

    #[test]
    fn an_imported_vm_may() {
        assert_eq!(
            codes(
                super::template_compatibility,
                "vmid = 121;",
                "vmid = 121; bios = \"ovmf\"; cloneFromTemplate = false;"
            ),
            Vec::<&str>::new()
        );
    }
}
