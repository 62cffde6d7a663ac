//! Writing files the safe way: atomically (temp file in the same folder,
//! fsync, rename), and under a repository lock so two `pve` processes never
//! interleave their edits.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::AppError;

/// Replaces `path` with `contents` atomically: readers see the old file or
/// the new one, never a torn one; a failure leaves the old file intact.
/// An existing file's permissions are kept.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), AppError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let fail = |what: &str, e: std::io::Error| {
        AppError::input(format!("cannot {what} {}: {e}", path.display())).with_help(
            "check that the folder exists and is writable, and that the disk is not full",
        )
    };
    std::fs::create_dir_all(&dir).map_err(|e| fail("create the folder of", e))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".pve-tmp-")
        .tempfile_in(&dir)
        .map_err(|e| fail("write", e))?;
    tmp.write_all(contents).map_err(|e| fail("write", e))?;
    if let Ok(meta) = std::fs::metadata(path) {
        tmp.as_file()
            .set_permissions(meta.permissions())
            .map_err(|e| fail("write", e))?;
        if meta.permissions().readonly() {
            return Err(AppError::input(format!("{} is read-only", path.display()))
                .with_help("make it writable (chmod u+w) and run again"));
        }
    }
    tmp.as_file().sync_all().map_err(|e| fail("write", e))?;
    tmp.persist(path).map_err(|e| fail("replace", e.error))?;
    if let Ok(d) = File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Creates `path` with `contents` (mode 0644), never replacing an existing
/// file: temp file in the same folder, fsync, then a link that fails if the
/// name exists.
pub fn write_new(path: &Path, contents: &[u8]) -> Result<(), AppError> {
    use std::os::unix::fs::PermissionsExt as _;
    let fail =
        |e: std::io::Error| AppError::input(format!("cannot create {}: {e}", path.display()));
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(fail)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".pve-tmp-")
        .tempfile_in(dir)
        .map_err(fail)?;
    tmp.write_all(contents).map_err(fail)?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))
        .map_err(fail)?;
    tmp.as_file().sync_all().map_err(fail)?;
    tmp.persist_noclobber(path).map_err(|e| fail(e.error))?;
    Ok(())
}

/// An exclusive lock on the fleet repository, held while a command changes
/// files. The OS releases it when the file closes (drop, or a crash).
pub struct RepoLock {
    _file: File,
}

pub const LOCK_FILE: &str = ".pve.lock";

/// How long a lock that looks held is retried before a second `pve` is
/// refused. A lock file is opened close-on-exec, but between `fork` and
/// `exec` a child that this process (or another thread of it) is starting
/// holds every descriptor, and a `flock` belongs to the open file, not to
/// the process: for that moment the child keeps the lock alive. On a
/// loaded machine the moment can stretch to hundreds of milliseconds, so a
/// lock that is about to be released must not refuse anyone; a lock still
/// held after this grace is really held.
pub const LOCK_GRACE: Duration = Duration::from_secs(2);

/// Takes an exclusive `flock` on `file`, retrying for `wait` (at least
/// [`LOCK_GRACE`]). `Ok(false)` means someone else still holds it.
pub fn lock_exclusive(file: &File, wait: Duration) -> std::io::Result<bool> {
    let wait = wait.max(LOCK_GRACE);
    let start = Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(true),
            Err(std::fs::TryLockError::WouldBlock) if start.elapsed() < wait => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(std::fs::TryLockError::WouldBlock) => return Ok(false),
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
    }
}

impl RepoLock {
    /// Takes the lock in `root`, waiting up to `wait` (at least
    /// [`LOCK_GRACE`]) for another `pve` to finish.
    pub fn acquire(root: &Path, wait: Duration) -> Result<RepoLock, AppError> {
        let path = root.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| {
                AppError::input(format!("cannot open the lock file {}: {e}", path.display()))
            })?;
        match lock_exclusive(&file, wait) {
            Ok(true) => Ok(RepoLock { _file: file }),
            Ok(false) => Err(AppError::input(format!(
                "another pve command is changing this fleet ({} is locked)",
                path.display()
            ))
            .with_help("wait for it to finish and run again")),
            Err(e) => Err(AppError::input(format!(
                "cannot lock {}: {e}",
                path.display()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_keeps_its_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("a.txt");
        std::fs::write(&p, "old").expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        write_atomic(&p, b"new").expect("atomic write");
        assert_eq!(std::fs::read_to_string(&p).expect("read"), "new");
        let mode = std::fs::metadata(&p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).expect("ls").collect();
        assert_eq!(leftovers.len(), 1, "no temp file left behind");
    }

    #[test]
    fn a_second_writer_waits_then_fails_clearly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let _held = RepoLock::acquire(dir.path(), Duration::ZERO).expect("first lock");
        // flock locks are per open file description, so a second
        // open in the same process contends like another process would.
        let err = RepoLock::acquire(dir.path(), Duration::from_millis(100))
            .err()
            .expect("second lock must fail");
        assert!(err.to_string().contains("another pve command"), "{err}");
    }

    /// The race that once failed CI: a lock released while the second
    /// taker is already trying (as when a child forked by another thread
    /// still held the descriptor for a moment) is taken, not refused.
    #[test]
    fn a_lock_released_during_the_grace_is_taken() {
        let dir = tempfile::tempdir().expect("tempdir");
        let held = RepoLock::acquire(dir.path(), Duration::ZERO).expect("first lock");
        let (tx, rx) = std::sync::mpsc::channel();
        let path = dir.path().to_path_buf();
        let second = std::thread::spawn(move || {
            tx.send(()).expect("send");
            RepoLock::acquire(&path, Duration::ZERO).map(|_| ())
        });
        rx.recv().expect("the second taker started");
        // The lock stays held a moment longer, as a forked child's copy of
        // the descriptor would keep it until its exec.
        std::thread::sleep(Duration::from_millis(200));
        drop(held);
        second
            .join()
            .expect("thread")
            .expect("the lock freed during the grace is taken");
    }
}
