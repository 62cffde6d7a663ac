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

/// An attribute set or `let` bindings, merged.
#[derive(Debug, Clone, PartialEq)]
pub struct SetDef {
    pub rec: bool,
    pub span: TextRange,
    pub entries: BTreeMap<String, Entry>,
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
    pub fn new(rec: bool, span: TextRange) -> Self {
        SetDef {
            rec,
            span,
            entries: BTreeMap::new(),
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
            Entry {
                name_span: name.span,
                value,
            },
        );
        Ok(())
    }

    /// `a.b.c = value;`, merged with what is there as Nix merges it. A set
    /// literal arrives as `ExprKind::Set` and is merged into an existing
    /// set literal at the same path.
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
                .or_insert_with(|| Entry {
                    name_span: name.span,
                    value: EntryValue::Nested(Rc::new(SetDef::new(false, name.span))),
                });
            match &mut entry.value {
                EntryValue::Nested(set) => cur = Rc::make_mut(set),
                _ => return Err(duplicate(&dotted, name.span)),
            }
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
                    Entry {
                        name_span: last.span,
                        value,
                    },
                );
            }
            (
                Some(Entry {
                    value: EntryValue::Nested(existing),
                    ..
                }),
                Ok(set),
            ) => {
                // Both are set literals: Nix moves the new one's attributes
                // into the existing set (a clash is still an error).
                let existing = Rc::make_mut(existing);
                let set = Rc::try_unwrap(set).unwrap_or_else(|rc| (*rc).clone());
                for (name, entry) in set.entries {
                    if existing.entries.contains_key(&name) {
                        return Err(duplicate(&format!("{dotted}.{name}"), entry.name_span));
                    }
                    existing.entries.insert(name, entry);
                }
            }
            (Some(_), _) => return Err(duplicate(&dotted, last.span)),
        }
        Ok(())
    }
}

fn duplicate(name: &str, span: TextRange) -> EvalError {
    EvalError::new(span, format!("attribute '{name}' already defined"))
        .with_help("each attribute may be set once; merge the two definitions")
}
