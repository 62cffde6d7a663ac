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

mod stream;

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
    /// the config is read ([`parse_rule`]); what is left to fail here is
    /// the compiled size limit, and then sops stops with an error too.
    regex: Option<OnceLock<Result<Regex, String>>>,
    /// Age recipients per key group, in the order written, de-duplicated.
    pub groups: Vec<Vec<String>>,
}

impl CreationRule {
    /// Whether the rule applies to `rel` (the file's path relative to the
    /// folder of `.sops.yaml`, with `/` separators). Unanchored, as Go's
    /// `MatchString`. A pattern that parses but does not compile (past the
    /// compiled size limit) is an error, in regex's words, as sops stops
    /// at a rule it cannot compile.
    pub fn matches(&self, rel: &str) -> Result<bool, String> {
        let Some(regex) = &self.regex else {
            return Ok(true);
        };
        match regex.get_or_init(|| compile(&self.path_regex)) {
            Ok(r) => Ok(r.is_match(rel)),
            Err(e) => Err(format!("bad path_regex {:?}: {e}", self.path_regex)),
        }
    }

    /// Every age recipient of the rule, all groups together.
    pub fn recipients(&self) -> impl Iterator<Item = &str> {
        self.groups.iter().flatten().map(String::as_str)
    }
}

/// `Regex::new` (a test sets a small size limit to reach its error).
fn compile(pattern: &str) -> Result<Regex, String> {
    #[cfg(test)]
    if let Some(limit) = TEST_SIZE_LIMIT.with(std::cell::Cell::get) {
        return regex::RegexBuilder::new(pattern)
            .size_limit(limit)
            .build()
            .map_err(|e| e.to_string());
    }
    Regex::new(pattern).map_err(|e| e.to_string())
}

