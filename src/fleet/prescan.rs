//! A linear pass over the text before rnix sees it, refusing what rnix
//! would take quadratic time (or its whole stack) to read:
//!
//! - rnix's tokenizer, at the start of every token, looks ahead over the
//!   following run of path characters (`a-z A-Z 0-9 _ . + -`), so a run
//!   like `1+1+1+...` or `a.b.b.b...` costs the square of its length
//!   (20,000 operands: 5 s; 80,000: over a minute);
//! - its parser and rowan spend the square of a chain's length on long
//!   chains of operators, attribute paths and `or` defaults, and recurse
//!   once per prefix `!` or `-`.
//!
//! So each run, chain and prefix run is bounded, and the estimated cost of
//! all of them together too. Real fleets stay orders of magnitude below
//! every bound; well-formed files in the common subset do not reach rnix at
//! all (see [`fast_parse`](super::fast_parse)).

use rowan::{TextRange, TextSize};

use crate::diag::{Code, Diagnostic};

#[cfg(test)]
mod old;

/// Operators in one chain (one expression between separators).
pub const MAX_CHAIN: usize = 1000;
/// Prefix `!` / `-` in a row (each is one level of nesting).
pub const MAX_PREFIX: usize = super::syntax::MAX_NESTING;
/// Characters in one run of path characters outside strings and comments.
pub const MAX_RUN: usize = 4096;
/// The estimated cost of tokenizing and parsing the whole file (runs and
/// chains, each counted by the square of its length): about a second of
/// rnix. The 40,000-host generated fleet (19 MB) spends a fifth of it.
pub const MAX_COST: u64 = 400_000_000;

/// `Err` with a diagnostic at the run or chain that crossed a bound.
pub fn check(text: &str) -> Result<(), Diagnostic> {
    let mut s = Scan::default();
    s.run(text.as_bytes())
}

/// The first part of a read split at `cut`: [`check_part`] from the
/// file's start (tests, and the old prescan's oracle, compare it).
#[cfg(test)]
pub fn check_head(text: &str, cut: usize) -> Result<Option<u64>, Diagnostic> {
    check_part(text, None, Some(cut))
}

/// The rest of a read split at `cut`: [`check_part`] to the file's end.
#[cfg(test)]
pub fn check_tail(text: &str, cut: usize) -> Result<u64, Diagnostic> {
    Ok(check_part(text, Some(cut), None)?.unwrap_or(0))
}

/// One part of a read split at several cuts (see [`split`](super::split)):
/// the text from the cut `start` (from the file's start with `None`) to the
/// cut `end` (to the file's end with `None`), scanned exactly as [`check`]
/// scans it. A part that stops at a cut gives the cost it spent only when
/// the scan stops there between two bindings of a set at the top of the
/// file (code, not a string; the set's frame and the file's both without a
/// pending chain), the only state the next part can start from (a part
/// from a cut starts in it); `Ok(None)` when it stops anywhere else. The
/// last part gives its cost when the file ends as [`check`] requires. The
/// whole file passes [`check`] when every part of one split passes and
/// their costs sum to at most [`MAX_COST`].
pub fn check_part(
    text: &str,
    start: Option<usize>,
    end: Option<usize>,
) -> Result<Option<u64>, Diagnostic> {
    let b = text.as_bytes();
    let mut s = Scan::default();
    s.frames.push(Frame::new(Open::Bracket, 0));
    if let Some(start) = start {
        s.frames.push(Frame::new(Open::Bracket, start));
    }
    let start = start.unwrap_or(0);
    let Some(cut) = end else {
        s.scan(b, start, b.len(), Mode::Code)?;
        s.finish(b.len())?;
        return Ok(Some(s.cost));
    };
    let (end, mode) = s.scan(b, start, cut, Mode::Code)?;
    let clean = |f: &Frame| f.open == Open::Bracket && f.chain == 0;
    let between_bindings = end == cut
        && mode == Mode::Code
        && s.frames.len() == 2
        && s.frames.iter().all(clean)
        && s.prefix == 0
        && !s.after_operand;
    Ok(between_bindings.then_some(s.cost))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Code,
    Str,
    IndStr,
}

