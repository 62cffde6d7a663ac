//! Issue 11, item 2 and the Proxmox side of item 3: `proxmox-ops trust`
//! records exactly the key the user confirmed, connections pin
//! `HostKeyAlgorithms` to the recorded types, and the Proxmox connection
//! never accepts a VM's key. Real sshd on 127.0.0.1 (the simulated Proxmox
//! host) with several host key types, real ssh-keyscan and ssh.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::pvesim::Sim;

fn keygen(path: &std::path::Path, kind: &str) {
    let st = Command::new("ssh-keygen")
        .args(["-q", "-N", "", "-t", kind, "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen");
    assert!(st.success());
}

fn fingerprint(pubfile: &std::path::Path) -> String {
    let out = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(pubfile)
        .output()
        .expect("ssh-keygen");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .expect("fingerprint")
        .to_string()
}

/// The sim's sshd serves exactly `keys` (file names in its folder) after a
/// SIGHUP; waits until ssh-keyscan sees that set of types.
fn serve_host_keys(s: &Sim, keys: &[&str], types: &[&str]) {
    let d = s.dir.path();
    let cfg = d.join("sshd_config");
    let text = std::fs::read_to_string(&cfg).expect("sshd_config");
    let mut out: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with("HostKey "))
        .map(str::to_string)
        .collect();
    for k in keys {
        out.push(format!("HostKey {}", d.join(k).display()));
    }
    std::fs::write(&cfg, out.join("\n") + "\n").expect("write");
    let pid = std::fs::read_to_string(d.join("sshd.pid")).expect("pid");
    let st = Command::new("kill")
        .args(["-HUP", pid.trim()])
        .status()
        .expect("kill");
    assert!(st.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let scan = Command::new("ssh-keyscan")
            .args([
                "-T",
                "2",
                "-p",
                &s.port.to_string(),
                "-t",
                "ed25519,ecdsa,rsa",
            ])
            .arg("127.0.0.1")
            .output()
            .expect("ssh-keyscan");
        let text = String::from_utf8_lossy(&scan.stdout);
        let mut got: Vec<&str> = text
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .collect();
        got.sort();
        let mut want = types.to_vec();
        want.sort();
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "sshd serves {got:?}, not {want:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn run(s: &Sim, args: &[&str]) -> std::process::Output {
    s.ops().args(args).output().expect("proxmox-ops runs")
}

#[test]
fn trust_records_only_the_confirmed_key_and_an_rsa_impostor_is_refused() {
    let s = Sim::start();
    let d = s.dir.path();
    // An on-path attacker answers ssh-keyscan's RSA connection with its own
    // key while passing ed25519 through: here the server offers both.
    keygen(&d.join("attacker_rsa"), "rsa");
    serve_host_keys(
        &s,
        &["host_key", "attacker_rsa"],
        &["ssh-ed25519", "ssh-rsa"],
    );
    let fp = fingerprint(&d.join("host_key.pub"));
    let out = run(&s, &["trust", "--fingerprint", &fp]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let kh = s.fleet.join("vms/proxmox_known_hosts");
    let text = std::fs::read_to_string(&kh).expect("recorded");
    let host_key: Vec<&str> = s.host_pub.split_whitespace().take(2).collect();
    assert_eq!(
        text,
        format!("{} {}\n", s.known_hosts_name(), host_key.join(" ")),
        "exactly the confirmed key"
    );
    assert_eq!(run(&s, &["list"]).status.code(), Some(0));
    // Later an impostor offers only the attacker's RSA key: refused before
    // any command runs.
    serve_host_keys(&s, &["attacker_rsa"], &["ssh-rsa"]);
    let calls = s.calls().len();
    let out = run(&s, &["list"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(s.calls().len(), calls, "nothing ran on the impostor");
    assert_eq!(std::fs::read_to_string(&kh).expect("kept"), text);
}

#[test]
fn trust_yes_without_a_fingerprint_records_the_ed25519_key_only() {
    let s = Sim::start();
    let d = s.dir.path();
    keygen(&d.join("other_ecdsa"), "ecdsa");
    serve_host_keys(
        &s,
        &["host_key", "other_ecdsa"],
        &["ssh-ed25519", "ecdsa-sha2-nistp256"],
    );
    let out = run(&s, &["trust", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = std::fs::read_to_string(s.fleet.join("vms/proxmox_known_hosts")).expect("read");
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains(" ssh-ed25519 "), "{text}");
    // Confirming the ECDSA fingerprint records that key alone.
    let fp = fingerprint(&d.join("other_ecdsa.pub"));
    let out = run(&s, &["trust", "--fingerprint", &fp, "--replace"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = std::fs::read_to_string(s.fleet.join("vms/proxmox_known_hosts")).expect("read");
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains(" ecdsa-sha2-nistp256 "), "{text}");
}

#[test]
fn a_vm_key_under_the_proxmox_address_does_not_vouch_for_proxmox() {
    let s = Sim::start();
    // Nothing pinned for Proxmox; vms/known_hosts holds the Proxmox host's
    // key under its address (a VM aliased `127.0.0.1` whose publicKey is
    // that key).
    let key: Vec<&str> = s.host_pub.split_whitespace().take(2).collect();
    std::fs::write(
        s.fleet.join("vms/known_hosts"),
        format!("{},127.0.0.1 {}\n", s.known_hosts_name(), key.join(" ")),
    )
    .expect("write");
    let out = run(&s, &["list"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("proxmox-ops trust"),
        "{out:?}"
    );
    assert!(s.calls().is_empty());
}
