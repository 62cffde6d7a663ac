//! Straight from text to [`ir`](super::ir) for well-formed files in the
//! common subset; `None` for anything else, and the caller then takes the
//! rnix path, which owns every diagnostic. (Being written.)

use super::ir::Expr;

/// The file's expression, or `None` when this parser is not sure.
pub fn parse(_text: &str) -> Option<Expr> {
    None
}
