//! The sops metadata of an encrypted file, read without the sops binary:
//! which age recipients can decrypt it. The formats are sops' own
//! (`stores/`): a top-level `sops` map in YAML and JSON (`sops.age[]`, or
//! `sops.key_groups[].age[]` with several groups), the binary format (JSON
//! with the file as one `data` value next to `sops`), flattened `sops_…`
//! keys in dotenv files (`sops_age__list_0__map_recipient=age1…`), and a
//! `[sops]` section with the same flattened keys in INI files.
//!
//! A file is a secret by what it holds, not by its name: sops encrypts
//! anything (an SSH key, a netrc, a TLS key) in its binary format, and picks
//! the store from the extension only when it reads the file again. So the
//! format is sniffed from the content ([`sniff`]), and [`Format::by_extension`]
//! says whether sops needs `--input-type` to read the file the same way.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The file formats (sops' stores).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Json,
    Dotenv,
    Ini,
    /// Any other file: sops keeps it as JSON `{"data": …, "sops": …}`.
    Binary,
}

impl Format {
    /// The store sops picks for this path when no `--input-type` is given
    /// (`cmd/sops/common` `FormatForPath`): by extension, else binary.
    pub fn by_extension(path: &Path) -> Format {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name == ".env" {
            return Format::Dotenv;
        }
        match path.extension().and_then(|e| e.to_str()) {
            Some("yaml" | "yml") => Format::Yaml,
            Some("json") => Format::Json,
            Some("env") => Format::Dotenv,
            Some("ini") => Format::Ini,
            _ => Format::Binary,
        }
    }

    /// The format sops would use for this path by extension, or `None`
    /// for a file sops would treat as binary.
    pub fn of(path: &Path) -> Option<Format> {
        Some(Format::by_extension(path)).filter(|f| *f != Format::Binary)
    }

    /// The name sops' `--input-type` / `--output-type` take.
    pub fn sops_name(self) -> &'static str {
        match self {
            Format::Yaml => "yaml",
            Format::Json => "json",
            Format::Dotenv => "dotenv",
            Format::Ini => "ini",
            Format::Binary => "binary",
        }
    }
}

/// Files larger than this are not read to look for sops metadata (sops
/// files are text; this keeps a stray disk image from being slurped).
pub const MAX_SIZE: u64 = 64 * 1024 * 1024;

/// What the file says about who can decrypt it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    /// Age recipients per key group (one group unless the file uses
    /// `key_groups`/Shamir).
    pub groups: Vec<Vec<String>>,
}

impl Metadata {
    pub fn recipients(&self) -> impl Iterator<Item = &str> {
        self.groups.iter().flatten().map(String::as_str)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not a file sops reads as YAML, JSON, dotenv or INI", path.display())]
    UnknownFormat { path: PathBuf },
    #[error("{}: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error("{} has no sops metadata: it is not encrypted with sops", path.display())]
    NotEncrypted { path: PathBuf },
}

/// Reads the metadata of one file, whatever its name: the format is
/// sniffed from the content.
pub fn read(path: &Path) -> Result<Metadata, MetadataError> {
    read_with_format(path).map(|(_, m)| m)
}

/// The same, with the format the content is in.
pub fn read_with_format(path: &Path) -> Result<(Format, Metadata), MetadataError> {
    let io = |source| MetadataError::Io {
        path: path.to_path_buf(),
        source,
    };
    let size = std::fs::metadata(path).map_err(io)?.len();
    if size > MAX_SIZE {
        return Err(MetadataError::NotEncrypted {
            path: path.to_path_buf(),
        });
    }
    // Bounded while reading too: the file may have grown (or been swapped)
    // since the size was asked.
    let bytes = match crate::fsutil::read_limited(path, MAX_SIZE) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::FileTooLarge => {
            return Err(MetadataError::NotEncrypted {
                path: path.to_path_buf(),
            })
        }
        Err(e) => return Err(io(e)),
    };
    let Ok(text) = String::from_utf8(bytes) else {
        return Err(MetadataError::NotEncrypted {
            path: path.to_path_buf(),
        });
    };
    sniff(&text, Format::by_extension(path)).map_err(|e| match e {
        ParseError::Invalid(message) => MetadataError::Parse {
            path: path.to_path_buf(),
            message,
        },
        ParseError::NoMetadata => MetadataError::NotEncrypted {
            path: path.to_path_buf(),
        },
    })
}

