#!/usr/bin/env python3
"""Simulated Proxmox VE host commands (a TEST FIXTURE, not Proxmox).

This program imitates Proxmox VE's `qm`, `pvesh` and `pvesm` (and the
`ip -j` queries pve-fleet makes on the host) for pve-fleet's tests. It runs
behind a real OpenSSH server started by the test harness
(tests/it/support/pvesim/mod.rs); the harness puts small wrappers named qm, pvesh,
pvesm and ip on that sshd's PATH, each calling `pvesim.py <prog> ARGS`.

State lives in the JSON file named by $PVE_SIM_STATE (VMs, containers,
storage, bridge, neighbour table, faults). Every invocation is appended to
$PVE_SIM_STATE.calls as one JSON line (argv), so tests can assert exactly
which arguments arrived.

Output texts, streams and exit codes follow
../shared/reference/proxmox-cli/ (INDEX.md, errors.md and the samples):
fixed-width `qm list`, TAB-nested `qm status --verbose`, sorted
`qm config`, one-line canonical JSON from pvesh, Perl-pretty JSON (3-space
indent, `"k" : v`) from the guest agent, task commands printing progress
on stdout and only the final error on stderr, `qm resize`/`qm template`
exiting 0 when their task fails, "does not exist" exiting 2, other
failures 255.

Faults on request (state["faults"]):
  "slow": {"qm status": 5}        sleep before running that command
  "drop": ["qm list"]             kill this SSH connection mid-command
Cluster (see the "cluster" section below): state["nodes"] lists the
cluster's nodes (default: just state["node"]); each VM has a "node". `qm`
acts on this node's VMs only, as on Proxmox; `pvesh` answers for the whole
cluster (/cluster/resources, /cluster/nextid [--vmid N],
/nodes/<node>/qemu/<vmid>/config); `qm migrate` moves a VM between nodes.
An "HA moved it" is a change of a VM's "node" made by the test itself
(support/pvesim/mod.rs `Sim::ha_move`), with "hastate" shown in
/cluster/resources.
VM-level: "agent_running": false (agent not running), config "lock"
(VM locked), "snapshot_fault": "thinpool-full" (see the snapshot section),
"ip_after_reboot" (the guest gets a new IP when (re)started),
"agent_answer" (the text the guest agent answers network-get-interfaces
with, as a hostile or broken guest could), "cpu" (the CPU share
/cluster/resources reports).
"""

import fcntl
import hashlib
import io
import json
import os
import signal
import sys
import time

STATE = os.environ.get("PVE_SIM_STATE", "")


def load():
    with open(STATE) as f:
        return json.load(f)


def save(state):
    vms = state.get("vms")
    if isinstance(vms, LocalVms):
        state = dict(state, vms=vms.all)
    if "_home" in state:
        # A view of another node (a task proxied there): the host stays home.
        state = dict(state, node=state["_home"])
        del state["_home"]
    tmp = STATE + ".tmp"
    with open(tmp, "w") as f:
        json.dump(state, f, indent=1, sort_keys=True)
    os.replace(tmp, STATE)


def out(text):
    sys.stdout.write(text)


def die(msg, code=255):
    sys.stdout.flush()
    sys.stderr.write(msg + "\n")
    sys.exit(code)


def node(state):
    return state.get("node", "pve")


def conf_missing(state, vmid):
    die("Configuration file 'nodes/%s/qemu-server/%s.conf' does not exist" % (node(state), vmid), 2)


def unable_to_find(state, vmid, code=255):
    die("unable to find configuration file for VM %s on node '%s'" % (vmid, node(state)), code)


def get_vm(state, vmid):
    return state["vms"].get(str(vmid))


def vm_name(vmid, vm):
    return vm["config"].get("name", "VM %s" % vmid)


def check_lock(vm):
    lock = vm["config"].get("lock")
    if lock:
        die("VM is locked (%s)" % lock)


def disk_gib(value):
    for part in value.split(","):
        if part.startswith("size="):
            s = part[5:]
            mult = {"K": 1.0 / 1048576, "M": 1.0 / 1024, "G": 1.0, "T": 1024.0}
            if s and s[-1] in mult:
                return float(s[:-1]) * mult[s[-1]]
            return float(s) / 1073741824
    return 0.0


def boot_disk(cfg):
    boot = cfg.get("boot", "")
    order = []
    if boot.startswith("order="):
        order = boot[6:].split(";")
    for d in order + ["virtio0", "scsi0", "sata0", "ide0"]:
        v = cfg.get(d)
        if v and "media=cdrom" not in v:
            return d, v
    return None, None


def disks(cfg):
    res = []
    for k in sorted(cfg):
        bus = k.rstrip("0123456789")
        if bus != k and bus in ("virtio", "scsi", "sata", "ide", "efidisk", "tpmstate"):
            if "media=cdrom" not in cfg[k] and ":" in cfg[k]:
                res.append(k)
    return res


def mac_of(cfg):
    net = cfg.get("net0", "")
    first = net.split(",")[0]
    if "=" in first:
        return first.split("=", 1)[1].lower()
    return None


def perl_pretty(obj):
    return json.dumps(obj, indent=3, sort_keys=True, separators=(",", " : ")) + "\n"


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")) + "\n"


def print_recursive_hash(d, indent=""):
    for k in sorted(d):
        v = d[k]
        if isinstance(v, dict):
            out("%s%s:\n" % (indent, k))
            print_recursive_hash(v, indent + "\t")
        elif isinstance(v, list):
            out("%s%s:\n" % (indent, k))
        elif isinstance(v, bool):
            out("%s%s: %d\n" % (indent, k, 1 if v else 0))
        else:
            out("%s%s: %s\n" % (indent, k, v))


def vmstatus(vmid, vm):
    cfg = vm["config"]
    running = vm["status"] in ("running", "paused")
    mem = int(cfg.get("memory", "512")) * 1048576
    _, bd = boot_disk(cfg)
    d = {
        "cpus": int(cfg.get("cores", "1")) * int(cfg.get("sockets", "1")),
        "disk": 0,
        "maxdisk": int(disk_gib(bd) * 1073741824) if bd else 0,
        "maxmem": mem,
        "mem": mem // 3 if running else 0,
        "memhost": mem // 3 if running else 0,
        "name": vm_name(vmid, vm),
        "netin": 0,
        "netout": 0,
        "qmpstatus": vm["status"] if running else "stopped",
        "status": "running" if running else "stopped",
        "uptime": vm.get("uptime", 100) if running else 0,
        "vmid": int(vmid),
    }
    if "tags" in cfg:
        d["tags"] = cfg["tags"]
    if "lock" in cfg:
        d["lock"] = cfg["lock"]
    if cfg.get("template") == "1":
        d["template"] = 1
    if "serial0" in cfg:
        d["serial"] = 1
    if running:
        d["pid"] = vm.get("pid", 1000 + int(vmid))
        d["balloon"] = mem
        d["ballooninfo"] = {"actual": mem, "max_mem": mem, "total_mem": mem - 1048576}
        d["nics"] = {"tap%si0" % vmid: {"netin": 0, "netout": 0}}
        d["running-machine"] = "pc-q35-9.2+pve1"
        d["running-qemu"] = "9.2.0"
    return d


def apply_new_ip(state, vmid, vm):
    new = vm.pop("ip_after_reboot", None)
    if not new:
        return
    mac = mac_of(vm["config"])
    vm["ips"] = [new]
    state["neighbours"] = [n for n in state.get("neighbours", []) if n.get("lladdr") != mac]
    state["neighbours"].append({"dst": new, "lladdr": mac, "state": ["REACHABLE"]})


