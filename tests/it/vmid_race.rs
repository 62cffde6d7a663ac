//! `pve new` racing a concurrent `pve new` in another checkout for the same
//! VMID: the example fleet in git, the simulated Proxmox host over real
//! SSH, the OpenTofu stand-in (it carries the clone out on the simulator
//! and, with TOFU_STANDIN_VMID_RACE, lets another VM take the VMID just
//! before its clone, past every check pve makes). PVE_SIM_STATE lets the
//! stand-in clone on the simulator.

use crate::support::fleet_repo::*;
use crate::support::terminal::Terminal;

/// The other checkout's VM: a clone still in progress on `node`.
fn other_vm(fx: &Fx, vmid: &str, name: &str, node: &str) {
    fx.sim.update(|s| {
        s["vms"][vmid] = serde_json::json!({
            "config": {"name": name, "cores": "2", "memory": "2048", "lock": "clone"},
            "status": "stopped",
            "node": node,
        });
    });
}

/// `pve` whose OpenTofu stand-in clones on the simulator.
fn pve_cloning(fx: &Fx) -> assert_cmd::Command {
    let mut c = fx.pve();
    c.env("PVE_SIM_STATE", &fx.sim.state_path);
    c
}

/// `pve new` of `web-2` with VMID 150 and every answer given but the
/// confirmation, on a terminal, its clone on the simulator; `race`
/// (TOFU_STANDIN_VMID_RACE) lets that VM take 150 just before the clone.
fn new_web_2_on_a_terminal(fx: &Fx, race: Option<&str>) -> Terminal {
    let pve = env!("CARGO_BIN_EXE_pve");
    let line = format!("'{pve}' new --name web-2 --vmid 150 --description two --cores 2 --memory 2048 --disk 32G --storage local-lvm --ssh-alias w2");
    Terminal::spawn(&line, |cmd| {
        fx.apply_env(cmd);
        cmd.env("PVE_SIM_STATE", &fx.sim.state_path);
        if let Some(race) = race {
            cmd.env("TOFU_STANDIN_VMID_RACE", race);
        }
    })
}

#[test]
fn a_clone_that_loses_its_vmid_names_the_holder_and_the_next_free_vmid_and_can_resume() {
    let fx = Fx::new();
    let mut term = new_web_2_on_a_terminal(&fx, Some("web-9@pve"));
    term.answer("as planned above? [y/N] ", "y");
    // Kept, to continue with another VMID.
    term.answer("Roll back what pve new did so far? [Y/n] ", "n");
    let o = term.finish();
    let screen = o.screen;
    // Exit 3 (Proxmox changed under us), the typed message and its fix.
    assert_eq!(o.status.code(), Some(3), "{screen}");
    assert!(
        screen.contains(
            "VMID 150 for `web-2` is taken on Proxmox now: VM `web-9` on node pve holds it"
        ),
        "{screen}"
    );
    // 100 (dns01) and 150 are taken; hosts.nix uses others.
    let next = next_free(&fx);
    assert!(
        screen.contains(&format!("pve host set web-2 proxmox.vmid {next}")),
        "{screen}"
    );
    assert!(screen.contains("pve new --name web-2 --resume"), "{screen}");
    // Proxmox's own text went by on the terminal too (tofu's output is
    // shown as it comes).
    assert!(
        screen.contains("unable to create VM 150: config file already exists"),
        "{screen}"
    );
    // Nothing of ours on Proxmox or in the state; the other VM untouched.
    // The stand-in's provider, as the real one, would have taken web-9 as
    // its own clone (and renamed it) had pve rendered clone.retries > 1.
    assert!(fx.state_vms().is_empty());
    assert_eq!(fx.sim.state()["vms"]["150"]["config"]["name"], "web-9");
    // Without a terminal and without --yes the run is kept for --resume:
    // the entry is in hosts.nix, the journal says the apply failed.
    assert!(fx.read("hosts.nix").contains("vmid = 150;"));
    let journal: serde_json::Value =
        serde_json::from_str(&fx.read("vms/.journal/new-web-2.json")).expect("journal");
    assert_eq!(journal["steps"]["apply"]["status"], "failed");

    // The fix the error gave, then resume: the run follows the new VMID.
    let o = fx
        .pve()
        .args(["host", "set", "web-2", "proxmox.vmid", &next.to_string()])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(0), "{:?}", out(&o));
    let o = pve_cloning(&fx)
        .args(["new", "--name", "web-2", "--resume", "--yes"])
        .output()
        .expect("run");
    let (stdout, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert!(
        stdout.contains(&format!("Created `web-2` (VMID {next})")),
        "{stdout}"
    );
    assert_eq!(fx.state_vms(), ["web-2"]);
    assert_eq!(
        fx.sim.state()["vms"][next.to_string()]["config"]["name"],
        "web-2"
    );
    assert_eq!(fx.sim.state()["vms"]["150"]["config"]["name"], "web-9");
    // The rendered files follow hosts.nix (the new VMID).
    let o = fx.pve().args(["render", "--check"]).output().expect("run");
    assert_eq!(o.status.code(), Some(0), "{:?}", out(&o));
    assert!(!fx.root.join("vms/.journal/new-web-2.json").exists());
}

