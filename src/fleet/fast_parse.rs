//! Straight from text to [`ir`](super::ir) for well-formed files in the
//! common subset; `None` for anything else, and the caller then takes the
//! rnix path, which owns every diagnostic.
//!
//! One pass over the bytes, no token list and no syntax tree: a lexer that
//! mirrors rnix's tokenizer for the tokens of the subset (its path
//! heuristics included, so `a/b` is a path here exactly when it is one
//! there) and a recursive-descent parser with rnix's precedence. Every
//! node's span runs from its first token to its last, which is where rnix
//! puts node boundaries (trivia around a node belongs to its parent).
//!
//! Handled: whitespace, `#` and `/* */` comments; names, `true`/`false`/
//! `null` as variables; integers and floats (read by the same `str::parse`
//! rnix uses); `"..."` and `''...''` strings with escapes and `${}` (the
//! text of an indented string is normalized by rnix's own
//! `normalized_parts`); plain paths; lists;
//! sets, `rec` sets and `let ... in` with attribute paths, quoted names and
//! `inherit` (collected by [`FlatSetBuilder`](super::ir::FlatSetBuilder),
//! which merges paths as rnix's front end does); select
//! with `or`, `?`, parentheses, `if`, every operator but the pipes.
//!
//! `None` for: any syntax error; `with`, `assert`, lambdas, `:` and `@`
//! (so URIs), application, `__curPos`, `...`, `~/` and `<...>` paths,
//! paths with `${`, dynamic attribute names, `|>` `<|`, integer overflow,
//! duplicate attributes, non-ASCII outside strings and comments, nesting
//! deeper than `MAX_NESTING` and trees taller than `MAX_HEIGHT`.

use std::rc::Rc;

use rowan::{TextRange, TextSize};
use rustc_hash::FxHashMap;

use super::ir::{
    self, AttrPath, BinOp, Expr, ExprKind, FlatSetBuilder, Ident, Literal, Name, SetDef, StrPart,
};

/// Nested constructs (and parse_expr calls) deeper than this bail out.
/// Below rnix's token-nesting bound (256) and its parser's recursion limit
/// (512), so a file this parser accepts never trips either, and far from
/// the stack limit of any thread.
const MAX_NESTING: u32 = 200;

/// IR trees taller than this bail out: well below lower's `MAX_DEPTH`, and
/// shallow enough that dropping or walking the tree recursively is safe.
/// Long left-associative chains (`a + b + ...`) grow the tree without
/// nesting, so height is tracked separately from [`MAX_NESTING`].
const MAX_HEIGHT: u32 = 1000;

/// The file's expression, or `None` when this parser is not sure.
pub fn parse(text: &str) -> Option<Expr> {
    let mut p = Parser::new(text);
    p.run()
}

/// `text[..cut]` followed by a `}`: [`parse_part`] from the file's start
/// (for the tests, which compare it with its copy).
#[cfg(test)]
pub fn parse_head(text: &str, cut: usize) -> Option<Expr> {
    parse_part(text, None, Some(cut))
}

/// The file with the bytes `skip` read as whitespace: [`parse_part`] to
/// the file's end (for the tests, as [`parse_head`]).
#[cfg(test)]
pub fn parse_tail(text: &str, skip: std::ops::Range<usize>) -> Option<Expr> {
    parse_part(text, Some(skip), None)
}

/// One part of a read split at cuts ([`split`](super::split)): the file
/// with the bytes `skip` (those right after the body's `{`, up to the
/// part's start: the parts before it) read as whitespace, and, with an
/// `end`, cut there and closed by a `}` (at offset `end`), as if the file
/// ended there. Without copying the text. `None` unless the `{` is just
/// before the skipped bytes.
pub fn parse_part(
    text: &str,
    skip: Option<std::ops::Range<usize>>,
    end: Option<usize>,
) -> Option<Expr> {
    let mut p = match end {
        Some(cut) => {
            // rowan's offsets are u32, the `}` included.
            u32::try_from(cut.checked_add(1)?).ok()?;
            let mut p = Parser::new(text.get(..cut)?);
            p.close = true;
            p
        }
        None => Parser::new(text),
    };
    if let Some(skip) = &skip {
        p.skip = (skip.start, skip.end);
    }
    let e = p.run()?;
    // Skipped it must have been: else this read the whole file.
    (skip.is_none() || p.skip.0 == usize::MAX).then_some(e)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum T {
    Eof,
    Ident,
    Int,
    Float,
    Path,
    /// `"`: the parser reads the string body itself.
    Quote,
    /// `''`: an indented string, read by the parser too.
    IndQuote,
    LBrace,
    RBrace,
    LBrack,
    RBrack,
    LParen,
    RParen,
    Dot,
    Assign,
    Semi,
    Question,
    Let,
    In,
    Rec,
    Inherit,
    If,
    Then,
    Else,
    Or,
    Concat,
    Add,
    Sub,
    Mul,
    Div,
    Update,
    Not,
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
    And,
    OrOr,
    Impl,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Self {
        Parser {
            text,
            b: text.as_bytes(),
            pos: 0,
            tok: Tok {
                kind: T::Eof,
                start: 0,
                end: 0,
            },
            prev_end: 0,
            depth: 0,
            h: 0,
            no_literals: 0,
            close: false,
            skip: (usize::MAX, usize::MAX),
            paths: FxHashMap::default(),
            path_names: Vec::new(),
            set_buffers: Vec::new(),
        }
    }

    fn run(&mut self) -> Option<Expr> {
        // rowan's offsets are u32.
        u32::try_from(self.text.len()).ok()?;
        self.bump()?;
        let e = self.expr()?;
        let e = self.settled(e)?;
        (self.tok.kind == T::Eof).then_some(e)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Assoc {
    Left,
    Right,
    /// At most one operator of the level: `a == b == c` is an error.
    Non,
}

#[derive(Debug, Clone, Copy)]
struct Tok {
    kind: T,
    start: usize,
    end: usize,
}

struct Parser<'a> {
    text: &'a str,
    b: &'a [u8],
    /// Where lexing continues: the end of `tok`.
    pos: usize,
    /// The current (not yet consumed) token.
    tok: Tok,
    /// End of the last consumed token: where a node being finished ends.
    prev_end: usize,
    /// Active nested constructs, bounded by [`MAX_NESTING`].
    depth: u32,
    /// Height (as lower counts depth, parentheses included) of the
    /// expression the last parse function returned.
    h: u32,
    /// Inside `inherit (from)`, whose expression the evaluator reads once
    /// per name: no literals there (it takes a literal's value on its
    /// first and only read).
    no_literals: u32,
    /// A `}` still to be read at the end of the text ([`parse_part`]).
    close: bool,
    /// Bytes to read as whitespace when trivia starts at the first
    /// ([`parse_part`]); `usize::MAX` once skipped (or with none).
    skip: (usize, usize),
    /// Each select path's text read so far, and its names (see
    /// [`Parser::attrpath`]).
    paths: FxHashMap<&'a str, Rc<Box<[Name]>>>,
    /// The names of the path being read (kept to reuse its buffer).
    path_names: Vec<Name>,
    /// The entry buffers of finished sets, for the next ones.
    set_buffers: ir::SetBuffers,
}

/// Byte classes: the lexer's loops over names, runs and whitespace take
/// one table lookup per byte.
const PATH: u8 = 1;
const IDENT: u8 = 2;
const SPACE: u8 = 4;

const CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        // rnix's `is_valid_path_char`.
        if matches!(b, b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'/' | b'_' | b'.' | b'+' | b'-') {
            t[c] |= PATH;
        }
        if matches!(b, b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'\'' | b'-') {
            t[c] |= IDENT;
        }
        // The ASCII characters `char::is_whitespace` accepts (rnix's
        // whitespace); non-ASCII outside strings and comments makes the
        // parser bail.
        if matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0B | 0x0C) {
            t[c] |= SPACE;
        }
        c += 1;
    }
    t
};

