//! `typos`: a host key or a top-level `_` setting spelled close to one pve
//! knows, which pve would otherwise silently ignore.
//!
//! Why: a host's other keys belong to other modules and are kept, so
//! `sshAlais = "web";` is not an error; but the alias it meant to set is
//! missing, and nothing else would say so. Keys far from every known one
//! stay quiet.
//!
//! ```nix
//! web = { sshAlais = "web"; };   # misspelled-key: did you mean `sshAlias`?
//! _sosp = { admins = { ... }; }; # misspelled-key: did you mean `_sops`?
//! ```

use crate::check::fast_hash::{map_with_capacity, FastMap};
use crate::diag::{did_you_mean, Code, Diagnostic};
use crate::fleet::model::{CONFIG_NAMES, HOST_KEYS};
use crate::fleet::Loaded;

pub fn typos(l: &Loaded) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let Some(root) = l.value.as_attrs() else {
        return out;
    };
    // Hosts share their keys: each unknown name is compared with the known
    // ones once, not once per host (it was a seventh of `pve check` at
    // 10,000 hosts with one such key each).
    let mut nearest: FastMap<&str, Option<&'static str>> = map_with_capacity(0);
    for (name, attr) in root.iter() {
        if name.starts_with('_') {
            if !CONFIG_NAMES.contains(&name.as_str()) {
                if let Some(known) = did_you_mean(name, CONFIG_NAMES.iter().copied()) {
                    out.push(misspelled(name, known, attr.name_span));
                }
            }
            continue;
        }
        let Some(host) = attr.value.as_attrs() else {
            continue;
        };
        for (key, a) in host.iter() {
            if HOST_KEYS.contains(&key.as_str()) {
                continue;
            }
            let near = *nearest
                .entry(key.as_str())
                .or_insert_with(|| did_you_mean(key, HOST_KEYS.iter().copied()));
            if let Some(known) = near {
                out.push(misspelled(&format!("{name}.{key}"), known, a.name_span));
            }
        }
    }
    out
}

fn misspelled(written: &str, known: &str, span: rowan::TextRange) -> Diagnostic {
    Diagnostic::new(
        Code::MisspelledKey,
        span,
        format!("`{written}` is not a key pve reads, and is close to `{known}`"),
    )
    .help(format!(
        "did you mean `{known}`? (a key another module reads may stay as it is)"
    ))
}

#[cfg(test)]
mod tests {
    use crate::check::testing::codes;

    #[test]
    fn the_example_fleet_is_clean() {
        assert_eq!(codes(super::typos, "", ""), Vec::<&str>::new());
    }

    #[test]
    fn close_misspellings_of_host_keys_are_named() {
        for typo in ["sshAlais", "sshalias", "publicKye", "configurationFle"] {
            let to = format!("{typo} = ");
            assert_eq!(
                codes(super::typos, "sshAlias = ", &to),
                ["misspelled-key"],
                "{typo}"
            );
        }
    }

    #[test]
    fn close_misspellings_of_settings_are_named() {
        assert_eq!(
            codes(super::typos, "_proxmox", "_proxmx"),
            ["misspelled-key"]
        );
        assert_eq!(codes(super::typos, "_proxmox", "_sosp"), ["misspelled-key"]);
    }

    #[test]
    fn keys_of_other_modules_are_left_alone() {
        assert_eq!(
            codes(super::typos, "sshAlias = ", "deployment = "),
            Vec::<&str>::new()
        );
        assert_eq!(
            codes(super::typos, "_proxmox", "_myModule"),
            Vec::<&str>::new()
        );
    }
}
