//! Format-preserving edits of hosts.nix through the rnix/rowan tree.
//!
//! Every operation works the same way: parse the file (refusing one that
//! does not parse or evaluate), find the nodes by typed navigation, produce
//! edits as data ([`TextEdit`]: a range and its replacement), apply them
//! back to front, then parse and evaluate the result and prove that the new
//! value equals the old value plus exactly the intended change. Bytes outside
//! the edited ranges are never touched.
//!
//! Supported file shapes: a top-level attribute set `{ ... }` (or
//! `rec { ... }`), optionally in parentheses and optionally wrapped in one
//! or more `let ... in`; and sets merged with `//` (`base // { ... }`), where
//! the `{ ... }` operands written in the file are edited (`set` edits the
//! last one defining the host, as Nix takes that one; `add` writes into the
//! last one; `rm` removes the host from all of them) and other operands are
//! left alone. Anything else at the top (a function, `with`, `import`) is
//! refused with a message that names it.

mod config_attr;
mod defaults;
mod error;
mod file;
mod host_entry;
pub mod layout;
pub mod names;
pub mod text_edit;

use std::path::Path;

use rnix::ast::{self, HasEntry};
use rowan::ast::AstNode;
use rowan::TextRange;

pub use config_attr::add_config_attr;
pub use defaults::config_entries;
pub use error::ApplyError;
pub use file::{
    apply_to_file, apply_to_file_checked, apply_to_file_under, apply_with, unified_diff, Applied,
    LOCK_WAIT,
};
pub use host_entry::HostEntry;
pub use text_edit::TextEdit;

use crate::fleet::value::{Attr, Kind, Value};
use crate::fleet::{syntax, SourceFile};
use layout::{range, size};

/// What went wrong, as a closed set (the CLI maps every kind to exit 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The file does not parse or evaluate.
    Unparsable,
    /// The file or the edited spot has a shape the editor does not handle.
    Unsupported,
    NoSuchHost,
    HostExists,
    /// The path goes through a value that is not an attribute set.
    NotASet,
    /// The new value is not valid Nix or does not evaluate.
    BadValue,
    /// The edit would change more (or less) than asked; nothing was written.
    Verify,
    /// The file changed on disk between reading and writing.
    Changed,
    Internal,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct EditError {
    pub kind: ErrorKind,
    pub message: String,
    /// Where in the (old) file the problem is, when it is somewhere.
    pub span: Option<TextRange>,
    pub help: Option<String>,
}

impl EditError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        EditError {
            kind,
            message: message.into(),
            span: None,
            help: None,
        }
    }
    pub fn at(mut self, span: TextRange) -> Self {
        self.span = Some(span);
        self
    }
    pub fn help(mut self, h: impl Into<String>) -> Self {
        self.help = Some(h.into());
        self
    }
    pub fn internal(message: impl Into<String>) -> Self {
        EditError::new(ErrorKind::Internal, message)
            .help("this is a bug in pve; the file was not changed")
    }

    /// The error as the CLI reports it: `file:line:col: message`.
    pub fn located(self, path: &Path, text: &str) -> ApplyError {
        let location = match self.span {
            Some(s) => SourceFile::new(path, text.to_string()).location(s.start().into()),
            None => path.display().to_string(),
        };
        ApplyError::Edit {
            location,
            error: self,
        }
    }
}

/// Relative paths in the edited text evaluate against this folder; any
/// folder works as long as old and new text use the same one.
const EVAL_BASE: &str = "/pve-edit-base";

fn evaluate(text: &str) -> Result<Value, crate::diag::Diagnostic> {
    crate::fleet::evaluate_text(text, Path::new(EVAL_BASE))
}

/// The parsed file, its value, and how it is laid out.
struct Doc<'a> {
    text: &'a str,
    value: Value,
    /// Where new hosts go: the last of `tops`.
    top: ast::AttrSet,
    /// Every `{ ... }` set at the top level (several with `//`).
    tops: Vec<ast::AttrSet>,
    nl: &'static str,
    unit: String,
}