#[cfg(test)]
thread_local! {
    static TEST_SIZE_LIMIT: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
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
        // The usual config streamed (a loaded 10,000-host `.sops.yaml` took
        // ~40 MiB and most of `pve check`'s time); anything unusual, and
        // every refusal, the loaded way, which is the reference.
        let rules = match stream::rules(text) {
            Some(rules) => rules,
            None => loaded_rules(path, text)?,
        };
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

    /// The first rule that applies to `file`, as sops picks it; an error
    /// where sops stops, at a rule before it whose pattern cannot compile.
    pub fn rule_for(&self, file: &Path) -> Result<Option<&CreationRule>, ConfigError> {
        let rel = self.relative(file);
        for (i, r) in self.rules.iter().enumerate() {
            match r.matches(&rel) {
                Ok(true) => return Ok(Some(r)),
                Ok(false) => {}
                Err(message) => {
                    return Err(ConfigError::Invalid {
                        path: self.path.clone(),
                        message: format!("creation rule {}: {message}", i + 1),
                    })
                }
            }
        }
        Ok(None)
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

/// The creation rules of `text` loaded whole through serde_yaml_ng: what
/// the stream ([`stream::rules`]) must agree with, and the reader of
/// whatever it leaves.
fn loaded_rules(path: &Path, text: &str) -> Result<Vec<CreationRule>, ConfigError> {
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
    rules
        .iter()
        .enumerate()
        .map(|(i, r)| parse_rule(r).map_err(|m| invalid(format!("creation rule {}: {m}", i + 1))))
        .collect()
}

/// What reading a rule asks of a YAML node, so that one [`parse_rule`]
/// serves the loaded `Value` and the streamed [`stream::Node`] alike.
trait Yaml: Sized {
    /// The node as the rule reading tells kinds apart (no untagging).
    fn view(&self) -> View<'_, Self>;
    /// A mapping's value for a string key.
    fn get(&self, key: &str) -> Option<&Self>;
    fn is_mapping(&self) -> bool;
}

enum View<'a, N> {
    Null,
    Str(&'a str),
    Seq(&'a [N]),
    /// A mapping, number, boolean or tagged node.
    Other,
}

impl Yaml for Value {
    fn view(&self) -> View<'_, Self> {
        match self {
            Value::Null => View::Null,
            Value::String(s) => View::Str(s),
            Value::Sequence(items) => View::Seq(items),
            _ => View::Other,
        }
    }
    fn get(&self, key: &str) -> Option<&Self> {
        Value::get(self, key)
    }
    fn is_mapping(&self) -> bool {
        Value::is_mapping(self)
    }
}

fn parse_rule<N: Yaml>(rule: &N) -> Result<CreationRule, String> {
    if !rule.is_mapping() {
        return Err("must be a mapping".into());
    }
    let path_regex = match rule.get("path_regex").map(N::view) {
        None | Some(View::Null) => String::new(),
        Some(View::Str(s)) => s.to_string(),
        Some(_) => return Err("`path_regex` must be a string".into()),
    };
    let regex = if path_regex.is_empty() {
        None
    } else {
        // The parser `Regex::new` runs first, with its defaults: the same
        // refusals, the same words, without building the matcher. pve's
        // own patterns (`^hosts/web/`) cannot fail it: those skip it.
        if !plainly_valid(&path_regex) {
            regex_syntax::Parser::new()
                .parse(&path_regex)
                .map_err(|e| format!("bad path_regex {path_regex:?}: {e}"))?;
        }
        Some(OnceLock::new())
    };
    let groups = match rule.get("key_groups").map(N::view) {
        Some(View::Seq(gs)) if !gs.is_empty() => gs
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
fn group_recipients<N: Yaml>(group: &N) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    collect_group(group, &mut out, 0)?;
    Ok(dedup(out))
}

fn collect_group<N: Yaml>(group: &N, out: &mut Vec<String>, depth: usize) -> Result<(), String> {
    if depth > 32 {
        return Err("`merge` nests too deeply".into());
    }
    if !group.is_mapping() {
        return Err("each key group must be a mapping".into());
    }
    out.extend(key_list(group.get("age"), "age")?);
    match group.get("merge").map(N::view) {
        None | Some(View::Null) => {}
        Some(View::Seq(gs)) => {
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
fn key_list<N: Yaml>(v: Option<&N>, what: &str) -> Result<Vec<String>, String> {
    let split = |s: &str| -> Vec<String> {
        s.split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(String::from)
            .collect()
    };
    match v.map(N::view) {
        None | Some(View::Null) => Ok(Vec::new()),
        Some(View::Str(s)) => Ok(split(s)),
        Some(View::Seq(items)) => {
            let mut out = Vec::new();
            for item in items {
                match item.view() {
                    View::Str(s) => out.extend(split(s)),
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
    let first: Vec<bool> = keys.iter().map(|k| seen.insert(k.as_str())).collect();
    drop(seen);
    keys.into_iter()
        .zip(first)
        .filter_map(|(k, first)| first.then_some(k))
        .collect()
}

/// Whether `re` is a pattern the regex parser cannot refuse: literal
/// characters that mean themselves (letters, digits, `/`, `_`, `-`),
/// anchors `^` and `$`, `.` (alone or as `.*`) and the escape `\.`.
fn plainly_valid(re: &str) -> bool {
    let mut bytes = re.bytes();
    let mut after_dot = false;
    while let Some(b) = bytes.next() {
        let dot = match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'/' | b'_' | b'-' | b'^' | b'$' => false,
            b'.' => true,
            b'*' if after_dot => false,
            b'\\' if bytes.next() == Some(b'.') => false,
            _ => return false,
        };
        after_dot = dot;
    }
    true
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

    impl SopsConfig {
        fn rule_for_ok(&self, file: &Path) -> Option<&CreationRule> {
            self.rule_for(file).expect("every pattern compiles")
        }
    }

    /// A pattern past the compiled size limit stops the search for a rule
    /// with regex's error, as sops stops; a rule before it still wins.
    #[test]
    fn a_pattern_that_does_not_compile_is_an_error() {
        let c = parse("creation_rules:\n  - path_regex: ^a/\n    age: age1a\n  - path_regex: '^b/\\w{50}'\n    age: age1b\n");
        TEST_SIZE_LIMIT.with(|l| l.set(Some(1000)));
        let first = c
            .rule_for(Path::new("/f/secrets/a/x.yaml"))
            .map(|r| r.map(|r| r.groups.clone()));
        let second = c
            .rule_for(Path::new("/f/secrets/b/x.yaml"))
            .map(|r| r.is_some());
        TEST_SIZE_LIMIT.with(|l| l.set(None));
        assert_eq!(
            first.expect("rule 1 compiles"),
            Some(vec![vec!["age1a".to_string()]])
        );
        let want = regex::RegexBuilder::new("^b/\\w{50}")
            .size_limit(1000)
            .build()
            .expect_err("too big")
            .to_string();
        let e = second.expect_err("rule 2 does not compile").to_string();
        assert_eq!(
            e,
            format!(
                "/f/secrets/.sops.yaml: creation rule 2: bad path_regex \"^b/\\\\w{{50}}\": {want}"
            )
        );
    }

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
        let web = c
            .rule_for_ok(Path::new("/f/secrets/web.yaml"))
            .expect("rule");
        assert_eq!(web.groups, vec![vec!["age1a".to_string(), "age1b".into()]]);
        let other = c
            .rule_for_ok(Path::new("/f/secrets/db.yaml"))
            .expect("rule");
        assert_eq!(other.groups, vec![vec!["age1a".to_string()]]);
    }

    #[test]
    fn key_groups_anchors_and_merge_resolve() {
        let c = parse(
            "keys:\n  - &admin_master age1m\n  - &host_web age1w\ncreation_rules:\n  - path_regex: '^hosts/web/'\n    age: age1ignored\n    key_groups:\n      - age:\n          - *admin_master\n          - *host_web\n          - *admin_master\n        merge:\n          - age: ['age1x,age1y']\n",
        );
        let r = c
            .rule_for_ok(Path::new("/f/secrets/hosts/web/a.yaml"))
            .expect("rule");
        assert_eq!(r.groups, vec![vec!["age1m", "age1w", "age1x", "age1y"]]);
        assert!(c.rule_for_ok(Path::new("/f/secrets/other.yaml")).is_none());
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
            .rule_for_ok(Path::new("/f/secrets/hosts/web-old/a.yaml"))
            .is_some());
        assert!(c
            .rule_for_ok(Path::new("/f/secrets/hosts/webby/a.yaml"))
            .is_none());
    }

    #[test]
    fn repeated_keys_keep_their_first_place() {
        let keys = ["b", "a", "b", "c", "a"].map(String::from).to_vec();
        assert_eq!(dedup(keys), ["b", "a", "c"]);
    }

    fn summary(rules: &[CreationRule]) -> Vec<(String, bool, Vec<Vec<String>>)> {
        rules
            .iter()
            .map(|r| (r.path_regex.clone(), r.regex.is_some(), r.groups.clone()))
            .collect()
    }

    /// The stream reads `text` only when the loaded read accepts it, and
    /// then to the same rules; returns whether the stream read it.
    fn stream_agrees(text: &str) -> bool {
        let loaded = loaded_rules(Path::new("/f/.sops.yaml"), text);
        let Some(streamed) = stream::rules(text) else {
            return false;
        };
        let loaded = loaded.unwrap_or_else(|e| panic!("streamed, loaded refuses: {e}\n{text}"));
        assert_eq!(summary(&streamed), summary(&loaded), "{text}");
        true
    }

    const USUAL: &[&str] = &[
        "creation_rules:\n  - path_regex: ^web\\.yaml$\n    age: age1a, age1b\n  - age: [age1a]\n",
        "keys:\n  - &admin_master age1m\n  - &host_web age1w\ncreation_rules:\n  - path_regex: '^hosts/web/'\n    age: age1ignored\n    key_groups:\n      - age:\n          - *admin_master\n          - *host_web\n          - *admin_master\n        merge:\n          - age: ['age1x,age1y']\n",
        "creation_rules: [{path_regex: \"a(b|c)\", key_groups: [{age: [x, y]}, {age: z}]}]\n",
        "# c\nstores: {yaml: {indent: 2}}\ncreation_rules:\n  - path_regex: ''\n    age:\n    pgp: 1\n    shamir_threshold: 2\n  - path_regex: ~\n    key_groups: []\n    age: |\n      age1p,\n      age1q\n",
        "creation_rules:\n- path_regex: x\n  key_groups:\n  - merge: [{age: a}, {merge: [{age: [b, a]}]}]\n",
    ];

    #[test]
    fn the_stream_reads_usual_configs_as_loaded() {
        for text in USUAL {
            assert!(stream_agrees(text), "not streamed: {text}");
        }
        let (text, _) = crate::render::yaml_events::sops_text(50);
        assert!(stream_agrees(&text));
        assert_eq!(parse(&text).rules.len(), 51);
    }

    /// Hostile or odd YAML: the stream leaves each to the loaded read (or
    /// reads it to the same rules); the refusals are the loaded read's.
    #[test]
    fn the_stream_leaves_the_unusual_to_the_loaded_read() {
        let odd = [
            "",
            "# only a comment\n",
            "---\n",
            "- a\n",
            "creation_rules: []\n",
            "creation_rules:\n",
            "creation_rules: x\n",
            "creation_rules: {a: b}\n",
            "creation_rules: [a]\n",
            "creation_rules: [{age: a}]\ncreation_rules: [{age: b}]\n",
            "creation_rules: [{age: a, age: b}]\n",
            "creation_rules: [{age: a, 'age': b}]\n",
            "creation_rules: [{age: [*nope]}]\n",
            "creation_rules: [{age: *nope}]\n",
            "k: &m {age: a}\ncreation_rules: [*m]\n",
            "k: &m {age: a}\ncreation_rules: [{<<: *m}]\n",
            "k: &m {age: a}\ncreation_rules: [{<<: [*m], path_regex: x}]\n",
            "creation_rules: [{<<: 1}]\n",
            "creation_rules: [{'<<': {age: a}}]\n",
            "creation_rules: [{age: a}]\n---\ncreation_rules: [{age: b}]\n",
            "creation_rules: [{age: a}]\n...\n",
            "--- !tag\ncreation_rules: [{age: a}]\n",
            "creation_rules: !!seq [{age: a}]\n",
            "creation_rules: [!!map {age: a}]\n",
            "creation_rules: [{age: !!str a}]\n",
            "creation_rules: [{path_regex: !!str a, age: b}]\n",
            "creation_rules: [{age: [!x a]}]\n",
            "creation_rules: [{path_regex: 1, age: a}]\n",
            "creation_rules: [{path_regex: 1a, age: a}]\n",
            "creation_rules: [{path_regex: '1', age: a}]\n",
            "creation_rules: [{path_regex: true, age: a}]\n",
            "creation_rules: [{path_regex: .inf, age: a}]\n",
            "creation_rules: [{path_regex: '(', age: a}]\n",
            "creation_rules: [{path_regex: [a], age: a}]\n",
            "creation_rules: [{age: [1]}]\n",
            "creation_rules: [{age: [null]}]\n",
            "creation_rules: [{age: 1}]\n",
            "creation_rules: [{age: {a: b}}]\n",
            "creation_rules: [{key_groups: [a]}]\n",
            "creation_rules: [{key_groups: [{merge: a}]}]\n",
            "creation_rules: [{key_groups: x, age: a}]\n",
            "creation_rules: [{key_groups: 1, age: a}]\n",
            "creation_rules: [{1: a, age: b}]\n",
            "creation_rules: [{~: a, age: b}]\n",
            "creation_rules: [{[a]: b, age: c}]\n",
            "creation_rules: [{{a: b}: c, age: d}]\n",
            "? [a]\n: b\ncreation_rules: [{age: a}]\n",
            "1: a\n1: b\ncreation_rules: [{age: a}]\n",
            "x: {a: 1, a: 2}\ncreation_rules: [{age: a}]\n",
            "x: [{a: 1, a: 2}]\ncreation_rules: [{age: a}]\n",
            "x: &a [1]\ncreation_rules: [{age: a}]\n",
            "k: &a age1x\nk2: &a age1y\ncreation_rules: [{age: [*a]}]\n",
            "creation_rules: [{age: a}]\nk: *nope\n",
            "creation_rules: [{age: a}]\nbroken: [\n",
            "creation_rules: [{age: a}]\nbroken: 'x\n",
            "\tcreation_rules: []\n",
            "creation_rules: [{age: \"\\xff\"}]\n",
            "creation_rules:\n  - age: a\n  - a\n",
            "creation_rules:\n  - age: a\n  - path_regex: a{2,1}\n",
            "creation_rules:\n  - &r {age: a}\n",
            "\u{feff}creation_rules: [{age: a}]\n",
            "&k creation_rules: [{age: a}]\n*k : [{age: b}]\n",
            "x: &k creation_rules\n*k : [{age: b}]\n",
            "creation_rules: [{age: a}]\n? x\n",
            "{creation_rules: [{age: a}], x: [1, 2]}\n",
            "creation_rules:\n  - key_groups:\n    - &g {age: a}\n    - *g\n",
        ];
        for text in odd {
            stream_agrees(text);
        }
        // Nested beyond the stream's depth, and beyond the loaded read's.
        for depth in [60, 70, 130] {
            let text = format!(
                "creation_rules: [{{age: a}}]\nx: {}{}\n",
                "[".repeat(depth),
                "]".repeat(depth)
            );
            stream_agrees(&text);
        }
    }

    /// Every fragment put at every line of each usual config: wherever
    /// the stream reads the result, the loaded read gives the same rules.
    #[test]
    fn the_stream_agrees_wherever_a_fragment_lands() {
        let fragments = [
            "x: 1\n",
            "creation_rules: []\n",
            "  - age: z\n",
            "    age: z\n",
            "    path_regex: (\n",
            "    <<: {age: m}\n",
            "  - *nope\n",
            "  - &a age1n\n",
            "      - *admin_master\n",
            "---\n",
            "...\n",
            "  x: [\n",
            "    merge: 1\n",
            "    1: a\n",
            "    key_groups: [{age: q}]\n",
            "    age: !!str q\n",
        ];
        let mut streamed = 0;
        for base in USUAL {
            let starts = (0..base.len()).filter(|&i| i == 0 || base.as_bytes()[i - 1] == b'\n');
            for at in starts {
                for f in fragments {
                    let text = format!("{}{f}{}", &base[..at], &base[at..]);
                    streamed += stream_agrees(&text) as usize;
                }
            }
        }
        assert!(streamed > 20, "{streamed}");
    }

    /// A pattern the syntax check skips is one the regex parser accepts:
    /// every string up to 4 characters over the skipped alphabet and
    /// what lies next to it.
    #[test]
    fn plainly_valid_patterns_parse() {
        let alphabet = [
            'a', 'Z', '0', '/', '_', '-', '^', '$', '.', '*', '\\', '(', '+', '?', ' ',
        ];
        let mut words = vec![String::new()];
        let mut skipped = 0;
        for _ in 0..4 {
            words = words
                .iter()
                .flat_map(|w| alphabet.iter().map(move |c| format!("{w}{c}")))
                .collect();
            for w in &words {
                if plainly_valid(w) {
                    skipped += 1;
                    assert!(regex_syntax::Parser::new().parse(w).is_ok(), "{w:?}");
                    assert!(Regex::new(w).is_ok(), "{w:?}");
                }
            }
        }
        assert!(plainly_valid("^hosts/web-1/") && plainly_valid(".*") && plainly_valid("\\.yaml$"));
        assert!(skipped > 1000, "{skipped}");
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
