//! What can stop rendering or writing the files hosts.nix describes
//! (besides a problem in hosts.nix itself, which is a `FleetError`).

use std::path::PathBuf;

use crate::error::{Classify, Kind};

const RENDERED_FOLDER: &str = "pass the folder that holds the rendered files";

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("internal: writing into the fleet at {} without its repository lock", dir.display())]
    Unlocked { dir: PathBuf },
    /// The folder given to `--check` is not a folder.
    #[error("{} is not a folder", dir.display())]
    NotAFolder { dir: PathBuf },
    /// The folder given to `--check` cannot be read.
    #[error("cannot read {}: {source}", dir.display())]
    ReadFolder {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {}: {source}", path.display())]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot render .sops.yaml: {source}")]
    SopsTemplate {
        #[source]
        source: askama::Error,
    },
    /// The rendered .sops.yaml says something else than meant (`why`).
    #[error("the rendered .sops.yaml does not read back as written: {why}")]
    SopsReadBack { why: String },
    #[error("host name {name:?} is not a DNS label")]
    HostName { name: String },
    #[error("cannot render the host files: {source}")]
    HostTemplate {
        #[source]
        source: askama::Error,
    },
    #[error("cannot encode the OpenTofu configuration: {source}")]
    TofuJson {
        #[source]
        source: serde_json::Error,
    },
}

impl Classify for RenderError {
    fn kind(&self) -> Kind {
        Kind::Input
    }
    fn help(&self) -> Option<String> {
        Some(match self {
            RenderError::NotAFolder { .. } | RenderError::ReadFolder { .. } => {
                RENDERED_FOLDER.into()
            }
            RenderError::SopsReadBack { .. } => {
                "this is a bug in pve: please report it with the _sops part of hosts.nix".into()
            }
            RenderError::HostName { .. } => {
                "use lowercase letters, digits and `-` (at most 63), e.g. `web-1`".into()
            }
            _ => return None,
        })
    }
}
