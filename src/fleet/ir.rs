//! The expression tree the evaluator runs on: the data subset of Nix and
//! nothing else, with parentheses gone and attribute sets already merged
//! (`a.b = 1; a.c = 2;` is one nested set), as Nix's own parser leaves them.
//!
//! Two front ends build it: [`lower`](super::lower) from the rnix syntax
//! tree (every file; owns every syntax diagnostic) and
//! [`fast_parse`](super::fast_parse) straight from the text (the common,
//! well-formed case, several times faster). Each node keeps the text range
//! rnix gives the same expression, so diagnostics do not depend on which
//! front end ran.

use std::cell::{OnceCell, RefCell};
use std::rc::Rc;

use rowan::{TextRange, TextSize};
use rustc_hash::FxHashMap;

use super::budget::Spent;
use super::eval::EvalError;
use super::value::{Attr, Attrs, Kind, Value};

#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub span: TextRange,
    pub kind: ExprKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    Int(i64),
    Float(f64),
    /// A string, or a URI literal (a string with no parts to interpolate).
    Str(Vec<StrPart>),
    /// A string that is one literal, not empty: most strings, kept without
    /// the heap block of a list of parts (the fast parser's; lower gives
    /// `Str`).
    PlainStr(Ident),
    /// The path's text, absolute when it starts with `/`; relative paths
    /// are resolved against the file's folder by the evaluator.
    Path(Vec<StrPart>),
    /// A variable (also `true`, `false` and `null`, which can be shadowed).
    Var(Ident),
    List(Vec<Expr>),
    Set(Rc<SetDef>),
    Let(Rc<SetDef>, Box<Expr>),
    Select {
        base: Box<Expr>,
        path: AttrPath,
        default: Option<Box<Expr>>,
    },
    HasAttr {
        base: Box<Expr>,
        path: AttrPath,
    },
    Binary(BinOp, Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Negate(Box<Expr>),
    If(Box<Expr>, Box<Expr>, Box<Expr>),
    /// Plain data already turned into its value by the fast parser.
    Literal(Box<Literal>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum StrPart {
    /// Most strings are one short literal: held inline, no heap block.
    Literal(Ident),
    Interpolation(Expr),
}

/// A variable or attribute name in the tree: most are short enough
/// (`proxmox`, `vmid`, a host's name) to be held inline, without a heap
/// block of their own, as the `Value`'s names are.
pub type Ident = compact_str::CompactString;

/// A static attribute name and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Name {
    pub text: Ident,
    pub span: TextRange,
}

/// The attribute path of a select (`a.b.c`) or of `?`: its names, with
/// spans counted from where the path starts. A path written many times
/// over (`defaults.proxmox.cores` in every host) is then the same block
/// each time, and the fast parser keeps one per distinct text: a select's
/// path is 32 bytes a name, and a fleet can hold thousands of long ones.
#[derive(Clone)]
pub struct AttrPath {
    /// Where the first name is written.
    start: TextSize,
    /// The names, their spans relative to `start`: behind a thin pointer,
    /// so that a select stays as small as the largest other node.
    names: Rc<Box<[Name]>>,
}

impl AttrPath {
    /// The path of `names` (spans in the text, as written; not empty).
    pub fn new(names: &[Name]) -> AttrPath {
        let start = names.first().map_or(TextSize::from(0), |n| n.span.start());
        AttrPath {
            start,
            names: Rc::new(names.iter().map(|n| AttrPath::relative(n, start)).collect()),
        }
    }

    /// A path whose names (relative to `start`) another path already holds.
    pub(super) fn shared(start: TextSize, names: Rc<Box<[Name]>>) -> AttrPath {
        AttrPath { start, names }
    }

    /// `name` with its span counted from `start` (where its path begins).
    pub(super) fn relative(name: &Name, start: TextSize) -> Name {
        Name {
            text: name.text.clone(),
            span: name.span - start,
        }
    }

    /// Each name's text and its span in the text.
    pub fn iter(&self) -> impl Iterator<Item = (&str, TextRange)> {
        self.names
            .iter()
            .map(move |n| (n.text.as_str(), n.span + self.start))
    }
}

#[cfg(test)]
impl AttrPath {
    /// Whether the two paths share their names' block.
    pub fn same_block(&self, other: &AttrPath) -> bool {
        Rc::ptr_eq(&self.names, &other.names)
    }
}

impl PartialEq for AttrPath {
    fn eq(&self, other: &AttrPath) -> bool {
        self.iter().eq(other.iter())
    }
}

impl std::fmt::Debug for AttrPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Concat,
    Update,
    Add,
    Sub,
    Mul,
    Div,
    And,
    Or,
    Implication,
    Equal,
    NotEqual,
    Less,
    More,
    LessOrEq,
    MoreOrEq,
}