def drop_connection(state):
    """Kill the sshd processes serving this connection (not the daemon)."""
    daemon = None
    try:
        with open(state["sshd_pid_file"]) as f:
            daemon = int(f.read().strip())
    except (KeyError, OSError, ValueError):
        pass
    pid = os.getppid()
    victims = []
    while pid > 1 and pid != daemon:
        try:
            with open("/proc/%d/stat" % pid) as f:
                stat = f.read()
        except OSError:
            break
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        if comm.startswith("sshd"):
            victims.append(pid)
        pid = ppid
    for v in victims:
        try:
            os.kill(v, signal.SIGKILL)
        except OSError:
            pass
    time.sleep(5)
    sys.exit(255)


QM_USAGE = (
    "USAGE: qm <COMMAND> [ARGS] [OPTIONS]\n\n"
    "       qm clone <vmid> <newid> [OPTIONS]\n"
    "       qm config <vmid> [OPTIONS]\n"
    "       qm delsnapshot <vmid> <snapname> [OPTIONS]\n"
    "       qm destroy <vmid> [OPTIONS]\n"
    "       qm list  [OPTIONS]\n"
    "       qm listsnapshot <vmid>\n"
    "       qm reboot <vmid> [OPTIONS]\n"
    "       qm resize <vmid> <disk> <size> [OPTIONS]\n"
    "       qm rollback <vmid> <snapname> [OPTIONS]\n"
    "       qm set <vmid> [OPTIONS]\n"
    "       qm shutdown <vmid> [OPTIONS]\n"
    "       qm snapshot <vmid> <snapname> [OPTIONS]\n"
    "       qm start <vmid> [OPTIONS]\n"
    "       qm status <vmid> [OPTIONS]\n"
    "       qm stop <vmid> [OPTIONS]\n"
    "       qm template <vmid> [OPTIONS]\n"
    "       qm terminal <vmid> [OPTIONS]\n"
    "       qm guest cmd <vmid> <command>\n"
    "       qm guest exec <vmid> [<extra-args>] [OPTIONS]\n"
)


def opts(args):
    """--key value pairs after the positionals."""
    pos, kv = [], {}
    i = 0
    while i < len(args):
        a = args[i]
        if a.startswith("--") and len(a) > 2:
            key = a[2:]
            if i + 1 < len(args) and not args[i + 1].startswith("--"):
                kv[key] = args[i + 1]
                i += 2
            else:
                kv[key] = "1"
                i += 1
        else:
            pos.append(a)
            i += 1
    return pos, kv


def param_error(sub, msgs, usage):
    text = "400 Parameter verification failed.\n"
    for k, v in msgs:
        text += "%s: %s\n" % (k, v)
    text += "\nqm %s %s\n" % (sub, usage)
    sys.stderr.write(text)
    sys.exit(255)


def need_vmid(sub, pos, usage):
    if not pos:
        param_error(sub, [("vmid", "property is missing and it is not optional")], usage)
    v = pos[0]
    if not v.isdigit() or not (100 <= int(v) <= 999999999):
        param_error(sub, [("vmid", "value does not look like a valid VM ID")], usage)
    return v