impl<'a> Doc<'a> {
    fn read(text: &'a str) -> Result<Doc<'a>, EditError> {
        let root = syntax::parse(text).map_err(|d| {
            EditError::new(
                ErrorKind::Unparsable,
                format!("the file does not parse: {}", d.message),
            )
            .at(d.span)
            .help(
                d.help
                    .unwrap_or_else(|| "fix the syntax first; nothing was changed".into()),
            )
        })?;
        let value = evaluate(text).map_err(|d| {
            EditError::new(
                ErrorKind::Unparsable,
                format!("the file does not evaluate: {}", d.message),
            )
            .at(d.span)
            .help("fix it first (`pve check` shows the details); nothing was changed")
        })?;
        let tops = top_sets(&root)?;
        let top = tops
            .last()
            .cloned()
            .ok_or_else(|| EditError::internal("no top-level set"))?;
        Ok(Doc {
            text,
            value,
            top,
            tops,
            nl: layout::newline(text),
            unit: layout::indent_unit(text),
        })
    }

    fn entry_range(&self, node: &rnix::SyntaxNode) -> (usize, usize) {
        let r = node.text_range();
        (r.start().into(), r.end().into())
    }
}

/// The attribute sets at the top of the file, through parentheses and
/// `let ... in`: one, or the `{ ... }` operands of a `//` merge, left to
/// right (later ones win in Nix, and new hosts go into the last).
fn top_sets(root: &ast::Root) -> Result<Vec<ast::AttrSet>, EditError> {
    let expr = root
        .expr()
        .ok_or_else(|| EditError::new(ErrorKind::Unparsable, "the file is empty"))?;
    let mut out = Vec::new();
    collect_top(expr, &mut out, false)?;
    if out.is_empty() {
        return Err(EditError::new(
            ErrorKind::Unsupported,
            "cannot edit this file: none of the sets merged with `//` at its top level is written in it as `{ ... }`",
        )
        .help("add the hosts to a `{ ... }` set in this file, e.g. `import ./base.nix // { web = { ... }; }`"));
    }
    Ok(out)
}

fn collect_top(
    expr: ast::Expr,
    out: &mut Vec<ast::AttrSet>,
    in_merge: bool,
) -> Result<(), EditError> {
    let span = expr.syntax().text_range();
    let refuse = |what: &str| {
        EditError::new(
            ErrorKind::Unsupported,
            format!("cannot edit this file: its top level is {what}, not an attribute set"),
        )
        .at(span)
        .help(
            "pve edits files shaped `{ ... }`, `let ... in { ... }` or `a // { ... }`; \
             change this file by hand, or move the hosts into one top-level set",
        )
    };
    match expr {
        ast::Expr::AttrSet(s) => out.push(s),
        ast::Expr::Paren(p) => collect_top(
            p.expr().ok_or_else(|| refuse("empty parentheses"))?,
            out,
            in_merge,
        )?,
        ast::Expr::LetIn(l) if !in_merge => collect_top(
            l.body().ok_or_else(|| refuse("a `let` without a body"))?,
            out,
            in_merge,
        )?,
        ast::Expr::BinOp(b) if b.operator() == Some(ast::BinOpKind::Update) => {
            for side in [b.lhs(), b.rhs()].into_iter().flatten() {
                collect_top(side, out, true)?;
            }
        }
        // Inside a merge, other operands (a `let` name, `import ./x.nix`)
        // are kept as they are; their hosts cannot be edited here.
        _ if in_merge => {}
        ast::Expr::Lambda(_) => return Err(refuse("a function")),
        ast::Expr::With(_) => return Err(refuse("a `with` expression")),
        ast::Expr::Apply(_) => return Err(refuse("a function call (like `import`)")),
        ast::Expr::LegacyLet(_) => return Err(refuse("a legacy `let { ... }`")),
        _ => return Err(refuse("an expression of another kind")),
    }
    Ok(())
}

/// True when `set` defines `name` (by an entry or an `inherit`).
fn defines(set: &ast::AttrSet, name: &str) -> bool {
    set.attrpath_values()
        .any(|a| keys(&a).is_ok_and(|k| k.first().map(String::as_str) == Some(name)))
        || set
            .inherits()
            .any(|i| inherited_names(&i).iter().any(|(n, _)| n == name))
}

/// The static names of an entry's attribute path.
fn keys(apv: &ast::AttrpathValue) -> Result<Vec<String>, EditError> {
    let path = apv
        .attrpath()
        .ok_or_else(|| EditError::internal("entry without a name"))?;
    path.attrs()
        .map(|a| {
            crate::fleet::lower::attr_name(&a)
                .map_err(|e| EditError::new(ErrorKind::Unsupported, e.message).at(e.span))
        })
        .collect()
}

fn inherited_names(inh: &ast::Inherit) -> Vec<(String, TextRange)> {
    inh.attrs()
        .filter_map(|a| {
            crate::fleet::lower::attr_name(&a)
                .ok()
                .map(|n| (n, a.syntax().text_range()))
        })
        .collect()
}

fn show(path: &[String]) -> String {
    let refs: Vec<&str> = path.iter().map(String::as_str).collect();
    format!("`{}`", names::attr_path(&refs))
}

fn get<'v>(v: &'v Value, path: &[String]) -> Option<&'v Value> {
    let mut cur = v;
    for k in path {
        cur = &cur.as_attrs()?.get(k)?.value;
    }
    Some(cur)
}