/// An attribute set or `let` bindings, merged; entries sorted by name and
/// stored in one exact-size allocation (a large fleet has tens of
/// thousands of small sets).
#[derive(Debug, Clone, PartialEq)]
pub struct SetDef {
    pub rec: bool,
    pub span: TextRange,
    /// No variable is read anywhere inside (see [`Expr::is_closed`]): set
    /// once, when the set is built, so the scope check can pass over a
    /// fleet's host without walking it.
    pub closed: bool,
    pub entries: Box<[(Ident, Entry)]>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub name_span: TextRange,
    pub value: EntryValue,
}

#[derive(Debug, Clone, PartialEq)]
pub enum EntryValue {
    Expr(Expr),
    Nested(Rc<SetDef>),
    /// `inherit name;`: the name from the enclosing scope.
    InheritVar,
    /// `inherit (from) name;`
    InheritFrom(Rc<Expr>),
}

/// Plain data the fast parser turned straight into the value the
/// evaluator would make of it: a list, or a set that is not `rec`, of
/// numbers, strings without interpolation, `true`, `false`, `null` (the
/// parser declines any file that rebinds them) and such lists and sets.
/// Most of a fleet is such data, and its value is smaller than its tree.
///
/// The evaluator takes the value (see `Evaluator::strict`) or, read
/// lazily, borrows it; either way it spends what evaluating the
/// expressions it stands for spends, counted here.
#[derive(Debug, Clone, PartialEq)]
pub struct Literal {
    /// The value, until the evaluator takes or shares it.
    owned: RefCell<Option<Value>>,
    /// The value once read lazily: lazy sets borrow their names from it.
    shared: OnceCell<Value>,
    pub span: TextRange,
    /// Whether this is a set written as an attribute's value (`a = { };`
    /// or `a.b = 1;`), which the evaluator binds without evaluating an
    /// expression: one step fewer than a set anywhere else.
    pub nested: bool,
    /// What evaluating the expressions and forcing their values spends.
    pub cost: Spent,
    /// Levels of values, for the evaluator's depth limit.
    pub height: u32,
}

/// Literals taller than this stay expression trees, so that walking a
/// literal's value recursively is as safe as walking a tree.
const MAX_LITERAL_HEIGHT: u32 = 1000;

impl Literal {
    /// The value, to keep; a copy when it was shared before (the evaluator
    /// reads each literal once, so that does not happen).
    pub fn take(&self) -> Option<Value> {
        self.owned.take().or_else(|| self.shared.get().cloned())
    }

    /// The value, to borrow for as long as the literal lives.
    pub fn share(&self) -> Option<&Value> {
        if self.shared.get().is_none() {
            let value = self.owned.take()?;
            // Empty: just checked.
            let _ = self.shared.set(value);
        }
        self.shared.get()
    }

    pub fn is_set(&self) -> bool {
        let owned = self.owned.borrow();
        let value = owned.as_ref().or(self.shared.get());
        value.is_some_and(|v| matches!(v.kind, Kind::Attrs(_)))
    }

    fn new(value: Value, nested: bool, cost: Spent, height: u32) -> Literal {
        Literal {
            span: value.span,
            owned: RefCell::new(Some(value)),
            shared: OnceCell::new(),
            nested,
            cost,
            height,
        }
    }

    /// `[ items ]` as a literal when every item is plain data
    /// ([`Expr::is_plain`]); `None` only if a literal item lost its value.
    pub fn list(span: TextRange, items: Vec<Expr>) -> Option<Result<Literal, Vec<Expr>>> {
        let height = items.iter().map(plain_height).max().unwrap_or(0) + 1;
        if height > MAX_LITERAL_HEIGHT || !items.iter().all(Expr::is_plain) {
            return Some(Err(items));
        }
        // What `eval` and `deep` spend on the list itself.
        let mut cost = Spent {
            steps: 2,
            values: 1 + items.len() as u64,
            bytes: 0,
        };
        let mut values = Vec::with_capacity(items.len());
        for item in items {
            let (value, c) = plain_value(item)?;
            cost = cost.plus(c);
            values.push(value);
        }
        let value = Value {
            kind: Kind::List(values.into_boxed_slice()),
            span,
        };
        Some(Ok(Literal::new(value, false, cost, height)))
    }

