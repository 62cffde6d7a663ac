//! Writing files the safe way: atomically (temp file in the same folder,
//! fsync, rename), and under a repository lock so two `pve` processes never
//! interleave their edits.
//!
//! A write replaces the file a name leads to, not the name: a symbolic link
//! is followed to its target (the link stays a link), and the replaced
//! file's owner, group and mode carry over to the new one.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{AppError, Classify, Kind};

/// More links than this in a row is a loop (Linux's own limit is 40).
const MAX_LINKS: usize = 40;

/// Replaces `path` with `contents` atomically: readers see the old file or
/// the new one, never a torn one; a failure leaves the old file intact.
/// An existing file's owner, group and permissions are kept; a symbolic
/// link is written through.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), AppError> {
    stage(path, contents, None)?.commit()
}

/// A file written in full to a temp file beside its destination, synced,
/// and not yet renamed into place. Several files are staged first and
/// committed after, so that a failure while writing any of them leaves
/// every destination as it was. Dropping it removes the temp file.
pub struct Staged {
    tmp: tempfile::NamedTempFile,
    /// The file that will be replaced (a link's target, not the link).
    dest: PathBuf,
    /// The name the user knows, for messages.
    shown: PathBuf,
}

/// Writes `contents` to a temp file beside the file `path` leads to.
/// `new_mode` is the mode of a file that does not exist yet (the temp
/// file's private 0600 otherwise).
pub fn stage(path: &Path, contents: &[u8], new_mode: Option<u32>) -> Result<Staged, AppError> {
    let (dest, dir, existing) = destination(path)?;
    let fail = |source| write_failed(path, "write", source);
    std::fs::create_dir_all(&dir).map_err(|e| write_failed(path, "create the folder of", e))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".pve-tmp-")
        .tempfile_in(&dir)
        .map_err(fail)?;
    tmp.write_all(contents).map_err(fail)?;
    finish(tmp, dest, path, existing.as_ref(), new_mode)
}

fn write_failed(path: &Path, what: &'static str, source: std::io::Error) -> AppError {
    FsError::Write {
        what,
        path: path.to_path_buf(),
        source,
    }
    .into()
}

/// Where a write of `path` goes: the file its links lead to, that file's
/// folder, and the file's metadata when it exists (a regular file that is
/// not read-only, or an error).
fn destination(path: &Path) -> Result<(PathBuf, PathBuf, Option<std::fs::Metadata>), AppError> {
    let dest = resolve_links(path)?;
    let dir = match dest.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let existing = match std::fs::metadata(&dest) {
        Ok(meta) if !meta.is_file() => {
            return Err(FsError::NotRegularFile {
                path: path.to_path_buf(),
            }
            .into())
        }
        Ok(meta) => Some(meta),
        Err(_) => None,
    };
    if existing
        .as_ref()
        .is_some_and(|m| m.permissions().readonly())
    {
        return Err(FsError::ReadOnly {
            path: path.to_path_buf(),
        }
        .into());
    }
    Ok((dest, dir, existing))
}

/// The temp file `tmp`, written in full, given its mode and synced.
fn finish(
    tmp: tempfile::NamedTempFile,
    dest: PathBuf,
    path: &Path,
    existing: Option<&std::fs::Metadata>,
    new_mode: Option<u32>,
) -> Result<Staged, AppError> {
    let fail = |what, source| write_failed(path, what, source);
    match existing {
        Some(meta) => keep_owner_and_mode(tmp.as_file(), meta)
            .map_err(|e| fail("keep the owner, group and mode of", e))?,
        None => {
            if let Some(mode) = new_mode {
                tmp.as_file()
                    .set_permissions(std::fs::Permissions::from_mode(mode))
                    .map_err(|e| fail("write", e))?;
            }
        }
    }
    tmp.as_file().sync_all().map_err(|e| fail("write", e))?;
    Ok(Staged {
        tmp,
        dest,
        shown: path.to_path_buf(),
    })
}

