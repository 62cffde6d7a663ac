//! `secrets/.sops.yaml`: who can decrypt which secret.
//!
//! Recipients are the admins of `_sops.admins` (age recipients, or
//! ssh-ed25519 keys converted as ssh-to-age does) and every host whose
//! `publicKey` is a real ssh-ed25519 key (converted). Rules, first match
//! wins in sops: the extra rules of `_sops.rules`, then one rule per host
//! for `secrets/hosts/<name>/` (admins + that host), then a catch-all
//! (admins + every host). Each recipient is written once under a unique
//! YAML anchor and referenced by alias.

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::path::{Component, Path, PathBuf};

use askama::Template;
use rowan::TextRange;

use super::{gate, invalid};
use crate::diag::{did_you_mean, Code, Diagnostic, RuleId};
use crate::error::AppError;
use crate::fleet::{Kind, Loaded, Value};
use crate::keys::{self, KeyError};

pub const DEFAULT_PATH: &str = "secrets/.sops.yaml";
/// Where secrets live, relative to the fleet root.
pub const SECRETS_DIR: &str = "secrets";

pub(crate) const GATE: &[RuleId] = &[RuleId::HostName, RuleId::PublicKey];

#[derive(Template)]
#[template(path = "sops.yaml", escape = "none")]
struct SopsYaml<'a> {
    keys: Vec<Key<'a>>,
    /// The extra rules, the host rules, then the catch-all.
    rules: Vec<Rule<'a>>,
}

/// Borrowed from the recipients: a large fleet names each anchor in two
/// rules, and copies of them were a few MiB of small strings.
struct Key<'a> {
    anchor: &'a str,
    recipient: &'a str,
    comment: String,
}

struct Rule<'a> {
    /// Already quoted for YAML.
    path_regex: String,
    comment: String,
    /// Anchor names.
    aliases: Vec<&'a str>,
}

/// A recipient and where it came from.
struct Recipient<'a> {
    anchor: String,
    recipient: String,
    who: Who<'a>,
    span: TextRange,
}

/// Whose recipient it is, written out only for a message or a comment.
#[derive(Clone, Copy)]
enum Who<'a> {
    Admin(&'a str),
    Host(&'a str),
}

impl std::fmt::Display for Who<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Who::Admin(name) => write!(f, "admin `{name}`"),
            Who::Host(name) => write!(f, "host `{name}`"),
        }
    }
}

/// The hosts' recipients, sorted by host name.
struct HostRecipients<'a>(Vec<(&'a str, Recipient<'a>)>);

impl<'a> HostRecipients<'a> {
    fn get(&self, name: &str) -> Option<&Recipient<'a>> {
        let i = self.0.binary_search_by(|(n, _)| (*n).cmp(name)).ok()?;
        Some(&self.0[i].1)
    }
    fn iter(&self) -> impl Iterator<Item = (&'a str, &Recipient<'a>)> {
        self.0.iter().map(|(n, r)| (*n, r))
    }
}

/// The error for `r`, whose recipient `first` has already.
fn duplicate_recipient(
    loaded: &Loaded,
    r: (Who, &str, TextRange),
    first: (Who, TextRange),
) -> AppError {
    let (who, recipient, span) = r;
    let (first, first_span) = first;
    invalid(
        loaded,
        Diagnostic::error(
            Code::DuplicateRecipient,
            span,
            format!("{who} and {first} have the same age recipient {recipient}"),
        )
        .related(first_span, format!("{first} is here"))
        .help("every admin and host needs its own key; a copied publicKey is the usual cause"),
    )
}

/// The exact bytes of `.sops.yaml`.
pub fn render_sops_yaml(loaded: &Loaded) -> Result<String, AppError> {
    render_sops_yaml_with(loaded, super::Options::default())
}

/// [`render_sops_yaml`], read back (the default) or not, as `options` say.
pub fn render_sops_yaml_with(loaded: &Loaded, options: super::Options) -> Result<String, AppError> {
    render_sops_yaml_beside(loaded, options, None)
}