fn is_path_char(c: u8) -> bool {
    CLASS[usize::from(c)] & PATH != 0
}

fn is_ident_char(c: u8) -> bool {
    CLASS[usize::from(c)] & IDENT != 0
}

fn is_space(c: u8) -> bool {
    CLASS[usize::from(c)] & SPACE != 0
}

impl<'a> Parser<'a> {
    // ---------------------------------------------------------------- lexer

    /// Consumes the current token and lexes the next one.
    fn bump(&mut self) -> Option<()> {
        self.prev_end = self.tok.end;
        self.skip_trivia()?;
        self.tok = self.lex()?;
        if self.tok.kind == T::Eof && self.close {
            self.close = false;
            self.tok.kind = T::RBrace;
            self.tok.end += 1;
        }
        self.pos = self.tok.end;
        Some(())
    }

    /// Requires the current token to be `kind` and consumes it.
    fn expect(&mut self, kind: T) -> Option<()> {
        if self.tok.kind != kind {
            return None;
        }
        self.bump()
    }

    /// Continues lexing at byte `at` (after a string body the parser read),
    /// the bytes before it counting as consumed.
    fn resume_at(&mut self, at: usize) -> Option<()> {
        self.tok.end = at;
        self.pos = at;
        self.bump()
    }

    fn skip_trivia(&mut self) -> Option<()> {
        let b = self.b;
        let mut i = self.pos;
        if i == self.skip.0 {
            i = self.skip.1;
            self.skip.0 = usize::MAX;
        }
        loop {
            // Whitespace runs are short (indentation, one space between
            // tokens): a plain loop.
            while b.get(i).is_some_and(|&c| is_space(c)) {
                i += 1;
            }
            match b.get(i) {
                Some(b'#') => {
                    // The newline is whitespace, left for the next round.
                    let rest = b.get(i..)?;
                    let newline = memchr::memchr(b'\n', rest);
                    // The `}` after a head would be in the comment.
                    if newline.is_none() && self.close {
                        return None;
                    }
                    i += newline.unwrap_or(rest.len());
                }
                Some(b'/') if b.get(i + 1) == Some(&b'*') => {
                    // An unterminated comment is a syntax error.
                    let close = memchr::memmem::find(b.get(i + 2..)?, b"*/")?;
                    i += 2 + close + 2;
                }
                _ => break,
            }
        }
        self.pos = i;
        Some(())
    }

    fn at(&self, i: usize) -> Option<u8> {
        self.b.get(i).copied()
    }

    fn tok_text(&self) -> Option<&str> {
        self.text.get(self.tok.start..self.tok.end)
    }

