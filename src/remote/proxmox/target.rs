//! Which node holds a VM, and how an operation reaches a VM on another
//! node of the cluster.
//!
//! [`Proxmox::remote_node`] is the one place that decides: it asks
//! `/cluster/resources` where the VM lives; on the node pve connects to (or
//! when the cluster does not know the VMID, so Proxmox's own "does not
//! exist" is what the user sees) the operation runs `qm` as always; on
//! another node it runs `pvesh` against `/nodes/<node>/qemu/<vmid>/…` on
//! the same pinned host, which proxies to that node (pvesh.pm
//! `check_proxyto` / `proxy_handler`: `ssh <node> pvesh --noproxy …` over
//! the cluster's own SSH). No new SSH trust is needed.
//!
//! Tasks: pvesh runs in Proxmox's CLI environment, where `fork_worker`
//! runs every worker in the foreground (pve-common RESTEnvironment.pm
//! `fork_worker`, `$sync = type eq 'cli'`), also on the node it proxies
//! to. So `pvesh create …/status/start` returns after the task ended,
//! prints the task's UPID, and exits 0 even when the task failed (the
//! error goes to stderr; only `qm` adds `$upid_exit`). The task's outcome
//! is therefore read from `/nodes/<node>/tasks/<UPID>/status`
//! (`exitstatus`: `OK`, `WARNINGS: N`, or the error), polled until
//! `stopped` under the operation's timeout, and a failure carries the
//! last lines of `/nodes/<node>/tasks/<UPID>/log`.
//!
//! Node names and UPIDs come from the network; both are checked against
//! Proxmox's own formats before they go into a pvesh path.

use std::time::{Duration, Instant};

use serde_json::Value as Json;

use super::error::ProxmoxError;
use super::{s, Proxmox, DEFAULT_OP_TIMEOUT};
use crate::error::Result;

/// How many lines of a failed task's log an error shows.
pub const LOG_TAIL: usize = 8;

/// A cluster node name as Proxmox allows it (`pve-node`: a DNS label,
/// letters, digits and `-`, not starting or ending with `-`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeName(String);

