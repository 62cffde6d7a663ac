//! `.sops.yaml`: the creation rules that say which age recipients each
//! secret file gets, read the way sops reads them (`config/config.go`):
//! rules in order, the first whose `path_regex` matches the file's path
//! relative to the config's folder wins; flat `age` keys (a comma-separated
//! string or a list) make one key group, a non-empty `key_groups` replaces
//! them; YAML anchors, aliases and `<<` merge keys resolve as in any YAML.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use regex::Regex;
use serde_yaml_ng::Value;

/// One creation rule: where it applies and the age recipients of each key
/// group it gives (other key types are not this tool's business).
#[derive(Debug, Clone)]
pub struct CreationRule {
    /// The rule's `path_regex` as written (empty = every file).
    pub path_regex: String,
    /// Compiled on the first match asked of it, as sops compiles each rule
    /// only when a file reaches it: pve's `.sops.yaml` has a rule a host,
    /// and compiling 10,000 regexes up front took most of `pve check`'s
    /// time (and ~100 MiB) in a rendered fleet. The syntax is checked when
    /// the config is read ([`parse_rule`]).
    regex: Option<OnceLock<Option<Regex>>>,
    /// Age recipients per key group, in the order written, de-duplicated.
    pub groups: Vec<Vec<String>>,
}

impl CreationRule {
    /// Whether the rule applies to `rel` (the file's path relative to the
    /// folder of `.sops.yaml`, with `/` separators). Unanchored, as Go's
    /// `MatchString`.
    pub fn matches(&self, rel: &str) -> bool {
        // A pattern that parses but does not compile (only the compiled
        // size limit is left) matches nothing.
        self.regex.as_ref().is_none_or(|r| {
            r.get_or_init(|| Regex::new(&self.path_regex).ok())
                .as_ref()
                .is_some_and(|r| r.is_match(rel))
        })
    }

    /// Every age recipient of the rule, all groups together.
    pub fn recipients(&self) -> impl Iterator<Item = &str> {
        self.groups.iter().flatten().map(String::as_str)
    }
}

/// A parsed `.sops.yaml`.
#[derive(Debug, Clone)]
pub struct SopsConfig {
    /// The config file.
    pub path: PathBuf,
    /// Its folder: rules match paths relative to it.
    pub dir: PathBuf,
    pub rules: Vec<CreationRule>,
    /// Names for recipients from the `keys:` anchors (`&host_web age1…`
    /// → `host web`), as `pve render` writes them.
    pub names: Vec<(String, String)>,
    /// `names` by recipient, built on the first [`SopsConfig::name_of`]
    /// (a report names many recipients; a search each was quadratic).
    by_recipient: OnceLock<rustc_hash::FxHashMap<String, usize>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

/// The largest `.sops.yaml` read.
pub const MAX_CONFIG_SIZE: u64 = 16 << 20;

impl SopsConfig {
    /// A config with no rules (for a `.sops.yaml` that is not there yet).
    pub fn without_rules(path: PathBuf, dir: PathBuf) -> SopsConfig {
        SopsConfig {
            path,
            dir,
            rules: Vec::new(),
            names: Vec::new(),
            by_recipient: Default::default(),
        }
    }

