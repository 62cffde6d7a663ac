//! Single-VM operations run on the node that holds the VM (issue 15,
//! item 3): connected to node `pve` of the simulated three-node cluster,
//! a VM on `pve2` is found through `/cluster/resources` and reached with
//! `pvesh` against `/nodes/pve2/qemu/<vmid>/…` on the one pinned host
//! (never `qm`, which on `pve` would say the VM does not exist). Tasks
//! are followed through `/nodes/pve2/tasks/<UPID>/status` and, when they
//! fail, their log. pvesim.py (a stand-in for Proxmox) records every call.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use pve_fleet::error::AppError;
use pve_fleet::remote::proxmox::snapshot::SnapshotError;
use pve_fleet::remote::proxmox::{Proxmox, ProxmoxError};
use serde_json::{json, Value};

use crate::support::pvesim::Sim;
use crate::support::{stderr, stdout};

/// A cluster whose VMs 111 (running) and 112 (stopped) live on pve2.
fn cluster() -> Sim {
    let s = Sim::start();
    s.pin_host_key();
    s.make_cluster();
    s.update(|st| {
        st["vms"]["111"]["node"] = json!("pve2");
        st["vms"]["112"]["node"] = json!("pve2");
    });
    s
}

fn proxmox(sim: &Sim) -> Proxmox {
    crate::support::sim_proxmox::connect(sim, Default::default())
}

/// The pvesh calls with `verb` on a path starting with `prefix`.
fn pvesh(sim: &Sim, verb: &str, prefix: &str) -> Vec<Vec<String>> {
    sim.calls()
        .into_iter()
        .filter(|c| c[0] == "pvesh" && c[1] == verb && c[2].starts_with(prefix))
        .collect()
}

fn no_qm_for(sim: &Sim, vmid: &str) {
    let calls = sim.calls();
    assert!(
        !calls
            .iter()
            .any(|c| c[0] == "qm" && c.contains(&vmid.to_string())),
        "{calls:?}"
    );
}

fn ops_ok(sim: &Sim, args: &[&str]) -> String {
    let o = sim.ops().args(args).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
    stdout(&o)
}

