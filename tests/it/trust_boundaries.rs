//! Issue 11: attacks on what pve trusts, each reproduced against the built
//! `pve` and shown refused (exit code, a message naming the conflict, no
//! file changed). The world of tests/it/support/integrate.rs: the simulated
//! Proxmox host over real sshd on 127.0.0.1, the VM a real sshd on
//! 127.0.0.2, recording stand-ins for nixos-rebuild, the VM's programs and
//! sops.

use crate::support::integrate::*;
use crate::support::out as text_of;

/// hosts.nix of the world plus `extra` host entries before the last `}`.
fn with_hosts(w: &World, extra: &str) {
    let p = fleet_path(w, "hosts.nix");
    let text = std::fs::read_to_string(&p).expect("hosts.nix");
    let cut = text.rfind('}').expect("closing brace");
    std::fs::write(&p, format!("{}{extra}\n}}\n", &text[..cut])).expect("write");
    let out = w.sim.pve().arg("render").output().expect("render runs");
    assert!(out.status.success(), "{:?}", text_of(&out));
}

fn vm_untouched(w: &World) {
    assert!(w.vm_log().is_empty(), "{:?}", w.vm_log());
    assert!(w.log("nixos-rebuild").is_empty());
}

#[test]
fn a_vm_handing_out_another_hosts_key_is_not_pinned_under_its_name() {
    let w = World::new();
    // `db` is an integrated host whose key the VM's guest agent now reports
    // as its own (the simulated agent hands out the VM key file).
    with_hosts(
        &w,
        &format!(
            "  db = {{ hostname = \"db\"; publicKey = \"{}\"; }};",
            w.vm_key()
        ),
    );
    let before = w.snapshot();
    let out = w.integrate(&["web"]).output().expect("runs");
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("[2/11] !!"), "{stderr}");
    assert!(
        stderr.contains("offered for `web`") && stderr.contains("already belongs to `db`"),
        "{stderr}"
    );
    assert_eq!(w.snapshot(), before, "no file changed");
    vm_untouched(&w);
}

#[test]
fn a_key_pinned_for_another_name_in_known_hosts_is_not_pinned_again() {
    let w = World::new();
    let kh = fleet_path(&w, "vms/known_hosts");
    let mut text = std::fs::read_to_string(&kh).expect("known_hosts");
    text.push_str(&format!("db,db.lan {}\n", w.vm_key()));
    std::fs::write(&kh, &text).expect("write");
    let before = w.snapshot();
    let out = w.integrate(&["web"]).output().expect("runs");
    let (_, stderr) = self::text(&out);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("already belongs to `db,db.lan`"),
        "{stderr}"
    );
    assert_eq!(w.snapshot(), before, "no file changed");
    vm_untouched(&w);
}

#[test]
fn an_agent_reporting_the_proxmox_hosts_own_address_is_not_followed() {
    let w = World::new();
    // The Proxmox host is 127.0.0.1: the loopback address of the machine
    // pve runs on, and the hypervisor's own address.
    w.sim
        .update(|s| s["vms"]["111"]["ips"] = serde_json::json!(["127.0.0.1", "169.254.3.4"]));
    w.sim.update(|s| s["neighbours"] = serde_json::json!([]));
    let before = w.snapshot();
    let out = w.integrate(&["web"]).output().expect("runs");
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("[1/11] !!"), "{stderr}");
    assert!(
        stderr.contains("no IP address found for VM 111"),
        "{stderr}"
    );
    assert_eq!(w.snapshot(), before, "no file changed");
    vm_untouched(&w);
}

#[test]
fn a_hostname_carrying_ssh_options_stops_a_resumed_run_before_any_step() {
    let w = World::new();
    // A first run stops at step 4 (nixos-generate-config fails).
    w.vm_fail("nixos-generate-config", true);
    let out = w.integrate(&["web"]).output().expect("runs");
    assert_eq!(out.status.code(), Some(3), "{:?}", text(&out));
    w.vm_fail("nixos-generate-config", false);
    let calls = w.vm_log().len();
    // Then hosts.nix is edited: the hostname smuggles a ProxyCommand into
    // NIX_SSHOPTS, which nixos-rebuild splits into ssh arguments.
    let marker = w.sim.dir.path().join("pwned");
    let p = fleet_path(&w, "hosts.nix");
    let hosts = std::fs::read_to_string(&p).expect("read").replace(
        "hostname = \"web\";",
        &format!(
            "hostname = \"web -oProxyCommand=touch\\${{IFS}}{}\";",
            marker.display()
        ),
    );
    std::fs::write(&p, &hosts).expect("write");
    let before = w.snapshot();
    let out = w.integrate(&["web", "--resume"]).output().expect("runs");
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("is not a DNS label"), "{stderr}");
    assert!(stderr.contains("hosts.nix:"), "names the place: {stderr}");
    assert!(!stderr.contains("[4/11]"), "no step ran: {stderr}");
    assert_eq!(w.snapshot(), before, "no file changed");
    assert_eq!(w.vm_log().len(), calls, "nothing more ran on the VM");
    assert!(w.log("nixos-rebuild").is_empty());
    assert!(!marker.exists());
}

#[test]
fn a_readonly_vm_is_not_integrated() {
    let w = World::new();
    let p = fleet_path(&w, "hosts.nix");
    let hosts = std::fs::read_to_string(&p).expect("read").replace(
        "proxmox = { vmid = 111;",
        "proxmox = { readonly = true; vmid = 111;",
    );
    std::fs::write(&p, &hosts).expect("write");
    let before = w.snapshot();
    let calls = w.sim.calls().len();
    let out = w.integrate(&["web"]).output().expect("runs");
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("`web` is a readonly VM; refusing to integrate it"),
        "{stderr}"
    );
    assert_eq!(w.snapshot(), before, "no file changed");
    assert_eq!(w.sim.calls().len(), calls, "Proxmox was not asked");
    vm_untouched(&w);
    // PROXMOX_READONLY_VMIDS works the same way.
    std::fs::write(&p, hosts.replace("readonly = true; ", "")).expect("write");
    let out = w
        .integrate(&["web"])
        .env("PROXMOX_READONLY_VMIDS", "104,111")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2), "{:?}", text(&out));
    vm_untouched(&w);
}

