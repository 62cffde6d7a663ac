//! One host key, one machine: before a key is pinned for a host (or
//! written into its `publicKey`), no other host of the fleet, and not the
//! Proxmox host, may already own it. Otherwise a VM that hands out another
//! machine's key (through its guest agent, or by answering at its address)
//! would have pve talk to that machine under the VM's name.

use std::path::Path;

use crate::error::AppError;
use crate::fleet::Loaded;
use crate::remote::proxmox::{PROXMOX_KNOWN_HOSTS, VMS_KNOWN_HOSTS};

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
    let fp = key
        .split_whitespace()
        .nth(1)
        .and_then(crate::remote::ssh::fingerprint)
        .unwrap_or_default();
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
    for (file, own) in [(VMS_KNOWN_HOSTS, own_names), (PROXMOX_KNOWN_HOSTS, &[][..])] {
        for names in owners_in(&root.join(file), &key) {
            if names.iter().any(|n| !own.contains(n)) {
                let who = if file == PROXMOX_KNOWN_HOSTS {
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
    AppError::external(format!(
        "the host key offered for `{name}` ({fp}) already belongs to {owner}; refusing to pin it for `{name}`"
    ))
    .with_help(format!(
        "a VM that hands out another machine's key is impersonating it, or answers at its address. Check `{name}` on its console; nothing was trusted or changed"
    ))
}

/// The name lists of every known_hosts line holding `key`.
fn owners_in(file: &Path, key: &str) -> Vec<Vec<String>> {
    let Ok(text) = std::fs::read_to_string(file) else {
        return Vec::new();
    };
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let (names, rest) = l.split_once(char::is_whitespace)?;
            let k = crate::keys::normalise_ed25519(rest).ok()?;
            (k == key).then(|| names.split(',').map(str::to_string).collect())
        })
        .collect()
}
