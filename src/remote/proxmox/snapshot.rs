//! VM snapshots on Proxmox: `qm snapshot`, `qm rollback`, `qm delsnapshot`,
//! and the list from `pvesh get /nodes/<node>/qemu/<vmid>/snapshot` (or
//! `qm listsnapshot`, parsed too). Formats and errors follow
//! ../shared/reference/proxmox-cli (INDEX.md addendum "snapshots",
//! errors.md addendum): snapshot names are `[a-z][a-z0-9_-]+` (any case),
//! at most 40 characters; `current` is the pseudo-snapshot "You are here!";
//! the API lists the real snapshots in random order.

use serde::Deserialize;

use super::target::{task_message, vm_path, Method, NodeName};
use super::{external, s, Proxmox, ProxmoxError, DEFAULT_OP_TIMEOUT, LONG_OP_TIMEOUT};
use crate::error::{Classify, Kind, Result};
use crate::remote::ssh::SshError;

/// The longest snapshot name Proxmox takes.
pub const MAX_NAME: usize = 40;

/// One snapshot of a VM (never `current`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Snapshot {
    pub name: String,
    /// Unix time it was taken.
    pub snaptime: Option<i64>,
    /// First line of the description (`qm listsnapshot`) or all of it (API).
    pub description: String,
    pub parent: Option<String>,
    /// Whether RAM was saved with it.
    pub vmstate: bool,
}

/// What `qm snapshot` said beyond success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taken {
    pub name: String,
    /// Why the guest's filesystems were not frozen, when Proxmox said so
    /// (`agent configured but not running?`): the snapshot is
    /// crash-consistent only.
    pub unfrozen: Option<String>,
    pub output: String,
}

/// How a snapshot operation failed, told apart from what Proxmox printed.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("`{name}` is not a valid snapshot name (letters, digits, `-` and `_`, starting with a letter, at least 2 characters)")]
    InvalidName { name: String },
    #[error("the snapshot name `{name}` is longer than {MAX_NAME} characters")]
    NameTooLong { name: String },
    #[error("`{name}` is a reserved snapshot name")]
    Reserved { name: String },
    #[error("VM {vmid}: a disk's storage cannot take snapshots (Proxmox: snapshot feature is not available)")]
    Unsupported { vmid: u32 },
    #[error("VM {vmid}: the snapshot failed because the thin pool is full: {detail}")]
    PoolFull { vmid: u32, detail: String },
    #[error("VM {vmid} has no snapshot `{name}`")]
    NotFound { vmid: u32, name: String },
    #[error("VM {vmid} already has a snapshot `{name}`")]
    Exists { vmid: u32, name: String },
    #[error("VM {vmid} is locked ({lock}); the snapshot operation was refused")]
    Locked { vmid: u32, lock: String },
}

impl Classify for SnapshotError {
    fn kind(&self) -> Kind {
        match self {
            SnapshotError::InvalidName { .. }
            | SnapshotError::NameTooLong { .. }
            | SnapshotError::Reserved { .. } => Kind::Input,
            _ => Kind::External,
        }
    }
    fn help(&self) -> Option<String> {
        Some(match self {
            SnapshotError::InvalidName { .. } | SnapshotError::NameTooLong { .. } => {
                "use a name like `pve-pre-deploy-20260115-100000`".into()
            }
            SnapshotError::Reserved { .. } => "`current` and `pending` are Proxmox's own".into(),
            SnapshotError::Unsupported { .. } => "disks on raw files (dir, NFS, CIFS), thick LVM or passed-through devices cannot snapshot; move the disk to LVM-thin, ZFS or qcow2 storage, or go on without a snapshot".into(),
            SnapshotError::PoolFull { .. } => "free space in the thin pool (old snapshots: `qm listsnapshot`, `qm delsnapshot`) or extend it".into(),
            SnapshotError::NotFound { .. } => "`qm listsnapshot <vmid>` lists the VM's snapshots".into(),
            SnapshotError::Exists { .. } => "pick another name or delete the old snapshot first".into(),
            SnapshotError::Locked { .. } => "wait for the running task (backup, another snapshot) to finish, then try again".into(),
        })
    }
}