#[test]
fn proxmox_ops_reach_a_vm_on_another_node_through_pvesh_tasks() {
    let s = cluster();
    // status and config come from pve2's API paths.
    let st: Value = serde_json::from_str(&ops_ok(&s, &["status", "111", "--json"])).unwrap();
    assert_eq!(
        (st["vmid"].clone(), st["status"].clone()),
        (json!(111), json!("running"))
    );
    let cfg: Value = serde_json::from_str(&ops_ok(&s, &["config", "111", "--json"])).unwrap();
    assert_eq!(cfg["name"], "nixos-web01");
    assert_eq!(
        pvesh(&s, "get", "/nodes/pve2/qemu/111/status/current").len(),
        1
    );
    assert_eq!(pvesh(&s, "get", "/nodes/pve2/qemu/111/config").len(), 1);

    // stop: a task on pve2 whose status reads "running" twice before it
    // is seen stopped; the state changes on pve2 only.
    s.update(|st| st["faults"]["task_running_polls"] = json!(2));
    let out = ops_ok(&s, &["stop", "111"]);
    assert!(out.ends_with("stopped VM 111\n"), "{out}");
    assert_eq!(s.state()["vms"]["111"]["status"], "stopped");
    assert_eq!(s.state()["vms"]["111"]["node"], "pve2");
    let stop = pvesh(&s, "create", "/nodes/pve2/qemu/111/status/stop");
    assert_eq!(stop.len(), 1, "{:?}", s.calls());
    let upid = first_task(&s);
    assert!(
        upid.starts_with("UPID:pve2:") && upid.ends_with(":qmstop:111:root@pam:"),
        "{upid}"
    );
    let polls = pvesh(&s, "get", &format!("/nodes/pve2/tasks/{upid}/status"));
    assert_eq!(polls.len(), 3, "{polls:?}");
    s.update(|st| st["faults"]["task_running_polls"] = json!(0));

    ops_ok(&s, &["start", "111"]);
    assert_eq!(s.state()["vms"]["111"]["status"], "running");
    assert_eq!(
        pvesh(&s, "create", "/nodes/pve2/qemu/111/status/start").len(),
        1
    );

    // A task that fails (starting a running VM): exit 3 with Proxmox's words.
    let o = s.ops().args(["start", "111"]).output().unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("VM 111 already running"), "{err}");
    assert!(err.contains("on node pve2 failed"), "{err}");

    // destroy checks the name on pve2, then deletes there.
    let o = s
        .ops()
        .args(["destroy", "112", "--yes", "--expect-name", "VM 112"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(s.state()["vms"].get("112").is_none());
    let del = pvesh(&s, "delete", "/nodes/pve2/qemu/112");
    assert_eq!(del.len(), 1);
    assert!(
        del[0].ends_with(&["--purge".to_string(), "1".to_string()]),
        "{del:?}"
    );

    no_qm_for(&s, "111");
    no_qm_for(&s, "112");
    // A VM on the connected node keeps the qm path.
    ops_ok(&s, &["stop", "100"]);
    assert!(s.calls().iter().any(|c| c[..] == ["qm", "stop", "100"]));
}

#[test]
fn snapshots_of_a_vm_on_another_node_and_their_typed_failures() {
    let s = cluster();
    let px = proxmox(&s);
    let taken = px
        .snapshot(111, "pve-pre-deploy-1", "before deploy")
        .unwrap();
    // The task log says how the guest was frozen, as qm would have.
    assert!(
        taken.output.contains("freeze guest filesystem"),
        "{}",
        taken.output
    );
    assert_eq!(taken.unfrozen, None);
    let names: Vec<String> = px
        .list_snapshots(111)
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["pve-pre-deploy-1"]);
    let made = pvesh(&s, "create", "/nodes/pve2/qemu/111/snapshot");
    assert_eq!(made.len(), 1);
    assert!(made[0]
        .windows(2)
        .any(|w| w == ["--snapname", "pve-pre-deploy-1"]));

    // The name is taken: the task fails, typed from its log.
    let e = px.snapshot(111, "pve-pre-deploy-1", "again").unwrap_err();
    assert!(
        matches!(
            e,
            AppError::Snapshot(SnapshotError::Exists { vmid: 111, .. })
        ),
        "{e:?}"
    );

    px.rollback(111, "pve-pre-deploy-1").unwrap();
    assert_eq!(
        s.state()["vms"]["111"]["rolled_back_to"],
        "pve-pre-deploy-1"
    );
    assert_eq!(
        pvesh(
            &s,
            "create",
            "/nodes/pve2/qemu/111/snapshot/pve-pre-deploy-1/rollback"
        )
        .len(),
        1
    );
    px.delete_snapshot(111, "pve-pre-deploy-1").unwrap();
    assert!(s.state()["vms"]["111"]["snapshots"]
        .as_object()
        .unwrap()
        .is_empty());
    assert_eq!(
        pvesh(
            &s,
            "delete",
            "/nodes/pve2/qemu/111/snapshot/pve-pre-deploy-1"
        )
        .len(),
        1
    );
    let e = px.delete_snapshot(111, "nope").unwrap_err();
    assert!(
        matches!(e, AppError::Snapshot(SnapshotError::NotFound { .. })),
        "{e:?}"
    );

    // A disk on storage that cannot snapshot: the task fails; what pve
    // deploy goes by (Unsupported) comes from the task log.
    s.update(|st| {
        st["vms"]["111"]["config"]["virtio0"] = json!("local:111/vm-111-disk-0.raw,size=64G");
    });
    let e = px.snapshot(111, "pve-pre-deploy-2", "x").unwrap_err();
    assert!(
        matches!(
            e,
            AppError::Snapshot(SnapshotError::Unsupported { vmid: 111 })
        ),
        "{e:?}"
    );
    let logs = s
        .calls()
        .into_iter()
        .filter(|c| {
            c[0] == "pvesh" && c[2].starts_with("/nodes/pve2/tasks/") && c[2].ends_with("/log")
        })
        .count();
    assert!(logs >= 1);
    // Any other task failure keeps Proxmox's message and the log.
    s.update(|st| {
        st["vms"]["111"]["config"]["template"] = json!("1");
    });
    match px.snapshot(111, "pve-pre-deploy-3", "x").unwrap_err() {
        AppError::Proxmox(ProxmoxError::TaskFailed {
            node,
            exitstatus,
            log_tail,
            ..
        }) => {
            assert_eq!(node, "pve2");
            assert_eq!(exitstatus, "you can't take a snapshot if it's a template");
            assert_eq!(
                log_tail.last().map(String::as_str),
                Some("TASK ERROR: you can't take a snapshot if it's a template")
            );
        }
        other => panic!("{other:?}"),
    }
    no_qm_for(&s, "111");
    px.close();
}

