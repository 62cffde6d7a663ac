//! `pve deploy`: update running hosts to what the flake says.
//!
//! 1. the hosts, by name, `@tag` or `--all`, in waves (`--wave @canary,@rest`)
//!    ([`select`]); readonly VMs only with `--include-readonly`;
//! 2. `nix build` of every selected toplevel in one invocation ([`build`]);
//! 3. per host, with at most `--parallel` at a time ([`host`]): record the
//!    running system (`readlink /run/current-system`, generation), `nix
//!    copy` the closure (pinned host key), take a Proxmox snapshot
//!    `pve-pre-deploy-<UTC time>` (the newest N kept), activate
//!    (`nix-env --set`, `switch-to-configuration <action>`), check health
//!    (SSH with the pinned key, `systemctl is-system-running`, the host's
//!    `deploy.healthCheck` commands);
//! 4. a failed host is switched back to its old system; one that does not
//!    answer within the timeout is rolled back to its snapshot (`qm
//!    rollback`, then started) — and the remaining waves do not start.
//!
//! One journal for the run (`vms/.journal/deploy-run.json`): the plan, the
//! built paths, every host's steps and facts, so a killed run resumes
//! where it stopped. Worker threads report through a channel; only the
//! calling thread talks to the [`Reporter`].

mod build;
mod error;
mod host;
mod select;

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

pub use build::{check_store_path, installable};
pub use error::DeployError;
pub use host::{current_generation, HostResult};
pub use select::{select, Target};

use crate::error::Result;
use crate::fleet::Loaded;
use crate::remote::proxmox::Proxmox;
use crate::report::{Reporter, StepEvent, StepStatus, Task};
use crate::workflow::{Journal, Status};

pub const WORKFLOW: &str = "deploy";
/// The journal's "host": one journal for the whole run.
pub const RUN: &str = "run";
/// Snapshots pve deploy takes (and prunes) start with this.
pub const SNAPSHOT_PREFIX: &str = "pve-pre-deploy-";

/// What `switch-to-configuration` is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Switch,
    Boot,
    Test,
    DryActivate,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Switch => "switch",
            Action::Boot => "boot",
            Action::Test => "test",
            Action::DryActivate => "dry-activate",
        }
    }
}

/// How a host's deploy ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Deployed,
    /// Failed before anything on the host changed.
    Failed,
    /// Failed after the switch, and switched back to the old system.
    RolledBack,
    /// Did not answer after the switch: the VM's snapshot was restored.
    RestoredSnapshot,
    /// Neither switching back nor a snapshot could help: look at it.
    Unreachable,
    /// An earlier host failed, so this one was left alone.
    NotStarted,
}

impl Outcome {
    pub fn describe(self) -> &'static str {
        match self {
            Outcome::Deployed => "deployed",
            Outcome::Failed => "failed (unchanged)",
            Outcome::RolledBack => "FAILED, rolled back",
            Outcome::RestoredSnapshot => "FAILED, snapshot restored",
            Outcome::Unreachable => "FAILED, unreachable",
            Outcome::NotStarted => "not started",
        }
    }
}

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct Options {
    pub action: Action,
    pub parallel: usize,
    pub snapshot: bool,
    pub keep_snapshots: usize,
    /// Go on without a snapshot when a VM's storage cannot take one.
    pub allow_no_snapshot: bool,
    pub allow_degraded: bool,
    /// How long a host may take to answer after the switch.
    pub timeout: Duration,
    pub user: String,
    pub port: u16,
    pub identity: Option<PathBuf>,
}

/// The run, as the journal keeps it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Plan {
    pub waves: Vec<Vec<Target>>,
    pub action: Action,
    /// UTC time of the run, in the snapshot names.
    pub stamp: String,
}

impl Plan {
    pub fn hosts(&self) -> impl Iterator<Item = &Target> {
        self.waves.iter().flatten()
    }

    pub fn save(&self, j: &mut Journal) -> Result<()> {
        let text = serde_json::to_string(self)
            .map_err(crate::workflow::journal::JournalError::Serialize)?;
        j.set_fact("plan", text)
    }

    pub fn load(j: &Journal) -> Result<Plan> {
        let incomplete = || DeployError::JournalIncomplete {
            journal: Journal::path_for(std::path::Path::new(""), WORKFLOW, RUN),
            fact: "plan",
        };
        let text = j.fact("plan").ok_or_else(incomplete)?;
        Ok(serde_json::from_str(text).map_err(|_| incomplete())?)
    }
}