/// [`render_sops_yaml_with`], handing the text to `beside` (on a thread of
/// its own) while it is read back: `pve render` writes it to its temp file
/// then, instead of after. A text the read-back refuses is refused all the
/// same.
pub(crate) fn render_sops_yaml_beside(
    loaded: &Loaded,
    options: super::Options,
    beside: Option<&mut (dyn FnMut(&str) + Send)>,
) -> Result<String, AppError> {
    gate(loaded, GATE)?;
    let path = config_path(loaded)?;
    let prefix = secrets_prefix(loaded, &path)?;
    let sops = &loaded.fleet.sops;
    let sops_span = sops.span.unwrap_or(loaded.value.span);

    let mut anchors = HashSet::default();

    let mut admins = Vec::new();
    for (name, value) in &sops.admins {
        let recipient = admin_recipient(&value.value).map_err(|e| {
            invalid(
                loaded,
                Diagnostic::error(
                    Code::BadAdminKey,
                    value.span,
                    format!("`_sops.admins.{name}` is neither an age recipient nor an ssh-ed25519 key: {e}"),
                )
                .help("write an `age1...` recipient (`age-keygen -y keys.txt`) or an `ssh-ed25519 AAAA...` public key"),
            )
        })?;
        let r = Recipient {
            anchor: unique_anchor(&mut anchors, "admin", name),
            recipient,
            who: Who::Admin(name),
            span: value.span,
        };
        if let Some(first) = admins
            .iter()
            .find(|a: &&Recipient| a.recipient == r.recipient)
        {
            return Err(duplicate_recipient(
                loaded,
                (r.who, &r.recipient, r.span),
                (first.who, first.span),
            ));
        }
        admins.push(r);
    }
    if admins.is_empty() {
        return Err(invalid(
            loaded,
            Diagnostic::error(
                Code::NoAdmins,
                sops_span,
                "`_sops.admins` is empty: no person could decrypt or edit the secrets",
            )
            .help("add `admins = { me = \"age1...\"; };` to `_sops`"),
        ));
    }

    let admin_aliases: Vec<&str> = admins.iter().map(|a| a.anchor.as_str()).collect();
    let admin_names: Vec<&str> = sops.admins.keys().map(String::as_str).collect();

    // A placeholder (the `public-key` rule let it through as a warning):
    // the host has no key yet.
    let mut keyed = Vec::new();
    let mut points: Vec<[u8; 32]> = Vec::new();
    for h in &loaded.fleet.hosts {
        if let (Some(k), Some(Ok(p))) = (&h.public_key, h.public_point()) {
            keyed.push((h, k));
            points.push(*p);
        }
    }
    if options.paths_only {
        // `pve check` needs only the refusals: the recipients compared
        // without their text, and the rules for their own mistakes (a
        // host's anchor only names it in the text).
        first_shared_recipient(loaded, &admins, &keyed, &points)?;
        extra_rules(
            loaded,
            &HostRecipients(Vec::new()),
            &admin_names,
            &admin_aliases,
        )?;
        // Nothing below refuses: what is left is the text, which `pve
        // check` does not need (a file that starts with the header is ours,
        // and so would the text be).
        return Ok(String::new());
    }
    // All keys at once: one field inversion for the whole fleet.
    let converted = keys::recipients_from_points(&points);
    drop(points);
    // The first refusal in host order: a key that does not convert, or a
    // recipient an admin or an earlier host has already.
    let mut seen: HashMap<&str, (Who, TextRange)> =
        HashMap::with_capacity_and_hasher(keyed.len(), Default::default());
    seen.extend(
        admins
            .iter()
            .map(|a| (a.recipient.as_str(), (a.who, a.span))),
    );
    for ((h, k), recipient) in keyed.iter().zip(&converted) {
        let recipient = recipient
            .as_ref()
            .map_err(|e| unconvertible(loaded, h, k, e))?;
        let who = Who::Host(&h.name);
        if let Some(first) = seen.get(recipient.as_str()) {
            return Err(duplicate_recipient(
                loaded,
                (who, recipient, k.span),
                *first,
            ));
        }
        seen.insert(recipient, (who, k.span));
    }
    drop(seen);
    let mut hosts = Vec::with_capacity(keyed.len());
    for ((h, k), recipient) in keyed.into_iter().zip(converted) {
        let Ok(recipient) = recipient else { continue };
        let r = Recipient {
            anchor: unique_anchor(&mut anchors, "host", &h.name),
            recipient,
            who: Who::Host(&h.name),
            span: k.span,
        };
        hosts.push((h.name.as_str(), r));
    }
    // In host order already (hosts.nix's names are sorted); sorting makes
    // the lookups by name safe whatever the order.
    hosts.sort_by(|a, b| a.0.cmp(b.0));
    let hosts = HostRecipients(hosts);

    // The host rules and the catch-all give only the hosts that take
    // secrets; `_sops.rules` gives whom it names.
    let taking: HashSet<&str> = loaded
        .fleet
        .hosts
        .iter()
        .filter(|h| h.takes_secrets())
        .map(|h| h.name.as_str())
        .collect();
    let takes = |name: &str| taking.contains(name);

    let mut rules = extra_rules(loaded, &hosts, &admin_names, &admin_aliases)?;
    rules.extend(loaded.fleet.hosts.iter().map(|h| {
        let r = hosts.get(h.name.as_str()).filter(|_| h.takes_secrets());
        Rule {
            path_regex: yaml_quote(
                &["^", prefix.as_str(), "hosts/", &host_folders(h), "/"].concat(),
            ),
            comment: match (r, h.takes_secrets()) {
                (Some(_), _) => [h.name.as_str(), ": admins and the host"].concat(),
                (None, false) => format!(
                    "{}: admins only (the host takes no secrets: `secrets = true;` changes that)",
                    h.name
                ),
                (None, true) => format!(
                    "{}: admins only until the host has a key (`pve integrate {}`)",
                    h.name, h.name
                ),
            },
            aliases: with_admins(&admin_aliases, r.map(|r| r.anchor.as_str())),
        }
    }));
    if sops.catch_all.as_ref().is_none_or(|c| c.value) {
        let left_out: Vec<&str> = hosts.iter().map(|(n, _)| n).filter(|n| !takes(n)).collect();
        rules.push(Rule {
            path_regex: yaml_quote(".*"),
            comment: if left_out.is_empty() {
                "everything else: admins and every host".into()
            } else {
                format!(
                    "everything else: admins and every host that takes secrets (not {})",
                    left_out.join(", ")
                )
            },
            aliases: with_admins(
                &admin_aliases,
                hosts
                    .iter()
                    .filter(|(n, _)| takes(n))
                    .map(|(_, r)| r.anchor.as_str()),
            ),
        });
    }
    // A host that no rule names is no recipient: its key stays out of the
    // file altogether.
    let used: HashSet<&str> = rules
        .iter()
        .flat_map(|r| r.aliases.iter().copied())
        .collect();
    let keys: Vec<Key> = admins
        .iter()
        .chain(
            hosts
                .iter()
                .map(|(_, r)| r)
                .filter(|r| used.contains(r.anchor.as_str())),
        )
        .map(|r| (r, who_comment(r.who)))
        .map(|(r, comment)| Key {
            anchor: &r.anchor,
            recipient: &r.recipient,
            comment,
        })
        .collect();
    for r in rules.iter_mut() {
        // Host names are DNS labels by now; this is for anything else that
        // reaches a comment.
        if r.comment.chars().any(breaks_a_line) {
            r.comment = r
                .comment
                .chars()
                .map(|c| if breaks_a_line(c) { ' ' } else { c })
                .collect();
        }
    }
    let recipients: Vec<&str> = keys.iter().map(|k| k.recipient).collect();
    let rule_count = rules.len();
    // The text's length, near enough, made room for at once: grown by
    // doubling, a 10,000-host text (2.7 MB) was copied and faulted in
    // about twice over.
    let size = keys
        .iter()
        .map(|k| k.anchor.len() + k.recipient.len() + k.comment.len() + 12)
        .chain(rules.iter().map(|r| {
            let aliases: usize = r.aliases.iter().map(|a| a.len() + 14).sum();
            r.path_regex.len() + r.comment.len() + aliases + 64
        }))
        .sum::<usize>()
        + 512;
    let doc = SopsYaml { keys, rules };
    let mut text = String::with_capacity(size);
    doc.render_into(&mut text)
        .map_err(|e| super::RenderError::SopsTemplate { source: e })?;
    // Not needed for the read-back, which holds the text and its own
    // buffers.
    drop(doc);
    if !text.ends_with('\n') {
        text.push('\n');
    }
    match beside {
        Some(beside) if !options.skip_read_back => std::thread::scope(|s| {
            let text = &text;
            let written = s.spawn(move || beside(text));
            let read = parse_back(text, &recipients, rule_count);
            if let Err(panic) = written.join() {
                std::panic::resume_unwind(panic);
            }
            read
        })?,
        Some(beside) => beside(&text),
        None if !options.skip_read_back => parse_back(&text, &recipients, rule_count)?,
        None => {}
    }
    Ok(text)
}

