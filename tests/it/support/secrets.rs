//! Helpers for the secrets and Tailscale tests: real age keys (age-keygen),
//! sops-format files whose data-key stanzas are real age ciphertext, and the
//! sops stand-in in tests/stand-ins/sops.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use std::io::Write as _;

pub fn sops_standin() -> PathBuf {
    super::stand_in("sops")
}

/// A real age identity: (identity file, recipient).
pub struct AgeKey {
    pub file: PathBuf,
    pub recipient: String,
}

pub fn age_keygen(dir: &Path, name: &str) -> AgeKey {
    let file = dir.join(format!("{name}.txt"));
    let out = Command::new("age-keygen")
        .arg("-o")
        .arg(&file)
        .output()
        .expect("age-keygen runs (scripts/test installs age)");
    assert!(
        out.status.success(),
        "age-keygen: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&file).expect("key file");
    let recipient = text
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .expect("public key line")
        .to_string();
    AgeKey { file, recipient }
}

/// `age -a -r R` of `data`: a real armored age stanza, as sops stores it.
pub fn age_encrypt(recipient: &str, data: &[u8]) -> String {
    let mut child = Command::new("age")
        .args(["-a", "-r", recipient])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("age runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(data)
        .expect("write");
    let out = child.wait_with_output().expect("age");
    assert!(out.status.success());
    String::from_utf8(out.stdout).expect("utf8")
}

/// `age -d -i KEY` of an armored stanza; None when the key cannot.
pub fn age_decrypt(identity: &Path, armored: &str) -> Option<Vec<u8>> {
    let mut child = Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(identity)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("age runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(armored.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("age");
    out.status.success().then_some(out.stdout)
}

pub const DATA_KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

/// A secret file in sops' YAML layout whose data key is encrypted (really,
/// with age) to `recipients`.
pub fn sops_yaml_file(recipients: &[&str]) -> String {
    let mut s = String::from(
        "password: ENC[AES256_GCM,data:2mP+IAdczoEr0g==,iv:voX4IQemcgt0O97oLExy5r2V85nn687cIyWmHNDhUag=,tag:R97qy4fKneU7D9UFhXNvgA==,type:str]\nsops:\n    kms: []\n    gcp_kms: []\n    azure_kv: []\n    hc_vault: []\n    age:\n",
    );
    for r in recipients {
        s.push_str(&format!("        - recipient: {r}\n          enc: |\n"));
        for line in age_encrypt(r, DATA_KEY).lines() {
            s.push_str(&format!("            {line}\n"));
        }
    }
    s.push_str("    lastmodified: \"2026-11-26T10:00:00Z\"\n    mac: ENC[AES256_GCM,data:WQjp,iv:fwWj,tag:6FT1,type:str]\n    pgp: []\n    unencrypted_suffix: _unencrypted\n    version: 3.13.2\n");
    s
}

/// The same in sops' dotenv layout.
pub fn sops_dotenv_file(recipients: &[&str]) -> String {
    let mut meta = vec![
        "sops_lastmodified=2026-11-26T10:00:00Z".to_string(),
        "sops_mac=ENC[AES256_GCM,data:WQjp,iv:fwWj,tag:6FT1,type:str]".into(),
        "sops_unencrypted_suffix=_unencrypted".into(),
        "sops_version=3.13.2".into(),
    ];
    for (i, r) in recipients.iter().enumerate() {
        meta.push(format!(
            "sops_age__list_{i}__map_enc={}",
            age_encrypt(r, DATA_KEY).replace('\n', "\\n")
        ));
        meta.push(format!("sops_age__list_{i}__map_recipient={r}"));
    }
    meta.sort();
    format!(
        "DB_PASSWORD=ENC[AES256_GCM,data:abc=,iv:def=,tag:ghi=,type:str]\n{}\n",
        meta.join("\n")
    )
}

/// The same in sops' JSON layout (tab indent).
pub fn sops_json_file(recipients: &[&str]) -> String {
    let age: Vec<serde_json::Value> = recipients
        .iter()
        .map(|r| serde_json::json!({"recipient": r, "enc": age_encrypt(r, DATA_KEY)}))
        .collect();
    let doc = serde_json::json!({
        "token": "ENC[AES256_GCM,data:abc=,iv:def=,tag:ghi=,type:str]",
        "sops": {"age": age, "lastmodified": "2026-11-26T10:00:00Z", "mac": "ENC[AES256_GCM,data:x,type:str]", "version": "3.13.2"}
    });
    serde_json::to_string_pretty(&doc).expect("json") + "\n"
}

/// The same in sops' INI layout (`[sops]` section, gopkg.in/ini spacing).
pub fn sops_ini_file(recipients: &[&str]) -> String {
    let mut s = String::from(
        "[database]\npassword = ENC[AES256_GCM,data:abc=,iv:def=,tag:ghi=,type:str]\n\n[sops]\n",
    );
    for (i, r) in recipients.iter().enumerate() {
        s.push_str(&format!(
            "age__list_{i}__map_enc = {}\n",
            age_encrypt(r, DATA_KEY).replace('\n', "\\n")
        ));
        s.push_str(&format!("age__list_{i}__map_recipient = {r}\n"));
    }
    s.push_str("lastmodified = 2026-11-26T10:00:00Z\nversion = 3.13.2\n");
    s
}

/// A `.sops.yaml` in the layout `pve render` writes: anchors under `keys:`,
/// one rule per host folder, then a catch-all.
pub fn render_style_sops_yaml(admin: &str, hosts: &[(&str, &str)]) -> String {
    let mut s = String::from("# Generated by `pve render` from hosts.nix\nkeys:\n");
    s.push_str(&format!("  - &admin_master {admin} # admin master\n"));
    for (h, r) in hosts {
        s.push_str(&format!("  - &host_{h} {r} # host {h}\n"));
    }
    s.push_str("creation_rules:\n");
    for (h, _) in hosts {
        s.push_str(&format!(
            "  # {h}: admins and the host\n  - path_regex: '^hosts/{h}/'\n    key_groups:\n      - age:\n          - *admin_master\n          - *host_{h}\n"
        ));
    }
    s.push_str("  # everything else: admins and every host\n  - path_regex: '.*'\n    key_groups:\n      - age:\n          - *admin_master\n");
    for (h, _) in hosts {
        s.push_str(&format!("          - *host_{h}\n"));
    }
    s
}

/// The age recipients listed in a sops YAML file (read independently of
/// the tool: the `- recipient:` lines).
pub fn yaml_recipients(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("- recipient: "))
        .map(String::from)
        .collect()
}

/// The armored stanza for `recipient` in a sops YAML file.
pub fn yaml_stanza(text: &str, recipient: &str) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.trim() == format!("- recipient: {recipient}"))?;
    let mut out = String::new();
    for l in &lines[at + 2..] {
        let t = l.trim();
        out.push_str(t);
        out.push('\n');
        if t == "-----END AGE ENCRYPTED FILE-----" {
            return Some(out);
        }
    }
    None
}