/// Sets `path` in `v`, creating sets on the way; false when a non-set is
/// in the way.
fn put(v: &mut Value, path: &[String], new: Value) -> bool {
    let Some((first, rest)) = path.split_first() else {
        *v = new;
        return true;
    };
    let Kind::Attrs(attrs) = &mut v.kind else {
        return false;
    };
    let slot = attrs.get_or_insert_with(first, || Attr {
        name_span: TextRange::default(),
        value: Value {
            kind: Kind::Attrs(Default::default()),
            span: TextRange::default(),
        },
    });
    put(&mut slot.value, rest, new)
}

/// Structural equality, ignoring where values were written.
pub fn same_value(a: &Value, b: &Value) -> bool {
    match (&a.kind, &b.kind) {
        (Kind::Float(x), Kind::Float(y)) => x.to_bits() == y.to_bits() || x == y,
        (Kind::List(x), Kind::List(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same_value(p, q))
        }
        (Kind::Attrs(x), Kind::Attrs(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((k1, v1), (k2, v2))| k1 == k2 && same_value(&v1.value, &v2.value))
        }
        (x, y) => x == y,
    }
}

/// The first place where `want` and `got` differ, as a sentence.
fn first_difference(want: &Value, got: &Value, path: &mut Vec<String>) -> Option<String> {
    match (&want.kind, &got.kind) {
        (Kind::Attrs(w), Kind::Attrs(g)) => {
            for (k, wv) in w {
                path.push(k.as_str().to_string());
                let d = match g.get(k) {
                    None => Some(format!("{} would disappear", show(path))),
                    Some(gv) => first_difference(&wv.value, &gv.value, path),
                };
                path.pop();
                if d.is_some() {
                    return d;
                }
            }
            g.keys().find(|k| !w.contains_key(k)).map(|k| {
                path.push(k.as_str().to_string());
                let s = format!("{} would appear", show(path));
                path.pop();
                s
            })
        }
        _ if same_value(want, got) => None,
        _ if path.is_empty() => Some("the whole file's value would change".into()),
        _ => Some(format!("{} would change", show(path))),
    }
}

/// Evaluates the edited text and compares it with `expected`.
fn verify(new_text: &str, expected: impl FnOnce(&Value) -> Value) -> Result<(), EditError> {
    syntax::parse(new_text).map_err(|d| {
        EditError::internal(format!("the edited file would not parse: {}", d.message))
    })?;
    let new = evaluate(new_text).map_err(|d| {
        EditError::new(
            ErrorKind::BadValue,
            format!("the edited file would not evaluate: {}", d.message),
        )
        .help("check the new value; nothing was changed")
    })?;
    let want = expected(&new);
    match first_difference(&want, &new, &mut Vec::new()) {
        None => Ok(()),
        Some(d) => Err(EditError::new(
            ErrorKind::Verify,
            format!("refusing the edit: besides the change asked for, {d}"),
        )
        .help("something else in the file depends on the edited value (`rec`, `let`, `inherit`); edit it by hand")),
    }
}