/// The error for host `h`, whose `publicKey` `k` does not convert.
fn unconvertible(
    loaded: &Loaded,
    h: &crate::fleet::model::Host,
    k: &crate::fleet::Spanned<String>,
    e: &KeyError,
) -> AppError {
    invalid(
        loaded,
        Diagnostic::error(
            Code::BadPublicKey,
            k.span,
            format!("`{}.publicKey` cannot be converted to an age recipient: {e}", h.name),
        )
        .help("copy /etc/ssh/ssh_host_ed25519_key.pub of the host exactly, or let `pve integrate` write it"),
    )
}

/// The first refusal of the hosts' recipients in host order, as the
/// conversion finds it in `render_sops_yaml_with` (a key that does not
/// convert, or a recipient an admin or an earlier host has already), for
/// `pve check`: recipients are compared by [`keys::RecipientId`] and
/// written out only for the message (at 10,000 hosts the conversion and
/// its strings were nearly all of check's rendering).
fn first_shared_recipient(
    loaded: &Loaded,
    admins: &[Recipient],
    keyed: &[(&crate::fleet::model::Host, &crate::fleet::Spanned<String>)],
    points: &[[u8; 32]],
) -> Result<(), AppError> {
    let ids = keys::recipient_ids_from_points(points);
    // Who has each recipient: index i < admins.len() is admin i, else
    // host i − admins.len() of `keyed`.
    let mut seen: HashMap<keys::RecipientId, usize> =
        HashMap::with_capacity_and_hasher(keyed.len() + admins.len(), Default::default());
    for (i, a) in admins.iter().enumerate() {
        // None: no key converts to it, so no host can share it.
        if let Some(id) = keys::recipient_id(&a.recipient) {
            seen.insert(id, i);
        }
    }
    for (i, (((h, k), id), point)) in keyed.iter().zip(ids).zip(points).enumerate() {
        let id = id.map_err(|e| unconvertible(loaded, h, k, &e))?;
        let first = match seen.entry(id) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(admins.len() + i);
                continue;
            }
            std::collections::hash_map::Entry::Occupied(o) => *o.get(),
        };
        let first = match first.checked_sub(admins.len()) {
            None => (admins[first].who, admins[first].span),
            Some(j) => (Who::Host(&keyed[j].0.name), keyed[j].1.span),
        };
        let recipient =
            keys::recipient_from_point(point).map_err(|e| unconvertible(loaded, h, k, &e))?;
        return Err(duplicate_recipient(
            loaded,
            (Who::Host(&h.name), &recipient, k.span),
            first,
        ));
    }
    Ok(())
}

