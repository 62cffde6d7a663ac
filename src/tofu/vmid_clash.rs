//! A clone that lost the race for its VMID, read from what `tofu apply`
//! printed (the bpg/proxmox provider passes Proxmox's message on).
//!
//! Proxmox has no VMID reservation: `/cluster/nextid --vmid N` answers "free
//! at the time of check" (pve-manager `PVE/API2/Cluster.pm`). The one atomic
//! point is the creation of the VM's config file: pmxcfs refuses to create
//! `/etc/pve/nodes/<node>/qemu-server/<vmid>.conf` when any node already has
//! a guest with that VMID (pve-cluster `src/pmxcfs/memdb.c`,
//! `vmlist_different_vm_exists` → EEXIST). A clone that loses says one of:
//!
//! * `unable to create VM N: config file already exists` (qemu-server
//!   `API2/Qemu.pm` clone_vm: the VMID is taken on the node the clone runs
//!   on; HTTP 500 before the task starts);
//! * `close (rename) atomic file '/etc/pve/nodes/<node>/qemu-server/N.conf'
//!   failed: File exists` (taken on another node: pmxcfs refuses the config
//!   file inside the clone task; pve-common `file_set_contents`);
//! * `VM N already exists on node '<node>'` / `CT N …` (pve-cluster
//!   `check_vmid_unused`, the check of `qm create` and restores).

/// Whether `output` says VMID `vmid` was taken when the VM was created.
pub fn taken(output: &str, vmid: u32) -> bool {
    let texts = [
        format!("unable to create VM {vmid}: config file already exists"),
        format!("/qemu-server/{vmid}.conf' failed: File exists"),
        format!("VM {vmid} already exists on node '"),
        format!("CT {vmid} already exists on node '"),
    ];
    texts.iter().any(|t| output.contains(t.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_proxmox_text_is_recognised_for_its_vmid_only() {
        let same_node = "│ error cloning VM: received an HTTP 500 response - Reason: unable to create VM 150: config file already exists";
        let other_node = "│ task \"UPID:pve:0001F2A3:00B1C2D3:6750A1B2:qmclone:9000:root@pam!pve:\" failed to complete with exit code: close (rename) atomic file '/etc/pve/nodes/pve/qemu-server/150.conf' failed: File exists";
        let create = "VM 150 already exists on node 'pve2'";
        for text in [same_node, other_node, create] {
            assert!(taken(text, 150), "{text}");
            assert!(!taken(text, 15), "{text}");
            assert!(!taken(text, 1500), "{text}");
        }
        assert!(!taken(
            "clone failed: can't lock file '/var/lock/pve-manager/pve-storage-local-lvm' - got timeout",
            150
        ));
    }
}
