//! The fleet as it is: hosts.nix beside what Proxmox reports, one [`Row`]
//! per host (and per unknown VM in the managed range), with every value
//! hosts.nix sets that differs live as a [`Drift`]. Pure: no I/O, so each
//! case is a unit test.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use serde::Serialize;

use crate::fleet::model::{Fleet, Host, ProxmoxSpec, DEFAULT_VMID_RANGE};
use crate::fleet::DiskSize;
use crate::remote::proxmox::guests::{Guest, GuestDetails};

const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;

/// Where a host stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    Running,
    Stopped,
    /// Proxmox reports a state pve does not know (`unknown`, `paused` …).
    Unknown,
    /// hosts.nix has the VM; Proxmox has no guest with its VMID.
    Missing,
    /// A VM in the managed VMID range that no host of hosts.nix names.
    NotInHostsNix,
    /// A host without `proxmox` (a laptop, a physical machine).
    NotAVm,
}

impl State {
    fn from_live(status: &str) -> State {
        match status {
            "running" => State::Running,
            "stopped" => State::Stopped,
            _ => State::Unknown,
        }
    }

    /// Whether this state by itself means the fleet differs from hosts.nix.
    pub fn is_drift(self) -> bool {
        matches!(self, State::Missing | State::NotInHostsNix)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Running => "running",
            State::Stopped => "stopped",
            State::Unknown => "unknown",
            State::Missing => "missing on Proxmox",
            State::NotInHostsNix => "not in hosts.nix",
            State::NotAVm => "not a VM",
        })
    }
}

/// An attribute hosts.nix sets that `pve status` compares with Proxmox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Attribute {
    Name,
    Node,
    Cores,
    Memory,
    Disk,
    Tags,
    OnBoot,
}

impl fmt::Display for Attribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Attribute::Name => "name",
            Attribute::Node => "node",
            Attribute::Cores => "cores",
            Attribute::Memory => "memory",
            Attribute::Disk => "disk",
            Attribute::Tags => "tags",
            Attribute::OnBoot => "on-boot",
        })
    }
}

/// One value that differs: what hosts.nix says, what Proxmox has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Drift {
    pub attribute: Attribute,
    pub hosts_nix: String,
    pub live: String,
}

/// One line of `pve status`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// The host's name in hosts.nix; `null` for a VM hosts.nix does not know.
    pub host: Option<String>,
    /// The VM's name on Proxmox.
    pub name: Option<String>,
    pub vmid: Option<u32>,
    pub node: Option<String>,
    pub state: State,
    pub uptime_s: Option<u64>,
    /// CPU use in percent of the VM's cores together (100 = all busy).
    pub cpu_percent: Option<f64>,
    pub cores: Option<u64>,
    pub mem_used_mib: Option<u64>,
    pub mem_max_mib: Option<u64>,
    pub ip: Option<IpAddr>,
    /// The tags on Proxmox (hosts.nix's when the VM is missing).
    pub tags: Vec<String>,
    pub drift: Vec<Drift>,
}

impl Row {
    /// Whether this row shows the fleet differing from hosts.nix.
    pub fn drifted(&self) -> bool {
        !self.drift.is_empty() || self.state.is_drift()
    }
}

/// What hosts.nix says a VM should be. For a managed VM these are the
/// values `pve render` gives OpenTofu (defaults included: the name is the
/// host's, a clone gets the default tags, `on_boot` is off); a readonly
/// VM is never rendered, so only what its entry writes out counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expected {
    pub name: Option<String>,
    pub node: Option<String>,
    pub cores: Option<u64>,
    pub memory_mib: Option<u64>,
    pub disk_gib: Option<u64>,
    pub tags: Option<Vec<String>>,
    pub on_boot: Option<bool>,
}

