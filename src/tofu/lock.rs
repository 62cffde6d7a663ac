//! A state lock another run holds (`Error acquiring the state lock`), read
//! from what `tofu` printed, so pve can say who holds it and how to free a
//! lock whose holder died. The pg, s3 and local backends print the same
//! "Lock Info" block (OpenTofu and Terraform share this code).

/// The lock, as `tofu` described it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldLock {
    pub id: String,
    pub who: Option<String>,
    pub operation: Option<String>,
    pub created: Option<String>,
}

impl HeldLock {
    /// What to do: wait, or free it when its holder is gone.
    pub fn advice(&self) -> String {
        let by = match (&self.who, &self.operation, &self.created) {
            (Some(w), Some(o), Some(c)) => format!(" ({o} by {w}, since {c})"),
            (Some(w), _, _) => format!(" (by {w})"),
            _ => String::new(),
        };
        format!(
            "another OpenTofu run holds the state lock{by}: wait for it to finish and run again. \
             If that run died (a killed process, a lost connection), free the lock in the \
             OpenTofu folder (vms/tofu/.state) with `tofu force-unlock {}`",
            crate::shell::quote(&self.id)
        )
    }
}

/// The lock named in `tofu`'s error output, if the run failed on one.
pub fn held_lock(output: &str) -> Option<HeldLock> {
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
    Some(HeldLock {
        id,
        who: field("Who"),
        operation: field("Operation"),
        created: field("Created"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_boxed_form_is_read_too() {
        let text = "╷\n│ Error: Error acquiring the state lock\n│ \n│ Error message: Workspace is already locked: default\n│ Lock Info:\n│   ID:        2c18e300-a019-186b-e9d9-910ff29393f2\n│   Who:       ci@runner\n╵\n";
        let l = held_lock(text).expect("a lock");
        assert_eq!(l.id, "2c18e300-a019-186b-e9d9-910ff29393f2");
        assert_eq!(l.who.as_deref(), Some("ci@runner"));
        assert!(l
            .advice()
            .contains("tofu force-unlock 2c18e300-a019-186b-e9d9-910ff29393f2"));
        assert_eq!(held_lock("Error: something else"), None);
        assert_eq!(
            held_lock("Error acquiring the state lock\n  ID: $(rm -rf ~)\n"),
            None
        );
    }
}