    fn lex(&self) -> Option<Tok> {
        let s = self.pos;
        let Some(c) = self.at(s) else {
            return Some(Tok {
                kind: T::Eof,
                start: s,
                end: s,
            });
        };
        let tok = |kind, len: usize| {
            Some(Tok {
                kind,
                start: s,
                end: s + len,
            })
        };
        if c == b'.' && self.b[s..].starts_with(b"...") {
            return None;
        }
        if c.is_ascii_alphabetic() || c == b'_' {
            if let Some(tok) = self.plain_ident(s) {
                return Some(tok);
            }
        }
        // rnix decides "path or not" before looking at the token kind.
        if c != b'/' && is_path_char(c) && self.rel_path_ahead(s)? {
            return self.path(s);
        }
        let next = self.at(s + 1);
        match c {
            b'/' => match next {
                Some(b'/') => tok(T::Update, 2),
                Some(n) if is_path_char(n) => self.path(s),
                // `/${...}` is an interpolated path.
                Some(b'$') if self.at(s + 2) == Some(b'{') => None,
                _ => tok(T::Div, 1),
            },
            b'<' => self.less(s),
            b'0'..=b'9' => self.number(s),
            b'.' => match next {
                Some(b'0'..=b'9') => self.float_tail(s, s + 1),
                _ => tok(T::Dot, 1),
            },
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => self.ident(s),
            b'"' => tok(T::Quote, 1),
            b'\'' if next == Some(b'\'') => tok(T::IndQuote, 2),
            b'{' => tok(T::LBrace, 1),
            b'}' => tok(T::RBrace, 1),
            b'[' => tok(T::LBrack, 1),
            b']' => tok(T::RBrack, 1),
            b'(' => tok(T::LParen, 1),
            b')' => tok(T::RParen, 1),
            b';' => tok(T::Semi, 1),
            b'?' => tok(T::Question, 1),
            b'*' => tok(T::Mul, 1),
            b'=' if next == Some(b'=') => tok(T::Eq, 2),
            b'=' => tok(T::Assign, 1),
            b'!' if next == Some(b'=') => tok(T::Ne, 2),
            b'!' => tok(T::Not, 1),
            b'+' if next == Some(b'+') => tok(T::Concat, 2),
            b'+' => tok(T::Add, 1),
            b'-' if next == Some(b'>') => tok(T::Impl, 2),
            b'-' => tok(T::Sub, 1),
            b'&' if next == Some(b'&') => tok(T::And, 2),
            b'|' if next == Some(b'|') => tok(T::OrOr, 2),
            b'>' if next == Some(b'=') => tok(T::Ge, 2),
            b'>' => tok(T::Gt, 1),
            // `:` `@` (lambdas, URIs), `,`, `$`, `'` (indented strings),
            // `~` (home paths), `|>`, lone `&` `|`, non-ASCII, ...
            _ => None,
        }
    }

    /// rnix's relative-path lookahead: a run of path characters (without
    /// `/`) followed by `/` and a character that is not `/`, `*` or
    /// whitespace. `None` when the character after `/` is one this lexer
    /// does not classify (non-ASCII, control characters).
    fn rel_path_ahead(&self, s: usize) -> Option<bool> {
        let i = self.run_end(s, |c| c != b'/' && is_path_char(c));
        if self.at(i) != Some(b'/') {
            return Some(false);
        }
        match self.at(i + 1) {
            None | Some(b'/' | b'*') => Some(false),
            Some(c) if is_space(c) => Some(false),
            Some(c) if !(0x20..0x7F).contains(&c) => None,
            Some(_) => Some(true),
        }
    }

    /// A path token from `s`: path characters, not followed by `${` (an
    /// interpolated path), not ending in `/` and without `//` (errors).
    fn path(&self, s: usize) -> Option<Tok> {
        let i = self.run_end(s + 1, is_path_char);
        let text = self.b.get(s..i)?;
        let interpolated = self.b.get(i..)?.starts_with(b"${");
        let bad = text.ends_with(b"/") || text.windows(2).any(|w| w == b"//");
        if interpolated || bad {
            return None;
        }
        Some(Tok {
            kind: T::Path,
            start: s,
            end: i,
        })
    }

    /// `<`, `<=`; search paths (`<nixpkgs>`) and `<|` bail.
    fn less(&self, s: usize) -> Option<Tok> {
        let mut i = s;
        while self
            .at(i)
            .is_some_and(|c| c == b'<' || c == b'/' || is_path_char(c))
        {
            i += 1;
        }
        if self.at(i) == Some(b'>') || self.at(s + 1) == Some(b'|') {
            return None;
        }
        let (kind, len) = match self.at(s + 1) {
            Some(b'=') => (T::Le, 2),
            _ => (T::Lt, 1),
        };
        Some(Tok {
            kind,
            start: s,
            end: s + len,
        })
    }

    fn digits_from(&self, mut i: usize) -> usize {
        while self.at(i).is_some_and(|c| c.is_ascii_digit()) {
            i += 1;
        }
        i
    }

    /// rnix's number rule: `0` not followed by `.` is always an integer
    /// (`01.5` is `01` then `.5`); otherwise digits, then `.` makes a float.
    fn number(&self, s: usize) -> Option<Tok> {
        let i = self.digits_from(s + 1);
        if (self.b[s] == b'0' && self.at(s + 1) != Some(b'.')) || self.at(i) != Some(b'.') {
            return Some(Tok {
                kind: T::Int,
                start: s,
                end: i,
            });
        }
        self.float_tail(s, i + 1)
    }