/// Parses a Nix value given as text; returns its text without surrounding
/// whitespace and comments.
fn parse_value(nix_value: &str) -> Result<&str, EditError> {
    let bad = |m: String| {
        EditError::new(ErrorKind::BadValue, m).help(
            "the value is Nix text: a string needs its quotes (`'\"web\"'`), a list brackets (`'[ \"a\" ]'`)",
        )
    };
    let root = syntax::parse(nix_value).map_err(|d| {
        bad(format!(
            "`{nix_value}` is not a valid Nix value: {}",
            d.message
        ))
    })?;
    let expr = root
        .expr()
        .ok_or_else(|| bad(format!("`{nix_value}` is not a valid Nix value")))?;
    let r = expr.syntax().text_range();
    Ok(&nix_value[usize::from(r.start())..usize::from(r.end())])
}

/// A multi-line value re-indented to sit at `indent` with the file's unit
/// and line breaks, unless a string in it spans lines (re-indenting would
/// change the string), in which case it goes in as written.
fn fit_value(doc: &Doc, value: &str, indent: &str) -> String {
    if !value.contains('\n') {
        return value.to_string();
    }
    let multi_line_string = rnix::tokenize(value).any(|(kind, t)| {
        kind == rnix::SyntaxKind::TOKEN_STRING_CONTENT && (t.contains('\n') || t.contains('\r'))
    });
    if multi_line_string {
        value.to_string()
    } else {
        layout::reindent(value, indent, &doc.unit, doc.nl)
    }
}

fn no_such_host(doc: &Doc, name: &str) -> EditError {
    let candidates: Vec<&str> = doc
        .value
        .as_attrs()
        .map(|a| a.keys().map(|k| k.as_str()).collect())
        .unwrap_or_default();
    let mut e = EditError::new(
        ErrorKind::NoSuchHost,
        format!("there is no host `{name}` in hosts.nix"),
    );
    e = match crate::diag::did_you_mean(name, candidates) {
        Some(s) => e.help(format!("did you mean `{s}`?")),
        // A settings set that is not there yet is made by `pve config set`.
        None if name.starts_with('_') => e.help(format!(
            "`{name}` is a settings set, not a host: `pve config set {name}.KEY VALUE` creates it"
        )),
        None => e.help("`pve host add NAME` adds one; `pve eval | jq keys` lists them"),
    };
    e
}

// ---------------------------------------------------------------- set

/// Sets the attribute at `path` (`["builder", "proxmox", "cores"]`) to the
/// Nix expression `nix_value`. `path[0]` must exist at the top level (a host,
/// or a `_config` set); missing sets below it are created in the style of
/// their neighbours. Replacing a value keeps its trailing comment.
pub fn set_attr(text: &str, path: &[&str], nix_value: &str) -> Result<String, EditError> {
    let doc = Doc::read(text)?;
    let path: Vec<String> = path.iter().map(|s| s.to_string()).collect();
    if path.is_empty() {
        return Err(EditError::new(
            ErrorKind::Unsupported,
            "an empty attribute path",
        ));
    }
    let value_text = parse_value(nix_value)?;
    if get(&doc.value, &path[..1]).is_none() {
        return Err(no_such_host(&doc, &path[0]));
    }
    for n in 1..path.len() {
        if let Some(v) = get(&doc.value, &path[..n]) {
            if v.as_attrs().is_none() {
                return Err(EditError::new(
                    ErrorKind::NotASet,
                    format!(
                        "cannot set {}: {} is {}, not an attribute set",
                        show(&path),
                        show(&path[..n]),
                        v.kind.type_name()
                    ),
                )
                .at(v.span)
                .help("choose a path whose parents are sets"));
            }
        }
    }
    // with `//`, the last set that defines the name wins in Nix
    let owner = doc.tops.iter().rev().find(|s| defines(s, &path[0])).ok_or_else(|| {
        EditError::new(
            ErrorKind::Unsupported,
            format!(
                "cannot set {}: `{}` comes from a merged expression, not from a `{{ ... }}` set in this file",
                show(&path),
                path[0]
            ),
        )
        .help("edit the file that defines it")
    })?;
    let edits = plan_set(&doc, owner, &path, 0, value_text)?;
    let new_text = text_edit::apply(text, edits)?;
    let standalone = evaluate(value_text).ok();
    verify(&new_text, |new| {
        let mut want = doc.value.clone();
        let v = standalone
            .clone()
            .or_else(|| get(new, &path).cloned())
            .unwrap_or(Value {
                kind: Kind::Null,
                span: TextRange::default(),
            });
        put(&mut want, &path, v);
        want
    })?;
    Ok(new_text)
}

