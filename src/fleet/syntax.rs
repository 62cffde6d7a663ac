//! Parsing hosts.nix with rnix, with the limits a hostile file needs: a bound
//! on nesting (checked on tokens before the recursive parser runs) and parse
//! errors turned into diagnostics with a position and a hint.

use rnix::{ast, ParseError, SyntaxKind, TextRange, TextSize};

use crate::diag::{Code, Diagnostic};

/// Brackets nested deeper than this are refused. Real fleets nest a handful
/// of levels; the bound keeps parser and evaluator far from the stack limit.
pub const MAX_NESTING: usize = 256;

pub fn parse(text: &str) -> Result<ast::Root, Diagnostic> {
    // rnix's own tokenizer is quadratic on long runs and chains: they are
    // refused by a linear scan before any rnix code sees the text.
    super::prescan::check(text)?;
    let only_trivia = rnix::tokenize(text)
        .all(|(k, _)| matches!(k, SyntaxKind::TOKEN_WHITESPACE | SyntaxKind::TOKEN_COMMENT));
    if only_trivia {
        return Err(empty());
    }
    // rnix bounds only some of its recursion, so the depth is checked on
    // tokens first: a 200,000-deep list would otherwise reach the evaluator.
    check_nesting(text)?;
    let parse = rnix::Root::parse(text);
    if let Some(err) = parse.errors().first() {
        return Err(parse_error(err, text));
    }
    let root = parse.tree();
    if root.expr().is_none() {
        return Err(empty());
    }
    Ok(root)
}

/// Checks that `text` (a flag's value, to be spliced into hosts.nix) is
/// exactly one Nix expression: it parses on its own, and holds no comment
/// and no line break that could swallow or end the text around it.
/// `adminKeys; evil = 1` is two attributes' worth of text, not a value.
pub fn one_expression(text: &str) -> Result<(), String> {
    parse(text).map_err(|d| d.message)?;
    let comment = rnix::tokenize(text).any(|(k, _)| k == SyntaxKind::TOKEN_COMMENT);
    if comment {
        return Err("it holds a comment".into());
    }
    if text.contains(['\n', '\r']) {
        return Err("it spans several lines".into());
    }
    Ok(())
}

fn empty() -> Diagnostic {
    Diagnostic::error(
        Code::Syntax,
        TextRange::empty(0.into()),
        "the file is empty: it holds no Nix expression",
    )
    .help("hosts.nix must hold an attribute set: `{ myhost = { ... }; }`")
}

fn check_nesting(text: &str) -> Result<(), Diagnostic> {
    let mut depth = 0usize;
    let mut offset = 0usize;
    for (kind, token) in rnix::tokenize(text) {
        use SyntaxKind::*;
        match kind {
            TOKEN_L_BRACE | TOKEN_L_BRACK | TOKEN_L_PAREN | TOKEN_INTERPOL_START | TOKEN_LET
            | TOKEN_IF | TOKEN_STRING_START => {
                depth += 1;
                if depth > MAX_NESTING {
                    let at = TextSize::try_from(offset).unwrap_or_default();
                    return Err(Diagnostic::error(
                        Code::TooDeep,
                        TextRange::at(at, TextSize::of(token)),
                        format!("nested more than {MAX_NESTING} levels deep"),
                    )
                    .help("hosts.nix is data about machines; nothing in it needs this depth"));
                }
            }
            TOKEN_R_BRACE | TOKEN_R_BRACK | TOKEN_R_PAREN | TOKEN_INTERPOL_END | TOKEN_IN
            | TOKEN_ELSE | TOKEN_STRING_END => depth = depth.saturating_sub(1),
            _ => {}
        }
        offset += token.len();
    }
    Ok(())
}

/// The UTF-8 byte-order mark some Windows editors put first. Nix refuses
/// it too ("unexpected invalid token"), so it is named rather than skipped.
const BOM: char = '\u{feff}';

