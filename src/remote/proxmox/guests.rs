//! What `pve status` reads from Proxmox: every guest of the cluster with
//! its usage (one `pvesh get /cluster/resources`), and per running VM the
//! details `/cluster/resources` lacks (`onboot` from `qm config`, an
//! address from the guest agent).
//!
//! Both answers are untrusted: numbers are read leniently (Perl may print
//! them as strings), a missing field is `None` (guests without RRD data
//! have only `id`, `node`, `status`, `type`, `vmid`), and the guest
//! agent's word is checked as `get_ip` checks it (only the VM's own NIC,
//! never loopback, link-local or the Proxmox host itself).

use std::net::IpAddr;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value as Json;

use super::parse::{self, ParseError};
use super::{AddressPolicy, Proxmox};
use crate::error::Result;

/// A guest agent answer larger than this is not read (a sane one is a few
/// KiB even with dozens of interfaces).
pub const MAX_AGENT_ANSWER: usize = 256 * 1024;

/// One guest of `/cluster/resources` with what it uses.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Guest {
    pub vmid: u32,
    /// `qemu` or `lxc`.
    pub kind: String,
    pub node: String,
    pub status: String,
    pub name: Option<String>,
    pub template: bool,
    /// Split at `;` (Proxmox's separator; `,` and spaces are read too).
    pub tags: Vec<String>,
    pub uptime_s: Option<u64>,
    /// Share of `maxcpu` in use, 0.0 ..= 1.0.
    pub cpu: Option<f64>,
    pub maxcpu: Option<u64>,
    pub mem: Option<u64>,
    pub maxmem: Option<u64>,
    pub maxdisk: Option<u64>,
    pub lock: Option<String>,
}

fn num(v: Option<&Json>) -> Option<u64> {
    match v? {
        Json::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && *f >= 0.0)
                .map(|f| f as u64)
        }),
        Json::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A 0/1 flag (`template`), also as a JSON boolean.
fn flag(v: Option<&Json>) -> bool {
    match v {
        Some(Json::Bool(b)) => *b,
        other => num(other) == Some(1),
    }
}

fn float(v: Option<&Json>) -> Option<f64> {
    let f = match v? {
        Json::Number(n) => n.as_f64(),
        Json::String(s) => s.trim().parse().ok(),
        _ => None,
    }?;
    f.is_finite().then_some(f.max(0.0))
}

