//! `pve secrets adopt`: the `_sops` block of hosts.nix that renders an
//! existing `.sops.yaml` again, recipient for recipient.
//!
//! The recipients that are a current host's key stay that host; the others
//! become admins, named after their YAML anchors (`&admin_alice` → `alice`,
//! else `admin1`, `admin2` …), except those whose anchor says they are a
//! host's (`&host_old`, `&server_db`, or a host's name): a key of a removed
//! or re-created host is reported and dropped, so adopting never keeps a
//! machine able to decrypt that is gone (`--keep-unknown` keeps them as
//! admins). Every rule becomes one of `_sops.rules` (with `admins` when it
//! gives only some of them), in order; a last rule for every file that
//! gives every admin and every host becomes the rendered catch-all, and
//! without one `catchAll = false`.
//!
//! Before anything is written the block is proven: hosts.nix with it is
//! evaluated, `.sops.yaml` rendered from it and read back, and each rule and
//! each existing secret file compared with the original.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_yaml_ng::Value as Yaml;

use super::config::{ConfigError, CreationRule, SopsConfig, MAX_CONFIG_SIZE};
use crate::error::{AppError, Classify, Kind};
use crate::fleet::edit::{self, names};
use crate::fleet::{Loaded, SourceFile};

/// Where pve can write `.sops.yaml` (see `render::sops::config_path`).
pub const LOCATIONS: &[&str] = &[super::DEFAULT_SOPS_YAML, ".sops.yaml"];

/// Regexes that match every path: such a last rule is the catch-all.
const MATCH_ALL: &[&str] = &["", ".*", "^.*", ".*$", "^.*$", ".+", "^.+", "^.+$"];

/// Anchor words that say a key is a machine's.
const HOST_WORDS: &[&str] = &[
    "host", "hosts", "server", "servers", "machine", "machines", "node", "nodes", "vm", "vms",
];

/// Anchor words that say a key is a person's (dropped from the name).
const ADMIN_WORDS: &[&str] = &["admin", "admins", "user", "users"];

#[derive(Debug, thiserror::Error)]
pub enum AdoptError {
    #[error("hosts.nix already has `_sops`: `pve secrets adopt` never replaces it, and nothing was changed")]
    HasSops,
    #[error("there is no .sops.yaml to adopt: neither {} nor {} exists", root.join(LOCATIONS[0]).display(), root.join(LOCATIONS[1]).display())]
    NotFound { root: PathBuf },
    #[error("{}: pve writes .sops.yaml only at {} or {} of the fleet", path.display(), LOCATIONS[0], LOCATIONS[1])]
    Location { path: PathBuf },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{}: creation rule {rule} lists {recipient:?}, which is not an age recipient: {why}", path.display())]
    NotAge {
        path: PathBuf,
        rule: usize,
        recipient: String,
        why: String,
    },
    #[error("{}: no rule gives a recipient that is not a host's key, so there is no admin to keep", path.display())]
    NoAdmins { path: PathBuf },
    #[error("{}: the adopted `_sops` would not render the same recipients: {why}", path.display())]
    Unfaithful { path: PathBuf, why: String },
}

impl Classify for AdoptError {
    fn kind(&self) -> Kind {
        Kind::Input
    }
    fn help(&self) -> Option<String> {
        Some(match self {
            AdoptError::HasSops => "hosts.nix already describes .sops.yaml: `pve render --check` shows how it differs from the file".into(),
            AdoptError::NotFound { .. } => "pass the file: `pve secrets adopt secrets/.sops.yaml`".into(),
            AdoptError::Location { .. } => format!("move it to {} (sops matches rules relative to its folder: adjust the path_regex), then adopt it", LOCATIONS[0]),
            AdoptError::Config(_) | AdoptError::NotAge { .. } => "fix the file so sops can read it (hosts.nix was not changed)".into(),
            AdoptError::NoAdmins { .. } => "add an admin's age recipient to the file's rules, or write `_sops` by hand (docs/secrets.md)".into(),
            AdoptError::Unfaithful { .. } => "this is a bug in pve: please report it with the .sops.yaml (hosts.nix was not changed)".into(),
        })
    }
}

