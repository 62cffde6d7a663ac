//! From the rnix syntax tree to the evaluator's [`ir`](super::ir). This is
//! where everything outside the supported data subset is refused, with the
//! construct's name and position (functions, `import`, `builtins`, `with`,
//! `assert`, dynamic attribute names, ...), and where attribute sets are
//! merged, so a duplicate attribute is found before evaluation as in Nix.

use std::rc::Rc;

use rnix::ast::{self, AstToken, BinOpKind, HasEntry, InterpolPart, UnaryOpKind};
use rowan::ast::AstNode;
use rowan::TextRange;

use super::eval::{EvalError, MAX_DEPTH};
use super::ir::{AttrPath, BinOp, Expr, ExprKind, Name, SetBuilder, SetDef, StrPart};

type Result<T> = std::result::Result<T, EvalError>;

/// Lowers the whole file's expression.
pub fn lower(expr: &ast::Expr) -> Result<Expr> {
    lower_expr(expr, 0)
}

/// The static name of an attribute (`a`, `"my-host"`); `${...}` names are
/// outside the subset.
pub(crate) fn attr_name(attr: &ast::Attr) -> Result<String> {
    let span = attr.syntax().text_range();
    match attr {
        ast::Attr::Ident(i) => Ok(ident_text(i)),
        ast::Attr::Str(s) => {
            let mut out = String::new();
            for part in s.normalized_parts() {
                match part {
                    InterpolPart::Literal(l) => out.push_str(&l),
                    InterpolPart::Interpolation(_) => return Err(dynamic_attr(span)),
                }
            }
            Ok(out)
        }
        ast::Attr::Dynamic(_) => Err(dynamic_attr(span)),
    }
}

fn dynamic_attr(span: TextRange) -> EvalError {
    EvalError::new(
        span,
        "dynamic attribute names (`${...}`) are outside the supported subset of Nix",
    )
    .with_help(
        "write the attribute name literally, e.g. `web1 = { ... };` or `\"my-host\" = { ... };`",
    )
}

fn ident_text(i: &ast::Ident) -> String {
    i.ident_token()
        .map(|t| t.text().to_string())
        .unwrap_or_default()
}

