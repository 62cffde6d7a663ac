//! Every program the test suite runs, and the one place that finds them.
//!
//! The suite runs on Debian (scripts/test installs the packages) and inside
//! the flake's `checks.cargo-test`, a Nix build sandbox where only the
//! `nativeCheckInputs` of nix/package.nix are on PATH and `/usr/bin/env`,
//! `/usr/sbin` and `/usr/bin` do not exist. So a test never names a program
//! by an absolute path: it asks [`tool`] (or [`optional_tool`]), which
//! searches PATH and then the few places Debian keeps programs off a normal
//! user's PATH (sshd in /usr/sbin, PostgreSQL in /usr/lib/postgresql).
//!
//! [`PROGRAMS`] is the table of every program the suite runs, with the
//! nixpkgs package (listed in nativeCheckInputs) and the Debian package
//! that provide it. tests/it/tools_table.rs keeps it honest: every program
//! a test source names or a stand-in runs must be in it, nix/package.nix
//! must list its package, and a sample of the suite passes with only the
//! table's programs on PATH.
//!
//! Stand-ins written in Python (`#!/usr/bin/env python3`) are run through
//! [`stand_in`], a wrapper that calls them with the python3 found here.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// When a test cannot do without a program.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Need {
    /// The suite needs it everywhere (nixpkgs package in nativeCheckInputs).
    Always,
    /// The tests using it print SKIP when it is absent, unless the
    /// environment variable is set (scripts/test sets it when the program
    /// is installed), which makes it a failure.
    Optional { require_var: &'static str },
}

/// One program the suite runs.
#[derive(Debug)]
pub struct Program {
    pub name: &'static str,
    /// The nixpkgs attribute that has `bin/<name>`.
    pub nixpkgs: &'static str,
    /// The Debian package that installs it.
    pub debian: &'static str,
    /// Folders searched after PATH (`*` matches one folder name; the last
    /// match in sorted order wins: the newest PostgreSQL).
    pub fallback: &'static [&'static str],
    pub need: Need,
    /// Who runs it.
    pub why: &'static str,
}

const fn always(
    name: &'static str,
    nixpkgs: &'static str,
    debian: &'static str,
    why: &'static str,
) -> Program {
    Program {
        name,
        nixpkgs,
        debian,
        fallback: &[],
        need: Need::Always,
        why,
    }
}

/// A PostgreSQL program (Debian keeps them off PATH, in a folder per
/// major version).
const fn postgres(name: &'static str) -> Program {
    Program {
        fallback: &["/usr/lib/postgresql/*/bin"],
        need: Need::Optional {
            require_var: "PVE_REQUIRE_POSTGRES",
        },
        ..always(
            name,
            "postgresql",
            "postgresql",
            "the pg state backend test",
        )
    }
}

