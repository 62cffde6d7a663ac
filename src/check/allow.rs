//! `checks.allow = [ "disko" ];` in a host and `_checks.allow = [ ... ];`
//! at the top level: findings of the named rules (or codes) are set aside
//! for that host or the whole fleet, as clippy's `allow`. Each name is a
//! rule's name (`RuleId::name`) or a finding's code. What makes rendering
//! impossible (syntax, evaluation, a missing required key) cannot be
//! allowed; naming it, or a name pve does not know, is a warning.

use crate::diag::{did_you_mean, Code, Diagnostic, RuleId};
use crate::fleet::value::Value;
use crate::fleet::Loaded;

/// Codes no `allow` silences: without them nothing can be rendered.
const NEVER_ALLOWED: &[Code] = &[
    Code::Syntax,
    Code::TooDeep,
    Code::TooLong,
    Code::Eval,
    Code::Internal,
    Code::NotASet,
    Code::MissingKey,
];

/// The fleet-wide set of allows.
pub const FLEET_SET: &str = "_checks";

/// One `allow` entry where it was written.
struct Allow<'a> {
    name: &'a str,
    value: &'a Value,
    /// The host it applies to (`None`: the whole fleet).
    host: Option<usize>,
}

/// Splits `diags` into what counts and what an `allow` set aside; adds a
/// warning for each name that allows nothing.
pub fn apply(l: &Loaded, diags: Vec<Diagnostic>) -> (Vec<Diagnostic>, Vec<Diagnostic>) {
    let sets = allow_sets(l);
    let allows = allows(&sets);
    let hosts = &l.fleet.hosts;
    let mut kept = Vec::new();
    let mut allowed = Vec::new();
    for d in diags {
        // The host a finding is in is the first whose set holds it; only
        // looked for (through every host) when an allow of that host
        // names the finding and holds it: a search per finding made this
        // quadratic in fleets with many findings.
        let mut host = None;
        let hit = allows
            .iter()
            .filter(|a| matches(a.name, d.code))
            .any(|a| match a.host {
                None => true,
                Some(i) => {
                    hosts.get(i).is_some_and(|h| h.span.contains_range(d.span))
                        && *host.get_or_insert_with(|| {
                            hosts.iter().position(|h| h.span.contains_range(d.span))
                        }) == Some(i)
                }
            });
        if hit {
            allowed.push(d);
        } else {
            kept.push(d);
        }
    }
    kept.extend(allows.iter().filter_map(unknown_name));
    kept.extend(misshapen(&sets));
    kept.sort_by_key(|d| (d.span.start(), d.severity, d.code));
    (kept, allowed)
}

/// Whether `name` allows a finding with `code`.
fn matches(name: &str, code: Code) -> bool {
    !NEVER_ALLOWED.contains(&code)
        && (code.as_str() == name || code.rule().is_some_and(|r| r.name() == name))
}

/// Every rule name and code an `allow` may name.
fn known_names() -> impl Iterator<Item = &'static str> {
    super::RULES
        .iter()
        .map(|(id, _)| id.name())
        .filter(|n| *n != RuleId::Required.name())
        .chain(
            Code::ALL
                .iter()
                .filter(|c| !NEVER_ALLOWED.contains(c))
                .map(|c| c.as_str()),
        )
}

/// The warning for a name that allows nothing.
fn unknown_name(a: &Allow) -> Option<Diagnostic> {
    let name = a.name;
    if known_names().any(|n| n == name) {
        return None;
    }
    let never = NEVER_ALLOWED.iter().any(|c| c.as_str() == name) || name == "required";
    let d = Diagnostic::new(
        Code::UnknownAllow,
        a.value.span,
        if never {
            format!("`{name}` cannot be allowed: without it nothing can be rendered")
        } else {
            format!("`{name}` is no `pve check` rule or finding code")
        },
    );
    Some(match did_you_mean(name, known_names()).filter(|_| !never) {
        Some(s) => d.help(format!("did you mean `{s}`?")),
        None if never => d.help("fix the finding instead; remove it from `allow`"),
        None => d.help("the rules and codes are listed in `pve check --help` and docs/check.md"),
    })
}

/// The `allow` entries of the fleet (`_checks.allow`) and of each host
/// (`checks.allow`). Values of another shape are [`misshapen`]'s.
fn allows<'a>(sets: &[(&'a Value, Option<usize>)]) -> Vec<Allow<'a>> {
    let mut out = Vec::new();
    for &(set, host) in sets {
        for v in allow_list(Some(set)) {
            if let Some(name) = v.as_str() {
                out.push(Allow {
                    name,
                    value: v,
                    host,
                });
            }
        }
    }
    out
}

/// `_checks` and each host's `checks`, with the host they apply to.
fn allow_sets(l: &Loaded) -> Vec<(&Value, Option<usize>)> {
    let Some(top) = l.value.as_attrs() else {
        return Vec::new();
    };
    let fleet = top.get(FLEET_SET).map(|a| (&a.value, None));
    let hosts = crate::check::host_sets(l)
        .enumerate()
        .filter_map(|(i, (_, set))| Some((&set?.get("checks")?.value, Some(i))));
    fleet.into_iter().chain(hosts).collect()
}

/// An `allow` that is not a list of strings (`checks.allow = "disko";`)
/// would set nothing aside without a word: an error at the value.
fn misshapen(sets: &[(&Value, Option<usize>)]) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for &(set, host) in sets {
        let Some(allow) = set.as_attrs().and_then(|a| a.get("allow")) else {
            continue;
        };
        let prefix = if host.is_some() { "checks" } else { FLEET_SET };
        let bad: Vec<(&Value, &str)> = match allow.value.as_list() {
            Some(items) => items
                .iter()
                .filter(|v| v.as_str().is_none())
                .map(|v| (v, "an entry of"))
                .collect(),
            None => vec![(&allow.value, "")],
        };
        for (v, what) in bad {
            let message = if what.is_empty() {
                format!(
                    "`{prefix}.allow` must be a list of rule names or codes, not {}",
                    v.kind.type_name()
                )
            } else {
                format!(
                    "{what} `{prefix}.allow` must be a rule name or code (a string), not {}",
                    v.kind.type_name()
                )
            };
            out.push(
                Diagnostic::new(Code::WrongType, v.span, message).help(format!(
                    "write it as a list of strings: `{prefix}.allow = [ \"disko\" ];`"
                )),
            );
        }
    }
    out
}

/// The entries of `set.allow` when it is a list.
fn allow_list(set: Option<&Value>) -> &[Value] {
    set.and_then(Value::as_attrs)
        .and_then(|a| a.get("allow"))
        .and_then(|a| a.value.as_list())
        .unwrap_or_default()
}
