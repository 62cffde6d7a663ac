//! Operations on a VM that lives on another node than the one pve talks
//! to (issue 15, item 3): `pve status` reads its config and its guest
//! agent through `pvesh get /nodes/<node>/qemu/<vmid>/...` on the one
//! pinned host, against the simulated three-node cluster over real SSH.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use serde_json::{json, Value};

use crate::support::pvesim::Sim;
use crate::support::{stderr, stdout};

const FLEET: &str = r#"{
  _proxmox = {
    host = "127.0.0.1";
    node = "pve";
    nodes = [ "pve" "pve2" "pve3" ];
    templateVmid = 9000;
    vmidRange = [ 100 199 ];
  };
  web = {
    proxmox = { vmid = 111; name = "nixos-web01"; cores = 4; memory = 4096; disk = "64G"; tags = [ "web" "nixos" ]; node = "pve2"; };
  };
}
"#;

#[test]
fn status_reads_config_and_agent_of_a_vm_on_another_node_through_pvesh() {
    let s = Sim::start();
    s.pin_host_key();
    std::fs::write(s.fleet.join("hosts.nix"), FLEET).unwrap();
    s.make_cluster();
    s.update(|st| {
        let vms = st["vms"].as_object_mut().unwrap();
        vms.remove("100");
        vms.remove("112");
        vms.remove("104");
        // On pve2, started at boot (hosts.nix says it is not): drift only
        // a config read on pve2 can see.
        st["vms"]["111"]["node"] = json!("pve2");
        st["vms"]["111"]["config"]["onboot"] = json!("1");
    });
    let o = s.pve().args(["status", "--json"]).output().expect("runs");
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    let rows: Value = serde_json::from_str(&stdout(&o)).expect("json");
    let web = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["host"] == "web")
        .expect("web row")
        .clone();
    assert_eq!(web["ip"], "192.0.2.111", "{web}");
    assert_eq!(
        web["drift"],
        json!([{"attribute": "on-boot", "hosts_nix": "off", "live": "on"}])
    );
    let calls = s.calls();
    let asked = |path: &str| {
        calls
            .iter()
            .any(|c| c[0] == "pvesh" && c.get(2).map(String::as_str) == Some(path))
    };
    assert!(asked("/nodes/pve2/qemu/111/config"), "{calls:?}");
    assert!(
        asked("/nodes/pve2/qemu/111/agent/network-get-interfaces"),
        "{calls:?}"
    );
    // qm on pve would say the VM does not exist: it is never asked.
    assert!(
        !calls
            .iter()
            .any(|c| c[0] == "qm" && c.contains(&"111".to_string())),
        "{calls:?}"
    );
}
