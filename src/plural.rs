//! Counts in messages, in the singular for one: "1 host, 2 errors". Every
//! message that prints a count of things goes through here, so none says
//! "1 hosts" or "file(s)".

/// `n` and the noun, with an `s` unless `n` is 1: `plural(1, "host")` is
/// "1 host", `plural(3, "secret file")` "3 secret files".
pub fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// For nouns whose plural is not the singular and an `s`, or that carry
/// words after the noun: `plural_of(2, "VM not in hosts.nix", "VMs not in
/// hosts.nix")`.
pub fn plural_of(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_is_singular_and_every_other_count_plural() {
        assert_eq!(plural(1, "host"), "1 host");
        assert_eq!(plural(0, "host"), "0 hosts");
        assert_eq!(plural(2, "secret file"), "2 secret files");
        assert_eq!(
            plural_of(1, "VM not in hosts.nix", "VMs not in hosts.nix"),
            "1 VM not in hosts.nix"
        );
        assert_eq!(
            plural_of(4, "VM not in hosts.nix", "VMs not in hosts.nix"),
            "4 VMs not in hosts.nix"
        );
    }
}
