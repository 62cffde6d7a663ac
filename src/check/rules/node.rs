//! `node`: a VM's `node` is one of `_proxmox.nodes`, when that list is
//! given.
//!
//! Why: a misspelt node makes the provider fail mid-apply; the rule says
//! which node was meant.
//!
//! ```nix
//! _proxmox = { nodes = [ "pve" "pve2" ]; };
//! web = { proxmox = { node = "pve3"; }; };   # unknown-node
//! ```

use crate::diag::{Code, Diagnostic};
use crate::fleet::Loaded;

pub fn nodes(l: &Loaded) -> Vec<Diagnostic> {
    let Some(known) = l.fleet.proxmox.as_ref().and_then(|c| c.nodes.as_ref()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (h, p) in l.fleet.vms() {
        let Some(n) = &p.node else { continue };
        if !known.contains(&n.value) {
            let d = Diagnostic::error(
                Code::UnknownNode,
                n.span,
                format!(
                    "`{}` is placed on node `{}`, which is not in `_proxmox.nodes`",
                    h.name, n.value
                ),
            );
            out.push(
                match crate::diag::did_you_mean(&n.value, known.iter().map(String::as_str)) {
                    Some(s) => d.help(format!("did you mean `{s}`?")),
                    None => d.help(format!("known nodes: {}", known.join(", "))),
                },
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::check::testing::codes;

    #[test]
    fn the_example_fleet_is_clean() {
        assert_eq!(codes(super::nodes, "", ""), Vec::<&str>::new());
    }

    #[test]
    fn a_misspelt_node() {
        assert_eq!(
            codes(super::nodes, "node = \"pve\"; }", "node = \"pev\"; }"),
            ["unknown-node"]
        );
    }
}
