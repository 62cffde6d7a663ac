//! `pve remove` and `pve import` end to end: the example fleet in git, the
//! simulated Proxmox host over real SSH, the OpenTofu and sops stand-ins
//! (the sops stand-in re-encrypts data keys with the real `age`).

use crate::support::fleet_repo::*;
use crate::support::secrets::{age_keygen, sops_yaml_file, yaml_recipients, AgeKey};
use crate::support::terminal;

fn recipient_of(fx: &Fx, host: &str) -> String {
    let hosts = fx.read("hosts.nix");
    let at = hosts.find(&format!("  {host} = {{")).expect("host");
    let line = hosts[at..]
        .lines()
        .find(|l| l.trim_start().starts_with("publicKey = "))
        .expect("publicKey");
    let key = line.split('"').nth(1).expect("quoted key");
    pve_fleet::keys::ssh_to_age(key).expect("ssh-ed25519 key")
}

struct Secrets {
    fx: Fx,
    admin: AgeKey,
    _keys: tempfile::TempDir,
}

/// The fleet with a real admin age key, three secret files (one of
/// sandbox, one of igpu, one shared by every host), VM 111 named `sandbox`
/// on Proxmox and sandbox + igpu in the OpenTofu state.
fn fleet_with_secrets() -> Secrets {
    let keys = tempfile::tempdir().expect("keys");
    let admin = age_keygen(keys.path(), "admin");
    let r = admin.recipient.clone();
    let fx = Fx::with_hosts(move |t| {
        let at = t.find("master = \"").expect("admin") + "master = \"".len();
        let end = at + t[at..].find('"').expect("end");
        format!("{}{r}{}", &t[..at], &t[end..])
    });
    let sandbox = recipient_of(&fx, "sandbox");
    let igpu = recipient_of(&fx, "igpu");
    let all: Vec<String> = ["doc2", "framework", "igpu", "sandbox"]
        .iter()
        .map(|h| recipient_of(&fx, h))
        .collect();
    let a = admin.recipient.as_str();
    let write = |rel: &str, recipients: &[&str]| {
        let p = fx.root.join(rel);
        std::fs::create_dir_all(p.parent().expect("dir")).expect("mkdir");
        std::fs::write(p, sops_yaml_file(recipients)).expect("write");
    };
    write("secrets/hosts/sandbox/db.yaml", &[a, &sandbox]);
    write("secrets/hosts/igpu/token.yaml", &[a, &igpu]);
    let mut shared = vec![a];
    shared.extend(all.iter().map(String::as_str));
    write("secrets/common.yaml", &shared);
    git(&fx.root, &["add", "-A"]);
    git(&fx.root, &["commit", "-qm", "secrets"]);
    fx.sim.update(|s| {
        s["vms"]["111"]["config"]["name"] = "sandbox".into();
    });
    let state = fx.root.join("vms/tofu/.state");
    std::fs::create_dir_all(&state).expect("state dir");
    std::fs::write(
        state.join("terraform.tfstate"),
        serde_json::json!({
            "version": 4, "terraform_version": "1.10.6", "serial": 3, "lineage": "l-1", "outputs": {},
            "resources": [
                {"mode": "managed", "type": "proxmox_virtual_environment_vm", "name": "igpu",
                 "instances": [{"schema_version": 0, "attributes": {"vm_id": 109, "id": "109"}}]},
                {"mode": "managed", "type": "proxmox_virtual_environment_vm", "name": "sandbox",
                 "instances": [{"schema_version": 0, "attributes": {"vm_id": 111, "id": "111"}}]}
            ]
        })
        .to_string(),
    )
    .expect("state");
    Secrets {
        fx,
        admin,
        _keys: keys,
    }
}

