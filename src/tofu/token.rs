//! The Proxmox API token OpenTofu's bpg/proxmox provider needs: from
//! `PROXMOX_VE_API_TOKEN`, or from a token file that only its owner can read.
//!
//! The value is never printed, never put into an error and never passed in
//! argv: it reaches `tofu` only through the child's environment
//! ([`crate::runner::Cmd::secret_env`]).

use std::path::{Path, PathBuf};

use crate::error::AppError;

use super::TofuError;

/// The environment variable the provider reads (and that we set for it).
pub const ENV: &str = "PROXMOX_VE_API_TOKEN";
/// Overrides where the token file is.
pub const FILE_ENV: &str = "PVE_TOKEN_FILE";

pub(super) const SHAPE: &str = "`user@realm!tokenid=secret`, e.g. `terraform@pve!provider=xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`";

/// An API token whose value never shows in `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken(String);

impl Drop for ApiToken {
    /// The token does not outlive its use in memory (or a core file).
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiToken(<redacted>)")
    }
}

impl ApiToken {
    /// The secret itself: only for [`crate::runner::Cmd::secret_env`].
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Checks the shape `user@realm!tokenid=secret`; the error never
    /// contains the text.
    pub fn parse(text: &str, source: &str) -> Result<ApiToken, AppError> {
        let t = text.trim();
        if t.is_empty() {
            return Err(TofuError::TokenEmpty {
                origin: source.to_string(),
            }
            .into());
        }
        if is_token_shape(t) {
            Ok(ApiToken(t.to_string()))
        } else {
            Err(TofuError::TokenShape {
                origin: source.to_string(),
            }
            .into())
        }
    }

    /// The token for this run: `PROXMOX_VE_API_TOKEN` when set, else the
    /// token file. `Ok(None)` when neither exists.
    pub fn discover() -> Result<Option<ApiToken>, AppError> {
        if let Some(v) = std::env::var_os(ENV) {
            if !v.is_empty() {
                let v = v.into_string().map_err(|_| TofuError::TokenNotUtf8)?;
                return ApiToken::parse(&v, ENV).map(Some);
            }
        }
        let Some(path) = token_file_path() else {
            return Ok(None);
        };
        ApiToken::from_file(&path)
    }

    /// Reads a token file; it must be a regular file only its owner can
    /// read or write (mode 0600 or 0400). `Ok(None)` when it does not exist.
    pub fn from_file(path: &Path) -> Result<Option<ApiToken>, AppError> {
        use std::os::unix::fs::PermissionsExt;
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(TofuError::TokenFileRead {
                    path: path.to_path_buf(),
                    source: e,
                }
                .into())
            }
        };
        if !meta.is_file() {
            return Err(TofuError::TokenFileNotRegular {
                path: path.to_path_buf(),
            }
            .into());
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(TofuError::TokenFileShared {
                path: path.to_path_buf(),
                mode,
            }
            .into());
        }
        let text = std::fs::read_to_string(path).map_err(|e| TofuError::TokenFileRead {
            path: path.to_path_buf(),
            source: e,
        })?;
        ApiToken::parse(&text, &format!("the token file {}", path.display())).map(Some)
    }
}

/// Where the token file is: `PVE_TOKEN_FILE`, else
/// `$XDG_CONFIG_HOME/pve/token`, else `~/.config/pve/token`.
pub fn token_file_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(FILE_ENV).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    if let Some(x) = std::env::var_os("XDG_CONFIG_HOME").filter(|p| !p.is_empty()) {
        let x = PathBuf::from(x);
        if x.is_absolute() {
            return Some(x.join("pve").join("token"));
        }
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".config").join("pve").join("token"))
}

/// The error for a command that needs the token and found none.
pub fn missing() -> AppError {
    let file = token_file_path().map_or_else(
        || "~/.config/pve/token".to_string(),
        |p| p.display().to_string(),
    );
    TofuError::TokenMissing { file }.into()
}

/// `user@realm!tokenid=secret`, each part non-empty, nothing that is
/// whitespace or a control character.
fn is_token_shape(t: &str) -> bool {
    if t.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let Some((user_realm, rest)) = t.split_once('!') else {
        return false;
    };
    let Some((user, realm)) = user_realm.split_once('@') else {
        return false;
    };
    let Some((id, secret)) = rest.split_once('=') else {
        return false;
    };
    !user.is_empty()
        && !realm.is_empty()
        && !realm.contains('@')
        && !id.is_empty()
        && !id.contains('!')
        && !secret.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const GOOD: &str = "terraform@pve!provider=0b3a6e1c-94f4-4d1e-9d1a-3c2b9a7f5e21";

    #[test]
    fn accepts_the_documented_shape() {
        for t in [
            GOOD,
            "root@pam!ci=secret",
            "automation@pve!tofu-2=abc",
            "  root@pam!x=y\n",
        ] {
            assert!(ApiToken::parse(t, "t").is_ok(), "{t}");
        }
    }

    #[test]
    fn refuses_other_shapes_without_echoing_them() {
        for t in [
            "0b3a6e1c-94f4-4d1e-9d1a-3c2b9a7f5e21",
            "root@pam=secret",
            "root!id=secret",
            "@pam!id=secret",
            "root@!id=secret",
            "root@pam!=secret",
            "root@pam!id=",
            "root@pam!id=sec ret",
            "PVEAPIToken=root@pam!id=secret x",
        ] {
            let err = ApiToken::parse(t, "TOKEN").expect_err(t);
            let shown = format!("{err} {}", err.help().unwrap_or_default());
            assert!(!shown.contains(t.trim()), "{shown}");
            assert_eq!(err.exit_code(), 2);
        }
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let t = ApiToken::parse(GOOD, "t").expect("valid");
        assert_eq!(format!("{t:?}"), "ApiToken(<redacted>)");
    }

    #[test]
    fn a_file_others_can_read_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("token");
        std::fs::write(&p, GOOD).expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = ApiToken::from_file(&p).expect_err("0644 must be refused");
        assert!(err.to_string().contains("mode 0644"), "{err}");
        assert!(err.help().unwrap_or_default().contains("chmod 600"));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let t = ApiToken::from_file(&p)
            .expect("0600 is fine")
            .expect("present");
        assert_eq!(t.expose(), GOOD);
        assert!(ApiToken::from_file(&dir.path().join("nope"))
            .expect("missing is not an error")
            .is_none());
    }
}