/// A difference between the file and what pve renders from the block.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Difference {
    /// `dropped-recipient`, `kept-unknown`, `duplicate-anchor`,
    /// `unnamed-admin`, `unused-key`, `key-groups`, `other-key-type`,
    /// `rule-option`, `top-level-key`, `newly-covered`, `rules-kept`.
    pub kind: &'static str,
    pub message: String,
}

/// One admin of the block.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Admin {
    pub name: String,
    pub recipient: String,
}

/// What `adopt` found, wrote (or would write), and checked.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The adopted `.sops.yaml`, relative to the fleet root.
    pub file: PathBuf,
    /// hosts.nix.
    pub hosts_nix: PathBuf,
    pub written: bool,
    /// `_sops = { … };` as added to hosts.nix.
    pub block: String,
    pub admins: Vec<Admin>,
    /// Rules of the file, and of them kept as `_sops.rules`.
    pub rules: usize,
    pub extra_rules: usize,
    pub catch_all: bool,
    /// Distinct recipients in the file's rules, and of them carried over.
    pub recipients: usize,
    pub recipients_kept: usize,
    /// Secret files whose recipients were compared before and after.
    pub files_checked: usize,
    pub differences: Vec<Difference>,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Keep recipients that look like an old host key, as admins.
    pub keep_unknown: bool,
    /// Write nothing.
    pub dry_run: bool,
}

/// Adopts `file` (default: the first of [`LOCATIONS`] that exists) into
/// the hosts.nix at `hosts_path`, under the repository lock, writing
/// nothing with `dry_run`.
pub fn adopt(hosts_path: &Path, file: Option<&Path>, opts: Options) -> Result<Report, AppError> {
    let loaded = crate::fleet::load(hosts_path)?;
    let mut report = plan(&loaded, file, opts)?;
    if !opts.dry_run {
        let nix = report.block_value();
        // The file must still be what was proven above.
        edit::apply_to_file_checked(hosts_path, Some(&loaded.file.text), false, |t| {
            edit::add_config_attr(t, "_sops", &nix)
        })?;
        report.written = true;
    }
    Ok(report)
}

impl Report {
    /// The value of `_sops` (the block without `_sops = ` and `;`).
    fn block_value(&self) -> String {
        block_value(&self.block).to_string()
    }
}

fn block_value(block: &str) -> &str {
    let v = block.trim_start_matches("_sops = ");
    v.strip_suffix(";\n").unwrap_or(v)
}

/// Works out and proves the block, writing nothing.
pub fn plan(loaded: &Loaded, file: Option<&Path>, opts: Options) -> Result<Report, AppError> {
    if loaded.fleet.sops.span.is_some() {
        return Err(AdoptError::HasSops.into());
    }
    let (path, rel) = locate(&loaded.root_dir, file)?;
    let text = read(&path)?;
    let config = SopsConfig::parse(&path, &text).map_err(AdoptError::from)?;
    let mut diffs = unsupported(&path, &text);
    for (i, rule) in config.rules.iter().enumerate() {
        for r in rule.recipients() {
            crate::keys::parse_recipient(r).map_err(|e| AdoptError::NotAge {
                path: path.clone(),
                rule: i + 1,
                recipient: r.chars().take(100).collect(),
                why: e.to_string(),
            })?;
        }
    }
    let who = classify(loaded, &config, &text, opts.keep_unknown, &mut diffs);
    let admins: Vec<Admin> = who
        .iter()
        .filter_map(|(recipient, w)| match w {
            Who::Admin(name) => Some(Admin {
                name: name.clone(),
                recipient: recipient.clone(),
            }),
            _ => None,
        })
        .collect();
    if admins.is_empty() {
        return Err(AdoptError::NoAdmins { path }.into());
    }
    let recipients = who.len();
    let recipients_kept = who
        .iter()
        .filter(|(_, w)| !matches!(w, Who::Dropped))
        .count();

    // First the catch-all as pve's own; when that changes who can read an
    // existing file (pve's per-host rules come before it), the file's rule
    // as it is.
    let mut outcome = None;
    let prefix = if rel == super::DEFAULT_SOPS_YAML {
        ""
    } else {
        "secrets/"
    };
    for map_builtin in [true, false] {
        let shape = shape(loaded, &config, &who, prefix, map_builtin);
        let block = block(&shape, &admins, &rel);
        let mapped = shape.extra.len() < config.rules.len();
        match prove(loaded, &path, &config, &who, &shape, &block)? {
            Proof::Same(files, notes) => {
                outcome = Some((shape, block, files, notes));
                break;
            }
            Proof::FilesDiffer(why) if mapped => {
                diffs.push(Difference {
                    kind: "rules-kept",
                    message: format!("the last rules are pve's own (per-host rules, a catch-all for every host), but in pve's order {why}: every rule is kept in `_sops.rules` as written (and `catchAll = false`), so hosts added later get no catch-all secrets"),
                });
            }
            Proof::FilesDiffer(why) => {
                return Err(AdoptError::Unfaithful { path, why }.into());
            }
        }
    }
    let Some((shape, block, files_checked, notes)) = outcome else {
        return Err(AdoptError::Unfaithful {
            path,
            why: "no shape of `_sops` renders it".into(),
        }
        .into());
    };
    diffs.extend(notes);
    Ok(Report {
        file: PathBuf::from(rel),
        hosts_nix: loaded.file.path.clone(),
        written: false,
        block,
        admins,
        rules: config.rules.len(),
        extra_rules: shape.extra.len(),
        catch_all: shape.catch_all,
        recipients,
        recipients_kept,
        files_checked,
        differences: diffs,
    })
}

