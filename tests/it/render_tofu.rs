//! `vms/tofu/config.tf.json`: the values of the old Terranix module, worked
//! out by hand from its rules (issue 3 / docs/render.md) for the example
//! fleet and fixtures in its style, and the whole document walked against
//! the bpg/proxmox schema of both 0.111.1 and 0.93.1.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use crate::support::render_schema;
use std::path::Path;

use pve_fleet::fleet::{self, Loaded, SourceFile};
use pve_fleet::render::tofu::render_json;
use serde_json::{json, Value};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn load_text(text: &str) -> Loaded {
    let dir = tempfile::tempdir().expect("tempdir").keep();
    fleet::load_source(SourceFile::new(dir.join("hosts.nix"), text.to_string())).expect("load")
}

fn render(l: &Loaded) -> Value {
    serde_json::from_str(&render_json(l).expect("render")).expect("json")
}

fn assert_schema_valid(config: &Value) {
    for file in ["schema.json", "schema-v0.93.1.json"] {
        let errs = render_schema::walk_config(config, &render_schema::load(file));
        assert!(errs.is_empty(), "{file}:\n{}", errs.join("\n"));
    }
}

const NET_DEFAULT: fn() -> Value = || {
    json!([{
        "bridge": "vmbr0", "disconnected": null, "enabled": null, "firewall": null,
        "mac_address": null, "model": "virtio", "mtu": null, "queues": null,
        "rate_limit": null, "trunks": null, "vlan_id": null
    }])
};

#[test]
fn example_fleet_matches_the_old_module() {
    let l = fleet::load(&repo().join("hosts.nix")).expect("load example");
    let c = render(&l);
    let vms = &c["resource"]["proxmox_virtual_environment_vm"];
    // doc2 is readonly, framework has no proxmox: only two resources.
    assert_eq!(
        vms.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["igpu", "sandbox"]
    );
    // sandbox: cloned from template 9003 with the defaults of the old module.
    assert_eq!(
        vms["sandbox"],
        json!({
            "name": "sandbox",
            "node_name": "prom",
            "vm_id": 111,
            "on_boot": false,
            "bios": "seabios",
            "cpu": { "cores": 4, "type": "x86-64-v2-AES" },
            "memory": { "dedicated": 8192 },
            "disk": [{ "interface": "virtio0", "datastore_id": "nvmeprom", "file_format": "raw", "size": 64 }],
            "network_device": NET_DEFAULT(),
            "agent": { "enabled": true },
            // clone only matters at creation: every key in it forces
            // replacement, so a later change (a move to a node with its own
            // template) must not recreate the VM.
            "lifecycle": { "ignore_changes": ["cpu[0].architecture", "vga", "clone"] },
            "clone": { "vm_id": 9003, "full": true, "retries": 1 },
            "migrate": true,
            "description": "Isolated sandbox VM (no LAN access)",
            "tags": ["sandbox", "nixos"]
        })
    );
    // igpu: not cloned (no clone, description or tags), OVMF → efi_disk on
    // its storage, q35, a non-size disk → no disk block, ignoreInit and the
    // extra ignore_changes, both virtiofs shares with only the keys set.
    assert_eq!(
        vms["igpu"],
        json!({
            "name": "igpu",
            "node_name": "prom",
            "vm_id": 109,
            "on_boot": false,
            "bios": "ovmf",
            "machine": "q35",
            "cpu": { "cores": 8, "type": "x86-64-v2-AES" },
            "memory": { "dedicated": 16384 },
            "efi_disk": { "datastore_id": "nvmeprom", "file_format": "raw", "type": "4m" },
            "network_device": NET_DEFAULT(),
            "agent": { "enabled": true },
            "virtiofs": [
                { "mapping": "containers", "cache": "always" },
                { "mapping": "media", "direct_io": true }
            ],
            "lifecycle": { "ignore_changes": ["cpu[0].architecture", "vga", "initialization", "hostpci", "disk"] },
            "migrate": true
        })
    );
    assert_eq!(
        c["provider"],
        json!({ "proxmox": { "endpoint": "https://192.168.1.12:8006/", "insecure": true } })
    );
    assert_eq!(
        c["terraform"],
        json!({
            "required_version": ">= 1.6.0",
            "required_providers": { "proxmox": { "source": "bpg/proxmox", "version": "0.111.1" } },
            "backend": { "local": { "path": "terraform.tfstate" } }
        })
    );
    assert!(c.get("import").is_none());
    assert_eq!(
        c["output"].as_object().unwrap().keys().collect::<Vec<_>>(),
        ["igpu_ip", "sandbox_ip"]
    );
    // The default version is the one whose schema we check against.
    assert_eq!(
        render_schema::load("schema.json")["provider_version"],
        c["terraform"]["required_providers"]["proxmox"]["version"]
    );
    assert_schema_valid(&c);
}