/// A file being written straight to a temp file beside its destination,
/// for a text too large to hold whole in memory first (a 10,000-host
/// config.tf.json is 11-20 MB). Nothing is checked or decided yet: [`Draft::
/// stage`] does what [`stage`] does once the text is complete. Dropping it
/// removes the temp file.
pub struct Draft {
    tmp: tempfile::NamedTempFile,
    /// The folder the temp file is in.
    dir: PathBuf,
    /// Why [`Draft::sync_early`] failed: reported by the stage, because a
    /// second sync of the same file can succeed after the first lost the
    /// data (Linux reports a write-back error once per open file).
    sync_failed: Option<std::io::Error>,
}

impl Draft {
    /// A temp file beside the file `path` leads to, or `None` when there is
    /// no simple place for one (the destination is no writable regular
    /// file, the folder is read-only...): the caller then keeps the text in
    /// memory and [`stage`] reports what is wrong, when it is time to.
    ///
    /// When the folder does not exist yet (a first `pve render`), the temp
    /// file goes in the nearest folder above it that does: that is the file
    /// system the folder will be made on, so [`Draft::stage`] moves it in
    /// with a rename. Writing it as it is made keeps an 11-20 MB text out of
    /// memory and its copy to the disk off the end of `pve render`, where
    /// nothing else runs beside it.
    pub fn beside(path: &Path) -> Option<Draft> {
        let (_, folder, _) = destination(path).ok()?;
        let dir = folder
            .ancestors()
            .map(|a| match a.as_os_str().is_empty() {
                true => Path::new("."),
                false => a,
            })
            .find(|a| a.is_dir())?
            .to_path_buf();
        let tmp = tempfile::Builder::new()
            .prefix(".pve-tmp-")
            .tempfile_in(&dir)
            .ok()?;
        Some(Draft {
            tmp,
            dir,
            sync_failed: None,
        })
    }

    /// The temp file, to write the text to.
    pub fn file(&self) -> &File {
        self.tmp.as_file()
    }

    /// Writes what was written to the disk now, where [`Draft::stage`]
    /// would later: called while other work still runs, it takes the sync
    /// (a few milliseconds for a large file) off the end of the command,
    /// and the stage's own sync finds little left to do. Skipped when the
    /// file at `path` has the draft's length: most likely the same text,
    /// which is then not written at all. A failure is kept for the stage
    /// to report (see `sync_failed`).
    pub fn sync_early(&mut self, path: &Path) {
        let file = self.tmp.as_file();
        let len = |m: std::io::Result<std::fs::Metadata>| m.ok().map(|m| m.len());
        if len(std::fs::metadata(path)).is_none_or(|old| Some(old) != len(file.metadata())) {
            if let Err(e) = file.sync_data() {
                self.sync_failed.get_or_insert(e);
            }
        }
    }

    /// What was written.
    pub fn read_back(&self) -> std::io::Result<String> {
        std::fs::read_to_string(self.tmp.path())
    }

    /// Whether the file at `path` holds exactly what was written, read a
    /// block at a time from both files.
    pub fn same_as(&self, path: &Path) -> std::io::Result<bool> {
        let mut ours = File::open(self.tmp.path())?;
        let mut theirs = File::open(path)?;
        if ours.metadata()?.len() != theirs.metadata()?.len() {
            return Ok(false);
        }
        same_bytes(&mut ours, &mut theirs)
    }

    /// [`stage`] for the text already written: the destination is checked
    /// as `stage` checks it, the mode set and the file synced. A draft made
    /// above a folder that did not exist (see [`Draft::beside`]), or whose
    /// destination has moved to another folder since it began (a link
    /// changed), is moved there by a rename; where that cannot be done the
    /// text is copied there, as `stage` writes it (and with its errors).
    pub fn stage(self, path: &Path, new_mode: Option<u32>) -> Result<Staged, AppError> {
        let (dest, dir, existing) = destination(path)?;
        if let Some(e) = self.sync_failed {
            return Err(write_failed(path, "write", e));
        }
        if dir == self.dir {
            return finish(self.tmp, dest, path, existing.as_ref(), new_mode);
        }
        match self.move_into(&dir) {
            Ok(tmp) => finish(tmp, dest, path, existing.as_ref(), new_mode),
            Err(tmp) => {
                let text = std::fs::read(tmp.path()).map_err(|e| write_failed(path, "write", e))?;
                stage(path, &text, new_mode)
            }
        }
    }