fn admin_recipient(s: &str) -> Result<String, KeyError> {
    let t = s.trim();
    if t.starts_with("age1") {
        keys::parse_recipient(t)?;
        Ok(t.to_string())
    } else if t.starts_with("ssh-") || t.starts_with("ecdsa-") || t.starts_with("sk-") {
        keys::ssh_to_age(t)
    } else {
        Err(KeyError::BadRecipient(
            "expected `age1...` or `ssh-ed25519 AAAA...`".into(),
        ))
    }
}

/// `_sops.rules`: `[ { path_regex = "^shared/"; hosts = [ "web" ]; } ]`;
/// each gets the admins (or the ones its `admins` list names) plus the
/// listed hosts' keys, whether or not those hosts take secrets otherwise.
/// The admins' anchors, then `extra`.
fn with_admins<'a>(admins: &[&'a str], extra: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    admins.iter().copied().chain(extra).collect()
}

fn extra_rules<'a>(
    loaded: &Loaded,
    hosts: &'a HostRecipients,
    admin_names: &[&str],
    admin_aliases: &[&'a str],
) -> Result<Vec<Rule<'a>>, AppError> {
    let Some(v) = &loaded.fleet.sops.rules else {
        return Ok(Vec::new());
    };
    let err = |span, msg: String, help: &str| {
        invalid(
            loaded,
            Diagnostic::error(Code::BadSopsRule, span, msg).help(help.to_string()),
        )
    };
    let example = "write `rules = [ { path_regex = \"^shared/\"; hosts = [ \"web\" ]; } ];`";
    let Some(items) = v.as_list() else {
        return Err(err(
            v.span,
            format!(
                "`_sops.rules` must be a list of sets, not {}",
                v.kind.type_name()
            ),
            example,
        ));
    };
    let mut out = Vec::new();
    for item in items {
        let Some(attrs) = item.as_attrs() else {
            return Err(err(
                item.span,
                "each of `_sops.rules` must be a set".into(),
                example,
            ));
        };
        for (key, attr) in attrs {
            if !RULE_KEYS.contains(&key.as_str()) {
                let help = match did_you_mean(key, RULE_KEYS.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => "a rule has `path_regex`, `hosts` and `admins`".into(),
                };
                return Err(err(
                    attr.name_span,
                    format!("unknown key `{key}` in `_sops.rules`"),
                    &help,
                ));
            }
        }
        let regex = match attrs.get("path_regex").map(|a| &a.value) {
            Some(Value {
                kind: Kind::Str(s),
                span,
            }) => {
                if s.chars().any(char::is_control) {
                    return Err(err(
                        *span,
                        "`path_regex` contains a control character".into(),
                        "write the regex on one line",
                    ));
                }
                s.clone()
            }
            Some(other) => {
                return Err(err(
                    other.span,
                    "`path_regex` must be a string".into(),
                    example,
                ))
            }
            None => {
                return Err(err(
                    item.span,
                    "a rule in `_sops.rules` lacks `path_regex`".into(),
                    example,
                ))
            }
        };
        let (mut aliases, mut names) = match attrs.get("admins") {
            None => (admin_aliases.to_vec(), Vec::new()),
            Some(a) => rule_admins(loaded, &a.value, admin_names, admin_aliases)?,
        };
        let all_admins = attrs.get("admins").is_none();
        if let Some(a) = attrs.get("hosts") {
            let Some(list) = a.value.as_list() else {
                return Err(err(
                    a.value.span,
                    "`hosts` must be a list of host names".into(),
                    example,
                ));
            };
            for n in list {
                let Some(name) = n.as_str() else {
                    return Err(err(
                        n.span,
                        "`hosts` must be a list of host names".into(),
                        example,
                    ));
                };
                if loaded.fleet.host(name).is_none() {
                    let help = match did_you_mean(
                        name,
                        loaded.fleet.hosts.iter().map(|h| h.name.as_str()),
                    ) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => "list hosts defined in hosts.nix".into(),
                    };
                    return Err(err(
                        n.span,
                        format!(
                            "`_sops.rules` names host `{name}`, which hosts.nix does not define"
                        ),
                        &help,
                    ));
                }
                if let Some(h) = loaded.fleet.host(name) {
                    if h.secrets.as_ref().is_some_and(|s| !s.value) {
                        return Err(invalid(
                            loaded,
                            Diagnostic::error(
                                Code::BadSopsRule,
                                n.span,
                                format!("`_sops.rules` gives secrets to `{name}`, which says `secrets = false;`"),
                            )
                            .help(format!("take `\"{name}\"` out of this rule, or write `secrets = true;` for `{name}`")),
                        ));
                    }
                }
                if let Some(r) = hosts.get(name) {
                    if !aliases.contains(&r.anchor.as_str()) {
                        aliases.push(r.anchor.as_str());
                    }
                }
                names.push(name.to_string());
            }
        }
        out.push(Rule {
            path_regex: yaml_quote(&regex),
            comment: match (all_admins, names.is_empty()) {
                (true, true) => "from _sops.rules: admins".into(),
                (true, false) => format!("from _sops.rules: admins, {}", names.join(", ")),
                (false, _) => format!("from _sops.rules: {}", names.join(", ")),
            },
            aliases,
        });
    }
    Ok(out)
}

