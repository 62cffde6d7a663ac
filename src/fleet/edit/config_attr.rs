//! Adding a top-level configuration set (`_sops = { ... };`) that the
//! file does not have yet: `set` edits only names that exist, and `add`
//! takes only host names.

use super::{
    evaluate, fit_value, get, insert_entry, keys, names, parse_value, put, verify, Doc, EditError,
    ErrorKind, TextEdit,
};
use rnix::ast::HasEntry;
use rowan::ast::AstNode;

/// Adds `name = <nix_value>;` (a name starting with `_`) to the last
/// top-level set, after its last `_…` entry (or after its last entry when
/// it has none), indented like its neighbours. Refuses when the file
/// defines `name` already: this never replaces a value.
pub fn add_config_attr(text: &str, name: &str, nix_value: &str) -> Result<String, EditError> {
    if !name.starts_with('_') {
        return Err(EditError::new(
            ErrorKind::BadValue,
            format!("`{name}` is not a configuration name (those start with `_`)"),
        ));
    }
    let doc = Doc::read(text)?;
    let path = [name.to_string()];
    if let Some(v) = get(&doc.value, &path) {
        return Err(EditError::new(
            ErrorKind::HostExists,
            format!("hosts.nix already defines `{name}`"),
        )
        .at(v.span)
        .help("nothing was changed"));
    }
    let value_text = parse_value(nix_value)?;
    let anchor = doc
        .top
        .attrpath_values()
        .filter(|a| keys(a).is_ok_and(|k| k.first().is_some_and(|n| n.starts_with('_'))))
        .last()
        .map(|a| a.syntax().clone());
    let indent = super::entry_indent(&doc, &doc.top);
    let fitted = fit_value(&doc, value_text, &indent);
    let entry = format!("{} = {fitted};", names::attr_name(name));
    let edit: TextEdit = insert_entry(
        &doc,
        &doc.top,
        anchor.as_ref(),
        &entry,
        &indent,
        false,
        true,
    )?;
    let new_text = super::text_edit::apply(text, vec![edit])?;
    let standalone = evaluate(value_text).ok();
    verify(&new_text, |new| {
        let mut want = doc.value.clone();
        if let Some(v) = standalone.clone().or_else(|| get(new, &path).cloned()) {
            put(&mut want, &path, v);
        }
        want
    })?;
    Ok(new_text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goes_after_the_last_config_set_and_keeps_every_other_byte() {
        let text = "# fleet\n{\n  _proxmox = { host = \"pve\"; };\n\n  web = { hostname = \"web\"; }; # web\n}\n";
        let out =
            add_config_attr(text, "_sops", "{\n  admins = { a = \"age1x\"; };\n}").expect("adds");
        assert_eq!(
            out,
            "# fleet\n{\n  _proxmox = { host = \"pve\"; };\n  _sops = {\n    admins = { a = \"age1x\"; };\n  };\n\n  web = { hostname = \"web\"; }; # web\n}\n"
        );
        let e = add_config_attr(&out, "_sops", "{ }").expect_err("exists");
        assert!(e.message.contains("already defines `_sops`"), "{e:?}");
    }

    #[test]
    fn without_config_sets_it_goes_last() {
        let text = "{\n  web = { };\n}\n";
        let out = add_config_attr(text, "_sops", "{ path = \".sops.yaml\"; }").expect("adds");
        assert_eq!(
            out,
            "{\n  web = { };\n  _sops = { path = \".sops.yaml\"; };\n}\n"
        );
    }
}
