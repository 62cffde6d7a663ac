//! A small, lazy evaluator for the data subset of Nix that hosts.nix files
//! use: let/in, rec, inherit, attribute paths that merge, lists, strings with
//! interpolation, paths, numbers, booleans, null, select with `or`, `?`,
//! `//`, `++`, arithmetic, comparison, boolean operators and if/then/else.
//!
//! It is lazy where Nix is lazy (an unused binding that would fail does not
//! fail), so that its result equals `nix-instantiate --eval --strict` on every
//! input it accepts. Anything outside the subset (functions, `import`,
//! `builtins`, `with`, `assert`, dynamic attribute names) never reaches it:
//! [`lower`](super::lower) refuses it with its position, and
//! [`scope::check`](super::scope) every undefined variable.
//! Integer overflow is an error here (as in Nix 2.20 and later), not the
//! silent wrap-around of older Nix.

use std::cell::{Cell, RefCell};
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use rowan::TextRange;

use super::budget::Budget;
use super::ir::{AttrPath, BinOp, EntryValue, Expr, ExprKind, Literal, SetDef, StrPart};
use super::value::{Attr, Attrs, CompactString, Kind, Value};

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

/// A value not yet computed. Literals that need no scope (most of a
/// fleet: numbers, plain strings and paths) are kept as their expression
/// and cost no allocation until read.
#[derive(Clone)]
enum Thunk<'a> {
    Shared(Rc<RefCell<State<'a>>>),
    Literal(&'a Expr),
    /// A number or string inside a literal read lazily, as
    /// [`Thunk::Literal`].
    Value(&'a Value),
}

enum State<'a> {
    Pending(Code<'a>, Env<'a>),
    /// Being forced right now: forcing it again is infinite recursion.
    Forcing(TextRange),
    Done(Lazy<'a>),
}

#[derive(Clone, Copy)]
enum Code<'a> {
    Expr(&'a Expr),
    Set(&'a SetDef),
    /// `inherit (from) name;`
    InheritFrom {
        from: &'a Expr,
        name: &'a str,
        span: TextRange,
    },
    /// `inherit name;` with nothing to inherit (the scope check refuses
    /// that first; this fails when forced).
    Unbound {
        name: &'a str,
        span: TextRange,
    },
    /// A value inside a literal read lazily ([`Evaluator::lazy_value`]).
    Value {
        v: &'a Value,
        nested: bool,
    },
}

#[derive(Clone)]
struct Lazy<'a> {
    v: LV<'a>,
    span: TextRange,
}

/// A lazy attribute set: sorted by name in one allocation, names borrowed
/// from the expression tree (no copy per attribute).
#[derive(Clone)]
struct LAttrs<'a>(Vec<(&'a str, (TextRange, Thunk<'a>))>);

impl<'a> LAttrs<'a> {
    fn get(&self, name: &str) -> Option<&(TextRange, Thunk<'a>)> {
        self.0
            .binary_search_by(|(n, _)| (*n).cmp(name))
            .ok()
            .map(|i| &self.0[i].1)
    }
    fn len(&self) -> usize {
        self.0.len()
    }
    fn keys(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.0.iter().map(|(n, _)| *n)
    }
    fn values(&self) -> impl Iterator<Item = &(TextRange, Thunk<'a>)> {
        self.0.iter().map(|(_, v)| v)
    }
    /// `self // other`: every name of both, `other`'s value where both have
    /// one.
    fn update(&self, other: &Self) -> Self {
        let (mut a, mut b) = (self.0.iter().peekable(), other.0.iter().peekable());
        let mut out = Vec::with_capacity(self.len() + other.len());
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) => match x.0.cmp(y.0) {
                    std::cmp::Ordering::Less => a.next(),
                    std::cmp::Ordering::Greater => b.next(),
                    std::cmp::Ordering::Equal => {
                        a.next();
                        b.next()
                    }
                },
                (Some(_), None) => a.next(),
                (None, Some(_)) => b.next(),
                (None, None) => break,
            };
            out.extend(next.cloned());
        }
        LAttrs(out)
    }
}

