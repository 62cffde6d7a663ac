//! `pve integrate` end to end: the built `pve` against the simulated Proxmox
//! host and a "VM" that is a real sshd on 127.0.0.2, over real SSH with
//! pinned host keys; nixos-rebuild, nixos-generate-config, tailscale and sops
//! are recording stand-ins, the Tailscale API a local HTTP stand-in (see
//! tests/it/support/integrate.rs).

use crate::support::integrate::*;
use crate::support::secrets;
use pve_fleet::keys::age::ssh_to_age;

fn hardware_sample() -> String {
    std::fs::read_to_string(
        crate::support::repo_root()
            .join("tests/integrate_support/hardware-configuration.sample.nix"),
    )
    .expect("sample")
}

fn read(w: &World, rel: &str) -> String {
    std::fs::read_to_string(fleet_path(w, rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The step names of `pve integrate --status`, each with its state word.
fn status(w: &World) -> String {
    let out = w
        .integrate(&["--status"])
        .arg("web")
        .output()
        .expect("runs");
    assert!(out.status.success(), "{:?}", text(&out));
    text(&out).0
}

fn status_of(w: &World, title: &str) -> String {
    let s = status(w);
    s.lines()
        .find(|l| l.contains(title))
        .unwrap_or_else(|| panic!("no line for {title} in\n{s}"))
        .to_string()
}

#[test]
fn a_full_run_integrates_the_vm_and_a_second_run_changes_nothing() {
    let w = World::new();
    let hosts_before = read(&w, "hosts.nix");
    let out = w.integrate(&["web"]).output().expect("runs");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");

    // Progress: eleven steps, all done.
    for (i, title) in [
        "Resolve the VM's IP address: 127.0.0.2 (from the guest agent of VM 111)",
        "Pin the VM's SSH host key",
        "Wait for SSH",
        "hardware-configuration.nix: wrote hosts/web/hardware-configuration.nix",
        "nixos-rebuild switch: switched web on 127.0.0.2",
        "Enroll in Tailscale: enrolled as web",
        "Verify the host key",
        "Write publicKey into hosts.nix",
        "Re-render .sops.yaml, known_hosts",
        "Re-key secrets (sops updatekeys): 2 of 2 secret files re-keyed",
        "Summary",
    ]
    .iter()
    .enumerate()
    {
        assert!(
            stderr.contains(&format!("[{}/11] ok {title}", i + 1)),
            "{title}\n{stderr}"
        );
    }
    assert!(stdout.contains("web is integrated"), "{stdout}");
    assert!(stdout.contains(
        "git add hosts.nix hosts/web/hardware-configuration.nix vms/known_hosts secrets"
    ));

    // hardware-configuration.nix: exactly what nixos-generate-config printed.
    assert_eq!(
        read(&w, "hosts/web/hardware-configuration.nix"),
        hardware_sample()
    );

    // hosts.nix: only the publicKey line is new; every other byte kept.
    let key = w.vm_key();
    let hosts_after = read(&w, "hosts.nix");
    let added: Vec<&str> = hosts_after
        .lines()
        .filter(|l| !hosts_before.lines().any(|b| b == *l))
        .collect();
    assert_eq!(
        added,
        [format!("    publicKey = \"{key}\";")],
        "{hosts_after}"
    );
    assert_eq!(
        hosts_after
            .lines()
            .filter(|l| !l.contains("publicKey"))
            .collect::<Vec<_>>(),
        hosts_before.lines().collect::<Vec<_>>()
    );

    // known_hosts and .sops.yaml as `pve render` makes them from the new hosts.nix.
    assert!(read(&w, "vms/known_hosts").contains(&format!("\nw1,web {key}\n")));
    let recipient = ssh_to_age(&key).expect("age recipient");
    assert!(read(&w, "secrets/.sops.yaml").contains(&recipient));
    let check = w
        .sim
        .pve()
        .args(["render", "--check"])
        .output()
        .expect("runs");
    assert!(check.status.success(), "render --check: {:?}", text(&check));

    // Every secret file now has the host among its recipients (sops stand-in,
    // real age stanzas).
    let common = read(&w, "secrets/common.yaml");
    let rs = secrets::yaml_recipients(&common);
    assert!(
        rs.contains(&recipient) && rs.contains(&w.admin.recipient),
        "{rs:?}"
    );
    assert!(read(&w, "secrets/db.env").contains(&recipient));
    let sops = w.log("sops");
    assert_eq!(sops.len(), 2, "{sops:?}");
    for call in &sops {
        let argv = call["argv"].as_array().expect("argv");
        assert_eq!(argv[0], "--config");
        assert_eq!(argv[2], "updatekeys");
        assert_eq!(argv[3], "--yes");
    }

    // nixos-rebuild: the flake in the fleet, the VM as target, ssh options
    // that pin the host key (and the stand-in really connected with them).
    let rebuild = w.log("nixos-rebuild");
    assert_eq!(rebuild.len(), 1);
    let user = current_user();
    assert_eq!(
        rebuild[0]["argv"],
        serde_json::json!([
            "switch",
            "--flake",
            ".#web",
            "--target-host",
            format!("{user}@127.0.0.2")
        ])
    );
    assert_eq!(
        rebuild[0]["cwd"].as_str().map(std::path::PathBuf::from),
        Some(w.fleet().canonicalize().expect("canon"))
    );
    let opts = rebuild[0]["NIX_SSHOPTS"].as_str().expect("opts");
    for o in [
        format!(
            "-o UserKnownHostsFile={}/vms/known_hosts",
            w.fleet().display()
        ),
        "-o StrictHostKeyChecking=yes".into(),
        "-o HostKeyAlias=web".into(),
    ] {
        assert!(opts.contains(&o), "{o} in {opts}");
    }
    let vm = w.vm_log();
    let progs: Vec<&str> = vm.iter().filter_map(|e| e["prog"].as_str()).collect();
    assert_eq!(
        progs,
        [
            "nixos-generate-config",
            "switch-to-configuration",
            "tailscale",
            "tailscale",
            "cat"
        ],
        "{vm:?}"
    );
    assert_eq!(vm[1]["argv"], serde_json::json!(["switch", "web"]));

    // Tailscale: the key minted through the API reached `tailscale up` through
    // a 0600 file, never a command line.
    let up = &vm[3];
    assert_eq!(up["key"], TS_KEY);
    assert_eq!(up["mode"], "0o600");
    assert_eq!(up["key_in_cmdline"], false);
    assert!(up["argv"]
        .as_array()
        .expect("argv")
        .contains(&serde_json::json!("--advertise-tags=tag:vm")));
    let seen = w.api.calls();
    assert_eq!(
        seen,
        [
            ("POST".to_string(), "/api/v2/oauth/token".to_string()),
            ("POST".to_string(), "/api/v2/tailnet/-/keys".to_string())
        ]
    );

    // The journal is gone; --status says so.
    assert!(!fleet_path(&w, "vms/.journal/integrate-web.json").exists());
    assert!(status(&w).contains("no unfinished `pve integrate web` run"));

    // Idempotent: a second run changes no file and mints no key.
    let before = w.snapshot();
    let out = w.integrate(&["web"]).output().expect("runs");
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("kept hosts/web/hardware-configuration.nix"),
        "{stderr}"
    );
    assert!(stderr.contains("already enrolled"), "{stderr}");
    assert!(
        stderr.contains("publicKey already holds this key"),
        "{stderr}"
    );
    assert!(stderr.contains("unchanged"), "{stderr}");
    assert_eq!(w.snapshot(), before, "a second run changed files");
    assert_eq!(w.api.seen.lock().expect("seen").len(), 2, "no second key");
}

#[test]
fn no_secret_reaches_any_argv_or_proc_cmdline() {
    let w = World::new();
    let out = w
        .integrate(&["web"])
        .env("PVE_LOG", "1")
        .output()
        .expect("runs");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    // The logged commands (PVE_LOG=1) and all output.
    assert!(stderr.contains("+ "), "commands were logged: {stderr}");
    let mut haystacks = vec![
        ("stdout".to_string(), stdout),
        ("stderr".to_string(), stderr),
    ];
    // Every argv the stand-ins recorded.
    for name in ["sops", "nixos-rebuild"] {
        for e in w.log(name) {
            haystacks.push((format!("{name} log"), e.to_string()));
        }
    }
    for e in w.vm_log() {
        haystacks.push(("VM-side argv".into(), e["argv"].to_string()));
    }
    // /proc/*/cmdline of every process, snapshotted while nixos-rebuild ran,
    // while tailscale up ran (the key in flight over ssh) and while the API
    // minted the key.
    let mut snapshots = 0;
    for dir in [w.logs.join("proc"), w.vm_dir.join("proc")] {
        for e in std::fs::read_dir(&dir).expect("snapshots").flatten() {
            snapshots += 1;
            haystacks.push((
                e.path().display().to_string(),
                std::fs::read_to_string(e.path()).expect("read"),
            ));
        }
    }
    assert!(snapshots >= 2, "nixos-rebuild and tailscale took snapshots");
    let api_snaps = w.api.proc_snapshots.lock().expect("snaps").clone();
    assert_eq!(api_snaps.len(), 2);
    for s in api_snaps {
        assert!(s.contains("integrate"), "the pve process was running");
        haystacks.push(("API-time snapshot".into(), s));
    }
    for (what, h) in &haystacks {
        for s in SECRETS {
            assert!(!h.contains(s), "{s} found in {what}");
        }
        assert!(!h.contains("AGE-SECRET-KEY"), "an age identity in {what}");
    }
    // The tailscale stand-in got the key, so the check above is not vacuous.
    assert!(w.vm_log().iter().any(|e| e["key"] == TS_KEY));
}

#[test]
fn the_ip_change_during_the_rebuild_is_followed_through_the_guest_agent() {
    let w = World::new();
    w.sim.update(|s| {
        s["vms"]["111"]["ip_after_reboot"] = serde_json::json!(VM_IP_AFTER);
    });
    let out = w
        .integrate(&["web", "--json"])
        .env("NIXOS_REBUILD_STANDIN_MOVE_IP", "111")
        .output()
        .expect("runs");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stderr.contains(
            "127.0.0.2 went away during the switch; the guest agent now reports 127.0.0.3"
        ),
        "{stderr}"
    );
    // --json: one object per line, a start and an end for each step.
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON event per line"))
        .collect();
    assert_eq!(events.len(), 22, "{stdout}");
    let rebuild = events
        .iter()
        .find(|e| e["step"] == "rebuild" && e["status"] == "done")
        .expect("rebuild done");
    assert_eq!(
        rebuild["detail"],
        "switched web (the address moved from 127.0.0.2 to 127.0.0.3)"
    );
    assert!(events
        .iter()
        .all(|e| e["workflow"] == "integrate" && e["host"] == "web" && e["total"] == 11));
    // The switch ran at the old address, then was confirmed at the new one;
    // every later step used the new one.
    let user = current_user();
    let targets: Vec<String> = w
        .log("nixos-rebuild")
        .iter()
        .map(|e| e["argv"][4].as_str().expect("target").to_string())
        .collect();
    assert_eq!(
        targets,
        [format!("{user}@127.0.0.2"), format!("{user}@127.0.0.3")]
    );
    let summary = events.last().expect("events");
    assert_eq!(summary["step"], "summary");
    assert_eq!(summary["detail"], "web integrated at 127.0.0.3");
    assert!(w
        .vm_log()
        .iter()
        .any(|e| e["prog"] == "tailscale" && e["key"] == TS_KEY));
}

#[test]
fn a_host_that_presents_another_key_than_the_agent_gave_is_refused() {
    let w = World::new();
    // The guest agent (authenticated channel) says the VM's key is K; the
    // SSH server at the address presents another: someone else answers.
    let other = w.sim.dir.path().join("other_key");
    let st = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .status()
        .expect("ssh-keygen");
    assert!(st.success());
    let other_pub = std::fs::read_to_string(other.with_extension("pub")).expect("pub");
    w.sim.update(|s| {
        s["vms"]["111"]["hostkey"] = serde_json::json!(other_pub.trim());
    });
    let hosts_before = read(&w, "hosts.nix");
    // A fingerprint confirmed by hand must match what the agent read.
    let fp =
        pve_fleet::remote::ssh::fingerprint(other_pub.split_whitespace().nth(1).expect("blob"))
            .expect("fp");
    let mine =
        pve_fleet::remote::ssh::fingerprint(w.vm_key().split_whitespace().nth(1).expect("blob"))
            .expect("fp");
    let out = w
        .integrate(&["web", "--accept-host-key", &mine])
        .output()
        .expect("runs");
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "reports the host key {fp}, not the {mine} you accepted"
        )),
        "{stderr}"
    );
    let out = w.integrate(&["web", "--resume"]).output().expect("runs");
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("does not present the host key pinned for web"),
        "{stderr}"
    );
    assert!(stderr.contains("refusing to connect"), "{stderr}");
    assert!(status_of(&w, "Wait for SSH").contains("FAILED"));
    assert_eq!(read(&w, "hosts.nix"), hosts_before);
    assert!(w.log("nixos-rebuild").is_empty(), "nothing ran on the VM");
    assert!(w.vm_log().is_empty(), "nothing ran on the VM");
}

