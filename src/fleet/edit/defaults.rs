//! The entries of a top-level settings set (`_defaults`) as the Nix text
//! written in the file, so `pve new` can write them into a new host's entry
//! as they are (`authorizedKeys = adminKeys;` keeps naming the `let`).

use rnix::ast::{self, HasEntry};
use rowan::ast::AstNode;

use super::{keys, names, Doc, EditError, ErrorKind};

/// `name = { a = 1; b = x; };` (or `name.a = 1;`) → `[("a", "1"), ("b",
/// "x")]`, in file order; `inherit x;` inside gives `("x", "x")`. Empty
/// when the file has no such set.
pub fn config_entries(text: &str, name: &str) -> Result<Vec<(String, String)>, EditError> {
    let doc = Doc::read(text)?;
    let mut out = Vec::new();
    for top in &doc.tops {
        for apv in top.attrpath_values() {
            let k = keys(&apv)?;
            if k.first().map(String::as_str) != Some(name) {
                continue;
            }
            let Some(value) = apv.value() else { continue };
            if k.len() > 1 {
                let rest: Vec<&str> = k[1..].iter().map(String::as_str).collect();
                out.push((names::attr_path(&rest), value.syntax().text().to_string()));
                continue;
            }
            let ast::Expr::AttrSet(set) = value else {
                return Err(EditError::new(
                    ErrorKind::Unsupported,
                    format!("`{name}` is not written as a `{{ ... }}` set"),
                )
                .at(value.syntax().text_range())
                .help(format!("write it as `{name} = {{ user = \"admin\"; }};`")));
            };
            for inner in set.attrpath_values() {
                let ik = keys(&inner)?;
                let ik: Vec<&str> = ik.iter().map(String::as_str).collect();
                if let Some(v) = inner.value() {
                    out.push((names::attr_path(&ik), v.syntax().text().to_string()));
                }
            }
            for inh in set.inherits() {
                if inh.from().is_some() {
                    continue;
                }
                for attr in inh.attrs() {
                    let t = attr.syntax().text().to_string();
                    out.push((t.clone(), t));
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn entries_as_written() {
        let text = "let k = [ \"ssh-ed25519 AAAA\" ]; in {\n  _defaults = { user = \"admin\"; authorizedKeys = k; inherit k; };\n  _defaults.extra.x = 1;\n  web = { };\n}\n";
        assert_eq!(
            config_entries(text, "_defaults").unwrap(),
            [
                ("user".to_string(), "\"admin\"".to_string()),
                ("authorizedKeys".into(), "k".into()),
                ("k".into(), "k".into()),
                ("extra.x".into(), "1".into()),
            ]
        );
        assert!(config_entries("{ web = { }; }", "_defaults")
            .unwrap()
            .is_empty());
    }
}
