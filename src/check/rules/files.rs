//! `files`: a host's `configurationFile` and `homeFile` exist.
//!
//! Why: the NixOS build fails on a missing file long after `pve new`;
//! `pve scaffold` writes one.
//!
//! ```nix
//! web = { configurationFile = ./hosts/web/configuratoin.nix; };   # missing-file
//! ```

use crate::check::root_dir::RootDir;
use crate::diag::{Code, Diagnostic};
use crate::fleet::{Host, Loaded, Spanned};

/// Whether the `configuration` rule reads the host's configuration.nix (and so also
/// reports it missing).
pub fn reads_configuration(h: &Host) -> bool {
    h.configuration_file.is_some()
        && h.proxmox
            .as_ref()
            .is_some_and(|p| p.clones_template() && !p.readonly)
}

pub fn host_files(l: &Loaded) -> Vec<Diagnostic> {
    let wants = |h: &Host| {
        h.home_file.is_some() || (h.configuration_file.is_some() && !reads_configuration(h))
    };
    let root = RootDir::open(&l.root_dir);
    crate::check::per_host_in_parallel(l, wants, |h, out| {
        for (key, f) in [
            ("configurationFile", &h.configuration_file),
            ("homeFile", &h.home_file),
        ] {
            let Some(f) = f else { continue };
            // The configuration rule reads this file anyway and reports it
            // missing; one system call per file matters at 10,000 hosts.
            if key == "configurationFile" && reads_configuration(h) {
                continue;
            }
            if !root.is_file(&f.value) {
                out.push(missing_file(l, h, key, f));
            }
        }
    })
}

pub(crate) fn missing_file(
    l: &Loaded,
    h: &Host,
    key: &str,
    f: &Spanned<std::path::PathBuf>,
) -> Diagnostic {
    let shown = crate::fleet::value::display_path(&f.value, &l.root_dir);
    Diagnostic::error(
        Code::MissingFile,
        f.span,
        format!("`{}.{key}` points at {shown}, which does not exist", h.name),
    )
    .help(format!(
        "create it (`pve scaffold {}` writes one from {}) or fix the path",
        h.name,
        if h.proxmox.is_some() {
            "the fleet's hosts/vm_base, or the built-in base for VMs"
        } else {
            "the built-in base for a machine that is not a VM"
        }
    ))
}

#[cfg(test)]
mod tests {
    use crate::check::testing::codes;

    #[test]
    fn the_example_fleet_is_clean() {
        assert_eq!(codes(super::host_files, "", ""), Vec::<&str>::new());
    }

    #[test]
    fn a_missing_home_file() {
        assert_eq!(
            codes(
                super::host_files,
                "  db = {",
                "  db = {\n    homeFile = ./hosts/db/home.nix;"
            ),
            ["missing-file"]
        );
    }
}
