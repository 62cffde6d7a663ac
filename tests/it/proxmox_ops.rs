//! proxmox-ops / pve vm against the simulated Proxmox host, over real SSH
//! (Debian's sshd and ssh, real host-key checking). See tests/it/support/pvesim.

use crate::support::pvesim;
use crate::support::{stderr, stdout};
use std::time::{Duration, Instant};

use crate::support::pvesim::Sim;
use serde_json::Value;

fn sim() -> Sim {
    let s = Sim::start();
    s.pin_host_key();
    s
}

fn run(s: &Sim, args: &[&str]) -> std::process::Output {
    s.ops().args(args).output().expect("runs")
}

fn ok(s: &Sim, args: &[&str]) -> String {
    let o = run(s, args);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{args:?}\nstdout: {}\nstderr: {}",
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

fn fails(s: &Sim, args: &[&str], code: i32) -> String {
    let o = run(s, args);
    assert_eq!(
        o.status.code(),
        Some(code),
        "{args:?}\nstdout: {}\nstderr: {}",
        stdout(&o),
        stderr(&o)
    );
    stderr(&o)
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).expect("valid JSON")
}

fn qm_calls(s: &Sim, sub: &str) -> Vec<Vec<String>> {
    s.calls()
        .into_iter()
        .filter(|c| c.len() > 1 && c[0] == "qm" && c[1] == sub)
        .collect()
}

#[test]
fn list_json_round_trips_and_matches_pve_vm() {
    let s = sim();
    let out = ok(&s, &["list", "--json"]);
    let v = json(&out);
    let rows = v.as_array().expect("array");
    assert_eq!(rows.len(), 5);
    assert_eq!(rows[3]["name"], "VM 112");
    assert_eq!(rows[3]["status"], "stopped");
    assert_eq!(rows[2]["vmid"], 111);
    assert_eq!(rows[2]["bootdisk_gib"], 64.0);
    assert_eq!(rows[0]["pid"], 1834);
    // Same input, same bytes; pve vm shares the definition.
    assert_eq!(ok(&s, &["list", "--json"]), out);
    let o = s
        .pve()
        .args(["vm", "list", "--json"])
        .output()
        .expect("runs");
    assert_eq!(stdout(&o), out, "{}", stderr(&o));
    let text = ok(&s, &["list"]);
    assert!(text.contains("nixos-template"), "{text}");
}

#[test]
fn status_and_config_are_typed() {
    let s = sim();
    let st = json(&ok(&s, &["status", "111", "--json"]));
    assert_eq!(st["status"], "running");
    assert_eq!(st["name"], "nixos-web01");
    assert_eq!(st["pid"], 2345);
    assert_eq!(st["lock"], Value::Null);
    let st = json(&ok(&s, &["status", "112", "--json"]));
    assert_eq!(st["name"], "VM 112");
    assert_eq!(st["status"], "stopped");
    let cfg = json(&ok(&s, &["config", "111", "--json"]));
    assert_eq!(
        cfg["virtio0"],
        "local-lvm:vm-111-disk-0,discard=on,iothread=1,size=64G"
    );
    assert_eq!(
        cfg["net0"],
        "virtio=BC:24:11:5E:7A:01,bridge=vmbr0,firewall=1"
    );
    let text = ok(&s, &["config", "111"]);
    assert!(text.contains("name: nixos-web01\n"), "{text}");
}

#[test]
fn a_missing_vm_fails_with_the_remote_error_kept() {
    let s = sim();
    let err = fails(&s, &["status", "999"], 3);
    assert!(
        err.contains("Configuration file 'nodes/pve/qemu-server/999.conf' does not exist"),
        "{err}"
    );
    assert!(err.contains("`qm status 999 --verbose` failed"), "{err}");
}