/// Keys sorted at every level: re-printing through serde_json's ordered
/// maps changes nothing.
fn assert_sorted(text: &str) {
    let v: Value = serde_json::from_str(text).unwrap();
    assert_eq!(
        format!("{}\n", serde_json::to_string_pretty(&v).unwrap()),
        text
    );
}

#[test]
fn keys_are_sorted_everywhere() {
    let l = fleet::load(&repo().join("hosts.nix")).expect("load example");
    assert_sorted(&render_json(&l).unwrap());
    assert_sorted(&render_json(&load_text(CLUSTER)).unwrap());
    let s3 = load_text(
        r#"{ _proxmox = { host = "h"; node = "n"; templateVmid = 9000; backend = { type = "s3"; bucket = "b"; endpoint = "e"; usePathStyle = true; dynamodbTable = "t"; skipCredentialsValidation = true; skipRegionValidation = true; skipS3Checksum = true; }; }; }"#,
    );
    assert_sorted(&render_json(&s3).unwrap());
}

const CLUSTER: &str = r#"
{
  _proxmox = {
    host = "10.0.0.2";
    node = "pve1";
    nodes = [ "pve1" "pve2" ];
    defaultStorage = "local-lvm";
    templateVmid = 9000;
    bridge = "vmbr1";
    providerVersion = "~> 0.93.0";
  };
  # defaults everywhere: description and tags come from the old module
  web = {
    hostname = "web-prod";
    proxmox = { vmid = 120; cores = 2; memory = 2048; disk = "1T"; };
  };
  # on the second node, its own storage, network extras, a literal ${
  db = {
    proxmox = {
      vmid = 121; cores = 4; memory = 8192; disk = "200G"; storage = "ceph";
      node = "pve2"; name = "db-main"; cpuType = "host";
      vlan = 30; macAddress = "BC:24:11:00:00:01"; bridge = "vmbr2";
      description = "costs ${"$"}{var.x} and %{ if true }";
      tags = [ "db" ];
      virtiofs = { mapping = "pgdata"; expose_acl = true; expose_xattr = true; };
    };
  };
  # an existing VM adopted with an import block
  old = {
    proxmox = {
      vmid = 130; cores = 1; memory = 1024; cloneFromTemplate = false;
      import = true; node = "pve2"; bios = "ovmf"; disk = "32G"; diskInterface = "scsi0";
    };
  };
}
"#;