/// Plans setting `path[depth..]` inside the set literal `set`.
fn plan_set(
    doc: &Doc,
    set: &ast::AttrSet,
    path: &[String],
    depth: usize,
    value: &str,
) -> Result<Vec<TextEdit>, EditError> {
    let rest = &path[depth..];
    let mut best: Option<(usize, ast::AttrpathValue)> = None;
    for apv in set.attrpath_values() {
        let k = keys(&apv)?;
        let common = k.iter().zip(rest).take_while(|(a, b)| a == b).count();
        if common == k.len() && common == rest.len() {
            let v = apv
                .value()
                .ok_or_else(|| EditError::internal("entry without a value"))?;
            let indent =
                layout::line_indent(doc.text, usize::from(apv.syntax().text_range().start()));
            let fitted = fit_value(doc, value, indent);
            return Ok(vec![TextEdit::replace(v.syntax().text_range(), fitted)]);
        }
        if common == k.len() {
            // the entry is a parent of the path
            let v = apv
                .value()
                .ok_or_else(|| EditError::internal("entry without a value"))?;
            return match strip_parens(v) {
                ast::Expr::AttrSet(inner) => plan_set(doc, &inner, path, depth + common, value),
                other => Err(EditError::new(
                    ErrorKind::Unsupported,
                    format!(
                        "cannot set {}: {} is not written as a `{{ ... }}` set here",
                        show(path),
                        show(&path[..depth + common])
                    ),
                )
                .at(other.syntax().text_range())
                .help("edit this expression by hand")),
            };
        }
        if common == rest.len() {
            return Err(EditError::new(
                ErrorKind::Unsupported,
                format!(
                    "cannot set {}: it is written as separate `{}.… = …;` lines",
                    show(path),
                    names::attr_path(&path.iter().map(String::as_str).collect::<Vec<_>>())
                ),
            )
            .at(apv.syntax().text_range())
            .help("set the attributes below it one by one"));
        }
        if common > 0 && best.as_ref().is_none_or(|(c, _)| common >= *c) {
            best = Some((common, apv));
        }
    }
    for inh in set.inherits() {
        for (n, r) in inherited_names(&inh) {
            if n == rest[0] {
                return Err(EditError::new(
                    ErrorKind::Unsupported,
                    format!(
                        "cannot set {}: {} is inherited here",
                        show(path),
                        show(&path[..=depth])
                    ),
                )
                .at(r)
                .help("replace the `inherit` with an explicit attribute by hand"));
            }
        }
    }
    // Create it. Dotted (`a.b = v;`) when the neighbours write paths that
    // way, nested sets otherwise.
    let dotted_style = best.is_some()
        || set
            .attrpath_values()
            .any(|a| keys(&a).is_ok_and(|k| k.len() > 1));
    let anchor = best.map(|(_, a)| a.syntax().clone());
    let multiline = set.syntax().text().contains_char('\n');
    let entry_indent = entry_indent(doc, set);
    let entry = if dotted_style {
        let refs: Vec<&str> = rest.iter().map(String::as_str).collect();
        let fitted = fit_value(doc, value, &entry_indent);
        format!("{} = {fitted};", names::attr_path(&refs))
    } else if multiline {
        let inner = format!("{entry_indent}{}", doc.unit.repeat(rest.len() - 1));
        let fitted = fit_value(doc, value, &inner);
        nested_entry(doc, rest, &fitted, Some(entry_indent.as_str()))
    } else {
        nested_entry(doc, rest, value, None)
    };
    Ok(vec![insert_entry(
        doc,
        set,
        anchor.as_ref(),
        &entry,
        &entry_indent,
        false,
        false,
    )?])
}

fn strip_parens(mut e: ast::Expr) -> ast::Expr {
    while let ast::Expr::Paren(p) = &e {
        match p.expr() {
            Some(inner) => e = inner,
            None => break,
        }
    }
    e
}

/// `a = { b = { c = v; }; };`, over several lines when `indent` is given.
fn nested_entry(doc: &Doc, path: &[String], value: &str, indent: Option<&str>) -> String {
    let name = names::attr_name(&path[0]);
    if path.len() == 1 {
        return format!("{name} = {value};");
    }
    match indent {
        None => format!(
            "{name} = {{ {} }};",
            nested_entry(doc, &path[1..], value, None)
        ),
        Some(ind) => {
            let inner_indent = format!("{ind}{}", doc.unit);
            format!(
                "{name} = {{{nl}{inner_indent}{}{nl}{ind}}};",
                nested_entry(doc, &path[1..], value, Some(&inner_indent)),
                nl = doc.nl
            )
        }
    }
}

