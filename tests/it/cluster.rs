//! A Proxmox cluster, not one node (issue 15): templates per node, VMs that
//! move (HA, renames), against the provider schema, the real `terraform`
//! binary (for the JSON shape of `moved` blocks) and the simulated
//! three-node cluster behind a real sshd (tests/it/support/pvesim) with the
//! OpenTofu stand-in (tests/stand-ins/tofu).

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use crate::support::pvesim::{self, Sim};
use crate::support::{out, render_schema, stand_in};

mod pg_state;

const TOKEN: &str = "terraform@pve!provider=5f1c2e9a-7b3d-4e8f-a1c6-d2b9e0f47a13";

/// Three nodes; the template 9000 on pve (local storage), 9001 on pve2
/// (shared storage); web on the default node, cache on pve2 (its own
/// template), db on pve3 (no template there: cloned across nodes).
pub(crate) const FLEET: &str = r#"{
  _proxmox = {
    host = "127.0.0.1";
    node = "pve";
    nodes = [ "pve" "pve2" "pve3" ];
    defaultStorage = "local-lvm";
    templateVmid = 9000;
    templates = { pve2 = 9001; };
    vmidRange = [ 100 199 ];
  };
  web = { proxmox = { vmid = 150; cores = 2; memory = 2048; }; };
  cache = { proxmox = { vmid = 152; cores = 2; memory = 2048; node = "pve2"; }; };
  db = { proxmox = { vmid = 151; cores = 2; memory = 2048; node = "pve3"; storage = "nfs-shared"; }; };
}
"#;

fn pve() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pve"));
    c.env_remove("PVE_HOSTS")
        .env_remove("PVE_LOG")
        .env_remove("TOFU_WORKDIR")
        .env_remove("PROXMOX_HOST")
        .env_remove("PROXMOX_NODE");
    c
}

pub(crate) fn fleet_dir(text: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    fs::create_dir_all(d.path().join("vms")).unwrap();
    fs::write(d.path().join("hosts.nix"), text).unwrap();
    d
}