/// Every program the test suite, pve under test, and the stand-ins run.
pub const PROGRAMS: &[Program] = &[
    Program {
        fallback: &["/usr/sbin", "/sbin"],
        ..always(
            "sshd",
            "openssh",
            "openssh-server",
            "the simulated Proxmox host and the test VMs",
        )
    },
    always(
        "ssh",
        "openssh",
        "openssh-client",
        "pve, the nix and nixos-rebuild stand-ins, tests",
    ),
    always(
        "ssh-keygen",
        "openssh",
        "openssh-client",
        "pve, tests (keys, fingerprints)",
    ),
    always("ssh-keyscan", "openssh", "openssh-client", "pve, tests"),
    always("nix", "nix", "nix-bin", "the flake tests"),
    always("nix-instantiate", "nix", "nix-bin", "the evaluator oracle"),
    always("nix-build", "nix", "nix-bin", "the flake tests"),
    always("nix-store", "nix", "nix-bin", "the flake tests"),
    always("age", "age", "age", "the sops stand-in, the secrets tests"),
    always("age-keygen", "age", "age", "the secrets tests"),
    always(
        "python3",
        "python3",
        "python3",
        "the stand-ins and the simulated Proxmox host",
    ),
    always("git", "git", "git", "the fleet repositories of the tests"),
    always("sh", "bash", "dash", "sshd sessions, sh stand-ins, tests"),
    always("bash", "bash", "bash", "the bash completion test"),
    always(
        "script",
        "util-linux",
        "bsdutils",
        "the terminal tests (a pseudo-terminal)",
    ),
    always(
        "setpriv",
        "util-linux",
        "util-linux",
        "PostgreSQL as nobody when root",
    ),
    always(
        "mount",
        "util-linux",
        "mount",
        "the full-disk test (root only)",
    ),
    always(
        "umount",
        "util-linux",
        "mount",
        "the full-disk test (root only)",
    ),
    always(
        "kill",
        "procps",
        "procps",
        "tests that stop an ssh master or sshd",
    ),
    always(
        "pgrep",
        "procps",
        "procps",
        "tests that look for ssh masters",
    ),
    always("id", "coreutils", "coreutils", "the simulated host's user"),
    always("cat", "coreutils", "coreutils", "the VM's cat stand-in"),
    always(
        "readlink",
        "coreutils",
        "coreutils",
        "the VM's readlink stand-in",
    ),
    // What pve's commands run on a VM (the test VMs run them here).
    always("true", "coreutils", "coreutils", "pve's SSH probe of a VM"),
    always(
        "mktemp",
        "coreutils",
        "coreutils",
        "pve's tailscale up on a VM",
    ),
    always("rm", "coreutils", "coreutils", "pve's tailscale up on a VM"),
    always(
        "tr",
        "coreutils",
        "coreutils",
        "the VM's nix-daemon stand-in",
    ),
    Program {
        need: Need::Optional {
            require_var: "PVE_REQUIRE_MAN",
        },
        ..always("man", "man", "man-db", "the man page test")
    },
    Program {
        need: Need::Optional {
            require_var: "PVE_REQUIRE_TERRAFORM",
        },
        ..always(
            "terraform",
            "terraform (unfree: not in nativeCheckInputs)",
            "none (HashiCorp's apt repository)",
            "the moved-block and pg backend proofs",
        )
    },
    postgres("initdb"),
    postgres("pg_ctl"),
    postgres("postgres"),
];

/// The table's row for `name`; a program missing from it is a mistake in
/// the test that asks.
pub fn program(name: &str) -> &'static Program {
    PROGRAMS.iter().find(|p| p.name == name).unwrap_or_else(|| {
        panic!(
            "`{name}` is not in the table of tests/it/support/tools.rs: add it with its \
             nixpkgs and Debian package, and the package to nix/package.nix nativeCheckInputs"
        )
    })
}

/// Finds `name` on `path` (a PATH value), then in its fallback folders.
pub fn find_on(name: &str, path: &OsStr) -> Option<PathBuf> {
    let executable = |p: &Path| {
        use std::os::unix::fs::PermissionsExt as _;
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    let on_path = std::env::split_paths(path)
        .filter(|d| d.is_absolute())
        .map(|d| d.join(name))
        .find(|p| executable(p));
    on_path.or_else(|| {
        program(name)
            .fallback
            .iter()
            .flat_map(|f| expand(f))
            .map(|d| d.join(name))
            .rfind(|p| executable(p))
    })
}

/// The folders a fallback pattern names (`*` in one component), sorted.
fn expand(pattern: &str) -> Vec<PathBuf> {
    let Some((head, tail)) = pattern.split_once("/*/") else {
        return vec![PathBuf::from(pattern)];
    };
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(head)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join(tail))
        .collect();
    dirs.sort();
    dirs
}

/// Where to get `p`, for a message.
fn install_hint(p: &Program) -> String {
    format!(
        "Debian: apt install {}; Nix: {} (in nix/package.nix nativeCheckInputs)",
        p.debian, p.nixpkgs
    )
}

/// `name` on this process's PATH, then in its fallback folders.
fn find(name: &str) -> Option<PathBuf> {
    find_on(name, &std::env::var_os("PATH").unwrap_or_default())
}

/// The program `name`, found on this process's PATH (then its fallback
/// folders). Panics, naming the packages, when it is not installed.
pub fn tool(name: &str) -> PathBuf {
    let p = program(name);
    find(name).unwrap_or_else(|| {
        panic!(
            "the tests need `{name}` ({}), not found on PATH or in {:?}. {}",
            p.why,
            p.fallback,
            install_hint(p)
        )
    })
}

