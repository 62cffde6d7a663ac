//! What a terminal is shown of hosts.nix: never the file's raw bytes.
//!
//! - Control characters, Unicode line and paragraph separators and
//!   bidirectional overrides in the source are shown as `?` / U+FFFD, one
//!   replacement of the same byte length each, so every offset stays put
//!   (an attribute name with ESC cannot clear the screen or set the title).
//! - Characters that show as nothing (a byte-order mark, zero-width spaces
//!   and joiners, a soft hyphen) are named, `<U+FEFF>`, so the caret under
//!   one has something to point at.
//! - A line longer than [`MAX_LINE`] bytes is clipped to windows around the
//!   spans on it, as rustc does, with `…` where text was left out (a
//!   one-line 9 MB file prints a few hundred bytes, not 9 MB).
//!
//! Offsets into the original map to offsets into this view with
//! [`View::map`].

use std::ops::Range;

/// Lines up to this many bytes are shown whole.
pub const MAX_LINE: usize = 240;
/// Bytes kept on each side of a span's start and end on a clipped line.
const CONTEXT: usize = 60;
const ELLIPSIS: &str = "…";

pub struct View {
    pub text: String,
    /// Kept pieces: (original range, start in the view, length in the
    /// view), in order. A piece is as long as its original except an
    /// invisible character's, shown as `<U+FEFF>`.
    segments: Vec<(Range<usize>, usize, usize)>,
}

impl View {
    /// The view of `text` for diagnostics at `spans`.
    pub fn new(text: &str, spans: &[Range<usize>]) -> View {
        let mut keep: Vec<Range<usize>> = Vec::new();
        let mut line_start = 0;
        let mut spans: Vec<usize> = spans.iter().flat_map(|r| [r.start, r.end]).collect();
        spans.sort_unstable();
        for line in text.split_inclusive('\n') {
            let end = line_start + line.len();
            if line.len() <= MAX_LINE {
                keep.push(line_start..end);
            } else {
                let first = spans.partition_point(|&o| o < line_start);
                let last = spans.partition_point(|&o| o <= end);
                for &o in &spans[first..last] {
                    let lo = floor(text, o.saturating_sub(CONTEXT).max(line_start));
                    let hi = floor(text, (o + CONTEXT).min(end));
                    keep.push(lo..hi);
                }
                if line.ends_with('\n') {
                    keep.push(end - 1..end);
                }
            }
            line_start = end;
        }
        let merged = merge(keep);
        let mut view = View {
            text: String::new(),
            segments: Vec::with_capacity(merged.len()),
        };
        let mut prev_end = 0;
        for r in merged {
            if r.start > prev_end && !text[prev_end..r.start].ends_with('\n') {
                view.text.push_str(ELLIPSIS);
            }
            view.push(text, r.clone());
            prev_end = r.end;
        }
        view
    }

    /// Appends the piece `r` of `text`: sanitised, each invisible character
    /// named (`<U+FEFF>`) in a segment of its own.
    fn push(&mut self, text: &str, r: Range<usize>) {
        let mut start = r.start;
        for (i, c) in text[r.clone()].char_indices() {
            if !is_invisible(c) {
                continue;
            }
            let at = r.start + i;
            self.push_plain(text, start..at);
            let shown = format!("<U+{:04X}>", u32::from(c));
            self.segments
                .push((at..at + c.len_utf8(), self.text.len(), shown.len()));
            self.text.push_str(&shown);
            start = at + c.len_utf8();
        }
        self.push_plain(text, start..r.end);
    }

    fn push_plain(&mut self, text: &str, r: Range<usize>) {
        if r.is_empty() {
            return;
        }
        self.segments.push((r.clone(), self.text.len(), r.len()));
        push_sanitized(&mut self.text, &text[r]);
    }

    /// Where an offset of the original lands in the view: inside a kept
    /// piece exactly, in a left-out stretch at the next kept piece.
    pub fn map(&self, offset: usize) -> usize {
        let i = self.segments.partition_point(|(r, _, _)| r.end < offset);
        match self.segments.get(i) {
            Some((r, at, shown)) if offset == r.end => at + shown,
            Some((r, at, shown)) if offset >= r.start => at + (offset - r.start).min(*shown),
            Some((_, at, _)) => *at,
            None => self.text.len(),
        }
    }
}

