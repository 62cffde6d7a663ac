//! The flake's Nix code, evaluated and built by a real Nix (Debian's
//! nix-bin 2.8) in a private store under a temp folder (`NIX_STORE_DIR`),
//! so no test needs root, /nix, nixpkgs or the network.
//!
//! - nix/lib.nix and nix/fleet.nix (the parts that need no nixpkgs) run as
//!   they are, with `runCommand` as a plain `derivation` (builder /bin/sh)
//!   and the cargo-built `pve`;
//! - flake.nix and the nixpkgs glue (nix/mkfleet.nix, package.nix, ...) run
//!   against tests/flake/stub-nixpkgs.nix, a STAND-IN for nixpkgs that
//!   installs the cargo-built binaries instead of compiling them.

// A test fails by panicking; an unwrap names the line.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::support::copy_dir;

const PVE: &str = env!("CARGO_BIN_EXE_pve");
const PROXMOX_OPS: &str = env!("CARGO_BIN_EXE_proxmox-ops");

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A Nix string literal.
fn nix_str(s: &str) -> String {
    serde_json::to_string(s).unwrap().replace("${", "\\${")
}

/// A Nix path value for any absolute path (no path-literal syntax limits).
fn nix_path(p: &Path) -> String {
    format!("(/. + {})", nix_str(&p.display().to_string()))
}

/// Nix with its own store in a temp folder.
struct Nix {
    dir: tempfile::TempDir,
}

impl Nix {
    fn new() -> Nix {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        Nix { dir }
    }

    fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    fn cmd(&self, program: &str) -> Command {
        let d = self.dir.path();
        let mut c = Command::new(program);
        c.env("NIX_STORE_DIR", d.join("store"))
            .env("NIX_STATE_DIR", d.join("var"))
            .env("NIX_LOG_DIR", d.join("log"))
            .env("NIX_CONF_DIR", d.join("etc"))
            .env("HOME", d)
            // No substituters (no network), no sandbox and no build users:
            // builds run as the calling user, root or not.
            .env(
                "NIX_CONFIG",
                "substituters =\nsandbox = false\nbuild-users-group =\n",
            )
            .env("XDG_CACHE_HOME", d.join("cache"))
            .env("XDG_CONFIG_HOME", d.join("config"))
            .env_remove("XDG_CONFIG_DIRS")
            .env_remove("NIX_USER_CONF_FILES")
            .env_remove("NIX_REMOTE")
            .env_remove("NIX_PATH");
        c
    }

    fn eval_output(&self, expr: &str) -> Output {
        self.cmd("nix-instantiate")
            .args(["--eval", "--strict", "--json", "--read-write-mode", "-E"])
            .arg(expr)
            .output()
            .expect("nix-instantiate runs (Debian: apt install nix-bin)")
    }

    fn eval(&self, expr: &str) -> Value {
        let out = self.eval_output(expr);
        assert!(
            out.status.success(),
            "nix-instantiate failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn eval_error(&self, expr: &str) -> String {
        let out = self.eval_output(expr);
        assert!(!out.status.success(), "evaluation should fail: {expr}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Builds `expr` (one derivation); Ok(out path) or Err(build log).
    fn build(&self, expr: &str) -> Result<PathBuf, String> {
        let out = self
            .cmd("nix-build")
            .args(["--no-out-link", "-E"])
            .arg(expr)
            .output()
            .expect("nix-build runs (Debian: apt install nix-bin)");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if out.status.success() {
            let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
            Ok(PathBuf::from(path))
        } else {
            Err(stderr)
        }
    }

    /// Fails when a store path was changed after it was added (a build
    /// that wrote into its input, as a read-only store would refuse).
    fn assert_unchanged(&self, store_path: &Path) {
        let out = self
            .cmd("nix-store")
            .arg("--verify-path")
            .arg(store_path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{} was modified: {}",
            store_path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The fleet sources copied to the store so far.
    fn fleet_sources(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(self.store())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.display().to_string().ends_with("-fleet-source"))
            .collect();
        v.sort();
        v
    }
}

/// What of the repository is not the example fleet.
const NOT_FLEET: &[&str] = &[
    "target",
    ".git",
    "result",
    ".pve.lock",
    "src",
    "tests",
    "docs",
    "scripts",
    ".ci",
    "nix",
    "templates",
    "flake.nix",
    "flake.lock",
    "fuzz",
    "benches",
    "examples",
];

/// A copy of the repository's example fleet (hosts.nix, hosts/, vms/, the
/// generated files wherever render puts them, Cargo.toml for the flake).
fn fleet_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(repo()).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if NOT_FLEET.contains(&name.as_str()) || name.starts_with("result-") {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dir.path().join(&name));
        } else {
            std::fs::copy(entry.path(), dir.path().join(&name)).unwrap();
        }
    }
    dir
}

/// The example fleet plus things that must never reach the store.
fn example_fleet() -> tempfile::TempDir {
    let dir = fleet_copy();
    for junk in [
        "target/release/junk",
        ".git/HEAD",
        "vms/tofu/.state/terraform.tfstate",
        "vms/tofu/old.tfstate",
        "result/x",
    ] {
        let p = dir.path().join(junk);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, "junk").unwrap();
    }
    dir
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{} has no {from:?}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

/// The PATH builders get: this process's (coreutils, as stdenv has; it
/// also works inside a Nix build, where /usr/bin does not exist).
fn host_path() -> String {
    std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into())
}

