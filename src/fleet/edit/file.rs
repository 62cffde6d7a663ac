//! The file side of editing: under the repository lock, read hosts.nix, run
//! an edit, check the result, refuse when the file changed meanwhile, and
//! replace it atomically.

use std::path::{Path, PathBuf};

use super::EditError;
use crate::error::AppError;
use crate::fleet::SourceFile;

/// What [`apply_to_file`] did.
#[derive(Debug, Clone)]
pub struct Applied {
    pub path: PathBuf,
    pub before: String,
    pub after: String,
    /// Problems in the edited fleet that the old one did not have (an
    /// unknown `proxmox` key, say), rendered for people. The edit is still
    /// exactly what was asked; `pve check` reports these as well.
    pub new_findings: String,
}

impl Applied {
    pub fn changed(&self) -> bool {
        self.before != self.after
    }
    /// A unified diff of the change (empty when nothing changed).
    pub fn diff(&self) -> String {
        unified_diff(&self.path, &self.before, &self.after)
    }
}

pub fn unified_diff(path: &Path, before: &str, after: &str) -> String {
    if before == after {
        return String::new();
    }
    let name = path.display().to_string();
    let (old, new) = if path.is_absolute() {
        (name.clone(), name)
    } else {
        (format!("a/{name}"), format!("b/{name}"))
    };
    similar::TextDiff::from_lines(before, after)
        .unified_diff()
        .context_radius(3)
        .header(&old, &new)
        .to_string()
}

/// How long a second writer waits for the repository lock.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Edits the file at `path` under the repository lock: reads it, runs
/// `edit`, checks the result parses and evaluates, refuses when the file
/// changed on disk meanwhile, and replaces it atomically. Nothing is written
/// when anything fails, or when the edit changes nothing.
pub fn apply_to_file(
    path: &Path,
    edit: impl FnOnce(&str) -> Result<String, EditError>,
) -> Result<Applied, AppError> {
    apply_with(path, None, edit, false, |p, bytes| {
        crate::fsutil::write_atomic(p, bytes)
    })
}

/// Like [`apply_to_file`], but when `expected` is given the file must still
/// hold exactly that text (what the user was shown and confirmed). With
/// `dry_run` nothing is written.
pub fn apply_to_file_checked(
    path: &Path,
    expected: Option<&str>,
    dry_run: bool,
    edit: impl FnOnce(&str) -> Result<String, EditError>,
) -> Result<Applied, AppError> {
    apply_with(path, expected, edit, dry_run, |p, bytes| {
        crate::fsutil::write_atomic(p, bytes)
    })
}

/// Like [`apply_to_file`] for a caller that already holds the repository
/// lock (a workflow changing several files): taking it again would wait for
/// itself.
pub fn apply_to_file_under(
    _held: &crate::fsutil::RepoLock,
    path: &Path,
    edit: impl FnOnce(&str) -> Result<String, EditError>,
) -> Result<Applied, AppError> {
    run(path, None, edit, false, true, |p, bytes| {
        crate::fsutil::write_atomic(p, bytes)
    })
}

/// The whole read-edit-verify-write sequence with the final write injected
/// (tests use a failing writer).
pub fn apply_with(
    path: &Path,
    expected: Option<&str>,
    edit: impl FnOnce(&str) -> Result<String, EditError>,
    dry_run: bool,
    write: impl FnOnce(&Path, &[u8]) -> Result<(), AppError>,
) -> Result<Applied, AppError> {
    run(path, expected, edit, dry_run, false, write)
}

fn run(
    path: &Path,
    expected: Option<&str>,
    edit: impl FnOnce(&str) -> Result<String, EditError>,
    dry_run: bool,
    lock_held: bool,
    write: impl FnOnce(&Path, &[u8]) -> Result<(), AppError>,
) -> Result<Applied, AppError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let _lock = if dry_run || lock_held {
        None
    } else {
        Some(crate::fsutil::RepoLock::acquire(&dir, LOCK_WAIT)?)
    };
    let before = SourceFile::read(path)?.text;
    if let Some(exp) = expected {
        if exp != before {
            return Err(changed_on_disk(path));
        }
    }
    let after = edit(&before).map_err(|e| e.into_app_error(path, &before))?;
    // The operations verify their own change; this holds for any closure.
    let loaded = crate::fleet::load_source(SourceFile::new(path, after.clone())).map_err(|e| {
        EditError::internal(format!("the edited file would not evaluate: {e}"))
            .into_app_error(path, &before)
    })?;
    let old_messages: Vec<String> =
        crate::fleet::load_source(SourceFile::new(path, before.clone()))
            .map(|l| l.diagnostics.into_iter().map(|d| d.message).collect())
            .unwrap_or_default();
    let fresh: Vec<_> = loaded
        .diagnostics
        .iter()
        .filter(|d| !old_messages.contains(&d.message))
        .cloned()
        .collect();
    let new_findings = if fresh.is_empty() {
        String::new()
    } else {
        crate::diag::render_human(&fresh, &loaded.file)
    };
    let applied = Applied {
        path: path.to_path_buf(),
        before,
        after,
        new_findings,
    };
    if dry_run || !applied.changed() {
        return Ok(applied);
    }
    let now = std::fs::read(path)
        .map_err(|e| AppError::input(format!("cannot read {} again: {e}", path.display())))?;
    if now != applied.before.as_bytes() {
        return Err(changed_on_disk(path));
    }
    write(path, applied.after.as_bytes()).map_err(|e| match e {
        AppError::Input { message, help } => AppError::Input {
            message: format!("{message}; {} was not changed", path.display()),
            help,
        },
        AppError::Fs(error) => crate::fsutil::FsError::NotChanged {
            error: Box::new(error),
            path: path.to_path_buf(),
        }
        .into(),
        other => other,
    })?;
    Ok(applied)
}

fn changed_on_disk(path: &Path) -> AppError {
    AppError::input(format!(
        "{} changed on disk while pve was editing it; nothing was written",
        path.display()
    ))
    .with_help("run the command again (it reads the file afresh)")
}
