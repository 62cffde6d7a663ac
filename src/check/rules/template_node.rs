//! `template-node`: every VM cloned from the template has a template it
//! can be cloned from on its node: `_proxmox.templates.<node>`, or
//! `_proxmox.templateVmid` (on `_proxmox.node`; the provider clones it
//! across nodes, which needs the template on shared storage or a provider
//! that migrates after cloning).
//!
//! Why: with only per-node templates, a VM on a node that has none makes
//! the provider fail mid-apply ("unable to find configuration file for VM
//! 9003 on node 'pve3'"); the rule names the node and the fix before
//! anything runs.
//!
//! ```nix
//! _proxmox = { nodes = [ "pve1" "pve2" "pve3" ]; templates = { pve1 = 9003; pve2 = 9013; }; };
//! web = { proxmox = { node = "pve3"; ... }; };   # no-template
//! ```

use crate::diag::{Code, Diagnostic};
use crate::fleet::Loaded;

pub fn template_nodes(l: &Loaded) -> Vec<Diagnostic> {
    let Some(cfg) = &l.fleet.proxmox else {
        return Vec::new();
    };
    if cfg.templates.is_empty() {
        // Only templateVmid (or nothing: `proxmox-config` reports that).
        return Vec::new();
    }
    let mut out = Vec::new();
    for (h, p) in l.fleet.vms() {
        if !p.clones_template() || p.readonly || p.import {
            continue;
        }
        let Some(node) = cfg.node_of(p) else { continue };
        if cfg.template_for(node).is_some() {
            continue;
        }
        let span = p.node.as_ref().map_or(p.span, |n| n.span);
        let have = cfg
            .templates
            .iter()
            .map(|(n, t)| format!("{n} = {}", t.value))
            .collect::<Vec<_>>()
            .join("; ");
        out.push(
            Diagnostic::error(
                Code::NoTemplate,
                span,
                format!(
                    "`{}` is cloned on node `{node}`, which has no template in `_proxmox.templates` ({have})",
                    h.name
                ),
            )
            .help(format!(
                "add `{node} = VMID;` (the NixOS template on {node}) to `_proxmox.templates`, \
                 or set `_proxmox.templateVmid` to a template on shared storage every node can clone, \
                 or place the VM on a node that has one"
            )),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::check::testing::codes;

    const PER_NODE: &str = "templateVmid = 9000;";

    #[test]
    fn the_example_fleet_is_clean() {
        assert_eq!(codes(super::template_nodes, "", ""), Vec::<&str>::new());
    }

    #[test]
    fn a_vm_on_a_node_with_its_own_template_is_clean() {
        assert_eq!(
            codes(
                super::template_nodes,
                PER_NODE,
                "templates = { pve = 9000; pve2 = 9010; };"
            ),
            Vec::<&str>::new()
        );
    }

    #[test]
    fn a_vm_on_a_node_without_a_template() {
        // `web` and `db` live on `pve`; only pve2 has a template.
        assert_eq!(
            codes(
                super::template_nodes,
                PER_NODE,
                "templates = { pve2 = 9010; };"
            ),
            ["no-template", "no-template"]
        );
    }

    #[test]
    fn template_vmid_is_the_fallback_for_every_node() {
        assert_eq!(
            codes(
                super::template_nodes,
                PER_NODE,
                "templateVmid = 9000; templates = { pve2 = 9010; };"
            ),
            Vec::<&str>::new()
        );
    }
}
