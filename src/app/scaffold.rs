//! `pve scaffold`.

use crate::cli::scaffold::Args;
use crate::error::{exit, Result};
use crate::fsutil::RepoLock;
use crate::render::scaffold::{self, HostKind, Outcome, Source};
use crate::report::Reporter as _;

use super::{Context, UsageError};

pub fn run(ctx: &Context, args: Args) -> Result<u8> {
    let hosts = ctx.hosts_path()?;
    let root =
        crate::fleet::fleet_root(&hosts).map_err(|source| UsageError::FleetFolder { source })?;
    let kind = if args.machine || is_machine(&hosts, &args.name) {
        HostKind::Machine
    } else {
        HostKind::Vm
    };
    let (source, files) = scaffold::for_host(&root, &args.name, kind)?;
    let lock = RepoLock::take(&root)?;
    let report = crate::ui::Terminal::new();
    report.note(match (kind, source) {
        (HostKind::Machine, _) => "from the built-in base for a machine that is not a VM",
        (HostKind::Vm, Source::Base) => "from the fleet's hosts/vm_base/",
        (HostKind::Vm, Source::BuiltIn) => {
            "from the built-in base for VMs (the fleet has no hosts/vm_base/)"
        }
    });
    for o in scaffold::scaffold(&root, &files, &lock)? {
        match o {
            Outcome::Created(p) => report.note(&format!("created {}", p.display())),
            Outcome::Kept(p) => report.note(&format!(
                "kept {} (it exists; not overwritten)",
                p.display()
            )),
        }
    }
    Ok(exit::OK)
}

/// Whether hosts.nix has `name` as a host without `proxmox` (a laptop or
/// desktop). A hosts.nix that does not load says nothing here: `pve check`
/// reports it.
fn is_machine(hosts: &std::path::Path, name: &str) -> bool {
    crate::fleet::load(hosts).is_ok_and(|l| {
        l.fleet
            .hosts
            .iter()
            .any(|h| h.name == name && h.proxmox.is_none())
    })
}
