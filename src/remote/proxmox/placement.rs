//! Placement: which node of the cluster a new VM goes to. `pve new --node
//! auto` (or `_proxmox.placement = "least-memory"` without `--node`) asks
//! `pvesh get /nodes` once and takes the online node with the most free
//! memory (`maxmem - mem`, bytes) among those a template reaches
//! (`ProxmoxConfig::template_for`). The choice is written into hosts.nix as
//! the host's `proxmox.node`; it is never made again for that host.

use serde_json::Value as Json;

use super::parse::ParseError;
use super::{external, s, Proxmox, DEFAULT_OP_TIMEOUT};
use crate::error::Result;
use crate::fleet::model::ProxmoxConfig;

/// One node of `pvesh get /nodes`: its name, whether it is online, and
/// its free memory in bytes (0 when the node reports no memory figures,
/// as an offline node does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLoad {
    pub node: String,
    pub online: bool,
    pub free_mem: u64,
}

impl Proxmox {
    /// Every node of the cluster with its free memory (`pvesh get /nodes`).
    pub fn node_loads(&self) -> Result<Vec<NodeLoad>> {
        let out = self.run(
            &[
                s("pvesh"),
                s("get"),
                s("/nodes"),
                s("--output-format"),
                s("json"),
            ],
            DEFAULT_OP_TIMEOUT,
        )?;
        parse_nodes(&out.stdout).map_err(external)
    }
}

/// The node a new VM goes to: online, reached by a template, the most free
/// memory (ties: the first name in sort order, so the choice is stable).
/// None: no online node has a template.
pub fn least_memory_node(nodes: &[NodeLoad], cfg: &ProxmoxConfig) -> Option<String> {
    nodes
        .iter()
        .filter(|n| n.online && cfg.template_for(&n.node).is_some())
        .min_by(|a, b| b.free_mem.cmp(&a.free_mem).then(a.node.cmp(&b.node)))
        .map(|n| n.node.clone())
}

/// `pvesh get /nodes --output-format json` (reference:
/// proxmox-cli/pvesh-get-nodes.json): an array of objects with `node`,
/// `status`, and for online nodes `mem`/`maxmem` in bytes. Node names are
/// checked to be host names: they go into hosts.nix and API paths.
fn parse_nodes(text: &str) -> std::result::Result<Vec<NodeLoad>, ParseError> {
    const W: &str = "pvesh get /nodes";
    let bad = |detail: String| ParseError { what: W, detail };
    let v: Json = serde_json::from_str(text.trim()).map_err(|e| bad(e.to_string()))?;
    let items = v
        .as_array()
        .ok_or_else(|| bad("expected a JSON array".into()))?;
    let mut out = Vec::new();
    for item in items {
        let node = item
            .get("node")
            .and_then(Json::as_str)
            .ok_or_else(|| bad(format!("an entry without `node`: {item}")))?;
        if !crate::remote::ssh::valid_host(node) {
            return Err(bad(format!("node name {node:?} is not a host name")));
        }
        let num = |k: &str| item.get(k).and_then(Json::as_u64).unwrap_or(0);
        out.push(NodeLoad {
            node: node.to_string(),
            online: item.get("status").and_then(Json::as_str) == Some("online"),
            free_mem: num("maxmem").saturating_sub(num("mem")),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::model::Spanned;

    const REFERENCE: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/proxmox-cli/pvesh-get-nodes.json"
    ));

    fn cfg(template_vmid: Option<i64>, templates: &[(&str, i64)]) -> ProxmoxConfig {
        let span = rowan::TextRange::default();
        let mut c = ProxmoxConfig::empty(span);
        c.node = Some(Spanned {
            value: "pve".into(),
            span,
        });
        c.template_vmid = template_vmid.map(|v| Spanned { value: v, span });
        for (n, t) in templates {
            c.templates.insert((*n).into(), Spanned { value: *t, span });
        }
        c
    }

    #[test]
    fn the_reference_sample_parses() {
        let nodes = parse_nodes(REFERENCE).expect("parses");
        let pve2 = nodes.iter().find(|n| n.node == "pve2").expect("pve2");
        assert!(pve2.online);
        assert_eq!(pve2.free_mem, 67345588224 - 21474836480);
        let pve3 = nodes.iter().find(|n| n.node == "pve3").expect("pve3");
        assert!(!pve3.online);
    }

    #[test]
    fn the_most_free_memory_among_online_nodes_with_a_template() {
        let nodes = parse_nodes(REFERENCE).expect("parses");
        // pve has 12.6 GB in use, pve2 21.4 GB, pve3 is offline.
        assert_eq!(
            least_memory_node(&nodes, &cfg(Some(9000), &[])).as_deref(),
            Some("pve")
        );
        // Only per-node templates, none on pve: pve2.
        assert_eq!(
            least_memory_node(&nodes, &cfg(None, &[("pve2", 9001)])).as_deref(),
            Some("pve2")
        );
        // Only the offline node has a template: nowhere.
        assert_eq!(
            least_memory_node(&nodes, &cfg(None, &[("pve3", 9002)])),
            None
        );
    }

    #[test]
    fn a_hostile_node_name_is_refused() {
        assert!(parse_nodes(r#"[{"node":"-oProxy=x","status":"online"}]"#).is_err());
        assert!(parse_nodes("{}").is_err());
    }
}