#[test]
fn remove_takes_away_entry_folder_recipient_rekeys_rotates_and_destroys_the_vm_only() {
    let s = fleet_with_secrets();
    let fx = &s.fx;
    let sandbox = recipient_of(fx, "sandbox");
    let o = fx
        .pve()
        .env("SOPS_AGE_KEY_FILE", &s.admin.file)
        .args(["remove", "sandbox", "--yes"])
        .output()
        .expect("run");
    let (stdout, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(0), "{stdout}{stderr}");
    // What goes was shown first.
    assert!(stderr.contains("the VM 111 (`sandbox`)"), "{stderr}");
    assert!(stderr.contains("hosts/sandbox/"), "{stderr}");

    let hosts = fx.read("hosts.nix");
    assert!(!hosts.contains("sandbox = {"), "{hosts}");
    assert!(hosts.contains("igpu = {"));
    assert!(!fx.root.join("hosts/sandbox").exists());
    let sops_yaml = fx.read("secrets/.sops.yaml");
    assert!(!sops_yaml.contains(&sandbox), "{sops_yaml}");
    assert!(!fx.read("vms/known_hosts").contains("sandbox"));

    // Its own secrets folder went with it (else the catch-all rule would
    // hand it to every other host).
    assert!(!fx.root.join("secrets/hosts/sandbox").exists());
    // Every remaining secret file re-keyed; the shared one sandbox could
    // read got a new data key.
    let calls = fx.sops_calls();
    let updated: Vec<&String> = calls
        .iter()
        .filter(|c| c.contains(" updatekeys --yes "))
        .collect();
    assert_eq!(updated.len(), 2, "{calls:?}");
    let rotated: Vec<&String> = calls.iter().filter(|c| c.contains(" rotate -i ")).collect();
    assert_eq!(rotated.len(), 1, "{calls:?}");
    assert!(rotated[0].ends_with("secrets/common.yaml"), "{rotated:?}");
    // The updatekeys calls came before the rotations.
    let last_update = calls
        .iter()
        .rposition(|c| c.contains(" updatekeys "))
        .expect("u");
    let first_rotate = calls
        .iter()
        .position(|c| c.contains(" rotate "))
        .expect("r");
    assert!(last_update < first_rotate, "{calls:?}");
    for f in ["secrets/common.yaml", "secrets/hosts/igpu/token.yaml"] {
        let r = yaml_recipients(&fx.read(f));
        assert!(!r.contains(&sandbox), "{f} still has sandbox: {r:?}");
        assert!(r.contains(&s.admin.recipient), "{f}");
    }
    assert!(
        stderr.contains("new data key"),
        "the rotation was reported: {stderr}"
    );

    // The destroy, targeted: igpu stays in the state.
    let tofu = fx.tofu_calls();
    assert!(
        tofu.iter().any(|c| c.starts_with("plan ")
            && c.contains("-target=proxmox_virtual_environment_vm.sandbox")),
        "{tofu:?}"
    );
    assert!(
        tofu.iter().any(|c| c == "apply -input=false pve.tfplan"),
        "{tofu:?}"
    );
    assert_eq!(fx.state_vms(), ["igpu"]);
    assert!(stdout.contains("Removed `sandbox`"), "{stdout}");
    assert!(!fx.root.join("vms/.journal/remove-sandbox.json").exists());
}

#[test]
fn remove_refuses_a_vm_whose_name_on_proxmox_differs_before_anything_changes() {
    let s = fleet_with_secrets();
    let fx = &s.fx;
    fx.sim.update(|st| {
        st["vms"]["111"]["config"]["name"] = "nixos-web01".into();
    });
    let o = fx
        .pve()
        .env("SOPS_AGE_KEY_FILE", &s.admin.file)
        .args(["remove", "sandbox", "--yes"])
        .output()
        .expect("run");
    let (_, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("named `nixos-web01`, not `sandbox`"),
        "{stderr}"
    );
    assert_eq!(fx.status(), "", "nothing changed");
    assert!(fx.sops_calls().is_empty());
    assert!(fx.tofu_calls().is_empty());
    assert_eq!(fx.state_vms(), ["igpu", "sandbox"]);
}

