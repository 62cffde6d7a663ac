//! `pve check`: every rule is one small function from the loaded fleet to
//! diagnostics. The library never prints; the CLI renders the result.

pub mod allow;
mod fast_hash;
mod root_dir;
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

/// Runs `check` for every host that `wants` it, spread over the
/// machine's cores (the rules that read thousands of files spend their
/// time in system calls), and returns the findings in host order.
///
/// Threads start only when enough hosts have work: a fleet without the
/// files a rule reads would otherwise pay a thread's start and end for
/// nothing, on a machine whose cores the render rule keeps busy. The hosts
/// are taken a few at a time from a shared counter, so a thread that
/// starts late (its core taken) holds nobody up: the calling thread has
/// taken the rest.
pub(crate) fn per_host_in_parallel(
    l: &Loaded,
    wants: impl Fn(&Host) -> bool,
    check: impl Fn(&Host, &mut Vec<Diagnostic>) + Sync,
) -> Vec<Diagnostic> {
    let todo: Vec<&Host> = l.fleet.hosts.iter().filter(|h| wants(h)).collect();
    let threads = crate::cores::available().min(todo.len() / MIN_HOSTS_A_THREAD);
    if threads < 2 {
        let mut out = Vec::new();
        for h in todo {
            check(h, &mut out);
        }
        return out;
    }
    let batches = todo.chunks(HOSTS_A_BATCH).collect::<Vec<_>>();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let take = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Some(batch) = batches.get(i) else {
                return done;
            };
            let mut out = Vec::new();
            for h in *batch {
                check(h, &mut out);
            }
            done.push((i, out));
        }
    };
    let mut done = std::thread::scope(|s| {
        let take = &take;
        let workers: Vec<_> = (1..threads).map(|_| s.spawn(take)).collect();
        let mut done = take();
        for w in workers {
            match w.join() {
                Ok(found) => done.extend(found),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        done
    });
    done.sort_unstable_by_key(|(i, _)| *i);
    done.into_iter().flat_map(|(_, out)| out).collect()
}

/// Fewer hosts with work than this per thread are checked on the calling
/// thread alone (a host's files cost about 10 µs; a thread about as much
/// as a few dozen hosts).
const MIN_HOSTS_A_THREAD: usize = 64;

/// Hosts a thread takes at a time: small enough that the threads end
/// together, large enough that the counter is not contended.
const HOSTS_A_BATCH: usize = 16;

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

    /// The per-host rules' split (batches taken by the threads from a
    /// shared counter) against one pass in host order, for every count of
    /// hosts around the thresholds and batch sizes, with every host or
    /// every third one wanting the check.
    #[test]
    fn per_host_findings_come_in_host_order_however_the_hosts_are_split() {
        for (n, every) in [0usize, 1, 63, 64, 65, 127, 128, 129, 200, 1000, 1003]
            .into_iter()
            .flat_map(|n| [(n, 1), (n, 3)])
        {
            let hosts: String = (0..n).map(|i| format!("  h{i:04} = {{ }};\n")).collect();
            let text = format!("{{\n{hosts}}}\n");
            let path = std::env::temp_dir().join("pve-per-host-test/hosts.nix");
            let loaded = load_source(SourceFile::new(path, text)).expect("the fleet loads");
            let finding =
                |h: &Host| Diagnostic::warning(Code::MissingFile, h.name_span, h.name.clone());
            let wants = |h: &Host| {
                let i: usize = h.name[1..].parse().expect("h followed by a number");
                i.is_multiple_of(every)
            };
            let serial: Vec<Diagnostic> = (loaded.fleet.hosts.iter())
                .filter(|h| wants(h))
                .map(finding)
                .collect();
            let split = per_host_in_parallel(&loaded, wants, |h, out| out.push(finding(h)));
            assert_eq!(split, serial, "{n} hosts, every {every}th");
            assert_eq!(split.len(), n.div_ceil(every));
        }
    }
}