fn locate(root: &Path, file: Option<&Path>) -> Result<(PathBuf, String), AdoptError> {
    let Some(file) = file else {
        return LOCATIONS
            .iter()
            .map(|l| (root.join(l), l.to_string()))
            .find(|(p, _)| p.symlink_metadata().is_ok())
            .ok_or_else(|| AdoptError::NotFound {
                root: root.to_path_buf(),
            });
    };
    let abs = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
    let in_root = |r: &Path| {
        abs.strip_prefix(r)
            .ok()
            .map(|p| p.to_string_lossy().replace('\\', "/"))
    };
    let root_canon = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    let abs_dir_canon = abs
        .parent()
        .and_then(|d| d.canonicalize().ok())
        .zip(abs.file_name())
        .map(|(d, n)| d.join(n));
    let rel = in_root(root).or_else(|| {
        abs_dir_canon.and_then(|p| {
            p.strip_prefix(&root_canon)
                .ok()
                .map(|r| r.to_string_lossy().replace('\\', "/"))
        })
    });
    match rel {
        Some(rel) if LOCATIONS.contains(&rel.as_str()) => Ok((root.join(&rel), rel)),
        _ => Err(AdoptError::Location {
            path: file.to_path_buf(),
        }),
    }
}

fn read(path: &Path) -> Result<String, AdoptError> {
    let bytes =
        crate::fsutil::read_limited(path, MAX_CONFIG_SIZE).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    String::from_utf8(bytes).map_err(|_| {
        ConfigError::Invalid {
            path: path.to_path_buf(),
            message: "it is not UTF-8 text".into(),
        }
        .into()
    })
}

