//! The journal of a workflow run: which steps are done, and what they
//! learned (an IP, a pinned fingerprint), written atomically after every
//! step under `vms/.journal/`, so a run that died at step 5 resumes at step 5.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{AppError, Classify, Kind};

pub const JOURNAL_DIR: &str = "vms/.journal";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Done,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub status: Status,
    /// What the step reported (shown by `--status`).
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Journal {
    pub workflow: String,
    pub host: String,
    /// Step name → outcome, for the steps that ran.
    pub steps: BTreeMap<String, StepRecord>,
    /// Facts learned along the way (`ip`, `host_key`, ...): later steps and
    /// resumed runs read them.
    pub facts: BTreeMap<String, String>,
    #[serde(skip)]
    path: PathBuf,
}

impl Journal {
    pub fn path_for(root: &Path, workflow: &str, host: &str) -> PathBuf {
        root.join(JOURNAL_DIR)
            .join(format!("{workflow}-{host}.json"))
    }

    /// A fresh journal (not yet written).
    pub fn new(root: &Path, workflow: &str, host: &str) -> Journal {
        Journal {
            workflow: workflow.into(),
            host: host.into(),
            steps: BTreeMap::new(),
            facts: BTreeMap::new(),
            path: Journal::path_for(root, workflow, host),
        }
    }

    /// The journal on disk, if a run left one.
    pub fn load(root: &Path, workflow: &str, host: &str) -> Result<Option<Journal>, AppError> {
        let path = Journal::path_for(root, workflow, host);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(JournalError::Read { path, source }.into()),
        };
        let mut j: Journal =
            serde_json::from_str(&text).map_err(|source| JournalError::Corrupt {
                path: path.clone(),
                workflow: workflow.to_string(),
                source,
            })?;
        if j.workflow != workflow || j.host != host {
            return Err(JournalError::OtherRun { path }.into());
        }
        j.path = path;
        Ok(Some(j))
    }

    pub fn is_done(&self, step: &str) -> bool {
        self.steps
            .get(step)
            .is_some_and(|s| s.status == Status::Done)
    }

    pub fn record(
        &mut self,
        step: &str,
        status: Status,
        detail: impl Into<String>,
    ) -> Result<(), AppError> {
        self.steps.insert(
            step.into(),
            StepRecord {
                status,
                detail: detail.into(),
            },
        );
        self.save()
    }

    pub fn fact(&self, key: &str) -> Option<&str> {
        self.facts.get(key).map(String::as_str)
    }

    pub fn set_fact(&mut self, key: &str, value: impl Into<String>) -> Result<(), AppError> {
        self.facts.insert(key.into(), value.into());
        self.save()
    }

    pub fn save(&self) -> Result<(), AppError> {
        let mut text = serde_json::to_string_pretty(self).map_err(JournalError::Serialize)?;
        text.push('\n');
        crate::fsutil::write_atomic(&self.path, text.as_bytes())
    }

    /// Takes the lock for this workflow and host, or fails at once: two
    /// `pve integrate web1` at the same time would otherwise race each other
    /// through the same steps. The lock file stays (removing it would let a
    /// third run lock a different file); the folder's `.gitignore` keeps
    /// run state out of the repository.
    pub fn lock(&self) -> Result<RunLock, AppError> {
        let dir = self.path.parent().unwrap_or_else(|| Path::new("."));
        let io = |what: &'static str, source: std::io::Error| JournalError::Dir {
            what,
            dir: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(|e| io("create", e))?;
        let ignore = dir.join(".gitignore");
        if !ignore.exists() {
            std::fs::write(
                &ignore,
                "# Run state of pve workflows (journals, locks).\n*\n",
            )
            .map_err(|e| io("write .gitignore in", e))?;
        }
        let path = self.path.with_extension("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| io("open a lock file in", e))?;
        // No wait beyond the grace: a second run for the same host is
        // refused, but not for a lock a forked child holds for a moment.
        match crate::fsutil::lock_exclusive(&file, std::time::Duration::ZERO) {
            Ok(true) => Ok(RunLock { _file: file }),
            Ok(false) => Err(JournalError::Running {
                workflow: self.workflow.clone(),
                host: self.host.clone(),
                path,
            }
            .into()),
            Err(e) => Err(io("lock a file in", e).into()),
        }
    }

    /// Removes the journal once the workflow has finished.
    pub fn finish(self) -> Result<(), AppError> {
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(JournalError::Remove {
                path: self.path.clone(),
                source,
            }
            .into()),
        }
    }
}

/// Held while a workflow runs for one host; released when dropped (or when
/// the process dies).
pub struct RunLock {
    _file: File,
}

/// How reading, writing or locking a workflow's journal can fail.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the journal {} is corrupt: {source}", path.display())]
    Corrupt {
        path: PathBuf,
        workflow: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("the journal {} belongs to another run", path.display())]
    OtherRun { path: PathBuf },
    #[error("{0}")]
    Serialize(#[source] serde_json::Error),
    #[error("cannot {what} {}: {source}", dir.display())]
    Dir {
        what: &'static str,
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("another `pve {workflow}` for `{host}` is running ({} is locked)", path.display())]
    Running {
        workflow: String,
        host: String,
        path: PathBuf,
    },
    #[error("cannot remove {}: {source}", path.display())]
    Remove {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Classify for JournalError {
    fn kind(&self) -> Kind {
        Kind::Input
    }
    fn help(&self) -> Option<String> {
        match self {
            JournalError::Corrupt { workflow, .. } => Some(format!(
                "delete it to start `{workflow}` from the first step"
            )),
            JournalError::OtherRun { .. } => {
                Some("delete it to start from the first step".to_string())
            }
            JournalError::Running { workflow, host, .. } => Some(format!(
                "let it finish; if it stops, `pve {workflow} {host} --resume` continues it"
            )),
            JournalError::Read { .. }
            | JournalError::Serialize(_)
            | JournalError::Dir { .. }
            | JournalError::Remove { .. } => None,
        }
    }
}
