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
use pve_fleet::remote::proxmox::Proxmox;
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
    let o = Command::new(crate::support::tool("python3"))
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

fn proxmox(sim: &Sim) -> Proxmox {
    crate::support::sim_proxmox::connect(sim, [104].into_iter().collect())
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

// ---------------------------------------------------------------------------
// `pve deploy` end to end. The world:
// - the simulated Proxmox host (pvesim, a stand-in) with VMs 121 `web`
//   (tag `canary`) and 122 `db` (tag `db`), both with a guest agent that
//   reports their addresses, and the readonly VM 104 `doc2`;
// - each VM is a real sshd (support::integrate's test VM) on its own loopback
//   address (127.0.0.2, 127.0.0.3) at one common port, with its own host
//   key (pinned through hosts.nix's publicKey and `pve render`) and the
//   VM-side stand-ins of tests/stand-ins/vm first on its PATH (readlink,
//   nix-env, systemctl, switch-to-configuration, nix-daemon, health-probe),
//   each recording its calls in that VM's folder;
// - the `nix` stand-in (tests/stand-ins/nix) through PVE_TOOL_NIX, with a
//   temporary store (NIX_STORE_DIR); each VM starts on an "old" system
//   built by the same stand-in.

use std::process::Stdio;
use std::time::Instant;

use crate::support::integrate::{start_vm_sshd_at, VmSshd};
use crate::support::read_jsonl;

const VMS: [(&str, u32, &str, &str); 2] = [
    ("web", 121, "127.0.0.2", "canary"),
    ("db", 122, "127.0.0.3", "db"),
];

fn stand_ins() -> PathBuf {
    crate::support::tools::stand_ins()
}

struct Vm {
    name: &'static str,
    dir: PathBuf,
    /// Stopped when the VM drops.
    #[allow(dead_code)]
    sshd: VmSshd,
}

struct World {
    sim: Sim,
    vms: Vec<Vm>,
    port: u16,
    store: PathBuf,
    nix_log: PathBuf,
}

fn keygen(path: &Path) -> String {
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "test", "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen");
    assert!(st.success());
    let pubkey = std::fs::read_to_string(path.with_extension("pub")).expect("pub");
    pubkey
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// One sshd per VM (support::integrate's test VM), all at the same port
/// (the deploy's `--ssh-port`); a port taken meanwhile on one address is
/// retried with another.
fn start_vms(sim: &Sim) -> (Vec<Vm>, u16) {
    let d = sim.dir.path();
    for _ in 0..5 {
        let port = std::net::TcpListener::bind(("127.0.0.2", 0))
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let mut vms = Vec::new();
        for (name, _, ip, _) in VMS {
            let dir = d.join(format!("vm-{name}"));
            std::fs::create_dir_all(dir.join("fail")).expect("vm dir");
            match start_vm_sshd_at(sim, ip, port, &dir.join("host_key"), &dir) {
                Some(sshd) => vms.push(Vm { name, dir, sshd }),
                None => break,
            }
        }
        if vms.len() == VMS.len() {
            return (vms, port);
        }
    }
    panic!("the VMs' sshd did not start");
}

fn hosts_nix(keys: &[String]) -> String {
    let mut s = String::from(
        "{\n  _proxmox = {\n    host = \"127.0.0.1\";\n    node = \"pve\";\n    templateVmid = 9000;\n    vmidRange = [ 100 199 ];\n  };\n",
    );
    for ((name, vmid, _, tag), key) in VMS.iter().zip(keys) {
        let check = if *name == "web" {
            "\n    deploy.healthCheck = [ \"health-probe web\" ];"
        } else {
            ""
        };
        s.push_str(&format!(
            "  {name} = {{\n    configurationFile = ./hosts/{name}/configuration.nix;\n    secrets = false;\n    publicKey = \"{key}\";\n    proxmox = {{ vmid = {vmid}; cores = 2; memory = 2048; tags = [ \"{tag}\" ]; }};{check}\n  }};\n"
        ));
    }
    s.push_str("  doc2 = {\n    configurationFile = ./hosts/doc2/configuration.nix;\n    secrets = false;\n    proxmox = { vmid = 104; readonly = true; tags = [ \"db\" ]; };\n  };\n}\n");
    s
}

impl World {
    fn new() -> World {
        let sim = Sim::start();
        sim.pin_host_key();
        let d = sim.dir.path().to_path_buf();
        let mut keys = Vec::new();
        for (name, _, _, _) in VMS {
            let dir = d.join(format!("vm-{name}"));
            std::fs::create_dir_all(&dir).expect("vm dir");
            keys.push(keygen(&dir.join("host_key")));
        }
        let (vms, port) = start_vms(&sim);
        sim.update(|s| {
            for (name, vmid, ip, _) in VMS {
                s["vms"][vmid.to_string()] = json!({
                    "status": "running", "agent_running": true, "ips": [ip],
                    "config": {"name": name, "agent": "enabled=1", "cores": "2", "memory": "2048",
                               "boot": "order=virtio0",
                               "net0": format!("virtio=BC:24:11:00:01:{:02X},bridge=vmbr0", vmid - 100),
                               "virtio0": format!("local-lvm:vm-{vmid}-disk-0,size=32G")}
                });
            }
        });
        let fleet = &sim.fleet;
        std::fs::write(fleet.join("hosts.nix"), hosts_nix(&keys)).expect("hosts.nix");
        for name in ["web", "db", "doc2"] {
            std::fs::create_dir_all(fleet.join("hosts").join(name)).expect("host dir");
            std::fs::write(
                fleet.join("hosts").join(name).join("configuration.nix"),
                format!("{{ ... }}: {{\n  networking.hostName = \"{name}\";\n}}\n"),
            )
            .expect("configuration.nix");
        }
        std::fs::write(
            fleet.join("flake.nix"),
            "{\n  outputs = { self }: { };\n}\n",
        )
        .expect("flake.nix");
        let store = d.join("store");
        std::fs::create_dir_all(&store).expect("store");
        let w = World {
            nix_log: d.join("nix.jsonl"),
            sim,
            vms,
            port,
            store,
        };
        let out = w
            .pve(&["render", "known-hosts"])
            .output()
            .expect("pve render");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Each VM runs an "old" system, generation 1.
        for vm in &w.vms {
            let old = w.nix_build(vm.name, "old");
            std::fs::write(vm.dir.join("current-system"), format!("{old}\n")).expect("write");
            std::fs::write(
                vm.dir.join("generations"),
                json!([[1, 1768471200, old]]).to_string(),
            )
            .expect("write");
        }
        w
    }

    /// The store path the nix stand-in builds for `name` at `revision`.
    fn nix_build(&self, name: &str, revision: &str) -> String {
        let o = Command::new(stand_ins().join("nix"))
            .args(["build", "--no-link", "--print-out-paths"])
            .arg(format!(
                ".#nixosConfigurations.{name}.config.system.build.toplevel"
            ))
            .current_dir(&self.sim.fleet)
            .env("NIX_STORE_DIR", &self.store)
            .env("NIX_STANDIN_REVISION", revision)
            .env_remove("NIX_STANDIN_LOG")
            .output()
            .expect("nix stand-in");
        assert!(o.status.success());
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    fn pve(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_pve"));
        c.current_dir(&self.sim.fleet)
            .args(args)
            .env_remove("PVE_HOSTS")
            .env_remove("PROXMOX_HOST")
            .env_remove("PROXMOX_NODE")
            .env_remove("PROXMOX_READONLY_VMIDS")
            .env_remove("PVE_LOG")
            .env("PROXMOX_USER", user())
            .env("PROXMOX_SSH_PORT", self.sim.port.to_string())
            .env("PROXMOX_SSH_IDENTITY", &self.sim.client_key)
            .env("PROXMOX_CONNECT_TIMEOUT", "10")
            .env("PVE_ALLOW_LOOPBACK_VMS", "1")
            .env("PVE_VM_USER", user())
            .env("PVE_VM_SSH_PORT", self.port.to_string())
            .env("PVE_VM_SSH_IDENTITY", &self.sim.client_key)
            .env("PVE_TOOL_NIX", stand_ins().join("nix"))
            .env("NIX_STORE_DIR", &self.store)
            .env("NIX_STANDIN_REVISION", "new")
            .env("NIX_STANDIN_LOG", &self.nix_log)
            .env_remove("NIX_STANDIN_FAIL_BUILD");
        c
    }

    fn deploy(&self, args: &[&str]) -> std::process::Output {
        let mut full = vec!["deploy"];
        full.extend_from_slice(args);
        self.pve(&full).output().expect("pve deploy runs")
    }

    fn vm(&self, name: &str) -> &Vm {
        self.vms.iter().find(|v| v.name == name).expect("vm")
    }

    fn vm_log(&self, name: &str) -> Vec<Value> {
        read_jsonl(&self.vm(name).dir.join("log.jsonl"))
    }

    /// The toplevels `switch-to-configuration` was called from on `name`,
    /// with the action.
    fn switches(&self, name: &str) -> Vec<(String, String)> {
        self.vm_log(name)
            .iter()
            .filter(|e| e["prog"] == "switch-to-configuration")
            .map(|e| {
                (
                    e["toplevel"].as_str().unwrap_or("").to_string(),
                    e["argv"][0].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }

    fn current_system(&self, name: &str) -> String {
        std::fs::read_to_string(self.vm(name).dir.join("current-system"))
            .expect("current-system")
            .trim()
            .to_string()
    }

    fn journal(&self) -> PathBuf {
        self.sim.fleet.join("vms/.journal/deploy-run.json")
    }

    fn qm_calls(&self, sub: &str) -> Vec<Vec<String>> {
        self.sim
            .calls()
            .into_iter()
            .filter(|c| c.len() > 1 && c[0] == "qm" && c[1] == sub)
            .collect()
    }
}

fn text(o: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn deploy_builds_once_snapshots_switches_in_waves_and_prunes_old_snapshots() {
    let w = World::new();
    // Three earlier deploy snapshots and one of the user's own on web.
    w.sim.update(|s| {
        s["clock"] = json!(1768471200);
        let mut snaps = serde_json::Map::new();
        let mut parent: Option<String> = None;
        for (i, n) in [
            "pve-pre-deploy-20260101-000000",
            "mine",
            "pve-pre-deploy-20260102-000000",
            "pve-pre-deploy-20260103-000000",
        ]
        .iter()
        .enumerate()
        {
            let mut e =
                json!({"snaptime": 1767225600 + i as i64 * 86400, "description": "", "vmstate": 0});
            if let Some(p) = &parent {
                e["parent"] = json!(p);
            }
            snaps.insert(n.to_string(), e);
            parent = Some(n.to_string());
        }
        s["vms"]["121"]["snapshots"] = Value::Object(snaps);
        s["vms"]["121"]["snap_parent"] = json!(parent);
    });
    let out = w.deploy(&[
        "--all",
        "--wave",
        "@canary,@rest",
        "--keep-snapshots",
        "2",
        "--json",
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("leaving out `doc2`"), "{stderr}");

    // --json: every line parses; one result object per host.
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    let results: Vec<&Value> = lines.iter().filter(|l| l.get("result").is_some()).collect();
    let hosts: Vec<&str> = results.iter().filter_map(|r| r["host"].as_str()).collect();
    assert_eq!(hosts, ["web", "db"], "canary wave first");
    let new_web = w.nix_build("web", "new");
    for r in &results {
        assert_eq!(r["result"], "deployed", "{r}");
        assert_eq!(
            (r["old_generation"].as_u64(), r["new_generation"].as_u64()),
            (Some(1), Some(2))
        );
    }
    assert_eq!(results[0]["new_path"], new_web.as_str());
    assert!(lines
        .iter()
        .any(|l| l["workflow"] == "deploy" && l["step"] == "health" && l["status"] == "done"));

    // One `nix build` for both systems; one `nix copy` per host, to the
    // address the guest agent gave, with the pinned key and strict checking.
    let nix = read_jsonl(&w.nix_log);
    let builds: Vec<&Value> = nix
        .iter()
        .filter(|c| c["argv"].to_string().contains("\"build\""))
        .collect();
    assert_eq!(builds.len(), 1, "{nix:?}");
    let argv = builds[0]["argv"].to_string();
    assert!(
        argv.contains(".#nixosConfigurations.web.config.system.build.toplevel")
            && argv.contains(".#nixosConfigurations.db.config.system.build.toplevel"),
        "{argv}"
    );
    let copies: Vec<&Value> = nix
        .iter()
        .filter(|c| c["argv"].to_string().contains("\"copy\""))
        .collect();
    assert_eq!(copies.len(), 2);
    let web_copy = copies
        .iter()
        .find(|c| c["argv"].to_string().contains("@127.0.0.2"))
        .expect("copy to web");
    let opts = web_copy["NIX_SSHOPTS"].as_str().unwrap_or("");
    for o in [
        "StrictHostKeyChecking=yes",
        "HostKeyAlias=web",
        "vms/known_hosts",
        &format!("Port={}", w.port),
    ] {
        assert!(opts.contains(o), "{o} in {opts}");
    }
    assert!(
        w.vm_log("web")
            .iter()
            .any(|e| e["prog"] == "nix-daemon"
                && e["paths"].as_str().unwrap_or("").contains(&new_web))
    );

    // Activated: profile set, then switch-to-configuration switch of the new path.
    assert_eq!(w.switches("web"), [(new_web.clone(), "switch".to_string())]);
    assert_eq!(w.current_system("web"), new_web);
    assert!(w.vm_log("web").iter().any(|e| e["prog"] == "health-probe"));

    // Snapshots: one per VM before its switch, named with the run's time;
    // web keeps the newest 2 of pve's own, and the user's snapshot.
    let snaps = w.qm_calls("snapshot");
    assert_eq!(snaps.len(), 2, "{snaps:?}");
    assert!(snaps
        .iter()
        .all(|c| c[3].starts_with("pve-pre-deploy-") && c[3].len() == 30));
    let left: Vec<String> = w.sim.state()["vms"]["121"]["snapshots"]
        .as_object()
        .expect("snapshots")
        .keys()
        .cloned()
        .collect();
    let mut want = vec![
        "mine".to_string(),
        "pve-pre-deploy-20260103-000000".to_string(),
        snaps[0][3].clone(),
    ];
    want.sort();
    assert_eq!(left, want);
    assert_eq!(w.qm_calls("delsnapshot").len(), 2);
    // The readonly VM was not touched; a finished run leaves no journal.
    assert!(!w.sim.calls().iter().any(|c| c.contains(&"104".to_string())));
    assert!(!w.journal().exists());
}

#[test]
fn a_failed_health_check_switches_back_and_stops_the_later_waves() {
    let w = World::new();
    std::fs::write(w.vm("web").dir.join("fail/health-probe"), "").expect("hook");
    let old_web = w.current_system("web");
    let out = w.deploy(&["web", "db", "--wave", "@canary,@rest"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("health check `health-probe web` failed (exit code 22)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("1 of 2 hosts failed (web); 1 not started"),
        "{stderr}"
    );
    // The summary table.
    let row = |h: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(h))
            .unwrap_or("")
            .to_string()
    };
    assert!(row("web").contains("FAILED, rolled back"), "{stdout}");
    assert!(row("db").contains("not started"), "{stdout}");
    // web: the new system, then the old one again.
    let new_web = w.nix_build("web", "new");
    assert_eq!(
        w.switches("web"),
        [
            (new_web, "switch".to_string()),
            (old_web.clone(), "switch".to_string())
        ]
    );
    assert_eq!(w.current_system("web"), old_web);
    // db, in the later wave, was never touched; no snapshot was restored.
    assert!(w.switches("db").is_empty());
    assert!(w.qm_calls("rollback").is_empty());
    // The journal stays for --resume; a plain run is refused meanwhile.
    assert!(w.journal().exists());
    let again = w.deploy(&["web"]);
    assert_eq!(again.status.code(), Some(2));
    assert!(
        text(&again).1.contains("unfinished `pve deploy` run"),
        "{}",
        text(&again).1
    );
}

#[test]
fn a_host_that_never_answers_again_is_restored_from_its_snapshot() {
    let w = World::new();
    std::fs::write(w.vm("web").dir.join("breaks-ssh"), "").expect("hook");
    let out = w.deploy(&["web", "--timeout", "2", "--json"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{stderr}");
    let result: Value = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l.get("result").is_some())
        .expect("a result line");
    assert_eq!(result["result"], "restored-snapshot", "{stderr}");
    let snap = w.qm_calls("snapshot");
    assert_eq!(snap.len(), 1);
    // qm rollback to exactly that snapshot, then the VM is started again.
    assert_eq!(
        w.qm_calls("rollback"),
        [vec![
            "qm".to_string(),
            "rollback".into(),
            "121".into(),
            snap[0][3].clone()
        ]]
    );
    assert_eq!(w.qm_calls("start").len(), 1);
    let calls = w.sim.calls();
    let pos = |sub: &str| calls.iter().position(|c| c.len() > 1 && c[1] == sub);
    assert!(pos("rollback") < pos("start"), "{calls:?}");
    assert_eq!(w.sim.state()["vms"]["121"]["status"], "running");
    assert_eq!(result["snapshot"], snap[0][3].as_str());
}

#[test]
fn a_deploy_killed_mid_wave_resumes_where_it_stopped() {
    let w = World::new();
    // db's switch blocks until the test lets it go; one host at a time.
    std::fs::write(w.vm("db").dir.join("block"), "").expect("hook");
    let mut child = w
        .pve(&["deploy", "web", "db", "--parallel", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("pve deploy");
    let start = Instant::now();
    while w.switches("db").is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "db's switch never started"
        );
        assert!(child.try_wait().expect("wait").is_none(), "pve ended early");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("kill");
    child.wait().expect("wait");
    std::fs::remove_file(w.vm("db").dir.join("block")).expect("unblock");
    assert!(w.journal().exists());

    let out = w.deploy(&["--resume"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // web was done: not activated again; db's activation runs again.
    assert_eq!(w.switches("web").len(), 1);
    assert_eq!(w.switches("db").len(), 2);
    assert_eq!(w.current_system("db"), w.nix_build("db", "new"));
    // One snapshot per VM across both runs, one build.
    assert_eq!(w.qm_calls("snapshot").len(), 2);
    let builds = read_jsonl(&w.nix_log)
        .iter()
        .filter(|c| c["argv"].to_string().contains("\"build\""))
        .count();
    assert_eq!(builds, 1);
    for h in ["web", "db"] {
        let row = stdout.lines().find(|l| l.starts_with(h)).unwrap_or("");
        assert!(
            row.contains("deployed") && row.contains("1 → 2"),
            "{stdout}"
        );
    }
    assert!(!w.journal().exists());
}

#[test]
fn readonly_vms_are_refused_unless_included() {
    let w = World::new();
    let out = w.deploy(&["doc2"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("`doc2` is readonly"), "{stderr}");
    assert!(stderr.contains("--include-readonly"), "{stderr}");
    let out = w.deploy(&["doc2", "web", "--include-readonly", "--dry-run"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("doc2  readonly: no snapshot"), "{stdout}");
    assert!(
        stdout.contains("web  snapshot VM 121 as pve-pre-deploy-"),
        "{stdout}"
    );
    // Nothing ran: no build, no Proxmox call, no journal.
    assert!(read_jsonl(&w.nix_log).is_empty());
    assert!(w.sim.calls().is_empty());
    assert!(!w.journal().exists());
}
