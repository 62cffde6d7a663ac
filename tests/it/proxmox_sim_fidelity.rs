//! The simulated Proxmox host (tests/it/support/pvesim/pvesim.py) must print
//! what Proxmox VE prints: its renderers are checked byte-for-byte against
//! the reference samples (tests/fixtures/proxmox-cli, copied from
//! ../shared/reference/proxmox-cli).

use std::path::{Path, PathBuf};
use std::process::Command;

fn sim_py() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/support/pvesim/pvesim.py")
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/proxmox-cli")
            .join(name),
    )
    .expect("fixture")
}

/// Runs `pvesim.py <prog> <args>` on a state file; returns (stdout, stderr, code).
fn run(state: &serde_json::Value, prog: &str, args: &[&str]) -> (String, String, i32) {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("state.json");
    std::fs::write(&path, state.to_string()).expect("write");
    let o = Command::new("python3")
        .arg(sim_py())
        .arg(prog)
        .args(args)
        .env("PVE_SIM_STATE", &path)
        .output()
        .expect("python3 runs");
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
        o.status.code().unwrap_or(-1),
    )
}

/// The reference's sample world.
fn world() -> serde_json::Value {
    let cfg111: serde_json::Map<String, serde_json::Value> = fixture("qm-config-111.txt")
        .lines()
        .map(|l| {
            let (k, v) = l.split_once(": ").expect("k: v");
            (k.to_string(), serde_json::Value::String(v.to_string()))
        })
        .collect();
    serde_json::json!({
        "node": "pve",
        "vms": {
            "100": {"status": "running", "pid": 1834, "config": {"name": "dns01", "memory": "2048", "scsi0": "local-lvm:vm-100-disk-0,size=32G"}},
            "111": {"status": "running", "pid": 2345, "config": cfg111},
            "112": {"status": "stopped", "config": {"memory": "2048", "boot": "order=scsi0;ide2;net0", "ide2": "none,media=cdrom"}},
            "120": {"status": "running", "pid": 912345, "config": {"name": "chelonian-dev-control-plane-1", "memory": "16384", "scsi0": "local-lvm:vm-120-disk-0,size=120.5G"}},
            "9000": {"status": "stopped", "config": {"name": "nixos-template", "memory": "2048", "template": "1", "virtio0": "local-lvm:base-9000-disk-0,size=8G"}}
        },
        "storage": [
            {"name": "local", "type": "dir", "status": "active", "total": 71017632, "used": 21094416, "avail": 46269996},
            {"name": "local-lvm", "type": "lvmthin", "status": "active", "total": 148086784, "used": 0, "avail": 148086784},
            {"name": "zfs", "type": "zfspool", "status": "active", "total": 942931968, "used": 947828, "avail": 941984140}
        ]
    })
}

#[test]
fn qm_list_matches_the_reference() {
    let (out, _, code) = run(&world(), "qm", &["list"]);
    assert_eq!(code, 0);
    assert_eq!(out, fixture("qm-list.txt"));
    let mut w = world();
    w["vms"]["100"]["status"] = "paused".into();
    assert_eq!(
        run(&w, "qm", &["list", "--full"]).0,
        fixture("qm-list.full.txt")
    );
    let (out, _, code) = run(&serde_json::json!({"vms": {}}), "qm", &["list"]);
    assert_eq!((out.as_str(), code), ("", 0), "no VMs: not even a header");
}

#[test]
fn qm_config_and_status_match_the_reference() {
    assert_eq!(
        run(&world(), "qm", &["config", "111"]).0,
        fixture("qm-config-111.txt")
    );
    assert_eq!(
        run(&world(), "qm", &["status", "111"]).0,
        fixture("qm-status-111.txt")
    );
    assert_eq!(
        run(&world(), "qm", &["status", "112"]).0,
        fixture("qm-status-112.txt")
    );
    let (_, err, code) = run(&world(), "qm", &["status", "999"]);
    assert_eq!(
        err,
        "Configuration file 'nodes/pve/qemu-server/999.conf' does not exist\n"
    );
    assert_eq!(code, 2);
    let (_, err, code) = run(&world(), "qm", &["nextid"]);
    assert!(
        err.starts_with(
            "ERROR: unknown command 'qm nextid'\nUSAGE: qm <COMMAND> [ARGS] [OPTIONS]\n"
        ),
        "{err}"
    );
    assert_eq!(code, 255);
}

#[test]
fn pvesm_status_matches_the_reference() {
    assert_eq!(
        run(&world(), "pvesm", &["status"]).0,
        fixture("pvesm-status.txt")
    );
}

#[test]
fn json_renderers_match_the_reference() {
    // Perl-pretty (qm guest cmd) and canonical one-line JSON (pvesh).
    for (func, file) in [
        ("perl_pretty", "guest-network-get-interfaces.json"),
        ("perl_pretty", "guest-network-get-interfaces.tunnel.json"),
        ("canonical", "cluster-resources.json"),
        ("canonical", "status-current-111.running.json"),
    ] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/proxmox-cli")
            .join(file);
        let o = Command::new("python3")
            .arg("-c")
            .arg(format!(
                "import json,sys; sys.path.insert(0, sys.argv[1]); import pvesim; sys.stdout.write(pvesim.{func}(json.load(open(sys.argv[2]))))"
            ))
            .arg(sim_py().parent().expect("dir"))
            .arg(&path)
            .output()
            .expect("python3 runs");
        assert_eq!(
            String::from_utf8_lossy(&o.stdout),
            fixture(file),
            "{file}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

#[test]
fn task_errors_follow_the_reference() {
    let (_, err, code) = run(&world(), "qm", &["start", "111"]);
    assert_eq!((err.as_str(), code), ("VM 111 already running\n", 255));
    let (_, err, code) = run(&world(), "qm", &["shutdown", "112"]);
    assert_eq!((err.as_str(), code), ("VM 112 not running\n\n", 0));
    let (_, err, code) = run(&world(), "qm", &["resize", "111", "virtio0", "10G"]);
    assert_eq!(
        (err.as_str(), code),
        ("shrinking disks is not supported\n", 0)
    );
    let (_, err, code) = run(&world(), "qm", &["clone", "9000", "111"]);
    assert_eq!(
        (err.as_str(), code),
        ("unable to create VM 111: config file already exists\n", 255)
    );
    let (out, _, code) = run(&world(), "pvesh", &["get", "/cluster/nextid"]);
    assert_eq!((out.as_str(), code), ("101\n", 0));
}
