//! `hardware-configuration.nix` comes from the VM (`nixos-generate-config
//! --show-hardware-config`), so it is untrusted text that every later
//! `nixos-rebuild` evaluates on the admin's machine. Only a plain module is
//! accepted: an attribute set (optionally behind `{ ... }:`) that reads no
//! files outside the host folder and fetches nothing.

use rnix::ast;
use rowan::ast::AstNode;

/// Names a generated hardware configuration never uses, each a way to
/// read or fetch something at evaluation time.
const FORBIDDEN: &[&str] = &["builtins", "import", "scopedImport", "derivation"];

/// Why `text` is not acceptable as a hardware configuration, if it is not.
pub fn module_problem(text: &str) -> Option<String> {
    if text.trim().is_empty() {
        return Some("it is empty".into());
    }
    // The VM chooses this text: rnix would spend quadratic time on a long
    // run or operator chain, so the linear pre-scan sees it first.
    if let Err(d) = crate::fleet::prescan::check(text) {
        return Some(format!("it is not a plain module ({})", d.message));
    }
    let parse = rnix::Root::parse(text);
    if let Some(e) = parse.errors().first() {
        return Some(format!("it is not valid Nix ({e})"));
    }
    let root = parse.tree();
    let body = match root.expr() {
        Some(ast::Expr::Lambda(l)) => l.body(),
        other => other,
    };
    if !matches!(body, Some(ast::Expr::AttrSet(_))) {
        return Some(
            "it is not a module (an attribute set, optionally a function returning one)".into(),
        );
    }
    let line = |offset: rowan::TextSize| text[..usize::from(offset)].matches('\n').count() + 1;
    for el in root.syntax().descendants_with_tokens() {
        if let Some(tok) = el.as_token() {
            let t = tok.text();
            let bad = tok.kind() == rnix::SyntaxKind::TOKEN_IDENT
                && (FORBIDDEN.contains(&t) || t.starts_with("fetch") || t.starts_with("__"));
            if bad {
                return Some(format!(
                    "it uses `{t}` (line {}), which a generated hardware configuration never does",
                    line(tok.text_range().start())
                ));
            }
            continue;
        }
        let Some(node) = el.as_node() else { continue };
        let Some(expr) = ast::Expr::cast(node.clone()) else {
            continue;
        };
        let at = line(node.text_range().start());
        let shown = node.text().to_string();
        match expr {
            ast::Expr::PathAbs(_) | ast::Expr::PathHome(_) | ast::Expr::PathSearch(_) => {
                return Some(format!(
                    "it refers to the path `{shown}` (line {at}) outside the host folder"
                ))
            }
            ast::Expr::PathRel(_) if shown.split('/').any(|c| c == "..") => {
                return Some(format!(
                    "it refers to the path `{shown}` (line {at}) outside the host folder"
                ))
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_configurations_pass() {
        let sample =
            include_str!("../../tests/integrate_support/hardware-configuration.sample.nix");
        assert_eq!(module_problem(sample), None);
        assert_eq!(
            module_problem("{ ... }: { imports = [ ./extra.nix ]; }"),
            None
        );
    }

    /// A VM answering with a 200,000-operand chain would keep rnix busy
    /// for minutes; the pre-scan refuses it first.
    #[test]
    fn a_quadratic_chain_from_the_vm_is_refused_before_rnix() {
        let chain = vec!["1"; 200_000].join("+");
        let text = format!("{{ ... }}: {{ x = {chain}; }}");
        let problem = module_problem(&text).expect("refused");
        assert!(problem.contains("not a plain module"), "{problem}");
    }

    #[test]
    fn anything_that_reads_or_fetches_is_refused() {
        for (text, says) in [
            (
                "{ ... }: { x = builtins.readFile /etc/shadow; }",
                "builtins",
            ),
            (
                "{ ... }: { imports = [ (import /etc/nixos/x.nix) ]; }",
                "import",
            ),
            (
                "{ ... }: { x = fetchTarball \"https://e.x/a.tgz\"; }",
                "fetchTarball",
            ),
            (
                "{ pkgs, ... }: { x = pkgs.fetchurl { url = \"u\"; }; }",
                "fetchurl",
            ),
            ("{ ... }: { x = __readFile ./a; }", "__readFile"),
            (
                "{ ... }: { imports = [ /etc/nixos/evil.nix ]; }",
                "/etc/nixos/evil.nix",
            ),
            (
                "{ ... }: { imports = [ ../../secrets/x.nix ]; }",
                "../../secrets/x.nix",
            ),
            (
                "{ ... }: { imports = [ <nixpkgs/x.nix> ]; }",
                "<nixpkgs/x.nix>",
            ),
            ("{ ... }: { imports = [ ~/x.nix ]; }", "~/x.nix"),
            ("let a = 1; in { }", "not a module"),
            ("[ ]", "not a module"),
            ("{ ", "not valid Nix"),
            ("  ", "empty"),
        ] {
            let got = module_problem(text).unwrap_or_else(|| panic!("accepted: {text}"));
            assert!(got.contains(says), "{text}: {got}");
        }
    }
}