/// What a bracket on the stack opened.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Open {
    /// `{`, `(`, `[`: its operators form chains of their own.
    Bracket,
    /// `${` inside a string of this mode.
    Interp(Mode),
}

struct Frame {
    open: Open,
    /// Operators since the last separator in this frame.
    chain: usize,
    chain_start: usize,
}

impl Frame {
    fn new(open: Open, at: usize) -> Self {
        Frame {
            open,
            chain: 0,
            chain_start: at,
        }
    }
}

#[derive(Default)]
struct Scan {
    frames: Vec<Frame>,
    cost: u64,
    /// Prefix operators in a row, and where the row started.
    prefix: usize,
    prefix_start: usize,
    /// Whether the last significant token ends an operand (so a `-` after
    /// it is binary).
    after_operand: bool,
}

/// Byte classes, one table lookup per byte in the loops that pass over
/// whitespace and runs (most of a file's bytes outside strings).
const SPACE: u8 = 1;
/// A path character (`a-z A-Z 0-9 _ . + -`).
const RUN: u8 = 2;
/// `+ - .`, the run bytes that are operators; the bit is counted by
/// shifting, so it must stay the highest.
const RUN_OP: u8 = 4;

const CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        if b.is_ascii_whitespace() {
            t[c] = SPACE;
        } else if b.is_ascii_alphanumeric() || b == b'_' {
            t[c] = RUN;
        } else if matches!(b, b'.' | b'+' | b'-') {
            t[c] = RUN | RUN_OP;
        }
        c += 1;
    }
    t
};

fn class(b: u8) -> u8 {
    CLASS[usize::from(b)]
}

impl Scan {
    fn run(&mut self, b: &[u8]) -> Result<(), Diagnostic> {
        self.frames.push(Frame::new(Open::Bracket, 0));
        self.scan(b, 0, b.len(), Mode::Code)?;
        self.finish(b.len())
    }

    /// Scans from `from` (in `mode`) until a token ends at or past `to`;
    /// returns where it stopped and the mode there.
    fn scan(
        &mut self,
        b: &[u8],
        from: usize,
        to: usize,
        mut mode: Mode,
    ) -> Result<(usize, Mode), Diagnostic> {
        let mut i = from;
        // A run of whitespace is passed over at once, up to `to` (where a
        // split read's head must stop); here, not in `code`, as it is
        // between nearly every two tokens.
        let end = to.min(b.len());
        while i < to {
            i = match mode {
                Mode::Code if b.get(i).is_some_and(|&c| class(c) == SPACE) => b
                    .get(i + 1..end)
                    .and_then(|rest| rest.iter().position(|&c| class(c) != SPACE))
                    .map_or(end, |p| i + 1 + p),
                Mode::Code => self.code(b, i, &mut mode)?,
                Mode::Str | Mode::IndStr => self.string(b, i, &mut mode),
            };
        }
        Ok((i, mode))
    }

    /// The end of the file closes every frame still open.
    fn finish(&mut self, len: usize) -> Result<(), Diagnostic> {
        while let Some(f) = self.frames.pop() {
            self.end_chain(&f, len)?;
        }
        Ok(())
    }

    /// One token (or a comment) in code; returns where the next one starts.
    fn code(&mut self, b: &[u8], i: usize, mode: &mut Mode) -> Result<usize, Diagnostic> {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == b'#' {
            return Ok(memchr::memchr(b'\n', &b[i..]).map_or(b.len(), |p| i + p));
        }
        if c == b'/' && next == Some(b'*') {
            let body = b.get(i + 2..).unwrap_or_default();
            let end = memchr::memmem::find(body, b"*/").map_or(b.len(), |p| i + 2 + p + 2);
            return Ok(end);
        }
        if class(c) & RUN != 0 {
            // The run's length and its `+ - .` in one pass.
            let mut ops = 0;
            let mut len = 0;
            for &x in &b[i..] {
                let k = class(x);
                if k & RUN == 0 {
                    break;
                }
                ops += usize::from(k >> 2);
                len += 1;
            }
            self.path_run(b, i, len, ops)?;
            return Ok(i + len);
        }
        let (len, is_prefix) = match (c, next) {
            (b'"', _) => {
                *mode = Mode::Str;
                self.operand();
                return Ok(i + 1);
            }
            (b'\'', Some(b'\'')) => {
                *mode = Mode::IndStr;
                self.operand();
                return Ok(i + 2);
            }
            (b'$', Some(b'{')) | (b'{', _) | (b'(', _) | (b'[', _) => {
                let len = if c == b'$' { 2 } else { 1 };
                self.open(Open::Bracket, i);
                return Ok(i + len);
            }
            (b'}', _) | (b')', _) | (b']', _) => {
                self.close(b, i, mode)?;
                return Ok(i + 1);
            }
            (b';' | b',' | b':', _) => {
                self.separator(i)?;
                return Ok(i + 1);
            }
            (b'=', n) if n != Some(b'=') => {
                self.separator(i)?;
                return Ok(i + 1);
            }
            (b'!', Some(b'=')) => (2, false),
            (b'!', _) => (1, true),
            (b'=' | b'<' | b'>' | b'&' | b'|' | b'-', Some(b'=' | b'&' | b'|' | b'>' | b'<')) => {
                (2, false)
            }
            (b'/', Some(b'/')) => (2, false),
            _ => (1, false),
        };
        self.operator(i, is_prefix)?;
        Ok(i + len)
    }

