//! Test harness: a simulated Proxmox VE host behind a real OpenSSH server.
//!
//! `Sim::start()` runs Debian's `/usr/sbin/sshd` on 127.0.0.1 at a free
//! port with its own host key, a test client key in authorized_keys, and
//! the stand-in `qm` / `pvesh` / `pvesm` / `ip` programs of
//! `tests/it/support/pvesim/pvesim.py` (which imitate Proxmox VE) first on the
//! session PATH (sshd `SetEnv`). The sshd is stopped when the `Sim` drops.
//! Works as root (PermitRootLogin prohibit-password, UsePAM no; StrictModes
//! is off because the folder lives under the world-writable /tmp).

#![allow(dead_code)]

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub struct Sim {
    pub dir: tempfile::TempDir,
    pub port: u16,
    sshd: Child,
    pub fleet: PathBuf,
    pub state_path: PathBuf,
    pub client_key: PathBuf,
    pub host_pub: String,
    pub vm_host_key: String,
}

fn keygen(path: &Path) {
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "test", "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen runs");
    assert!(st.success());
}

/// Whether an SSH server answers at `addr:port` (its banner starts with
/// `SSH-`).
pub fn ssh_banner(addr: &str, port: u16) -> bool {
    if let Ok(mut s) = std::net::TcpStream::connect((addr, port)) {
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let mut b = [0u8; 4];
        return s.read_exact(&mut b).is_ok() && &b == b"SSH-";
    }
    false
}