/// `runCommand` as a plain derivation: /bin/sh and the host's coreutils.
fn plain_run_command() -> String {
    format!(
        "(name: env: script: derivation (env // {{
           inherit name; system = builtins.currentSystem; builder = \"/bin/sh\";
           args = [ \"-c\" script ]; PATH = {}; }}))",
        nix_str(&host_path())
    )
}

/// nix/fleet.nix for `fleet`, with the cargo-built pve.
fn fleet_expr(fleet: &Path) -> String {
    format!(
        "import {} {{ pve = {}; src = {}; hostsFile = \"hosts.nix\"; runCommand = {}; }}",
        nix_path(&repo().join("nix/fleet.nix")),
        nix_path(Path::new(PVE)),
        nix_path(fleet),
        plain_run_command(),
    )
}

/// The stand-in nixpkgs, installing `pve_bin` and `proxmox_ops_bin`.
fn stub_expr(pve_bin: &Path, proxmox_ops_bin: &Path) -> String {
    format!(
        "(import {} {{ pveBin = {}; proxmoxOpsBin = {}; path = {}; }})",
        nix_path(&repo().join("tests/flake/stub-nixpkgs.nix")),
        nix_path(pve_bin),
        nix_path(proxmox_ops_bin),
        nix_str(&host_path()),
    )
}

/// flake.nix's outputs with the stand-in nixpkgs, `self` at `fleet`.
fn flake_expr(fleet: &Path, pve_bin: &Path, proxmox_ops_bin: &Path) -> String {
    format!(
        "let flake = import {flake};
           nixpkgs = {stub};
           self = flake.outputs {{ inherit self nixpkgs; }} // {{ outPath = {fleet}; }};
         in self",
        flake = nix_path(&repo().join("flake.nix")),
        stub = stub_expr(pve_bin, proxmox_ops_bin),
        fleet = nix_path(fleet),
    )
}

#[test]
fn lib_finds_hosts_nix_and_copies_only_the_fleet() {
    let nix = Nix::new();
    let fleet = example_fleet();
    let v = nix.eval(&format!(
        "let lib = import {lib}; src = {src}; clean = lib.cleanSource \"fleet-source\" src; in {{
           asPath = lib.hostsPath {{ inherit src; hostsFile = src + \"/hosts.nix\"; }};
           asString = lib.hostsPath {{ inherit src; hostsFile = \"hosts.nix\"; }};
           inherit (lib) systems;
           top = builtins.attrNames (builtins.readDir clean);
           tofu = builtins.attrNames (builtins.readDir \"${{clean}}/vms/tofu\");
           apps = builtins.mapAttrs (n: s: [ s.exe ] ++ s.args) lib.appSpecs;
         }}",
        lib = nix_path(&repo().join("nix/lib.nix")),
        src = nix_path(fleet.path()),
    ));
    assert_eq!(v["asPath"], "hosts.nix");
    assert_eq!(v["asString"], "hosts.nix");
    assert_eq!(
        v["systems"],
        serde_json::json!(["x86_64-linux", "aarch64-linux"])
    );
    let top: Vec<&str> = v["top"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    for kept in ["hosts", "hosts.nix", "vms"] {
        assert!(top.contains(&kept), "{kept} missing from {top:?}");
    }
    for dropped in [".git", "target", "result"] {
        assert!(!top.contains(&dropped), "{dropped} copied: {top:?}");
    }
    // OpenTofu state (secrets) never reaches the world-readable store.
    let tofu = v["tofu"].as_array().unwrap();
    assert!(!tofu.iter().any(|n| n == ".state" || n == "old.tfstate"));

    assert_eq!(
        v["apps"],
        serde_json::json!({
            "pve": ["pve"],
            "proxmox-ops": ["proxmox-ops"],
            "tofu-plan": ["pve", "plan"],
            "tofu-apply": ["pve", "apply"],
            "tofu-output": ["pve", "output"],
            "tofu-destroy": ["pve", "destroy"],
            "new-vm": ["pve", "new"],
            "post-provision-vm": ["pve", "integrate"],
        })
    );
}

#[test]
fn lib_names_a_hosts_file_outside_src_or_missing() {
    let nix = Nix::new();
    let fleet = example_fleet();
    let other = tempfile::tempdir().unwrap();
    std::fs::write(other.path().join("hosts.nix"), "{ }").unwrap();
    let lib = nix_path(&repo().join("nix/lib.nix"));
    let src = nix_path(fleet.path());

    let err = nix.eval_error(&format!(
        "(import {lib}).hostsPath {{ src = {src}; hostsFile = {}; }}",
        nix_path(&other.path().join("hosts.nix"))
    ));
    assert!(err.contains("is not inside src"), "{err}");
    assert!(err.contains(&other.path().display().to_string()), "{err}");

    let err = nix.eval_error(&format!(
        "(import {lib}).hostsPath {{ src = {src}; hostsFile = \"fleet/hosts.nix\"; }}"
    ));
    assert!(
        err.contains("hostsFile \"fleet/hosts.nix\" does not exist"),
        "{err}"
    );
}

#[test]
fn host_specs_check_passes_on_the_example_fleet() {
    let nix = Nix::new();
    let fleet = example_fleet();
    let out = nix
        .build(&format!("({}).checks.host-specs", fleet_expr(fleet.path())))
        .unwrap_or_else(|log| panic!("check failed on the example fleet:\n{log}"));
    assert_eq!(
        std::fs::read_to_string(out).unwrap(),
        "pve check: hosts.nix passed\n"
    );
    // pve ran on the copy in the store and wrote nothing into it.
    let sources = nix.fleet_sources();
    assert_eq!(sources.len(), 1);
    nix.assert_unchanged(&sources[0]);
}

#[test]
fn host_specs_check_fails_on_a_broken_fleet() {
    let nix = Nix::new();

    // A duplicate VMID: pve check's diagnostic is in the build log.
    let fleet = example_fleet();
    edit(
        &fleet.path().join("hosts.nix"),
        "vmid = 111;",
        "vmid = 104;",
    );
    let log = nix
        .build(&format!("({}).checks.host-specs", fleet_expr(fleet.path())))
        .expect_err("a duplicate VMID must fail the check");
    assert!(
        log.contains("error[duplicate-vmid]: VMID 104 is used by both `sandbox` and `doc2`"),
        "{log}"
    );
    assert!(log.contains("-fleet-source/hosts.nix:81:14"), "{log}");
    assert!(log.contains("pve-check-host-specs.drv' failed"), "{log}");

    // A hosts.nix that does not parse.
    let fleet = example_fleet();
    edit(&fleet.path().join("hosts.nix"), "_sops = {", "_sops = {{");
    let log = nix
        .build(&format!("({}).checks.host-specs", fleet_expr(fleet.path())))
        .expect_err("a hosts.nix that does not parse must fail the check");
    assert!(log.contains("-fleet-source/hosts.nix"), "{log}");
    assert!(log.contains("failed with exit code 2"), "{log}");
}

#[test]
fn generated_files_check_follows_hosts_nix() {
    let nix = Nix::new();
    let fleet = example_fleet();
    let out = nix
        .build(&format!(
            "({}).checks.generated-files-in-sync",
            fleet_expr(fleet.path())
        ))
        .unwrap_or_else(|log| panic!("the committed generated files are stale:\n{log}"));
    assert!(std::fs::read_to_string(out)
        .unwrap()
        .starts_with("pve render --check: generated files of hosts.nix are in sync"));
    for s in nix.fleet_sources() {
        nix.assert_unchanged(&s);
    }

    // hosts.nix changed, generated files not re-rendered: stale.
    edit(&fleet.path().join("hosts.nix"), "cores = 4;", "cores = 6;");
    let log = nix
        .build(&format!(
            "({}).checks.generated-files-in-sync",
            fleet_expr(fleet.path())
        ))
        .expect_err("a stale config.tf.json must fail the check");
    assert!(log.contains("failed with exit code 1"), "{log}");
}

#[test]
fn tofu_config_is_what_pve_render_writes() {
    let nix = Nix::new();
    let fleet = example_fleet();
    let out = nix
        .build(&format!("({}).tofu-config", fleet_expr(fleet.path())))
        .unwrap_or_else(|log| panic!("tofu-config failed:\n{log}"));
    let built = std::fs::read(out.join("config.tf.json")).unwrap();

    let direct = tempfile::tempdir().unwrap();
    let status = Command::new(PVE)
        .arg("-f")
        .arg(fleet.path().join("hosts.nix"))
        .args(["render", "tofu", "--out-dir"])
        .arg(direct.path())
        .status()
        .unwrap();
    assert!(status.success());
    let expected = std::fs::read(direct.path().join("vms/tofu/config.tf.json")).unwrap();
    assert_eq!(built, expected);
    serde_json::from_slice::<Value>(&built).unwrap();
    for s in nix.fleet_sources() {
        nix.assert_unchanged(&s);
    }
}

#[test]
fn flake_outputs_have_the_documented_shape() {
    let nix = Nix::new();
    let fleet = example_fleet();
    let v = nix.eval(&format!(
        "let o = {}; names = builtins.attrNames; in {{
           top = names o;
           packages = builtins.mapAttrs (s: names) o.packages;
           apps = builtins.mapAttrs (s: names) o.apps;
           appTypes = map (a: a.type) (builtins.attrValues o.apps.x86_64-linux);
           checks = builtins.mapAttrs (s: names) o.checks;
           shells = builtins.mapAttrs (s: names) o.devShells;
           shellPackages = map (p: p.name) o.devShells.x86_64-linux.default.stubArgs.packages;
           formatter = builtins.mapAttrs (s: f: f.name) o.formatter;
           lib = names o.lib;
           mkFleet = builtins.isFunction o.lib.mkFleet;
           module = builtins.isFunction o.flakeModules.default;
           env = o.packages.x86_64-linux.pve.stubArgs.env;
           openssh = \"${{(o.lib.mkFleet {{ src = o; pkgs = {stub}.legacyPackages.x86_64-linux; }}).packages.pve.stubArgs.env.PVE_SSH}}\";
           lock = toString o.packages.x86_64-linux.pve.stubArgs.cargoLock.lockFile;
           version = o.packages.aarch64-linux.pve.stubArgs.version;
           doCheck = o.packages.x86_64-linux.pve.stubArgs.doCheck;
           testsDoCheck = o.checks.x86_64-linux.cargo-test.stubArgs.doCheck;
           clippy = o.checks.x86_64-linux.clippy.stubArgs.buildPhase;
           sameDefault = o.packages.x86_64-linux.default == o.packages.x86_64-linux.pve;
           source = names (builtins.readDir o.packages.x86_64-linux.pve.stubArgs.src);
         }}",
        flake_expr(fleet.path(), Path::new(PVE), Path::new(PROXMOX_OPS)),
        stub = stub_expr(Path::new(PVE), Path::new(PROXMOX_OPS)),
    ));
    let both = |names: serde_json::Value| serde_json::json!({"aarch64-linux": names.clone(), "x86_64-linux": names});
    assert_eq!(
        v["top"],
        serde_json::json!([
            "apps",
            "checks",
            "devShells",
            "flakeModules",
            "formatter",
            "lib",
            "outPath",
            "packages"
        ])
    );
    assert_eq!(
        v["packages"],
        both(serde_json::json!(["default", "pve", "tofu-config"]))
    );
    assert_eq!(
        v["apps"],
        both(serde_json::json!([
            "new-vm",
            "post-provision-vm",
            "proxmox-ops",
            "pve",
            "tofu-apply",
            "tofu-destroy",
            "tofu-output",
            "tofu-plan"
        ]))
    );
    assert!(v["appTypes"].as_array().unwrap().iter().all(|t| t == "app"));
    assert_eq!(
        v["checks"],
        both(serde_json::json!([
            "cargo-test",
            "clippy",
            "generated-files-in-sync",
            "host-specs"
        ]))
    );
    assert_eq!(v["shells"], both(serde_json::json!(["default"])));
    for p in [
        "cargo",
        "clippy",
        "rustfmt",
        "opentofu",
        "sops",
        "age",
        "ssh-to-age",
        "nix",
    ] {
        let name = format!("stub-{p}");
        assert!(
            v["shellPackages"]
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n == name.as_str()),
            "devShell lacks {p}: {}",
            v["shellPackages"]
        );
    }
    assert_eq!(v["formatter"]["x86_64-linux"], "stub-nixfmt-tree");
    assert_eq!(v["lib"], serde_json::json!(["mkFleet"]));
    assert_eq!(v["mkFleet"], true);
    assert_eq!(v["module"], true);

    // Tool paths baked in: the store paths of the packages, exactly the
    // variables src/runner.rs reads.
    let env = v["env"].as_object().unwrap();
    let mut keys: Vec<&str> = env.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "PVE_NIX",
            "PVE_NIXOS_REBUILD",
            "PVE_SOPS",
            "PVE_SSH",
            "PVE_SSH_KEYGEN",
            "PVE_TOFU"
        ]
    );
    let runner = std::fs::read_to_string(repo().join("src/runner.rs")).unwrap();
    for (key, suffix) in [
        ("PVE_SSH", "-stub-openssh/bin/ssh"),
        ("PVE_SSH_KEYGEN", "-stub-openssh/bin/ssh-keygen"),
        ("PVE_TOFU", "-stub-opentofu/bin/tofu"),
        ("PVE_SOPS", "-stub-sops/bin/sops"),
        ("PVE_NIXOS_REBUILD", "-stub-nixos-rebuild/bin/nixos-rebuild"),
        ("PVE_NIX", "-stub-nix/bin/nix"),
    ] {
        let value = env[key].as_str().unwrap();
        assert!(
            value.starts_with(&nix.store().display().to_string()) && value.ends_with(suffix),
            "{key} = {value}"
        );
        assert!(runner.contains(&format!("option_env!(\"{key}\")")), "{key}");
    }
    assert!(v["openssh"]
        .as_str()
        .unwrap()
        .ends_with("-stub-openssh/bin/ssh"));
    assert_eq!(
        v["lock"].as_str().unwrap(),
        repo().join("Cargo.lock").display().to_string()
    );
    let cargo_toml = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    assert!(cargo_toml.contains(&format!("version = {}", v["version"])));
    assert_eq!(v["doCheck"], false);
    assert_eq!(v["testsDoCheck"], true);
    assert!(v["clippy"]
        .as_str()
        .unwrap()
        .contains("cargo clippy --offline --release --all-targets -- -D warnings"));
    assert_eq!(v["sameDefault"], true);

    // The package's source: the repository (askama's templates/ among
    // it), without build output and VCS data.
    let source: Vec<&str> = v["source"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    let mut want = vec!["Cargo.toml", "Cargo.lock", "src", "tests", "hosts.nix"];
    if repo().join("templates").is_dir() {
        want.push("templates");
    }
    for kept in want {
        assert!(source.contains(&kept), "{kept} missing from {source:?}");
    }
    for dropped in ["target", ".git"] {
        assert!(!source.contains(&dropped), "{dropped} in {source:?}");
    }
}

#[test]
fn flake_checks_build_through_the_nixpkgs_glue() {
    let nix = Nix::new();
    let fleet = example_fleet();
    let flake = flake_expr(fleet.path(), Path::new(PVE), Path::new(PROXMOX_OPS));

    // This repository's own check (self = the example fleet).
    let out = nix
        .build(&format!(
            "({flake}).checks.${{builtins.currentSystem}}.host-specs"
        ))
        .unwrap_or_else(|log| panic!("{log}"));
    assert_eq!(
        std::fs::read_to_string(out).unwrap(),
        "pve check: hosts.nix passed\n"
    );

    // lib.mkFleet for another repository's broken hosts.nix.
    let broken = example_fleet();
    edit(
        &broken.path().join("hosts.nix"),
        "vmid = 111;",
        "vmid = 104;",
    );
    let log = nix
        .build(&format!(
            "let o = {flake}; in (o.lib.mkFleet {{ src = {}; hostsFile = \"hosts.nix\"; pkgs = {}.legacyPackages.${{builtins.currentSystem}}; }}).checks.host-specs",
            nix_path(broken.path()),
            stub_expr(Path::new(PVE), Path::new(PROXMOX_OPS)),
        ))
        .expect_err("mkFleet's check must fail on a duplicate VMID");
    assert!(log.contains("error[duplicate-vmid]"), "{log}");
}

#[test]
fn flake_module_gives_a_fleet_repository_its_outputs() {
    // A fake of the little of flake-parts and the module system the module
    // touches: mkPerSystemOption, mkOption, types, literalExpression.
    let nix = Nix::new();
    let fleet = example_fleet();
    let expr = format!(
        "let o = {flake};
           fakeLib = {{ mkOption = x: x; literalExpression = x: x;
                        types = {{ raw = \"raw\"; str = \"str\"; path = \"path\"; either = a: b: \"either\"; }}; }};
           m = o.flakeModules.default {{ lib = fakeLib; flake-parts-lib = {{ mkPerSystemOption = f: f; }};
                                        self = {{ outPath = {fleet}; }}; }};
           opts = (m.options.perSystem {{ }}).options.pve-fleet;
           per = m.config.perSystem {{
             config.pve-fleet = {{ src = opts.src.default; hostsFile = opts.hostsFile.default; }};
             pkgs = {stub}.legacyPackages.${{builtins.currentSystem}};
           }};
         in per",
        flake = flake_expr(fleet.path(), Path::new(PVE), Path::new(PROXMOX_OPS)),
        fleet = nix_path(fleet.path()),
        stub = stub_expr(Path::new(PVE), Path::new(PROXMOX_OPS)),
    );
    let v = nix.eval(&format!(
        "let per = {expr}; in {{ apps = builtins.mapAttrs (n: a: builtins.attrNames a) per.apps;
           packages = builtins.attrNames per.packages; checks = builtins.attrNames per.checks; }}"
    ));
    assert_eq!(
        v["packages"],
        serde_json::json!(["default", "pve", "tofu-config"])
    );
    assert_eq!(
        v["checks"],
        serde_json::json!(["generated-files-in-sync", "host-specs"])
    );
    assert_eq!(
        v["apps"]["tofu-plan"],
        serde_json::json!(["program", "type"])
    );
    let out = nix
        .build(&format!("({expr}).checks.host-specs"))
        .unwrap_or_else(|log| panic!("{log}"));
    assert_eq!(
        std::fs::read_to_string(out).unwrap(),
        "pve check: hosts.nix passed\n"
    );
}

#[test]
fn apps_run_pve_subcommands_with_the_runtime_tools_on_path() {
    // A STAND-IN for pve and proxmox-ops that prints how it was called and
    // where the runtime tools resolve.
    let bins = tempfile::tempdir().unwrap();
    let recorder = bins.path().join("record");
    std::fs::write(
        &recorder,
        "#!/bin/sh\necho \"${0##*/}\"\nfor a in \"$@\"; do echo \"arg:$a\"; done\n\
         for t in tofu ssh sops nixos-rebuild; do echo \"tool:$(command -v $t)\"; done\n\
         echo \"path:$PATH\"\n\
         # Like pve man: the package's postInstall installs its pages.\n\
         if [ \"$1\" = man ]; then mkdir -p \"$3\"; echo .TH > \"$3/pve.1\"; fi\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&recorder, std::fs::Permissions::from_mode(0o755)).unwrap();

    let nix = Nix::new();
    let fleet = example_fleet();
    let flake = flake_expr(fleet.path(), &recorder, &recorder);
    let apps = format!("({flake}).apps.${{builtins.currentSystem}}");
    // Build every wrapper: a derivation that depends on all of them.
    nix.build(&format!(
        "derivation {{ name = \"all-apps\"; system = builtins.currentSystem; builder = \"/bin/sh\";
           args = [ \"-c\" \"echo > $out\" ]; programs = map (a: a.program) (builtins.attrValues {apps}); }}"
    ))
    .unwrap_or_else(|log| panic!("{log}"));
    let programs = nix.eval(&format!("builtins.mapAttrs (n: a: a.program) {apps}"));

    let expected = [
        ("pve", "pve", vec![]),
        ("proxmox-ops", "proxmox-ops", vec![]),
        ("tofu-plan", "pve", vec!["plan"]),
        ("tofu-apply", "pve", vec!["apply"]),
        ("tofu-output", "pve", vec!["output"]),
        ("tofu-destroy", "pve", vec!["destroy"]),
        ("new-vm", "pve", vec!["new"]),
        ("post-provision-vm", "pve", vec!["integrate"]),
    ];
    assert_eq!(programs.as_object().unwrap().len(), expected.len());
    for (app, exe, sub) in expected {
        let program = programs[app].as_str().unwrap();
        let out = Command::new(program)
            .args(["--name", "it's a $test"])
            .env("PATH", "/usr/bin:/bin")
            .output()
            .unwrap();
        assert!(out.status.success(), "{app}");
        let text = String::from_utf8(out.stdout).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some(exe), "{app}: {text}");
        let args: Vec<&str> = lines
            .clone()
            .filter_map(|l| l.strip_prefix("arg:"))
            .collect();
        let mut want = sub.clone();
        want.extend(["--name", "it's a $test"]);
        assert_eq!(args, want, "{app}");
        for (tool, pkg) in [
            ("tofu", "opentofu"),
            ("ssh", "openssh"),
            ("sops", "sops"),
            ("nixos-rebuild", "nixos-rebuild"),
        ] {
            let line = format!("-stub-{pkg}/bin/{tool}");
            assert!(
                text.lines()
                    .any(|l| l.starts_with("tool:") && l.ends_with(&line)),
                "{app}: {tool} not from the package: {text}"
            );
        }
        // The user's PATH stays, after the tools.
        assert!(
            text.lines()
                .any(|l| l.starts_with("path:") && l.ends_with(":/usr/bin:/bin")),
            "{text}"
        );
    }
}

/// The repository's flake files and example fleet in a temp folder (a
/// `path:` flake copies its whole folder, and the checkout has target/), and
/// a `path:` flake around the stand-in nixpkgs with the cargo-built binaries.
fn flake_dirs() -> (tempfile::TempDir, tempfile::TempDir) {
    let root = repo();
    let repo_copy = fleet_copy();
    copy_dir(&root.join("nix"), &repo_copy.path().join("nix"));
    std::fs::copy(root.join("flake.nix"), repo_copy.path().join("flake.nix")).unwrap();

    let stub = tempfile::tempdir().unwrap();
    std::fs::copy(
        root.join("tests/flake/stub-nixpkgs.nix"),
        stub.path().join("stub-nixpkgs.nix"),
    )
    .unwrap();
    std::fs::copy(PVE, stub.path().join("pve")).unwrap();
    std::fs::copy(PROXMOX_OPS, stub.path().join("proxmox-ops")).unwrap();
    std::fs::write(
        stub.path().join("flake.nix"),
        format!(
            "{{ outputs = _: import ./stub-nixpkgs.nix {{ pveBin = ./pve; proxmoxOpsBin = ./proxmox-ops; path = {}; }}; }}\n",
            nix_str(&host_path())
        ),
    )
    .unwrap();
    (repo_copy, stub)
}

/// The `out` path in `nix build --json` output (2.8 has no --print-out-paths).
fn built_out(stdout: &[u8]) -> PathBuf {
    let v: Value = serde_json::from_slice(stdout).unwrap();
    PathBuf::from(v[0]["outputs"]["out"].as_str().unwrap())
}

/// `nix <args> path:<repo>[#attr] --override-input nixpkgs path:<stub>`.
fn nix_flake(nix: &Nix, args: &[&str], attr: &str, flake: &Path, stub: &Path) -> Output {
    let mut c = nix.cmd("nix");
    c.env(
        "NIX_CONFIG",
        "substituters =\nsandbox = false\nbuild-users-group =\nexperimental-features = nix-command flakes\n",
    )
    .args(args)
    .arg(format!("path:{}{attr}", flake.display()))
    .args(["--override-input", "nixpkgs"])
    .arg(format!("path:{}", stub.display()))
    .arg("--no-write-lock-file");
    c.output().expect("nix runs (Debian: apt install nix-bin)")
}

#[test]
fn nix_flake_check_build_and_run_with_stub_nixpkgs() {
    let nix = Nix::new();
    let (flake, stub) = flake_dirs();
    let (flake, stub) = (flake.path(), stub.path());

    // Evaluates every output of both systems and checks its type (apps
    // are apps, checks and packages derivations, ...); builds the checks
    // too.
    let args: &[&str] = &["flake", "check"];
    let out = nix_flake(&nix, args, "", flake, stub);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "nix flake check failed:\n{stderr}");
    assert!(!stderr.contains("error"), "{stderr}");

    // nix build .#checks.<system>.host-specs
    let system = nix.eval("builtins.currentSystem");
    let system = system.as_str().unwrap();
    let out = nix_flake(
        &nix,
        &["build", "--no-link", "--json"],
        &format!("#checks.{system}.host-specs"),
        flake,
        stub,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(built_out(&out.stdout)).unwrap(),
        "pve check: hosts.nix passed\n"
    );

    // nix run .#pve -- --version: the wrapper runs the packaged binary.
    let mut c = nix.cmd("nix");
    let out = c
        .env(
            "NIX_CONFIG",
            "substituters =\nsandbox = false\nbuild-users-group =\nexperimental-features = nix-command flakes\n",
        )
        .args(["run", "--no-write-lock-file", "--override-input", "nixpkgs"])
        .arg(format!("path:{}", stub.display()))
        .arg(format!("path:{}#pve", flake.display()))
        .args(["--", "--version"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "pve 0.1.0\n");

    // nix build .#pve: postInstall (run with a stand-in of nixpkgs'
    // installShellFiles) installs the completions and the manual pages
    // the packaged binary made.
    {
        let out = nix_flake(&nix, &["build", "--no-link", "--json"], "#pve", flake, stub);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pkg = built_out(&out.stdout);
        for (file, names) in [
            (
                "share/bash-completion/completions/pve.bash",
                "complete -F _pve",
            ),
            ("share/zsh/site-functions/_pve", "#compdef pve"),
            (
                "share/fish/vendor_completions.d/pve.fish",
                "complete -c pve",
            ),
            ("share/man/man1/pve.1", ".TH pve 1"),
            ("share/man/man1/pve-host-add.1", ".TH pve-host-add 1"),
        ] {
            let text = std::fs::read_to_string(pkg.join(file))
                .unwrap_or_else(|e| panic!("{file} in the package: {e}"));
            assert!(text.contains(names), "{file} lacks {names:?}");
        }
    }

    // nix build .#tofu-config
    {
        let out = nix_flake(
            &nix,
            &["build", "--no-link", "--json"],
            "#tofu-config",
            flake,
            stub,
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json = std::fs::read(built_out(&out.stdout).join("config.tf.json")).unwrap();
        serde_json::from_slice::<Value>(&json).unwrap();
    }
}

/// The first ```nix block after `marker` in docs/flake.md.
fn doc_block(marker: &str) -> String {
    let doc = std::fs::read_to_string(repo().join("docs/flake.md")).unwrap();
    let after = &doc[doc.find(marker).expect("marker in docs/flake.md")..];
    let start = after.find("```nix\n").unwrap() + "```nix\n".len();
    let len = after[start..].find("```\n").unwrap();
    after[start..start + len].to_string()
}

#[test]
fn the_documented_consumer_flake_checks_its_own_fleet() {
    let nix = Nix::new();
    let (repo_copy, stub) = flake_dirs();
    let consumer = fleet_copy();
    std::fs::remove_file(consumer.path().join("Cargo.toml")).unwrap();
    std::fs::remove_file(consumer.path().join("Cargo.lock")).unwrap();
    std::fs::write(
        consumer.path().join("flake.nix"),
        doc_block("<!-- consumer-flake"),
    )
    .unwrap();
    // The consumer's fleet differs from this repository's: a new VM.
    edit(
        &consumer.path().join("hosts.nix"),
        "vmid = 111;",
        "vmid = 104;",
    );

    let run = |args: &[&str], attr: &str| {
        let mut c = nix.cmd("nix");
        c.env(
            "NIX_CONFIG",
            "substituters =\nsandbox = false\nbuild-users-group =\nexperimental-features = nix-command flakes\n",
        )
        .args(args)
        .arg(format!("path:{}{attr}", consumer.path().display()))
        .args(["--no-write-lock-file", "--override-input", "pve-fleet"])
        .arg(format!("path:{}", repo_copy.path().display()))
        .args(["--override-input", "nixpkgs"])
        .arg(format!("path:{}", stub.path().display()));
        c.output().unwrap()
    };

    let out = run(&["flake", "check", "--no-build"], "");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("error"), "{stderr}");

    let system = nix.eval("builtins.currentSystem");
    let system = system.as_str().unwrap();
    let out = run(
        &["build", "--no-link", "--json", "--print-build-logs"],
        &format!("#checks.{system}.host-specs"),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "the consumer's duplicate VMID must fail"
    );
    assert!(stderr.contains("error[duplicate-vmid]"), "{stderr}");

    edit(
        &consumer.path().join("hosts.nix"),
        "vmid = 104;",
        "vmid = 112;",
    );
    let out = run(
        &["build", "--no-link", "--json"],
        &format!("#checks.{system}.host-specs"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let names = json_keys(&run(&["eval", "--json"], &format!("#apps.{system}")));
    assert_eq!(names.len(), 8, "{names:?}");
}

fn json_keys(out: &Output) -> Vec<String> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_object().unwrap().keys().cloned().collect()
}
