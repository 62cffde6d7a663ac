//! Host scaffolding: the files of `hosts/<name>/`.
//!
//! A VM's folder is a copy of the fleet's own base, `hosts/vm_base/`, when
//! the fleet has one: every file in it (sub-folders too), with each
//! [`PLACEHOLDER`] replaced by the host's name and the base's own notes
//! (lines starting with [`BASE_NOTE`]) left out. That is plain text
//! substitution, nothing is evaluated; host names are DNS labels, so the
//! name cannot inject anything. Without a base, and for a machine that is
//! not a VM (a laptop or desktop), the built-in templates in
//! `templates/scaffold/` are used. `pve init` writes the built-in VM
//! templates as the fleet's base. An existing file is never overwritten.

use std::path::{Path, PathBuf};

use askama::Template;

use crate::error::AppError;
use crate::fleet::HostName;
use crate::fsutil::RepoLock;

use super::{RenderError, RenderedFile};

pub const STATE_VERSION: &str = "25.05";

/// The fleet's base for new VMs, relative to the fleet root.
pub const BASE_DIR: &str = "hosts/vm_base";
/// Replaced by the host's name in every file copied from the base.
pub const PLACEHOLDER: &str = "@name@";
/// Lines of a base file that start with this are notes about the base:
/// they are not copied.
pub const BASE_NOTE: &str = "# vm_base:";

/// Limits on a base folder (it is the fleet's, but a mistake such as a
/// link to a large folder should stop early, not fill the disk).
const MAX_BASE_FILES: usize = 200;
const MAX_BASE_FILE_BYTES: u64 = 1024 * 1024;

/// Which built-in scaffold a host gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKind {
    /// A VM cloned from the NixOS template: GRUB on SeaBIOS, guest agent.
    Vm,
    /// A laptop or desktop (no `proxmox`): systemd-boot, no guest agent.
    Machine,
}

#[derive(Template)]
#[template(path = "scaffold/configuration.nix", escape = "none")]
struct Configuration<'a> {
    name: &'a str,
    state_version: &'a str,
    base: bool,
}

#[derive(Template)]
#[template(path = "scaffold/machine.nix", escape = "none")]
struct Machine<'a> {
    name: &'a str,
    state_version: &'a str,
}

#[derive(Template)]
#[template(path = "scaffold/home.nix", escape = "none")]
struct Home<'a> {
    name: &'a str,
    state_version: &'a str,
    base: bool,
}

fn finish(r: Result<String, askama::Error>) -> Result<String, AppError> {
    r.map(|mut s| {
        if !s.ends_with('\n') {
            s.push('\n');
        }
        s
    })
    .map_err(|e| AppError::from(RenderError::HostTemplate { source: e }))
}

fn check_name(name: &str) -> Result<(), AppError> {
    if HostName::is_valid(name) {
        Ok(())
    } else {
        Err(RenderError::HostName {
            name: name.to_string(),
        }
        .into())
    }
}

/// The built-in VM files of a new host, relative to the fleet root.
pub fn files(name: &str) -> Result<Vec<RenderedFile>, AppError> {
    builtin(name, HostKind::Vm)
}

/// The built-in files of host `name`: configuration.nix and home.nix.
pub fn builtin(name: &str, kind: HostKind) -> Result<Vec<RenderedFile>, AppError> {
    check_name(name)?;
    let dir = PathBuf::from("hosts").join(name);
    let sv = STATE_VERSION;
    let configuration = match kind {
        HostKind::Vm => Configuration {
            name,
            state_version: sv,
            base: false,
        }
        .render(),
        HostKind::Machine => Machine {
            name,
            state_version: sv,
        }
        .render(),
    };
    Ok(vec![
        RenderedFile {
            path: dir.join("configuration.nix"),
            contents: finish(configuration)?,
        },
        RenderedFile {
            path: dir.join("home.nix"),
            contents: finish(
                Home {
                    name,
                    state_version: sv,
                    base: false,
                }
                .render(),
            )?,
        },
    ])
}

