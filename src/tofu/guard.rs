//! The state guard: when OpenTofu's state is missing or empty it believes
//! nothing exists and plans to create every VM again. If any VM the config
//! manages already exists on Proxmox, refuse, and say how to adopt it.
//! On a cluster it also refuses when a VM lives on another node than
//! hosts.nix says (moved by HA): see `node_moves`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value as Json;

use crate::error::AppError;

/// The resource type of a Proxmox VM in the bpg/proxmox provider.
pub const VM_RESOURCE: &str = "proxmox_virtual_environment_vm";

/// What exists on Proxmox. `remote::proxmox` provides the real one.
pub trait Inventory {
    /// VMID → node of every guest in the cluster (`/cluster/resources`).
    fn placements(&self) -> Result<BTreeMap<i64, String>, AppError>;

    fn existing_vmids(&self) -> Result<BTreeSet<i64>, AppError> {
        Ok(self.placements()?.into_keys().collect())
    }

    /// The guest holding `vmid` (None: it is free). The default knows only
    /// the node; `remote::proxmox` adds the name.
    fn holder(&self, vmid: i64) -> Result<Option<Holder>, AppError> {
        Ok(self.placements()?.remove(&vmid).map(|node| Holder {
            name: None,
            node,
            kind: "qemu".into(),
        }))
    }
}

/// The guest that holds a VMID, as `/cluster/resources` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub name: Option<String>,
    pub node: String,
    /// `qemu` or `lxc`.
    pub kind: String,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = if self.kind == "lxc" {
            "container"
        } else {
            "VM"
        };
        match &self.name {
            Some(n) => write!(f, "{what} `{n}` on node {}", self.node),
            None => write!(f, "a {what} on node {}", self.node),
        }
    }
}

/// A VM resource of the rendered config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedVm {
    /// The resource name: `proxmox_virtual_environment_vm.<name>`.
    pub name: String,
    pub vmid: i64,
    pub node: Option<String>,
    /// An `import` block adopts it: existing on Proxmox is expected.
    pub imported: bool,
}

impl ManagedVm {
    pub fn address(&self) -> String {
        format!("{VM_RESOURCE}.{}", self.name)
    }
}

/// The VMs a rendered config manages, sorted by name.
pub fn managed_vms(config: &Json) -> Vec<ManagedVm> {
    let imported: BTreeSet<String> = blocks(config.get("import"))
        .filter_map(|b| b.get("to").and_then(Json::as_str).map(str::to_string))
        .collect();
    let mut out = Vec::new();
    let Some(vms) = config
        .get("resource")
        .and_then(|r| r.get(VM_RESOURCE))
        .and_then(Json::as_object)
    else {
        return out;
    };
    for (name, body) in vms {
        // A resource body may be one object or a list of one (JSON syntax).
        let Some(body) = blocks(Some(body)).next() else {
            continue;
        };
        let vmid = match body.get("vm_id") {
            Some(Json::Number(n)) => n.as_i64(),
            Some(Json::String(s)) => s.parse().ok(),
            _ => None,
        };
        let Some(vmid) = vmid else { continue };
        let node = body
            .get("node_name")
            .and_then(Json::as_str)
            .map(str::to_string);
        let address = format!("{VM_RESOURCE}.{name}");
        out.push(ManagedVm {
            name: name.clone(),
            vmid,
            node,
            imported: imported.contains(&address),
        });
    }
    out
}

/// An object, or each object of a list.
fn blocks(v: Option<&Json>) -> impl Iterator<Item = &Json> {
    let items: Vec<&Json> = match v {
        Some(Json::Array(a)) => a.iter().filter(|x| x.is_object()).collect(),
        Some(o @ Json::Object(_)) => vec![o],
        _ => Vec::new(),
    };
    items.into_iter()
}

