//! The layout of config.tf.json (issue 18): serde's pretty printing for the
//! example fleet, one VM per line with `--compact` and for a generated
//! fleet above 500 VMs; the same JSON value whatever the layout.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::Path;
use std::process::Command;

use crate::support::{example_fleet_rendered as fleet, repo_root};

fn render(hosts_nix: &Path, out: &Path, extra: &[&str]) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_pve"))
        .arg("-f")
        .arg(hosts_nix)
        .args(["render", "tofu", "--out-dir"])
        .arg(out)
        .args(extra)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::read_to_string(out.join("vms/tofu/config.tf.json")).unwrap()
}

/// The lines of `text` that hold a whole VM resource.
fn vm_lines(text: &str) -> usize {
    text.lines()
        .filter(|l| l.contains("\"vm_id\":") && l.trim_end().ends_with(['}', ',']))
        .count()
}

#[test]
fn compact_is_the_same_json_one_vm_per_line() {
    let d = fleet();
    let hosts = d.path().join("hosts.nix");
    let out = tempfile::tempdir().unwrap();
    let pretty = render(&hosts, &out.path().join("pretty"), &[]);
    let compact = render(&hosts, &out.path().join("compact"), &["--compact"]);
    // The committed file is the pretty one (small fleets are unchanged).
    let committed = std::fs::read_to_string(d.path().join("vms/tofu/config.tf.json")).unwrap();
    assert_eq!(pretty, committed);
    let value = |t: &str| serde_json::from_str::<serde_json::Value>(t).unwrap();
    assert_eq!(value(&pretty), value(&compact));
    let vms = value(&pretty)["resource"]["proxmox_virtual_environment_vm"]
        .as_object()
        .unwrap()
        .len();
    assert!(vms >= 2, "the example fleet has VMs");
    assert_eq!(vm_lines(&pretty), 0, "pretty spreads each VM over lines");
    assert_eq!(vm_lines(&compact), vms);
    assert!(compact.len() < pretty.len());
    assert!(compact.ends_with("}\n"));
}

#[test]
fn a_fleet_above_500_vms_is_written_one_vm_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new("python3")
        .arg(repo_root().join("scripts/gen-fleet"))
        .args(["--shape", "nopaths-nolet-line", "600"])
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success(), "gen-fleet failed");
    let hosts = dir.path().join("hosts.nix");
    let text = render(&hosts, &dir.path().join("out"), &[]);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let vms = v["resource"]["proxmox_virtual_environment_vm"]
        .as_object()
        .unwrap()
        .len();
    // Laptops and readonly VMs have no resource: 8 in 10 hosts do.
    assert_eq!(vms, 480);
    assert_eq!(vm_lines(&text), vms);
    // Asking for it changes nothing here.
    let again = render(&hosts, &dir.path().join("out2"), &["--compact"]);
    assert_eq!(again, text);
}
