//! The static check that runs before evaluation, as Nix's own parser does:
//! every variable must be bound (Nix reports an undefined variable even in a
//! binding nobody uses), and every construct must be in the supported data
//! subset. Refusing here, with the construct's name and position, is what
//! keeps the evaluator from ever guessing.

use std::collections::HashSet;

use rnix::ast::{self, HasEntry};
use rowan::ast::AstNode;

use super::eval::{attr_name, EvalError, MAX_DEPTH};

/// Names Nix defines globally that hosts.nix cannot use here: naming them
/// gives a better message than "undefined variable".
const NIX_GLOBALS: &[&str] = &[
    "builtins",
    "import",
    "map",
    "toString",
    "throw",
    "abort",
    "derivation",
    "baseNameOf",
    "dirOf",
    "isNull",
    "removeAttrs",
    "fetchTarball",
    "fetchGit",
    "fetchurl",
    "placeholder",
    "scopedImport",
    "fromTOML",
    "__nixPath",
];

pub fn check(root: &ast::Expr) -> Result<(), EvalError> {
    let mut scopes: Vec<HashSet<String>> = vec![["true", "false", "null"]
        .into_iter()
        .map(String::from)
        .collect()];
    walk(root, &mut scopes, 0)
}

/// The error for a construct outside the subset.
pub fn unsupported(expr: &ast::Expr) -> EvalError {
    let span = expr.syntax().text_range();
    let (what, help) = match expr {
        ast::Expr::Apply(a) => {
            let callee = a
                .lambda()
                .map(|l| l.syntax().text().to_string())
                .unwrap_or_default();
            if callee == "import" || callee.starts_with("builtins") {
                (format!("`{callee}`"), "hosts.nix is read without evaluating Nix code: inline the value, or bind it with `let`")
            } else {
                (
                    "function application".to_string(),
                    "hosts.nix is plain data: write the value itself",
                )
            }
        }
        ast::Expr::Lambda(_) => (
            "a function (lambda)".into(),
            "hosts.nix is plain data: write the value itself",
        ),
        ast::Expr::With(_) => (
            "`with`".into(),
            "bind the names with `let` or write them out",
        ),
        ast::Expr::Assert(_) => (
            "`assert`".into(),
            "move the check to `pve check`, which validates every host",
        ),
        ast::Expr::LegacyLet(_) => ("the legacy `let { ... }` syntax".into(), "use `let ... in`"),
        ast::Expr::CurPos(_) => ("`__curPos`".into(), "remove it"),
        ast::Expr::PathHome(_) => (
            "a home path (`~/...`)".into(),
            "use a path relative to hosts.nix, like `./hosts/x`",
        ),
        ast::Expr::PathSearch(_) => (
            "a search path (`<...>`)".into(),
            "use a path relative to hosts.nix, like `./hosts/x`",
        ),
        _ => ("this expression".into(), "hosts.nix is plain data"),
    };
    EvalError::new(
        span,
        format!("{what} is outside the subset of Nix that hosts.nix may use"),
    )
    .with_help(help)
}

