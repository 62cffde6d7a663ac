//! `pve new` end to end: the example fleet in git, the simulated Proxmox
//! host over real SSH, the OpenTofu stand-in recording every call.

use crate::support::fleet_repo::*;
use crate::support::terminal;

#[test]
fn new_with_flags_and_yes_writes_entry_and_folder_plans_applies_and_prints_integrate() {
    let fx = Fx::new();
    let o = fx
        .pve()
        .args([
            "new",
            "--name",
            "web-2",
            "--description",
            "Web front \"two\"",
            "--cores",
            "3",
            "--memory",
            "4096",
            "--disk",
            "40G",
            "--yes",
        ])
        .output()
        .expect("run");
    let (stdout, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(0), "{stderr}");

    // The entry, through the editor, with the next free VMID: the
    // simulator has 100 (dns01), so the lowest free one in 100..=999 is 101.
    let hosts = fx.read("hosts.nix");
    let entry_at = hosts.find("web-2 = {").expect("entry written");
    let entry = &hosts[entry_at..];
    assert!(
        entry.contains("configurationFile = ./hosts/web-2/configuration.nix;"),
        "{entry}"
    );
    assert!(entry.contains("vmid = 101;"), "{entry}");
    assert!(entry.contains("cores = 3;"), "{entry}");
    assert!(entry.contains("memory = 4096;"), "{entry}");
    assert!(entry.contains("disk = \"40G\";"), "{entry}");
    assert!(
        entry.contains("description = \"Web front \\\"two\\\"\";"),
        "{entry}"
    );
    // The default storage is implied, not written.
    assert!(
        !entry[..entry.find("};\n  };").unwrap_or(entry.len())].contains("storage"),
        "{entry}"
    );
    // The rest of hosts.nix is byte-identical: only added lines.
    let diff = git(&fx.root, &["diff", "--numstat", "hosts.nix"]);
    assert!(
        diff.split_whitespace().nth(1) == Some("0"),
        "lines removed: {diff}"
    );

    // The folder, from the scaffold.
    let conf = fx.read("hosts/web-2/configuration.nix");
    assert!(conf.contains("web-2"), "{conf}");
    assert!(fx.root.join("hosts/web-2/home.nix").is_file());
    // The committed config follows hosts.nix, and so does .sops.yaml (the
    // new host's admins-only rule): `pve render --check` passes.
    assert!(fx.read("vms/tofu/config.tf.json").contains("\"web-2\""));
    assert!(fx.read("secrets/.sops.yaml").contains("^hosts/web-2/"));
    let o = fx.pve().args(["render", "--check"]).output().expect("run");
    assert_eq!(o.status.code(), Some(0), "{:?}", out(&o));

    // Plan targeted at the new VM, then exactly that plan applied.
    let calls = fx.tofu_calls();
    let plan = calls
        .iter()
        .find(|c| c.starts_with("plan "))
        .expect("plan ran");
    assert!(
        plan.contains("-target=proxmox_virtual_environment_vm.web-2"),
        "{calls:?}"
    );
    assert!(
        calls.iter().any(|c| c == "apply -input=false pve.tfplan"),
        "{calls:?}"
    );
    assert_eq!(fx.state_vms(), ["web-2"], "only the new VM was created");
    assert!(
        format!("{stdout}{stderr}").contains("web-2 will be created"),
        "the plan was shown: {stdout}{stderr}"
    );

    // The integrate command with the address from `tofu output`.
    assert!(
        stdout.contains("pve integrate web-2 192.0.2.102 101"),
        "{stdout}"
    );
    // No journal left; nothing untracked but the new host's files.
    assert!(!fx.root.join("vms/.journal/new-web-2.json").exists());
    let status = fx.status();
    for line in status.lines() {
        assert!(
            line.ends_with("hosts.nix")
                || line.contains("hosts/web-2/")
                || line.ends_with("vms/tofu/config.tf.json")
                || line.ends_with("secrets/.sops.yaml"),
            "unexpected change: {status}"
        );
    }
    // The token never reached an argv.
    let log = std::fs::read_to_string(fx.logs.path().join("tofu.log")).expect("log");
    assert!(!log.contains("5f1c2e9a"), "token in the tofu log");
}