/// An rnix parse error in plain words: what was found, what belongs there,
/// and a help line for that case (no token names from the grammar).
fn parse_error(err: &ParseError, text: &str) -> Diagnostic {
    if text.starts_with(BOM) {
        return Diagnostic::error(
            Code::Syntax,
            TextRange::at(0.into(), TextSize::of(BOM)),
            "the file starts with a UTF-8 byte-order mark (U+FEFF), which Nix does not accept",
        )
        .help("save hosts.nix as UTF-8 without a byte-order mark (e.g. `sed -i '1s/^\\xEF\\xBB\\xBF//' hosts.nix`)");
    }
    if let Some(d) = unclosed_string(text) {
        return d;
    }
    let eof = TextRange::empty(TextSize::of(text));
    let (span, message, help) = match err {
        ParseError::UnexpectedWanted(_, r, wanted) => {
            let found = first_token(text, *r);
            let (want, help) = wanted_in_words(wanted);
            let d = Diagnostic::error(
                Code::Syntax,
                found.0,
                format!("syntax error: expected {want}, found `{}`", found.1),
            )
            .help(help);
            return match line_end_before(text, found.0.start()) {
                Some(end) if **wanted == [SyntaxKind::TOKEN_SEMICOLON] => {
                    d.related(end, "is a `;` missing at the end of this line?")
                }
                _ => d,
            };
        }
        ParseError::Unexpected(r) => {
            let found = first_token(text, *r);
            (
                found.0,
                format!("`{}` cannot stand here", found.1),
                "check the text just before it: a missing `;`, `=` or quote, or a stray character",
            )
        }
        ParseError::UnexpectedExtra(r) => {
            let found = first_token(text, *r);
            (
                found.0,
                format!("`{}` after the end of the file's expression", found.1),
                "the expression was already complete: a `}` too many, or text after the last `}`",
            )
        }
        ParseError::UnexpectedEOF | ParseError::UnexpectedEOFWanted(_) => {
            let message = match err {
                ParseError::UnexpectedEOFWanted(w) => {
                    format!("the file ends where {} should follow", wanted_in_words(w).0)
                }
                _ => "the file ends in the middle of an expression".to_string(),
            };
            let d = Diagnostic::error(Code::Syntax, eof, format!("syntax error: {message}"));
            return match unclosed_bracket(text) {
                Some((at, open)) => d
                    .related(at, format!("this `{open}` is never closed"))
                    .help(format!(
                        "close the `{open}` (every `{{` needs a `}}`, `[` a `]`, `(` a `)`)"
                    )),
                None => d.help("the end of the file is missing: a `;`, `}` or `]`"),
            };
        }
        ParseError::RecursionLimitExceeded => (
            eof,
            "nested too deeply to parse".to_string(),
            "hosts.nix is data about machines; nothing in it needs this depth",
        ),
        ParseError::UnexpectedDoubleBind(r) | ParseError::DuplicatedArgs(r, _) => (
            *r,
            "a function's arguments are written here".to_string(),
            "hosts.nix is plain data: functions are outside the subset of Nix it may use",
        ),
        _ => (
            eof,
            "the file is not valid Nix".to_string(),
            "check the file with `nix-instantiate --parse hosts.nix`",
        ),
    };
    Diagnostic::error(Code::Syntax, span, format!("syntax error: {message}")).help(help)
}

/// What the parser wanted, in words, with the help that fits: rnix lists
/// the tokens that may start a value or a name; a person reads "a value".
fn wanted_in_words(wanted: &[SyntaxKind]) -> (String, &'static str) {
    use SyntaxKind::*;
    let has = |k| wanted.contains(&k);
    if has(TOKEN_STRING_END) {
        return (
            "the end of the string".into(),
            "close the string with `\"` (or `''` for an indented string)",
        );
    }
    if has(TOKEN_L_BRACE) && has(TOKEN_L_BRACK) {
        return (
            "a value".into(),
            "write a value: a string \"...\", a number, a list [ ... ], a set { ... } or a name",
        );
    }
    if has(TOKEN_IDENT) {
        return (
            "an attribute name".into(),
            "attribute names are words like `web` or quoted like `\"my-host\"`; look for a stray `;` or `.` before this point",
        );
    }
    let help = match wanted {
        [TOKEN_SEMICOLON] => "each attribute ends with `;`: `name = value;`",
        [TOKEN_ASSIGN] => "attributes are written `name = value;` (not `name: value`)",
        _ => "check the text just before this point",
    };
    let words: Vec<String> = wanted.iter().map(|k| describe(*k)).collect();
    (words.join(" or "), help)
}

/// The end of the last line before `at` that ends in something other
/// than `;`, `{`, `[`, `(` or `=` (where a forgotten `;` would go).
fn line_end_before(text: &str, at: TextSize) -> Option<TextRange> {
    let before = text.get(..usize::from(at))?;
    let line_start = before.rfind('\n')?;
    let previous = before[..line_start].trim_end();
    let last = previous.chars().last()?;
    if matches!(last, ';' | '{' | '[' | '(' | '=') {
        return None;
    }
    let end = TextSize::try_from(previous.len()).ok()?;
    Some(TextRange::at(end - TextSize::of(last), TextSize::of(last)))
}

