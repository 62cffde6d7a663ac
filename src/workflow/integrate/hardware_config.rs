//! Step 4: `hardware-configuration.nix` from the VM (`nixos-generate-config
//! --show-hardware-config`), kept when present unless forced; accepted only
//! as a plain module ([`crate::workflow::hardware`]) and written only into
//! the host's folder.

use std::path::{Path, PathBuf};

use super::{fact_ip, HardwarePathProblem, Integrate, IntegrateError, REMOTE_TIMEOUT};
use crate::error::Result;
use crate::workflow::Journal;

pub(super) fn run(c: &mut Integrate<'_>, j: &mut Journal) -> Result<String> {
    let path = hardware_path(c)?;
    let shown = c.show(&path);
    if path.exists() && !c.opts.force_hardware_config {
        return Ok(format!(
            "kept {shown} (--force-hardware-config generates it again)"
        ));
    }
    ensure_in_host_folder(c, &path)?;
    let ip = fact_ip(j)?;
    let out = c.ssh(ip)?.run(
        &[
            "nixos-generate-config".into(),
            "--show-hardware-config".into(),
        ],
        REMOTE_TIMEOUT,
    )?;
    let text = out.stdout;
    if let Some(problem) = crate::workflow::hardware::module_problem(&text) {
        return Err(IntegrateError::NotAHardwareModule {
            name: c.opts.name.clone(),
            problem,
        }
        .into());
    }
    let old = std::fs::read_to_string(&path).ok();
    if old.as_deref() == Some(text.as_str()) {
        return Ok(format!("{shown} unchanged"));
    }
    if let Some(old) = &old {
        // A re-run (--force-hardware-config): show what the VM changed.
        let diff = similar::TextDiff::from_lines(old.as_str(), text.as_str())
            .unified_diff()
            .context_radius(2)
            .header(&format!("a/{shown}"), &format!("b/{shown}"))
            .to_string();
        c.reporter.block(&diff);
    }
    let existed = path.exists();
    crate::fsutil::write_atomic(&path, text.as_bytes())?;
    if !existed {
        use std::os::unix::fs::PermissionsExt as _;
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644));
    }
    Ok(format!("wrote {shown}"))
}

/// Next to the host's `configurationFile`, else `hosts/<name>/`.
pub(super) fn hardware_path(c: &Integrate<'_>) -> Result<PathBuf> {
    let h = c.host()?;
    let dir = match &h.configuration_file {
        Some(f) => f
            .value
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| c.root().join("hosts").join(&h.name)),
        None => c.root().join("hosts").join(&h.name),
    };
    Ok(dir.join("hardware-configuration.nix"))
}

/// The VM's text goes only to `hosts/<name>/hardware-configuration.nix`
/// inside the fleet: never through a symlink, never elsewhere (a
/// `configurationFile` outside `hosts/<name>/` does not move it).
fn ensure_in_host_folder(c: &Integrate<'_>, path: &Path) -> Result<()> {
    let refuse = |reason: HardwarePathProblem| IntegrateError::HardwarePathRefused {
        path: path.to_path_buf(),
        name: c.opts.name.clone(),
        reason,
    };
    let want = c.root().join("hosts").join(&c.opts.name);
    let dir = path
        .parent()
        .ok_or_else(|| refuse(HardwarePathProblem::NoFolder))?;
    let same = match (dir.canonicalize(), want.canonicalize()) {
        (Ok(a), Ok(b)) => a == b && want.symlink_metadata().is_ok_and(|m| m.is_dir()),
        _ => false,
    };
    if !same {
        return Err(refuse(HardwarePathProblem::OutsideHostFolder {
            name: c.opts.name.clone(),
        })
        .into());
    }
    if path.symlink_metadata().is_ok_and(|m| !m.is_file()) {
        return Err(refuse(HardwarePathProblem::NotPlainFile).into());
    }
    Ok(())
}