fn pve_in(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_pve"))
        .current_dir(dir)
        .env_remove("PVE_HOSTS")
        .args(args)
        .output()
        .expect("pve runs")
}

#[test]
fn remove_of_a_host_named_dotdot_deletes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fleet = dir.path().join("fleet");
    std::fs::create_dir_all(fleet.join("hosts/web")).expect("mkdir");
    std::fs::write(fleet.join("hosts/web/configuration.nix"), "{ }\n").expect("write");
    let hosts = "{\n  \"..\" = { hostname = \"dots\"; };\n  web = { hostname = \"web\"; };\n}\n";
    std::fs::write(fleet.join("hosts.nix"), hosts).expect("write");
    for args in [
        &["remove", "..", "--yes"][..],
        &["remove", "../fleet", "--yes"],
    ] {
        let out = pve_in(&fleet, args);
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("is not a valid VM name"), "{stderr}");
    }
    assert_eq!(
        std::fs::read_to_string(fleet.join("hosts.nix")).expect("read"),
        hosts
    );
    assert!(fleet.join("hosts/web/configuration.nix").is_file());
    // Removing a well-named host of that fleet is refused too: hosts.nix
    // does not pass `pve check`.
    let out = pve_in(&fleet, &["remove", "web", "--yes"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("is not a DNS label"), "{stderr}");
    assert!(stderr.contains("pve check"), "{stderr}");
    assert!(fleet.join("hosts/web/configuration.nix").is_file());
}

#[test]
fn remove_never_follows_a_host_folder_symlink_out_of_the_fleet() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fleet = dir.path().join("fleet");
    let outside = dir.path().join("precious");
    std::fs::create_dir_all(&outside).expect("mkdir");
    std::fs::write(outside.join("data"), "keep me\n").expect("write");
    std::fs::create_dir_all(fleet.join("hosts")).expect("mkdir");
    std::os::unix::fs::symlink(&outside, fleet.join("hosts/web")).expect("symlink");
    let hosts = "{\n  web = { hostname = \"web\"; };\n}\n";
    std::fs::write(fleet.join("hosts.nix"), hosts).expect("write");
    let out = pve_in(&fleet, &["remove", "web", "--yes"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("refusing to remove"), "{stderr}");
    assert!(stderr.contains("not a plain folder"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(outside.join("data")).expect("kept"),
        "keep me\n"
    );
    assert_eq!(
        std::fs::read_to_string(fleet.join("hosts.nix")).expect("read"),
        hosts,
        "the entry stays: the step before it failed"
    );
}

#[test]
fn a_hardware_configuration_that_reads_files_is_not_written() {
    let w = World::new();
    std::fs::write(
        w.vm_dir.join("hardware-configuration.nix"),
        "{ ... }: {\n  users.users.root.openssh.authorizedKeys.keys = [ (builtins.readFile /home/admin/.ssh/id_ed25519) ];\n}\n",
    )
    .expect("write");
    let before = w.snapshot();
    let out = w.integrate(&["web"]).output().expect("runs");
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("[4/11] !!"), "{stderr}");
    assert!(stderr.contains("uses `builtins` (line 2)"), "{stderr}");
    assert!(!fleet_path(&w, "hosts/web/hardware-configuration.nix").exists());
    // Only the pin of step 2 changed; no hardware file, no hosts.nix edit.
    let after = w.snapshot();
    let changed: Vec<&String> = after
        .keys()
        .filter(|k| before.get(*k) != after.get(*k))
        .collect();
    assert_eq!(changed, ["vms/known_hosts"], "{changed:?}");
    assert!(w.log("nixos-rebuild").is_empty());
}

#[test]
fn a_hardware_configuration_is_never_written_through_a_symlink() {
    let w = World::new();
    let outside = w.sim.dir.path().join("outside.nix");
    std::fs::write(&outside, "# keep\n").expect("write");
    std::os::unix::fs::symlink(
        &outside,
        fleet_path(&w, "hosts/web/hardware-configuration.nix"),
    )
    .expect("symlink");
    let out = w
        .integrate(&["web", "--force-hardware-config"])
        .output()
        .expect("runs");
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("it is a symlink"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&outside).expect("kept"), "# keep\n");
    assert!(w.log("nixos-rebuild").is_empty());
}

#[test]
fn secrets_reach_only_the_children_that_need_them() {
    let w = World::new();
    let out = w
        .integrate(&["web"])
        .env(
            "PROXMOX_VE_API_TOKEN",
            "terraform@pve!x=11111111-2222-3333-4444-555555555555",
        )
        .output()
        .expect("runs");
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    // nixos-rebuild (and the ssh it starts, with a user's SendEnv) gets no
    // API token, no Tailscale client secret, no age identity.
    let rebuild = w.log("nixos-rebuild");
    assert!(!rebuild.is_empty());
    for call in &rebuild {
        assert_eq!(call["secret_env"], serde_json::json!([]), "{call}");
    }
    // sops still finds the admin identity it needs.
    let sops = w.log("sops");
    assert!(!sops.is_empty());
    for call in &sops {
        assert!(call["env"]["SOPS_AGE_KEY_FILE"].is_string(), "{call}");
    }
}
