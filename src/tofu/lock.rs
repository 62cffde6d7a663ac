//! A state lock another run holds (`Error acquiring the state lock`), read
//! from what `tofu` printed, so pve can say who holds it and how it is
//! freed. The pg, s3 and local backends print the same "Lock Info" block
//! (OpenTofu and Terraform share this code).
//!
//! How a lock is freed depends on the backend (reference/tools.md §4.4):
//! the local backend's lock is a file lock of the running process and the
//! pg backend's a PostgreSQL advisory lock of its database session, so
//! both go away when the holder ends, killed or not, and `tofu
//! force-unlock` cannot free them. Only a lock stored as an object (s3's
//! lock file or DynamoDB item) outlives a dead run and needs force-unlock.

use std::path::Path;

/// The lock, as `tofu` described it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldLock {
    pub id: String,
    pub who: Option<String>,
    pub operation: Option<String>,
    pub created: Option<String>,
}

impl HeldLock {
    /// Who holds it, as one parenthesised phrase (empty when unknown).
    pub fn holder(&self) -> String {
        let op = self
            .operation
            .as_deref()
            .map(|o| o.strip_prefix("OperationType").unwrap_or(o).to_lowercase());
        match (op, &self.who, &self.created) {
            (Some(o), Some(w), Some(c)) => format!(" ({o} by {w}, since {c})"),
            (Some(o), Some(w), None) => format!(" ({o} by {w})"),
            (_, Some(w), _) => format!(" (by {w})"),
            _ => String::new(),
        }
    }

    /// What to do: wait, and (only where that frees it) how to free a lock
    /// whose holder died. `backend` is the backend's type (`local`, `pg`,
    /// `s3`); `dir` is the OpenTofu working folder.
    pub fn advice(&self, backend: &str, dir: &Path) -> String {
        let wait = "wait for the other run to finish, then run the same command again";
        match backend {
            "local" => format!(
                "{wait}. The lock is held by a running `tofu` on this machine and goes away when \
                 that process ends (also when it is killed); `tofu force-unlock` is not needed"
            ),
            "pg" => format!(
                "{wait}. With the pg backend the lock is a PostgreSQL advisory lock of the other \
                 run's database session: it goes away when that run ends, is killed or loses its \
                 connection. `tofu force-unlock` cannot free it (the pg backend does not support \
                 it); if that run hangs, stop it, or end its session in PostgreSQL \
                 (`SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'`)"
            ),
            _ => format!(
                "{wait}. If that run died (a killed process, a lost connection), its lock stays: \
                 free it with `cd {} && tofu force-unlock {}`",
                crate::shell::quote(&dir.to_string_lossy()),
                crate::shell::quote(&self.id)
            ),
        }
    }
}

/// The lock named in `tofu`'s error output, if the run failed on one.
/// Colour codes (plan and apply run without `-no-color`) are ignored.
pub fn held_lock(output: &str) -> Option<HeldLock> {
    let output = strip_ansi(output);
    if !output.contains("Error acquiring the state lock") {
        return None;
    }
    let field = |name: &str| {
        output.lines().find_map(|l| {
            let l = l.trim_start_matches(['│', ' ', '\t']);
            let rest = l.strip_prefix(name)?.strip_prefix(':')?.trim();
            (!rest.is_empty()).then(|| rest.to_string())
        })
    };
    let id = field("ID")?;
    // Untrusted text: a lock ID is a UUID-like token, nothing else.
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return None;
    }
    // The other fields are only shown: keep them to one plain line.
    let plain =
        |v: Option<String>| v.map(|s| s.chars().filter(|c| !c.is_control()).take(200).collect());
    Some(HeldLock {
        id,
        who: plain(field("Who")),
        operation: plain(field("Operation")),
        created: plain(field("Created")),
    })
}

/// The text without terminal escape sequences (`ESC [ … letter`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for d in chars.by_ref() {
                    if d.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// OpenTofu's message for a held lock, as `tofu plan` prints it in
    /// colour (the Lock Info block is Terraform's/OpenTofu's
    /// `internal/command/clistate` text).
    const COLOURED: &str = "\u{1b}[31m╷\u{1b}[0m\u{1b}[0m\n\u{1b}[31m│\u{1b}[0m \u{1b}[0m\u{1b}[1m\u{1b}[31mError: \u{1b}[0m\u{1b}[0m\u{1b}[1mError acquiring the state lock\u{1b}[0m\n\u{1b}[31m│\u{1b}[0m \u{1b}[0m\n\u{1b}[31m│\u{1b}[0m \u{1b}[0mError message: resource temporarily unavailable\n\u{1b}[31m│\u{1b}[0m \u{1b}[0mLock Info:\n\u{1b}[31m│\u{1b}[0m \u{1b}[0m  ID:        4a5b0c1e-2d3f-7a8b-9c0d-e1f2a3b4c5d6\n\u{1b}[31m│\u{1b}[0m \u{1b}[0m  Path:      terraform.tfstate\n\u{1b}[31m│\u{1b}[0m \u{1b}[0m  Operation: OperationTypeApply\n\u{1b}[31m│\u{1b}[0m \u{1b}[0m  Who:       alice@laptop\n\u{1b}[31m│\u{1b}[0m \u{1b}[0m  Version:   1.10.6\n\u{1b}[31m│\u{1b}[0m \u{1b}[0m  Created:   2026-12-06 20:01:02.123456789 +0000 UTC\n";

    #[test]
    fn the_boxed_form_is_read_too() {
        let text = "╷\n│ Error: Error acquiring the state lock\n│ \n│ Error message: Workspace is already locked: default\n│ Lock Info:\n│   ID:        2c18e300-a019-186b-e9d9-910ff29393f2\n│   Who:       ci@runner\n╵\n";
        let l = held_lock(text).expect("a lock");
        assert_eq!(l.id, "2c18e300-a019-186b-e9d9-910ff29393f2");
        assert_eq!(l.who.as_deref(), Some("ci@runner"));
        assert!(l.advice("s3", Path::new("/f/vms/tofu/.state")).contains(
            "cd /f/vms/tofu/.state && tofu force-unlock 2c18e300-a019-186b-e9d9-910ff29393f2"
        ));
        assert_eq!(held_lock("Error: something else"), None);
        assert_eq!(
            held_lock("Error acquiring the state lock\n  ID: $(rm -rf ~)\n"),
            None
        );
    }

    #[test]
    fn colour_codes_do_not_hide_the_lock() {
        let l = held_lock(COLOURED).expect("a lock");
        assert_eq!(l.id, "4a5b0c1e-2d3f-7a8b-9c0d-e1f2a3b4c5d6");
        assert_eq!(l.operation.as_deref(), Some("OperationTypeApply"));
        assert_eq!(
            l.holder(),
            " (apply by alice@laptop, since 2026-12-06 20:01:02.123456789 +0000 UTC)"
        );
    }

    #[test]
    fn force_unlock_is_advised_only_where_it_frees_the_lock() {
        let l = held_lock(COLOURED).expect("a lock");
        let dir = Path::new("/fleet/vms/tofu/.state");
        for backend in ["local", "pg"] {
            let a = l.advice(backend, dir);
            assert!(a.contains("force-unlock` is not needed") || a.contains("cannot free it"));
            assert!(!a.contains("tofu force-unlock 4a5b"), "{backend}: {a}");
        }
        assert!(l.advice("pg", dir).contains("pg_terminate_backend"));
        assert!(l
            .advice("s3", dir)
            .contains("tofu force-unlock 4a5b0c1e-2d3f-7a8b-9c0d-e1f2a3b4c5d6"));
    }
}