def qm(state, args):
    if not args:
        die("ERROR: no command specified\n" + QM_USAGE.rstrip("\n"))
    sub, rest = args[0], args[1:]
    if sub == "migrate":
        return qm_migrate(state, rest)
    # qm sees only the VMs of the node it runs on (the others' config
    # files live under another nodes/<node>/ folder).
    state = local_view(state)
    if sub == "guest":
        return qm_guest(state, rest)
    pos, kv = opts(rest)
    if sub == "snapshot":
        return qm_snapshot(state, pos, kv)
    if sub == "listsnapshot":
        return qm_listsnapshot(state, pos)
    if sub == "rollback":
        return qm_rollback(state, pos, kv)
    if sub == "delsnapshot":
        return qm_delsnapshot(state, pos)
    if sub == "list":
        vms = [(int(k), v) for k, v in state["vms"].items() if v.get("node", node(state)) == node(state)]
        if not vms:
            return 0
        out("%10s %-20s %-10s %-10s %12s %-10s\n" % ("VMID", "NAME", "STATUS", "MEM(MB)", "BOOTDISK(GB)", "PID"))
        for vmid, vm in sorted(vms):
            cfg = vm["config"]
            running = vm["status"] in ("running", "paused")
            status = vm["status"] if "full" in kv else ("running" if running else "stopped")
            _, bd = boot_disk(cfg)
            out("%10s %-20s %-10s %-10s %12.2f %-10s\n" % (
                vmid, vm_name(vmid, vm), status, cfg.get("memory", "512"),
                disk_gib(bd) if bd else 0.0, vm.get("pid", 1000 + vmid) if running else 0))
        return 0
    if sub == "status":
        vmid = need_vmid(sub, pos, "<vmid> [OPTIONS]")
        vm = get_vm(state, vmid)
        if vm is None:
            conf_missing(state, vmid)
        if "verbose" in kv:
            print_recursive_hash(vmstatus(vmid, vm))
        else:
            running = vm["status"] in ("running", "paused")
            out("status: %s\n" % (vm["status"] if running else "stopped"))
        return 0
    if sub == "config":
        vmid = need_vmid(sub, pos, "<vmid> [OPTIONS]")
        vm = get_vm(state, vmid)
        if vm is None:
            conf_missing(state, vmid)
        for k in sorted(vm["config"]):
            if k != "digest":
                out("%s: %s\n" % (k, vm["config"][k]))
        return 0
    if sub == "set":
        vmid = need_vmid(sub, pos, "<vmid> [OPTIONS]")
        vm = get_vm(state, vmid)
        if vm is None:
            conf_missing(state, vmid)
        check_lock(vm)
        for k in ("cores", "memory"):
            if k in kv and not kv[k].isdigit():
                param_error(sub, [(k, "type check ('integer') failed - got '%s'" % kv[k])], "<vmid> [OPTIONS]")
        out("update VM %s: %s\n" % (vmid, " ".join("-%s %s" % (k, kv[k]) for k in sorted(kv))))
        for k in sorted(kv):
            bus = k.rstrip("0123456789")
            if bus in ("virtio", "scsi", "sata", "ide") and bus != k:
                storage, _, size = kv[k].partition(":")
                existing = [d for d in disks(vm["config"]) if ("vm-%s-disk-" % vmid) in vm["config"][d]]
                n = len(existing)
                vol = "vm-%s-disk-%d" % (vmid, n)
                out('  Logical volume "%s" created.\n' % vol)
                vm["config"][k] = "%s:%s,size=%sG" % (storage, vol, size)
                out("%s: successfully created disk '%s'\n" % (k, vm["config"][k]))
            else:
                vm["config"][k] = kv[k]
        save(state)
        return 0
    if sub == "resize":
        if len(pos) < 3:
            param_error(sub, [("size", "property is missing and it is not optional")], "<vmid> <disk> <size> [OPTIONS]")
        vmid, disk, size = pos[0], pos[1], pos[2]
        vm = get_vm(state, vmid)
        if vm is None:
            sys.stderr.write("Configuration file 'nodes/%s/qemu-server/%s.conf' does not exist\n" % (node(state), vmid))
            return 0
        if vm["config"].get("lock"):
            sys.stderr.write("VM is locked (%s)\n" % vm["config"]["lock"])
            return 0
        value = vm["config"].get(disk)
        if value is None:
            sys.stderr.write("disk '%s' does not exist\n" % disk)
            return 0
        if "media=cdrom" in value:
            sys.stderr.write("you can't resize a cdrom\n")
            return 0
        cur = disk_gib(value)
        num = float(size.lstrip("+").rstrip("KMGT") or 0)
        unit = size[-1] if size[-1] in "KMGT" else "G"
        num = num * {"K": 1.0 / 1048576, "M": 1.0 / 1024, "G": 1.0, "T": 1024.0}[unit]
        new = cur + num if size.startswith("+") else num
        if new < cur:
            sys.stderr.write("shrinking disks is not supported\n")
            return 0
        vol = value.split(",")[0].split(":")[-1]
        out("  Size of logical volume pve/%s changed from %.2f GiB (%d extents) to %.2f GiB (%d extents).\n"
            % (vol, cur, int(cur * 256), new, int(new * 256)))
        out("  Logical volume pve/%s successfully resized.\n" % vol)
        parts = [p for p in value.split(",") if not p.startswith("size=")]
        parts.append("size=%dG" % int(new))
        vm["config"][disk] = ",".join(parts)
        save(state)
        return 0
    if sub == "clone":
        if len(pos) < 2:
            param_error(sub, [("newid", "property is missing and it is not optional")], "<vmid> <newid> [OPTIONS]")
        src, dst = pos[0], pos[1]
        vm = get_vm(state, src)
        if vm is None:
            unable_to_find(state, src, 2)
        if dst in getattr(state["vms"], "all", state["vms"]) or dst in state.get("containers", {}):
            die("unable to create VM %s: config file already exists" % dst)
        check_lock(vm)
        target = kv.get("target")
        if target == node(state):
            target = None
            kv.pop("target")
        if target is not None and target not in cluster_nodes(state):
            die("no such cluster node '%s'" % target)
        shared = state.get("shared_storage", [])
        if target is not None and any(vm["config"][d].split(":")[0] not in shared for d in disks(vm["config"])):
            die("can't clone VM to node '%s' (VM uses local storage)" % target)
        full = kv.get("full") == "1" or vm["config"].get("template") != "1"
        if not full and "storage" in kv:
            die("parameter 'storage' not allowed for linked clones")
        cfg = dict(vm["config"])
        cfg.pop("template", None)
        cfg.pop("lock", None)
        if "name" in kv:
            cfg["name"] = kv["name"]
        for d in disks(vm["config"]):
            volid = vm["config"][d].split(",")[0]
            storage = volid.split(":")[0]
            num = volid.rsplit("-", 1)[-1]
            newvol = "vm-%s-disk-%s" % (dst, num)
            out("create %s clone of drive %s (%s)\n" % ("full" if full else "linked", d, volid))
            out('  Logical volume "%s" created.\n' % newvol)
            if full and d.startswith(("virtio", "scsi", "sata", "ide")):
                size = disk_gib(vm["config"][d])
                out("transferred 0.0 B of %.1f GiB (0.00%%)\n" % size)
                out("transferred %.1f GiB of %.1f GiB (100.00%%)\n" % (size, size))
                out("transferred %.1f GiB of %.1f GiB (100.00%%)\n" % (size, size))
            rest_parts = vm["config"][d].split(",")[1:]
            cfg[d] = ",".join(["%s:%s" % (kv.get("storage", storage), newvol)] + rest_parts)
        mac = "BC:24:11:%02X:%02X:%02X" % ((int(dst) >> 16) & 255, (int(dst) >> 8) & 255, int(dst) & 255)
        if "net0" in cfg:
            parts = cfg["net0"].split(",")
            model = parts[0].split("=")[0]
            cfg["net0"] = ",".join(["%s=%s" % (model, mac)] + parts[1:])
        # --target: the new VM's config moves to that node at the end
        # (API2/Qemu.pm clone_vm: only when every disk is on shared storage).
        state["vms"][dst] = {
            "config": cfg, "status": "stopped", "agent_running": True, "ips": [],
            "hostkey": vm.get("hostkey"), "node": kv.get("target", vm.get("node", node(state))),
        }
        save(state)
        return 0
    if sub in ("start", "stop", "shutdown", "reboot", "destroy", "template", "terminal"):
        vmid = need_vmid(sub, pos, "<vmid> [OPTIONS]")
        vm = get_vm(state, vmid)
        running = vm is not None and vm["status"] in ("running", "paused")
        if sub == "start":
            if vm is None:
                die("Configuration file 'nodes/%s/qemu-server/%s.conf' does not exist" % (node(state), vmid))
            check_lock(vm)
            if vm["config"].get("template") == "1":
                die("you can't start a vm if it's a template")
            if running:
                die("VM %s already running" % vmid)
            vm["status"] = "running"
            vm["pid"] = 2000 + int(vmid)
            apply_new_ip(state, vmid, vm)
            save(state)
            return 0
        if sub == "stop":
            if vm is None:
                unable_to_find(state, vmid)
            check_lock(vm)
            vm["status"] = "stopped"
            save(state)
            return 0
        if sub == "shutdown":
            if vm is None:
                msg = "unable to find configuration file for VM %s on node '%s'" % (vmid, node(state))
                sys.stderr.write(msg + "\n\n")
                die(msg)
            if not running:
                sys.stderr.write("VM %s not running\n\n" % vmid)
                return 0
            check_lock(vm)
            if vm["status"] == "paused" and kv.get("forceStop") != "1":
                die("VM is paused - cannot shutdown")
            if vm.get("ignores_acpi"):
                time.sleep(min(int(kv.get("timeout", "1")), 2))
                die("VM quit/powerdown failed - got timeout")
            vm["status"] = "stopped"
            save(state)
            return 0
        if sub == "reboot":
            if vm is None:
                unable_to_find(state, vmid)
            check_lock(vm)
            if not running:
                die("VM %s not running" % vmid)
            apply_new_ip(state, vmid, vm)
            save(state)
            return 0
        if sub == "destroy":
            if vm is None:
                conf_missing(state, vmid)
            check_lock(vm)
            if running:
                die("VM %s is running - destroy failed" % vmid)
            if vm["config"].get("protection") == "1":
                die("can't remove VM %s - protection mode enabled" % vmid)
            for d in reversed(disks(vm["config"])):
                vol = vm["config"][d].split(",")[0].split(":")[-1]
                out('  Logical volume "%s" successfully removed.\n' % vol)
            if "purge" in kv:
                out("purging VM %s from related configurations..\n" % vmid)
            del state["vms"][str(vmid)]
            save(state)
            return 0
        if sub == "template":
            if vm is None:
                conf_missing(state, vmid)
            if vm["config"].get("template") == "1":
                die("you can't convert a template to a template")
            if running:
                die("you can't convert a VM to template if VM is running")
            check_lock(vm)
            for d in disks(vm["config"]):
                volid = vm["config"][d].split(",")[0]
                vol = volid.split(":")[-1]
                base = vol.replace("vm-", "base-", 1)
                out('  Renamed "%s" to "%s" in volume group "pve"\n' % (vol, base))
                out("  Logical volume pve/%s changed.\n" % base)
                out("  WARNING: Combining activation change with other commands is not advised.\n")
                vm["config"][d] = vm["config"][d].replace(vol, base, 1)
            vm["config"]["template"] = "1"
            save(state)
            return 0
        if sub == "terminal":
            if vm is None:
                conf_missing(state, vmid)
            if not running:
                die("VM %s not running" % vmid)
            if "serial0" not in vm["config"]:
                die("unable to find a serial interface")
            out("starting serial terminal on interface serial0 (press Ctrl+O to exit)\n")
            sys.stdout.flush()
            for line in sys.stdin:
                if "\x0f" in line:
                    break
                out("%s login: %s" % (vm_name(vmid, vm), line))
                sys.stdout.flush()
            return 0
    die("ERROR: unknown command 'qm %s'\n%s" % (sub, QM_USAGE.rstrip("\n")))