/// Runs Debian's sshd (`-D -e -f CONFIG`) on `addr` at a free port, with
/// `config(port)` written to `config_path`, until it shows its banner and
/// `ready()` holds (under a generous deadline). A port taken again between
/// asking for it and sshd binding it is retried on another one.
pub fn start_sshd(
    addr: &str,
    config_path: &Path,
    config: impl Fn(u16) -> String,
    ready: impl Fn() -> bool,
) -> (Child, u16) {
    let mut last_err = String::new();
    for _ in 0..5 {
        let port = std::net::TcpListener::bind((addr, 0))
            .unwrap_or_else(|e| panic!("bind {addr}: {e}"))
            .local_addr()
            .expect("addr")
            .port();
        std::fs::write(config_path, config(port)).expect("sshd_config");
        let mut child = Command::new(super::tool("sshd"))
            .args(["-D", "-e", "-f"])
            .arg(config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sshd starts");
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            if ssh_banner(addr, port) && ready() {
                return (child, port);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        last_err.clear();
        if let Some(mut s) = child.stderr.take() {
            let _ = s.read_to_string(&mut last_err);
        }
    }
    panic!("sshd on {addr} did not start: {last_err}");
}

pub fn user() -> String {
    let out = Command::new("id").arg("-un").output().expect("id runs");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub const HOSTS_NIX: &str = r#"{
  _proxmox = {
    host = "127.0.0.1";
    node = "pve";
    templateVmid = 9000;
    vmidRange = [ 100 199 ];
  };
  web = {
    hostname = "web";
    proxmox = { vmid = 111; cores = 4; memory = 4096; };
  };
  doc2 = {
    hostname = "doc2";
    proxmox = { vmid = 104; readonly = true; };
  };
  fresh = {
    hostname = "fresh";
    proxmox = { vmid = 101; };
  };
}
"#;

impl Sim {
    pub fn start() -> Sim {
        let dir = tempfile::Builder::new()
            .prefix("pvesim.")
            .tempdir()
            .expect("temp dir");
        let d = dir.path().to_path_buf();
        if nix_is_root() {
            // sshd's privilege separation folder, as the sshd service creates it.
            let _ = std::fs::create_dir_all("/run/sshd");
        }
        keygen(&d.join("host_key"));
        keygen(&d.join("client_key"));
        keygen(&d.join("vm_host_key"));
        let client_pub = std::fs::read_to_string(d.join("client_key.pub")).expect("pub");
        std::fs::write(d.join("authorized_keys"), client_pub).expect("write");
        set_mode(&d.join("authorized_keys"), 0o600);
        let bin = d.join("bin");
        std::fs::create_dir(&bin).expect("bin");
        let sim = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/support/pvesim/pvesim.py");
        for prog in ["qm", "pvesh", "pvesm", "ip"] {
            let p = bin.join(prog);
            std::fs::write(
                &p,
                format!(
                    "#!/bin/sh\nexec python3 '{}' {prog} \"$@\"\n",
                    sim.display()
                ),
            )
            .expect("wrapper");
            set_mode(&p, 0o755);
        }
        let state_path = d.join("state.json");
        let host_pub = std::fs::read_to_string(d.join("host_key.pub")).expect("pub");
        let vm_host_key = std::fs::read_to_string(d.join("vm_host_key.pub"))
            .expect("pub")
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        let fleet = d.join("fleet");
        std::fs::create_dir_all(fleet.join("vms")).expect("fleet");
        std::fs::write(fleet.join("hosts.nix"), HOSTS_NIX).expect("hosts.nix");

        let cfg = d.join("sshd_config");
        let (sshd, port) = start_sshd(
            "127.0.0.1",
            &cfg,
            |port| {
                format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
                 AuthorizedKeysFile {d}/authorized_keys\nPubkeyAuthentication yes\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nUsePAM no\nStrictModes no\n\
                 MaxSessions 50\nMaxStartups 50:30:100\n\
                 SetEnv PATH={path} HOME={d} PVE_SIM_STATE={d}/state.json\n",
                d = d.display(),
                path = super::tools::session_path(&d.join("bin")).to_string_lossy()
            )
            },
            || true,
        );
        let sim = Sim {
            dir,
            port,
            sshd,
            fleet,
            state_path,
            client_key: d.join("client_key"),
            host_pub,
            vm_host_key,
        };
        sim.reset_state();
        sim
    }

    pub fn initial_state(&self) -> Value {
        json!({
            "node": "pve",
            "sshd_pid_file": self.dir.path().join("sshd.pid"),
            "bridge": {"name": "vmbr0", "addr": "192.0.2.1", "prefix": 24},
            "neighbours": [
                {"dst": "192.0.2.111", "lladdr": "bc:24:11:5e:7a:01", "state": ["REACHABLE"]},
                {"dst": "198.51.100.7", "lladdr": "bc:24:11:00:01:12", "state": ["STALE"]}
            ],
            "containers": {"105": {"name": "proxy-ct", "status": "running"}},
            "storage": [
                {"name": "local", "type": "dir", "status": "active", "total": 71017632, "used": 21094416, "avail": 46269996},
                {"name": "local-lvm", "type": "lvmthin", "status": "active", "total": 148086784, "used": 0, "avail": 148086784},
                {"name": "old-iso", "type": "dir", "status": "disabled", "total": 0, "used": 0, "avail": 0}
            ],
            "faults": {},
            "vms": {
                "100": {"status": "running", "pid": 1834, "agent_running": true, "ips": ["192.0.2.100"],
                        "config": {"name": "dns01", "memory": "2048", "cores": "2", "boot": "order=scsi0",
                                   "scsi0": "local-lvm:vm-100-disk-0,size=32G",
                                   "net0": "virtio=BC:24:11:00:01:00,bridge=vmbr0"}},
                "104": {"status": "running", "pid": 1900, "agent_running": true, "ips": ["192.0.2.104"],
                        "config": {"name": "doc2", "memory": "4096", "cores": "2", "boot": "order=scsi0",
                                   "scsi0": "local-lvm:vm-104-disk-0,size=32G",
                                   "net0": "virtio=BC:24:11:00:01:04,bridge=vmbr0"}},
                "111": {"status": "running", "pid": 2345, "agent_running": true, "ips": ["192.0.2.111"],
                        "hostkey": format!("{} root@web", self.vm_host_key),
                        "config": {"name": "nixos-web01", "agent": "enabled=1", "bios": "ovmf",
                                   "boot": "order=virtio0;net0", "cores": "4", "memory": "4096",
                                   "description": "NixOS web server%0Amanaged by pve", "serial0": "socket",
                                   "net0": "virtio=BC:24:11:5E:7A:01,bridge=vmbr0,firewall=1",
                                   "virtio0": "local-lvm:vm-111-disk-0,discard=on,iothread=1,size=64G",
                                   "efidisk0": "local-lvm:vm-111-disk-1,efitype=4m,size=4M",
                                   "tags": "nixos;web", "ostype": "l26"}},
                "112": {"status": "stopped", "agent_running": false, "ips": [],
                        "config": {"memory": "2048", "cores": "2", "boot": "order=scsi0;ide2;net0",
                                   "ide2": "none,media=cdrom",
                                   "net0": "virtio=BC:24:11:00:01:12,bridge=vmbr0,firewall=1"}},
                "9000": {"status": "stopped", "agent_running": true, "ips": [],
                         "hostkey": format!("{} root@template", self.vm_host_key),
                         "config": {"name": "nixos-template", "agent": "enabled=1", "boot": "order=virtio0",
                                    "cores": "2", "memory": "2048", "template": "1", "serial0": "socket",
                                    "net0": "virtio=BC:24:11:00:90:00,bridge=vmbr0",
                                    "virtio0": "local-lvm:base-9000-disk-0,discard=on,iothread=1,size=8G"}}
            }
        })
    }

    pub fn reset_state(&self) {
        self.set_state(&self.initial_state());
        let _ = std::fs::remove_file(self.calls_path());
    }

    pub fn state(&self) -> Value {
        serde_json::from_str(&std::fs::read_to_string(&self.state_path).expect("state"))
            .expect("json")
    }

    pub fn set_state(&self, v: &Value) {
        let tmp = self.state_path.with_extension("tmp-test");
        std::fs::write(&tmp, serde_json::to_string_pretty(v).expect("json")).expect("write");
        std::fs::rename(tmp, &self.state_path).expect("rename");
    }

    pub fn update(&self, f: impl FnOnce(&mut Value)) {
        let mut s = self.state();
        f(&mut s);
        self.set_state(&s);
    }

    fn calls_path(&self) -> PathBuf {
        PathBuf::from(format!("{}.calls", self.state_path.display()))
    }

    /// Every command the simulated host ran, as argv.
    pub fn calls(&self) -> Vec<Vec<String>> {
        std::fs::read_to_string(self.calls_path())
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("call json"))
            .collect()
    }

    pub fn known_hosts_name(&self) -> String {
        format!("[127.0.0.1]:{}", self.port)
    }

    /// Records the host key as `trust` would (for tests about other ops).
    pub fn pin_host_key(&self) {
        let f: Vec<&str> = self.host_pub.split_whitespace().collect();
        std::fs::write(
            self.fleet.join("vms/proxmox_known_hosts"),
            format!("{} {} {}\n", self.known_hosts_name(), f[0], f[1]),
        )
        .expect("known_hosts");
    }

    fn configure(&self, c: &mut Command) {
        c.current_dir(&self.fleet)
            .env_remove("PVE_HOSTS")
            .env_remove("PROXMOX_HOST")
            .env_remove("PROXMOX_NODE")
            .env_remove("PROXMOX_READONLY_VMIDS")
            .env_remove("PVE_LOG")
            .env("PROXMOX_USER", user())
            .env("PROXMOX_SSH_PORT", self.port.to_string())
            .env("PROXMOX_SSH_IDENTITY", &self.client_key)
            .env("PROXMOX_CONNECT_TIMEOUT", "5")
            // The simulated VMs live on 127.0.0.2.. (never 127.0.0.1).
            .env("PVE_ALLOW_LOOPBACK_VMS", "1");
    }

    /// `proxmox-ops` set up to talk to this simulator.
    pub fn ops(&self) -> assert_cmd::Command {
        assert_cmd::Command::from_std(self.std_ops())
    }

    /// `pve vm` set up to talk to this simulator.
    pub fn pve(&self) -> assert_cmd::Command {
        let mut std = Command::new(bin(option_env!("CARGO_BIN_EXE_pve"), "pve"));
        self.configure(&mut std);
        assert_cmd::Command::from_std(std)
    }

    /// `pve` set up to talk to this simulator, as a std Command (to spawn).
    pub fn std_pve(&self) -> Command {
        let mut c = Command::new(bin(option_env!("CARGO_BIN_EXE_pve"), "pve"));
        self.configure(&mut c);
        c
    }

    pub fn std_ops(&self) -> Command {
        let mut c = Command::new(bin(option_env!("CARGO_BIN_EXE_proxmox-ops"), "proxmox-ops"));
        self.configure(&mut c);
        c
    }
}