/// `YYYYMMDD-HHMMSS` in UTC.
pub fn utc_stamp(now: std::time::SystemTime) -> String {
    let secs = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = ((secs / 86400) as i64, secs % 86400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// What worker threads tell the calling thread.
pub(crate) enum Event {
    Started(String),
    Step {
        host: String,
        index: usize,
        status: StepStatus,
        detail: Option<String>,
        seconds: Option<f64>,
    },
    Note(String),
    Finished(Box<HostResult>),
}

/// What every worker shares.
pub(crate) struct Shared<'a> {
    opts: &'a Options,
    proxmox: Option<&'a Proxmox>,
    known_hosts: PathBuf,
    stamp: String,
    journal: &'a Mutex<Journal>,
    tx: Sender<Event>,
}

impl Shared<'_> {
    fn journal(&self) -> MutexGuard<'_, Journal> {
        self.journal.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn send(&self, e: Event) {
        // The receiver lives as long as the run: a failed send means the
        // run is over anyway.
        let _ = self.tx.send(e);
    }

    fn step(
        &self,
        host: &str,
        index: usize,
        status: StepStatus,
        detail: Option<String>,
        seconds: Option<f64>,
    ) {
        self.send(Event::Step {
            host: host.to_string(),
            index,
            status,
            detail,
            seconds,
        });
    }
}

/// Builds, then deploys wave after wave; returns every host's result (a
/// failed host is a result, not an error). The journal is removed when
/// every host deployed; otherwise it stays for `--resume`, with the
/// failed hosts' steps cleared so they start afresh.
pub fn run(
    loaded: &Loaded,
    opts: &Options,
    plan: &Plan,
    mut journal: Journal,
    report: &dyn Reporter,
) -> Result<Vec<HostResult>> {
    let _lock = journal.lock()?;
    if journal.fact("plan").is_none() {
        plan.save(&mut journal)?;
    }
    let paths = build_all(loaded, plan, &mut journal, report)?;
    let needs_proxmox = plan.hosts().any(|t| t.vmid.is_some());
    let proxmox = if needs_proxmox {
        Some(Proxmox::from_loaded(loaded)?)
    } else {
        None
    };
    let journal = Mutex::new(journal);
    let mut results: Vec<HostResult> = Vec::new();
    let mut stopped = false;
    for wave in &plan.waves {
        if stopped {
            results.extend(wave.iter().map(|t| not_started(t, &paths)));
            continue;
        }
        let (tx, rx) = mpsc::channel();
        let shared = Shared {
            opts,
            proxmox: proxmox.as_ref(),
            known_hosts: loaded.root_dir.join(crate::known_hosts::VMS_PATH),
            stamp: plan.stamp.clone(),
            journal: &journal,
            tx,
        };
        let wave_results = run_wave(&shared, wave, &paths, &rx, report)?;
        stopped = wave_results.iter().any(|r| r.result != Outcome::Deployed);
        results.extend(wave_results);
    }
    let mut journal = journal.into_inner().unwrap_or_else(|p| p.into_inner());
    if results.iter().all(|r| r.result == Outcome::Deployed) {
        journal.finish()?;
    } else {
        for r in results.iter().filter(|r| r.result != Outcome::Deployed) {
            let mine = format!("{}/", r.host);
            journal.steps.retain(|k, _| !k.starts_with(&mine));
            let facts = format!("{}.", r.host);
            journal
                .facts
                .retain(|k, _| !k.starts_with(&facts) || k.ends_with(".path"));
        }
        journal.save()?;
    }
    if let Some(px) = proxmox {
        px.close();
    }
    Ok(results)
}

/// `nix build` once for every host (skipped on resume when done).
fn build_all(
    loaded: &Loaded,
    plan: &Plan,
    journal: &mut Journal,
    report: &dyn Reporter,
) -> Result<BTreeMap<String, String>> {
    let names: Vec<String> = plan.hosts().map(|t| t.name.clone()).collect();
    if !journal.is_done("build") {
        let task = report.task(&format!(
            "nix build: {} ({})",
            crate::plural::plural(names.len(), "system"),
            names.join(", ")
        ));
        let paths = build::build(&loaded.root_dir, &names)?;
        for (n, p) in names.iter().zip(&paths) {
            journal.facts.insert(format!("{n}.path"), p.clone());
        }
        journal.record(
            "build",
            Status::Done,
            crate::plural::plural(names.len(), "system"),
        )?;
        task.done();
    }
    let mut paths = BTreeMap::new();
    for n in &names {
        let p =
            journal
                .fact(&format!("{n}.path"))
                .ok_or_else(|| DeployError::JournalIncomplete {
                    journal: Journal::path_for(std::path::Path::new(""), WORKFLOW, RUN),
                    fact: "path",
                })?;
        check_store_path(p)?;
        paths.insert(n.clone(), p.to_string());
    }
    Ok(paths)
}

fn not_started(t: &Target, paths: &BTreeMap<String, String>) -> HostResult {
    HostResult {
        host: t.name.clone(),
        result: Outcome::NotStarted,
        old_generation: None,
        new_generation: None,
        old_path: None,
        new_path: paths.get(&t.name).cloned().unwrap_or_default(),
        snapshot: None,
        seconds: 0.0,
        error: None,
    }
}

