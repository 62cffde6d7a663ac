//! `pve integrate` stopped at each of its steps in turn (a failure injected
//! into the simulated Proxmox host, the VM-side stand-ins, nixos-rebuild,
//! sops, or the fleet's files), then continued with `--resume`: each run
//! starts at the step that failed, never repeats a finished one, and the
//! last one leaves the same result as an uninterrupted run. Also a run
//! killed (SIGKILL) in the middle of a step.

use crate::support::terminal;
use std::os::unix::fs::PermissionsExt as _;
use std::time::{Duration, Instant};

use crate::support::integrate::*;

/// Runs `pve integrate web --resume` (plus `extra`) expecting it to stop
/// at step `n` (1-based) with `code`; checks `--status` says so.
fn stops_at(w: &World, cmd: &mut assert_cmd::Command, n: usize, code: i32, says: &str) {
    let out = cmd.output().expect("runs");
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(code), "step {n}: {stderr}");
    assert!(
        stderr.contains(says),
        "step {n}: expected `{says}` in\n{stderr}"
    );
    assert!(
        stderr.contains("after fixing it: `pve integrate web --resume`"),
        "{stderr}"
    );
    let st = w
        .integrate(&["--status", "web"])
        .output()
        .expect("status runs");
    let st = text(&st).0;
    let lines: Vec<&str> = st.lines().collect();
    for (i, l) in lines.iter().take(11).enumerate() {
        let want = match (i + 1).cmp(&n) {
            std::cmp::Ordering::Less => "done",
            std::cmp::Ordering::Equal => "FAILED",
            std::cmp::Ordering::Greater => "pending",
        };
        assert!(l.contains(want), "step {n}, line {}: {l}\n{st}", i + 1);
    }
}