/// What the file has that `_sops` cannot say: other key types, several key
/// groups, rule options, other top-level keys.
fn unsupported(path: &Path, text: &str) -> Vec<Difference> {
    let mut out = Vec::new();
    let Ok(mut doc) = serde_yaml_ng::from_str::<Yaml>(text) else {
        return out;
    };
    if doc.apply_merge().is_err() {
        return out;
    }
    let shown = path.display();
    if let Some(top) = doc.as_mapping() {
        for k in top.keys().filter_map(Yaml::as_str) {
            if k != "keys" && k != "creation_rules" {
                out.push(Difference {
                    kind: "top-level-key",
                    message: format!(
                        "{shown}: `{k}` is not kept (pve writes `keys` and `creation_rules` only)"
                    ),
                });
            }
        }
    }
    let rules = doc
        .get("creation_rules")
        .and_then(Yaml::as_sequence)
        .cloned()
        .unwrap_or_default();
    for (i, rule) in rules.iter().enumerate() {
        let n = i + 1;
        let Some(map) = rule.as_mapping() else {
            continue;
        };
        let groups = rule.get("key_groups").and_then(Yaml::as_sequence);
        for k in map.keys().filter_map(Yaml::as_str) {
            match k {
                "path_regex" | "age" | "key_groups" => {}
                "pgp" | "kms" | "gcp_kms" | "azure_keyvault" | "hc_vault_transit_uri" | "hckms" => {
                    out.push(Difference {
                        kind: "other-key-type",
                        message: format!("creation rule {n}: its `{k}` keys are not kept (pve writes age recipients only)"),
                    })
                }
                _ => out.push(Difference {
                    kind: "rule-option",
                    message: format!("creation rule {n}: `{k}` is not kept"),
                }),
            }
        }
        if let Some(gs) = groups.filter(|g| !g.is_empty()) {
            if gs.len() > 1 {
                out.push(Difference {
                    kind: "key-groups",
                    message: format!("creation rule {n}: its {} key groups become one (sops needs a key of every group; after adopting, any one recipient decrypts)", gs.len()),
                });
            }
            let mut kinds = BTreeSet::new();
            for g in gs {
                collect_key_types(g, &mut kinds, 0);
            }
            for k in kinds {
                out.push(Difference {
                    kind: "other-key-type",
                    message: format!("creation rule {n}: its `{k}` keys are not kept (pve writes age recipients only)"),
                });
            }
        }
    }
    out
}

fn collect_key_types(group: &Yaml, out: &mut BTreeSet<String>, depth: usize) {
    let Some(map) = group.as_mapping() else {
        return;
    };
    for (k, v) in map {
        match k.as_str() {
            Some("age") | None => {}
            Some("merge") if depth < 32 => {
                for g in v.as_sequence().into_iter().flatten() {
                    collect_key_types(g, out, depth + 1);
                }
            }
            Some(other) => {
                out.insert(other.to_string());
            }
        }
    }
}

/// What a recipient of the file becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Who {
    Host(String),
    Admin(String),
    Dropped,
}

