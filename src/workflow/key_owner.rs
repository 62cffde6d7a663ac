//! One host key, one machine: before a key is pinned for a host (or
//! written into its `publicKey`), no other host of the fleet, and not the
//! Proxmox host, may already own it. Otherwise a VM that hands out another
//! machine's key (through its guest agent, or by answering at its address)
//! would have pve talk to that machine under the VM's name.

use crate::error::AppError;
use crate::fleet::Loaded;
use crate::known_hosts::{self, KnownHostsError, PROXMOX_PATH, VMS_PATH};

/// Refuses (exit 3) when `key` already belongs to someone other than host
/// `name`: another host's `publicKey`, a line of `vms/known_hosts` for
/// other names than `own_names`, or the Proxmox host's pinned key.
pub fn refuse_shared_key(
    loaded: &Loaded,
    name: &str,
    own_names: &[String],
    key: &str,
) -> Result<(), AppError> {
    let Some(key) = crate::keys::normalise_ed25519(key).ok() else {
        return Ok(());
    };
    let fp = known_hosts::key_fingerprint(&key).unwrap_or_default();
    for h in loaded.fleet.hosts.iter().filter(|h| h.name != name) {
        let theirs = h
            .public_key
            .as_ref()
            .and_then(|k| crate::keys::normalise_ed25519(&k.value).ok());
        if theirs.as_deref() == Some(key.as_str()) {
            return Err(conflict(
                name,
                &fp,
                &format!("`{}` (its publicKey in hosts.nix)", h.name),
            ));
        }
    }
    let root = &loaded.root_dir;
    for (file, own) in [(VMS_PATH, own_names), (PROXMOX_PATH, &[][..])] {
        for names in known_hosts::owners(&root.join(file), &key) {
            if names.iter().any(|n| !own.contains(n)) {
                let who = if file == PROXMOX_PATH {
                    format!("the Proxmox host ({} in {file})", names.join(","))
                } else {
                    format!("`{}` (pinned in {file})", names.join(","))
                };
                return Err(conflict(name, &fp, &who));
            }
        }
    }
    Ok(())
}

fn conflict(name: &str, fp: &str, owner: &str) -> AppError {
    KnownHostsError::KeyOwnedElsewhere {
        name: name.to_string(),
        fingerprint: fp.to_string(),
        owner: owner.to_string(),
    }
    .into()
}
