//! A large hosts.nix read on two threads. The read (prescan, parse, scope
//! check, strict evaluation) is otherwise serial and the longest part of
//! `pve check` on a large fleet; the machines it runs on have two cores.
//!
//! It applies to the usual shape only: `{ ... }` or `let ... in { ... }`
//! whose body is a set that is not `rec`. A value there sees the `let`
//! bindings but never its siblings, so the set can be cut between two
//! bindings and each part evaluated on its own, the `let` bindings in all:
//!
//! - a part is the file with `text[open + 1..start]` (the bindings of the
//!   parts before it) read as whitespace, up to its end and a `}` after
//!   it (the last part: to the end of the file): every offset, hence every
//!   span, is the file's, except the set's own end.
//!
//! Neither is a copy: the fast parser reads the file's own bytes that way
//! ([`fast_parse::parse_part`]).
//!
//! The file is cut into more parts than there are threads, and each
//! thread takes the next part left until none is: the two threads then
//! finish within a part of each other however their parts' costs differ,
//! and also when the other programs on the machine take one core for a
//! while (two halves of the same CPU time, one per thread, finished up to
//! a fifth of the read apart when another program ran).
//!
//! The cuts are found by a guess (a line at the bindings' indentation,
//! near an even share of the bytes) and proved by the parse: a part only
//! parses, closing the body set with the appended `}`, when its end falls
//! between two bindings of that set in code (not in a string or comment),
//! and then the next part's tokens from the cut on are the file's. The
//! prescan is split at the same places ([`prescan::check_part`]). The
//! parts' sets are merged by name.
//!
//! Anything else gives `None` and the caller reads the file serially, which
//! owns every diagnostic: a part that fails to parse, scan or evaluate, a
//! name defined in two parts (a duplicate, or attribute paths that Nix
//! would merge), or budgets that together exceed one evaluation's.
//! Whenever `Some` is returned it is the serial read's value exactly (see
//! tests/it/parallel_read.rs): each part is the same tokens read the same
//! way, and a part never spends less than its share of the serial read (a
//! `let` value forced in several parts is counted in each), so within the
//! summed budget the serial read is within its own.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use compact_str::CompactString;
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

/// A part is about this large or larger: each reads the `let` bindings
/// again and starts a parser and an evaluator of its own. Small parts
/// also cost less to read (`nopaths-let-spread` at 10,000 hosts, 32 parts
/// against 16: 9 % fewer page faults, 5 % less CPU): each part's syntax,
/// freed before the next is read, is smaller.
const MIN_PART_BYTES: usize = 128 * 1024;

/// And at least this many times the bytes before the body set (the `let`
/// bindings, read by every part).
const PART_PER_LET: usize = 8;

/// At most this many parts: each merged with the others by name.
pub const MAX_PARTS: usize = 32;

/// Where the file is cut: the body set's `{` and the first byte of each
/// part after the first (the start of a line), in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub open: usize,
    pub cuts: Vec<usize>,
}

/// The file's value read on two threads, or `None` (read it serially).
/// Runs one thread's parts on this thread: call it on a thread with a
/// large stack.
pub fn evaluate(text: &str, base_dir: &Path) -> Option<Value> {
    let plan = plan(text)?;
    read_planned(text, base_dir, &plan, false).map(|(value, _)| value)
}

/// [`evaluate`], and the fleet typed from it, each part's hosts on its
/// thread: what [`Fleet::from_value`] gives on the value.
pub fn load(text: &str, base_dir: &Path) -> Option<(Value, Fleet, Vec<Diagnostic>)> {
    let plan = plan(text)?;
    let (value, typed) = read_planned(text, base_dir, &plan, true)?;
    let (fleet, diagnostics) = typed.finish();
    Some((value, fleet, diagnostics))
}

/// The file cut at `cuts` (any offsets): `None` unless each falls between
/// two bindings of the body set, in order. For tests, which try every
/// offset.
pub fn evaluate_at(text: &str, base_dir: &Path, cuts: &[usize]) -> Option<Value> {
    read_planned(text, base_dir, &plan_at(text, cuts)?, false).map(|(value, _)| value)
}