/// One wave: at most `parallel` hosts at a time; after a failure no new
/// host starts (those running finish).
fn run_wave(
    shared: &Shared<'_>,
    wave: &[Target],
    paths: &BTreeMap<String, String>,
    rx: &mpsc::Receiver<Event>,
    report: &dyn Reporter,
) -> Result<Vec<HostResult>> {
    let queue: Mutex<VecDeque<&Target>> = Mutex::new(wave.iter().collect());
    let stop = AtomicBool::new(false);
    let workers = shared.opts.parallel.clamp(1, wave.len().max(1));
    let mut results: Vec<HostResult> = Vec::new();
    let mut tasks: BTreeMap<String, Box<dyn Task>> = BTreeMap::new();
    let panicked = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                let (queue, stop) = (&queue, &stop);
                scope.spawn(move || loop {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let next = queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
                    let Some(t) = next else { break };
                    let path = paths.get(&t.name).map(String::as_str).unwrap_or("");
                    shared.send(Event::Started(t.name.clone()));
                    let r = host::deploy(shared, t, path);
                    if r.result != Outcome::Deployed {
                        stop.store(true, Ordering::SeqCst);
                    }
                    shared.send(Event::Finished(Box::new(r)));
                })
            })
            .collect();
        loop {
            let all_done = handles.iter().all(|h| h.is_finished());
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(e) => show(e, shared, report, &mut tasks, &mut results),
                Err(_) if all_done => break,
                Err(_) => {}
            }
        }
        while let Ok(e) = rx.try_recv() {
            show(e, shared, report, &mut tasks, &mut results);
        }
        handles.into_iter().any(|h| h.join().is_err())
    });
    if panicked {
        return Err(DeployError::WorkerPanicked.into());
    }
    let left = queue.into_inner().unwrap_or_else(|p| p.into_inner());
    results.extend(left.into_iter().map(|t| not_started(t, paths)));
    // In the wave's order, whatever order they finished in.
    results.sort_by_key(|r| wave.iter().position(|t| t.name == r.host));
    Ok(results)
}

/// Shows one worker event through the reporter.
fn show(
    e: Event,
    shared: &Shared<'_>,
    report: &dyn Reporter,
    tasks: &mut BTreeMap<String, Box<dyn Task>>,
    results: &mut Vec<HostResult>,
) {
    match e {
        Event::Started(host) => {
            let msg = format!("{host}: deploying ({})", shared.opts.action.as_str());
            tasks.insert(host, report.task(&msg));
        }
        Event::Step {
            host,
            index,
            status,
            detail,
            seconds,
        } => {
            let (step, title) = host::STEPS[index];
            let title = format!("{host}: {title}");
            report.step(&StepEvent {
                workflow: WORKFLOW,
                host: &host,
                step,
                title: &title,
                index: index + 1,
                total: host::STEPS.len(),
                status,
                detail: detail.as_deref(),
                seconds,
                slow: false,
            });
        }
        Event::Note(text) => report.note(&text),
        Event::Finished(r) => {
            if let Some(task) = tasks.remove(&r.host) {
                if r.result == Outcome::Deployed {
                    task.done();
                }
            }
            results.push(*r);
        }
    }
}

/// The summary table: host, old → new generation, result, time.
pub fn summary_table(results: &[HostResult]) -> String {
    let gen = |g: Option<u64>| g.map_or("?".to_string(), |g| g.to_string());
    let rows: Vec<[String; 4]> = results
        .iter()
        .map(|r| {
            let generation = match r.result {
                Outcome::NotStarted => String::new(),
                _ => format!("{} → {}", gen(r.old_generation), gen(r.new_generation)),
            };
            [
                r.host.clone(),
                generation,
                r.result.describe().to_string(),
                format!("{:.1}s", r.seconds),
            ]
        })
        .collect();
    let head = ["host", "generation", "result", "time"];
    let width = |i: usize| {
        rows.iter()
            .map(|r| r[i].chars().count())
            .chain([head[i].len()])
            .max()
            .unwrap_or(0)
    };
    let w = [width(0), width(1), width(2)];
    let line = |c: [&str; 4]| {
        let pad =
            |s: &str, n: usize| format!("{s}{}", " ".repeat(n.saturating_sub(s.chars().count())));
        format!(
            "{}  {}  {}  {}\n",
            pad(c[0], w[0]),
            pad(c[1], w[1]),
            pad(c[2], w[2]),
            c[3]
        )
    };
    let mut out = line(head);
    for r in &rows {
        out.push_str(&line([&r[0], &r[1], &r[2], &r[3]]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_utc_and_make_valid_snapshot_names() {
        let t = std::time::UNIX_EPOCH + Duration::from_secs(1_768_471_200);
        assert_eq!(utc_stamp(t), "20260115-100000");
        let t = std::time::UNIX_EPOCH + Duration::from_secs(951_782_400 + 86399);
        assert_eq!(utc_stamp(t), "20000229-235959");
        let name = format!("{SNAPSHOT_PREFIX}{}", utc_stamp(t));
        assert!(crate::remote::proxmox::snapshot::check_name(&name).is_ok());
    }
}