    /// A run of path characters (`len` of them, `ops` of which are `+ - .`):
    /// names, numbers, and `+ - .` between them.
    fn path_run(&mut self, b: &[u8], i: usize, len: usize, ops: usize) -> Result<(), Diagnostic> {
        if len > MAX_RUN {
            return Err(too_long(
                i,
                len,
                format!("{len} characters without a space or bracket"),
            ));
        }
        self.spend((len as u64).pow(2), i, len)?;
        let word = &b[i..i + len];
        // The keywords that matter here are at most 7 bytes long.
        if len <= 7 {
            match word {
                b"in" | b"then" | b"else" | b"if" | b"let" | b"with" | b"assert" | b"inherit"
                | b"rec" => return self.separator(i),
                b"or" => return self.operator(i, false),
                _ => {}
            }
        }
        // A leading `-` with no operand before it is a prefix minus; the
        // other `+ - .` inside the run are operators of the chain (an
        // overcount for names with dashes, which only matters past
        // MAX_CHAIN of them).
        let mut ops = ops;
        if word[0] == b'-' && !self.after_operand {
            self.operator(i, true)?;
            ops -= 1;
            if word.len() == 1 {
                // A lone `-`: the prefix row goes on.
                return Ok(());
            }
        }
        self.prefix = 0;
        let f = self.top();
        if f.chain == 0 {
            f.chain_start = i;
        }
        f.chain += ops;
        self.check_chain()?;
        self.after_operand = !matches!(word.last(), Some(b'+' | b'-' | b'.'));
        Ok(())
    }

    #[inline]
    fn operand(&mut self) {
        self.prefix = 0;
        self.after_operand = true;
    }

    fn operator(&mut self, i: usize, prefix: bool) -> Result<(), Diagnostic> {
        if prefix || (!self.after_operand && self.prefix > 0) {
            if self.prefix == 0 {
                self.prefix_start = i;
            }
            self.prefix += 1;
            if self.prefix > MAX_PREFIX {
                return Err(too_long(
                    self.prefix_start,
                    i + 1 - self.prefix_start,
                    format!("more than {MAX_PREFIX} prefix operators (`!`, `-`) in a row"),
                ));
            }
        } else {
            self.prefix = 0;
        }
        self.after_operand = false;
        let f = self.top();
        if f.chain == 0 {
            f.chain_start = i;
        }
        f.chain += 1;
        self.check_chain()
    }

    #[inline]
    fn check_chain(&mut self) -> Result<(), Diagnostic> {
        let f = self.top();
        if f.chain > MAX_CHAIN {
            let start = f.chain_start;
            return Err(too_long(
                start,
                1,
                format!(
                    "a chain of more than {MAX_CHAIN} operators, attribute names or `or` defaults"
                ),
            ));
        }
        Ok(())
    }

    #[inline]
    fn separator(&mut self, i: usize) -> Result<(), Diagnostic> {
        let f = self.top();
        let (chain, start) = (f.chain, f.chain_start);
        f.chain = 0;
        self.prefix = 0;
        self.after_operand = false;
        self.spend(3 * (chain as u64).pow(2), start.min(i), 1)
    }

