//! `pve check`: every rule is one small function from the loaded fleet to
//! diagnostics. The library never prints; the CLI renders the result.

pub mod allow;
mod fast_hash;
mod rules;

use crate::diag::{Diagnostic, RuleId};
use crate::fleet::value::Attrs;
use crate::fleet::{Host, Loaded};

/// A rule: looks at the fleet and reports what is wrong.
type Rule = fn(&Loaded) -> Vec<Diagnostic>;

/// Every rule, in the order their findings are most useful to read.
pub const RULES: &[(RuleId, Rule)] = &[
    (RuleId::HostName, rules::host_name::host_names),
    (RuleId::Required, rules::required::required_keys),
    (RuleId::ProxmoxConfig, rules::proxmox_config::proxmox_config),
    (
        RuleId::DuplicateVmid,
        rules::duplicate_vmid::duplicate_vmids,
    ),
    (RuleId::VmidRange, rules::vmid_range::vmid_range),
    (RuleId::Duplicates, rules::duplicates::duplicate_names),
    (RuleId::UniqueNames, rules::unique_names::names),
    (RuleId::UniqueKeys, rules::unique_keys::public_keys),
    (RuleId::Resources, rules::resources::resources),
    (RuleId::Disk, rules::disk::disk),
    (RuleId::Template, rules::template::template_compatibility),
    (RuleId::Node, rules::node::nodes),
    (RuleId::TemplateNode, rules::template_node::template_nodes),
    (RuleId::Files, rules::files::host_files),
    (RuleId::PublicKey, rules::public_key::public_keys),
    (
        RuleId::Configuration,
        rules::configuration::configuration_files,
    ),
    (RuleId::Secrets, crate::secrets::health::rule),
    (RuleId::ProxmoxValue, rules::proxmox_value::proxmox_values),
    (RuleId::Render, rules::render::render_refusals),
    (RuleId::Typos, rules::typos::typos),
];

/// All findings for a fleet that count: [`check_all`] without what
/// `checks.allow` / `_checks.allow` set aside.
pub fn check(loaded: &Loaded) -> Vec<Diagnostic> {
    check_with_allowed(loaded).0
}

/// The findings that count, and those an `allow` set aside.
pub fn check_with_allowed(loaded: &Loaded) -> (Vec<Diagnostic>, Vec<Diagnostic>) {
    allow::apply(loaded, check_all(loaded))
}