/// The keys of one rule in `_sops.rules`.
const RULE_KEYS: &[&str] = &["path_regex", "hosts", "admins"];

/// A rule's `admins = [ "alice" ];`: the anchors and names of the admins
/// it lists (each must be in `_sops.admins`).
fn rule_admins<'a>(
    loaded: &Loaded,
    v: &Value,
    admin_names: &[&str],
    admin_aliases: &[&'a str],
) -> Result<(Vec<&'a str>, Vec<String>), AppError> {
    let err = |span, msg: String, help: String| {
        invalid(
            loaded,
            Diagnostic::error(Code::BadSopsRule, span, msg).help(help),
        )
    };
    let Some(list) = v.as_list() else {
        return Err(err(
            v.span,
            "`admins` in `_sops.rules` must be a list of admin names".into(),
            "write `admins = [ \"alice\" ];` (names from `_sops.admins`), or leave it out for every admin".into(),
        ));
    };
    let mut aliases = Vec::new();
    let mut names = Vec::new();
    for n in list {
        let Some(name) = n.as_str() else {
            return Err(err(
                n.span,
                "`admins` in `_sops.rules` must be a list of admin names".into(),
                "write `admins = [ \"alice\" ];`".into(),
            ));
        };
        let Some(i) = admin_names.iter().position(|a| *a == name) else {
            let help = match did_you_mean(name, admin_names.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None => "list names defined in `_sops.admins`".into(),
            };
            return Err(err(
                n.span,
                format!("`_sops.rules` names admin `{name}`, which `_sops.admins` does not define"),
                help,
            ));
        };
        if !aliases.contains(&admin_aliases[i]) {
            aliases.push(admin_aliases[i]);
            names.push(name.to_string());
        }
    }
    Ok((aliases, names))
}

/// `_sops.path` (default `secrets/.sops.yaml`), checked to stay inside the
/// fleet root, normalized.
pub fn config_path(loaded: &Loaded) -> Result<PathBuf, AppError> {
    let (raw, span) = match &loaded.fleet.sops.path {
        Some(p) => (p.value.as_str(), p.span),
        None => (
            DEFAULT_PATH,
            loaded.fleet.sops.span.unwrap_or(loaded.value.span),
        ),
    };
    let escape = |why: &str| {
        invalid(
            loaded,
            Diagnostic::error(
                Code::SopsPathEscapes,
                span,
                format!("`_sops.path` {raw:?} {why}"),
            )
            .help(format!(
                "write a path inside the fleet, e.g. `path = \"{DEFAULT_PATH}\";`"
            )),
        )
    };
    let mut parts: Vec<String> = Vec::new();
    for c in Path::new(raw).components() {
        match c {
            Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
            Component::CurDir => {}
            Component::ParentDir => {
                if parts.pop().is_none() {
                    return Err(escape("leads out of the fleet root"));
                }
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(escape("is absolute; it must be relative to the fleet root"))
            }
        }
    }
    if parts.is_empty() || raw.ends_with('/') {
        return Err(escape("names no file"));
    }
    let rel: PathBuf = parts.iter().collect();
    // pve owns only names that say what they hold: never hosts.nix,
    // flake.nix or a README.
    let named_right = rel
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with(".sops.yaml"));
    if !named_right {
        return Err(invalid(
            loaded,
            Diagnostic::error(
                Code::SopsPathName,
                span,
                format!("`_sops.path` {raw:?} does not name a `.sops.yaml` file"),
            )
            .help(format!(
                "pve writes sops' configuration only under a name ending in `.sops.yaml`, e.g. `path = \"{DEFAULT_PATH}\";`"
            )),
        ));
    }
    // A symlinked folder could still lead outside.
    if let Some(parent) = loaded.root_dir.join(&rel).parent() {
        if let (Ok(p), Ok(root)) = (parent.canonicalize(), loaded.root_dir.canonicalize()) {
            if !p.starts_with(&root) {
                return Err(escape(
                    "leads out of the fleet root through a symbolic link",
                ));
            }
        }
    }
    Ok(rel)
}

