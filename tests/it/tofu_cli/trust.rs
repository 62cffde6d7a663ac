//! Issue 11, item 5: OpenTofu runs only what pve wrote and applies only
//! the plan pve saved (the stand-in OpenTofu of tests/stand-ins/tofu).

use std::fs;
use std::os::unix::fs::PermissionsExt as _;

use super::{on_terminal, Fx};
use crate::support::fleet_repo::calls_to;
use crate::support::out;

#[test]
fn a_stray_tf_file_in_the_working_folder_stops_plan_before_tofu_runs() {
    let fx = Fx::new();
    fs::create_dir_all(fx.state_dir()).expect("mkdir");
    fs::set_permissions(fx.state_dir(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let stray = r#"{"resource": {"null_resource": {"x": {"provisioner": {"local-exec": {"command": "touch /tmp/pwned"}}}}}}"#;
    fs::write(fx.state_dir().join("x.tf.json"), stray).expect("write");
    fs::write(fx.state_dir().join("evil.auto.tfvars"), "a = 1\n").expect("write");
    for cmd in ["plan", "apply"] {
        let o = fx.pve().arg(cmd).output().expect("run");
        let (_, stderr) = out(&o);
        assert_eq!(o.status.code(), Some(2), "{cmd}: {stderr}");
        assert!(stderr.contains("evil.auto.tfvars, x.tf.json"), "{stderr}");
        assert!(stderr.contains("pve did not write"), "{stderr}");
    }
    assert!(
        fx.calls().is_empty(),
        "tofu never ran: {:?}",
        fx.subcommands()
    );
    assert_eq!(
        fs::read_to_string(fx.state_dir().join("x.tf.json")).expect("kept"),
        stray
    );
    // The folder was made private on the way.
    let mode = fs::metadata(fx.state_dir())
        .expect("dir")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o700);
}

#[test]
fn a_swapped_plan_file_is_never_applied() {
    let fx = Fx::new();
    let o = fx.pve().arg("plan").output().expect("run");
    assert_eq!(o.status.code(), Some(0), "{:?}", out(&o));
    let meta: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(fx.state_dir().join("pve.tfplan.json")).expect("sidecar"),
    )
    .expect("json");
    let plan = fs::read(fx.state_dir().join("pve.tfplan")).expect("plan");
    assert_eq!(meta["plan_sha256"], pve_fleet::tofu::sha256_hex(&plan));
    assert_eq!(meta["targets"], serde_json::json!([]));
    // Someone replaces the reviewed plan with another one.
    let mut other = plan.clone();
    other.extend_from_slice(b"\n");
    fs::write(fx.state_dir().join("pve.tfplan"), &other).expect("swap");
    let o = fx.pve().arg("apply").output().expect("run");
    let (_, stderr) = out(&o);
    assert!(stderr.contains("changed after it was made"), "{stderr}");
    let subs = fx.subcommands();
    assert_eq!(calls_to(&subs, "plan").len(), 2, "planned again: {subs:?}");
}

#[test]
fn a_targeted_plan_pve_apply_did_not_make_is_shown_and_asked_about() {
    let fx = Fx::new();
    let o = fx.pve().arg("plan").output().expect("run");
    assert_eq!(o.status.code(), Some(0), "{:?}", out(&o));
    // As `pve new` leaves it when it stops after planning.
    let p = fx.state_dir().join("pve.tfplan.json");
    let mut meta: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&p).expect("sidecar")).expect("json");
    meta["targets"] = serde_json::json!(["proxmox_virtual_environment_vm.sandbox"]);
    fs::write(&p, meta.to_string()).expect("write");
    let o = fx.pve().arg("apply").output().expect("run");
    let (_, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(2), "no terminal to ask on: {stderr}");
    assert!(
        stderr.contains("limited to proxmox_virtual_environment_vm.sandbox"),
        "{stderr}"
    );
    let subs = fx.subcommands();
    assert_eq!(calls_to(&subs, "apply").len(), 0, "{subs:?}");
    assert!(!fx.state_dir().join("pve.tfplan").exists(), "discarded");
}

/// The pid of the `pve apply` running in `dir` (found through /proc).
fn pve_pid(dir: &std::path::Path) -> Option<i32> {
    let pve = env!("CARGO_BIN_EXE_pve");
    for e in fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmd = fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cwd = fs::read_link(e.path().join("cwd")).ok();
        if cmd.starts_with(format!("{pve}\0apply").as_bytes()) && cwd.as_deref() == Some(dir) {
            return Some(pid);
        }
    }
    None
}

#[test]
fn ctrl_c_at_the_apply_question_discards_the_plan() {
    use std::time::{Duration, Instant};
    let fx = Fx::new();
    let mut term = on_terminal(&fx, "apply");
    term.wait_for("Apply the plan above?");
    // pve is waiting for the answer: find it to interrupt it.
    let root = fx.root.canonicalize().expect("canon");
    let deadline = Instant::now() + Duration::from_secs(60);
    let pid = loop {
        if let Some(pid) = pve_pid(&root) {
            break pid;
        }
        assert!(Instant::now() < deadline, "no `pve apply` process found");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        fx.state_dir().join("pve.tfplan").is_file(),
        "the plan waits for the answer"
    );
    let st = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
    let _ = term.finish();
    assert!(
        !fx.state_dir().join("pve.tfplan").exists(),
        "the plan was discarded"
    );
    assert!(!fx.state_dir().join("pve.tfplan.json").exists());
    assert_eq!(calls_to(&fx.subcommands(), "apply").len(), 0);
}
