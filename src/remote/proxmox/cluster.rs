//! The cluster, not one node: where a VM lives and what it is called are
//! asked of `/cluster/resources` and of the node that holds it (`pvesh`
//! proxies `/nodes/<node>/...` to that node), because `qm` on the host pve
//! connects to sees only that node's VMs.

use serde_json::Value as Json;

use super::parse::{ParseError, Resource};
use super::{external, s, Proxmox, DEFAULT_OP_TIMEOUT};
use crate::error::Result;

impl Proxmox {
    /// The guest with this VMID anywhere in the cluster (None: no such VMID).
    pub fn locate(&self, vmid: u32) -> Result<Option<Resource>> {
        Ok(self.resources()?.into_iter().find(|r| r.vmid == vmid))
    }

    /// The VM's name as Proxmox shows it (`VM <vmid>` when it has none),
    /// asked of the node that holds it: `qm config` on the node pve talks
    /// to, `pvesh get /nodes/<node>/qemu/<vmid>/config` for another node.
    pub fn vm_name_on(&self, vmid: u32, node: &str) -> Result<String> {
        if node == self.settings().node {
            return self.vm_name(vmid);
        }
        if !crate::remote::ssh::valid_host(node) {
            return Err(external(ParseError {
                what: "pvesh get /cluster/resources",
                detail: format!("node name {node:?} is not a host name"),
            }));
        }
        let out = self.run(
            &[
                s("pvesh"),
                s("get"),
                format!("/nodes/{node}/qemu/{vmid}/config"),
                s("--output-format"),
                s("json"),
            ],
            DEFAULT_OP_TIMEOUT,
        )?;
        config_name(&out.stdout, vmid).map_err(external)
    }
}

/// `name` of a `pvesh get .../config --output-format json` object.
fn config_name(text: &str, vmid: u32) -> std::result::Result<String, ParseError> {
    const W: &str = "pvesh get /nodes/<node>/qemu/<vmid>/config";
    let v: Json = serde_json::from_str(text.trim()).map_err(|e| ParseError {
        what: W,
        detail: e.to_string(),
    })?;
    let Some(obj) = v.as_object() else {
        return Err(ParseError {
            what: W,
            detail: "expected a JSON object".into(),
        });
    };
    Ok(match obj.get("name") {
        Some(Json::String(n)) => n.clone(),
        _ => format!("VM {vmid}"),
    })
}

#[cfg(test)]
mod tests {
    use super::config_name;

    #[test]
    fn the_name_from_a_config_object() {
        assert_eq!(
            config_name("{\"digest\":\"0\",\"name\":\"web\"}\n", 111).expect("parses"),
            "web"
        );
        assert_eq!(
            config_name("{\"memory\":\"2048\"}", 112).expect("parses"),
            "VM 112"
        );
        assert!(config_name("[1]", 1).is_err());
    }
}
