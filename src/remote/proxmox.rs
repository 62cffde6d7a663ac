//! Proxmox VE over SSH: `qm`, `pvesh`, `pvesm` run on the Proxmox host
//! through [`super::ssh::Ssh`], their output turned into typed values
//! ([`parse`]). The workflows call this API; `proxmox-ops` / `pve vm` are
//! a thin CLI over it.
//!
//! Guards live here too: VMIDs and names are validated before anything
//! connects, and VMs marked readonly refuse every changing operation.

mod cluster;
pub mod cluster_ops;
pub mod error;
pub mod guests;
pub mod parse;
pub mod placement;
pub mod snapshot;
pub mod target;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Kind, Result};
use crate::fleet::{defaults, Fleet, Loaded};

use super::ssh::{self, Endpoint, Options, Ssh, SshError};
pub use error::ProxmoxError;
pub use guests::Guest;
pub use parse::{GuestInterface, ListEntry, Storage, VmConfig, VmStatus};
use target::{Method, NodeName};

pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_OP_TIMEOUT: Duration = Duration::from_secs(120);
/// Clones copy whole disks: give them longer.
pub const LONG_OP_TIMEOUT: Duration = Duration::from_secs(1800);

/// A VMID as Proxmox allows it (100 ..= 999999999).
pub fn parse_vmid(s: &str) -> Result<u32> {
    Ok(s.parse::<crate::fleet::Vmid>()?.get())
}

/// A VM name must be a DNS label (it becomes the hostname).
pub fn check_name(name: &str) -> Result<()> {
    if crate::fleet::HostName::is_valid(name) {
        Ok(())
    } else {
        Err(ProxmoxError::InvalidVmName {
            name: name.to_string(),
        }
        .into())
    }
}

/// Where the Proxmox host is and how to talk to it.
#[derive(Debug, Clone)]
pub struct Settings {
    pub endpoint: Endpoint,
    /// The node `qm` runs on (`_proxmox.node`, PROXMOX_NODE); else `pve`.
    pub node: String,
    pub bridge: String,
    pub known_hosts: Vec<PathBuf>,
    /// The file `trust` writes (the first of `known_hosts`).
    pub proxmox_known_hosts: PathBuf,
    pub connect_timeout: Duration,
    /// Overrides every per-operation default timeout when set.
    pub op_timeout: Option<Duration>,
    pub reuse: bool,
    /// VMIDs no changing operation may touch.
    pub readonly: BTreeSet<u32>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl Settings {
    /// From hosts.nix (`_proxmox`), with the environment overrides
    /// PROXMOX_HOST, PROXMOX_USER, PROXMOX_NODE, PROXMOX_SSH_PORT,
    /// PROXMOX_SSH_IDENTITY, PROXMOX_CONNECT_TIMEOUT, PROXMOX_READONLY_VMIDS.
    pub fn from_loaded(loaded: &Loaded) -> Result<Settings> {
        Self::from_fleet(&loaded.fleet, &loaded.root_dir)
    }

    pub fn from_fleet(fleet: &Fleet, root: &Path) -> Result<Settings> {
        let px = fleet.proxmox.as_ref();
        let host = env("PROXMOX_HOST")
            .or_else(|| px.and_then(|p| p.host.as_ref()).map(|h| h.value.clone()))
            .ok_or(ProxmoxError::NoHost)?;
        if !ssh::valid_host(&host) {
            return Err(ProxmoxError::InvalidHost { host }.into());
        }
        let user = env("PROXMOX_USER")
            .or_else(|| px.and_then(|p| p.user.clone()))
            .unwrap_or_else(|| defaults::USER.into());
        if !ssh::valid_user(&user) {
            return Err(ProxmoxError::InvalidUser { user }.into());
        }
        let node = env("PROXMOX_NODE")
            .or_else(|| px.and_then(|p| p.node.as_ref()).map(|n| n.value.clone()))
            .unwrap_or_else(|| defaults::NODE.into());
        if !ssh::valid_host(&node) {
            return Err(ProxmoxError::InvalidNode { node }.into());
        }
        let port = match env("PROXMOX_SSH_PORT") {
            Some(p) => Some(
                p.trim()
                    .parse::<u16>()
                    .map_err(|_| ProxmoxError::BadPort { value: p.clone() })?,
            ),
            None => None,
        };
        let identity = env("PROXMOX_SSH_IDENTITY").map(PathBuf::from);
        let connect_timeout = match env("PROXMOX_CONNECT_TIMEOUT") {
            Some(t) => Duration::from_secs(
                t.trim()
                    .parse::<u64>()
                    .map_err(|_| ProxmoxError::BadConnectTimeout { value: t.clone() })?,
            ),
            None => DEFAULT_CONNECT_TIMEOUT,
        };
        let readonly = readonly_vmids(fleet)?;
        let bridge = px
            .and_then(|p| p.bridge.clone())
            .unwrap_or_else(|| defaults::BRIDGE.into());
        let proxmox_known_hosts = root.join(crate::known_hosts::PROXMOX_PATH);
        Ok(Settings {
            endpoint: Endpoint {
                host,
                user,
                port,
                identity,
            },
            node,
            bridge,
            // Only the hypervisor's own file: a VM's key (vms/known_hosts,
            // under names hosts.nix chose) must never vouch for Proxmox.
            known_hosts: vec![proxmox_known_hosts.clone()],
            proxmox_known_hosts,
            connect_timeout,
            op_timeout: None,
            reuse: true,
            readonly,
        })
    }

    /// Refuses a changing operation on a readonly VM (before connecting).
    pub fn ensure_writable(&self, vmid: u32, op: &str) -> Result<()> {
        if self.readonly.contains(&vmid) {
            return Err(ProxmoxError::Readonly {
                vmid,
                op: op.to_string(),
            }
            .into());
        }
        Ok(())
    }
}

/// VMIDs no changing operation may touch: `proxmox.readonly = true` in
/// hosts.nix, and PROXMOX_READONLY_VMIDS.
pub fn readonly_vmids(fleet: &Fleet) -> Result<BTreeSet<u32>> {
    let mut readonly: BTreeSet<u32> = fleet
        .vms()
        .filter(|(_, s)| s.readonly)
        .filter_map(|(_, s)| s.vmid.as_ref().and_then(|v| u32::try_from(v.value).ok()))
        .collect();
    if let Some(list) = env("PROXMOX_READONLY_VMIDS") {
        for t in list.split([',', ' ', '\n', '\t']).filter(|t| !t.is_empty()) {
            readonly.insert(parse_vmid(t).map_err(|_| ProxmoxError::BadReadonlyList {
                value: t.to_string(),
            })?);
        }
    }
    Ok(readonly)
}

/// Where an IP address came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum IpSource {
    GuestAgent,
    NeighbourTable,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VmIp {
    pub vmid: u32,
    pub ip: IpAddr,
    pub mac: Option<String>,
    pub source: IpSource,
}

/// A connection to the Proxmox host (lazy: nothing connects until the
/// first operation; the shared SSH connection closes on drop).
#[derive(Debug)]
pub struct Proxmox {
    ssh: Ssh,
    settings: Settings,
}

fn s<T: ToString>(v: T) -> String {
    v.to_string()
}

impl Proxmox {
    pub fn connect(settings: Settings) -> Result<Proxmox> {
        let ssh = Ssh::new(
            settings.endpoint.clone(),
            Options {
                known_hosts: settings.known_hosts.clone(),
                connect_timeout: settings.connect_timeout,
                reuse: settings.reuse,
            },
        )?;
        Ok(Proxmox { ssh, settings })
    }