#[test]
fn clone_creates_and_refuses_existing_vmids() {
    let s = sim();
    let out = ok(&s, &["clone", "9000", "120", "web-2", "--full"]);
    assert!(
        out.contains("create full clone of drive virtio0 (local-lvm:base-9000-disk-0)"),
        "{out}"
    );
    assert!(out.contains("cloned VM 9000 to VM 120 (web-2)"), "{out}");
    let st = s.state();
    assert_eq!(st["vms"]["120"]["config"]["name"], "web-2");
    assert_eq!(
        qm_calls(&s, "clone"),
        vec![vec![
            "qm", "clone", "9000", "120", "--name", "web-2", "--full", "1"
        ]]
    );
    // An existing VM, and a container's VMID: refused before `qm clone`.
    for taken in ["111", "105"] {
        let err = fails(&s, &["clone", "9000", taken, "web-3"], 2);
        assert!(
            err.contains(&format!("VMID {taken} already exists on Proxmox")),
            "{err}"
        );
    }
    assert_eq!(qm_calls(&s, "clone").len(), 1);
}

#[test]
fn configure_resize_and_create_disk_change_the_vm() {
    let s = sim();
    let out = ok(
        &s,
        &["configure", "111", "--cores", "8", "--memory", "8192"],
    );
    assert!(
        out.contains("update VM 111: -cores 8 -memory 8192"),
        "{out}"
    );
    let out = ok(&s, &["resize", "111", "virtio0", "+16G"]);
    assert!(out.contains("successfully resized"), "{out}");
    let out = ok(&s, &["create-disk", "111", "scsi1", "local-lvm", "32"]);
    assert!(out.contains("scsi1: successfully created disk"), "{out}");
    let cfg = &s.state()["vms"]["111"]["config"];
    assert_eq!(cfg["cores"], "8");
    assert_eq!(cfg["memory"], "8192");
    assert!(cfg["virtio0"].as_str().expect("str").ends_with("size=80G"));
    assert!(cfg["scsi1"]
        .as_str()
        .expect("str")
        .starts_with("local-lvm:vm-111-disk-"));
    // qm resize exits 0 when its task fails: stderr is the failure.
    let err = fails(&s, &["resize", "111", "virtio0", "10G"], 3);
    assert!(err.contains("shrinking disks is not supported"), "{err}");
    let err = fails(&s, &["resize", "111", "scsi5", "+1G"], 3);
    assert!(err.contains("disk 'scsi5' does not exist"), "{err}");
    // Bad arguments never reach the host.
    fails(&s, &["resize", "111", "virtio0", "16GB"], 2);
    fails(&s, &["configure", "111"], 2);
    fails(&s, &["create-disk", "111", "efidisk1", "local-lvm", "1"], 2);
}

#[test]
fn power_operations() {
    let s = sim();
    assert!(ok(&s, &["start", "112"]).contains("started VM 112"));
    assert_eq!(s.state()["vms"]["112"]["status"], "running");
    let err = fails(&s, &["start", "111"], 3);
    assert!(err.contains("VM 111 already running"), "{err}");
    ok(&s, &["stop", "112"]);
    assert_eq!(s.state()["vms"]["112"]["status"], "stopped");
    ok(&s, &["stop", "112"]); // idempotent, like qm stop
    ok(&s, &["shutdown", "100", "--wait", "5"]);
    assert_eq!(s.state()["vms"]["100"]["status"], "stopped");
    ok(&s, &["restart", "111"]);
    assert!(qm_calls(&s, "reboot").contains(&vec!["qm".into(), "reboot".into(), "111".into()]));
    let err = fails(&s, &["start", "9000"], 3);
    assert!(
        err.contains("you can't start a vm if it's a template"),
        "{err}"
    );
}

#[test]
fn a_locked_vm_reports_the_lock() {
    let s = sim();
    s.update(|st| st["vms"]["111"]["config"]["lock"] = "backup".into());
    let err = fails(&s, &["stop", "111"], 3);
    assert!(err.contains("VM is locked (backup)"), "{err}");
    let st = json(&ok(&s, &["status", "111", "--json"]));
    assert_eq!(st["lock"], "backup");
}

