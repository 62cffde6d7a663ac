//! Hostile input, table-driven: every row sets up a copy of the example
//! fleet, runs one `pve` command on it, and expects an exit code, a
//! fragment of the message, and every file of the fleet exactly as it was
//! (bytes, mode, owner and file type, summed into one checksum). Each run
//! is capped (address space, and killed after a generous time) and must
//! stay far below bounds that only a hang or a blow-up would break.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// A run slower than this has hung (the slowest healthy run takes well
/// under a second, even on a loaded machine).
const HANG: Duration = Duration::from_secs(10);
/// A run using more memory than this has blown up.
const MAX_RSS_KIB: i64 = 1024 * 1024;
/// The address space each run may reserve: a regression that allocates
/// without bound fails here instead of taking the machine down.
const AS_LIMIT: u64 = 4 * 1024 * 1024 * 1024;

use crate::support::example_fleet_rendered as fleet;

/// One checksum over every file under `dir` (the lock file aside): path,
/// file type, mode, owner, group, and bytes or link target.
fn checksum(dir: &Path) -> String {
    fn walk(base: &Path, d: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in std::fs::read_dir(d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let rel = p.strip_prefix(base).unwrap().to_path_buf();
            if rel.as_os_str() == ".pve.lock" {
                continue;
            }
            let m = std::fs::symlink_metadata(&p).unwrap();
            let mut entry = format!("{:o} {} {} ", m.mode(), m.uid(), m.gid()).into_bytes();
            if m.file_type().is_symlink() {
                entry.extend(
                    std::fs::read_link(&p)
                        .unwrap()
                        .as_os_str()
                        .as_encoded_bytes(),
                );
            } else if m.is_dir() {
                walk(base, &p, out);
            } else if m.is_file() {
                entry.extend(std::fs::read(&p).unwrap());
            }
            out.insert(rel, entry);
        }
    }
    let mut files = BTreeMap::new();
    walk(dir, dir, &mut files);
    let mut h = Sha256::new();
    for (p, bytes) in files {
        h.update(p.as_os_str().as_encoded_bytes());
        h.update([0]);
        h.update(Sha256::digest(&bytes));
    }
    format!("{:x}", h.finalize())
}

/// What one capped run of `pve` did.
struct Run {
    code: Option<i32>,
    stderr: String,
    elapsed: Duration,
    max_rss_kib: i64,
}

/// Runs `pve -f hosts.nix ARGS` (or `pve ARGS` when they name `-f`) in `dir` with its address space capped,
/// killed if it outlives [`HANG`], and measures its peak resident memory.
fn run_capped(dir: &Path, args: &[String], stdin: Option<&Path>) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pve"));
    if !args.iter().any(|a| a == "-f") {
        cmd.arg("-f").arg(dir.join("hosts.nix"));
    }
    cmd.args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    match stdin {
        Some(p) => cmd.stdin(std::fs::File::open(p).unwrap()),
        None => cmd.stdin(Stdio::null()),
    };
    // SAFETY: setrlimit is async-signal-safe and touches no shared state.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: AS_LIMIT,
                rlim_max: AS_LIMIT,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let start = Instant::now();
    let mut child = cmd.spawn().unwrap();
    let pid = child.id() as libc::pid_t;
    let mut err_pipe = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::Read as _;
        let mut s = Vec::new();
        let _ = (&mut err_pipe).take(1 << 20).read_to_end(&mut s);
        let _ = std::io::copy(&mut err_pipe, &mut std::io::sink());
        String::from_utf8_lossy(&s).into_owned()
    });
    // The watchdog kills a run that hangs; it stops as soon as the run ends.
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if done_rx.recv_timeout(HANG * 3).is_err() {
            // SAFETY: plain kill(2) of our own child, not yet reaped.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    });
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child; the Child handle is not used to
    // wait afterwards.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let elapsed = start.elapsed();
    assert_eq!(waited, pid, "wait4");
    let _ = done_tx.send(());
    watchdog.join().unwrap();
    std::mem::forget(child);
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    Run {
        code,
        stderr: reader.join().unwrap(),
        elapsed,
        max_rss_kib: usage.ru_maxrss,
    }
}