    /// Reads and parses `.sops.yaml`.
    pub fn load(path: &Path) -> Result<SopsConfig, ConfigError> {
        let io = |source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        };
        // Bounded while reading: far above any real .sops.yaml.
        let bytes = crate::fsutil::read_limited(path, MAX_CONFIG_SIZE).map_err(io)?;
        let text = String::from_utf8(bytes).map_err(|_| ConfigError::Invalid {
            path: path.to_path_buf(),
            message: "it is not UTF-8 text".into(),
        })?;
        SopsConfig::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<SopsConfig, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let mut doc: Value =
            serde_yaml_ng::from_str(text).map_err(|e| invalid(format!("not valid YAML: {e}")))?;
        doc.apply_merge()
            .map_err(|e| invalid(format!("bad YAML merge key: {e}")))?;
        let rules = match doc.get("creation_rules") {
            Some(Value::Sequence(rules)) if !rules.is_empty() => rules,
            Some(Value::Sequence(_)) | Some(Value::Null) | None => {
                return Err(invalid(
                    "the config file does not contain any creation rule".into(),
                ))
            }
            Some(_) => return Err(invalid("`creation_rules` must be a list".into())),
        };
        let rules = rules
            .iter()
            .enumerate()
            .map(|(i, r)| {
                parse_rule(r).map_err(|m| invalid(format!("creation rule {}: {m}", i + 1)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Ok(SopsConfig {
            path: path.to_path_buf(),
            dir,
            rules,
            names: anchor_names(text),
            by_recipient: Default::default(),
        })
    }

    /// The path sops matches a file's rule against: relative to the
    /// config's folder when the file is inside it, else the path itself.
    pub fn relative(&self, file: &Path) -> String {
        let rel = file.strip_prefix(&self.dir).unwrap_or(file);
        rel.to_string_lossy().replace('\\', "/")
    }

    /// The first rule that applies to `file`, as sops picks it.
    pub fn rule_for(&self, file: &Path) -> Option<&CreationRule> {
        let rel = self.relative(file);
        self.rules.iter().find(|r| r.matches(&rel))
    }

    /// A readable name for a recipient (`host web`), when the config's
    /// `keys:` anchors give one (the first anchor of that recipient).
    pub fn name_of(&self, recipient: &str) -> Option<&str> {
        let names = self.by_recipient.get_or_init(|| {
            let mut map = rustc_hash::FxHashMap::default();
            for (i, (r, _)) in self.names.iter().enumerate() {
                map.entry(r.clone()).or_insert(i);
            }
            map
        });
        names.get(recipient).map(|&i| self.names[i].1.as_str())
    }
}

fn parse_rule(rule: &Value) -> Result<CreationRule, String> {
    if !rule.is_mapping() {
        return Err("must be a mapping".into());
    }
    let path_regex = match rule.get("path_regex") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err("`path_regex` must be a string".into()),
    };
    let regex = if path_regex.is_empty() {
        None
    } else {
        // The parser `Regex::new` runs first, with its defaults: the same
        // refusals, the same words, without building the matcher.
        regex_syntax::Parser::new()
            .parse(&path_regex)
            .map_err(|e| format!("bad path_regex {path_regex:?}: {e}"))?;
        Some(OnceLock::new())
    };
    let groups = match rule.get("key_groups") {
        Some(Value::Sequence(gs)) if !gs.is_empty() => gs
            .iter()
            .map(group_recipients)
            .collect::<Result<Vec<_>, _>>()?,
        _ => vec![dedup(key_list(rule.get("age"), "age")?)],
    };
    Ok(CreationRule {
        path_regex,
        regex,
        groups,
    })
}

/// One key group's age recipients, `merge:` groups appended.
fn group_recipients(group: &Value) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    collect_group(group, &mut out, 0)?;
    Ok(dedup(out))
}

fn collect_group(group: &Value, out: &mut Vec<String>, depth: usize) -> Result<(), String> {
    if depth > 32 {
        return Err("`merge` nests too deeply".into());
    }
    if !group.is_mapping() {
        return Err("each key group must be a mapping".into());
    }
    out.extend(key_list(group.get("age"), "age")?);
    match group.get("merge") {
        None | Some(Value::Null) => {}
        Some(Value::Sequence(gs)) => {
            for g in gs {
                collect_group(g, out, depth + 1)?;
            }
        }
        Some(_) => return Err("`merge` must be a list of key groups".into()),
    }
    Ok(())
}

/// A key list: a comma-separated string or a list of strings, each element
/// itself split on commas and trimmed, as sops does.
fn key_list(v: Option<&Value>, what: &str) -> Result<Vec<String>, String> {
    let split = |s: &str| -> Vec<String> {
        s.split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(String::from)
            .collect()
    };
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(split(s)),
        Some(Value::Sequence(items)) => {
            let mut out = Vec::new();
            for item in items {
                match item {
                    Value::String(s) => out.extend(split(s)),
                    _ => return Err(format!("`{what}` entries must be strings")),
                }
            }
            Ok(out)
        }
        Some(_) => Err(format!(
            "`{what}` must be a comma-separated string or a list of strings"
        )),
    }
}

/// The keys in their first order, each once. A set, not a search of what
/// was kept: pve's catch-all rule lists every host (10,000 recipients
/// made this quadratic).
fn dedup(keys: Vec<String>) -> Vec<String> {
    let mut seen = rustc_hash::FxHashSet::default();
    seen.reserve(keys.len());
    let mut out: Vec<String> = Vec::with_capacity(keys.len());
    for k in keys {
        if seen.insert(k.clone()) {
            out.push(k);
        }
    }
    out
}

/// `&host_web age1…` anchors → (`age1…`, `host web`).
fn anchor_names(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.trim_start().strip_prefix("- &") else {
            continue;
        };
        let mut parts = rest.split_whitespace();
        let (Some(anchor), Some(value)) = (parts.next(), parts.next()) else {
            continue;
        };
        if value.starts_with("age1") {
            out.push((value.to_string(), anchor.replacen('_', " ", 1)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An endless `.sops.yaml` (a link to /dev/zero, say) stops at the
    /// limit with an error naming it, instead of filling memory.
    #[test]
    fn an_endless_config_is_refused_at_the_limit() {
        let err = SopsConfig::load(Path::new("/dev/zero")).expect_err("refused");
        assert!(err.to_string().contains("larger input is refused"), "{err}");
    }

    fn parse(text: &str) -> SopsConfig {
        SopsConfig::parse(Path::new("/f/secrets/.sops.yaml"), text).expect("parses")
    }

    #[test]
    fn first_matching_rule_wins_relative_to_the_config_folder() {
        let c = parse(
            "creation_rules:\n  - path_regex: ^web\\.yaml$\n    age: age1a, age1b\n  - age: [age1a]\n",
        );
        let web = c.rule_for(Path::new("/f/secrets/web.yaml")).expect("rule");
        assert_eq!(web.groups, vec![vec!["age1a".to_string(), "age1b".into()]]);
        let other = c.rule_for(Path::new("/f/secrets/db.yaml")).expect("rule");
        assert_eq!(other.groups, vec![vec!["age1a".to_string()]]);
    }

    #[test]
    fn key_groups_anchors_and_merge_resolve() {
        let c = parse(
            "keys:\n  - &admin_master age1m\n  - &host_web age1w\ncreation_rules:\n  - path_regex: '^hosts/web/'\n    age: age1ignored\n    key_groups:\n      - age:\n          - *admin_master\n          - *host_web\n          - *admin_master\n        merge:\n          - age: ['age1x,age1y']\n",
        );
        let r = c
            .rule_for(Path::new("/f/secrets/hosts/web/a.yaml"))
            .expect("rule");
        assert_eq!(r.groups, vec![vec!["age1m", "age1w", "age1x", "age1y"]]);
        assert!(c.rule_for(Path::new("/f/secrets/other.yaml")).is_none());
        assert_eq!(c.name_of("age1w"), Some("host web"));
    }

    /// The syntax check at read time refuses what `Regex::new` refuses, in
    /// its words, and what it accepts compiles and matches.
    #[test]
    fn path_regexes_are_refused_as_regex_refuses_them() {
        let p = Path::new("/f/.sops.yaml");
        for bad in ["(", "a{2,1}", "\\p{Nope}", "(?-u:\\xFF)", "[z-a]", "a**b{"] {
            let want = Regex::new(bad).expect_err(bad).to_string();
            let text = format!("creation_rules:\n  - path_regex: '{bad}'\n    age: age1a\n");
            let e = SopsConfig::parse(p, &text).expect_err(bad).to_string();
            assert!(
                e.ends_with(&format!("bad path_regex {bad:?}: {want}")),
                "{e}"
            );
        }
        let text = "creation_rules:\n  - path_regex: '^hosts/(?:web|web-old)/'\n    age: age1a\n";
        let c = parse(text);
        assert!(c
            .rule_for(Path::new("/f/secrets/hosts/web-old/a.yaml"))
            .is_some());
        assert!(c
            .rule_for(Path::new("/f/secrets/hosts/webby/a.yaml"))
            .is_none());
    }

    #[test]
    fn repeated_keys_keep_their_first_place() {
        let keys = ["b", "a", "b", "c", "a"].map(String::from).to_vec();
        assert_eq!(dedup(keys), ["b", "a", "c"]);
    }

    #[test]
    fn bad_configs_say_what_is_wrong() {
        let p = Path::new("/f/.sops.yaml");
        let e = SopsConfig::parse(p, "keys: []\n").expect_err("no rules");
        assert!(
            e.to_string().contains("does not contain any creation rule"),
            "{e}"
        );
        let e = SopsConfig::parse(p, "creation_rules:\n  - path_regex: '('\n").expect_err("regex");
        assert!(
            e.to_string().contains("creation rule 1: bad path_regex"),
            "{e}"
        );
        let e = SopsConfig::parse(p, "creation_rules: [\n").expect_err("yaml");
        assert!(e.to_string().contains("not valid YAML"), "{e}");
    }
}
