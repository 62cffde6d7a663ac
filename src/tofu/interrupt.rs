//! Ctrl-C while pve asks whether to apply: the saved plan nobody accepted
//! is removed before the process ends, so no later `pve apply` finds it.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt as _;
use std::path::PathBuf;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::SigId;

/// While alive, SIGINT / SIGTERM unlink `files` and end the process with
/// 130 (the shell's code for an interrupt).
pub struct DiscardOnInterrupt {
    ids: Vec<SigId>,
}

impl DiscardOnInterrupt {
    pub fn arm(files: &[PathBuf]) -> DiscardOnInterrupt {
        let paths: Vec<CString> = files
            .iter()
            .filter_map(|p| CString::new(p.as_os_str().as_bytes()).ok())
            .collect();
        let paths = std::sync::Arc::new(paths);
        let mut ids = Vec::new();
        for sig in [SIGINT, SIGTERM] {
            let paths = paths.clone();
            // SAFETY: the handler only calls unlink(2) on strings built
            // before it was registered and _exit(2); both are
            // async-signal-safe, and nothing is allocated or locked.
            let id = unsafe {
                signal_hook::low_level::register(sig, move || {
                    for p in paths.iter() {
                        libc::unlink(p.as_ptr());
                    }
                    signal_hook::low_level::exit(130);
                })
            };
            if let Ok(id) = id {
                ids.push(id);
            }
        }
        DiscardOnInterrupt { ids }
    }
}

impl Drop for DiscardOnInterrupt {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}