    /// The temp file renamed into `dir` (made first, as `stage` makes it),
    /// under a temp name of its own there; the file back when any step
    /// fails (another file system, no right to make the folder...).
    fn move_into(self, dir: &Path) -> Result<tempfile::NamedTempFile, tempfile::NamedTempFile> {
        let tmp = self.tmp;
        if std::fs::create_dir_all(dir).is_err() {
            return Err(tmp);
        }
        // A name that is ours in `dir`: the rename replaces the empty file
        // made for it, and the name is removed again should anything fail
        // before the commit.
        let Ok(place) = tempfile::Builder::new()
            .prefix(".pve-tmp-")
            .tempfile_in(dir)
        else {
            return Err(tmp);
        };
        let (_, name) = place.into_parts();
        match tmp.persist(&name) {
            Ok(file) => Ok(tempfile::NamedTempFile::from_parts(file, name)),
            Err(e) => Err(e.file),
        }
    }
}

/// Whether `theirs` holds exactly what `ours` reads, a block at a time:
/// neither is held whole, and `theirs` is read at most one byte past the
/// end of `ours`, so a hostile file (/dev/zero) stays finite.
pub fn same_bytes(mut ours: impl std::io::Read, theirs: &mut File) -> std::io::Result<bool> {
    let mut a = vec![0u8; 64 * 1024];
    let mut b = vec![0u8; 64 * 1024];
    loop {
        let n = read_full(&mut ours, &mut a)?;
        let m = read_full(&mut *theirs, &mut b[..n.max(1)])?;
        if n != m || a[..n] != b[..m] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
}

/// Fills `buf` unless the reader ends first; the bytes read.
fn read_full(mut f: impl std::io::Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

impl Staged {
    /// Renames the temp file over the destination and syncs the folder.
    pub fn commit(self) -> Result<(), AppError> {
        let Staged { tmp, dest, shown } = self;
        tmp.persist(&dest).map_err(|e| FsError::Replace {
            path: shown,
            source: e.error,
        })?;
        if let Some(d) = dest.parent().and_then(|d| File::open(d).ok()) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

/// The file a name finally leads to: each symbolic link followed (relative
/// targets from the link's folder), a dangling link to the name it would
/// create.
pub fn resolve_links(path: &Path) -> Result<PathBuf, AppError> {
    let mut cur = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        match std::fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = std::fs::read_link(&cur).map_err(|source| FsError::ReadLink {
                    path: cur.clone(),
                    source,
                })?;
                cur = match cur.parent() {
                    Some(dir) if target.is_relative() => dir.join(target),
                    _ => target,
                };
            }
            _ => return Ok(cur),
        }
    }
    Err(FsError::LinkLoop {
        path: path.to_path_buf(),
    }
    .into())
}

/// Gives the new file the owner, group and mode of the one it replaces.
/// Changing the owner needs privilege; a file we cannot hand back to its
/// owner is not replaced at all.
fn keep_owner_and_mode(file: &File, old: &std::fs::Metadata) -> std::io::Result<()> {
    let now = file.metadata()?;
    if now.uid() != old.uid() || now.gid() != old.gid() {
        std::os::unix::fs::fchown(file, Some(old.uid()), Some(old.gid()))?;
    }
    // After chown, which may clear set-id bits.
    file.set_permissions(std::fs::Permissions::from_mode(old.mode() & 0o7777))
}

/// Reads at most `limit` bytes of `path`, whatever it is (a regular file,
/// a FIFO, `/dev/zero`): the size is bounded while reading, not by asking
/// the file system first. More than `limit` bytes is an error of kind
/// `FileTooLarge` whose message names the limit.
pub fn read_limited(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    let file = File::open(path)?;
    // Sized from the file's length (a hint only: the limit holds whatever
    // the file does while it is read), so a large file is read into one
    // allocation in one system call instead of a dozen doubling ones.
    let hint = file.metadata().map_or(0, |m| m.len()).min(limit);
    let capacity = usize::try_from(hint).unwrap_or(0).saturating_add(1);
    read_limited_into(file, limit, capacity)
}

/// [`read_limited`] for any reader (stdin, a child's output).
pub fn read_limited_from(r: impl std::io::Read, limit: u64) -> std::io::Result<Vec<u8>> {
    read_limited_into(r, limit, 0)
}

/// `r` read to its end into a buffer of `capacity` bytes to begin with
/// (room for the whole of a small file: one read, and one more that finds
/// the end), refused past `limit` as [`read_limited`] refuses.
pub fn read_limited_into(
    r: impl std::io::Read,
    limit: u64,
    capacity: usize,
) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut buf = Vec::with_capacity(capacity);
    r.take(limit.saturating_add(1)).read_to_end(&mut buf)?;
    if buf.len() as u64 > limit {
        return Err(too_large(limit));
    }
    Ok(buf)
}