/// [`load`] with the file cut at `cuts`; for tests, as [`evaluate_at`].
pub fn load_at(
    text: &str,
    base_dir: &Path,
    cuts: &[usize],
) -> Option<(Value, Fleet, Vec<Diagnostic>)> {
    let (value, typed) = read_planned(text, base_dir, &plan_at(text, cuts)?, true)?;
    let (fleet, diagnostics) = typed.finish();
    Some((value, fleet, diagnostics))
}

/// The plan of a file cut at the given `cuts` (for the tests).
fn plan_at(text: &str, cuts: &[usize]) -> Option<Plan> {
    let open = body_open(text.as_bytes())?;
    Some(Plan {
        open,
        cuts: cuts.to_vec(),
    })
}

/// Where to cut a large file of the usual shape.
pub fn plan(text: &str) -> Option<Plan> {
    if text.len() < MIN_PARALLEL_BYTES {
        return None;
    }
    let open = body_open(text.as_bytes())?;
    plan_in(text, part_count(text.len(), open))
}

/// Where to cut a file of the usual shape into `parts` parts (fewer where
/// two fall on one line), whatever its size; [`plan`] chooses how many.
pub fn plan_in(text: &str, parts: usize) -> Option<Plan> {
    let b = text.as_bytes();
    let open = body_open(b)?;
    let cuts = find_cuts(b, open, parts)?;
    Some(Plan { open, cuts })
}

/// How many parts a file of `len` bytes whose body set opens at `open` is
/// cut into: more as it grows, and an even number (with three, one thread
/// would read two of them while the other idles).
fn part_count(len: usize, open: usize) -> usize {
    let part = MIN_PART_BYTES.max(open.saturating_mul(PART_PER_LET));
    let parts = len.saturating_sub(open) / part;
    parts.next_multiple_of(2).clamp(2, MAX_PARTS)
}

/// The value, and with `typed` every top-level attribute typed
/// ([`Typed::of`]) and put together.
fn read_planned(
    text: &str,
    base_dir: &Path,
    plan: &Plan,
    typed: bool,
) -> Option<(Value, FleetBuilder)> {
    let open = plan.open;
    // Where each part starts, and the file's end.
    let mut bounds = Vec::with_capacity(plan.cuts.len() + 2);
    bounds.push(0);
    bounds.extend_from_slice(&plan.cuts);
    bounds.push(text.len());
    let in_order = bounds.windows(2).all(|w| w[0] < w[1]);
    let cuts_ok = plan
        .cuts
        .iter()
        .all(|&c| c > open && text.is_char_boundary(c));
    if plan.cuts.is_empty() || !in_order || !cuts_ok {
        return None;
    }
    let parts = bounds.len() - 1;
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    // Takes the next part left until none is, or one has failed (the file
    // is then read serially: the rest would be wasted).
    let work = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= parts || failed.load(Ordering::Relaxed) {
                return done;
            }
            // The first part starts at the file's start, the last ends at
            // its end; the others at cuts.
            let start = (i > 0).then_some(bounds[i]);
            let end = (i + 1 < parts).then_some(bounds[i + 1]);
            let part = read_part(text, base_dir, open, start, end, typed);
            match part {
                Some(part) => done.push((i, part)),
                None => {
                    failed.store(true, Ordering::Relaxed);
                    return done;
                }
            }
        }
    };
    let (mine, theirs) = std::thread::scope(|s| {
        let other = std::thread::Builder::new()
            .name("nix-eval-tail".into())
            .stack_size(super::EVAL_STACK)
            .spawn_scoped(s, || {
                let done = work();
                super::memory::release_freed();
                done
            })
            .ok()?;
        let mine = work();
        Some((mine, other.join().ok()?))
    })?;
    if failed.load(Ordering::Relaxed) {
        return None;
    }
    let mut slots: Vec<Option<Part>> = (0..parts).map(|_| None).collect();
    for (i, part) in mine.into_iter().chain(theirs) {
        slots[i] = Some(part);
    }
    let parts: Vec<Part> = slots.into_iter().collect::<Option<_>>()?;
    let prescan_cost = parts
        .iter()
        .try_fold(0u64, |sum, p| sum.checked_add(p.prescan_cost))?;
    let spent = parts
        .iter()
        .fold(Spent::default(), |sum, p| sum.plus(p.spent));
    if prescan_cost > prescan::MAX_COST || !spent.within_limits() {
        return None;
    }
    // The last part's set ends where the file's does.
    let span = parts.last()?.value.span;
    let (attrs, typed) = merge(parts)?;
    let value = Value {
        kind: Kind::Attrs(attrs),
        span,
    };
    Some((value, typed))
}