#[test]
fn a_host_key_file_that_differs_from_the_pinned_key_is_refused() {
    let w = World::new();
    // The SSH server presents the pinned key, but the VM's
    // /etc/ssh/ssh_host_ed25519_key.pub (what sops-nix derives its age key
    // from) holds another one.
    let other = w.sim.dir.path().join("other_key");
    let st = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .status()
        .expect("ssh-keygen");
    assert!(st.success());
    std::fs::copy(
        other.with_extension("pub"),
        w.vm_dir.join("etc_ssh_host_ed25519_key.pub"),
    )
    .expect("copy");
    // The address comes from `tofu output` this time (an initialised
    // OpenTofu folder whose state has the output; the tofu stand-in).
    let state_dir = fleet_path(&w, "vms/tofu/.state");
    std::fs::create_dir_all(state_dir.join(".terraform")).expect("mkdir");
    std::fs::write(state_dir.join(".pve-init.json"), "{}\n").expect("marker");
    std::fs::write(
        state_dir.join("terraform.tfstate"),
        serde_json::json!({"version": 4, "serial": 3, "lineage": "l-1", "resources": [],
            "outputs": {"web_ip": {"value": VM_IP, "type": "string", "sensitive": false}}})
        .to_string(),
    )
    .expect("state");
    let tofu_log = w.logs.join("tofu.jsonl");
    let hosts_before = read(&w, "hosts.nix");
    let sops_before = read(&w, "secrets/.sops.yaml");
    let out = w
        .integrate(&["web"])
        .env("PVE_TOOL_TOFU", crate::support::stand_in("tofu"))
        .env("TOFU_STANDIN_LOG", &tofu_log)
        .output()
        .expect("runs");
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("127.0.0.2 (from `tofu output`)"),
        "{stderr}"
    );
    let tofu = read_jsonl(&tofu_log);
    assert_eq!(tofu.len(), 1);
    assert_eq!(
        tofu[0]["argv"],
        serde_json::json!(["output", "-no-color", "-json", "web_ip"])
    );
    assert!(
        stderr.contains("is not the key pinned at first contact")
            || stderr.contains("not the key pinned at first contact"),
        "{stderr}"
    );
    assert!(
        stderr.contains("refusing to write it into hosts.nix"),
        "{stderr}"
    );
    assert!(status_of(&w, "Verify the host key").contains("FAILED"));
    assert_eq!(read(&w, "hosts.nix"), hosts_before, "no publicKey written");
    assert_eq!(read(&w, "secrets/.sops.yaml"), sops_before);
    assert!(w.log("sops").is_empty());
}

