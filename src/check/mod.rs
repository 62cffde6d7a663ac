//! `pve check`: every rule is one small function from the loaded fleet to
//! diagnostics. The library never prints; the CLI renders the result.

mod config_file;
mod proxmox_values;
mod render_agree;
pub mod rules;
mod uniqueness;

use crate::diag::{Diagnostic, RuleId};
use crate::fleet::Loaded;

/// A rule: looks at the fleet and reports what is wrong.
type Rule = fn(&Loaded) -> Vec<Diagnostic>;

/// Every rule, in the order their findings are most useful to read.
pub const RULES: &[(RuleId, Rule)] = &[
    (RuleId::HostName, rules::host_names),
    (RuleId::Required, rules::required_keys),
    (RuleId::ProxmoxConfig, rules::proxmox_config),
    (RuleId::DuplicateVmid, rules::duplicate_vmids),
    (RuleId::VmidRange, rules::vmid_range),
    (RuleId::Duplicates, rules::duplicate_names),
    (RuleId::UniqueNames, uniqueness::names),
    (RuleId::UniqueKeys, uniqueness::public_keys),
    (RuleId::Resources, rules::resources),
    (RuleId::Disk, rules::disk),
    (RuleId::Template, rules::template_compatibility),
    (RuleId::Node, rules::nodes),
    (RuleId::Files, rules::host_files),
    (RuleId::PublicKey, rules::public_keys),
    (RuleId::Configuration, config_file::configuration_files),
    (RuleId::Secrets, crate::secrets::health::rule),
    (RuleId::ProxmoxValue, proxmox_values::proxmox_values),
    (RuleId::Render, render_agree::render_refusals),
];

/// All findings for a fleet: the model's own (unknown keys, wrong types)
/// first, then every rule's, sorted by position.
pub fn check(loaded: &Loaded) -> Vec<Diagnostic> {
    let mut out = loaded.diagnostics.clone();
    std::thread::scope(|s| {
        // Rendering converts every host's key (about 50 µs each): on a
        // core of its own, beside the other rules.
        let render = s.spawn(|| render_agree::render_refusals(loaded));
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
/// and returns the findings in host order.
pub(crate) fn per_host_in_parallel(
    l: &Loaded,
    check: impl Fn(&crate::fleet::Host, &mut Vec<Diagnostic>) + Sync,
) -> Vec<Diagnostic> {
    let hosts = &l.fleet.hosts;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = hosts.len().div_ceil(threads).max(64);
    std::thread::scope(|s| {
        let workers: Vec<_> = hosts
            .chunks(chunk)
            .map(|part| {
                let check = &check;
                s.spawn(move || {
                    let mut out = Vec::new();
                    for h in part {
                        check(h, &mut out);
                    }
                    out
                })
            })
            .collect();
        let mut out = Vec::new();
        for w in workers {
            match w.join() {
                Ok(found) => out.extend(found),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        out
    })
}

/// What the findings mean for the exit code: errors fail, warnings only
/// with `strict`.
pub fn fails(diags: &[Diagnostic], strict: bool) -> bool {
    diags.iter().any(|d| d.is_error() || strict)
}
