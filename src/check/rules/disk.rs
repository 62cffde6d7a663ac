//! `disk`: a VM's `disk` is a size in whole GiB or TiB (`64G`, `1T`), or
//! one of the non-sizes (`passthrough`, `none`).
//!
//! Why: the provider reads the number only; `64GB` or `64` would be
//! dropped or misread at render time.
//!
//! ```nix
//! web = { proxmox = { disk = "64GB"; }; };   # bad-disk: write "64G"
//! ```

use crate::diag::{Code, Diagnostic};
use crate::fleet::domain::NON_SIZE_DISKS;
use crate::fleet::{DiskSize, Loaded};

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

#[cfg(test)]
mod tests {
    use crate::check::testing::codes;

    #[test]
    fn the_example_fleet_is_clean() {
        assert_eq!(codes(super::disk, "", ""), Vec::<&str>::new());
    }

    #[test]
    fn a_size_with_a_wrong_unit() {
        assert_eq!(
            codes(super::disk, "disk = \"32G\"; node", "disk = \"32GB\"; node"),
            ["bad-disk"]
        );
    }

    #[test]
    fn a_non_size() {
        assert_eq!(
            codes(
                super::disk,
                "disk = \"32G\"; node",
                "disk = \"passthrough\"; node"
            ),
            Vec::<&str>::new()
        );
    }
}