    /// A finished set as a literal when it is not `rec` and every entry is
    /// plain data; `nested` as for [`Literal::nested`].
    fn set(def: SetDef, nested: bool) -> Option<Result<Literal, SetDef>> {
        let plain = |(_, e): &(Ident, Entry)| match &e.value {
            EntryValue::Expr(e) => e.is_plain(),
            _ => false,
        };
        let height = def
            .entries
            .iter()
            .map(|(_, e)| match &e.value {
                EntryValue::Expr(e) => plain_height(e),
                _ => 0,
            })
            .max()
            .unwrap_or(0)
            + 1;
        if def.rec || height > MAX_LITERAL_HEIGHT || !def.entries.iter().all(plain) {
            return Some(Err(def));
        }
        // What `strict_set` spends on the set, and `eval` before it on a
        // set that is an expression.
        let mut cost = Spent {
            steps: if nested { 1 } else { 2 },
            values: 1,
            bytes: 0,
        };
        let mut out = Vec::with_capacity(def.entries.len());
        for (name, entry) in def.entries.into_vec() {
            let EntryValue::Expr(e) = entry.value else {
                return None;
            };
            let (value, c) = plain_value(e)?;
            cost = cost.plus(c);
            let attr = Attr {
                name_span: entry.name_span,
                value,
            };
            out.push((name, attr));
        }
        let value = Value {
            kind: Kind::Attrs(Attrs::from_sorted(out)),
            span: def.span,
        };
        Some(Ok(Literal::new(value, nested, cost, height)))
    }
}

/// Turns every set written as an attribute's value in `def` (at any
/// depth) that is plain data into a literal. Only for a set no path can
/// add to any more: one in an expression (a list item, an operand, the
/// file's body), or a finished `let`. `None` only if a literal lost its
/// value.
pub fn settle(def: &mut SetDef) -> Option<()> {
    for (_, entry) in def.entries.iter_mut() {
        let EntryValue::Nested(_) = &entry.value else {
            continue;
        };
        let EntryValue::Nested(set) = std::mem::replace(&mut entry.value, EntryValue::InheritVar)
        else {
            return None;
        };
        entry.value = match Rc::try_unwrap(set) {
            Ok(mut inner) => {
                settle(&mut inner)?;
                match Literal::set(inner, true)? {
                    Ok(lit) => EntryValue::Expr(Expr {
                        span: lit.span,
                        kind: ExprKind::Literal(Box::new(lit)),
                    }),
                    Err(inner) => EntryValue::Nested(Rc::new(inner)),
                }
            }
            Err(shared) => EntryValue::Nested(shared),
        };
    }
    Some(())
}

/// `e`, an expression no path can add to, with its plain data turned
/// into literals: the whole of it when it is a set of plain data.
pub fn settle_expr(e: Expr) -> Option<Expr> {
    let ExprKind::Set(set) = e.kind else {
        return Some(e);
    };
    let kind = match Rc::try_unwrap(set) {
        Ok(mut def) => {
            settle(&mut def)?;
            match Literal::set(def, false)? {
                Ok(lit) => ExprKind::Literal(Box::new(lit)),
                Err(def) => ExprKind::Set(Rc::new(def)),
            }
        }
        Err(shared) => ExprKind::Set(shared),
    };
    Some(Expr { span: e.span, kind })
}

/// The value of a plain expression ([`Expr::is_plain`]) and what
/// evaluating and forcing it spends where it is; `None` otherwise.
fn plain_value(e: Expr) -> Option<(Value, Spent)> {
    // A scalar: one step to evaluate, one to force, one value.
    let scalar = |bytes: usize| Spent {
        steps: 2,
        values: 1,
        bytes: bytes as u64,
    };
    let (kind, cost) = match e.kind {
        ExprKind::Int(i) => (Kind::Int(i), scalar(0)),
        ExprKind::Float(f) => (Kind::Float(f), scalar(0)),
        ExprKind::Str(mut parts) => {
            let text = match parts.pop() {
                None => Ident::default(),
                Some(StrPart::Literal(text)) if parts.is_empty() => text,
                Some(_) => return None,
            };
            let cost = scalar(text.len());
            (Kind::Str(text), cost)
        }
        ExprKind::PlainStr(text) => {
            let cost = scalar(text.len());
            (Kind::Str(text), cost)
        }
        ExprKind::Var(name) => match name.as_str() {
            "true" => (Kind::Bool(true), scalar(0)),
            "false" => (Kind::Bool(false), scalar(0)),
            "null" => (Kind::Null, scalar(0)),
            _ => return None,
        },
        ExprKind::Literal(lit) => return Some((lit.take()?, lit.cost)),
        _ => return None,
    };
    Some((Value { kind, span: e.span }, cost))
}

fn plain_height(e: &Expr) -> u32 {
    match &e.kind {
        ExprKind::Literal(lit) => lit.height,
        _ => 1,
    }
}

impl Expr {
    /// A value the fast parser may put in a literal: a number, a string
    /// without interpolation, `true`, `false`, `null` or a literal. (Not
    /// an empty string written as one empty part, as rnix gives some
    /// indented strings: its value could not tell the two apart.)
    pub fn is_plain(&self) -> bool {
        match &self.kind {
            ExprKind::Int(_) | ExprKind::Float(_) | ExprKind::Literal(_) => true,
            ExprKind::Str(parts) => match parts.as_slice() {
                [] => true,
                [StrPart::Literal(text)] => !text.is_empty(),
                _ => false,
            },
            ExprKind::PlainStr(_) => true,
            ExprKind::Var(name) => matches!(name.as_str(), "true" | "false" | "null"),
            _ => false,
        }
    }

