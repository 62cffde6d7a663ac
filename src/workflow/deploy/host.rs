//! One host's deploy, in a worker thread: record what runs now, copy the
//! closure, snapshot the VM, activate, check health, and roll back when
//! the check fails. Each step is journaled (`<host>/<step>`), so a killed
//! run resumes where it stopped; facts (`<host>.old_path`, ...) survive
//! it too.

use std::time::{Duration, Instant};

use super::{build, Action, Event, Outcome, Shared, Target};
use crate::error::{AppError, Result};
use crate::remote::proxmox::snapshot::SnapshotError;
use crate::remote::ssh::{self, Endpoint, Ssh, SshError};
use crate::workflow::Status;

pub const PROFILE: &str = "/nix/var/nix/profiles/system";
/// Journaled steps of one host, in order (the index is shown as `i/5`).
pub const STEPS: [(&str, &str); 5] = [
    ("current", "record the running system"),
    ("copy", "nix copy the closure"),
    ("snapshot", "Proxmox snapshot"),
    ("activate", "activate"),
    ("health", "health check"),
];
const VM_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const COMMAND_TIMEOUT: Duration = Duration::from_secs(600);
const POLL: Duration = Duration::from_millis(500);

/// What one host's deploy ended with.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HostResult {
    pub host: String,
    pub result: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_generation: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_generation: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_path: Option<String>,
    pub new_path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    pub seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

struct Run<'a> {
    sh: &'a Shared<'a>,
    t: &'a Target,
    path: &'a str,
    address: Option<String>,
    /// One shared SSH connection to the host, dropped after the switch:
    /// only a new connection proves sshd (and the network) came back.
    conn: Option<Ssh>,
}

/// Deploys `t` to `path`; never panics on a host's failure, which is the
/// result.
pub(super) fn deploy(sh: &Shared<'_>, t: &Target, path: &str) -> HostResult {
    let start = Instant::now();
    let mut r = Run {
        sh,
        t,
        path,
        address: None,
        conn: None,
    };
    let mut result = HostResult {
        host: t.name.clone(),
        result: Outcome::Deployed,
        old_generation: None,
        new_generation: None,
        old_path: None,
        new_path: path.to_string(),
        snapshot: None,
        seconds: 0.0,
        error: None,
    };
    let outcome = r.steps();
    let (outcome, error) = match outcome {
        Ok(()) => (Outcome::Deployed, None),
        Err(Failure::BeforeChange(e)) => (Outcome::Failed, Some(e.to_string())),
        Err(Failure::AfterChange(e)) => {
            let why = e.to_string();
            sh.send(Event::Note(format!("{}: {why}; rolling back", t.name)));
            (r.roll_back(), Some(why))
        }
    };
    result.result = outcome;
    result.error = error;
    result.old_path = r.fact("old_path");
    result.old_generation = r.fact("old_generation").and_then(|g| g.parse().ok());
    result.new_generation = r.fact("new_generation").and_then(|g| g.parse().ok());
    result.snapshot = r.fact("snapshot").filter(|s| !s.is_empty());
    result.seconds = start.elapsed().as_secs_f64();
    result
}

/// Failed before anything on the host changed, or after (then it is
/// rolled back).
enum Failure {
    BeforeChange(AppError),
    AfterChange(AppError),
}

