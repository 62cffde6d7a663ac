//! Secrets health: does every secret file's own metadata list exactly the
//! age recipients that `.sops.yaml` gives it? A recipient the rule gives
//! but the file lacks is a machine that cannot decrypt it on boot; one the
//! file has but the rule no longer gives is a removed host or an old key
//! that still can. Read from the files themselves: no sops binary, no key.

use std::path::{Path, PathBuf};

use rowan::TextRange;

use super::config::SopsConfig;
use super::metadata;
use crate::diag::{Code, Diagnostic};
use crate::fleet::Loaded;

/// One difference between a file and its rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// The rule gives these recipients; the file is not encrypted to them.
    Missing {
        file: PathBuf,
        rule: String,
        recipients: Vec<String>,
    },
    /// The file is encrypted to these; the rule no longer gives them.
    Stale {
        file: PathBuf,
        rule: String,
        recipients: Vec<String>,
    },
    /// The file (or `.sops.yaml`) cannot be read as sops metadata.
    Unreadable { file: PathBuf, reason: String },
}

/// Compares every secret file under `.sops.yaml`'s folder with its rule.
/// No folder (or no `.sops.yaml` and no secret files) → no findings.
pub fn findings(root_dir: &Path, sops_yaml_rel: &Path) -> (Option<SopsConfig>, Vec<Finding>) {
    let path = root_dir.join(sops_yaml_rel);
    let Some(dir) = path.parent() else {
        return (None, Vec::new());
    };
    if !dir.is_dir() {
        return (None, Vec::new());
    }
    if !path.exists() {
        // No rules: only worth saying when there are files to check.
        let stand_in = SopsConfig::without_rules(path.clone(), dir.to_path_buf());
        let n = super::candidate_files(&stand_in).len();
        if n == 0 {
            return (None, Vec::new());
        }
        return (
            None,
            vec![Finding::Unreadable {
                file: path,
                reason: format!(
                    "it does not exist, so the recipients of {} cannot be checked",
                    crate::plural::plural(n, "secret file")
                ),
            }],
        );
    }
    let config = match SopsConfig::load(&path) {
        Ok(c) => c,
        Err(e) => {
            let reason = match e {
                super::config::ConfigError::Io { source, .. } => source.to_string(),
                super::config::ConfigError::Invalid { message, .. } => message,
            };
            return (None, vec![Finding::Unreadable { file: path, reason }]);
        }
    };
    let mut out = Vec::new();
    let mut rule_failed = false;
    for scanned in super::scan(&config) {
        let file = scanned.path;
        let rule = match config.rule_for(&file) {
            Ok(Some(rule)) => rule,
            Ok(None) => continue,
            // A pattern sops cannot compile: said once, for `.sops.yaml`.
            Err(e) => {
                if !rule_failed {
                    rule_failed = true;
                    let reason = match e {
                        super::config::ConfigError::Io { source, .. } => source.to_string(),
                        super::config::ConfigError::Invalid { message, .. } => message,
                    };
                    out.push(Finding::Unreadable {
                        file: config.path.clone(),
                        reason,
                    });
                }
                continue;
            }
        };
        let meta = match scanned.found {
            Ok((_, m)) => m,
            Err(e) => {
                let reason = match e {
                    metadata::MetadataError::Io { source, .. } => source.to_string(),
                    metadata::MetadataError::Parse { message, .. } => message,
                    metadata::MetadataError::NotEncrypted { .. } => {
                        "it has no sops metadata: it is not encrypted with sops".into()
                    }
                    metadata::MetadataError::UnknownFormat { .. } => {
                        "sops does not read it as YAML, JSON, dotenv or INI".into()
                    }
                };
                out.push(Finding::Unreadable { file, reason });
                continue;
            }
        };
        let want: Vec<&str> = rule.recipients().collect();
        let have: Vec<&str> = meta.recipients().collect();
        let missing = not_in(&want, &have);
        let stale = not_in(&have, &want);
        if !missing.is_empty() {
            out.push(Finding::Missing {
                file: file.clone(),
                rule: rule.path_regex.clone(),
                recipients: missing,
            });
        }
        if !stale.is_empty() {
            out.push(Finding::Stale {
                file,
                rule: rule.path_regex.clone(),
                recipients: stale,
            });
        }
    }
    (Some(config), out)
}

/// The recipients of `these` that `those` lacks, in order, each once. Sets,
/// not searches: a common secret of a 10,000-host fleet has 10,000 of each.
fn not_in(these: &[&str], those: &[&str]) -> Vec<String> {
    let those: rustc_hash::FxHashSet<&str> = those.iter().copied().collect();
    let mut seen = rustc_hash::FxHashSet::default();
    these
        .iter()
        .filter(|r| !those.contains(**r) && seen.insert(**r))
        .map(|r| r.to_string())
        .collect()
}

