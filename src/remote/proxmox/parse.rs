//! Typed parsing of what `qm`, `pvesh`, `pvesm`, the QEMU guest agent and
//! `ip -j` print on a Proxmox host. The text is untrusted: it is parsed,
//! never executed or passed on to a shell. Formats follow
//! `../shared/reference/proxmox-cli/` (INDEX.md lists the traps).

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Serialize;
use serde_json::Value as Json;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unexpected output from `{what}`: {detail}")]
pub struct ParseError {
    pub what: &'static str,
    pub detail: String,
}

fn perr(what: &'static str, detail: impl Into<String>) -> ParseError {
    ParseError {
        what,
        detail: detail.into(),
    }
}

/// Untrusted JSON output of command `what`.
fn json(what: &'static str, text: &str) -> Result<Json, ParseError> {
    serde_json::from_str(text.trim()).map_err(|e| perr(what, e.to_string()))
}

/// Untrusted JSON output of command `what` that must be an array.
fn json_array(what: &'static str, text: &str) -> Result<Vec<Json>, ParseError> {
    match json(what, text)? {
        Json::Array(items) => Ok(items),
        _ => Err(perr(what, "expected a JSON array")),
    }
}

/// One row of `qm list`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ListEntry {
    pub vmid: u32,
    pub name: String,
    pub status: String,
    pub mem_mib: u64,
    pub bootdisk_gib: f64,
    pub pid: u32,
}

/// `qm list`: NAME may contain spaces (`VM 112`) and overflow its column,
/// so the row is read from both ends: VMID first, then PID, BOOTDISK, MEM
/// and STATUS from the right; NAME is what lies between.
pub fn qm_list(text: &str) -> Result<Vec<ListEntry>, ParseError> {
    const W: &str = "qm list";
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        let tokens: Vec<&str> = t.split_whitespace().collect();
        if i == 0 && tokens.first() == Some(&"VMID") {
            continue;
        }
        if tokens.len() < 6 {
            return Err(perr(
                W,
                format!("line {} has too few columns: `{t}`", i + 1),
            ));
        }
        let n = tokens.len();
        let num = |s: &str, col: &str| {
            s.parse::<u64>()
                .map_err(|_| perr(W, format!("line {}: {col} `{s}` is not a number", i + 1)))
        };
        let vmid = u32::try_from(num(tokens[0], "VMID")?)
            .map_err(|_| perr(W, format!("line {}: VMID out of range", i + 1)))?;
        let pid = u32::try_from(num(tokens[n - 1], "PID")?)
            .map_err(|_| perr(W, format!("line {}: PID out of range", i + 1)))?;
        let bootdisk_gib = tokens[n - 2].parse::<f64>().map_err(|_| {
            perr(
                W,
                format!(
                    "line {}: BOOTDISK `{}` is not a number",
                    i + 1,
                    tokens[n - 2]
                ),
            )
        })?;
        let mem_mib = num(tokens[n - 3], "MEM")?;
        let status = tokens[n - 4].to_string();
        let name = tokens[1..n - 4].join(" ");
        out.push(ListEntry {
            vmid,
            name,
            status,
            mem_mib,
            bootdisk_gib,
            pid,
        });
    }
    Ok(out)
}

/// `qm status <vmid>`: exactly `status: <state>`.
pub fn qm_status(text: &str) -> Result<String, ParseError> {
    let line = text.trim();
    line.strip_prefix("status: ")
        .filter(|s| !s.is_empty() && !s.contains(char::is_whitespace))
        .map(str::to_string)
        .ok_or_else(|| {
            perr(
                "qm status",
                format!("expected `status: <state>`, got `{line}`"),
            )
        })
}

/// A node of `print_recursive_hash` output (`qm status --verbose`).
#[derive(Debug, Clone, PartialEq)]
pub enum Tree {
    Scalar(String),
    Map(BTreeMap<String, Tree>),
}

