//! Everything about sops-encrypted files: which files are secrets
//! ([`secret_files`]), who can decrypt them ([`metadata`]), who should
//! ([`config`]), the difference as `pve check` findings ([`health`]), and
//! re-keying and rotating them with the sops binary ([`sops`]).

pub mod config;
pub mod health;
pub mod metadata;
pub mod sops;

use std::path::{Path, PathBuf};

pub use config::SopsConfig;

/// The default place of `.sops.yaml`, relative to the fleet root.
pub const DEFAULT_SOPS_YAML: &str = "secrets/.sops.yaml";

/// Every file under the config's folder that sops reads as YAML, JSON,
/// dotenv or INI (`.sops.yaml` itself, hidden folders and symlinked
/// folders left out), sorted.
pub fn candidate_files(config: &SopsConfig) -> Vec<PathBuf> {
    let mut out = Vec::new();
    walk(&config.dir, &config.path, &mut out, 0);
    out.sort();
    out
}

/// The secret files: the candidates that one of the creation rules
/// covers (sops cannot re-key a file no rule matches).
pub fn secret_files(config: &SopsConfig) -> Vec<PathBuf> {
    candidate_files(config)
        .into_iter()
        .filter(|f| config.rule_for(f).is_some())
        .collect()
}

fn walk(dir: &Path, skip: &Path, out: &mut Vec<PathBuf>, depth: usize) {
    if depth > 32 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            if !name.starts_with('.') {
                walk(&path, skip, out, depth + 1);
            }
        } else if name != ".sops.yaml"
            && !same_file(&path, skip)
            && metadata::Format::of(&path).is_some()
            && path.is_file()
        {
            out.push(path);
        }
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
}

/// The secret files that `recipient` can decrypt according to their own
/// metadata: after removing a host, these need `sops rotate`.
pub fn files_readable_by(config: &SopsConfig, recipient: &str) -> Vec<PathBuf> {
    candidate_files(config)
        .into_iter()
        .filter(|f| metadata::read(f).is_ok_and(|m| m.recipients().any(|r| r == recipient)))
        .collect()
}
