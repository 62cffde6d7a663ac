//! How a file is laid out, read from its text: line breaks, indentation, the
//! comments that belong to an entry, and where an entry's line ends.

use rnix::{SyntaxKind, SyntaxNode, SyntaxToken};
use rowan::{TextRange, TextSize};

/// `\r\n` when the file uses it, else `\n`.
pub fn newline(text: &str) -> &'static str {
    if text.contains("\r\n") {
        "\r\n"
    } else {
        "\n"
    }
}

/// One level of indentation as the file writes it: a tab when lines are
/// tab-indented, else the smallest space indentation (two by default).
pub fn indent_unit(text: &str) -> String {
    let mut min_spaces = usize::MAX;
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        if line.starts_with('\t') {
            return "\t".into();
        }
        let n = line.len() - line.trim_start_matches(' ').len();
        if n > 0 {
            min_spaces = min_spaces.min(n);
        }
    }
    if min_spaces == usize::MAX || min_spaces > 8 {
        "  ".into()
    } else {
        " ".repeat(min_spaces)
    }
}

pub fn line_start(text: &str, pos: usize) -> usize {
    text[..pos].rfind('\n').map_or(0, |i| i + 1)
}

/// Offset of the `\n` ending the line at `pos` (or the end of the text).
pub fn line_end(text: &str, pos: usize) -> usize {
    text[pos..].find('\n').map_or(text.len(), |i| pos + i)
}

/// The end of the line at `pos` before its line break (`\n` or `\r\n`).
pub fn content_end(text: &str, pos: usize) -> usize {
    let e = line_end(text, pos);
    if e > pos && text[..e].ends_with('\r') {
        e - 1
    } else {
        e
    }
}

/// The whitespace before `pos` on its line, when only whitespace precedes it.
pub fn indent_before(text: &str, pos: usize) -> Option<&str> {
    let s = &text[line_start(text, pos)..pos];
    s.chars().all(|c| c == ' ' || c == '\t').then_some(s)
}

/// The indentation of the line holding `pos`.
pub fn line_indent(text: &str, pos: usize) -> &str {
    let start = line_start(text, pos);
    let line = &text[start..line_end(text, pos)];
    &line[..line.len() - line.trim_start_matches([' ', '\t']).len()]
}

pub fn is_blank(line: &str) -> bool {
    line.trim().is_empty()
}

/// Offset just after the line break that ends the line at `pos`.
pub fn after_line(text: &str, pos: usize) -> usize {
    let e = line_end(text, pos);
    (e + 1).min(text.len())
}

fn off(t: TextSize) -> usize {
    usize::from(t)
}

/// The end of `node`'s line tail: the node plus a comment that follows it on
/// the same line (without the line break).
pub fn tail_end(text: &str, node: &SyntaxNode) -> usize {
    let mut end = off(node.text_range().end());
    let mut tok = node.last_token().and_then(|t| t.next_token());
    while let Some(t) = tok {
        match t.kind() {
            SyntaxKind::TOKEN_WHITESPACE if !t.text().contains('\n') => {}
            SyntaxKind::TOKEN_COMMENT => {
                let r = t.text_range();
                let s = &text[off(r.start())..off(r.end())];
                if !s.starts_with('#') && s.contains('\n') {
                    break; // a block comment running onto later lines
                }
                end = off(r.start()) + s.trim_end_matches(['\n', '\r']).len();
                break;
            }
            _ => break,
        }
        tok = t.next_token();
    }
    end
}

/// Where `node` starts including the comment lines right above it (no blank
/// line in between, each comment starting its own line).
pub fn leading_start(text: &str, node: &SyntaxNode) -> usize {
    let mut start = off(node.text_range().start());
    let mut tok: Option<SyntaxToken> = node.first_token().and_then(|t| t.prev_token());
    while let Some(ws) = tok {
        if ws.kind() != SyntaxKind::TOKEN_WHITESPACE || ws.text().matches('\n').count() != 1 {
            break;
        }
        let Some(comment) = ws.prev_token() else {
            break;
        };
        if comment.kind() != SyntaxKind::TOKEN_COMMENT {
            break;
        }
        let cstart = off(comment.text_range().start());
        if indent_before(text, cstart).is_none() {
            break;
        }
        start = cstart;
        tok = comment.prev_token();
    }
    start
}

/// True when `range` (after leading comments, through its tail) has its
/// lines to itself.
pub fn owns_lines(text: &str, start: usize, tail: usize) -> bool {
    indent_before(text, start).is_some() && {
        let rest = &text[tail..line_end(text, tail)];
        rest.trim_end_matches('\r').trim().is_empty()
    }
}

pub fn range(start: usize, end: usize) -> TextRange {
    TextRange::new(size(start), size(end))
}

pub fn size(n: usize) -> TextSize {
    TextSize::try_from(n).unwrap_or(TextSize::new(u32::MAX))
}

/// Prefixes every line after the first with `indent`, converting two-space
/// indentation steps to `unit` (blank lines stay empty).
pub fn reindent(snippet: &str, indent: &str, unit: &str, nl: &str) -> String {
    let mut out = String::new();
    for (i, line) in snippet.lines().enumerate() {
        if i > 0 {
            out.push_str(nl);
            if line.trim().is_empty() {
                continue;
            }
            out.push_str(indent);
            let spaces = line.len() - line.trim_start_matches(' ').len();
            out.push_str(&unit.repeat(spaces / 2));
            out.push_str(&" ".repeat(spaces % 2));
            out.push_str(&line[spaces..]);
        } else {
            out.push_str(line);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indentation_unit_follows_the_file() {
        assert_eq!(indent_unit("{\n  a = 1;\n}\n"), "  ");
        assert_eq!(
            indent_unit("{\n    a = {\n        b = 1;\n    };\n}\n"),
            "    "
        );
        assert_eq!(indent_unit("{\n\ta = 1;\n}\n"), "\t");
        assert_eq!(indent_unit("{ a = 1; }"), "  ");
    }

    #[test]
    fn reindent_prefixes_and_converts_steps() {
        assert_eq!(
            reindent("{\n  a = {\n    b = 1;\n  };\n}", "\t", "\t", "\r\n"),
            "{\r\n\t\ta = {\r\n\t\t\tb = 1;\r\n\t\t};\r\n\t}"
        );
    }
}
