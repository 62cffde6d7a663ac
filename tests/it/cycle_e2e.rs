//! The whole life of a host on one fleet, end to end: `pve new --yes`
//! (plan and apply through the OpenTofu stand-in, which creates the VM on
//! the simulated Proxmox host) → `pve integrate` (over real SSH to the "VM",
//! a second sshd on 127.0.0.2) → `pve remove --yes` (re-key, rotate, targeted
//! destroy, which removes the VM from the simulator again). Every stage is
//! checked for what a user would notice, and at the end the fleet's files
//! are compared with the starting ones; the only differences allowed are
//! listed in [`LEGITIMATE_LEFTOVERS`] and checked one by one.
//!
//! The world is tests/it/support/integrate.rs (simulated Proxmox over real sshd,
//! the VM's sshd, stand-ins for nixos-rebuild, nixos-generate-config,
//! tailscale and sops, the Tailscale API stand-in) plus the OpenTofu
//! stand-in tests/stand-ins/tofu pointed at the simulator's state
//! (`PVE_SIM_STATE`).

use crate::support::pvesim;
use std::collections::BTreeMap;
use std::process::{Command, Output};
use std::time::Instant;

use crate::support::integrate::*;
use crate::support::secrets::{age_decrypt, yaml_recipients, yaml_stanza};
use pve_fleet::keys::age::ssh_to_age;
use serde_json::Value as Json;

const API_TOKEN: &str = "terraform@pve!provider=0b7c1d2e-3f40-4a5b-8c6d-7e8f9a0b1c2d";
const NAME: &str = "cache";
const VMID: &str = "101";

/// Files a full cycle legitimately leaves changed (relative paths; a
/// trailing `/` means everything under that folder).
const LEGITIMATE_LEFTOVERS: &[&str] = &[
    // OpenTofu's working folder: state (now without resources), lock file,
    // provider folder, plan metadata. Git-ignored, never committed.
    "vms/tofu/.state/",
    // Re-encrypted by the re-keying and given a new data key by the rotation
    // (same recipients as at the start, checked below).
    "secrets/common.yaml",
    "secrets/db.env",
];

fn leftover(rel: &str) -> bool {
    LEGITIMATE_LEFTOVERS
        .iter()
        .any(|l| match l.strip_suffix('/') {
            Some(dir) => rel.starts_with(&format!("{dir}/")),
            None => rel == *l,
        })
}

/// `pve ARGS` in the world, with OpenTofu (the stand-in) acting on the
/// simulated Proxmox host, whose new guests get the VM sshd's address.
fn pve(w: &World, args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pve"));
    w.pve_env(&mut c);
    c.args(args)
        .env("PVE_TOOL_TOFU", crate::support::stand_in("tofu"))
        .env("TOFU_STANDIN_LOG", w.logs.join("tofu.jsonl"))
        .env("PROXMOX_VE_API_TOKEN", API_TOKEN)
        .env("PVE_SIM_GUEST_IP", VM_IP)
        .env("HOME", &w.logs)
        .env("XDG_CONFIG_HOME", w.logs.join("xdg"))
        .env_remove("PVE_TOKEN_FILE")
        .env_remove("TOFU_STANDIN_FAIL");
    let mut c = assert_cmd::Command::from_std(c);
    c.timeout(std::time::Duration::from_secs(60));
    c.output().expect("pve runs")
}

fn ok(o: &Output, what: &str) -> (String, String) {
    let (stdout, stderr) = text(o);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{what}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    (stdout, stderr)
}

fn read(w: &World, rel: &str) -> String {
    std::fs::read_to_string(fleet_path(w, rel)).unwrap_or_default()
}

/// The host's entry in hosts.nix (from its name to the next top-level key).
fn entry(hosts: &str) -> Option<String> {
    let at = hosts.find(&format!("  {NAME} = {{"))?;
    let end = hosts[at..].find("\n  };").map_or(hosts.len(), |e| at + e);
    Some(hosts[at..end].to_string())
}

