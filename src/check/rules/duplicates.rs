//! `duplicates`: no two hosts share a `hostname`, or an `sshAlias`.
//!
//! Why: ssh and known_hosts look machines up by these names; one name for
//! two machines pins one machine's key for the other.
//!
//! ```nix
//! web = { hostname = "app"; };
//! db = { hostname = "app"; };   # duplicate-hostname
//! ```

use rowan::TextRange;

use crate::check::fast_hash::{map_with_capacity, FastMap};
use crate::diag::{Code, Diagnostic};
use crate::fleet::Loaded;

pub fn duplicate_names(l: &Loaded) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    // Borrowed names, hashed: a 10,000-host fleet would otherwise copy
    // every name into an ordered map only to look each one up once.
    let mut aliases: FastMap<&str, (&str, TextRange)> = map_with_capacity(l.fleet.hosts.len());
    let mut hostnames: FastMap<&str, (&str, TextRange)> = map_with_capacity(l.fleet.hosts.len());
    let mut hosts: Vec<_> = l.fleet.hosts.iter().collect();
    hosts.sort_by_key(|h| h.span.start());
    for h in hosts {
        let hostname_span = h.hostname.as_ref().map_or(h.name_span, |s| s.span);
        let checks = [
            (
                Code::DuplicateHostname,
                "hostname",
                Some((h.hostname(), hostname_span)),
                &mut hostnames,
            ),
            (
                Code::DuplicateSshAlias,
                "sshAlias",
                h.ssh_alias.as_ref().map(|s| (s.value.as_str(), s.span)),
                &mut aliases,
            ),
        ];
        for (code, key, value, seen) in checks {
            let Some((value, span)) = value else { continue };
            match seen.get(value) {
                Some((first, first_span)) => out.push(
                    Diagnostic::error(
                        code,
                        span,
                        format!("{key} `{value}` is used by both `{first}` and `{}`", h.name),
                    )
                    .related(*first_span, format!("`{first}` uses it here"))
                    .help(format!("every host needs its own {key}")),
                ),
                None => {
                    seen.insert(value, (&h.name, span));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::check::testing::codes;

    #[test]
    fn the_example_fleet_is_clean() {
        assert_eq!(codes(super::duplicate_names, "", ""), Vec::<&str>::new());
    }

    #[test]
    fn an_alias_used_twice() {
        assert_eq!(
            codes(
                super::duplicate_names,
                "  db = {",
                "  db = {\n    sshAlias = \"web\";"
            ),
            ["duplicate-ssh-alias"]
        );
    }

    #[test]
    fn a_hostname_used_twice() {
        assert_eq!(
            codes(
                super::duplicate_names,
                "  db = {",
                "  db = {\n    hostname = \"web\";"
            ),
            ["duplicate-hostname"]
        );
    }
}
