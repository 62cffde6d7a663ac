//! A question asked on a terminal until the answer is good: the one loop
//! behind `pve new`'s and `pve init`'s wizards.

use crate::error::Result;
use crate::report::{Prompt, Reporter};

use super::UsageError;

/// How often one question is asked before the wizard gives up.
const TRIES: usize = 5;

/// Asks `question` (showing `default`) until `accept` takes the answer,
/// printing its reason after each bad one. An empty answer takes
/// `default`, or is asked again when there is none. After [`TRIES`] bad
/// answers: `UsageError::NoValidAnswer` (exit 2).
pub(super) fn ask_until<T>(
    prompt: &mut dyn Prompt,
    report: &dyn Reporter,
    action: &str,
    question: &str,
    default: Option<&str>,
    accept: &dyn Fn(&str) -> std::result::Result<T, String>,
) -> Result<T> {
    let shown = default.map(|d| format!(" [{d}]")).unwrap_or_default();
    for _ in 0..TRIES {
        let answer = prompt.ask(action, &format!("{question}{shown}:"))?;
        let answer = match (answer.trim(), default) {
            ("", Some(d)) => d,
            ("", None) => {
                report.note("  an answer is needed");
                continue;
            }
            (a, _) => a,
        };
        match accept(answer) {
            Ok(v) => return Ok(v),
            Err(reason) => report.note(&format!("  {reason}")),
        }
    }
    Err(UsageError::NoValidAnswer {
        question: question.to_string(),
    }
    .into())
}