#[test]
fn without_the_guest_agent_the_fingerprint_must_be_confirmed() {
    let w = World::new();
    w.sim.update(|s| {
        s["vms"]["111"]["agent_running"] = serde_json::json!(false);
    });
    // The fingerprint as ssh-keygen (the real one) prints it.
    let fp_out = std::process::Command::new("ssh-keygen")
        .arg("-lf")
        .arg(w.sim.dir.path().join("vm_host_key.pub"))
        .output()
        .expect("ssh-keygen");
    let fp = String::from_utf8_lossy(&fp_out.stdout)
        .split_whitespace()
        .nth(1)
        .expect("fingerprint")
        .to_string();
    let kh_before = read(&w, "vms/known_hosts");

    let out = w.integrate(&["web", VM_IP]).output().expect("runs");
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("which nobody has confirmed"), "{stderr}");
    assert!(
        stderr.contains(&format!("--accept-host-key {fp}")),
        "{stderr}"
    );
    assert_eq!(read(&w, "vms/known_hosts"), kh_before, "nothing trusted");
    std::fs::remove_file(fleet_path(&w, "vms/.journal/integrate-web.json")).expect("journal");

    let wrong = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let out = w
        .integrate(&["web", VM_IP, "--accept-host-key", wrong])
        .output()
        .expect("runs");
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "shows the host key {fp}, not the {wrong} you accepted"
        )),
        "{stderr}"
    );
    assert_eq!(read(&w, "vms/known_hosts"), kh_before, "nothing trusted");

    let out = w
        .integrate(&[
            "web",
            VM_IP,
            "--resume",
            "--accept-host-key",
            &fp,
            "--skip-tailscale",
        ])
        .output()
        .expect("runs");
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("(confirmed by you)"), "{stderr}");
    assert!(
        stderr.contains("Enroll in Tailscale: skipped (--skip-tailscale)"),
        "{stderr}"
    );
    assert!(read(&w, "hosts.nix").contains(&w.vm_key()));
}

#[test]
fn bad_arguments_are_named_and_change_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("hosts.nix"), hosts_nix("age1qqq")).expect("write");
    let pve = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_pve"))
            .current_dir(dir.path())
            .env_remove("PVE_HOSTS")
            .arg("integrate")
            .args(args)
            .output()
            .expect("runs")
    };
    let o = pve(&["weeb"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).1.contains("there is no host `weeb`"),
        "{:?}",
        text(&o)
    );
    assert!(text(&o).1.contains("did you mean `web`?"));
    let o = pve(&["web", "not-an-ip"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o)
        .1
        .contains("`not-an-ip` is neither an IP address nor a VMID"));
    let o = pve(&["web", "10.0.0.1", "42"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("`42` is not a VMID"), "{:?}", text(&o));
    let o = pve(&["Bad_Name"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!dir.path().join("vms").exists(), "no journal written");
}
