//! VMs that live on another node than hosts.nix says: moved by HA, or by
//! hand with `qm migrate`. OpenTofu would migrate them back (`migrate =
//! true`) or, without it, destroy and re-create them; pve reports them
//! instead, with the edit that adopts the move. `pve plan`'s state guard
//! uses this, and so can `pve status`.

use std::collections::BTreeMap;

/// One VM found on another node than hosts.nix says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeMove {
    /// The host's attribute name in hosts.nix (= the resource name).
    pub host: String,
    pub vmid: i64,
    /// The node hosts.nix (the rendered config) names.
    pub expected: String,
    /// The node `/cluster/resources` shows it on.
    pub live: String,
}

impl NodeMove {
    /// The command that makes hosts.nix follow the move (shell-quoted: the
    /// value is a Nix string).
    pub fn adopt_command(&self) -> String {
        let value = format!("\"{}\"", self.live);
        format!(
            "pve host set {} proxmox.node {}",
            crate::shell::quote(&self.host),
            crate::shell::quote(&value)
        )
    }
}

/// The VMs whose live node differs from the expected one. `expected`:
/// (host, VMID, node) per managed VM; `live`: VMID → node of every guest
/// in the cluster. A VM missing from the cluster is not a move.
pub fn node_moves<'a>(
    expected: impl IntoIterator<Item = (&'a str, i64, &'a str)>,
    live: &BTreeMap<i64, String>,
) -> Vec<NodeMove> {
    expected
        .into_iter()
        .filter_map(|(host, vmid, node)| {
            let now = live.get(&vmid)?;
            (now != node).then(|| NodeMove {
                host: host.to_string(),
                vmid,
                expected: node.to_string(),
                live: now.clone(),
            })
        })
        .collect()
}

/// `web (VMID 111) is on pve2, hosts.nix says pve1; ...`
pub fn describe(moves: &[NodeMove]) -> String {
    moves
        .iter()
        .map(|m| {
            format!(
                "{} (VMID {}) is on {}, hosts.nix says {}",
                m.host, m.vmid, m.live, m.expected
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The advice: one `pve host set` per VM, then plan again.
pub fn advice(moves: &[NodeMove]) -> String {
    let mut help = String::from(
        "the VMs were moved outside pve (HA or `qm migrate`); OpenTofu would move them back. \
         Adopt the move in hosts.nix, then run `pve plan` again:",
    );
    for m in moves {
        help.push_str(&format!("\n      {}", m.adopt_command()));
    }
    help.push_str(
        "\n    (to move a VM back on purpose, run `qm migrate` yourself, or pass --skip-state-guard: \
         the plan then migrates it to the node hosts.nix names)",
    );
    help
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vm_on_another_node_is_a_move_with_the_command_that_adopts_it() {
        let live = BTreeMap::from([
            (111, "pve2".to_string()),
            (112, "pve1".to_string()),
            (9000, "pve1".to_string()),
        ]);
        let moves = node_moves(
            [
                ("web", 111, "pve1"),
                ("db", 112, "pve1"),
                ("gone", 130, "pve1"),
            ],
            &live,
        );
        assert_eq!(
            moves,
            [NodeMove {
                host: "web".into(),
                vmid: 111,
                expected: "pve1".into(),
                live: "pve2".into()
            }]
        );
        assert_eq!(
            moves[0].adopt_command(),
            r#"pve host set web proxmox.node '"pve2"'"#
        );
        assert!(advice(&moves).contains(r#"pve host set web proxmox.node '"pve2"'"#));
        assert_eq!(
            describe(&moves),
            "web (VMID 111) is on pve2, hosts.nix says pve1"
        );
    }
}