def qm_guest(state, args):
    if len(args) < 2 or args[0] not in ("cmd", "exec"):
        die("ERROR: unknown command 'qm guest %s'\n%s" % (" ".join(args[:1]), QM_USAGE.rstrip("\n")))
    kind, vmid = args[0], args[1]
    vm = get_vm(state, vmid)
    if vm is None:
        conf_missing(state, vmid)
    if vm["status"] not in ("running", "paused"):
        die("VM %s is not running" % vmid)
    agent = vm["config"].get("agent", "0")
    if not (agent.split(",")[0] in ("1", "enabled=1") or "enabled=1" in agent.split(",")):
        die("No QEMU guest agent configured")
    if not vm.get("agent_running", True):
        time.sleep(0.2)
        die("QEMU guest agent is not running")
    if kind == "cmd":
        cmd = args[2] if len(args) > 2 else ""
        if cmd == "ping":
            return 0
        if cmd == "network-get-interfaces":
            if "agent_answer" in vm:
                out(vm["agent_answer"])
                return 0
            out(perl_pretty(guest_ifaces(vm)))
            return 0
        die("VM %s qga command 'guest-%s' failed - unsupported command" % (vmid, cmd))
    return qm_guest_exec(vm, args)


def guest_ifaces(vm):
    """What the agent answers network-get-interfaces (lo and ens18)."""
    mac = mac_of(vm["config"]) or "00:00:00:00:00:00"
    ifaces = [
        {"hardware-address": "00:00:00:00:00:00", "name": "lo",
         "ip-addresses": [{"ip-address": "127.0.0.1", "ip-address-type": "ipv4", "prefix": 8},
                          {"ip-address": "::1", "ip-address-type": "ipv6", "prefix": 128}],
         "statistics": {"rx-bytes": 3724, "rx-dropped": 0, "rx-errs": 0, "rx-packets": 44,
                        "tx-bytes": 3724, "tx-dropped": 0, "tx-errs": 0, "tx-packets": 44}},
    ]
    addrs = [{"ip-address": ip, "ip-address-type": "ipv4", "prefix": 24} for ip in vm.get("ips", [])]
    addrs.append({"ip-address": "fe80::be24:11ff:fe00:1", "ip-address-type": "ipv6", "prefix": 64})
    ifaces.append({"hardware-address": mac, "name": "ens18", "ip-addresses": addrs,
                   "statistics": {"rx-bytes": 1, "rx-dropped": 0, "rx-errs": 0, "rx-packets": 1,
                                  "tx-bytes": 1, "tx-dropped": 0, "tx-errs": 0, "tx-packets": 1}})
    return ifaces


def qm_guest_exec(vm, args):
    # exec: qm guest exec <vmid> [--] <cmd> [args]
    rest = args[2:]
    if rest and rest[0] == "--":
        rest = rest[1:]
    out(perl_pretty(guest_exec_result(vm, rest)))
    return 0


def guest_exec_result(vm, rest):
    """What the agent reports for `rest` run in the guest (exec-status)."""
    result = {"exited": 1}
    if rest[:1] == ["cat"] and len(rest) == 2 and rest[1] == "/etc/ssh/ssh_host_ed25519_key.pub" and vm.get("hostkey"):
        result["exitcode"] = 0
        result["out-data"] = vm["hostkey"] + "\n"
    else:
        result["exitcode"] = 1
        result["err-data"] = "cat: %s: No such file or directory\n" % (rest[1] if len(rest) > 1 else "")
    return result


# --- Snapshots: qm snapshot / listsnapshot / rollback / delsnapshot and
# `pvesh get /nodes/<node>/qemu/<vmid>/snapshot` (reference: INDEX.md
# addendum "snapshots", errors.md addendum, and the qm-*snapshot* /
# pvesh-get-snapshot-* samples). A VM keeps its snapshots in
# vm["snapshots"] (name -> {snaptime, description, vmstate, parent,
# config}) and the snapshot `current` hangs under in vm["snap_parent"].
# Faults: vm["snapshot_fault"] = "thinpool-full" (lvcreate fails inside
# the task). Storage types other than lvmthin/zfspool cannot snapshot.
# Snapshot times come from state["clock"] (advanced 60 s per snapshot)
# when set, else the wall clock; the host's time zone is UTC.

# valid_drive_names() order (qemu-server Drive.pm): disks of one snapshot.
DRIVE_ORDER = ("ide", "scsi", "virtio", "sata", "efidisk", "tpmstate")


def snap_disks(cfg):
    def key(d):
        bus = d.rstrip("0123456789")
        return (DRIVE_ORDER.index(bus), int(d[len(bus):] or 0))
    return sorted(disks(cfg), key=key)


def storage_type(state, storage):
    for st in state.get("storage", []):
        if st["name"] == storage:
            return st["type"]
    return None


def snapname_ok(sub, name):
    """JSONSchema `pve-configid` with maxLength 40 (pve-common)."""
    usage = {"snapshot": "<vmid> <snapname> [OPTIONS]", "rollback": "<vmid> <snapname> [OPTIONS]",
             "delsnapshot": "<vmid> <snapname> [OPTIONS]"}[sub]
    if len(name) > 40:
        sys.stderr.write("400 Parameter verification failed.\nsnapname: value may only be 40 characters long\n"
                         "qm %s %s\n" % (sub, usage))
        sys.exit(255)
    ok = len(name) >= 2 and name[0].isascii() and name[0].isalpha() and all(
        c.isascii() and (c.isalnum() or c in "_-") for c in name)
    if not ok:
        param_error(sub, [("snapname", "invalid format - invalid configuration ID '%s'" % name)], usage)


def snapshot_time(state):
    if "clock" in state:
        state["clock"] = int(state["clock"]) + 60
        return state["clock"]
    return int(time.time())


def fmt_time(t):
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t))


def freeze_lines(vm):
    """What qemu-server >= 9.1.10 prints about the guest filesystem freeze."""
    if vm["status"] != "running":
        return None, None
    agent = vm["config"].get("agent", "0")
    enabled = agent.split(",")[0] in ("1", "enabled=1") or "enabled=1" in agent.split(",")
    if not enabled:
        return "skipping guest filesystem freeze - disabled in VM options\n", None
    if not vm.get("agent_running", True):
        return "skipping guest filesystem freeze - agent configured but not running?\n", None
    return "freeze guest filesystem\n", "thaw guest filesystem\n"


def qm_snapshot(state, pos, kv):
    if len(pos) < 2:
        param_error("snapshot", [("snapname", "property is missing and it is not optional")],
                    "<vmid> <snapname> [OPTIONS]")
    vmid, name = pos[0], pos[1]
    snapname_ok("snapshot", name)
    if name.lower() in ("current", "pending"):
        die("unable to use snapshot name '%s' (reserved name)" % name)
    vm = get_vm(state, vmid)
    if vm is None:
        conf_missing(state, vmid)
    snaps = vm.setdefault("snapshots", {})
    if name in snaps:
        die("snapshot name '%s' already used" % name)
    check_lock(vm)
    if vm["config"].get("template") == "1":
        die("you can't take a snapshot if it's a template")
    cfg = vm["config"]
    for d in snap_disks(cfg):
        storage = cfg[d].split(",")[0].split(":")[0]
        if storage_type(state, storage) not in ("lvmthin", "zfspool"):
            die("snapshot feature is not available")
    before, after = freeze_lines(vm)
    if before:
        out(before)
    for d in snap_disks(cfg):
        volid = cfg[d].split(",")[0]
        vol = volid.split(":")[-1]
        out("snapshotting 'drive-%s' (%s)\n" % (d, volid))
        if vm.get("snapshot_fault") == "thinpool-full":
            if after:
                out(after)
            out("snapshot create failed: starting cleanup\n")
            sys.stdout.flush()
            sys.stderr.write("lvcreate snapshot 'pve/snap_%s_%s' error:   Cannot create new thin volume, "
                             "free space in thin pool pve/data reached threshold. \n" % (vol, name))
            sys.exit(255)
        out('  Logical volume "snap_%s_%s" created.\n' % (vol, name))
    if after:
        out(after)
    snap = {"snaptime": snapshot_time(state), "description": kv.get("description", ""), "vmstate": 0,
            "config": dict(cfg)}
    if vm.get("snap_parent"):
        snap["parent"] = vm["snap_parent"]
    snaps[name] = snap
    vm["snap_parent"] = name
    save(state)
    return 0