impl Run<'_> {
    fn key(&self, step: &str) -> String {
        format!("{}/{step}", self.t.name)
    }

    fn fact(&self, k: &str) -> Option<String> {
        self.sh
            .journal()
            .fact(&format!("{}.{k}", self.t.name))
            .map(str::to_string)
    }

    fn set_fact(&self, k: &str, v: &str) -> Result<()> {
        self.sh
            .journal()
            .set_fact(&format!("{}.{k}", self.t.name), v)
    }

    fn steps(&mut self) -> std::result::Result<(), Failure> {
        use Failure::{AfterChange, BeforeChange};
        self.step(0, |r| r.record_current()).map_err(BeforeChange)?;
        self.step(1, |r| r.copy()).map_err(BeforeChange)?;
        self.step(2, |r| r.snapshot()).map_err(BeforeChange)?;
        self.step(3, |r| r.activate()).map_err(AfterChange)?;
        self.step(4, |r| r.health()).map_err(AfterChange)?;
        Ok(())
    }

    /// Runs step `i` unless the journal has it done; records the outcome.
    fn step(&mut self, i: usize, f: impl FnOnce(&mut Self) -> Result<String>) -> Result<()> {
        let (name, _) = STEPS[i];
        let key = self.key(name);
        let done = self.sh.journal().is_done(&key);
        if done {
            self.sh.step(
                &self.t.name,
                i,
                crate::report::StepStatus::Skipped,
                Some("done earlier".into()),
                None,
            );
            return Ok(());
        }
        self.sh.step(
            &self.t.name,
            i,
            crate::report::StepStatus::Started,
            None,
            None,
        );
        let start = Instant::now();
        let res = f(self);
        let secs = Some(start.elapsed().as_secs_f64());
        match res {
            Ok(detail) => {
                self.sh.journal().record(&key, Status::Done, &detail)?;
                self.sh.step(
                    &self.t.name,
                    i,
                    crate::report::StepStatus::Done,
                    Some(detail),
                    secs,
                );
                Ok(())
            }
            Err(e) => {
                let msg = e.to_string();
                self.sh.journal().record(&key, Status::Failed, &msg)?;
                self.sh.step(
                    &self.t.name,
                    i,
                    crate::report::StepStatus::Failed,
                    Some(msg),
                    secs,
                );
                Err(e)
            }
        }
    }

    /// Where the host answers: a VM's address from the guest agent (or
    /// the neighbour table), else its hostname.
    fn address(&mut self) -> Result<String> {
        if let Some(a) = &self.address {
            return Ok(a.clone());
        }
        let a = match (self.t.vmid, self.sh.proxmox) {
            (Some(vmid), Some(px)) => px.get_ip(vmid)?.ip.to_string(),
            _ => self.t.hostname.clone(),
        };
        self.address = Some(a.clone());
        Ok(a)
    }

    /// The shared connection (opened on first use).
    fn ssh(&mut self) -> Result<&Ssh> {
        let c = match self.conn.take() {
            Some(c) => c,
            None => self.connect()?,
        };
        Ok(self.conn.insert(c))
    }

    /// Closes the shared connection: the next command opens a new one.
    fn reconnect(&mut self) {
        if let Some(mut c) = self.conn.take() {
            c.close();
        }
    }

    fn connect(&mut self) -> Result<Ssh> {
        let host = self.address()?;
        let o = &self.sh.opts;
        let s = Ssh::new(
            Endpoint {
                host,
                user: o.user.clone(),
                port: Some(o.port),
                identity: o.identity.clone(),
            },
            ssh::Options {
                known_hosts: vec![self.sh.known_hosts.clone()],
                connect_timeout: VM_CONNECT_TIMEOUT,
                reuse: true,
            },
        )?;
        Ok(s.with_host_key_alias(&self.t.hostname)?)
    }

    /// `sudo -n` in front, for a login other than root.
    fn as_root(&self, argv: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = Vec::new();
        if self.sh.opts.user != "root" {
            v.extend(["sudo".into(), "-n".into()]);
        }
        v.extend(argv.iter().map(|s| s.to_string()));
        v
    }

    fn remote(&mut self, argv: &[String]) -> Result<String> {
        Ok(self.ssh()?.run(argv, COMMAND_TIMEOUT)?.stdout)
    }

    fn generation(&mut self) -> Result<Option<u64>> {
        let out = self.remote(&strings(&["nix-env", "-p", PROFILE, "--list-generations"]))?;
        Ok(current_generation(&out))
    }

    fn record_current(&mut self) -> Result<String> {
        let old = self.remote(&strings(&["readlink", "/run/current-system"]))?;
        let old = old.trim().to_string();
        build::check_store_path(&old)?;
        let generation = self.generation()?;
        self.set_fact("old_path", &old)?;
        if let Some(g) = generation {
            self.set_fact("old_generation", &g.to_string())?;
        }
        Ok(match generation {
            Some(g) => format!("{old} (generation {g})"),
            None => old,
        })
    }

    fn copy(&mut self) -> Result<String> {
        let address = self.address()?;
        let o = &self.sh.opts;
        let opts = ssh::options::nix_sshopts(&ssh::options::NixSsh {
            known_hosts: &self.sh.known_hosts,
            alias: &self.t.hostname,
            port: o.port,
            identity: o.identity.as_deref(),
            connect_timeout: VM_CONNECT_TIMEOUT,
        })?;
        build::copy(&self.t.name, &o.user, &address, self.path, &opts)?;
        Ok(format!("{} to {address}", self.path))
    }

    fn snapshot(&mut self) -> Result<String> {
        let o = &self.sh.opts;
        let why_not = if self.t.readonly {
            Some("readonly VM: no snapshot")
        } else if !o.snapshot {
            Some("--no-snapshot")
        } else if o.action == Action::DryActivate {
            Some("dry-activate changes nothing")
        } else {
            None
        };
        let (Some(vmid), Some(px), None) = (self.t.vmid, self.sh.proxmox, why_not) else {
            self.set_fact("snapshot", "")?;
            return Ok(why_not.unwrap_or("not a VM: no snapshot").to_string());
        };
        let name = format!("{}{}", super::SNAPSHOT_PREFIX, self.sh.stamp);
        let description = format!("pve deploy: before switching to {}", self.path);
        match px.snapshot(vmid, &name, &description) {
            Ok(taken) => {
                self.set_fact("snapshot", &name)?;
                if let Some(why) = taken.unfrozen {
                    self.sh.send(Event::Note(format!(
                        "note: {}: the snapshot was taken without freezing the guest's filesystems ({why})",
                        self.t.name
                    )));
                }
            }
            Err(AppError::Snapshot(SnapshotError::Unsupported { .. })) if o.allow_no_snapshot => {
                self.sh.send(Event::Note(format!(
                    "note: {}: VM {vmid}'s storage cannot take snapshots; going on without one (--allow-no-snapshot)",
                    self.t.name
                )));
                self.set_fact("snapshot", "")?;
                return Ok("storage cannot snapshot: none taken".into());
            }
            Err(e) => return Err(e),
        }
        let pruned = self.prune(vmid, &name);
        Ok(match pruned {
            0 => name,
            n => format!("{name} ({n} older removed)"),
        })
    }

    /// Deletes `pve-pre-deploy-*` snapshots beyond the newest `keep`; a
    /// failure here is a note, never the deploy's failure.
    fn prune(&self, vmid: u32, taken: &str) -> usize {
        let Some(px) = self.sh.proxmox else { return 0 };
        let keep = self.sh.opts.keep_snapshots.max(1);
        let snaps = match px.list_snapshots(vmid) {
            Ok(s) => s,
            Err(e) => {
                self.sh.send(Event::Note(format!(
                    "note: {}: cannot list snapshots to prune: {e}",
                    self.t.name
                )));
                return 0;
            }
        };
        let ours: Vec<_> = snaps
            .iter()
            .filter(|s| s.name.starts_with(super::SNAPSHOT_PREFIX))
            .collect();
        let excess = ours.len().saturating_sub(keep);
        let mut removed = 0;
        for s in ours.iter().take(excess).filter(|s| s.name != taken) {
            match px.delete_snapshot(vmid, &s.name) {
                Ok(_) => removed += 1,
                Err(e) => self.sh.send(Event::Note(format!(
                    "note: {}: cannot delete old snapshot {}: {e}",
                    self.t.name, s.name
                ))),
            }
        }
        removed
    }

    fn activate(&mut self) -> Result<String> {
        let action = self.sh.opts.action;
        if matches!(action, Action::Switch | Action::Boot) {
            let argv = self.as_root(&["nix-env", "-p", PROFILE, "--set", self.path]);
            self.remote(&argv)?;
        }
        let stc = format!("{}/bin/switch-to-configuration", self.path);
        let argv = self.as_root(&[&stc, action.as_str()]);
        match self.ssh()?.run(&argv, COMMAND_TIMEOUT) {
            Ok(_) => {}
            // A switch that restarts sshd or the network may take the
            // connection with it: the health check says whether it came back.
            Err(SshError::Dropped { .. }) => self.sh.send(Event::Note(format!(
                "note: {}: the connection dropped during the switch; checking the host",
                self.t.name
            ))),
            Err(e) => return Err(e.into()),
        }
        self.reconnect();
        Ok(format!("switch-to-configuration {}", action.as_str()))
    }

    fn health(&mut self) -> Result<String> {
        if self.sh.opts.action == Action::DryActivate {
            return Ok("dry-activate: nothing changed".into());
        }
        let deadline = Instant::now() + self.sh.opts.timeout;
        self.wait_for_ssh(deadline)?;
        let state = self.system_state(deadline)?;
        for check in self.t.health_checks.clone() {
            let argv = strings(&["sh", "-c", &check]);
            let out = self.ssh()?.run_unchecked(&argv, COMMAND_TIMEOUT)?;
            if out.code != Some(0) {
                return Err(super::DeployError::HealthCheckFailed {
                    host: self.t.name.clone(),
                    check,
                    code: out.code,
                    stderr: out.stderr.trim().chars().take(400).collect(),
                }
                .into());
            }
        }
        if let Ok(Some(g)) = self.generation() {
            self.set_fact("new_generation", &g.to_string())?;
        }
        let checks = self.t.health_checks.len();
        Ok(format!(
            "SSH answers with the pinned key; system {state}{}",
            if checks > 0 {
                format!("; {checks} check(s) passed")
            } else {
                String::new()
            }
        ))
    }

    /// Waits until the host answers SSH with its pinned key.
    fn wait_for_ssh(&mut self, deadline: Instant) -> Result<()> {
        loop {
            self.reconnect();
            match self.ssh()?.run(&strings(&["true"]), VM_CONNECT_TIMEOUT * 2) {
                Ok(_) => return Ok(()),
                Err(e @ (SshError::HostKeyChanged { .. } | SshError::HostKeyUnknown { .. })) => {
                    return Err(e.into())
                }
                Err(e) if Instant::now() >= deadline => {
                    return Err(super::DeployError::NoAnswer {
                        host: self.t.name.clone(),
                        secs: self.sh.opts.timeout.as_secs(),
                        last: e.to_string(),
                    }
                    .into())
                }
                Err(_) => std::thread::sleep(POLL),
            }
        }
    }

    /// `systemctl is-system-running`, waited on while the system starts.
    fn system_state(&mut self, deadline: Instant) -> Result<String> {
        loop {
            let out = self.ssh()?.run_unchecked(
                &strings(&["systemctl", "is-system-running"]),
                COMMAND_TIMEOUT,
            )?;
            let state = out.stdout.trim().to_string();
            match state.as_str() {
                "running" => return Ok(state),
                "degraded" if self.sh.opts.allow_degraded => return Ok(state),
                "starting" | "initializing" if Instant::now() < deadline => {
                    std::thread::sleep(POLL)
                }
                _ => {
                    return Err(super::DeployError::SystemState {
                        host: self.t.name.clone(),
                        state: state.chars().take(40).collect(),
                    }
                    .into())
                }
            }
        }
    }

    /// After a failed activation or health check: switch back to the old
    /// system; when the host does not answer, restore the VM's snapshot.
    fn roll_back(&mut self) -> Outcome {
        let name = self.t.name.clone();
        let Some(old) = self.fact("old_path") else {
            return Outcome::Failed;
        };
        match self.switch_back(&old) {
            Ok(()) => {
                self.sh
                    .send(Event::Note(format!("{name}: switched back to {old}")));
                return Outcome::RolledBack;
            }
            Err(e) => self.sh.send(Event::Note(format!(
                "{name}: switching back over SSH failed: {e}"
            ))),
        }
        let snapshot = self.fact("snapshot").filter(|s| !s.is_empty());
        let (Some(vmid), Some(px), Some(snap)) = (self.t.vmid, self.sh.proxmox, snapshot) else {
            self.sh.send(Event::Note(format!(
                "{name}: no snapshot to restore; the host needs a look"
            )));
            return Outcome::Unreachable;
        };
        let restored = px.rollback(vmid, &snap).and_then(|_| {
            let st = px.status(vmid)?;
            if st.status == "stopped" {
                px.start(vmid)?;
            }
            Ok(())
        });
        match restored {
            Ok(()) => {
                self.sh.send(Event::Note(format!(
                    "{name}: VM {vmid} restored to snapshot {snap} and started"
                )));
                Outcome::RestoredSnapshot
            }
            Err(e) => {
                self.sh.send(Event::Note(format!(
                    "{name}: restoring snapshot {snap} of VM {vmid} failed: {e}"
                )));
                Outcome::Unreachable
            }
        }
    }

    /// The old system again, then SSH must answer within the timeout.
    fn switch_back(&mut self, old: &str) -> Result<()> {
        build::check_store_path(old)?;
        let deadline = Instant::now() + self.sh.opts.timeout;
        self.wait_for_ssh(deadline)?;
        let action = self.sh.opts.action;
        if matches!(action, Action::Switch | Action::Boot) {
            let argv = self.as_root(&["nix-env", "-p", PROFILE, "--set", old]);
            self.remote(&argv)?;
        }
        if action != Action::DryActivate {
            let stc = format!("{old}/bin/switch-to-configuration");
            let argv = self.as_root(&[&stc, action.as_str()]);
            match self.ssh()?.run(&argv, COMMAND_TIMEOUT) {
                Ok(_) | Err(SshError::Dropped { .. }) => {}
                Err(e) => return Err(e.into()),
            }
            self.reconnect();
        }
        self.wait_for_ssh(Instant::now() + self.sh.opts.timeout)
    }
}

fn strings(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// The `(current)` generation of `nix-env --list-generations`
/// (`%4u   YYYY-MM-DD HH:MM:SS   (current)`).
pub fn current_generation(text: &str) -> Option<u64> {
    text.lines()
        .filter(|l| l.trim_end().ends_with("(current)"))
        .find_map(|l| l.split_whitespace().next()?.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_current_generation_is_read() {
        let text = "   1   2026-01-15 10:00:00   \n   2   2026-01-16 09:30:12   (current)\n";
        assert_eq!(current_generation(text), Some(2));
        assert_eq!(current_generation("   1   2026-01-15 10:00:00   \n"), None);
        assert_eq!(current_generation(""), None);
    }
}
