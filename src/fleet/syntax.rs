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

fn parse_error(err: &ParseError, text: &str) -> Diagnostic {
    let eof = TextRange::empty(TextSize::of(text));
    let (span, message) = match err {
        ParseError::Unexpected(r) => (*r, format!("unexpected `{}`", snippet(text, *r))),
        ParseError::UnexpectedExtra(r) => (
            *r,
            format!(
                "unexpected `{}` after the end of the expression",
                snippet(text, *r)
            ),
        ),
        ParseError::UnexpectedWanted(_, r, wanted) => (
            *r,
            format!(
                "unexpected `{}`, expected {}",
                snippet(text, *r),
                wanted
                    .iter()
                    .map(|k| describe(*k))
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
        ),
        ParseError::UnexpectedEOF => (eof, "unexpected end of file".to_string()),
        ParseError::UnexpectedEOFWanted(wanted) => (
            eof,
            format!(
                "unexpected end of file, expected {}",
                wanted
                    .iter()
                    .map(|k| describe(*k))
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
        ),
        ParseError::RecursionLimitExceeded => (eof, "nested too deeply to parse".to_string()),
        other => (eof, other.to_string()),
    };
    let help = if text.trim().is_empty() {
        "hosts.nix must hold an attribute set: `{ myhost = { ... }; }`"
    } else {
        "check for a missing `;`, `}` or `\"` just before this point"
    };
    Diagnostic::error(Code::Syntax, span, format!("syntax error: {message}")).help(help)
}

fn snippet(text: &str, r: TextRange) -> String {
    let s = text
        .get(usize::from(r.start())..usize::from(r.end()))
        .unwrap_or("");
    let s: String = s.chars().take(40).collect();
    s.replace('\n', "\\n")
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
        TOKEN_REC => "`rec`",
        TOKEN_STRING_START => "a string",
        TOKEN_ERROR => "an invalid token",
        other => {
            return format!("{other:?}")
                .trim_start_matches("TOKEN_")
                .trim_start_matches("NODE_")
                .to_lowercase()
                .replace('_', " ")
        }
    };
    s.to_string()
}
