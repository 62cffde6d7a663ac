//! `pve new` on a cluster (issue 15, placement): `_proxmox.placement =
//! "least-memory"` or `--node auto` puts the VM on the online node with the
//! most free memory that has a template, asked of the simulated three-node
//! cluster (`pvesh get /nodes`, tests/it/support/pvesim) over real SSH, and
//! writes the choice into hosts.nix; OpenTofu is the stand-in.

use serde_json::json;

use crate::support::fleet_repo::*;

const GIB: u64 = 1 << 30;

/// The example fleet on the three-node simulator: templates on pve (9000)
/// and pve2 (9001), none on pve3.
fn cluster_fleet(placement: &str) -> Fx {
    let fx = Fx::with_hosts(|t| {
        t.replacen(
            "templateVmid = 9000;",
            &format!(
                "templates = {{ pve = 9000; pve2 = 9001; }};\n    nodes = [ \"pve\" \"pve2\" \"pve3\" ];{placement}"
            ),
            1,
        )
    });
    fx.sim.make_cluster();
    fx
}

fn new_entry(fx: &Fx, name: &str) -> String {
    let hosts = fx.read("hosts.nix");
    let at = hosts.find(&format!("{name} = {{")).expect("entry written");
    hosts[at..].to_string()
}

#[test]
fn least_memory_places_the_vm_on_the_freest_node_with_a_template_and_writes_it() {
    let fx = cluster_fleet("\n    placement = \"least-memory\";");
    // pve3 is the freest but has no template; of pve and pve2, pve2 has
    // more free memory (the same maxmem, 64 GB, on every node).
    fx.sim.update(|s| {
        s["node_mem"] = json!({"pve": 40 * GIB, "pve2": 20 * GIB, "pve3": GIB});
    });
    let o = fx
        .pve()
        .args(["new", "--name", "web-2", "--yes"])
        .output()
        .expect("run");
    let (stdout, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stderr.contains("Placement: node pve2"), "{stderr}");

    // hosts.nix says where it is, in the new entry.
    let entry = new_entry(&fx, "web-2");
    assert!(entry.contains("node = \"pve2\";"), "{entry}");
    // The clone comes from pve2's own template, on pve2.
    let c: serde_json::Value =
        serde_json::from_str(&fx.read("vms/tofu/config.tf.json")).expect("json");
    let vm = &c["resource"]["proxmox_virtual_environment_vm"]["web-2"];
    assert_eq!(vm["node_name"], "pve2", "{vm}");
    assert_eq!(vm["clone"]["vm_id"], 9001, "{vm}");
    // The cluster was asked once.
    let asked = fx
        .sim
        .calls()
        .iter()
        .filter(|c| c.len() > 2 && c[0] == "pvesh" && c[2] == "/nodes")
        .count();
    assert_eq!(asked, 1);

    // Once written it is plain hosts.nix: a later load change moves nothing.
    fx.sim.update(|s| {
        s["node_mem"] = json!({"pve": GIB, "pve2": 60 * GIB, "pve3": GIB});
    });
    let o = fx.pve().args(["render", "--check"]).output().expect("run");
    assert_eq!(o.status.code(), Some(0), "{:?}", out(&o));
}

#[test]
fn node_auto_with_no_online_node_holding_a_template_exits_2_and_writes_nothing() {
    let fx = cluster_fleet("");
    fx.sim.update(|s| {
        s["offline_nodes"] = json!(["pve", "pve2"]);
    });
    let before = fx.read("hosts.nix");
    let o = fx
        .pve()
        .args(["new", "--name", "web-2", "--node", "auto", "--yes"])
        .output()
        .expect("run");
    let (stdout, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(2), "{stdout}{stderr}");
    assert!(stderr.contains("--node"), "{stderr}");
    assert!(stderr.contains("pve2 (offline)"), "{stderr}");
    assert!(stderr.contains("_proxmox.templates"), "{stderr}");
    assert_eq!(fx.read("hosts.nix"), before);
    assert!(!fx.root.join("hosts/web-2").exists());
}

#[test]
fn without_placement_no_node_is_chosen_and_the_cluster_is_not_asked() {
    let fx = cluster_fleet("");
    let o = fx
        .pve()
        .args(["new", "--name", "web-2", "--yes"])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(0), "{:?}", out(&o));
    let entry = new_entry(&fx, "web-2");
    let entry = &entry[..entry.find("\n  };").unwrap_or(entry.len())];
    assert!(!entry.contains("node ="), "{entry}");
    assert!(!fx
        .sim
        .calls()
        .iter()
        .any(|c| c.len() > 2 && c[0] == "pvesh" && c[2] == "/nodes"));
}
