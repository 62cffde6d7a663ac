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

use std::collections::BTreeMap;
use std::rc::Rc;

use rowan::TextRange;

use super::eval::EvalError;

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
    /// The path's text, absolute when it starts with `/`; relative paths
    /// are resolved against the file's folder by the evaluator.
    Path(Vec<StrPart>),
    /// A variable (also `true`, `false` and `null`, which can be shadowed).
    Var(String),
    List(Vec<Expr>),
    Set(Rc<SetDef>),
    Let(Rc<SetDef>, Box<Expr>),
    Select {
        base: Box<Expr>,
        path: Vec<Name>,
        default: Option<Box<Expr>>,
    },
    HasAttr {
        base: Box<Expr>,
        path: Vec<Name>,
    },
    Binary(BinOp, Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Negate(Box<Expr>),
    If(Box<Expr>, Box<Expr>, Box<Expr>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum StrPart {
    Literal(String),
    Interpolation(Expr),
}

/// A static attribute name and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Name {
    pub text: String,
    pub span: TextRange,
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
    pub entries: Box<[(String, Entry)]>,
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

impl Expr {
    /// Plain data that reads no variable but `true`, `false` and `null`
    /// (bound everywhere, whatever shadows them): numbers, strings and
    /// paths without interpolation, and lists and sets of such.
    pub fn is_closed(&self) -> bool {
        match &self.kind {
            ExprKind::Int(_) | ExprKind::Float(_) => true,
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
    fn new(rec: bool, span: TextRange, entries: Box<[(String, Entry)]>) -> SetDef {
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
    entries: BTreeMap<String, Building>,
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
            entries: BTreeMap::new(),
        }
    }

    pub fn finish(self) -> SetDef {
        let entries = self
            .entries
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
            let entry = cur
                .entries
                .entry(name.text.clone())
                .or_insert_with(|| Building {
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
    entries: Vec<(String, Entry)>,
    /// Set once a path needs merging; every entry goes here from then on.
    merged: Option<SetBuilder>,
}

impl FlatSetBuilder {
    pub fn new(rec: bool) -> Self {
        FlatSetBuilder {
            rec,
            entries: Vec::new(),
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

    pub fn finish(mut self, span: TextRange) -> Result<SetDef, EvalError> {
        if let Some(mut merged) = self.merged {
            merged.span = span;
            return Ok(merged.finish());
        }
        self.entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        if self.entries.windows(2).any(|w| w[0].0 == w[1].0) {
            // Repeated names: merge (or refuse) them as written. Names
            // of one set start at distinct, increasing offsets.
            self.entries
                .sort_unstable_by_key(|(_, e)| e.name_span.start());
            let mut merged = replay(self.rec, self.entries)?;
            merged.span = span;
            return Ok(merged.finish());
        }
        Ok(SetDef::new(self.rec, span, self.entries.into_boxed_slice()))
    }
}

/// A merging builder fed `entries` (single names, source order).
fn replay(rec: bool, entries: Vec<(String, Entry)>) -> Result<SetBuilder, EvalError> {
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
