//! `host-name`: a host's attribute name, `hostname` and `sshAlias` must be
//! DNS labels.
//!
//! Why: the name is at once the VM's hostname, its OpenTofu resource name,
//! a sops path component and an argument to ssh; only a DNS label is safe
//! in all four.
//!
//! ```nix
//! "Web_1" = { ... };          # bad-host-name: write `web-1`
//! web = { sshAlias = "-oProxyCommand=x"; };   # bad-host-name
//! ```

use crate::diag::{Code, Diagnostic};
use crate::fleet::{HostName, Loaded};

pub fn host_names(l: &Loaded) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for h in &l.fleet.hosts {
        if !HostName::is_valid(&h.name) {
            out.push(
                Diagnostic::error(Code::BadHostName, h.name_span, format!("host name `{}` is not a DNS label", h.name))
                    .help("use lowercase letters, digits and `-` (at most 63, not starting or ending with `-`), e.g. `web-1`"),
            );
        }
        for (key, v) in [("hostname", &h.hostname), ("sshAlias", &h.ssh_alias)] {
            if let Some(v) = v {
                if !HostName::is_valid(&v.value) {
                    out.push(
                        Diagnostic::error(
                            Code::BadHostName,
                            v.span,
                            format!("`{}.{key}` = {:?} is not a DNS label", h.name, v.value),
                        )
                        .help("use lowercase letters, digits and `-`"),
                    );
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
        assert_eq!(codes(super::host_names, "", ""), Vec::<&str>::new());
    }

    #[test]
    fn a_name_that_is_not_a_dns_label() {
        assert_eq!(
            codes(super::host_names, "  web = {", "  \"Web_1\" = {"),
            ["bad-host-name"]
        );
    }

    #[test]
    fn an_alias_that_is_an_option() {
        assert_eq!(
            codes(
                super::host_names,
                "sshAlias = \"web\";",
                "sshAlias = \"-oProxyCommand=x\";"
            ),
            ["bad-host-name"]
        );
    }
}
