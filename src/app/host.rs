//! `pve host`: hosts.nix changed in place, one attribute or host at a time.

use std::path::Path;

use crate::cli::host::{AddArgs, Args, HostCommand, RenameArgs, RmArgs, SetArgs};
use crate::diag::RuleId;
use crate::error::Result;
use crate::fleet::edit::{self, names, Applied, HostEntry};
use crate::fleet::HostName;
use crate::report::Reporter as _;
use crate::ui::{self, Terminal};

use super::checked_edit::{write_unless_check_fails, Guard};
use super::{Context, UsageError};

pub fn run(ctx: &Context, args: Args) -> Result<u8> {
    let path = ctx.hosts_path()?;
    match args.command {
        HostCommand::Set(a) => set(&path, a),
        HostCommand::Add(a) => add(&path, *a),
        HostCommand::Rm(a) => rm(&path, a),
        HostCommand::Rename(a) => rename(&path, a),
    }
}

fn set(path: &Path, a: SetArgs) -> Result<u8> {
    let mut attr = vec![a.name.clone()];
    attr.extend(
        names::split_attr_path(&a.attr_path).map_err(|m| UsageError::BadAttrPath { detail: m })?,
    );
    let refs: Vec<&str> = attr.iter().map(String::as_str).collect();
    let guard = Guard {
        what: format!("setting `{}`", names::attr_path(&refs)),
        dry_run: a.dry_run,
        force: a.force,
        skip: &[],
    };
    let Some(applied) = write_unless_check_fails(path, &guard, |t| {
        edit::set_attr(t, &refs, &a.nix_expression)
    })?
    else {
        return Ok(crate::error::exit::OK);
    };
    finish(&applied, false, &format!("set {}", names::attr_path(&refs)))
}

fn add(path: &Path, a: AddArgs) -> Result<u8> {
    if !HostName::is_valid(&a.name) {
        return Err(UsageError::InvalidHostName {
            name: a.name.clone(),
        }
        .into());
    }
    super::flags::check_vm_flags(&a.vm)?;
    if let Some(keys) = &a.authorized_keys {
        crate::fleet::syntax::one_expression(keys).map_err(|why| {
            UsageError::AuthorizedKeysNotOneExpression {
                keys: keys.clone(),
                why,
            }
        })?;
    }
    let entry = HostEntry {
        name: a.name.clone(),
        hostname: a.hostname,
        ssh_alias: a.ssh_alias,
        authorized_keys: a.authorized_keys,
        vmid: a.vm.vmid,
        cores: a.vm.cores,
        memory: a.vm.memory,
        disk: a.vm.disk,
        storage: a.vm.storage,
        node: a.node,
        tags: a.tags,
        description: a.description,
        extra: Vec::new(),
    };
    let nix = entry
        .render()
        .map_err(|source| UsageError::RenderHostEntry { source })?;
    let guard = Guard {
        what: format!("adding host `{}`", a.name),
        dry_run: a.dry_run,
        force: a.force,
        // The host's folder and secrets come later (`pve scaffold`).
        skip: &[RuleId::Files, RuleId::Configuration, RuleId::Secrets],
    };
    let Some(applied) =
        write_unless_check_fails(path, &guard, |t| edit::add_host(t, &a.name, &nix))?
    else {
        return Ok(crate::error::exit::OK);
    };
    finish(&applied, false, &format!("added host {}", a.name))
}

fn rm(path: &Path, a: RmArgs) -> Result<u8> {
    let op = |t: &str| edit::remove_host(t, &a.name);
    if a.dry_run {
        let applied = edit::apply_to_file_checked(path, None, true, op)?;
        return finish(&applied, true, "");
    }
    let expected = if a.yes {
        None
    } else {
        // Show what would go, ask, then write only if the file is still
        // what was shown.
        let preview = edit::apply_to_file_checked(path, None, true, op)?;
        if !ui::stdin_is_terminal() {
            return Err(UsageError::HostRemovalNotConfirmed {
                name: a.name.clone(),
            }
            .into());
        }
        let report = Terminal::new();
        report.block(&preview.diff());
        let answer = ui::read_line(&format!(
            "Remove host `{}` from {}? [y/N]",
            a.name,
            path.display()
        ))
        .map_err(|source| UsageError::ReadAnswer { source })?;
        if !matches!(answer.as_str(), "y" | "Y" | "yes") {
            report.note("nothing changed");
            return Ok(crate::error::exit::OK);
        }
        Some(preview.before)
    };
    let applied = edit::apply_to_file_checked(path, expected.as_deref(), false, op)?;
    finish(&applied, false, &format!("removed host {}", a.name))
}