#[derive(Clone)]
enum LV<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Rc<str>),
    Path(Rc<PathBuf>),
    List(Rc<Vec<Thunk<'a>>>),
    Attrs(Rc<LAttrs<'a>>),
}

impl LV<'_> {
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

fn done(v: LV<'_>, span: TextRange) -> Thunk<'_> {
    Thunk::Shared(Rc::new(RefCell::new(State::Done(Lazy { v, span }))))
}

fn pending<'a>(code: Code<'a>, env: &Env<'a>) -> Thunk<'a> {
    Thunk::Shared(Rc::new(RefCell::new(State::Pending(code, env.clone()))))
}

/// `e` to be evaluated later in `env`.
fn delay<'a>(e: &'a Expr, env: &Env<'a>) -> Thunk<'a> {
    let literal_parts = |parts: &[StrPart]| parts.iter().all(|p| matches!(p, StrPart::Literal(_)));
    match &e.kind {
        ExprKind::Int(_) | ExprKind::Float(_) | ExprKind::PlainStr(_) => Thunk::Literal(e),
        ExprKind::Str(parts) | ExprKind::Path(parts) if literal_parts(parts) => Thunk::Literal(e),
        _ => pending(Code::Expr(e), env),
    }
}

// ---------------------------------------------------------------------------
// Scopes

type Env<'a> = Rc<Scope<'a>>;

struct Scope<'a> {
    /// Sorted by name (a `rec` set's or `let`'s entries come sorted), so a
    /// name is found by a binary search: hashing each variable read cost
    /// more than the search on a fleet whose hosts read `let` values.
    vars: RefCell<Vec<(&'a str, Thunk<'a>)>>,
    parent: Option<Env<'a>>,
}

impl<'a> Scope<'a> {
    fn new(vars: Vec<(&'a str, Thunk<'a>)>, parent: Option<Env<'a>>) -> Scope<'a> {
        debug_assert!(vars.windows(2).all(|w| w[0].0 < w[1].0));
        Scope {
            vars: RefCell::new(vars),
            parent,
        }
    }

    fn lookup(&self, name: &str) -> Option<Thunk<'a>> {
        {
            let vars = self.vars.borrow();
            if let Ok(i) = vars.binary_search_by(|(n, _)| (*n).cmp(name)) {
                return Some(vars[i].1.clone());
            }
        }
        self.parent.as_ref().and_then(|p| p.lookup(name))
    }
}

// ---------------------------------------------------------------------------
// The evaluator

pub struct Evaluator<'a> {
    /// Absolute folder of the file: relative paths start here.
    base_dir: PathBuf,
    /// `base_dir` normalised, once (see [`Evaluator::path`]).
    normal_base: std::cell::OnceCell<PathBuf>,
    depth: Cell<usize>,
    /// What this evaluation may still spend.
    budget: Budget,
    /// Every `rec`/`let` scope: their thunks point back at them, so the
    /// cycles are broken by hand when the evaluator is done.
    rec_scopes: RefCell<Vec<Env<'a>>>,
    /// An empty scope, for literals (which read none).
    no_scope: Env<'a>,
    /// Whether thunks only `deep` holds are forced straight into values
    /// (off only in the test that proves both ways give the same value and
    /// spend the same budget).
    direct: bool,
}

impl Drop for Evaluator<'_> {
    fn drop(&mut self) {
        for scope in self.rec_scopes.borrow().iter() {
            scope.vars.borrow_mut().clear();
        }
    }
}

struct DepthGuard<'g>(&'g Cell<usize>);
impl Drop for DepthGuard<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

impl<'a> Evaluator<'a> {
    pub fn new(base_dir: &Path) -> Self {
        Evaluator {
            base_dir: base_dir.to_path_buf(),
            normal_base: std::cell::OnceCell::new(),
            depth: Cell::new(0),
            budget: Budget::default(),
            rec_scopes: RefCell::new(Vec::new()),
            no_scope: Rc::new(Scope::new(Vec::new(), None)),
            direct: true,
        }
    }

    /// Evaluates `expr` and forces the result completely, as `--strict` does.
    /// What this evaluator has spent of its budget.
    pub fn spent(&self) -> super::budget::Spent {
        self.budget.spent()
    }

    pub fn eval_strict(&self, expr: &'a Expr) -> Result<Value> {
        // The builtins were written nowhere: an empty span, replaced by
        // the name's own span wherever one is read (see `ExprKind::Var`).
        let nowhere = TextRange::empty(0.into());
        let builtins = vec![
            ("false", done(LV::Bool(false), nowhere)),
            ("null", done(LV::Null, nowhere)),
            ("true", done(LV::Bool(true), nowhere)),
        ];
        let env = Rc::new(Scope::new(builtins, None));
        if self.direct {
            // Plain data at the top (a fleet without `let` values in its
            // hosts): its value is taken, not rebuilt. A `let` around it
            // costs its step; its bindings are never read.
            match &expr.kind {
                ExprKind::Literal(lit) => return self.strict_literal(lit),
                ExprKind::Let(_, body) => {
                    if let ExprKind::Literal(lit) = &body.kind {
                        drop(self.enter(expr.span)?);
                        return self.strict_literal(lit);
                    }
                }
                _ => {}
            }
        }
        let v = self.eval(expr, &env)?;
        self.deep(v)
    }

    /// A literal's value, taken from the tree (each is read once: every
    /// expression but an `inherit (from)`, where the parser makes none, is
    /// evaluated at most once, and only `delay`'s uncached literals are
    /// read twice, which a `Literal` never is). It spends what evaluating
    /// and forcing its expressions does: all at once when that stays
    /// within the limits, else value by value, to fail where they would.
    fn strict_literal(&self, lit: &'a Literal) -> Result<Value> {
        let value = lit.take().ok_or_else(|| read_twice(lit))?;
        let deepest = self.depth.get().saturating_add(lit.height as usize);
        if !(deepest <= MAX_DEPTH && self.budget.spend_all(lit.cost)) {
            self.charge(&value, lit.nested)?;
        }
        Ok(value)
    }

    /// Spends what `strict` spends on the expression `v` was read from, in
    /// the same order: `nested` for a set that is an attribute's value,
    /// which is bound without an evaluation step.
    fn charge(&self, v: &Value, nested: bool) -> Result<()> {
        let span = v.span;
        if !nested {
            // What `eval` spends.
            let _g = self.enter(span)?;
            if let Kind::List(items) = &v.kind {
                self.budget.values(items.len(), span)?;
            }
        }
        // What `deep` spends.
        let _g = self.enter(span)?;
        self.budget.values(1, span)?;
        match &v.kind {
            Kind::Str(s) => self.budget.bytes(s.len(), span)?,
            Kind::Path(p) => self.budget.bytes(p.as_os_str().len(), span)?,
            Kind::List(items) => {
                for item in items {
                    self.charge(item, false)?;
                }
            }
            Kind::Attrs(attrs) => {
                for attr in attrs.values() {
                    self.charge(&attr.value, is_set(&attr.value))?;
                }
            }
            Kind::Null | Kind::Bool(_) | Kind::Int(_) | Kind::Float(_) => {}
        }
        Ok(())
    }

