//! Finding hosts.nix (issue 14, item 6): a `hosts.nix` that is there but
//! is not a readable file stops the search where it stands (never a parent
//! fleet instead), and a bare file name works for every command.

use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;

use crate::support::{example_fleet, out};

/// A parent fleet (the example fleet) with `sub/` below it, where
/// `make_hosts` puts a broken `sub/hosts.nix`.
fn broken_below_a_fleet(make_hosts: impl FnOnce(&Path)) -> tempfile::TempDir {
    let fleet = example_fleet();
    let sub = fleet.path().join("sub");
    std::fs::create_dir(&sub).expect("mkdir");
    make_hosts(&sub);
    fleet
}

fn pve_in(dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_pve"))
        .current_dir(dir)
        .args(args)
        .env_remove("PVE_HOSTS")
        .output()
        .expect("pve runs");
    let (stdout, stderr) = out(&o);
    (o.status.code(), stdout, stderr)
}

/// (name, how to make the broken hosts.nix in a folder, what pve says).
type Case = (&'static str, fn(&Path), &'static str);

#[test]
fn a_broken_hosts_nix_is_an_error_where_it_stands() {
    let cases: [Case; 3] = [
        (
            "folder",
            |d| std::fs::create_dir(d.join("hosts.nix")).expect("mkdir"),
            "it is a folder",
        ),
        (
            "dangling symlink",
            |d| symlink("missing.nix", d.join("hosts.nix")).expect("symlink"),
            "it is a symbolic link to missing.nix, which does not exist",
        ),
        (
            "symlink loop",
            |d| {
                symlink("other.nix", d.join("hosts.nix")).expect("symlink");
                symlink("hosts.nix", d.join("other.nix")).expect("symlink");
            },
            "it is a symbolic link that loops",
        ),
    ];
    for (name, make, words) in cases {
        let fleet = broken_below_a_fleet(make);
        let sub = fleet.path().join("sub");
        let (code, stdout, stderr) = pve_in(&sub, &["check"]);
        assert_eq!(code, Some(2), "{name}: {stderr}");
        let at = sub.join("hosts.nix").display().to_string();
        assert!(
            stderr.contains(&format!("{at} cannot be read: {words}")),
            "{name}: {stderr}"
        );
        // The parent fleet's 4 hosts were not checked instead.
        assert!(
            !stdout.contains("hosts") && !stderr.contains("4 hosts"),
            "{name}: {stderr}"
        );
        // Named explicitly, it says the same.
        let (code, _, stderr) = pve_in(fleet.path(), &["-f", "sub/hosts.nix", "check"]);
        assert_eq!(code, Some(2), "{name}");
        assert!(stderr.contains(words), "{name}: {stderr}");
    }
}

#[test]
fn a_bare_file_name_works_for_every_command() {
    let fleet = example_fleet();
    let dir = fleet.path();
    // Commands that run without Proxmox, OpenTofu or a network.
    let commands: &[&[&str]] = &[
        &["check"],
        &["eval"],
        &["render", "--out-dir", "rendered"],
        &["scaffold", "web9"],
        &["host", "set", "--dry-run", "sandbox", "proxmox.cores", "2"],
        &[
            "host",
            "add",
            "--dry-run",
            "web8",
            "--vmid",
            "180",
            "--cores",
            "2",
            "--memory",
            "2048",
        ],
        &["integrate", "sandbox", "--status"],
    ];
    for args in commands {
        let mut with_flag = vec!["-f", "hosts.nix"];
        with_flag.extend_from_slice(args);
        let (code, _, stderr) = pve_in(dir, &with_flag);
        assert_eq!(code, Some(0), "pve {with_flag:?}: {stderr}");
        if args[0] == "scaffold" {
            assert!(dir.join("hosts/web9/configuration.nix").is_file());
            std::fs::remove_dir_all(dir.join("hosts/web9")).expect("rm");
        }
        let o = Command::new(env!("CARGO_BIN_EXE_pve"))
            .current_dir(dir)
            .args(*args)
            .env("PVE_HOSTS", "hosts.nix")
            .output()
            .expect("pve runs");
        let (_, stderr) = out(&o);
        assert!(
            !stderr.contains("empty path"),
            "PVE_HOSTS=hosts.nix pve {args:?}: {stderr}"
        );
        assert_eq!(
            o.status.code(),
            Some(0),
            "PVE_HOSTS=hosts.nix pve {args:?}: {stderr}"
        );
    }
    assert!(dir.join("hosts/web9/configuration.nix").is_file());
}
