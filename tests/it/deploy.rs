//! `pve deploy` and the Proxmox snapshot operations under it.
//!
//! - The simulated Proxmox host's snapshot commands (pvesim.py, a stand-in)
//!   are checked byte for byte against the reference samples
//!   (tests/fixtures/proxmox-cli, copied from ../shared/reference/proxmox-cli).
//! - `Proxmox::{snapshot, list_snapshots, rollback, delete_snapshot}` run
//!   against that simulated host over real SSH.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use pve_fleet::remote::proxmox::snapshot::{Snapshot, SnapshotError};
use pve_fleet::remote::proxmox::{Proxmox, Settings};
use pve_fleet::remote::ssh::Endpoint;
use serde_json::{json, Value};

use crate::support::pvesim::{user, Sim};

fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/proxmox-cli")
            .join(name),
    )
    .expect("fixture")
}

fn sim_py() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/support/pvesim/pvesim.py")
}

/// Runs the simulated host's `<prog> <args>` on `state` (kept in `dir`
/// between calls); returns (stdout, stderr, exit code).
fn sim_run(dir: &Path, prog: &str, args: &[&str]) -> (String, String, i32) {
    let o = Command::new("python3")
        .arg(sim_py())
        .arg(prog)
        .args(args)
        .env("PVE_SIM_STATE", dir.join("state.json"))
        .output()
        .expect("python3 runs");
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
        o.status.code().unwrap_or(-1),
    )
}

/// VM 111 of the reference (virtio0 + efidisk0 on LVM-thin, agent on).
fn reference_world(dir: &Path, status: &str, agent_running: bool) {
    let state = json!({
        "node": "pve",
        // 2026-01-15 10:00:00 UTC minus one step: the first snapshot lands there.
        "clock": 1768471200 - 60,
        "storage": [
            {"name": "local", "type": "dir", "status": "active", "total": 1, "used": 0, "avail": 1},
            {"name": "local-lvm", "type": "lvmthin", "status": "active", "total": 1, "used": 0, "avail": 1}
        ],
        "vms": {"111": {"status": status, "agent_running": agent_running, "config": {
            "agent": "enabled=1", "name": "nixos-web01",
            "virtio0": "local-lvm:vm-111-disk-0,discard=on,iothread=1,size=64G",
            "efidisk0": "local-lvm:vm-111-disk-1,efitype=4m,pre-enrolled-keys=0,size=4M"}}}
    });
    std::fs::write(dir.join("state.json"), state.to_string()).expect("state");
}