/// The error of a read that went past its limit.
pub fn too_large(limit: u64) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::FileTooLarge,
        format!("more than {limit} bytes; larger input is refused"),
    )
}

/// Creates `path` with `contents` (mode 0644), never replacing an existing
/// file: temp file in the same folder, fsync, then a link that fails if the
/// name exists.
pub fn write_new(path: &Path, contents: &[u8]) -> Result<(), AppError> {
    let fail = |source: std::io::Error| FsError::Create {
        path: path.to_path_buf(),
        source,
    };
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

/// The right to take the repository lock later, for a long command that
/// must hold it only while some steps run (`pve integrate` runs for
/// minutes; it locks only for writing and re-keying, so other commands are
/// not blocked for the whole run). The application layer makes one and
/// hands it to the workflow; [`LockOnDemand::take`] applies the same
/// policy as [`RepoLock::take`].
#[derive(Debug, Clone)]
pub struct LockOnDemand {
    root: PathBuf,
}

impl LockOnDemand {
    pub fn new(root: &Path) -> LockOnDemand {
        LockOnDemand {
            root: root.to_path_buf(),
        }
    }

    pub fn take(&self) -> Result<RepoLock, AppError> {
        RepoLock::take(&self.root)
    }
}

/// How long a command waits for another `pve` to release the repository
/// lock: the one wait of the one lock policy (see [`RepoLock::take`]).
pub const LOCK_WAIT: Duration = Duration::from_secs(30);

impl RepoLock {
    /// The lock policy: the application layer takes the lock in the fleet
    /// root `root` once per command that changes the fleet (waiting
    /// [`LOCK_WAIT`] for another `pve`), and hands the library a `&RepoLock`
    /// as proof instead of letting it lock on its own.
    pub fn take(root: &Path) -> Result<RepoLock, AppError> {
        RepoLock::acquire(root, LOCK_WAIT)
    }

    /// Takes the lock in `root`, waiting up to `wait` (at least
    /// [`LOCK_GRACE`]) for another `pve` to finish.
    pub fn acquire(root: &Path, wait: Duration) -> Result<RepoLock, AppError> {
        let path = root.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| FsError::LockOpen {
                path: path.clone(),
                source,
            })?;
        match lock_exclusive(&file, wait) {
            Ok(true) => Ok(RepoLock { _file: file }),
            Ok(false) => Err(FsError::LockHeld { path }.into()),
            Err(source) => Err(FsError::Lock { path, source }.into()),
        }
    }
}