#[test]
fn hostile_or_taken_names_are_refused_with_exit_2_and_nothing_written() {
    let fx = Fx::new();
    for name in [
        "x;rm -rf /",
        "../etc",
        "Web",
        "sandbox",
        "-oProxyCommand=id",
    ] {
        let o = fx
            .pve()
            .args(["new", &format!("--name={name}"), "--yes"])
            .output()
            .expect("run");
        let (_, stderr) = out(&o);
        assert_eq!(o.status.code(), Some(2), "{name}: {stderr}");
        assert!(stderr.contains("--name"), "{name}: {stderr}");
    }
    assert_eq!(fx.status(), "", "something was written");
    assert!(fx.tofu_calls().is_empty());
}

#[test]
fn without_a_terminal_missing_answers_name_the_flag() {
    let fx = Fx::new();
    let o = fx.pve().arg("new").output().expect("run");
    assert_eq!(o.status.code(), Some(2));
    assert!(out(&o).1.contains("missing --name"), "{}", out(&o).1);
    let o = fx
        .pve()
        .args(["new", "--name", "web-2", "--cores", "2"])
        .output()
        .expect("run");
    let (_, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--yes") && stderr.contains("--memory"),
        "{stderr}"
    );
    // A bad value names its flag too.
    let o = fx
        .pve()
        .args(["new", "--name", "web-2", "--memory", "8", "--yes"])
        .output()
        .expect("run");
    let (_, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--memory") && stderr.contains("8192"),
        "{stderr}"
    );
    let o = fx
        .pve()
        .args(["new", "--name", "web-2", "--vmid", "111", "--yes"])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(2));
    assert!(out(&o).1.contains("sandbox"), "{}", out(&o).1);
    assert_eq!(fx.status(), "");
}

#[test]
fn a_failed_apply_is_rolled_back_leaving_the_repository_as_it_was() {
    let fx = Fx::new();
    let before = fx.read("hosts.nix");
    let o = fx
        .pve()
        .env("TOFU_STANDIN_FAIL", "apply")
        .args(["new", "--name", "web-2", "--yes"])
        .output()
        .expect("run");
    let (_, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("Rolling back"), "{stderr}");
    assert!(stderr.contains("Rolled back"), "{stderr}");
    assert_eq!(fx.read("hosts.nix"), before, "hosts.nix byte-identical");
    assert!(!fx.root.join("hosts/web-2").exists());
    assert!(!fx.root.join("vms/.journal/new-web-2.json").exists());
    assert_eq!(fx.status(), "", "git status is clean");
    assert!(fx.state_vms().is_empty());
}

#[test]
fn the_wizard_asks_on_a_terminal_with_defaults_and_asks_again_on_bad_answers() {
    let fx = Fx::new();
    // `script` gives pve a pseudo-terminal; the answers arrive as typed.
    // name (a bad one first), alias, vmid, purpose, cores, memory (bad, then
    // default), disk, storage, then "y" to apply.
    let pve = env!("CARGO_BIN_EXE_pve");
    let mut term = terminal::Terminal::spawn(&format!("'{pve}' new"), |cmd| {
        fx.apply_env(cmd);
    });
    term.answer("Name: ", "Bad_Name");
    term.answer("Name: ", "web-3");
    term.answer("SSH alias [web-3]: ", "");
    term.answer("VMID [101]: ", "150");
    term.answer("Purpose (description)", "A wizard VM");
    term.answer("Cores [", "");
    term.answer("Memory (MiB) [2048]: ", "8");
    term.answer("Memory (MiB) [2048]: ", "");
    term.answer("Disk [", "");
    term.answer("Storage [", "");
    term.answer("as planned above? [y/N] ", "y");
    let o = term.finish();
    let stdout = o.screen;
    assert_eq!(o.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("Name:"), "{stdout}");
    assert!(
        stdout.contains("\"Bad_Name\" is not a valid host name"),
        "{stdout}"
    );
    assert!(stdout.contains("VMID [101]"), "{stdout}");
    assert!(stdout.contains("Memory (MiB) [2048]"), "{stdout}");
    assert!(
        stdout.contains("8192"),
        "the bad memory answer was explained: {stdout}"
    );
    assert!(
        stdout.contains("pve integrate web-3 192.0.2.151 150"),
        "{stdout}"
    );
    let hosts = fx.read("hosts.nix");
    let entry = &hosts[hosts.find("web-3 = {").expect("entry")..];
    assert!(
        entry.contains("vmid = 150;") && entry.contains("memory = 2048;"),
        "{entry}"
    );
    assert!(entry.contains("description = \"A wizard VM\";"), "{entry}");
}

