//! `unique-names`: names that decide whom pve trusts each point at one
//! machine (`unique-keys` does the same for host keys).
//!
//! Why: ssh looks host keys up by name (`HostKeyAlias`, the lines of
//! vms/known_hosts): if a VM's `sshAlias` equals another host's hostname,
//! or the Proxmox host's address, a key pinned for one machine vouches for
//! another.
//!
//! `duplicate-hostname` / `duplicate-ssh-alias` (duplicates.rs) catch a
//! name used twice in the same role; this rule catches the rest, at both
//! places:
//!
//! ```nix
//! prod = { hostname = "prod"; };
//! sandbox = { sshAlias = "prod"; };          # name-collision, at both
//! _proxmox = { host = "192.168.1.12"; node = "pve"; };
//! tools = { hostname = "pve"; };             # name-collision with the node
//! ```

use std::borrow::Cow;

use rowan::TextRange;

use crate::check::fast_hash::{map_with_capacity, FastMap};
use crate::diag::{Code, Diagnostic};
use crate::fleet::Loaded;

/// Names ssh resolves to the machine pve runs on.
const RESERVED: &[&str] = &["localhost", "localhost.localdomain", "ip6-localhost"];

/// One use of a name: who uses it, in which role, where.
#[derive(Clone)]
struct Use<'a> {
    owner: &'a str,
    role: &'static str,
    span: TextRange,
}

pub fn names<'l>(l: &'l Loaded) -> Vec<Diagnostic> {
    // Every use in one list (not a map of lists), its name lowercased only
    // when it holds an upper-case letter.
    let mut uses: Vec<(Cow<str>, Use)> = Vec::with_capacity(2 * l.fleet.hosts.len() + 2);
    let mut add = |name: &'l str, owner: &'l str, role: &'static str, span: TextRange| {
        let name = if name.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(name.to_ascii_lowercase())
        } else {
            Cow::Borrowed(name)
        };
        uses.push((name, Use { owner, role, span }));
    };
    if let Some(p) = &l.fleet.proxmox {
        if let Some(h) = &p.host {
            add(&h.value, "the Proxmox host", "_proxmox.host", h.span);
        }
        if let Some(n) = &p.node {
            add(&n.value, "the Proxmox host", "_proxmox.node", n.span);
        }
    }
    for (_, spec) in l.fleet.vms() {
        if let Some(n) = &spec.node {
            add(&n.value, "the Proxmox host", "a proxmox.node", n.span);
        }
    }
    for h in &l.fleet.hosts {
        let hostname_span = h.hostname.as_ref().map_or(h.name_span, |s| s.span);
        add(h.hostname(), &h.name, "hostname", hostname_span);
        if let Some(a) = &h.ssh_alias {
            add(&a.value, &h.name, "sshAlias", a.span);
        }
    }
    // Nearly every name is used once: only the names used twice or
    // reserved are gathered (by name, each one's uses in order found).
    let mut count: FastMap<&str, u32> = map_with_capacity(uses.len());
    for (name, _) in &uses {
        *count.entry(name).or_default() += 1;
    }
    let mut shared: Vec<(&str, Use)> = uses
        .iter()
        .filter(|(name, _)| count[name.as_ref()] > 1 || RESERVED.contains(&name.as_ref()))
        .map(|(name, u)| (name.as_ref(), u.clone()))
        .collect();
    shared.sort_by(|a, b| a.0.cmp(b.0));
    let mut out = Vec::new();
    for group in shared.chunk_by(|a, b| a.0 == b.0) {
        reserved(group[0].0, group, &mut out);
        collisions(group[0].0, group, &mut out);
    }
    out
}

fn reserved(name: &str, all: &[(&str, Use)], out: &mut Vec<Diagnostic>) {
    if !RESERVED.contains(&name) {
        return;
    }
    for u in all
        .iter()
        .map(|(_, u)| u)
        .filter(|u| u.owner != "the Proxmox host")
    {
        out.push(
            Diagnostic::error(
                Code::NameCollision,
                u.span,
                format!("`{}.{}` is `{name}`, which names the machine pve runs on", u.owner, u.role),
            )
            .help("a host key pinned under this name would vouch for this machine; pick the host's own name"),
        );
    }
}

/// Every use of `name` by an owner other than the first one's, reported at
/// both places. Same-role duplicates between hosts are left to
/// `duplicate-hostname` / `duplicate-ssh-alias`.
fn collisions(name: &str, all: &[(&str, Use)], out: &mut Vec<Diagnostic>) {
    for (i, (_, a)) in all.iter().enumerate() {
        for (_, b) in &all[i + 1..] {
            let same_owner = a.owner == b.owner;
            let left_to_rules = a.role == b.role && a.owner != "the Proxmox host";
            if same_owner || left_to_rules {
                continue;
            }
            for (here, there) in [(a, b), (b, a)] {
                out.push(
                    Diagnostic::error(
                        Code::NameCollision,
                        here.span,
                        format!(
                            "`{name}` is {} and {}: one name for two machines",
                            owner_role(here),
                            owner_role(there)
                        ),
                    )
                    .related(there.span, format!("{} uses it here", owner_role(there)))
                    .help("ssh looks host keys up by name: every hostname, sshAlias and Proxmox address must be unique across the fleet"),
                );
            }
        }
    }
}

fn owner_role(u: &Use) -> String {
    if u.owner == "the Proxmox host" {
        format!("the Proxmox host's {}", u.role)
    } else {
        format!("`{}`'s {}", u.owner, u.role)
    }
}

#[cfg(test)]
mod tests {
    use crate::check::testing::codes;

    #[test]
    fn the_example_fleet_is_clean() {
        assert_eq!(codes(super::names, "", ""), Vec::<&str>::new());
    }

    #[test]
    fn an_alias_that_is_another_hosts_hostname() {
        assert_eq!(
            codes(super::names, "sshAlias = \"web\";", "sshAlias = \"db\";"),
            ["name-collision", "name-collision"]
        );
    }
}