/// The format of a sops file's text and its metadata: the format its name
/// suggests first, then the others. An error is the one the name's format
/// gave (so a broken `x.yaml` says what is wrong with it as YAML).
pub fn sniff(text: &str, hint: Format) -> Result<(Format, Metadata), ParseError> {
    let first = parse_as(text, hint);
    if let Ok(found) = first {
        return Ok(found);
    }
    for f in [Format::Json, Format::Ini, Format::Dotenv, Format::Yaml] {
        if f == hint || (hint == Format::Binary && f == Format::Json) {
            continue;
        }
        if let Ok(found) = parse_as(text, f) {
            return Ok(found);
        }
    }
    match first {
        Err(ParseError::Invalid(m)) if hint != Format::Binary => Err(ParseError::Invalid(m)),
        _ => Err(ParseError::NoMetadata),
    }
}

/// Parses `text` as `format`; JSON whose only other key is `data` is the
/// binary format.
fn parse_as(text: &str, format: Format) -> Result<(Format, Metadata), ParseError> {
    match format {
        Format::Json | Format::Binary => {
            let m = parse(text, Format::Json)?;
            let binary = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text)
                .is_ok_and(|o| o.len() == 2 && o.contains_key("data"));
            let f = if binary && format != Format::Json {
                Format::Binary
            } else {
                Format::Json
            };
            Ok((f, m))
        }
        f => parse(text, f).map(|m| (f, m)),
    }
}

/// Why text could not give metadata (without a path; [`read`] adds it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    Invalid(String),
    NoMetadata,
}

/// Parses the metadata out of a file's text.
pub fn parse(text: &str, format: Format) -> Result<Metadata, ParseError> {
    match format {
        Format::Yaml => {
            let f: Document = serde_yaml_ng::from_str(text)
                .map_err(|e| ParseError::Invalid(format!("not valid sops YAML: {e}")))?;
            f.sops
                .ok_or(ParseError::NoMetadata)
                .map(Meta::into_metadata)
        }
        Format::Json | Format::Binary => {
            let f: Document = serde_json::from_str(text)
                .map_err(|e| ParseError::Invalid(format!("not valid sops JSON: {e}")))?;
            f.sops
                .ok_or(ParseError::NoMetadata)
                .map(Meta::into_metadata)
        }
        Format::Dotenv => flat_metadata(dotenv_sops_keys(text)?),
        Format::Ini => flat_metadata(ini_sops_keys(text)?),
    }
}

#[derive(Deserialize)]
struct Document {
    sops: Option<Meta>,
}

#[derive(Deserialize)]
struct Meta {
    #[serde(default)]
    age: Option<Vec<AgeKey>>,
    #[serde(default)]
    key_groups: Option<Vec<Group>>,
    #[serde(default)]
    pgp: Option<Vec<serde::de::IgnoredAny>>,
    #[serde(default)]
    kms: Option<Vec<serde::de::IgnoredAny>>,
    #[serde(default)]
    gcp_kms: Option<Vec<serde::de::IgnoredAny>>,
    #[serde(default)]
    azure_kv: Option<Vec<serde::de::IgnoredAny>>,
    #[serde(default)]
    hc_vault: Option<Vec<serde::de::IgnoredAny>>,
}

#[derive(Deserialize)]
struct Group {
    #[serde(default)]
    age: Option<Vec<AgeKey>>,
}

#[derive(Deserialize)]
struct AgeKey {
    recipient: String,
}

impl Meta {
    /// As sops' `internalKeygroups`: any flat keys make one group, else
    /// `key_groups`.
    fn into_metadata(self) -> Metadata {
        let len = |v: &Option<Vec<serde::de::IgnoredAny>>| v.as_ref().map_or(0, Vec::len);
        let flat_age: Vec<String> = self
            .age
            .unwrap_or_default()
            .into_iter()
            .map(|k| k.recipient.trim().to_string())
            .collect();
        let flat_others = len(&self.pgp)
            + len(&self.kms)
            + len(&self.gcp_kms)
            + len(&self.azure_kv)
            + len(&self.hc_vault);
        let key_groups = self.key_groups.unwrap_or_default();
        let groups = if !flat_age.is_empty() || flat_others > 0 || key_groups.is_empty() {
            vec![flat_age]
        } else {
            key_groups
                .into_iter()
                .map(|g| {
                    g.age
                        .unwrap_or_default()
                        .into_iter()
                        .map(|k| k.recipient.trim().to_string())
                        .collect()
                })
                .collect()
        };
        Metadata { groups }
    }
}

/// The `sops_…` lines of a dotenv file, prefix stripped (sops' dotenv
/// store: `KEY=VALUE` lines, `#` comments, no quoting).
fn dotenv_sops_keys(text: &str) -> Result<BTreeMap<String, String>, ParseError> {
    let mut out = BTreeMap::new();
    for (i, line) in text.split('\n').enumerate() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            return Err(ParseError::Invalid(format!(
                "line {}: invalid dotenv input line (no `=`)",
                i + 1
            )));
        };
        if let Some(k) = k.strip_prefix("sops_") {
            out.insert(k.to_string(), v.trim_end_matches('\r').to_string());
        }
    }
    Ok(out)
}