#[test]
fn readonly_vms_are_refused_before_any_connection() {
    let s = sim();
    // hosts.nix marks 104 readonly; PROXMOX_READONLY_VMIDS adds 112.
    for args in [
        vec!["destroy", "104", "--yes", "--expect-name", "doc2"],
        vec!["stop", "104"],
        vec!["configure", "104", "--cores", "1"],
        vec!["resize", "104", "scsi0", "+1G"],
        vec!["template", "104"],
        vec!["clone", "9000", "104", "doc2"],
    ] {
        let o = s.ops().args(&args).output().expect("runs");
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("VM 104 is readonly"), "{}", stderr(&o));
        // Refused even when the host is unreachable: no connection was tried.
        let o = s
            .ops()
            .env("PROXMOX_SSH_PORT", "1")
            .args(&args)
            .output()
            .expect("runs");
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
    }
    let o = s
        .ops()
        .env("PROXMOX_READONLY_VMIDS", "112, 113")
        .args(["start", "112"])
        .output()
        .expect("runs");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("VM 112 is readonly"));
    assert!(
        s.calls().is_empty(),
        "nothing ran on the host: {:?}",
        s.calls()
    );
    assert_eq!(s.state()["vms"]["104"]["status"], "running");
    let o = s
        .ops()
        .env("PROXMOX_READONLY_VMIDS", "12x")
        .args(["list"])
        .output()
        .expect("runs");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("PROXMOX_READONLY_VMIDS"));
}

#[test]
fn destroy_needs_the_right_name() {
    let s = sim();
    let err = fails(
        &s,
        &["destroy", "112", "--yes", "--expect-name", "nixos-web01"],
        2,
    );
    assert!(
        err.contains("VM 112 on Proxmox is named `VM 112`, not `nixos-web01`"),
        "{err}"
    );
    let err = fails(&s, &["destroy", "112", "--yes"], 2);
    assert!(err.contains("--expect-name"), "{err}");
    // Typed back on stdin: wrong, then right.
    let o = s
        .ops()
        .args(["destroy", "9000"])
        .write_stdin("nixos-web01\n")
        .output()
        .expect("runs");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("Type its name"));
    assert!(qm_calls(&s, "destroy").is_empty());
    assert!(s.state()["vms"]["9000"].is_object());
    let o = s
        .ops()
        .args(["destroy", "9000"])
        .write_stdin("nixos-template\n")
        .output()
        .expect("runs");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("purging VM 9000 from related configurations.."));
    assert!(s.state()["vms"].get("9000").is_none());
    let out = ok(&s, &["destroy", "112", "--yes", "--expect-name", "VM 112"]);
    assert!(out.contains("destroyed VM 112"), "{out}");
    // A running VM: Proxmox refuses, we report it.
    let err = fails(
        &s,
        &["destroy", "111", "--yes", "--expect-name", "nixos-web01"],
        3,
    );
    assert!(err.contains("VM 111 is running - destroy failed"), "{err}");
}

#[test]
fn template_converts_and_reports_failures() {
    let s = sim();
    let out = ok(&s, &["template", "112"]);
    assert!(out.contains("VM 112 is now a template"), "{out}");
    assert_eq!(s.state()["vms"]["112"]["config"]["template"], "1");
    let err = fails(&s, &["template", "111"], 3);
    assert!(
        err.contains("you can't convert a VM to template if VM is running"),
        "{err}"
    );
}

#[test]
fn console_attaches_to_the_serial_terminal() {
    let s = sim();
    let o = s
        .ops()
        .args(["console", "111"])
        .write_stdin("hello\n")
        .output()
        .expect("runs");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("starting serial terminal on interface serial0"),
        "{}",
        stdout(&o)
    );
    assert!(stdout(&o).contains("login: hello"), "{}", stdout(&o));
    let o = s
        .ops()
        .args(["console", "112"])
        .write_stdin("")
        .output()
        .expect("runs");
    assert_eq!(o.status.code(), Some(3));
}

#[test]
fn get_ip_from_the_agent_then_the_neighbour_table() {
    let s = sim();
    let v = json(&ok(&s, &["get-ip", "111", "--json"]));
    assert_eq!(v["ip"], "192.0.2.111");
    assert_eq!(v["source"], "guest-agent");
    assert_eq!(ok(&s, &["get-ip", "111"]), "192.0.2.111\n");
    // Agent down: the MAC in the host's neighbour table.
    s.update(|st| st["vms"]["111"]["agent_running"] = false.into());
    let v = json(&ok(&s, &["get-ip", "111", "--json"]));
    assert_eq!(v["ip"], "192.0.2.111");
    assert_eq!(v["source"], "neighbour-table");
    assert_eq!(v["mac"], "bc:24:11:5e:7a:01");
    // 112 has no agent and its only neighbour entry is outside vmbr0's subnet.
    s.update(|st| st["vms"]["112"]["status"] = "running".into());
    let err = fails(&s, &["get-ip", "112"], 3);
    assert!(err.contains("no IP address found for VM 112"), "{err}");
    assert!(
        err.contains("No QEMU guest agent configured") || err.contains("no QEMU guest agent"),
        "{err}"
    );
}

