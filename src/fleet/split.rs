//! A large hosts.nix read on two threads. The read (prescan, parse, scope
//! check, strict evaluation) is otherwise serial and the longest part of
//! `pve check` on a large fleet; the machines it runs on have two cores.
//!
//! It applies to the usual shape only: `{ ... }` or `let ... in { ... }`
//! whose body is a set that is not `rec`. A value there sees the `let`
//! bindings but never its siblings, so the set can be cut between two
//! bindings and each part evaluated on its own, the `let` bindings in both:
//!
//! - the head is `text[..cut]` with a `}` after it: every offset, hence
//!   every span, is the file's, except the set's own end;
//! - the tail is the file with `text[open + 1..cut]` (the head's bindings)
//!   read as whitespace: offsets unchanged again.
//!
//! Neither is a copy: the fast parser reads the file's own bytes that way
//! ([`fast_parse::parse_head`], [`fast_parse::parse_tail`]).
//!
//! The cut is found by a guess (a line at the bindings' indentation, near
//! the middle) and proved by the parse: the head only parses, closing the
//! body set with the appended `}`, when the cut falls between two bindings
//! of that set in code (not in a string or comment), and then the tail's
//! tokens from the cut on are the file's. The prescan is split at the same
//! place ([`prescan::check_head`]). The two sets are merged by name.
//!
//! Anything else gives `None` and the caller reads the file serially, which
//! owns every diagnostic: a part that fails to parse, scan or evaluate, a
//! name defined in both parts (a duplicate, or attribute paths that Nix
//! would merge), or budgets that together exceed one evaluation's.
//! Whenever `Some` is returned it is the serial read's value exactly (see
//! tests/it/parallel_read.rs): each part is the same tokens read the same
//! way, and a part never spends less than its share of the serial read (a
//! `let` value forced in both parts is counted twice), so within the
//! summed budget the serial read is within its own.

use std::path::Path;

use rowan::TextRange;

use super::budget::Spent;
use super::ir::{Expr, ExprKind};
use super::model::{Fleet, FleetBuilder, Typed};
use super::value::{Attr, Attrs, Kind, Value};
use super::{eval, fast_parse, prescan, scope};
use crate::diag::Diagnostic;

/// Files smaller than this are read serially: splitting costs a second
/// thread (and a second read of the `let` bindings), which only pays off
/// on a large file (`benches/`: a 1,000-host fleet is about 450 KB).
pub const MIN_PARALLEL_BYTES: usize = 128 * 1024;

/// Where the file is cut: the body set's `{` and the first byte of the
/// tail (the start of a line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub open: usize,
    pub cut: usize,
}

/// The file's value read on two threads, or `None` (read it serially).
/// Runs the head on this thread: call it on a thread with a large stack.
pub fn evaluate(text: &str, base_dir: &Path) -> Option<Value> {
    let plan = plan(text)?;
    read_planned(text, base_dir, plan, false).map(|(value, _)| value)
}

/// [`evaluate`], and the fleet typed from it, each part's hosts on its
/// thread: what [`Fleet::from_value`] gives on the value.
pub fn load(text: &str, base_dir: &Path) -> Option<(Value, Fleet, Vec<Diagnostic>)> {
    let plan = plan(text)?;
    let (value, typed) = read_planned(text, base_dir, plan, true)?;
    let (fleet, diagnostics) = typed.finish();
    Some((value, fleet, diagnostics))
}

/// The file cut at `cut` (any offset): `None` unless it falls between two
/// bindings of the body set. For tests, which try every offset.
pub fn evaluate_at(text: &str, base_dir: &Path, cut: usize) -> Option<Value> {
    let open = body_open(text.as_bytes())?;
    read_planned(text, base_dir, Plan { open, cut }, false).map(|(value, _)| value)
}

/// [`load`] with the file cut at `cut`; for tests, as [`evaluate_at`].
pub fn load_at(text: &str, base_dir: &Path, cut: usize) -> Option<(Value, Fleet, Vec<Diagnostic>)> {
    let open = body_open(text.as_bytes())?;
    let (value, typed) = read_planned(text, base_dir, Plan { open, cut }, true)?;
    let (fleet, diagnostics) = typed.finish();
    Some((value, fleet, diagnostics))
}

/// Where to cut a large file of the usual shape.
pub fn plan(text: &str) -> Option<Plan> {
    if text.len() < MIN_PARALLEL_BYTES {
        return None;
    }
    let b = text.as_bytes();
    let open = body_open(b)?;
    let cut = find_cut(b, open)?;
    Some(Plan { open, cut })
}

