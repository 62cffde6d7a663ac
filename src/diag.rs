//! Diagnostics: what `pve check` and every failing load report. The library
//! only builds them; the CLI renders them rustc-style or as JSON.

use std::path::PathBuf;

use codespan_reporting::diagnostic::{Diagnostic as CsDiagnostic, Label};
use codespan_reporting::files::SimpleFile;
use codespan_reporting::term::{self, Config};
use rowan::TextRange;
use serde::Serialize;

use crate::fleet::SourceFile;

mod code;
mod view;
pub use code::{Code, RuleId};
pub use view::{escape_line, escape_text};

/// Messages and help longer than this many characters are cut.
const MAX_MESSAGE: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One finding, anchored in hosts.nix (or another file when `file` says so).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Stable code, e.g. `duplicate-vmid`: scripts may match on it.
    pub code: Code,
    pub severity: Severity,
    pub span: TextRange,
    pub message: String,
    pub help: Option<String>,
    /// Secondary places, e.g. the first definition of a duplicate.
    pub related: Vec<(TextRange, String)>,
}

impl Diagnostic {
    /// A finding with its code's default severity.
    pub fn new(code: Code, span: TextRange, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: code.severity(),
            ..Diagnostic::error(code, span, message)
        }
    }
    pub fn error(code: Code, span: TextRange, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            severity: Severity::Error,
            span,
            message: message.into(),
            help: None,
            related: Vec::new(),
        }
    }
    pub fn warning(code: Code, span: TextRange, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, span, message)
        }
    }
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
    pub fn related(mut self, span: TextRange, note: impl Into<String>) -> Self {
        self.related.push((span, note.into()));
        self
    }
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// The JSON shape of a diagnostic (`pve check --format json`).
#[derive(Debug, Serialize)]
pub struct JsonDiagnostic {
    pub code: Code,
    pub severity: Severity,
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub end_line: usize,
    pub end_column: usize,
    pub message: String,
    pub help: Option<String>,
    /// Silenced by `checks.allow` / `_checks.allow`: shown, not counted.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub allowed: bool,
}

impl JsonDiagnostic {
    pub fn new(d: &Diagnostic, file: &SourceFile) -> Self {
        let (line, column) = file.line_col(d.span.start().into());
        let (end_line, end_column) = file.line_col(d.span.end().into());
        JsonDiagnostic {
            code: d.code,
            severity: d.severity,
            file: file.path.clone(),
            line,
            column,
            end_line,
            end_column,
            message: d.message.clone(),
            help: d.help.clone(),
            allowed: false,
        }
    }
}

/// rustc-style text: `error[code]: message`, `--> file:line:col`, the
/// source line with a caret, and the help.
pub fn render_human(diags: &[Diagnostic], file: &SourceFile) -> String {
    // The view below copies the whole file: nothing to show, nothing to copy.
    if diags.is_empty() {
        return String::new();
    }
    let name = escape_text(&file.path.display().to_string(), MAX_MESSAGE);
    let spans: Vec<_> = diags
        .iter()
        .flat_map(|d| std::iter::once(d.span).chain(d.related.iter().map(|(s, _)| *s)))
        .map(range)
        .collect();
    // The terminal sees a clipped, sanitised view of the file (see
    // `view`), never its raw bytes.
    let view = view::View::new(&file.text, &spans);
    let files = SimpleFile::new(name.clone(), view.text.as_str());
    let at = |span: TextRange| view.map(span.start().into())..view.map(span.end().into());
    let mut out = String::new();
    // rustc's own look: `--> file:line:col`, `|` borders, `^` carets.
    let config = Config {
        chars: term::Chars::ascii(),
        ..Config::default()
    };
    for d in diags {
        let cs = match d.severity {
            Severity::Error => CsDiagnostic::error(),
            Severity::Warning => CsDiagnostic::warning(),
        };
        let mut labels = vec![Label::primary((), at(d.span))];
        labels.extend(d.related.iter().map(|(span, note)| {
            Label::secondary((), at(*span)).with_message(escape_line(note, MAX_MESSAGE))
        }));
        let notes = d
            .help
            .iter()
            .map(|h| format!("help: {}", escape_text(h, MAX_MESSAGE)))
            .collect();
        let cs = cs
            .with_code(d.code.as_str())
            .with_message(escape_line(&d.message, MAX_MESSAGE))
            .with_labels(labels)
            .with_notes(notes);
        let mut one = String::new();
        let _ = term::emit_to_string(&mut one, &config, &files, &cs);
        out.push_str(&true_location(&one, &name, file, d.span));
    }
    out
}

/// The `--> file:line:col` line as the original file counts it (the view
/// may have clipped the start of the line).
fn true_location(rendered: &str, name: &str, file: &SourceFile, span: TextRange) -> String {
    let (line, col) = file.line_col(span.start().into());
    let mut fixed = false;
    rendered
        .split_inclusive('\n')
        .map(|l| match l.trim_start().strip_prefix("--> ") {
            Some(_) if !fixed => {
                fixed = true;
                let indent = &l[..l.len() - l.trim_start().len()];
                format!("{indent}--> {name}:{line}:{col}\n")
            }
            _ => l.to_string(),
        })
        .collect()
}

fn range(span: TextRange) -> std::ops::Range<usize> {
    span.start().into()..span.end().into()
}

/// The closest candidate within a small edit distance, for "did you mean".
/// Distances are counted with transpositions as one edit (`corse` is one
/// edit from `cores`), ignoring case.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    let lower = word.to_lowercase();
    candidates
        .into_iter()
        .filter(|c| *c != word)
        .map(|c| (strsim::osa_distance(&lower, &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, c)| (*d, *c))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn did_you_mean_finds_close_spellings_only() {
        let keys = ["vmid", "cores", "memory", "diskInterface"];
        assert_eq!(did_you_mean("core", keys), Some("cores"));
        assert_eq!(did_you_mean("memroy", keys), Some("memory"));
        assert_eq!(did_you_mean("diskinterface", keys), Some("diskInterface"));
        assert_eq!(did_you_mean("banana", keys), None);
        assert_eq!(
            did_you_mean("corse", keys),
            Some("cores"),
            "a transposition"
        );
        assert_eq!(did_you_mean("vmdi", keys), Some("vmid"), "a transposition");
    }
}