    #[inline]
    fn open(&mut self, open: Open, i: usize) {
        self.prefix = 0;
        self.after_operand = false;
        self.frames.push(Frame {
            open,
            chain: 0,
            chain_start: i,
        });
    }

    fn close(&mut self, b: &[u8], i: usize, mode: &mut Mode) -> Result<(), Diagnostic> {
        // The outermost frame is never popped here: a stray `}` is
        // rnix's to report.
        if self.frames.len() > 1 {
            if let Some(f) = self.frames.pop() {
                self.end_chain(&f, i)?;
                if let Open::Interp(m) = f.open {
                    *mode = m;
                }
            }
        }
        let _ = b;
        self.operand();
        Ok(())
    }

    fn end_chain(&mut self, f: &Frame, i: usize) -> Result<(), Diagnostic> {
        self.spend(3 * (f.chain as u64).pow(2), f.chain_start.min(i), 1)
    }

    /// One character or escape inside a string; `${` switches to code.
    /// A run of ordinary characters (most of a fleet's strings: keys,
    /// names) is passed over at once.
    fn string(&mut self, b: &[u8], i: usize, mode: &mut Mode) -> usize {
        let rest = &b[i..];
        let plain = match *mode {
            Mode::Str => memchr::memchr3(b'\\', b'$', b'"', rest),
            _ => memchr::memchr2(b'\'', b'$', rest),
        }
        .unwrap_or(rest.len());
        if plain > 0 {
            return i + plain;
        }
        match *mode {
            Mode::Str => match rest {
                [b'\\', _, ..] | [b'$', b'$', ..] => i + 2,
                [b'"', ..] => {
                    *mode = Mode::Code;
                    i + 1
                }
                [b'$', b'{', ..] => {
                    self.open(Open::Interp(Mode::Str), i);
                    *mode = Mode::Code;
                    i + 2
                }
                _ => i + 1,
            },
            _ => match rest {
                [b'\'', b'\'', b'\'' | b'$' | b'\\', ..] => i + 3,
                [b'$', b'$', ..] => i + 2,
                [b'\'', b'\'', ..] => {
                    *mode = Mode::Code;
                    i + 2
                }
                [b'$', b'{', ..] => {
                    self.open(Open::Interp(Mode::IndStr), i);
                    *mode = Mode::Code;
                    i + 2
                }
                _ => i + 1,
            },
        }
    }

    #[inline]
    fn top(&mut self) -> &mut Frame {
        if self.frames.is_empty() {
            self.frames.push(Frame {
                open: Open::Bracket,
                chain: 0,
                chain_start: 0,
            });
        }
        let last = self.frames.len() - 1;
        &mut self.frames[last]
    }

    #[inline]
    fn spend(&mut self, cost: u64, at: usize, len: usize) -> Result<(), Diagnostic> {
        self.cost = self.cost.saturating_add(cost);
        if self.cost > MAX_COST {
            return Err(too_long(
                at,
                len,
                "too many long runs of operators and names for the Nix parser to read in time"
                    .to_string(),
            ));
        }
        Ok(())
    }
}