/// Refuses a name Proxmox would refuse, before anything connects.
pub fn check_name(name: &str) -> std::result::Result<(), SnapshotError> {
    if name.len() > MAX_NAME {
        return Err(SnapshotError::NameTooLong { name: name.into() });
    }
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !first_ok || !rest_ok || name.len() < 2 {
        return Err(SnapshotError::InvalidName { name: name.into() });
    }
    if name.eq_ignore_ascii_case("current") || name.eq_ignore_ascii_case("pending") {
        return Err(SnapshotError::Reserved { name: name.into() });
    }
    Ok(())
}

#[derive(Deserialize)]
struct ApiSnapshot {
    name: String,
    snaptime: Option<i64>,
    #[serde(default)]
    description: String,
    parent: Option<String>,
    #[serde(default)]
    vmstate: Option<serde_json::Value>,
}

/// `pvesh get /nodes/<node>/qemu/<vmid>/snapshot --output-format json`:
/// the snapshots sorted by time (the API's order is random), `current`
/// left out.
pub fn parse_api(text: &str) -> std::result::Result<Vec<Snapshot>, super::parse::ParseError> {
    let items: Vec<ApiSnapshot> =
        serde_json::from_str(text.trim()).map_err(|e| super::parse::ParseError {
            what: "pvesh get …/snapshot",
            detail: format!("not the JSON list Proxmox prints: {e}"),
        })?;
    let mut snaps: Vec<Snapshot> = items
        .into_iter()
        .filter(|i| i.name != "current")
        .map(|i| Snapshot {
            vmstate: i.vmstate.as_ref().is_some_and(|v| v.as_i64() == Some(1)),
            name: i.name,
            snaptime: i.snaptime,
            description: i.description,
            parent: i.parent,
        })
        .collect();
    snaps.sort_by(|a, b| (a.snaptime, &a.name).cmp(&(b.snaptime, &b.name)));
    Ok(snaps)
}

/// `qm listsnapshot <vmid>`: one line per snapshot, `` `-> `` indented one
/// space per tree level, then name, `YYYY-MM-DD HH:MM:SS` and the first
/// line of the description; `current` has no time. The time stays text
/// (it is the Proxmox host's local time).
pub fn parse_listsnapshot(text: &str) -> Vec<(usize, Snapshot, String)> {
    let mut out: Vec<(usize, Snapshot, String)> = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim_start_matches(' ');
        let Some(rest) = trimmed.strip_prefix("`->") else {
            continue;
        };
        let depth = line.len() - trimmed.len();
        let mut words = rest.split_whitespace();
        let Some(name) = words.next() else { continue };
        if name == "current" {
            continue;
        }
        let rest: Vec<&str> = words.collect();
        let has_time = rest.len() >= 2 && looks_like_date(rest[0]);
        let (time, desc) = if has_time {
            (format!("{} {}", rest[0], rest[1]), rest[2..].join(" "))
        } else {
            (String::new(), rest.join(" "))
        };
        // The parent is the nearest line above with a smaller indent.
        let parent = out
            .iter()
            .rev()
            .find(|(d, _, _)| *d < depth)
            .map(|(_, s, _)| s.name.clone());
        out.push((
            depth,
            Snapshot {
                name: name.to_string(),
                snaptime: None,
                description: if desc == "no-description" {
                    String::new()
                } else {
                    desc
                },
                parent,
                vmstate: false,
            },
            time,
        ));
    }
    out
}

fn looks_like_date(w: &str) -> bool {
    w.len() == 10 && w.as_bytes()[4] == b'-' && w.as_bytes()[7] == b'-'
}

