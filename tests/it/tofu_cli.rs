//! `pve plan` / `apply` / `output` / `destroy` end to end against the built
//! binary, with the OpenTofu stand-in (tests/stand-ins/tofu) and the
//! simulated Proxmox host behind a real sshd (tests/it/support/pvesim) for the
//! state guard, on a copy of the example fleet.

use crate::support::pvesim;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value as Json;

use crate::support::fleet_repo::{calls_to, logged_calls, tofu_state_in};
use crate::support::pvesim::Sim;
use crate::support::terminal::Terminal;
use crate::support::{copy_dir, out, read_jsonl, stand_in};

mod trust;

const TOKEN: &str = "terraform@pve!provider=5f1c2e9a-7b3d-4e8f-a1c6-d2b9e0f47a13";
const SECRET: &str = "5f1c2e9a-7b3d-4e8f-a1c6-d2b9e0f47a13";

struct Fx {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    base: PathBuf,
    /// The simulated Proxmox host (real sshd) the state guard asks.
    sim: Sim,
    /// Where pve connects: the simulator, or a closed port.
    ssh_port: u16,
}

impl Fx {
    fn new() -> Fx {
        let tmp = tempfile::tempdir().expect("tempdir");
        let base = tmp.path().to_path_buf();
        let root = base.join("fleet");
        let src = Path::new(env!("CARGO_MANIFEST_DIR"));
        fs::create_dir_all(root.join("vms")).expect("mkdir");
        let hosts = fs::read_to_string(src.join("hosts.nix")).expect("hosts.nix");
        fs::write(
            root.join("hosts.nix"),
            hosts.replacen("host = \"192.168.1.12\";", "host = \"127.0.0.1\";", 1),
        )
        .expect("write hosts.nix");
        copy_dir(&src.join("hosts"), &root.join("hosts"));
        fs::create_dir_all(base.join("home")).expect("home");
        let sim = Sim::start();
        // No guests on Proxmox unless a test adds some.
        sim.update(|s| {
            s["vms"] = serde_json::json!({});
            s["containers"] = serde_json::json!({});
        });
        let key: Vec<&str> = sim.host_pub.split_whitespace().collect();
        fs::write(
            root.join("vms/proxmox_known_hosts"),
            format!("{} {} {}\n", sim.known_hosts_name(), key[0], key[1]),
        )
        .expect("pin the host key");
        let ssh_port = sim.port;
        Fx {
            _tmp: tmp,
            root,
            base,
            sim,
            ssh_port,
        }
    }

    /// `pve` in the fleet folder, no token, no terminal.
    fn pve_no_token(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_pve"));
        c.current_dir(&self.root)
            .env_remove("PROXMOX_VE_API_TOKEN")
            .env_remove("PVE_TOKEN_FILE")
            .env_remove("TOFU_WORKDIR")
            .env_remove("PVE_HOSTS")
            .env_remove("PVE_LOG")
            .env_remove("TF_IN_AUTOMATION")
            .env_remove("PROXMOX_HOST")
            .env_remove("PROXMOX_NODE")
            .env_remove("PROXMOX_READONLY_VMIDS")
            .env("PROXMOX_USER", pvesim::user())
            .env("PROXMOX_SSH_PORT", self.ssh_port.to_string())
            .env("PROXMOX_SSH_IDENTITY", &self.sim.client_key)
            .env("PROXMOX_CONNECT_TIMEOUT", "30")
            .env("HOME", self.base.join("home"))
            .env("XDG_CONFIG_HOME", self.base.join("xdg"))
            .env("PVE_TOOL_TOFU", stand_in("tofu"))
            .env("TOFU_STANDIN_LOG", self.base.join("tofu.log"));
        c
    }

    fn pve(&self) -> Command {
        let mut c = self.pve_no_token();
        c.env("PROXMOX_VE_API_TOKEN", TOKEN);
        c
    }

    fn state_dir(&self) -> PathBuf {
        self.root.join("vms/tofu/.state")
    }

    /// Every tofu call so far.
    fn calls(&self) -> Vec<Json> {
        read_jsonl(&self.base.join("tofu.log"))
    }

    fn subcommands(&self) -> Vec<String> {
        logged_calls(&self.base.join("tofu.log"))
    }

    /// How often the Proxmox host was asked which guests exist.
    fn ssh_calls(&self) -> usize {
        self.guard_calls().len()
    }