/// Every recipient of the rules, in the order first written, with what it
/// becomes.
fn classify(
    loaded: &Loaded,
    config: &SopsConfig,
    text: &str,
    keep_unknown: bool,
    diffs: &mut Vec<Difference>,
) -> Vec<(String, Who)> {
    let hosts = host_recipients(loaded);
    let anchors = anchors(text);
    let mut seen: Vec<&str> = Vec::new();
    for (a, _) in &anchors {
        if seen.contains(&a.as_str()) {
            continue;
        }
        seen.push(a);
        let values: Vec<&str> = anchors
            .iter()
            .filter(|(b, _)| b == a)
            .map(|(_, v)| v.as_str())
            .collect();
        if values.len() > 1 {
            diffs.push(Difference {
                kind: "duplicate-anchor",
                message: format!(
                    "the anchor &{a} is defined {} times ({}): each alias means the one defined last before it, as sops reads it; pve names each recipient once",
                    values.len(),
                    values.join(", ")
                ),
            });
        }
    }
    let anchor_of = |r: &str| {
        anchors
            .iter()
            .find(|(_, v)| v == r)
            .map(|(a, _)| a.as_str())
    };
    let mut order: Vec<&str> = Vec::new();
    for rule in &config.rules {
        for r in rule.recipients() {
            if !order.contains(&r) {
                order.push(r);
            }
        }
    }
    for (a, v) in &anchors {
        if v.starts_with("age1") && !order.contains(&v.as_str()) {
            diffs.push(Difference {
                kind: "unused-key",
                message: format!("{v} (&{a}) is in no rule: not carried over"),
            });
        }
    }
    let host_names: Vec<&str> = loaded
        .fleet
        .hosts
        .iter()
        .flat_map(|h| [h.name.as_str(), h.hostname()])
        .collect();
    let mut taken: BTreeSet<String> = BTreeSet::new();
    let mut unnamed = 0;
    let mut out = Vec::new();
    for r in order {
        let rules_with = || -> String {
            config
                .rules
                .iter()
                .enumerate()
                .filter(|(_, rule)| rule.recipients().any(|x| x == r))
                .map(|(i, rule)| rule_label(i, rule))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let anchor = anchor_of(r);
        let in_every_rule = config
            .rules
            .iter()
            .all(|rule| rule.recipients().any(|x| x == r));
        let marked_admin = anchor.is_some_and(|a| {
            words(a)
                .first()
                .is_some_and(|w| ADMIN_WORDS.contains(&w.as_str()))
        });
        // `&admin_web` is a person's, even with a host's name in it.
        let marked_host = !marked_admin && anchor.is_some_and(|a| names_a_host(a, &host_names));
        let shown = match anchor {
            Some(a) => format!("{r} (&{a})"),
            None => r.to_string(),
        };
        let who = if let Some((_, h)) = hosts.iter().find(|(k, _)| k == r) {
            Who::Host(h.to_string())
        } else if marked_host || (!marked_admin && !in_every_rule) {
            // An admin's key is in every rule, unless its anchor says it
            // is a person's; anything else may be a machine that is gone.
            let why = if marked_host {
                "its anchor names a host"
            } else {
                "it is in some rules only, as a host's key would be, and no anchor says it is a person's"
            };
            if keep_unknown {
                unnamed += usize::from(anchor.is_none());
                let base = anchor.map_or_else(|| format!("unknown{unnamed}"), str::to_string);
                let name = unique_name(&mut taken, &base);
                diffs.push(Difference {
                    kind: "kept-unknown",
                    message: format!("{shown} is no current host's key ({why}), listed by {}: kept as admin `{name}` (--keep-unknown), so it can still decrypt those files", rules_with()),
                });
                Who::Admin(name)
            } else {
                diffs.push(Difference {
                    kind: "dropped-recipient",
                    message: format!("{shown} is no current host's key ({why}: a removed host, or an old key of a re-created one), listed by {}: dropped, not carried over; `--keep-unknown` keeps it as an admin", rules_with()),
                });
                Who::Dropped
            }
        } else if let Some(a) = anchor {
            Who::Admin(unique_name(&mut taken, admin_name(a)))
        } else {
            unnamed += 1;
            let name = unique_name(&mut taken, &format!("admin{unnamed}"));
            diffs.push(Difference {
                kind: "unnamed-admin",
                message: format!("{r} has no anchor name and is no host's key: adopted as admin `{name}` (check it is a person's key, not an old host key)"),
            });
            Who::Admin(name)
        };
        out.push((r.to_string(), who));
    }
    out
}

/// Each host's age recipient, from its publicKey as the keys module parsed
/// it when hosts.nix was read ([`crate::fleet::Host::public_point`]), all
/// converted at once as `pve render` does; a host whose key does not parse
/// or convert has none (render refuses it at the key, see
/// render/sops.rs).
fn host_recipients(loaded: &Loaded) -> Vec<(String, &str)> {
    let keyed: Vec<(&[u8; 32], &str)> = loaded
        .fleet
        .hosts
        .iter()
        .filter_map(|h| Some((h.public_point()?.as_ref().ok()?, h.name.as_str())))
        .collect();
    let points: Vec<[u8; 32]> = keyed.iter().map(|(p, _)| **p).collect();
    crate::keys::recipients_from_points(&points)
        .into_iter()
        .zip(keyed)
        .filter_map(|(r, (_, name))| Some((r.ok()?, name)))
        .collect()
}

fn rule_label(i: usize, rule: &CreationRule) -> String {
    if rule.path_regex.is_empty() {
        format!("rule {} (no path_regex)", i + 1)
    } else {
        format!("rule {} `{}`", i + 1, rule.path_regex)
    }
}

/// `&name age1…` definitions in the text, in order (comments left out).
fn anchors(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = match line.find(" #") {
            Some(i) => &line[..i],
            None => line,
        };
        let mut rest = line;
        while let Some(i) = rest.find('&') {
            rest = &rest[i + 1..];
            let name: String = rest
                .chars()
                .take_while(|c| !c.is_whitespace() && !matches!(c, ',' | '[' | ']' | '{' | '}'))
                .collect();
            let after = rest[name.len()..].trim_start();
            let value: String = after
                .trim_start_matches(['"', '\''])
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            if !name.is_empty() && value.starts_with("age1") {
                out.push((name, value));
            }
        }
    }
    out
}

