//! Step 3: wait until the VM answers SSH with the pinned key, following it
//! when the guest agent says its address changed.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::{fact_ip, host_key, Integrate, IntegrateError};
use crate::error::Result;
use crate::remote::ssh::{ssh_banner, SshError};
use crate::workflow::Journal;

pub(super) fn run(c: &mut Integrate<'_>, j: &mut Journal) -> Result<String> {
    let before = fact_ip(j)?;
    let ip = wait_for_ssh(c, j, before)?;
    Ok(if ip == before {
        format!("{ip}:{} answers with the pinned key", c.opts.port)
    } else {
        format!(
            "{ip}:{} answers with the pinned key (moved from {before})",
            c.opts.port
        )
    })
}

/// Waits until `ip` (or where the guest agent says the VM went) answers
/// SSH with the pinned key; returns the address.
pub(super) fn wait_for_ssh(
    c: &mut Integrate<'_>,
    j: &mut Journal,
    mut ip: IpAddr,
) -> Result<IpAddr> {
    let deadline = Instant::now() + c.opts.ssh_wait;
    let mut last;
    loop {
        if ssh_banner(ip, c.opts.port, Duration::from_secs(3)).is_ok() {
            match c
                .ssh(ip)?
                .run(&["true".to_string()], Duration::from_secs(60))
            {
                Ok(_) => return Ok(ip),
                Err(e @ (SshError::HostKeyChanged { .. } | SshError::HostKeyUnknown { .. })) => {
                    return Err(host_key::refused(c, ip, j, e))
                }
                Err(e @ SshError::AuthFailed { .. }) => return Err(e.into()),
                Err(e) => last = e.to_string(),
            }
        } else {
            last = format!("{ip}:{} does not answer SSH", c.opts.port);
        }
        if let Some(now) = c.agent_ip() {
            if now != ip {
                c.reporter.note(&format!(
                    "note: the guest agent now reports {now} (was {ip})"
                ));
                ip = now;
                j.set_fact("ip", ip.to_string())?;
                continue;
            }
        }
        if Instant::now() >= deadline {
            return Err(IntegrateError::SshWaitTimedOut {
                name: c.opts.name.clone(),
                wait: c.opts.ssh_wait,
                last,
            }
            .into());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}
