//! The static check that runs before evaluation, as Nix's own parser does:
//! every variable must be bound. Nix reports an undefined variable even in a
//! binding nobody uses, which a lazy evaluator alone would never notice.
//! (Constructs outside the subset are refused earlier, by
//! [`lower`](super::lower) or by the fast parser's fallback to it.)

use super::eval::{EvalError, MAX_DEPTH};
use super::ir::{EntryValue, Expr, ExprKind, SetDef, StrPart};

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

/// The names bound everywhere.
const BUILTINS: &[&str] = &["true", "false", "null"];

pub fn check(root: &Expr) -> Result<(), EvalError> {
    walk(root, &mut Vec::new(), 0)
}

/// The `rec` sets and `let`s around an expression, innermost last: their
/// entries are sorted by name, so a name is found by a binary search there
/// (no set of names is built; hashing each variable was a tenth of this
/// walk on a fleet whose hosts read `let` values).
type Scopes<'a> = Vec<&'a SetDef>;

fn bound(name: &str, scopes: &Scopes<'_>) -> bool {
    BUILTINS.contains(&name) || scopes.iter().any(|def| def.get(name).is_some())
}

fn walk<'a>(expr: &'a Expr, scopes: &mut Scopes<'a>, depth: usize) -> Result<(), EvalError> {
    let span = expr.span;
    if depth > MAX_DEPTH {
        return Err(EvalError::new(
            span,
            format!("expression nested deeper than {MAX_DEPTH} levels"),
        ));
    }
    let d = depth + 1;
    match &expr.kind {
        ExprKind::Int(_) | ExprKind::Float(_) | ExprKind::Literal(_) | ExprKind::PlainStr(_) => {
            Ok(())
        }
        ExprKind::Str(parts) | ExprKind::Path(parts) => parts.iter().try_for_each(|p| match p {
            StrPart::Literal(_) => Ok(()),
            StrPart::Interpolation(e) => walk(e, scopes, d),
        }),
        ExprKind::Var(name) => variable(name, span, scopes),
        ExprKind::List(items) => items.iter().try_for_each(|e| walk(e, scopes, d)),
        ExprKind::Set(def) => walk_set(def, None, scopes, d),
        ExprKind::Let(def, body) => walk_set(def, Some(body), scopes, d),
        ExprKind::Select { base, default, .. } => {
            walk(base, scopes, d)?;
            default.as_ref().map_or(Ok(()), |e| walk(e, scopes, d))
        }
        ExprKind::HasAttr { base, .. } => walk(base, scopes, d),
        ExprKind::Binary(_, lhs, rhs) => {
            walk(lhs, scopes, d)?;
            walk(rhs, scopes, d)
        }
        ExprKind::Not(e) | ExprKind::Negate(e) => walk(e, scopes, d),
        ExprKind::If(c, t, e) => {
            walk(c, scopes, d)?;
            walk(t, scopes, d)?;
            walk(e, scopes, d)
        }
    }
}

fn variable(name: &str, span: rowan::TextRange, scopes: &Scopes<'_>) -> Result<(), EvalError> {
    if bound(name, scopes) {
        Ok(())
    } else if NIX_GLOBALS.contains(&name) || name.starts_with("__") {
        Err(EvalError::new(
            span,
            format!("`{name}` is outside the subset of Nix that hosts.nix may use"),
        )
        .with_help("hosts.nix is read without evaluating Nix code: write the value itself"))
    } else {
        let err = EvalError::new(span, format!("undefined variable '{name}'"));
        let known = BUILTINS
            .iter()
            .copied()
            .chain(scopes.iter().flat_map(|def| def.names()));
        Err(match crate::diag::did_you_mean(name, known) {
            Some(s) => err.with_help(format!("did you mean '{s}'?")),
            None => err.with_help("bind it with `let NAME = ...; in` before use"),
        })
    }
}

/// Sets and `let`: for `rec` and `let` the names are visible to the values
/// (a nested `a.b = ...;` set is never `rec`); `inherit x;` is resolved in
/// the enclosing scope in both cases.
fn walk_set<'a>(
    def: &'a SetDef,
    body: Option<&'a Expr>,
    scopes: &mut Scopes<'a>,
    d: usize,
) -> Result<(), EvalError> {
    if def.closed && body.is_none() {
        // It reads no variable that could be unbound: nothing to check
        // below (its depth is bounded by the front ends, which count at
        // least as deep as this walk does).
        return Ok(());
    }
    for (name, entry) in def.entries.iter() {
        if matches!(entry.value, EntryValue::InheritVar) && !bound(name, scopes) {
            return Err(
                EvalError::new(entry.name_span, format!("undefined variable '{name}'")).with_help(
                    "`inherit x;` copies `x` from the enclosing scope; bind it there first",
                ),
            );
        }
    }
    if def.rec {
        scopes.push(def);
    }
    let result = (|| {
        for (_, entry) in def.entries.iter() {
            match &entry.value {
                EntryValue::Expr(e) => walk(e, scopes, d)?,
                EntryValue::InheritFrom(e) => walk(e, scopes, d)?,
                EntryValue::Nested(set) => walk_set(set, None, scopes, d)?,
                EntryValue::InheritVar => {}
            }
        }
        body.map_or(Ok(()), |b| walk(b, scopes, d))
    })();
    if def.rec {
        scopes.pop();
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// A variable is bound exactly when a `let` around it, a `rec` set
        /// around it or the builtins name it, whatever the names' order.
        #[test]
        fn a_name_is_bound_exactly_when_a_scope_names_it(
            outer in proptest::collection::btree_set("[a-d]{1,3}|x_[a-z0-9]{0,5}", 0..12),
            inner in proptest::collection::btree_set("[a-d]{1,3}|y_[a-z0-9]{0,5}", 0..12),
            probe in "[a-d]{1,3}|[xy]_[a-z0-9]{0,5}|true|null",
        ) {
            let binds = |names: &std::collections::BTreeSet<String>| {
                names.iter().rev().map(|n| format!("{n} = 1; ")).collect::<String>()
            };
            let text = format!(
                "let {}in rec {{ {}out = [ {probe} ]; }}",
                binds(&outer),
                binds(&inner)
            );
            let expr = crate::fleet::fast_parse::parse(&text).expect("it parses");
            let want = outer.contains(&probe)
                || inner.contains(&probe)
                || probe == "out"
                || BUILTINS.contains(&probe.as_str());
            proptest::prop_assert_eq!(check(&expr).is_ok(), want, "{}", text);
        }
    }
}
