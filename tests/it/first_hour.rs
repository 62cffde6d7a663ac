//! A new user's first hour (issue 14): `pve init` in an empty folder, then
//! `pve check`, `pve render`, `pve new` against the simulated Proxmox host
//! and `pve render --check`; the fleet's own `hosts/vm_base/` as the base
//! of new hosts; `pve config get|set`; the non-VM scaffold; and `pve
//! remove` taking away the folder of the host's `configurationFile`.

use std::path::Path;
use std::process::{Command, Output};

use crate::support::fleet_repo::{git, Fx, Sim};
use crate::support::secrets::age_keygen;
use crate::support::{files, out};

/// A key pair verified against ssh-to-age (its README): the public key and
/// the recipient ssh-to-age prints for it.
const SSH_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOHz+U0YtjINc54dZiJNclfmEFifF7RXCFlNlTbuZBji me@laptop";
const SSH_KEY_RECIPIENT: &str = "age17044m9wgakla6pzftf4srtl3h5mcsr85jysgt5fg23zpnta8sfdqhzn452";

const INIT_FLAGS: &[&str] = &[
    "init",
    "--proxmox-host",
    "192.0.2.10",
    "--node",
    "pve",
    "--storage",
    "local-lvm",
    "--template-vmid",
    "9000",
];

/// `pve ARGS` in `dir` with `home` as HOME (and its `xdg` as
/// XDG_CONFIG_HOME), so no key of the person running the tests is found.
fn pve_at(dir: &Path, home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pve"))
        .current_dir(dir)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("xdg"))
        .env_remove("SOPS_AGE_KEY_FILE")
        .env_remove("PVE_HOSTS")
        .args(args)
        .output()
        .expect("pve runs")
}

/// An empty fleet folder and a HOME with `~/.ssh/id_ed25519.pub`.
struct Empty {
    dir: tempfile::TempDir,
    home: tempfile::TempDir,
}

impl Empty {
    fn new() -> Empty {
        let home = tempfile::tempdir().expect("home");
        std::fs::create_dir_all(home.path().join(".ssh")).expect(".ssh");
        std::fs::write(
            home.path().join(".ssh/id_ed25519.pub"),
            format!("{SSH_KEY}\n"),
        )
        .expect("pub key");
        Empty {
            dir: tempfile::tempdir().expect("fleet"),
            home,
        }
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
    fn pve(&self, args: &[&str]) -> Output {
        pve_at(self.path(), self.home.path(), args)
    }
    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path().join(rel)).expect(rel)
    }
    /// `pve init` (plus `flags`, written as on a command line) on a
    /// pseudo-terminal, in this fleet with its own HOME.
    fn init_on_terminal(&self, flags: &str) -> crate::support::terminal::Terminal {
        let pve = env!("CARGO_BIN_EXE_pve");
        crate::support::terminal::Terminal::spawn(&format!("'{pve}' init{flags}"), |cmd| {
            cmd.current_dir(self.path())
                .env("HOME", self.home.path())
                .env("XDG_CONFIG_HOME", self.home.path().join("xdg"))
                .env_remove("SOPS_AGE_KEY_FILE")
                .env_remove("PVE_HOSTS");
        })
    }
    /// `pve init` with every flag; asserts it worked.
    fn init(&self) {
        let o = self.pve(INIT_FLAGS);
        assert_eq!(o.status.code(), Some(0), "{:?}", out(&o));
    }
}

fn is_empty(dir: &Path) -> bool {
    std::fs::read_dir(dir).expect("read_dir").next().is_none()
}