pub fn expected(fleet: &Fleet, host: &Host, spec: &ProxmoxSpec) -> Expected {
    let managed = !spec.readonly;
    let default_node = fleet
        .proxmox
        .as_ref()
        .and_then(|p| p.node.as_ref())
        .map(|n| n.value.clone());
    let default_tags = (managed && spec.clones_template()).then(|| {
        crate::render::tofu::DEFAULT_TAGS
            .iter()
            .map(|t| t.to_string())
            .collect()
    });
    Expected {
        name: spec
            .name
            .as_ref()
            .map(|n| n.value.clone())
            .or_else(|| managed.then(|| host.name.clone())),
        node: spec
            .node
            .as_ref()
            .map(|n| n.value.clone())
            .or_else(|| default_node.filter(|_| managed)),
        cores: spec
            .cores
            .as_ref()
            .and_then(|c| u64::try_from(c.value).ok()),
        memory_mib: spec
            .memory
            .as_ref()
            .and_then(|m| u64::try_from(m.value).ok()),
        disk_gib: spec
            .disk
            .as_ref()
            .and_then(|d| d.value.parse::<DiskSize>().ok())
            .map(DiskSize::gib),
        tags: spec
            .tags
            .as_ref()
            .map(|t| t.iter().map(|s| s.to_string()).collect())
            .or(default_tags),
        on_boot: managed.then_some(false),
    }
}

/// Every value of `want` that `guest` (and its `details`) has otherwise.
/// A value Proxmox did not report (no RRD data yet, config unreadable) is
/// not drift: it is unknown.
pub fn drift(want: &Expected, guest: &Guest, details: Option<&GuestDetails>) -> Vec<Drift> {
    let mut out = Vec::new();
    let mut differs = |attribute, hosts_nix: String, live: String| {
        out.push(Drift {
            attribute,
            hosts_nix,
            live,
        })
    };
    if let (Some(w), Some(l)) = (&want.name, &guest.name) {
        if w != l {
            differs(Attribute::Name, w.clone(), l.clone());
        }
    }
    if let Some(w) = &want.node {
        if !guest.node.is_empty() && *w != guest.node {
            differs(Attribute::Node, w.clone(), guest.node.clone());
        }
    }
    if let (Some(w), Some(l)) = (want.cores, guest.maxcpu) {
        if w != l {
            differs(Attribute::Cores, w.to_string(), l.to_string());
        }
    }
    if let (Some(w), Some(l)) = (want.memory_mib, guest.maxmem) {
        if w.checked_mul(MIB) != Some(l) {
            differs(Attribute::Memory, format!("{w} MiB"), show_mib(l));
        }
    }
    if let (Some(w), Some(l)) = (want.disk_gib, guest.maxdisk) {
        if w.checked_mul(GIB) != Some(l) {
            differs(Attribute::Disk, format!("{w}G"), show_disk(l));
        }
    }
    if let Some(w) = &want.tags {
        if tag_set(w) != tag_set(&guest.tags) {
            differs(Attribute::Tags, w.join(";"), guest.tags.join(";"));
        }
    }
    if let (Some(w), Some(l)) = (want.on_boot, details.and_then(|d| d.on_boot)) {
        if w != l {
            differs(Attribute::OnBoot, on_off(w), on_off(l));
        }
    }
    out
}

fn tag_set(tags: &[String]) -> BTreeSet<&str> {
    tags.iter().map(String::as_str).collect()
}

fn on_off(b: bool) -> String {
    if b { "on" } else { "off" }.to_string()
}

fn show_mib(bytes: u64) -> String {
    if bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{bytes} bytes")
    }
}

fn show_disk(bytes: u64) -> String {
    match bytes {
        0 => "none".to_string(),
        b if b.is_multiple_of(GIB) => format!("{}G", b / GIB),
        b if b.is_multiple_of(MIB) => format!("{}M", b / MIB),
        b => format!("{b} bytes"),
    }
}

