//! The cluster, not one node: where a VM lives and what it is called are
//! asked of `/cluster/resources` and of the node that holds it (`pvesh`
//! proxies `/nodes/<node>/...` to that node), because `qm` on the host pve
//! connects to sees only that node's VMs.

use std::time::Duration;

use serde_json::Value as Json;

use super::guests::Guest;
use super::parse::{self, ParseError, VmConfig};
use super::target::{vm_path, NodeName};
use super::{external, s, Proxmox, DEFAULT_OP_TIMEOUT};
use crate::error::Result;

impl Proxmox {
    /// The guest with this VMID anywhere in the cluster (None: no such VMID).
    pub fn locate(&self, vmid: u32) -> Result<Option<Guest>> {
        Ok(self.resources()?.into_iter().find(|r| r.vmid == vmid))
    }

    /// The VM's name as Proxmox shows it (`VM <vmid>` when it has none),
    /// asked of the node that holds it: `qm config` on the node pve talks
    /// to, `pvesh get /nodes/<node>/qemu/<vmid>/config` for another node.
    pub fn vm_name_on(&self, vmid: u32, node: &str) -> Result<String> {
        if node == self.settings().node {
            return self.vm_name(vmid);
        }
        let out = self.run(&pvesh_get(node, vmid, "config")?, DEFAULT_OP_TIMEOUT)?;
        config_name(&out.stdout, vmid).map_err(external)
    }
}

impl Proxmox {
    /// VM `vmid`'s configuration, asked of the node that holds it: `qm
    /// config` on the node pve talks to, else `pvesh get
    /// /nodes/<node>/qemu/<vmid>/config` (values as `qm config` shows them:
    /// numbers as their digits).
    pub fn config_on(&self, vmid: u32, node: &str, timeout: Duration) -> Result<VmConfig> {
        if node == self.settings().node {
            let out = self.run_within(&[s("qm"), s("config"), s(vmid)], timeout)?;
            return parse::qm_config(&out.stdout).map_err(external);
        }
        let out = self.run_within(&pvesh_get(node, vmid, "config")?, timeout)?;
        json_config(&out.stdout).map_err(external)
    }

    /// The guest agent's network-get-interfaces answer for a VM on `node`
    /// (see [`Proxmox::agent_interfaces_text`]).
    pub fn agent_interfaces_on(&self, vmid: u32, node: &str, timeout: Duration) -> Result<String> {
        let remote = if node == self.settings().node {
            None
        } else {
            Some(NodeName::parse(node)?)
        };
        Ok(self.agent_interfaces_text(vmid, remote.as_ref(), timeout)?)
    }
}

impl Proxmox {
    /// A command bounded by exactly `timeout` (status's per-VM queries
    /// have their own bound, not `--timeout`).
    fn run_within(
        &self,
        argv: &[String],
        timeout: Duration,
    ) -> Result<crate::remote::ssh::RemoteOutput> {
        Ok(self.ssh.run(argv, timeout)?)
    }
}

/// `pvesh get /nodes/<node>/qemu/<vmid>/<what> --output-format json`; the
/// node name (from /cluster/resources) must be a Proxmox node name.
fn pvesh_get(node: &str, vmid: u32, what: &str) -> Result<Vec<String>> {
    let node = NodeName::parse(node)?;
    Ok(vec![
        s("pvesh"),
        s("get"),
        vm_path(&node, vmid, what),
        s("--output-format"),
        s("json"),
    ])
}

/// A `pvesh get .../config --output-format json` object as `qm config`
/// entries (strings as they are, numbers as digits; `digest` left out).
fn json_config(text: &str) -> std::result::Result<VmConfig, ParseError> {
    const W: &str = "pvesh get /nodes/<node>/qemu/<vmid>/config";
    let v: Json = serde_json::from_str(text.trim()).map_err(|e| ParseError {
        what: W,
        detail: e.to_string(),
    })?;
    let obj = v.as_object().ok_or_else(|| ParseError {
        what: W,
        detail: "expected a JSON object".into(),
    })?;
    let entries = obj
        .iter()
        .filter(|(k, _)| k.as_str() != "digest")
        .filter_map(|(k, v)| match v {
            Json::String(t) => Some((k.clone(), t.clone())),
            Json::Number(n) => Some((k.clone(), n.to_string())),
            _ => None,
        })
        .collect();
    Ok(VmConfig { entries })
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
    fn a_json_config_reads_as_qm_config_does() {
        let c = super::json_config(
            r#"{"digest":"ab","name":"web","onboot":1,"agent":"enabled=1","x":[1]}"#,
        )
        .expect("parses");
        assert_eq!(c.get("name"), Some("web"));
        assert_eq!(c.get("onboot"), Some("1"));
        assert!(c.agent_enabled());
        assert_eq!(c.get("digest"), None);
        assert_eq!(c.get("x"), None);
    }

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
