//! Re-keying with proof: which files need `updatekeys` and which a new
//! data key, worked out from each file's own metadata (not from the
//! rules, which may have changed already), and afterwards a check that
//! what was meant to happen did: every file is encrypted to exactly the
//! recipients its rule gives, a revoked key is in no file's metadata, and
//! every value of a rotated file was re-encrypted (so the old data key, the
//! one a revoked host may have kept, opens none of them).
//!
//! The workflows print "revoked" only from [`verify_revoked`]'s result.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use regex::Regex;

use super::config::SopsConfig;
use super::metadata;
use super::sops::{RekeyReport, Sops};

/// One secret file: who can decrypt it now (its metadata) and who its
/// rule says should.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileKeys {
    pub path: PathBuf,
    pub have: Vec<String>,
    pub want: Vec<String>,
}

impl FileKeys {
    /// Recipients the file has and its rule no longer gives: after
    /// updatekeys they are gone from the metadata, but they may have kept
    /// the data key, so the file needs a new one.
    pub fn dropped(&self) -> Vec<String> {
        self.have
            .iter()
            .filter(|r| !self.want.contains(r))
            .cloned()
            .collect()
    }

    /// Whether the file already has exactly its rule's recipients.
    pub fn is_current(&self) -> bool {
        as_set(&self.have) == as_set(&self.want)
    }
}

fn as_set(v: &[String]) -> BTreeSet<&str> {
    v.iter().map(String::as_str).collect()
}

/// Every secret file a rule covers, with its recipients now and wanted;
/// an error (for `.sops.yaml`) when the search for a file's rule stops at
/// a pattern that cannot compile, as sops would stop.
pub fn survey(config: &SopsConfig) -> Result<Vec<FileKeys>, (PathBuf, String)> {
    let mut out = Vec::new();
    for s in super::scan(config) {
        let Ok((_, meta)) = s.found else {
            continue;
        };
        let rule = match config.rule_for(&s.path) {
            Ok(Some(rule)) => rule,
            Ok(None) => continue,
            Err(super::config::ConfigError::Invalid { message, .. }) => {
                return Err((config.path.clone(), message))
            }
            Err(e) => return Err((config.path.clone(), e.to_string())),
        };
        out.push(FileKeys {
            have: meta.recipients().map(String::from).collect(),
            want: rule.recipients().map(String::from).collect(),
            path: s.path,
        });
    }
    Ok(out)
}

/// The encrypted values of a sops file (every `ENC[…]`, the MAC among
/// them), as text: a rotation re-encrypts each with the new data key.
pub fn ciphertexts(path: &Path) -> BTreeSet<String> {
    static ENC: OnceLock<Option<Regex>> = OnceLock::new();
    let Some(re) = ENC
        .get_or_init(|| Regex::new(r"ENC\[[A-Za-z0-9_]+,[^\]]*\]").ok())
        .as_ref()
    else {
        return BTreeSet::new();
    };
    let bytes = crate::fsutil::read_limited(path, super::metadata::MAX_SIZE).unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes);
    re.find_iter(&text)
        .map(|m| m.as_str().to_string())
        .collect()
}

/// The ciphertexts of each file, taken before a rotation.
pub fn snapshot(files: &[PathBuf]) -> BTreeMap<PathBuf, BTreeSet<String>> {
    files.iter().map(|f| (f.clone(), ciphertexts(f))).collect()
}

/// What is wrong with a file after re-keying, or nothing.
pub type Problems = Vec<(PathBuf, String)>;

/// Checks that none of `revoked` can decrypt the rotated `files` any more:
/// no revoked recipient in the file's metadata, and no value left that was
/// encrypted with the data key from before (`before`, from [`snapshot`]).
pub fn verify_revoked(
    files: &[PathBuf],
    revoked: &[String],
    before: &BTreeMap<PathBuf, BTreeSet<String>>,
) -> Problems {
    let mut out = Vec::new();
    for f in files {
        let meta = match metadata::read(f) {
            Ok(m) => m,
            Err(e) => {
                out.push((f.clone(), format!("cannot read it after rotating: {e}")));
                continue;
            }
        };
        let still: Vec<&str> = meta
            .recipients()
            .filter(|r| revoked.iter().any(|x| x == r))
            .collect();
        if !still.is_empty() {
            out.push((
                f.clone(),
                format!("is still encrypted to {}", still.join(", ")),
            ));
            continue;
        }
        let now = ciphertexts(f);
        let old = before.get(f).cloned().unwrap_or_default();
        if now.is_empty() || !now.is_disjoint(&old) {
            out.push((
                f.clone(),
                "its values were not re-encrypted: the old data key still opens them".into(),
            ));
        }
    }
    out
}