    /// Plain data that reads no variable but `true`, `false` and `null`
    /// (bound everywhere, whatever shadows them): numbers, strings and
    /// paths without interpolation, and lists and sets of such.
    pub fn is_closed(&self) -> bool {
        match &self.kind {
            ExprKind::Int(_) | ExprKind::Float(_) | ExprKind::Literal(_) => true,
            ExprKind::PlainStr(_) => true,
            ExprKind::Var(name) => matches!(name.as_str(), "true" | "false" | "null"),
            ExprKind::Str(parts) | ExprKind::Path(parts) => {
                parts.iter().all(|p| matches!(p, StrPart::Literal(_)))
            }
            ExprKind::Set(def) => def.closed,
            ExprKind::List(items) => items.iter().all(Expr::is_closed),
            _ => false,
        }
    }
}

impl SetDef {
    fn new(rec: bool, span: TextRange, entries: Box<[(Ident, Entry)]>) -> SetDef {
        let closed = entries.iter().all(|(_, e)| match &e.value {
            EntryValue::Expr(e) => e.is_closed(),
            EntryValue::Nested(set) => set.closed,
            EntryValue::InheritVar | EntryValue::InheritFrom(_) => false,
        });
        SetDef {
            rec,
            span,
            closed,
            entries,
        }
    }

    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.entries
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .ok()
            .map(|i| &self.entries[i].1)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(n, _)| n.as_str())
    }
}

/// Collects the entries of a set or `let` in source order, merging paths
/// as Nix's parser does (`a.b = 1; a.c = 2;`); [`SetBuilder::finish`] gives
/// the [`SetDef`].
#[derive(Debug, Clone)]
pub struct SetBuilder {
    pub rec: bool,
    pub span: TextRange,
    entries: Entries,
}

/// A [`SetBuilder`]'s entries in the order they came, looked up by name
/// (through an index once there are many: a fleet's top-level set may have
/// 10,000), sorted once when the set is finished. A `BTreeMap` here cost a
/// 1 KB node for each host's few entries, all held until the file was
/// parsed (`attrpath` at 10,000 hosts: two per host, ~20 MiB).
#[derive(Debug, Clone, Default)]
struct Entries {
    list: Vec<(Ident, Building)>,
    index: Option<FxHashMap<Ident, usize>>,
}

/// Up to this many entries a name is looked for front to back.
const ENTRIES_UNINDEXED: usize = 16;

/// Each name of `list` to its position.
fn index_of(list: &[(Ident, Building)]) -> FxHashMap<Ident, usize> {
    list.iter()
        .enumerate()
        .map(|(j, (n, _))| (n.clone(), j))
        .collect()
}

impl Entries {
    /// `list` as it is (its names distinct), indexed when it is long.
    fn from_list(list: Vec<(Ident, Building)>) -> Entries {
        let index = (list.len() > ENTRIES_UNINDEXED).then(|| index_of(&list));
        Entries { list, index }
    }

    fn position(&self, name: &str) -> Option<usize> {
        match &self.index {
            Some(index) => index.get(name).copied(),
            None => self.list.iter().position(|(n, _)| n == name),
        }
    }

    fn contains_key(&self, name: &str) -> bool {
        self.position(name).is_some()
    }

    fn get_mut(&mut self, name: &str) -> Option<&mut Building> {
        let i = self.position(name)?;
        Some(&mut self.list[i].1)
    }

    /// Adds an entry whose name is not there yet (the callers look first).
    fn insert(&mut self, name: Ident, b: Building) -> &mut Building {
        debug_assert!(!self.contains_key(&name));
        let i = self.list.len();
        match &mut self.index {
            Some(index) => {
                index.insert(name.clone(), i);
            }
            None if i >= ENTRIES_UNINDEXED => {
                let mut index = index_of(&self.list);
                index.insert(name.clone(), i);
                self.index = Some(index);
            }
            None => {}
        }
        self.list.push((name, b));
        &mut self.list[i].1
    }

    /// The entry named `name`, made by `make` when there is none.
    fn get_or_insert_with(
        &mut self,
        name: &Ident,
        make: impl FnOnce() -> Building,
    ) -> &mut Building {
        match self.position(name) {
            Some(i) => &mut self.list[i].1,
            None => self.insert(name.clone(), make()),
        }
    }

    /// The entries sorted by name, as a `BTreeMap` would give them.
    fn into_sorted(self) -> Vec<(Ident, Building)> {
        let mut list = self.list;
        list.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        list
    }
}

#[derive(Debug, Clone)]
struct Building {
    name_span: TextRange,
    value: BuildingValue,
}

