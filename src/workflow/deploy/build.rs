//! The local side: `nix build` of every selected toplevel in one
//! invocation (shared paths build once), and `nix copy --to ssh-ng://` of
//! each closure to its host with the pinned host keys (`NIX_SSHOPTS`).

use std::path::Path;
use std::time::Duration;

use super::DeployError;
use crate::error::Result;
use crate::runner::{Cmd, Tool};

const BUILD_TIMEOUT: Duration = Duration::from_secs(4 * 3600);
const COPY_TIMEOUT: Duration = Duration::from_secs(2 * 3600);

/// The flake attribute of a host's system.
pub fn installable(name: &str) -> String {
    format!(".#nixosConfigurations.{name}.config.system.build.toplevel")
}

/// The Nix store folder: `NIX_STORE_DIR` as Nix itself reads it, else
/// `/nix/store`.
pub fn store_dir() -> String {
    std::env::var("NIX_STORE_DIR")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "/nix/store".into())
}

/// `<store>/<32 base-32 chars>-<name>`: what Nix prints and all this
/// accepts from `nix build` or from a host (`readlink /run/current-system`)
/// before the path goes anywhere.
pub fn check_store_path(path: &str) -> Result<()> {
    let store = store_dir();
    let bad = || DeployError::NotAStorePath {
        path: path.chars().take(200).collect(),
        store: store.clone(),
    };
    let rest = path
        .strip_prefix(store.as_str())
        .and_then(|r| r.strip_prefix('/'))
        .ok_or_else(bad)?;
    let (hash, name) = rest.split_at_checked(32).ok_or_else(bad)?;
    let hash_ok = hash
        .chars()
        .all(|c| c.is_ascii_digit() || (c.is_ascii_lowercase() && !"eotu".contains(c)));
    let name = name.strip_prefix('-').ok_or_else(bad)?;
    let name_ok = !name.is_empty()
        && name.len() <= 211
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-._?=".contains(c));
    if hash_ok && name_ok {
        Ok(())
    } else {
        Err(bad().into())
    }
}

/// `nix build --no-link --print-out-paths` of every host's toplevel, run in
/// the fleet's folder; the paths in the order of `names`.
pub fn build(root: &Path, names: &[String]) -> Result<Vec<String>> {
    let out = Cmd::new(Tool::Nix)
        .args([
            "--extra-experimental-features",
            "nix-command flakes",
            "build",
            "--no-link",
            "--print-out-paths",
        ])
        .args(names.iter().map(|n| installable(n)))
        .cwd(root)
        .timeout(BUILD_TIMEOUT)
        .run()
        .map_err(|source| match source {
            e @ crate::runner::RunError::Missing { .. } => e.into(),
            source => crate::error::AppError::from(DeployError::BuildFailed {
                source: Box::new(source),
            }),
        })?;
    let paths: Vec<String> = out
        .stdout
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    if paths.len() != names.len() {
        return Err(DeployError::BuildCount {
            got: paths.len(),
            want: names.len(),
        }
        .into());
    }
    for p in &paths {
        check_store_path(p)?;
    }
    Ok(paths)
}

/// `nix copy --to ssh-ng://<user>@<address> <path>` with `nix_sshopts`.
pub fn copy(name: &str, user: &str, address: &str, path: &str, nix_sshopts: &str) -> Result<()> {
    let host = if address.contains(':') {
        format!("[{address}]")
    } else {
        address.to_string()
    };
    Cmd::new(Tool::Nix)
        .args([
            "--extra-experimental-features",
            "nix-command flakes",
            "copy",
            "--to",
        ])
        .arg(format!("ssh-ng://{user}@{host}"))
        .arg(path)
        .env("NIX_SSHOPTS", nix_sshopts)
        .timeout(COPY_TIMEOUT)
        .run()
        .map_err(|source| DeployError::CopyFailed {
            name: name.to_string(),
            source: Box::new(source),
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_store_paths_pass() {
        let ok = "/nix/store/0c9x4l1hmlkc8i5s7pq6j5l4d2n0aq7b-nixos-system-web-25.05";
        assert!(check_store_path(ok).is_ok());
        for bad in [
            "/nix/store/0c9x4l1hmlkc8i5s7pq6j5l4d2n0aq7b",
            "/nix/store/short-nixos",
            "/tmp/0c9x4l1hmlkc8i5s7pq6j5l4d2n0aq7b-x",
            "/nix/store/0c9x4l1hmlkc8i5s7pq6j5l4d2n0aq7b-x y",
            "/nix/store/0c9x4l1hmlkc8i5s7pq6j5l4d2n0aq7b-x;id",
            "/nix/store/0c9x4l1hmlkc8i5s7pq6j5l4d2n0aq7b-x/../../etc",
            "/nix/store/0c9x4l1hmlkc8i5s7pq6j5l4d2n0aqeb-x",
            "",
        ] {
            assert!(check_store_path(bad).is_err(), "{bad}");
        }
    }
}