def snapshot_list(vm):
    """The API's list: every snapshot, then `current` (always last)."""
    items = []
    for name in sorted(vm.get("snapshots", {})):
        s = vm["snapshots"][name]
        e = {"name": name, "snaptime": s["snaptime"], "vmstate": s.get("vmstate", 0),
             "description": s.get("description", "")}
        if s.get("parent"):
            e["parent"] = s["parent"]
        items.append(e)
    text = "".join("%s: %s\n" % (k, vm["config"][k]) for k in sorted(vm["config"]))
    cur = {"name": "current", "description": "You are here!",
           "digest": hashlib.sha1(text.encode()).hexdigest(),
           "running": 1 if vm["status"] in ("running", "paused") else 0}
    if vm.get("snap_parent"):
        cur["parent"] = vm["snap_parent"]
    items.append(cur)
    return items


def qm_listsnapshot(state, pos):
    vmid = need_vmid("listsnapshot", pos, "<vmid> [OPTIONS]")
    vm = get_vm(state, vmid)
    if vm is None:
        conf_missing(state, vmid)
    items = snapshot_list(vm)
    by_name = {e["name"]: dict(e) for e in items}
    roots = []
    for e in items:
        p = e.get("parent")
        if p and p in by_name:
            by_name[p].setdefault("children", []).append(e["name"])
        else:
            roots.append(e["name"])

    def order(n):
        t = by_name[n].get("snaptime")
        return (t is None, t or 0)

    def walk(prefix, name):
        e = by_name[name]
        desc = (e.get("description") or "no-description").split("\n")[0]
        when = fmt_time(e["snaptime"]) if "snaptime" in e else ""
        width = max(30 - len(prefix), 0)
        out("%s %s %s %s\n" % (prefix, name.ljust(width), when.ljust(23), desc))
        for c in sorted(e.get("children", []), key=order):
            walk(" " + prefix, c)

    for r in sorted(roots, key=order):
        walk("`->", r)
    return 0


def snapshot_or_die(vm, name):
    s = vm.get("snapshots", {}).get(name)
    if s is None:
        die("snapshot '%s' does not exist" % name)
    return s


def qm_rollback(state, pos, kv):
    if len(pos) < 2:
        param_error("rollback", [("snapname", "property is missing and it is not optional")],
                    "<vmid> <snapname> [OPTIONS]")
    vmid, name = pos[0], pos[1]
    snapname_ok("rollback", name)
    vm = get_vm(state, vmid)
    if vm is None:
        conf_missing(state, vmid)
    snap = snapshot_or_die(vm, name)
    check_lock(vm)
    if vm["config"].get("template") == "1":
        die("you can't rollback if vm is a template")
    # A running VM is stopped first, silently.
    vm["status"] = "stopped"
    vm["config"] = dict(snap.get("config", vm["config"]))
    for d in snap_disks(vm["config"]):
        vol = vm["config"][d].split(",")[0].split(":")[-1]
        out('  Logical volume "%s" successfully removed.\n' % vol)
        out('  Logical volume "%s" created.\n' % vol)
        out("  Logical volume pve/%s changed.\n" % vol)
    vm["snap_parent"] = name
    vm["rolled_back_to"] = name
    if kv.get("start") == "1":
        vm["status"] = "running"
    save(state)
    return 0


def qm_delsnapshot(state, pos):
    if len(pos) < 2:
        param_error("delsnapshot", [("snapname", "property is missing and it is not optional")],
                    "<vmid> <snapname> [OPTIONS]")
    vmid, name = pos[0], pos[1]
    snapname_ok("delsnapshot", name)
    vm = get_vm(state, vmid)
    if vm is None:
        conf_missing(state, vmid)
    snap = snapshot_or_die(vm, name)
    check_lock(vm)
    for d in snap_disks(snap.get("config", vm["config"])):
        vol = snap.get("config", vm["config"])[d].split(",")[0].split(":")[-1]
        out('  Logical volume "snap_%s_%s" successfully removed.\n' % (vol, name))
    parent = snap.get("parent")
    for other in vm["snapshots"].values():
        if other.get("parent") == name:
            if parent:
                other["parent"] = parent
            else:
                other.pop("parent", None)
    if vm.get("snap_parent") == name:
        vm["snap_parent"] = parent
    del vm["snapshots"][name]
    save(state)
    return 0


def pvesh_snapshot(state, on, vmid, fmt):
    vm = vm_on(state, on, vmid)
    items = snapshot_list(vm)
    out(canonical(items) if fmt.startswith("json") else "".join("%s\n" % i["name"] for i in items))
    return 0

# --- end of snapshots


def pvesh(state, args):
    pos, kv = opts(args)
    if pos[:1] in (["create"], ["set"], ["delete"]):
        return pvesh_write(state, pos, kv, args)
    handled = pvesh_cluster(state, pos, kv)
    if handled is not None:
        return handled
    if len(pos) < 2 or pos[0] != "get":
        die("ERROR: unknown command 'pvesh %s'" % " ".join(pos[:1]))
    path = pos[1].strip("/")
    fmt = kv.get("output-format", "text")
    if path == "cluster/resources":
        items = []
        for vmid, vm in state["vms"].items():
            d = vmstatus(vmid, vm)
            item = {"id": "qemu/%s" % vmid, "vmid": int(vmid), "node": vm.get("node", node(state)),
                    "type": "qemu", "status": d["status"], "name": d["name"],
                    "template": 1 if vm["config"].get("template") == "1" else 0,
                    "maxcpu": d["cpus"], "maxmem": d["maxmem"], "mem": d["mem"], "uptime": d["uptime"],
                    "cpu": vm.get("cpu", 0), "disk": 0, "maxdisk": d["maxdisk"], "netin": 0, "netout": 0,
                    "diskread": 0, "diskwrite": 0}
            if "tags" in vm["config"]:
                item["tags"] = vm["config"]["tags"]
            if "lock" in vm["config"]:
                item["lock"] = vm["config"]["lock"]
            if "hastate" in vm:
                item["hastate"] = vm["hastate"]
            items.append(item)
        for vmid, ct in state.get("containers", {}).items():
            items.append({"id": "lxc/%s" % vmid, "vmid": int(vmid), "node": node(state), "type": "lxc",
                          "status": ct.get("status", "running"), "name": ct.get("name", "CT%s" % vmid),
                          "template": 0})
        if kv.get("type") not in (None, "vm"):
            items = []
        items.sort(key=lambda i: str(i["vmid"]))
        out(canonical(items) if fmt.startswith("json") else "".join("%s\n" % i["id"] for i in items))
        return 0
    if path == "cluster/nextid":
        used = set(int(k) for k in state["vms"]) | set(int(k) for k in state.get("containers", {}))
        if "vmid" in kv:
            # Asking for a given VMID: it is answered back when free.
            if int(kv["vmid"]) in used:
                sys.stderr.write("400 Parameter verification failed.\nvmid: VM %s already exists\n"
                                 "pvesh get <api_path> [OPTIONS] [FORMAT_OPTIONS]\n" % kv["vmid"])
                sys.exit(255)
            n = int(kv["vmid"])
        else:
            n = 100
            while n in used:
                n += 1
        out(canonical(str(n)) if fmt.startswith("json") else "%d\n" % n)
        return 0
    if path == "nodes":
        return pvesh_nodes(state, fmt)
    parts = path.split("/")
    if len(parts) == 5 and parts[0] == "nodes" and parts[2] == "tasks":
        return pvesh_task_get(state, parts[1], parts[3], parts[4], kv)
    if len(parts) == 6 and parts[0] == "nodes" and parts[2] == "qemu" and parts[4:] == ["agent", "exec-status"]:
        vm = vm_on(state, parts[1], parts[3])
        res = vm.get("exec", {}).get(kv.get("pid", ""))
        if res is None:
            die("VM %s qga command 'guest-exec-status' failed - got error: Invalid parameter 'pid'" % parts[3])
        out(canonical(res))
        return 0
    if len(parts) == 6 and parts[0] == "nodes" and parts[2] == "qemu" and parts[4:] == ["status", "current"]:
        vm = vm_on(state, parts[1], parts[3])
        d = vmstatus(parts[3], vm)
        d["ha"] = {"managed": 0}
        if "agent" in vm["config"]:
            d["agent"] = 1
        out(canonical(d))
        return 0
    if len(parts) == 5 and parts[0] == "nodes" and parts[2] == "qemu" and parts[4] == "snapshot":
        return pvesh_snapshot(state, parts[1], parts[3], fmt)
    die("no 'get' handler for '%s'" % path)


