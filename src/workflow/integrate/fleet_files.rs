//! Steps 8–10: the fleet's own files. The verified key becomes the host's
//! `publicKey` in hosts.nix, `.sops.yaml` and `vms/known_hosts` are
//! rendered again, and the secrets re-keyed for the new recipient.

use super::{fact_key, normalise_key, Integrate};
use crate::error::Result;
use crate::fleet;
use crate::known_hosts::shown_fingerprint;
use crate::workflow::Journal;

/// Step 8: `hosts.<name>.publicKey`.
pub(super) fn public_key(c: &mut Integrate<'_>, j: &mut Journal) -> Result<String> {
    let key = fact_key(j)?;
    let names = c.key_names()?;
    crate::workflow::key_owner::refuse_shared_key(&c.loaded, &c.opts.name, &names, &key)?;
    let path = c.loaded.file.path.clone();
    let name = c.opts.name.clone();
    let old = c
        .host()?
        .public_key
        .as_ref()
        .map(|k| k.value.clone())
        .filter(|k| normalise_key(k).is_some_and(|k| k != key));
    let literal = fleet::edit::names::string_literal(&key);
    let applied = fleet::edit::apply_to_file(&path, |text| {
        fleet::edit::set_attr(text, &[name.as_str(), "publicKey"], &literal)
    })?;
    c.loaded = fleet::load(&path)?;
    Ok(if let Some(old) = old {
        format!(
            "hosts.{name}.publicKey = \"{key}\" (replaced {}: the VM was re-created?)",
            shown_fingerprint(&old)
        )
    } else if applied.changed() {
        format!("hosts.{name}.publicKey = \"{key}\"")
    } else {
        format!("hosts.{name}.publicKey already holds this key")
    })
}

/// Step 9: `.sops.yaml` (when the fleet has secrets) and `vms/known_hosts`.
pub(super) fn render(c: &mut Integrate<'_>, _j: &mut Journal) -> Result<String> {
    let loaded = fleet::load(&c.loaded.file.path)?;
    let mut targets = vec![crate::render::Target::KnownHosts];
    if loaded.fleet.sops.span.is_some() {
        targets.push(crate::render::Target::Sops);
    }
    let files = crate::render::render(&loaded, &targets)?;
    let held = c.lock.take()?;
    let changed = crate::render::write(&loaded, &loaded.root_dir, &files, Some(&held))?;
    drop(held);
    c.loaded = loaded;
    let all: Vec<String> = files.iter().map(|f| f.path.display().to_string()).collect();
    Ok(if changed.is_empty() {
        format!("{} unchanged", all.join(", "))
    } else {
        format!(
            "updated {}",
            changed
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

/// Step 10: `sops updatekeys` on every secret file.
pub(super) fn rekey(c: &mut Integrate<'_>, _j: &mut Journal) -> Result<String> {
    crate::workflow::rekey_step::run(&c.loaded, &c.opts.name, &c.lock)
}
