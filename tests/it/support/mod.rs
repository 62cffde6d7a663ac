//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root (where the example fleet lives).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The real Nix evaluator: `nix-instantiate --eval --strict --json FILE`.
/// Returns stdout on success, stderr on failure.
pub fn nix_eval(file: &Path) -> Result<String, String> {
    let out = Command::new("nix-instantiate")
        .args(["--eval", "--strict", "--json"])
        .arg(file)
        .output()
        .expect("nix-instantiate runs (scripts/test installs Debian's nix-bin)");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Copies the example fleet (hosts.nix and hosts/) into a fresh temp dir.
pub fn example_fleet() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(&repo_root().join("hosts"), &dir.path().join("hosts"));
    std::fs::copy(repo_root().join("hosts.nix"), dir.path().join("hosts.nix"))
        .expect("copy hosts.nix");
    dir
}

/// [`example_fleet`] with its committed secrets and generated files
/// (`vms/tofu/config.tf.json`, `vms/known_hosts`), as `pve render` left them.
pub fn example_fleet_rendered() -> tempfile::TempDir {
    let dir = example_fleet();
    copy_dir(&repo_root().join("secrets"), &dir.path().join("secrets"));
    std::fs::create_dir_all(dir.path().join("vms/tofu")).expect("mkdir");
    for f in ["vms/tofu/config.tf.json", "vms/known_hosts"] {
        std::fs::copy(repo_root().join(f), dir.path().join(f)).expect("copy");
    }
    dir
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

/// Runs the built `pve` binary.
pub fn pve(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_pve"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("pve runs")
}

pub fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
pub fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