# ---- cluster: several nodes, qm per node, migration ------------------------


def cluster_nodes(state):
    return state.get("nodes", [node(state)])


def local_view(state):
    """The state as `qm` on this node sees it: only this node's VMs. Writes
    go to the same dicts, so a change made through the view is saved."""
    here = node(state)
    view = dict(state)
    view["vms"] = LocalVms(state["vms"], here, state.get("_home", node(state)))
    return view


class LocalVms(dict):
    """This node's VMs; new VMs (a clone) land in the cluster's dict."""

    def __init__(self, all_vms, here, default):
        super().__init__((k, v) for k, v in all_vms.items() if v.get("node", default) == here)
        self.all = all_vms

    def __setitem__(self, k, v):
        super().__setitem__(k, v)
        self.all[k] = v

    def __delitem__(self, k):
        super().__delitem__(k)
        del self.all[k]


def qm_migrate(state, args):
    pos, kv = opts(args)
    usage = "<vmid> <target> [OPTIONS]"
    vmid = need_vmid("migrate", pos, usage)
    if len(pos) < 2:
        param_error("migrate", [("target", "property is missing and it is not optional")], usage)
    target = pos[1]
    vm = state["vms"].get(str(vmid))
    here = node(state)
    if vm is None or vm.get("node", here) != here:
        conf_missing(state, vmid)
    if target == here:
        sys.stderr.write("400 Parameter verification failed.\ntarget: target is local node.\n"
                         "qm migrate %s\n" % usage)
        sys.exit(255)
    if target not in cluster_nodes(state):
        die("no such cluster node '%s'" % target)
    check_lock(vm)
    running = vm["status"] in ("running", "paused")
    if running and "online" not in kv:
        die("can't migrate running VM without --online")
    if "hastate" in vm:
        out("Requesting HA migration for VM %s to node %s\n" % (vmid, target))
    else:
        stamp = "2026-01-15 10:00:00"
        out("%s starting migration of VM %s to node '%s' (192.0.2.%d)\n"
            % (stamp, vmid, target, 10 + cluster_nodes(state).index(target)))
        out("%s migration finished successfully (duration 00:00:01)\n" % stamp)
    vm["node"] = target
    save(state)
    return 0


def pvesh_nodes(state, fmt):
    """`pvesh get /nodes` (reference: pvesh-get-nodes.json): per node `id`,
    `node`, `type`, `status`, `ssl_fingerprint`, `level`, `max*`; an online
    node also `mem`, `cpu`, `disk`, `uptime`. A node's `mem` is 2 GiB for
    the host plus the `maxmem` of its running VMs (what they can take), or
    state["node_mem"][node] when a test sets it; state["offline_nodes"]
    lists nodes that are down. Order: Perl hash order, here reversed."""
    items = []
    offline = state.get("offline_nodes", [])
    for i, n in enumerate(reversed(cluster_nodes(state))):
        item = {"id": "node/%s" % n, "node": n, "type": "node", "level": "",
                "ssl_fingerprint": ":".join(["%02X" % (i + 1)] * 32),
                "maxcpu": 16, "maxdisk": 100861726720, "maxmem": 67345588224}
        if n in offline:
            item["status"] = "offline"
        else:
            mem = 2 << 30
            for vmid, vm in state["vms"].items():
                if vm.get("node", node(state)) == n and vm["status"] in ("running", "paused"):
                    mem += vmstatus(vmid, vm)["maxmem"]
            item.update({"status": "online", "mem": state.get("node_mem", {}).get(n, mem),
                         "cpu": 0.02, "disk": 9876543488, "uptime": 864215})
        items.append(item)
    out(canonical(items) if fmt.startswith("json") else "".join("%s\n" % i["node"] for i in items))
    return 0


def pvesh_cluster(state, pos, kv):
    """/nodes/<node>/qemu/<vmid>/config: the config of a VM on any node (the
    API proxies to that node). None: not a cluster path."""
    if len(pos) < 2 or pos[0] != "get":
        return None
    parts = pos[1].strip("/").split("/")
    if len(parts) == 5 and parts[0] == "nodes" and parts[2] == "qemu" and parts[4] == "config":
        on, vmid = parts[1], parts[3]
        if on not in cluster_nodes(state):
            die("hostname lookup '%s' failed - failed to get address info for: %s: Name or service not known"
                % (on, on))
        vm = state["vms"].get(vmid)
        if vm is None or vm.get("node", node(state)) != on:
            die("Configuration file 'nodes/%s/qemu-server/%s.conf' does not exist" % (on, vmid), 2)
        cfg = dict((k, v) for k, v in vm["config"].items() if k != "digest")
        if "onboot" in cfg:
            cfg["onboot"] = int(cfg["onboot"])  # the API's JSON has booleans as numbers
        cfg["digest"] = "0" * 40
        out(canonical(cfg))
        return 0
    if len(parts) == 6 and parts[0] == "nodes" and parts[2] == "qemu" and parts[4:] == ["agent", "network-get-interfaces"]:
        # The API wraps the agent's answer in {"result": ...}.
        on, vmid = parts[1], parts[3]
        vm = state["vms"].get(vmid)
        if vm is None or vm.get("node", node(state)) != on:
            die("Configuration file 'nodes/%s/qemu-server/%s.conf' does not exist" % (on, vmid), 2)
        if vm["status"] not in ("running", "paused"):
            die("VM %s is not running" % vmid)
        agent = vm["config"].get("agent", "0")
        if not (agent.split(",")[0] in ("1", "enabled=1") or "enabled=1" in agent.split(",")):
            die("No QEMU guest agent configured")
        if not vm.get("agent_running", True):
            die("QEMU guest agent is not running")
        ifaces = json.loads(vm["agent_answer"]) if "agent_answer" in vm else guest_ifaces(vm)
        out(canonical({"result": ifaces}))
        return 0
    return None