impl NodeName {
    /// Refuses anything else (`pve2;rm -rf /`, `../x`, spaces, dots).
    pub fn parse(name: &str) -> std::result::Result<NodeName, ProxmoxError> {
        let b = name.as_bytes();
        let ok = !b.is_empty()
            && b.len() <= 63
            && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
            && b[0] != b'-'
            && b[b.len() - 1] != b'-';
        if ok {
            Ok(NodeName(name.to_string()))
        } else {
            Err(ProxmoxError::HostileNodeName {
                node: name.to_string(),
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for NodeName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A task's unique id, `UPID:<node>:<pid>:<pstart>:<starttime>:<type>:<id>:<user>:`
/// (pve-common UPID.pm `encode`/`decode`), checked strictly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upid {
    text: String,
    node: String,
}

impl Upid {
    pub fn parse(text: &str) -> Option<Upid> {
        let body = text.strip_prefix("UPID:")?.strip_suffix(':')?;
        let f: Vec<&str> = body.split(':').collect();
        let [node, pid, pstart, start, kind, id, user] = f.as_slice() else {
            return None;
        };
        let hex = |v: &str, lens: &[usize]| {
            lens.contains(&v.len()) && v.bytes().all(|c| c.is_ascii_hexdigit())
        };
        let word = |v: &str, extra: &[u8]| {
            v.len() <= 128
                && v.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(&c) || extra.contains(&c))
        };
        let ok = NodeName::parse(node).is_ok()
            && hex(pid, &[8])
            && hex(pstart, &[8, 9])
            && hex(start, &[8])
            && !kind.is_empty()
            && word(kind, b"")
            && word(id, b"")
            && !user.is_empty()
            && word(user, b"@!");
        ok.then(|| Upid {
            text: text.to_string(),
            node: node.to_string(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn node(&self) -> &str {
        &self.node
    }
}

/// The last UPID in what `pvesh create|set|delete` printed: a bare line,
/// a JSON string, or (proxied) inside the JSON string that wraps the
/// remote pvesh's whole output.
fn find_upid(stdout: &str) -> Option<Upid> {
    stdout
        .match_indices("UPID:")
        .filter_map(|(i, _)| {
            let rest = &stdout[i..];
            let end = rest
                .find(|c: char| c == '"' || c == '\\' || c.is_whitespace())
                .unwrap_or(rest.len());
            Upid::parse(&rest[..end])
        })
        .last()
}

/// How a `pvesh` call changes something: POST, PUT or DELETE.
#[derive(Debug, Clone, Copy)]
pub enum Method {
    Create,
    Set,
    Delete,
}

impl Method {
    fn word(self) -> &'static str {
        match self {
            Method::Create => "create",
            Method::Set => "set",
            Method::Delete => "delete",
        }
    }
}

/// A task that ended well: its id and, on request, its log.
#[derive(Debug, Clone)]
pub struct TaskDone {
    pub node: NodeName,
    pub upid: Upid,
    /// `WARNINGS: N` when the task warned.
    pub exitstatus: String,
}

impl Proxmox {
    /// The node that holds VM `vmid` when it is not the node pve connects
    /// to; `None` when it is that node, or when the cluster does not know
    /// the VMID (then `qm` answers as Proxmox does). A node name that is
    /// not a Proxmox node name is refused before anything uses it.
    pub fn remote_node(&self, vmid: u32) -> Result<Option<NodeName>> {
        let Some(guest) = self.guests()?.into_iter().find(|g| g.vmid == vmid) else {
            return Ok(None);
        };
        let node = NodeName::parse(&guest.node)?;
        Ok((node.as_str() != self.settings.node).then_some(node))
    }

    /// The node that holds VM `vmid` (this node when the cluster does not
    /// know it).
    pub(super) fn node_of(&self, vmid: u32) -> Result<NodeName> {
        Ok(self
            .remote_node(vmid)?
            .unwrap_or_else(|| NodeName(self.settings.node.clone())))
    }

    /// The log of a task that ended well, as `qm` prints it (without the
    /// closing `TASK OK`).
    pub(super) fn task_output(&self, done: &TaskDone) -> Result<String> {
        let log = self.task_log(&done.node, &done.upid)?;
        let mut text: String = log
            .iter()
            .filter(|l| l.as_str() != "TASK OK")
            .map(|l| format!("{l}\n"))
            .collect();
        if let Some(n) = done.exitstatus.strip_prefix("WARNINGS: ") {
            // What qm prints on stderr then (RESTEnvironment.pm `$tee_worker`).
            text.push_str(&format!("Task finished with {n} warning(s)!\n"));
        }
        Ok(text)
    }

    /// Runs `command` in the guest through the agent of VM `vmid` on
    /// `node` (`pvesh create …/agent/exec --command …`, then
    /// `…/agent/exec-status --pid N` until it exited): the status object's
    /// JSON, as `qm guest exec` prints it.
    pub(super) fn agent_exec_on(
        &self,
        node: &NodeName,
        vmid: u32,
        command: &[String],
    ) -> Result<String> {
        let timeout = self.timeout(DEFAULT_OP_TIMEOUT);
        let deadline = Instant::now() + timeout;
        let args: Vec<String> = command
            .iter()
            .flat_map(|c| [s("--command"), c.clone()])
            .collect();
        let mut argv = vec![
            s("pvesh"),
            s("create"),
            vm_path(node, vmid, "agent/exec"),
            s("--output-format"),
            s("json"),
        ];
        argv.extend(args);
        let started = self.ssh.run(&argv, timeout)?.stdout;
        let pid = serde_json::from_str::<Json>(started.trim())
            .ok()
            .and_then(|v| v.get("pid").and_then(Json::as_u64))
            .ok_or_else(|| {
                super::external(super::parse::ParseError {
                    what: "pvesh create /nodes/<node>/qemu/<vmid>/agent/exec",
                    detail: format!("no pid in {:?}", started.trim()),
                })
            })?;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let status = self.pvesh_get_on(
                node,
                vmid,
                "agent/exec-status",
                &[s("--pid"), s(pid)],
                left.max(Duration::from_secs(5)),
            )?;
            let exited = serde_json::from_str::<Json>(status.trim())
                .ok()
                .and_then(|v| v.get("exited").and_then(Json::as_u64));
            if exited == Some(1) || Instant::now() >= deadline {
                return Ok(status);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `pvesh get /nodes/<node>/qemu/<vmid>/<what> --output-format json`
    /// plus `args`: the answer's text.
    pub(super) fn pvesh_get_on(
        &self,
        node: &NodeName,
        vmid: u32,
        what: &str,
        args: &[String],
        timeout: Duration,
    ) -> Result<String> {
        let mut argv = vec![
            s("pvesh"),
            s("get"),
            vm_path(node, vmid, what),
            s("--output-format"),
            s("json"),
        ];
        argv.extend_from_slice(args);
        Ok(self.ssh.run(&argv, timeout)?.stdout)
    }

    /// `pvesh set /nodes/<node>/qemu/<vmid>/<what> ARGS`: a synchronous
    /// change (PUT `…/config` is `update_vm`, no task).
    pub(super) fn pvesh_set_on(
        &self,
        node: &NodeName,
        vmid: u32,
        what: &str,
        args: &[String],
    ) -> Result<String> {
        let mut argv = vec![s("pvesh"), s("set"), vm_path(node, vmid, what)];
        argv.extend_from_slice(args);
        Ok(self.run(&argv, DEFAULT_OP_TIMEOUT)?.stdout)
    }

    /// Runs a task-creating `pvesh` call on `node` and waits for the task
    /// (see the module docs), all within `timeout`. A task that ended with
    /// an error is [`ProxmoxError::TaskFailed`] with its log's last lines.
    pub(super) fn pvesh_task(
        &self,
        node: &NodeName,
        method: Method,
        path: &str,
        args: &[String],
        timeout: Duration,
    ) -> Result<TaskDone> {
        let deadline = Instant::now() + timeout;
        let mut argv = vec![
            s("pvesh"),
            s(method.word()),
            path.to_string(),
            s("--output-format"),
            s("json"),
        ];
        argv.extend_from_slice(args);
        let out = self.ssh.run(&argv, timeout)?;
        let upid = find_upid(&out.stdout).ok_or_else(|| ProxmoxError::NoUpid {
            node: node.to_string(),
            command: crate::shell::join(&argv),
            stdout: out.stdout.trim().chars().take(400).collect(),
        })?;
        if upid.node() != node.as_str() {
            return Err(ProxmoxError::NoUpid {
                node: node.to_string(),
                command: crate::shell::join(&argv),
                stdout: upid.as_str().to_string(),
            }
            .into());
        }
        let exitstatus = self.wait_task(node, &upid, deadline)?;
        let done = TaskDone {
            node: node.clone(),
            upid,
            exitstatus,
        };
        if done.exitstatus == "OK" || done.exitstatus.starts_with("WARNINGS: ") {
            return Ok(done);
        }
        let log = self.task_log(node, &done.upid).unwrap_or_default();
        let tail = log.len().saturating_sub(LOG_TAIL);
        Err(ProxmoxError::TaskFailed {
            node: node.to_string(),
            upid: done.upid.as_str().to_string(),
            exitstatus: done.exitstatus,
            log_tail: log[tail..].to_vec(),
        }
        .into())
    }

    /// Polls the task's status until it is `stopped`; its `exitstatus`.
    fn wait_task(&self, node: &NodeName, upid: &Upid, deadline: Instant) -> Result<String> {
        let path = format!("/nodes/{node}/tasks/{}/status", upid.as_str());
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let argv = [
                s("pvesh"),
                s("get"),
                s(&path),
                s("--output-format"),
                s("json"),
            ];
            let out = self.ssh.run(&argv, left.max(Duration::from_secs(5)))?;
            let v: Json = serde_json::from_str(out.stdout.trim()).map_err(|e| {
                super::external(super::parse::ParseError {
                    what: "pvesh get /nodes/<node>/tasks/<upid>/status",
                    detail: e.to_string(),
                })
            })?;
            if v.get("status").and_then(Json::as_str) == Some("stopped") {
                let exit = v.get("exitstatus").and_then(Json::as_str);
                return Ok(exit.unwrap_or("unexpected status").to_string());
            }
            if Instant::now() >= deadline {
                return Err(ProxmoxError::TaskTimedOut {
                    node: node.to_string(),
                    upid: upid.as_str().to_string(),
                }
                .into());
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// The task's log lines (`/nodes/<node>/tasks/<upid>/log`).
    pub(super) fn task_log(&self, node: &NodeName, upid: &Upid) -> Result<Vec<String>> {
        let argv = [
            s("pvesh"),
            s("get"),
            format!("/nodes/{node}/tasks/{}/log", upid.as_str()),
            s("--limit"),
            s(10000),
            s("--output-format"),
            s("json"),
        ];
        let out = self.run(&argv, DEFAULT_OP_TIMEOUT)?;
        let v: Json = serde_json::from_str(out.stdout.trim()).map_err(|e| {
            super::external(super::parse::ParseError {
                what: "pvesh get /nodes/<node>/tasks/<upid>/log",
                detail: e.to_string(),
            })
        })?;
        Ok(v.as_array()
            .map(|lines| {
                lines
                    .iter()
                    .filter_map(|l| l.get("t").and_then(Json::as_str))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default())
    }
}

/// `/nodes/<node>/qemu/<vmid>` plus `/<what>` when given.
pub(super) fn vm_path(node: &NodeName, vmid: u32, what: &str) -> String {
    if what.is_empty() {
        format!("/nodes/{node}/qemu/{vmid}")
    } else {
        format!("/nodes/{node}/qemu/{vmid}/{what}")
    }
}

/// What a failed task said, as lines a `qm` user would have seen on
/// stderr: the log's lines with the `TASK ERROR: ` prefix taken off.
pub fn task_message(log_tail: &[String], exitstatus: &str) -> String {
    let mut lines: Vec<&str> = log_tail
        .iter()
        .map(|l| l.strip_prefix("TASK ERROR: ").unwrap_or(l))
        .collect();
    if !lines.contains(&exitstatus) {
        lines.push(exitstatus);
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_are_proxmox_node_names() {
        for ok in ["pve", "pve2", "node-1", "A1"] {
            assert!(NodeName::parse(ok).is_ok(), "{ok}");
        }
        let long = "a".repeat(64);
        for bad in [
            "",
            "pve2;rm -rf /",
            "../x",
            "pve 2",
            "-pve",
            "pve-",
            "pve.lan",
            "pve/x",
            "pve\n",
            long.as_str(),
        ] {
            assert!(
                matches!(
                    NodeName::parse(bad),
                    Err(ProxmoxError::HostileNodeName { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn upids_follow_the_format_and_nothing_else() {
        let u = "UPID:pve2:0001A2B3:0054C1D2:6787A3F0:qmstart:111:root@pam:";
        assert_eq!(
            Upid::parse(u).map(|u| u.node().to_string()),
            Some("pve2".into())
        );
        // pstart may take 9 digits; users may be API tokens.
        assert!(
            Upid::parse("UPID:pve:0001A2B3:10054C1D2:6787A3F0:qmsnapshot:111:root@pam!ci:")
                .is_some()
        );
        for bad in [
            "UPID:pve2:0001A2B3:0054C1D2:6787A3F0:qmstart:111:root@pam",
            "UPID:pve2;x:0001A2B3:0054C1D2:6787A3F0:qmstart:111:root@pam:",
            "UPID:pve2:1A2B3:0054C1D2:6787A3F0:qmstart:111:root@pam:",
            "UPID:pve2:0001A2B3:0054C1D2:6787A3F0:qm/start:111:root@pam:",
            "UPID:pve2:0001A2B3:0054C1D2:6787A3F0:qmstart:111:root pam:",
            "UPID:pve2:0001A2B3:0054C1D2:6787A3F0:qmstart:111:root@pam:x:",
            "UPID:../../x:0001A2B3:0054C1D2:6787A3F0:qmstart:111:root@pam:",
        ] {
            assert!(Upid::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn the_upid_is_found_in_every_shape_pvesh_prints() {
        let u = "UPID:pve2:0001A2B3:0054C1D2:6787A3F0:qmstart:111:root@pam:";
        let want = Some(u.to_string());
        let got = |t: &str| find_upid(t).map(|u| u.as_str().to_string());
        assert_eq!(got(&format!("{u}\n")), want);
        assert_eq!(got(&format!("some progress\n\"{u}\"\n")), want);
        // Proxied: the remote pvesh's output as one JSON string.
        assert_eq!(got(&format!("\"progress\\n\\\"{u}\\\"\\n\"\n")), want);
        assert_eq!(got("null\n"), None);
        assert_eq!(got("UPID:evil;x:1:2:3:a:b:c:"), None);
    }

    #[test]
    fn a_failed_task_reads_as_qm_stderr() {
        let log = vec![
            "snapshotting 'drive-virtio0' (local-lvm:vm-111-disk-0)".to_string(),
            "TASK ERROR: VM is locked (backup)".to_string(),
        ];
        let m = task_message(&log, "VM is locked (backup)");
        assert_eq!(
            m,
            "snapshotting 'drive-virtio0' (local-lvm:vm-111-disk-0)\nVM is locked (backup)"
        );
        assert_eq!(task_message(&[], "boom"), "boom");
    }
}
