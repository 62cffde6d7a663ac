//! Names and keys that decide whom pve trusts must each point at one
//! machine. ssh looks host keys up by name (`HostKeyAlias`, the lines of
//! vms/known_hosts): if a VM's `sshAlias` equals another host's hostname,
//! or the Proxmox host's address, or two hosts carry one `publicKey`, a key
//! pinned for one machine vouches for another.
//!
//! `duplicate-hostname` / `duplicate-ssh-alias` (rules.rs) catch a name used
//! twice in the same role; this rule catches the rest, at both places:
//!
//! ```nix
//! prod = { hostname = "prod"; };
//! sandbox = { sshAlias = "prod"; };          # name-collision, at both
//! _proxmox = { host = "192.168.1.12"; node = "pve"; };
//! tools = { hostname = "pve"; };             # name-collision with the node
//! web = { publicKey = "ssh-ed25519 AAAA..."; };
//! db = { publicKey = "ssh-ed25519 AAAA..."; }; # duplicate-public-key, at both
//! ```

use std::collections::BTreeMap;

use rowan::TextRange;

use crate::diag::{Code, Diagnostic};
use crate::fleet::Loaded;

/// Names ssh resolves to the machine pve runs on.
const RESERVED: &[&str] = &["localhost", "localhost.localdomain", "ip6-localhost"];

/// One use of a name: who uses it, in which role, where.
#[derive(Clone)]
struct Use {
    owner: String,
    role: &'static str,
    span: TextRange,
}

pub fn names(l: &Loaded) -> Vec<Diagnostic> {
    let mut uses: BTreeMap<String, Vec<Use>> = BTreeMap::new();
    let mut add = |name: &str, owner: &str, role: &'static str, span: TextRange| {
        uses.entry(name.to_ascii_lowercase())
            .or_default()
            .push(Use {
                owner: owner.to_string(),
                role,
                span,
            });
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
    let mut out = Vec::new();
    for (name, all) in &uses {
        reserved(name, all, &mut out);
        collisions(name, all, &mut out);
    }
    out
}

fn reserved(name: &str, all: &[Use], out: &mut Vec<Diagnostic>) {
    if !RESERVED.contains(&name) {
        return;
    }
    for u in all.iter().filter(|u| u.owner != "the Proxmox host") {
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
fn collisions(name: &str, all: &[Use], out: &mut Vec<Diagnostic>) {
    for (i, a) in all.iter().enumerate() {
        for b in &all[i + 1..] {
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

/// Two hosts with one `publicKey`: one machine's key would be pinned and
/// given secrets under two names. Reported at both places.
pub fn public_keys(l: &Loaded) -> Vec<Diagnostic> {
    let mut by_key: BTreeMap<String, Vec<(&str, TextRange)>> = BTreeMap::new();
    for h in &l.fleet.hosts {
        let Some(k) = &h.public_key else { continue };
        if let Ok(norm) = crate::keys::normalise_ed25519(&k.value) {
            by_key.entry(norm).or_default().push((&h.name, k.span));
        }
    }
    let mut out = Vec::new();
    for owners in by_key.values().filter(|o| o.len() > 1) {
        for (i, (name, span)) in owners.iter().enumerate() {
            let others: Vec<String> = owners
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, (n, _))| format!("`{n}`"))
                .collect();
            let mut d = Diagnostic::error(
                Code::DuplicatePublicKey,
                *span,
                format!(
                    "`{name}.publicKey` is also the publicKey of {}: one host key for two hosts",
                    others.join(", ")
                ),
            )
            .help("each host has its own /etc/ssh/ssh_host_ed25519_key; a VM cloned with its template's key needs new keys (`pve integrate` pins the real one)");
            for (j, (n, s)) in owners.iter().enumerate() {
                if j != i {
                    d = d.related(*s, format!("`{n}` has it here"));
                }
            }
            out.push(d);
        }
    }
    out
}
