//! The prescan as it was before its byte loops were made cheaper: the
//! oracle the tests compare the current one with, verdict, diagnostic and
//! cost alike.

use rowan::{TextRange, TextSize};

use super::{MAX_CHAIN, MAX_COST, MAX_PREFIX, MAX_RUN};
use crate::diag::{Code, Diagnostic};

/// `Err` with a diagnostic at the run or chain that crossed a bound.
pub fn check(text: &str) -> Result<(), Diagnostic> {
    let mut s = Scan::default();
    s.run(text.as_bytes())
}

/// The first part of a read split at `cut` (see
/// [`split`](super::split)): scans `text[..cut]` exactly as [`check`]
/// does, and gives the cost spent so far when the scan stops between two
/// bindings of a set at the top of the file (code, not a string; the set's
/// frame and the file's both without a pending chain), the only state
/// [`check_tail`] can start from. `Ok(None)` when it stops anywhere else.
pub fn check_head(text: &str, cut: usize) -> Result<Option<u64>, Diagnostic> {
    let b = text.as_bytes();
    let mut s = Scan::default();
    s.frames.push(Frame::new(Open::Bracket, 0));
    let (end, mode) = s.scan(b, 0, cut, Mode::Code)?;
    let clean = |f: &Frame| f.open == Open::Bracket && f.chain == 0;
    let between_bindings = end == cut
        && mode == Mode::Code
        && s.frames.len() == 2
        && s.frames.iter().all(clean)
        && s.prefix == 0
        && !s.after_operand;
    Ok(between_bindings.then_some(s.cost))
}

/// The rest of a read split at `cut`: scans `text[cut..]` from the state
/// [`check_head`] accepted, and gives its cost. The whole file passes
/// [`check`] when both parts pass and their costs sum to at most
/// [`MAX_COST`].
pub fn check_tail(text: &str, cut: usize) -> Result<u64, Diagnostic> {
    let b = text.as_bytes();
    let mut s = Scan::default();
    s.frames.push(Frame::new(Open::Bracket, 0));
    s.frames.push(Frame::new(Open::Bracket, cut));
    s.scan(b, cut, b.len(), Mode::Code)?;
    s.finish(b.len())?;
    Ok(s.cost)
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

fn is_run_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'+' | b'-')
}

const SEPARATOR_WORDS: &[&[u8]] = &[
    b"in", b"then", b"else", b"if", b"let", b"with", b"assert", b"inherit", b"rec",
];

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
        while i < to {
            i = match mode {
                Mode::Code => self.code(b, i, to, &mut mode)?,
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

    /// One token (or trivia) in code; returns where the next one starts.
    /// A run of whitespace is passed over at once, up to `to` (where a
    /// split read's head must stop).
    fn code(
        &mut self,
        b: &[u8],
        i: usize,
        to: usize,
        mode: &mut Mode,
    ) -> Result<usize, Diagnostic> {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c.is_ascii_whitespace() {
            let run = b.get(i..to).unwrap_or_default();
            let len = run.iter().take_while(|c| c.is_ascii_whitespace()).count();
            return Ok(i + len.max(1));
        }
        if c == b'#' {
            return Ok(b[i..]
                .iter()
                .position(|&x| x == b'\n')
                .map_or(b.len(), |p| i + p));
        }
        if c == b'/' && next == Some(b'*') {
            let end = find(b, i + 2, b"*/").map_or(b.len(), |p| p + 2);
            return Ok(end);
        }
        if is_run_byte(c) {
            let len = b[i..].iter().take_while(|&&x| is_run_byte(x)).count();
            self.path_run(b, i, len)?;
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

    /// A run of path characters: names, numbers, and `+ - .` between them.
    fn path_run(&mut self, b: &[u8], i: usize, len: usize) -> Result<(), Diagnostic> {
        if len > MAX_RUN {
            return Err(too_long(
                i,
                len,
                format!("{len} characters without a space or bracket"),
            ));
        }
        self.spend((len as u64).pow(2), i, len)?;
        let word = &b[i..i + len];
        if SEPARATOR_WORDS.contains(&word) {
            return self.separator(i);
        }
        if word == b"or" {
            return self.operator(i, false);
        }
        // A leading `-` with no operand before it is a prefix minus; the
        // other `+ - .` inside the run are operators of the chain (an
        // overcount for names with dashes, which only matters past
        // MAX_CHAIN of them).
        let mut ops = word
            .iter()
            .filter(|&&x| matches!(x, b'+' | b'-' | b'.'))
            .count();
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

    fn separator(&mut self, i: usize) -> Result<(), Diagnostic> {
        let f = self.top();
        let (chain, start) = (f.chain, f.chain_start);
        f.chain = 0;
        self.prefix = 0;
        self.after_operand = false;
        self.spend(3 * (chain as u64).pow(2), start.min(i), 1)
    }

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
            Mode::Str => rest.iter().position(|&c| matches!(c, b'\\' | b'$' | b'"')),
            _ => rest.iter().position(|&c| matches!(c, b'\'' | b'$')),
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

fn find(b: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    b.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| from + p)
}

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
