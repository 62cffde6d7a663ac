//! The shared connection (ControlMaster): its socket lives in a private
//! 0700 folder, registered with [`super::interrupt`] so Ctrl-C closes it
//! too, and closed and removed when the client is done.

use std::path::Path;
use std::time::Duration;

use super::{interrupt, options, SshError};
use crate::runner::{Cmd, Tool};

/// A private folder (0700) for the control socket of a connection to
/// `host`: only we may reach the socket.
pub(super) fn create(host: &str) -> Result<tempfile::TempDir, SshError> {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::Builder::new()
        .prefix("pve-ssh.")
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir_in(std::env::temp_dir())
        .map_err(SshError::ControlFolder)?;
    interrupt::register(dir.path(), host);
    Ok(dir)
}

/// Closes the master of the folder `dir` now; an interrupt no longer
/// needs to.
pub(super) fn close(dir: &Path, host: &str) {
    close_master(dir, host);
    interrupt::unregister(dir);
}

/// Asks the master behind the control socket in `dir` to exit.
pub(super) fn close_master(dir: &Path, host: &str) {
    let cp = dir.join("c");
    if !cp.exists() {
        return;
    }
    if let Ok(args) = options::control_path_only(&cp) {
        let _ = Cmd::new(Tool::Ssh)
            .args(args)
            .args(["-O", "exit"])
            .arg(host.to_string())
            .timeout(Duration::from_secs(5))
            .run_unchecked();
    }
}