#[test]
fn get_ip_follows_a_new_address_after_reboot() {
    let s = sim();
    s.update(|st| st["vms"]["111"]["ip_after_reboot"] = "192.0.2.150".into());
    assert_eq!(ok(&s, &["get-ip", "111"]), "192.0.2.111\n");
    ok(&s, &["restart", "111"]);
    assert_eq!(ok(&s, &["get-ip", "111"]), "192.0.2.150\n");
    s.update(|st| st["vms"]["111"]["agent_running"] = false.into());
    let v = json(&ok(&s, &["get-ip", "111", "--json"]));
    assert_eq!(
        (v["ip"].as_str(), v["source"].as_str()),
        (Some("192.0.2.150"), Some("neighbour-table"))
    );
}

#[test]
fn wait_ssh_waits_for_a_banner() {
    let s = sim();
    // The "VM" answers with an SSH banner on 127.0.0.2.
    let banner = std::net::TcpListener::bind("127.0.0.2:0").expect("bind 127.0.0.2");
    let port = banner.local_addr().expect("addr").port().to_string();
    std::thread::spawn(move || {
        for mut c in banner.incoming().flatten() {
            use std::io::Write as _;
            let _ = c.write_all(b"SSH-2.0-OpenSSH_9.6\r\n");
        }
    });
    s.update(|st| st["vms"]["111"]["ips"] = serde_json::json!(["127.0.0.2"]));
    assert_eq!(
        ok(&s, &["wait-ssh", "111", "--port", &port, "--wait", "10"]),
        "127.0.0.2\n"
    );
    let closed = std::net::TcpListener::bind("127.0.0.2:0")
        .expect("bind")
        .local_addr()
        .expect("a")
        .port();
    let err = fails(
        &s,
        &[
            "wait-ssh",
            "111",
            "--port",
            &closed.to_string(),
            "--wait",
            "1",
        ],
        3,
    );
    assert!(err.contains("did not answer on SSH within 1s"), "{err}");
}

#[test]
fn storage_and_next_vmid() {
    let s = sim();
    let v = json(&ok(&s, &["storage", "--json"]));
    assert_eq!(v[1]["name"], "local-lvm");
    assert_eq!(v[1]["type"], "lvmthin");
    assert_eq!(v[1]["total_kib"], 148086784);
    assert_eq!(v[2]["used_percent"], Value::Null);
    assert!(ok(&s, &["storage"]).contains("N/A"));
    // Proxmox has 100, 104, 105 (LXC), 111, 112, 9000; hosts.nix has 101, 104, 111.
    assert_eq!(ok(&s, &["next-vmid"]), "102\n");
    assert_eq!(json(&ok(&s, &["next-vmid", "--json"]))["vmid"], 102);
}

#[test]
fn hostkey_is_read_through_the_guest_agent() {
    let s = sim();
    let key = ok(&s, &["hostkey", "111"]);
    assert_eq!(key.trim(), s.vm_host_key);
    assert_eq!(
        qm_calls(&s, "guest"),
        vec![vec![
            "qm",
            "guest",
            "exec",
            "111",
            "--",
            "cat",
            "/etc/ssh/ssh_host_ed25519_key.pub"
        ]]
    );
    let err = fails(&s, &["hostkey", "112"], 3);
    assert!(err.contains("VM 112 is not running"), "{err}");
    s.update(|st| st["vms"]["111"]["agent_running"] = false.into());
    let err = fails(&s, &["hostkey", "111"], 3);
    assert!(err.contains("QEMU guest agent is not running"), "{err}");
}