    /// Settings from hosts.nix and the environment, then [`Proxmox::connect`].
    pub fn from_loaded(loaded: &Loaded) -> Result<Proxmox> {
        Self::connect(Settings::from_loaded(loaded)?)
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    fn timeout(&self, default: Duration) -> Duration {
        self.settings.op_timeout.unwrap_or(default)
    }

    fn run(&self, argv: &[String], default: Duration) -> Result<ssh::RemoteOutput> {
        Ok(self.ssh.run(argv, self.timeout(default))?)
    }

    /// For task commands that exit 0 even when the task failed (`qm
    /// template`, `qm resize`): a non-empty stderr is the failure.
    fn run_task_stderr_fails(&self, argv: &[String], default: Duration) -> Result<String> {
        let out = self.run(argv, default)?;
        let err = out.stderr.trim();
        if !err.is_empty() {
            return Err(SshError::RemoteFailed(Box::new(ssh::RemoteFailure {
                target: self.settings.endpoint.host.clone(),
                command: crate::shell::join(argv),
                status: "task failed".into(),
                code: out.code,
                stdout: out.stdout,
                stderr: out.stderr,
            }))
            .into());
        }
        Ok(out.stdout)
    }

    /// Every VM on this node (`qm list`).
    pub fn list(&self) -> Result<Vec<ListEntry>> {
        let out = self.run(&[s("qm"), s("list")], DEFAULT_OP_TIMEOUT)?;
        parse::qm_list(&out.stdout).map_err(external)
    }

    /// `qm status <vmid> --verbose` (a VM on another node:
    /// `pvesh get /nodes/<node>/qemu/<vmid>/status/current`).
    pub fn status(&self, vmid: u32) -> Result<VmStatus> {
        if let Some(node) = self.remote_node(vmid)? {
            let timeout = self.timeout(DEFAULT_OP_TIMEOUT);
            let text = self.pvesh_get_on(&node, vmid, "status/current", &[], timeout)?;
            return parse::status_current(&text).map_err(external);
        }
        let out = self.run(
            &[s("qm"), s("status"), s(vmid), s("--verbose")],
            DEFAULT_OP_TIMEOUT,
        )?;
        parse::vm_status_verbose(&out.stdout).map_err(external)
    }

    /// `pvesh get /nodes/<node>/qemu/<vmid>/status/current` (adds `agent`
    /// and works for any node of the cluster).
    pub fn status_current(&self, vmid: u32) -> Result<VmStatus> {
        let node = self.node_of(vmid)?;
        let timeout = self.timeout(DEFAULT_OP_TIMEOUT);
        let text = self.pvesh_get_on(&node, vmid, "status/current", &[], timeout)?;
        parse::status_current(&text).map_err(external)
    }

    /// `qm config <vmid>` (a VM on another node: `pvesh get
    /// /nodes/<node>/qemu/<vmid>/config`).
    pub fn config(&self, vmid: u32) -> Result<VmConfig> {
        let remote = self.remote_node(vmid)?;
        self.config_at(vmid, remote.as_ref())
    }

    /// The config of a VM whose node is known (`None`: this node).
    fn config_at(&self, vmid: u32, remote: Option<&NodeName>) -> Result<VmConfig> {
        let node = remote.map_or(self.settings.node.as_str(), NodeName::as_str);
        self.config_on(vmid, node, self.timeout(DEFAULT_OP_TIMEOUT))
    }

    /// Every guest in the cluster (VMs and containers, all nodes): the
    /// same answer as [`Proxmox::guests`], for callers that ask only where
    /// a VMID lives and what it is called.
    pub fn resources(&self) -> Result<Vec<Guest>> {
        self.guests()
    }

    /// `pvesh get /cluster/resources --type vm` as JSON: the one round trip
    /// behind [`Proxmox::guests`].
    fn cluster_resources_answer(&self) -> Result<String> {
        let argv = [
            "pvesh",
            "get",
            "/cluster/resources",
            "--type",
            "vm",
            "--output-format",
            "json",
        ];
        let argv: Vec<String> = argv.iter().map(s).collect();
        Ok(self.run(&argv, DEFAULT_OP_TIMEOUT)?.stdout)
    }

    /// VMIDs in use anywhere in the cluster (VMs, templates, containers).
    pub fn existing_vmids(&self) -> Result<BTreeSet<u32>> {
        Ok(self.resources()?.iter().map(|r| r.vmid).collect())
    }

    /// The lowest VMID in `_proxmox.vmidRange` free both in hosts.nix and
    /// on Proxmox.
    pub fn next_vmid(&self, fleet: &Fleet) -> Result<u32> {
        let used = self.existing_vmids()?;
        next_free_vmid(fleet, &used)
    }

    /// `pvesm status`.
    pub fn storage(&self) -> Result<Vec<Storage>> {
        let out = self.run(&[s("pvesm"), s("status")], DEFAULT_OP_TIMEOUT)?;
        parse::pvesm_status(&out.stdout).map_err(external)
    }

    /// Clones `source` to `target` on the node that holds `source` (see
    /// [`Proxmox::clone_vm_to`]); refuses a target VMID that already exists.
    pub fn clone_vm(
        &self,
        source: u32,
        target: u32,
        name: &str,
        full: bool,
        storage: Option<&str>,
    ) -> Result<String> {
        self.clone_vm_to(source, target, name, full, storage, None)
    }

    /// `qm set <vmid> --cores N --memory MiB` (another node: `pvesh set
    /// /nodes/<node>/qemu/<vmid>/config` with the same options).
    pub fn configure(
        &self,
        vmid: u32,
        cores: Option<u32>,
        memory_mib: Option<u32>,
    ) -> Result<String> {
        self.settings.ensure_writable(vmid, "configure")?;
        let mut opts = Vec::new();
        if let Some(c) = cores {
            opts.extend([s("--cores"), s(c)]);
        }
        if let Some(m) = memory_mib {
            opts.extend([s("--memory"), s(m)]);
        }
        if opts.is_empty() {
            return Err(ProxmoxError::NothingToChange.into());
        }
        self.set_config(vmid, opts)
    }

    /// `qm set <vmid> OPTS`, or `pvesh set …/config OPTS` for a VM on
    /// another node (PUT: synchronous, no task; errors exit non-zero).
    fn set_config(&self, vmid: u32, opts: Vec<String>) -> Result<String> {
        if let Some(node) = self.remote_node(vmid)? {
            return self.pvesh_set_on(&node, vmid, "config", &opts);
        }
        let mut argv = vec![s("qm"), s("set"), s(vmid)];
        argv.extend(opts);
        Ok(self.run(&argv, DEFAULT_OP_TIMEOUT)?.stdout)
    }

    /// `qm resize <vmid> <disk> <size>` (exit 0 even on failure: stderr
    /// tells); another node: `pvesh set …/resize`, a task.
    pub fn resize(&self, vmid: u32, disk: &str, size: &str) -> Result<String> {
        check_disk_slot(disk)?;
        check_size(size)?;
        self.settings.ensure_writable(vmid, "resize")?;
        if let Some(node) = self.remote_node(vmid)? {
            let args = [s("--disk"), s(disk), s("--size"), s(size)];
            return self.task_on(
                &node,
                vmid,
                Method::Set,
                "resize",
                &args,
                DEFAULT_OP_TIMEOUT,
            );
        }
        self.run_task_stderr_fails(
            &[s("qm"), s("resize"), s(vmid), s(disk), s(size)],
            DEFAULT_OP_TIMEOUT,
        )
    }

    /// `qm set <vmid> --<slot> <storage>:<GiB>`: a new empty disk.
    pub fn create_disk(
        &self,
        vmid: u32,
        slot: &str,
        storage: &str,
        size_gib: u32,
    ) -> Result<String> {
        check_disk_slot(slot)?;
        check_storage(storage)?;
        self.settings.ensure_writable(vmid, "add a disk to")?;
        self.set_config(
            vmid,
            vec![format!("--{slot}"), format!("{storage}:{size_gib}")],
        )
    }

    pub fn start(&self, vmid: u32) -> Result<String> {
        self.settings.ensure_writable(vmid, "start")?;
        self.power(vmid, "start", &[], DEFAULT_OP_TIMEOUT)
    }

    pub fn stop(&self, vmid: u32) -> Result<String> {
        self.settings.ensure_writable(vmid, "stop")?;
        self.power(vmid, "stop", &[], DEFAULT_OP_TIMEOUT)
    }

    /// ACPI shutdown, waiting up to `wait` for the guest.
    pub fn shutdown(&self, vmid: u32, wait: Duration) -> Result<String> {
        self.settings.ensure_writable(vmid, "shut down")?;
        let secs = wait.as_secs().max(1);
        let args = [s("--timeout"), s(secs)];
        self.power(vmid, "shutdown", &args, wait + DEFAULT_OP_TIMEOUT)
    }

    /// `qm reboot <vmid>`.
    pub fn restart(&self, vmid: u32) -> Result<String> {
        self.settings.ensure_writable(vmid, "restart")?;
        self.power(vmid, "reboot", &[], DEFAULT_OP_TIMEOUT)
    }

    /// `qm <action> <vmid> ARGS`, or for a VM on another node the task
    /// `pvesh create /nodes/<node>/qemu/<vmid>/status/<action> ARGS`.
    fn power(&self, vmid: u32, action: &str, args: &[String], timeout: Duration) -> Result<String> {
        if let Some(node) = self.remote_node(vmid)? {
            let what = format!("status/{action}");
            return self.task_on(&node, vmid, Method::Create, &what, args, timeout);
        }
        let mut argv = vec![s("qm"), s(action), s(vmid)];
        argv.extend_from_slice(args);
        Ok(self.run(&argv, timeout)?.stdout)
    }

    /// A task on VM `vmid` on `node` (`what` below its API path); the
    /// task's log as `qm` would have printed it.
    fn task_on(
        &self,
        node: &NodeName,
        vmid: u32,
        method: Method,
        what: &str,
        args: &[String],
        default: Duration,
    ) -> Result<String> {
        let path = target::vm_path(node, vmid, what);
        let done = self.pvesh_task(node, method, &path, args, self.timeout(default))?;
        self.task_output(&done)
    }

    /// `qm destroy <vmid> --purge`, only when the VM on Proxmox is named
    /// `expect_name` (`VM <vmid>` when it has none). Another node: the
    /// task `pvesh delete /nodes/<node>/qemu/<vmid> --purge 1`.
    pub fn destroy(&self, vmid: u32, expect_name: &str) -> Result<String> {
        self.settings.ensure_writable(vmid, "destroy")?;
        let remote = self.remote_node(vmid)?;
        let actual = name_of(vmid, &self.config_at(vmid, remote.as_ref())?);
        if actual != expect_name {
            return Err(ProxmoxError::NameMismatch {
                vmid,
                actual,
                expected: expect_name.to_string(),
            }
            .into());
        }
        if let Some(node) = remote {
            let args = [s("--purge"), s(1)];
            return self.task_on(&node, vmid, Method::Delete, "", &args, LONG_OP_TIMEOUT);
        }
        Ok(self
            .run(
                &[s("qm"), s("destroy"), s(vmid), s("--purge")],
                LONG_OP_TIMEOUT,
            )?
            .stdout)
    }

    /// The VM's name as Proxmox shows it (`VM <vmid>` when unnamed).
    pub fn vm_name(&self, vmid: u32) -> Result<String> {
        Ok(name_of(vmid, &self.config(vmid)?))
    }

    /// `qm template <vmid>` (exit 0 even on failure: stderr tells);
    /// another node: the task `pvesh create …/template`.
    pub fn template(&self, vmid: u32) -> Result<String> {
        self.settings
            .ensure_writable(vmid, "convert to a template")?;
        if let Some(node) = self.remote_node(vmid)? {
            return self.task_on(
                &node,
                vmid,
                Method::Create,
                "template",
                &[],
                LONG_OP_TIMEOUT,
            );
        }
        self.run_task_stderr_fails(&[s("qm"), s("template"), s(vmid)], LONG_OP_TIMEOUT)
    }

    /// The serial console (`qm terminal`), attached to this terminal. It
    /// exists only on the node that runs the VM (a socket there), so a VM
    /// on another node is refused with the way to reach it.
    pub fn console(&self, vmid: u32) -> Result<i32> {
        if let Some(node) = self.remote_node(vmid)? {
            return Err(ProxmoxError::ConsoleOnOtherNode {
                vmid,
                node: node.to_string(),
            }
            .into());
        }
        Ok(self.ssh.interactive(&[s("qm"), s("terminal"), s(vmid)])?)
    }

    /// The guest agent's interfaces (errors keep Proxmox's stderr).
    fn guest_interfaces(
        &self,
        vmid: u32,
        remote: Option<&NodeName>,
    ) -> Result<Vec<GuestInterface>, SshError> {
        let answer = self.agent_interfaces_text(vmid, remote, self.timeout(DEFAULT_OP_TIMEOUT))?;
        parse::guest_interfaces(&answer).map_err(|e| self.unparsable(e.to_string()))
    }

    /// The guest agent's network-get-interfaces array as JSON text: `qm
    /// guest cmd` here, `pvesh get …/agent/network-get-interfaces` (the
    /// same array wrapped in `{"result": …}`) on another node. Errors keep
    /// Proxmox's stderr.
    pub(crate) fn agent_interfaces_text(
        &self,
        vmid: u32,
        remote: Option<&NodeName>,
        timeout: Duration,
    ) -> Result<String, SshError> {
        let Some(node) = remote else {
            let argv = [
                s("qm"),
                s("guest"),
                s("cmd"),
                s(vmid),
                s("network-get-interfaces"),
            ];
            return Ok(self.ssh.run(&argv, timeout)?.stdout);
        };
        let argv = [
            s("pvesh"),
            s("get"),
            target::vm_path(node, vmid, "agent/network-get-interfaces"),
            s("--output-format"),
            s("json"),
        ];
        let out = self.ssh.run(&argv, timeout)?;
        let v: serde_json::Value =
            serde_json::from_str(out.stdout.trim()).map_err(|e| self.unparsable(e.to_string()))?;
        Ok(v.get("result").cloned().unwrap_or_default().to_string())
    }

    /// An answer from the Proxmox host that pve cannot read.
    fn unparsable(&self, detail: String) -> SshError {
        SshError::Other {
            target: self.settings.endpoint.host.clone(),
            stderr: detail,
        }
    }

    /// `running` or `stopped` (`qm status`; another node: status/current).
    fn run_state(&self, vmid: u32, remote: Option<&NodeName>) -> Result<String> {
        if let Some(node) = remote {
            let timeout = self.timeout(DEFAULT_OP_TIMEOUT);
            let text = self.pvesh_get_on(node, vmid, "status/current", &[], timeout)?;
            return Ok(parse::status_current(&text).map_err(external)?.status);
        }
        let out = self.run(&[s("qm"), s("status"), s(vmid)], DEFAULT_OP_TIMEOUT)?;
        parse::qm_status(&out.stdout).map_err(external)
    }

    /// The VM's IPv4 address: from the guest agent, else by its MAC in
    /// the Proxmox host's neighbour table, bounded to the bridge's subnet.
    /// A VM on another node is asked through pvesh; the neighbour table is
    /// always the connected host's (it knows a VM on another node only
    /// when they share the bridge's network and have talked).
    pub fn get_ip(&self, vmid: u32) -> Result<VmIp> {
        let remote = self.remote_node(vmid)?;
        self.get_ip_at(vmid, remote.as_ref())
    }

    fn get_ip_at(&self, vmid: u32, remote: Option<&NodeName>) -> Result<VmIp> {
        let cfg = self.config_at(vmid, remote)?;
        let nets = cfg.nets();
        // Only the VM's first NIC: its MAC is Proxmox's word, not the VM's.
        let macs: Vec<String> = nets
            .iter()
            .filter(|n| n.id == "net0")
            .map(|n| n.mac.clone())
            .filter(|m| !m.is_empty())
            .collect();
        let refused = AddressPolicy::for_proxmox(&self.settings.endpoint.host);
        let agent_problem;
        if cfg.agent_enabled() {
            match self.guest_interfaces(vmid, remote) {
                Ok(ifaces) => {
                    if let Some(ip) = pick_agent_ip(&ifaces, &macs, &refused) {
                        return Ok(ip_result(vmid, ip.0, Some(ip.1), IpSource::GuestAgent));
                    }
                    agent_problem = "the guest agent reports no IPv4 address".to_string();
                }
                Err(SshError::RemoteFailed(f)) => {
                    let msg = f.stderr.trim().to_string();
                    // A stopped VM has no address; a stale neighbour entry
                    // must not pass for one.
                    if msg.contains(&format!("VM {vmid} is not running")) {
                        return Err(ProxmoxError::NotRunning { vmid }.into());
                    }
                    agent_problem = msg;
                }
                Err(e) => return Err(e.into()),
            }
        } else {
            if self.run_state(vmid, remote)? == "stopped" {
                return Err(ProxmoxError::NotRunning { vmid }.into());
            }
            agent_problem = "no QEMU guest agent configured".into();
        }
        let bridge = nets
            .iter()
            .find_map(|n| n.bridge.clone())
            .unwrap_or_else(|| self.settings.bridge.clone());
        if !ssh::valid_host(&bridge) {
            return Err(ProxmoxError::BadBridge { vmid, bridge }.into());
        }
        let addr = self.run(
            &[
                s("ip"),
                s("-j"),
                s("-4"),
                s("addr"),
                s("show"),
                s("dev"),
                s(&bridge),
            ],
            DEFAULT_OP_TIMEOUT,
        )?;
        let nets4 = parse::ip_addr_v4(&addr.stdout).map_err(external)?;
        let neigh = self.run(
            &[
                s("ip"),
                s("-j"),
                s("neigh"),
                s("show"),
                s("dev"),
                s(&bridge),
            ],
            DEFAULT_OP_TIMEOUT,
        )?;
        let entries = parse::ip_neigh(&neigh.stdout).map_err(external)?;
        let mut candidates: Vec<&parse::Neighbour> = entries
            .iter()
            .filter(|n| macs.contains(&n.mac))
            .filter(|n| !n.state.iter().any(|s| s == "FAILED" || s == "INCOMPLETE"))
            .filter(|n| match n.ip {
                IpAddr::V4(v4) => nets4.iter().any(|(net, p)| parse::in_subnet(v4, *net, *p)),
                IpAddr::V6(_) => false,
            })
            .filter(|n| refused.allows(n.ip))
            .collect();
        // Prefer the freshest entries.
        candidates.sort_by_key(|n| {
            let fresh = n.state.iter().any(|s| s == "REACHABLE" || s == "PERMANENT");
            (!fresh, n.ip)
        });
        match candidates.first() {
            Some(n) => Ok(ip_result(
                vmid,
                n.ip,
                Some(n.mac.clone()),
                IpSource::NeighbourTable,
            )),
            None => Err(ProxmoxError::NoIp {
                vmid,
                agent_problem,
                macs,
                bridge,
            }
            .into()),
        }
    }

    /// Waits until the VM's SSH port answers with an SSH banner.
    pub fn wait_ssh(&self, vmid: u32, port: u16, wait: Duration) -> Result<VmIp> {
        let deadline = Instant::now() + wait;
        let remote = self.remote_node(vmid)?;
        let mut last;
        loop {
            match self.get_ip_at(vmid, remote.as_ref()) {
                Ok(ip) => match ssh::ssh_banner(ip.ip, port, Duration::from_secs(3)) {
                    Ok(()) => return Ok(ip),
                    Err(e) => last = format!("{}:{port}: {e}", ip.ip),
                },
                Err(e) if e.kind() == Kind::External => last = e.to_string(),
                Err(e) => return Err(e),
            }
            if Instant::now() >= deadline {
                return Err(ProxmoxError::SshWaitTimedOut { vmid, wait, last }.into());
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// The VM's `/etc/ssh/ssh_host_ed25519_key.pub`, read through the guest
    /// agent over the authenticated Proxmox connection, so the key can be
    /// pinned before the first SSH connection to the VM.
    pub fn host_key(&self, vmid: u32) -> Result<String> {
        const KEY: &str = "/etc/ssh/ssh_host_ed25519_key.pub";
        let answer = match self.remote_node(vmid)? {
            Some(node) => self.agent_exec_on(&node, vmid, &[s("cat"), s(KEY)])?,
            None => {
                let argv = [
                    s("qm"),
                    s("guest"),
                    s("exec"),
                    s(vmid),
                    s("--"),
                    s("cat"),
                    s(KEY),
                ];
                self.run(&argv, DEFAULT_OP_TIMEOUT)?.stdout
            }
        };
        let res = parse::guest_exec(&answer).map_err(external)?;
        if !res.exited || res.exitcode != Some(0) {
            return Err(ProxmoxError::HostKeyReadFailed {
                vmid,
                exit_code: res.exitcode,
                stderr: res.err_data.trim().to_string(),
            }
            .into());
        }
        let line = res
            .out_data
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim();
        Ok(crate::keys::normalise_ed25519(line)
            .map_err(|source| ProxmoxError::NoHostKey { vmid, source })?)
    }

    /// Closes the shared SSH connection now (also happens on drop).
    pub fn close(mut self) {
        self.ssh.close();
    }
}

/// `name` of a config, `VM <vmid>` when it has none (as Proxmox shows it).
fn name_of(vmid: u32, cfg: &VmConfig) -> String {
    cfg.name()
        .map_or_else(|| format!("VM {vmid}"), str::to_string)
}

fn ip_result(vmid: u32, ip: IpAddr, mac: Option<String>, source: IpSource) -> VmIp {
    VmIp {
        vmid,
        ip,
        mac,
        source,
    }
}

/// Which addresses a VM may be reached at: never loopback (pve would talk
/// to the workstation it runs on), link-local, multicast or broadcast, and
/// never the Proxmox host's own address. `PVE_ALLOW_LOOPBACK_VMS=1` lets
/// labs and tests whose VMs sit on 127.0.0.2.. through; 127.0.0.1 stays
/// refused even then.
#[derive(Debug, Clone)]
pub struct AddressPolicy {
    proxmox: Vec<IpAddr>,
    allow_loopback: bool,
}

impl AddressPolicy {
    pub fn for_proxmox(host: &str) -> AddressPolicy {
        use std::net::ToSocketAddrs as _;
        let proxmox = match host.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => (host, 22)
                .to_socket_addrs()
                .map(|a| a.map(|a| a.ip()).collect())
                .unwrap_or_default(),
        };
        AddressPolicy {
            proxmox,
            allow_loopback: env("PVE_ALLOW_LOOPBACK_VMS").as_deref() == Some("1"),
        }
    }

    pub fn allows(&self, ip: IpAddr) -> bool {
        let IpAddr::V4(v) = ip else { return false };
        let loopback_ok = self.allow_loopback && v != std::net::Ipv4Addr::LOCALHOST;
        let forbidden = (v.is_loopback() && !loopback_ok)
            || v.is_link_local()
            || v.is_unspecified()
            || v.is_multicast()
            || v.is_broadcast()
            || self.proxmox.contains(&ip);
        !forbidden
    }
}

/// The agent's first usable IPv4 address, only on the interface whose MAC
/// is the VM's `net0` (anything else the agent says is the guest's word
/// alone: another host's address on a dummy interface, a tunnel).
fn pick_agent_ip(
    ifaces: &[GuestInterface],
    macs: &[String],
    policy: &AddressPolicy,
) -> Option<(IpAddr, String)> {
    ifaces
        .iter()
        .filter(|i| {
            i.mac != "00:00:00:00:00:00" && macs.iter().any(|m| m.eq_ignore_ascii_case(&i.mac))
        })
        .find_map(|i| {
            i.addresses
                .iter()
                .map(|a| a.0)
                .find(|ip| policy.allows(*ip))
                .map(|ip| (ip, i.mac.clone()))
        })
}

/// The lowest VMID of the fleet's range used neither in hosts.nix nor in
/// `used`.
pub fn next_free_vmid(fleet: &Fleet, used: &BTreeSet<u32>) -> Result<u32> {
    let (lo, hi) = fleet
        .proxmox
        .as_ref()
        .map_or(crate::fleet::model::DEFAULT_VMID_RANGE, |p| p.vmid_range);
    let in_fleet: BTreeSet<i64> = fleet
        .vms()
        .filter_map(|(_, s)| s.vmid.as_ref().map(|v| v.value))
        .collect();
    let lo = lo.max(100);
    for id in lo..=hi {
        if in_fleet.contains(&id) {
            continue;
        }
        let Ok(id32) = u32::try_from(id) else { break };
        if !used.contains(&id32) {
            return Ok(id32);
        }
    }
    Err(ProxmoxError::NoFreeVmid { lo, hi }.into())
}

/// An answer of the Proxmox host that does not parse.
fn external(e: parse::ParseError) -> crate::error::AppError {
    ProxmoxError::Unparsable(e).into()
}

/// `virtio0`, `scsi1`, `sata2`, `ide3`.
pub fn check_disk_slot(slot: &str) -> Result<()> {
    let bus = slot.trim_end_matches(|c: char| c.is_ascii_digit());
    let num = &slot[bus.len()..];
    let ok = ["virtio", "scsi", "sata", "ide"].contains(&bus) && !num.is_empty() && num.len() <= 2;
    if ok {
        Ok(())
    } else {
        Err(ProxmoxError::BadDiskSlot {
            slot: slot.to_string(),
        }
        .into())
    }
}

/// A size for `qm resize`: `+16G` (grow by) or `80G` (grow to).
pub fn check_size(size: &str) -> Result<()> {
    let body = size.strip_prefix('+').unwrap_or(size);
    let digits = body.trim_end_matches(['K', 'M', 'G', 'T']);
    let ok = !digits.is_empty()
        && digits.len() <= 9
        && digits.chars().all(|c| c.is_ascii_digit())
        && body.len() - digits.len() <= 1;
    if ok {
        Ok(())
    } else {
        Err(ProxmoxError::BadDiskSize {
            size: size.to_string(),
        }
        .into())
    }
}

/// A Proxmox storage id.
pub fn check_storage(st: &str) -> Result<()> {
    let ok = st.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && st.len() <= 64
        && st
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ProxmoxError::BadStorage {
            name: st.to_string(),
        }
        .into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vmids_are_integers_in_range() {
        assert_eq!(parse_vmid("111").expect("ok"), 111);
        for bad in ["99", "x", "111;id", "-5", "+111", "1e3", ""] {
            let e = parse_vmid(bad).expect_err(bad);
            assert_eq!(e.exit_code(), 2);
        }
    }

    #[test]
    fn slots_sizes_and_storages() {
        assert!(check_disk_slot("virtio0").is_ok());
        assert!(check_disk_slot("scsi10").is_ok());
        assert!(check_disk_slot("efidisk0").is_err());
        assert!(check_disk_slot("scsi").is_err());
        assert!(check_size("+16G").is_ok());
        assert!(check_size("80G").is_ok());
        assert!(check_size("16GG").is_err());
        assert!(check_size("+").is_err());
        assert!(check_size("1;rm").is_err());
        assert!(check_storage("local-lvm").is_ok());
        assert!(check_storage("-x").is_err());
        assert!(check_storage("a b").is_err());
    }

    #[test]
    fn agent_ip_prefers_the_vm_nic_and_skips_loopback() {
        let ifaces = parse::guest_interfaces(
            &std::fs::read_to_string(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/proxmox-cli/guest-network-get-interfaces.tunnel.json"
            ))
            .expect("sample"),
        )
        .expect("parses");
        let policy = AddressPolicy::for_proxmox("192.0.2.12");
        let got = pick_agent_ip(&ifaces, &["bc:24:11:5e:7a:01".into()], &policy).expect("an ip");
        assert_eq!(got.0.to_string(), "192.0.2.111");
    }

    fn iface(name: &str, mac: &str, ips: &[&str]) -> GuestInterface {
        GuestInterface {
            name: name.into(),
            mac: mac.into(),
            addresses: ips.iter().map(|i| (i.parse().expect("ip"), 24)).collect(),
        }
    }

    #[test]
    fn the_agent_cannot_name_an_address_off_the_vm_nic_or_a_forbidden_one() {
        let net0 = vec!["bc:24:11:5e:7a:01".to_string()];
        let policy = AddressPolicy {
            proxmox: vec!["192.0.2.12".parse().expect("ip")],
            allow_loopback: false,
        };
        // Another host's address on an interface with another MAC: ignored,
        // even when the VM's own NIC has no address.
        let ifaces = [
            iface("dummy0", "02:00:00:00:00:09", &["192.0.2.20"]),
            iface("ens18", "bc:24:11:5e:7a:01", &[]),
        ];
        assert_eq!(pick_agent_ip(&ifaces, &net0, &policy), None);
        // On the VM's NIC: loopback, link-local, multicast, broadcast and the
        // Proxmox host's address are skipped; a real address is taken.
        let ifaces = [iface(
            "ens18",
            "BC:24:11:5E:7A:01",
            &[
                "127.0.0.1",
                "127.0.0.2",
                "169.254.1.1",
                "224.0.0.1",
                "255.255.255.255",
                "192.0.2.12",
                "192.0.2.111",
            ],
        )];
        let got = pick_agent_ip(&ifaces, &net0, &policy).expect("an ip");
        assert_eq!(got.0.to_string(), "192.0.2.111");
        let only_bad = [iface(
            "ens18",
            "bc:24:11:5e:7a:01",
            &["127.0.0.1", "192.0.2.12"],
        )];
        assert_eq!(pick_agent_ip(&only_bad, &net0, &policy), None);
        // No net0 MAC known: no address from the agent at all.
        assert_eq!(pick_agent_ip(&ifaces, &[], &policy), None);
        // The lab opt-in lets 127.0.0.2 through, never 127.0.0.1.
        let lab = AddressPolicy {
            allow_loopback: true,
            ..policy
        };
        let lo = [iface(
            "ens18",
            "bc:24:11:5e:7a:01",
            &["127.0.0.1", "127.0.0.2"],
        )];
        assert_eq!(
            pick_agent_ip(&lo, &net0, &lab).map(|g| g.0.to_string()),
            Some("127.0.0.2".into())
        );
    }
}