/// All findings for a fleet: the model's own (unknown keys, wrong types)
/// first, then every rule's, sorted by position.
pub fn check_all(loaded: &Loaded) -> Vec<Diagnostic> {
    let mut out = loaded.diagnostics.clone();
    std::thread::scope(|s| {
        // Rendering converts every host's key (about 50 µs each): on a
        // core of its own, beside the other rules.
        let render = s.spawn(|| {
            let found = rules::render::render_refusals(loaded);
            crate::fleet::memory::release_freed();
            found
        });
        for (id, rule) in RULES {
            if *id != RuleId::Render {
                out.extend(rule(loaded));
            }
        }
        match render.join() {
            Ok(found) => out.extend(found),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    });
    out.sort_by_key(|d| (d.span.start(), d.severity, d.code));
    out.dedup();
    out
}

/// Runs `check` for every host, spread over the machine's cores (the
/// rules that read thousands of files spend their time in system calls),
/// and returns the findings in host order. The first part runs on the
/// calling thread, which would otherwise only wait: one thread fewer to
/// start and end (a stack to map, fault in and hand back) per call.
pub(crate) fn per_host_in_parallel(
    l: &Loaded,
    check: impl Fn(&crate::fleet::Host, &mut Vec<Diagnostic>) + Sync,
) -> Vec<Diagnostic> {
    let hosts = &l.fleet.hosts;
    let chunk = hosts.len().div_ceil(crate::cores::available()).max(64);
    let run = |part: &[crate::fleet::Host]| {
        let mut out = Vec::new();
        for h in part {
            check(h, &mut out);
        }
        out
    };
    let mut parts = hosts.chunks(chunk);
    let Some(first) = parts.next() else {
        return Vec::new();
    };
    std::thread::scope(|s| {
        let run = &run;
        let workers: Vec<_> = parts.map(|part| s.spawn(move || run(part))).collect();
        let mut out = run(first);
        for w in workers {
            match w.join() {
                Ok(found) => out.extend(found),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        out
    })
}

/// Each host with its set as hosts.nix wrote it (`None` when it is not
/// a set). The model's hosts and the file's top-level names are both
/// sorted by name, so one walk over both replaces a binary search (string
/// compares through 10,000 names) per host; a host the walk misses is
/// still looked up by name.
pub(crate) fn host_sets(l: &Loaded) -> impl Iterator<Item = (&Host, Option<&Attrs>)> {
    let top = l.value.as_attrs();
    let mut entries = top.into_iter().flat_map(Attrs::iter).peekable();
    l.fleet.hosts.iter().map(move |h| {
        while entries
            .next_if(|(n, _)| n.as_str() < h.name.as_str())
            .is_some()
        {}
        let attr = match entries.peek() {
            Some((n, a)) if **n == h.name => Some(*a),
            _ => top.and_then(|t| t.get(&h.name)),
        };
        (h, attr.and_then(|a| a.value.as_attrs()))
    })
}

/// What the findings mean for the exit code: errors fail, warnings only
/// with `strict`.
pub fn fails(diags: &[Diagnostic], strict: bool) -> bool {
    diags.iter().any(|d| d.is_error() || strict)
}

/// A small, clean fleet the rules' own tests break one line at a time.
#[cfg(test)]
pub(crate) mod testing {
    use crate::fleet::{load_source, SourceFile};

    pub const KEY_A: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHg+0cl2eSRJP0uMoScnKY9J6ZvYERwjc843qO2BNqfB";
    pub const KEY_B: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAr2pjOX2vizwlnR3WorGCtWmHgKAZDMWc3qti9PdDZ";

    pub fn fleet() -> String {
        format!(
            r#"{{
  _proxmox = {{
    host = "192.168.1.12";
    node = "pve";
    nodes = [ "pve" ];
    defaultStorage = "local-lvm";
    templateVmid = 9000;
  }};
  web = {{
    sshAlias = "web";
    publicKey = "{KEY_A}";
    proxmox = {{ vmid = 120; cores = 2; memory = 2048; disk = "32G"; node = "pve"; }};
  }};
  db = {{
    publicKey = "{KEY_B}";
    proxmox = {{ vmid = 121; cores = 2; memory = 2048; }};
  }};
}}
"#
        )
    }

    /// The codes `rule` reports once the first `from` in the fleet is
    /// replaced by `to`.
    pub fn codes(rule: super::Rule, from: &str, to: &str) -> Vec<&'static str> {
        let fleet = fleet();
        assert!(fleet.contains(from), "the test fleet has no {from:?}");
        let text = fleet.replacen(from, to, 1);
        // A folder that does not exist: every file the fleet names is missing.
        let path = std::env::temp_dir().join("pve-check-rule-test/hosts.nix");
        let loaded = load_source(SourceFile::new(path, text)).expect("the test fleet loads");
        rule(&loaded).iter().map(|d| d.code.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::Code;
    use crate::fleet::{load_source, SourceFile};

    /// The per-host rules' split (the first part on the calling thread, the
    /// rest on their own) against one pass in host order, for every count
    /// of hosts around the part sizes (64 hosts at the least).
    #[test]
    fn per_host_findings_come_in_host_order_however_the_hosts_are_split() {
        for n in [0, 1, 63, 64, 65, 127, 128, 129, 200] {
            let hosts: String = (0..n).map(|i| format!("  h{i:03} = {{ }};\n")).collect();
            let text = format!("{{\n{hosts}}}\n");
            let path = std::env::temp_dir().join("pve-per-host-test/hosts.nix");
            let loaded = load_source(SourceFile::new(path, text)).expect("the fleet loads");
            let finding =
                |h: &Host| Diagnostic::warning(Code::MissingFile, h.name_span, h.name.clone());
            let serial: Vec<Diagnostic> = loaded.fleet.hosts.iter().map(finding).collect();
            let split = per_host_in_parallel(&loaded, |h, out| out.push(finding(h)));
            assert_eq!(split, serial, "{n} hosts");
            assert_eq!(split.len(), n);
        }
    }
}