#[test]
fn the_first_hour_init_check_render_new_render_check() {
    let sim = Sim::start();
    let root = sim.fleet.clone();
    // The simulator prepares a fleet folder: start from an empty one.
    std::fs::remove_file(root.join("hosts.nix")).expect("rm");
    std::fs::remove_dir_all(root.join("vms")).expect("rm");
    assert!(is_empty(&root));
    let logs = tempfile::tempdir().expect("logs");
    let fx = Fx { sim, root, logs };
    // A real age identity where sops looks for it (XDG_CONFIG_HOME is
    // logs/xdg for every run of fx.pve()); its recipient as age-keygen
    // itself wrote it.
    let sops_age = fx.logs.path().join("xdg/sops/age");
    std::fs::create_dir_all(&sops_age).expect("mkdir");
    let key = age_keygen(&sops_age, "keys");
    assert_eq!(key.file, sops_age.join("keys.txt"));
    let secret = std::fs::read_to_string(&key.file).expect("key");
    let secret = secret
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-1"))
        .expect("identity")
        .to_string();

    let o = fx
        .pve()
        .args([
            "init",
            "--proxmox-host",
            "127.0.0.1",
            "--node",
            "pve",
            "--storage",
            "local-lvm",
            "--template-vmid",
            "9000",
        ])
        .output()
        .expect("init");
    let (stdout, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains(&key.recipient), "{stdout}");
    assert!(!format!("{stdout}{stderr}").contains(&secret[20..]));
    let hosts = fx.read("hosts.nix");
    assert!(
        hosts.contains(&format!("admin = \"{}\";", key.recipient)),
        "{hosts}"
    );
    assert!(!hosts.contains(&secret[20..]), "the identity leaked");
    let ignore = fx.read(".gitignore");
    for l in [".pve.lock", "/vms/tofu/.state/", "/vms/.journal/"] {
        assert!(ignore.lines().any(|x| x == l), "{l} in {ignore}");
    }
    assert!(fx.read("flake.nix").contains("pve-fleet.lib.mkFleet"));

    let o = fx.pve().arg("check").output().expect("check");
    assert_eq!(o.status.code(), Some(0), "{:?}", out(&o));

    // The fleet's base is what new VMs get: a marker line added to it,
    // with the placeholder, shows up in the new host's file.
    let base = fx.root.join("hosts/vm_base/configuration.nix");
    let mut text = std::fs::read_to_string(&base).expect("base");
    assert!(text.contains("@name@"), "{text}");
    text.push_str("# first-hour marker for @name@\n");
    std::fs::write(&base, text).expect("write");

    let o = fx.pve().arg("render").output().expect("render");
    assert_eq!(o.status.code(), Some(0), "{:?}", out(&o));
    for f in [
        "vms/tofu/config.tf.json",
        "secrets/.sops.yaml",
        "vms/known_hosts",
    ] {
        assert!(fx.root.join(f).is_file(), "{f} rendered");
    }
    assert!(fx.read("secrets/.sops.yaml").contains(&key.recipient));
    git(&fx.root, &["init", "-q"]);
    git(&fx.root, &["add", "-A"]);
    git(&fx.root, &["commit", "-qm", "fleet"]);
    // `git add -A` took nothing pve must not commit.
    let tracked = git(&fx.root, &["ls-files"]);
    assert!(!tracked.contains(".pve.lock"), "{tracked}");

    // What the base expects of every host, as a setting of the fleet.
    let o = fx
        .pve()
        .args(["config", "set", "_defaults.user", "admin", "--string"])
        .output()
        .expect("config set");
    assert_eq!(o.status.code(), Some(0), "{:?}", out(&o));
    fx.sim.pin_host_key();
    let o = fx
        .pve()
        .args([
            "new",
            "--name",
            "web-1",
            "--cores",
            "2",
            "--memory",
            "2048",
            "--disk",
            "32G",
            "--authorized-keys",
            &format!("[ \"{SSH_KEY}\" ]"),
            "--yes",
        ])
        .output()
        .expect("new");
    let (stdout, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stderr.contains("from hosts/vm_base"), "{stderr}");
    let conf = fx.read("hosts/web-1/configuration.nix");
    assert!(
        conf.lines().any(|l| l == "# first-hour marker for web-1"),
        "{conf}"
    );
    assert!(conf.starts_with("# web-1: "), "{conf}");
    assert!(
        !conf.contains("@name@") && !conf.contains("# vm_base:"),
        "{conf}"
    );
    assert!(fx.root.join("hosts/web-1/home.nix").is_file());
    let hosts = fx.read("hosts.nix");
    let entry = &hosts[hosts.find("web-1 = {").expect("entry")..];
    assert!(entry.contains("user = \"admin\";"), "{entry}");
    assert!(
        entry.contains(&format!("authorizedKeys = [ \"{SSH_KEY}\" ];")),
        "{entry}"
    );

    let o = fx
        .pve()
        .args(["render", "--check"])
        .output()
        .expect("render --check");
    assert_eq!(o.status.code(), Some(0), "{:?}", out(&o));
    let o = fx.pve().arg("check").output().expect("check");
    assert_eq!(o.status.code(), Some(0), "{:?}", out(&o));
}

