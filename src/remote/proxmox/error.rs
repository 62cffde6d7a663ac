//! How a Proxmox operation can fail on its own account: bad settings or
//! arguments (refused before anything connects), guards (readonly VMs,
//! taken VMIDs, a name that does not match), and answers from the host
//! that do not add up. SSH failures are [`crate::remote::ssh::SshError`].

use std::time::Duration;

use super::parse::ParseError;
use crate::error::{Classify, Kind};
use crate::keys::KeyError;

const READONLY_HELP: &str = "it is marked `proxmox.readonly = true` in hosts.nix or listed in PROXMOX_READONLY_VMIDS; change that first if you really mean it";

#[derive(Debug, thiserror::Error)]
pub enum ProxmoxError {
    #[error("`{name}` is not a valid VM name")]
    InvalidVmName { name: String },
    #[error("no Proxmox host is configured")]
    NoHost,
    #[error("`{host}` is not a valid Proxmox host address")]
    InvalidHost { host: String },
    #[error("`{user}` is not a valid user name")]
    InvalidUser { user: String },
    #[error("`{node}` is not a valid node name")]
    InvalidNode { node: String },
    #[error("PROXMOX_SSH_PORT=`{value}` is not a port number")]
    BadPort { value: String },
    #[error("PROXMOX_CONNECT_TIMEOUT=`{value}` is not a number of seconds")]
    BadConnectTimeout { value: String },
    #[error("PROXMOX_READONLY_VMIDS: `{value}` is not a VMID")]
    BadReadonlyList { value: String },
    #[error("VM {vmid} is readonly; refusing to {op} it")]
    Readonly { vmid: u32, op: String },
    #[error("VMID {vmid} already exists on Proxmox ({}, {kind} on node {node})", name.as_deref().unwrap_or("no name"))]
    VmidTaken {
        vmid: u32,
        name: Option<String>,
        kind: String,
        node: String,
    },
    #[error("nothing to change")]
    NothingToChange,
    #[error("VM {vmid} on Proxmox is named `{actual}`, not `{expected}`; refusing to destroy it")]
    NameMismatch {
        vmid: u32,
        actual: String,
        expected: String,
    },
    #[error("no free VMID left in {lo}..={hi}")]
    NoFreeVmid { lo: i64, hi: i64 },
    #[error("`{slot}` is not a disk slot")]
    BadDiskSlot { slot: String },
    #[error("`{size}` is not a disk size")]
    BadDiskSize { size: String },
    #[error("`{name}` is not a storage name")]
    BadStorage { name: String },
    #[error("VM {vmid} is not running")]
    NotRunning { vmid: u32 },
    #[error("VM {vmid} has an unusable bridge name `{bridge}`")]
    BadBridge { vmid: u32, bridge: String },
    #[error("no IP address found for VM {vmid}: {agent_problem}; and no neighbour entry for {} on {bridge}", shown_macs(macs))]
    NoIp {
        vmid: u32,
        /// Why the guest agent gave no address.
        agent_problem: String,
        macs: Vec<String>,
        bridge: String,
    },
    #[error("VM {vmid} did not answer on SSH within {}s (last: {last})", wait.as_secs())]
    SshWaitTimedOut {
        vmid: u32,
        wait: Duration,
        last: String,
    },
    #[error("reading the host key of VM {vmid} failed in the guest (exit code {}): {stderr}", exit_code.map_or("none".into(), |c| c.to_string()))]
    HostKeyReadFailed {
        vmid: u32,
        exit_code: Option<i64>,
        stderr: String,
    },
    #[error("VM {vmid} returned no usable ssh-ed25519 host key: {source}")]
    NoHostKey { vmid: u32, source: KeyError },
    #[error("Proxmox names a cluster node `{node}`, which is not a node name; refusing to use it")]
    HostileNodeName { node: String },
    #[error(
        "`{command}` on node {node} printed no task id (UPID){}",
        shown_stdout(stdout)
    )]
    NoUpid {
        node: String,
        command: String,
        stdout: String,
    },
    #[error(
        "the Proxmox task {upid} on node {node} failed: {exitstatus}{}",
        shown_tail(log_tail)
    )]
    TaskFailed {
        node: String,
        upid: String,
        exitstatus: String,
        /// The last lines of the task's log.
        log_tail: Vec<String>,
    },
    #[error("the Proxmox task {upid} on node {node} did not finish in time")]
    TaskTimedOut { node: String, upid: String },
    #[error("VM {vmid} runs on node {node}; its serial console is reachable only on that node")]
    ConsoleOnOtherNode { vmid: u32, node: String },
    #[error(transparent)]
    Unparsable(#[from] ParseError),
}