/// Maps what Proxmox said on a failed snapshot command to a typed error
/// (else the SSH failure stays as it is).
fn classify(vmid: u32, name: &str, e: SshError) -> crate::error::AppError {
    let SshError::RemoteFailed(f) = &e else {
        return e.into();
    };
    match classify_text(vmid, name, f.stderr.trim()) {
        Some(typed) => typed.into(),
        None => e.into(),
    }
}

/// The typed error for what Proxmox said (`qm`'s stderr, or a failed
/// task's log read as [`super::target::task_message`]); `None`: nothing
/// this module knows.
fn classify_text(vmid: u32, name: &str, err: &str) -> Option<SnapshotError> {
    let found = |s: &str| err.lines().any(|l| l.contains(s));
    if found("snapshot feature is not available") {
        return Some(SnapshotError::Unsupported { vmid });
    }
    if found("free space in thin pool") || found("Insufficient free space") {
        // The line that says so (a task log has progress lines around it).
        let line = err
            .lines()
            .find(|l| {
                l.contains("free space in thin pool") || l.contains("Insufficient free space")
            })
            .unwrap_or(err);
        return Some(SnapshotError::PoolFull {
            vmid,
            detail: line.split_whitespace().collect::<Vec<_>>().join(" "),
        });
    }
    if found("does not exist") && found(&format!("snapshot '{name}'")) {
        return Some(SnapshotError::NotFound {
            vmid,
            name: name.into(),
        });
    }
    if found("already used") {
        return Some(SnapshotError::Exists {
            vmid,
            name: name.into(),
        });
    }
    if let Some(l) = err.lines().find_map(|l| l.strip_prefix("VM is locked (")) {
        return Some(SnapshotError::Locked {
            vmid,
            lock: l.trim_end_matches(')').to_string(),
        });
    }
    if found("value may only be") {
        return Some(SnapshotError::NameTooLong { name: name.into() });
    }
    if found("invalid configuration ID") {
        return Some(SnapshotError::InvalidName { name: name.into() });
    }
    None
}

impl Proxmox {
    /// `qm snapshot <vmid> <name> --description <text>` (disks only, no
    /// RAM); a VM on another node: the task `pvesh create
    /// /nodes/<node>/qemu/<vmid>/snapshot --snapname <name> --description <text>`.
    pub fn snapshot(&self, vmid: u32, name: &str, description: &str) -> Result<Taken> {
        check_name(name)?;
        self.settings.ensure_writable(vmid, "snapshot")?;
        // What the task printed, and what went to stderr besides.
        let (output, stderr) = match self.remote_node(vmid)? {
            Some(node) => {
                let args = [s("--snapname"), s(name), s("--description"), s(description)];
                let log =
                    self.snapshot_task(&node, vmid, name, Method::Create, "snapshot", &args)?;
                (log, String::new())
            }
            None => {
                let argv = [
                    s("qm"),
                    s("snapshot"),
                    s(vmid),
                    s(name),
                    s("--description"),
                    s(description),
                ];
                let out = self
                    .run(&argv, LONG_OP_TIMEOUT)
                    .map_err(|e| reclassify(vmid, name, e))?;
                (out.stdout, out.stderr)
            }
        };
        let unfrozen = output
            .lines()
            .find_map(|l| l.strip_prefix("skipping guest filesystem freeze - "))
            .map(str::to_string)
            .or_else(|| {
                // Older Proxmox (qemu-server < 9.1.10) warns this way.
                output
                    .lines()
                    .chain(stderr.lines())
                    .find(|l| l.starts_with("QEMU Guest Agent is not running"))
                    .map(str::to_string)
            });
        Ok(Taken {
            name: name.to_string(),
            unfrozen,
            output,
        })
    }

    /// The VM's snapshots, oldest first (`current` left out), asked of the
    /// node that holds it.
    pub fn list_snapshots(&self, vmid: u32) -> Result<Vec<Snapshot>> {
        let node = self.node_of(vmid)?;
        let timeout = self.timeout(DEFAULT_OP_TIMEOUT);
        let text = self.pvesh_get_on(&node, vmid, "snapshot", &[], timeout)?;
        parse_api(&text).map_err(external)
    }