#[derive(Debug, Clone)]
enum BuildingValue {
    Done(EntryValue),
    /// A set that later paths may still add to (`a.b = 1;` made `a`).
    Open(SetBuilder),
}

impl SetBuilder {
    pub fn new(rec: bool, span: TextRange) -> Self {
        SetBuilder {
            rec,
            span,
            entries: Entries::default(),
        }
    }

    pub fn finish(self) -> SetDef {
        let entries = self
            .entries
            .into_sorted()
            .into_iter()
            .map(|(name, b)| {
                let value = match b.value {
                    BuildingValue::Done(v) => v,
                    BuildingValue::Open(set) => EntryValue::Nested(Rc::new(set.finish())),
                };
                (
                    name,
                    Entry {
                        name_span: b.name_span,
                        value,
                    },
                )
            })
            .collect();
        SetDef::new(self.rec, self.span, entries)
    }

    /// A finished set opened again, because a later path adds to it.
    fn reopen(set: Rc<SetDef>) -> SetBuilder {
        let set = Rc::try_unwrap(set).unwrap_or_else(|rc| (*rc).clone());
        let entries = set
            .entries
            .into_vec()
            .into_iter()
            .map(|(name, e)| {
                let b = Building {
                    name_span: e.name_span,
                    value: BuildingValue::Done(e.value),
                };
                (name, b)
            })
            .collect();
        let entries = Entries::from_list(entries);
        SetBuilder {
            rec: set.rec,
            span: set.span,
            entries,
        }
    }

    /// `inherit name;` or `inherit (from) name;`.
    pub fn inherit(&mut self, name: Name, from: Option<Rc<Expr>>) -> Result<(), EvalError> {
        if self.entries.contains_key(&name.text) {
            return Err(duplicate(&name.text, name.span));
        }
        let value = match from {
            Some(f) => EntryValue::InheritFrom(f),
            None => EntryValue::InheritVar,
        };
        self.entries.insert(
            name.text,
            Building {
                name_span: name.span,
                value: BuildingValue::Done(value),
            },
        );
        Ok(())
    }

    /// `a.b.c = value;`, merged with what is there as Nix merges it: a set
    /// literal (`ExprKind::Set`) at a path that holds a set literal already
    /// adds its attributes to it.
    pub fn add(&mut self, path: &[Name], value: Expr) -> Result<(), EvalError> {
        let literal = match value.kind {
            ExprKind::Set(set) => Ok(set),
            kind => Err(Expr {
                kind,
                span: value.span,
            }),
        };
        self.add_split(path, literal)
    }

    /// [`SetBuilder::add`] with the value already told apart: a set
    /// literal, or any other expression.
    fn add_split(
        &mut self,
        path: &[Name],
        literal: Result<Rc<SetDef>, Expr>,
    ) -> Result<(), EvalError> {
        let Some((last, init)) = path.split_last() else {
            return Ok(());
        };
        let mut cur = self;
        let mut dotted = String::new();
        for name in init {
            if !dotted.is_empty() {
                dotted.push('.');
            }
            dotted.push_str(&name.text);
            let entry = cur.entries.get_or_insert_with(&name.text, || Building {
                name_span: name.span,
                value: BuildingValue::Open(SetBuilder::new(false, name.span)),
            });
            cur = entry.open().ok_or_else(|| duplicate(&dotted, name.span))?;
        }
        if !dotted.is_empty() {
            dotted.push('.');
        }
        dotted.push_str(&last.text);
        match (cur.entries.get_mut(&last.text), literal) {
            (None, literal) => {
                let value = match literal {
                    Ok(set) => EntryValue::Nested(set),
                    Err(expr) => EntryValue::Expr(expr),
                };
                cur.entries.insert(
                    last.text.clone(),
                    Building {
                        name_span: last.span,
                        value: BuildingValue::Done(value),
                    },
                );
            }
            (Some(existing), Ok(set)) => {
                // Both are set literals: Nix moves the new one's attributes
                // into the existing set (a clash is still an error).
                let existing = existing
                    .open()
                    .ok_or_else(|| duplicate(&dotted, last.span))?;
                let set = Rc::try_unwrap(set).unwrap_or_else(|rc| (*rc).clone());
                for (name, entry) in set.entries.into_vec() {
                    if existing.entries.contains_key(&name) {
                        return Err(duplicate(&format!("{dotted}.{name}"), entry.name_span));
                    }
                    let b = Building {
                        name_span: entry.name_span,
                        value: BuildingValue::Done(entry.value),
                    };
                    existing.entries.insert(name, b);
                }
            }
            (Some(_), Err(_)) => return Err(duplicate(&dotted, last.span)),
        }
        Ok(())
    }
}