fn words(anchor: &str) -> Vec<String> {
    anchor
        .split(['_', '-', '.', '@'])
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect()
}

/// Whether an anchor says the key is a machine's: `host_web`, `server-db`,
/// or a current host's name.
fn names_a_host(anchor: &str, hosts: &[&str]) -> bool {
    let ws = words(anchor);
    ws.first().is_some_and(|w| HOST_WORDS.contains(&w.as_str()))
        || hosts.iter().any(|h| {
            let h = h.to_ascii_lowercase();
            anchor.eq_ignore_ascii_case(&h) || ws.contains(&h)
        })
}

/// `admin_alice` → `alice`.
fn admin_name(anchor: &str) -> &str {
    for w in ADMIN_WORDS {
        for sep in ['_', '-', '.'] {
            let prefix = format!("{w}{sep}");
            if anchor.len() > prefix.len() && anchor.to_ascii_lowercase().starts_with(&prefix) {
                return &anchor[prefix.len()..];
            }
        }
    }
    anchor
}

fn unique_name(taken: &mut BTreeSet<String>, base: &str) -> String {
    let mut name = base.to_string();
    let mut n = 2;
    while taken.contains(&name) {
        name = format!("{base}_{n}");
        n += 1;
    }
    taken.insert(name.clone());
    name
}

/// How the rules map onto `_sops`.
struct Shape {
    /// One per rule of the file kept as `_sops.rules`: its index there,
    /// the admins it names (None: all), its hosts.
    extra: Vec<ExtraRule>,
    /// Whether the rendered catch-all stays on (`catchAll` unset). The
    /// rules of the file not in `extra` are pve's own.
    catch_all: bool,
}

struct ExtraRule {
    index: usize,
    path_regex: String,
    admins: Option<Vec<String>>,
    hosts: Vec<String>,
}

fn parts(rule: &CreationRule, who: &[(String, Who)]) -> (Vec<String>, Vec<String>) {
    let mut admins = Vec::new();
    let mut hosts = Vec::new();
    for r in rule.recipients() {
        match who.iter().find(|(k, _)| k == r).map(|(_, w)| w) {
            Some(Who::Admin(n)) if !admins.contains(n) => admins.push(n.clone()),
            Some(Who::Host(n)) if !hosts.contains(n) => hosts.push(n.clone()),
            _ => {}
        }
    }
    (admins, hosts)
}