/// The value, and with `typed` every top-level attribute typed
/// ([`Typed::of`]) and put together.
fn read_planned(
    text: &str,
    base_dir: &Path,
    plan: Plan,
    typed: bool,
) -> Option<(Value, FleetBuilder)> {
    let Plan { open, cut } = plan;
    if !(open < cut && cut <= text.len() && text.is_char_boundary(cut)) {
        return None;
    }
    let (head, tail) = std::thread::scope(|s| {
        let tail = std::thread::Builder::new()
            .name("nix-eval-tail".into())
            .stack_size(super::EVAL_STACK)
            .spawn_scoped(s, || {
                let tail = read_tail(text, base_dir, open, cut, typed);
                super::memory::release_freed();
                tail
            })
            .ok()?;
        let head = read_head(text, base_dir, open, cut, typed);
        Some((head, tail.join().ok()?))
    })?;
    let (head, tail) = (head?, tail?);
    let within = prescan_within(head.prescan_cost, tail.prescan_cost)
        && head.spent.plus(tail.spent).within_limits();
    if !within {
        return None;
    }
    // The tail's set ends where the file's does.
    let span = tail.value.span;
    let (attrs, typed) = merge(head, tail)?;
    let value = Value {
        kind: Kind::Attrs(attrs),
        span,
    };
    Some((value, typed))
}

fn prescan_within(head: u64, tail: u64) -> bool {
    head.saturating_add(tail) <= prescan::MAX_COST
}

/// One part's value and what reading it cost.
struct Part {
    value: Value,
    spent: Spent,
    prescan_cost: u64,
    /// Its attributes typed, when asked for.
    typed: Vec<Typed>,
}

fn read_head(text: &str, base_dir: &Path, open: usize, cut: usize, typed: bool) -> Option<Part> {
    let prescan_cost = prescan::check_head(text, cut).ok()??;
    let expr = fast_parse::parse_head(text, cut)?;
    // The appended `}` must close the body set, opened at `open`.
    let want = TextRange::new(to_size(open)?, to_size(cut + 1)?);
    (body_set_span(&expr)? == want).then_some(())?;
    evaluate_part(expr, base_dir, prescan_cost, typed)
}

fn read_tail(text: &str, base_dir: &Path, open: usize, cut: usize, typed: bool) -> Option<Part> {
    let prescan_cost = prescan::check_tail(text, cut).ok()?;
    let expr = fast_parse::parse_tail(text, open + 1..cut)?;
    (body_set_span(&expr)?.start() == to_size(open)?).then_some(())?;
    evaluate_part(expr, base_dir, prescan_cost, typed)
}

fn to_size(offset: usize) -> Option<rowan::TextSize> {
    u32::try_from(offset).ok().map(rowan::TextSize::from)
}

/// The span of the body set when the expression has the shape a split
/// needs: a set that is not `rec`, alone or as the body of one `let`.
fn body_set_span(expr: &Expr) -> Option<TextRange> {
    let set = match &expr.kind {
        ExprKind::Let(_, body) => body,
        _ => expr,
    };
    match &set.kind {
        ExprKind::Set(def) if !def.rec => Some(set.span),
        ExprKind::Literal(lit) if lit.is_set() => Some(set.span),
        _ => None,
    }
}

fn evaluate_part(expr: Expr, base_dir: &Path, prescan_cost: u64, typed: bool) -> Option<Part> {
    scope::check(&expr).ok()?;
    let evaluator = eval::Evaluator::new(base_dir);
    let value = evaluator.eval_strict(&expr).ok()?;
    let spent = evaluator.spent();
    drop(evaluator);
    // The syntax is done with: freed before the hosts are typed, so the
    // two are not in memory together (the peak of a large read).
    drop(expr);
    let typed = match value.as_attrs() {
        Some(attrs) if typed => attrs.iter().map(|(n, a)| Typed::of(n, a)).collect(),
        _ => Vec::new(),
    };
    Some(Part {
        value,
        spent,
        prescan_cost,
        typed,
    })
}

/// The two parts' sets as one, sorted by name, and their typed attributes
/// put together in the same order; `None` when a name is in both (the
/// serial read reports or merges it).
fn merge(head: Part, tail: Part) -> Option<(Attrs, FleetBuilder)> {
    let (Kind::Attrs(head_attrs), Kind::Attrs(tail_attrs)) = (head.value.kind, tail.value.kind)
    else {
        return None;
    };
    let (head_attrs, tail_attrs) = (head_attrs.into_sorted_vec(), tail_attrs.into_sorted_vec());
    let len = head_attrs.len() + tail_attrs.len();
    let mut out: Vec<(_, Attr)> = Vec::with_capacity(len);
    let mut typed = FleetBuilder::with_capacity(head.typed.len() + tail.typed.len());
    // Each part's typed attributes, when there are any, go with its
    // attributes one for one.
    let (mut a, mut b) = (
        head_attrs.into_iter().peekable(),
        tail_attrs.into_iter().peekable(),
    );
    let (mut ta, mut tb) = (head.typed.into_iter(), tail.typed.into_iter());
    loop {
        let from_head = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) => match x.0.cmp(&y.0) {
                std::cmp::Ordering::Less => true,
                std::cmp::Ordering::Greater => false,
                std::cmp::Ordering::Equal => return None,
            },
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        let (entry, t) = if from_head {
            (a.next(), ta.next())
        } else {
            (b.next(), tb.next())
        };
        out.extend(entry);
        if let Some(t) = t {
            typed.add(t);
        }
    }
    Some((Attrs::from_sorted(out), typed))
}

// ------------------------------------------------------------------ guesses
//
// Neither guess needs to be right: a wrong one makes a part fail to parse
// or have the wrong shape, and the file is read serially.