#[test]
fn hostile_arguments_never_run() {
    let s = sim();
    let marker = s.dir.path().join("pwned");
    let evil = format!("x;touch {}", marker.display());
    let cases: Vec<Vec<String>> = vec![
        vec!["clone".into(), "9000".into(), "130".into(), evil.clone()],
        vec!["status".into(), evil.clone()],
        vec![
            "destroy".into(),
            evil.clone(),
            "--yes".into(),
            "--expect-name".into(),
            "x".into(),
        ],
        vec![
            "create-disk".into(),
            "111".into(),
            "scsi1".into(),
            evil.clone(),
            "1".into(),
        ],
        vec!["resize".into(), "111".into(), evil.clone(), "+1G".into()],
        vec![
            "clone".into(),
            "9000".into(),
            "130".into(),
            "ok-name".into(),
            "--storage".into(),
            evil.clone(),
        ],
    ];
    // With the host unreachable too: exit 2 (not 3) proves nothing connected.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("a")
        .port();
    for args in &cases {
        let o = s.ops().args(args).output().expect("runs");
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        let o = s
            .ops()
            .env("PROXMOX_SSH_PORT", closed.to_string())
            .args(args)
            .output()
            .expect("runs");
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
    }
    assert!(!marker.exists());
    assert!(s.calls().is_empty(), "{:?}", s.calls());
    // A hostile Proxmox address is refused too.
    let o = s
        .ops()
        .env("PROXMOX_HOST", "-oProxyCommand=touch /tmp/x")
        .args(["list"])
        .output()
        .expect("runs");
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn host_keys_unknown_then_trusted() {
    let s = Sim::start(); // nothing pinned
    let kh = s.fleet.join("vms/proxmox_known_hosts");
    let err = fails(&s, &["list"], 3);
    assert!(err.contains("is not in the project's known_hosts"), "{err}");
    assert!(err.contains("proxmox-ops trust"), "{err}");
    // No confirmation on a non-terminal: refused, nothing written.
    let err = fails(&s, &["trust"], 2);
    assert!(err.contains("SHA256:"), "the fingerprint is shown: {err}");
    assert!(!kh.exists());
    let err = fails(
        &s,
        &[
            "trust",
            "--fingerprint",
            "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ],
        3,
    );
    assert!(
        err.contains("does not offer a key with fingerprint"),
        "{err}"
    );
    // The fingerprint as ssh-keygen computes it from the host's key file.
    let fp = std::process::Command::new("ssh-keygen")
        .arg("-lf")
        .arg(s.dir.path().join("host_key.pub"))
        .output()
        .expect("ssh-keygen");
    let fp = String::from_utf8_lossy(&fp.stdout)
        .split_whitespace()
        .nth(1)
        .expect("fp")
        .to_string();
    std::fs::write(&kh, "other.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOHz+U0YtjINc54dZiJNclfmEFifF7RXCFlNlTbuZBji\n").expect("w");
    let err = fails(&s, &["trust", "--fingerprint", &fp], 0);
    assert!(err.contains(&fp), "{err}");
    let text = std::fs::read_to_string(&kh).expect("written");
    assert!(
        text.contains("other.example ssh-ed25519"),
        "other entries kept: {text}"
    );
    assert!(text.contains(&s.known_hosts_name()), "{text}");
    ok(&s, &["list"]);
    // Trusting again is a no-op.
    let err = fails(&s, &["trust", "--yes"], 0);
    assert!(err.contains("already trusted"), "{err}");
}

#[test]
fn a_changed_host_key_is_refused() {
    let s = Sim::start();
    let kh = s.fleet.join("vms/proxmox_known_hosts");
    std::fs::write(&kh, format!("{} {}\n", s.known_hosts_name(), s.vm_host_key)).expect("w");
    let err = fails(&s, &["list"], 3);
    assert!(err.contains("has CHANGED"), "{err}");
    assert!(
        err.contains("ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub"),
        "{err}"
    );
    assert!(s.calls().is_empty());
    let err = fails(&s, &["trust", "--yes"], 3);
    assert!(err.contains("differs from the one recorded"), "{err}");
    fails(&s, &["trust", "--yes", "--replace"], 0);
    ok(&s, &["list"]);
}

#[test]
fn timeouts_are_honoured() {
    let s = sim();
    s.update(|st| st["faults"]["slow"] = serde_json::json!({"qm status": 6}));
    // The op sleeps 6 s on the Proxmox side; the 1 s timeout must fire and
    // say so (asserted on what it reports, not on how long it took).
    let err = fails(&s, &["--timeout", "1", "status", "111"], 3);
    assert!(err.contains("did not finish within 1s"), "{err}");
    // Connect timeout: a port that accepts but never speaks SSH.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().expect("addr").port();
    let o = s
        .ops()
        .env("PROXMOX_SSH_PORT", port.to_string())
        .env("PROXMOX_CONNECT_TIMEOUT", "1")
        .args(["list"])
        .output()
        .expect("runs");
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("timed out"), "{}", stderr(&o));
}

#[test]
fn refused_auth_failed_and_dropped_connections_are_told_apart() {
    let s = sim();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("a")
        .port();
    let o = s
        .ops()
        .env("PROXMOX_SSH_PORT", closed.to_string())
        .args(["list"])
        .output()
        .expect("runs");
    assert_eq!(o.status.code(), Some(3));
    assert!(
        stderr(&o).contains("refused the SSH connection"),
        "{}",
        stderr(&o)
    );

    let o = s
        .ops()
        .env("PROXMOX_SSH_IDENTITY", s.dir.path().join("vm_host_key"))
        .args(["list"])
        .output()
        .expect("runs");
    assert_eq!(o.status.code(), Some(3));
    assert!(
        stderr(&o).contains("authentication failed"),
        "{}",
        stderr(&o)
    );

    s.update(|st| st["faults"]["drop"] = serde_json::json!(["qm list"]));
    let err = fails(&s, &["list"], 3);
    assert!(err.contains("dropped"), "{err}");
    s.update(|st| st["faults"]["drop"] = serde_json::json!([]));
    ok(&s, &["list"]);
}

#[test]
fn the_control_socket_folder_is_removed_and_the_master_exits() {
    let s = sim();
    let tmp = tempfile::tempdir().expect("tmp");
    let o = s
        .ops()
        .env("TMPDIR", tmp.path())
        .args(["list"])
        .output()
        .expect("runs");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let left: Vec<_> = std::fs::read_dir(tmp.path()).expect("read").collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    // No ssh master still running for that folder (it may take a moment to
    // exit after `ssh -O exit`: poll, under a generous deadline).
    let needle = tmp.path().to_string_lossy().into_owned();
    let masters = || -> Vec<String> {
        std::fs::read_dir("/proc")
            .expect("proc")
            .flatten()
            .filter_map(|p| std::fs::read(p.path().join("cmdline")).ok())
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .filter(|c| c.starts_with("ssh") && c.contains(&needle))
            .collect()
    };
    let start = Instant::now();
    while !masters().is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "still running: {:?}",
            masters()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn no_hosts_file_or_host_is_an_input_error() {
    let s = sim();
    std::fs::write(
        s.fleet.join("hosts.nix"),
        "{ web = { proxmox = { vmid = 111; }; }; }\n",
    )
    .expect("w");
    let err = fails(&s, &["list"], 2);
    assert!(err.contains("no Proxmox host is configured"), "{err}");
    let o = s
        .ops()
        .env("PROXMOX_HOST", "127.0.0.1")
        .args(["list", "--json"])
        .output()
        .expect("runs");
    assert_eq!(
        o.status.code(),
        Some(0),
        "PROXMOX_HOST overrides: {}",
        stderr(&o)
    );
}

#[test]
fn library_api_over_one_shared_connection() {
    use pve_fleet::remote::proxmox::Proxmox;
    let s = sim();
    let loaded = pve_fleet::fleet::load(&s.fleet.join("hosts.nix")).expect("loads");
    let mut settings =
        pve_fleet::remote::proxmox::Settings::from_loaded(&loaded).expect("settings");
    assert_eq!(settings.endpoint.host, "127.0.0.1");
    settings.endpoint.port = Some(s.port);
    settings.endpoint.identity = Some(s.client_key.clone());
    settings.endpoint.user = pvesim::user();
    settings.op_timeout = Some(Duration::from_secs(30));
    assert!(settings.readonly.contains(&104));
    let px = Proxmox::connect(settings).expect("connect");
    let st = px.status_current(111).expect("status/current");
    assert!(st.agent);
    assert_eq!(st.status, "running");
    assert_eq!(
        px.existing_vmids()
            .expect("ids")
            .into_iter()
            .collect::<Vec<_>>(),
        vec![100, 104, 105, 111, 112, 9000]
    );
    assert_eq!(px.next_vmid(&loaded.fleet).expect("next"), 102);
    assert_eq!(px.vm_name(112).expect("name"), "VM 112");
    assert_eq!(px.host_key(111).expect("key"), s.vm_host_key);
    let e = px.stop(104).expect_err("readonly");
    assert_eq!(e.exit_code(), 2);
    px.close();
}

#[test]
fn bad_settings_and_confirmations_are_input_errors() {
    let s = sim();
    for (var, val, want) in [
        ("PROXMOX_SSH_PORT", "22x", "PROXMOX_SSH_PORT"),
        ("PROXMOX_CONNECT_TIMEOUT", "soon", "PROXMOX_CONNECT_TIMEOUT"),
        ("PROXMOX_USER", "-oProxyCommand=x", "not a valid user name"),
    ] {
        let o = s.ops().env(var, val).args(["list"]).output().expect("runs");
        assert_eq!(o.status.code(), Some(2), "{var}");
        assert!(stderr(&o).contains(want), "{var}: {}", stderr(&o));
    }
    let err = fails(&s, &["trust", "--fingerprint", "MD5:aa:bb"], 2);
    assert!(err.contains("not a SHA256 fingerprint"), "{err}");
    // destroy with nothing typed (stdin closed): nothing happens.
    let o = s
        .ops()
        .args(["destroy", "112"])
        .write_stdin("")
        .output()
        .expect("runs");
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("destroy not confirmed"),
        "{}",
        stderr(&o)
    );
    assert!(s.state()["vms"]["112"].is_object());
    assert!(qm_calls(&s, "destroy").is_empty());
}

/// `kill -INT pid` reaches only proxmox-ops; a Ctrl-C at a terminal reaches
/// its whole process group, so the ssh running the op dies at the same
/// moment. Both must end in exit 130 with the connection closed (a race
/// here once made the op's failure win and exit 3).
#[test]
fn an_interrupted_op_closes_the_shared_connection_and_removes_its_folder() {
    for whole_group in [false, true] {
        interrupt_mid_op(whole_group);
    }
}

fn interrupt_mid_op(whole_group: bool) {
    use std::os::unix::process::CommandExt;
    let s = sim();
    s.update(|st| st["faults"]["slow"] = serde_json::json!({"qm status": 20}));
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut cmd = s.std_ops();
    cmd.env("TMPDIR", tmp.path())
        .args(["status", "111"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .process_group(0);
    let mut child = cmd.spawn().expect("spawn");
    // Wait until the control folder (and so the shared connection) exists.
    let start = Instant::now();
    while std::fs::read_dir(tmp.path()).expect("ls").next().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no control folder appeared"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // ... and the op has reached the Proxmox side (the simulator records a
    // call before it starts the slow part), so the signal lands mid-op.
    while qm_calls(&s, "status").is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the op never reached the Proxmox host"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let target = if whole_group {
        format!("-{}", child.id())
    } else {
        child.id().to_string()
    };
    let kill = std::process::Command::new("kill")
        .args(["-INT", "--", &target])
        .status()
        .expect("kill");
    assert!(kill.success());
    let status = child.wait().expect("wait");
    assert_eq!(
        status.code(),
        Some(130),
        "exit code of an interrupted op (whole group: {whole_group})"
    );
    let left: Vec<_> = std::fs::read_dir(tmp.path()).expect("ls").collect();
    assert!(left.is_empty(), "control folder left behind: {left:?}");
    // No ssh master for that folder is still running.
    let masters = std::process::Command::new("pgrep")
        .args(["-f", &tmp.path().display().to_string()])
        .output()
        .expect("pgrep");
    assert!(
        masters.stdout.is_empty(),
        "ssh master still running: {}",
        String::from_utf8_lossy(&masters.stdout)
    );
}
