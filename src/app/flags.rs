//! The VM resource flags `pve new` and `pve host add` share, checked after
//! parsing and before anything is read from Proxmox or written: every bad
//! flag is named at once, with the limits `pve check` uses (a flag accepted
//! here is a value the check accepts).

use crate::cli::VmResources;
use crate::fleet::Vmid;
use crate::workflow::new as wf;

use super::UsageError;

/// Every bad flag of `vm`, or nothing.
pub fn check_vm_flags(vm: &VmResources) -> Result<(), UsageError> {
    let problems = vm_flag_problems(vm);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(UsageError::BadVmFlags { problems })
    }
}

/// Each bad flag with the reason, in the order of `--help`.
fn vm_flag_problems(vm: &VmResources) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let mut add = |flag: &'static str, r: Result<(), String>| {
        if let Err(why) = r {
            out.push((flag, why));
        }
    };
    if let Some(v) = vm.vmid {
        add(
            "--vmid",
            Vmid::try_from(v).map(drop).map_err(|_| {
                format!("VMID {v} is out of range: Proxmox VMIDs are 100 to 999999999")
            }),
        );
    }
    if let Some(c) = vm.cores {
        add("--cores", wf::validate_cores(c));
    }
    if let Some(m) = vm.memory {
        add("--memory", wf::validate_memory(m));
    }
    if let Some(d) = &vm.disk {
        add("--disk", wf::validate_disk(d));
    }
    if let Some(s) = &vm.storage {
        add("--storage", wf::validate_storage(s, None));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bad_flag_is_named_and_good_ones_pass() {
        let bad = VmResources {
            vmid: Some(5),
            cores: Some(0),
            memory: Some(8),
            disk: Some("64GB".into()),
            storage: None,
        };
        let flags: Vec<&str> = vm_flag_problems(&bad).into_iter().map(|p| p.0).collect();
        assert_eq!(flags, ["--vmid", "--cores", "--memory", "--disk"]);
        let good = VmResources {
            vmid: Some(120),
            cores: Some(2),
            memory: Some(4096),
            disk: Some("32G".into()),
            storage: Some("local-lvm".into()),
        };
        assert!(check_vm_flags(&good).is_ok());
        assert!(check_vm_flags(&VmResources::default()).is_ok());
    }
}
