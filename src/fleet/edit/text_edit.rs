//! Edits are data: a range of the original text and what replaces it. One
//! function sorts them, refuses overlaps and applies them back to front;
//! nothing else splices text.

use rowan::{TextRange, TextSize};

use super::EditError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextEdit {
    pub range: TextRange,
    pub replacement: String,
}

impl TextEdit {
    pub fn replace(range: TextRange, replacement: impl Into<String>) -> Self {
        TextEdit {
            range,
            replacement: replacement.into(),
        }
    }
    pub fn insert(at: TextSize, text: impl Into<String>) -> Self {
        TextEdit::replace(TextRange::empty(at), text)
    }
    pub fn delete(range: TextRange) -> Self {
        TextEdit::replace(range, String::new())
    }
}

/// Applies `edits` to `text`. Ranges must lie on character boundaries and
/// must not overlap (two insertions at one point count as overlapping: their
/// order would be a guess).
pub fn apply(text: &str, mut edits: Vec<TextEdit>) -> Result<String, EditError> {
    edits.sort_by_key(|e| (e.range.start(), e.range.end()));
    for pair in edits.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if a.range.end() > b.range.start() || a.range.start() == b.range.start() {
            return Err(EditError::internal(format!(
                "overlapping edits at {:?} and {:?}",
                a.range, b.range
            )));
        }
    }
    let mut out = text.to_string();
    for e in edits.iter().rev() {
        let (start, end) = (usize::from(e.range.start()), usize::from(e.range.end()));
        if end > out.len() || !out.is_char_boundary(start) || !out.is_char_boundary(end) {
            return Err(EditError::internal(format!(
                "edit range {:?} is not inside the text",
                e.range
            )));
        }
        out.replace_range(start..end, &e.replacement);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(a: u32, b: u32) -> TextRange {
        TextRange::new(a.into(), b.into())
    }

    #[test]
    fn edits_apply_back_to_front_in_any_order() {
        let out = apply(
            "abcdef",
            vec![
                TextEdit::replace(r(4, 5), "E"),
                TextEdit::insert(0.into(), ">"),
                TextEdit::delete(r(1, 3)),
            ],
        )
        .expect("disjoint edits");
        assert_eq!(out, ">adEf");
    }

    #[test]
    fn overlapping_edits_are_refused() {
        assert!(apply(
            "abcdef",
            vec![TextEdit::delete(r(1, 3)), TextEdit::delete(r(2, 4))]
        )
        .is_err());
        assert!(apply(
            "abc",
            vec![
                TextEdit::insert(1.into(), "x"),
                TextEdit::insert(1.into(), "y")
            ]
        )
        .is_err());
        assert!(apply("abc", vec![TextEdit::delete(r(2, 9))]).is_err());
        // touching is fine
        assert_eq!(
            apply(
                "abcd",
                vec![TextEdit::delete(r(0, 2)), TextEdit::delete(r(2, 4))]
            )
            .expect("touching"),
            ""
        );
    }
}