def pvesm(state, args):
    if args[:1] != ["status"]:
        die("ERROR: unknown command 'pvesm %s'" % " ".join(args[:1]))
    st = sorted(state.get("storage", []), key=lambda s: s["name"])
    maxlen = max([len(s["name"]) for s in st] + [4]) + 1
    out(("%-" + str(maxlen) + "s %10s %10s %15s %15s %15s %8s\n")
        % ("Name", "Type", "Status", "Total", "Used", "Available", "%"))
    for s in st:
        total, used, avail = s.get("total", 0), s.get("used", 0), s.get("avail", 0)
        if s.get("status") == "disabled":
            pct = "%8s" % "N/A"
        else:
            pct = "% 7.2f%%" % (100.0 * used / total if total else 0.0)
        out(("%-" + str(maxlen) + "s %10s %10s %15d %15d %15d %s\n")
            % (s["name"], s["type"], s.get("status", "active"), total, used, avail, pct))
    return 0


def ip(state, args):
    """`ip -j [-4] addr show dev X` and `ip -j neigh show dev X` (iproute2 JSON)."""
    a = [x for x in args if x not in ("-j", "-4")]
    br = state.get("bridge", {"name": "vmbr0", "addr": "192.0.2.1", "prefix": 24})
    dev = a[a.index("dev") + 1] if "dev" in a else None
    if dev is not None and dev != br["name"]:
        die('Cannot find device "%s"' % dev, 1)
    if a[:1] == ["addr"]:
        out(json.dumps([{"ifindex": 4, "ifname": br["name"], "flags": ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"],
                         "mtu": 1500, "qdisc": "noqueue", "operstate": "UP", "group": "default", "txqlen": 1000,
                         "addr_info": [{"family": "inet", "local": br["addr"], "prefixlen": br["prefix"],
                                        "scope": "global", "label": br["name"],
                                        "valid_life_time": 4294967295, "preferred_life_time": 4294967295}]}]) + "\n")
        return 0
    if a[:1] == ["neigh"]:
        out(json.dumps(state.get("neighbours", [])) + "\n")
        return 0
    die('Object "%s" is unknown, try "ip help".' % (a[0] if a else ""), 1)


# ---- pvesh create/set/delete: tasks on any node ------------------------------
# pvesh.pm `call_api_method`: a path whose handler has `proxyto => 'node'`
# and names another node is run there as `pvesh --noproxy <cmd> <path>
# --output-format json` over the cluster's SSH (`proxy_handler`); that
# output is captured and printed when the remote pvesh ends, its stderr
# passes through. pvesh runs in the CLI environment, so `fork_worker` runs
# every task in the foreground (pve-common RESTEnvironment.pm, `$sync`):
# the task's output goes to stdout, its error (without `TASK ERROR: `) to
# stderr, then the UPID is printed and pvesh exits 0 -- also when the task
# failed (only `qm` adds `$upid_exit`). The task's end is in its log
# (`TASK OK` / `TASK ERROR: <msg>`) and in /nodes/<node>/tasks/<upid>/status.
# Proxied, the remote output is not JSON, so it is printed as one JSON
# string (`print_api_result` of the raw text); a task with no output
# leaves just the UPID (as a JSON string). PUT …/config (`update_vm`) is
# synchronous: no task, errors exit non-zero; proxied it prints nothing
# (its result type is null).
# Faults: state["faults"]["task_running_polls"] = N: a new task's status
# reads "running" for the first N status queries.
# state["faults"]["pvesh_nooutput"] = true: the host's pvesh runs as
# `pvesh --nooutput` does (a wrapper or alias on the host; pvesh.pm: "we
# use this when starting task in CLI (suppress printing upid)"):
# `call_api_method` returns before `print_api_result`, so the UPID is never
# printed. The task still runs; on the local node its foreground output
# still reaches stdout, proxied the captured remote output is dropped too.

PVESH_USAGE = "pvesh %s <api_path> [OPTIONS] [FORMAT_OPTIONS]"


def vm_on(state, on, vmid):
    """The VM `vmid` on node `on`, or Proxmox's pre-task error."""
    if on not in cluster_nodes(state):
        die("hostname lookup '%s' failed - failed to get address info for: %s: Name or service not known"
            % (on, on))
    vm = state["vms"].get(str(vmid))
    if vm is None or vm.get("node", node(state)) != on:
        die("Configuration file 'nodes/%s/qemu-server/%s.conf' does not exist" % (on, vmid), 2)
    return vm


def proxied_die(state, on, cmd, path, msg, code):
    """A pre-task failure: on another node the remote pvesh's error, then
    the proxy handler's."""
    sys.stdout.flush()
    if on == node(state):
        sys.stderr.write(msg + "\n")
        sys.exit(code)
    sys.stderr.write(msg + "\n")
    sys.stderr.write("proxy handler failed: command '/usr/bin/ssh -e none -o BatchMode=yes -o HostKeyAlias=%s "
                     "root@192.0.2.%d -- pvesh --noproxy %s %s --output-format json' failed: exit code %d\n"
                     % (on, 10 + cluster_nodes(state).index(on), cmd, path, code))
    sys.exit(255)


def capture(fn):
    """Runs fn() (a qm handler) with stdout/stderr captured: (out, err, code)."""
    buf_out, buf_err = io.StringIO(), io.StringIO()
    old = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = buf_out, buf_err
    try:
        code = fn() or 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    finally:
        sys.stdout, sys.stderr = old
    return buf_out.getvalue(), buf_err.getvalue(), code


def node_view(state, on):
    """The state as seen on node `on` (qm there sees that node's VMs)."""
    return dict(state, node=on, _home=node(state))


def new_upid(state, on, dtype, vmid):
    seq = int(state.get("task_seq", 0)) + 1
    state["task_seq"] = seq
    start = int(state.get("clock", time.time()))
    task = {"node": on, "pid": 0x1A2B0 + seq, "pstart": 0x54C1D2 + seq, "starttime": start,
            "type": dtype, "id": str(vmid), "user": "root@pam"}
    upid = "UPID:%s:%08X:%08X:%08X:%s:%s:%s:" % (on, task["pid"], task["pstart"], task["starttime"],
                                                task["type"], task["id"], task["user"])
    return upid, task


def run_task(state, on, cmd, path, dtype, vmid, qm_args, stderr_fails=False):
    """A worker task on node `on` running what `qm <qm_args>` does there."""
    vm_on(state, on, vmid)
    upid, task = new_upid(state, on, dtype, vmid)
    save(state)
    output, err, code = capture(lambda: qm(node_view(load(), on), qm_args))
    err_line = " ".join(err.strip().split("\n")[-1:]).strip() if err.strip() else ""
    failed = code != 0 or (stderr_fails and err_line)
    lines = output.splitlines()
    lines.append("TASK ERROR: %s" % err_line if failed else "TASK OK")
    state = load()
    task["exitstatus"] = err_line if failed else "OK"
    task["log"] = lines
    task["running_polls"] = int(state.get("faults", {}).get("task_running_polls", 0))
    state.setdefault("tasks", {})[upid] = task
    save(state)
    if state.get("faults", {}).get("pvesh_nooutput"):
        if on == node(state):
            out(output)
    elif on == node(state):
        out(output)
        out(canonical(upid))
    else:
        remote = output + canonical(upid)
        out(canonical(remote) if output else canonical(upid))
    sys.stdout.flush()
    if failed:
        sys.stderr.write(err_line + "\n")
    return 0