#[test]
fn with_yes_a_lost_race_rolls_back_and_says_to_run_again() {
    let fx = Fx::new();
    fx.sim.make_cluster();
    let before = fx.read("hosts.nix");
    // The other VM lands on another node: pmxcfs refuses the config file
    // inside the clone task.
    let o = pve_cloning(&fx)
        .env("TOFU_STANDIN_VMID_RACE", "db-7@pve2")
        .args(["new", "--name", "web-2", "--vmid", "150", "--yes"])
        .output()
        .expect("run");
    let (_, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("VM `db-7` on node pve2 holds it"),
        "{stderr}"
    );
    assert!(
        stderr.contains("/qemu-server/150.conf' failed: File exists"),
        "{stderr}"
    );
    assert!(stderr.contains("Rolled back"), "{stderr}");
    let next = next_free(&fx);
    assert!(
        stderr.contains(&format!("run `pve new` again with `--vmid {next}`")),
        "{stderr}"
    );
    assert_eq!(fx.read("hosts.nix"), before);
    assert!(!fx.root.join("vms/.journal/new-web-2.json").exists());
    assert_eq!(fx.status(), "", "git status is clean");
}

#[test]
fn a_vmid_taken_while_the_question_waited_is_refused_before_the_clone() {
    let fx = Fx::new();
    let mut term = new_web_2_on_a_terminal(&fx, None);
    term.wait_for("as planned above? [y/N] ");
    // While the question waits, another checkout's clone takes 150.
    other_vm(&fx, "150", "web-9", "pve");
    term.answer("", "y");
    term.answer("Roll back what pve new did so far? [Y/n] ", "y");
    let o = term.finish();
    let screen = o.screen;
    assert_eq!(o.status.code(), Some(3), "{screen}");
    assert!(
        screen.contains("VM `web-9` on node pve holds it"),
        "{screen}"
    );
    // Refused by pve's own check: no apply ran.
    assert!(
        !fx.tofu_calls().iter().any(|c| c.starts_with("apply")),
        "{:?}",
        fx.tofu_calls()
    );
    assert!(!screen.contains("config file already exists"), "{screen}");
    assert_eq!(fx.status(), "", "rolled back: git status is clean");
}

/// The lowest VMID free both on the simulator and in hosts.nix, counted
/// here from the two sources (not from pve's answer).
fn next_free(fx: &Fx) -> u32 {
    let state = fx.sim.state();
    let hosts = fx.read("hosts.nix");
    (100..1000)
        .find(|v| {
            state["vms"].get(v.to_string()).is_none() && !hosts.contains(&format!("vmid = {v};"))
        })
        .expect("a free VMID")
}
