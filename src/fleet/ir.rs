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

impl SetDef {
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
        SetDef {
            rec: self.rec,
            span: self.span,
            entries,
        }
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
        let literal = match value.kind {
            ExprKind::Set(set) => Ok(set),
            kind => Err(Expr {
                kind,
                span: value.span,
            }),
        };
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

fn duplicate(name: &str, span: TextRange) -> EvalError {
    EvalError::new(span, format!("attribute '{name}' already defined"))
        .with_help("each attribute may be set once; merge the two definitions")
}