/// An optional program ([`Need::Optional`]): `None` with a SKIP line for
/// `test` when it is absent, a failure when its require variable is set.
pub fn optional_tool(name: &str, test: &str) -> Option<PathBuf> {
    let p = program(name);
    if let Some(found) = find(name) {
        return Some(found);
    }
    if let Need::Optional { require_var } = p.need {
        assert!(
            std::env::var_os(require_var).is_none(),
            "{require_var} is set but `{name}` is not on PATH or in {:?}. {}",
            p.fallback,
            install_hint(p)
        );
    }
    eprintln!(
        "SKIP {test}: `{name}` is not installed ({})",
        install_hint(p)
    );
    None
}

/// The PATH of a session on a test sshd (its `SetEnv PATH=`): `first`,
/// then this process's PATH, so the session finds the same programs the
/// test does (in a Nix build there is no /usr/bin).
pub fn session_path(first: &Path) -> OsString {
    let mut dirs = vec![first.to_path_buf()];
    dirs.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(dirs).expect("PATH entries without ':'")
}

/// The stand-ins' sources.
fn stand_in_sources() -> PathBuf {
    super::repo_root().join("tests/stand-ins")
}

/// Whether a stand-in is a Python script (`#!/usr/bin/env python3`).
fn is_python(file: &Path) -> bool {
    std::fs::read_to_string(file).is_ok_and(|t| t.lines().next() == Some("#!/usr/bin/env python3"))
}

/// The stand-in `name` of tests/stand-ins (a program, or a folder of them
/// such as `vm`), runnable without `/usr/bin/env`: see [`stand_ins`].
pub fn stand_in(name: &str) -> PathBuf {
    stand_ins().join(name)
}

/// tests/stand-ins as the tests run it: a folder in the target dir,
/// written once per process, with a wrapper for each Python stand-in that
/// runs it with the python3 found by [`tool`] (the script keeps its own
/// path, so what it finds next to itself stays the same) and a symlink to
/// each shell stand-in (`#!/bin/sh`, which a Nix build has).
pub fn stand_ins() -> PathBuf {
    static WRAPPERS: OnceLock<PathBuf> = OnceLock::new();
    WRAPPERS.get_or_init(write_wrappers).clone()
}

/// Mirrors tests/stand-ins into a folder of the target dir: a wrapper for
/// each Python stand-in, a symlink to each shell one. Each file is written
/// aside and renamed into place, so test processes running at once (own
/// process tests) never see half a file.
fn write_wrappers() -> PathBuf {
    let python = tool("python3");
    let root = wrapper_folder(&python);
    mirror(&stand_in_sources(), &root, &python);
    root
}

/// The folder of the wrappers that run `python`: one per python3, so a
/// test process with another PATH (tools_table's sample) never rewrites
/// the wrappers another process runs.
pub fn wrapper_folder(python: &Path) -> PathBuf {
    use std::hash::{Hash as _, Hasher as _};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    python.hash(&mut h);
    // Cargo sets CARGO_TARGET_TMPDIR for tests, not for examples (the
    // Proxmox benchmark shares the simulated host).
    option_env!("CARGO_TARGET_TMPDIR")
        .map_or_else(std::env::temp_dir, PathBuf::from)
        .join(format!("stand-ins-{:016x}", h.finish()))
}

fn mirror(from: &Path, to: &Path, python: &Path) {
    std::fs::create_dir_all(to).expect("stand-in wrapper folder");
    for entry in std::fs::read_dir(from).expect("tests/stand-ins") {
        let source = entry.expect("entry").path();
        let target = to.join(source.file_name().expect("name"));
        if source.is_dir() {
            mirror(&source, &target, python);
            continue;
        }
        let aside = to.join(format!(
            ".{}.{}",
            source.file_name().expect("name").to_string_lossy(),
            std::process::id()
        ));
        let _ = std::fs::remove_file(&aside);
        if is_python(&source) {
            let quote = |p: &Path| pve_fleet::shell::quote(&p.display().to_string());
            let text = format!(
                "#!/bin/sh\n# Written by tests/it/support/tools.rs: runs the stand-in with the python3 found at test time.\nexec {} {} \"$@\"\n",
                quote(python),
                quote(&source)
            );
            std::fs::write(&aside, text).expect("wrapper");
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&aside, std::fs::Permissions::from_mode(0o755))
                .expect("chmod");
        } else {
            std::os::unix::fs::symlink(&source, &aside).expect("symlink");
        }
        std::fs::rename(&aside, &target).expect("rename wrapper into place");
    }
}