fn sim_vm(w: &World) -> Option<Json> {
    w.sim.state()["vms"].get(VMID).cloned()
}

/// The secret file's data key, read through the admin's age stanza.
fn data_key(w: &World, rel: &str) -> Vec<u8> {
    let stanza = yaml_stanza(&read(w, rel), &w.admin.recipient).expect("admin stanza");
    age_decrypt(&w.admin.file, &stanza).expect("the admin can open the data key")
}

fn tofu_calls(w: &World) -> Vec<String> {
    read_jsonl(&w.logs.join("tofu.jsonl"))
        .iter()
        .map(|c| {
            c["argv"]
                .as_array()
                .expect("argv")
                .iter()
                .map(|a| a.as_str().unwrap_or("").to_string())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

fn sops_calls(w: &World) -> Vec<String> {
    w.log("sops")
        .iter()
        .map(|c| {
            c["argv"]
                .as_array()
                .expect("argv")
                .iter()
                .map(|a| a.as_str().unwrap_or("").to_string())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

#[test]
fn new_apply_integrate_remove_leaves_the_fleet_as_it_was() {
    let started = Instant::now();
    let w = World::new();
    // Only the new VM's guest agent reports the VM sshd's address.
    w.sim
        .update(|s| s["vms"]["111"]["ips"] = serde_json::json!(["192.0.2.111"]));
    let before = w.snapshot();
    let recipients_before: BTreeMap<&str, Vec<String>> = ["secrets/common.yaml", "secrets/db.env"]
        .iter()
        .map(|f| (*f, recipients(&read(&w, f))))
        .collect();
    let key_before = data_key(&w, "secrets/common.yaml");
    assert!(sim_vm(&w).is_none(), "VM {VMID} is free at the start");

    // ---- 1. pve new: entry, folder, plan, apply (the VM appears) ----
    let t = Instant::now();
    let o = pve(
        &w,
        &[
            "new",
            "--name",
            NAME,
            "--ssh-alias",
            "c1",
            "--description",
            "Build cache",
            "--cores",
            "3",
            "--memory",
            "3072",
            "--disk",
            "20G",
            "--storage",
            "local-lvm",
            "--yes",
        ],
    );
    let (stdout, stderr) = ok(&o, "pve new");
    let t_new = t.elapsed();
    let e = entry(&read(&w, "hosts.nix")).expect("the entry is in hosts.nix");
    for want in [
        format!("configurationFile = ./hosts/{NAME}/configuration.nix;"),
        "sshAlias = \"c1\";".into(),
        format!("vmid = {VMID};"),
        "cores = 3;".into(),
        "memory = 3072;".into(),
    ] {
        assert!(e.contains(&want), "{want} in\n{e}");
    }
    assert!(
        fleet_path(&w, &format!("hosts/{NAME}/configuration.nix")).is_file(),
        "the host folder is scaffolded"
    );
    assert!(
        format!("{stdout}{stderr}").contains(&format!(
            "proxmox_virtual_environment_vm.{NAME} will be created"
        )),
        "the plan was shown: {stdout}{stderr}"
    );
    let tofu = tofu_calls(&w);
    assert!(
        tofu.iter().any(|c| c.starts_with("plan ")
            && c.contains(&format!("-target=proxmox_virtual_environment_vm.{NAME}"))),
        "{tofu:?}"
    );
    assert!(tofu.iter().any(|c| c.starts_with("apply ")), "{tofu:?}");
    // The VM exists on Proxmox now: a running clone of the template with the
    // sizes asked for, its guest agent answering.
    let vm = sim_vm(&w).expect("the apply created the VM on Proxmox");
    assert_eq!(vm["config"]["name"], NAME);
    assert_eq!(vm["config"]["cores"], "3");
    assert_eq!(vm["config"]["memory"], "3072");
    assert_eq!(vm["status"], "running");
    assert!(
        vm["config"]["virtio0"]
            .as_str()
            .is_some_and(|d| d.starts_with(&format!("local-lvm:vm-{VMID}-disk-0"))
                && d.ends_with("size=20G")),
        "{vm}"
    );
    let list = w.sim.ops().arg("list").output().expect("proxmox-ops list");
    assert!(
        text(&list)
            .0
            .lines()
            .any(|l| l.contains(VMID) && l.contains(NAME)),
        "proxmox-ops list shows it: {}",
        text(&list).0
    );
    // It says how to go on, with the address the guest agent reported.
    let integrate_line = format!("pve integrate {NAME} {VM_IP} {VMID}");
    assert!(stdout.contains(&integrate_line), "{stdout}");

    // ---- 2. pve integrate, exactly as printed ----
    let t = Instant::now();
    let args: Vec<String> = integrate_line
        .split_whitespace()
        .skip(1)
        .map(str::to_string)
        .chain([
            "--ssh-port".into(),
            w.vm.port.to_string(),
            "--user".into(),
            current_user(),
        ])
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (stdout, stderr) = ok(&pve(&w, &args), "pve integrate");
    let t_integrate = t.elapsed();
    assert!(
        stdout.contains(&format!("{NAME} is integrated")),
        "{stdout}{stderr}"
    );
    let key = w.vm_key();
    let recipient = ssh_to_age(&key).expect("age recipient");
    let e = entry(&read(&w, "hosts.nix")).expect("entry");
    assert!(
        e.contains(&format!("publicKey = \"{key}\";")),
        "publicKey written: {e}"
    );
    assert!(
        read(&w, "secrets/.sops.yaml").contains(&recipient),
        ".sops.yaml gains the host's recipient"
    );
    assert!(read(&w, "vms/known_hosts").contains(&format!("c1,{NAME} {key}")));
    assert!(fleet_path(&w, &format!("hosts/{NAME}/hardware-configuration.nix")).is_file());
    for f in ["secrets/common.yaml", "secrets/db.env"] {
        assert!(
            recipients(&read(&w, f)).contains(&recipient),
            "{f} re-keyed to the host"
        );
    }
    // updatekeys keeps the data key.
    assert_eq!(data_key(&w, "secrets/common.yaml"), key_before);
    let rebuild = w.log("nixos-rebuild");
    assert_eq!(rebuild.len(), 1, "{rebuild:?}");
    assert_eq!(rebuild[0]["argv"][2], format!(".#{NAME}"));
    let sops_after_integrate = sops_calls(&w).len();
    assert_eq!(sops_after_integrate, 2, "{:?}", sops_calls(&w));

    // ---- 3. pve remove ----
    let t = Instant::now();
    let (stdout, stderr) = ok(&pve(&w, &["remove", NAME, "--yes"]), "pve remove");
    let t_remove = t.elapsed();
    assert!(stdout.contains(&format!("Removed `{NAME}`")), "{stdout}");
    assert!(entry(&read(&w, "hosts.nix")).is_none(), "entry gone");
    assert!(!fleet_path(&w, &format!("hosts/{NAME}")).exists());
    assert!(!read(&w, "secrets/.sops.yaml").contains(&recipient));
    assert!(!read(&w, "vms/known_hosts").contains(NAME));
    let sops = sops_calls(&w)[sops_after_integrate..].to_vec();
    for f in ["secrets/common.yaml", "secrets/db.env"] {
        assert!(
            sops.iter()
                .any(|c| c.contains(" updatekeys --yes ") && c.ends_with(f)),
            "{f} re-keyed: {sops:?}"
        );
        assert!(
            sops.iter()
                .any(|c| c.contains(" rotate -i ") && c.ends_with(f)),
            "{f} rotated: {sops:?}"
        );
        assert!(
            !recipients(&read(&w, f)).contains(&recipient),
            "{f} no longer opens for the host"
        );
    }
    assert_ne!(
        data_key(&w, "secrets/common.yaml"),
        key_before,
        "a copy the host kept no longer opens the file"
    );
    assert!(stderr.contains("new data key"), "{stderr}");
    let tofu = tofu_calls(&w);
    let destroy_plan = tofu
        .iter()
        .rposition(|c| c.starts_with("plan "))
        .expect("plan");
    assert!(
        tofu[destroy_plan].contains(&format!("-target=proxmox_virtual_environment_vm.{NAME}")),
        "{tofu:?}"
    );
    assert!(
        tofu[destroy_plan..].iter().any(|c| c.starts_with("apply ")),
        "the destroy was applied: {tofu:?}"
    );
    assert!(sim_vm(&w).is_none(), "the VM is gone from Proxmox");
    let list = w.sim.ops().arg("list").output().expect("proxmox-ops list");
    assert!(!text(&list).0.contains(NAME), "{}", text(&list).0);
    assert!(w.sim.state()["vms"].get("111").is_some(), "other VMs stay");

    // ---- 4. The fleet is as it was, but for the listed leftovers ----
    let after = w.snapshot();
    let mut unexpected = Vec::new();
    for rel in before.keys().chain(after.keys()) {
        if before.get(rel) != after.get(rel) && !leftover(rel) && !unexpected.contains(rel) {
            unexpected.push(rel.clone());
        }
    }
    assert!(
        unexpected.is_empty(),
        "files a cycle should not leave changed: {unexpected:?}"
    );
    // The list is exact: each leftover is really there.
    for l in LEGITIMATE_LEFTOVERS {
        assert!(
            before.keys().chain(after.keys()).any(|rel| leftover(rel)
                && rel.starts_with(l)
                && before.get(rel) != after.get(rel)),
            "{l} is listed as a leftover but did not change"
        );
    }
    for (f, r) in &recipients_before {
        assert_eq!(&recipients(&read(&w, f)), r, "{f}: the starting recipients");
    }
    let state: Json =
        serde_json::from_str(&read(&w, "vms/tofu/.state/terraform.tfstate")).expect("state");
    assert_eq!(
        state["resources"],
        serde_json::json!([]),
        "the OpenTofu state holds nothing"
    );
    // Only the run locks and the folder's .gitignore remain: no journal.
    let journals: Vec<_> = std::fs::read_dir(fleet_path(&w, "vms/.journal"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    assert!(journals.is_empty(), "no journal left: {journals:?}");
    eprintln!(
        "cycle: new {t_new:?}, integrate {t_integrate:?}, remove {t_remove:?}, total {:?}",
        started.elapsed()
    );
}

/// The age recipients of a sops file (YAML or dotenv), sorted.
fn recipients(text: &str) -> Vec<String> {
    let mut r = if text.contains("sops_age__list_") {
        text.lines()
            .filter_map(|l| l.split_once("__map_recipient=").map(|(_, v)| v.to_string()))
            .collect()
    } else {
        yaml_recipients(text)
    };
    r.sort();
    r
}

/// The OpenTofu stand-in's Proxmox side on its own: an apply creates the
/// planned clone on the simulated host (and fails like Proxmox over a VMID
/// that exists, writing no state), `output` reports what the guest agent
/// says, a destroy removes the VM and nothing else.
#[test]
fn the_tofu_stand_in_creates_and_destroys_vms_on_the_simulator() {
    let sim = pvesim::Sim::start();
    sim.pin_host_key();
    let dir = tempfile::tempdir().expect("workdir");
    let tofu = |args: &[&str]| -> Output {
        Command::new(crate::support::stand_in("tofu"))
            .current_dir(dir.path())
            .args(args)
            .env("PROXMOX_VE_API_TOKEN", API_TOKEN)
            .env("PVE_SIM_STATE", &sim.state_path)
            .env_remove("PVE_SIM_GUEST_IP")
            .env_remove("TOFU_STANDIN_FAIL")
            .env_remove("TOFU_STANDIN_LOG")
            .output()
            .expect("stand-in runs")
    };
    let config = |name: &str, vmid: u32| {
        let vm = "proxmox_virtual_environment_vm";
        let doc = serde_json::json!({
            "terraform": {"required_providers": {"proxmox": {"source": "bpg/proxmox", "version": "0.111.1"}}},
            "resource": {vm: {name: {
                "vm_id": vmid, "name": name, "node_name": "pve",
                "clone": {"vm_id": 9000, "full": true}, "agent": {"enabled": true},
                "cpu": {"cores": 2}, "memory": {"dedicated": 1024},
                "disk": [{"interface": "virtio0", "size": 12, "datastore_id": "local-lvm", "file_format": "raw"}],
                "network_device": [{"bridge": "vmbr0", "model": "virtio", "vlan_id": 20}],
                "tags": ["nixos", "managed"]
            }}},
            "output": {format!("{name}_ip"): {"value": format!("${{try({vm}.{name}.ipv4_addresses[1][0], null)}}")}}
        });
        std::fs::write(dir.path().join("config.tf.json"), doc.to_string()).expect("config");
    };
    // A VMID Proxmox has already: the apply fails, nothing is recorded.
    config("taken", 111);
    ok(&tofu(&["init", "-input=false"]), "init");
    ok(&tofu(&["plan", "-input=false", "-out=p"]), "plan");
    let o = tofu(&["apply", "-input=false", "p"]);
    assert_eq!(o.status.code(), Some(1), "{:?}", text(&o));
    assert!(
        text(&o)
            .1
            .contains("unable to create VM 111: config file already exists"),
        "{}",
        text(&o).1
    );
    assert!(!dir.path().join("terraform.tfstate").exists());
    assert_eq!(sim.state()["vms"]["111"]["config"]["name"], "nixos-web01");

    // A free one: a running full clone of the template.
    config("fresh", 150);
    ok(&tofu(&["plan", "-input=false", "-out=p"]), "plan");
    ok(&tofu(&["apply", "-input=false", "p"]), "apply");
    let vm = sim.state()["vms"]["150"].clone();
    assert_eq!(vm["status"], "running", "{vm}");
    assert_eq!(vm["ips"], serde_json::json!(["192.0.2.151"]));
    assert_eq!(vm["hostkey"], sim.state()["vms"]["9000"]["hostkey"]);
    let c = &vm["config"];
    assert_eq!(
        (
            &c["name"],
            &c["cores"],
            &c["memory"],
            &c["agent"],
            &c["tags"]
        ),
        (
            &Json::from("fresh"),
            &Json::from("2"),
            &Json::from("1024"),
            &Json::from("enabled=1"),
            &Json::from("managed;nixos")
        )
    );
    assert_eq!(
        c["virtio0"],
        "local-lvm:vm-150-disk-0,discard=on,iothread=1,size=12G"
    );
    assert_eq!(c["net0"], "virtio=BC:24:11:00:00:96,bridge=vmbr0,tag=20");
    assert!(c.get("template").is_none(), "{c}");
    // The simulator's own `qm` sees it; the guest agent answers.
    let o = sim
        .ops()
        .args(["get-ip", "150"])
        .output()
        .expect("proxmox-ops get-ip");
    assert_eq!(text(&o).0.trim(), "192.0.2.151", "{:?}", text(&o));
    let o = sim
        .ops()
        .args(["hostkey", "150"])
        .output()
        .expect("proxmox-ops hostkey");
    assert!(text(&o).0.contains(&sim.vm_host_key), "{:?}", text(&o));
    let (out, _) = ok(&tofu(&["output", "-raw", "fresh_ip"]), "output");
    assert_eq!(out, "192.0.2.151");

    // Destroyed: the VM goes, the template and the other VMs stay.
    ok(
        &tofu(&["plan", "-input=false", "-destroy", "-out=p"]),
        "plan -destroy",
    );
    ok(&tofu(&["apply", "-input=false", "p"]), "apply destroy");
    let vms = sim.state()["vms"].clone();
    assert!(vms.get("150").is_none(), "{vms}");
    for kept in ["100", "111", "9000"] {
        assert!(vms.get(kept).is_some(), "{kept} kept");
    }
}