pub(crate) fn rendered(dir: &Path) -> Value {
    let o = pve()
        .current_dir(dir)
        .args(["render", "tofu"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out(&o).1);
    serde_json::from_str(&fs::read_to_string(dir.join("vms/tofu/config.tf.json")).unwrap()).unwrap()
}

fn assert_schema_valid(config: &Value) {
    for file in ["schema.json", "schema-v0.93.1.json"] {
        let errs = render_schema::walk_config(config, &render_schema::load(file));
        assert!(errs.is_empty(), "{file}:\n{}", errs.join("\n"));
    }
}

#[test]
fn each_vm_is_cloned_from_a_template_it_can_reach() {
    let d = fleet_dir(FLEET);
    let c = rendered(d.path());
    let vms = &c["resource"]["proxmox_virtual_environment_vm"];
    // The template of its own node: no node_name in the clone.
    assert_eq!(
        vms["web"]["clone"],
        json!({"full": true, "retries": 1, "vm_id": 9000})
    );
    assert_eq!(
        vms["cache"]["clone"],
        json!({"full": true, "retries": 1, "vm_id": 9001})
    );
    assert_eq!(vms["cache"]["node_name"], "pve2");
    // pve3 has none: templateVmid on the default node, named in the clone,
    // with the target storage of db's disks.
    assert_eq!(
        vms["db"]["clone"],
        json!({"datastore_id": "nfs-shared", "full": true, "node_name": "pve", "retries": 1, "vm_id": 9000})
    );
    for vm in ["web", "cache", "db"] {
        assert_eq!(vms[vm]["migrate"], true, "{vm}");
        let ignored = vms[vm]["lifecycle"]["ignore_changes"].as_array().unwrap();
        assert!(ignored.contains(&json!("clone")), "{vm}: {ignored:?}");
    }
    assert_schema_valid(&c);
}

#[test]
fn a_node_without_a_template_is_a_check_error_naming_the_node_and_the_fix() {
    let d = fleet_dir(&FLEET.replace("templateVmid = 9000;", ""));
    let before = fs::read(d.path().join("hosts.nix")).unwrap();
    let o = pve().current_dir(d.path()).arg("check").output().unwrap();
    let (stdout, stderr) = out(&o);
    let all = format!("{stdout}{stderr}");
    assert_eq!(o.status.code(), Some(1), "{all}");
    // web (default node pve) and db (pve3) have no template; cache has one.
    assert!(all.contains("error[no-template]"), "{all}");
    assert!(
        all.contains("`db` is cloned on node `pve3`, which has no template in `_proxmox.templates` (pve2 = 9001)"),
        "{all}"
    );
    assert!(all.contains("`web` is cloned on node `pve`"), "{all}");
    assert!(!all.contains("`cache` is cloned"), "{all}");
    assert!(all.contains("add `pve3 = VMID;`"), "{all}");
    // Render refuses too: never a VM without its clone block.
    let o = pve()
        .current_dir(d.path())
        .args(["render", "tofu"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", out(&o).1);
    assert!(!d.path().join("vms/tofu/config.tf.json").exists());
    assert_eq!(fs::read(d.path().join("hosts.nix")).unwrap(), before);
}

/// The real `terraform`, when this machine has it (found on PATH by
/// support::tools); otherwise a SKIP line for `test`, or a failure when
/// PVE_REQUIRE_TERRAFORM is set.
pub(crate) fn terraform(test: &str) -> Option<PathBuf> {
    crate::support::optional_tool("terraform", test)
}

#[test]
fn a_rename_renders_a_moved_block_that_terraform_follows() {
    let d = fleet_dir(&FLEET.replace(
        "  web = {",
        "  _sops = { admins = { master = \"age17044m9wgakla6pzftf4srtl3h5mcsr85jysgt5fg23zpnta8sfdqhzn452\"; }; };\n  web = {",
    ));
    let o = pve()
        .current_dir(d.path())
        .args(["host", "rename", "web", "www"])
        .output()
        .unwrap();
    let (stdout, stderr) = out(&o);
    assert!(o.status.success(), "{stderr}");
    assert!(stdout.contains("renamed host web to www"), "{stdout}");
    assert!(
        stderr.contains(
            "The next `pve plan` moves proxmox_virtual_environment_vm.web to proxmox_virtual_environment_vm.www"
        ),
        "{stderr}"
    );
    let text = fs::read_to_string(d.path().join("hosts.nix")).unwrap();
    assert!(text.contains("www = {"), "{text}");
    assert!(text.contains("renamedFrom = \"web\";"), "{text}");
    // A second rename before any apply keeps the chain.
    let o = pve()
        .current_dir(d.path())
        .args(["host", "rename", "www", "w3"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out(&o).1);
    let text = fs::read_to_string(d.path().join("hosts.nix")).unwrap();
    assert!(
        text.contains("renamedFrom = [ \"web\" \"www\" ];"),
        "{text}"
    );

    let c = rendered(d.path());
    let vm = "proxmox_virtual_environment_vm";
    assert_eq!(
        c["moved"],
        json!([
            {"from": format!("{vm}.web"), "to": format!("{vm}.www")},
            {"from": format!("{vm}.www"), "to": format!("{vm}.w3")}
        ])
    );
    assert_schema_valid(&c);
    // The per-host secrets rule still covers the old folder.
    let o = pve()
        .current_dir(d.path())
        .args(["render", "sops"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out(&o).1);
    let sops = fs::read_to_string(d.path().join("secrets/.sops.yaml")).unwrap();
    assert!(sops.contains("^hosts/(?:w3|web|www)/"), "{sops}");

    // The JSON shape, proven by the real terraform: the same `moved` array
    // on built-in terraform_data resources (no provider download), state
    // holding the old address, plans a move and nothing else.
    let Some(tf) = terraform("a_rename_renders_a_moved_block_that_terraform_follows (the moved block's shape is unchecked)") else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let tf_run = |args: &[&str], config: &Value| {
        fs::write(work.path().join("main.tf.json"), config.to_string()).unwrap();
        let o = Command::new(&tf)
            .current_dir(work.path())
            .args(args)
            .env("TF_IN_AUTOMATION", "1")
            .env("CHECKPOINT_DISABLE", "1")
            .env("HOME", work.path())
            .output()
            .unwrap();
        let (stdout, stderr) = out(&o);
        assert!(o.status.success(), "terraform {args:?}: {stdout}{stderr}");
        stdout
    };
    let data = |name: &str| json!({"resource": {"terraform_data": {name: {"input": "vm"}}}});
    tf_run(&["init", "-input=false", "-no-color"], &data("web"));
    tf_run(
        &["apply", "-input=false", "-no-color", "-auto-approve"],
        &data("web"),
    );
    let moved = c["moved"].to_string().replace(vm, "terraform_data");
    let mut config = data("w3");
    config["moved"] = serde_json::from_str(&moved).unwrap();
    tf_run(&["validate", "-no-color"], &config);
    let plan = tf_run(&["plan", "-input=false", "-no-color"], &config);
    assert!(
        plan.contains("terraform_data.web has moved to terraform_data.w3"),
        "{plan}"
    );
    assert!(
        plan.contains("0 to add, 0 to change, 0 to destroy"),
        "{plan}"
    );
}

/// `pve` against the simulated cluster with the OpenTofu stand-in.
struct Cluster {
    sim: Sim,
    base: tempfile::TempDir,
}

impl Cluster {
    fn new() -> Cluster {
        let sim = Sim::start();
        sim.make_cluster();
        sim.pin_host_key();
        fs::write(sim.fleet.join("hosts.nix"), FLEET).unwrap();
        Cluster {
            sim,
            base: tempfile::tempdir().unwrap(),
        }
    }

    fn pve(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let mut c = pve();
        c.current_dir(&self.sim.fleet)
            .args(args)
            .env("PROXMOX_USER", pvesim::user())
            .env("PROXMOX_SSH_PORT", self.sim.port.to_string())
            .env("PROXMOX_SSH_IDENTITY", &self.sim.client_key)
            .env("PROXMOX_CONNECT_TIMEOUT", "30")
            .env("PROXMOX_VE_API_TOKEN", TOKEN)
            .env("HOME", self.base.path())
            .env("XDG_CONFIG_HOME", self.base.path().join("xdg"))
            .env("PVE_TOOL_TOFU", stand_in("tofu"))
            .env("TOFU_STANDIN_LOG", self.base.path().join("tofu.log"))
            .env("PVE_SIM_STATE", &self.sim.state_path);
        let o = c.output().unwrap();
        let (stdout, stderr) = out(&o);
        (o.status.code(), stdout, stderr)
    }

    fn tofu_plans(&self) -> usize {
        crate::support::read_jsonl(&self.base.path().join("tofu.log"))
            .iter()
            .filter(|c| c["argv"][0] == "plan")
            .count()
    }

    fn node_of(&self, vmid: u32) -> String {
        self.sim.state()["vms"][vmid.to_string()]["node"]
            .as_str()
            .unwrap_or("pve")
            .to_string()
    }
}

#[test]
fn every_vm_is_created_on_its_node_and_one_moved_by_ha_is_a_guard_finding_not_a_destroy() {
    let cl = Cluster::new();
    let (code, stdout, stderr) = cl.pve(&["apply", "--yes"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    // The stand-in clones like the provider: the template is looked for on
    // clone.node_name, else on the VM's node. db (pve3) comes from 9000 on pve.
    assert_eq!(cl.node_of(150), "pve");
    assert_eq!(cl.node_of(151), "pve3");
    assert_eq!(cl.node_of(152), "pve2");
    assert!(cl.sim.state()["vms"]["151"]["config"]["virtio0"]
        .as_str()
        .unwrap()
        .starts_with("nfs-shared:vm-151-disk-0"));

    // HA moves web to pve2: `pve plan` refuses before OpenTofu plans
    // anything, and says how to adopt the move.
    cl.sim.ha_move(150, "pve2");
    let plans = cl.tofu_plans();
    let (code, stdout, stderr) = cl.pve(&["plan"]);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains("refusing to plan: web (VMID 150) is on pve2, hosts.nix says pve"),
        "{stderr}"
    );
    assert!(
        stderr.contains(r#"pve host set web proxmox.node '"pve2"'"#),
        "{stderr}"
    );
    assert_eq!(cl.tofu_plans(), plans, "tofu never planned");
    assert_eq!(cl.node_of(150), "pve2", "nothing moved it back");
    assert!(cl.sim.state()["vms"]["150"].is_object(), "not destroyed");

    // The advice, run as printed, adopts it: the plan goes ahead.
    let (code, _, stderr) = cl.pve(&["host", "set", "web", "proxmox.node", "\"pve2\""]);
    assert_eq!(code, Some(0), "{stderr}");
    let (code, stdout, stderr) = cl.pve(&["plan"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    // migrate = true: the node change is an in-place update (a migration
    // the provider makes), nothing is destroyed.
    assert!(
        stdout.contains("proxmox_virtual_environment_vm.web will be updated in-place"),
        "{stdout}"
    );
    assert!(stdout.contains("0 to destroy"), "{stdout}");
    assert_eq!(cl.tofu_plans(), plans + 1);
}

#[test]
fn the_simulated_cluster_answers_like_proxmox() {
    let cl = Cluster::new();
    let ssh = |cmd: &str| {
        let o = Command::new("ssh")
            .args(["-F", "/dev/null", "-i"])
            .arg(&cl.sim.client_key)
            .args(["-p", &cl.sim.port.to_string()])
            .args(["-o", "BatchMode=yes", "-o"])
            .arg(format!(
                "UserKnownHostsFile={}",
                cl.sim.fleet.join("vms/proxmox_known_hosts").display()
            ))
            .arg(format!("{}@127.0.0.1", pvesim::user()))
            .arg(cmd)
            .output()
            .unwrap();
        let (stdout, stderr) = out(&o);
        (o.status.code(), stdout, stderr)
    };
    // qm sees this node's VMs only: the shared template lives on pve2.
    let (code, _, stderr) = ssh("qm config 9001");
    assert_eq!(code, Some(2));
    assert_eq!(
        stderr,
        "Configuration file 'nodes/pve/qemu-server/9001.conf' does not exist\n"
    );
    // The cluster API sees it, on its node.
    let (code, stdout, _) = ssh("pvesh get /nodes/pve2/qemu/9001/config --output-format json");
    assert_eq!(code, Some(0));
    let cfg: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(cfg["name"], "nixos-template-shared");
    // nextid with a VMID in use: the reference stderr, exit 255.
    let (code, _, stderr) = ssh("pvesh get /cluster/nextid --vmid 111");
    assert_eq!(code, Some(255));
    let reference = fs::read_to_string(
        "/work/shared/reference/proxmox-cli/pvesh-get-cluster-nextid.vmid-taken.stderr.txt",
    )
    .unwrap_or_else(|_| {
        "400 Parameter verification failed.\nvmid: VM 111 already exists\npvesh get <api_path> [OPTIONS] [FORMAT_OPTIONS]\n".into()
    });
    assert_eq!(stderr, reference);
    // qm migrate: running VMs need --online; the VM is on the target after.
    let (code, _, stderr) = ssh("qm migrate 111 pve2");
    assert_ne!(code, Some(0));
    assert_eq!(stderr, "can't migrate running VM without --online\n");
    let (code, stdout, _) = ssh("qm migrate 111 pve3 --online");
    assert_eq!(code, Some(0));
    assert!(
        stdout.contains("starting migration of VM 111 to node 'pve3'"),
        "{stdout}"
    );
    assert!(
        stdout.contains("migration finished successfully"),
        "{stdout}"
    );
    assert_eq!(cl.node_of(111), "pve3");
    let (_, stdout, _) = ssh("pvesh get /cluster/resources --type vm --output-format json");
    let res: Value = serde_json::from_str(&stdout).unwrap();
    let web = res
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["vmid"] == 111)
        .unwrap();
    assert_eq!(web["node"], "pve3");
    let (code, _, _) = ssh("qm status 111");
    assert_eq!(code, Some(2), "qm on pve no longer sees 111");
}