#[test]
fn a_declined_rollback_keeps_the_journal_and_resume_finishes_the_run() {
    let fx = Fx::new();
    let pve = env!("CARGO_BIN_EXE_pve");
    let line = format!("'{pve}' new --name web-4 --vmid 140 --description 'web four' --cores 2 --memory 2048 --disk 32G --storage local-lvm --ssh-alias w4");
    let mut term = terminal::Terminal::spawn(&line, |cmd| {
        fx.apply_env(cmd);
        cmd.env("TOFU_STANDIN_FAIL", "apply");
    });
    term.answer("as planned above? [y/N] ", "y");
    term.answer("Roll back what pve new did so far? [Y/n] ", "n");
    let o = term.finish();
    let stdout = o.screen;
    assert_eq!(o.status.code(), Some(3), "{stdout}");
    assert!(
        stdout.contains("Roll back what pve new did so far?"),
        "{stdout}"
    );
    assert!(stdout.contains("--resume"), "{stdout}");
    assert!(fx.root.join("vms/.journal/new-web-4.json").is_file());
    assert!(fx.read("hosts.nix").contains("web-4 = {"));

    // A fresh run refuses while the journal is there.
    let o = fx
        .pve()
        .args(["new", "--name", "web-4", "--yes"])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(2));
    assert!(out(&o).1.contains("--resume"), "{}", out(&o).1);

    // Resumed: the done steps are skipped, the plan is made again (the
    // failed apply spent it) and applied.
    let o = fx
        .pve()
        .args(["new", "--name", "web-4", "--resume", "--yes"])
        .output()
        .expect("run");
    let (stdout, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("-- Add the host to hosts.nix: done earlier"),
        "{stderr}"
    );
    assert!(stderr.contains("Planning again"), "{stderr}");
    assert!(
        stdout.contains("pve integrate web-4 192.0.2.141 140"),
        "{stdout}"
    );
    assert_eq!(fx.state_vms(), ["web-4"]);
    assert!(!fx.root.join("vms/.journal/new-web-4.json").exists());
    let hosts = fx.read("hosts.nix");
    assert_eq!(hosts.matches("web-4 = {").count(), 1);
    assert!(hosts.contains("sshAlias = \"w4\";"), "{hosts}");
}

/// The apply created the VM, then failed (a provider error after the
/// create: the OpenTofu stand-in keeps the instance in the state as
/// tainted, and really creates the VM on the simulated Proxmox host). The
/// rollback destroys exactly that VM with a targeted plan and leaves the
/// repository, the state and Proxmox as they were.
#[test]
fn an_apply_that_created_the_vm_then_failed_is_rolled_back_with_the_vm() {
    let fx = Fx::new();
    let vms_before: Vec<String> = fx.sim.state()["vms"]
        .as_object()
        .expect("vms")
        .keys()
        .cloned()
        .collect();
    let o = fx
        .pve()
        .env("TOFU_STANDIN_FAIL", "apply-after-create")
        .env("PVE_SIM_STATE", &fx.sim.state_path)
        .args(["new", "--name", "web-5", "--vmid", "150", "--yes"])
        .output()
        .expect("run");
    let (_, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("Rolling back"), "{stderr}");
    assert!(
        stderr.contains("destroyed proxmox_virtual_environment_vm.web-5"),
        "{stderr}"
    );
    // The stand-in really created VM 150 before failing; it is gone again.
    let vms_after: Vec<String> = fx.sim.state()["vms"]
        .as_object()
        .expect("vms")
        .keys()
        .cloned()
        .collect();
    assert_eq!(vms_after, vms_before, "VM 150 was destroyed on Proxmox");
    assert!(fx.state_vms().is_empty(), "{:?}", fx.state_vms());
    // Both plans (the create, then the rollback's destroy) were targeted
    // at the new VM and nothing else, and each was applied.
    let calls = fx.tofu_calls();
    let plans: Vec<&String> = calls.iter().filter(|c| c.starts_with("plan ")).collect();
    assert_eq!(plans.len(), 2, "{calls:?}");
    for p in &plans {
        let targets: Vec<&str> = p.split(' ').filter(|a| a.starts_with("-target=")).collect();
        assert_eq!(
            targets,
            ["-target=proxmox_virtual_environment_vm.web-5"],
            "{calls:?}"
        );
    }
    assert_eq!(
        calls.iter().filter(|c| c.starts_with("apply ")).count(),
        2,
        "{calls:?}"
    );
    assert_eq!(fx.status(), "", "git status is clean");
}