/// The indentation of the entries of `set` (one level deeper than its
/// opening line when it has none on their own lines).
fn entry_indent(doc: &Doc, set: &ast::AttrSet) -> String {
    for e in set.entries() {
        let start = usize::from(e.syntax().text_range().start());
        if let Some(ind) = layout::indent_before(doc.text, start) {
            return ind.to_string();
        }
    }
    let open = usize::from(set.syntax().text_range().start());
    format!("{}{}", layout::line_indent(doc.text, open), doc.unit)
}

/// An edit inserting `entry` into `set`: after `anchor` (default: the last
/// entry), on its own line in a multi-line set, inline in a one-line set
/// (an empty one-line set becomes multi-line when `open_up` is set).
fn insert_entry(
    doc: &Doc,
    set: &ast::AttrSet,
    anchor: Option<&rnix::SyntaxNode>,
    entry: &str,
    indent: &str,
    blank_line: bool,
    open_up: bool,
) -> Result<TextEdit, EditError> {
    let text = doc.text;
    let last = set.entries().last().map(|e| e.syntax().clone());
    let anchor = anchor.cloned().or(last);
    let multiline = set.syntax().text().contains_char('\n');
    let nl = doc.nl;
    let blank = if blank_line { nl } else { "" };
    let open = set
        .l_curly_token()
        .map(|t| t.text_range().end())
        .ok_or_else(|| EditError::internal("a set without `{`"))?;
    let close = set
        .r_curly_token()
        .map(|t| t.text_range().start())
        .ok_or_else(|| EditError::internal("a set without `}`"))?;
    Ok(match (anchor, multiline) {
        (Some(a), true) => {
            let at = layout::tail_end(text, &a);
            TextEdit::insert(size(at), format!("{nl}{blank}{indent}{entry}"))
        }
        (Some(a), false) => TextEdit::insert(a.text_range().end(), format!(" {}", one_line(entry))),
        (None, true) => {
            let at = layout::content_end(text, usize::from(open));
            TextEdit::insert(size(at), format!("{nl}{indent}{entry}"))
        }
        (None, false) if open_up => {
            let closing_indent = layout::line_indent(text, usize::from(open));
            TextEdit::replace(
                TextRange::new(open, close),
                format!("{nl}{indent}{entry}{nl}{closing_indent}"),
            )
        }
        (None, false) => TextEdit::replace(
            TextRange::new(open, close),
            format!(" {} ", one_line(entry)),
        ),
    })
}