/// The offset of the body set's `{`: the file's first token, or the first
/// `{` outside brackets after the `in` that ends the `let`. Comments and
/// strings are skipped roughly (an interpolation holding a quote confuses
/// it).
fn body_open(b: &[u8]) -> Option<usize> {
    let mut depth = 0usize;
    let mut lets = 0usize;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'#' => i = find(b, i, b"\n")?,
            b'/' if b.get(i + 1) == Some(&b'*') => i = find(b, i + 2, b"*/")? + 1,
            b'"' => i = string_end(b, i + 1)?,
            b'\'' if b.get(i + 1) == Some(&b'\'') => i = indented_string_end(b, i + 2)?,
            b'{' if depth == 0 && lets == 0 => return Some(i),
            b'{' | b'(' | b'[' => depth += 1,
            b'}' | b')' | b']' => depth = depth.checked_sub(1)?,
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let len = b[i..].iter().take_while(|&&x| is_name_byte(x)).count();
                if depth == 0 {
                    match &b[i..i + len] {
                        b"let" => lets += 1,
                        b"in" => lets = lets.checked_sub(1)?,
                        // Before the body, at the top: `rec`, `with`, a
                        // function... not the usual shape.
                        _ if lets == 0 => return None,
                        _ => {}
                    }
                }
                i += len - 1;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// The offset of the closing `"` of a string whose body starts at `i`.
fn string_end(b: &[u8], mut i: usize) -> Option<usize> {
    loop {
        match b.get(i)? {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
}

/// The offset of the second `'` closing an indented string whose body
/// starts at `i` (`'''`, `''$` and `''\` are escapes).
fn indented_string_end(b: &[u8], mut i: usize) -> Option<usize> {
    loop {
        let at = find(b, i, b"''")?;
        match b.get(at + 2) {
            Some(b'\'' | b'$') => i = at + 3,
            Some(b'\\') => i = at + 4,
            _ => return Some(at + 1),
        }
    }
}

fn find(b: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    b.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| from + p)
}

fn is_name_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'\'' | b'-')
}

/// A line near the middle of the body that starts a binding at the
/// bindings' indentation, whose first name differs from the binding
/// before it (so `h.a = 1; h.b = 2;` is not cut between its two paths).
fn find_cut(b: &[u8], open: usize) -> Option<usize> {
    let indent = bindings_indent(b, open)?;
    let middle = open + (b.len() - open) / 2;
    let mut line = find(b, middle, b"\n")? + 1;
    let mut previous: Option<&[u8]> = None;
    while line < b.len() {
        if let Some(name) = binding_name(b, line, indent) {
            if previous.is_some_and(|p| p != name) {
                return Some(line);
            }
            previous = Some(name);
        }
        line = find(b, line, b"\n")? + 1;
    }
    None
}

/// The indentation of the first line after the `{` that starts with a
/// name.
fn bindings_indent(b: &[u8], open: usize) -> Option<usize> {
    let mut line = find(b, open, b"\n")? + 1;
    loop {
        let indent = b[line..].iter().take_while(|&&c| c == b' ').count();
        if b.get(line + indent)
            .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_')
        {
            return Some(indent);
        }
        line = find(b, line, b"\n")? + 1;
    }
}

/// The first name of the line at `line` when it is indented by exactly
/// `indent` spaces and starts with a name.
fn binding_name(b: &[u8], line: usize, indent: usize) -> Option<&[u8]> {
    let start = line + indent;
    let spaces = b.get(line..start)?;
    let first = *b.get(start)?;
    if !spaces.iter().all(|&c| c == b' ') || !(first.is_ascii_alphabetic() || first == b'_') {
        return None;
    }
    let len = b[start..].iter().take_while(|&&c| is_name_byte(c)).count();
    Some(&b[start..start + len])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_found_after_a_let_with_sets_and_strings() {
        let text = "# { not this\nlet a = { b = \"{\"; }; c = ''}''; in\n{ x = 1; }";
        assert_eq!(body_open(text.as_bytes()), text.find("{ x"));
        assert_eq!(body_open(b"  { a = 1; }"), Some(2));
        assert_eq!(body_open(b"let a = let b = 1; in b; in { }"), Some(28));
    }

    #[test]
    fn other_shapes_have_no_body() {
        for t in [
            "rec { a = 1; }",
            "with x; { }",
            "x: { }",
            "[ { } ]",
            "let a = 1; in a",
        ] {
            assert_eq!(body_open(t.as_bytes()), None, "{t}");
        }
    }

    #[test]
    fn the_cut_is_at_a_binding_line_with_a_new_name() {
        let text = "{\n  a.x = 1;\n  a.y = 2;\n  b.x = 3;\n  b.y = 4;\n  c = 5;\n}\n";
        let cut = find_cut(text.as_bytes(), 0);
        assert_eq!(cut, text.find("  c = 5"));
    }

    #[test]
    fn small_files_are_not_planned() {
        let host = "  h = { a = 1; };\n";
        let small = format!("{{\n{}}}\n", host.repeat(10));
        assert_eq!(plan(&small), None);
    }
}