#[test]
fn each_step_fails_then_resumes_there() {
    let w = World::new();
    let resume = |env: &[(&str, &str)]| {
        let mut c = w.integrate(&["web", "--resume"]);
        c.env("PVE_VM_SSH_WAIT", "2");
        for (k, v) in env {
            c.env(k, v);
        }
        c
    };

    // 1. resolve IP: no guest agent and no neighbour entry.
    w.sim.update(|s| {
        s["vms"]["111"]["agent_running"] = serde_json::json!(false);
        s["neighbours"] = serde_json::json!([]);
    });
    stops_at(&w, &mut resume(&[]), 1, 3, "no IP address found for VM 111");
    let out = w.integrate(&["web"]).output().expect("runs");
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unfinished run is not restarted silently"
    );
    assert!(text(&out)
        .1
        .contains("stopped at step 1 (Resolve the VM's IP address)"));

    // 2. pin host key: the agent still cannot read the key (IP given this
    // time), and nobody confirmed a fingerprint.
    let mut c = resume(&[]);
    c.arg(VM_IP);
    stops_at(&w, &mut c, 2, 2, "which nobody has confirmed");
    w.sim.update(|s| {
        s["vms"]["111"]["agent_running"] = serde_json::json!(true);
        s["vms"]["111"]["ips"] = serde_json::json!([VM_IP]);
    });

    // 3. wait for SSH: the VM does not take our key.
    let stranger = w.sim.dir.path().join("stranger");
    let st = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&stranger)
        .status()
        .expect("ssh-keygen");
    assert!(st.success());
    stops_at(
        &w,
        &mut resume(&[("PVE_VM_SSH_IDENTITY", stranger.to_str().expect("utf8"))]),
        3,
        3,
        "did not accept our SSH key",
    );

    // 4. hardware-configuration.nix: nixos-generate-config fails.
    w.vm_fail("nixos-generate-config", true);
    stops_at(&w, &mut resume(&[]), 4, 3, "Couldn't open /proc/mounts");
    w.vm_fail("nixos-generate-config", false);

    // 5. rebuild: the build fails.
    stops_at(
        &w,
        &mut resume(&[("NIXOS_REBUILD_STANDIN_FAIL", "1")]),
        5,
        3,
        "nixos-rebuild switch failed",
    );

    // 6. Tailscale: not installed on the VM; then no OAuth client
    // configured; then `tailscale up` fails on the VM.
    w.vm_fail("tailscale-missing", true);
    stops_at(
        &w,
        &mut resume(&[]),
        6,
        3,
        "tailscale is not installed on web",
    );
    w.vm_fail("tailscale-missing", false);
    let mut c = resume(&[]);
    c.env_remove("TS_OAUTH_CLIENT_ID")
        .env_remove("TS_OAUTH_CLIENT_SECRET");
    stops_at(&w, &mut c, 6, 2, "no Tailscale OAuth client is configured");
    assert!(
        w.api.seen.lock().expect("seen").is_empty(),
        "no API call without credentials"
    );
    w.vm_fail("tailscale", true);
    stops_at(&w, &mut resume(&[]), 6, 3, "invalid key");
    w.vm_fail("tailscale", false);

    // 7. verify the host key: the file cannot be read.
    w.vm_fail("cat", true);
    stops_at(&w, &mut resume(&[]), 7, 3, "Permission denied");
    w.vm_fail("cat", false);

    // 8. publicKey: hosts.nix is read-only.
    let hosts = fleet_path(&w, "hosts.nix");
    let before = std::fs::read_to_string(&hosts).expect("read");
    std::fs::set_permissions(&hosts, std::fs::Permissions::from_mode(0o444)).expect("chmod");
    stops_at(&w, &mut resume(&[]), 8, 2, "read-only");
    assert_eq!(std::fs::read_to_string(&hosts).expect("read"), before);
    std::fs::set_permissions(&hosts, std::fs::Permissions::from_mode(0o644)).expect("chmod");

    // 9. render: .sops.yaml is read-only.
    let sops_yaml = fleet_path(&w, "secrets/.sops.yaml");
    std::fs::set_permissions(&sops_yaml, std::fs::Permissions::from_mode(0o444)).expect("chmod");
    stops_at(&w, &mut resume(&[]), 9, 2, "read-only");
    std::fs::set_permissions(&sops_yaml, std::fs::Permissions::from_mode(0o644)).expect("chmod");

    // 10. re-key: sops cannot get db.env's data key; common.yaml is done.
    let fail_list = w.sim.dir.path().join("sops-fail");
    std::fs::write(&fail_list, "db.env\n").expect("write");
    let out = resume(&[("SOPS_STANDIN_FAIL", fail_list.to_str().expect("utf8"))])
        .output()
        .expect("runs");
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("1 of 2 secret files re-keyed"), "{stderr}");
    assert!(stderr.contains("ok      secrets/common.yaml"), "{stderr}");
    assert!(stderr.contains("FAILED  secrets/db.env"), "{stderr}");
    assert!(stderr.contains("exit 128"), "{stderr}");

    // Finally it goes through.
    let out = resume(&[]).output().expect("runs");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("web is integrated"));
    for i in 1..=9 {
        assert!(
            stderr.contains(&format!("[{i}/11] -- ")),
            "step {i} skipped: {stderr}"
        );
    }
    assert!(stderr.contains("[10/11] ok"), "{stderr}");
    assert!(!fleet_path(&w, "vms/.journal/integrate-web.json").exists());

    // No finished step ran twice: one hardware config, one successful
    // switch, one successful enrollment.
    let vm = w.vm_log();
    let count = |p: &str| vm.iter().filter(|e| e["prog"] == p).count();
    assert_eq!(count("nixos-generate-config"), 2, "failed once, then once");
    assert_eq!(count("switch-to-configuration"), 1);
    assert_eq!(w.log("nixos-rebuild").len(), 2, "failed once, then once");
    assert_eq!(
        vm.iter()
            .filter(|e| e["prog"] == "tailscale" && e["argv"][0] == "up")
            .count(),
        2,
        "failed once, then once"
    );
    // Same result as an uninterrupted run.
    let key = w.vm_key();
    assert!(std::fs::read_to_string(&hosts)
        .expect("read")
        .contains(&format!("publicKey = \"{key}\"")));
    let common = std::fs::read_to_string(fleet_path(&w, "secrets/db.env")).expect("read");
    assert!(common.contains(&pve_fleet::keys::age::ssh_to_age(&key).expect("age")));
}