/// One part's value and what reading it cost.
struct Part {
    value: Value,
    spent: Spent,
    prescan_cost: u64,
    /// Its attributes typed, when asked for.
    typed: Vec<Typed>,
}

/// The part from the cut `start` to the cut `end` of a file whose body
/// set opens at `open` (from the file's start, to its end, with `None`).
fn read_part(
    text: &str,
    base_dir: &Path,
    open: usize,
    start: Option<usize>,
    end: Option<usize>,
    typed: bool,
) -> Option<Part> {
    let prescan_cost = prescan::check_part(text, start, end).ok()??;
    // Each part but the first skips the bindings before it.
    let skip = start.map(|start| open + 1..start);
    let expr = fast_parse::parse_part(text, skip, end)?;
    // The set must open at `open`, and the appended `}` close it.
    let span = body_set_span(&expr)?;
    (span.start() == to_size(open)?).then_some(())?;
    if let Some(end) = end {
        (span.end() == to_size(end + 1)?).then_some(())?;
    }
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

/// The parts' sets as one, sorted by name, and their typed attributes put
/// together in the same order; `None` when a name is in two parts (the
/// serial read reports or merges it).
fn merge(parts: Vec<Part>) -> Option<(Attrs, FleetBuilder)> {
    let mut sets = Vec::with_capacity(parts.len());
    let mut typed = Vec::with_capacity(parts.len());
    for part in parts {
        let Kind::Attrs(attrs) = part.value.kind else {
            return None;
        };
        sets.push(attrs.into_sorted_vec());
        typed.push(part.typed);
    }
    let order = merge_order(&sets)?;
    // The attributes and the typed hosts are put in order on two threads
    // when there are many: each is a few MB moved into fresh memory (at
    // 10,000 hosts, 3 ms of a serial stretch where the other core idles).
    if order.len() < PARALLEL_MERGE {
        return Some((merged_sets(sets, &order), merged_typed(typed, &order)));
    }
    std::thread::scope(|s| {
        let typed = s.spawn(|| merged_typed(typed, &order));
        let sets = merged_sets(sets, &order);
        match typed.join() {
            Ok(typed) => Some((sets, typed)),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Fewer entries than this are merged on one thread.
const PARALLEL_MERGE: usize = 2048;

/// The parts' sets as one, in `order` (see [`merge_order`]).
fn merged_sets(sets: Vec<Vec<(CompactString, Attr)>>, order: &[usize]) -> Attrs {
    let mut out = Vec::with_capacity(order.len());
    let mut sets: Vec<_> = sets.into_iter().map(Vec::into_iter).collect();
    for &k in order {
        out.extend(sets[k].next());
    }
    Attrs::from_sorted(out)
}

/// The parts' typed attributes in `order`: each part's, when there are
/// any, go with its attributes one for one.
fn merged_typed(typed: Vec<Vec<Typed>>, order: &[usize]) -> FleetBuilder {
    let mut fleet = FleetBuilder::with_capacity(typed.iter().map(Vec::len).sum());
    let mut typed: Vec<_> = typed.into_iter().map(Vec::into_iter).collect();
    for &k in order {
        if let Some(t) = typed[k].next() {
            fleet.add(t);
        }
    }
    fleet
}

/// For each entry of the merged sets, in name order, the set it comes
/// from; `None` when two sets have a name in common.
fn merge_order(sets: &[Vec<(CompactString, Attr)>]) -> Option<Vec<usize>> {
    let first = |k: usize, at: usize| sets[k].get(at).map(|e| Reverse((e.0.as_bytes(), k, at)));
    let mut heap: BinaryHeap<_> = (0..sets.len()).filter_map(|k| first(k, 0)).collect();
    let mut order = Vec::with_capacity(sets.iter().map(Vec::len).sum());
    while let Some(Reverse((name, k, at))) = heap.pop() {
        // Each set's names differ: an equal one is another set's.
        if heap.peek().is_some_and(|Reverse((next, ..))| *next == name) {
            return None;
        }
        order.push(k);
        heap.extend(first(k, at + 1));
    }
    Some(order)
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

/// `parts - 1` cuts, each at a line near an even share of the body that
/// starts a binding at the bindings' indentation, whose first name
/// differs from the binding before it (so `h.a = 1; h.b = 2;` is not cut
/// between its two paths); fewer where two shares find the same line,
/// `None` where none is found.
fn find_cuts(b: &[u8], open: usize, parts: usize) -> Option<Vec<usize>> {
    let indent = bindings_indent(b, open)?;
    let body = b.len() - open;
    let mut cuts: Vec<usize> = Vec::with_capacity(parts);
    for k in 1..parts {
        let from = open + body / parts * k;
        let Some(cut) = find_cut(b, from.max(cuts.last().map_or(0, |&c| c)), indent) else {
            break;
        };
        if cuts.last().is_none_or(|&c| c < cut) {
            cuts.push(cut);
        }
    }
    (!cuts.is_empty()).then_some(cuts)
}

/// The first line after the one `from` is on that starts a binding at
/// `indent` whose first name differs from the binding before it.
fn find_cut(b: &[u8], from: usize, indent: usize) -> Option<usize> {
    let mut line = find(b, from, b"\n")? + 1;
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
        let cuts = find_cuts(text.as_bytes(), 0, 2);
        assert_eq!(cuts, text.find("  c = 5").map(|c| vec![c]));
    }

    #[test]
    fn cuts_fall_in_order_near_even_shares_between_hosts() {
        let hosts: String = (0..400)
            .map(|i| format!("  h{i:03}.a = 1;\n  h{i:03}.b = 2;\n"))
            .collect();
        let text = format!("{{\n{hosts}}}\n");
        let b = text.as_bytes();
        let cuts = find_cuts(b, 0, 4).expect("cuts");
        assert_eq!(cuts.len(), 3);
        for (k, &cut) in cuts.iter().enumerate() {
            // At a host's first line, within a host of its share.
            assert!(text[cut..].starts_with("  h") && text[cut..].contains(".a = 1"));
            assert_eq!(&text[cut + 6..cut + 8], ".a", "{k}");
            let share = text.len() * (k + 1) / 4;
            assert!(cut.abs_diff(share) < 64, "{k}: {cut} far from {share}");
        }
        // More parts than lines: each cut once, in order.
        let few = "{\n  a = 1;\n  b = 2;\n  c = 3;\n}\n";
        let cuts = find_cuts(few.as_bytes(), 0, 32).expect("cuts");
        assert!(cuts.windows(2).all(|w| w[0] < w[1]), "{cuts:?}");
    }

    #[test]
    fn parts_are_even_in_number_and_bounded() {
        assert_eq!(part_count(MIN_PARALLEL_BYTES, 0), 2);
        // Three and a half parts' worth: four, not three.
        assert_eq!(part_count(MIN_PART_BYTES * 7 / 2, 0), 4);
        assert_eq!(part_count(MIN_PART_BYTES * 10, 0), 10);
        assert_eq!(part_count(usize::MAX / 2, 0), MAX_PARTS);
        // A `let` of 1 MB is read by every part: fewer, larger parts.
        let len = 40 * 1024 * 1024;
        assert_eq!(part_count(len, 1024 * 1024), 4);
    }

    #[test]
    fn sets_are_merged_in_name_order_and_a_shared_name_refuses_them() {
        let set = |names: &[&str]| -> Vec<(CompactString, Attr)> {
            let attr = Attr {
                name_span: TextRange::default(),
                value: Value {
                    kind: Kind::Null,
                    span: TextRange::default(),
                },
            };
            names
                .iter()
                .map(|n| (CompactString::from(*n), attr.clone()))
                .collect()
        };
        let sets = [
            set(&["b", "d"]),
            set(&[]),
            set(&["a", "c", "e"]),
            set(&["bb"]),
        ];
        assert_eq!(merge_order(&sets), Some(vec![2, 0, 3, 2, 0, 2]));
        let sets = [set(&["a", "x"]), set(&["b"]), set(&["x", "z"])];
        assert_eq!(merge_order(&sets), None);
    }

    #[test]
    fn small_files_are_not_planned() {
        let host = "  h = { a = 1; };\n";
        let small = format!("{{\n{}}}\n", host.repeat(10));
        assert_eq!(plan(&small), None);
    }
}
