//! `pve render` / `pve scaffold` end to end on a copy of the example fleet:
//! the bad inputs of issue 3 (message with position, exit 2, nothing
//! written), `--check`, `--out-dir`, byte-identical re-renders.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::{example_fleet_rendered as fleet, files, repo_root as repo};

fn pve(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pve"))
        .arg("-f")
        .arg(dir.join("hosts.nix"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Every file under `dir` (except the lock file) with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    files(dir, &[".pve.lock"])
}

fn edit(dir: &Path, from: &str, to: &str) {
    let p = dir.join("hosts.nix");
    let text = std::fs::read_to_string(&p).unwrap();
    assert!(
        text.contains(from),
        "fixture text {from:?} not in hosts.nix"
    );
    std::fs::write(&p, text.replacen(from, to, 1)).unwrap();
}

/// The one test that the committed generated files (config.tf.json,
/// known_hosts, .sops.yaml) are what the example fleet renders.
#[test]
fn rendering_twice_gives_the_same_bytes() {
    let d = fleet();
    // Start from nothing generated.
    for f in [
        "vms/tofu/config.tf.json",
        "vms/known_hosts",
        "secrets/.sops.yaml",
    ] {
        std::fs::remove_file(d.path().join(f)).unwrap();
    }
    let o = pve(d.path(), &["render"]);
    assert!(o.status.success(), "{}", err(&o));
    let first = snapshot(d.path());
    for f in [
        "vms/tofu/config.tf.json",
        "vms/known_hosts",
        "secrets/.sops.yaml",
    ] {
        assert_eq!(
            first[Path::new(f)],
            std::fs::read(repo().join(f)).unwrap(),
            "{f} equals the committed file"
        );
    }
    assert!(first[Path::new("vms/tofu/config.tf.json")].ends_with(b"}\n"));
    let o = pve(d.path(), &["render"]);
    assert!(o.status.success());
    assert!(
        err(&o).contains("unchanged vms/tofu/config.tf.json"),
        "{}",
        err(&o)
    );
    assert_eq!(snapshot(d.path()), first);
}

/// config.tf.json is written straight to a temp file beside it while it
/// renders (not held whole in memory). Whatever the old file, the result
/// is what `--check` (which renders in memory) calls up to date: a stale
/// file of ours is replaced, a foreign one refused, a missing folder
/// created, and no temp file is left behind.
#[test]
fn config_written_while_rendering_equals_the_text_in_memory() {
    let d = fleet();
    let config = d.path().join("vms/tofu/config.tf.json");
    let want = std::fs::read(&config).unwrap();
    let temp_files = |dir: &Path| {
        std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                let name = e.as_ref().unwrap().file_name();
                name.to_string_lossy().starts_with(".pve-tmp-")
            })
            .count()
    };
    // Stale but ours (a JSON object; one byte shorter, one byte longer).
    let stale: [Vec<u8>; 3] = [
        want[..want.len() - 1].to_vec(),
        [&want[..], b" "].concat(),
        b"{}\n".to_vec(),
    ];
    for old in stale {
        std::fs::write(&config, old).unwrap();
        let o = pve(d.path(), &["render", "tofu"]);
        assert!(o.status.success(), "{}", err(&o));
        assert!(
            err(&o).contains("wrote vms/tofu/config.tf.json"),
            "{}",
            err(&o)
        );
        assert_eq!(std::fs::read(&config).unwrap(), want);
        assert_eq!(pve(d.path(), &["render", "--check"]).status.code(), Some(0));
        assert_eq!(temp_files(&d.path().join("vms/tofu")), 0);
    }
    // Foreign: refused, kept, nothing left behind.
    std::fs::write(&config, "notes, not JSON\n").unwrap();
    let o = pve(d.path(), &["render"]);
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    assert!(err(&o).contains("refusing to overwrite it"), "{}", err(&o));
    assert_eq!(std::fs::read(&config).unwrap(), b"notes, not JSON\n");
    assert_eq!(temp_files(&d.path().join("vms/tofu")), 0);
    // No folder yet: made, with the same bytes.
    std::fs::remove_dir_all(d.path().join("vms/tofu")).unwrap();
    let o = pve(d.path(), &["render", "tofu"]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(std::fs::read(&config).unwrap(), want);
    // Unchanged: not replaced (same inode), nothing left behind.
    use std::os::unix::fs::MetadataExt as _;
    let inode = std::fs::metadata(&config).unwrap().ino();
    let o = pve(d.path(), &["render", "tofu"]);
    assert!(
        err(&o).contains("unchanged vms/tofu/config.tf.json"),
        "{}",
        err(&o)
    );
    assert_eq!(std::fs::metadata(&config).unwrap().ino(), inode);
    assert_eq!(temp_files(&d.path().join("vms/tofu")), 0);
}

#[test]
fn check_reports_a_stale_file_with_a_diff_and_writes_nothing() {
    let d = fleet();
    assert_eq!(pve(d.path(), &["render", "--check"]).status.code(), Some(0));
    edit(d.path(), "cores = 4;", "cores = 6;");
    let before = snapshot(d.path());
    let o = pve(d.path(), &["render", "--check"]);
    assert_eq!(o.status.code(), Some(1));
    let diff = String::from_utf8_lossy(&o.stdout);
    assert!(diff.contains("--- a/vms/tofu/config.tf.json"), "{diff}");
    assert!(diff.contains("+++ b/vms/tofu/config.tf.json"), "{diff}");
    assert!(diff.contains("-          \"cores\": 4,"), "{diff}");
    assert!(diff.contains("+          \"cores\": 6,"), "{diff}");
    assert!(!diff.contains("known_hosts"), "only the stale file: {diff}");
    assert!(err(&o).contains("stale: vms/tofu/config.tf.json"));
    assert_eq!(snapshot(d.path()), before);
    // A missing file is stale too.
    std::fs::remove_file(d.path().join("vms/known_hosts")).unwrap();
    let o = pve(d.path(), &["render", "--check", "known-hosts"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("+sbx,sandbox ssh-ed25519 "));
}

#[test]
fn out_dir_and_single_targets() {
    let d = fleet();
    let out = tempfile::tempdir().unwrap();
    let before = snapshot(d.path());
    let o = pve(
        d.path(),
        &["render", "--out-dir", out.path().to_str().unwrap(), "tofu"],
    );
    assert!(o.status.success(), "{}", err(&o));
    let written = snapshot(out.path());
    assert_eq!(
        written.keys().collect::<Vec<_>>(),
        [Path::new("vms/tofu/config.tf.json")]
    );
    assert_eq!(snapshot(d.path()), before, "the fleet itself is untouched");
    assert!(
        !d.path().join(".pve.lock").exists(),
        "no lock file in the fleet (it may be read-only, e.g. in the Nix store)"
    );
    let o = pve(
        d.path(),
        &["render", "--out-dir", out.path().to_str().unwrap(), "sops"],
    );
    assert!(o.status.success(), "{}", err(&o));
    assert!(out.path().join("secrets/.sops.yaml").is_file());
}

/// A first render into an empty folder (no `vms/`, no `secrets/`: the
/// files are drafted in the folder above and moved in) writes the same
/// bytes as a render in place, and a refusal found late (`.sops.yaml`'s,
/// after the other files were drafted) leaves the folder empty.
#[test]
fn a_first_render_into_an_empty_folder_writes_all_or_nothing() {
    let d = fleet();
    let out = tempfile::tempdir().unwrap();
    let o = pve(
        d.path(),
        &["render", "--out-dir", out.path().to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", err(&o));
    let committed = snapshot(d.path());
    let written = snapshot(out.path());
    assert_eq!(
        written.keys().collect::<Vec<_>>(),
        [
            Path::new("secrets/.sops.yaml"),
            Path::new("vms/known_hosts"),
            Path::new("vms/tofu/config.tf.json"),
        ]
    );
    for (path, bytes) in &written {
        assert_eq!(Some(bytes), committed.get(path), "{}", path.display());
    }
    edit(
        d.path(),
        "master = \"age17044m9wgakla6pzftf4srtl3h5mcsr85jysgt5fg23zpnta8sfdqhzn452\";",
        "master = \"alice@example.org\";",
    );
    let empty = tempfile::tempdir().unwrap();
    let o = pve(
        d.path(),
        &["render", "--out-dir", empty.path().to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    assert!(err(&o).contains("`_sops.admins.master`"), "{}", err(&o));
    let left: Vec<_> = std::fs::read_dir(empty.path()).unwrap().collect();
    assert!(left.is_empty(), "nothing written: {left:?}");
}

/// The bad inputs of issue 3: each a clear message naming the place in
/// hosts.nix, exit 2, and not one byte written.
#[test]
fn bad_input_writes_nothing() {
    let sandbox_key =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHg+0cl2eSRJP0uMoScnKY9J6ZvYERwjc843qO2BNqfB";
    let igpu_key =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPucrnfLpTjCzItnNPvGJ0iqQs2+iTyTXZH5pCBpuvDp";
    let cases: Vec<(&str, String, String, &str)> = vec![
        (
            "VM without vmid",
            "vmid = 111;".into(),
            "".into(),
            "`sandbox.proxmox` lacks `vmid`",
        ),
        (
            "disk 64GB",
            "disk = \"64G\";".into(),
            "disk = \"64GB\";".into(),
            "disk \"64GB\" of `sandbox` is neither a size",
        ),
        (
            "RSA publicKey",
            format!("publicKey = \"{sandbox_key}\""),
            "publicKey = \"ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 root@sandbox\"".into(),
            "`sandbox.publicKey` is a ssh-rsa key",
        ),
        (
            "admin neither age nor ssh",
            "master = \"age17044m9wgakla6pzftf4srtl3h5mcsr85jysgt5fg23zpnta8sfdqhzn452\";".into(),
            "master = \"alice@example.org\";".into(),
            "`_sops.admins.master` is neither an age recipient nor an ssh-ed25519 key",
        ),
        (
            "admin with a Bech32m checksum",
            "master = \"age17044m9wgakla6pzftf4srtl3h5mcsr85jysgt5fg23zpnta8sfdqhzn452\";".into(),
            "master = \"age1wy42r2p2c67ckywgq8xj7ejf6eykqfu623wktxeh729rtagu4fkqrsqsg6\";".into(),
            "invalid Bech32 checksum",
        ),
        (
            "two hosts, one key",
            format!("publicKey = \"{igpu_key}\""),
            format!("publicKey = \"{sandbox_key}\""),
            // known_hosts is gated on the key being unique (issue 11).
            "one host key for two hosts",
        ),
        (
            "_sops path escapes the fleet",
            "admins = {".into(),
            "path = \"secrets/../../elsewhere/.sops.yaml\";\n    admins = {".into(),
            "leads out of the fleet root",
        ),
        (
            "absolute _sops path",
            "admins = {".into(),
            "path = \"/etc/sops.yaml\";\n    admins = {".into(),
            "is absolute",
        ),
        (
            "unknown node",
            "vmid = 111;".into(),
            "vmid = 111; node = \"prom2\";".into(),
            "placed on node `prom2`, which is not in `_proxmox.nodes`",
        ),
    ];
    for (what, from, to, want) in cases {
        let d = fleet();
        edit(d.path(), &from, &to);
        if what == "unknown node" {
            edit(
                d.path(),
                "node = \"prom\";",
                "node = \"prom\"; nodes = [ \"prom\" \"prox\" ];",
            );
        }
        let before = snapshot(d.path());
        let o = pve(d.path(), &["render"]);
        assert_eq!(o.status.code(), Some(2), "{what}: {}", err(&o));
        assert!(err(&o).contains(want), "{what}: {}", err(&o));
        assert!(
            err(&o).contains("hosts.nix:"),
            "{what} names the position: {}",
            err(&o)
        );
        assert_eq!(snapshot(d.path()), before, "{what}: nothing written");
        // --check reports the same error rather than a diff.
        assert_eq!(
            pve(d.path(), &["render", "--check"]).status.code(),
            Some(2),
            "{what}"
        );
    }
}

#[test]
fn scaffold_creates_host_files_and_never_overwrites() {
    let d = fleet();
    let o = pve(d.path(), &["scaffold", "web-1"]);
    assert!(o.status.success(), "{}", err(&o));
    let conf = std::fs::read_to_string(d.path().join("hosts/web-1/configuration.nix")).unwrap();
    let home = std::fs::read_to_string(d.path().join("hosts/web-1/home.nix")).unwrap();
    // The vm_base rules: GRUB, no systemd-boot, the generated hardware file.
    assert!(conf.contains("./hardware-configuration.nix"));
    assert!(conf.contains("systemd-boot.enable = false;"));
    assert!(conf.contains("devices = [ \"nodev\" ];"));
    assert!(conf.contains("services.qemuGuest.enable = true;"));
    assert!(conf.starts_with("# web-1: "));
    assert!(home.contains("home.stateVersion = \"25.05\";"));
    // Both parse with the real Nix.
    for f in ["configuration.nix", "home.nix"] {
        let o = Command::new("nix-instantiate")
            .arg("--parse")
            .arg(d.path().join("hosts/web-1").join(f))
            .output()
            .expect("nix-instantiate");
        assert!(o.status.success(), "{f}: {}", err(&o));
    }
    // Never overwrite: an edited file stays as it is.
    std::fs::write(
        d.path().join("hosts/web-1/home.nix"),
        "# mine\n{ ... }: { }\n",
    )
    .unwrap();
    std::fs::remove_file(d.path().join("hosts/web-1/configuration.nix")).unwrap();
    let o = pve(d.path(), &["scaffold", "web-1"]);
    assert!(o.status.success());
    assert!(err(&o).contains("kept hosts/web-1/home.nix"), "{}", err(&o));
    assert!(
        err(&o).contains("created hosts/web-1/configuration.nix"),
        "{}",
        err(&o)
    );
    assert_eq!(
        std::fs::read_to_string(d.path().join("hosts/web-1/home.nix")).unwrap(),
        "# mine\n{ ... }: { }\n"
    );
    let before = snapshot(d.path());
    let o = pve(d.path(), &["scaffold", "Web_1"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("not a DNS label"), "{}", err(&o));
    assert_eq!(snapshot(d.path()), before);
}

#[test]
fn a_fleet_without_sops_renders_no_sops_file() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("hosts.nix"),
        "{ _proxmox = { host = \"h\"; node = \"n\"; templateVmid = 9000; defaultStorage = \"s\"; };\n  web = { proxmox = { vmid = 120; cores = 1; memory = 1024; disk = \"8G\"; }; }; }\n",
    )
    .unwrap();
    let o = pve(d.path(), &["render"]);
    assert!(o.status.success(), "{}", err(&o));
    let files: Vec<PathBuf> = snapshot(d.path()).into_keys().collect();
    assert_eq!(
        files,
        [
            PathBuf::from("hosts.nix"),
            PathBuf::from("vms/known_hosts"),
            PathBuf::from("vms/tofu/config.tf.json")
        ]
    );
    // Asked for explicitly, it is an error that says what is missing.
    let o = pve(d.path(), &["render", "sops"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("`_sops.admins` is empty"), "{}", err(&o));
    // New generated files are readable by others (no secrets in them).
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(d.path().join("vms/tofu/config.tf.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o644);
}