/// Refuses when the state is empty and a managed (not imported) VM already
/// exists on Proxmox, and, on a cluster (`cluster`), when a managed VM lives
/// on another node than the config says. Asks the inventory only when it
/// matters (one `/cluster/resources` for both).
pub fn check(
    state_empty: bool,
    vms: &[ManagedVm],
    inventory: &dyn Inventory,
    default_node: Option<&str>,
    cluster: bool,
) -> Result<(), AppError> {
    let at_risk: Vec<&ManagedVm> = vms.iter().filter(|v| !v.imported).collect();
    let ask_clash = state_empty && !at_risk.is_empty();
    let ask_moves = cluster && !vms.is_empty();
    if !ask_clash && !ask_moves {
        return Ok(());
    }
    let live = inventory.placements()?;
    if ask_clash {
        let clashing: Vec<ManagedVm> = at_risk
            .into_iter()
            .filter_map(|v| {
                let node = live.get(&v.vmid)?;
                // The import command names where the VM is now.
                Some(ManagedVm {
                    node: Some(node.clone()),
                    ..v.clone()
                })
            })
            .collect();
        if !clashing.is_empty() {
            return Err(super::TofuError::StateGuard {
                clashing,
                default_node: default_node.map(str::to_string),
            }
            .into());
        }
    }
    if !ask_moves {
        return Ok(());
    }
    let expected = vms.iter().filter_map(|v| {
        let node = v.node.as_deref().or(default_node)?;
        Some((v.name.as_str(), v.vmid, node))
    });
    let moves = super::node_moves::node_moves(expected, &live);
    if !moves.is_empty() {
        return Err(super::TofuError::NodeMoved { moves }.into());
    }
    Ok(())
}

/// `name (VMID n), ...`: the VMs the state guard refuses for.
pub(super) fn clash_list(clashing: &[ManagedVm]) -> String {
    clashing
        .iter()
        .map(|v| format!("{} (VMID {})", v.name, v.vmid))
        .collect::<Vec<_>>()
        .join(", ")
}

/// How to adopt or restore, with one `tofu import` line per VM.
pub(super) fn clash_help(clashing: &[ManagedVm], default_node: Option<&str>) -> String {
    let mut help = String::from(
        "OpenTofu's state is missing or empty, so it would plan to create these VMs again. \
         Restore the state if you have it (vms/tofu/.state/terraform.tfstate or your backend), \
         or adopt the existing VMs, either by adding `import = true;` to each one's `proxmox` set \
         in hosts.nix (pve then renders an import block), or by importing them by hand in the \
         state folder with the API token in the environment:",
    );
    for v in clashing {
        let node = v.node.as_deref().or(default_node).unwrap_or("NODE");
        help.push_str(&format!(
            "\n      tofu import {} {node}/{}",
            v.address(),
            v.vmid
        ));
    }
    help.push_str("\n    (--skip-state-guard skips this check; only use it when you know these VMIDs are free)");
    help
}

