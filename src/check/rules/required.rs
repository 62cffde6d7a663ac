//! `required`: a VM's `proxmox` set names its `vmid`, and a clone of the
//! template also its `cores` and `memory`.
//!
//! Why: without them OpenTofu cannot create the VM; a readonly VM only
//! needs its VMID to be found.
//!
//! ```nix
//! web = { proxmox = { cores = 2; memory = 2048; }; };   # missing-key: vmid
//! ```

use crate::diag::{did_you_mean, Code, Diagnostic};
use crate::fleet::model::PROXMOX_KEYS;
use crate::fleet::value::Attrs;
use crate::fleet::{Host, Loaded, ProxmoxSpec};

pub fn required_keys(l: &Loaded) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (h, set) in crate::check::host_sets(l) {
        let Some(p) = &h.proxmox else { continue };
        let written = set
            .and_then(|s| s.get("proxmox"))
            .and_then(|a| a.value.as_attrs());
        let missing: Vec<&str> = ["vmid", "cores", "memory"]
            .into_iter()
            .filter(|key| *key == "vmid" || p.clones_template())
            .filter(|key| !p.readonly && absent(p, written, key))
            .collect();
        if let Some(d) = missing_keys(h, p, &missing) {
            out.push(d);
        }
    }
    out
}

/// Whether `key` is missing from the set as written: a key of the wrong
/// type is there (its wrong-type error says what to fix), and so is a
/// key misspelled close enough for the unknown-key error to name it.
fn absent(p: &ProxmoxSpec, written: Option<&Attrs>, key: &str) -> bool {
    let typed = match key {
        "vmid" => p.vmid.is_some(),
        "cores" => p.cores.is_some(),
        _ => p.memory.is_some(),
    };
    // A key the model read is there: only an absent one needs the search
    // for a misspelling (a scan of the set against every known key).
    if typed {
        return false;
    }
    let Some(attrs) = written else {
        return true;
    };
    // Written but of another type: the type's finding, not this one.
    if attrs.contains_key(key) {
        return false;
    }
    let misspelled = attrs.iter().any(|(k, _)| {
        !PROXMOX_KEYS.contains(&k.as_str())
            && did_you_mean(k, PROXMOX_KEYS.iter().copied()) == Some(key)
    });
    !misspelled
}

fn missing_keys(h: &Host, p: &ProxmoxSpec, missing: &[&str]) -> Option<Diagnostic> {
    let example = match *missing.first()? {
        "vmid" => "`vmid = 120;` (`pve new` picks the next free VMID)",
        "cores" => "`cores = 2;`",
        _ => "`memory = 4096;` (MiB)",
    };
    let keys = missing
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    Some(
        Diagnostic::error(
            Code::MissingKey,
            p.span,
            format!("`{}.proxmox` lacks {keys}", h.name),
        )
        .help(format!("add e.g. {example}")),
    )
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
    fn a_key_of_the_wrong_type_is_not_missing_too() {
        assert_eq!(
            codes(super::required_keys, "cores = 2;", "cores = \"four\";"),
            Vec::<&str>::new()
        );
    }

    #[test]
    fn a_misspelled_key_is_not_missing_too() {
        // The unknown-key error (with its did-you-mean) is the one finding.
        assert_eq!(
            codes(super::required_keys, "vmid = 120;", "vmdi = 120;"),
            Vec::<&str>::new()
        );
        assert_eq!(
            codes(
                super::required_keys,
                "cores = 2; memory = 2048; disk",
                "corse = 2; memory = 2048; disk"
            ),
            Vec::<&str>::new()
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
