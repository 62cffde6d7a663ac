//! Flags are checked before anything is contacted or written: `pve new`
//! names every bad VM flag and exits 2 without one call to the simulated
//! Proxmox host; `pve host set|add` refuse an edit that would make `pve
//! check` fail (exit 1, the file byte-identical) unless `--force`, and
//! `--dry-run` shows the errors and the diff.

use crate::support::pvesim::Sim;
use crate::support::{stderr, stdout};

#[test]
fn pve_new_names_every_bad_flag_before_contacting_proxmox() {
    let s = Sim::start();
    s.pin_host_key();
    let hosts = s.fleet.join("hosts.nix");
    let before = std::fs::read(&hosts).expect("hosts.nix");
    let o = s
        .pve()
        // A token, so nothing but the flags stops pve from going on.
        .env(
            "PROXMOX_VE_API_TOKEN",
            "root@pam!pve=00000000-0000-0000-0000-000000000000",
        )
        .args(["new", "--name", "web2", "--yes"])
        .args([
            "--memory", "8", "--disk", "64GB", "--vmid", "5", "--cores", "0",
        ])
        .output()
        .expect("runs");
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    for needle in [
        "4 bad flags",
        "--memory: memory is in MiB: 8 GiB is 8192",
        "--disk: disk \"64GB\" is neither a size",
        "--vmid: VMID 5 is out of range",
        "--cores: cores must be between 1 and 512",
    ] {
        assert!(err.contains(needle), "want {needle:?} in\n{err}");
    }
    assert_eq!(
        s.calls(),
        Vec::<Vec<String>>::new(),
        "nothing ran on Proxmox"
    );
    assert_eq!(std::fs::read(&hosts).expect("hosts.nix"), before);

    // The call log does record what pve runs there.
    let o = s.pve().args(["vm", "list"]).output().expect("runs");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!s.calls().is_empty());
}

const FLEET: &str = "{
  _proxmox = { host = \"192.0.2.1\"; node = \"pve\"; };
  web = {
    hostname = \"web\";
    proxmox = { vmid = 120; cores = 2; memory = 2048; };
  };
}
";

fn fleet() -> (tempfile::TempDir, std::path::PathBuf) {
    let d = tempfile::tempdir().expect("tmp");
    let p = d.path().join("hosts.nix");
    std::fs::write(&p, FLEET).expect("write");
    (d, p)
}

fn pve(path: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_pve"))
        .arg("--hosts")
        .arg(path)
        .args(args)
        .env_remove("PVE_HOSTS")
        .output()
        .expect("runs")
}

#[test]
fn host_set_that_breaks_the_check_is_refused_unless_forced() {
    let (_d, path) = fleet();
    // `pve check` refuses 0 cores; the edit itself is well-formed.
    let set = ["host", "set", "web", "proxmox.cores", "0"];
    let o = pve(&path, &set);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cores-range"),
        "the check error is shown:\n{err}"
    );
    assert!(
        err.contains("setting `web.proxmox.cores` would make `pve check` fail"),
        "{err}"
    );
    assert!(err.contains("--force"), "{err}");
    assert_eq!(std::fs::read_to_string(&path).expect("read"), FLEET);

    // --dry-run: the errors and the diff, nothing written, still exit 1.
    let o = pve(&path, &[&set[..], &["--dry-run"]].concat());
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("cores-range"), "{}", stderr(&o));
    let diff = stdout(&o);
    assert!(
        diff.contains("+    proxmox = { vmid = 120; cores = 0; memory = 2048; };"),
        "{diff}"
    );
    assert_eq!(std::fs::read_to_string(&path).expect("read"), FLEET);

    // --force writes it; `pve check` then fails on it.
    let o = pve(&path, &[&set[..], &["--force"]].concat());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(&path).expect("read"),
        FLEET.replace("cores = 2", "cores = 0")
    );
    let o = pve(&path, &["check"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));

    // A change the check accepts is written as before.
    let (_d, path) = fleet();
    let o = pve(&path, &["host", "set", "web", "proxmox.cores", "4"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(&path).expect("read"),
        FLEET.replace("cores = 2", "cores = 4")
    );
}

#[test]
fn host_add_is_checked_by_flag_and_by_the_check() {
    let (_d, path) = fleet();
    // Every bad flag at once, exit 2.
    let o = pve(
        &path,
        &[
            "host", "add", "db", "--vmid", "5", "--memory", "8", "--disk", "64GB",
        ],
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    for flag in ["--vmid: ", "--memory: ", "--disk: "] {
        assert!(err.contains(flag), "want {flag} in\n{err}");
    }
    assert_eq!(std::fs::read_to_string(&path).expect("read"), FLEET);

    // Good flags, but the VMID is taken: the check's duplicate-vmid.
    let add = [
        "host", "add", "db", "--vmid", "120", "--cores", "2", "--memory", "2048",
    ];
    let o = pve(&path, &add);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("duplicate-vmid"), "{err}");
    assert!(
        err.contains("adding host `db` would make `pve check` fail"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&path).expect("read"), FLEET);

    let o = pve(&path, &[&add[..], &["--dry-run"]].concat());
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("+  db = {"), "{}", stdout(&o));
    assert_eq!(std::fs::read_to_string(&path).expect("read"), FLEET);

    let o = pve(&path, &[&add[..], &["--force"]].concat());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(std::fs::read_to_string(&path)
        .expect("read")
        .contains("db = {"));

    // A fine host (its folder comes later with `pve scaffold`) is added.
    let (_d, path) = fleet();
    let o = pve(
        &path,
        &[
            "host", "add", "db", "--vmid", "121", "--cores", "2", "--memory", "2048",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}
