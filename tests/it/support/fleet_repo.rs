//! Helpers for the `pve new` / `pve remove` / `pve import` tests: the example
//! fleet in a git repository, pointed at the simulated Proxmox host (real
//! sshd, tests/it/support/pvesim), with the OpenTofu stand-in
//! (tests/stand-ins/tofu) and the sops stand-in (tests/stand-ins/sops) on
//! their `PVE_TOOL_*` overrides.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value as Json;

pub use super::out;
pub use super::pvesim::{self, Sim};
use super::{copy_dir, read_jsonl, stand_in};

pub const TOKEN: &str = "terraform@pve!provider=5f1c2e9a-7b3d-4e8f-a1c6-d2b9e0f47a13";

pub struct Fx {
    pub sim: Sim,
    pub root: PathBuf,
    pub logs: tempfile::TempDir,
}

pub fn manifest() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn git(root: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(root)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.org"])
        .args(args)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Fx {
    /// The example fleet (hosts.nix, hosts/, vms/, .gitignore) in the
    /// simulator's fleet folder, `_proxmox` pointed at the simulator,
    /// committed to a fresh git repository.
    pub fn new() -> Fx {
        Fx::with_hosts(|t| t)
    }

    /// Like [`Fx::new`], with hosts.nix changed by `edit` before the first
    /// render and commit.
    pub fn with_hosts(edit: impl FnOnce(String) -> String) -> Fx {
        let sim = Sim::start();
        let root = sim.fleet.clone();
        let src = manifest();
        let text = std::fs::read_to_string(src.join("hosts.nix")).expect("hosts.nix");
        let text = text
            .replacen("host = \"192.168.1.12\";", "host = \"127.0.0.1\";", 1)
            .replacen("node = \"prom\";", "node = \"pve\";", 1)
            .replacen(
                "defaultStorage = \"nvmeprom\";",
                "defaultStorage = \"local-lvm\";",
                1,
            )
            .replacen("templateVmid = 9003;", "templateVmid = 9000;", 1)
            .replacen("storage = \"nvmeprom\";", "storage = \"local-lvm\";", 1);
        let text = edit(text);
        std::fs::write(root.join("hosts.nix"), text).expect("hosts.nix");
        copy_dir(&src.join("hosts"), &root.join("hosts"));
        std::fs::create_dir_all(root.join("vms/tofu")).expect("vms");
        std::fs::copy(src.join(".gitignore"), root.join(".gitignore")).expect(".gitignore");
        sim.pin_host_key();
        let logs = tempfile::tempdir().expect("logs");
        let fx = Fx { sim, root, logs };
        // The committed generated files, as `pve render` writes them.
        let o = fx.pve().arg("render").output().expect("render");
        assert!(
            o.status.success(),
            "render: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        git(&fx.root, &["init", "-q"]);
        git(&fx.root, &["add", "-A"]);
        git(&fx.root, &["commit", "-qm", "fleet"]);
        fx
    }

    /// The environment of every `pve` run: the simulator (its port and
    /// client key), the stand-ins and their logs, the token. `None` removes.
    pub fn envs(&self) -> Vec<(String, Option<String>)> {
        let s = |v: &str| Some(v.to_string());
        let p = |v: &Path| Some(v.display().to_string());
        let logs = self.logs.path();
        vec![
            ("PVE_HOSTS".into(), None),
            ("PROXMOX_HOST".into(), None),
            ("PROXMOX_NODE".into(), None),
            ("PROXMOX_READONLY_VMIDS".into(), None),
            ("PVE_LOG".into(), None),
            ("TOFU_WORKDIR".into(), None),
            ("TOFU_STANDIN_FAIL".into(), None),
            ("PVE_TOKEN_FILE".into(), None),
            ("PROXMOX_USER".into(), s(&pvesim::user())),
            ("PROXMOX_SSH_PORT".into(), s(&self.sim.port.to_string())),
            ("PROXMOX_SSH_IDENTITY".into(), p(&self.sim.client_key)),
            ("PROXMOX_CONNECT_TIMEOUT".into(), s("30")),
            ("PVE_TOOL_TOFU".into(), p(&stand_in("tofu"))),
            ("PVE_TOOL_SOPS".into(), p(&stand_in("sops"))),
            ("TOFU_STANDIN_LOG".into(), p(&logs.join("tofu.log"))),
            ("SOPS_STANDIN_LOG".into(), p(&logs.join("sops.log"))),
            ("PROXMOX_VE_API_TOKEN".into(), s(TOKEN)),
            ("HOME".into(), p(logs)),
            ("XDG_CONFIG_HOME".into(), p(&logs.join("xdg"))),
        ]
    }

    /// `pve` in the fleet, talking to the simulator, with the stand-ins.
    pub fn pve(&self) -> assert_cmd::Command {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_pve"));
        self.apply_env(&mut c);
        assert_cmd::Command::from_std(c)
    }

    pub fn apply_env(&self, c: &mut Command) {
        c.current_dir(&self.root);
        for (k, v) in self.envs() {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.root.join(rel)).unwrap_or_default()
    }

    /// `git status --porcelain` (untracked files included).
    pub fn status(&self) -> String {
        git(
            &self.root,
            &["status", "--porcelain", "--untracked-files=all"],
        )
    }

    /// Every tofu call as one argv string.
    pub fn tofu_calls(&self) -> Vec<String> {
        logged_calls(&self.logs.path().join("tofu.log"))
    }

    /// Every sops call as one argv string.
    pub fn sops_calls(&self) -> Vec<String> {
        logged_calls(&self.logs.path().join("sops.log"))
    }

    pub fn tofu_state(&self) -> Option<Json> {
        tofu_state_in(&self.root)
    }

    /// Resource names recorded in the OpenTofu state.
    pub fn state_vms(&self) -> Vec<String> {
        self.tofu_state()
            .and_then(|s| {
                s["resources"].as_array().map(|rs| {
                    rs.iter()
                        .map(|r| r["name"].as_str().unwrap_or("").to_string())
                        .collect()
                })
            })
            .unwrap_or_default()
    }
}

/// Every call a stand-in logged (TOFU_STANDIN_LOG, SOPS_STANDIN_LOG) as one
/// argv string: `init -input=false -no-color`.
pub fn logged_calls(log: &Path) -> Vec<String> {
    read_jsonl(log).iter().map(|c| argv(c).join(" ")).collect()
}

/// The calls in `calls` (from [`logged_calls`]) of the subcommand `sub`.
pub fn calls_to(calls: &[String], sub: &str) -> Vec<String> {
    calls
        .iter()
        .filter(|c| c.split(' ').next() == Some(sub))
        .cloned()
        .collect()
}

/// The OpenTofu state of the fleet at `root` (pve's working folder), if
/// there is one.
pub fn tofu_state_in(root: &Path) -> Option<Json> {
    std::fs::read_to_string(root.join("vms/tofu/.state/terraform.tfstate"))
        .ok()
        .map(|t| serde_json::from_str(&t).expect("state json"))
}

fn argv(c: &Json) -> Vec<String> {
    c["argv"]
        .as_array()
        .expect("argv")
        .iter()
        .map(|a| a.as_str().unwrap_or("").to_string())
        .collect()
}