impl Tree {
    pub fn get(&self, key: &str) -> Option<&Tree> {
        match self {
            Tree::Map(m) => m.get(key),
            Tree::Scalar(_) => None,
        }
    }
    pub fn str(&self, key: &str) -> Option<&str> {
        match self.get(key) {
            Some(Tree::Scalar(s)) => Some(s),
            _ => None,
        }
    }
    pub fn u64(&self, key: &str) -> Option<u64> {
        self.str(key).and_then(|s| s.parse().ok())
    }
}

/// `qm status <vmid> --verbose`: sorted `key: value` lines, nested hashes
/// indented by one TAB per level; a key alone (`key:`) opens a hash or
/// stands for an array.
pub fn recursive_hash(text: &str) -> Result<Tree, ParseError> {
    const W: &str = "qm status --verbose";
    let mut stack: Vec<(String, BTreeMap<String, Tree>)> = vec![(String::new(), BTreeMap::new())];
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let depth = line.chars().take_while(|c| *c == '\t').count();
        let body = &line[depth..];
        if depth + 1 > stack.len() {
            return Err(perr(
                W,
                format!("line {} is indented deeper than its parent", i + 1),
            ));
        }
        while stack.len() > depth + 1 {
            let (k, m) = stack.pop().ok_or_else(|| perr(W, "bad nesting"))?;
            if let Some(top) = stack.last_mut() {
                top.1.insert(k, Tree::Map(m));
            }
        }
        if let Some((k, v)) = body.split_once(": ") {
            if let Some(top) = stack.last_mut() {
                top.1.insert(k.to_string(), Tree::Scalar(v.to_string()));
            }
        } else if let Some(k) = body.strip_suffix(':') {
            stack.push((k.to_string(), BTreeMap::new()));
        } else {
            return Err(perr(
                W,
                format!("line {} is not `key: value`: `{body}`", i + 1),
            ));
        }
    }
    while stack.len() > 1 {
        let (k, m) = stack.pop().ok_or_else(|| perr(W, "bad nesting"))?;
        if let Some(top) = stack.last_mut() {
            top.1.insert(k, Tree::Map(m));
        }
    }
    let (_, root) = stack.pop().ok_or_else(|| perr(W, "empty"))?;
    Ok(Tree::Map(root))
}

/// The state of one VM, from `qm status --verbose` or `status/current`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VmStatus {
    pub vmid: u32,
    pub name: String,
    /// `running` or `stopped` (or `unknown`).
    pub status: String,
    /// QMP state: `running`, `paused`, `stopped`, ...
    pub qmpstatus: String,
    pub uptime_s: u64,
    pub cpus: Option<u64>,
    pub maxmem_bytes: Option<u64>,
    pub mem_bytes: Option<u64>,
    pub pid: Option<u64>,
    pub lock: Option<String>,
    pub agent: bool,
}

pub fn vm_status_verbose(text: &str) -> Result<VmStatus, ParseError> {
    const W: &str = "qm status --verbose";
    let t = recursive_hash(text)?;
    let vmid = t
        .u64("vmid")
        .and_then(|v| u32::try_from(v).ok())
        .ok_or_else(|| perr(W, "no vmid"))?;
    let status = t
        .str("status")
        .ok_or_else(|| perr(W, "no status"))?
        .to_string();
    Ok(VmStatus {
        vmid,
        name: t.str("name").unwrap_or_default().to_string(),
        qmpstatus: t.str("qmpstatus").unwrap_or(&status).to_string(),
        status,
        uptime_s: t.u64("uptime").unwrap_or(0),
        cpus: t.u64("cpus"),
        maxmem_bytes: t.u64("maxmem"),
        mem_bytes: t.u64("mem"),
        pid: t.u64("pid"),
        lock: t.str("lock").map(str::to_string),
        agent: t.str("agent") == Some("1"),
    })
}