/// The rows of `pve status`: every host of hosts.nix in its order, then
/// the VMs in `_proxmox.vmidRange` hosts.nix does not know (templates
/// aside), by VMID.
pub fn rows(fleet: &Fleet, guests: &[Guest], details: &BTreeMap<u32, GuestDetails>) -> Vec<Row> {
    let by_vmid: BTreeMap<u32, &Guest> = guests
        .iter()
        .filter(|g| g.kind == "qemu")
        .map(|g| (g.vmid, g))
        .collect();
    let mut known = BTreeSet::new();
    let mut out = Vec::new();
    for host in &fleet.hosts {
        let Some(spec) = &host.proxmox else {
            out.push(not_a_vm(host));
            continue;
        };
        let vmid = spec.vmid.as_ref().and_then(|v| u32::try_from(v.value).ok());
        if let Some(id) = vmid {
            known.insert(id);
        }
        let want = expected(fleet, host, spec);
        match vmid.and_then(|id| by_vmid.get(&id)) {
            Some(g) => {
                let d = details.get(&g.vmid);
                let mut row = live_row(g, d);
                row.host = Some(host.name.clone());
                row.drift = drift(&want, g, d);
                out.push(row);
            }
            None => out.push(missing(host, vmid, &want)),
        }
    }
    let (lo, hi) = fleet
        .proxmox
        .as_ref()
        .map_or(DEFAULT_VMID_RANGE, |p| p.vmid_range);
    for g in by_vmid.values() {
        let in_range = (lo..=hi).contains(&i64::from(g.vmid));
        if in_range && !g.template && !known.contains(&g.vmid) {
            let mut row = live_row(g, details.get(&g.vmid));
            row.state = State::NotInHostsNix;
            out.push(row);
        }
    }
    out
}

fn live_row(g: &Guest, d: Option<&GuestDetails>) -> Row {
    let running = g.status == "running";
    Row {
        host: None,
        name: g.name.clone(),
        vmid: Some(g.vmid),
        node: Some(g.node.clone()).filter(|n| !n.is_empty()),
        state: State::from_live(&g.status),
        uptime_s: g.uptime_s.filter(|_| running),
        cpu_percent: g
            .cpu
            .filter(|_| running)
            .map(|c| (c * 1000.0).round() / 10.0),
        cores: g.maxcpu,
        mem_used_mib: g.mem.filter(|_| running).map(|m| m / MIB),
        mem_max_mib: g.maxmem.map(|m| m / MIB),
        ip: d.and_then(|d| d.ip),
        tags: g.tags.clone(),
        drift: Vec::new(),
    }
}

fn missing(host: &Host, vmid: Option<u32>, want: &Expected) -> Row {
    Row {
        host: Some(host.name.clone()),
        name: want.name.clone(),
        vmid,
        node: want.node.clone(),
        state: State::Missing,
        uptime_s: None,
        cpu_percent: None,
        cores: want.cores,
        mem_used_mib: None,
        mem_max_mib: want.memory_mib,
        ip: None,
        tags: want.tags.clone().unwrap_or_default(),
        drift: Vec::new(),
    }
}

fn not_a_vm(host: &Host) -> Row {
    Row {
        host: Some(host.name.clone()),
        name: None,
        vmid: None,
        node: None,
        state: State::NotAVm,
        uptime_s: None,
        cpu_percent: None,
        cores: None,
        mem_used_mib: None,
        mem_max_mib: None,
        ip: None,
        tags: Vec::new(),
        drift: Vec::new(),
    }
}

/// The counts of the summary line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub hosts: usize,
    pub running: usize,
    pub stopped: usize,
    pub missing: usize,
    pub not_a_vm: usize,
    pub not_in_hosts_nix: usize,
    pub drifted: usize,
}