/// sops matches `path_regex` against the path relative to the folder of
/// `.sops.yaml`, so host rules are written relative to it.
fn secrets_prefix(loaded: &Loaded, path: &Path) -> Result<String, AppError> {
    let dir = path.parent().unwrap_or(Path::new(""));
    if dir.as_os_str().is_empty() {
        Ok(format!("{SECRETS_DIR}/"))
    } else if dir == Path::new(SECRETS_DIR) {
        Ok(String::new())
    } else {
        let span = loaded
            .fleet
            .sops
            .path
            .as_ref()
            .map_or(loaded.value.span, |p| p.span);
        Err(invalid(
            loaded,
            Diagnostic::error(
                Code::SopsPath,
                span,
                format!("`_sops.path` puts .sops.yaml in {}/, but secrets live in {SECRETS_DIR}/", dir.display()),
            )
            .help(format!("sops matches rules relative to the folder of .sops.yaml: use \"{DEFAULT_PATH}\" or \".sops.yaml\"")),
        ))
    }
}

/// A YAML anchor name from a kind and a name: letters, digits, `_`, `-`
/// only, and never used twice.
fn unique_anchor(taken: &mut HashSet<String>, kind: &str, name: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    let mut base = String::with_capacity(kind.len() + 1 + name.len());
    base.push_str(kind);
    base.push('_');
    // Host names are DNS labels: nearly every name is copied as it is.
    if name.chars().all(plain) {
        base.push_str(name);
    } else {
        base.extend(name.chars().map(|c| if plain(c) { c } else { '_' }));
    }
    if taken.insert(base.clone()) {
        return base;
    }
    let mut n = 2;
    loop {
        let anchor = format!("{base}_{n}");
        if taken.insert(anchor.clone()) {
            return anchor;
        }
        n += 1;
    }
}

/// Characters some YAML reader takes for the end of a line: YAML 1.1 (and
/// so PyYAML and sops' Go parser) counts NEL, LS and PS besides CR and LF.
fn breaks_a_line(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')
}

/// A YAML scalar: single-quoted, or double-quoted with escapes when it
/// holds a control character or a line break of any kind.
fn yaml_quote(s: &str) -> String {
    // Printable ASCII without a quote (every host rule's regex) is written
    // as it is.
    if s.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'\'') {
        return ["'", s, "'"].concat();
    }
    if !s.chars().any(breaks_a_line) {
        return format!("'{}'", s.replace('\'', "''"));
    }
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if breaks_a_line(c) => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `comment_text` of `who` written out: `admin alice` / `host web`.
fn who_comment(who: Who) -> String {
    let (kind, name) = match who {
        Who::Admin(name) => ("admin ", name),
        Who::Host(name) => ("host ", name),
    };
    // Printable ASCII without a backtick (every host name) needs nothing
    // blanked or left out.
    if name.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'`') {
        return [kind, name].concat();
    }
    comment_text(&who.to_string())
}

/// Text safe inside a `#` comment: no line breaks of any kind.
fn comment_text(s: &str) -> String {
    s.chars()
        .map(|c| if breaks_a_line(c) { ' ' } else { c })
        .filter(|c| *c != '`')
        .collect()
}

/// Reads the rendered file back with a strict YAML parser and checks it
/// says what was meant: exactly these recipients, in this order, and this
/// many rules; and no line break but LF anywhere. Whatever slipped through
/// the quoting would show here, before the file is written.
fn parse_back(text: &str, recipients: &[&str], rules: usize) -> Result<(), AppError> {
    let wrong = |why: String| AppError::from(super::RenderError::SopsReadBack { why });
    // Every character that breaks a line but LF starts with one of these
    // bytes in UTF-8 (C0 and DEL; C2 for C1 controls and NEL; E2 for LS
    // and PS): a byte scan, and characters only when one is there.
    let suspect = |b: &u8| (*b < 0x20 && *b != b'\n') || matches!(*b, 0x7f | 0xc2 | 0xe2);
    // In blocks without an early exit, which the compiler vectorises (a
    // byte at a time cost about as much as rendering the text).
    let breaks = text
        .as_bytes()
        .chunks(256)
        .any(|block| block.iter().fold(false, |found, b| found | suspect(b)));
    if let Some(c) = breaks
        .then(|| text.chars().find(|&c| c != '\n' && breaks_a_line(c)))
        .flatten()
    {
        return Err(wrong(format!("it holds the line break U+{:04X}", c as u32)));
    }
    // A text of the template's plain lines is tallied without the parser
    // (see `SopsTally::read_rendered`); any other is read as a stream of
    // events: only what is compared is kept (the loaded document of a
    // 10,000-host file took about 40 MiB); a large text in two parts on
    // two threads (see `SopsTally::read_in_two`).
    let doc = super::yaml_events::SopsTally::read(text, recipients).map_err(wrong)?;
    if doc.keys_differ || doc.keys != recipients.len() {
        return Err(wrong(format!(
            "it lists {} where the rendering has {}",
            crate::plural::plural(doc.keys, "key"),
            crate::plural::plural(recipients.len(), "key")
        )));
    }
    let found = doc.rules;
    if found != rules {
        return Err(wrong(format!(
            "it has {found} rules where {rules} were rendered"
        )));
    }
    Ok(())
}