/// A JSON number that Perl may have printed as a string.
fn lenient_u64(v: Option<&Json>) -> Option<u64> {
    match v? {
        Json::Number(n) => n.as_u64().or_else(|| n.as_f64().map(|f| f as u64)),
        Json::String(s) => s.parse().ok(),
        Json::Bool(b) => Some(u64::from(*b)),
        _ => None,
    }
}

fn lenient_str(v: Option<&Json>) -> Option<String> {
    match v? {
        Json::String(s) => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `pvesh get /nodes/<node>/qemu/<vmid>/status/current --output-format json`.
pub fn status_current(text: &str) -> Result<VmStatus, ParseError> {
    const W: &str = "pvesh get .../status/current";
    let j = json(W, text)?;
    let vmid = lenient_u64(j.get("vmid"))
        .and_then(|v| u32::try_from(v).ok())
        .ok_or_else(|| perr(W, "no vmid"))?;
    let status = lenient_str(j.get("status")).ok_or_else(|| perr(W, "no status"))?;
    Ok(VmStatus {
        vmid,
        name: lenient_str(j.get("name")).unwrap_or_default(),
        qmpstatus: lenient_str(j.get("qmpstatus")).unwrap_or_else(|| status.clone()),
        status,
        uptime_s: lenient_u64(j.get("uptime")).unwrap_or(0),
        cpus: lenient_u64(j.get("cpus")),
        maxmem_bytes: lenient_u64(j.get("maxmem")),
        mem_bytes: lenient_u64(j.get("mem")),
        pid: lenient_u64(j.get("pid")),
        lock: lenient_str(j.get("lock")),
        agent: lenient_u64(j.get("agent")) == Some(1),
    })
}

/// `qm config <vmid>`: sorted `key: value` lines, split at the first `": "`.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct VmConfig {
    pub entries: BTreeMap<String, String>,
}

pub fn qm_config(text: &str) -> Result<VmConfig, ParseError> {
    let mut entries = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let (k, v) = line
            .split_once(": ")
            .ok_or_else(|| perr("qm config", format!("line {} is not `key: value`", i + 1)))?;
        entries.insert(k.to_string(), v.to_string());
    }
    Ok(VmConfig { entries })
}

/// A network device of a VM config (`net0: virtio=BC:24:11:..,bridge=vmbr0`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetDevice {
    pub id: String,
    pub model: String,
    /// Lowercase, for matching the neighbour table.
    pub mac: String,
    pub bridge: Option<String>,
    /// The VLAN tag (`tag=20`).
    pub vlan: Option<u32>,
}

/// A directory shared into the VM (`virtiofs0`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VirtiofsShare {
    pub mapping: String,
    pub cache: Option<String>,
    pub direct_io: Option<bool>,
    pub expose_acl: Option<bool>,
    pub expose_xattr: Option<bool>,
}