/// The keys of the `[sops]` section of an INI file.
fn ini_sops_keys(text: &str) -> Result<BTreeMap<String, String>, ParseError> {
    let mut out = BTreeMap::new();
    let mut in_sops = false;
    let mut seen = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[') {
            let name = section
                .strip_suffix(']')
                .ok_or_else(|| ParseError::Invalid(format!("unclosed section header `{line}`")))?;
            in_sops = name.trim() == "sops";
            seen |= in_sops;
            continue;
        }
        if !in_sops {
            continue;
        }
        let Some(pos) = line.find(['=', ':']) else {
            continue;
        };
        let key = line[..pos].trim();
        let mut value = line[pos + 1..].trim();
        for q in ['"', '`', '\''] {
            if value.len() >= 2 && value.starts_with(q) && value.ends_with(q) {
                value = &value[1..value.len() - 1];
            }
        }
        out.insert(key.to_string(), value.to_string());
    }
    if !seen {
        return Err(ParseError::NoMetadata);
    }
    Ok(out)
}

/// Recipients from flattened metadata keys: `age__list_N__map_recipient`
/// (one group) or `key_groups__list_G__map_age__list_N__map_recipient`.
fn flat_metadata(keys: BTreeMap<String, String>) -> Result<Metadata, ParseError> {
    if keys.is_empty() {
        return Err(ParseError::NoMetadata);
    }
    let mut flat: BTreeMap<u32, String> = BTreeMap::new();
    let mut grouped: BTreeMap<u32, BTreeMap<u32, String>> = BTreeMap::new();
    let mut flat_others = false;
    for (k, v) in &keys {
        if let Some(n) = list_index(k, "age__list_", "__map_recipient") {
            flat.insert(n, v.trim().to_string());
        } else if let Some(rest) = k.strip_prefix("key_groups__list_") {
            let Some((g, inner)) = rest.split_once("__map_") else {
                continue;
            };
            let (Ok(g), Some(n)) = (
                g.parse::<u32>(),
                list_index(inner, "age__list_", "__map_recipient"),
            ) else {
                continue;
            };
            grouped
                .entry(g)
                .or_default()
                .insert(n, v.trim().to_string());
        } else if [
            "pgp__list_",
            "kms__list_",
            "gcp_kms__list_",
            "azure_kv__list_",
            "hc_vault__list_",
        ]
        .iter()
        .any(|p| k.starts_with(p))
        {
            flat_others = true;
        }
    }
    let groups = if !flat.is_empty() || flat_others || grouped.is_empty() {
        vec![flat.into_values().collect()]
    } else {
        grouped
            .into_values()
            .map(|g| g.into_values().collect())
            .collect()
    };
    Ok(Metadata { groups })
}