    /// `qm rollback <vmid> <name>`: the disks go back to the snapshot; the
    /// VM is left stopped (a snapshot without RAM). Another node: the task
    /// `pvesh create …/snapshot/<name>/rollback`.
    pub fn rollback(&self, vmid: u32, name: &str) -> Result<String> {
        check_name(name)?;
        self.settings.ensure_writable(vmid, "roll back")?;
        if let Some(node) = self.remote_node(vmid)? {
            let what = format!("snapshot/{name}/rollback");
            return self.snapshot_task(&node, vmid, name, Method::Create, &what, &[]);
        }
        Ok(self
            .run(&[s("qm"), s("rollback"), s(vmid), s(name)], LONG_OP_TIMEOUT)
            .map_err(|e| reclassify(vmid, name, e))?
            .stdout)
    }

    /// `qm delsnapshot <vmid> <name>`; another node: the task `pvesh
    /// delete …/snapshot/<name>`.
    pub fn delete_snapshot(&self, vmid: u32, name: &str) -> Result<String> {
        check_name(name)?;
        self.settings
            .ensure_writable(vmid, "delete a snapshot of")?;
        if let Some(node) = self.remote_node(vmid)? {
            let what = format!("snapshot/{name}");
            return self.snapshot_task(&node, vmid, name, Method::Delete, &what, &[]);
        }
        Ok(self
            .run(
                &[s("qm"), s("delsnapshot"), s(vmid), s(name)],
                LONG_OP_TIMEOUT,
            )
            .map_err(|e| reclassify(vmid, name, e))?
            .stdout)
    }

    /// A snapshot task on another node; its log as `qm` prints it, its
    /// failure typed from the task log as `qm`'s stderr would be.
    fn snapshot_task(
        &self,
        node: &NodeName,
        vmid: u32,
        name: &str,
        method: Method,
        what: &str,
        args: &[String],
    ) -> Result<String> {
        let path = vm_path(node, vmid, what);
        let timeout = self.timeout(LONG_OP_TIMEOUT);
        let done = self
            .pvesh_task(node, method, &path, args, timeout)
            .map_err(|e| reclassify(vmid, name, e))?;
        self.task_output(&done)
    }
}