#[test]
fn init_refuses_an_existing_fleet_and_keeps_every_existing_file() {
    // An existing flake repository: its flake.nix and .gitignore stay,
    // .gitignore gets only the lines it lacks.
    let e = Empty::new();
    std::fs::write(e.path().join("flake.nix"), "{ outputs = _: { }; }\n").expect("flake");
    std::fs::write(e.path().join(".gitignore"), "/target\n.pve.lock").expect("ignore");
    let o = e.pve(INIT_FLAGS);
    let (stdout, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("kept (it exists) flake.nix"), "{stdout}");
    assert!(stderr.contains("docs/flake.md"), "{stderr}");
    assert_eq!(e.read("flake.nix"), "{ outputs = _: { }; }\n");
    assert_eq!(
        e.read(".gitignore"),
        "/target\n.pve.lock\n/vms/tofu/.state/\n/vms/.journal/\n"
    );
    // The admin came from ~/.ssh/id_ed25519.pub.
    assert!(e.read("hosts.nix").contains(SSH_KEY_RECIPIENT));

    // A second init: refused, nothing changed.
    let before = files(e.path(), &[".pve.lock"]);
    let o = e.pve(INIT_FLAGS);
    assert_eq!(o.status.code(), Some(1), "{:?}", out(&o));
    assert!(out(&o).1.contains("exists already"), "{:?}", out(&o));
    assert_eq!(files(e.path(), &[".pve.lock"]), before);
}

#[test]
fn init_dry_run_and_missing_answers_write_nothing() {
    let e = Empty::new();
    let mut dry = INIT_FLAGS.to_vec();
    dry.push("--dry-run");
    let o = e.pve(&dry);
    let (stdout, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(0), "{stdout}{stderr}");
    for f in [
        "hosts.nix",
        "hosts/vm_base/configuration.nix",
        "hosts/vm_base/home.nix",
        "flake.nix",
        ".gitignore",
    ] {
        assert!(stdout.contains(&format!("would write {f}\n")), "{stdout}");
    }
    assert!(is_empty(e.path()), "--dry-run wrote something");
    dry.push("--json");
    let o = e.pve(&dry);
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(json["dry_run"], true);
    assert_eq!(json["files"].as_array().map(Vec::len), Some(5), "{json}");
    assert_eq!(json["admin"]["recipient"], SSH_KEY_RECIPIENT);
    assert!(is_empty(e.path()));

    // No terminal: the missing answers are named, nothing is written.
    let o = e.pve(&["init"]);
    let stderr = out(&o).1;
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    for flag in ["--proxmox-host", "--node", "--storage", "--template-vmid"] {
        assert!(stderr.contains(flag), "{flag}: {stderr}");
    }
    let o = e.pve(&["init", "--yes"]);
    let stderr = out(&o).1;
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--proxmox-host") && !stderr.contains("--node"));
    // No key anywhere: the flag to give is named.
    let bare = tempfile::tempdir().expect("home");
    let o = pve_at(e.path(), bare.path(), INIT_FLAGS);
    let stderr = out(&o).1;
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--admin-age-recipient"), "{stderr}");
    // A value pve check would refuse is refused before anything is written.
    let o = e.pve(&[
        "init",
        "--proxmox-host",
        "192.0.2.10",
        "--storage",
        "bad storage!",
        "--yes",
    ]);
    assert_eq!(o.status.code(), Some(2), "{:?}", out(&o));
    assert!(is_empty(e.path()));
}