/// The findings as `pve check` diagnostics (codes `secret-missing-recipient`,
/// `secret-stale-recipient`, `secret-unreadable`), each naming the file.
pub fn check(root_dir: &Path, sops_yaml_rel: &Path) -> Vec<Diagnostic> {
    let (config, findings) = findings(root_dir, sops_yaml_rel);
    let show = |p: &Path| p.strip_prefix(root_dir).unwrap_or(p).display().to_string();
    let name = |r: &str| -> String {
        match config.as_ref().and_then(|c| c.name_of(r)) {
            Some(n) => format!("{r} ({n})"),
            None => r.to_string(),
        }
    };
    let rule_text = |r: &str| {
        if r.is_empty() {
            "the rule without path_regex".to_string()
        } else {
            format!("the rule `{r}`")
        }
    };
    let sops_yaml = show(&root_dir.join(sops_yaml_rel));
    findings
        .into_iter()
        .map(|f| match f {
            Finding::Missing { file, rule, recipients } => {
                let hosts: Vec<&str> = recipients
                    .iter()
                    .filter_map(|r| config.as_ref()?.name_of(r)?.strip_prefix("host "))
                    .collect();
                let file = show(&file);
                let fix = match hosts.as_slice() {
                    [h] => format!("run `pve integrate {h}` (it re-keys every secret), or `sops updatekeys --yes {file}`"),
                    _ => format!("run `sops updatekeys --yes {file}` with an admin key"),
                };
                let (them, cannot) = if recipients.len() == 1 {
                    ("recipient", "that key cannot")
                } else {
                    ("recipients", "those keys cannot")
                };
                Diagnostic::error(
                    Code::SecretMissingRecipient,
                    TextRange::default(),
                    format!(
                        "{file} is not encrypted to {them} {}, which {} in {sops_yaml} gives it: {cannot} decrypt the file (a host cannot read its secrets on boot)",
                        recipients.iter().map(|r| name(r)).collect::<Vec<_>>().join(", "),
                        rule_text(&rule),
                    ),
                )
                .help(fix)
            }
            Finding::Stale { file, rule, recipients } => {
                let file = show(&file);
                let (them, can) = if recipients.len() == 1 {
                    ("recipient", "that key")
                } else {
                    ("recipients", "those keys")
                };
                Diagnostic::warning(
                    Code::SecretStaleRecipient,
                    TextRange::default(),
                    format!(
                        "{file} is still encrypted to {them} {}, which {} in {sops_yaml} no longer gives it: {can} (a removed host or an old key) can still decrypt the file",
                        recipients.iter().map(|r| name(r)).collect::<Vec<_>>().join(", "),
                        rule_text(&rule),
                    ),
                )
                .help(format!(
                    "run `sops updatekeys --yes {file}`, then `sops rotate -i {file}` so the old key cannot read the values either"
                ))
            }
            Finding::Unreadable { file, reason } => {
                let file = show(&file);
                let help = if file == sops_yaml {
                    "run `pve render` to write it from hosts.nix".to_string()
                } else {
                    format!("encrypt it with sops (`sops encrypt -i {file}`), or move it out of the secrets folder")
                };
                Diagnostic::error(
                    Code::SecretUnreadable,
                    TextRange::default(),
                    format!("{file}: cannot read its sops recipients: {reason}"),
                )
                .help(help)
            }
        })
        .collect()
}

/// The `pve check` rule: `.sops.yaml` at `_sops.path` (default
/// `secrets/.sops.yaml`) under the fleet root.
pub fn rule(loaded: &Loaded) -> Vec<Diagnostic> {
    let rel = loaded
        .fleet
        .sops
        .path
        .as_ref()
        .map_or(super::DEFAULT_SOPS_YAML, |p| p.value.as_str());
    let mut out = check(&loaded.root_dir, Path::new(rel));
    if loaded.fleet.sops.span.is_none() && loaded.root_dir.join(rel).is_file() {
        out.insert(0, unmanaged(rel));
    }
    out
}

/// A committed `.sops.yaml` that hosts.nix does not describe: pve cannot
/// re-key with it, so `pve remove` / `pve integrate` refuse secrets work.
fn unmanaged(rel: &str) -> Diagnostic {
    Diagnostic::warning(
        Code::SecretConfigUnmanaged,
        TextRange::default(),
        format!(
            "{rel} exists, but hosts.nix has no `_sops`: pve does not write it, so `pve remove` cannot take a host's key out of it and `pve integrate` cannot add one (both refuse to touch secrets)"
        ),
    )
    .help(format!(
        "run `pve secrets adopt` (`--dry-run` first): it writes the `_sops` block that renders {rel} again (the recipients that are no host's key as `admins`, its per-path rules as `rules`) and reports what it cannot keep; then `pve render --check`"
    ))
}

#[cfg(test)]
mod tests {
    use super::not_in;

    #[test]
    fn what_one_list_lacks_is_in_order_and_once() {
        let want = ["a", "b", "c", "b", "d"];
        let have = ["c", "x", "x", "a"];
        assert_eq!(not_in(&want, &have), ["b", "d"]);
        assert_eq!(not_in(&have, &want), ["x"]);
        assert!(not_in(&want, &want).is_empty());
    }
}
