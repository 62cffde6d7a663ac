//! Quoting for the one place a shell sees our text: the remote command line
//! that OpenSSH hands to the remote user's shell.

/// Quotes `s` for a POSIX shell: bare when it is made only of safe
/// characters, else in single quotes with embedded quotes as `'\''`.
pub fn quote(s: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./=:@,+%".contains(c);
    if !s.is_empty() && s.chars().all(safe) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// A remote command line from separate arguments, each quoted.
pub fn join<S: AsRef<str>>(args: &[S]) -> String {
    args.iter()
        .map(|a| quote(a.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn quotes_only_what_needs_it() {
        assert_eq!(quote("qm"), "qm");
        assert_eq!(quote("x;touch /tmp/pwned"), "'x;touch /tmp/pwned'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
    }

    proptest! {
        /// A real shell gives back exactly the argument we quoted.
        #[test]
        fn sh_reads_back_the_argument(s in "[ -~\\t\\n]{0,40}") {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("printf %s {}", quote(&s)))
                .output()
                .expect("sh runs");
            prop_assert_eq!(String::from_utf8_lossy(&out.stdout), s);
        }
    }
}