    fn guard_calls(&self) -> Vec<Vec<String>> {
        self.sim
            .calls()
            .into_iter()
            .filter(|c| c.iter().any(|a| a == "/cluster/resources"))
            .collect()
    }

    fn state(&self) -> Option<Json> {
        tofu_state_in(&self.root)
    }

    /// cpu.cores of a VM as recorded in the state.
    fn cores_in_state(&self, vm: &str) -> Option<i64> {
        let state = self.state()?;
        state["resources"]
            .as_array()?
            .iter()
            .find(|r| r["name"] == vm)
            .and_then(|r| {
                // A block is an object or a list of one (JSON syntax).
                let cpu = &r["instances"][0]["attributes"]["cpu"];
                cpu["cores"].as_i64().or_else(|| cpu[0]["cores"].as_i64())
            })
    }

    /// Sets the outputs recorded in the state, as `tofu apply` would have
    /// (so these tests do not depend on which outputs the config renders).
    fn set_state_outputs(&self) {
        let mut state = self.state().expect("state");
        state["outputs"] = serde_json::json!({
            "sandbox_ip": {"sensitive": false, "type": "string", "value": "192.0.2.11"},
            "vmids": {"sensitive": false, "type": ["object", {"sandbox": "number"}], "value": {"sandbox": 111}}
        });
        fs::write(
            self.state_dir().join("terraform.tfstate"),
            state.to_string(),
        )
        .expect("write");
    }

    fn edit_hosts(&self, from: &str, to: &str) {
        let p = self.root.join("hosts.nix");
        let text = fs::read_to_string(&p).expect("read");
        assert!(text.contains(from), "hosts.nix has no {from:?}");
        fs::write(&p, text.replacen(from, to, 1)).expect("write");
    }
}

