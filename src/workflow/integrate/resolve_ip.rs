//! Step 1: the VM's IP address, from the command line, `tofu output`, or
//! Proxmox (the guest agent, else the neighbour table).

use std::net::IpAddr;

use super::Integrate;
use crate::error::Result;
use crate::remote::proxmox::IpSource;
use crate::workflow::Journal;

pub(super) fn run(c: &mut Integrate<'_>, j: &mut Journal) -> Result<String> {
    let (ip, source) = if let Some(ip) = c.opts.ip {
        (ip, "the command line".to_string())
    } else if let Some(ip) = tofu_ip(c) {
        (ip, "`tofu output`".to_string())
    } else {
        let vmid = c.require_vmid()?;
        let r = c.proxmox()?.get_ip(vmid)?;
        let src = match r.source {
            IpSource::GuestAgent => "the guest agent",
            IpSource::NeighbourTable => "the Proxmox host's neighbour table",
        };
        (r.ip, format!("{src} of VM {vmid}"))
    };
    j.set_fact("ip", ip.to_string())?;
    Ok(format!("{ip} (from {source})"))
}

/// `<name>_ip` from `tofu output -json`, when OpenTofu's folder is set up
/// and the output has a value; anything else falls through.
fn tofu_ip(c: &Integrate<'_>) -> Option<IpAddr> {
    let dir = crate::tofu::workdir(c.root()).ok()?;
    let tofu = crate::tofu::Tofu::new(dir, None);
    if !tofu.is_initialised() {
        return None;
    }
    let out = tofu
        .output(true, Some(&format!("{}_ip", c.opts.name)))
        .ok()?;
    let v: serde_json::Value = serde_json::from_str(out.trim()).ok()?;
    v.as_str()?.parse().ok()
}
