//! A small, lazy evaluator for the data subset of Nix that hosts.nix files
//! use: let/in, rec, inherit, attribute paths that merge, lists, strings with
//! interpolation, paths, numbers, booleans, null, select with `or`, `?`,
//! `//`, `++`, arithmetic, comparison, boolean operators and if/then/else.
//!
//! It is lazy where Nix is lazy (an unused binding that would fail does not
//! fail), so that its result equals `nix-instantiate --eval --strict` on every
//! input it accepts. Anything outside the subset (functions, `import`,
//! `builtins`, `with`, `assert`, dynamic attribute names) is refused up front
//! by [`scope::check`](super::scope) with its position, never guessed at.
//! Integer overflow is an error here (as in Nix 2.20 and later), not the
//! silent wrap-around of older Nix.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use rnix::ast::{self, AstToken, BinOpKind, HasEntry, InterpolPart, UnaryOpKind};
use rowan::ast::AstNode;
use rowan::TextRange;

use super::value::{Attr, Kind, Value};

/// Deeper than this and evaluation stops with an error instead of risking
/// the stack (the evaluator runs on a thread with a large stack; see
/// [`crate::fleet::load`]).
pub const MAX_DEPTH: usize = 20_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalError {
    pub span: TextRange,
    pub message: String,
    pub help: Option<String>,
}

impl EvalError {
    pub fn new(span: TextRange, message: impl Into<String>) -> Self {
        EvalError {
            span,
            message: message.into(),
            help: None,
        }
    }
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

type Result<T> = std::result::Result<T, EvalError>;

// ---------------------------------------------------------------------------
// Lazy values

type Thunk = Rc<RefCell<State>>;

enum State {
    Pending(Code, Env),
    /// Being forced right now: forcing it again is infinite recursion.
    Forcing(TextRange),
    Done(Lazy),
}

enum Code {
    Expr(ast::Expr),
    Set(Rc<SetDef>),
    /// `inherit (from) name;`
    InheritFrom {
        from: ast::Expr,
        name: String,
        span: TextRange,
    },
}

#[derive(Clone)]
struct Lazy {
    v: LV,
    span: TextRange,
}

type LAttrs = BTreeMap<String, (TextRange, Thunk)>;

#[derive(Clone)]
enum LV {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Rc<str>),
    Path(Rc<PathBuf>),
    List(Rc<Vec<Thunk>>),
    Attrs(Rc<LAttrs>),
}

impl LV {
    fn type_name(&self) -> &'static str {
        match self {
            LV::Null => "null",
            LV::Bool(_) => "a Boolean",
            LV::Int(_) => "an integer",
            LV::Float(_) => "a float",
            LV::Str(_) => "a string",
            LV::Path(_) => "a path",
            LV::List(_) => "a list",
            LV::Attrs(_) => "a set",
        }
    }
}

fn done(v: LV, span: TextRange) -> Thunk {
    Rc::new(RefCell::new(State::Done(Lazy { v, span })))
}

fn pending(code: Code, env: &Env) -> Thunk {
    Rc::new(RefCell::new(State::Pending(code, env.clone())))
}

// ---------------------------------------------------------------------------
// Scopes

type Env = Rc<Scope>;

struct Scope {
    vars: RefCell<HashMap<String, Thunk>>,
    parent: Option<Env>,
}

impl Scope {
    fn lookup(&self, name: &str) -> Option<Thunk> {
        if let Some(t) = self.vars.borrow().get(name) {
            return Some(t.clone());
        }
        self.parent.as_ref().and_then(|p| p.lookup(name))
    }
}

// ---------------------------------------------------------------------------
// Attribute set definitions, merged as Nix's parser merges them:
// `a.b = 1; a.c = 2;` and `a = { d = 3; }; a.e = 4;` build one nested set.

#[derive(Clone)]
pub(crate) struct SetDef {
    rec: bool,
    span: TextRange,
    entries: BTreeMap<String, DefEntry>,
}