fn rename(path: &Path, a: RenameArgs) -> Result<u8> {
    if !HostName::is_valid(&a.new) {
        return Err(UsageError::InvalidHostName {
            name: a.new.clone(),
        }
        .into());
    }
    // The names the host had before (kept in `renamedFrom`): OpenTofu
    // moves the VM's resource instead of replacing it, and the secrets
    // rule keeps covering `hosts/<old>/`.
    let before = crate::fleet::load(path)?;
    let earlier: Vec<String> = before
        .fleet
        .host(&a.old)
        .map(|h| h.renamed_from.iter().map(|s| s.value.clone()).collect())
        .unwrap_or_default();
    let chain = renamed_chain(&earlier, &a.old, &a.new);
    let is_vm = before
        .fleet
        .host(&a.old)
        .and_then(|h| h.proxmox.as_ref())
        .is_some_and(|p| !p.readonly);
    let applied = edit::apply_to_file_checked(path, None, a.dry_run, |t| {
        let renamed = edit::rename_host(t, &a.old, &a.new)?;
        edit::set_attr(&renamed, &[a.new.as_str(), "renamedFrom"], &chain)
    })?;
    finish(
        &applied,
        a.dry_run,
        &format!("renamed host {} to {}", a.old, a.new),
    )?;
    if is_vm && applied.changed() && !a.dry_run {
        Terminal::new().note(&format!(
            "The next `pve plan` moves proxmox_virtual_environment_vm.{} to proxmox_virtual_environment_vm.{} \
             (`renamedFrom` in hosts.nix renders an OpenTofu `moved` block): the VM is kept, not replaced. \
             The VM's name on Proxmox follows unless `proxmox.name` is set.",
            a.old, a.new
        ));
    }
    Ok(crate::error::exit::OK)
}

/// `renamedFrom` after renaming `old` to `new`: the earlier names, then
/// `old`; a name the host goes back to ends the chain there (OpenTofu
/// refuses a `moved` cycle).
fn renamed_chain(earlier: &[String], old: &str, new: &str) -> String {
    let mut names: Vec<&str> = earlier.iter().map(String::as_str).collect();
    names.push(old);
    if let Some(i) = names.iter().rposition(|n| *n == new) {
        names.drain(..=i);
    }
    match names.as_slice() {
        [] => "[ ]".to_string(),
        [one] => names::string_literal(one),
        many => format!(
            "[ {} ]",
            many.iter()
                .map(|n| names::string_literal(n))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    }
}

fn finish(applied: &Applied, dry_run: bool, what: &str) -> Result<u8> {
    if !applied.new_findings.is_empty() {
        let report = Terminal::new();
        report.block(&applied.new_findings);
        report.note("note: the edit is exactly what was asked; `pve check` will report the above");
    }
    if dry_run {
        return super::print(&applied.diff());
    }
    let msg = if applied.changed() {
        format!("{}: {what}\n", applied.path.display())
    } else {
        format!("{}: already so; nothing written\n", applied.path.display())
    };
    super::print(&msg)
}

#[cfg(test)]
mod tests {
    use super::renamed_chain;

    #[test]
    fn the_chain_of_names_a_host_had() {
        assert_eq!(renamed_chain(&[], "web", "www"), "\"web\"");
        let earlier = ["a".to_string()];
        assert_eq!(renamed_chain(&earlier, "b", "c"), "[ \"a\" \"b\" ]");
        // Back to an earlier name: the chain starts after it (no cycle).
        assert_eq!(renamed_chain(&earlier, "b", "a"), "\"b\"");
        assert_eq!(renamed_chain(&[], "b", "b"), "[ ]");
    }
}