    /// A literal's value read lazily, one level at a time, as `eval` reads
    /// the expression it stands for (spending the same): its items and
    /// attributes are thunks over the values below, its names borrowed.
    fn lazy_value(&self, v: &'a Value, nested: bool) -> Result<Lazy<'a>> {
        let span = v.span;
        let _g = match nested {
            true => None,
            false => Some(self.enter(span)?),
        };
        let lv = match &v.kind {
            Kind::Null => LV::Null,
            Kind::Bool(b) => LV::Bool(*b),
            Kind::Int(i) => LV::Int(*i),
            Kind::Float(f) => LV::Float(*f),
            Kind::Str(s) => {
                let s: &str = s.as_ref();
                LV::Str(s.into())
            }
            Kind::Path(p) => LV::Path(Rc::new(p.to_path_buf())),
            Kind::List(items) => {
                self.budget.values(items.len(), span)?;
                LV::List(Rc::new(
                    items.iter().map(|i| self.value_thunk(i, false)).collect(),
                ))
            }
            Kind::Attrs(attrs) => {
                let attrs = attrs.iter().map(|(name, attr)| {
                    let name: &str = name.as_ref();
                    let thunk = self.value_thunk(&attr.value, is_set(&attr.value));
                    (name, (attr.name_span, thunk))
                });
                LV::Attrs(Rc::new(LAttrs(attrs.collect())))
            }
        };
        Ok(Lazy { v: lv, span })
    }

    /// What `delay` would make of the expression `v` was read from:
    /// numbers and strings uncached, anything else a thunk.
    fn value_thunk(&self, v: &'a Value, nested: bool) -> Thunk<'a> {
        match v.kind {
            Kind::Int(_) | Kind::Float(_) | Kind::Str(_) => Thunk::Value(v),
            _ => pending(Code::Value { v, nested }, &self.no_scope),
        }
    }

    fn enter(&self, span: TextRange) -> Result<DepthGuard<'_>> {
        self.budget.step(span)?;
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

    /// Forces everything below `v` into a [`Value`]. Where this is the only
    /// holder of a list or set, each thunk is dropped as soon as it has been
    /// converted, so the lazy form shrinks as the strict one grows.
    fn deep(&self, v: Lazy<'a>) -> Result<Value> {
        let _g = self.enter(v.span)?;
        self.budget.values(1, v.span)?;
        let kind = match v.v {
            LV::Null => Kind::Null,
            LV::Bool(b) => Kind::Bool(b),
            LV::Int(i) => Kind::Int(i),
            LV::Float(f) => Kind::Float(f),
            LV::Str(s) => {
                self.budget.bytes(s.len(), v.span)?;
                Kind::Str((&*s).into())
            }
            LV::Path(p) => {
                self.budget.bytes(p.as_os_str().len(), v.span)?;
                Kind::Path(p.as_path().into())
            }
            LV::List(items) => {
                let items = Rc::try_unwrap(items).unwrap_or_else(|shared| (*shared).clone());
                Kind::try_list(items.into_iter().map(|t| self.deep_thunk(t)))?
            }
            LV::Attrs(attrs) => {
                let attrs = Rc::try_unwrap(attrs).unwrap_or_else(|shared| (*shared).clone());
                let mut out = Vec::with_capacity(attrs.len());
                for (name, (name_span, t)) in attrs.0 {
                    let value = self.deep_thunk(t)?;
                    out.push((name.into(), Attr { name_span, value }));
                }
                Kind::Attrs(Attrs::from_sorted(out))
            }
        };
        Ok(Value { kind, span: v.span })
    }

    fn deep_thunk(&self, t: Thunk<'a>) -> Result<Value> {
        if let Some((code, env)) = self.only_holder(&t) {
            return match code {
                Code::Expr(e) => self.strict(e, &env),
                Code::Set(def) => self.strict_set(def, &env),
                Code::Value { v, nested } => {
                    self.charge(v, nested)?;
                    Ok(v.clone())
                }
                _ => Err(EvalError::new(
                    code_span(&code),
                    "internal error: thunk kind",
                )),
            };
        }
        let v = self.force(&t)?;
        drop(t);
        self.deep(v)
    }

    /// What `t` computes, when forcing it and then `deep` on the result
    /// may be replaced by [`Evaluator::strict`]: a literal scalar (never
    /// cached), or an expression or non-`rec` set not yet forced that
    /// nothing but the caller holds. Nothing else can then see it being
    /// computed (no scope holds it, so it cannot be forced again from
    /// inside), and nothing reads its cached value afterwards.
    fn only_holder(&self, t: &Thunk<'a>) -> Option<(Code<'a>, Env<'a>)> {
        if !self.direct {
            return None;
        }
        let shared = match t {
            Thunk::Literal(e) => return Some((Code::Expr(e), self.no_scope.clone())),
            Thunk::Value(v) => {
                let code = Code::Value { v, nested: false };
                return Some((code, self.no_scope.clone()));
            }
            Thunk::Shared(shared) => shared,
        };
        if Rc::strong_count(shared) != 1 {
            return None;
        }
        match &*shared.try_borrow().ok()? {
            State::Pending(code @ (Code::Expr(_) | Code::Value { .. }), env) => {
                Some((*code, env.clone()))
            }
            State::Pending(code @ Code::Set(def), env) if !def.rec => Some((*code, env.clone())),
            _ => None,
        }
    }

    /// `e` in `env`, forced completely: what `deep` gives for a thunk of
    /// `e` that only it holds. Lists and non-`rec` sets are built straight
    /// into values (no thunks, no lazy sets, strings copied once); anything
    /// else is evaluated and forced as usual. Either way it spends what
    /// forcing (through `eval`) and `deep` spend, step for step and in the
    /// same order, so the budget and depth limits trip where they always
    /// did.
    fn strict(&self, e: &'a Expr, env: &Env<'a>) -> Result<Value> {
        if let ExprKind::Literal(lit) = &e.kind {
            return self.strict_literal(lit);
        }
        let span = e.span;
        // Straight into the value's string (most are short and stored
        // inline), not through a copy on the heap.
        let literal_text = |parts: &[StrPart]| match parts {
            [] => Some(CompactString::default()),
            [StrPart::Literal(l)] => Some(l.clone()),
            _ => None,
        };
        let direct = match &e.kind {
            ExprKind::Set(def) => !def.rec,
            ExprKind::Str(parts) | ExprKind::Path(parts) => {
                parts.iter().all(|p| matches!(p, StrPart::Literal(_)))
            }
            ExprKind::Int(_) | ExprKind::Float(_) | ExprKind::List(_) | ExprKind::PlainStr(_) => {
                true
            }
            _ => false,
        };
        if !direct {
            let v = self.eval(e, env)?;
            return self.deep(v);
        }
        {
            // What `eval` spends.
            let _g = self.enter(span)?;
            if let ExprKind::List(items) = &e.kind {
                self.budget.values(items.len(), span)?;
            }
        }
        if let ExprKind::Set(def) = &e.kind {
            return self.strict_set(def, env);
        }
        // What `deep` spends.
        let _g = self.enter(span)?;
        self.budget.values(1, span)?;
        let kind = match &e.kind {
            ExprKind::Int(i) => Kind::Int(*i),
            ExprKind::Float(f) => Kind::Float(*f),
            ExprKind::Str(parts) => {
                let s = match literal_text(parts) {
                    Some(s) => s,
                    None => self.interpolate(parts, env)?.into(),
                };
                self.budget.bytes(s.len(), span)?;
                Kind::Str(s)
            }
            ExprKind::PlainStr(text) => {
                self.budget.bytes(text.len(), span)?;
                Kind::Str(text.clone())
            }
            ExprKind::Path(parts) => {
                let p = self.path(parts, env)?;
                self.budget.bytes(p.as_os_str().len(), span)?;
                Kind::Path(p.into())
            }
            // Each item would be a thunk only this list holds.
            ExprKind::List(items) => {
                Kind::try_list(items.iter().map(|item| self.strict(item, env)))?
            }
            _ => return Err(EvalError::new(span, "internal error: not plain data")),
        };
        Ok(Value { kind, span })
    }

    /// [`Evaluator::strict`] for a non-`rec` set that `force` binds without
    /// `eval` (an entry's nested set): what `bind` would make of each entry,
    /// forced and converted in order, spending only what `deep` spends.
    fn strict_set(&self, def: &'a SetDef, env: &Env<'a>) -> Result<Value> {
        let span = def.span;
        let _g = self.enter(span)?;
        self.budget.values(1, span)?;
        let mut out = Vec::with_capacity(def.entries.len());
        for (name, entry) in def.entries.iter() {
            let value = match &entry.value {
                EntryValue::Expr(e) => self.strict(e, env)?,
                EntryValue::Nested(set) if !set.rec => self.strict_set(set, env)?,
                EntryValue::Nested(set) => {
                    let v = self.eval_set(set, env)?;
                    self.deep(v)?
                }
                // A thunk of an enclosing scope: shared, forced as usual.
                EntryValue::InheritVar => match env.lookup(name) {
                    Some(t) => self.deep_thunk(t)?,
                    None => {
                        let message = format!("undefined variable '{name}'");
                        return Err(EvalError::new(entry.name_span, message));
                    }
                },
                EntryValue::InheritFrom(from) => {
                    let base = self.eval(from, env)?;
                    let v = self.select_one(&base, name, entry.name_span)?;
                    self.deep(v)?
                }
            };
            let name_span = entry.name_span;
            out.push((name.as_str().into(), Attr { name_span, value }));
        }
        Ok(Value {
            kind: Kind::Attrs(Attrs::from_sorted(out)),
            span,
        })
    }

    fn force(&self, t: &Thunk<'a>) -> Result<Lazy<'a>> {
        let t = match t {
            Thunk::Shared(t) => t,
            // A literal reads no variable: an empty scope will do.
            Thunk::Literal(e) => return self.eval(e, &self.no_scope),
            Thunk::Value(v) => return self.lazy_value(v, false),
        };
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
        let result = match code {
            Code::Expr(e) => self.eval(e, &env),
            Code::Set(def) => self.eval_set(def, &env),
            Code::InheritFrom { from, name, span } => {
                let base = self.eval(from, &env)?;
                self.select_one(&base, name, span)
            }
            Code::Unbound { name, span } => {
                Err(EvalError::new(span, format!("undefined variable '{name}'")))
            }
            Code::Value { v, nested } => self.lazy_value(v, nested),
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

    fn eval(&self, expr: &'a Expr, env: &Env<'a>) -> Result<Lazy<'a>> {
        if let ExprKind::Literal(lit) = &expr.kind {
            let v = lit.share().ok_or_else(|| read_twice(lit))?;
            return self.lazy_value(v, lit.nested);
        }
        let span = expr.span;
        let _g = self.enter(span)?;
        let v = match &expr.kind {
            ExprKind::Int(i) => LV::Int(*i),
            ExprKind::Float(f) => LV::Float(*f),
            ExprKind::Str(parts) => LV::Str(self.interpolate(parts, env)?.into()),
            ExprKind::PlainStr(text) => LV::Str(text.as_str().into()),
            ExprKind::Path(parts) => LV::Path(Rc::new(self.path(parts, env)?)),
            ExprKind::Var(name) => {
                let t = env
                    .lookup(name)
                    .ok_or_else(|| EvalError::new(span, format!("undefined variable '{name}'")))?;
                let mut v = self.force(&t)?;
                if v.span.is_empty() {
                    // `true`, `false`, `null`: reported where they are written.
                    v.span = span;
                }
                return Ok(v);
            }
            ExprKind::List(items) => {
                self.budget.values(items.len(), span)?;
                LV::List(Rc::new(items.iter().map(|e| delay(e, env)).collect()))
            }
            ExprKind::Set(def) => return self.eval_set(def, env),
            ExprKind::Let(def, body) => {
                let (scope, _) = self.bind(def, env);
                return self.eval(body, &scope);
            }
            ExprKind::Select {
                base,
                path,
                default,
            } => return self.select(base, path, default.as_deref(), env),
            ExprKind::HasAttr { base, path } => LV::Bool(self.has_attr(base, path, env)?),
            ExprKind::Binary(op, lhs, rhs) => return self.binop(*op, lhs, rhs, span, env),
            ExprKind::Not(operand) => {
                let v = self.eval(operand, env)?;
                LV::Bool(!self.expect_bool(&v)?)
            }
            ExprKind::Negate(operand) => match self.eval(operand, env)?.v {
                LV::Int(i) => i.checked_neg().map(LV::Int).ok_or_else(|| overflow(span))?,
                LV::Float(f) => LV::Float(-f),
                ref other => {
                    return Err(EvalError::new(
                        span,
                        format!("cannot negate {}", other.type_name()),
                    ))
                }
            },
            ExprKind::Literal(_) => return Err(EvalError::new(span, "internal error: literal")),
            ExprKind::If(cond, then, otherwise) => {
                let cond = self.eval(cond, env)?;
                let branch = if self.expect_bool(&cond)? {
                    then
                } else {
                    otherwise
                };
                return self.eval(branch, env);
            }
        };
        Ok(Lazy { v, span })
    }

    fn interpolate(&self, parts: &'a [StrPart], env: &Env<'a>) -> Result<String> {
        let mut out = String::new();
        for part in parts {
            match part {
                StrPart::Literal(l) => out.push_str(l),
                StrPart::Interpolation(e) => {
                    let v = self.eval(e, env)?;
                    let s = self.coerce_to_string(&v)?;
                    self.budget.bytes(s.len(), e.span)?;
                    out.push_str(&s);
                }
            }
        }
        Ok(out)
    }

    fn coerce_to_string(&self, v: &Lazy<'a>) -> Result<Rc<str>> {
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

    fn path(&self, parts: &'a [StrPart], env: &Env<'a>) -> Result<PathBuf> {
        let text = self.interpolate(parts, env)?;
        Ok(self.resolve(&text))
    }

    /// A path literal's text as the absolute, normalised path it names.
    fn resolve(&self, text: &str) -> PathBuf {
        // `./a/b` whose names are all plain (no `.`, `..` or empty one):
        // the normalised folder and the names as written, without walking
        // the folder's components again for each of a fleet's paths.
        if let Some(rest) = text.strip_prefix("./").filter(|r| plain_names(r)) {
            let base = self.normal_base.get_or_init(|| normalize(&self.base_dir));
            return base.join(rest);
        }
        let joined = if text.starts_with('/') {
            PathBuf::from(text)
        } else {
            self.base_dir.join(text)
        };
        normalize(&joined)
    }

    /// Binds the entries of a set definition. For `rec` sets and `let` (whose
    /// definitions are `rec`), the entries see each other through a new
    /// scope; `inherit x;` always looks in the enclosing scope.
    fn bind(&self, def: &'a SetDef, env: &Env<'a>) -> (Env<'a>, LAttrs<'a>) {
        let rec = def.rec;
        let scope = if rec {
            Rc::new(Scope::new(Vec::new(), Some(env.clone())))
        } else {
            env.clone()
        };
        let mut attrs = LAttrs(Vec::with_capacity(def.entries.len()));
        for (name, entry) in def.entries.iter() {
            let thunk = match &entry.value {
                EntryValue::Expr(e) => delay(e, &scope),
                EntryValue::Nested(set) => pending(Code::Set(set), &scope),
                EntryValue::InheritVar => match env.lookup(name) {
                    Some(t) => t,
                    // Unreachable after the scope check; fail when forced.
                    None => pending(
                        Code::Unbound {
                            name,
                            span: entry.name_span,
                        },
                        env,
                    ),
                },
                EntryValue::InheritFrom(from) => pending(
                    Code::InheritFrom {
                        from,
                        name,
                        span: entry.name_span,
                    },
                    &scope,
                ),
            };
            // In the definition's (sorted) order, so the set stays sorted.
            attrs.0.push((name.as_str(), (entry.name_span, thunk)));
        }
        if rec {
            let mut vars = scope.vars.borrow_mut();
            vars.extend(attrs.0.iter().map(|(name, (_, t))| (*name, t.clone())));
            debug_assert!(vars.windows(2).all(|w| w[0].0 < w[1].0));
            self.rec_scopes.borrow_mut().push(scope.clone());
        }
        (scope, attrs)
    }

    fn eval_set(&self, def: &'a SetDef, env: &Env<'a>) -> Result<Lazy<'a>> {
        let (_, attrs) = self.bind(def, env);
        Ok(Lazy {
            v: LV::Attrs(Rc::new(attrs)),
            span: def.span,
        })
    }

    fn select_one(&self, base: &Lazy<'a>, name: &str, span: TextRange) -> Result<Lazy<'a>> {
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

    fn select(
        &self,
        base: &'a Expr,
        path: &'a AttrPath,
        default: Option<&'a Expr>,
        env: &Env<'a>,
    ) -> Result<Lazy<'a>> {
        let mut cur = self.eval(base, env)?;
        for (name, span) in path.iter() {
            let found = match &cur.v {
                LV::Attrs(attrs) => attrs.get(name).map(|(_, t)| t.clone()),
                _ => None,
            };
            match (found, default) {
                (Some(t), _) => cur = self.force(&t)?,
                (None, Some(default)) => return self.eval(default, env),
                (None, None) => return self.select_one(&cur, name, span),
            }
        }
        Ok(cur)
    }

    fn has_attr(&self, base: &'a Expr, path: &'a AttrPath, env: &Env<'a>) -> Result<bool> {
        let mut cur = self.eval(base, env)?;
        for (name, _) in path.iter() {
            let next = match &cur.v {
                LV::Attrs(attrs) => attrs.get(name).map(|(_, t)| t.clone()),
                _ => None,
            };
            match next {
                Some(t) => cur = self.force(&t)?,
                None => return Ok(false),
            }
        }
        Ok(true)
    }

    fn expect_bool(&self, v: &Lazy<'a>) -> Result<bool> {
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

    fn binop(
        &self,
        kind: BinOp,
        lhs: &'a Expr,
        rhs: &'a Expr,
        span: TextRange,
        env: &Env<'a>,
    ) -> Result<Lazy<'a>> {
        let lhs = self.eval(lhs, env)?;
        // Boolean operators short-circuit, as in Nix.
        let short = match kind {
            BinOp::And => Some(!self.expect_bool(&lhs)?),
            BinOp::Or => Some(self.expect_bool(&lhs)?),
            BinOp::Implication => Some(!self.expect_bool(&lhs)?),
            _ => None,
        };
        if let Some(true) = short {
            let result = !matches!(kind, BinOp::And);
            return Ok(Lazy {
                v: LV::Bool(result),
                span,
            });
        }
        let rhs = self.eval(rhs, env)?;
        let v = match kind {
            BinOp::And | BinOp::Or | BinOp::Implication => LV::Bool(self.expect_bool(&rhs)?),
            BinOp::Concat => match (&lhs.v, &rhs.v) {
                (LV::List(a), LV::List(b)) => {
                    self.budget.values(a.len() + b.len(), span)?;
                    LV::List(Rc::new(a.iter().chain(b.iter()).cloned().collect()))
                }
                _ => return Err(type_mismatch(span, "++", "lists", &lhs, &rhs)),
            },
            BinOp::Update => match (&lhs.v, &rhs.v) {
                (LV::Attrs(a), LV::Attrs(b)) => {
                    self.budget.values(a.len() + b.len(), span)?;
                    LV::Attrs(Rc::new(a.update(b)))
                }
                _ => return Err(type_mismatch(span, "//", "sets", &lhs, &rhs)),
            },
            BinOp::Add => self.add(&lhs, &rhs, span)?,
            BinOp::Sub | BinOp::Mul | BinOp::Div => arith(kind, &lhs, &rhs, span)?,
            BinOp::Equal => LV::Bool(self.equal(&lhs, &rhs)?),
            BinOp::NotEqual => LV::Bool(!self.equal(&lhs, &rhs)?),
            BinOp::Less => LV::Bool(less(&lhs, &rhs, span)?),
            BinOp::More => LV::Bool(less(&rhs, &lhs, span)?),
            BinOp::LessOrEq => LV::Bool(!less(&rhs, &lhs, span)?),
            BinOp::MoreOrEq => LV::Bool(!less(&lhs, &rhs, span)?),
        };
        Ok(Lazy { v, span })
    }

    fn add(&self, lhs: &Lazy<'a>, rhs: &Lazy<'a>, span: TextRange) -> Result<LV<'a>> {
        Ok(match (&lhs.v, &rhs.v) {
            (LV::Str(a), LV::Str(b)) => {
                self.budget.bytes(a.len() + b.len(), span)?;
                LV::Str(format!("{a}{b}").into())
            }
            (LV::Path(a), LV::Str(b)) => {
                self.budget.bytes(a.as_os_str().len() + b.len(), span)?;
                LV::Path(Rc::new(normalize(Path::new(&format!("{}{b}", a.display())))))
            }
            (LV::Path(a), LV::Path(b)) => {
                self.budget
                    .bytes(a.as_os_str().len() + b.as_os_str().len(), span)?;
                LV::Path(Rc::new(normalize(Path::new(&format!(
                    "{}{}",
                    a.display(),
                    b.display()
                )))))
            }
            (LV::Str(_), LV::Path(_)) => {
                return Err(EvalError::new(
                    span,
                    "adding a path to a string copies it into the Nix store; that is outside the supported subset",
                ))
            }
            _ => return arith(BinOp::Add, lhs, rhs, span),
        })
    }

    /// `==` as Nix defines it: numbers compare by value (1 == 1.0), sets and
    /// lists element by element, forcing only as far as needed.
    fn equal(&self, a: &Lazy<'a>, b: &Lazy<'a>) -> Result<bool> {
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

fn code_span(code: &Code<'_>) -> TextRange {
    match code {
        Code::Expr(e) => e.span,
        Code::Set(s) => s.span,
        Code::InheritFrom { span, .. } | Code::Unbound { span, .. } => *span,
        Code::Value { v, .. } => v.span,
    }
}

fn read_twice(lit: &Literal) -> EvalError {
    EvalError::new(lit.span, "internal error: a literal read twice")
}

fn is_set(v: &Value) -> bool {
    matches!(v.kind, Kind::Attrs(_))
}

fn missing_attr(name: &str, attrs: &LAttrs<'_>, span: TextRange) -> EvalError {
    let err = EvalError::new(span, format!("attribute '{name}' missing"));
    match crate::diag::did_you_mean(name, attrs.keys()) {
        Some(s) => err.with_help(format!("did you mean '{s}'?")),
        None => err,
    }
}

fn overflow(span: TextRange) -> EvalError {
    EvalError::new(span, "integer overflow").with_help(
        "the result does not fit in a 64-bit integer (older Nix silently wraps it around)",
    )
}

fn type_mismatch(span: TextRange, op: &str, want: &str, a: &Lazy<'_>, b: &Lazy<'_>) -> EvalError {
    EvalError::new(
        span,
        format!(
            "'{op}' needs two {want}, got {} and {}",
            a.v.type_name(),
            b.v.type_name()
        ),
    )
}

fn arith<'a>(kind: BinOp, a: &Lazy<'a>, b: &Lazy<'a>, span: TextRange) -> Result<LV<'a>> {
    let name = match kind {
        BinOp::Add => "add",
        BinOp::Sub => "subtract",
        BinOp::Mul => "multiply",
        _ => "divide",
    };
    match (&a.v, &b.v) {
        (LV::Int(x), LV::Int(y)) => {
            let (x, y) = (*x, *y);
            let r = match kind {
                BinOp::Add => x.checked_add(y),
                BinOp::Sub => x.checked_sub(y),
                BinOp::Mul => x.checked_mul(y),
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
                BinOp::Add => x + y,
                BinOp::Sub => x - y,
                BinOp::Mul => x * y,
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

fn as_f64(v: &LV<'_>) -> f64 {
    match v {
        LV::Int(i) => *i as f64,
        LV::Float(f) => *f,
        _ => 0.0,
    }
}

fn less(a: &Lazy<'_>, b: &Lazy<'_>, span: TextRange) -> Result<bool> {
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

/// Whether `rest` is names separated by single `/`, none of them `.` or
/// `..` (what [`normalize`] leaves as it is).
fn plain_names(rest: &str) -> bool {
    rest.split('/').all(|n| !matches!(n, "" | "." | ".."))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::fast_parse;

    type Run = (Result<Value>, crate::fleet::budget::Spent);

    /// The value and the budget spent, with plain data taken straight to
    /// values or not, and with the fast parser's literals or the
    /// expressions they stand for.
    fn run_with(text: &str, direct: bool, literals: bool) -> Run {
        let expr = match fast_parse::parse(text) {
            Some(e) if literals => e,
            Some(e) => e.without_literals(),
            None => {
                let root = crate::fleet::syntax::parse(text).expect("parses");
                let lowered = crate::fleet::lower::lower(&root.expr().expect("expr"));
                lowered.expect("lowers")
            }
        };
        let mut ev = Evaluator::new(Path::new("/fleet"));
        ev.direct = direct;
        let v = ev.eval_strict(&expr);
        (v, ev.budget.spent())
    }

    /// [`run_with`] every way, which must agree; the direct way with
    /// literals.
    fn run(text: &str, direct: bool) -> Run {
        let want = run_with(text, direct, true);
        for (d, l) in [(true, false), (false, true), (false, false)] {
            let got = run_with(text, d, l);
            assert_eq!(got.0, want.0, "{text}: direct {d}, literals {l}");
            assert_eq!(got.1, want.1, "{text}: direct {d}, literals {l}");
        }
        want
    }

    proptest::proptest! {
        /// A path literal resolves as the full walk of its folder and
        /// its text gives it, plain names or not, whatever the folder's
        /// spelling.
        #[test]
        fn paths_resolve_as_normalized_joins(
            base in proptest::sample::select(vec!["/", "/f", "/a/b/../f", "/a/./f", "/a/f/", "/f/.."]),
            lead in proptest::sample::select(vec!["./", "../", "/", "", "./../"]),
            names in proptest::collection::vec(
                proptest::sample::select(vec!["a", "b.nix", ".", "..", "", "x-y_1"]),
                0..5,
            ),
        ) {
            let text = format!("{lead}{}", names.join("/"));
            let evaluator = Evaluator::new(Path::new(base));
            let want = if text.starts_with('/') {
                normalize(Path::new(&text))
            } else {
                normalize(&Path::new(base).join(&text))
            };
            proptest::prop_assert_eq!(evaluator.resolve(&text), want, "{} in {}", text, base);
        }

        /// Every name of a `let` and a `rec` set reads its own value,
        /// whatever order the bindings are written in (the scopes are
        /// searched as sorted lists).
        #[test]
        fn every_bound_name_reads_its_own_value(
            names in proptest::collection::btree_set("[a-d]{1,3}|[a-z][a-z0-9_]{0,6}", 1..24),
            reversed in proptest::bool::ANY,
        ) {
            const RESERVED: &[&str] = &[
                "out", "if", "then", "else", "in", "let", "or", "rec", "with", "assert",
                "inherit", "true", "false", "null",
            ];
            let mut names: Vec<&String> =
                names.iter().filter(|n| !RESERVED.contains(&n.as_str())).collect();
            proptest::prop_assume!(!names.is_empty());
            if reversed {
                names.reverse();
            }
            let binds: String = names.iter().enumerate().map(|(i, n)| format!("{n} = {i}; ")).collect();
            let reads: String = names.iter().map(|n| format!("{n} ")).collect();
            let inherit: String = names.iter().map(|n| format!("{n} ")).collect();
            let text = format!("let {binds}in rec {{ out = [ {reads}]; inherit {inherit}; }}");
            let value = run(&text, true).0.expect("it evaluates");
            let attrs = value.as_attrs().expect("a set");
            let out = attrs.get("out").expect("out");
            let Kind::List(items) = &out.value.kind else { panic!("a list") };
            for (i, (item, name)) in items.iter().zip(&names).enumerate() {
                proptest::prop_assert_eq!(&item.kind, &Kind::Int(i as i64), "{}", name);
                let inherited = attrs.get(name.as_str()).expect("inherited");
                proptest::prop_assert_eq!(&inherited.value.kind, &Kind::Int(i as i64));
            }
        }
    }

    #[test]
    fn literals_spend_and_fail_as_their_expressions() {
        for text in [
            "{ a = [ 1 2.5 \"s\" true null { b = [ ]; } ]; c = { d = { }; }; e.f = 1; }",
            "let l = [ { a = 1; } \"k\" ]; s = { x = true; }; in { h1 = l; h2 = l; t = s.x; u = s.x; eq = l == l; m = s // { y = 2; }; c = l ++ [ 3 ]; }",
            "let l = [ 1 ]; in { inherit ({ a = [ 1 ]; b = { c = 2; }; }) a b; d = l; }",
            "let s = { a = { b = [ 1 ]; }; }; in [ s.a s.a.b (s.a ? b) ]",
            "{ a = [ 1 \"${toString}\" ]; }",
            "[ ''\n  x\n'' \"\" ]",
        ] {
            // `run` checks that every way agrees (some of these fail).
            let _agreed = run(text, true);
        }
    }

    #[test]
    fn a_lone_string_reads_and_spends_as_its_list_of_parts() {
        // The fast parser keeps a string of one literal as `PlainStr`;
        // without literals it is written out as lower's `Str` of one part.
        let text = "let x = 1; s = \"abc\"; in { a = \"s\"; b = x; c = [ \"t\" x ]; d = s + \"d\"; e = { f = s; } // { g = \"h\"; }; i = \"\"; j = ''k''; l = \"${s}m\"; }";
        let expr = fast_parse::parse(text).expect("parses");
        let ExprKind::Let(_, body) = &expr.kind else {
            panic!("a let");
        };
        let ExprKind::Set(def) = &body.kind else {
            panic!("a set");
        };
        let a = def
            .entries
            .iter()
            .find(|(n, _)| n == "a")
            .map(|(_, e)| &e.value);
        assert!(
            matches!(a, Some(EntryValue::Expr(Expr { kind: ExprKind::PlainStr(s), .. })) if s == "s"),
            "{a:?}"
        );
        for direct in [true, false] {
            let (v, _) = run(text, direct);
            let v = v.expect("evaluates");
            let d = v.as_attrs().and_then(|a| a.get("d")).map(|a| &a.value.kind);
            assert!(matches!(d, Some(Kind::Str(s)) if s == "abcd"), "{d:?}");
        }
    }

    #[test]
    fn direct_path_spends_what_the_lazy_path_spends() {
        for text in [
            "let x = \"v\"; y = { z = 2; }; in { inherit x; inherit (y) z; s = \"a${x}b\"; n = { r = rec { p = 1; q = p; }; t = true; }; l = [ x (x + \"w\") [ y ] ]; m = y // { w = 1; }; }",
            "{ h = { a = 1; inherit b; }; }",
            "{ a = { b = 1 + \"s\"; }; c = 1; }",
            "let s = { a = 1; }; in { b = { inherit (s) c; }; }",
            "{ a = [ 1 (2 + []) ]; }",
            "let true = 1; in { a = true; b = [ null false ]; }",
        ] {
            let (fast, fast_spent) = run(text, true);
            let (slow, slow_spent) = run(text, false);
            assert_eq!(fast, slow, "{text}");
            assert_eq!(fast_spent, slow_spent, "{text}");
        }
        for text in [
            "{ a = 1; b = { c = [ 1 2.5 \"s\" ./x/../y { d = [ ]; } ]; }; e = \"\\n\"; }",
            "[ { a = 1; } [ 1 [ 2 ] ] ./p \"q\" ]",
            "let x = 1; in { h1 = { a = 1; b = [ \"k\" ]; }; h2 = { a = x; }; h3 = [ x { y = 2; } ]; }",
            "let s = { a = [ 1 2 ]; }; in { one = s; two = s // { b = { c = 3; }; }; }",
            "{ a.b = 1; a.c = { d = 2; }; r = rec { x = 1; y = { z = 2; }; }; }",
            "''\n  indented\n''",
        ] {
            let (fast, fast_spent) = run(text, true);
            let (slow, slow_spent) = run(text, false);
            assert_eq!(fast, slow, "{text}");
            assert!(fast.is_ok(), "{text}: {fast:?}");
            assert_eq!(fast_spent, slow_spent, "{text}");
        }
    }

    #[test]
    fn plain_data_trips_the_budget_where_the_lazy_path_does() {
        // One value over the budget's limit on values built.
        let n = crate::fleet::budget::MAX_VALUES as usize / 2;
        let text = format!("[ {} ]", "1 ".repeat(n));
        let (fast, _) = run(&text, true);
        let (slow, _) = run(&text, false);
        let err = fast.as_ref().err().map(|e| (e.span, e.message.clone()));
        assert!(err.is_some(), "the budget holds");
        assert_eq!(err, slow.err().map(|e| (e.span, e.message)));
    }
}