impl VmConfig {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(String::as_str)
    }
    /// The name; Proxmox shows `VM <vmid>` for a VM without one.
    pub fn name(&self) -> Option<&str> {
        self.get("name")
    }
    pub fn is_template(&self) -> bool {
        self.get("template") == Some("1")
    }
    pub fn lock(&self) -> Option<&str> {
        self.get("lock")
    }
    pub fn agent_enabled(&self) -> bool {
        match self.get("agent") {
            Some(v) => {
                let first = v.split(',').next().unwrap_or("");
                first == "1" || first == "enabled=1" || v.split(',').any(|p| p == "enabled=1")
            }
            None => false,
        }
    }
    pub fn tags(&self) -> Vec<String> {
        self.get("tags")
            .map(|t| {
                t.split([';', ',', ' '])
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }
    /// `description`, URI-unescaped (PVE escapes control chars, `%`, `:`).
    pub fn description(&self) -> Option<String> {
        self.get("description").map(uri_unescape)
    }
    pub fn nets(&self) -> Vec<NetDevice> {
        let mut out = Vec::new();
        for (k, v) in &self.entries {
            let Some(n) = k.strip_prefix("net") else {
                continue;
            };
            if n.is_empty() || !n.chars().all(|c| c.is_ascii_digit()) {
                continue;
            }
            let mut model = String::new();
            let mut mac = String::new();
            let mut bridge = None;
            let mut vlan = None;
            for (i, part) in v.split(',').enumerate() {
                let (pk, pv) = part.split_once('=').unwrap_or((part, ""));
                match pk {
                    "bridge" => bridge = Some(pv.to_string()),
                    "tag" => vlan = pv.parse().ok(),
                    "macaddr" => mac = pv.to_string(),
                    _ if i == 0 => {
                        model = pk.to_string();
                        mac = pv.to_string();
                    }
                    _ => {}
                }
            }
            out.push(NetDevice {
                id: k.clone(),
                model,
                mac: mac.to_ascii_lowercase(),
                bridge,
                vlan,
            });
        }
        out
    }
    /// `virtiofsN: [dirid=]MAPPING,cache=..,direct-io=1,expose-acl=1,
    /// expose-xattr=1`, in slot order.
    pub fn virtiofs(&self) -> Vec<VirtiofsShare> {
        let mut out = Vec::new();
        for (k, v) in &self.entries {
            let Some(n) = k.strip_prefix("virtiofs") else {
                continue;
            };
            if n.is_empty() || !n.chars().all(|c| c.is_ascii_digit()) {
                continue;
            }
            let mut share = VirtiofsShare::default();
            for (i, part) in v.split(',').enumerate() {
                let (pk, pv) = match part.split_once('=') {
                    Some(kv) => kv,
                    None if i == 0 => ("dirid", part),
                    None => continue,
                };
                let flag = || Some(pv == "1");
                match pk {
                    "dirid" => share.mapping = pv.to_string(),
                    "cache" => share.cache = Some(pv.to_string()),
                    "direct-io" => share.direct_io = flag(),
                    "expose-acl" => share.expose_acl = flag(),
                    "expose-xattr" => share.expose_xattr = flag(),
                    _ => {}
                }
            }
            if !share.mapping.is_empty() {
                out.push(share);
            }
        }
        out
    }
    /// Disks: `virtio0`, `scsi0`, ... with their volume (not cdroms).
    pub fn disks(&self) -> BTreeMap<String, String> {
        self.entries
            .iter()
            .filter(|(k, v)| {
                let bus = k.trim_end_matches(|c: char| c.is_ascii_digit());
                bus != k.as_str()
                    && ["virtio", "scsi", "sata", "ide", "efidisk", "tpmstate"].contains(&bus)
                    && !v.contains("media=cdrom")
            })
            .map(|(k, v)| (k.clone(), v.split(',').next().unwrap_or("").to_string()))
            .collect()
    }
}

/// `%XX` → byte, everything else kept (as `PVE::Tools::decode_text`).
pub fn uri_unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `pvesh get /cluster/nextid`: `101`, or in JSON `101` / `"101"`.
pub fn nextid(text: &str) -> Result<u32, ParseError> {
    let t = text.trim().trim_matches('"');
    t.parse()
        .map_err(|_| perr("pvesh get /cluster/nextid", format!("`{t}` is not a VMID")))
}

/// One storage of `pvesm status` (sizes in KiB).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Storage {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub status: String,
    pub total_kib: u64,
    pub used_kib: u64,
    pub available_kib: u64,
    /// None for a disabled storage (`N/A`).
    pub used_percent: Option<f64>,
}