/// One hostile input.
struct Case {
    name: &'static str,
    /// Makes the fleet hostile; returns the arguments of the command.
    setup: fn(&Path) -> Vec<String>,
    code: i32,
    fragment: &'static str,
    /// A file to feed on stdin (relative to the fleet), if any.
    stdin: Option<&'static str>,
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// Replaces `from` by `to` in the fleet's hosts.nix (which must hold it).
fn edit(dir: &Path, from: &str, to: &str) {
    let p = dir.join("hosts.nix");
    let text = std::fs::read_to_string(&p).unwrap();
    assert!(text.contains(from), "hosts.nix lacks {from:?}");
    std::fs::write(&p, text.replacen(from, to, 1)).unwrap();
}

fn sops_path(dir: &Path, path: &str) {
    edit(
        dir,
        "_sops = {",
        &format!("_sops = {{\n    path = \"{path}\";"),
    );
}

fn run_case(c: &Case) {
    let d = fleet();
    let args = (c.setup)(d.path());
    let before = checksum(d.path());
    let run = run_capped(
        d.path(),
        &args,
        c.stdin.map(|s| d.path().join(s)).as_deref(),
    );
    let after = checksum(d.path());
    let name = c.name;
    let err = &run.stderr;
    assert!(!err.contains("panicked"), "{name}: panic: {err}");
    // Nothing from the input drives the terminal, and no message floods it.
    let raw = err
        .chars()
        .find(|&c| c.is_control() && c != '\n' && c != '\t');
    assert_eq!(
        raw, None,
        "{name}: a raw control character reached stderr: {err:?}"
    );
    assert!(
        err.len() < 64 * 1024,
        "{name}: {} bytes on stderr",
        err.len()
    );
    assert_eq!(run.code, Some(c.code), "{name}: exit code; stderr:\n{err}");
    assert!(
        err.contains(c.fragment),
        "{name}: expected {:?} in:\n{err}",
        c.fragment
    );
    assert_eq!(before, after, "{name}: the fleet changed");
    assert!(run.elapsed < HANG, "{name}: took {:?}", run.elapsed);
    assert!(
        run.max_rss_kib < MAX_RSS_KIB,
        "{name}: {} KiB resident",
        run.max_rss_kib
    );
}

fn run_table(cases: &[Case]) {
    for c in cases {
        run_case(c);
    }
}

// ---------------------------------------------------------------------------
// 1. A generated file is written only where pve owns the name.

#[test]
fn render_writes_only_where_pve_owns_the_name() {
    run_table(&[
        Case {
            name: "_sops.path is hosts.nix",
            setup: |d| {
                sops_path(d, "hosts.nix");
                args(&["render"])
            },
            code: 2,
            fragment: "does not name a `.sops.yaml` file",
            stdin: None,
        },
        Case {
            name: "check reports _sops.path = hosts.nix",
            setup: |d| {
                sops_path(d, "hosts.nix");
                args(&["check"])
            },
            code: 1,
            fragment: "does not name a `.sops.yaml` file",
            stdin: None,
        },
        Case {
            name: "_sops.path is a README",
            setup: |d| {
                sops_path(d, "README.md");
                std::fs::write(d.join("README.md"), "# my fleet\n").unwrap();
                args(&["render", "sops"])
            },
            code: 2,
            fragment: "does not name a `.sops.yaml` file",
            stdin: None,
        },
        Case {
            name: "a .sops.yaml name held by a file pve did not write",
            setup: |d| {
                sops_path(d, "notes.sops.yaml");
                std::fs::write(d.join("notes.sops.yaml"), "just: my notes\n").unwrap();
                args(&["render"])
            },
            code: 2,
            fragment: "is not a file `pve render` wrote",
            stdin: None,
        },
        Case {
            name: "check reports a .sops.yaml name held by another file",
            setup: |d| {
                sops_path(d, "notes.sops.yaml");
                std::fs::write(d.join("notes.sops.yaml"), "just: my notes\n").unwrap();
                args(&["check"])
            },
            code: 1,
            fragment: "is not a file `pve render` wrote",
            stdin: None,
        },
        Case {
            name: ".sops.yaml is a link to hosts.nix",
            setup: |d| {
                std::fs::remove_file(d.join("secrets/.sops.yaml")).unwrap();
                std::os::unix::fs::symlink("../hosts.nix", d.join("secrets/.sops.yaml")).unwrap();
                args(&["render"])
            },
            code: 2,
            fragment: "would overwrite",
            stdin: None,
        },
        Case {
            name: "known_hosts is a link to a host's configuration.nix",
            setup: |d| {
                std::fs::remove_file(d.join("vms/known_hosts")).unwrap();
                std::os::unix::fs::symlink(
                    "../hosts/sandbox/configuration.nix",
                    d.join("vms/known_hosts"),
                )
                .unwrap();
                args(&["render"])
            },
            code: 2,
            fragment: "which hosts.nix points at",
            stdin: None,
        },
    ]);
}

// ---------------------------------------------------------------------------
// 3. Render is all or nothing.

#[test]
fn render_writes_all_files_or_none() {
    run_table(&[Case {
        name: "vms/tofu cannot hold files; known_hosts is stale",
        setup: |d| {
            // Stale known_hosts (rendered before the tofu file, by path)...
            let kh = d.join("vms/known_hosts");
            let old = std::fs::read_to_string(&kh).unwrap();
            std::fs::write(&kh, format!("{old}# stale line\n")).unwrap();
            // ...and a tofu folder that cannot be written (tests run as
            // root, where permissions would not stop a write).
            std::fs::remove_dir_all(d.join("vms/tofu")).unwrap();
            std::fs::write(d.join("vms/tofu"), "not a folder\n").unwrap();
            args(&["render"])
        },
        code: 2,
        fragment: "config.tf.json",
        stdin: None,
    }]);
}

// ---------------------------------------------------------------------------
// 12. `render --check` against a destination that cannot be read.

#[test]
fn render_check_of_an_unreadable_destination_is_bad_input() {
    run_table(&[
        Case {
            name: "--out-dir that does not exist",
            setup: |d| {
                let missing = d.join("no/such/folder");
                args(&["render", "--check", "--out-dir", missing.to_str().unwrap()])
            },
            code: 2,
            fragment: "cannot read",
            stdin: None,
        },
        Case {
            name: "--out-dir that is a file",
            setup: |d| {
                let file = d.join("hosts.nix");
                args(&["render", "--check", "--out-dir", file.to_str().unwrap()])
            },
            code: 2,
            fragment: "is not a folder",
            stdin: None,
        },
        Case {
            name: "a rendered file that is a folder",
            setup: |d| {
                std::fs::remove_file(d.join("vms/known_hosts")).unwrap();
                std::fs::create_dir(d.join("vms/known_hosts")).unwrap();
                args(&["render", "--check"])
            },
            code: 2,
            fragment: "cannot read",
            stdin: None,
        },
        Case {
            name: "a missing rendered file is stale",
            setup: |d| {
                std::fs::remove_file(d.join("vms/known_hosts")).unwrap();
                args(&["render", "--check"])
            },
            code: 1,
            fragment: "stale: vms/known_hosts",
            stdin: None,
        },
    ]);
}

// ---------------------------------------------------------------------------
// 5. Evaluation has a budget: "billion laughs" stops fast, at its position.

/// `a0 = SEED; a1 = STEP(a0); ... a40 = STEP(a39)`, under 2 KB.
fn laughs(seed: &str, step: fn(&str) -> String, use_: &str) -> String {
    let mut s = format!("let\n  a0 = {seed};\n");
    for i in 1..=40 {
        s.push_str(&format!("  a{i} = {};\n", step(&format!("a{}", i - 1))));
    }
    s.push_str(&format!("in {{ {use_} }}\n"));
    assert!(s.len() < 2048, "{} bytes", s.len());
    s
}

fn hosts(d: &Path, text: &str) {
    std::fs::write(d.join("hosts.nix"), text).unwrap();
}

#[test]
fn evaluation_stops_at_its_budget() {
    run_table(&[
        Case {
            name: "nested lists",
            setup: |d| {
                hosts(d, &laughs("[ 1 ]", |p| format!("[ {p} {p} ]"), "_x = a40;"));
                args(&["check"])
            },
            code: 2,
            fragment: "evaluation budget exceeded",
            stdin: None,
        },
        Case {
            name: "strings doubled with +",
            setup: |d| {
                hosts(d, &laughs("\"ab\"", |p| format!("{p} + {p}"), "_x = a40;"));
                args(&["check"])
            },
            code: 2,
            fragment: "evaluation budget exceeded",
            stdin: None,
        },
        Case {
            name: "strings doubled by interpolation",
            setup: |d| {
                hosts(
                    d,
                    &laughs("\"ab\"", |p| format!("\"${{{p}}}${{{p}}}\""), "_x = a40;"),
                );
                args(&["check"])
            },
            code: 2,
            fragment: "evaluation budget exceeded",
            stdin: None,
        },
        Case {
            name: "lists doubled with ++",
            setup: |d| {
                hosts(d, &laughs("[ 1 ]", |p| format!("{p} ++ {p}"), "_x = a40;"));
                args(&["check"])
            },
            code: 2,
            fragment: "evaluation budget exceeded",
            stdin: None,
        },
        Case {
            name: "sets of sets",
            setup: |d| {
                hosts(
                    d,
                    &laughs("{ }", |p| format!("{{ x = {p}; y = {p}; }}"), "_x = a40;"),
                );
                args(&["check"])
            },
            code: 2,
            fragment: "evaluation budget exceeded",
            stdin: None,
        },
        Case {
            name: "sets grown with //",
            setup: |d| {
                hosts(
                    d,
                    &laughs(
                        "{ }",
                        |p| format!("{p} // {{ x = {p}; }} // {{ y = {p}; }}"),
                        "_x = a40;",
                    ),
                );
                args(&["check"])
            },
            code: 2,
            fragment: "evaluation budget exceeded",
            stdin: None,
        },
        Case {
            name: "comparing two huge values builds nothing but walks for ever",
            setup: |d| {
                hosts(
                    d,
                    &laughs("[ 1 ]", |p| format!("[ {p} {p} ]"), "_x = a40 == a40;"),
                );
                args(&["check"])
            },
            code: 2,
            fragment: "evaluation budget exceeded",
            stdin: None,
        },
        Case {
            name: "eval prints nothing of a huge value",
            setup: |d| {
                hosts(d, &laughs("[ 1 ]", |p| format!("[ {p} {p} ]"), "_x = a40;"));
                args(&["eval"])
            },
            code: 2,
            fragment: "hosts.nix:",
            stdin: None,
        },
    ]);
}

// ---------------------------------------------------------------------------
// 6. Long chains are refused before rnix reads them (in quadratic time).

#[test]
fn long_chains_are_refused_in_linear_time() {
    run_table(&[
        Case {
            name: "a million operands of + without spaces",
            setup: |d| {
                hosts(
                    d,
                    &format!("{{ a = {}; }}\n", vec!["1"; 1_000_000].join("+")),
                );
                args(&["check"])
            },
            code: 2,
            fragment: "refused before parsing",
            stdin: None,
        },
        Case {
            name: "a million operands of + with spaces",
            setup: |d| {
                hosts(
                    d,
                    &format!("{{ a = {}; }}\n", vec!["1"; 1_000_000].join(" + ")),
                );
                args(&["check"])
            },
            code: 2,
            fragment: "refused before parsing",
            stdin: None,
        },
        Case {
            name: "80,000 prefix !",
            setup: |d| {
                hosts(d, &format!("{{ a = {}true; }}\n", "!".repeat(80_000)));
                args(&["check"])
            },
            code: 2,
            fragment: "prefix operators",
            stdin: None,
        },
        Case {
            name: "80,000 prefix - with spaces",
            setup: |d| {
                hosts(d, &format!("{{ a = {}1; }}\n", "- ".repeat(80_000)));
                args(&["check"])
            },
            code: 2,
            fragment: "prefix operators",
            stdin: None,
        },
        Case {
            name: "an attribute path of 80,000 names",
            setup: |d| {
                hosts(d, &format!("{{ a = b{}; }}\n", ".c".repeat(80_000)));
                args(&["check"])
            },
            code: 2,
            fragment: "refused before parsing",
            stdin: None,
        },
        Case {
            name: "80,000 `or` defaults",
            setup: |d| {
                hosts(
                    d,
                    &format!("{{ a = {}; }}\n", vec!["b.c"; 80_000].join(" or ")),
                );
                args(&["check"])
            },
            code: 2,
            fragment: "refused before parsing",
            stdin: None,
        },
        Case {
            name: "a host's configuration.nix of a million operands",
            setup: |d| {
                let chain = vec!["1"; 1_000_000].join("+");
                std::fs::write(
                    d.join("hosts/sandbox/configuration.nix"),
                    format!("{{ a = {chain}; }}\n"),
                )
                .unwrap();
                args(&["check"])
            },
            code: 0,
            fragment: "0 errors",
            stdin: None,
        },
        Case {
            name: "thousands of chains of 999 dots, each under the chain bound",
            setup: |d| {
                let line = format!("b{}", ".c".repeat(999));
                let body: String = (0..2000).map(|i| format!("  a{i} = {line};\n")).collect();
                hosts(d, &format!("{{\n{body}}}\n"));
                args(&["check"])
            },
            code: 2,
            fragment: "refused before parsing",
            stdin: None,
        },
    ]);
}

// ---------------------------------------------------------------------------
// 4. Every read of input is bounded while reading.

/// A FIFO at `name` in `dir`, fed `bytes` bytes by a writer thread.
fn fifo(dir: &Path, name: &str, bytes: usize) -> PathBuf {
    let p = dir.join(name);
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: mkfifo with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    let writer_path = p.clone();
    std::thread::spawn(move || {
        use std::io::Write as _;
        if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(&writer_path) {
            let chunk = vec![b' '; 1 << 20];
            for _ in 0..bytes / chunk.len() {
                if f.write_all(&chunk).is_err() {
                    return; // the reader stopped: that is the point
                }
            }
        }
    });
    p
}

#[test]
fn reads_are_bounded_while_reading() {
    run_table(&[
        Case {
            name: "hosts.nix is /dev/zero",
            setup: |_| args(&["-f", "/dev/zero", "check"]),
            code: 2,
            fragment: "/dev/zero is larger than",
            stdin: None,
        },
        Case {
            name: "hosts.nix is a FIFO fed 100 MB",
            setup: |d| {
                let p = fifo(d, "pipe.nix", 100 << 20);
                vec![
                    "-f".into(),
                    p.to_string_lossy().into_owned(),
                    "check".into(),
                ]
            },
            code: 2,
            fragment: "is larger than",
            stdin: None,
        },
        Case {
            name: "public keys on stdin from /dev/zero",
            setup: |_| args(&["key", "to-age"]),
            code: 2,
            fragment: "cannot read stdin: more than",
            stdin: Some("/dev/zero"),
        },
        Case {
            name: "a private key file that is /dev/zero",
            setup: |_| args(&["key", "to-age", "--private", "/dev/zero"]),
            code: 2,
            fragment: "cannot read /dev/zero: more than",
            stdin: None,
        },
    ]);
}

// ---------------------------------------------------------------------------
// 10. A flag that takes a Nix expression takes exactly one.

#[test]
fn a_nix_expression_flag_holds_one_expression() {
    run_table(&[
        Case {
            name: "a second attribute after the value",
            setup: |_| {
                args(&[
                    "host",
                    "add",
                    "web9",
                    "--vmid",
                    "190",
                    "--authorized-keys",
                    "adminKeys; evil = 1",
                ])
            },
            code: 2,
            fragment: "is not one Nix expression",
            stdin: None,
        },
        Case {
            name: "closing the host and opening another",
            setup: |_| {
                args(&[
                    "host",
                    "add",
                    "web9",
                    "--vmid",
                    "190",
                    "--authorized-keys",
                    "adminKeys; }; evil = { x = 1",
                ])
            },
            code: 2,
            fragment: "is not one Nix expression",
            stdin: None,
        },
        Case {
            name: "a comment that would swallow the `;`",
            setup: |_| {
                args(&[
                    "host",
                    "add",
                    "web9",
                    "--vmid",
                    "190",
                    "--authorized-keys",
                    "adminKeys # x",
                ])
            },
            code: 2,
            fragment: "holds a comment",
            stdin: None,
        },
        Case {
            name: "a value over several lines",
            setup: |_| {
                args(&[
                    "host",
                    "add",
                    "web9",
                    "--vmid",
                    "190",
                    "--authorized-keys",
                    "[\n]",
                ])
            },
            code: 2,
            fragment: "spans several lines",
            stdin: None,
        },
    ]);
}

// ---------------------------------------------------------------------------
// 11. What render (or Proxmox) would refuse, check reports at its position.

/// Adds `line` to the first host's `proxmox` set.
fn in_proxmox(d: &Path, line: &str) {
    edit(
        d,
        "    proxmox = {",
        &format!("    proxmox = {{\n      {line}"),
    );
}

#[test]
fn check_reports_what_render_and_proxmox_refuse() {
    run_table(&[
        Case {
            name: "a VM whose name starts with a digit",
            setup: |d| {
                edit(d, "  sandbox = {", "  \"1st\" = {");
                args(&["check"])
            },
            code: 1,
            fragment: "e.g. `vm-1st`",
            stdin: None,
        },
        Case {
            name: "proxmox.name with a space",
            setup: |d| {
                in_proxmox(d, "name = \"a b\";");
                args(&["check"])
            },
            code: 1,
            fragment: "is not a DNS name",
            stdin: None,
        },
        Case {
            name: "ignoreChangesExtra with a space",
            setup: |d| {
                in_proxmox(d, "ignoreChangesExtra = [ \"a b\" ];");
                args(&["check"])
            },
            code: 1,
            fragment: "is not an attribute of the VM resource",
            stdin: None,
        },
        Case {
            name: "a multicast MAC address",
            setup: |d| {
                in_proxmox(d, "macAddress = \"01:00:5e:00:00:01\";");
                args(&["check"])
            },
            code: 1,
            fragment: "hosts.nix:35:20",
            stdin: None,
        },
        Case {
            name: "a bridge with a space",
            setup: |d| {
                in_proxmox(d, "bridge = \"vmbr0 x\";");
                args(&["check"])
            },
            code: 1,
            fragment: "is not a network bridge name",
            stdin: None,
        },
        Case {
            name: "an empty storage",
            setup: |d| {
                in_proxmox(d, "storage = \"\";");
                args(&["check"])
            },
            code: 1,
            fragment: "is not a Proxmox storage name",
            stdin: None,
        },
        Case {
            name: "an unknown CPU type",
            setup: |d| {
                in_proxmox(d, "cpuType = \"x86-64-v2-aes\";");
                args(&["check"])
            },
            code: 1,
            fragment: "did you mean \"x86-64-v2-AES\"",
            stdin: None,
        },
        Case {
            name: "a tag with a newline",
            setup: |d| {
                edit(d, "tags = [ \"sandbox\"", "tags = [ \"a\\nb\"");
                args(&["check"])
            },
            code: 1,
            fragment: "is not a Proxmox tag",
            stdin: None,
        },
        Case {
            name: "_proxmox.host that is not an address",
            setup: |d| {
                edit(d, "host = \"192.168.1.12\";", "host = \"pve; rm -rf /\";");
                args(&["check"])
            },
            code: 1,
            fragment: "is neither a host name nor an IP address",
            stdin: None,
        },
    ]);
}

// ---------------------------------------------------------------------------
// 8, 9. What reaches the terminal: names escaped, long lines clipped.

#[test]
fn diagnostics_are_safe_for_a_terminal() {
    run_table(&[
        Case {
            name: "a host name with ESC, BEL and a newline",
            setup: |d| {
                edit(
                    d,
                    "  sandbox = {",
                    "  \"sb\u{1b}]0;pwned\u{7}\u{1b}[2J\nx\" = {",
                );
                args(&["check"])
            },
            code: 1,
            fragment: "sb\\u{1b}]0;pwned\\u{7}\\u{1b}[2J\\nx",
            stdin: None,
        },
        Case {
            name: "a U+2028 and a bidi override in a name",
            setup: |d| {
                edit(d, "  sandbox = {", "  \"sb\u{2028}\u{202e}x\" = {");
                args(&["check"])
            },
            code: 1,
            fragment: "sb\\u{2028}\\u{202e}x",
            stdin: None,
        },
        Case {
            name: "an error at the end of a 9 MB line",
            setup: |d| {
                let body = "1 ".repeat(4_500_000);
                hosts(d, &format!("{{ a = [ {body}undefinedName ]; }}\n"));
                args(&["check"])
            },
            code: 2,
            fragment: ":1:9000009",
            stdin: None,
        },
        Case {
            name: "an error at the start of a 9 MB line",
            setup: |d| {
                let body = "1 ".repeat(4_500_000);
                hosts(d, &format!("{{ a = [ undefinedName {body}]; }}\n"));
                args(&["check"])
            },
            code: 2,
            fragment: "undefinedName",
            stdin: None,
        },
    ]);
}

// ---------------------------------------------------------------------------
// 7. No Unicode line break reaches a rendered YAML line.

#[test]
fn a_line_break_in_an_admin_name_cannot_add_a_recipient() {
    // Two recipients the example fleet does not use (from the ssh-to-age
    // vectors in the shared reference).
    let alice = "age1hjm3aujg9e79f5yth8a2cejzdjg5n9vnu96l05p70uvfpeltnpms7yy3pp";
    let evil = "age1v8zjc47jmlqwefyu66s0d4ke98qr4vnuj3cpvs4z9npfdw833dxqwjrhzv";
    for brk in ["\u{2028}", "\u{2029}", "\u{85}", "\\r", "\\n"] {
        let d = fleet();
        edit(
            d.path(),
            "admins = {",
            &format!("admins = {{\n      \"alice{brk}  - &admin_alice {evil}\" = \"{alice}\";"),
        );
        let run = run_capped(d.path(), &args(&["render", "sops"]), None);
        assert_eq!(run.code, Some(0), "{brk:?}: {}", run.stderr);
        let yaml = std::fs::read_to_string(d.path().join("secrets/.sops.yaml")).unwrap();
        // No raw line break but LF, so every YAML reader splits lines as
        // `lines()` does; and no key line carries the attacker's recipient.
        assert!(
            !yaml.contains(['\u{2028}', '\u{2029}', '\u{85}', '\r']),
            "{brk:?}: a raw line break in:\n{yaml}"
        );
        let keys: Vec<&str> = yaml
            .lines()
            .filter(|l| l.trim_start().starts_with("- &"))
            .filter_map(|l| l.split_whitespace().nth(2))
            .collect();
        assert!(keys.contains(&alice), "{brk:?}: {keys:?}");
        assert!(
            !keys.contains(&evil),
            "{brk:?}: injected recipient in:\n{yaml}"
        );
        // And a re-render finds the file up to date.
        let check = run_capped(d.path(), &args(&["render", "--check", "sops"]), None);
        assert_eq!(check.code, Some(0), "{brk:?}: {}", check.stderr);
    }
}

// ---------------------------------------------------------------------------
// 2. A write replaces the file a name leads to, keeping what it replaces.

#[test]
fn an_edit_writes_through_a_linked_hosts_nix_and_keeps_owner_and_mode() {
    let d = fleet();
    let real = d.path().join("real-hosts.nix");
    std::fs::rename(d.path().join("hosts.nix"), &real).unwrap();
    std::os::unix::fs::symlink("real-hosts.nix", d.path().join("hosts.nix")).unwrap();
    std::fs::set_permissions(&real, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    // Tests run as root here; elsewhere the owner is ours and stays ours.
    let given_away = std::os::unix::fs::chown(&real, Some(65534), Some(65534)).is_ok();
    let before = std::fs::metadata(&real).unwrap();
    let run = run_capped(
        d.path(),
        &args(&["host", "set", "sandbox", "proxmox.cores", "6"]),
        None,
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let link = std::fs::symlink_metadata(d.path().join("hosts.nix")).unwrap();
    assert!(link.file_type().is_symlink(), "hosts.nix must stay a link");
    assert!(std::fs::read_to_string(&real)
        .unwrap()
        .contains("cores = 6;"));
    let after = std::fs::metadata(&real).unwrap();
    assert_eq!((after.uid(), after.gid()), (before.uid(), before.gid()));
    assert_eq!(after.mode() & 0o7777, 0o600);
    if given_away {
        assert_eq!(after.uid(), 65534);
    }
}