#[test]
fn cluster_fixture() {
    let c = render(&load_text(CLUSTER));
    let vms = &c["resource"]["proxmox_virtual_environment_vm"];
    assert_eq!(vms["web"]["description"], "Managed by OpenTofu - web-prod");
    assert_eq!(vms["web"]["tags"], json!(["opentofu", "nixos", "managed"]));
    assert_eq!(vms["web"]["disk"][0]["size"], 1024);
    assert_eq!(vms["web"]["disk"][0]["datastore_id"], "local-lvm");
    assert_eq!(vms["web"]["network_device"][0]["bridge"], "vmbr1");
    assert_eq!(vms["web"]["node_name"], "pve1");
    assert_eq!(
        vms["web"]["clone"],
        json!({ "vm_id": 9000, "full": true, "retries": 1 })
    );

    let db = &vms["db"];
    assert_eq!(db["name"], "db-main");
    assert_eq!(db["node_name"], "pve2");
    // The template (templateVmid) lives on the default node pve1: the clone
    // names it, and puts the disks on db's own storage.
    assert_eq!(
        db["clone"],
        json!({ "vm_id": 9000, "full": true, "retries": 1, "node_name": "pve1", "datastore_id": "ceph" })
    );
    assert_eq!(db["migrate"], true);
    assert_eq!(db["cpu"]["type"], "host");
    assert_eq!(db["disk"][0]["datastore_id"], "ceph");
    assert_eq!(db["network_device"][0]["bridge"], "vmbr2");
    assert_eq!(db["network_device"][0]["vlan_id"], 30);
    assert_eq!(db["network_device"][0]["mac_address"], "BC:24:11:00:00:01");
    assert_eq!(db["description"], "costs $${var.x} and %%{ if true }");
    assert_eq!(db["tags"], json!(["db"]));
    assert_eq!(
        db["virtiofs"],
        json!([{ "mapping": "pgdata", "expose_acl": true, "expose_xattr": true }])
    );

    let old = &vms["old"];
    assert!(old.get("clone").is_none());
    assert!(old.get("description").is_none() && old.get("tags").is_none());
    assert_eq!(old["disk"][0]["interface"], "scsi0");
    assert_eq!(
        old["efi_disk"],
        json!({ "datastore_id": "local-lvm", "file_format": "raw", "type": "4m" })
    );
    assert_eq!(
        c["import"],
        json!([{ "to": "proxmox_virtual_environment_vm.old", "id": "pve2/130" }])
    );
    assert_eq!(
        c["terraform"]["required_providers"]["proxmox"]["version"],
        "~> 0.93.0"
    );
    assert_eq!(
        c["provider"]["proxmox"],
        json!({ "endpoint": "https://10.0.0.2:8006/" })
    );
    assert_schema_valid(&c);
}

#[test]
fn ip_outputs_follow_the_mac_not_the_interface_order() {
    let c = render(&load_text(CLUSTER));
    let v = c["output"]["web_ip"]["value"].as_str().unwrap();
    let r = "proxmox_virtual_environment_vm.web";
    // no fixed index into ipv4_addresses such as [1][0]
    assert!(!v.contains("ipv4_addresses[1]"), "{v}");
    for attr in [
        "mac_addresses",
        "network_device[0].mac_address",
        "network_interface_names",
        "ipv4_addresses[i]",
    ] {
        assert!(v.contains(&format!("{r}.{attr}")), "{attr} in {v}");
    }
    assert!(v.starts_with("${try(") && v.ends_with(", null)}"), "{v}");
    // Every attribute the expression reads is a computed attribute of the
    // resource in both schemas.
    for file in ["schema.json", "schema-v0.93.1.json"] {
        let s = render_schema::load(file);
        let res = &s["resources"]["proxmox_virtual_environment_vm"];
        for a in ["mac_addresses", "ipv4_addresses", "network_interface_names"] {
            assert_eq!(res[a]["computed"], true, "{file} {a}");
        }
        assert_eq!(
            res["network_device"]["attributes"]["mac_address"]["computed"],
            true
        );
    }
}

