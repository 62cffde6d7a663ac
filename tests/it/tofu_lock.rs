//! `pve plan` / `pve apply` around OpenTofu's state lock and a move of the
//! state to another backend: the example fleet in git, the simulated
//! Proxmox host for the state guard, the OpenTofu stand-in (it takes the
//! local backend's lock as OpenTofu does and prints OpenTofu's texts).

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::support::fleet_repo::*;
use crate::support::stand_in;

/// Someone runs `tofu plan` by hand in the OpenTofu folder and it holds
/// the state lock until `release` exists.
fn hold_the_lock(fx: &Fx, release: &Path) -> Child {
    let dir = fx.root.join("vms/tofu/.state");
    let mut c = Command::new(stand_in("tofu"));
    fx.apply_env(&mut c);
    let child = c
        .current_dir(&dir)
        .args(["plan", "-input=false"])
        .env("TOFU_STANDIN_HOLD_LOCK_UNTIL", release)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn tofu");
    let info = dir.join(".terraform.tfstate.lock.info");
    let start = Instant::now();
    while !info.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the lock was not taken"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

#[test]
fn a_held_state_lock_is_named_with_who_holds_it_and_how_it_is_freed() {
    let fx = Fx::new();
    // The simulator has VMs of the fleet and the state is empty: the state
    // guard is not what this test is about.
    let plan = || {
        fx.pve()
            .args(["plan", "--skip-state-guard"])
            .output()
            .expect("run")
    };
    let o = plan();
    assert_eq!(o.status.code(), Some(0), "{:?}", out(&o));
    let release = fx.logs.path().join("release");
    let mut holder = hold_the_lock(&fx, &release);

    // The saved plan is applied: `tofu apply` meets the lock.
    let o = fx
        .pve()
        .args(["apply", "--yes", "--skip-state-guard"])
        .output()
        .expect("run");
    let (_, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(3), "{stderr}");
    // OpenTofu's own message was shown as it came ...
    assert!(
        stderr.contains("Error acquiring the state lock"),
        "{stderr}"
    );
    // ... and pve's reading of it: who holds it, and what frees it.
    assert!(
        stderr
            .contains("`tofu apply` stopped: another OpenTofu run holds the state lock (plan by "),
        "{stderr}"
    );
    assert!(
        stderr.contains("goes away when that process ends"),
        "{stderr}"
    );
    // The local backend's lock is not one force-unlock frees.
    assert!(!stderr.contains("tofu force-unlock "), "{stderr}");

    // `pve plan` the same.
    let o = plan();
    let (_, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("`tofu plan` stopped: another OpenTofu run holds the state lock"),
        "{stderr}"
    );

    // Once the other run ends, the lock is gone and pve plans again.
    std::fs::write(&release, "").expect("release");
    assert!(holder.wait().expect("wait").success());
    let o = plan();
    assert_eq!(o.status.code(), Some(0), "{:?}", out(&o));
}

/// hosts.nix with the state in PostgreSQL (the connection string comes
/// from PG_CONN_STR at run time).
fn to_pg(fx: &Fx) {
    let o = fx
        .pve()
        .args([
            "host",
            "set",
            "_proxmox",
            "backend",
            "{ type = \"pg\"; schemaName = \"fleet\"; }",
        ])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(0), "{:?}", out(&o));
}

#[test]
fn moving_the_state_to_pg_asks_first_and_copies_only_when_accepted() {
    let fx = Fx::new();
    // A local state with the fleet's VMs in it.
    let o = fx
        .pve()
        .args(["apply", "--yes", "--skip-state-guard"])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(0), "{:?}", out(&o));
    let state = fx.read("vms/tofu/.state/terraform.tfstate");
    let marker = fx.read("vms/tofu/.state/.pve-init.json");
    to_pg(&fx);

    // No terminal, no --yes: refused before tofu init, naming the flag.
    let o = fx.pve().arg("plan").output().expect("run");
    let (_, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("move the OpenTofu state to the new backend"),
        "{stderr}"
    );
    assert!(stderr.contains("pass --yes"), "{stderr}");
    let inits = || calls_to(&fx.tofu_calls(), "init");
    assert_eq!(inits().len(), 1, "only the first init ran: {:?}", inits());
    assert_eq!(fx.read("vms/tofu/.state/terraform.tfstate"), state);
    assert_eq!(fx.read("vms/tofu/.state/.pve-init.json"), marker);

    // --yes accepts: tofu init copies the state (OpenTofu's flags for a
    // migration without questions), then the plan runs.
    let o = fx.pve().args(["plan", "--yes"]).output().expect("run");
    assert_eq!(o.status.code(), Some(0), "{:?}", out(&o));
    assert_eq!(
        inits().last().map(String::as_str),
        Some("init -input=false -no-color -migrate-state -force-copy")
    );
    // Asked once: the next plan needs no init.
    let o = fx.pve().arg("plan").output().expect("run");
    assert_eq!(o.status.code(), Some(0), "{:?}", out(&o));
    assert_eq!(inits().len(), 2, "{:?}", inits());
}

#[test]
fn a_local_state_from_before_any_init_marker_is_moved_only_after_asking() {
    let fx = Fx::new();
    let o = fx
        .pve()
        .args(["apply", "--yes", "--skip-state-guard"])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(0), "{:?}", out(&o));
    // The folder as an older pve (or a hand-run `tofu init`) left it: a
    // state, but no record of what init ran for.
    let dir = fx.root.join("vms/tofu/.state");
    std::fs::remove_file(dir.join(".pve-init.json")).expect("rm marker");
    std::fs::remove_dir_all(dir.join(".terraform")).expect("rm .terraform");
    to_pg(&fx);
    let o = fx.pve().arg("plan").output().expect("run");
    let (_, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("pass --yes"), "{stderr}");
    assert!(!fx.tofu_calls().iter().any(|c| c.contains("-migrate-state")));
    let o = fx.pve().args(["plan", "--yes"]).output().expect("run");
    assert_eq!(o.status.code(), Some(0), "{:?}", out(&o));
    assert!(fx
        .tofu_calls()
        .iter()
        .any(|c| c == "init -input=false -no-color -migrate-state -force-copy"));
}