impl Building {
    /// The set at this entry, open for more attributes; `None` when the
    /// entry is not a set written as such (a value, an `inherit`).
    fn open(&mut self) -> Option<&mut SetBuilder> {
        if let BuildingValue::Done(EntryValue::Nested(_)) = &self.value {
            let BuildingValue::Done(EntryValue::Nested(set)) =
                std::mem::replace(&mut self.value, BuildingValue::Done(EntryValue::InheritVar))
            else {
                return None;
            };
            self.value = BuildingValue::Open(SetBuilder::reopen(set));
        }
        match &mut self.value {
            BuildingValue::Open(set) => Some(set),
            BuildingValue::Done(_) => None,
        }
    }
}

/// The fast parser's set builder. Most sets name each attribute once with
/// a single name (a fleet's top-level set has one entry per host): those
/// are collected as they come and sorted once at the end. A dotted path
/// or a repeated name hands the entries, in source order, to the merging
/// [`SetBuilder`], so the result is the same to the last detail.
#[derive(Debug)]
pub struct FlatSetBuilder {
    rec: bool,
    /// In source order until [`FlatSetBuilder::finish`] sorts them.
    entries: Vec<(Ident, Entry)>,
    /// Set once a path needs merging; every entry goes here from then on.
    merged: Option<SetBuilder>,
}

/// `a.cmp(b)` for the names of a set: they are short and mostly differ in
/// their first bytes, where a loop is cheaper than the call to `memcmp`
/// that `cmp` makes (every set of a fleet is sorted once).
fn cmp_names(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    for (x, y) in a.iter().zip(b) {
        if x != y {
            return x.cmp(y);
        }
    }
    a.len().cmp(&b.len())
}

/// Entry buffers for the sets being built, lent out and given back: each
/// set is then one exact-size allocation, not the three or four of a
/// growing vector, each in an allocator size class of its own that a
/// large file's thousands of sets leave behind as pages touched once.
pub type SetBuffers = Vec<Vec<(Ident, Entry)>>;

/// Sets with more entries than this keep their buffer (see
/// [`FlatSetBuilder::finish`]).
const LENT_ENTRIES: usize = 64;

impl FlatSetBuilder {
    /// A builder that collects its entries in `buffer` (empty), one of
    /// [`SetBuffers`]; [`FlatSetBuilder::finish`] gives it back.
    pub fn new(rec: bool, buffer: Vec<(Ident, Entry)>) -> Self {
        FlatSetBuilder {
            rec,
            entries: buffer,
            merged: None,
        }
    }

    /// `path = value;`; takes the names out of `path`.
    pub fn add(&mut self, path: &mut Vec<Name>, value: Expr) -> Result<(), EvalError> {
        if self.merged.is_none() && path.len() == 1 {
            if let Some(name) = path.pop() {
                let value = match value.kind {
                    ExprKind::Set(set) => EntryValue::Nested(set),
                    _ => EntryValue::Expr(value),
                };
                self.push(name, value);
                return Ok(());
            }
        }
        self.merging()?.add(path, value)
    }

    /// `inherit name;` or `inherit (from) name;`.
    pub fn inherit(&mut self, name: Name, from: Option<Rc<Expr>>) -> Result<(), EvalError> {
        if let Some(merged) = &mut self.merged {
            return merged.inherit(name, from);
        }
        let value = match from {
            Some(f) => EntryValue::InheritFrom(f),
            None => EntryValue::InheritVar,
        };
        self.push(name, value);
        Ok(())
    }

    fn push(&mut self, name: Name, value: EntryValue) {
        let entry = Entry {
            name_span: name.span,
            value,
        };
        self.entries.push((name.text, entry));
    }

    /// The merging builder, with every entry so far replayed into it.
    fn merging(&mut self) -> Result<&mut SetBuilder, EvalError> {
        let merged = match self.merged.take() {
            Some(m) => m,
            None => replay(self.rec, std::mem::take(&mut self.entries))?,
        };
        Ok(self.merged.insert(merged))
    }

    /// The set, its entry buffer (emptied) put back in `buffers`.
    pub fn finish(
        mut self,
        span: TextRange,
        buffers: &mut SetBuffers,
    ) -> Result<SetDef, EvalError> {
        if let Some(mut merged) = self.merged {
            buffers.push(self.entries);
            merged.span = span;
            return Ok(merged.finish());
        }
        self.entries
            .sort_unstable_by(|a, b| cmp_names(a.0.as_bytes(), b.0.as_bytes()));
        if self.entries.windows(2).any(|w| w[0].0 == w[1].0) {
            // Repeated names: merge (or refuse) them as written. Names
            // of one set start at distinct, increasing offsets.
            self.entries
                .sort_unstable_by_key(|(_, e)| e.name_span.start());
            let mut merged = replay(self.rec, self.entries)?;
            merged.span = span;
            return Ok(merged.finish());
        }
        if self.entries.capacity() > LENT_ENTRIES {
            // A large set (a fleet's hosts) keeps its buffer: shrunk in
            // place, not copied.
            return Ok(SetDef::new(self.rec, span, self.entries.into_boxed_slice()));
        }
        // Collected from a draining iterator of known length: allocated
        // once, at the exact size.
        let entries: Box<[(Ident, Entry)]> = self.entries.drain(..).collect();
        buffers.push(self.entries);
        Ok(SetDef::new(self.rec, span, entries))
    }
}