fn list_index(key: &str, prefix: &str, suffix: &str) -> Option<u32> {
    key.strip_prefix(prefix)?.strip_suffix(suffix)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_follow_the_extension_as_in_sops() {
        assert_eq!(Format::of(Path::new("a/b.yaml")), Some(Format::Yaml));
        assert_eq!(Format::of(Path::new("b.yml")), Some(Format::Yaml));
        assert_eq!(Format::of(Path::new("b.json")), Some(Format::Json));
        assert_eq!(Format::of(Path::new("prod.env")), Some(Format::Dotenv));
        assert_eq!(Format::of(Path::new(".env")), Some(Format::Dotenv));
        assert_eq!(Format::of(Path::new("x.ini")), Some(Format::Ini));
        assert_eq!(Format::of(Path::new("key.bin")), None);
        assert_eq!(Format::by_extension(Path::new("key.bin")), Format::Binary);
        assert_eq!(
            Format::by_extension(Path::new("id_ed25519")),
            Format::Binary
        );
    }

    #[test]
    fn the_content_says_what_a_file_is_not_its_name() {
        let binary = r#"{"data":"ENC[AES256_GCM,data:x,type:str]","sops":{"age":[{"recipient":"age1b","enc":"e"}],"version":"3.11.0"}}"#;
        // sops' binary format under any name: a key file, a netrc, `x.json`.
        for name in ["id_ed25519", "netrc", "tls.key"] {
            let (f, m) = sniff(binary, Format::by_extension(Path::new(name))).expect("sops file");
            assert_eq!(f, Format::Binary, "{name}");
            assert_eq!(m.groups, vec![vec!["age1b"]]);
        }
        assert_eq!(sniff(binary, Format::Json).expect("json").0, Format::Json);
        // An INI file called `db.conf`, a dotenv file called `app.txt`.
        let ini = "[db]\npass = ENC[x]\n\n[sops]\nage__list_0__map_recipient = age1i\n";
        assert_eq!(sniff(ini, Format::Binary).expect("ini").0, Format::Ini);
        let env = "A=ENC[x]\nsops_age__list_0__map_recipient=age1e\nsops_version=3.11.0\n";
        assert_eq!(
            sniff(env, Format::Binary).expect("dotenv").0,
            Format::Dotenv
        );
        // Plain files are no secrets; a broken `x.yaml` says why.
        assert_eq!(
            sniff("just text\n", Format::Binary),
            Err(ParseError::NoMetadata)
        );
        assert_eq!(
            sniff("{\"a\": 1}", Format::Binary),
            Err(ParseError::NoMetadata)
        );
        assert!(matches!(
            sniff("- a\n- b\n", Format::Yaml),
            Err(ParseError::Invalid(_))
        ));
    }

    #[test]
    fn dotenv_metadata_is_flattened_with_a_sops_prefix() {
        let text = "DB_PASSWORD=ENC[AES256_GCM,data:abc,iv:x,tag:y,type:str]\n\
#ENC[AES256_GCM,data:comment,type:comment]\n\
sops_age__list_0__map_enc=-----BEGIN AGE ENCRYPTED FILE-----\\nYWdl\\n-----END AGE ENCRYPTED FILE-----\\n\n\
sops_age__list_0__map_recipient=age1first\n\
sops_age__list_1__map_recipient=age1second\n\
sops_age__list_10__map_recipient=age1eleventh\n\
sops_lastmodified=2025-01-01T00:00:00Z\n\
sops_mac=ENC[AES256_GCM,data:m,iv:i,tag:t,type:str]\n\
sops_unencrypted_suffix=_unencrypted\n\
sops_version=3.9.4\n";
        let m = parse(text, Format::Dotenv).expect("parses");
        assert_eq!(
            m.groups,
            vec![vec!["age1first", "age1second", "age1eleventh"]]
        );
        assert_eq!(parse("A=b\n", Format::Dotenv), Err(ParseError::NoMetadata));
        assert!(
            matches!(parse("no equals\n", Format::Dotenv), Err(ParseError::Invalid(m)) if m.contains("line 1"))
        );
    }

    #[test]
    fn ini_metadata_lives_in_the_sops_section() {
        let text = "[database]\npassword = ENC[AES256_GCM,data:x,type:str]\n\n[sops]\nage__list_0__map_enc       = -----BEGIN AGE ENCRYPTED FILE-----\\nYWdl\\n-----END AGE ENCRYPTED FILE-----\\n\nage__list_0__map_recipient = age1one\nage__list_1__map_recipient = age1two\nversion                    = 3.9.4\n";
        let m = parse(text, Format::Ini).expect("parses");
        assert_eq!(m.groups, vec![vec!["age1one", "age1two"]]);
        assert_eq!(
            parse("[a]\nb = c\n", Format::Ini),
            Err(ParseError::NoMetadata)
        );
    }

    #[test]
    fn key_groups_stay_separate() {
        let text = "a: ENC[x]\nsops:\n    shamir_threshold: 2\n    key_groups:\n        - age:\n            - recipient: age1a\n              enc: x\n        - age:\n            - recipient: age1b\n              enc: y\n    kms: []\n    version: 3.9.4\n";
        let m = parse(text, Format::Yaml).expect("parses");
        assert_eq!(m.groups, vec![vec!["age1a"], vec!["age1b"]]);
        let flat = "key_groups__list_0__map_age__list_0__map_recipient=age1a\nkey_groups__list_1__map_age__list_0__map_recipient=age1b\n";
        let env: String = flat.lines().map(|l| format!("sops_{l}\n")).collect();
        assert_eq!(
            parse(&env, Format::Dotenv).expect("parses").groups,
            vec![vec!["age1a"], vec!["age1b"]]
        );
    }

    #[test]
    fn json_and_plain_files() {
        let json = r#"{"data":"ENC[x]","sops":{"age":[{"recipient":"age1j","enc":"e"}],"lastmodified":"t","mac":"m","version":"3.10.2"}}"#;
        assert_eq!(
            parse(json, Format::Json).expect("parses").groups,
            vec![vec!["age1j"]]
        );
        assert_eq!(
            parse("{\"a\": 1}", Format::Json),
            Err(ParseError::NoMetadata)
        );
        assert_eq!(
            parse("password: hunter2\n", Format::Yaml),
            Err(ParseError::NoMetadata)
        );
        assert!(matches!(
            parse("- a\n- b\n", Format::Yaml),
            Err(ParseError::Invalid(_))
        ));
    }
}