#[test]
fn plan_then_apply_applies_the_saved_plan_and_init_runs_once() {
    let fx = Fx::new();
    let o = fx.pve().arg("plan").output().expect("run");
    let (stdout, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert!(
        stdout.contains("proxmox_virtual_environment_vm.sandbox will be created"),
        "{stdout}"
    );
    assert!(
        stderr.contains("`pve apply` applies exactly this plan"),
        "{stderr}"
    );
    assert!(fx.state_dir().join("pve.tfplan").is_file());
    let meta: Json = serde_json::from_str(
        &fs::read_to_string(fx.state_dir().join("pve.tfplan.json")).expect("sidecar"),
    )
    .expect("json");
    let config = fs::read(fx.state_dir().join("config.tf.json")).expect("config");
    assert_eq!(meta["config_sha256"], sha256(&config));
    assert_eq!(meta["kind"], "apply");
    // The state was empty, so Proxmox was asked (over SSH, with its pinned
    // host key) which guests exist in the cluster.
    assert_eq!(
        fx.guard_calls(),
        [[
            "pvesh",
            "get",
            "/cluster/resources",
            "--type",
            "vm",
            "--output-format",
            "json"
        ]]
    );

    let o = fx.pve().arg("apply").output().expect("run");
    let (stdout, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert!(
        stdout.contains("Apply complete! Resources: 2 added"),
        "{stdout}"
    );
    assert!(stderr.contains("Applying the saved plan"), "{stderr}");
    let subs = fx.subcommands();
    assert_eq!(calls_to(&subs, "init").len(), 1, "{subs:?}");
    assert_eq!(
        calls_to(&subs, "plan").len(),
        1,
        "apply used the saved plan: {subs:?}"
    );
    assert_eq!(
        subs.last().map(String::as_str),
        // `_proxmox.parallelClones` (default 2) bounds the clones at once.
        Some("apply -input=false -parallelism=2 pve.tfplan")
    );
    assert!(fx
        .calls()
        .iter()
        .all(|c| c["cwd"] == fx.state_dir().to_str().expect("utf8")));
    assert_eq!(fx.cores_in_state("sandbox"), Some(4));
    assert!(
        !fx.state_dir().join("pve.tfplan").exists(),
        "a plan is spent once applied"
    );

    // Nothing changed: no init, no ssh (the state is there), no changes.
    let o = fx.pve().arg("plan").output().expect("run");
    let (stdout, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert!(stdout.contains("No changes."), "{stdout}");
    assert_eq!(calls_to(&fx.subcommands(), "init").len(), 1);
    assert_eq!(fx.ssh_calls(), 1);
    // The working folder is private and kept out of git.
    let mode = fs::metadata(fx.state_dir())
        .expect("dir")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o700);
    assert_eq!(
        fs::read_to_string(fx.state_dir().join(".gitignore"))
            .expect("gitignore")
            .lines()
            .last(),
        Some("*")
    );
}

fn sha256(data: &[u8]) -> String {
    pve_fleet::tofu::sha256_hex(data)
}

#[test]
fn a_plan_made_before_hosts_nix_changed_is_not_applied() {
    let fx = Fx::new();
    assert_eq!(
        fx.pve().arg("plan").output().expect("run").status.code(),
        Some(0)
    );
    fx.edit_hosts("cores = 4;", "cores = 6;");

    // No terminal, no --yes: plans again, shows it, refuses.
    let o = fx.pve().arg("apply").output().expect("run");
    let (stdout, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("made from a different config (hosts.nix changed since `pve plan`)"),
        "{stderr}"
    );
    assert!(stderr.contains("no terminal to ask on"), "{stderr}");
    assert!(stderr.contains("--yes"), "{stderr}");
    assert!(
        stdout.contains("will be created"),
        "the new plan is shown: {stdout}"
    );
    assert_eq!(calls_to(&fx.subcommands(), "apply").len(), 0);
    assert!(fx.state().is_none(), "nothing applied");
    assert!(
        !fx.state_dir().join("pve.tfplan").exists(),
        "the unconfirmed plan is discarded"
    );

    // --yes: plans again and applies the new plan, not the stale one (the
    // stand-in, like OpenTofu, would apply the old snapshot with cores = 4).
    let o = fx.pve().args(["apply", "--yes"]).output().expect("run");
    let (_, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert_eq!(fx.cores_in_state("sandbox"), Some(6));
    assert_eq!(calls_to(&fx.subcommands(), "apply").len(), 1);
}

#[test]
fn a_plan_whose_state_changed_since_is_planned_again() {
    let fx = Fx::new();
    assert_eq!(
        fx.pve()
            .args(["apply", "--yes"])
            .output()
            .expect("run")
            .status
            .code(),
        Some(0)
    );
    fx.edit_hosts("cores = 4;", "cores = 5;");
    assert_eq!(
        fx.pve().arg("plan").output().expect("run").status.code(),
        Some(0)
    );
    // Another operation changed the state after the plan.
    let p = fx.state_dir().join("terraform.tfstate");
    let mut state = fx.state().expect("state");
    state["serial"] = (state["serial"].as_i64().expect("serial") + 1).into();
    fs::write(&p, state.to_string()).expect("write");

    let o = fx.pve().arg("apply").output().expect("run");
    let (_, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("the saved plan is stale: the OpenTofu state changed"),
        "{stderr}"
    );
    let o = fx.pve().args(["apply", "-y"]).output().expect("run");
    assert_eq!(o.status.code(), Some(0), "{}", out(&o).1);
    assert_eq!(fx.cores_in_state("sandbox"), Some(5));
}

/// The stand-in itself behaves like OpenTofu here: a saved plan applies its
/// own config snapshot, and a changed state serial makes it stale.
#[test]
fn stand_in_refuses_a_stale_saved_plan_like_opentofu() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = r#"{"terraform":{"required_providers":{"proxmox":{"source":"bpg/proxmox","version":"0.111.1"}}},
        "resource":{"proxmox_virtual_environment_vm":{"a":{"vm_id":150}}}}"#;
    fs::write(dir.path().join("config.tf.json"), cfg).expect("write");
    let tofu = |args: &[&str]| {
        std::process::Command::new(stand_in("tofu"))
            .args(args)
            .current_dir(dir.path())
            .env("PROXMOX_VE_API_TOKEN", TOKEN)
            .env_remove("TOFU_STANDIN_LOG")
            .output()
            .expect("run stand-in")
    };
    assert!(tofu(&["init", "-input=false"]).status.success());
    assert_eq!(
        tofu(&["plan", "-detailed-exitcode", "-out=p1"])
            .status
            .code(),
        Some(2)
    );
    assert!(tofu(&["apply", "p1"]).status.success());
    assert_eq!(
        tofu(&["plan", "-detailed-exitcode", "-out=p2"])
            .status
            .code(),
        Some(0)
    );
    assert_eq!(
        tofu(&["plan", "-destroy", "-detailed-exitcode", "-out=p3"])
            .status
            .code(),
        Some(2)
    );
    assert!(tofu(&["apply", "p2"]).status.success(), "bumps the serial");
    let o = tofu(&["apply", "p3"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        out(&o).1.contains("Error: Saved plan is stale"),
        "{}",
        out(&o).1
    );
}

#[test]
fn init_runs_again_only_when_provider_or_backend_change() {
    let fx = Fx::new();
    assert_eq!(
        fx.pve().arg("plan").output().expect("run").status.code(),
        Some(0)
    );
    assert_eq!(
        fx.pve().arg("plan").output().expect("run").status.code(),
        Some(0)
    );
    assert_eq!(calls_to(&fx.subcommands(), "init").len(), 1);
    // A VM change needs no init.
    fx.edit_hosts("cores = 4;", "cores = 3;");
    assert_eq!(
        fx.pve().arg("plan").output().expect("run").status.code(),
        Some(0)
    );
    assert_eq!(calls_to(&fx.subcommands(), "init").len(), 1);

    fx.edit_hosts(
        "insecure = true;",
        "insecure = true; providerVersion = \"0.93.1\";",
    );
    let o = fx.pve().arg("plan").output().expect("run");
    assert_eq!(o.status.code(), Some(0), "{}", out(&o).1);
    let inits = calls_to(&fx.subcommands(), "init");
    assert_eq!(
        inits,
        [
            "init -input=false -no-color",
            "init -input=false -no-color -upgrade"
        ]
    );

    // A new backend moves the state: that needs a yes.
    fx.edit_hosts(
        "insecure = true;",
        "insecure = true; backend = { type = \"local\"; path = \"fleet.tfstate\"; };",
    );
    let o = fx.pve().arg("plan").output().expect("run");
    let (_, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("move the OpenTofu state to the new backend"),
        "{stderr}"
    );
    let o = fx.pve().args(["apply", "--yes"]).output().expect("run");
    assert_eq!(o.status.code(), Some(0), "{}", out(&o).1);
    let inits = calls_to(&fx.subcommands(), "init");
    assert_eq!(inits.len(), 3, "{inits:?}");
    assert_eq!(
        inits[2],
        "init -input=false -no-color -migrate-state -force-copy"
    );
}

#[test]
fn the_state_guard_refuses_when_state_is_empty_and_the_vms_exist() {
    let fx = Fx::new();
    // Proxmox has the guests of tests/fixtures/proxmox-cli/qm-list.txt (111 among them).
    fx.sim.update(|s| {
        let mut vms = serde_json::Map::new();
        for (id, name) in [
            (100, "dns01"),
            (111, "nixos-web01"),
            (112, "test"),
            (120, "web"),
        ] {
            vms.insert(
                id.to_string(),
                serde_json::json!({"status": "stopped", "agent_running": false, "ips": [],
                                   "config": {"name": name, "memory": "2048", "cores": "2"}}),
            );
        }
        s["vms"] = vms.into();
    });
    for cmd in [&["plan"][..], &["apply", "--yes"][..]] {
        let o = fx.pve().args(cmd).output().expect("run");
        let (_, stderr) = out(&o);
        assert_eq!(o.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains(
                "the OpenTofu state is empty but sandbox (VMID 111) already exists on Proxmox"
            ),
            "{stderr}"
        );
        // The import ID names the node that holds the VM (the simulated
        // host is node `pve`; hosts.nix says `prom`): `/cluster/resources`.
        assert!(
            stderr.contains("tofu import proxmox_virtual_environment_vm.sandbox pve/111"),
            "{stderr}"
        );
        assert!(stderr.contains("import = true;"), "{stderr}");
    }
    let subs = fx.subcommands();
    assert_eq!(
        calls_to(&subs, "plan").len() + calls_to(&subs, "apply").len(),
        0,
        "{subs:?}"
    );

    // Adopting it with `import = true;` renders an import block: allowed,
    // and the apply imports instead of creating.
    fx.edit_hosts("vmid = 111;", "vmid = 111; import = true;");
    let o = fx.pve().args(["apply", "--yes"]).output().expect("run");
    let (stdout, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert!(
        stdout.contains("proxmox_virtual_environment_vm.sandbox will be imported"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Resources: 1 imported, 1 added"),
        "{stdout}"
    );
}

#[test]
fn the_state_guard_can_be_skipped_and_reports_an_unreachable_proxmox() {
    let mut fx = Fx::new();
    // Nothing listens there: the host cannot be reached.
    fx.ssh_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let o = fx.pve().arg("plan").output().expect("run");
    let (_, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("Connection refused"), "{stderr}");
    assert!(stderr.contains("--skip-state-guard"), "{stderr}");
    let o = fx
        .pve()
        .args(["plan", "--skip-state-guard"])
        .output()
        .expect("run");
    let (_, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("state guard is off"), "{stderr}");
    // Skipped: Proxmox was not asked (it was not reachable anyway).
    assert_eq!(fx.ssh_calls(), 0);
}

#[test]
fn no_token_is_a_clear_error_and_tofu_never_runs() {
    let fx = Fx::new();
    for cmd in ["plan", "apply", "destroy"] {
        let o = fx.pve_no_token().arg(cmd).output().expect("run");
        let (_, stderr) = out(&o);
        assert_eq!(o.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("no Proxmox API token"), "{stderr}");
        assert!(stderr.contains("PROXMOX_VE_API_TOKEN"), "{stderr}");
        assert!(
            stderr.contains(&format!("{}/pve/token", fx.base.join("xdg").display())),
            "{stderr}"
        );
    }
    assert!(fx.calls().is_empty());
}

fn write_token(path: &Path, text: &str, mode: u32) {
    fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    fs::write(path, text).expect("write");
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

#[test]
fn the_token_comes_from_a_private_file() {
    let fx = Fx::new();
    write_token(&fx.base.join("xdg/pve/token"), &format!("{TOKEN}\n"), 0o600);
    let o = fx.pve_no_token().arg("plan").output().expect("run");
    assert_eq!(o.status.code(), Some(0), "{}", out(&o).1);
    let plan = fx
        .calls()
        .into_iter()
        .find(|c| c["argv"][0] == "plan")
        .expect("plan ran");
    assert_eq!(plan["token_set"], true);
    assert_eq!(plan["token_well_formed"], true);
    let init = fx
        .calls()
        .into_iter()
        .find(|c| c["argv"][0] == "init")
        .expect("init ran");
    assert_eq!(init["token_set"], false, "init does not need the token");

    // PVE_TOKEN_FILE names another file.
    let other = fx.base.join("elsewhere/token");
    write_token(&other, TOKEN, 0o400);
    fs::remove_file(fx.base.join("xdg/pve/token")).expect("rm");
    let o = fx
        .pve_no_token()
        .arg("plan")
        .env("PVE_TOKEN_FILE", &other)
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(0), "{}", out(&o).1);
}

#[test]
fn a_token_file_others_can_read_is_refused() {
    let fx = Fx::new();
    let p = fx.base.join("xdg/pve/token");
    write_token(&p, TOKEN, 0o644);
    let o = fx.pve_no_token().arg("plan").output().expect("run");
    let (stdout, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "the token file {} can be read by other users (mode 0644)",
            p.display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("chmod 600"), "{stderr}");
    assert!(!stderr.contains(SECRET) && !stdout.contains(SECRET));
    assert!(fx.calls().is_empty());
}

#[test]
fn a_malformed_token_is_refused_without_printing_it() {
    let fx = Fx::new();
    for bad in [
        SECRET,
        "root@pam:5f1c2e9a",
        "PVEAPIToken=terraform@pve!provider=5f1c2e9a x",
    ] {
        let o = fx
            .pve_no_token()
            .arg("plan")
            .env("PROXMOX_VE_API_TOKEN", bad)
            .output()
            .expect("run");
        let (stdout, stderr) = out(&o);
        assert_eq!(o.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("PROXMOX_VE_API_TOKEN does not hold a Proxmox API token"),
            "{stderr}"
        );
        assert!(stderr.contains("user@realm!tokenid=secret"), "{stderr}");
        assert!(
            !stderr.contains("5f1c2e9a") && !stdout.contains("5f1c2e9a"),
            "{stderr}"
        );
    }
    let p = fx.base.join("xdg/pve/token");
    write_token(&p, "just-a-secret-5f1c2e9a\n", 0o600);
    let o = fx.pve_no_token().arg("plan").output().expect("run");
    let (_, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("the token file {} does not hold", p.display())),
        "{stderr}"
    );
    assert!(!stderr.contains("5f1c2e9a"));
    assert!(fx.calls().is_empty());
}

#[test]
fn the_token_is_never_in_argv_proc_cmdline_output_or_files() {
    let fx = Fx::new();
    let proc_log = fx.base.join("proc.log");
    let mut all = String::new();
    for cmd in [
        &["plan"][..],
        &["apply"][..],
        &["output", "--json"][..],
        &["destroy", "--yes"][..],
    ] {
        let o = fx
            .pve()
            .args(cmd)
            .env("TOFU_STANDIN_PROC_LOG", &proc_log)
            .env("PVE_LOG", "1")
            .output()
            .expect("run");
        let (stdout, stderr) = out(&o);
        assert_eq!(o.status.code(), Some(0), "{cmd:?}: {stderr}");
        all.push_str(&stdout);
        all.push_str(&stderr);
    }
    assert!(!all.contains(SECRET), "pve printed the token");
    // PVE_LOG shows each command, with the token's name only.
    assert!(all.contains("PROXMOX_VE_API_TOKEN=<redacted>"), "{all}");

    let calls = fx.calls();
    assert!(calls.len() >= 8, "{calls:?}");
    for c in &calls {
        assert!(!c["argv"].to_string().contains(SECRET));
        if ["plan", "apply"].contains(&c["argv"][0].as_str().unwrap_or("")) {
            assert_eq!(c["token_set"], true, "{c}");
            assert!(c["env"]
                .as_array()
                .expect("env")
                .contains(&"PROXMOX_VE_API_TOKEN".into()));
        }
    }
    let procs = fs::read_to_string(&proc_log).expect("proc snapshot");
    // The snapshot saw the running stand-in and pve itself...
    assert!(
        procs.contains("stand-ins/tofu apply -input=false -parallelism=2 pve.tfplan"),
        "{procs}"
    );
    assert!(
        procs.lines().any(|l| l.contains("/pve destroy --yes")),
        "{procs}"
    );
    // ...and no process had the token on its command line.
    assert!(!procs.contains(SECRET));
    for entry in walk(&fx.root) {
        let bytes = fs::read(&entry).expect("read");
        assert!(
            !String::from_utf8_lossy(&bytes).contains(SECRET),
            "{} holds the token",
            entry.display()
        );
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).expect("read_dir") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn output_passes_tofu_json_through() {
    let fx = Fx::new();
    let o = fx.pve().arg("output").output().expect("run");
    let (stdout, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert_eq!(stdout, "");
    assert!(stderr.contains("No outputs found"), "{stderr}");

    assert_eq!(
        fx.pve()
            .args(["apply", "--yes"])
            .output()
            .expect("run")
            .status
            .code(),
        Some(0)
    );
    // Outputs need no token.
    let o = fx
        .pve_no_token()
        .args(["output", "--json"])
        .output()
        .expect("run");
    let (stdout, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    let json: Json = serde_json::from_str(&stdout).expect("json");
    let state = fx.state().expect("state");
    assert_eq!(json, state["outputs"]);
    fx.set_state_outputs();
    let o = fx
        .pve_no_token()
        .args(["output", "--json"])
        .output()
        .expect("run");
    let (stdout, _) = out(&o);
    assert_eq!(
        serde_json::from_str::<Json>(&stdout).expect("json"),
        fx.state().expect("state")["outputs"]
    );
    assert!(
        stdout.starts_with("{\n  \""),
        "pretty-printed as tofu does: {stdout}"
    );
    let o = fx
        .pve_no_token()
        .args(["output", "sandbox_ip"])
        .output()
        .expect("run");
    assert_eq!(out(&o).0, "\"192.0.2.11\"\n");
    let o = fx
        .pve_no_token()
        .args(["output", "--json", "vmids"])
        .output()
        .expect("run");
    assert_eq!(
        serde_json::from_str::<Json>(&out(&o).0).expect("json"),
        serde_json::json!({"sandbox": 111})
    );
    let o = fx
        .pve_no_token()
        .args(["output", "nope"])
        .output()
        .expect("run");
    let (_, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("Output \"nope\" not found"), "{stderr}");
}

#[test]
fn destroy_asks_then_applies_its_own_plan() {
    let fx = Fx::new();
    let o = fx.pve().arg("destroy").output().expect("run");
    let (_, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("Nothing to destroy"), "{stderr}");

    assert_eq!(
        fx.pve()
            .args(["apply", "--yes"])
            .output()
            .expect("run")
            .status
            .code(),
        Some(0)
    );
    let o = fx.pve().arg("destroy").output().expect("run");
    let (stdout, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stdout.contains("proxmox_virtual_environment_vm.sandbox will be destroyed"),
        "{stdout}"
    );
    assert!(
        stderr.contains("refusing to destroy these VMs without confirmation"),
        "{stderr}"
    );
    assert_eq!(
        fx.state().expect("state")["resources"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );

    let o = fx
        .pve()
        .args(["destroy", "--yes"])
        .env("TOFU_STANDIN_FAIL", "apply")
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(3));
    let o = fx.pve().args(["destroy", "--yes"]).output().expect("run");
    let (stdout, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert!(stdout.contains("2 destroyed"), "{stdout}");
    assert_eq!(
        fx.state().expect("state")["resources"]
            .as_array()
            .map(Vec::len),
        Some(0)
    );
    let subs = fx.subcommands();
    assert!(
        subs.iter()
            .any(|s| s == "plan -input=false -detailed-exitcode -out=pve.tfplan -destroy"),
        "{subs:?}"
    );
}

#[test]
fn pve_apply_never_applies_a_saved_destroy_plan() {
    let fx = Fx::new();
    assert_eq!(
        fx.pve()
            .args(["apply", "--yes"])
            .output()
            .expect("run")
            .status
            .code(),
        Some(0)
    );
    // Leave a destroy plan behind (refused: no terminal).
    assert_eq!(
        fx.pve().arg("destroy").output().expect("run").status.code(),
        Some(2)
    );
    // Plant one by hand as if a run had died after planning.
    let st = fx.state().expect("state");
    let meta = serde_json::json!({
        "kind": "destroy",
        "config_sha256": sha256(&fs::read(fx.state_dir().join("config.tf.json")).expect("cfg")),
        "state": {"lineage": st["lineage"], "serial": st["serial"]},
        "changes": true
    });
    fs::write(fx.state_dir().join("pve.tfplan.json"), meta.to_string()).expect("meta");
    fs::write(fx.state_dir().join("pve.tfplan"), "{}").expect("plan");
    let o = fx.pve().arg("apply").output().expect("run");
    let (stdout, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("the saved plan is a destroy plan"),
        "{stderr}"
    );
    assert!(stdout.contains("No changes."), "{stdout}");
    assert_eq!(
        fx.state().expect("state")["resources"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
}

#[test]
fn failures_of_tofu_are_reported_and_leave_no_plan() {
    let fx = Fx::new();
    let o = fx
        .pve()
        .arg("plan")
        .env("TOFU_STANDIN_FAIL", "init")
        .output()
        .expect("run");
    let (_, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("`tofu init` failed"), "{stderr}");
    assert!(
        stderr.contains("stand-in failure requested"),
        "tofu's stderr is kept: {stderr}"
    );

    let o = fx
        .pve()
        .arg("plan")
        .env("TOFU_STANDIN_FAIL", "plan")
        .output()
        .expect("run");
    let (_, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("`tofu plan` failed (exit code 1)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("stand-in failure requested"),
        "tofu's own message shows: {stderr}"
    );
    assert!(!fx.state_dir().join("pve.tfplan.json").exists());
    assert_eq!(
        calls_to(&fx.subcommands(), "init").len(),
        2,
        "a failed init is retried"
    );

    assert_eq!(
        fx.pve().arg("plan").output().expect("run").status.code(),
        Some(0)
    );
    assert_eq!(calls_to(&fx.subcommands(), "init").len(), 2);

    let o = fx
        .pve()
        .arg("apply")
        .env("TOFU_STANDIN_FAIL", "apply")
        .output()
        .expect("run");
    let (_, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("`tofu apply` failed"), "{stderr}");
    assert!(
        !fx.state_dir().join("pve.tfplan").exists(),
        "a failed apply spends the plan"
    );
}

#[test]
fn a_missing_tofu_says_how_to_get_it() {
    let fx = Fx::new();
    let o = fx
        .pve()
        .arg("plan")
        .env("PVE_TOOL_TOFU", "/nonexistent/tofu")
        .output()
        .expect("run");
    let (_, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("`tofu` was not found"), "{stderr}");
    assert!(stderr.contains("nix run .#tofu-plan"), "{stderr}");
}

#[test]
fn tofu_workdir_moves_the_working_folder() {
    let fx = Fx::new();
    let o = fx
        .pve()
        .arg("plan")
        .env("TOFU_WORKDIR", "../work")
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(0), "{}", out(&o).1);
    assert!(fx.base.join("work/pve.tfplan").is_file());
    assert!(fx.base.join("work/config.tf.json").is_file());
    assert!(!fx.state_dir().exists());
}

#[test]
fn each_command_has_help_with_an_example() {
    for cmd in ["plan", "apply", "output", "destroy"] {
        let o = Command::new(env!("CARGO_BIN_EXE_pve"))
            .args([cmd, "--help"])
            .output()
            .expect("run");
        let (stdout, _) = out(&o);
        assert_eq!(o.status.code(), Some(0));
        assert!(stdout.contains("Example"), "{cmd}: {stdout}");
        assert!(stdout.contains(&format!("pve {cmd}")), "{cmd}: {stdout}");
    }
}

/// Runs `pve ARGS` on a pseudo-terminal (util-linux `script`), typing
/// `answer`.
/// `pve ARGS` on a terminal (support::terminal), with the environment of
/// `fx.pve()` (PVE_LOG off).
fn on_terminal(fx: &Fx, args: &str) -> Terminal {
    let pve = fx.pve();
    Terminal::spawn(&format!("{} {args}", env!("CARGO_BIN_EXE_pve")), |c| {
        c.current_dir(&fx.root);
        for (k, v) in pve.get_envs() {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        c.env_remove("PVE_LOG");
    })
}

/// `pve ARGS` on a terminal, `answer` typed once `question` shows:
/// (exit code, the screen).
fn answered(fx: &Fx, args: &str, question: &str, answer: &str) -> (Option<i32>, String) {
    let mut term = on_terminal(fx, args);
    term.answer(question, answer);
    let done = term.finish();
    (done.status.code(), done.screen)
}

#[test]
fn on_a_terminal_apply_and_destroy_ask_first() {
    let fx = Fx::new();
    let (code, text) = answered(&fx, "apply", "Apply the plan above? [y/N]", "n");
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("Apply the plan above? [y/N]"), "{text}");
    assert!(text.contains("Nothing applied."), "{text}");
    assert_eq!(calls_to(&fx.subcommands(), "apply").len(), 0);

    let (code, text) = answered(&fx, "apply", "Apply the plan above? [y/N]", "y");
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("Apply complete!"), "{text}");

    // Destroy wants the word typed out; "yes" is not enough.
    let (code, text) = answered(&fx, "destroy", "Type `destroy` to go on:", "yes");
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("Type `destroy` to go on:"), "{text}");
    assert!(text.contains("Nothing destroyed."), "{text}");
    assert_eq!(
        fx.state().expect("state")["resources"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    let (code, text) = answered(&fx, "destroy", "Type `destroy` to go on:", "destroy");
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(
        fx.state().expect("state")["resources"]
            .as_array()
            .map(Vec::len),
        Some(0)
    );
}

#[test]
fn a_fleet_that_fails_pve_check_is_not_planned() {
    let fx = Fx::new();
    fx.edit_hosts("vmid = 109;", "vmid = 111;");
    let o = fx.pve().args(["apply", "--yes"]).output().expect("run");
    let (_, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("not planning from it"), "{stderr}");
    assert!(
        stderr.contains("hosts.nix:"),
        "the diagnostics point into hosts.nix: {stderr}"
    );
    assert!(fx.calls().is_empty());
}

#[test]
fn output_reads_while_another_pve_holds_the_lock() {
    let fx = Fx::new();
    assert_eq!(
        fx.pve()
            .args(["apply", "--yes"])
            .output()
            .expect("run")
            .status
            .code(),
        Some(0)
    );
    fx.set_state_outputs();
    let _held =
        pve_fleet::fsutil::RepoLock::acquire(&fx.root, std::time::Duration::ZERO).expect("lock");
    let o = fx
        .pve_no_token()
        .args(["output", "sandbox_ip"])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(0), "{}", out(&o).1);
    assert_eq!(out(&o).0, "\"192.0.2.11\"\n");
}
