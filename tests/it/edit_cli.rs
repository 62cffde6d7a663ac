//! `pve host set|add|rm|rename` against the built binary: the file changes
//! exactly as asked, `--dry-run` shows a diff and writes nothing, every bad
//! input exits 2 with a clear message and leaves the file byte-identical,
//! and two processes editing at once lose nothing and never tear the file.

use crate::support::{stderr, stdout};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use pve_fleet::error::AppError;
use pve_fleet::fleet::edit;

const FLEET: &str = "\
let
  keys = [ \"ssh-ed25519 AAAA admin\" ];
in
{
  _proxmox = {
    host = \"192.168.1.12\"; # API + SSH
    node = \"prom\";
  };

  # the web server
  web = {
    hostname = \"web\";
    authorizedKeys = keys;
    proxmox = {
      vmid = 120;
      cores = 2; # small for now
    };
  };

  db = {
    hostname = \"db\";
    proxmox = { vmid = 121; };
  };
}
";

fn fleet(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("hosts.nix");
    std::fs::write(&path, text).expect("write hosts.nix");
    (dir, path)
}

fn pve(hosts: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pve"))
        .arg("--hosts")
        .arg(hosts)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run pve")
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).expect("read hosts.nix")
}

/// Asserts exit 2, the file unchanged, and a message containing `needle`.
fn refused(path: &Path, args: &[&str], needle: &str) {
    let before = std::fs::read(path).expect("read");
    let o = pve(path, args);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
    assert!(
        stderr(&o).contains(needle),
        "{args:?}: want {needle:?} in\n{}",
        stderr(&o)
    );
    assert_eq!(
        std::fs::read(path).expect("read"),
        before,
        "{args:?} changed the file"
    );
}