/// The first token of `r` (rnix's error ranges may run to the end of the
/// file) and its text, clipped for the message.
fn first_token(text: &str, r: TextRange) -> (TextRange, String) {
    let rest = text.get(usize::from(r.start())..).unwrap_or("");
    let token = rnix::tokenize(rest)
        .find(|(k, _)| !matches!(k, SyntaxKind::TOKEN_WHITESPACE | SyntaxKind::TOKEN_COMMENT))
        .map(|(_, t)| t)
        .unwrap_or("");
    let skipped = rest.find(token).unwrap_or(0);
    let start = r.start() + TextSize::try_from(skipped).unwrap_or_default();
    let span = TextRange::at(start, TextSize::of(token));
    let shown: String = token.chars().take(40).collect();
    (span, shown.replace('\n', "\\n"))
}

/// A string (or a `${` in one) that is never closed, reported where it
/// starts: rnix reports the end of the file, far from the mistake.
fn unclosed_string(text: &str) -> Option<Diagnostic> {
    use SyntaxKind::*;
    let mut open: Vec<(SyntaxKind, TextRange, &str)> = Vec::new();
    let mut offset = TextSize::default();
    for (kind, token) in rnix::tokenize(text) {
        let span = TextRange::at(offset, TextSize::of(token));
        offset += TextSize::of(token);
        match kind {
            TOKEN_STRING_START | TOKEN_INTERPOL_START => open.push((kind, span, token)),
            TOKEN_STRING_END | TOKEN_INTERPOL_END => {
                open.pop();
            }
            _ => {}
        }
    }
    // The outermost `${` left open is the mistake (a `"` after it starts a
    // new string); otherwise the outermost open string.
    let (kind, span, token) = open
        .iter()
        .find(|(k, _, _)| *k == TOKEN_INTERPOL_START)
        .or_else(|| open.first())
        .copied()?;
    let d = if kind == TOKEN_INTERPOL_START {
        Diagnostic::error(
            Code::Syntax,
            span,
            "syntax error: this `${` is never closed with `}`",
        )
        .help("close the `${` with `}` before the string's closing quote: \"${name}\"")
    } else {
        Diagnostic::error(
            Code::Syntax,
            span,
            "syntax error: this string is never closed",
        )
        .help(format!("end the string with `{token}` where it should end"))
    };
    Some(d)
}

/// The innermost `{`, `[` or `(` still open at the end of the file.
fn unclosed_bracket(text: &str) -> Option<(TextRange, char)> {
    use SyntaxKind::*;
    let mut open = Vec::new();
    let mut offset = TextSize::default();
    for (kind, token) in rnix::tokenize(text) {
        let span = TextRange::at(offset, TextSize::of(token));
        offset += TextSize::of(token);
        match kind {
            TOKEN_L_BRACE => open.push((span, '{')),
            TOKEN_L_BRACK => open.push((span, '[')),
            TOKEN_L_PAREN => open.push((span, '(')),
            TOKEN_R_BRACE | TOKEN_R_BRACK | TOKEN_R_PAREN => {
                open.pop();
            }
            _ => {}
        }
    }
    open.pop()
}

fn describe(kind: SyntaxKind) -> String {
    use SyntaxKind::*;
    let s = match kind {
        TOKEN_SEMICOLON => "`;`",
        TOKEN_ASSIGN => "`=`",
        TOKEN_R_BRACE => "`}`",
        TOKEN_L_BRACE => "`{`",
        TOKEN_R_BRACK => "`]`",
        TOKEN_R_PAREN => "`)`",
        TOKEN_IN => "`in`",
        TOKEN_THEN => "`then`",
        TOKEN_ELSE => "`else`",
        TOKEN_IDENT => "a name",
        TOKEN_STRING_END => "the end of the string",
        TOKEN_INTERPOL_END => "`}` closing `${`",
        TOKEN_L_PAREN => "`(`",
        TOKEN_L_BRACK => "`[`",
        TOKEN_COLON => "`:`",
        TOKEN_COMMA => "`,`",
        TOKEN_DOT => "`.`",
        TOKEN_QUESTION => "`?`",
        TOKEN_OR => "`or`",
        _ => "something else",
    };
    s.to_string()
}