fn text(v: Option<&Json>) -> Option<String> {
    match v? {
        Json::String(s) => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `pvesh get /cluster/resources --type vm --output-format json`, every
/// field `pve status` shows, sorted by VMID: the one parser of this answer
/// (where a VM lives, what it is called, what it uses).
pub fn cluster_guests(answer: &str) -> Result<Vec<Guest>, ParseError> {
    const W: &str = "pvesh get /cluster/resources";
    let perr = |detail: &str| ParseError {
        what: W,
        detail: detail.to_string(),
    };
    let json: Json = serde_json::from_str(answer.trim()).map_err(|e| perr(&e.to_string()))?;
    let Json::Array(items) = json else {
        return Err(perr("expected a JSON array"));
    };
    let mut out = Vec::new();
    for item in items {
        let kind = text(item.get("type")).unwrap_or_default();
        if kind != "qemu" && kind != "lxc" {
            continue;
        }
        let vmid = num(item.get("vmid"))
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| perr("a guest without a vmid"))?;
        out.push(Guest {
            vmid,
            kind,
            node: text(item.get("node")).unwrap_or_default(),
            status: text(item.get("status")).unwrap_or_default(),
            name: text(item.get("name")),
            template: flag(item.get("template")),
            tags: text(item.get("tags"))
                .map(|t| split_tags(&t))
                .unwrap_or_default(),
            uptime_s: num(item.get("uptime")),
            cpu: float(item.get("cpu")),
            maxcpu: num(item.get("maxcpu")),
            mem: num(item.get("mem")),
            maxmem: num(item.get("maxmem")),
            maxdisk: num(item.get("maxdisk")),
            lock: text(item.get("lock")),
        });
    }
    out.sort_by_key(|g| g.vmid);
    Ok(out)
}

/// Proxmox keeps tags as one string separated by `;` (older versions and
/// hand edits use `,` or spaces).
pub fn split_tags(tags: &str) -> Vec<String> {
    tags.split([';', ',', ' '])
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

/// What `qm config` and the guest agent add about one VM.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GuestDetails {
    /// `onboot` of the config (absent = off); `None` when the config
    /// could not be read.
    pub on_boot: Option<bool>,
    /// The VM's address as the guest agent reports it on the VM's own NIC;
    /// `None` when there is no agent, it does not answer, or it names no
    /// acceptable address.
    pub ip: Option<IpAddr>,
}

impl Proxmox {
    /// Every guest of the cluster with its usage: one round trip.
    pub fn guests(&self) -> Result<Vec<Guest>> {
        cluster_guests(&self.cluster_resources_answer()?).map_err(super::external)
    }

    /// `onboot` and the agent's address of VM `vmid` on `node` (the node
    /// pve talks to: `qm`; another node: `pvesh get /nodes/<node>/...`),
    /// each query bounded by `timeout`. Never fails: what cannot be read is
    /// `None` (an unreachable agent is normal for a booting VM).
    pub fn guest_details(
        &self,
        vmid: u32,
        node: &str,
        running: bool,
        timeout: Duration,
    ) -> GuestDetails {
        let Ok(cfg) = self.config_on(vmid, node, timeout) else {
            return GuestDetails::default();
        };
        let on_boot = Some(cfg.get("onboot").is_some_and(|v| v.trim() == "1"));
        let ip = if running && cfg.agent_enabled() {
            self.agent_ip(vmid, node, &cfg, timeout)
        } else {
            None
        };
        GuestDetails { on_boot, ip }
    }

    fn agent_ip(
        &self,
        vmid: u32,
        node: &str,
        cfg: &parse::VmConfig,
        timeout: Duration,
    ) -> Option<IpAddr> {
        let answer = self.agent_interfaces_on(vmid, node, timeout).ok()?;
        if answer.len() > MAX_AGENT_ANSWER {
            return None;
        }
        let ifaces = parse::guest_interfaces(&answer).ok()?;
        let macs: Vec<String> = cfg
            .nets()
            .into_iter()
            .filter(|n| n.id == "net0" && !n.mac.is_empty())
            .map(|n| n.mac)
            .collect();
        let policy = AddressPolicy::for_proxmox(&self.settings.endpoint.host);
        super::pick_agent_ip(&ifaces, &macs, &policy).map(|(ip, _)| ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REF: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/proxmox-cli/");

    #[test]
    fn reads_the_reference_answers_with_every_usage_field() {
        let text = std::fs::read_to_string(format!("{REF}cluster-resources.json")).expect("sample");
        let g = cluster_guests(&text).expect("parses");
        let ids: Vec<u32> = g.iter().map(|x| x.vmid).collect();
        assert_eq!(ids, vec![100, 105, 111, 112, 120, 130, 9000]);
        let web = &g[2];
        assert_eq!(web.name.as_deref(), Some("nixos-web01"));
        assert_eq!(web.tags, vec!["nixos", "web"]);
        assert_eq!(web.maxcpu, Some(4));
        assert_eq!(web.maxmem, Some(4 * 1024 * 1024 * 1024));
        assert_eq!(web.maxdisk, Some(64 * 1024 * 1024 * 1024));
        assert_eq!(web.uptime_s, Some(86523));
        assert!(web
            .cpu
            .is_some_and(|c| (c - 0.0195847362917486).abs() < 1e-12));
        // 130: a guest without RRD data has no usage at all.
        assert_eq!(g[5].node, "pve2");
        assert_eq!(
            (g[5].name.as_ref(), g[5].maxcpu, g[5].uptime_s),
            (None, None, None)
        );
        assert!(g[6].template);
        let pve8 =
            std::fs::read_to_string(format!("{REF}cluster-resources.pve8.json")).expect("sample");
        assert!(cluster_guests(&pve8).is_ok());
    }

    #[test]
    fn containers_locks_and_guests_without_rrd() {
        let text = std::fs::read_to_string(format!("{REF}cluster-resources.json")).expect("sample");
        let r = cluster_guests(&text).expect("parses");
        assert_eq!(r[1].kind, "lxc");
        assert_eq!(r[5].name, None);
        assert_eq!(r[4].lock.as_deref(), Some("backup"));
        // Perl may print a flag as a JSON boolean.
        let t = cluster_guests(r#"[{"type":"qemu","vmid":9000,"template":true},{"type":"qemu","vmid":9001,"template":"1"}]"#)
            .expect("parses");
        assert!(t[0].template && t[1].template);
    }

    #[test]
    fn numbers_as_strings_and_nonsense_are_read_leniently() {
        let g = cluster_guests(
            r#"[{"type":"qemu","vmid":"7","maxcpu":"2","cpu":"NaN","maxmem":-5,"tags":"a,b c;;d"},
                {"type":"storage","id":"storage/x"}]"#,
        )
        .expect("parses");
        assert_eq!(g.len(), 1);
        assert_eq!(
            (g[0].vmid, g[0].maxcpu, g[0].cpu, g[0].maxmem),
            (7, Some(2), None, None)
        );
        assert_eq!(g[0].tags, vec!["a", "b", "c", "d"]);
        assert!(cluster_guests("{}").is_err());
        assert!(cluster_guests(r#"[{"type":"qemu"}]"#).is_err());
    }
}