fn walk(
    expr: &ast::Expr,
    scopes: &mut Vec<HashSet<String>>,
    depth: usize,
) -> Result<(), EvalError> {
    let span = expr.syntax().text_range();
    if depth > MAX_DEPTH {
        return Err(EvalError::new(
            span,
            format!("expression nested deeper than {MAX_DEPTH} levels"),
        ));
    }
    let d = depth + 1;
    match expr {
        ast::Expr::Literal(_) => Ok(()),
        ast::Expr::Str(s) => walk_interpolations(s.syntax(), scopes, d),
        ast::Expr::PathAbs(p) => walk_interpolations(p.syntax(), scopes, d),
        ast::Expr::PathRel(p) => walk_interpolations(p.syntax(), scopes, d),
        ast::Expr::Ident(i) => {
            let token = i.ident_token();
            let name = token.as_ref().map_or("", |t| t.text());
            if scopes.iter().any(|s| s.contains(name)) {
                Ok(())
            } else if NIX_GLOBALS.contains(&name) || name.starts_with("__") {
                Err(EvalError::new(
                    span,
                    format!("`{name}` is outside the subset of Nix that hosts.nix may use"),
                )
                .with_help("hosts.nix is read without evaluating Nix code: write the value itself"))
            } else {
                let err = EvalError::new(span, format!("undefined variable '{name}'"));
                let known = scopes.iter().flatten().map(String::as_str);
                Err(match crate::diag::did_you_mean(name, known) {
                    Some(s) => err.with_help(format!("did you mean '{s}'?")),
                    None => err.with_help("bind it with `let NAME = ...; in` before use"),
                })
            }
        }
        ast::Expr::Paren(p) => walk_opt(p.expr(), scopes, d),
        ast::Expr::List(l) => l.items().try_for_each(|e| walk(&e, scopes, d)),
        ast::Expr::AttrSet(set) => walk_set(set, set.rec_token().is_some(), None, scopes, d),
        ast::Expr::LetIn(l) => walk_set(l, true, l.body(), scopes, d),
        ast::Expr::Select(s) => {
            walk_opt(s.expr(), scopes, d)?;
            walk_attrpath(s.attrpath(), scopes, d)?;
            walk_opt(s.default_expr(), scopes, d)
        }
        ast::Expr::HasAttr(h) => {
            walk_opt(h.expr(), scopes, d)?;
            walk_attrpath(h.attrpath(), scopes, d)
        }
        ast::Expr::BinOp(b) => {
            if matches!(
                b.operator(),
                Some(ast::BinOpKind::PipeLeft | ast::BinOpKind::PipeRight)
            ) {
                return Err(EvalError::new(
                    span,
                    "the pipe operators are outside the subset of Nix that hosts.nix may use",
                ));
            }
            walk_opt(b.lhs(), scopes, d)?;
            walk_opt(b.rhs(), scopes, d)
        }
        ast::Expr::UnaryOp(u) => walk_opt(u.expr(), scopes, d),
        ast::Expr::IfElse(i) => {
            walk_opt(i.condition(), scopes, d)?;
            walk_opt(i.body(), scopes, d)?;
            walk_opt(i.else_body(), scopes, d)
        }
        ast::Expr::Error(_) => Err(EvalError::new(span, "syntax error")),
        ast::Expr::Root(r) => walk_opt(r.expr(), scopes, d),
        other => Err(unsupported(other)),
    }
}

fn walk_opt(
    e: Option<ast::Expr>,
    scopes: &mut Vec<HashSet<String>>,
    d: usize,
) -> Result<(), EvalError> {
    match e {
        Some(e) => walk(&e, scopes, d),
        None => Ok(()),
    }
}

fn walk_interpolations(
    node: &rnix::SyntaxNode,
    scopes: &mut Vec<HashSet<String>>,
    d: usize,
) -> Result<(), EvalError> {
    for i in node.children().filter_map(ast::Interpol::cast) {
        walk_opt(i.expr(), scopes, d)?;
    }
    Ok(())
}

fn walk_attrpath(
    p: Option<ast::Attrpath>,
    scopes: &mut Vec<HashSet<String>>,
    d: usize,
) -> Result<(), EvalError> {
    if let Some(p) = p {
        for a in p.attrs() {
            if matches!(a, ast::Attr::Ident(_)) {
                continue;
            }
            attr_name(&a)?;
            if let ast::Attr::Str(s) = &a {
                walk_interpolations(s.syntax(), scopes, d)?;
            }
        }
    }
    Ok(())
}

/// Sets and `let`: for `rec` and `let` the names are visible to the values;
/// `inherit x;` is resolved in the enclosing scope in both cases.
fn walk_set<N: HasEntry>(
    node: &N,
    rec: bool,
    body: Option<ast::Expr>,
    scopes: &mut Vec<HashSet<String>>,
    d: usize,
) -> Result<(), EvalError> {
    // Only `rec` sets and `let` bind their names; plain sets only need
    // their `inherit x;` sources checked.
    let mut names = HashSet::new();
    for entry in node.entries() {
        match entry {
            ast::Entry::Inherit(inh) => {
                let from = inh.from().and_then(|f| f.expr());
                for a in inh.attrs() {
                    let name = attr_name(&a)?;
                    if from.is_none() && !scopes.iter().any(|s| s.contains(&name)) {
                        return Err(EvalError::new(
                            a.syntax().text_range(),
                            format!("undefined variable '{name}'"),
                        )
                        .with_help(
                            "`inherit x;` copies `x` from the enclosing scope; bind it there first",
                        ));
                    }
                    if rec {
                        names.insert(name);
                    }
                }
            }
            ast::Entry::AttrpathValue(apv) => {
                if rec {
                    if let Some(first) = apv.attrpath().and_then(|p| p.attrs().next()) {
                        names.insert(attr_name(&first)?);
                    }
                }
                walk_attrpath(apv.attrpath(), scopes, d)?;
            }
        }
    }
    if rec {
        scopes.push(names);
    }
    let result = (|| {
        for entry in node.entries() {
            match entry {
                ast::Entry::Inherit(inh) => walk_opt(inh.from().and_then(|f| f.expr()), scopes, d)?,
                ast::Entry::AttrpathValue(apv) => walk_opt(apv.value(), scopes, d)?,
            }
        }
        walk_opt(body, scopes, d)
    })();
    if rec {
        scopes.pop();
    }
    result
}
