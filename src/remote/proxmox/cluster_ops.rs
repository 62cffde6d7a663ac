//! `list` and `clone` across the cluster (issue 15, item 3): `qm list` and
//! `qm clone` see only the node pve connects to.
//!
//! - [`Proxmox::list_cluster`]: the connected node's VMs from `qm list`
//!   (as before, with their PIDs) plus every other node's VMs from
//!   `/cluster/resources` (which has no PID), each with its node.
//! - [`Proxmox::clone_vm_to`]: a template on another node is cloned there
//!   with the `qmclone` task `pvesh create /nodes/<node>/qemu/<vmid>/clone
//!   --newid N --name X [--full 1] [--storage S] [--target NODE]`
//!   (qemu-server API2/Qemu.pm `clone_vm`), followed to its end like the
//!   other tasks ([`super::target`]); on the connected node `qm clone`
//!   as before, with `--target` when given.

use serde::Serialize;

use super::error::ProxmoxError;
use super::parse::ListEntry;
use super::target::{Method, NodeName};
use super::{check_name, check_storage, s, Proxmox, LONG_OP_TIMEOUT};
use crate::error::Result;

/// One VM of the cluster as `proxmox-ops list` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterVm {
    pub vmid: u32,
    pub name: String,
    pub status: String,
    pub mem_mib: u64,
    pub bootdisk_gib: f64,
    /// `None` for a VM on another node (`/cluster/resources` has no PID).
    pub pid: Option<u32>,
    pub node: String,
}

/// What `list` found: the VMs, and whether any lives on another node than
/// the connected one (then the text output has a NODE column).
#[derive(Debug, Clone, PartialEq)]
pub struct Listing {
    pub vms: Vec<ClusterVm>,
    pub other_nodes: bool,
}

/// A node name the user typed (`--target-node`), checked as Proxmox's
/// `pve-node` format before it goes into an argv or a pvesh path.
pub fn check_node(name: &str) -> Result<NodeName> {
    NodeName::parse(name).map_err(|_| {
        ProxmoxError::InvalidNode {
            node: name.to_string(),
        }
        .into()
    })
}

impl Proxmox {
    /// Every VM of the cluster, sorted by VMID (containers are not VMs:
    /// `qm list` does not show them either).
    pub fn list_cluster(&self) -> Result<Listing> {
        let here = self.settings.node.clone();
        let guests = self.guests()?;
        let mut vms: Vec<ClusterVm> = self
            .list()?
            .into_iter()
            .map(|e| from_qm_list(e, &here))
            .collect();
        let mut other_nodes = false;
        for g in guests.into_iter().filter(|g| g.kind == "qemu") {
            if g.node == here || vms.iter().any(|v| v.vmid == g.vmid) {
                continue;
            }
            other_nodes = true;
            vms.push(ClusterVm {
                vmid: g.vmid,
                // Proxmox names a nameless VM `VM <vmid>` (vmstatus).
                name: g.name.unwrap_or_else(|| format!("VM {}", g.vmid)),
                status: g.status,
                mem_mib: g.maxmem.unwrap_or(0) / (1024 * 1024),
                bootdisk_gib: g.maxdisk.unwrap_or(0) as f64 / (1024.0 * 1024.0 * 1024.0),
                pid: None,
                node: g.node,
            });
        }
        vms.sort_by_key(|v| v.vmid);
        Ok(Listing { vms, other_nodes })
    }

    /// Clones `source` to a new VM `target` named `name`, on the node that
    /// holds `source`; the new VM lands on `target_node` when given (Proxmox
    /// allows that only for a VM on shared storage), else on that node.
    /// Refuses a `target` VMID taken anywhere in the cluster.
    pub fn clone_vm_to(
        &self,
        source: u32,
        target: u32,
        name: &str,
        full: bool,
        storage: Option<&str>,
        target_node: Option<&NodeName>,
    ) -> Result<String> {
        check_name(name)?;
        if let Some(st) = storage {
            check_storage(st)?;
        }
        self.settings.ensure_writable(target, "clone onto")?;
        let guests = self.guests()?;
        if let Some(r) = guests.iter().find(|r| r.vmid == target) {
            return Err(ProxmoxError::VmidTaken {
                vmid: target,
                name: r.name.clone(),
                kind: r.kind.to_string(),
                node: r.node.clone(),
            }
            .into());
        }
        let mut opts = vec![s("--name"), s(name)];
        if full {
            opts.extend([s("--full"), s("1")]);
        }
        if let Some(st) = storage {
            opts.extend([s("--storage"), s(st)]);
        }
        if let Some(n) = target_node {
            opts.extend([s("--target"), s(n)]);
        }
        let remote = match guests.iter().find(|g| g.vmid == source) {
            Some(g) if g.node != self.settings.node => Some(NodeName::parse(&g.node)?),
            _ => None,
        };
        let Some(node) = remote else {
            let mut argv = vec![s("qm"), s("clone"), s(source), s(target)];
            argv.extend(opts);
            return Ok(self.run(&argv, LONG_OP_TIMEOUT)?.stdout);
        };
        let mut args = vec![s("--newid"), s(target)];
        args.extend(opts);
        let path = super::target::vm_path(&node, source, "clone");
        let timeout = self.timeout(LONG_OP_TIMEOUT);
        let done = self.pvesh_task(&node, Method::Create, &path, &args, timeout)?;
        self.task_output(&done)
    }
}

fn from_qm_list(e: ListEntry, node: &str) -> ClusterVm {
    ClusterVm {
        vmid: e.vmid,
        name: e.name,
        status: e.status,
        mem_mib: e.mem_mib,
        bootdisk_gib: e.bootdisk_gib,
        pid: Some(e.pid),
        node: node.to_string(),
    }
}