/// `pvesm status`, with or without the `(KiB)` header units of PVE 9.1.
pub fn pvesm_status(text: &str) -> Result<Vec<Storage>, ParseError> {
    const W: &str = "pvesm status";
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let tokens: Vec<&str> = line.split_whitespace().collect();
        if tokens.is_empty() || (i == 0 && tokens[0] == "Name") {
            continue;
        }
        if tokens.len() != 7 {
            return Err(perr(
                W,
                format!("line {} has {} columns, expected 7", i + 1, tokens.len()),
            ));
        }
        let num = |s: &str| {
            s.parse::<u64>()
                .map_err(|_| perr(W, format!("line {}: `{s}` is not a number", i + 1)))
        };
        let pct = tokens[6];
        out.push(Storage {
            name: tokens[0].to_string(),
            kind: tokens[1].to_string(),
            status: tokens[2].to_string(),
            total_kib: num(tokens[3])?,
            used_kib: num(tokens[4])?,
            available_kib: num(tokens[5])?,
            used_percent: if pct == "N/A" {
                None
            } else {
                Some(
                    pct.trim_end_matches('%')
                        .parse()
                        .map_err(|_| perr(W, format!("line {}: bad percentage `{pct}`", i + 1)))?,
                )
            },
        });
    }
    Ok(out)
}

/// A network interface the guest agent reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GuestInterface {
    pub name: String,
    /// Lower-case, as the agent reports it.
    pub mac: String,
    pub addresses: Vec<(IpAddr, u8)>,
}

/// `qm guest cmd <vmid> network-get-interfaces` (Perl-pretty JSON).
pub fn guest_interfaces(text: &str) -> Result<Vec<GuestInterface>, ParseError> {
    const W: &str = "qm guest cmd network-get-interfaces";
    let arr = json_array(W, text)?;
    let mut out = Vec::new();
    for item in arr {
        let mut addresses = Vec::new();
        for a in item
            .get("ip-addresses")
            .and_then(Json::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[])
        {
            let Some(ip) = lenient_str(a.get("ip-address")).and_then(|s| s.parse::<IpAddr>().ok())
            else {
                continue;
            };
            let prefix = lenient_u64(a.get("prefix"))
                .and_then(|p| u8::try_from(p).ok())
                .unwrap_or(0);
            addresses.push((ip, prefix));
        }
        out.push(GuestInterface {
            name: lenient_str(item.get("name")).unwrap_or_default(),
            mac: lenient_str(item.get("hardware-address"))
                .unwrap_or_default()
                .to_ascii_lowercase(),
            addresses,
        });
    }
    Ok(out)
}

/// `qm guest exec <vmid> -- <cmd>`: the status JSON once the command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestExec {
    pub exited: bool,
    pub exitcode: Option<i64>,
    pub out_data: String,
    pub err_data: String,
}

pub fn guest_exec(text: &str) -> Result<GuestExec, ParseError> {
    const W: &str = "qm guest exec";
    let j = json(W, text)?;
    if !j.is_object() {
        return Err(perr(W, "expected a JSON object"));
    }
    Ok(GuestExec {
        exited: lenient_u64(j.get("exited")) == Some(1),
        exitcode: j.get("exitcode").and_then(Json::as_i64),
        out_data: lenient_str(j.get("out-data")).unwrap_or_default(),
        err_data: lenient_str(j.get("err-data")).unwrap_or_default(),
    })
}

/// One entry of `ip -j neigh show dev <bridge>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbour {
    pub ip: IpAddr,
    pub mac: String,
    pub state: Vec<String>,
}

