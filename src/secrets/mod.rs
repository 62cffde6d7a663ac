//! Everything about sops-encrypted files: which files are secrets
//! ([`secret_files`]), who can decrypt them ([`metadata`]), who should
//! ([`config`]), the difference as `pve check` findings ([`health`]), and
//! re-keying and rotating them with the sops binary ([`sops`]).

pub mod adopt;
pub mod config;
pub mod health;
pub mod metadata;
pub mod rekey;
pub mod sops;

use std::path::{Path, PathBuf};

pub use config::SopsConfig;

/// The default place of `.sops.yaml`, relative to the fleet root.
pub const DEFAULT_SOPS_YAML: &str = "secrets/.sops.yaml";

/// A file under the secrets folder and what reading it as a sops file gave.
#[derive(Debug)]
pub struct Scanned {
    pub path: PathBuf,
    pub found: Result<(metadata::Format, metadata::Metadata), metadata::MetadataError>,
}

/// Every file under the config's folder that is a sops file by its
/// content (any name: binary-format secrets are JSON with `data` and
/// `sops`), plus the files named like YAML, JSON, dotenv or INI that are
/// not (a plaintext secret about to be committed is worth a finding).
/// Hidden folders are searched (`.git` aside); `.sops.yaml` and symlinked
/// folders are left out. Sorted by path.
pub fn scan(config: &SopsConfig) -> Vec<Scanned> {
    let mut paths = Vec::new();
    walk(&config.dir, &config.path, &mut paths, 0);
    paths.sort();
    paths
        .into_iter()
        .filter_map(|path| {
            let found = metadata::read_with_format(&path);
            let keep = found.is_ok() || metadata::Format::of(&path).is_some();
            keep.then_some(Scanned { path, found })
        })
        .collect()
}

/// The paths [`scan`] finds.
pub fn candidate_files(config: &SopsConfig) -> Vec<PathBuf> {
    scan(config).into_iter().map(|s| s.path).collect()
}

/// The secret files: sops files that one of the creation rules covers
/// (sops cannot re-key a file no rule matches). A file whose search for
/// a rule stops at a pattern that cannot compile is kept: sops, run on
/// it, stops with that error, and the run reports it.
pub fn secret_files(config: &SopsConfig) -> Vec<PathBuf> {
    scan(config)
        .into_iter()
        .filter(|s| s.found.is_ok() && !matches!(config.rule_for(&s.path), Ok(None)))
        .map(|s| s.path)
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
            if name != ".git" {
                walk(&path, skip, out, depth + 1);
            }
        } else if name != ".sops.yaml" && !same_file(&path, skip) && path.is_file() {
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
    scan(config)
        .into_iter()
        .filter(|s| {
            s.found
                .as_ref()
                .is_ok_and(|(_, m)| m.recipients().any(|r| r == recipient))
        })
        .map(|s| s.path)
        .collect()
}

/// Whether a rule of the `.sops.yaml` at `path` gives `recipient` (false
/// when there is none, or it cannot be read).
pub fn listed_in_rules(path: Option<&Path>, recipient: &str) -> bool {
    path.and_then(|p| SopsConfig::load(p).ok())
        .is_some_and(|c| {
            c.rules
                .iter()
                .any(|r| r.recipients().any(|x| x == recipient))
        })
}