pub fn summary(rows: &[Row]) -> Summary {
    let count = |s: State| rows.iter().filter(|r| r.state == s).count();
    Summary {
        hosts: rows.iter().filter(|r| r.host.is_some()).count(),
        running: count(State::Running),
        stopped: count(State::Stopped),
        missing: count(State::Missing),
        not_a_vm: count(State::NotAVm),
        not_in_hosts_nix: count(State::NotInHostsNix),
        drifted: rows.iter().filter(|r| !r.drift.is_empty()).count(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fleet(src: &str) -> Fleet {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("hosts.nix");
        std::fs::write(&path, src).expect("write");
        crate::fleet::load(&path).expect("loads").fleet
    }

    const FLEET: &str = r#"{
      _proxmox = { host = "192.0.2.1"; node = "pve"; vmidRange = [ 100 199 ]; templateVmid = 9000; };
      web = { proxmox = { vmid = 111; cores = 4; memory = 4096; disk = "64G"; tags = [ "nixos" "web" ]; }; };
      db = { proxmox = { vmid = 112; cores = 2; memory = 2048; }; };
      ro = { proxmox = { vmid = 120; readonly = true; cores = 8; }; };
      laptop = { homeFile = ./home.nix; };
    }"#;

    /// 111 exactly as hosts.nix says; tests change one field at a time.
    fn web() -> Guest {
        Guest {
            vmid: 111,
            kind: "qemu".into(),
            node: "pve".into(),
            status: "running".into(),
            name: Some("web".into()),
            template: false,
            tags: vec!["web".into(), "nixos".into()],
            uptime_s: Some(3600),
            cpu: Some(0.0196),
            maxcpu: Some(4),
            mem: Some(1024 * MIB),
            maxmem: Some(4096 * MIB),
            maxdisk: Some(64 * GIB),
            lock: None,
        }
    }

    fn web_drift(change: impl FnOnce(&mut Guest), details: Option<GuestDetails>) -> Vec<Drift> {
        let f = fleet(FLEET);
        let mut g = web();
        change(&mut g);
        let d: BTreeMap<u32, GuestDetails> = details.into_iter().map(|d| (111, d)).collect();
        let rows = rows(&f, &[g], &d);
        rows.into_iter()
            .find(|r| r.host.as_deref() == Some("web"))
            .expect("web row")
            .drift
    }

    fn one(attribute: Attribute, hosts_nix: &str, live: &str) -> Vec<Drift> {
        vec![Drift {
            attribute,
            hosts_nix: hosts_nix.into(),
            live: live.into(),
        }]
    }

    #[test]
    fn a_vm_as_hosts_nix_says_has_no_drift_whatever_the_tag_order() {
        let on_boot_off = GuestDetails {
            on_boot: Some(false),
            ip: None,
        };
        assert_eq!(web_drift(|_| {}, Some(on_boot_off)), vec![]);
    }

    #[test]
    fn each_attribute_drifts_on_its_own() {
        assert_eq!(
            web_drift(|g| g.maxcpu = Some(2), None),
            one(Attribute::Cores, "4", "2")
        );
        assert_eq!(
            web_drift(|g| g.maxmem = Some(2048 * MIB), None),
            one(Attribute::Memory, "4096 MiB", "2048 MiB")
        );
        assert_eq!(
            web_drift(|g| g.maxdisk = Some(80 * GIB), None),
            one(Attribute::Disk, "64G", "80G")
        );
        assert_eq!(
            web_drift(|g| g.maxdisk = Some(0), None),
            one(Attribute::Disk, "64G", "none")
        );
        assert_eq!(
            web_drift(|g| g.node = "pve2".into(), None),
            one(Attribute::Node, "pve", "pve2")
        );
        assert_eq!(
            web_drift(|g| g.tags = vec!["nixos".into()], None),
            one(Attribute::Tags, "nixos;web", "nixos")
        );
        assert_eq!(
            web_drift(|g| g.name = Some("web-old".into()), None),
            one(Attribute::Name, "web", "web-old")
        );
        let on = GuestDetails {
            on_boot: Some(true),
            ip: None,
        };
        assert_eq!(
            web_drift(|_| {}, Some(on)),
            one(Attribute::OnBoot, "off", "on")
        );
    }

    #[test]
    fn values_proxmox_did_not_report_are_not_drift() {
        let blank = |g: &mut Guest| {
            g.name = None;
            g.maxcpu = None;
            g.maxmem = None;
            g.maxdisk = None;
            g.node = String::new();
        };
        assert_eq!(web_drift(blank, None), vec![]);
    }

    #[test]
    fn states_missing_unknown_vms_templates_and_non_vms() {
        let f = fleet(FLEET);
        let stray = Guest {
            vmid: 150,
            name: Some("stray".into()),
            status: "stopped".into(),
            ..web()
        };
        let template = Guest {
            vmid: 151,
            template: true,
            ..web()
        };
        let outside = Guest { vmid: 500, ..web() };
        let container = Guest {
            vmid: 152,
            kind: "lxc".into(),
            ..web()
        };
        let rows = rows(
            &f,
            &[web(), stray, template, outside, container],
            &BTreeMap::new(),
        );
        let states: Vec<(Option<&str>, Option<u32>, State)> = rows
            .iter()
            .map(|r| (r.host.as_deref(), r.vmid, r.state))
            .collect();
        // Hosts in hosts.nix's (sorted) order, then unknown VMs by VMID.
        assert_eq!(
            states,
            vec![
                (Some("db"), Some(112), State::Missing),
                (Some("laptop"), None, State::NotAVm),
                (Some("ro"), Some(120), State::Missing),
                (Some("web"), Some(111), State::Running),
                (None, Some(150), State::NotInHostsNix),
            ]
        );
        let s = summary(&rows);
        assert_eq!(
            (
                s.hosts,
                s.running,
                s.missing,
                s.not_a_vm,
                s.not_in_hosts_nix
            ),
            (4, 1, 2, 1, 1)
        );
        assert!(rows[0].drifted() && rows[4].drifted() && !rows[3].drifted());
        // A missing VM shows what hosts.nix expects of it.
        assert_eq!(rows[0].name.as_deref(), Some("db"));
        assert_eq!(rows[0].tags, vec!["opentofu", "nixos", "managed"]);
    }

    #[test]
    fn a_readonly_vm_is_held_only_to_what_its_entry_writes() {
        let f = fleet(FLEET);
        let ro = Guest {
            vmid: 120,
            name: Some("legacy".into()),
            tags: vec![],
            node: "pve2".into(),
            maxcpu: Some(8),
            ..web()
        };
        let on = GuestDetails {
            on_boot: Some(true),
            ip: None,
        };
        let rows = rows(
            &f,
            std::slice::from_ref(&ro),
            &[(120, on)].into_iter().collect(),
        );
        assert_eq!(rows[2].drift, vec![]);
        let rows = rows_of(
            &f,
            Guest {
                maxcpu: Some(4),
                ..ro
            },
        );
        assert_eq!(rows[2].drift, one(Attribute::Cores, "8", "4"));
    }

    /// The rows of `f` with `g` the only guest; `web` is the last host.
    fn rows_of(f: &Fleet, g: Guest) -> Vec<Row> {
        rows(f, &[g], &BTreeMap::new())
    }

    fn web_row(f: &Fleet, g: Guest) -> Row {
        rows_of(f, g)
            .into_iter()
            .find(|r| r.host.as_deref() == Some("web"))
            .expect("web row")
    }

    #[test]
    fn usage_is_shown_only_for_a_running_vm() {
        let f = fleet(FLEET);
        let r = &web_row(&f, web());
        assert_eq!(r.cpu_percent, Some(2.0));
        assert_eq!((r.mem_used_mib, r.mem_max_mib), (Some(1024), Some(4096)));
        assert_eq!(r.uptime_s, Some(3600));
        let stopped = Guest {
            status: "stopped".into(),
            ..web()
        };
        let r = &web_row(&f, stopped);
        assert_eq!(
            (r.cpu_percent, r.mem_used_mib, r.uptime_s),
            (None, None, None)
        );
        assert_eq!(r.state, State::Stopped);
        let odd = Guest {
            status: "\u{1b}[31mhacked".into(),
            ..web()
        };
        assert_eq!(web_row(&f, odd).state, State::Unknown);
    }
}
