//! `vms/known_hosts`: `<sshAlias>,<hostname> ssh-ed25519 AAAA...` for every
//! host with a real host key, for strict host key checking
//! (`ssh -o UserKnownHostsFile=vms/known_hosts`).

use super::gate;
use crate::diag::RuleId;
use crate::error::AppError;
use crate::fleet::Loaded;
use crate::keys;

pub(crate) const GATE: &[RuleId] = &[
    RuleId::HostName,
    RuleId::PublicKey,
    RuleId::Duplicates,
    RuleId::UniqueNames,
    RuleId::UniqueKeys,
];

/// Whether `vms/known_hosts` renders, without its text (`pve check`): only
/// the gate refuses.
pub fn check_renders(loaded: &Loaded) -> Result<(), AppError> {
    gate(loaded, GATE)
}

/// The exact bytes of `vms/known_hosts`.
pub fn render(loaded: &Loaded) -> Result<String, AppError> {
    gate(loaded, GATE)?;
    // Room for every line at once (about 100 bytes a host): grown by
    // doubling, the text was copied and faulted in about twice over.
    let mut out =
        String::with_capacity(crate::known_hosts::HEADER.len() + 128 * loaded.fleet.hosts.len());
    out.push_str(crate::known_hosts::HEADER);
    for h in &loaded.fleet.hosts {
        // Placeholders (no key yet) are skipped; real errors were refused
        // by the gate.
        let Some(Ok(point)) = h.public_point() else {
            continue;
        };
        let mut names = Vec::new();
        if let Some(a) = &h.ssh_alias {
            names.push(a.value.as_str());
        }
        if !names.contains(&h.hostname()) {
            names.push(h.hostname());
        }
        // Re-encode from the parsed point: the comment is dropped and the
        // line cannot carry anything but the key.
        out.push_str(&crate::known_hosts::line(
            &names,
            &keys::ed25519_line(point),
        ));
        out.push('\n');
    }
    Ok(out)
}