#[cfg(test)]
mod tests {
    #[test]
    fn on_a_cluster_a_vm_moved_by_ha_is_refused_with_the_adopting_edit() {
        let vms = managed_vms(&config());
        // sandbox (111) is on pve2 now; the config says prom.
        struct Ha;
        impl Inventory for Ha {
            fn placements(&self) -> Result<BTreeMap<i64, String>, AppError> {
                Ok(BTreeMap::from([(111, "pve2".into()), (109, "prom".into())]))
            }
        }
        let err = check(false, &vms, &Ha, Some("prom"), true).expect_err("moved");
        let msg = err.to_string();
        assert!(
            msg.contains("sandbox (VMID 111) is on pve2, hosts.nix says prom"),
            "{msg}"
        );
        let help = err.help().unwrap_or_default();
        assert!(
            help.contains(r#"pve host set sandbox proxmox.node '"pve2"'"#),
            "{help}"
        );
        assert_eq!(err.exit_code(), 1);
        // Not a cluster: not asked about moves, with or without a state.
        check(false, &vms, &Ha, Some("prom"), false).expect("single node");
        check(true, &managed_vms(&json_vm_120()), &Ha, Some("prom"), false)
            .expect("single node, empty state, nothing clashes");
    }

    use super::*;
    use std::cell::Cell;

    struct Fake {
        ids: BTreeSet<i64>,
        asked: Cell<u32>,
    }
    impl Inventory for Fake {
        fn placements(&self) -> Result<BTreeMap<i64, String>, AppError> {
            self.asked.set(self.asked.get() + 1);
            Ok(self.ids.iter().map(|i| (*i, "prom".to_string())).collect())
        }
    }
    fn fake(ids: &[i64]) -> Fake {
        Fake {
            ids: ids.iter().copied().collect(),
            asked: Cell::new(0),
        }
    }

    fn json_vm_120() -> Json {
        // 120 does not exist yet; 111 (imported) lives on pve2 for `Ha`.
        serde_json::json!({
            "import": [{"to": "proxmox_virtual_environment_vm.old", "id": "prom/111"}],
            "resource": {"proxmox_virtual_environment_vm": {
                "web": {"vm_id": 120, "node_name": "prom"},
                "old": {"vm_id": 111, "node_name": "prom"}
            }}
        })
    }

    fn config() -> Json {
        serde_json::json!({
            "import": [{"to": "proxmox_virtual_environment_vm.igpu", "id": "prom/109"}],
            "resource": {"proxmox_virtual_environment_vm": {
                "sandbox": {"vm_id": 111, "node_name": "prom"},
                "igpu": [{"vm_id": 109, "node_name": "prom"}],
                "web": {"vm_id": "120"}
            }}
        })
    }

    #[test]
    fn reads_vms_and_import_blocks_from_the_config() {
        let vms = managed_vms(&config());
        let summary: Vec<_> = vms
            .iter()
            .map(|v| (v.name.as_str(), v.vmid, v.node.as_deref(), v.imported))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("igpu", 109, Some("prom"), true),
                ("sandbox", 111, Some("prom"), false),
                ("web", 120, None, false),
            ]
        );
    }

    #[test]
    fn fires_when_state_is_empty_and_a_managed_vmid_exists() {
        let vms = managed_vms(&config());
        let inv = fake(&[100, 111, 120]);
        let err = check(true, &vms, &inv, Some("pve"), false).expect_err("must refuse");
        let msg = err.to_string();
        assert!(msg.contains("sandbox (VMID 111), web (VMID 120)"), "{msg}");
        let help = err.help().unwrap_or_default();
        assert!(
            help.contains("tofu import proxmox_virtual_environment_vm.sandbox prom/111"),
            "{help}"
        );
        // The import command names the node the VM is on now.
        assert!(
            help.contains("tofu import proxmox_virtual_environment_vm.web prom/120"),
            "{help}"
        );
        assert!(help.contains("import = true;"), "{help}");
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn an_imported_vm_may_exist() {
        let vms = managed_vms(&config());
        let inv = fake(&[109, 9000]);
        check(true, &vms, &inv, None, false).expect("109 is imported, 9000 unmanaged");
        assert_eq!(inv.asked.get(), 1);
    }

    #[test]
    fn with_state_present_proxmox_is_not_even_asked() {
        let vms = managed_vms(&config());
        let inv = fake(&[111]);
        check(false, &vms, &inv, None, false).expect("state present");
        assert_eq!(inv.asked.get(), 0);
    }

    #[test]
    fn an_inventory_failure_is_reported() {
        struct Down;
        impl Inventory for Down {
            fn placements(&self) -> Result<BTreeMap<i64, String>, AppError> {
                Err(super::super::TofuError::Run {
                    context: "cannot reach Proxmox",
                    source: crate::runner::RunError::Timeout {
                        program: "curl".into(),
                        after: std::time::Duration::from_secs(1),
                    },
                }
                .into())
            }
        }
        let vms = managed_vms(&config());
        let err = check(true, &vms, &Down, None, false).expect_err("must fail");
        assert_eq!(err.exit_code(), 3);
    }
}