#[test]
fn config_get_and_set_edit_the_settings_in_place_and_refuse_what_check_refuses() {
    let e = Empty::new();
    e.init();
    let get = |key: &str| {
        let o = e.pve(&["config", "get", key]);
        assert_eq!(o.status.code(), Some(0), "{:?}", out(&o));
        out(&o).0
    };
    assert_eq!(get("_proxmox.templateVmid"), "9000\n");
    assert_eq!(get("_proxmox.host"), "192.0.2.10\n");
    let before = e.read("hosts.nix");
    let o = e.pve(&["config", "set", "_proxmox.templateVmid", "9003"]);
    assert_eq!(o.status.code(), Some(0), "{:?}", out(&o));
    assert_eq!(get("_proxmox.templateVmid"), "9003\n");
    // Exactly that line changed.
    let after = e.read("hosts.nix");
    let changed: Vec<(&str, &str)> = before
        .lines()
        .zip(after.lines())
        .filter(|(a, b)| a != b)
        .collect();
    assert_eq!(
        changed,
        [(
            "    templateVmid = 9000; # NixOS template: SeaBIOS, virtio0, GRUB",
            "    templateVmid = 9003; # NixOS template: SeaBIOS, virtio0, GRUB"
        )]
    );
    assert_eq!(before.lines().count(), after.lines().count());
    // A second admin, from a real age key; --string for a bare word.
    let keys = tempfile::tempdir().expect("keys");
    let alice = age_keygen(keys.path(), "alice");
    let quoted = format!("\"{}\"", alice.recipient);
    let o = e.pve(&["config", "set", "_sops.admins.alice", &quoted]);
    assert_eq!(o.status.code(), Some(0), "{:?}", out(&o));
    assert_eq!(get("_sops.admins.alice"), format!("{}\n", alice.recipient));
    let o = e.pve(&["config", "set", "_proxmox.node", "pve2", "--string"]);
    assert_eq!(o.status.code(), Some(0), "{:?}", out(&o));
    let o = e.pve(&["config", "get", "_proxmox", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(json["node"], "pve2");
    assert_eq!(json["templateVmid"], 9003);
    let o = e.pve(&["check"]);
    assert_eq!(o.status.code(), Some(0), "{:?}", out(&o));

    // An edit `pve check` refuses: shown, exit 1, the file unchanged...
    let before = e.read("hosts.nix");
    let o = e.pve(&[
        "config",
        "set",
        "_proxmox.defaultStorage",
        "bad storage!",
        "-s",
    ]);
    let stderr = out(&o).1;
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--force"), "{stderr}");
    assert!(
        stderr.contains("hosts.nix:"),
        "the finding is shown: {stderr}"
    );
    assert_eq!(e.read("hosts.nix"), before);
    // ... unless --force.
    let o = e.pve(&[
        "config",
        "set",
        "_proxmox.defaultStorage",
        "bad storage!",
        "-s",
        "--force",
    ]);
    assert_eq!(o.status.code(), Some(0), "{:?}", out(&o));
    assert_eq!(e.pve(&["check"]).status.code(), Some(1));

    // Keys outside the settings sets, and unknown ones.
    let o = e.pve(&["config", "set", "web.proxmox.cores", "2"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(out(&o).1.contains("pve host set"), "{:?}", out(&o));
    let o = e.pve(&["config", "get", "_proxmox.nope"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn config_get_shows_pves_default_for_an_unset_key_marked_as_one() {
    let e = Empty::new();
    e.init();
    let get = |args: &[&str]| {
        let o = e.pve(&[&["config", "get"][..], args].concat());
        assert_eq!(o.status.code(), Some(0), "{args:?}: {:?}", out(&o));
        out(&o).0
    };
    // pve init writes none of these; pve's own defaults are shown, marked
    // (with --json the value alone, in the shape a set key prints).
    assert_eq!(get(&["_proxmox.parallelClones"]), "2 (default)\n");
    assert_eq!(get(&["_proxmox.bridge"]), "vmbr0 (default)\n");
    assert_eq!(get(&["_proxmox.vmidRange"]), "[100,999] (default)\n");
    let json: serde_json::Value =
        serde_json::from_str(&get(&["_proxmox.parallelClones", "--json"])).expect("json");
    assert_eq!(json, serde_json::json!(2));
    let json: serde_json::Value =
        serde_json::from_str(&get(&["_proxmox.bridge", "--json"])).expect("json");
    assert_eq!(json, serde_json::json!("vmbr0"));
    // Once set, the value is hosts.nix's and no longer marked.
    let o = e.pve(&["config", "set", "_proxmox.parallelClones", "4"]);
    assert_eq!(o.status.code(), Some(0), "{:?}", out(&o));
    assert_eq!(get(&["_proxmox.parallelClones"]), "4\n");
    assert_eq!(get(&["_proxmox.parallelClones", "--json"]), "4\n");
    // A key pve has no default for is still unset (exit 2), and a value
    // only `pve init` suggests is not passed off as a default.
    let o = e.pve(&["config", "get", "_proxmox.defaultStorage"]);
    assert_eq!(o.status.code(), Some(0), "{:?}", out(&o));
    assert!(!out(&o).0.contains("(default)"), "{:?}", out(&o));
    let o = e.pve(&["config", "get", "_sops.nope"]);
    assert_eq!(o.status.code(), Some(2), "{:?}", out(&o));
    assert!(
        out(&o).1.contains("does not set `_sops.nope`"),
        "{:?}",
        out(&o)
    );
}

#[test]
fn config_set_creates_missing_settings_sets_and_host_set_points_there() {
    let e = Empty::new();
    std::fs::write(
        e.path().join("hosts.nix"),
        "# my fleet\n{\n  web = { };\n}\n",
    )
    .expect("hosts.nix");
    let o = e.pve(&["host", "set", "_proxmox", "host", "\"pve\""]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        out(&o).1.contains("pve config set _proxmox.KEY VALUE"),
        "{:?}",
        out(&o)
    );
    let o = e.pve(&[
        "config",
        "set",
        "_proxmox.host",
        "pve.lan",
        "--string",
        "--dry-run",
    ]);
    assert_eq!(o.status.code(), Some(0), "{:?}", out(&o));
    assert!(
        out(&o).0.contains("+  _proxmox = { host = \"pve.lan\"; };"),
        "{:?}",
        out(&o)
    );
    assert_eq!(e.read("hosts.nix"), "# my fleet\n{\n  web = { };\n}\n");
    let o = e.pve(&["config", "set", "_proxmox.host", "pve.lan", "--string"]);
    assert_eq!(o.status.code(), Some(0), "{:?}", out(&o));
    assert_eq!(
        e.read("hosts.nix"),
        "# my fleet\n{\n  web = { };\n  _proxmox = { host = \"pve.lan\"; };\n}\n"
    );
    let o = e.pve(&["eval"]);
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(json["_proxmox"]["host"], "pve.lan");
}

#[test]
fn a_laptop_gets_a_scaffold_without_grub_nodev_or_the_guest_agent() {
    let e = Empty::new();
    e.init();
    let hosts = e.read("hosts.nix");
    let at = hosts.rfind('}').expect("end");
    let hosts = format!(
        "{}  laptop = {{\n    configurationFile = ./hosts/laptop/configuration.nix;\n    homeFile = ./hosts/laptop/home.nix;\n  }};\n{}",
        &hosts[..at],
        &hosts[at..]
    );
    std::fs::write(e.path().join("hosts.nix"), hosts).expect("write");
    assert_eq!(e.pve(&["check"]).status.code(), Some(1), "files missing");
    let o = e.pve(&["scaffold", "laptop"]);
    assert_eq!(o.status.code(), Some(0), "{:?}", out(&o));
    let conf = e.read("hosts/laptop/configuration.nix");
    assert!(!conf.contains("nodev"), "{conf}");
    assert!(!conf.contains("qemuGuest"), "{conf}");
    assert!(conf.contains("systemd-boot.enable = true;"), "{conf}");
    for f in ["configuration.nix", "home.nix"] {
        let o = Command::new("nix-instantiate")
            .arg("--parse")
            .arg(e.path().join("hosts/laptop").join(f))
            .output()
            .expect("nix-instantiate");
        assert!(o.status.success(), "{f}: {:?}", out(&o));
    }
    let o = e.pve(&["check"]);
    assert_eq!(o.status.code(), Some(0), "{:?}", out(&o));
    // A VM (not in hosts.nix yet) gets the fleet's base; --machine the
    // machine's.
    let o = e.pve(&["scaffold", "web-1"]);
    assert_eq!(o.status.code(), Some(0), "{:?}", out(&o));
    assert!(e
        .read("hosts/web-1/configuration.nix")
        .contains("\"nodev\""));
    let o = e.pve(&["scaffold", "desk", "--machine"]);
    assert_eq!(o.status.code(), Some(0), "{:?}", out(&o));
    assert!(!e.read("hosts/desk/configuration.nix").contains("nodev"));
}

#[test]
fn the_base_is_copied_whole_with_sub_folders_and_the_name_substituted() {
    let e = Empty::new();
    e.init();
    let sub = e.path().join("hosts/vm_base/modules");
    std::fs::create_dir_all(&sub).expect("mkdir");
    std::fs::write(
        sub.join("net.nix"),
        "# vm_base: a note about the base\n{ networking.hostName = \"@name@\"; }\n",
    )
    .expect("write");
    let o = e.pve(&["scaffold", "db-2"]);
    assert_eq!(o.status.code(), Some(0), "{:?}", out(&o));
    assert_eq!(
        e.read("hosts/db-2/modules/net.nix"),
        "{ networking.hostName = \"db-2\"; }\n"
    );
    // What init wrote as the base renders, for a host, to the built-in
    // files: a fleet without a base gets the same.
    let with_base = e.read("hosts/db-2/configuration.nix");
    std::fs::remove_dir_all(e.path().join("hosts/vm_base")).expect("rm");
    let o = e.pve(&["scaffold", "db-3"]);
    assert_eq!(o.status.code(), Some(0), "{:?}", out(&o));
    assert!(out(&o).1.contains("built-in"), "{:?}", out(&o));
    assert_eq!(
        e.read("hosts/db-3/configuration.nix"),
        with_base.replace("db-2", "db-3")
    );
}

#[test]
fn a_base_leading_outside_the_fleet_is_refused_and_nothing_is_written() {
    let outside = tempfile::tempdir().expect("outside");
    std::fs::write(outside.path().join("secret.nix"), "# not yours\n").expect("write");
    // hosts/vm_base itself a link to a folder outside the fleet.
    let e = Empty::new();
    e.init();
    let base = e.path().join("hosts/vm_base");
    std::fs::remove_dir_all(&base).expect("rm");
    std::os::unix::fs::symlink(outside.path(), &base).expect("symlink");
    let before = files(e.path(), &[".pve.lock"]);
    let o = e.pve(&["scaffold", "web-1"]);
    let stderr = out(&o).1;
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("outside"), "{stderr}");
    assert!(!e.path().join("hosts/web-1").exists());
    assert_eq!(files(e.path(), &[".pve.lock"]), before);

    // A link inside the base to a file outside it.
    let e = Empty::new();
    e.init();
    std::os::unix::fs::symlink(
        outside.path().join("secret.nix"),
        e.path().join("hosts/vm_base/leak.nix"),
    )
    .expect("symlink");
    let o = e.pve(&["scaffold", "web-1"]);
    let stderr = out(&o).1;
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("hosts/vm_base/leak.nix"), "{stderr}");
    assert!(!e.path().join("hosts/web-1").exists());

    // The placeholder is no name a host can have: names are DNS labels.
    for name in ["@name@", "x@name@", "../vm_base"] {
        let o = e.pve(&["scaffold", name]);
        assert_eq!(o.status.code(), Some(2), "{name}: {:?}", out(&o));
    }
}

/// The example fleet with `mail` (its files in hosts/mailserver/, a
/// folder not named after it) and, when `shared`, `relay` using that
/// folder too.
fn fleet_with_mail(shared: bool) -> Fx {
    Fx::with_hosts(move |t| {
        let at = t.rfind('}').expect("end");
        let mut hosts = String::from(
            "  mail = {\n    configurationFile = ./hosts/mailserver/configuration.nix;\n  };\n",
        );
        if shared {
            hosts.push_str(
                "  relay = {\n    configurationFile = ./hosts/mailserver/relay.nix;\n  };\n",
            );
        }
        format!("{}{hosts}{}", &t[..at], &t[at..])
    })
}

fn write_mail_folder(fx: &Fx) {
    let d = fx.root.join("hosts/mailserver");
    std::fs::create_dir_all(&d).expect("mkdir");
    for f in ["configuration.nix", "relay.nix"] {
        std::fs::write(d.join(f), "{ ... }: { }\n").expect("write");
    }
}

#[test]
fn remove_takes_the_folder_of_the_configuration_file_unless_another_host_uses_it() {
    for shared in [false, true] {
        let fx = fleet_with_mail(shared);
        write_mail_folder(&fx);
        let o = fx
            .pve()
            .args(["remove", "mail", "--yes"])
            .output()
            .expect("remove");
        let (stdout, stderr) = out(&o);
        assert_eq!(o.status.code(), Some(0), "{stdout}{stderr}");
        assert!(!fx.read("hosts.nix").contains("  mail = {"));
        let folder = fx.root.join("hosts/mailserver");
        if shared {
            assert!(folder.join("relay.nix").is_file(), "kept for relay");
            assert!(
                stderr.contains("hosts/mailserver/ stays: relay"),
                "{stderr}"
            );
        } else {
            assert!(!folder.exists(), "{stderr}");
            assert!(
                stderr.contains("the host folder hosts/mailserver/"),
                "{stderr}"
            );
        }
        // Every other host folder is still there.
        for h in ["sandbox", "igpu", "doc2", "framework", "vm_base"] {
            assert!(fx.root.join("hosts").join(h).is_dir(), "{h}");
        }
    }
}

#[test]
fn init_asks_on_a_terminal_with_defaults() {
    let e = Empty::new();
    let mut term = e.init_on_terminal("");
    term.answer("Proxmox host (API and SSH address): ", "pve.lan");
    term.answer("Proxmox node [pve]: ", "");
    term.answer("Storage for VM disks [local-lvm]: ", "");
    term.answer("VMID of the NixOS template [9000]: ", "9003");
    let o = term.finish();
    assert_eq!(o.status.code(), Some(0), "{}", o.screen);
    let hosts = e.read("hosts.nix");
    for line in [
        "host = \"pve.lan\";",
        "node = \"pve\";",
        "defaultStorage = \"local-lvm\";",
        "templateVmid = 9003;",
    ] {
        assert!(hosts.contains(line), "{line} in {hosts}");
    }
    assert!(hosts.contains(SSH_KEY_RECIPIENT), "{hosts}");
}

#[test]
fn init_asks_again_after_a_bad_answer_and_says_why() {
    let e = Empty::new();
    let mut term = e.init_on_terminal("");
    let host = "Proxmox host (API and SSH address): ";
    term.answer(host, "");
    term.answer(host, "pve_lan");
    term.answer(host, "pve.lan");
    term.answer("Proxmox node [pve]: ", "");
    term.answer("Storage for VM disks [local-lvm]: ", "");
    let vmid = "VMID of the NixOS template [9000]: ";
    term.answer(vmid, "abc");
    term.answer(vmid, "5");
    term.answer(vmid, "9003");
    let o = term.finish();
    assert_eq!(o.status.code(), Some(0), "{}", o.screen);
    for reason in [
        "an answer is needed",
        "\"pve_lan\" is not valid: use a host name or an IP address",
        "\"abc\" is not valid: a VMID is a number from 100 to 999999999",
        "\"5\" is not valid: a VMID is a number from 100 to 999999999",
    ] {
        assert!(o.screen.contains(reason), "{reason} in {}", o.screen);
    }
    let hosts = e.read("hosts.nix");
    assert!(hosts.contains("host = \"pve.lan\";"), "{hosts}");
    assert!(hosts.contains("templateVmid = 9003;"), "{hosts}");
}

#[test]
fn init_on_a_terminal_gives_up_after_five_bad_answers_and_writes_nothing() {
    let e = Empty::new();
    let mut term = e.init_on_terminal(" --proxmox-host pve.lan --node pve --storage local-lvm");
    for _ in 0..5 {
        term.answer("VMID of the NixOS template [9000]: ", "abc");
    }
    let o = term.finish();
    assert_eq!(o.status.code(), Some(2), "{}", o.screen);
    assert!(is_empty(e.path()), "{}", o.screen);
}