/// How writing or locking a file of the fleet can fail.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("cannot {what} {}: {source}", path.display())]
    Write {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a regular file; refusing to replace it", path.display())]
    NotRegularFile { path: PathBuf },
    #[error("{} is read-only", path.display())]
    ReadOnly { path: PathBuf },
    #[error("cannot replace {}: {source}", path.display())]
    Replace {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the link {}: {source}", path.display())]
    ReadLink {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: more than {} symbolic links in a row (a loop?)", path.display(), MAX_LINKS)]
    LinkLoop { path: PathBuf },
    #[error("cannot create {}: {source}", path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open the lock file {}: {source}", path.display())]
    LockOpen {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("another pve command is changing this fleet ({} is locked)", path.display())]
    LockHeld { path: PathBuf },
    #[error("cannot lock {}: {source}", path.display())]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Classify for FsError {
    fn kind(&self) -> Kind {
        Kind::Input
    }
    fn help(&self) -> Option<String> {
        let help = match self {
            FsError::Write { .. } => {
                "check that the folder exists and is writable, and that the disk is not full"
            }
            FsError::NotRegularFile { .. } => "move it away, or point pve at another path",
            FsError::ReadOnly { .. } => "make it writable (chmod u+w) and run again",
            FsError::LockHeld { .. } => "wait for it to finish and run again",
            FsError::Replace { .. }
            | FsError::ReadLink { .. }
            | FsError::LinkLoop { .. }
            | FsError::Create { .. }
            | FsError::LockOpen { .. }
            | FsError::Lock { .. } => return None,
        };
        Some(help.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_keeps_its_mode() {
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
    fn a_symbolic_link_is_written_through_and_stays_a_link() {
        let dir = tempfile::tempdir().expect("tempdir");
        let real = dir.path().join("real.nix");
        std::fs::write(&real, "old").expect("write");
        let link = dir.path().join("hosts.nix");
        std::os::unix::fs::symlink("real.nix", &link).expect("symlink");
        write_atomic(&link, b"new").expect("atomic write");
        let meta = std::fs::symlink_metadata(&link).expect("meta");
        assert!(meta.file_type().is_symlink(), "the link must stay a link");
        assert_eq!(std::fs::read_to_string(&real).expect("read"), "new");
    }

    #[test]
    fn owner_group_and_mode_of_the_replaced_file_are_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("a.txt");
        std::fs::write(&p, "old").expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        // Only root can give a file away; elsewhere the owner is ours anyway.
        let given_away = std::os::unix::fs::chown(&p, Some(65534), Some(65534)).is_ok();
        let before = std::fs::metadata(&p).expect("meta");
        write_atomic(&p, b"new").expect("atomic write");
        let after = std::fs::metadata(&p).expect("meta");
        assert_eq!(std::fs::read_to_string(&p).expect("read"), "new");
        assert_eq!((after.uid(), after.gid()), (before.uid(), before.gid()));
        assert_eq!(after.mode() & 0o7777, 0o600);
        if given_away {
            assert_eq!(after.uid(), 65534);
        }
    }

    #[test]
    fn a_draft_compares_with_any_file_and_stages_like_a_text() {
        use std::io::Write as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("a.json");
        let text: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&p, &text).expect("write");
        let draft = Draft::beside(&p).expect("a draft");
        draft.file().write_all(&text).expect("write");
        assert!(draft.same_as(&p).expect("read"));
        let others: [Vec<u8>; 3] = [
            text[..text.len() - 1].to_vec(),
            [&text[..], b"x"].concat(),
            Vec::new(),
        ];
        for other in others {
            std::fs::write(&p, other).expect("write");
            assert!(!draft.same_as(&p).expect("read"));
        }
        let mut changed = text.clone();
        changed[150_000] ^= 1;
        std::fs::write(&p, &changed).expect("write");
        assert!(!draft.same_as(&p).expect("read"));
        let staged = draft.stage(&p, Some(0o644)).expect("stage");
        assert_eq!(
            std::fs::read(&p).expect("read"),
            changed,
            "not before commit"
        );
        staged.commit().expect("commit");
        assert_eq!(std::fs::read(&p).expect("read"), text);
        let left: Vec<_> = std::fs::read_dir(dir.path()).expect("ls").collect();
        assert_eq!(left.len(), 1, "no temp file left");
        // Dropped: nothing left.
        drop(Draft::beside(&p).expect("a draft"));
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 1);
    }

    /// An early sync that failed fails the stage, though a second sync of
    /// the file would succeed: Linux reports a lost write-back once. The
    /// destination stays as it was and no temp file is left.
    #[test]
    fn an_early_sync_that_failed_fails_the_stage() {
        use std::io::Write as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("a.json");
        std::fs::write(&p, "old").expect("write");
        let mut draft = Draft::beside(&p).expect("a draft");
        draft.file().write_all(b"new text").expect("write");
        draft.sync_early(&p);
        assert!(
            draft.sync_failed.is_none(),
            "a sync that worked is no error"
        );
        draft.sync_failed = Some(std::io::Error::from_raw_os_error(libc::EIO));
        let e = draft.stage(&p, None).err().expect("the sync's error");
        assert!(e.to_string().contains("a.json"), "{e}");
        assert_eq!(std::fs::read_to_string(&p).expect("read"), "old");
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 1);
    }

    /// A draft for a folder that does not exist yet is made in the nearest
    /// one above and staged as the text would be: the folders made, the
    /// same bytes and mode, no temp file left anywhere; where the folder
    /// cannot be made, the same error as staging the text.
    #[test]
    fn a_draft_above_a_missing_folder_stages_like_a_text() {
        use std::io::Write as _;
        let text = b"{\"a\": 1}\n";
        let root = tempfile::tempdir().expect("tempdir");
        let by_text = root.path().join("text/vms/tofu/config.tf.json");
        let by_draft = root.path().join("draft/vms/tofu/config.tf.json");
        std::fs::create_dir_all(root.path().join("text")).expect("mkdir");
        std::fs::create_dir_all(root.path().join("draft")).expect("mkdir");
        stage(&by_text, text, Some(0o644))
            .expect("stage")
            .commit()
            .expect("commit");
        let draft = Draft::beside(&by_draft).expect("a draft above the missing folders");
        draft.file().write_all(text).expect("write");
        assert!(
            !root.path().join("draft/vms").exists(),
            "no folder made before staging"
        );
        let staged = draft.stage(&by_draft, Some(0o644)).expect("stage");
        assert!(!by_draft.exists(), "not before commit");
        staged.commit().expect("commit");
        assert_eq!(std::fs::read(&by_draft).expect("read"), text);
        let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o7777;
        assert_eq!(mode(&by_draft), mode(&by_text));
        for sub in ["draft", "draft/vms", "draft/vms/tofu"] {
            let names: Vec<_> = std::fs::read_dir(root.path().join(sub))
                .expect("ls")
                .map(|e| e.expect("entry").file_name())
                .collect();
            assert_eq!(
                names.len(),
                1,
                "only the file or folder written in {sub}: {names:?}"
            );
        }
        // A draft dropped before staging leaves nothing behind.
        let other = root.path().join("draft/new/a.json");
        drop(Draft::beside(&other).expect("a draft"));
        assert_eq!(
            std::fs::read_dir(root.path().join("draft"))
                .expect("ls")
                .count(),
            1
        );
        // A file where a folder should be: the error of staging the text.
        std::fs::write(root.path().join("blocked"), "x").expect("write");
        let blocked = root.path().join("blocked/tofu/a.json");
        let draft = Draft::beside(&blocked).expect("a draft in the root");
        draft.file().write_all(text).expect("write");
        let want = stage(&blocked, text, Some(0o644))
            .err()
            .expect("no folder")
            .to_string();
        let got = draft
            .stage(&blocked, Some(0o644))
            .err()
            .expect("no folder")
            .to_string();
        assert_eq!(got, want);
        assert_eq!(
            std::fs::read_dir(root.path()).expect("ls").count(),
            3,
            "no temp file left"
        );
    }

    #[test]
    fn staged_files_change_nothing_until_committed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("a.txt");
        std::fs::write(&p, "old").expect("write");
        let staged = stage(&p, b"new", None).expect("stage");
        assert_eq!(std::fs::read_to_string(&p).expect("read"), "old");
        drop(staged);
        assert_eq!(std::fs::read_to_string(&p).expect("read"), "old");
        let left: Vec<_> = std::fs::read_dir(dir.path()).expect("ls").collect();
        assert_eq!(left.len(), 1, "a dropped stage leaves no temp file");
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
