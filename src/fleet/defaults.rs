//! pve's defaults, in one table: what pve uses when hosts.nix leaves a
//! setting out, and what `pve init` suggests. The older names
//! (`render::tofu::DEFAULT_BRIDGE`, `fleet::model::DEFAULT_VMID_RANGE`,
//! `app::init::DEFAULT_NODE`, ...) are re-exports of these, so a default
//! changes here and nowhere else. [`setting`] is what `pve config get`
//! shows for a setting hosts.nix does not set.

use serde_json::{json, Value as Json};

/// `_proxmox.node`: the node `qm` runs on when neither hosts.nix nor
/// PROXMOX_NODE names one (Proxmox's installer names the first node `pve`);
/// also `pve init`'s suggestion.
pub const NODE: &str = "pve";

/// `_proxmox.user`: the SSH user on the Proxmox host when neither hosts.nix
/// nor PROXMOX_USER names one (`qm` and `pvesh` need root).
pub const USER: &str = "root";

/// `pve init`'s suggestion for `_proxmox.defaultStorage` (the LVM-thin pool
/// Proxmox's installer creates). Not applied when the key is unset: a VM
/// without a storage keeps its template's.
pub const STORAGE: &str = "local-lvm";

/// `pve init`'s suggestion for `_proxmox.templateVmid`. Not applied when
/// the key is unset: cloning needs a template named in hosts.nix.
pub const TEMPLATE_VMID: u32 = 9000;

/// `_proxmox.vmidRange`: where `pve new` and `next-vmid` look for a free
/// VMID (Proxmox's own `/cluster/nextid` starts at 100).
pub const VMID_RANGE: (i64, i64) = (100, 999);

/// `_proxmox.bridge`: the network bridge of a VM's NIC (Proxmox's
/// installer creates `vmbr0`).
pub const BRIDGE: &str = "vmbr0";

/// `_proxmox.parallelClones`: VMs one apply clones at once (`tofu apply
/// -parallelism`); more make clones of one template queue on its lock.
pub const PARALLEL_CLONES: u32 = 2;

/// `_proxmox.providerVersion`: the bpg/proxmox provider version pinned
/// when it is not set: the newest release whose schema the tests check the
/// output against.
pub const PROVIDER_VERSION: &str = "0.111.1";

/// Where the OpenTofu state lives by default, relative to OpenTofu's
/// working folder `vms/tofu/.state` (where `pve plan`/`apply` put the
/// config and run tofu; `TOFU_WORKDIR` moves it):
/// `vms/tofu/.state/terraform.tfstate`.
pub const STATE_PATH: &str = "terraform.tfstate";

/// A host's `proxmox.bios` (the provider's own default too).
pub const BIOS: &str = "seabios";

/// A host's `proxmox.cpuType` (the CPU type Proxmox's web UI picks for a
/// new VM).
pub const CPU_TYPE: &str = "x86-64-v2-AES";

/// A host's `proxmox.diskInterface`: the boot disk's slot.
pub const DISK_INTERFACE: &str = "virtio0";

/// A cloned host's `proxmox.tags` when hosts.nix gives it none.
pub const TAGS: &[&str] = &["opentofu", "nixos", "managed"];

/// The value pve uses for the setting at `path` (`["_proxmox",
/// "parallelClones"]`) when hosts.nix leaves it out, as JSON; None when
/// pve has no default for it (then an unset key is just unset).
pub fn setting(path: &[String]) -> Option<Json> {
    let [set, key] = path else {
        return None;
    };
    if set != "_proxmox" {
        return None;
    }
    Some(match key.as_str() {
        "node" => json!(NODE),
        "user" => json!(USER),
        "vmidRange" => json!([VMID_RANGE.0, VMID_RANGE.1]),
        "bridge" => json!(BRIDGE),
        "parallelClones" => json!(PARALLEL_CLONES),
        "providerVersion" => json!(PROVIDER_VERSION),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(key: &str) -> Vec<String> {
        key.split('.').map(str::to_string).collect()
    }

    #[test]
    fn applied_defaults_are_known_and_suggestions_are_not() {
        assert_eq!(setting(&path("_proxmox.parallelClones")), Some(json!(2)));
        assert_eq!(
            setting(&path("_proxmox.vmidRange")),
            Some(json!([100, 999]))
        );
        assert_eq!(setting(&path("_proxmox.templateVmid")), None);
        assert_eq!(setting(&path("_proxmox.defaultStorage")), None);
        assert_eq!(setting(&path("_proxmox")), None);
        assert_eq!(setting(&path("_sops.node")), None);
    }
}