/// Starts `pve integrate web` and returns once it hangs in the switch on
/// the VM (it stays there while the returned file exists).
fn run_hanging_in_the_switch(w: &World) -> (std::process::Child, std::path::PathBuf) {
    let hang = w.vm_dir.join("hang");
    std::fs::write(&hang, "").expect("write");
    let child = w
        .integrate_std(&["web"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("pve starts");
    let start = Instant::now();
    while !w
        .vm_log()
        .iter()
        .any(|e| e["prog"] == "switch-to-configuration")
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the switch never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, hang)
}

#[test]
fn a_run_killed_mid_step_resumes_at_that_step() {
    let w = World::new();
    // The switch on the VM hangs; the run is killed (SIGKILL) meanwhile.
    let (mut child, hang) = run_hanging_in_the_switch(&w);
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    std::fs::remove_file(&hang).expect("rm");

    // The journal has steps 1-4; the killed step left no record.
    let st = text(&w.integrate(&["--status", "web"]).output().expect("status")).0;
    let lines: Vec<&str> = st.lines().collect();
    for l in &lines[..4] {
        assert!(l.contains("done"), "{st}");
    }
    assert!(
        lines[4].contains("nixos-rebuild switch") && lines[4].contains("pending"),
        "{st}"
    );

    let out = w.integrate(&["web", "--resume"]).output().expect("runs");
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    for i in 1..=4 {
        assert!(stderr.contains(&format!("[{i}/11] -- ")), "{stderr}");
    }
    assert!(
        stderr.contains("[5/11] ok nixos-rebuild switch: switched web"),
        "{stderr}"
    );
    let gen = w
        .vm_log()
        .iter()
        .filter(|e| e["prog"] == "nixos-generate-config")
        .count();
    assert_eq!(gen, 1, "step 4 was not repeated");
}

#[test]
fn a_second_run_for_the_same_host_is_refused_while_the_first_runs() {
    let w = World::new();
    // The first run hangs in the switch on the VM.
    let (mut first, hang) = run_hanging_in_the_switch(&w);
    let before = w.snapshot();
    let log_before = w.vm_log().len();

    let out = w.integrate(&["web", "--resume"]).output().expect("runs");
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("another `pve integrate` for `web` is running"),
        "{stderr}"
    );
    assert!(
        stderr.contains("`pve integrate web --resume` continues it"),
        "{stderr}"
    );
    assert_eq!(w.snapshot(), before, "the refused run changed the fleet");
    assert_eq!(
        w.vm_log().len(),
        log_before,
        "the refused run reached the VM"
    );

    // Once the first run is gone (killed here), the host can be resumed.
    first.kill().expect("SIGKILL");
    let _ = first.wait();
    std::fs::remove_file(&hang).expect("rm");
    let out = w.integrate(&["web", "--resume"]).output().expect("runs");
    assert!(out.status.success(), "{}", text(&out).1);
}

/// `pve integrate` on a pseudo-terminal (`script`), typing `answer` once
/// the host-key question is on the screen. Returns the exit status and the
/// screen.
fn integrate_on_a_terminal(w: &World, args: &[&str], answer: &str) -> terminal::Finished {
    let std = w.integrate_std(args);
    let mut argv = vec![std.get_program().to_string_lossy().into_owned()];
    argv.extend(std.get_args().map(|a| a.to_string_lossy().into_owned()));
    let mut term = terminal::Terminal::spawn(&pve_fleet::shell::join(&argv), |cmd| {
        w.pve_env(cmd);
    });
    term.answer("Type yes to trust it", answer);
    term.finish()
}

/// With no guest agent to read the VM's key, a person at a terminal is
/// shown the fingerprint the SSH server offers and must type `yes`;
/// anything else trusts nothing.
#[test]
fn on_a_terminal_an_unverified_host_key_needs_a_typed_yes() {
    let w = World::new();
    w.sim.update(|s| {
        s["vms"]["111"]["agent_running"] = serde_json::json!(false);
    });
    let pinned = || {
        std::fs::read_to_string(fleet_path(&w, "vms/known_hosts"))
            .unwrap_or_default()
            .contains(&w.vm_key())
    };
    let o = integrate_on_a_terminal(&w, &["web", VM_IP], "no");
    let screen = o.screen;
    assert_eq!(o.status.code(), Some(2), "{screen}");
    // The fingerprint as OpenSSH itself prints it.
    let keyfile = w.sim.dir.path().join("vm_key.pub");
    std::fs::write(&keyfile, format!("{}\n", w.vm_key())).expect("write");
    let lf = std::process::Command::new("ssh-keygen")
        .arg("-lf")
        .arg(&keyfile)
        .output()
        .expect("ssh-keygen");
    let fp = String::from_utf8_lossy(&lf.stdout)
        .split_whitespace()
        .nth(1)
        .expect("fingerprint")
        .to_string();
    assert!(fp.starts_with("SHA256:"), "{fp}");
    assert!(screen.contains(&fp), "the fingerprint is shown: {screen}");
    assert!(screen.contains("Type yes to trust it"), "{screen}");
    assert!(screen.contains("nothing was trusted"), "{screen}");
    assert!(!pinned(), "a key was pinned without a yes");

    let o = integrate_on_a_terminal(&w, &["web", VM_IP, "--resume"], "yes");
    let screen = o.screen;
    assert!(
        screen.contains("[2/11] ok"),
        "the key step passed: {screen}"
    );
    assert!(pinned(), "the confirmed key is pinned: {screen}");
}