def pvesh_write(state, pos, kv, args):
    cmd = pos[0]
    if len(pos) < 2:
        die("400 not enough arguments\n" + PVESH_USAGE % cmd)
    path = pos[1]
    parts = path.strip("/").split("/")
    if len(parts) < 4 or parts[0] != "nodes" or parts[2] != "qemu":
        die("no '%s' handler for '%s'" % (cmd, path))
    on, vmid, rest = parts[1], parts[3], parts[4:]
    if on not in cluster_nodes(state):
        die("hostname lookup '%s' failed - failed to get address info for: %s: Name or service not known"
            % (on, on))
    vm = state["vms"].get(vmid)
    if vm is None or vm.get("node", node(state)) != on:
        proxied_die(state, on, cmd, path,
                    "Configuration file 'nodes/%s/qemu-server/%s.conf' does not exist" % (on, vmid), 2)
    if cmd == "create" and len(rest) == 2 and rest[0] == "status" and rest[1] in ("start", "stop", "shutdown", "reboot"):
        extra = ["--timeout", kv["timeout"]] if "timeout" in kv else []
        return run_task(state, on, cmd, path, "qm" + rest[1], vmid, [rest[1], vmid] + extra)
    if cmd == "create" and rest == ["snapshot"]:
        name = kv.get("snapname", "")
        if len(name) > 40 or not (len(name) >= 2 and name[0].isascii() and name[0].isalpha() and all(
                c.isascii() and (c.isalnum() or c in "_-") for c in name)):
            reason = ("value may only be 40 characters long" if len(name) > 40
                      else "invalid format - invalid configuration ID '%s'" % name)
            proxied_die(state, on, cmd, path, "400 Parameter verification failed.\nsnapname: %s\n%s"
                        % (reason, PVESH_USAGE % cmd), 255)
        if name.lower() in ("current", "pending"):
            proxied_die(state, on, cmd, path, "unable to use snapshot name '%s' (reserved name)" % name, 255)
        qm_args = ["snapshot", vmid, name]
        if "description" in kv:
            qm_args += ["--description", kv["description"]]
        return run_task(state, on, cmd, path, "qmsnapshot", vmid, qm_args)
    if cmd == "create" and len(rest) == 3 and rest[0] == "snapshot" and rest[2] == "rollback":
        return run_task(state, on, cmd, path, "qmrollback", vmid, ["rollback", vmid, rest[1]])
    if cmd == "delete" and len(rest) == 2 and rest[0] == "snapshot":
        return run_task(state, on, cmd, path, "qmdelsnapshot", vmid, ["delsnapshot", vmid, rest[1]])
    if cmd == "delete" and rest == []:
        extra = ["--purge"] if kv.get("purge") == "1" else []
        return run_task(state, on, cmd, path, "qmdestroy", vmid, ["destroy", vmid] + extra)
    if cmd == "set" and rest == ["resize"]:
        return run_task(state, on, cmd, path, "resize", vmid,
                        ["resize", vmid, kv.get("disk", ""), kv.get("size", "")], stderr_fails=True)
    if cmd == "create" and rest == ["clone"]:
        # POST /nodes/<node>/qemu/<vmid>/clone (clone_vm): a `qmclone`
        # task of the source VMID on the template's node.
        if "newid" not in kv:
            proxied_die(state, on, cmd, path, "400 Parameter verification failed.\n"
                        "newid: property is missing and it is not optional\n%s" % (PVESH_USAGE % cmd), 255)
        # clone_vm checks the target node before it forks the worker
        # (`PVE::Cluster::check_node_exists($target) if $target`, after
        # dropping a target that is the node itself): no task, no UPID.
        target = kv.get("target")
        if target and target not in (on, "localhost") and target not in cluster_nodes(state):
            proxied_die(state, on, cmd, path, "no such cluster node '%s'" % target, 255)
        qm_args = ["clone", vmid, kv["newid"]]
        for k in ("name", "full", "storage", "target"):
            if k in kv:
                qm_args += ["--" + k, kv[k]]
        return run_task(state, on, cmd, path, "qmclone", vmid, qm_args)
    if cmd == "create" and rest == ["template"]:
        return run_task(state, on, cmd, path, "qmtemplate", vmid, ["template", vmid], stderr_fails=True)
    if cmd == "set" and rest == ["config"]:
        flags = []
        for k in sorted(kv):
            if k != "output-format":
                flags += ["--" + k, kv[k]]
        output, err, code = capture(lambda: qm(node_view(state, on), ["set", vmid] + flags))
        if code != 0:
            proxied_die(state, on, cmd, path, err.strip(), code)
        if on == node(state):
            out(output)
        return 0
    if cmd == "create" and rest == ["agent", "exec"]:
        command = [args[i + 1] for i in range(len(args) - 1) if args[i] == "--command"]
        if vm["status"] not in ("running", "paused"):
            proxied_die(state, on, cmd, path, "VM %s is not running" % vmid, 255)
        if not vm.get("agent_running", True):
            proxied_die(state, on, cmd, path, "QEMU guest agent is not running", 255)
        pid = int(state.get("exec_seq", 4000)) + 1
        state["exec_seq"] = pid
        vm.setdefault("exec", {})[str(pid)] = guest_exec_result(vm, command)
        save(state)
        out(canonical({"pid": pid}))
        return 0
    die("no '%s' handler for '%s'" % (cmd, path))


def pvesh_task_get(state, on, upid, what, kv):
    """/nodes/<node>/tasks/<upid>/status and …/log (API2/Tasks.pm)."""
    task = state.get("tasks", {}).get(upid)
    if task is None or task["node"] != on:
        sys.stderr.write("400 Parameter verification failed.\nupid: no such task\n%s\n" % (PVESH_USAGE % "get"))
        sys.exit(255)
    if what == "status":
        res = {k: task[k] for k in ("node", "pid", "pstart", "starttime", "type", "id", "user")}
        res["upid"] = upid
        if task.get("running_polls", 0) > 0:
            task["running_polls"] -= 1
            save(state)
            res["status"] = "running"
        else:
            res["status"] = "stopped"
            res["exitstatus"] = task["exitstatus"]
        out(canonical(res))
        return 0
    if what == "log":
        start, limit = int(kv.get("start", "0")), int(kv.get("limit", "50"))
        lines = task["log"][start:start + limit]
        out(canonical([{"n": start + i + 1, "t": l} for i, l in enumerate(lines)]))
        return 0
    die("no 'get' handler for 'nodes/%s/tasks/%s/%s'" % (on, upid, what))


def main():
    prog = sys.argv[1]
    args = sys.argv[2:]
    lock = open(STATE + ".lock", "a")
    fcntl.flock(lock, fcntl.LOCK_EX)
    with open(STATE + ".calls", "a") as f:
        f.write(json.dumps([prog] + args) + "\n")
    state = load()
    key = " ".join([prog] + args[:1])
    faults = state.get("faults", {})
    slow = faults.get("slow", {}).get(key)
    if slow:
        fcntl.flock(lock, fcntl.LOCK_UN)
        time.sleep(float(slow))
        fcntl.flock(lock, fcntl.LOCK_EX)
        state = load()
    if key in faults.get("drop", []):
        fcntl.flock(lock, fcntl.LOCK_UN)
        drop_connection(state)
    handler = {"qm": qm, "pvesh": pvesh, "pvesm": pvesm, "ip": ip}[prog]
    code = handler(state, args)
    sys.stdout.flush()
    sys.exit(code or 0)


if __name__ == "__main__":
    main()