/// [`classify`] for an error that already went through `AppError`: what
/// `qm` or a pre-task `pvesh` failure printed, or a failed task's log.
fn reclassify(vmid: u32, name: &str, e: crate::error::AppError) -> crate::error::AppError {
    use crate::error::AppError;
    match e {
        AppError::Ssh(ssh) => classify(vmid, name, ssh),
        AppError::Proxmox(ProxmoxError::TaskFailed {
            node,
            upid,
            exitstatus,
            log_tail,
        }) => match classify_text(vmid, name, &task_message(&log_tail, &exitstatus)) {
            Some(typed) => typed.into(),
            None => ProxmoxError::TaskFailed {
                node,
                upid,
                exitstatus,
                log_tail,
            }
            .into(),
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str) -> String {
        std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/proxmox-cli")
                .join(name),
        )
        .expect("sample")
    }

    #[test]
    fn names_follow_proxmox_rules() {
        assert!(check_name("pve-pre-deploy-20260115-100000").is_ok());
        assert!(check_name("Pre_Install").is_ok());
        for bad in ["pre.deploy", "1abc", "a", "", "-x", "a b", "a;b"] {
            assert!(
                matches!(check_name(bad), Err(SnapshotError::InvalidName { .. })),
                "{bad}"
            );
        }
        assert!(matches!(
            check_name(&"a".repeat(41)),
            Err(SnapshotError::NameTooLong { .. })
        ));
        assert!(check_name(&"a".repeat(40)).is_ok());
        assert!(matches!(
            check_name("Current"),
            Err(SnapshotError::Reserved { .. })
        ));
    }

    #[test]
    fn the_api_list_is_sorted_by_time_without_current() {
        let snaps = parse_api(&sample("pvesh-get-snapshot-111.tree.json")).expect("parses");
        let names: Vec<&str> = snaps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "base",
                "pre-deploy",
                "post-deploy",
                "hotfix-20260118-with-a-long-name"
            ]
        );
        assert_eq!(snaps[0].snaptime, Some(1768471200));
        assert_eq!(snaps[1].parent.as_deref(), Some("base"));
        assert!(snaps[3].vmstate && !snaps[0].vmstate);
        assert!(snaps[3].description.contains('\n'));
        let none = parse_api(&sample("pvesh-get-snapshot-112.no-snapshots.json")).expect("parses");
        assert!(none.is_empty());
        assert!(parse_api("not json").is_err());
    }

    #[test]
    fn listsnapshot_is_read_as_a_tree() {
        let rows = parse_listsnapshot(&sample("qm-listsnapshot-111.tree.txt"));
        let got: Vec<(usize, &str, Option<&str>, &str, &str)> = rows
            .iter()
            .map(|(d, s, t)| {
                (
                    *d,
                    s.name.as_str(),
                    s.parent.as_deref(),
                    t.as_str(),
                    s.description.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (0, "base", None, "2026-01-15 10:00:00", "fresh install"),
                (
                    1,
                    "pre-deploy",
                    Some("base"),
                    "2026-01-16 09:30:12",
                    "before deploy"
                ),
                (
                    2,
                    "post-deploy",
                    Some("pre-deploy"),
                    "2026-01-17 14:05:40",
                    ""
                ),
                (
                    2,
                    "hotfix-20260118-with-a-long-name",
                    Some("pre-deploy"),
                    "2026-01-18 08:00:00",
                    "first line of a multi-line description"
                ),
            ]
        );
        assert!(parse_listsnapshot(&sample("qm-listsnapshot-112.no-snapshots.txt")).is_empty());
    }

    fn failure(stderr: &str) -> SshError {
        SshError::RemoteFailed(Box::new(crate::remote::ssh::RemoteFailure {
            target: "root@pve".into(),
            command: "qm snapshot".into(),
            status: "exit code 255".into(),
            code: Some(255),
            stdout: String::new(),
            stderr: stderr.into(),
        }))
    }

    #[test]
    fn proxmox_errors_become_typed() {
        let e = classify(
            111,
            "pre-deploy",
            failure(&sample(
                "qm-snapshot-111-pre-deploy.thinpool-full.stderr.txt",
            )),
        );
        assert!(e.to_string().contains("thin pool is full"), "{e}");
        assert!(e.to_string().contains("pve/data reached threshold."), "{e}");
        let e = classify(111, "x", failure("snapshot feature is not available\n"));
        assert!(matches!(
            e,
            crate::error::AppError::Snapshot(SnapshotError::Unsupported { vmid: 111 })
        ));
        let e = classify(
            111,
            "pre.deploy",
            failure(&sample("qm-snapshot-111-invalid-name.stderr.txt")),
        );
        assert!(matches!(
            e,
            crate::error::AppError::Snapshot(SnapshotError::InvalidName { .. })
        ));
        let e = classify(
            111,
            "x",
            failure(&sample("qm-snapshot-111-name-too-long.stderr.txt")),
        );
        assert!(matches!(
            e,
            crate::error::AppError::Snapshot(SnapshotError::NameTooLong { .. })
        ));
        let e = classify(111, "nope", failure("snapshot 'nope' does not exist\n"));
        assert!(matches!(
            e,
            crate::error::AppError::Snapshot(SnapshotError::NotFound { .. })
        ));
        let e = classify(111, "x", failure("VM is locked (backup)\n"));
        assert!(e.to_string().contains("locked (backup)"), "{e}");
        // Anything else stays the SSH failure with Proxmox's words.
        let e = classify(111, "x", failure("something new\n"));
        assert!(matches!(e, crate::error::AppError::Ssh(_)));
    }
}
