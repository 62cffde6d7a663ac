//! Ctrl-C while pve asks whether to apply: the saved plan nobody accepted
//! is removed before the process ends, so no later `pve apply` finds it.
//! The removal runs in the one interrupt handler of the process
//! (`remote::ssh::interrupt`), which also closes SSH connections and exits
//! with 130, so the two cleanups cannot race each other.

use std::path::PathBuf;

use crate::remote::ssh::interrupt;

/// While alive, SIGINT / SIGTERM remove `files` before the process exits.
pub struct DiscardOnInterrupt {
    files: Vec<PathBuf>,
}

impl DiscardOnInterrupt {
    pub fn arm(files: &[PathBuf]) -> DiscardOnInterrupt {
        interrupt::discard_on_interrupt(files);
        DiscardOnInterrupt {
            files: files.to_vec(),
        }
    }
}

impl Drop for DiscardOnInterrupt {
    fn drop(&mut self) {
        interrupt::keep(&self.files);
    }
}