/// A multi-line entry folded onto one line, for one-line sets.
fn one_line(entry: &str) -> String {
    entry
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

// ---------------------------------------------------------------- hosts

/// The top-level entries that define hosts: a name not starting with `_`
/// whose value is a set, in file order (several entries when a host is
/// written as `web.a = ...; web.b = ...;`).
fn host_entries(doc: &Doc) -> Result<Vec<(String, ast::AttrpathValue)>, EditError> {
    let mut out = Vec::new();
    for apv in doc.top.attrpath_values() {
        let k = keys(&apv)?;
        let name = &k[0];
        let is_set = get(&doc.value, &k[..1]).is_some_and(|v| v.as_attrs().is_some());
        if !name.starts_with('_') && is_set {
            out.push((name.clone(), apv));
        }
    }
    Ok(out)
}

fn check_host_name(name: &str) -> Result<(), EditError> {
    if name.is_empty() || name.starts_with('_') {
        return Err(EditError::new(
            ErrorKind::BadValue,
            format!("`{name}` cannot be a host name"),
        )
        .help("host names are DNS labels like `web1`; names starting with `_` are configuration"));
    }
    Ok(())
}

/// Adds host `name` with the set `entry_nix` (Nix text, usually rendered by
/// [`HostEntry::render`]). It goes after the last host, or in order when the
/// hosts are sorted by name, indented like its neighbours and separated by a
/// blank line when they are.
pub fn add_host(text: &str, name: &str, entry_nix: &str) -> Result<String, EditError> {
    check_host_name(name)?;
    let doc = Doc::read(text)?;
    if get(&doc.value, &[name.to_string()]).is_some() {
        return Err(EditError::new(
            ErrorKind::HostExists,
            format!("`{name}` already exists in hosts.nix"),
        )
        .help(format!(
            "choose another name, or change it with `pve host set {name} ...`"
        )));
    }
    let value_text = parse_value(entry_nix)?;
    let hosts = host_entries(&doc)?;
    let indent = entry_indent(&doc, &doc.top);
    let body = fit_value(&doc, value_text, &indent);
    let entry = format!("{} = {body};", names::attr_name(name));
    let blank = separated_by_blank_lines(&doc);

    let sorted = hosts.len() >= 2 && hosts.windows(2).all(|w| w[0].0 <= w[1].0);
    let next = if sorted {
        hosts.iter().find(|(n, _)| n.as_str() > name)
    } else {
        None
    };
    let edit = match next {
        Some((_, before)) => {
            let node = before.syntax();
            let start = layout::leading_start(doc.text, node);
            if layout::indent_before(doc.text, start).is_some()
                && doc.top.syntax().text().contains_char('\n')
            {
                let at = layout::line_start(doc.text, start);
                let gap = if blank { doc.nl } else { "" };
                TextEdit::insert(size(at), format!("{indent}{entry}{nl}{gap}", nl = doc.nl))
            } else {
                TextEdit::insert(size(start), format!("{} ", one_line(&entry)))
            }
        }
        _ => {
            let anchor = hosts.last().map(|(_, a)| a.syntax().clone());
            insert_entry(
                &doc,
                &doc.top,
                anchor.as_ref(),
                &entry,
                &indent,
                blank,
                true,
            )?
        }
    };
    let new_text = text_edit::apply(text, vec![edit])?;
    let standalone = evaluate(value_text).ok();
    let key = vec![name.to_string()];
    verify(&new_text, |new| {
        let mut want = doc.value.clone();
        let v = standalone.clone().or_else(|| get(new, &key).cloned());
        if let Some(v) = v {
            put(&mut want, &key, v);
        }
        want
    })?;
    Ok(new_text)
}

/// True when the top-level entries are separated by blank lines.
fn separated_by_blank_lines(doc: &Doc) -> bool {
    let entries: Vec<_> = doc.top.entries().collect();
    entries.windows(2).any(|w| {
        let a = layout::tail_end(doc.text, w[0].syntax());
        let b = layout::leading_start(doc.text, w[1].syntax());
        a <= b && doc.text[a..b].matches('\n').count() >= 2
    })
}

/// Removes host `name`: its entry (or entries), the comment lines right
/// above it, and one blank line next to it; nothing else.
pub fn remove_host(text: &str, name: &str) -> Result<String, EditError> {
    let doc = Doc::read(text)?;
    let mut edits = Vec::new();
    for top in &doc.tops {
        for apv in top.attrpath_values() {
            if keys(&apv)?.first().map(String::as_str) == Some(name) {
                edits.push(TextEdit::delete(removal_range(&doc, apv.syntax())));
            }
        }
    }
    for inh in doc.tops.iter().flat_map(|t| t.inherits()) {
        if let Some((_, r)) = inherited_names(&inh).into_iter().find(|(n, _)| n == name) {
            return Err(EditError::new(
                ErrorKind::Unsupported,
                format!("`{name}` is inherited here; remove it from the `inherit` by hand"),
            )
            .at(r));
        }
    }
    if edits.is_empty() || name.starts_with('_') {
        return Err(no_such_host(&doc, name));
    }
    let new_text = text_edit::apply(text, edits)?;
    verify(&new_text, |_| {
        let mut want = doc.value.clone();
        if let Kind::Attrs(a) = &mut want.kind {
            a.remove(name);
        }
        want
    })?;
    Ok(new_text)
}

/// The text an entry occupies: on lines of its own, those lines plus its
/// comment lines and one blank line (after it, else before it); sharing a
/// line, the entry and the spaces before it.
fn removal_range(doc: &Doc, node: &rnix::SyntaxNode) -> TextRange {
    let text = doc.text;
    let (start, _) = doc.entry_range(node);
    let lead = layout::leading_start(text, node);
    let tail = layout::tail_end(text, node);
    if !layout::owns_lines(text, lead, tail) {
        let before = text[..start].trim_end_matches([' ', '\t']).len();
        return range(before, tail.max(start));
    }
    let mut from = layout::line_start(text, lead);
    let mut to = layout::after_line(text, tail);
    let next_end = layout::line_end(text, to);
    if to < text.len() && next_end < text.len() && layout::is_blank(&text[to..next_end]) {
        to = next_end + 1;
    } else if from > 0 {
        let prev_start = layout::line_start(text, from - 1);
        if layout::is_blank(&text[prev_start..from]) {
            from = prev_start;
        }
    }
    range(from, to)
}

/// Renames host `old` to `new` (every entry that defines it); nothing else
/// changes, not even its `hostname` attribute.
pub fn rename_host(text: &str, old: &str, new: &str) -> Result<String, EditError> {
    check_host_name(new)?;
    let doc = Doc::read(text)?;
    if get(&doc.value, &[new.to_string()]).is_some() {
        return Err(EditError::new(
            ErrorKind::HostExists,
            format!("`{new}` already exists in hosts.nix"),
        ));
    }
    let mut edits = Vec::new();
    for apv in doc.tops.iter().flat_map(|t| t.attrpath_values()) {
        if keys(&apv)?.first().map(String::as_str) == Some(old) {
            if let Some(first) = apv.attrpath().and_then(|p| p.attrs().next()) {
                edits.push(TextEdit::replace(
                    first.syntax().text_range(),
                    names::attr_name(new),
                ));
            }
        }
    }
    if edits.is_empty() || old.starts_with('_') {
        return Err(no_such_host(&doc, old));
    }
    let new_text = text_edit::apply(text, edits)?;
    verify(&new_text, |_| {
        let mut want = doc.value.clone();
        if let Kind::Attrs(a) = &mut want.kind {
            if let Some(v) = a.remove(old) {
                a.insert(new.to_string(), v);
            }
        }
        want
    })?;
    Ok(new_text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(text: &str, path: &str, v: &str) -> String {
        let p: Vec<&str> = path.split('.').collect();
        set_attr(text, &p, v).unwrap_or_else(|e| panic!("{e}: {:?}", e.help))
    }

    #[test]
    fn set_replaces_a_value_and_keeps_its_comment() {
        let t = "{\n  web = {\n    cores = 2; # small\n  };\n}\n";
        assert_eq!(
            set(t, "web.cores", "4"),
            "{\n  web = {\n    cores = 4; # small\n  };\n}\n"
        );
    }

    #[test]
    fn set_creates_nested_sets_like_the_neighbours() {
        let t = "{\n  web = {\n    hostname = \"web\";\n  };\n}\n";
        assert_eq!(
            set(t, "web.proxmox.cores", "4"),
            "{\n  web = {\n    hostname = \"web\";\n    proxmox = {\n      cores = 4;\n    };\n  };\n}\n"
        );
        let t = "{ web = { hostname = \"web\"; }; }";
        assert_eq!(
            set(t, "web.proxmox.cores", "4"),
            "{ web = { hostname = \"web\"; proxmox = { cores = 4; }; }; }"
        );
        let t = "{\n  web.hostname = \"web\";\n  other = { };\n}\n";
        assert_eq!(
            set(t, "web.proxmox.cores", "4"),
            "{\n  web.hostname = \"web\";\n  web.proxmox.cores = 4;\n  other = { };\n}\n"
        );
    }

    #[test]
    fn add_and_remove_round_trip() {
        let t = "{\n  # a\n  a = { x = 1; };\n\n  # b\n  b = { x = 2; };\n}\n";
        let added = add_host(t, "c", "{\n  x = 3;\n}").expect("add");
        assert_eq!(added, "{\n  # a\n  a = { x = 1; };\n\n  # b\n  b = { x = 2; };\n\n  c = {\n    x = 3;\n  };\n}\n");
        assert_eq!(remove_host(&added, "c").expect("rm"), t);
        assert_eq!(
            remove_host(t, "a").expect("rm a"),
            "{\n  # b\n  b = { x = 2; };\n}\n"
        );
        assert_eq!(
            remove_host(t, "b").expect("rm b"),
            "{\n  # a\n  a = { x = 1; };\n}\n"
        );
    }
}
