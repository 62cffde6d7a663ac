//! Host scaffolding: `hosts/<name>/configuration.nix` and `home.nix` from
//! the templates in `templates/scaffold/` (modelled on `hosts/vm_base`).
//! An existing file is never overwritten.

use std::path::{Path, PathBuf};

use askama::Template;

use crate::error::AppError;
use crate::fleet::HostName;
use crate::fsutil::RepoLock;

use super::RenderedFile;

pub const STATE_VERSION: &str = "25.05";

#[derive(Template)]
#[template(path = "scaffold/configuration.nix", escape = "none")]
struct Configuration<'a> {
    name: &'a str,
    state_version: &'a str,
}

#[derive(Template)]
#[template(path = "scaffold/home.nix", escape = "none")]
struct Home<'a> {
    name: &'a str,
    state_version: &'a str,
}

/// The files of a new host, relative to the fleet root.
pub fn files(name: &str) -> Result<Vec<RenderedFile>, AppError> {
    if !HostName::is_valid(name) {
        return Err(super::RenderError::HostName {
            name: name.to_string(),
        }
        .into());
    }
    let render = |r: Result<String, askama::Error>| {
        r.map(|mut s| {
            if !s.ends_with('\n') {
                s.push('\n');
            }
            s
        })
        .map_err(|e| AppError::from(super::RenderError::HostTemplate { source: e }))
    };
    let dir = PathBuf::from("hosts").join(name);
    Ok(vec![
        super::RenderedFile {
            path: dir.join("configuration.nix"),
            contents: render(
                Configuration {
                    name,
                    state_version: STATE_VERSION,
                }
                .render(),
            )?,
        },
        super::RenderedFile {
            path: dir.join("home.nix"),
            contents: render(
                Home {
                    name,
                    state_version: STATE_VERSION,
                }
                .render(),
            )?,
        },
    ])
}

/// What `scaffold` did with each file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Created(PathBuf),
    Kept(PathBuf),
}

/// Writes the host files (from [`files`]) under `root`, keeping every file
/// that exists, under the repository lock the caller holds. Each file
/// appears whole or not at all (temp file, fsync, link without replacing).
pub fn scaffold(
    root: &Path,
    files: &[RenderedFile],
    _held: &RepoLock,
) -> Result<Vec<Outcome>, AppError> {
    let mut out = Vec::new();
    for f in files {
        let target = root.join(&f.path);
        if target.exists() {
            out.push(Outcome::Kept(f.path.clone()));
            continue;
        }
        crate::fsutil::write_new(&target, f.contents.as_bytes())?;
        out.push(Outcome::Created(f.path.clone()));
    }
    Ok(out)
}