/// The base folder `pve init` writes: the built-in VM templates with the
/// placeholder for the name and a note on how the base is used.
pub fn base_files() -> Result<Vec<RenderedFile>, AppError> {
    let dir = PathBuf::from(BASE_DIR);
    let sv = STATE_VERSION;
    Ok(vec![
        RenderedFile {
            path: dir.join("configuration.nix"),
            contents: finish(
                Configuration {
                    name: PLACEHOLDER,
                    state_version: sv,
                    base: true,
                }
                .render(),
            )?,
        },
        RenderedFile {
            path: dir.join("home.nix"),
            contents: finish(
                Home {
                    name: PLACEHOLDER,
                    state_version: sv,
                    base: true,
                }
                .render(),
            )?,
        },
    ])
}

/// Where a host's files come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The fleet's `hosts/vm_base/`.
    Base,
    /// The templates built into pve.
    BuiltIn,
}

/// The files of host `name` in the fleet at `root`: a VM's from the
/// fleet's `hosts/vm_base/` when it exists (plus a built-in
/// configuration.nix or home.nix the base lacks, so the paths `pve new`
/// writes into hosts.nix exist), else the built-in ones.
pub fn for_host(
    root: &Path,
    name: &str,
    kind: HostKind,
) -> Result<(Source, Vec<RenderedFile>), AppError> {
    check_name(name)?;
    let base = root.join(BASE_DIR);
    if kind == HostKind::Machine || base.symlink_metadata().is_err() {
        return Ok((Source::BuiltIn, builtin(name, kind)?));
    }
    let mut files = from_base(root, name)?;
    for f in builtin(name, kind)? {
        if !files.iter().any(|g| g.path == f.path) {
            files.push(f);
        }
    }
    Ok((Source::Base, files))
}

/// Every file under `hosts/vm_base/`, as the files of host `name`.
/// Symbolic links are followed only when they stay inside the base (the
/// base folder itself must be inside the fleet).
fn from_base(root: &Path, name: &str) -> Result<Vec<RenderedFile>, AppError> {
    let base = root.join(BASE_DIR);
    let fleet = canonical(root)?;
    let base_real = canonical(&base)?;
    if !base_real.starts_with(&fleet) {
        return Err(RenderError::BaseOutside {
            path: PathBuf::from(BASE_DIR),
            target: base_real,
        }
        .into());
    }
    if !base_real.is_dir() {
        return Err(RenderError::BaseNotAFolder {
            path: PathBuf::from(BASE_DIR),
        }
        .into());
    }
    let mut rel_files = Vec::new();
    walk(&base_real, Path::new(""), &mut rel_files)?;
    rel_files.sort();
    let dest = PathBuf::from("hosts").join(name);
    let mut out = Vec::new();
    for rel in rel_files {
        let shown = Path::new(BASE_DIR).join(&rel);
        let path = base_real.join(&rel);
        let real = canonical(&path)?;
        if !real.starts_with(&base_real) {
            return Err(RenderError::BaseOutside {
                path: shown,
                target: real,
            }
            .into());
        }
        let bytes = crate::fsutil::read_limited(&real, MAX_BASE_FILE_BYTES).map_err(|source| {
            RenderError::ReadFile {
                path: shown.clone(),
                source,
            }
        })?;
        let text = String::from_utf8(bytes).map_err(|_| RenderError::BaseNotText {
            path: shown.clone(),
        })?;
        out.push(RenderedFile {
            path: dest.join(&rel),
            contents: substitute(&text, name),
        });
    }
    Ok(out)
}

