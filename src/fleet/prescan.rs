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
    let b = text.as_bytes();
    let mut s = Scan::new();
    s.scan(b, 0, b.len())?;
    s.finish(b.len())
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
    let mut s = Scan::new();
    if let Some(start) = start {
        s.open(Open::Bracket, start);
    }
    let start = start.unwrap_or(0);
    let Some(cut) = end else {
        s.scan(b, start, b.len())?;
        s.finish(b.len())?;
        return Ok(Some(s.cost));
    };
    let (end, mode) = s.scan(b, start, cut)?;
    let clean = |f: &Frame| f.open == Open::Bracket && f.chain == 0;
    let between_bindings = end == cut
        && mode == Mode::Code
        && s.outer.len() == 1
        && s.outer.iter().all(clean)
        && clean(&s.top)
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
    /// Where the pending chain started; only read while `chain > 0` (a
    /// frame's `chain_start` is set whenever its chain leaves 0).
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

/// The scan's state. Two facts keep its checks few on the common path:
/// `cost <= MAX_COST` and every frame's `chain <= MAX_CHAIN` whenever no
/// error has been returned (each addition is checked at once), so spending
/// nothing and adding no operator can never fail.
struct Scan {
    /// The frames around the innermost one, the file's first.
    outer: Vec<Frame>,
    /// The innermost frame, apart from the stack: nearly every token reads
    /// or writes it.
    top: Frame,
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
/// shifting, so it must stay the highest (and the byte that ends a run,
/// of another class, adds nothing).
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

/// The bytes of class `SPACE`, as a pattern (for the scan's dispatch).
macro_rules! space {
    () => {
        b' ' | b'\t' | b'\n' | b'\r' | b'\x0c'
    };
}

/// The bytes of class `RUN`, as a pattern.
macro_rules! run {
    () => {
        b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' | b'+' | b'-'
    };
}

fn class(b: u8) -> u8 {
    CLASS[usize::from(b)]
}

/// Eight bytes at a time: the high bit of each byte of `x` that is zero
/// is set in the result. Bits above the lowest set one may be wrong (a
/// borrow runs on), so only the lowest is read.
#[inline]
fn zero_bytes(x: u64) -> u64 {
    const LOW: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_le_bytes([0x80; 8]);
    x.wrapping_sub(LOW) & !x & HIGH
}

/// The first byte of `rest` that is one of `a`, `b`, `c`, or its length:
/// `memchr3`, but the first two words are tested here, eight bytes at a
/// time (most strings of a fleet end within them, and a call to `memchr3`
/// costs more than such a string; the long ones, keys, are its to pass).
#[inline]
fn find3(rest: &[u8], a: u8, b: u8, c: u8) -> usize {
    let (a8, b8, c8) = (
        u64::from_le_bytes([a; 8]),
        u64::from_le_bytes([b; 8]),
        u64::from_le_bytes([c; 8]),
    );
    let mut at = 0;
    while at < 16 {
        let Some(w) = rest.get(at..at + 8) else {
            break;
        };
        let mut x = [0u8; 8];
        x.copy_from_slice(w);
        let x = u64::from_le_bytes(x);
        let hit = zero_bytes(x ^ a8) | zero_bytes(x ^ b8) | zero_bytes(x ^ c8);
        if hit != 0 {
            // Little-endian: the lowest bit is the first byte.
            return at + (hit.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    let tail = rest.get(at..).unwrap_or_default();
    at + memchr::memchr3(a, b, c, tail).unwrap_or(tail.len())
}

impl Scan {
    /// The state at the file's start: its frame only.
    fn new() -> Self {
        Scan {
            outer: Vec::new(),
            top: Frame::new(Open::Bracket, 0),
            cost: 0,
            prefix: 0,
            prefix_start: 0,
            after_operand: false,
        }
    }

    /// Scans from `from` (in code) until a token ends at or past `to`;
    /// returns where it stopped and the mode there: code, or a string
    /// the text ends in.
    fn scan(&mut self, b: &[u8], from: usize, to: usize) -> Result<(usize, Mode), Diagnostic> {
        let mut i = from;
        let mut mode = Mode::Code;
        // Whitespace is passed over only up to `to` (where a split read's
        // head must stop); tokens, strings and comments run on past it.
        let end = to.min(b.len());
        // Where tokens may start.
        let head = b.get(..end).unwrap_or_default();
        while let Some(&c) = head.get(i) {
            // Whitespace is between nearly every two tokens, and mostly one
            // space: that one is passed over here, on the way to the next
            // token.
            let (at, c) = if c == b' ' {
                match head.get(i + 1) {
                    Some(&next) => (i + 1, next),
                    None => return Ok((i + 1, mode)),
                }
            } else {
                (i, c)
            };
            i = self.code(b, at, c, end, &mut mode)?;
        }
        Ok((i, mode))
    }

    /// The end of the file closes every frame still open, the innermost
    /// first.
    fn finish(&mut self, len: usize) -> Result<(), Diagnostic> {
        let (chain, start) = (self.top.chain, self.top.chain_start);
        self.end_chain(chain, start, len)?;
        while let Some(f) = self.outer.pop() {
            self.end_chain(f.chain, f.chain_start, len)?;
        }
        Ok(())
    }

    /// One token, comment or run of whitespace (up to `end`) in code, `c`
    /// at `i`; returns where the next one starts.
    #[inline(always)]
    fn code(
        &mut self,
        b: &[u8],
        i: usize,
        c: u8,
        end: usize,
        mode: &mut Mode,
    ) -> Result<usize, Diagnostic> {
        // Read by the few arms that need it.
        let next = || b.get(i + 1).copied();
        // One dispatch for every kind of token: the first two patterns are
        // the byte classes of `CLASS` (a test holds them equal).
        let (len, is_prefix) = match c {
            space!() => {
                let mut i = i + 1;
                while i < end && b.get(i).is_some_and(|&c| class(c) == SPACE) {
                    i += 1;
                }
                return Ok(i);
            }
            run!() => return self.path_run(b, i),
            b'"' => {
                // The whole string at once (see `string`).
                self.operand();
                let (next, m) = self.string(b, i + 1);
                *mode = m;
                return Ok(next);
            }
            b';' | b',' | b':' => {
                self.separator(i)?;
                return Ok(i + 1);
            }
            b'=' if next() != Some(b'=') => {
                self.separator(i)?;
                return Ok(i + 1);
            }
            b'{' | b'(' | b'[' => {
                self.open(Open::Bracket, i);
                return Ok(i + 1);
            }
            b'$' if next() == Some(b'{') => {
                self.open(Open::Bracket, i);
                return Ok(i + 2);
            }
            b'}' | b')' | b']' => {
                // The end of `${ }` goes on with the rest of its string.
                let (next, m) = match self.close(i)? {
                    Some(Mode::Str) => self.string(b, i + 1),
                    Some(Mode::IndStr) => self.ind_string(b, i + 1),
                    _ => (i + 1, Mode::Code),
                };
                *mode = m;
                return Ok(next);
            }
            b'\'' if next() == Some(b'\'') => {
                self.operand();
                let (next, m) = self.ind_string(b, i + 2);
                *mode = m;
                return Ok(next);
            }
            b'#' => {
                let rest = b.get(i..).unwrap_or_default();
                return Ok(memchr::memchr(b'\n', rest).map_or(b.len(), |p| i + p));
            }
            b'/' if next() == Some(b'*') => {
                let body = b.get(i + 2..).unwrap_or_default();
                let end = memchr::memmem::find(body, b"*/").map_or(b.len(), |p| i + 2 + p + 2);
                return Ok(end);
            }
            b'/' if next() == Some(b'/') => (2, false),
            b'!' if next() == Some(b'=') => (2, false),
            b'!' => (1, true),
            b'=' | b'<' | b'>' | b'&' | b'|'
                if matches!(next(), Some(b'=' | b'&' | b'|' | b'>' | b'<')) =>
            {
                (2, false)
            }
            _ => (1, false),
        };
        self.operator(i, is_prefix)?;
        Ok(i + len)
    }

    /// A run of path characters from `i`: names, numbers, and `+ - .`
    /// between them; returns where it ends.
    fn path_run(&mut self, b: &[u8], i: usize) -> Result<usize, Diagnostic> {
        let rest = b.get(i..).unwrap_or_default();
        // The run's length and its `+ - .` in one pass.
        let mut ops = 0;
        let mut len = 0;
        // Eight bytes a turn while eight are left (names are mostly up to
        // 14 bytes): a loop of fixed length, unrolled, with no bound to
        // check per byte.
        let mut ended = false;
        while let Some(w) = rest.get(len..).and_then(|w| w.first_chunk::<8>()) {
            let mut run = 8;
            for (j, &x) in w.iter().enumerate() {
                let k = class(x);
                ops += usize::from(k >> 2);
                if k & RUN == 0 {
                    run = j;
                    ended = true;
                    break;
                }
            }
            len += run;
            if ended {
                break;
            }
        }
        if !ended {
            let tail = rest.get(len..).unwrap_or_default();
            len += tail
                .iter()
                .position(|&x| {
                    let k = class(x);
                    ops += usize::from(k >> 2);
                    k & RUN == 0
                })
                .unwrap_or(tail.len());
        }
        let word = rest.get(..len).unwrap_or_default();
        if len > MAX_RUN {
            return Err(too_long(
                i,
                len,
                format!("{len} characters without a space or bracket"),
            ));
        }
        self.spend((len as u64).pow(2), i, len)?;
        // The keywords that matter here are at most 7 bytes long.
        if len <= 7 {
            match word {
                b"in" | b"then" | b"else" | b"if" | b"let" | b"with" | b"assert" | b"inherit"
                | b"rec" => {
                    self.separator(i)?;
                    return Ok(i + len);
                }
                b"or" => {
                    self.operator(i, false)?;
                    return Ok(i + len);
                }
                _ => {}
            }
        }
        if ops == 0 {
            // A name or a number (most runs): an operand, no chain to add
            // to (so none to check, and its start is not read).
            self.operand();
            return Ok(i + len);
        }
        // A leading `-` with no operand before it is a prefix minus; the
        // other `+ - .` inside the run are operators of the chain (an
        // overcount for names with dashes, which only matters past
        // MAX_CHAIN of them).
        if word.first() == Some(&b'-') && !self.after_operand {
            self.operator(i, true)?;
            ops -= 1;
            if len == 1 {
                // A lone `-`: the prefix row goes on.
                return Ok(i + len);
            }
        }
        self.prefix = 0;
        self.add_to_chain(i, ops)?;
        self.after_operand = !matches!(word.last(), Some(b'+' | b'-' | b'.'));
        Ok(i + len)
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
        self.add_to_chain(i, 1)
    }

    /// `ops` operators at `i` in the innermost frame's chain.
    #[inline]
    fn add_to_chain(&mut self, i: usize, ops: usize) -> Result<(), Diagnostic> {
        let f = &mut self.top;
        if f.chain == 0 {
            f.chain_start = i;
        }
        f.chain += ops;
        if f.chain > MAX_CHAIN {
            return Err(too_long(
                f.chain_start,
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
        self.prefix = 0;
        self.after_operand = false;
        // An empty chain costs nothing (and spending nothing cannot fail).
        let chain = std::mem::take(&mut self.top.chain);
        if chain == 0 {
            return Ok(());
        }
        self.spend(3 * (chain as u64).pow(2), self.top.chain_start.min(i), 1)
    }

    #[inline]
    fn open(&mut self, open: Open, i: usize) {
        self.prefix = 0;
        self.after_operand = false;
        let outer = std::mem::replace(&mut self.top, Frame::new(open, i));
        self.outer.push(outer);
    }

    /// A closing bracket at `i`; returns the mode of the string it goes
    /// back to when it closes `${`.
    fn close(&mut self, i: usize) -> Result<Option<Mode>, Diagnostic> {
        let mut back_to = None;
        // The outermost frame is never popped here: a stray `}` is
        // rnix's to report.
        if let Some(outer) = self.outer.pop() {
            let f = std::mem::replace(&mut self.top, outer);
            self.end_chain(f.chain, f.chain_start, i)?;
            if let Open::Interp(m) = f.open {
                back_to = Some(m);
            }
        }
        self.operand();
        Ok(back_to)
    }

    fn end_chain(&mut self, chain: usize, start: usize, i: usize) -> Result<(), Diagnostic> {
        if chain == 0 {
            return Ok(());
        }
        self.spend(3 * (chain as u64).pow(2), start.min(i), 1)
    }

    /// The rest of a `"` string from `i`, up to where it ends (the scan
    /// is back in code) or `${` opens code in it; returns where the scan
    /// goes on, and in which mode (still the string's at the end of the
    /// text). Runs of ordinary characters (most of a fleet's strings:
    /// keys, names) are passed over at once. Nothing inside a string can
    /// fail, and no place in it is one a split read resumes at, so the
    /// scan need not stop at `to` in it: where it stops past `to` changes
    /// nothing [`check_part`] gives.
    // Inlined: the call alone costs a fifth of a short string's scan.
    #[inline(always)]
    fn string(&mut self, b: &[u8], mut i: usize) -> (usize, Mode) {
        loop {
            let rest = b.get(i..).unwrap_or_default();
            let plain = find3(rest, b'\\', b'$', b'"');
            i += plain;
            let special = rest.get(plain..).unwrap_or_default();
            if special.first() == Some(&b'"') {
                return (i + 1, Mode::Code);
            }
            match special {
                [] => return (i, Mode::Str),
                [b'\\', _, ..] | [b'$', b'$', ..] => i += 2,
                [b'$', b'{', ..] => {
                    self.open(Open::Interp(Mode::Str), i);
                    return (i + 2, Mode::Code);
                }
                _ => i += 1,
            }
        }
    }

    /// The same in a `''` string.
    fn ind_string(&mut self, b: &[u8], mut i: usize) -> (usize, Mode) {
        loop {
            let rest = b.get(i..).unwrap_or_default();
            let plain = memchr::memchr2(b'\'', b'$', rest).unwrap_or(rest.len());
            i += plain;
            match rest.get(plain..).unwrap_or_default() {
                [] => return (i, Mode::IndStr),
                [b'\'', b'\'', b'\'' | b'$' | b'\\', ..] => i += 3,
                [b'$', b'$', ..] => i += 2,
                [b'\'', b'\'', ..] => return (i + 2, Mode::Code),
                [b'$', b'{', ..] => {
                    self.open(Open::Interp(Mode::IndStr), i);
                    return (i + 2, Mode::Code);
                }
                _ => i += 1,
            }
        }
    }

    #[inline]
    fn spend(&mut self, cost: u64, at: usize, len: usize) -> Result<(), Diagnostic> {
        // No overflow: the cost is at most MAX_COST before, and what one
        // run or chain adds at most MAX_RUN squared (or three times
        // MAX_CHAIN squared).
        self.cost += cost;
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
    fn the_dispatch_patterns_are_the_byte_classes() {
        for c in 0..=255u8 {
            assert_eq!(matches!(c, space!()), class(c) == SPACE, "{c}");
            assert_eq!(matches!(c, run!()), class(c) & RUN != 0, "{c}");
            assert_eq!(class(c) == SPACE, c.is_ascii_whitespace(), "{c}");
            let run = c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'+' | b'-');
            assert_eq!(class(c) & RUN != 0, run, "{c}");
        }
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

    /// Pieces of Nix-like text where the scan's fast paths have edges:
    /// names and numbers around the eight-byte steps of the run loop,
    /// strings around the two words tested before `memchr3` (escapes, `$`,
    /// `${ }`, unterminated), `''` strings, whitespace runs, the tokens
    /// between them.
    fn fleet_piece() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        const TOKENS: &[&str] = &[
            " = ", "=", ";", "{", "}", "[", "]", "(", ")", "${", ":", ",", ".", "+", "-", "!",
            "==", "//", "#", "/*", "*/", "or", "in", "let", "rec", "''", "\"", "$",
        ];
        prop_oneof![
            4 => "[a-zA-Z_][a-zA-Z0-9_'-]{0,20}",
            2 => "[0-9][0-9.+-]{0,18}",
            4 => "\"[a-zA-Z0-9 +/=$\\\\{}\"-]{0,40}\"?",
            1 => "''[a-z '$\\\\{}]{0,20}(''|)",
            4 => "[ \t\n]{1,4}",
            3 => proptest::sample::select(TOKENS).prop_map(str::to_string),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(500))]
        #[test]
        fn fleet_like_text_reads_as_the_old_scan_at_every_cut(
            pieces in proptest::collection::vec(fleet_piece(), 0..30),
        ) {
            let text = pieces.concat();
            assert_eq!(check(&text), old::check(&text), "check {text:?}");
            for cut in 0..=text.len() {
                same_halves_as_old(&text, cut);
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "[-+.!a-z0-9 \"'${}()\\[\\];=#/*\n\\\\]{0,200}|\\PC{0,100}") {
            let _ = check(&s);
        }
    }
}