#[test]
fn remove_refuses_readonly_vms_unknown_hosts_and_scripts_without_yes() {
    let fx = Fx::new();
    let o = fx
        .pve()
        .args(["remove", "doc2", "--yes"])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(2));
    assert!(out(&o).1.contains("readonly"), "{}", out(&o).1);
    let o = fx
        .pve()
        .args(["remove", "sandbx", "--yes"])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(2));
    assert!(
        out(&o).1.contains("did you mean `sandbox`"),
        "{}",
        out(&o).1
    );
    let o = fx.pve().args(["remove", "sandbox"]).output().expect("run");
    assert_eq!(o.status.code(), Some(2));
    assert!(out(&o).1.contains("--yes"), "{}", out(&o).1);
    assert_eq!(fx.status(), "");
}

#[test]
fn a_failed_rekey_stops_with_a_journal_and_resume_continues_there() {
    let s = fleet_with_secrets();
    let fx = &s.fx;
    let fail = fx.logs.path().join("sops-fail");
    // common.yaml loses sandbox, so re-keying it needs its data key.
    std::fs::write(&fail, "common.yaml\n").expect("fail list");
    let o = fx
        .pve()
        .env("SOPS_AGE_KEY_FILE", &s.admin.file)
        .env("SOPS_STANDIN_FAIL", &fail)
        .args(["remove", "sandbox", "--yes"])
        .output()
        .expect("run");
    let (_, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("FAILED  secrets/common.yaml"), "{stderr}");
    assert!(stderr.contains("--resume"), "{stderr}");
    assert!(fx.root.join("vms/.journal/remove-sandbox.json").is_file());
    assert_eq!(fx.state_vms(), ["igpu", "sandbox"], "no destroy yet");
    // Without --resume a new run refuses.
    let o = fx
        .pve()
        .args(["remove", "sandbox", "--yes"])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(2));
    let o = fx
        .pve()
        .env("SOPS_AGE_KEY_FILE", &s.admin.file)
        .args(["remove", "sandbox", "--resume"])
        .output()
        .expect("run");
    let (_, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("-- Remove the host's folders: done earlier"),
        "{stderr}"
    );
    assert_eq!(fx.state_vms(), ["igpu"]);
    assert!(!fx.root.join("vms/.journal/remove-sandbox.json").exists());
}