/// The files under `dir` (relative paths), sub-folders included; links are
/// listed as files and resolved (and confined) by the caller; a link to a
/// folder is refused.
fn walk(dir: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> Result<(), AppError> {
    let shown = Path::new(BASE_DIR).join(rel);
    let entries = std::fs::read_dir(dir).map_err(|source| RenderError::ReadFolder {
        dir: shown.clone(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| RenderError::ReadFolder {
            dir: shown.clone(),
            source,
        })?;
        let kind = entry
            .file_type()
            .map_err(|source| RenderError::ReadFolder {
                dir: shown.clone(),
                source,
            })?;
        let child = rel.join(entry.file_name());
        if kind.is_dir() {
            walk(&entry.path(), &child, out)?;
        } else if kind.is_symlink() && entry.path().is_dir() {
            return Err(RenderError::BaseNotAFile {
                path: Path::new(BASE_DIR).join(child),
            }
            .into());
        } else if kind.is_file() || kind.is_symlink() {
            out.push(child);
        } else {
            return Err(RenderError::BaseNotAFile {
                path: Path::new(BASE_DIR).join(child),
            }
            .into());
        }
        if out.len() > MAX_BASE_FILES {
            return Err(RenderError::BaseTooManyFiles {
                limit: MAX_BASE_FILES,
            }
            .into());
        }
    }
    Ok(())
}

fn canonical(p: &Path) -> Result<PathBuf, AppError> {
    p.canonicalize().map_err(|source| {
        RenderError::ReadFile {
            path: p.to_path_buf(),
            source,
        }
        .into()
    })
}

/// A base file as host `name`'s: the base's notes left out, every
/// [`PLACEHOLDER`] replaced by the name.
pub fn substitute(text: &str, name: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        if line.starts_with(BASE_NOTE) {
            continue;
        }
        out.push_str(&line.replace(PLACEHOLDER, name));
    }
    out
}

/// What `scaffold` did with each file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Created(PathBuf),
    Kept(PathBuf),
}

/// Writes the host files (from [`files`] or [`for_host`]) under `root`,
/// keeping every file that exists, under the repository lock the caller
/// holds. Each file appears whole or not at all (temp file, fsync, link
/// without replacing).
pub fn scaffold(
    root: &Path,
    files: &[RenderedFile],
    _held: &RepoLock,
) -> Result<Vec<Outcome>, AppError> {
    let mut out = Vec::new();
    for f in files {
        let target = root.join(&f.path);
        if target.symlink_metadata().is_ok() {
            out.push(Outcome::Kept(f.path.clone()));
            continue;
        }
        crate::fsutil::write_new(&target, f.contents.as_bytes())?;
        out.push(Outcome::Created(f.path.clone()));
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_dropped_and_the_placeholder_replaced() {
        let text = "# vm_base: about the base\n# @name@: config\nx = \"@name@-@name@\";\n";
        assert_eq!(
            substitute(text, "web-1"),
            "# web-1: config\nx = \"web-1-web-1\";\n"
        );
    }

    #[test]
    fn the_base_renders_to_the_builtin_files() {
        // What `pve init` writes, copied for a host, is what a fleet
        // without a base gets.
        let base = base_files().unwrap();
        let built = builtin("web-1", HostKind::Vm).unwrap();
        for (b, f) in base.iter().zip(&built) {
            assert!(b.contents.contains(BASE_NOTE), "{}", b.contents);
            assert!(b.contents.contains(PLACEHOLDER));
            assert_eq!(substitute(&b.contents, "web-1"), f.contents);
        }
    }

    #[test]
    fn a_machine_gets_no_grub_nodev_and_no_guest_agent() {
        let m = builtin("laptop", HostKind::Machine).unwrap();
        assert!(!m[0].contents.contains("nodev"), "{}", m[0].contents);
        assert!(!m[0].contents.contains("qemuGuest"));
        assert!(m[0].contents.contains("systemd-boot.enable = true"));
        let vm = builtin("web", HostKind::Vm).unwrap();
        assert!(vm[0].contents.contains("\"nodev\""));
        assert!(vm[0].contents.contains("services.qemuGuest.enable = true"));
    }
}
