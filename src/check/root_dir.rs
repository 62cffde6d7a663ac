//! The fleet's root folder held open, for the rules that look up a few
//! files per host. A host's files are a few levels under the root
//! (`hosts/web/configuration.nix`), the root itself often many levels
//! under `/`: each lookup made relative to the open folder walks only the
//! rest of the path. At 10,000 hosts these lookups are most of
//! `pve check`'s time on a fleet with files (three per host).
//!
//! Every lookup means what the same call on the full path means (links
//! followed, `..` taken on the folder it names); a path outside the root,
//! or a root that cannot be opened, is looked up by its full path.

#[cfg(test)]
use std::io::ErrorKind;
use std::io::Result;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};

pub struct RootDir<'a> {
    path: &'a Path,
    fd: Option<OwnedFd>,
}

impl<'a> RootDir<'a> {
    pub fn open(path: &'a Path) -> Self {
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let fd = rustix::fs::open(path, flags, Mode::empty()).ok();
        RootDir { path, fd }
    }

    /// Whether `path` is a regular file (or a link to one), as
    /// [`Path::is_file`].
    pub fn is_file(&self, path: &Path) -> bool {
        self.file_type(path) == Some(FileType::RegularFile)
    }

    /// Whether `path` is a folder (or a link to one), as [`Path::is_dir`].
    pub fn is_dir(&self, path: &Path) -> bool {
        self.file_type(path) == Some(FileType::Directory)
    }

    /// Whether `path` exists (a link: whether its target does), as
    /// [`Path::exists`].
    pub fn exists(&self, path: &Path) -> bool {
        self.file_type(path).is_some()
    }

    fn file_type(&self, path: &Path) -> Option<FileType> {
        let (dir, path) = self.at(path);
        let stat = rustix::fs::statat(dir, path, AtFlags::empty()).ok()?;
        Some(FileType::from_raw_mode(stat.st_mode))
    }

    /// The file's bytes, refused past `limit` (as
    /// [`crate::fsutil::read_limited`], whose errors it gives). Without
    /// asking the file's size first: a host's configuration is a few
    /// hundred bytes, read in one call (and one more that finds its end).
    pub fn read_limited(&self, path: &Path, limit: u64) -> Result<Vec<u8>> {
        let (dir, path) = self.at(path);
        let flags = OFlags::RDONLY | OFlags::CLOEXEC;
        let file = std::fs::File::from(rustix::fs::openat(dir, path, flags, Mode::empty())?);
        let capacity = FIRST_READ.min(
            usize::try_from(limit)
                .unwrap_or(usize::MAX)
                .saturating_add(1),
        );
        crate::fsutil::read_limited_into(file, limit, capacity)
    }

    /// Where to look `path` up: the open root and `path` relative to it,
    /// else the working folder and `path` as it is (what std does).
    fn at<'p>(&self, path: &'p Path) -> (BorrowedFd<'_>, &'p Path) {
        self.relative(path).unwrap_or((rustix::fs::CWD, path))
    }

    /// The open root and `path` relative to it; `None` for a path that is
    /// not under the root (or not absolute: std reads those from the
    /// working folder), or when the root could not be opened.
    ///
    /// On the path's bytes, not its components (`Path::strip_prefix` was
    /// a tenth of `pve check`'s instructions at 10,000 hosts): the root's
    /// bytes, then a `/` (or the root ending in one). The kernel reads
    /// `root/rest` as `rest` from the folder `root` named when it was
    /// opened, whatever either holds (`.`, `..`, repeated `/`).
    fn relative<'p>(&self, path: &'p Path) -> Option<(BorrowedFd<'_>, &'p Path)> {
        use std::os::unix::ffi::OsStrExt as _;
        let fd = self.fd.as_ref()?.as_fd();
        let bytes = path.as_os_str().as_bytes();
        let root = self.path.as_os_str().as_bytes();
        if !bytes.starts_with(b"/") || !root.starts_with(b"/") {
            return None;
        }
        let rest = bytes.strip_prefix(root)?;
        if !(root.ends_with(b"/") || rest.is_empty() || rest.starts_with(b"/")) {
            return None;
        }
        let rest = &rest[rest.iter().take_while(|&&b| b == b'/').count()..];
        if rest.is_empty() {
            return Some((fd, Path::new(".")));
        }
        Some((fd, Path::new(std::ffi::OsStr::from_bytes(rest))))
    }
}