/// A merging builder fed `entries` (single names, source order).
fn replay(rec: bool, entries: Vec<(Ident, Entry)>) -> Result<SetBuilder, EvalError> {
    let mut b = SetBuilder::new(rec, TextRange::default());
    for (text, entry) in entries {
        let name = Name {
            text,
            span: entry.name_span,
        };
        match entry.value {
            EntryValue::InheritVar => b.inherit(name, None)?,
            EntryValue::InheritFrom(from) => b.inherit(name, Some(from))?,
            EntryValue::Nested(set) => b.add_split(&[name], Ok(set))?,
            EntryValue::Expr(e) => b.add_split(&[name], Err(e))?,
        }
    }
    Ok(b)
}

fn duplicate(name: &str, span: TextRange) -> EvalError {
    EvalError::new(span, format!("attribute '{name}' already defined"))
        .with_help("each attribute may be set once; merge the two definitions")
}

impl Expr {
    /// The tree with every literal written out again as the expressions
    /// it stands for (as [`lower`](super::lower) gives them): for tests
    /// that compare the two front ends.
    pub fn without_literals(self) -> Expr {
        let span = self.span;
        let boxed = |e: Box<Expr>| Box::new(e.without_literals());
        let kind = match self.kind {
            ExprKind::Literal(lit) => match lit.take() {
                Some(value) => return value_expr(value),
                None => ExprKind::Var("<literal read>".into()),
            },
            ExprKind::Str(parts) => ExprKind::Str(parts_without(parts)),
            ExprKind::PlainStr(text) => ExprKind::Str(vec![StrPart::Literal(text)]),
            ExprKind::Path(parts) => ExprKind::Path(parts_without(parts)),
            ExprKind::List(items) => {
                ExprKind::List(items.into_iter().map(Expr::without_literals).collect())
            }
            ExprKind::Set(def) => ExprKind::Set(def_without(def)),
            ExprKind::Let(def, body) => ExprKind::Let(def_without(def), boxed(body)),
            ExprKind::Select {
                base,
                path,
                default,
            } => ExprKind::Select {
                base: boxed(base),
                path,
                default: default.map(boxed),
            },
            ExprKind::HasAttr { base, path } => ExprKind::HasAttr {
                base: boxed(base),
                path,
            },
            ExprKind::Binary(op, a, b) => ExprKind::Binary(op, boxed(a), boxed(b)),
            ExprKind::Not(e) => ExprKind::Not(boxed(e)),
            ExprKind::Negate(e) => ExprKind::Negate(boxed(e)),
            ExprKind::If(c, t, e) => ExprKind::If(boxed(c), boxed(t), boxed(e)),
            kind => kind,
        };
        Expr { span, kind }
    }
}

fn parts_without(parts: Vec<StrPart>) -> Vec<StrPart> {
    parts
        .into_iter()
        .map(|p| match p {
            StrPart::Interpolation(e) => StrPart::Interpolation(e.without_literals()),
            lit => lit,
        })
        .collect()
}

fn def_without(def: Rc<SetDef>) -> Rc<SetDef> {
    let def = Rc::try_unwrap(def).unwrap_or_else(|rc| (*rc).clone());
    let entries = def
        .entries
        .into_vec()
        .into_iter()
        .map(|(name, entry)| {
            let value = match entry.value {
                // A set as an attribute's value is always `Nested`.
                EntryValue::Expr(e) => match e.without_literals() {
                    Expr {
                        kind: ExprKind::Set(set),
                        ..
                    } => EntryValue::Nested(set),
                    e => EntryValue::Expr(e),
                },
                EntryValue::Nested(set) => EntryValue::Nested(def_without(set)),
                EntryValue::InheritFrom(from) => EntryValue::InheritFrom(Rc::new(
                    Rc::try_unwrap(from)
                        .unwrap_or_else(|rc| (*rc).clone())
                        .without_literals(),
                )),
                v => v,
            };
            let entry = Entry {
                name_span: entry.name_span,
                value,
            };
            (name, entry)
        })
        .collect();
    Rc::new(SetDef::new(def.rec, def.span, entries))
}

