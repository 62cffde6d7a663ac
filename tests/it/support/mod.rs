//! Helpers shared by the integration tests.
// Each test module uses its part of the helpers.
#![allow(dead_code)]

pub mod check;
pub mod fleet_repo;
pub mod integrate;
pub mod own_process;
pub mod pvesim;
pub mod real_sops;
pub mod render_schema;
pub mod secrets;
pub mod sim_proxmox;
pub mod tailscale_api;
pub mod terminal;
pub mod tools;

pub use tools::{optional_tool, stand_in, tool};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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

/// Copies a folder tree, OpenTofu's working data (`.state`, `.terraform`:
/// someone's `pve plan` in the checkout) left out.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        if [".state", ".terraform"].contains(&entry.file_name().to_string_lossy().as_ref()) {
            continue;
        }
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

/// Runs the built `pve` binary.
pub fn pve(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pve"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("pve runs")
}

/// Every file under `dir` with its bytes, by path relative to `dir`; the
/// paths starting with one of `leave_out` (e.g. pve's lock and journal)
/// left out.
pub fn files(dir: &Path, leave_out: &[&str]) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, leave_out: &[&str], out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).expect("under root").to_path_buf();
            if leave_out.iter().any(|l| rel.starts_with(l)) {
                continue;
            }
            if p.is_dir() {
                walk(root, &p, leave_out, out);
            } else {
                out.insert(rel, std::fs::read(&p).expect("read"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, leave_out, &mut out);
    out
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
/// (stdout, stderr).
pub fn out(o: &Output) -> (String, String) {
    (stdout(o), stderr(o))
}

/// The lines a stand-in logged (one JSON object a line; tests/stand-ins),
/// empty when it never ran.
pub fn read_jsonl(p: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}
