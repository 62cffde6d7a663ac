//! The gate every workflow run passes first, fresh or resumed: the same
//! findings as `pve check`, and any error stops the run before its first
//! step. A resumed run is checked again, because hosts.nix may have been
//! edited between the runs (a hostname that carries ssh options, a
//! duplicated alias, a VM turned readonly).

use crate::diag::{Code, Diagnostic};
use crate::error::AppError;
use crate::fleet::Loaded;

/// Findings the workflows themselves repair: a secret not yet encrypted to
/// a host's recipient is what their re-key step (`sops updatekeys`) fixes,
/// so it must not stop the run (or its resumption) that would fix it.
const REPAIRED: &[Code] = &[Code::SecretMissingRecipient];

/// Refuses a fleet with any `pve check` error (exit 2), naming the first by
/// position and counting the others. `exempt` lets a workflow ignore a
/// finding it resolves itself (`pve remove` deletes the files the removed
/// host's entry points at, so "missing file" there is expected).
pub fn check(
    loaded: &Loaded,
    workflow: &str,
    exempt: impl Fn(&Diagnostic) -> bool,
) -> Result<(), AppError> {
    let mut errors: Vec<Diagnostic> = crate::check::check(loaded)
        .into_iter()
        .filter(|d| d.is_error() && !REPAIRED.contains(&d.code) && !exempt(d))
        .collect();
    errors.sort_by_key(|d| (d.span.start(), d.code));
    let more = errors.len().saturating_sub(1);
    let Some(mut first) = errors.into_iter().next() else {
        return Ok(());
    };
    let others = match more {
        0 => String::new(),
        1 => " (and 1 more error)".to_string(),
        n => format!(" (and {n} more errors)"),
    };
    first.message = format!(
        "{}{others}; `pve {workflow}` runs only on a fleet that passes `pve check`",
        first.message
    );
    let help = first.help.take().unwrap_or_default();
    first.help = Some(if help.is_empty() {
        "run `pve check` to see every error; nothing was changed".to_string()
    } else {
        format!("{help}; run `pve check` to see every error; nothing was changed")
    });
    Err(crate::render::invalid(loaded, first))
}

/// [`check`] for a run about host `name`: a file its own entry points at
/// may be missing (`pve new` writes it in a later step, `pve remove`
/// deletes it before the entry), so that one finding does not stop it.
pub fn check_for_host(loaded: &Loaded, workflow: &str, name: &str) -> Result<(), AppError> {
    let entry = loaded
        .fleet
        .hosts
        .iter()
        .find(|h| h.name == name)
        .map(|h| h.span);
    check(loaded, workflow, |d| {
        d.code == Code::MissingFile && entry.is_some_and(|e| e.contains_range(d.span))
    })
}