/// The simulated cluster: three nodes (pve, pve2, pve3), templates on
/// local storage (9000 on pve) and on shared NFS storage (9001 on pve2,
/// as reference/proxmox-cli/qm-config-9001.template.shared-nfs.txt).
impl Sim {
    pub const NODES: [&'static str; 3] = ["pve", "pve2", "pve3"];

    pub fn make_cluster(&self) {
        self.update(|s| {
            s["nodes"] = json!(Self::NODES);
            // Storage every node reaches (clone --target needs it).
            s["shared_storage"] = json!(["nfs-shared"]);
            s["vms"]["9001"] = json!({
                "status": "stopped", "agent_running": true, "ips": [], "node": "pve2",
                "config": {"name": "nixos-template-shared", "agent": "enabled=1", "boot": "order=virtio0",
                           "cores": "2", "memory": "2048", "template": "1", "serial0": "socket",
                           "tags": "nixos;template",
                           "net0": "virtio=BC:24:11:00:90:01,bridge=vmbr0",
                           "virtio0": "nfs-shared:9001/base-9001-disk-0.qcow2,discard=on,iothread=1,size=8G"}
            });
        });
    }

    /// What HA does when a node fails or a rule moves a VM: the VM is on
    /// `node` now, HA-managed (`hastate` in /cluster/resources).
    pub fn ha_move(&self, vmid: u32, node: &str) {
        self.update(|s| {
            let vm = &mut s["vms"][vmid.to_string()];
            vm["node"] = json!(node);
            vm["hastate"] = json!("started");
        });
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.sshd.kill();
        let _ = self.sshd.wait();
    }
}

/// The built binary (integration tests know it; examples fall back to
/// target/release).
fn bin(known: Option<&str>, name: &str) -> PathBuf {
    known.map(PathBuf::from).unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("target/release")
            .join(name)
    })
}

fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn nix_is_root() -> bool {
    user() == "root"
}