pub fn ip_neigh(text: &str) -> Result<Vec<Neighbour>, ParseError> {
    const W: &str = "ip -j neigh";
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let arr = json_array(W, text)?;
    let mut out = Vec::new();
    for item in arr {
        let Some(ip) = lenient_str(item.get("dst")).and_then(|s| s.parse().ok()) else {
            continue;
        };
        let Some(mac) = lenient_str(item.get("lladdr")) else {
            continue;
        };
        let state = item
            .get("state")
            .and_then(Json::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        out.push(Neighbour {
            ip,
            mac: mac.to_ascii_lowercase(),
            state,
        });
    }
    Ok(out)
}

/// IPv4 networks of `ip -j -4 addr show dev <bridge>`: (address, prefix).
pub fn ip_addr_v4(text: &str) -> Result<Vec<(std::net::Ipv4Addr, u8)>, ParseError> {
    const W: &str = "ip -j addr";
    let arr = json_array(W, text)?;
    let mut out = Vec::new();
    for link in arr {
        for a in link
            .get("addr_info")
            .and_then(Json::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[])
        {
            if lenient_str(a.get("family")).as_deref() != Some("inet") {
                continue;
            }
            let Some(ip) = lenient_str(a.get("local")).and_then(|s| s.parse().ok()) else {
                continue;
            };
            let Some(p) = lenient_u64(a.get("prefixlen")).and_then(|p| u8::try_from(p).ok()) else {
                continue;
            };
            if p <= 32 {
                out.push((ip, p));
            }
        }
    }
    Ok(out)
}

/// Whether `ip` lies in `net/prefix`.
pub fn in_subnet(ip: std::net::Ipv4Addr, net: std::net::Ipv4Addr, prefix: u8) -> bool {
    if prefix == 0 {
        return true;
    }
    let mask = u32::MAX << (32 - u32::from(prefix.min(32)));
    (u32::from(ip) & mask) == (u32::from(net) & mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REF: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/proxmox-cli/");

    fn sample(name: &str) -> String {
        std::fs::read_to_string(format!("{REF}{name}")).expect("reference sample exists")
    }

    #[test]
    fn qm_list_handles_spaces_overflow_and_trailing_blanks() {
        let l = qm_list(&sample("qm-list.txt")).expect("parses");
        assert_eq!(l.len(), 5);
        assert_eq!(l[2].name, "VM 112");
        assert_eq!(l[2].status, "stopped");
        assert_eq!(l[3].name, "chelonian-dev-control-plane-1");
        assert_eq!(l[3].mem_mib, 16384);
        assert_eq!(l[3].bootdisk_gib, 120.5);
        assert_eq!(l[3].pid, 912345);
        assert_eq!(l[4].vmid, 9000);
        assert!(qm_list("").expect("empty").is_empty());
        let full = qm_list(&sample("qm-list.full.txt")).expect("parses");
        assert_eq!(full[0].status, "paused");
        let o = qm_list(&sample("qm-list.overflow-rerendered.txt")).expect("parses");
        assert_eq!(o[1].name, "chelonianlabs-dev-control-1");
        assert_eq!(o[1].status, "running");
        assert!(qm_list("  garbage line\n").is_err());
    }

    #[test]
    fn status_lines_and_verbose_trees() {
        assert_eq!(
            qm_status(&sample("qm-status-100.paused.txt")).expect("ok"),
            "paused"
        );
        assert!(qm_status("stat: x").is_err());
        let s = vm_status_verbose(&sample("qm-status-111-verbose.txt")).expect("parses");
        assert_eq!(s.vmid, 111);
        assert_eq!(s.name, "nixos-web01");
        assert_eq!(s.status, "running");
        assert_eq!(s.pid, Some(2345));
        let t = recursive_hash(&sample("qm-status-111-verbose.txt")).expect("parses");
        assert_eq!(
            t.get("blockstat")
                .and_then(|b| b.get("virtio0"))
                .and_then(|v| v.u64("rd_operations")),
            Some(18231)
        );
        assert_eq!(
            t.get("ballooninfo").and_then(|b| b.u64("actual")),
            Some(4294967296)
        );
        let s = vm_status_verbose(&sample("qm-status-112-verbose.txt")).expect("parses");
        assert_eq!(
            (s.name.as_str(), s.status.as_str(), s.pid),
            ("VM 112", "stopped", None)
        );
    }

    #[test]
    fn status_current_json_is_read_leniently() {
        let s = status_current(&sample("status-current-111.running.json")).expect("parses");
        assert_eq!((s.vmid, s.agent, s.pid), (111, true, Some(2345)));
        let s = status_current(&sample("status-current-112.stopped.json")).expect("parses");
        assert_eq!((s.status.as_str(), s.agent), ("stopped", false));
        let s = status_current(r#"{"vmid":"7","status":"running","uptime":"5"}"#).expect("strings");
        assert_eq!((s.vmid, s.uptime_s), (7, 5));
    }

    #[test]
    fn config_values_keep_colons_and_decode_descriptions() {
        let c = qm_config(&sample("qm-config-111.txt")).expect("parses");
        assert_eq!(c.name(), Some("nixos-web01"));
        assert_eq!(
            c.get("virtio0"),
            Some("local-lvm:vm-111-disk-0,discard=on,iothread=1,size=64G")
        );
        assert!(c.agent_enabled());
        assert_eq!(c.tags(), vec!["nixos", "web"]);
        assert_eq!(
            c.description().as_deref(),
            Some("NixOS web server\nmanaged by our-cli: do not edit by hand\nowner: ops@example.com (100% uptime)")
        );
        let nets = c.nets();
        assert_eq!(nets[0].mac, "bc:24:11:5e:7a:01");
        assert_eq!(nets[0].bridge.as_deref(), Some("vmbr0"));
        assert_eq!(
            c.disks().get("virtio0").map(String::as_str),
            Some("local-lvm:vm-111-disk-0")
        );
        let t = qm_config(&sample("qm-config-9000.template.txt")).expect("parses");
        assert!(t.is_template());
        let n = qm_config(&sample("qm-config-112.noname.txt")).expect("parses");
        assert_eq!(n.name(), None);
        assert!(!n.agent_enabled());
        assert!(!n.disks().contains_key("ide2"));
    }

    #[test]
    fn nextid_as_text_and_as_json() {
        assert_eq!(
            nextid(&sample("pvesh-get-cluster-nextid.txt")).expect("ok"),
            101
        );
        assert_eq!(nextid("\"101\"\n").expect("ok"), 101);
    }

    #[test]
    fn pvesm_status_both_header_styles() {
        let s = pvesm_status(&sample("pvesm-status.txt")).expect("parses");
        assert_eq!(s.len(), 3);
        assert_eq!(s[1].name, "local-lvm");
        assert_eq!(s[1].total_kib, 148086784);
        let s = pvesm_status(&sample("pvesm-status.pve91.txt")).expect("parses");
        assert_eq!(s[3].used_percent, None);
        assert_eq!(s[2].status, "inactive");
        assert_eq!(s[0].used_percent, Some(12.53));
    }

    #[test]
    fn guest_agent_json() {
        let i = guest_interfaces(&sample("guest-network-get-interfaces.json")).expect("parses");
        assert_eq!(i[1].mac, "bc:24:11:5e:7a:01");
        assert_eq!(i[1].addresses[0], ("192.0.2.111".parse().expect("ip"), 24));
        let e = guest_exec("{\n   \"exitcode\" : 0,\n   \"exited\" : 1,\n   \"out-data\" : \"ssh-ed25519 AAAA x\\n\"\n}\n")
            .expect("parses");
        assert!(e.exited);
        assert_eq!(e.exitcode, Some(0));
        assert_eq!(e.out_data, "ssh-ed25519 AAAA x\n");
    }

    #[test]
    fn unescape_and_subnets() {
        assert_eq!(uri_unescape("a%3Ab%0A%25%"), "a:b\n%%");
        assert!(in_subnet(
            "192.0.2.7".parse().expect("ip"),
            "192.0.2.1".parse().expect("ip"),
            24
        ));
        assert!(!in_subnet(
            "192.0.3.7".parse().expect("ip"),
            "192.0.2.1".parse().expect("ip"),
            24
        ));
    }
}
