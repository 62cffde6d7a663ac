//! The re-key step of `pve integrate`: every secret file in line with the
//! freshly rendered `.sops.yaml`, under the repository lock (so a
//! concurrent `pve remove`'s rotation cannot be undone by an updatekeys
//! that writes the old data key back).
//!
//! A host integrated again with a new SSH host key drops its old key from
//! the rules; the files that key could read get a new data key, as
//! `pve remove` does, and the step says so only after checking it.

use std::path::PathBuf;

use crate::error::{Classify, Kind, Result};
use crate::fleet::Loaded;
use crate::fsutil::LockOnDemand;
use crate::secrets::config::ConfigError;
use crate::secrets::{rekey, sops::Sops, SopsConfig};

/// Runs the step for host `name`, holding the repository lock (taken
/// through `lock`) while it re-keys; the text is the step's result line.
pub fn run(loaded: &Loaded, name: &str, lock: &LockOnDemand) -> Result<String> {
    let root = &loaded.root_dir;
    let rel = crate::render::sops::config_path(loaded)?;
    let path = root.join(&rel);
    if loaded.fleet.sops.span.is_none() {
        if path.is_file() {
            return Err(RekeyStepError::Unmanaged {
                rel,
                name: name.to_string(),
            }
            .into());
        }
        return Ok("no secrets (hosts.nix has no _sops)".into());
    }
    let _lock = lock.take()?;
    let config = SopsConfig::load(&path).map_err(RekeyStepError::SopsConfig)?;
    let out = rekey::rekey_and_rotate(&Sops::new(&path), &config);
    if !out.rotated.is_success() {
        let text = out.rotated.summary("rotated", root);
        return Err(RekeyStepError::RotateFailed {
            summary: text.trim_end().to_string(),
            revoked: out.revoked.keys().cloned().collect(),
            name: name.to_string(),
        }
        .into());
    }
    let text = out.rekeyed.summary("re-keyed", root);
    if !out.rekeyed.is_success() {
        return Err(RekeyStepError::RekeyFailed {
            summary: text.trim_end().to_string(),
            name: name.to_string(),
        }
        .into());
    }
    if !out.problems.is_empty() {
        let list: Vec<String> = out
            .problems
            .iter()
            .map(|(f, why)| format!("  {} {why}", show(root, f)))
            .collect();
        return Err(RekeyStepError::NotAsConfigured {
            problems: list,
            name: name.to_string(),
        }
        .into());
    }
    let mut msg = text.trim_end().to_string();
    for (key, files) in &out.revoked {
        let shown: Vec<String> = files.iter().map(|f| show(root, f)).collect();
        msg.push_str(&format!(
            "\n{key} is no longer a recipient: {} it could read got a new data key, and none lists it (checked): {}",
            crate::plural::plural(files.len(), "file"),
            shown.join(", ")
        ));
    }
    Ok(msg)
}

fn show(root: &std::path::Path, f: &std::path::Path) -> String {
    f.strip_prefix(root).unwrap_or(f).display().to_string()
}

/// How the re-key step of `pve integrate` can fail.
#[derive(Debug, thiserror::Error)]
pub enum RekeyStepError {
    /// Without `_sops`, pve does not write `.sops.yaml`: it would not list
    /// the host's (new) key, and re-keying against it would claim work not
    /// done.
    #[error("hosts.nix has no `_sops`, so pve does not write {}: it does not give `{name}`'s key, and re-keying against it would not let `{name}` read its secrets (or take an old key out)", rel.display())]
    Unmanaged { rel: PathBuf, name: String },
    #[error(transparent)]
    SopsConfig(ConfigError),
    #[error("{summary}\nthese files were readable by a key the rules no longer give ({}): they need a new data key before that key is taken out", revoked.join(", "))]
    RotateFailed {
        /// What sops did, file by file.
        summary: String,
        /// The age keys the rules no longer give.
        revoked: Vec<String>,
        name: String,
    },
    #[error("{summary}")]
    RekeyFailed { summary: String, name: String },
    #[error("sops reported success, but {} not as .sops.yaml says:\n{}", crate::plural::plural_of(problems.len(), "secret file is", "secret files are"), problems.join("\n"))]
    NotAsConfigured {
        /// One line per file: the file and what is wrong with it.
        problems: Vec<String>,
        name: String,
    },
}

impl Classify for RekeyStepError {
    fn kind(&self) -> Kind {
        match self {
            RekeyStepError::Unmanaged { .. } => Kind::Refused,
            RekeyStepError::SopsConfig(_) => Kind::Input,
            RekeyStepError::RotateFailed { .. }
            | RekeyStepError::RekeyFailed { .. }
            | RekeyStepError::NotAsConfigured { .. } => Kind::External,
        }
    }
    fn help(&self) -> Option<String> {
        let resume = |name: &str| format!("`pve integrate {name} --resume`");
        match self {
            RekeyStepError::Unmanaged { rel, name } => {
                let rel = rel.display();
                Some(format!(
                    "run `pve secrets adopt` (it writes the `_sops` block that renders {rel} again), then run `pve integrate {name} --resume`; or add the key to {rel} yourself and run `sops updatekeys` on each file"
                ))
            }
            RekeyStepError::SopsConfig(_) => None,
            RekeyStepError::RotateFailed { name, .. } => Some(format!(
                "fix what sops reports (sops exit 128: set SOPS_AGE_KEY_FILE to an admin key) and run {}",
                resume(name)
            )),
            RekeyStepError::RekeyFailed { name, .. } => Some(format!(
                "the files marked ok are done; fix the failures (sops exit 128: set SOPS_AGE_KEY_FILE to an admin key) and run {}",
                resume(name)
            )),
            RekeyStepError::NotAsConfigured { name, .. } => Some(format!(
                "fix those files with sops and an admin key, then run {}",
                resume(name)
            )),
        }
    }
}