    /// The rest of a float from `i` (just after its `.`): digits and an
    /// optional exponent, which must have digits.
    fn float_tail(&self, s: usize, i: usize) -> Option<Tok> {
        let mut i = self.digits_from(i);
        if matches!(self.at(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(self.at(i), Some(b'+' | b'-')) {
                i += 1;
            }
            let end = self.digits_from(i);
            if end == i {
                return None;
            }
            i = end;
        }
        Some(Tok {
            kind: T::Float,
            start: s,
            end: i,
        })
    }

    /// An identifier from `s` when it cannot start a path, found in one
    /// scan: without `'` and followed by none of `.` `+` `/`, its run of
    /// path characters ends where it does, on a character that is not `/`.
    fn plain_ident(&self, s: usize) -> Option<Tok> {
        // The name's end, and whether it has a `'`, in one pass (its first
        // byte is a letter or `_`).
        let mut end = s + 1;
        let mut quote = false;
        for &c in self.b.get(s + 1..)? {
            if !is_ident_char(c) {
                break;
            }
            quote |= c == b'\'';
            end += 1;
        }
        if quote || matches!(self.at(end), Some(b'.' | b'+' | b'/')) {
            return None;
        }
        self.keyword_or_name(s, end)
    }

    fn ident_end(&self, s: usize) -> usize {
        self.run_end(s + 1, is_ident_char)
    }

    /// Where the run of bytes that are `in_run` starting at `i` ends.
    fn run_end(&self, i: usize, in_run: impl Fn(u8) -> bool) -> usize {
        match self.b.get(i..) {
            Some(rest) => rest
                .iter()
                .position(|&c| !in_run(c))
                .map_or(self.b.len(), |p| i + p),
            None => i,
        }
    }

    fn ident(&self, s: usize) -> Option<Tok> {
        self.keyword_or_name(s, self.ident_end(s))
    }

    /// The identifier `s..i`: a keyword, a name, or `None` for the
    /// keywords outside the subset.
    fn keyword_or_name(&self, s: usize, i: usize) -> Option<Tok> {
        let kind = match self.b.get(s..i)? {
            b"let" => T::Let,
            b"in" => T::In,
            b"rec" => T::Rec,
            b"inherit" => T::Inherit,
            b"if" => T::If,
            b"then" => T::Then,
            b"else" => T::Else,
            b"or" => T::Or,
            b"with" | b"assert" => return None,
            _ => T::Ident,
        };
        Some(Tok {
            kind,
            start: s,
            end: i,
        })
    }

    // --------------------------------------------------------------- parser

    fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        (self.depth <= MAX_NESTING).then_some(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    fn span(&self, start: usize) -> TextRange {
        // Offsets fit in u32: `parse` checked the text's length.
        TextRange::new(
            TextSize::from(start as u32),
            TextSize::from(self.prev_end as u32),
        )
    }

    /// A node from `start` to the last consumed token, of height `h`.
    fn mk(&mut self, start: usize, kind: ExprKind, h: u32) -> Option<Expr> {
        if h > MAX_HEIGHT {
            return None;
        }
        self.h = h;
        Some(Expr {
            span: self.span(start),
            kind,
        })
    }

    /// rnix's `parse_expr`: `let`, `if`, or an operator expression.
    fn expr(&mut self) -> Option<Expr> {
        self.enter()?;
        let e = match self.tok.kind {
            T::Let => self.let_in()?,
            T::If => self.if_else()?,
            _ => self.operators(1)?,
        };
        self.leave();
        Some(e)
    }

    fn let_in(&mut self) -> Option<Expr> {
        let start = self.tok.start;
        self.enter()?;
        self.bump()?;
        // `let { ... }` is the legacy let.
        if self.tok.kind == T::LBrace {
            return None;
        }
        let mut def = FlatSetBuilder::new(true, self.set_buffers.pop().unwrap_or_default());
        let hb = self.bindings(&mut def, T::In)?;
        self.bump()?;
        let body = self.expr()?;
        let h = hb.max(self.h) + 1;
        self.leave();
        let mut def = def.finish(self.span(start), &mut self.set_buffers).ok()?;
        self.settle_scope(&mut def)?;
        let body = self.settled(body)?;
        self.mk(start, ExprKind::Let(Rc::new(def), Box::new(body)), h)
    }

    fn if_else(&mut self) -> Option<Expr> {
        let start = self.tok.start;
        self.enter()?;
        self.bump()?;
        let cond = self.expr()?;
        let hc = self.h;
        self.expect(T::Then)?;
        let then = self.expr()?;
        let ht = self.h;
        self.expect(T::Else)?;
        let other = self.expr()?;
        let h = hc.max(ht).max(self.h) + 1;
        self.leave();
        let kind = ExprKind::If(Box::new(cond), Box::new(then), Box::new(other));
        self.mk(start, kind, h)
    }

    /// The entries of a set or `let` up to `until` (not consumed); returns
    /// the tallest value's height.
    fn bindings(&mut self, def: &mut FlatSetBuilder, until: T) -> Option<u32> {
        let mut h = 0;
        // One buffer for every entry's path: `add` takes the names.
        let mut path = Vec::new();
        loop {
            match self.tok.kind {
                k if k == until => return Some(h),
                T::Eof => return None,
                T::Inherit => h = h.max(self.inherit(def)?),
                _ => {
                    path.clear();
                    self.attrpath_into(&mut path)?;
                    self.expect(T::Assign)?;
                    let value = self.expr()?;
                    h = h.max(self.h);
                    self.expect(T::Semi)?;
                    def.add(&mut path, value).ok()?;
                }
            }
        }
    }

    fn inherit(&mut self, def: &mut FlatSetBuilder) -> Option<u32> {
        self.bump()?;
        let mut h = 0;
        let from = if self.tok.kind == T::LParen {
            self.enter()?;
            self.bump()?;
            self.no_literals += 1;
            let e = self.expr()?;
            self.no_literals -= 1;
            h = self.h;
            self.expect(T::RParen)?;
            self.leave();
            Some(Rc::new(e))
        } else {
            None
        };
        while self.tok.kind != T::Semi {
            let name = self.attr()?;
            def.inherit(name, from.clone()).ok()?;
        }
        self.bump()?;
        Some(h)
    }

    /// A select's or `?`'s path: one block of names for each distinct
    /// text (the names and their relative spans follow from the text),
    /// shared by every place that writes it.
    fn attrpath(&mut self) -> Option<AttrPath> {
        let begin = self.tok.start;
        let mut names = std::mem::take(&mut self.path_names);
        names.clear();
        self.attrpath_into(&mut names)?;
        let src: &'a str = self.text;
        let text = &src[begin..self.prev_end];
        let start = TextSize::from(begin as u32);
        let shared = match self.paths.get(text) {
            Some(shared) => shared.clone(),
            None => {
                let names = names.iter().map(|n| AttrPath::relative(n, start));
                let shared = Rc::new(names.collect::<Box<[Name]>>());
                self.paths.insert(text, shared.clone());
                shared
            }
        };
        self.path_names = names;
        Some(AttrPath::shared(start, shared))
    }

    fn attrpath_into(&mut self, path: &mut Vec<Name>) -> Option<()> {
        loop {
            path.push(self.attr()?);
            if self.tok.kind != T::Dot {
                return Some(());
            }
            self.bump()?;
        }
    }

    /// A static attribute name: a name (`or` included, as in rnix) or a
    /// string without interpolation.
    fn attr(&mut self) -> Option<Name> {
        let start = self.tok.start;
        let text = match self.tok.kind {
            T::Ident | T::Or => {
                let text = Ident::from(self.tok_text()?);
                self.bump()?;
                text
            }
            T::Quote | T::IndQuote => {
                let mut text = Ident::default();
                for part in self.string()? {
                    match part {
                        StrPart::Literal(l) => text.push_str(&l),
                        StrPart::Interpolation(_) => return None,
                    }
                }
                text
            }
            _ => return None,
        };
        Some(Name {
            text,
            span: self.span(start),
        })
    }

    /// A binary operator: its binding power (higher binds tighter; rnix's
    /// levels, `!` sitting at 7 between `//` and `+`, `?` at 11 and unary
    /// `-` at 12) and associativity.
    fn infix(kind: T) -> Option<(u8, BinOp, Assoc)> {
        use Assoc::*;
        Some(match kind {
            T::Impl => (1, BinOp::Implication, Right),
            T::OrOr => (2, BinOp::Or, Left),
            T::And => (3, BinOp::And, Left),
            T::Eq => (4, BinOp::Equal, Non),
            T::Ne => (4, BinOp::NotEqual, Non),
            T::Lt => (5, BinOp::Less, Non),
            T::Gt => (5, BinOp::More, Non),
            T::Le => (5, BinOp::LessOrEq, Non),
            T::Ge => (5, BinOp::MoreOrEq, Non),
            T::Update => (6, BinOp::Update, Right),
            T::Add => (8, BinOp::Add, Left),
            T::Sub => (8, BinOp::Sub, Left),
            T::Mul => (9, BinOp::Mul, Left),
            T::Div => (9, BinOp::Div, Left),
            T::Concat => (10, BinOp::Concat, Right),
            _ => return None,
        })
    }

    /// An operator expression whose operators all bind at least as tightly
    /// as `min` (precedence climbing over rnix's levels: one loop instead of
    /// a call per level for every operand).
    fn operators(&mut self, min: u8) -> Option<Expr> {
        let start = self.tok.start;
        let mut lhs = self.prefix(min)?;
        let mut h = self.h;
        while let Some((bp, op, assoc)) = Self::infix(self.tok.kind) {
            if bp < min {
                break;
            }
            self.bump()?;
            let rhs_min = if assoc == Assoc::Right { bp } else { bp + 1 };
            self.enter()?;
            let rhs = self.operators(rhs_min)?;
            self.leave();
            h = h.max(self.h) + 1;
            let (lhs_done, rhs) = (self.settled(lhs)?, self.settled(rhs)?);
            let kind = ExprKind::Binary(op, Box::new(lhs_done), Box::new(rhs));
            lhs = self.mk(start, kind, h)?;
            // rnix reports `a == b == c` and `a < b < c` as errors.
            let chained = Self::infix(self.tok.kind).is_some_and(|(b, ..)| b == bp);
            if assoc == Assoc::Non && chained {
                return None;
            }
        }
        self.h = h;
        Some(lhs)
    }

    /// The operand of a binary operator: `!` (only where rnix's invert
    /// level is reachable, `min <= 7`: `a + !b` is an error), else a
    /// negation or simple expression with its `?` tests.
    fn prefix(&mut self, min: u8) -> Option<Expr> {
        if self.tok.kind == T::Not {
            return if min <= 7 { self.not() } else { None };
        }
        let start = self.tok.start;
        let mut e = self.negate_level()?;
        let mut h = self.h;
        // `-a ? b` tests the negation, as in rnix.
        while self.tok.kind == T::Question && min <= 11 {
            self.bump()?;
            let path = self.attrpath()?;
            h += 1;
            let kind = ExprKind::HasAttr {
                base: Box::new(e),
                path,
            };
            e = self.mk(start, kind, h)?;
        }
        self.h = h;
        Some(e)
    }

    /// `!e`: binds looser than `+` (`!a + b` is `!(a + b)`), tighter than
    /// `//`.
    fn not(&mut self) -> Option<Expr> {
        let start = self.tok.start;
        self.bump()?;
        self.enter()?;
        let e = if self.tok.kind == T::Not {
            self.not()?
        } else {
            self.operators(8)?
        };
        self.leave();
        let h = self.h + 1;
        self.mk(start, ExprKind::Not(Box::new(e)), h)
    }

    fn negate_level(&mut self) -> Option<Expr> {
        if self.tok.kind != T::Sub {
            return self.apply_level();
        }
        let start = self.tok.start;
        self.bump()?;
        self.enter()?;
        let e = self.negate_level()?;
        self.leave();
        let h = self.h + 1;
        self.mk(start, ExprKind::Negate(Box::new(e)), h)
    }

    /// Application is outside the subset: a simple expression followed by
    /// something that could be an argument bails.
    fn apply_level(&mut self) -> Option<Expr> {
        let e = self.simple()?;
        let arg = matches!(
            self.tok.kind,
            T::Rec
                | T::LBrace
                | T::LBrack
                | T::LParen
                | T::Quote
                | T::IndQuote
                | T::Ident
                | T::Int
                | T::Float
                | T::Path
        );
        (!arg).then_some(e)
    }

    /// rnix's `parse_simple`: an atom, then a select with its `or` default.
    fn simple(&mut self) -> Option<Expr> {
        let start = self.tok.start;
        let base = self.atom()?;
        match self.tok.kind {
            T::Dot => {}
            // `x or` is an application of `x` to `or` in rnix.
            T::Or => return None,
            _ => return Some(base),
        }
        let hb = self.h;
        self.bump()?;
        let path = self.attrpath()?;
        let mut h = hb;
        let default = if self.tok.kind == T::Or {
            self.bump()?;
            self.enter()?;
            let d = self.simple()?;
            self.leave();
            h = h.max(self.h);
            Some(Box::new(d))
        } else {
            None
        };
        let kind = ExprKind::Select {
            base: Box::new(base),
            path,
            default,
        };
        self.mk(start, kind, h + 1)
    }

    fn atom(&mut self) -> Option<Expr> {
        let start = self.tok.start;
        let kind = match self.tok.kind {
            T::Int => ExprKind::Int(self.tok_text()?.parse().ok()?),
            T::Float => ExprKind::Float(self.tok_text()?.parse().ok()?),
            T::Path => ExprKind::Path(vec![StrPart::Literal(self.tok_text()?.into())]),
            T::Ident => match self.tok_text()? {
                "__curPos" => return None,
                name => ExprKind::Var(Ident::from(name)),
            },
            T::Quote | T::IndQuote => return self.string_expr(),
            T::LParen => return self.paren(),
            T::LBrace => return self.set(start, false),
            T::Rec => {
                self.bump()?;
                if self.tok.kind != T::LBrace {
                    return None;
                }
                return self.set(start, true);
            }
            T::LBrack => return self.list(),
            _ => return None,
        };
        self.bump()?;
        self.mk(start, kind, 0)
    }

    /// Parentheses leave no node: the inner expression, with its own span
    /// (lower does the same), but they count for lower's depth.
    fn paren(&mut self) -> Option<Expr> {
        self.enter()?;
        self.bump()?;
        let e = self.expr()?;
        self.expect(T::RParen)?;
        self.leave();
        self.h += 1;
        (self.h <= MAX_HEIGHT).then_some(e)
    }

    /// `e` with its plain data turned into literals ([`ir::settle_expr`]),
    /// for an expression no attribute path can add to any more.
    fn settled(&self, e: Expr) -> Option<Expr> {
        match self.no_literals {
            0 => ir::settle_expr(e),
            _ => Some(e),
        }
    }

    /// A finished `let`, its bindings' plain sets turned into literals. `None` when it binds `true`, `false` or `null`: a
    /// literal reads them as the builtins, so such a file is left to the
    /// reference front end.
    fn settle_scope(&self, def: &mut SetDef) -> Option<()> {
        if binds_builtins(def) {
            return None;
        }
        match self.no_literals {
            0 => ir::settle(def),
            _ => Some(()),
        }
    }

    /// A set literal; the current token is its `{`, `start` is at `rec`
    /// when there is one.
    fn set(&mut self, start: usize, rec: bool) -> Option<Expr> {
        self.enter()?;
        self.bump()?;
        let mut def = FlatSetBuilder::new(rec, self.set_buffers.pop().unwrap_or_default());
        let h = self.bindings(&mut def, T::RBrace)?;
        self.bump()?;
        self.leave();
        let def = def.finish(self.span(start), &mut self.set_buffers).ok()?;
        // Its attributes' sets are settled with it: a path may still add
        // to them.
        if rec && binds_builtins(&def) {
            return None;
        }
        self.mk(start, ExprKind::Set(Rc::new(def)), h + 1)
    }

    /// List items are simple expressions, as in rnix: `[ f x ]` has two.
    fn list(&mut self) -> Option<Expr> {
        let start = self.tok.start;
        self.enter()?;
        self.bump()?;
        let mut items = Vec::new();
        let mut h = 0;
        while self.tok.kind != T::RBrack {
            let item = self.simple()?;
            items.push(self.settled(item)?);
            h = h.max(self.h);
        }
        self.bump()?;
        self.leave();
        items.shrink_to_fit();
        let kind = match self.no_literals {
            0 => match Literal::list(self.span(start), items)? {
                Ok(lit) => ExprKind::Literal(Box::new(lit)),
                Err(items) => ExprKind::List(items),
            },
            _ => ExprKind::List(items),
        };
        self.mk(start, kind, h + 1)
    }

    fn string_expr(&mut self) -> Option<Expr> {
        let start = self.tok.start;
        let body = self.string_body()?;
        let h = self.h;
        // Most strings are one literal (10,000 hosts have 50,000 strings):
        // no list of parts for them, not even for a moment.
        let kind = match body {
            Ok(text) if !text.is_empty() => ExprKind::PlainStr(text),
            Ok(text) => ExprKind::Str(vec![StrPart::Literal(text)]),
            Err(mut parts) => match parts.as_mut_slice() {
                [StrPart::Literal(text)] if !text.is_empty() => {
                    ExprKind::PlainStr(std::mem::take(text))
                }
                _ => {
                    parts.shrink_to_fit();
                    ExprKind::Str(parts)
                }
            },
        };
        self.mk(start, kind, h)
    }

    /// The body of a `"` string (the current token is its opening quote),
    /// as rnix's `normalized_parts` gives it: one literal per run of text
    /// between interpolations (never an empty one), escapes processed,
    /// `$$` kept as written. Leaves `self.h` at the string's height.
    fn string(&mut self) -> Option<Vec<StrPart>> {
        Some(match self.string_body()? {
            Ok(text) => vec![StrPart::Literal(text)],
            Err(parts) => parts,
        })
    }

    /// [`Parser::string`], a `"` string of one literal given as its text
    /// (`Ok`), without a list of parts.
    fn string_body(&mut self) -> Option<Result<Ident, Vec<StrPart>>> {
        if self.tok.kind == T::IndQuote {
            return self.indented_string().map(Err);
        }
        self.enter()?;
        let mut parts = Vec::new();
        let mut h = 0;
        let mut i = self.pos;
        // Start of the current literal run, and of the text not yet copied.
        let mut run_start = i;
        let mut copied = i;
        let mut lit = Ident::default();
        loop {
            // Ordinary text runs to the next byte that may end it (a
            // string without one is unterminated: bail).
            i += memchr::memchr3(b'"', b'\\', b'$', self.b.get(i..)?)?;
            match self.at(i)? {
                b'"' => break,
                b'\\' => {
                    lit.push_str(self.text.get(copied..i)?);
                    copied = i + 1;
                    match self.at(i + 1)? {
                        b'n' => lit.push('\n'),
                        b'r' => lit.push('\r'),
                        b't' => lit.push('\t'),
                        // Any other character stands for itself, and is
                        // copied with the next run.
                        _ => {
                            i += 1;
                            // Non-ASCII: the rest of the character is
                            // ordinary text.
                            if self.at(i)? < 0x80 {
                                i += 1;
                            }
                            continue;
                        }
                    }
                    i += 2;
                    copied = i;
                }
                b'$' if self.at(i + 1) == Some(b'$') => i += 2,
                b'$' if self.at(i + 1) == Some(b'{') => {
                    lit.push_str(self.text.get(copied..i)?);
                    if i > run_start {
                        parts.push(StrPart::Literal(std::mem::take(&mut lit)));
                    }
                    let (e, end) = self.interpolation(i + 2)?;
                    h = h.max(self.h);
                    parts.push(StrPart::Interpolation(e));
                    i = end;
                    run_start = i;
                    copied = i;
                }
                _ => i += 1,
            }
        }
        lit.push_str(self.text.get(copied..i)?);
        self.leave();
        self.resume_at(i + 1)?;
        self.h = h + 1;
        if i > run_start {
            if parts.is_empty() {
                return Some(Ok(lit));
            }
            parts.push(StrPart::Literal(lit));
        }
        Some(Err(parts))
    }

    /// `${ expr }` from just after `${`; returns the expression and the
    /// offset after its `}`.
    fn interpolation(&mut self, from: usize) -> Option<(Expr, usize)> {
        self.enter()?;
        self.pos = from;
        self.tok.end = from;
        self.bump()?;
        let e = self.expr()?;
        if self.tok.kind != T::RBrace {
            return None;
        }
        self.leave();
        Some((e, self.tok.end))
    }
}

impl Parser<'_> {
    /// The body of a `''` string (the current token is its opening `''`).
    /// Its interpolations are parsed here; its text (indentation, first and
    /// last line, escapes, quirks included) is normalized by rnix itself,
    /// on just this string, so the result is the same to the byte.
    fn indented_string(&mut self) -> Option<Vec<StrPart>> {
        self.enter()?;
        let open = self.tok.start;
        let mut interpolations = Vec::new();
        let mut h = 0;
        let mut i = self.pos;
        let end = loop {
            i += memchr::memchr2(b'\'', b'$', self.b.get(i..)?)?;
            match self.at(i)? {
                b'\'' => match self.at(i + 1)? {
                    b'\'' => match self.at(i + 2) {
                        Some(b'\'' | b'$') => i += 3,
                        // `''\` escapes the next character, whatever it is
                        // (a non-ASCII one continues as ordinary text).
                        Some(b'\\') => i += if self.at(i + 3)? < 0x80 { 4 } else { 3 },
                        _ => break i,
                    },
                    _ => i += 1,
                },
                b'$' if self.at(i + 1) == Some(b'$') => i += 2,
                b'$' if self.at(i + 1) == Some(b'{') => {
                    let (e, end) = self.interpolation(i + 2)?;
                    h = h.max(self.h);
                    interpolations.push(e);
                    i = end;
                }
                _ => i += 1,
            }
        };
        self.leave();
        self.resume_at(end + 2)?;
        self.h = h + 1;
        normalized_by_rnix(self.text.get(open..end + 2)?, interpolations)
    }
}

/// Whether a `let` or `rec` set binds `true`, `false` or `null`, which
/// literals read as the builtins.
fn binds_builtins(def: &SetDef) -> bool {
    ["true", "false", "null"]
        .iter()
        .any(|name| def.get(name).is_some())
}

/// rnix's `normalized_parts` of the indented string `literal`, with the
/// interpolations this parser made in place of rnix's.
fn normalized_by_rnix(literal: &str, interpolations: Vec<Expr>) -> Option<Vec<StrPart>> {
    use rnix::ast::InterpolPart;
    let parse = rnix::Root::parse(literal);
    if !parse.errors().is_empty() {
        return None;
    }
    let Some(rnix::ast::Expr::Str(s)) = parse.tree().expr() else {
        return None;
    };
    let mut ours = interpolations.into_iter();
    let parts = s
        .normalized_parts()
        .into_iter()
        .map(|part| match part {
            InterpolPart::Literal(l) => Some(StrPart::Literal(l.into())),
            InterpolPart::Interpolation(_) => ours.next().map(StrPart::Interpolation),
        })
        .collect::<Option<Vec<_>>>()?;
    ours.next().is_none().then_some(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::{lower, syntax};

    fn reference(text: &str) -> Option<Expr> {
        let root = syntax::parse(text).ok()?;
        lower::lower(&root.expr()?).ok()
    }

    fn same(text: &str) {
        let fast = parse(text);
        assert!(fast.is_some(), "fast_parse bails on {text:?}");
        assert_eq!(
            fast.map(Expr::without_literals),
            reference(text),
            "{text:?}"
        );
    }

    /// Whether the file's expression, or a `let`'s body, is one literal.
    fn one_literal(text: &str) -> bool {
        let e = parse(text).map(|e| match e.kind {
            ExprKind::Let(_, body) => *body,
            _ => e,
        });
        matches!(e.map(|e| e.kind), Some(ExprKind::Literal(_)))
    }

    /// The copies `parse_head` and `parse_tail` stand for.
    fn head_copy(text: &str, cut: usize) -> String {
        format!("{}}}", &text[..cut])
    }
    fn tail_copy(text: &str, open: usize, cut: usize) -> String {
        let blank = " ".repeat(cut - open - 1);
        format!("{}{blank}{}", &text[..open + 1], &text[cut..])
    }

    #[test]
    fn head_and_tail_read_as_their_copies_at_every_cut() {
        let text = "let k = [ \"a\" ]; in {\n  a = 1; # c\n  b = { c = k; };\n  /* x */ d = ''s'';\n  e = \"}\"; f = 2.5;\n}\n";
        let open = text.find("{\n").expect("body");
        let plain = |e: Option<Expr>| e.map(Expr::without_literals);
        for cut in open + 1..=text.len() {
            let head = plain(parse_head(text, cut));
            assert_eq!(head, plain(parse(&head_copy(text, cut))), "head {cut}");
            let tail = plain(parse_tail(text, open + 1..cut));
            assert_eq!(
                tail,
                plain(parse(&tail_copy(text, open, cut))),
                "tail {cut}"
            );
        }
    }

    /// The copy a middle part ([`parse_part`] with a skip and an end)
    /// stands for.
    fn middle_copy(text: &str, open: usize, start: usize, end: usize) -> String {
        let blank = " ".repeat(start - open - 1);
        format!("{}{blank}{}}}", &text[..open + 1], &text[start..end])
    }

    #[test]
    fn a_middle_part_reads_as_its_copy_at_every_pair_of_cuts() {
        let text = "let k = [ \"a\" ]; in {\n  a = 1; # c\n  b = { c = k; };\n  /* x */ d = ''s'';\n  e = \"}\"; f = 2.5;\n}\n";
        let open = text.find("{\n").expect("body");
        let plain = |e: Option<Expr>| e.map(Expr::without_literals);
        for start in open + 1..text.len() {
            for end in start + 1..text.len() {
                let part = plain(parse_part(text, Some(open + 1..start), Some(end)));
                let copy = plain(parse(&middle_copy(text, open, start, end)));
                assert_eq!(part, copy, "{start}..{end}");
            }
        }
    }

    #[test]
    fn plain_data_is_one_literal() {
        for t in [
            "{ a = 1; b = [ 2.5 \"s\" true null false ]; c = { d = ''x''; }; }",
            "let k = [ \"a\" ]; in { h.a = 1; h.b.c = [ ]; e = { }; }",
            "[ { a = 1; } [ ] \"\" ]",
            "{ a = { b = 1; }; a.c = 2; }",
        ] {
            same(t);
            assert!(one_literal(t), "{t}");
        }
        for t in [
            "{ a = -1; }",
            "{ a = ./p; }",
            "{ a = \"${b}\"; }",
            "rec { a = 1; }",
            "{ inherit (x) a; }",
            "{ a = 1 + 2; }",
        ] {
            assert!(!one_literal(t), "{t}");
        }
    }

    #[test]
    fn a_file_that_rebinds_true_false_or_null_is_left_to_lower() {
        for t in [
            "let true = 1; in [ true ]",
            "let x = [ null ]; null = 2; in x",
            "rec { false = 1; a = [ false ]; }",
            "let inherit ({ true = 1; }) true; in { a = true; }",
        ] {
            assert_eq!(parse(t), None, "{t}");
        }
        same("{ true = 1; a = [ true ]; }");
    }

    #[test]
    fn basics_match_lower() {
        for t in [
            "1",
            " { a = 1; } ",
            "{ a.b = 1; a.c = \"x${y}z\"; }",
            "let x = 1; in [ x ./a/b.nix \"s\" ]",
            "-1 + 2 * 3",
            "a.b or c ? d",
            "!a || b && c == d",
            "if a then b else c",
        ] {
            same(t);
        }
    }

    #[test]
    fn a_path_written_again_is_one_block_with_its_own_spans() {
        let text = "let d.a.b = { c = 1; }; in [ d.a.b.c (d.a.b.c) (d . a.b.c) (d.\"a\".b.c) (x ? a.b.c) (d.a.b.c or 2) ]";
        same(text);
        let Some(ExprKind::Let(_, body)) = parse(text).map(|e| e.kind) else {
            panic!("a let");
        };
        let ExprKind::List(items) = body.kind else {
            panic!("a list");
        };
        let paths: Vec<&AttrPath> = items
            .iter()
            .map(|e| match &e.kind {
                ExprKind::Select { path, .. } | ExprKind::HasAttr { path, .. } => path,
                other => panic!("{other:?}"),
            })
            .collect();
        // The same text `a.b.c` after any base: one block; quoted: its own.
        let shared = |i: usize, j: usize| paths[i].same_block(paths[j]);
        assert!(shared(0, 1) && shared(0, 2) && shared(0, 4) && shared(0, 5));
        assert!(!shared(0, 3), "{paths:?}");
        // Each keeps where its names are written (`same` compared them
        // with lower's too).
        let written = [
            ("d.a.b.c (", 2),
            ("d.a.b.c)", 2),
            ("d . a", 4),
            ("d.\"a", 2),
            ("x ? a", 4),
            ("d.a.b.c or", 2),
        ];
        for (path, (at, skip)) in paths.iter().zip(written) {
            let first = (text.find(at).expect("written") + skip) as u32;
            let (name, span) = path.iter().next().expect("a name");
            assert_eq!((name, u32::from(span.start())), ("a", first), "{at}");
        }
    }

    #[test]
    fn byte_classes_are_rnix_s_predicates() {
        for c in 0..=255u8 {
            let path = matches!(c, b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'/' | b'_' | b'.' | b'+' | b'-');
            let ident = matches!(c, b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'\'' | b'-');
            // rnix's whitespace is `char::is_whitespace`; past ASCII the
            // lexer bails anyway.
            let space = c.is_ascii() && char::from(c).is_whitespace();
            assert_eq!(is_path_char(c), path, "{c}");
            assert_eq!(is_ident_char(c), ident, "{c}");
            assert_eq!(is_space(c), space, "{c}");
        }
    }

    #[test]
    fn comments_and_strings_at_the_edges() {
        for t in [
            "/* a */ 1",
            "/**/1",
            "/* * / */ { a = 1; }",
            "# c\n1",
            "1 # c",
            "{ a = \"\"; b = \"$\"; c = \"$$\"; d = \"\\\\\"; e = \"\\${x}\"; }",
            "{ a = ''''; b = ''$''; c = '''''''; d = ''''\\n''; e = ''a\n  b''; }",
            "[ a-b a'b ./a/b a/b 1.5e3 ]",
        ] {
            same(t);
        }
        for t in ["/* x *", "\"a", "''a", "1 /*", "\"\\"] {
            assert_eq!(parse(t), None, "{t:?}");
        }
    }

    #[test]
    fn bails_on_errors() {
        for t in [
            "",
            "# c",
            "{",
            "f x",
            "a == b == c",
            "x: x",
            "\"abc",
            "/* x",
        ] {
            assert_eq!(parse(t), None, "{t:?}");
        }
    }
}
