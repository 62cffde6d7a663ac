//! Attribute names and string literals as Nix text: quoted only when they
//! must be, escaped so that Nix reads back exactly the same string.

/// Words that cannot be bare attribute names.
const KEYWORDS: &[&str] = &[
    "assert", "else", "if", "in", "inherit", "let", "or", "rec", "then", "with",
    // a token of its own in Nix's lexer
    "__curPos",
];

/// True when `name` can be written bare: `[A-Za-z_][A-Za-z0-9_'-]*` and
/// not a keyword.
pub fn is_plain_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    (first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '\'' | '-'))
        && !KEYWORDS.contains(&name)
}

/// `name` as an attribute name: bare when possible, else a quoted string.
pub fn attr_name(name: &str) -> String {
    if is_plain_identifier(name) {
        name.to_string()
    } else {
        string_literal(name)
    }
}

/// A path of names as Nix text: `a.b."my-host"`.
pub fn attr_path(path: &[&str]) -> String {
    path.iter()
        .map(|n| attr_name(n))
        .collect::<Vec<_>>()
        .join(".")
}

/// `s` as a double-quoted Nix string that evaluates to exactly `s`.
pub fn string_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // `${` would start an interpolation; `$${` is literal in Nix
            // but `\$` is the clearest escape.
            '$' if chars.peek() == Some(&'{') => out.push_str("\\$"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Splits a command-line attribute path: `proxmox.cores`,
/// `"my.dotted".key`. Quoted segments use Nix string escapes.
pub fn split_attr_path(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        let mut seg = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '"' => {
                        closed = true;
                        break;
                    }
                    '\\' => match chars.next() {
                        Some('n') => seg.push('\n'),
                        Some('r') => seg.push('\r'),
                        Some('t') => seg.push('\t'),
                        Some(o) => seg.push(o),
                        None => return Err(format!("`{text}` ends inside an escape")),
                    },
                    c => seg.push(c),
                }
            }
            if !closed {
                return Err(format!("`{text}` has an unclosed quote"));
            }
            out.push(seg);
            match chars.next() {
                None => return Ok(out),
                Some('.') => {}
                Some(c) => {
                    return Err(format!(
                        "`{text}`: expected `.` after a quoted name, found `{c}`"
                    ))
                }
            }
        } else {
            let mut ended = true;
            for c in chars.by_ref() {
                if c == '.' {
                    ended = false;
                    break;
                }
                seg.push(c);
            }
            if seg.is_empty() {
                return Err(format!("`{text}` has an empty attribute name"));
            }
            if seg.contains('"') {
                return Err(format!("`{text}`: quote a whole name, like `\"my-name\"`"));
            }
            out.push(seg);
            if ended {
                return Ok(out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_quoted_only_when_needed() {
        for (name, want) in [
            ("web1", "web1"),
            ("my-host", "my-host"),
            ("_proxmox", "_proxmox"),
            ("a'", "a'"),
            ("1host", "\"1host\""),
            ("-x", "\"-x\""),
            ("in", "\"in\""),
            ("or", "\"or\""),
            ("__curPos", "\"__curPos\""),
            ("true", "true"),
            ("a.b", "\"a.b\""),
            ("", "\"\""),
            ("tab\there", "\"tab\\there\""),
            ("${x}", "\"\\${x}\""),
            ("$x", "\"$x\""),
            ("ünï", "\"ünï\""),
        ] {
            assert_eq!(attr_name(name), want, "{name:?}");
        }
    }

    #[test]
    fn attribute_paths_split_on_dots_outside_quotes() {
        assert_eq!(
            split_attr_path("proxmox.cores").expect("valid path"),
            ["proxmox", "cores"]
        );
        assert_eq!(
            split_attr_path("\"a.b\".c").expect("valid path"),
            ["a.b", "c"]
        );
        assert_eq!(
            split_attr_path("x.\"q\\\"\"").expect("valid path"),
            ["x", "q\""]
        );
        assert!(split_attr_path("a..b").is_err());
        assert!(split_attr_path("a.").is_err());
        assert!(split_attr_path("\"a").is_err());
        assert!(split_attr_path("").is_err());
    }
}