fn shape(
    loaded: &Loaded,
    config: &SopsConfig,
    who: &[(String, Who)],
    prefix: &str,
    map_builtin: bool,
) -> Shape {
    let all_admins: BTreeSet<&str> = who
        .iter()
        .filter_map(|(_, w)| match w {
            Who::Admin(n) => Some(n.as_str()),
            _ => None,
        })
        .collect();
    // Who pve's catch-all gives: admins and the hosts with a key that
    // take secrets.
    let catch_all_hosts: BTreeSet<&str> = loaded
        .fleet
        .hosts
        .iter()
        .filter(|h| h.takes_secrets())
        .filter(|h| matches!(h.public_point(), Some(Ok(_))))
        .map(|h| h.name.as_str())
        .collect();
    let set = |v: &[String]| -> BTreeSet<String> { v.iter().cloned().collect() };
    let all_admins: BTreeSet<String> = all_admins.into_iter().map(String::from).collect();
    // From the end: a catch-all, then rules equal to pve's own per-host
    // rules, become those (they come last in what pve renders, in that
    // order); the rules before them are kept as `_sops.rules`.
    let mut mapped = vec![false; config.rules.len()];
    let mut catch_all = false;
    if map_builtin {
        let mut end = config.rules.len();
        if let Some(rule) = config.rules.last() {
            let (admins, hosts) = parts(rule, who);
            if MATCH_ALL.contains(&rule.path_regex.as_str())
                && set(&admins) == all_admins
                && hosts.iter().map(String::as_str).collect::<BTreeSet<_>>() == catch_all_hosts
            {
                catch_all = true;
                mapped[end - 1] = true;
                end -= 1;
            }
        }
        let mut seen = BTreeSet::new();
        while end > 0 {
            let rule = &config.rules[end - 1];
            let (admins, hosts) = parts(rule, who);
            let own = loaded
                .fleet
                .hosts
                .iter()
                .find(|h| rule.path_regex == format!("^{prefix}hosts/{}/", h.name));
            let Some(h) = own else { break };
            let gets = catch_all_hosts.contains(h.name.as_str());
            let want_hosts: Vec<String> = if gets {
                vec![h.name.clone()]
            } else {
                Vec::new()
            };
            if set(&admins) != all_admins || hosts != want_hosts || !seen.insert(h.name.clone()) {
                break;
            }
            mapped[end - 1] = true;
            end -= 1;
        }
    }
    let mut extra = Vec::new();
    for (i, rule) in config.rules.iter().enumerate() {
        if mapped[i] {
            continue;
        }
        let (admins, hosts) = parts(rule, who);
        let all = set(&admins) == all_admins;
        extra.push(ExtraRule {
            index: i,
            path_regex: rule.path_regex.clone(),
            admins: (!all).then_some(admins),
            hosts,
        });
    }
    Shape { extra, catch_all }
}

/// `_sops = { … };` as Nix text.
fn block(shape: &Shape, admins: &[Admin], rel: &str) -> String {
    let s = names::string_literal;
    let list = |v: &[String]| -> String {
        if v.is_empty() {
            "[ ]".into()
        } else {
            format!(
                "[ {} ]",
                v.iter().map(|x| s(x)).collect::<Vec<_>>().join(" ")
            )
        }
    };
    let mut out = String::from("_sops = {\n");
    if rel != super::DEFAULT_SOPS_YAML {
        out.push_str(&format!("  path = {};\n", s(rel)));
    }
    out.push_str("  admins = {\n");
    for a in admins {
        out.push_str(&format!(
            "    {} = {};\n",
            names::attr_name(&a.name),
            s(&a.recipient)
        ));
    }
    out.push_str("  };\n");
    if !shape.extra.is_empty() {
        out.push_str("  rules = [\n");
        for r in &shape.extra {
            out.push_str(&format!("    {{ path_regex = {};", s(&r.path_regex)));
            if let Some(a) = &r.admins {
                out.push_str(&format!(" admins = {};", list(a)));
            }
            if !r.hosts.is_empty() || r.admins.is_some() {
                out.push_str(&format!(" hosts = {};", list(&r.hosts)));
            }
            out.push_str(" }\n");
        }
        out.push_str("  ];\n");
    }
    if !shape.catch_all {
        out.push_str("  catchAll = false;\n");
    }
    out.push_str("};\n");
    out
}

enum Proof {
    /// Every rule and file as before; how many files; notes.
    Same(usize, Vec<Difference>),
    /// Some existing file would change recipients.
    FilesDiffer(String),
}

