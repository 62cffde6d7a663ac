//! One policy for the commands that edit hosts.nix by hand (`pve config
//! set`, `pve host set`, `pve host add`): an edit that would add `pve
//! check` errors is shown and refused (exit 1, the file unchanged) unless
//! `--force`; `--dry-run` prints the diff and the errors and writes nothing.

use std::path::{Path, PathBuf};

use crate::diag::{Diagnostic, RuleId};
use crate::error::Result;
use crate::fleet::edit::{self, Applied, EditError};
use crate::fleet::{self, Loaded, SourceFile};
use crate::fsutil::RepoLock;
use crate::report::Reporter as _;

use super::config::ConfigError;

/// How one edit is written.
pub struct Guard<'a> {
    /// What the edit does, for the refusal: "setting `web.cores`".
    pub what: String,
    pub dry_run: bool,
    pub force: bool,
    /// Rules left out of the comparison (`host add`: the host's files do
    /// not exist yet).
    pub skip: &'a [RuleId],
}

/// Previews the edit, shows the check errors it would add, and writes it
/// unless refused. `None` with `--dry-run` (the diff was printed).
pub fn write_unless_check_fails(
    hosts: &Path,
    guard: &Guard,
    op: impl Fn(&str) -> std::result::Result<String, EditError>,
) -> Result<Option<Applied>> {
    // Held from the preview to the write: another `pve` editing at the
    // same time waits instead of changing the file in between.
    let lock = if guard.dry_run {
        None
    } else {
        Some(RepoLock::take(&folder_of(hosts))?)
    };
    let preview = edit::apply_to_file_checked(hosts, None, true, &op)?;
    let fresh = new_check_errors(hosts, &preview.before, &preview.after, guard.skip)?;
    if !fresh.is_empty() {
        crate::ui::Terminal::new().block(&fresh);
    }
    if guard.dry_run {
        super::print(&preview.diff())?;
    }
    if !fresh.is_empty() && !guard.force {
        return Err(ConfigError::WouldFailCheck {
            what: guard.what.clone(),
        }
        .into());
    }
    if guard.dry_run {
        return Ok(None);
    }
    match &lock {
        Some(held) => Ok(Some(edit::apply_to_file_under(held, hosts, op)?)),
        None => Ok(None),
    }
}

/// The folder hosts.nix is in (where the repository lock lives).
fn folder_of(hosts: &Path) -> PathBuf {
    match hosts.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The `pve check` errors of `after` that `before` does not have, rendered
/// for people (empty when there are none).
pub fn new_check_errors(path: &Path, before: &str, after: &str, skip: &[RuleId]) -> Result<String> {
    let errors = |l: &Loaded| -> Vec<Diagnostic> {
        crate::check::check(l)
            .into_iter()
            .filter(|d| d.is_error() && !d.code.rule().is_some_and(|r| skip.contains(&r)))
            .collect()
    };
    let old: Vec<String> = fleet::load_source(SourceFile::new(path, before.to_string()))
        .map(|l| errors(&l).into_iter().map(|d| d.message).collect())
        .unwrap_or_default();
    let candidate = fleet::load_source(SourceFile::new(path, after.to_string()))?;
    let fresh: Vec<_> = errors(&candidate)
        .into_iter()
        .filter(|d| !old.contains(&d.message))
        .collect();
    Ok(if fresh.is_empty() {
        String::new()
    } else {
        crate::diag::render_human(&fresh, &candidate.file)
    })
}
