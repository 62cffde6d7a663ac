//! Step 11: what was done, and the next steps (committing the changed
//! files, logging in with the pinned key).

use super::{fact_ip, hardware_config, Integrate};
use crate::error::Result;
use crate::known_hosts::VMS_PATH;
use crate::workflow::Journal;

pub(super) fn run(c: &mut Integrate<'_>, j: &mut Journal) -> Result<String> {
    let ip = fact_ip(j)?;
    let name = &c.opts.name;
    let host = c.host()?;
    let target = host
        .ssh_alias
        .as_ref()
        .map_or_else(|| ip.to_string(), |a| a.value.clone());
    let hw = c.show(&hardware_config::hardware_path(c)?);
    let sops_dir = crate::render::sops::config_path(&c.loaded)
        .ok()
        .and_then(|p| p.parent().map(|d| d.display().to_string()))
        .filter(|d| !d.is_empty());
    let mut add = vec!["hosts.nix".to_string(), hw, VMS_PATH.to_string()];
    if let Some(d) = sops_dir {
        add.push(d);
    }
    c.summary = format!(
        "{name} is integrated: NixOS switched at {ip}, host key pinned, secrets re-keyed.\n\
         Next steps:\n  \
         git add {} && git commit -m 'integrate {name}'\n  \
         ssh -o UserKnownHostsFile={VMS_PATH} {}@{target}   # {target} must resolve (sshAlias in your ssh config, or Tailscale MagicDNS)\n  \
         pve check\n",
        add.join(" "),
        c.opts.user,
    );
    Ok(format!("{name} integrated at {ip}"))
}