// Cold: the checks that can fail stay small where they are inlined.
#[cold]
fn too_long(at: usize, len: usize, what: String) -> Diagnostic {
    let start = TextSize::try_from(at).unwrap_or_default();
    let len = TextSize::try_from(len.min(64)).unwrap_or_default();
    Diagnostic::error(
        Code::TooLong,
        TextRange::at(start, len),
        format!("{what}: refused before parsing"),
    )
    .help("hosts.nix is data about machines; split the expression into named parts, or put spaces around operators")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(text: &str) -> bool {
        check(text).is_err()
    }

    #[test]
    fn real_files_pass() {
        for f in ["hosts.nix", "flake.nix"] {
            let text =
                std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(f))
                    .expect("read");
            assert!(check(&text).is_ok(), "{f}: {:?}", check(&text).err());
        }
    }

    #[test]
    fn long_chains_of_every_kind_are_refused() {
        let n = 5000;
        let cases = [
            format!("{{ a = {}; }}", vec!["1"; n].join("+")),
            format!("{{ a = {}; }}", vec!["1"; n].join(" + ")),
            format!("{{ a = {}true; }}", "!".repeat(n)),
            format!("{{ a = {}1; }}", "- ".repeat(n)),
            format!("{{ a = {}1; }}", "-".repeat(n)),
            format!("{{ a = b{}; }}", ".c".repeat(n)),
            format!("{{ a = b{}; }}", " . c".repeat(n)),
            format!("{{ a = {}; }}", vec!["b.c"; n].join(" or ")),
            format!("{{ a = {}; }}", vec!["[ ]"; n].join(" ++ ")),
            format!("{{ a = \"${{{}}}\"; }}", vec!["x"; n].join(" + ")),
        ];
        for (i, c) in cases.iter().enumerate() {
            assert!(refused(c), "case {i} passed");
        }
        let prefix = check(&format!("{{ a = {}1; }}", "- ".repeat(n))).err();
        assert!(prefix.is_some_and(|d| d.message.contains("prefix")));
    }

    #[test]
    fn chains_inside_strings_and_comments_are_text() {
        let n = 5000;
        assert!(!refused(&format!("{{ a = \"{}\"; }}", "1+".repeat(n))));
        assert!(!refused(&format!("{{ a = ''{}''; }}", "!".repeat(n))));
        assert!(!refused(&format!("# {}\n{{ }}", "a.".repeat(n))));
        assert!(!refused(&format!("/* {} */ {{ }}", "- ".repeat(n))));
    }

    #[test]
    fn many_short_chains_pass_and_separators_reset_them() {
        let set: String = (0..5000)
            .map(|i| format!("a{i} = b.c + d - e;\n"))
            .collect();
        assert!(!refused(&format!("{{ {set} }}")));
        let list = format!("[ {} ]", "(1 + 1) ".repeat(400));
        assert!(!refused(&list));
    }

    #[test]
    fn a_cut_between_top_bindings_scans_in_two_parts() {
        let text = "let k = \"a;b\"; in {\n  a = { x = 1; };\n  b = [ k ];\n}\n";
        let cut = text.find("  b").unwrap_or_default();
        let head = check_head(text, cut).ok().flatten();
        assert!(head.is_some());
        assert!(check_tail(text, cut).is_ok());
        // Inside a nested set, a string, after a name: not a place to
        // resume. (After `=` it is, to the prescan: the parse refuses it.)
        for inside in ["x = 1", "a;b", "b = [ k"] {
            let at = text.find(inside).unwrap_or_default() + 1;
            assert_eq!(check_head(text, at).ok().flatten(), None, "{inside}");
        }
    }

    #[test]
    fn the_parts_costs_add_up_to_the_whole() {
        // Each name costs the square of its length: 3,000 names of 400
        // characters (480 M) pass in either half and are refused whole.
        let names: String = (0..1500)
            .map(|i| format!("  {}{i:04} = 1;\n", "n".repeat(396)))
            .collect();
        let text = format!("{{\n{names}{names}}}\n");
        let cut = 2 + names.len();
        let head = check_head(&text, cut).ok().flatten().unwrap_or(u64::MAX);
        let tail = check_tail(&text, cut).unwrap_or(u64::MAX);
        assert!(head <= MAX_COST && tail <= MAX_COST);
        assert!(head + tail > MAX_COST);
        assert!(check(&text).is_err());
        // In three parts, the same sum.
        let second = cut + names.len() / 2;
        assert!(text[second..].starts_with("  n"));
        let middle = check_part(&text, Some(cut), Some(second)).ok().flatten();
        let last = check_tail(&text, second).ok();
        let parts = [check_head(&text, second).ok().flatten(), middle, last];
        assert_eq!(
            Some(head + tail),
            check_head(&text, cut)
                .ok()
                .flatten()
                .zip(middle)
                .zip(last)
                .map(|((a, b), c)| a + b + c)
        );
        assert!(parts.iter().all(Option::is_some));
    }

    #[test]
    fn a_middle_part_stops_only_between_top_bindings() {
        let text = "let k = 1; in {\n  a = { x = 1; };\n  b = [ k \"s;\" ];\n  c = 2;\n}\n";
        let (b, c) = (
            text.find("  b").unwrap_or_default(),
            text.find("  c").unwrap_or_default(),
        );
        assert!(check_part(text, Some(b), Some(c)).ok().flatten().is_some());
        for inside in ["k \"", "s;", "2;"] {
            let at = text.find(inside).unwrap_or_default() + 1;
            assert_eq!(
                check_part(text, Some(b), Some(at)).ok().flatten(),
                None,
                "{inside}"
            );
        }
    }

    /// The whole check, and both parts at `cut`, as the old prescan gives
    /// them: the verdict, the diagnostic and the cost.
    fn same_as_old(text: &str, cut: usize) {
        assert_eq!(check(text), old::check(text), "check {text:?}");
        same_halves_as_old(text, cut);
    }

    /// [`same_as_old`] but for the whole text, which does not depend on
    /// the cut: for many cuts of one text.
    fn same_halves_as_old(text: &str, cut: usize) {
        assert_eq!(
            check_head(text, cut),
            old::check_head(text, cut),
            "head {cut} {text:?}"
        );
        assert_eq!(
            check_tail(text, cut),
            old::check_tail(text, cut),
            "tail {cut} {text:?}"
        );
    }

    #[test]
    fn real_files_and_the_bounds_read_as_before_at_every_cut() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut texts: Vec<String> = ["hosts.nix", "flake.nix"]
            .iter()
            .map(|f| std::fs::read_to_string(dir.join(f)).expect("read"))
            .collect();
        let names: String = (0..1500)
            .map(|i| format!("  {}{i:04} = 1;\n", "n".repeat(396)))
            .collect();
        texts.push(format!("{{\n{names}{names}}}\n"));
        texts.push(format!("{{ a = {}; }}", "b".repeat(MAX_RUN + 1)));
        texts.push(format!("{{ a = {}1; }}", "- ".repeat(MAX_PREFIX + 1)));
        texts.push(format!("{{ a = {}; }}", vec!["1"; MAX_CHAIN + 2].join("+")));
        for text in &texts {
            assert_eq!(check(text), old::check(text), "check {text:?}");
            // Every cut in the small texts (up to 8 KiB: the files, the
            // run, prefix and chain bounds); 32 cuts, each scanning the
            // whole 1.2 MB twice over, in the one that crosses the cost.
            let step = if text.len() <= 8 * 1024 {
                1
            } else {
                text.len() / 32
            };
            for cut in (0..=text.len()).step_by(step) {
                same_halves_as_old(text, cut);
            }
        }
    }

    /// Pieces of code where the scan has a decision to make, long runs and
    /// chains included, to be put together at random.
    fn piece() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        const FIXED: &[&str] = &[
            " ", "\n", "\t", "\r", "\x0b", "\x0c", "  ", "#", "# c\n", "/*", "*/", "/* x */", "\"",
            "\\", "\\\"", "''", "'''", "''$", "''\\", "'", "${", "$$", "$", "{", "}", "(", ")",
            "[", "]", ";", ",", ":", "=", "==", "!=", "!", "-", "--", "+", "++", ".", "..", "/",
            "//", "<", "<=", ">", ">=", "->", "&&", "||", "|>", "?", "*", "@", "~", "a", "b-c",
            "x.y", "1", "2.5", "1+1", "-1", "a-", "in", "then", "else", "if", "let", "with",
            "assert", "inherit", "rec", "or", "inx", "é", "\u{2028}", "_",
        ];
        prop_oneof![
            8 => proptest::sample::select(FIXED).prop_map(str::to_string),
            1 => (1usize..3000).prop_map(|n| "a".repeat(n)),
            1 => (1usize..700).prop_map(|n| "+a".repeat(n)),
            1 => (1usize..150).prop_map(|n| "! ".repeat(n)),
            1 => (1usize..150).prop_map(|n| "-".repeat(n)),
            1 => (1usize..600).prop_map(|n| " or x".repeat(n)),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        #[test]
        fn reads_as_the_old_scan(
            pieces in proptest::collection::vec(piece(), 0..40),
            at in 0.0f64..=1.0,
        ) {
            let text = pieces.concat();
            // A cut anywhere, mid-character too: both scans work on bytes.
            let cut = (text.len() as f64 * at) as usize;
            same_as_old(&text, cut);
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "[-+.!a-z0-9 \"'${}()\\[\\];=#/*\n\\\\]{0,200}|\\PC{0,100}") {
            let _ = check(&s);
        }
    }
}
