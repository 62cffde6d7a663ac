//! Ctrl-C and SIGTERM skip destructors, which would leave the shared SSH
//! connection running (up to ControlPersist) and its folder behind. A
//! handler thread closes every open one, removes the folders, and exits
//! with 130 as an interrupted program does.
//!
//! The op in flight fails as a side effect (its ssh child is killed by the
//! same Ctrl-C, or its master is closed). The main thread must not race the
//! handler to report that as a transport error and exit 3, so the entry
//! points call [`wait_if_interrupted`] before they report. The
//! flag is set inside the signal handler itself, before any child can die
//! of the signal, so the check cannot come too early.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, Once};

use signal_hook::consts::{SIGINT, SIGTERM};

static OPEN: Mutex<Vec<(PathBuf, String)>> = Mutex::new(Vec::new());
/// Files removed on an interrupt (a saved plan nobody accepted).
static DISCARD: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
static HANDLER: Once = Once::new();
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// When an interrupt has arrived, blocks until the handler thread exits
/// the process with 130; otherwise returns at once.
pub fn wait_if_interrupted() {
    if INTERRUPTED.load(Ordering::SeqCst) {
        loop {
            std::thread::park();
        }
    }
}

pub fn register(dir: &Path, host: &str) {
    HANDLER.call_once(install);
    if let Ok(mut open) = OPEN.lock() {
        open.push((dir.to_path_buf(), host.to_string()));
    }
}

/// Until [`keep`], an interrupt removes `files` before the process
/// exits (one handler for every cleanup, so none races another's exit).
pub fn discard_on_interrupt(files: &[PathBuf]) {
    HANDLER.call_once(install);
    if let Ok(mut d) = DISCARD.lock() {
        d.extend(files.iter().cloned());
    }
}

pub fn keep(files: &[PathBuf]) {
    if let Ok(mut d) = DISCARD.lock() {
        d.retain(|f| !files.contains(f));
    }
}

pub fn unregister(dir: &Path) {
    if let Ok(mut open) = OPEN.lock() {
        open.retain(|(d, _)| d != dir);
    }
}

/// Without handlers the default action (terminate) still applies; the
/// only loss is the cleanup, so a failure to install is not an error.
/// The flag is registered only once the thread that exits is in place:
/// a flag alone would swallow Ctrl-C.
fn install() {
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) else {
        return;
    };
    for sig in [SIGINT, SIGTERM] {
        let _ = signal_hook::flag::register(sig, &INTERRUPTED);
    }
    std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            on_interrupt();
        }
    });
}

fn on_interrupt() {
    let discard = DISCARD
        .lock()
        .map(|mut d| std::mem::take(&mut *d))
        .unwrap_or_default();
    for f in discard {
        let _ = std::fs::remove_file(f);
    }
    let open = OPEN
        .lock()
        .map(|mut o| std::mem::take(&mut *o))
        .unwrap_or_default();
    for (dir, host) in open {
        super::control::close_master(&dir, &host);
        let _ = std::fs::remove_dir_all(&dir);
    }
    std::process::exit(130);
}
