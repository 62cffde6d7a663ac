//! Step 5: `nixos-rebuild switch --flake .#<name> --target-host`, watching
//! the VM's address while it runs: a switch that restarts networking may
//! hand the VM a new one, and the guest agent says where it went.

use std::net::IpAddr;
use std::time::Duration;

use super::{fact_ip, wait_ssh, Integrate, IntegrateError, VM_CONNECT_TIMEOUT};
use crate::error::{AppError, Result};
use crate::remote::ssh::{self, options};
use crate::runner::{Cmd, RunError, Tool};
use crate::workflow::Journal;

pub(super) fn run(c: &mut Integrate<'_>, j: &mut Journal) -> Result<String> {
    let ip = fact_ip(j)?;
    let cmd = rebuild_cmd(c, ip)?;
    let worker = std::thread::spawn(move || cmd.run());
    // Watch the address while the switch runs: a restarted network may
    // hand the VM a new one.
    let mut misses = 0;
    let mut moved: Option<IpAddr> = None;
    while !worker.is_finished() {
        std::thread::sleep(c.opts.watch_interval);
        if worker.is_finished() || moved.is_some() {
            continue;
        }
        if ssh::ssh_banner(ip, c.opts.port, Duration::from_secs(2)).is_ok() {
            misses = 0;
            continue;
        }
        misses += 1;
        if misses >= 2 {
            if let Some(now) = c.agent_ip().filter(|now| *now != ip) {
                c.reporter.note(&format!(
                    "note: {ip} went away during the switch; the guest agent now reports {now}"
                ));
                moved = Some(now);
            }
        }
    }
    let result = worker
        .join()
        .map_err(|_| IntegrateError::RebuildRunnerStopped)?;
    match result {
        Ok(_) => {
            if let Some(now) = moved {
                j.set_fact("ip", now.to_string())?;
                return Ok(format!(
                    "switched {} (the address moved from {ip} to {now})",
                    c.opts.name
                ));
            }
            Ok(format!("switched {} on {ip}", c.opts.name))
        }
        Err(e @ RunError::Missing { .. }) => Err(e.into()),
        Err(e) => {
            let now = moved.or_else(|| c.agent_ip().filter(|now| *now != ip));
            let Some(now) = now else {
                return Err(rebuild_failed(e));
            };
            // The switch most likely went through and took the address
            // with it: confirm it at the new address (switching to the
            // same configuration again changes nothing).
            j.set_fact("ip", now.to_string())?;
            c.reporter.note(&format!(
                "note: the VM moved from {ip} to {now}; confirming the switch there"
            ));
            let now = wait_ssh::wait_for_ssh(c, j, now)?;
            rebuild_cmd(c, now)?.run().map_err(rebuild_failed)?;
            Ok(format!(
                "switched {} (the address moved from {ip} to {now})",
                c.opts.name
            ))
        }
    }
}

fn rebuild_failed(e: RunError) -> AppError {
    match e {
        RunError::Missing { .. } => e.into(),
        other => IntegrateError::RebuildFailed(other).into(),
    }
}

fn rebuild_cmd(c: &Integrate<'_>, ip: IpAddr) -> Result<Cmd> {
    let mut cmd = Cmd::new(Tool::NixosRebuild)
        .args(["switch", "--flake"])
        .arg(format!(".#{}", c.opts.name))
        .arg("--target-host")
        .arg(format!("{}@{ip}", c.opts.user));
    if c.opts.user != "root" {
        cmd = cmd.arg("--use-remote-sudo");
    }
    Ok(cmd
        .env("NIX_SSHOPTS", nix_sshopts(c)?)
        .cwd(c.root())
        .timeout(c.opts.rebuild_timeout))
}

/// `ssh` options for nixos-rebuild (`NIX_SSHOPTS`): the same pinned
/// known_hosts, strict checking ([`options::nix_sshopts`]). Every value is
/// validated again here, whatever ran before (a resumed run reads
/// hosts.nix afresh).
fn nix_sshopts(c: &Integrate<'_>) -> Result<String> {
    let alias = c.alias()?;
    if !crate::fleet::HostName::is_valid(&alias) {
        return Err(IntegrateError::AliasNotDnsLabel {
            name: c.opts.name.clone(),
            alias,
        }
        .into());
    }
    if !ssh::valid_user(&c.opts.user) {
        return Err(IntegrateError::InvalidUser {
            user: c.opts.user.clone(),
        }
        .into());
    }
    Ok(options::nix_sshopts(&options::NixSsh {
        known_hosts: &c.known_hosts(),
        alias: &alias,
        port: c.opts.port,
        identity: c.opts.identity.as_deref(),
        connect_timeout: VM_CONNECT_TIMEOUT,
    })?)
}