fn shown_tail(lines: &[String]) -> String {
    if lines.is_empty() {
        String::new()
    } else {
        format!("\ntask log (last lines):\n  {}", lines.join("\n  "))
    }
}

fn shown_stdout(stdout: &str) -> String {
    if stdout.is_empty() {
        " and nothing else".to_string()
    } else {
        format!(": {stdout}")
    }
}

fn shown_macs(macs: &[String]) -> String {
    if macs.is_empty() {
        "its MAC (none configured)".to_string()
    } else {
        macs.join(", ")
    }
}

impl Classify for ProxmoxError {
    fn kind(&self) -> Kind {
        use ProxmoxError::*;
        match self {
            NotRunning { .. }
            | BadBridge { .. }
            | NoIp { .. }
            | SshWaitTimedOut { .. }
            | HostKeyReadFailed { .. }
            | NoHostKey { .. }
            | HostileNodeName { .. }
            | NoUpid { .. }
            | TaskFailed { .. }
            | TaskTimedOut { .. }
            | Unparsable(_) => Kind::External,
            ConsoleOnOtherNode { .. } => Kind::Refused,
            _ => Kind::Input,
        }
    }

    fn help(&self) -> Option<String> {
        use ProxmoxError::*;
        Some(match self {
            InvalidVmName { .. } => "use lowercase letters, digits and `-` (at most 63, not starting or ending with `-`), e.g. `web-1`".into(),
            NoHost => "set `_proxmox.host` in hosts.nix, or PROXMOX_HOST".into(),
            InvalidHost { .. } => "use a host name or IP address in _proxmox.host / PROXMOX_HOST".into(),
            InvalidUser { .. } => "check _proxmox.user / PROXMOX_USER".into(),
            BadReadonlyList { .. } => "a comma-separated list of VMIDs, e.g. `104,105`".into(),
            Readonly { .. } => READONLY_HELP.into(),
            VmidTaken { .. } => "pick a free VMID: `proxmox-ops next-vmid`".into(),
            NothingToChange => "give --cores and/or --memory".into(),
            NameMismatch { .. } => "check the VMID (`proxmox-ops list`); nothing was changed".into(),
            NoFreeVmid { .. } => "widen `_proxmox.vmidRange` in hosts.nix".into(),
            BadDiskSlot { .. } => "use e.g. virtio0, scsi1, sata0 or ide2".into(),
            BadDiskSize { .. } => "use e.g. +16G (grow by 16 GiB) or 80G (grow to 80 GiB)".into(),
            BadStorage { .. } => "see `proxmox-ops storage` for the storages of the host".into(),
            NotRunning { vmid } => format!("start it: `proxmox-ops start {vmid}`"),
            NoIp { .. } => "start the VM and its guest agent (services.qemuGuest.enable = true), or wait until it has talked on the network".into(),
            HostileNodeName { .. } => "a Proxmox node name is letters, digits and `-`; check `pvesh get /cluster/resources` on the Proxmox host: nothing was run on that node".into(),
            NoUpid { node, .. } => format!("the task may have run all the same: see `pvesh get /nodes/{node}/tasks` (or the node's Tasks panel); run the command on the Proxmox host by hand to see what it prints"),
            TaskFailed { node, upid, .. } => format!("the whole log: `pvesh get /nodes/{node}/tasks/{upid}/log` on the Proxmox host (or the node's Tasks panel)"),
            TaskTimedOut { node, upid } => format!("it may still be running: `pvesh get /nodes/{node}/tasks/{upid}/status`; give a longer --timeout"),
            ConsoleOnOtherNode { vmid, node } => format!("connect to that node: `ssh root@{node} qm terminal {vmid}`, or PROXMOX_HOST=<{node}'s address> PROXMOX_NODE={node} proxmox-ops console {vmid}"),
            Unparsable(_) => "the Proxmox host printed something this tool does not understand; run the command there by hand to see it".into(),
            InvalidNode { .. } | BadPort { .. } | BadConnectTimeout { .. } | BadBridge { .. }
            | SshWaitTimedOut { .. } | HostKeyReadFailed { .. } | NoHostKey { .. } => return None,
        })
    }
}