/// The error for a construct outside the subset.
fn unsupported(expr: &ast::Expr) -> EvalError {
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

fn child(e: Option<ast::Expr>, span: TextRange, depth: usize) -> Result<Expr> {
    let e = e.ok_or_else(|| EvalError::new(span, "incomplete expression"))?;
    lower_expr(&e, depth)
}

fn boxed(e: Option<ast::Expr>, span: TextRange, depth: usize) -> Result<Box<Expr>> {
    child(e, span, depth).map(Box::new)
}

fn lower_expr(expr: &ast::Expr, depth: usize) -> Result<Expr> {
    let span = expr.syntax().text_range();
    if depth > MAX_DEPTH {
        return Err(EvalError::new(
            span,
            format!("expression nested deeper than {MAX_DEPTH} levels"),
        ));
    }
    let d = depth + 1;
    let kind = match expr {
        ast::Expr::Literal(lit) => literal(lit)?,
        ast::Expr::Str(s) => ExprKind::Str(string_parts(s, d)?),
        ast::Expr::PathAbs(p) => ExprKind::Path(path_parts(p.parts(), d)?),
        ast::Expr::PathRel(p) => ExprKind::Path(path_parts(p.parts(), d)?),
        ast::Expr::Ident(i) => ExprKind::Var(ident_text(i).into()),
        // Nix has no node for parentheses: `a = ({ b = 1; });` merges like
        // `a = { b = 1; };`, and the value's range is the inner one.
        ast::Expr::Paren(p) => return child(p.expr(), span, d),
        ast::Expr::Root(r) => return child(r.expr(), span, d),
        ast::Expr::List(l) => ExprKind::List(
            l.items()
                .map(|e| lower_expr(&e, d))
                .collect::<Result<_>>()?,
        ),
        ast::Expr::AttrSet(set) => {
            ExprKind::Set(Rc::new(set_def(set, set.rec_token().is_some(), d)?))
        }
        ast::Expr::LetIn(l) => {
            let def = set_def(l, true, d)?;
            ExprKind::Let(Rc::new(def), boxed(l.body(), span, d)?)
        }
        ast::Expr::Select(s) => ExprKind::Select {
            base: boxed(s.expr(), span, d)?,
            path: AttrPath::new(&attr_path(s.attrpath(), span)?),
            default: match s.default_expr() {
                Some(e) => Some(Box::new(lower_expr(&e, d)?)),
                None => None,
            },
        },
        ast::Expr::HasAttr(h) => ExprKind::HasAttr {
            base: boxed(h.expr(), span, d)?,
            path: AttrPath::new(&attr_path(h.attrpath(), span)?),
        },
        ast::Expr::BinOp(b) => {
            let op = binop(b.operator(), span)?;
            ExprKind::Binary(op, boxed(b.lhs(), span, d)?, boxed(b.rhs(), span, d)?)
        }
        ast::Expr::UnaryOp(u) => {
            let operand = boxed(u.expr(), span, d)?;
            match u.operator() {
                Some(UnaryOpKind::Invert) => ExprKind::Not(operand),
                Some(UnaryOpKind::Negate) => ExprKind::Negate(operand),
                None => return Err(EvalError::new(span, "unknown unary operator")),
            }
        }
        ast::Expr::IfElse(i) => ExprKind::If(
            boxed(i.condition(), span, d)?,
            boxed(i.body(), span, d)?,
            boxed(i.else_body(), span, d)?,
        ),
        ast::Expr::Error(_) => return Err(EvalError::new(span, "syntax error")),
        other => return Err(unsupported(other)),
    };
    Ok(Expr { span, kind })
}

fn literal(lit: &ast::Literal) -> Result<ExprKind> {
    let span = lit.syntax().text_range();
    Ok(match lit.kind() {
        ast::LiteralKind::Integer(i) => ExprKind::Int(i.value().map_err(|_| {
            EvalError::new(
                span,
                format!("integer literal '{}' is out of range", i.syntax().text()),
            )
            .with_help(format!("Nix integers are 64-bit: at most {}", i64::MAX))
        })?),
        ast::LiteralKind::Float(f) => ExprKind::Float(
            f.value()
                .map_err(|_| EvalError::new(span, "invalid floating-point literal"))?,
        ),
        ast::LiteralKind::Uri(u) => {
            ExprKind::Str(vec![StrPart::Literal(u.syntax().text().to_string().into())])
        }
    })
}

fn string_parts(s: &ast::Str, d: usize) -> Result<Vec<StrPart>> {
    s.normalized_parts()
        .into_iter()
        .map(|part| match part {
            InterpolPart::Literal(l) => Ok(StrPart::Literal(l.into())),
            InterpolPart::Interpolation(i) => {
                let span = i.syntax().text_range();
                Ok(StrPart::Interpolation(child(i.expr(), span, d)?))
            }
        })
        .collect()
}

fn path_parts(parts: Vec<InterpolPart<ast::PathContent>>, d: usize) -> Result<Vec<StrPart>> {
    parts
        .into_iter()
        .map(|part| match part {
            InterpolPart::Literal(l) => Ok(StrPart::Literal(l.text().into())),
            InterpolPart::Interpolation(i) => {
                let span = i.syntax().text_range();
                Ok(StrPart::Interpolation(child(i.expr(), span, d)?))
            }
        })
        .collect()
}

fn attr_path(path: Option<ast::Attrpath>, span: TextRange) -> Result<Vec<Name>> {
    let path = path.ok_or_else(|| EvalError::new(span, "missing attribute path"))?;
    path.attrs()
        .map(|a| {
            Ok(Name {
                text: attr_name(&a)?.into(),
                span: a.syntax().text_range(),
            })
        })
        .collect()
}

fn set_def<N: HasEntry>(node: &N, rec: bool, d: usize) -> Result<SetDef> {
    let mut def = SetBuilder::new(rec, node.syntax().text_range());
    for entry in node.entries() {
        match entry {
            ast::Entry::Inherit(inh) => {
                let from = match inh.from() {
                    Some(f) => Some(Rc::new(child(f.expr(), f.syntax().text_range(), d)?)),
                    None => None,
                };
                for attr in inh.attrs() {
                    let name = Name {
                        text: attr_name(&attr)?.into(),
                        span: attr.syntax().text_range(),
                    };
                    def.inherit(name, from.clone())?;
                }
            }
            ast::Entry::AttrpathValue(apv) => {
                let span = apv.syntax().text_range();
                let path = attr_path(apv.attrpath(), span)?;
                let value = child(apv.value(), span, d)?;
                def.add(&path, value)?;
            }
        }
    }
    Ok(def.finish())
}

fn binop(op: Option<BinOpKind>, span: TextRange) -> Result<BinOp> {
    Ok(
        match op.ok_or_else(|| EvalError::new(span, "unknown operator"))? {
            BinOpKind::Concat => BinOp::Concat,
            BinOpKind::Update => BinOp::Update,
            BinOpKind::Add => BinOp::Add,
            BinOpKind::Sub => BinOp::Sub,
            BinOpKind::Mul => BinOp::Mul,
            BinOpKind::Div => BinOp::Div,
            BinOpKind::And => BinOp::And,
            BinOpKind::Or => BinOp::Or,
            BinOpKind::Implication => BinOp::Implication,
            BinOpKind::Equal => BinOp::Equal,
            BinOpKind::NotEqual => BinOp::NotEqual,
            BinOpKind::Less => BinOp::Less,
            BinOpKind::More => BinOp::More,
            BinOpKind::LessOrEq => BinOp::LessOrEq,
            BinOpKind::MoreOrEq => BinOp::MoreOrEq,
            BinOpKind::PipeLeft | BinOpKind::PipeRight => {
                return Err(EvalError::new(
                    span,
                    "the pipe operators are outside the subset of Nix that hosts.nix may use",
                ))
            }
        },
    )
}