/// The expression a literal's value was read from.
fn value_expr(value: Value) -> Expr {
    let kind = match value.kind {
        Kind::Null => ExprKind::Var("null".into()),
        Kind::Bool(b) => ExprKind::Var(if b { "true" } else { "false" }.into()),
        Kind::Int(i) => ExprKind::Int(i),
        Kind::Float(f) => ExprKind::Float(f),
        Kind::Str(s) if s.is_empty() => ExprKind::Str(Vec::new()),
        Kind::Str(s) => ExprKind::Str(vec![StrPart::Literal(s)]),
        Kind::Path(p) => ExprKind::Path(vec![StrPart::Literal(p.display().to_string().into())]),
        Kind::List(items) => ExprKind::List(items.into_vec().into_iter().map(value_expr).collect()),
        Kind::Attrs(attrs) => {
            let entries = attrs
                .into_sorted_vec()
                .into_iter()
                .map(|(name, attr)| {
                    let value = match value_expr(attr.value) {
                        Expr {
                            kind: ExprKind::Set(set),
                            ..
                        } => EntryValue::Nested(set),
                        e => EntryValue::Expr(e),
                    };
                    let entry = Entry {
                        name_span: attr.name_span,
                        value,
                    };
                    (Ident::from(name), entry)
                })
                .collect();
            ExprKind::Set(Rc::new(SetDef::new(false, value.span, entries)))
        }
    };
    Expr {
        span: value.span,
        kind,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn nodes_stay_small() {
        // A fleet's tree has a node per value outside its literals.
        assert_eq!(std::mem::size_of::<ExprKind>(), 40);
        assert_eq!(std::mem::size_of::<Expr>(), 48);
        assert_eq!(std::mem::size_of::<AttrPath>(), 16);
    }

    proptest::proptest! {
        #[test]
        fn names_sort_as_strings_do(a in "[ab]{0,4}|\\PC{0,8}", b in "[ab]{0,4}|\\PC{0,8}") {
            proptest::prop_assert_eq!(cmp_names(a.as_bytes(), b.as_bytes()), a.cmp(&b));
        }

        /// Dotted paths merged into one set, on either side of the index
        /// (more than `ENTRIES_UNINDEXED` names at the top), give the set
        /// and the first "already defined" a plain map of maps gives.
        #[test]
        fn dotted_paths_merge_as_a_map_of_maps_does(
            paths in proptest::collection::vec(
                (0..40usize, proptest::collection::vec(0..3usize, 0..3)), 0..120)
        ) {
            let mut builder = SetBuilder::new(false, TextRange::default());
            let mut model = Model::default();
            let mut first_error = None;
            for (top, rest) in &paths {
                let mut names = vec![format!("n{top}")];
                names.extend(rest.iter().map(|i| ["a", "b", "c"][*i].to_string()));
                let path: Vec<Name> = names
                    .iter()
                    .map(|n| Name { text: n.as_str().into(), span: TextRange::default() })
                    .collect();
                let value = Expr { span: TextRange::default(), kind: ExprKind::Int(1) };
                let got = builder.add(&path, value);
                let want = model.add(&names);
                proptest::prop_assert_eq!(got.clone(), want);
                if got.is_err() {
                    first_error = Some(got);
                    break;
                }
            }
            if first_error.is_none() {
                proptest::prop_assert_eq!(shape(&builder.finish()), model.shape());
            }
        }
    }

    /// The reference: nested `BTreeMap`s.
    #[derive(Default)]
    struct Model(BTreeMap<String, Option<Model>>);

    impl Model {
        fn add(&mut self, names: &[String]) -> Result<(), EvalError> {
            let mut cur = self;
            let mut dotted = String::new();
            let (last, init) = names.split_last().expect("a name");
            for name in init {
                if !dotted.is_empty() {
                    dotted.push('.');
                }
                dotted.push_str(name);
                match cur
                    .0
                    .entry(name.clone())
                    .or_insert_with(|| Some(Model::default()))
                {
                    Some(set) => cur = set,
                    None => return Err(duplicate(&dotted, TextRange::default())),
                }
            }
            if !dotted.is_empty() {
                dotted.push('.');
            }
            dotted.push_str(last);
            if cur.0.contains_key(last) {
                return Err(duplicate(&dotted, TextRange::default()));
            }
            cur.0.insert(last.clone(), None);
            Ok(())
        }

        fn shape(&self) -> String {
            let parts: Vec<String> = self
                .0
                .iter()
                .map(|(n, v)| match v {
                    Some(set) => format!("{n}={}", set.shape()),
                    None => n.clone(),
                })
                .collect();
            format!("{{{}}}", parts.join(" "))
        }
    }

    /// A finished set written as `Model::shape` writes a model.
    fn shape(set: &SetDef) -> String {
        let parts: Vec<String> = set
            .entries
            .iter()
            .map(|(n, e)| match &e.value {
                EntryValue::Nested(inner) => format!("{n}={}", shape(inner)),
                _ => n.to_string(),
            })
            .collect();
        format!("{{{}}}", parts.join(" "))
    }
}