/// The first read's size: larger than any usual configuration.nix.
const FIRST_READ: usize = 16 * 1024;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// Every lookup against the same call on the full path: files, folders,
    /// links to each, a dangling link, `..` through a linked folder, paths
    /// outside the root, relative ones, the root itself.
    #[test]
    fn lookups_under_the_open_root_mean_what_they_mean_on_full_paths() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("fleet");
        let outside = tmp.path().join("elsewhere");
        for dir in ["hosts/web", "hosts/db/sub"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(root.join("hosts/web/configuration.nix"), "{ }").unwrap();
        std::fs::write(root.join("hosts/db/sub/x.nix"), "").unwrap();
        std::fs::write(outside.join("o.nix"), "outside").unwrap();
        symlink("configuration.nix", root.join("hosts/web/to-file")).unwrap();
        symlink("../db", root.join("hosts/web/to-dir")).unwrap();
        symlink("missing", root.join("hosts/web/dangling")).unwrap();
        symlink(&outside, root.join("out")).unwrap();
        let paths: Vec<std::path::PathBuf> = [
            "",
            "hosts",
            "hosts/web",
            "hosts/web/configuration.nix",
            "hosts/web/missing.nix",
            "hosts/web/to-file",
            "hosts/web/to-dir",
            "hosts/web/to-dir/sub/x.nix",
            "hosts/web/to-dir/../web/configuration.nix",
            "hosts/web/dangling",
            "hosts/web/configuration.nix/x",
            "out/o.nix",
            "out/../fleet/hosts/web/configuration.nix",
        ]
        .iter()
        .map(|p| root.join(p))
        .chain([
            outside.join("o.nix"),
            outside.join("nothing"),
            "relative/hosts.nix".into(),
        ])
        .collect();
        let open = RootDir::open(&root);
        assert!(open.fd.is_some());
        // The root spelled otherwise: the same lookups.
        let spellings: Vec<std::path::PathBuf> = [
            format!("{}/", root.display()),
            format!("{}//", root.display()),
            format!("{}/.", root.display()),
            format!("{}/../fleet", root.display()),
        ]
        .into_iter()
        .map(Into::into)
        .collect();
        let respelled: Vec<RootDir> = spellings.iter().map(|p| RootDir::open(p)).collect();
        // Paths spelled with repeated `/` and `.`, and a root that is only
        // a prefix of a folder's name (`fleet` of `fleet2`).
        std::fs::create_dir_all(tmp.path().join("fleet2")).unwrap();
        std::fs::write(tmp.path().join("fleet2/f.nix"), "2").unwrap();
        let paths: Vec<std::path::PathBuf> = paths
            .into_iter()
            .chain(
                [
                    format!("{}//hosts/web/configuration.nix", root.display()),
                    format!("{}/./hosts//web/./configuration.nix", root.display()),
                    format!("{}/", root.display()),
                    format!("{}2/f.nix", root.display()),
                    format!("{}2", root.display()),
                ]
                .into_iter()
                .map(Into::into),
            )
            .collect();
        let no_root = tmp.path().join("no-such-root");
        let unopened = RootDir::open(&no_root);
        assert!(unopened.fd.is_none());
        for dir in [&open, &unopened].into_iter().chain(&respelled) {
            for p in &paths {
                assert_eq!(dir.is_file(p), p.is_file(), "is_file {p:?}");
                assert_eq!(dir.is_dir(p), p.is_dir(), "is_dir {p:?}");
                assert_eq!(dir.exists(p), p.exists(), "exists {p:?}");
                let ours = dir.read_limited(p, 1 << 20);
                let std = crate::fsutil::read_limited(p, 1 << 20);
                match (&ours, &std) {
                    (Ok(a), Ok(b)) => assert_eq!(a, b, "read {p:?}"),
                    (Err(a), Err(b)) => assert_eq!(a.kind(), b.kind(), "read {p:?}"),
                    _ => panic!("read {p:?}: {ours:?} vs {std:?}"),
                }
            }
        }
    }

    /// Sizes around the first read and the limit: the same bytes, and the
    /// same refusal one byte past the limit.
    #[test]
    fn reads_stop_at_the_limit_as_the_full_path_read_does() {
        let tmp = tempfile::tempdir().unwrap();
        let root = RootDir::open(tmp.path());
        for len in [
            0,
            1,
            FIRST_READ - 1,
            FIRST_READ,
            FIRST_READ + 1,
            3 * FIRST_READ + 7,
        ] {
            let path = tmp.path().join(format!("f{len}"));
            let bytes: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            std::fs::write(&path, &bytes).unwrap();
            for limit in [0, 1, len.saturating_sub(1), len, len + 1, FIRST_READ * 4] {
                let limit = limit as u64;
                let ours = root.read_limited(&path, limit);
                let std = crate::fsutil::read_limited(&path, limit);
                match (ours, std) {
                    (Ok(a), Ok(b)) => {
                        assert_eq!(a, b, "{len} bytes, limit {limit}");
                        assert_eq!(a, bytes);
                    }
                    (Err(a), Err(b)) => {
                        assert_eq!(a.kind(), b.kind(), "{len} bytes, limit {limit}");
                        assert_eq!(a.kind(), ErrorKind::FileTooLarge);
                    }
                    (a, b) => panic!("{len} bytes, limit {limit}: {a:?} vs {b:?}"),
                }
            }
        }
    }
}