#[test]
fn import_reads_the_config_of_a_vm_on_another_node() {
    let s = cluster();
    let o = s
        .pve()
        .args(["import", "112", "--name", "legacy"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let hosts = std::fs::read_to_string(s.fleet.join("hosts.nix")).unwrap();
    let entry = &hosts[hosts.find("legacy = {").expect("entry")..];
    for want in [
        "vmid = 112;",
        "cores = 2;",
        "memory = 2048;",
        "import = true;",
        // hosts.nix says where it lives (else the next plan would move it).
        "node = \"pve2\";",
    ] {
        assert!(entry.contains(want), "{want}: {entry}");
    }
    assert_eq!(pvesh(&s, "get", "/nodes/pve2/qemu/112/config").len(), 1);
    no_qm_for(&s, "112");
}

#[test]
fn a_hostile_node_name_from_the_cluster_is_refused_before_any_pvesh_call() {
    let s = cluster();
    for hostile in ["pve2;rm -rf /", "../x"] {
        s.reset_state();
        s.make_cluster();
        s.update(|st| st["vms"]["111"]["node"] = json!(hostile));
        let o = s.ops().args(["stop", "111"]).output().unwrap();
        assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
        assert!(stderr(&o).contains("not a node name"), "{}", stderr(&o));
        let calls = s.calls();
        // Only the cluster was asked; nothing went to a node path.
        assert!(
            calls
                .iter()
                .all(|c| c[..3] == ["pvesh", "get", "/cluster/resources"]),
            "{calls:?}"
        );
        assert_eq!(s.state()["vms"]["111"]["status"], "running");
    }
    // The library refuses it too, typed.
    let px = proxmox(&s);
    let e = px.snapshot(111, "pre", "x").unwrap_err();
    assert!(
        matches!(e, AppError::Proxmox(ProxmoxError::HostileNodeName { .. })),
        "{e:?}"
    );
}

#[test]
fn the_console_of_a_vm_on_another_node_says_where_to_reach_it() {
    let s = cluster();
    let o = s.ops().args(["console", "111"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("runs on node pve2"), "{err}");
    assert!(err.contains("qm terminal 111"), "{err}");
    no_qm_for(&s, "111");
}

#[test]
fn the_other_single_vm_ops_reach_that_node_too() {
    let s = cluster();
    // The guest agent and agent exec through pve2's API paths.
    assert_eq!(ops_ok(&s, &["get-ip", "111"]), "192.0.2.111\n");
    assert_eq!(ops_ok(&s, &["hostkey", "111"]).trim(), s.vm_host_key);
    assert_eq!(
        pvesh(&s, "create", "/nodes/pve2/qemu/111/agent/exec").len(),
        1
    );
    assert!(!pvesh(&s, "get", "/nodes/pve2/qemu/111/agent/exec-status").is_empty());

    ops_ok(&s, &["configure", "111", "--cores", "2"]);
    ops_ok(&s, &["create-disk", "111", "virtio1", "local-lvm", "16"]);
    let out = ops_ok(&s, &["resize", "111", "virtio0", "+16G"]);
    assert!(out.contains("successfully resized"), "{out}");
    let cfg = s.state()["vms"]["111"]["config"].clone();
    assert_eq!(cfg["cores"], "2");
    assert!(
        cfg["virtio1"]
            .as_str()
            .unwrap()
            .starts_with("local-lvm:vm-111-disk-"),
        "{cfg}"
    );
    assert!(
        cfg["virtio0"].as_str().unwrap().ends_with("size=80G"),
        "{cfg}"
    );
    assert_eq!(pvesh(&s, "set", "/nodes/pve2/qemu/111/config").len(), 2);
    assert_eq!(pvesh(&s, "set", "/nodes/pve2/qemu/111/resize").len(), 1);

    // Shrinking: `qm resize` would exit 0; the task's status tells.
    let o = s
        .ops()
        .args(["resize", "111", "virtio0", "10G"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("shrinking disks is not supported"),
        "{}",
        stderr(&o)
    );

    ops_ok(&s, &["shutdown", "111", "--wait", "5"]);
    ops_ok(&s, &["template", "111"]);
    assert_eq!(s.state()["vms"]["111"]["status"], "stopped");
    assert_eq!(s.state()["vms"]["111"]["config"]["template"], "1");
    assert_eq!(s.state()["vms"]["111"]["node"], "pve2");
    no_qm_for(&s, "111");
    clone_and_list_across_nodes(&s);
}

/// Clones run on the template's node (the `qmclone` task of
/// API2/Qemu.pm `clone_vm`), and `list` shows every node's VMs.
fn clone_and_list_across_nodes(s: &Sim) {
    // 9001 (shared NFS) lives on pve2: cloned there, as a task.
    let out = ops_ok(s, &["clone", "9001", "120", "web-3"]);
    assert!(
        out.contains("create linked clone of drive virtio0"),
        "{out}"
    );
    assert!(out.ends_with("cloned VM 9001 to VM 120 (web-3)\n"), "{out}");
    let made = pvesh(s, "create", "/nodes/pve2/qemu/9001/clone");
    assert_eq!(made.len(), 1, "{:?}", s.calls());
    assert_eq!(
        made[0][3..],
        [
            "--output-format",
            "json",
            "--newid",
            "120",
            "--name",
            "web-3"
        ]
    );
    let vm = s.state()["vms"]["120"].clone();
    assert_eq!(
        (vm["node"].as_str(), vm["config"]["name"].as_str()),
        (Some("pve2"), Some("web-3"))
    );
    let tasks = s.state()["tasks"].as_object().unwrap().clone();
    assert!(
        tasks
            .keys()
            .any(|u| u.starts_with("UPID:pve2:") && u.ends_with(":qmclone:9001:root@pam:")),
        "{tasks:?}"
    );
    // --target-node: the new VM lands on pve3 (shared storage allows it).
    ops_ok(
        s,
        &[
            "clone",
            "9001",
            "121",
            "web-4",
            "--full",
            "--target-node",
            "pve3",
        ],
    );
    assert_eq!(s.state()["vms"]["121"]["node"], "pve3");
    let made = pvesh(s, "create", "/nodes/pve2/qemu/9001/clone");
    assert!(
        made[1].ends_with(&["--full", "1", "--target", "pve3"].map(String::from)),
        "{made:?}"
    );
    // A VM on local storage cannot land elsewhere: Proxmox's words, exit 3.
    let o = s
        .ops()
        .args(["clone", "111", "122", "web-5", "--target-node", "pve3"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("can't clone VM to node 'pve3' (VM uses local storage)"),
        "{}",
        stderr(&o)
    );
    assert!(s.state()["vms"].get("122").is_none());
    // A target that is no node of the cluster: Proxmox refuses before it
    // starts a task (clone_vm's check_node_exists), so there is no task to
    // follow; its words, exit 3.
    let tasks_before = s.state()["tasks"].as_object().map_or(0, |t| t.len());
    let o = s
        .ops()
        .args(["clone", "9001", "122", "web-5", "--target-node", "pve9"])
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("no such cluster node 'pve9'"), "{err}");
    assert!(!err.contains("UPID"), "{err}");
    assert_eq!(
        s.state()["tasks"].as_object().map_or(0, |t| t.len()),
        tasks_before
    );
    let last = s.calls().last().cloned().unwrap();
    assert_eq!(
        last[..3],
        ["pvesh", "create", "/nodes/pve2/qemu/9001/clone"]
    );
    assert!(s.state()["vms"].get("122").is_none());
    // A node name that is not one is refused before anything connects.
    let before = s.calls().len();
    let o = s
        .ops()
        .args([
            "clone",
            "9001",
            "122",
            "web-5",
            "--target-node",
            "pve3;reboot",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("not a valid node name"),
        "{}",
        stderr(&o)
    );
    assert_eq!(s.calls().len(), before);
    // The connected node's template still goes through qm.
    ops_ok(s, &["clone", "9000", "123", "web-6"]);
    assert!(s
        .calls()
        .iter()
        .any(|c| c[..] == ["qm", "clone", "9000", "123", "--name", "web-6"]));
    assert_eq!(s.state()["vms"]["123"]["node"], "pve");
    no_qm_for(s, "9001");

    // list: pve's VMs from qm list (with PIDs), the others from
    // /cluster/resources (no PID), each with its node; no containers.
    let rows: Value = serde_json::from_str(&ops_ok(s, &["list", "--json"])).unwrap();
    let rows = rows.as_array().unwrap();
    let ids: Vec<u64> = rows.iter().map(|r| r["vmid"].as_u64().unwrap()).collect();
    assert_eq!(ids, [100, 104, 111, 112, 120, 121, 123, 9000, 9001]);
    let row = |id: u64| rows.iter().find(|r| r["vmid"] == id).unwrap();
    assert_eq!(
        (row(100)["node"].clone(), row(100)["pid"].clone()),
        (json!("pve"), json!(1834))
    );
    assert_eq!(row(111)["node"], "pve2");
    assert_eq!(row(111)["pid"], Value::Null);
    assert_eq!(row(111)["name"], "nixos-web01");
    // memory 4096 MiB; virtio0 grown to 80G above.
    assert_eq!(
        (
            row(111)["mem_mib"].clone(),
            row(111)["bootdisk_gib"].clone()
        ),
        (json!(4096), json!(80.0))
    );
    assert_eq!(row(112)["name"], "VM 112");
    assert_eq!(row(121)["node"], "pve3");
    let text = ops_ok(s, &["list"]);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].contains("VMID NODE") && lines[0].ends_with("PID"),
        "{text}"
    );
    let web = lines.iter().find(|l| l.contains("nixos-web01")).unwrap();
    assert!(web.contains(" pve2 ") && web.ends_with(" -"), "{text}");
    let o = s.pve().args(["vm", "list", "--json"]).output().unwrap();
    assert_eq!(stdout(&o), ops_ok(s, &["list", "--json"]), "{}", stderr(&o));
}

/// The calls the simulated host got after the first one for which `first`
/// holds (that one included).
/// The UPID of the first task the simulated cluster ran.
fn first_task(sim: &Sim) -> String {
    let tasks = sim.state()["tasks"].clone();
    let upid = tasks.as_object().and_then(|t| t.keys().next().cloned());
    upid.expect("a task was started")
}

fn calls_from(sim: &Sim, first: impl Fn(&[String]) -> bool) -> Vec<Vec<String>> {
    let calls = sim.calls();
    let at = calls.iter().position(|c| first(c)).unwrap_or(calls.len());
    calls[at..].to_vec()
}

#[test]
fn a_task_that_outlasts_the_timeout_is_reported_with_where_to_look_and_left_alone() {
    let s = cluster();
    // The stop task on pve2 never reads stopped within the 3 seconds.
    s.update(|st| st["faults"]["task_running_polls"] = json!(1000));
    let o = s
        .ops()
        .args(["--timeout", "3", "stop", "111"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let err = stderr(&o);
    let upid = first_task(&s);
    assert!(
        err.contains(&format!(
            "the Proxmox task {upid} on node pve2 did not finish in time"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("pvesh get /nodes/pve2/tasks/{upid}/status")),
        "{err}"
    );
    assert!(err.contains("give a longer --timeout"), "{err}");
    // After the stop: only status polls of that task (no log read, no
    // second stop, no qm), and more than one of them.
    let after = calls_from(&s, |c| c[0] == "pvesh" && c[1] == "create");
    assert_eq!(after[0][2], "/nodes/pve2/qemu/111/status/stop", "{after:?}");
    let status = format!("/nodes/pve2/tasks/{upid}/status");
    assert!(after.len() >= 3, "{after:?}");
    assert!(
        after[1..]
            .iter()
            .all(|c| c[0] == "pvesh" && c[1] == "get" && c[2] == status),
        "{after:?}"
    );
    no_qm_for(&s, "111");
}

#[test]
fn a_pvesh_that_prints_no_upid_is_refused_without_guessing() {
    let s = cluster();
    // The host's pvesh behaves as `pvesh --nooutput`: the task runs, its
    // UPID is not printed (and proxied, nothing is).
    s.update(|st| st["faults"]["pvesh_nooutput"] = json!(true));
    let o = s.ops().args(["stop", "111"]).output().unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(
            "`pvesh create /nodes/pve2/qemu/111/status/stop --output-format json` on node pve2 \
             printed no task id (UPID) and nothing else"
        ),
        "{err}"
    );
    assert!(err.contains("pvesh get /nodes/pve2/tasks"), "{err}");
    assert_eq!(stdout(&o), "");
    // The stop was the last thing asked: no status poll, no log, no qm.
    let after = calls_from(&s, |c| c[0] == "pvesh" && c[1] == "create");
    assert_eq!(after.len(), 1, "{after:?}");
    no_qm_for(&s, "111");
}