#[derive(Clone)]
struct DefEntry {
    name_span: TextRange,
    value: DefValue,
}

#[derive(Clone)]
enum DefValue {
    Expr(ast::Expr),
    Nested(Rc<SetDef>),
    InheritVar,
    InheritFrom(ast::Expr),
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
                    InterpolPart::Interpolation(_) => {
                        return Err(dynamic_attr(span));
                    }
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

pub(crate) fn ident_text(i: &ast::Ident) -> String {
    i.ident_token()
        .map(|t| t.text().to_string())
        .unwrap_or_default()
}

/// Strips parentheses: Nix has no node for them, so `a = ({ b = 1; });`
/// merges like `a = { b = 1; };`.
fn strip_parens(mut e: ast::Expr) -> ast::Expr {
    while let ast::Expr::Paren(p) = &e {
        match p.expr() {
            Some(inner) => e = inner,
            None => break,
        }
    }
    e
}

fn build_set<N: HasEntry>(node: &N, rec: bool) -> Result<SetDef> {
    let mut def = SetDef {
        rec,
        span: node.syntax().text_range(),
        entries: BTreeMap::new(),
    };
    for entry in node.entries() {
        match entry {
            ast::Entry::Inherit(inh) => {
                let from = inh.from().and_then(|f| f.expr());
                for attr in inh.attrs() {
                    let name = attr_name(&attr)?;
                    let span = attr.syntax().text_range();
                    if def.entries.contains_key(&name) {
                        return Err(duplicate(&name, span));
                    }
                    let value = match &from {
                        Some(f) => DefValue::InheritFrom(f.clone()),
                        None => DefValue::InheritVar,
                    };
                    def.entries.insert(
                        name,
                        DefEntry {
                            name_span: span,
                            value,
                        },
                    );
                }
            }
            ast::Entry::AttrpathValue(apv) => {
                let path = apv.attrpath().ok_or_else(|| {
                    EvalError::new(apv.syntax().text_range(), "missing attribute name")
                })?;
                let names = path
                    .attrs()
                    .map(|a| Ok((attr_name(&a)?, a.syntax().text_range())))
                    .collect::<Result<Vec<_>>>()?;
                let value = apv
                    .value()
                    .ok_or_else(|| EvalError::new(apv.syntax().text_range(), "missing value"))?;
                add_attr(&mut def, &names, strip_parens(value))?;
            }
        }
    }
    Ok(def)
}

fn duplicate(name: &str, span: TextRange) -> EvalError {
    EvalError::new(span, format!("attribute '{name}' already defined"))
        .with_help("each attribute may be set once; merge the two definitions")
}

fn add_attr(def: &mut SetDef, path: &[(String, TextRange)], value: ast::Expr) -> Result<()> {
    let Some(((last, last_span), init)) = path.split_last() else {
        return Ok(());
    };
    let mut cur = def;
    let mut dotted = String::new();
    for (name, span) in init {
        if !dotted.is_empty() {
            dotted.push('.');
        }
        dotted.push_str(name);
        let entry = cur.entries.entry(name.clone()).or_insert_with(|| DefEntry {
            name_span: *span,
            value: DefValue::Nested(Rc::new(SetDef {
                rec: false,
                span: *span,
                entries: BTreeMap::new(),
            })),
        });
        match &mut entry.value {
            DefValue::Nested(set) => cur = Rc::make_mut(set),
            _ => return Err(duplicate(&dotted, *span)),
        }
    }
    if !dotted.is_empty() {
        dotted.push('.');
    }
    dotted.push_str(last);
    let literal = match &value {
        ast::Expr::AttrSet(set) => Some(build_set(set, set.rec_token().is_some())?),
        _ => None,
    };
    match (cur.entries.get_mut(last), literal) {
        (None, Some(set)) => {
            cur.entries.insert(
                last.clone(),
                DefEntry {
                    name_span: *last_span,
                    value: DefValue::Nested(Rc::new(set)),
                },
            );
        }
        (None, None) => {
            cur.entries.insert(
                last.clone(),
                DefEntry {
                    name_span: *last_span,
                    value: DefValue::Expr(value),
                },
            );
        }
        (
            Some(DefEntry {
                value: DefValue::Nested(existing),
                ..
            }),
            Some(set),
        ) => {
            // Both are set literals: Nix moves the new one's attributes into
            // the existing set (a clash is still an error).
            let existing = Rc::make_mut(existing);
            for (name, entry) in set.entries {
                if existing.entries.contains_key(&name) {
                    return Err(duplicate(&format!("{dotted}.{name}"), entry.name_span));
                }
                existing.entries.insert(name, entry);
            }
        }
        (Some(_), _) => return Err(duplicate(&dotted, *last_span)),
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The evaluator

pub struct Evaluator {
    /// Absolute folder of the file: relative paths start here.
    base_dir: PathBuf,
    depth: Cell<usize>,
    /// Every `rec`/`let` scope: their thunks point back at them, so the
    /// cycles are broken by hand when the evaluator is done.
    rec_scopes: RefCell<Vec<Env>>,
}

impl Drop for Evaluator {
    fn drop(&mut self) {
        for scope in self.rec_scopes.borrow().iter() {
            scope.vars.borrow_mut().clear();
        }
    }
}

struct DepthGuard<'a>(&'a Cell<usize>);
impl Drop for DepthGuard<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

impl Evaluator {
    pub fn new(base_dir: &Path) -> Self {
        Evaluator {
            base_dir: base_dir.to_path_buf(),
            depth: Cell::new(0),
            rec_scopes: RefCell::new(Vec::new()),
        }
    }

    /// Evaluates `expr` and forces the result completely, as `--strict` does.
    pub fn eval_strict(&self, expr: &ast::Expr) -> Result<Value> {
        let env = Rc::new(Scope {
            vars: RefCell::new(HashMap::new()),
            parent: None,
        });
        let span = expr.syntax().text_range();
        {
            let mut vars = env.vars.borrow_mut();
            vars.insert("true".into(), done(LV::Bool(true), span));
            vars.insert("false".into(), done(LV::Bool(false), span));
            vars.insert("null".into(), done(LV::Null, span));
        }
        let v = self.eval(expr, &env)?;
        self.deep(v)
    }

    fn enter(&self, span: TextRange) -> Result<DepthGuard<'_>> {
        let d = self.depth.get() + 1;
        if d > MAX_DEPTH {
            return Err(EvalError::new(
                span,
                format!("evaluation nested deeper than {MAX_DEPTH} levels"),
            )
            .with_help("hosts.nix should be plain data; break up the chain of references"));
        }
        self.depth.set(d);
        Ok(DepthGuard(&self.depth))
    }

    fn deep(&self, v: Lazy) -> Result<Value> {
        let _g = self.enter(v.span)?;
        let kind = match v.v {
            LV::Null => Kind::Null,
            LV::Bool(b) => Kind::Bool(b),
            LV::Int(i) => Kind::Int(i),
            LV::Float(f) => Kind::Float(f),
            LV::Str(s) => Kind::Str(s.to_string()),
            LV::Path(p) => Kind::Path(p.to_path_buf()),
            LV::List(items) => Kind::List(
                items
                    .iter()
                    .map(|t| self.force(t).and_then(|v| self.deep(v)))
                    .collect::<Result<_>>()?,
            ),
            LV::Attrs(attrs) => {
                let mut out = BTreeMap::new();
                for (name, (name_span, t)) in attrs.iter() {
                    let value = self.deep(self.force(t)?)?;
                    out.insert(
                        name.clone(),
                        Attr {
                            name_span: *name_span,
                            value,
                        },
                    );
                }
                Kind::Attrs(out)
            }
        };
        Ok(Value { kind, span: v.span })
    }

    fn force(&self, t: &Thunk) -> Result<Lazy> {
        let state = {
            let mut s = t.borrow_mut();
            let span = match &*s {
                State::Done(v) => return Ok(v.clone()),
                State::Forcing(span) => {
                    return Err(
                        EvalError::new(*span, "infinite recursion encountered").with_help(
                            "this value refers to itself, directly or through other bindings",
                        ),
                    )
                }
                State::Pending(code, _) => code_span(code),
            };
            std::mem::replace(&mut *s, State::Forcing(span))
        };
        let State::Pending(code, env) = state else {
            return Err(EvalError::new(
                TextRange::default(),
                "internal error: thunk state",
            ));
        };
        let result = match &code {
            Code::Expr(e) => self.eval(e, &env),
            Code::Set(def) => self.eval_set(def, &env),
            Code::InheritFrom { from, name, span } => {
                let base = self.eval(from, &env)?;
                self.select_one(&base, name, *span)
            }
        };
        match result {
            Ok(v) => {
                *t.borrow_mut() = State::Done(v.clone());
                Ok(v)
            }
            Err(e) => {
                *t.borrow_mut() = State::Pending(code, env);
                Err(e)
            }
        }
    }

    fn eval(&self, expr: &ast::Expr, env: &Env) -> Result<Lazy> {
        let span = expr.syntax().text_range();
        let _g = self.enter(span)?;
        let v = match expr {
            ast::Expr::Literal(lit) => self.literal(lit)?,
            ast::Expr::Str(s) => LV::Str(self.string(s, env)?.into()),
            ast::Expr::PathAbs(_) | ast::Expr::PathRel(_) => {
                LV::Path(Rc::new(self.path(expr, env)?))
            }
            ast::Expr::Ident(i) => {
                let token = i.ident_token();
                let name = token.as_ref().map_or("", |t| t.text());
                let t = env
                    .lookup(name)
                    .ok_or_else(|| EvalError::new(span, format!("undefined variable '{name}'")))?;
                return self.force(&t);
            }
            ast::Expr::Paren(p) => return self.eval(&child(p.expr(), span)?, env),
            ast::Expr::List(l) => LV::List(Rc::new(
                l.items().map(|e| pending(Code::Expr(e), env)).collect(),
            )),
            ast::Expr::AttrSet(set) => {
                let def = build_set(set, set.rec_token().is_some())?;
                return self.eval_set(&def, env);
            }
            ast::Expr::LetIn(letin) => {
                let def = build_set(letin, true)?;
                let scope = self.bind(&def, env, true);
                return self.eval(&child(letin.body(), span)?, &scope.0);
            }
            ast::Expr::Select(sel) => return self.select(sel, env),
            ast::Expr::HasAttr(h) => LV::Bool(self.has_attr(h, env)?),
            ast::Expr::BinOp(op) => return self.binop(op, env),
            ast::Expr::UnaryOp(op) => self.unary(op, env)?,
            ast::Expr::IfElse(ie) => {
                let cond = self.eval(&child(ie.condition(), span)?, env)?;
                let branch = if self.expect_bool(&cond)? {
                    ie.body()
                } else {
                    ie.else_body()
                };
                return self.eval(&child(branch, span)?, env);
            }
            other => return Err(super::scope::unsupported(other)),
        };
        Ok(Lazy { v, span })
    }

    fn literal(&self, lit: &ast::Literal) -> Result<LV> {
        let span = lit.syntax().text_range();
        Ok(match lit.kind() {
            ast::LiteralKind::Integer(i) => LV::Int(i.value().map_err(|_| {
                EvalError::new(
                    span,
                    format!("integer literal '{}' is out of range", i.syntax().text()),
                )
                .with_help(format!("Nix integers are 64-bit: at most {}", i64::MAX))
            })?),
            ast::LiteralKind::Float(f) => LV::Float(
                f.value()
                    .map_err(|_| EvalError::new(span, "invalid floating-point literal"))?,
            ),
            ast::LiteralKind::Uri(u) => LV::Str(u.syntax().text().into()),
        })
    }

    fn string(&self, s: &ast::Str, env: &Env) -> Result<String> {
        let mut out = String::new();
        for part in s.normalized_parts() {
            match part {
                InterpolPart::Literal(l) => out.push_str(&l),
                InterpolPart::Interpolation(i) => {
                    let span = i.syntax().text_range();
                    let v = self.eval(&child(i.expr(), span)?, env)?;
                    out.push_str(&self.coerce_to_string(&v)?);
                }
            }
        }
        Ok(out)
    }

    fn coerce_to_string(&self, v: &Lazy) -> Result<Rc<str>> {
        match &v.v {
            LV::Str(s) => Ok(s.clone()),
            LV::Path(_) => Err(EvalError::new(
                v.span,
                "interpolating a path copies it into the Nix store; that is outside the supported subset",
            )
            .with_help("use a string, or keep the value a path")),
            other => Err(EvalError::new(
                v.span,
                format!("cannot coerce {} to a string", other.type_name()),
            )),
        }
    }

    fn path(&self, expr: &ast::Expr, env: &Env) -> Result<PathBuf> {
        let parts = match expr {
            ast::Expr::PathAbs(p) => p.parts(),
            ast::Expr::PathRel(p) => p.parts(),
            _ => return Err(super::scope::unsupported(expr)),
        };
        let mut text = String::new();
        for part in parts {
            match part {
                InterpolPart::Literal(l) => text.push_str(l.text()),
                InterpolPart::Interpolation(i) => {
                    let span = i.syntax().text_range();
                    let v = self.eval(&child(i.expr(), span)?, env)?;
                    text.push_str(&self.coerce_to_string(&v)?);
                }
            }
        }
        let joined = if text.starts_with('/') {
            PathBuf::from(text)
        } else {
            self.base_dir.join(text)
        };
        Ok(normalize(&joined))
    }

    /// Binds the entries of a set definition. For `rec` sets and `let`, the
    /// entries see each other through a new scope; `inherit x;` always looks
    /// in the enclosing scope.
    fn bind(&self, def: &SetDef, env: &Env, rec: bool) -> (Env, LAttrs) {
        let scope = if rec {
            Rc::new(Scope {
                vars: RefCell::new(HashMap::new()),
                parent: Some(env.clone()),
            })
        } else {
            env.clone()
        };
        let mut attrs = LAttrs::new();
        for (name, entry) in &def.entries {
            let thunk = match &entry.value {
                DefValue::Expr(e) => pending(Code::Expr(e.clone()), &scope),
                DefValue::Nested(set) => pending(Code::Set(set.clone()), &scope),
                DefValue::InheritVar => match env.lookup(name) {
                    Some(t) => t,
                    // Unreachable after the scope check; fail when forced.
                    None => pending(
                        Code::InheritFrom {
                            from: ast::Expr::Ident(missing_ident()),
                            name: name.clone(),
                            span: entry.name_span,
                        },
                        env,
                    ),
                },
                DefValue::InheritFrom(from) => pending(
                    Code::InheritFrom {
                        from: from.clone(),
                        name: name.clone(),
                        span: entry.name_span,
                    },
                    &scope,
                ),
            };
            attrs.insert(name.clone(), (entry.name_span, thunk));
        }
        if rec {
            let mut vars = scope.vars.borrow_mut();
            for (name, (_, t)) in &attrs {
                vars.insert(name.clone(), t.clone());
            }
            self.rec_scopes.borrow_mut().push(scope.clone());
        }
        (scope, attrs)
    }

    fn eval_set(&self, def: &SetDef, env: &Env) -> Result<Lazy> {
        let (_, attrs) = self.bind(def, env, def.rec);
        Ok(Lazy {
            v: LV::Attrs(Rc::new(attrs)),
            span: def.span,
        })
    }

    fn select_one(&self, base: &Lazy, name: &str, span: TextRange) -> Result<Lazy> {
        match &base.v {
            LV::Attrs(attrs) => match attrs.get(name) {
                Some((_, t)) => self.force(t),
                None => Err(missing_attr(name, attrs, span)),
            },
            other => Err(EvalError::new(
                span,
                format!("value is {} while a set was expected", other.type_name()),
            )),
        }
    }

    fn select(&self, sel: &ast::Select, env: &Env) -> Result<Lazy> {
        let span = sel.syntax().text_range();
        let mut cur = self.eval(&child(sel.expr(), span)?, env)?;
        let path = sel
            .attrpath()
            .ok_or_else(|| EvalError::new(span, "missing attribute path"))?;
        for attr in path.attrs() {
            let name = attr_name(&attr)?;
            let found = match &cur.v {
                LV::Attrs(attrs) => attrs.get(&name).map(|(_, t)| t.clone()),
                _ => None,
            };
            match (found, sel.default_expr()) {
                (Some(t), _) => cur = self.force(&t)?,
                (None, Some(default)) => return self.eval(&default, env),
                (None, None) => return self.select_one(&cur, &name, attr.syntax().text_range()),
            }
        }
        Ok(cur)
    }

    fn has_attr(&self, h: &ast::HasAttr, env: &Env) -> Result<bool> {
        let span = h.syntax().text_range();
        let mut cur = self.eval(&child(h.expr(), span)?, env)?;
        let path = h
            .attrpath()
            .ok_or_else(|| EvalError::new(span, "missing attribute path"))?;
        for attr in path.attrs() {
            let name = attr_name(&attr)?;
            let next = match &cur.v {
                LV::Attrs(attrs) => attrs.get(&name).map(|(_, t)| t.clone()),
                _ => None,
            };
            match next {
                Some(t) => cur = self.force(&t)?,
                None => return Ok(false),
            }
        }
        Ok(true)
    }

    fn expect_bool(&self, v: &Lazy) -> Result<bool> {
        match v.v {
            LV::Bool(b) => Ok(b),
            ref other => Err(EvalError::new(
                v.span,
                format!(
                    "value is {} while a Boolean was expected",
                    other.type_name()
                ),
            )),
        }
    }

    fn unary(&self, op: &ast::UnaryOp, env: &Env) -> Result<LV> {
        let span = op.syntax().text_range();
        let v = self.eval(&child(op.expr(), span)?, env)?;
        match op.operator() {
            Some(UnaryOpKind::Invert) => Ok(LV::Bool(!self.expect_bool(&v)?)),
            Some(UnaryOpKind::Negate) => match v.v {
                LV::Int(i) => i.checked_neg().map(LV::Int).ok_or_else(|| overflow(span)),
                LV::Float(f) => Ok(LV::Float(-f)),
                ref other => Err(EvalError::new(
                    span,
                    format!("cannot negate {}", other.type_name()),
                )),
            },
            None => Err(EvalError::new(span, "unknown unary operator")),
        }
    }

    fn binop(&self, op: &ast::BinOp, env: &Env) -> Result<Lazy> {
        let span = op.syntax().text_range();
        let kind = op
            .operator()
            .ok_or_else(|| EvalError::new(span, "unknown operator"))?;
        let lhs = self.eval(&child(op.lhs(), span)?, env)?;
        // Boolean operators short-circuit, as in Nix.
        let short = match kind {
            BinOpKind::And => Some(!self.expect_bool(&lhs)?),
            BinOpKind::Or => Some(self.expect_bool(&lhs)?),
            BinOpKind::Implication => Some(!self.expect_bool(&lhs)?),
            _ => None,
        };
        if let Some(true) = short {
            let result = !matches!(kind, BinOpKind::And);
            return Ok(Lazy {
                v: LV::Bool(result),
                span,
            });
        }
        let rhs = self.eval(&child(op.rhs(), span)?, env)?;
        let v = match kind {
            BinOpKind::And | BinOpKind::Or | BinOpKind::Implication => {
                LV::Bool(self.expect_bool(&rhs)?)
            }
            BinOpKind::Concat => match (&lhs.v, &rhs.v) {
                (LV::List(a), LV::List(b)) => {
                    LV::List(Rc::new(a.iter().chain(b.iter()).cloned().collect()))
                }
                _ => return Err(type_mismatch(span, "++", "lists", &lhs, &rhs)),
            },
            BinOpKind::Update => match (&lhs.v, &rhs.v) {
                (LV::Attrs(a), LV::Attrs(b)) => {
                    let mut merged = (**a).clone();
                    merged.extend(b.iter().map(|(k, v)| (k.clone(), v.clone())));
                    LV::Attrs(Rc::new(merged))
                }
                _ => return Err(type_mismatch(span, "//", "sets", &lhs, &rhs)),
            },
            BinOpKind::Add => self.add(&lhs, &rhs, span)?,
            BinOpKind::Sub | BinOpKind::Mul | BinOpKind::Div => arith(kind, &lhs, &rhs, span)?,
            BinOpKind::Equal => LV::Bool(self.equal(&lhs, &rhs)?),
            BinOpKind::NotEqual => LV::Bool(!self.equal(&lhs, &rhs)?),
            BinOpKind::Less => LV::Bool(less(&lhs, &rhs, span)?),
            BinOpKind::More => LV::Bool(less(&rhs, &lhs, span)?),
            BinOpKind::LessOrEq => LV::Bool(!less(&rhs, &lhs, span)?),
            BinOpKind::MoreOrEq => LV::Bool(!less(&lhs, &rhs, span)?),
            BinOpKind::PipeLeft | BinOpKind::PipeRight => {
                return Err(EvalError::new(
                    span,
                    "the pipe operators are outside the supported subset of Nix",
                ))
            }
        };
        Ok(Lazy { v, span })
    }

    fn add(&self, lhs: &Lazy, rhs: &Lazy, span: TextRange) -> Result<LV> {
        Ok(match (&lhs.v, &rhs.v) {
            (LV::Str(a), LV::Str(b)) => LV::Str(format!("{a}{b}").into()),
            (LV::Path(a), LV::Str(b)) => {
                LV::Path(Rc::new(normalize(Path::new(&format!("{}{b}", a.display())))))
            }
            (LV::Path(a), LV::Path(b)) => LV::Path(Rc::new(normalize(Path::new(&format!(
                "{}{}",
                a.display(),
                b.display()
            ))))),
            (LV::Str(_), LV::Path(_)) => {
                return Err(EvalError::new(
                    span,
                    "adding a path to a string copies it into the Nix store; that is outside the supported subset",
                ))
            }
            _ => return arith(BinOpKind::Add, lhs, rhs, span),
        })
    }

    /// `==` as Nix defines it: numbers compare by value (1 == 1.0), sets and
    /// lists element by element, forcing only as far as needed.
    fn equal(&self, a: &Lazy, b: &Lazy) -> Result<bool> {
        let _g = self.enter(a.span)?;
        Ok(match (&a.v, &b.v) {
            (LV::Null, LV::Null) => true,
            (LV::Bool(x), LV::Bool(y)) => x == y,
            (LV::Int(x), LV::Int(y)) => x == y,
            (LV::Float(x), LV::Float(y)) => x == y,
            (LV::Int(x), LV::Float(y)) | (LV::Float(y), LV::Int(x)) => (*x as f64) == *y,
            (LV::Str(x), LV::Str(y)) => x == y,
            (LV::Path(x), LV::Path(y)) => x == y,
            (LV::List(x), LV::List(y)) => {
                if x.len() != y.len() {
                    return Ok(false);
                }
                for (p, q) in x.iter().zip(y.iter()) {
                    if !self.equal(&self.force(p)?, &self.force(q)?)? {
                        return Ok(false);
                    }
                }
                true
            }
            (LV::Attrs(x), LV::Attrs(y)) => {
                if x.len() != y.len() || !x.keys().eq(y.keys()) {
                    return Ok(false);
                }
                for ((_, p), (_, q)) in x.values().zip(y.values()) {
                    if !self.equal(&self.force(p)?, &self.force(q)?)? {
                        return Ok(false);
                    }
                }
                true
            }
            _ => false,
        })
    }
}

fn child(e: Option<ast::Expr>, span: TextRange) -> Result<ast::Expr> {
    e.ok_or_else(|| EvalError::new(span, "incomplete expression"))
}

fn code_span(code: &Code) -> TextRange {
    match code {
        Code::Expr(e) => e.syntax().text_range(),
        Code::Set(s) => s.span,
        Code::InheritFrom { span, .. } => *span,
    }
}

fn missing_ident() -> ast::Ident {
    let parse = rnix::Root::parse("__pve_missing");
    match parse.tree().expr() {
        Some(ast::Expr::Ident(i)) => i,
        _ => unreachable!("an identifier parses as an identifier"),
    }
}

fn missing_attr(name: &str, attrs: &LAttrs, span: TextRange) -> EvalError {
    let err = EvalError::new(span, format!("attribute '{name}' missing"));
    match crate::diag::did_you_mean(name, attrs.keys().map(String::as_str)) {
        Some(s) => err.with_help(format!("did you mean '{s}'?")),
        None => err,
    }
}

fn overflow(span: TextRange) -> EvalError {
    EvalError::new(span, "integer overflow").with_help(
        "the result does not fit in a 64-bit integer (older Nix silently wraps it around)",
    )
}

fn type_mismatch(span: TextRange, op: &str, want: &str, a: &Lazy, b: &Lazy) -> EvalError {
    EvalError::new(
        span,
        format!(
            "'{op}' needs two {want}, got {} and {}",
            a.v.type_name(),
            b.v.type_name()
        ),
    )
}

fn arith(kind: BinOpKind, a: &Lazy, b: &Lazy, span: TextRange) -> Result<LV> {
    let name = match kind {
        BinOpKind::Add => "add",
        BinOpKind::Sub => "subtract",
        BinOpKind::Mul => "multiply",
        _ => "divide",
    };
    match (&a.v, &b.v) {
        (LV::Int(x), LV::Int(y)) => {
            let (x, y) = (*x, *y);
            let r = match kind {
                BinOpKind::Add => x.checked_add(y),
                BinOpKind::Sub => x.checked_sub(y),
                BinOpKind::Mul => x.checked_mul(y),
                _ => {
                    if y == 0 {
                        return Err(EvalError::new(span, "division by zero"));
                    }
                    x.checked_div(y)
                }
            };
            r.map(LV::Int).ok_or_else(|| overflow(span))
        }
        (LV::Int(_) | LV::Float(_), LV::Int(_) | LV::Float(_)) => {
            let x = as_f64(&a.v);
            let y = as_f64(&b.v);
            Ok(LV::Float(match kind {
                BinOpKind::Add => x + y,
                BinOpKind::Sub => x - y,
                BinOpKind::Mul => x * y,
                _ => {
                    if y == 0.0 {
                        return Err(EvalError::new(span, "division by zero"));
                    }
                    x / y
                }
            }))
        }
        _ => Err(EvalError::new(
            span,
            format!("cannot {name} {} and {}", a.v.type_name(), b.v.type_name()),
        )),
    }
}

fn as_f64(v: &LV) -> f64 {
    match v {
        LV::Int(i) => *i as f64,
        LV::Float(f) => *f,
        _ => 0.0,
    }
}

fn less(a: &Lazy, b: &Lazy, span: TextRange) -> Result<bool> {
    match (&a.v, &b.v) {
        (LV::Int(x), LV::Int(y)) => Ok(x < y),
        (LV::Int(_) | LV::Float(_), LV::Int(_) | LV::Float(_)) => Ok(as_f64(&a.v) < as_f64(&b.v)),
        (LV::Str(x), LV::Str(y)) => Ok(x < y),
        (LV::Path(x), LV::Path(y)) => Ok(x.as_os_str() < y.as_os_str()),
        _ => Err(EvalError::new(
            span,
            format!(
                "cannot compare {} with {}",
                a.v.type_name(),
                b.v.type_name()
            ),
        )),
    }
}

/// Lexical normalisation, as Nix's canonPath: `.` dropped, `..` pops.
pub fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}
