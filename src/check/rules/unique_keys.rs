//! `unique-keys`: no two hosts carry one `publicKey`.
//!
//! Why: vms/known_hosts would pin one machine's key under two names, and
//! sops would give that machine both hosts' secrets. A VM cloned together
//! with its template's host key is the usual cause.
//!
//! ```nix
//! web = { publicKey = "ssh-ed25519 AAAA..."; };
//! db = { publicKey = "ssh-ed25519 AAAA..."; };   # duplicate-public-key, at both
//! ```

use rowan::TextRange;

use crate::diag::{Code, Diagnostic};
use crate::fleet::Loaded;

/// Two hosts with one `publicKey`: one machine's key would be pinned and
/// given secrets under two names. Reported at both places.
pub fn public_keys(l: &Loaded) -> Vec<Diagnostic> {
    // Keyed by the point: the same key with another comment is the same
    // key. (The diagnostics are sorted by position afterwards.)
    // One list sorted by key (stable: each key's hosts stay in host
    // order), not a map of lists: the keys are nearly always unique.
    let mut by_key: Vec<(&[u8; 32], &str, TextRange)> = l
        .fleet
        .hosts
        .iter()
        .filter_map(|h| match (&h.public_key, h.public_point()) {
            (Some(k), Some(Ok(point))) => Some((point, h.name.as_str(), k.span)),
            _ => None,
        })
        .collect();
    // The first 8 bytes as a number decide nearly every comparison
    // without a call to memcmp (a point's bytes are random).
    let prefix =
        |p: &[u8; 32]| u64::from_be_bytes([p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]]);
    by_key.sort_by(|a, b| prefix(a.0).cmp(&prefix(b.0)).then_with(|| a.0.cmp(b.0)));
    let mut out = Vec::new();
    for group in by_key.chunk_by(|a, b| a.0 == b.0).filter(|o| o.len() > 1) {
        let owners: Vec<(&str, TextRange)> = group.iter().map(|(_, n, s)| (*n, *s)).collect();
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

#[cfg(test)]
mod tests {
    use crate::check::testing::{codes, KEY_A, KEY_B};

    #[test]
    fn the_example_fleet_is_clean() {
        assert_eq!(codes(super::public_keys, "", ""), Vec::<&str>::new());
    }

    #[test]
    fn one_key_for_two_hosts_is_reported_at_both() {
        assert_eq!(
            codes(super::public_keys, KEY_B, KEY_A),
            ["duplicate-public-key", "duplicate-public-key"]
        );
    }
}
