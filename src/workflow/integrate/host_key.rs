//! Steps 2 and 7: the VM's host key. Pinned at first contact (from the
//! guest agent, or a fingerprint the user confirmed), and checked again on
//! the VM before it goes into hosts.nix.

use std::net::IpAddr;
use std::time::Duration;

use super::{
    fact_ip, fact_key, normalise_key, with_repository_lock, Integrate, IntegrateError,
    HOST_KEY_FILE, REMOTE_TIMEOUT,
};
use crate::error::{AppError, Result};
use crate::known_hosts::{self, normalise_fingerprint, shown_fingerprint};
use crate::remote::ssh::{self, Endpoint, SshError};
use crate::report::PromptError;
use crate::workflow::Journal;

/// Step 2: pin the key in `vms/known_hosts` under the host's names.
pub(super) fn pin(c: &mut Integrate<'_>, j: &mut Journal) -> Result<String> {
    let ip = fact_ip(j)?;
    let from_agent = match c.vmid() {
        Some(vmid) => c.proxmox().and_then(|p| p.host_key(vmid)),
        None => Err(IntegrateError::NoVmidForAgent.into()),
    };
    let (key, source) = match from_agent {
        Ok(k) => {
            if let Some(fp) = &c.opts.accept_host_key {
                let got = shown_fingerprint(&k);
                if normalise_fingerprint(fp) != got {
                    return Err(IntegrateError::AgentKeyNotAccepted {
                        name: c.opts.name.clone(),
                        got,
                        accepted: normalise_fingerprint(fp),
                    }
                    .into());
                }
            }
            (k, "read through the guest agent".to_string())
        }
        Err(agent_err) => (confirmed_scan(c, ip, agent_err)?, "confirmed by you".into()),
    };
    let names = c.key_names()?;
    crate::workflow::key_owner::refuse_shared_key(&c.loaded, &c.opts.name, &names, &key)?;
    let file = c.known_hosts();
    with_repository_lock(&c.lock, || known_hosts::pin(&file, &names, &key))?;
    j.set_fact("host_key", &key)?;
    Ok(format!(
        "{} ({source}), pinned in {} as {}",
        shown_fingerprint(&key),
        known_hosts::VMS_PATH,
        names.join(",")
    ))
}

/// Without the agent: the key the SSH server shows, only if the user
/// confirmed its fingerprint (`--accept-host-key`, or the prompt).
fn confirmed_scan(c: &mut Integrate<'_>, ip: IpAddr, agent_err: AppError) -> Result<String> {
    let endpoint = Endpoint {
        host: ip.to_string(),
        user: c.opts.user.clone(),
        port: Some(c.opts.port),
        identity: None,
    };
    let keys = ssh::scan(&endpoint, Duration::from_secs(10))?;
    let k = keys
        .iter()
        .find(|k| k.key_type == "ssh-ed25519")
        .ok_or(IntegrateError::NoEd25519Key { ip })?;
    let key = normalise_key(&format!(
        "ssh-ed25519 {}",
        k.line.split_whitespace().nth(2).unwrap_or("")
    ))
    .ok_or(IntegrateError::UnreadableKey { ip })?;
    if let Some(fp) = &c.opts.accept_host_key {
        let accepted = normalise_fingerprint(fp);
        return if accepted == k.fingerprint {
            Ok(key)
        } else {
            Err(IntegrateError::ScannedKeyNotAccepted {
                ip,
                got: k.fingerprint.clone(),
                accepted,
            }
            .into())
        };
    }
    let question = format!(
        "the guest agent could not give the VM's host key ({agent_err}).\n\
         The SSH server at {ip} shows the ED25519 host key\n  {}\n\
         Compare it with the VM console (`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`).\n\
         Is it the same? Type yes to trust it:",
        k.fingerprint
    );
    match c
        .prompt
        .confirm("trusting the VM's host key", &question, Some("yes"))
    {
        Ok(true) => Ok(key),
        // The end of the input is an answer that is not yes.
        Ok(false) => Err(IntegrateError::HostKeyNotConfirmed.into()),
        Err(PromptError::Read(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            Err(IntegrateError::HostKeyNotConfirmed.into())
        }
        Err(PromptError::NoTerminal { .. }) => Err(IntegrateError::HostKeyUnconfirmed {
            agent: Box::new(agent_err),
            ip,
            fingerprint: k.fingerprint.clone(),
        }
        .into()),
        Err(e) => Err(e.into()),
    }
}

/// Step 7: the key the VM itself holds must be the one pinned at first
/// contact.
pub(super) fn verify(c: &mut Integrate<'_>, j: &mut Journal) -> Result<String> {
    let ip = fact_ip(j)?;
    let pinned = fact_key(j)?;
    let out = match c
        .ssh(ip)?
        .run(&["cat".into(), HOST_KEY_FILE.into()], REMOTE_TIMEOUT)
    {
        Ok(o) => o,
        Err(e @ (SshError::HostKeyChanged { .. } | SshError::HostKeyUnknown { .. })) => {
            return Err(refused(c, ip, j, e))
        }
        Err(e) => return Err(e.into()),
    };
    let line = out
        .stdout
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    let got = normalise_key(line).ok_or_else(|| IntegrateError::NoUsableHostKey {
        name: c.opts.name.clone(),
    })?;
    if got != pinned {
        return Err(IntegrateError::HostKeyChangedSincePin {
            name: c.opts.name.clone(),
            got: shown_fingerprint(&got),
            pinned: shown_fingerprint(&pinned),
        }
        .into());
    }
    Ok(format!(
        "{} matches the key pinned at first contact",
        shown_fingerprint(&got)
    ))
}

/// A refusal that names the pinned key.
pub(super) fn refused(c: &Integrate<'_>, ip: IpAddr, j: &Journal, e: SshError) -> AppError {
    IntegrateError::PinnedKeyRefused {
        ip,
        name: c.opts.name.clone(),
        pinned: j
            .fact("host_key")
            .map(shown_fingerprint)
            .unwrap_or_default(),
        source: Box::new(e),
    }
    .into()
}