/// The largest char boundary at or before `i`.
fn floor(text: &str, mut i: usize) -> usize {
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn merge(mut ranges: Vec<Range<usize>>) -> Vec<Range<usize>> {
    ranges.sort_by_key(|r| r.start);
    let mut out: Vec<Range<usize>> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match out.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

/// Whether showing `c` raw could move the cursor, end a line, or reorder
/// what follows it.
pub fn is_unsafe(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Whether `c` shows as nothing at all (a byte-order mark, a zero-width
/// space or joiner, a soft hyphen): the view names it, `<U+FEFF>`.
pub fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{feff}' | '\u{200b}'..='\u{200d}' | '\u{2060}' | '\u{00ad}' | '\u{180e}'
    )
}

/// Appends `s` with every unsafe character replaced by one of the same
/// byte length (`?`, `?` + `?`, or U+FFFD), so offsets stay valid.
fn push_sanitized(out: &mut String, s: &str) {
    for c in s.chars() {
        if !is_unsafe(c) {
            out.push(c);
            continue;
        }
        match c.len_utf8() {
            1 => out.push('?'),
            2 => out.push_str("??"),
            3 => out.push('\u{fffd}'),
            _ => out.push_str("????"),
        }
    }
}

/// [`escape_text`] for one line: line breaks and tabs escaped too.
pub fn escape_line(s: &str, max: usize) -> String {
    escape_text(s, max)
        .replace('\n', "\\n")
        .replace('\t', "\\t")
}

/// Text of a message or help for a terminal: unsafe characters escaped the
/// way Rust writes them (`\u{1b}`), and at most `max` characters.
pub fn escape_text(s: &str, max: usize) -> String {
    let mut out = String::new();
    for (n, c) in s.chars().enumerate() {
        if n == max {
            out.push_str(ELLIPSIS);
            break;
        }
        if is_unsafe(c) || is_invisible(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_lines_are_kept_and_offsets_map_to_themselves() {
        let text = "{\n  a = 1;\n}\n";
        let v = View::new(text, std::slice::from_ref(&(4..5)));
        assert_eq!(v.text, text);
        assert_eq!(v.map(4), 4);
    }

    #[test]
    fn a_long_line_is_clipped_around_the_span() {
        let mut text = String::from("{ a = [ ");
        text.push_str(&"1 ".repeat(1_000_000));
        let at = text.len();
        text.push_str("oops ];\n}\n");
        let v = View::new(&text, std::slice::from_ref(&(at..at + 4)));
        assert!(v.text.len() < 400, "{} bytes", v.text.len());
        let m = v.map(at);
        assert_eq!(&v.text[m..m + 4], "oops");
        assert!(v.text.contains(ELLIPSIS));
        assert!(v.text.ends_with("];\n}\n"));
    }

    #[test]
    fn control_characters_never_reach_the_view() {
        let text = "{ \"a\u{1b}]0;x\u{7}\u{85}\u{2028}\u{202e}b\" = 1; }\n";
        let v = View::new(text, std::slice::from_ref(&(2..20)));
        assert_eq!(v.text.len(), text.len(), "offsets stay put");
        assert!(!v.text.chars().any(is_unsafe), "{:?}", v.text);
        assert_eq!(escape_text("a\u{1b}b\u{2028}", 100), "a\\u{1b}b\\u{2028}");
        assert_eq!(escape_line("a\nb", 100), "a\\nb");
    }

    #[test]
    fn invisible_characters_are_named_and_spans_around_them_still_map() {
        let text = "\u{feff}{ a\u{200b}b = 1; }\n";
        let bom = 0..3;
        let b = text.find('b').expect("b");
        let v = View::new(text, &[bom.clone(), b..b + 1]);
        assert_eq!(v.text, "<U+FEFF>{ a<U+200B>b = 1; }\n");
        assert_eq!(&v.text[v.map(bom.start)..v.map(bom.end)], "<U+FEFF>");
        assert_eq!(&v.text[v.map(b)..v.map(b + 1)], "b");
        assert_eq!(escape_text("x\u{feff}", 10), "x\\u{feff}");
    }

    proptest::proptest! {
        #[test]
        fn any_text_and_spans_map_inside_the_view(
            s in "(\\PC|\\n|\\u{1b}|\\u{2028}|\\u{feff}|\\u{200b}){0,400}",
            spans in proptest::collection::vec((0usize..500, 0usize..100), 0..4),
        ) {
            let spans: Vec<_> = spans
                .into_iter()
                .map(|(a, l)| {
                    let a = floor(&s, a.min(s.len()));
                    a..floor(&s, (a + l).min(s.len()))
                })
                .collect();
            let v = View::new(&s, &spans);
            for r in &spans {
                proptest::prop_assert!(v.map(r.start) <= v.text.len());
                proptest::prop_assert!(v.text.is_char_boundary(v.map(r.start)));
            }
            proptest::prop_assert_eq!(v.text.matches('\n').count(), s.matches('\n').count());
        }
    }
}
