//! Step 6: Tailscale: a one-off tagged key minted with OAuth client
//! credentials, `tailscale up` with the key on stdin (skipped when the VM
//! is already enrolled).

use super::{fact_ip, Integrate, IntegrateError, REMOTE_TIMEOUT};
use crate::error::Result;
use crate::workflow::Journal;

pub(super) fn run(c: &mut Integrate<'_>, j: &mut Journal) -> Result<String> {
    if c.opts.skip_tailscale {
        return Ok("skipped (--skip-tailscale)".into());
    }
    let ip = fact_ip(j)?;
    let ssh = c.ssh(ip)?;
    let status = ssh.run_unchecked(
        &c.as_root(&["tailscale", "status", "--json"]),
        REMOTE_TIMEOUT,
    )?;
    if status.code == Some(127) {
        return Err(IntegrateError::TailscaleMissing {
            name: c.opts.name.clone(),
            stderr: status.stderr.trim().to_string(),
        }
        .into());
    }
    if status.code == Some(0) {
        let state = serde_json::from_str::<serde_json::Value>(&status.stdout)
            .ok()
            .and_then(|v| v.get("BackendState")?.as_str().map(str::to_string));
        if state.as_deref() == Some("Running") {
            return Ok("already enrolled (tailscale status: Running)".into());
        }
    }
    let cfg = crate::render::sops::config_path(&c.loaded)
        .map(|p| c.root().join(p))
        .unwrap_or_else(|_| c.root().join(crate::secrets::DEFAULT_SOPS_YAML));
    let sops = crate::secrets::sops::Sops::new(cfg);
    let file = c.root().join(&c.opts.tailscale_credentials);
    let client = crate::tailscale::credentials(Some((&sops, &file)))?;
    let hostname = c.alias()?;
    let req = crate::tailscale::KeyRequest::for_host(&hostname, c.opts.tailscale_tags.clone());
    let key = crate::tailscale::Api::from_env().mint(&client, &req)?;
    let mut up = crate::tailscale::UpOptions::new(&hostname, c.opts.tailscale_tags.clone());
    up.sudo = c.opts.user != "root";
    let cmd = crate::tailscale::up_command(&key, &up);
    ssh.run_with_stdin(&cmd.argv, &cmd.stdin, REMOTE_TIMEOUT)?;
    Ok(format!(
        "enrolled as {hostname} ({}), with a one-off key",
        c.opts.tailscale_tags.join(",")
    ))
}
