//! A copy of the example fleet in a temporary folder, for tests that run
//! `pve` on it (render_cli, hostile_input).
#![allow(dead_code)]
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::Path;

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &t);
        } else {
            std::fs::copy(e.path(), &t).unwrap();
        }
    }
}

/// A copy of the example fleet with its committed generated files.
pub fn fleet() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::copy(repo().join("hosts.nix"), d.path().join("hosts.nix")).unwrap();
    for sub in ["hosts", "secrets"] {
        copy_dir(&repo().join(sub), &d.path().join(sub));
    }
    std::fs::create_dir_all(d.path().join("vms/tofu")).unwrap();
    for f in ["vms/tofu/config.tf.json", "vms/known_hosts"] {
        std::fs::copy(repo().join(f), d.path().join(f)).unwrap();
    }
    d
}
