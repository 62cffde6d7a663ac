//! `public-key`: a host's `publicKey` is its ssh-ed25519 host key, or a
//! placeholder (a warning) until `pve integrate` fills it in.
//!
//! Why: sops-nix derives the host's age recipient from this key; another
//! key type or a damaged key would encrypt secrets the host cannot read.
//!
//! ```nix
//! web = { publicKey = "ssh-rsa AAAAB3..."; };   # bad-public-key
//! db = { publicKey = "PLACEHOLDER"; };          # placeholder-key (warning)
//! ```

use crate::diag::{Code, Diagnostic};
use crate::fleet::Loaded;

pub fn public_keys(l: &Loaded) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for h in &l.fleet.hosts {
        let (Some(k), Some(point)) = (&h.public_key, h.public_point()) else {
            continue;
        };
        match point.clone() {
            Ok(_) => {}
            Err(crate::keys::KeyError::WrongType(t)) => out.push(
                Diagnostic::error(Code::BadPublicKey, k.span, format!("`{}.publicKey` is a {t} key; sops-nix needs the host's ssh-ed25519 key", h.name))
                    .help(format!("use the content of /etc/ssh/ssh_host_ed25519_key.pub (`pve integrate {}` writes it)", h.name)),
            ),
            Err(e) if looks_like_placeholder(&k.value) => {
                let _ = e;
                out.push(
                    Diagnostic::warning(Code::PlaceholderKey, k.span, format!("`{}.publicKey` is a placeholder, not a host key yet", h.name))
                        .help(format!("normal between `pve new` and `pve integrate`; run `pve integrate {}` to fill it in", h.name)),
                );
            }
            Err(e) => out.push(
                Diagnostic::error(Code::BadPublicKey, k.span, format!("`{}.publicKey` is not a valid ssh-ed25519 key: {e}", h.name))
                    .help("copy /etc/ssh/ssh_host_ed25519_key.pub of the host exactly, or let `pve integrate` write it"),
            ),
        }
    }
    out
}

fn looks_like_placeholder(s: &str) -> bool {
    let t = s.trim();
    t.is_empty()
        || t.contains("...")
        || t.to_ascii_uppercase().contains("PLACEHOLDER")
        || t.to_ascii_uppercase().contains("TODO")
        || t.to_ascii_uppercase().contains("CHANGEME")
}

#[cfg(test)]
mod tests {
    use crate::check::testing::codes;

    #[test]
    fn the_example_fleet_is_clean() {
        assert_eq!(codes(super::public_keys, "", ""), Vec::<&str>::new());
    }

    #[test]
    fn an_rsa_key() {
        assert_eq!(
            codes(
                super::public_keys,
                "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHg+0cl2eSRJP0uMoScnKY9J6ZvYERwjc843qO2BNqfB",
                "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ host"
            ),
            ["bad-public-key"]
        );
    }

    #[test]
    fn a_placeholder() {
        assert_eq!(
            codes(
                super::public_keys,
                "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHg+0cl2eSRJP0uMoScnKY9J6ZvYERwjc843qO2BNqfB",
                "PLACEHOLDER"
            ),
            ["placeholder-key"]
        );
    }
}
