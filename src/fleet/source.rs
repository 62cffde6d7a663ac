//! A hosts.nix file as read from disk: its path, its text, and the mapping
//! from byte offsets to the 1-based line and column that people read.

use std::path::{Path, PathBuf};

use crate::fleet::FleetError;

/// Files larger than this are refused before parsing: a real fleet of
/// 10,000 hosts is a few MiB, and reading hundreds of MiB into a syntax tree
/// would only exhaust memory.
pub const MAX_FILE_BYTES: u64 = 32 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The path as the user named it (for messages).
    pub path: PathBuf,
    pub text: String,
    /// Where each line starts; computed on first use (most runs print no
    /// position at all).
    line_starts: std::sync::OnceLock<Vec<usize>>,
}

impl SourceFile {
    pub fn new(path: impl Into<PathBuf>, text: String) -> Self {
        SourceFile {
            path: path.into(),
            text,
            line_starts: std::sync::OnceLock::new(),
        }
    }

    fn line_starts(&self) -> &[usize] {
        self.line_starts.get_or_init(|| {
            let mut starts = vec![0];
            starts.extend(self.text.match_indices('\n').map(|(i, _)| i + 1));
            starts
        })
    }

    /// Reads a file, refusing what is too large or not UTF-8.
    pub fn read(path: &Path) -> Result<Self, FleetError> {
        let io = |source| FleetError::Io {
            path: path.to_path_buf(),
            source,
        };
        // Bounded while reading, not by the size the file system reports:
        // /dev/zero, a FIFO or a growing file report none.
        let bytes = crate::fsutil::read_limited(path, MAX_FILE_BYTES).map_err(|e| {
            if e.kind() == std::io::ErrorKind::FileTooLarge {
                FleetError::TooLarge {
                    path: path.to_path_buf(),
                }
            } else {
                io(e)
            }
        })?;
        let text = String::from_utf8(bytes).map_err(|e| {
            let offset = e.utf8_error().valid_up_to();
            let valid = String::from_utf8_lossy(&e.as_bytes()[..offset]).into_owned();
            let (line, column) = SourceFile::new(path, valid).line_col(offset);
            FleetError::NotUtf8 {
                path: path.to_path_buf(),
                line,
                column,
            }
        })?;
        Ok(SourceFile::new(path, text))
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line_starts = self.line_starts();
        let line = match line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let start = line_starts[line];
        let column = self
            .text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count());
        (line + 1, column + 1)
    }

    /// `file:line:col` for messages.
    pub fn location(&self, offset: usize) -> String {
        let (line, column) = self.line_col(offset);
        format!("{}:{line}:{column}", self.path.display())
    }

    /// The folder the file lives in: relative paths in the file start here.
    pub fn dir(&self) -> PathBuf {
        match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based_and_count_characters() {
        let f = SourceFile::new("h.nix", "ab\nçd\n".to_string());
        assert_eq!(f.line_col(0), (1, 1));
        assert_eq!(f.line_col(3), (2, 1));
        assert_eq!(f.line_col(5), (2, 2)); // after the two-byte ç
        assert_eq!(f.line_col(100), (3, 1));
    }
}