#[test]
fn simulated_snapshot_commands_print_what_proxmox_prints() {
    let d = tempfile::tempdir().expect("tmp");
    reference_world(d.path(), "running", true);
    let (out, err, code) = sim_run(
        d.path(),
        "qm",
        &[
            "snapshot",
            "111",
            "pre-deploy",
            "--description",
            "before deploy",
        ],
    );
    assert_eq!(
        (out.as_str(), err.as_str(), code),
        (fixture("qm-snapshot-111-pre-deploy.txt").as_str(), "", 0)
    );
    assert_eq!(
        sim_run(d.path(), "qm", &["listsnapshot", "111"]).0,
        fixture("qm-listsnapshot-111.txt")
    );
    // The API: the same snapshot, `current` last with the config digest.
    let (api, _, _) = sim_run(
        d.path(),
        "pvesh",
        &[
            "get",
            "/nodes/pve/qemu/111/snapshot",
            "--output-format",
            "json",
        ],
    );
    let got: Value = serde_json::from_str(&api).expect("json");
    let want: Value = serde_json::from_str(&fixture("pvesh-get-snapshot-111.json")).expect("json");
    assert_eq!(got[0], want[0]);
    assert_eq!(got[1]["name"], "current");
    assert_eq!(got[1]["parent"], "pre-deploy");
    assert_eq!(got.as_array().map(Vec::len), Some(2));
    assert!(
        api.ends_with("}]\n") && !api.contains(": "),
        "one canonical line"
    );

    // Errors: exact text, exit code.
    let (_, err, code) = sim_run(d.path(), "qm", &["snapshot", "111", "pre.deploy"]);
    assert_eq!(
        (err.as_str(), code),
        (
            fixture("qm-snapshot-111-invalid-name.stderr.txt").as_str(),
            255
        )
    );
    let long = "a".repeat(41);
    let (_, err, code) = sim_run(d.path(), "qm", &["snapshot", "111", &long]);
    assert_eq!(
        (err.as_str(), code),
        (
            fixture("qm-snapshot-111-name-too-long.stderr.txt").as_str(),
            255
        )
    );
    let (_, err, code) = sim_run(d.path(), "qm", &["snapshot", "111", "pre-deploy"]);
    assert_eq!(
        (err.as_str(), code),
        ("snapshot name 'pre-deploy' already used\n", 255)
    );

    // Rollback and delete, as LVM-thin on PVE 9 prints them.
    assert_eq!(
        sim_run(d.path(), "qm", &["rollback", "111", "pre-deploy"]).0,
        fixture("qm-rollback-111-pre-deploy.txt")
    );
    let (_, err, code) = sim_run(d.path(), "qm", &["rollback", "111", "nope"]);
    assert_eq!(
        (err.as_str(), code),
        ("snapshot 'nope' does not exist\n", 255)
    );
    assert_eq!(
        sim_run(d.path(), "qm", &["delsnapshot", "111", "pre-deploy"]).0,
        fixture("qm-delsnapshot-111-pre-deploy.txt")
    );
    assert_eq!(
        sim_run(d.path(), "qm", &["listsnapshot", "111"]).0,
        fixture("qm-listsnapshot-112.no-snapshots.txt"),
        "only `current` is left"
    );
}

#[test]
fn simulated_snapshot_failures_print_what_proxmox_prints() {
    let d = tempfile::tempdir().expect("tmp");
    // Agent configured but not answering (PVE 9.2): one line, no freeze.
    reference_world(d.path(), "running", false);
    let (out, _, code) = sim_run(d.path(), "qm", &["snapshot", "111", "pre-deploy"]);
    assert_eq!(
        (out.as_str(), code),
        (
            fixture("qm-snapshot-111-pre-deploy.agent-down.pve92.txt").as_str(),
            0
        )
    );
    // A stopped VM: no freeze lines (the PVE 8 sample's shape).
    reference_world(d.path(), "stopped", false);
    let (out, _, _) = sim_run(d.path(), "qm", &["snapshot", "111", "pre-deploy"]);
    assert_eq!(out, fixture("qm-snapshot-111-pre-deploy.pve8.txt"));
    // The thin pool is full: stdout up to the cleanup, stderr with its
    // trailing space, exit 255.
    reference_world(d.path(), "running", true);
    let mut s: Value =
        serde_json::from_str(&std::fs::read_to_string(d.path().join("state.json")).expect("state"))
            .expect("json");
    s["vms"]["111"]["snapshot_fault"] = "thinpool-full".into();
    std::fs::write(d.path().join("state.json"), s.to_string()).expect("state");
    let (out, err, code) = sim_run(d.path(), "qm", &["snapshot", "111", "pre-deploy"]);
    assert_eq!(
        (out.as_str(), err.as_str(), code),
        (
            fixture("qm-snapshot-111-pre-deploy.thinpool-full.stdout.txt").as_str(),
            fixture("qm-snapshot-111-pre-deploy.thinpool-full.stderr.txt").as_str(),
            255
        )
    );
    // A disk on a directory storage (raw): the feature is not there.
    s["vms"]["111"]["config"]["virtio0"] = "local:111/vm-111-disk-0.raw,size=64G".into();
    std::fs::write(d.path().join("state.json"), s.to_string()).expect("state");
    let (_, err, code) = sim_run(d.path(), "qm", &["snapshot", "111", "pre-deploy"]);
    assert_eq!(
        (err.as_str(), code),
        ("snapshot feature is not available\n", 255)
    );
}