#[test]
fn import_writes_an_entry_that_the_next_plan_imports() {
    let fx = Fx::new();
    // VM 112 has no name on Proxmox: a name is needed.
    let o = fx.pve().args(["import", "112"]).output().expect("run");
    assert_eq!(o.status.code(), Some(2));
    assert!(out(&o).1.contains("--name"), "{}", out(&o).1);
    assert_eq!(fx.status(), "");
    for bad in ["12", "abc", "1e3"] {
        let o = fx.pve().args(["import", bad]).output().expect("run");
        assert_eq!(o.status.code(), Some(2), "{bad}");
    }
    let o = fx
        .pve()
        .args(["import", "112", "--name", "legacy"])
        .output()
        .expect("run");
    let (stdout, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert!(stdout.contains("import = true"), "{stdout}");
    let hosts = fx.read("hosts.nix");
    let entry = &hosts[hosts.find("legacy = {").expect("entry")..];
    for want in [
        "vmid = 112;",
        "cores = 2;",
        "memory = 2048;",
        "import = true;",
        "cloneFromTemplate = false;",
    ] {
        assert!(entry.contains(want), "{want}: {entry}");
    }
    assert!(fx.root.join("hosts/legacy/configuration.nix").is_file());
    let o = fx.pve().arg("check").output().expect("check");
    assert_eq!(o.status.code(), Some(0), "{}", out(&o).1);
    // The next plan adopts it.
    let o = fx
        .pve()
        .args(["plan", "--skip-state-guard"])
        .output()
        .expect("plan");
    let (stdout, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert!(
        stdout.contains("proxmox_virtual_environment_vm.legacy will be imported"),
        "{stdout}"
    );

    // A VMID hosts.nix already has: that entry gets import = true.
    let o = fx.pve().args(["import", "111"]).output().expect("run");
    assert_eq!(o.status.code(), Some(0), "{}", out(&o).1);
    let hosts = fx.read("hosts.nix");
    let sandbox =
        &hosts[hosts.find("sandbox = {").expect("sandbox")..hosts.find("igpu = {").expect("igpu")];
    assert!(sandbox.contains("import = true;"), "{sandbox}");
    // Readonly VMs are refused.
    let o = fx.pve().args(["import", "104"]).output().expect("run");
    assert_eq!(o.status.code(), Some(2), "{}", out(&o).1);
}

#[test]
fn import_copies_the_fleets_vm_base_as_new_and_scaffold_do() {
    let fx = Fx::new();
    let base = fx.root.join("hosts/vm_base");
    // The example fleet has a base of its own: replace it.
    std::fs::remove_dir_all(&base).expect("rm base");
    // A base leading outside the fleet: refused before hosts.nix is edited.
    let outside = tempfile::tempdir().expect("outside");
    std::os::unix::fs::symlink(outside.path(), &base).expect("symlink");
    let before = fx.read("hosts.nix");
    let o = fx
        .pve()
        .args(["import", "112", "--name", "legacy"])
        .output()
        .expect("run");
    let stderr = out(&o).1;
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("outside"), "{stderr}");
    assert_eq!(fx.read("hosts.nix"), before);
    assert!(!fx.root.join("hosts/legacy").exists());

    std::fs::remove_file(&base).expect("rm link");
    std::fs::create_dir_all(&base).expect("mkdir");
    std::fs::write(
        base.join("configuration.nix"),
        "# vm_base: the fleet's own base\n# marker: from the fleet's base\n{ networking.hostName = \"@name@\"; }\n",
    )
    .expect("write");
    let o = fx
        .pve()
        .args(["import", "112", "--name", "legacy"])
        .output()
        .expect("run");
    let (stdout, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert!(
        stdout.contains("hosts/legacy/configuration.nix"),
        "{stdout}"
    );
    // The base's note is dropped, the name substituted (what `pve
    // scaffold` writes from the same base).
    assert_eq!(
        fx.read("hosts/legacy/configuration.nix"),
        "# marker: from the fleet's base\n{ networking.hostName = \"legacy\"; }\n"
    );
    // What the base lacks comes from the built-in base.
    assert!(fx.root.join("hosts/legacy/home.nix").is_file());
}

/// `pve remove` on a pseudo-terminal (`script`), answering `answer` once
/// the question is on the screen.
fn remove_on_a_terminal(fx: &Fx, admin: &AgeKey, answer: &str) -> terminal::Finished {
    let pve = env!("CARGO_BIN_EXE_pve");
    let mut term = terminal::Terminal::spawn(&format!("'{pve}' remove sandbox"), |cmd| {
        fx.apply_env(cmd);
        cmd.env("SOPS_AGE_KEY_FILE", &admin.file);
    });
    term.answer("Type `sandbox` to remove it", answer);
    term.finish()
}

#[test]
fn on_a_terminal_the_name_must_be_typed_back() {
    let s = fleet_with_secrets();
    let fx = &s.fx;
    let o = remove_on_a_terminal(fx, &s.admin, "sandbo");
    let stdout = o.screen;
    assert_eq!(o.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("Type `sandbox` to remove it"), "{stdout}");
    assert!(stdout.contains("nothing was removed"), "{stdout}");
    assert_eq!(fx.status(), "");
    let o = remove_on_a_terminal(fx, &s.admin, "sandbox");
    let stdout = o.screen;
    assert_eq!(o.status.code(), Some(0), "{stdout}");
    assert!(!fx.read("hosts.nix").contains("sandbox = {"));
    assert_eq!(fx.state_vms(), ["igpu"]);
}

#[test]
fn removing_a_machine_that_is_not_a_vm_touches_neither_proxmox_nor_opentofu() {
    let s = fleet_with_secrets();
    let fx = &s.fx;
    let framework = recipient_of(fx, "framework");
    let o = fx
        .pve()
        .env("SOPS_AGE_KEY_FILE", &s.admin.file)
        .args(["remove", "framework", "--yes", "--json"])
        .output()
        .expect("run");
    let (stdout, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    // One JSON event per step.
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("json event"))
        .collect();
    assert!(events
        .iter()
        .any(|e| e["step"] == "destroy" && e["status"] == "done" && e["detail"] == "not a VM"));
    assert!(fx.tofu_calls().is_empty());
    assert!(!fx.read("secrets/.sops.yaml").contains(&framework));
    let r = yaml_recipients(&fx.read("secrets/common.yaml"));
    assert!(!r.contains(&framework), "{r:?}");
    assert!(fx
        .sops_calls()
        .iter()
        .any(|c| c.contains(" rotate -i ") && c.ends_with("common.yaml")));
}

/// What the next plan would otherwise change on the adopted VM is read
/// from its Proxmox config (the simulator serves it in `qm config`'s
/// format): tags, bridge, VLAN, MAC address and virtiofs shares.
#[test]
fn import_keeps_the_vms_tags_network_and_shares() {
    let fx = Fx::new();
    fx.sim.update(|s| {
        let cfg = &mut s["vms"]["112"]["config"];
        cfg["tags"] = serde_json::json!("legacy;db");
        cfg["net0"] = serde_json::json!("virtio=BC:24:11:00:01:12,bridge=vmbr1,firewall=1,tag=20");
        cfg["virtiofs0"] = serde_json::json!("dirid=media,cache=always,expose-acl=1");
        cfg["virtiofs1"] = serde_json::json!("containers");
    });
    let o = fx
        .pve()
        .args(["import", "112", "--name", "legacy"])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(0), "{}", out(&o).1);
    let o = fx.pve().args(["eval"]).output().expect("eval");
    let fleet: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let p = &fleet["legacy"]["proxmox"];
    assert_eq!(p["tags"], serde_json::json!(["legacy", "db"]));
    assert_eq!(p["bridge"], "vmbr1");
    assert_eq!(p["vlan"], 20);
    assert_eq!(p["macAddress"], "BC:24:11:00:01:12");
    assert_eq!(
        p["virtiofs"],
        serde_json::json!([
            { "mapping": "media", "cache": "always", "expose_acl": true },
            { "mapping": "containers" }
        ])
    );
    let o = fx.pve().arg("check").output().expect("check");
    assert_eq!(o.status.code(), Some(0), "{}", out(&o).1);
    // The rendered VM carries them, as the provider names them.
    let o = fx
        .pve()
        .args(["render", "tofu", "--out-dir"])
        .arg(fx.logs.path())
        .output()
        .expect("render");
    assert_eq!(o.status.code(), Some(0), "{}", out(&o).1);
    let tf: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fx.logs.path().join("vms/tofu/config.tf.json")).expect("tf"),
    )
    .expect("tf json");
    let vm = &tf["resource"]["proxmox_virtual_environment_vm"]["legacy"];
    let net = &vm["network_device"][0];
    assert_eq!(net["bridge"], "vmbr1");
    assert_eq!(net["vlan_id"], 20);
    assert_eq!(net["mac_address"], "BC:24:11:00:01:12");
    assert_eq!(vm["tags"], serde_json::json!(["legacy", "db"]));
    assert_eq!(vm["virtiofs"].as_array().map(Vec::len), Some(2), "{vm}");
}
