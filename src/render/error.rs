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
    /// The fleet's base folder (or a link in it) leads outside it.
    #[error("{} leads outside the fleet's base folder, to {}", path.display(), target.display())]
    BaseOutside { path: PathBuf, target: PathBuf },
    #[error("{} is not a folder", path.display())]
    BaseNotAFolder { path: PathBuf },
    /// Something in the base that is neither a file nor a folder (a FIFO,
    /// a link to a folder).
    #[error("{} is not a regular file", path.display())]
    BaseNotAFile { path: PathBuf },
    #[error("{} is not UTF-8 text", path.display())]
    BaseNotText { path: PathBuf },
    #[error("hosts/vm_base holds more than {limit} files")]
    BaseTooManyFiles { limit: usize },
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
            RenderError::BaseOutside { .. } | RenderError::BaseNotAFile { .. } => {
                "hosts/vm_base is copied into every new VM's folder: keep its files (and any links) inside it".into()
            }
            RenderError::BaseNotAFolder { .. } => {
                "make hosts/vm_base a folder of files (`pve init` writes one), or move it away to use the built-in templates".into()
            }
            RenderError::BaseNotText { .. } | RenderError::BaseTooManyFiles { .. } => {
                "hosts/vm_base holds the text files every new VM starts from: move other files out of it".into()
            }
            _ => return None,
        })
    }
}