#[test]
fn set_writes_exactly_the_change() {
    let (_d, path) = fleet(FLEET);
    let o = pve(&path, &["host", "set", "web", "proxmox.cores", "4"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(read(&path), FLEET.replace("cores = 2;", "cores = 4;"));
    assert!(
        stdout(&o).contains("set web.proxmox.cores"),
        "{}",
        stdout(&o)
    );

    // the same value again writes nothing and says so
    let o = pve(&path, &["host", "set", "web", "proxmox.cores", "4"]);
    assert!(o.status.success());
    assert!(stdout(&o).contains("nothing written"), "{}", stdout(&o));

    let o = pve(
        &path,
        // --force: the made-up key is no ssh-ed25519 key `pve check` accepts.
        &[
            "host",
            "set",
            "db",
            "publicKey",
            "\"ssh-ed25519 BBBB\"",
            "--force",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(read(&path)
        .contains("    proxmox = { vmid = 121; };\n    publicKey = \"ssh-ed25519 BBBB\";\n  };"));
}

#[test]
fn dry_run_prints_a_unified_diff_and_writes_nothing() {
    let (_d, path) = fleet(FLEET);
    for args in [
        &["host", "set", "web", "proxmox.cores", "4", "--dry-run"][..],
        &[
            "host",
            "add",
            "cache",
            "--vmid",
            "130",
            "--dry-run",
            "--force",
        ][..],
        &["host", "rm", "db", "--dry-run"][..],
        &["host", "rename", "db", "pg", "--dry-run"][..],
    ] {
        let o = pve(&path, args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        let diff = stdout(&o);
        assert!(
            diff.starts_with(&format!(
                "--- {}\n+++ {}\n@@ ",
                path.display(),
                path.display()
            )),
            "{diff}"
        );
        assert_eq!(read(&path), FLEET, "{args:?} wrote the file");
    }
    let o = pve(
        &path,
        &["host", "set", "web", "proxmox.cores", "4", "--dry-run"],
    );
    assert!(stdout(&o)
        .contains("\n-      cores = 2; # small for now\n+      cores = 4; # small for now\n"));
}

#[test]
fn add_renders_the_template_and_the_fleet_evaluates() {
    let (_d, path) = fleet(FLEET);
    let o = pve(
        &path,
        &[
            "host",
            "add",
            "cache",
            "--vmid",
            "130",
            "--cores",
            "2",
            "--memory",
            "4096",
            "--disk",
            "32G",
            "--tag",
            "web",
            "--tag",
            "x\"y",
            "--authorized-keys",
            "keys",
            // The tag with a quote (to test the escaping) fails `pve check`.
            "--force",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let want = FLEET.replace(
        "    proxmox = { vmid = 121; };\n  };\n}\n",
        "    proxmox = { vmid = 121; };\n  };\n\n  cache = {\n    configurationFile = ./hosts/cache/configuration.nix;\n    homeFile = ./hosts/cache/home.nix;\n    hostname = \"cache\";\n    authorizedKeys = keys;\n    proxmox = {\n      vmid = 130;\n      cores = 2;\n      memory = 4096;\n      disk = \"32G\";\n      tags = [ \"web\" \"x\\\"y\" ];\n    };\n  };\n}\n",
    );
    assert_eq!(read(&path), want);
    let o = pve(&path, &["eval"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["cache"]["proxmox"]["tags"][1], "x\"y");
    assert_eq!(v["cache"]["authorizedKeys"][0], "ssh-ed25519 AAAA admin");
}

#[test]
fn rm_needs_yes_without_a_terminal_and_removes_comments_with_the_host() {
    let (_d, path) = fleet(FLEET);
    refused(&path, &["host", "rm", "web"], "--yes");
    let o = pve(&path, &["host", "rm", "web", "--yes"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let start = FLEET.find("  # the web server").expect("comment");
    let end = FLEET.find("  db = {").expect("db");
    assert_eq!(read(&path), format!("{}{}", &FLEET[..start], &FLEET[end..]));
}

#[test]
fn rename_then_set_by_the_new_name() {
    let (_d, path) = fleet(FLEET);
    let o = pve(&path, &["host", "rename", "db", "pg"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // The old name is kept for OpenTofu's `moved` block (tests/it/cluster.rs).
    assert_eq!(
        read(&path),
        FLEET.replace("  db = {", "  pg = {").replace(
            "    proxmox = { vmid = 121; };\n",
            "    proxmox = { vmid = 121; };\n    renamedFrom = \"db\";\n"
        )
    );
    refused(&path, &["host", "rename", "pg", "web"], "already exists");
}

#[test]
fn bad_input_exits_2_and_leaves_the_file_byte_identical() {
    let (_d, path) = fleet(FLEET);
    refused(
        &path,
        &["host", "set", "wev", "cores", "1"],
        "no host `wev`",
    );
    refused(
        &path,
        &["host", "set", "wev", "cores", "1"],
        "did you mean `web`?",
    );
    refused(&path, &["host", "rm", "nope", "--yes"], "no host `nope`");
    refused(
        &path,
        &["host", "set", "web", "hostname.x", "1"],
        "`web.hostname` is a string, not an attribute set",
    );
    refused(
        &path,
        &["host", "set", "web", "cores", "1 +"],
        "is not a valid Nix value",
    );
    refused(
        &path,
        &["host", "set", "web", "cores", "[ 1"],
        "is not a valid Nix value",
    );
    refused(
        &path,
        &["host", "set", "web", "cores", "nosuchvar"],
        "would not evaluate",
    );
    refused(
        &path,
        &["host", "set", "web", "a..b", "1"],
        "bad attribute path",
    );
    refused(&path, &["host", "add", "web"], "already exists");
    refused(&path, &["host", "add", "Bad_Name"], "not a valid host name");
    refused(&path, &["host", "add", "x", "--vmid", "5"], "out of range");
    refused(
        &path,
        &["host", "add", "x", "--disk", "12Q"],
        "is neither a size",
    );

    // the error names the file and position
    let o = pve(&path, &["host", "set", "web", "hostname.x", "1"]);
    assert!(
        stderr(&o).contains(&format!("{}:12:16:", path.display())),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_file_that_does_not_parse_is_refused_with_its_position() {
    let broken = FLEET.replace("node = \"prom\";", "node = \"prom\"");
    let (_d, path) = fleet(&broken);
    refused(
        &path,
        &["host", "set", "web", "cores", "1"],
        "does not parse",
    );
    refused(
        &path,
        &["host", "add", "x"],
        &format!("{}:8:", path.display()),
    );
    refused(&path, &["host", "rm", "web", "--yes"], "does not parse");
}

#[test]
fn a_top_level_of_another_shape_is_refused_by_name() {
    let (_d, path) = fleet("if true then { a = { }; } else { }\n");
    refused(
        &path,
        &["host", "add", "c"],
        "its top level is an expression of another kind",
    );
    let (_d, path) = fleet("let a = { b = { }; }; in a // a\n");
    refused(
        &path,
        &["host", "rm", "b", "--yes"],
        "none of the sets merged with `//`",
    );
}

#[test]
fn a_read_only_file_is_left_alone() {
    use std::os::unix::fs::PermissionsExt;
    let (_d, path) = fleet(FLEET);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).expect("chmod");
    refused(&path, &["host", "set", "web", "cores", "1"], "read-only");
    let leftovers: Vec<_> = std::fs::read_dir(path.parent().expect("dir"))
        .expect("ls")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".pve-tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temp files left behind");
}

#[test]
fn a_failing_write_leaves_the_file_intact() {
    let (_d, path) = fleet(FLEET);
    let err = edit::apply_with(
        &path,
        None,
        |t| edit::set_attr(t, &["web", "cores"], "9"),
        false,
        |p, _| {
            Err(AppError::from(pve_fleet::fsutil::FsError::Write {
                what: "write",
                path: p.to_path_buf(),
                source: std::io::Error::from_raw_os_error(28), // ENOSPC
            }))
        },
    )
    .map_err(AppError::from)
    .expect_err("the writer fails");
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().contains("No space left on device"), "{err}");
    assert!(err.to_string().contains("was not changed"), "{err}");
    assert_eq!(read(&path), FLEET);
}

#[test]
fn a_file_changed_on_disk_between_read_and_write_is_not_overwritten() {
    let (_d, path) = fleet(FLEET);
    let theirs = FLEET.replace("cores = 2;", "cores = 3;");
    let err = edit::apply_to_file(&path, |t| {
        // someone saves the file while pve computes its edit
        std::fs::write(&path, &theirs).expect("concurrent write");
        edit::set_attr(t, &["web", "proxmox", "memory"], "1024")
    })
    .map_err(AppError::from)
    .expect_err("must refuse");
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().contains("changed on disk"), "{err}");
    assert_eq!(read(&path), theirs);

    // a confirmed edit whose preview no longer matches the file
    let err =
        edit::apply_to_file_checked(&path, Some(FLEET), false, |t| edit::remove_host(t, "db"))
            .expect_err("must refuse");
    assert!(err.to_string().contains("changed on disk"), "{err}");
    assert_eq!(read(&path), theirs);
}

/// A tmpfs so small that the new file cannot be written: a real ENOSPC.
/// Needs root (mount); elsewhere the injected-writer test above covers it.
#[test]
fn a_full_disk_leaves_the_file_intact() {
    struct Mount(PathBuf);
    impl Drop for Mount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(dir.path())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipping: cannot mount a tmpfs here (not root)");
        return;
    }
    let _m = Mount(dir.path().to_path_buf());
    let path = dir.path().join("hosts.nix");
    std::fs::write(&path, FLEET).expect("write");
    std::fs::write(dir.path().join(".pve.lock"), "").expect("lock file");
    // fill the rest of the disk
    let filler = vec![b'x'; 4096];
    let mut f = std::fs::File::create(dir.path().join("filler")).expect("filler");
    while std::io::Write::write_all(&mut f, &filler).is_ok() {}
    drop(f);
    refused(
        &path,
        &["host", "set", "web", "cores", "1"],
        "No space left on device",
    );
    refused(
        &path,
        &["host", "add", "cache", "--vmid", "130", "--force"],
        "was not changed",
    );
}

#[test]
fn two_processes_editing_at_once_lose_nothing_and_never_tear_the_file() {
    let (_d, path) = fleet(FLEET);
    let rounds = 8;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (path, stop) = (path.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut reads = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let text = std::fs::read_to_string(&path).expect("read");
                pve_fleet::fleet::evaluate_text(&text, Path::new("/"))
                    .unwrap_or_else(|d| panic!("torn file: {}\n{text}", d.message));
                reads += 1;
            }
            reads
        })
    };
    let writers: Vec<_> = ["web", "db"]
        .into_iter()
        .map(|host| {
            let path = path.clone();
            std::thread::spawn(move || {
                for i in 1..=rounds {
                    let o = pve(&path, &["host", "set", host, "counter", &i.to_string()]);
                    assert!(o.status.success(), "{host} {i}: {}", stderr(&o));
                }
            })
        })
        .collect();
    for w in writers {
        w.join().expect("writer");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(reader.join().expect("reader") > 0);
    let o = pve(&path, &["eval"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["web"]["counter"], rounds);
    assert_eq!(v["db"]["counter"], rounds);
    assert_eq!(v["web"]["proxmox"]["cores"], 2);
}

#[test]
fn an_edit_that_check_would_flag_is_refused_unless_forced() {
    let (_d, path) = fleet(FLEET);
    let o = pve(&path, &["host", "set", "web", "proxmox.corse", "4"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("unknown key `web.proxmox.corse`"),
        "{}",
        stderr(&o)
    );
    assert_eq!(read(&path), FLEET);
    let o = pve(
        &path,
        &["host", "set", "web", "proxmox.corse", "4", "--force"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(read(&path).contains("      corse = 4;\n"));
    // a clean edit prints no warning
    let o = pve(&path, &["host", "set", "web", "proxmox.cores", "3"]);
    assert_eq!(stderr(&o), "");
}

#[test]
fn a_workflow_holding_the_lock_can_still_edit() {
    let (d, path) = fleet(FLEET);
    let lock =
        pve_fleet::fsutil::RepoLock::acquire(d.path(), std::time::Duration::ZERO).expect("lock");
    let applied = edit::apply_to_file_under(&lock, &path, |t| {
        let t = edit::set_attr(t, &["web", "proxmox", "cores"], "6")?;
        edit::remove_host(&t, "db")
    })
    .expect("edit under a held lock");
    assert!(applied.changed());
    assert!(read(&path).contains("cores = 6;"));
    assert!(!read(&path).contains("db ="));
    drop(lock);
}

#[test]
fn adding_then_removing_a_host_gives_back_the_example_fleet_byte_for_byte() {
    let example = include_str!("../../hosts.nix");
    let (_d, path) = fleet(example);
    let o = pve(
        &path,
        &[
            "host",
            "add",
            "zz-new",
            "--vmid",
            "150",
            "--authorized-keys",
            "adminKeys",
            "--cores",
            "2",
            "--memory",
            "2048",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_ne!(read(&path), example);
    let o = pve(&path, &["host", "rm", "zz-new", "--yes"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(read(&path), example);
}

/// `pve host rm` on a terminal shows the diff and asks. `script` (util-linux)
/// gives the process a pseudo-terminal; the answer comes on its stdin.
#[test]
fn rm_on_a_terminal_asks_and_honours_the_answer() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipping: no `script` to provide a terminal");
        return;
    }
    let (_d, path) = fleet(FLEET);
    let ask = |answer: &str| {
        let cmd = format!(
            "{} --hosts {} host rm db",
            env!("CARGO_BIN_EXE_pve"),
            pve_fleet::shell::quote(&path.display().to_string())
        );
        let mut child = Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("script");
        use std::io::Write as _;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(answer.as_bytes())
            .expect("answer");
        let o = child.wait_with_output().expect("wait");
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
        )
    };
    let (code, out) = ask("n\n");
    assert_eq!(code, Some(0));
    assert!(out.contains("-  db = {"), "the diff is shown: {out}");
    assert!(out.contains("Remove host `db`"), "{out}");
    assert!(out.contains("nothing changed"), "{out}");
    assert_eq!(read(&path), FLEET);
    let (code, out) = ask("y\n");
    assert_eq!(code, Some(0), "{out}");
    assert!(!read(&path).contains("db = {"));
}