/// `web`, or `(?:web|web-old)` for a host renamed from `web-old` (its
/// secrets stay in `hosts/web-old/` after `pve host rename`; the rule
/// follows them). Host names are DNS labels: nothing to escape.
fn host_folders(h: &crate::fleet::model::Host) -> String {
    if h.renamed_from.is_empty() {
        return h.name.clone();
    }
    let mut names = vec![h.name.as_str()];
    names.extend(
        h.renamed_from
            .iter()
            .map(|s| s.value.as_str())
            .filter(|n| crate::fleet::HostName::is_valid(n)),
    );
    format!("(?:{})", names.join("|"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `pve check`'s fast path (recipients compared by id, no text)
    /// refuses what the full rendering refuses, with the same diagnostic,
    /// and passes what it passes.
    #[test]
    fn check_refuses_what_render_refuses() {
        use crate::check::testing::{KEY_A, KEY_B};
        let age_of = |k: &str| keys::ssh_to_age(k).expect("a real key");
        let invalid =
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        let small =
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        // KEY_A with the sign bit of x flipped: another point, the same
        // recipient.
        use base64::Engine as _;
        let mut negated = crate::keys::parse_ed25519_public(KEY_A).expect("a real key");
        negated[31] ^= 0x80;
        let negated = format!(
            "ssh-ed25519 {}",
            base64::engine::general_purpose::STANDARD
                .encode([&[0, 0, 0, 11][..], b"ssh-ed25519", &[0, 0, 0, 32], &negated].concat())
        );
        let other = "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj";
        let fleet = |admins: &str, a: &str, b: &str, c: &str| {
            format!(
                r#"{{ _sops = {{ admins = {{ {admins} }}; rules = [ {{ path_regex = "^x/"; hosts = [ "b" ]; }} ]; }};
  a = {{ publicKey = "{a}"; }}; b = {{ publicKey = "{b}"; }}; c = {{ publicKey = "{c}"; }}; }}"#
            )
        };
        let me = |r: &str| format!("me = \"{r}\";");
        let cases = [
            fleet(&me(other), KEY_A, KEY_B, "ssh-ed25519 AAAA"),
            fleet(&me(other), KEY_A, KEY_B, KEY_A),
            fleet(&me(other), KEY_A, &negated, KEY_B),
            fleet(&me(other), KEY_B, invalid, KEY_B),
            fleet(&me(other), small, KEY_A, KEY_A),
            fleet(&me(&age_of(KEY_B)), KEY_A, KEY_B, invalid),
            fleet(&me(KEY_B), KEY_A, "", KEY_B),
            fleet(
                &[me(other).as_str(), "you = \"", KEY_A, "\";"].concat(),
                small,
                "",
                KEY_A,
            ),
            fleet(&me(other), KEY_A, KEY_B, other),
            fleet(&me(other), KEY_A, KEY_B, "")
                .replace(r#"hosts = [ "b" ]"#, r#"hosts = [ "nope" ]"#),
        ];
        let mut refused = 0;
        for text in cases {
            let path = std::env::temp_dir().join("pve-sops-fast-path-test/hosts.nix");
            let loaded =
                crate::fleet::load_source(crate::fleet::SourceFile::new(path, text.clone()))
                    .expect("the test fleet loads");
            let render = |paths_only| {
                let options = super::super::Options {
                    skip_read_back: true,
                    paths_only,
                    ..Default::default()
                };
                super::super::without_gates(|| render_sops_yaml_with(&loaded, options))
                    .map(|_| ())
                    .map_err(|e| format!("{e:?}"))
            };
            let full = render(false);
            assert_eq!(render(true), full, "{text}");
            refused += usize::from(full.is_err());
        }
        assert_eq!(refused, 8);
    }

    /// A fleet's rendered text, with renamed hosts, extra rules and a
    /// host that takes no secrets, is read back without the parser (see
    /// `SopsTally::read_rendered`), to the tally the parser gives.
    #[test]
    fn a_rendered_text_is_read_back_without_the_parser() {
        use crate::check::testing::{KEY_A, KEY_B};
        let text = format!(
            r#"{{ _sops = {{ admins = {{ me = "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj"; }}; rules = [ {{ path_regex = "^x/.*"; hosts = [ "a" ]; }} ]; }};
  a = {{ publicKey = "{KEY_A}"; renamedFrom = [ "old-a" ]; }}; b = {{ publicKey = "{KEY_B}"; secrets = false; }}; c = {{ }}; }}"#
        );
        let path = std::env::temp_dir().join("pve-sops-read-back-test/hosts.nix");
        let loaded = crate::fleet::load_source(crate::fleet::SourceFile::new(path, text))
            .expect("the test fleet loads");
        let rendered = super::super::without_gates(|| render_sops_yaml(&loaded)).expect("renders");
        let recipients: Vec<&str> = rendered
            .lines()
            .filter_map(|l| l.strip_prefix("  - &")?.split(' ').nth(1))
            .collect();
        let rules = rendered.matches("\n  - path_regex:").count();
        assert!(recipients.len() >= 2 && rules >= 3, "{rendered}");
        let yaml = super::super::yaml_events::SopsTally::read_rendered(&rendered, &recipients)
            .expect("read without the parser");
        let whole = super::super::yaml_events::SopsTally::read_whole(&rendered, &recipients)
            .expect("read with the parser");
        assert_eq!(yaml.counts(), whole.counts());
        assert_eq!(yaml.counts(), (recipients.len(), false, rules));
    }

    #[test]
    fn anchors_are_unique_and_plain() {
        let mut taken = HashSet::default();
        assert_eq!(
            unique_anchor(&mut taken, "admin", "alice@laptop"),
            "admin_alice_laptop"
        );
        assert_eq!(
            unique_anchor(&mut taken, "admin", "alice laptop"),
            "admin_alice_laptop_2"
        );
        assert_eq!(unique_anchor(&mut taken, "host", "web-1"), "host_web-1");
    }

    /// The single quoting as it was written before its fast path (the
    /// double quoting is unchanged).
    fn slow_quote(s: &str) -> String {
        if !s.chars().any(breaks_a_line) {
            return format!("'{}'", s.replace('\'', "''"));
        }
        yaml_quote(s)
    }

    proptest::proptest! {
        #[test]
        fn fast_paths_write_what_the_slow_ones_do(s in "[a-z0-9'`_ -]{0,12}|.{0,16}") {
            proptest::prop_assert_eq!(yaml_quote(&s), slow_quote(&s));
            for who in [Who::Admin(&s), Who::Host(&s)] {
                proptest::prop_assert_eq!(who_comment(who), comment_text(&who.to_string()));
            }
            let mut taken = HashSet::default();
            let slow: String = s
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
                .collect();
            proptest::prop_assert_eq!(unique_anchor(&mut taken, "host", &s), format!("host_{slow}"));
        }
    }

    #[test]
    fn yaml_quoting() {
        assert_eq!(yaml_quote("^it's/"), "'^it''s/'");
        assert_eq!(yaml_quote("a\u{2028}b\"\\"), "\"a\\u2028b\\\"\\\\\"");
    }

    #[test]
    fn every_unicode_line_break_is_quoted_or_blanked() {
        for brk in [
            '\n', '\r', '\u{85}', '\u{2028}', '\u{2029}', '\u{b}', '\u{c}',
        ] {
            let s = format!("x{brk}- &evil age1");
            assert!(!comment_text(&s).contains(brk), "{brk:?}");
            let quoted = yaml_quote(&s);
            assert!(!quoted.contains(brk), "{brk:?}");
            let back: String = serde_yaml_ng::from_str(&quoted).expect("parses");
            assert_eq!(back, s, "{brk:?}");
        }
    }

    #[test]
    fn parse_back_catches_an_injected_key() {
        let text = "keys:\n  - &a age1x # alice\u{2028}  - &b age1evil\ncreation_rules: []\n";
        assert!(parse_back(text, &["age1x"], 0).is_err());
        let ok = "keys:\n  - &a age1x # alice\ncreation_rules:\n  - path_regex: '.*'\n";
        assert!(parse_back(ok, &["age1x"], 1).is_ok());
    }

    /// A text large enough to be read in two parts: an injected key or a
    /// broken quote in either part is still caught.
    #[test]
    fn parse_back_catches_an_injection_in_either_half() {
        let (text, recipients) = super::super::yaml_events::sops_text(2000);
        let r: Vec<&str> = recipients.iter().map(String::as_str).collect();
        let rules = 2001;
        assert!(parse_back(&text, &r, rules).is_ok());
        let middle = text.len() / 2;
        for at in [text.len() / 3, middle, middle + 300, text.len() - 100] {
            let line = at + text[at..].find('\n').expect("a line") + 1;
            for evil in [
                "  - &evil age1evil # x\n",
                "keys:\n  - &evil age1evil\n",
                "  - path_regex: 'broken\n",
                "  - path_regex: 'a\n  # b'\n",
            ] {
                let bad = format!("{}{evil}{}", &text[..line], &text[line..]);
                assert!(parse_back(&bad, &r, rules).is_err(), "{evil:?} at {line}");
            }
        }
    }
}
