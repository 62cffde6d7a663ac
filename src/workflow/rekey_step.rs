//! The re-key step of `pve integrate`: every secret file in line with the
//! freshly rendered `.sops.yaml`, under the repository lock (so a
//! concurrent `pve remove`'s rotation cannot be undone by an updatekeys
//! that writes the old data key back).
//!
//! A host integrated again with a new SSH host key drops its old key from
//! the rules; the files that key could read get a new data key, as
//! `pve remove` does, and the step says so only after checking it.

use crate::error::{AppError, Result};
use crate::fleet::Loaded;
use crate::fsutil::LockOnDemand;
use crate::secrets::{rekey, sops::Sops, SopsConfig};

/// Runs the step for host `name`, holding the repository lock (taken
/// through `lock`) while it re-keys; the text is the step's result line.
pub fn run(loaded: &Loaded, name: &str, lock: &LockOnDemand) -> Result<String> {
    let root = &loaded.root_dir;
    let rel = crate::render::sops::config_path(loaded)?;
    let path = root.join(&rel);
    if loaded.fleet.sops.span.is_none() {
        if path.is_file() {
            return Err(unmanaged(&rel.display().to_string(), name));
        }
        return Ok("no secrets (hosts.nix has no _sops)".into());
    }
    let _lock = lock.take()?;
    let config = SopsConfig::load(&path).map_err(|e| AppError::input(e.to_string()))?;
    let out = rekey::rekey_and_rotate(&Sops::new(&path), &config);
    let resume = format!("`pve integrate {name} --resume`");
    if !out.rotated.is_success() {
        let text = out.rotated.summary("rotated", root);
        return Err(AppError::external(format!(
            "{}\nthese files were readable by a key the rules no longer give ({}): they need a new data key before that key is taken out",
            text.trim_end(),
            out.revoked.keys().cloned().collect::<Vec<_>>().join(", ")
        ))
        .with_help(format!(
            "fix what sops reports (sops exit 128: set SOPS_AGE_KEY_FILE to an admin key) and run {resume}"
        )));
    }
    let text = out.rekeyed.summary("re-keyed", root);
    if !out.rekeyed.is_success() {
        return Err(AppError::external(text.trim_end().to_string()).with_help(format!(
            "the files marked ok are done; fix the failures (sops exit 128: set SOPS_AGE_KEY_FILE to an admin key) and run {resume}"
        )));
    }
    if !out.problems.is_empty() {
        let list: Vec<String> = out
            .problems
            .iter()
            .map(|(f, why)| format!("  {} {why}", show(root, f)))
            .collect();
        return Err(AppError::external(format!(
            "sops reported success, but {} secret file(s) are not as .sops.yaml says:\n{}",
            list.len(),
            list.join("\n")
        ))
        .with_help(format!(
            "fix those files with sops and an admin key, then run {resume}"
        )));
    }
    let mut msg = text.trim_end().to_string();
    for (key, files) in &out.revoked {
        let shown: Vec<String> = files.iter().map(|f| show(root, f)).collect();
        msg.push_str(&format!(
            "\n{key} is no longer a recipient: {} file(s) it could read got a new data key, and none lists it (checked): {}",
            files.len(),
            shown.join(", ")
        ));
    }
    Ok(msg)
}

fn show(root: &std::path::Path, f: &std::path::Path) -> String {
    f.strip_prefix(root).unwrap_or(f).display().to_string()
}

/// Without `_sops`, pve does not write `.sops.yaml`: it would not list the
/// host's (new) key, and re-keying against it would claim work not done.
fn unmanaged(rel: &str, name: &str) -> AppError {
    AppError::refused(format!(
        "hosts.nix has no `_sops`, so pve does not write {rel}: it does not give `{name}`'s key, and re-keying against it would not let `{name}` read its secrets (or take an old key out)"
    ))
    .with_help(format!(
        "run `pve secrets adopt` (it writes the `_sops` block that renders {rel} again), then run `pve integrate {name} --resume`; or add the key to {rel} yourself and run `sops updatekeys` on each file"
    ))
}