/// The library's Proxmox connection to `sim` (settings written out: the
/// environment is the test process's, shared by every test).
fn proxmox(sim: &Sim) -> Proxmox {
    sim.pin_host_key();
    let kh = sim.fleet.join("vms/proxmox_known_hosts");
    Proxmox::connect(Settings {
        endpoint: Endpoint {
            host: "127.0.0.1".into(),
            user: user(),
            port: Some(sim.port),
            identity: Some(sim.client_key.clone()),
        },
        node: "pve".into(),
        bridge: "vmbr0".into(),
        known_hosts: vec![kh.clone()],
        proxmox_known_hosts: kh,
        connect_timeout: Duration::from_secs(10),
        op_timeout: None,
        reuse: true,
        readonly: [104].into_iter().collect(),
    })
    .expect("connect")
}

fn names(snaps: &[Snapshot]) -> Vec<&str> {
    snaps.iter().map(|s| s.name.as_str()).collect()
}

#[test]
fn snapshot_operations_against_the_simulated_host() {
    let sim = Sim::start();
    sim.update(|s| s["clock"] = json!(1768471200));
    let px = proxmox(&sim);
    assert!(px.list_snapshots(111).expect("list").is_empty());
    let taken = px
        .snapshot(111, "first", "before deploy")
        .expect("snapshot");
    assert_eq!(taken.unfrozen, None, "the agent answered: frozen");
    px.snapshot(111, "second", "").expect("snapshot");
    let snaps = px.list_snapshots(111).expect("list");
    assert_eq!(names(&snaps), ["first", "second"]);
    assert_eq!(snaps[1].parent.as_deref(), Some("first"));
    assert_eq!(snaps[0].description, "before deploy");
    assert!(snaps[0].snaptime < snaps[1].snaptime);

    // The agent is down: the snapshot is taken, unfrozen, and says so.
    sim.update(|s| s["vms"]["111"]["agent_running"] = json!(false));
    let taken = px.snapshot(111, "third", "").expect("snapshot");
    assert_eq!(
        taken.unfrozen.as_deref(),
        Some("agent configured but not running?")
    );

    px.rollback(111, "first").expect("rollback");
    assert_eq!(sim.state()["vms"]["111"]["status"], "stopped");
    px.delete_snapshot(111, "second").expect("delete");
    assert_eq!(
        names(&px.list_snapshots(111).expect("list")),
        ["first", "third"]
    );

    // Proxmox's refusals come back typed.
    let e = px.rollback(111, "nope").expect_err("absent");
    assert!(e.to_string().contains("has no snapshot `nope`"), "{e}");
    let e = px.snapshot(111, "first", "").expect_err("exists");
    assert!(e.to_string().contains("already has a snapshot"), "{e}");
    sim.update(|s| s["vms"]["111"]["snapshot_fault"] = json!("thinpool-full"));
    let e = px.snapshot(111, "fourth", "").expect_err("pool full");
    assert!(e.to_string().contains("thin pool is full"), "{e}");
    assert_eq!(e.exit_code(), 3);
    sim.update(|s| {
        s["vms"]["111"]["config"]["virtio0"] = json!("local:111/vm-111-disk-0.raw,size=64G")
    });
    let e = px.snapshot(111, "fifth", "").expect_err("unsupported");
    assert!(
        matches!(
            e,
            pve_fleet::error::AppError::Snapshot(SnapshotError::Unsupported { vmid: 111 })
        ),
        "{e}"
    );
    // Refused before connecting: a bad name, a readonly VM.
    let before = sim.calls().len();
    assert_eq!(
        px.snapshot(111, "pre.deploy", "")
            .expect_err("name")
            .exit_code(),
        2
    );
    assert!(px
        .snapshot(104, "x1", "")
        .expect_err("readonly")
        .to_string()
        .contains("readonly"));
    assert_eq!(sim.calls().len(), before, "nothing reached Proxmox");
    px.close();
}