/// Renders `.sops.yaml` from hosts.nix with the block and compares it with
/// the original: each rule of the file against the rendered rule it became,
/// each secret file's recipients under both.
fn prove(
    loaded: &Loaded,
    path: &Path,
    config: &SopsConfig,
    who: &[(String, Who)],
    shape: &Shape,
    block: &str,
) -> Result<Proof, AppError> {
    let unfaithful = |why: String| AdoptError::Unfaithful {
        path: path.to_path_buf(),
        why,
    };
    let value = block_value(block);
    let text = edit::add_config_attr(&loaded.file.text, "_sops", value)
        .map_err(|e| e.located(&loaded.file.path, &loaded.file.text))?;
    let edited = crate::fleet::load_source(SourceFile::new(&loaded.file.path, text))?;
    let rendered = crate::render::sops::render_sops_yaml(&edited)?;
    let after = SopsConfig::parse(path, &rendered).map_err(|e| unfaithful(e.to_string()))?;
    let dropped: BTreeSet<&str> = who
        .iter()
        .filter(|(_, w)| *w == Who::Dropped)
        .map(|(r, _)| r.as_str())
        .collect();
    let kept = |rule: &CreationRule| -> BTreeSet<String> {
        rule.recipients()
            .filter(|r| !dropped.contains(r))
            .map(String::from)
            .collect()
    };
    let set =
        |rule: &CreationRule| -> BTreeSet<String> { rule.recipients().map(String::from).collect() };
    // Each rule of the file: kept as `_sops.rules[j]` (the j-th rendered
    // rule) or as the catch-all (the last).
    for (i, rule) in config.rules.iter().enumerate() {
        let now = match shape.extra.iter().position(|e| e.index == i) {
            Some(j) => after.rules.get(j),
            None if MATCH_ALL.contains(&rule.path_regex.as_str()) => after.rules.last(),
            None => after.rules[shape.extra.len()..]
                .iter()
                .find(|r| r.path_regex == rule.path_regex),
        };
        let Some(now) = now else {
            return Err(unfaithful(format!("{} has no rendered rule", rule_label(i, rule))).into());
        };
        let same_regex = now.path_regex == rule.path_regex
            || (MATCH_ALL.contains(&now.path_regex.as_str())
                && MATCH_ALL.contains(&rule.path_regex.as_str()));
        if !same_regex || set(now) != kept(rule) {
            return Err(unfaithful(format!(
                "{} became `{}` with {} instead of {}",
                rule_label(i, rule),
                now.path_regex,
                crate::plural::plural(set(now).len(), "recipient"),
                kept(rule).len()
            ))
            .into());
        }
    }
    // Each secret file: the same recipients under the rule that covers it.
    let mut files = 0;
    let mut notes = Vec::new();
    for s in super::scan(config) {
        if s.found.is_err() {
            continue;
        }
        let shown = s
            .path
            .strip_prefix(&loaded.root_dir)
            .unwrap_or(&s.path)
            .display()
            .to_string();
        let before = config.rule_for(&s.path).map_err(AdoptError::from)?;
        match (before, after.rule_for(&s.path).map_err(AdoptError::from)?) {
            (Some(before), Some(now)) => {
                files += 1;
                if set(now) != kept(before) {
                    return Ok(Proof::FilesDiffer(format!(
                        "{shown} would get {} instead of {}",
                        crate::plural::plural(set(now).len(), "recipient"),
                        kept(before).len()
                    )));
                }
            }
            (None, Some(now)) => notes.push(Difference {
                kind: "newly-covered",
                message: format!(
                    "{shown}: no rule of the file covered it; pve's rule `{}` does now",
                    now.path_regex
                ),
            }),
            (Some(_), None) => {
                return Ok(Proof::FilesDiffer(format!(
                    "{shown} would be covered by no rule"
                )));
            }
            (None, None) => {}
        }
    }
    Ok(Proof::Same(files, notes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_are_read_from_definitions_not_comments() {
        let a = anchors("keys:\n  - &admin_alice age1aaa # &nope age1zzz\n  - &host_web 'age1bbb'\ncreation_rules:\n  - age: &inline age1ccc\n");
        assert_eq!(
            a,
            [
                ("admin_alice".to_string(), "age1aaa".to_string()),
                ("host_web".into(), "age1bbb".into()),
                ("inline".into(), "age1ccc".into())
            ]
        );
    }

    #[test]
    fn host_anchors_are_told_from_admin_anchors() {
        let hosts = ["web", "db"];
        assert!(names_a_host("host_old", &hosts));
        assert!(names_a_host("server-gone", &hosts));
        assert!(names_a_host("web", &hosts));
        assert!(names_a_host("web_2019", &hosts));
        assert!(!names_a_host("admin_alice", &hosts));
        assert!(!names_a_host("bob", &hosts));
        assert_eq!(admin_name("admin_alice"), "alice");
        assert_eq!(admin_name("users-bob"), "bob");
        assert_eq!(admin_name("admin"), "admin");
        assert_eq!(admin_name("carol"), "carol");
    }
}