/// Checks that every file has exactly the recipients its rule gives.
pub fn verify_current(config: &SopsConfig, files: &[PathBuf]) -> Problems {
    let keys: BTreeMap<PathBuf, FileKeys> = match survey(config) {
        Ok(files) => files,
        Err(problem) => return vec![problem],
    }
    .into_iter()
    .map(|k| (k.path.clone(), k))
    .collect();
    files
        .iter()
        .filter_map(|f| match keys.get(f) {
            Some(k) if k.is_current() => None,
            Some(k) => {
                let missing: Vec<&str> = k
                    .want
                    .iter()
                    .filter(|r| !k.have.contains(r))
                    .map(String::as_str)
                    .collect();
                let extra = k.dropped();
                Some((
                    f.clone(),
                    format!(
                        "after updatekeys it lacks [{}] and still has [{}]",
                        missing.join(", "),
                        extra.join(", ")
                    ),
                ))
            }
            None => Some((
                f.clone(),
                "is no longer a sops file a rule covers".to_string(),
            )),
        })
        .collect()
}

/// What [`rekey_and_rotate`] did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// `sops rotate` on the files a dropped recipient could read.
    pub rotated: RekeyReport,
    /// `sops updatekeys` on every secret file.
    pub rekeyed: RekeyReport,
    /// The recipients taken out, each with the files it could read.
    pub revoked: BTreeMap<String, Vec<PathBuf>>,
    /// Files that were already current before.
    pub unchanged: usize,
    /// What the checks afterwards found wrong.
    pub problems: Problems,
}

impl Outcome {
    pub fn is_success(&self) -> bool {
        self.rotated.is_success() && self.rekeyed.is_success() && self.problems.is_empty()
    }
}

/// Brings every secret file in line with `.sops.yaml`: first a new data
/// key for each file that a recipient the rules dropped could read (while
/// the file still has its old recipients, so a run that stops here and
/// starts again finds the same files), then `updatekeys` where the
/// recipients differ, then the checks.
pub fn rekey_and_rotate(sops: &Sops, config: &SopsConfig) -> Outcome {
    let mut out = Outcome::default();
    let files = match survey(config) {
        Ok(files) => files,
        Err(problem) => {
            out.problems.push(problem);
            return out;
        }
    };
    let to_rotate: Vec<PathBuf> = files
        .iter()
        .filter(|k| !k.dropped().is_empty())
        .map(|k| k.path.clone())
        .collect();
    for k in &files {
        for r in k.dropped() {
            out.revoked.entry(r).or_default().push(k.path.clone());
        }
    }
    let before = snapshot(&to_rotate);
    out.rotated = sops.rotate(&to_rotate);
    if !out.rotated.is_success() {
        return out;
    }
    // Every file, current or not: sops answers "already up to date"
    // without touching a current one, and a file changed by hand since the
    // survey is caught too.
    let all: Vec<PathBuf> = files.iter().map(|k| k.path.clone()).collect();
    out.unchanged = files.iter().filter(|k| k.is_current()).count();
    out.rekeyed = sops.updatekeys(&all);
    if !out.rekeyed.is_success() {
        return out;
    }
    out.problems = verify_current(config, &all);
    let revoked: Vec<String> = out.revoked.keys().cloned().collect();
    out.problems
        .extend(verify_revoked(&to_rotate, &revoked, &before));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(have: &[&str], want: &[&str]) -> FileKeys {
        FileKeys {
            path: PathBuf::from("/f/a.yaml"),
            have: have.iter().map(|s| s.to_string()).collect(),
            want: want.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn a_dropped_recipient_needs_a_new_data_key_an_added_one_does_not() {
        let replaced = keys(&["age1admin", "age1old"], &["age1admin", "age1new"]);
        assert_eq!(replaced.dropped(), ["age1old"]);
        assert!(!replaced.is_current());
        let added = keys(&["age1admin"], &["age1admin", "age1new"]);
        assert!(added.dropped().is_empty());
        assert!(!added.is_current());
        assert!(keys(&["b", "a"], &["a", "b"]).is_current());
    }

    #[test]
    fn a_rotation_that_left_a_value_or_a_recipient_is_not_a_revocation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("a.yaml");
        let write = |text: &str| std::fs::write(&f, text).expect("write");
        write("a: ENC[AES256_GCM,data:one,iv:i,tag:t,type:str]\nb: ENC[AES256_GCM,data:two,iv:i,tag:t,type:str]\nsops:\n    age:\n        - recipient: age1admin\n          enc: x\n        - recipient: age1old\n          enc: y\n");
        let files = vec![f.clone()];
        let before = snapshot(&files);
        let revoked = vec!["age1old".to_string()];
        // Nothing happened: the old recipient is still there.
        let p = verify_revoked(&files, &revoked, &before);
        assert!(p[0].1.contains("still encrypted to age1old"), "{p:?}");
        // Recipient gone, but one value kept its old ciphertext.
        write("a: ENC[AES256_GCM,data:new,iv:i,tag:t,type:str]\nb: ENC[AES256_GCM,data:two,iv:i,tag:t,type:str]\nsops:\n    age:\n        - recipient: age1admin\n          enc: x\n");
        let p = verify_revoked(&files, &revoked, &before);
        assert!(p[0].1.contains("not re-encrypted"), "{p:?}");
        // Every value new and the recipient gone: revoked.
        write("a: ENC[AES256_GCM,data:new,iv:i,tag:t,type:str]\nb: ENC[AES256_GCM,data:new2,iv:i,tag:t,type:str]\nsops:\n    age:\n        - recipient: age1admin\n          enc: x\n");
        assert!(verify_revoked(&files, &revoked, &before).is_empty());
    }
}