#[test]
fn backends() {
    let with = |backend: &str| {
        load_text(&format!(
            "{{ _proxmox = {{ host = \"h\"; node = \"n\"; templateVmid = 9000; backend = {backend}; }}; }}"
        ))
    };
    let c = render(&with(r#"{ type = "pg"; schemaName = "fleet"; }"#));
    assert_eq!(
        c["terraform"]["backend"],
        json!({ "pg": { "schema_name": "fleet" } })
    );
    let c = render(&with(
        r#"{ type = "s3"; bucket = "state"; key = "fleet.tfstate"; region = "eu-central-1"; endpoint = "https://minio:9000"; usePathStyle = true; }"#,
    ));
    assert_eq!(
        c["terraform"]["backend"],
        json!({ "s3": {
            "bucket": "state", "key": "fleet.tfstate", "region": "eu-central-1",
            "endpoints": { "s3": "https://minio:9000" }, "use_path_style": true, "use_lockfile": true
        }})
    );
    assert_eq!(c["terraform"]["required_version"], ">= 1.10.0");
    let c = render(&with(
        r#"{ type = "local"; path = "/var/lib/fleet.tfstate"; }"#,
    ));
    assert_eq!(
        c["terraform"]["backend"],
        json!({ "local": { "path": "/var/lib/fleet.tfstate" } })
    );

    for (backend, want) in [
        (
            r#"{ type = "pg"; conn_str = "postgres://u:pw@db/x"; }"#,
            "credentials never go into hosts.nix",
        ),
        (
            r#"{ type = "consul"; }"#,
            "unknown state backend \"consul\"",
        ),
        (r#"{ type = "s3"; }"#, "needs `bucket`"),
        (
            r#"{ type = "s3"; bucket = "b"; regoin = "x"; }"#,
            "did you mean `region`?",
        ),
        (r#""s3""#, "must be a set"),
    ] {
        let e = render_json(&with(backend)).expect_err(backend);
        let text = format!("{e} {}", e.help().unwrap_or_default());
        assert!(text.contains(want), "{backend}: {text}");
        assert!(!text.contains("pw@db"), "no credentials echoed: {text}");
    }
}

#[test]
fn the_schema_walk_can_fail() {
    // A negative control: the walker must catch each mistake that the
    // provider would reject.
    let l = fleet::load(&repo().join("hosts.nix")).expect("load example");
    let good = render(&l);
    let schema = render_schema::load("schema.json");
    let old = render_schema::load("schema-v0.93.1.json");
    const SANDBOX: &str = "/resource/proxmox_virtual_environment_vm/sandbox";
    type Mutation = Box<dyn Fn(&mut Value)>;
    let mutations: Vec<(&str, Mutation)> = vec![
        (
            "size as a string",
            Box::new(|c| *c.pointer_mut(&format!("{SANDBOX}/disk/0/size")).unwrap() = json!("64G")),
        ),
        (
            "fractional int",
            Box::new(|c| {
                *c.pointer_mut(&format!("{SANDBOX}/memory/dedicated"))
                    .unwrap() = json!(8192.5)
            }),
        ),
        (
            "unknown attribute",
            Box::new(|c| {
                c.pointer_mut(SANDBOX).unwrap()["cores"] = json!(4);
            }),
        ),
        (
            "bad bios",
            Box::new(|c| *c.pointer_mut(&format!("{SANDBOX}/bios")).unwrap() = json!("uefi")),
        ),
        (
            "network_device key missing",
            Box::new(|c| {
                c.pointer_mut(&format!("{SANDBOX}/network_device/0"))
                    .unwrap()
                    .as_object_mut()
                    .unwrap()
                    .remove("mtu");
            }),
        ),
        (
            "computed-only attribute",
            Box::new(|c| {
                c.pointer_mut(SANDBOX).unwrap()["ipv4_addresses"] = json!([]);
            }),
        ),
        (
            "clone without vm_id",
            Box::new(|c| {
                c.pointer_mut(&format!("{SANDBOX}/clone"))
                    .unwrap()
                    .as_object_mut()
                    .unwrap()
                    .remove("vm_id");
            }),
        ),
        (
            "name not a DNS name",
            Box::new(|c| *c.pointer_mut(&format!("{SANDBOX}/name")).unwrap() = json!("my_vm")),
        ),
        (
            "bad ignore_changes",
            Box::new(|c| {
                c.pointer_mut(&format!("{SANDBOX}/lifecycle/ignore_changes"))
                    .unwrap()
                    .as_array_mut()
                    .unwrap()
                    .push(json!("nonsense"));
            }),
        ),
    ];
    for (what, m) in mutations {
        let mut c = good.clone();
        m(&mut c);
        assert!(
            !render_schema::walk_config(&c, &schema).is_empty(),
            "0.111.1 missed: {what}"
        );
    }
    // hotplug came in 0.93.0, `disk.queues` in 0.109: the old schema rejects it.
    let mut c = good.clone();
    c.pointer_mut(&format!("{SANDBOX}/disk/0")).unwrap()["queues"] = json!(2);
    assert!(render_schema::walk_config(&c, &schema).is_empty());
    assert!(!render_schema::walk_config(&c, &old).is_empty());
}
