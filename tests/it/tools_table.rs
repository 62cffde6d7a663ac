//! The table of programs the suite runs (tests/it/support/tools.rs) against
//! what the tests really run and what the flake's `checks.cargo-test`
//! provides (nix/package.nix nativeCheckInputs), so it cannot rot:
//!
//! - every program a test source names (`Command::new("…")`, `tool("…")`,
//!   a flake test's `.cmd("…")`) or a stand-in runs is in the table, and
//!   no test or stand-in runs a program by an absolute path that a Nix
//!   build sandbox lacks (`/usr/…`, `/bin/…` other than `/bin/sh`);
//! - nix/package.nix lists the nixpkgs package of every program the suite
//!   always needs, and the stand-in nixpkgs (tests/flake/stub-nixpkgs.nix)
//!   gives each of those packages the programs the table expects;
//! - a sample of the suite's tests (the simulated Proxmox host, the test
//!   VMs, every kind of stand-in, a terminal, bash) passes in a process
//!   whose PATH holds only the table's programs.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::tools::{find_on, Need, PROGRAMS};
use crate::support::{nix_eval, repo_root, tool};

/// Every file under `dir` (recursively).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// The string literals that follow each of `openers` in `text`
/// (`Command::new("ssh")` → `ssh`).
fn literals_after(text: &str, openers: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for opener in openers {
        for (at, _) in text.match_indices(opener) {
            let rest = &text[at + opener.len()..];
            if let Some(end) = rest.find('"') {
                found.push(rest[..end].to_string());
            }
        }
    }
    found
}

/// The programs named in the test sources and the stand-ins.
fn programs_the_suite_names() -> BTreeSet<(String, PathBuf)> {
    let root = repo_root();
    let mut named = BTreeSet::new();
    for file in files_under(&root.join("tests/it")) {
        if file.extension().is_none_or(|e| e != "rs") || file.ends_with("tools_table.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("read");
        for p in literals_after(
            &text,
            &["Command::new(\"", "tool(\"", "optional_tool(\"", ".cmd(\""],
        ) {
            named.insert((p, file.clone()));
        }
    }
    for file in files_under(&root.join("tests/stand-ins")) {
        let text = std::fs::read_to_string(&file).expect("read");
        // Python: subprocess.run(["age", …]); sh: `exec cat "$@"`.
        for p in literals_after(&text, &["subprocess.run([\"", "subprocess.Popen([\""]) {
            named.insert((p, file.clone()));
        }
        for line in text.lines().map(str::trim_start) {
            if let Some(rest) = line.strip_prefix("exec ") {
                let word = rest.split_whitespace().next().unwrap_or("");
                if !word.starts_with(['"', '$']) {
                    named.insert((word.to_string(), file.clone()));
                }
            }
        }
    }
    named
}

#[test]
fn every_program_the_tests_and_stand_ins_run_is_in_the_table() {
    let named = programs_the_suite_names();
    // The scan itself finds what it must (a literal in a test, a Python
    // subprocess, a shell exec), or it proves nothing.
    for p in ["ssh-keygen", "age", "cat", "sshd", "script"] {
        assert!(
            named.iter().any(|(n, _)| n == p),
            "{p} not found by the scan"
        );
    }
    let unknown: Vec<String> = named
        .iter()
        .filter(|(n, _)| !n.starts_with('/') && !PROGRAMS.iter().any(|p| p.name == n))
        .map(|(n, f)| format!("{n} ({})", f.display()))
        .collect();
    assert!(
        unknown.is_empty(),
        "programs the suite runs that tests/it/support/tools.rs does not list \
         (add them with their nixpkgs and Debian package):\n{}",
        unknown.join("\n")
    );
    let absolute: Vec<String> = named
        .iter()
        .filter(|(n, _)| n.starts_with('/') && n != "/bin/sh")
        .map(|(n, f)| format!("{n} ({})", f.display()))
        .collect();
    assert!(
        absolute.is_empty(),
        "programs run by an absolute path, which a Nix build sandbox does not have \
         (use support::tool):\n{}",
        absolute.join("\n")
    );
}

/// A stand-in starts with `#!/bin/sh` (a Nix build has it) or is a
/// Python script reached through support::stand_in's wrapper; none runs
/// a program from /usr or /bin.
#[test]
fn stand_ins_need_nothing_a_nix_build_lacks() {
    for file in files_under(&repo_root().join("tests/stand-ins")) {
        let text = std::fs::read_to_string(&file).expect("read");
        let first = text.lines().next().unwrap_or("");
        assert!(
            ["#!/bin/sh", "#!/usr/bin/env python3"].contains(&first),
            "{}: shebang {first:?}",
            file.display()
        );
        for (n, line) in text.lines().enumerate().skip(1) {
            let code = line.split('#').next().unwrap_or("");
            for bad in [
                "/usr/bin/",
                "/usr/sbin/",
                "/bin/cat",
                "/bin/readlink",
                "/usr/bin/env",
            ] {
                assert!(
                    !code.contains(bad),
                    "{}:{}: {line:?} runs a program by a path a Nix build lacks",
                    file.display(),
                    n + 1
                );
            }
        }
        // A Python stand-in run by its wrapper works without /usr/bin/env.
        if first == "#!/usr/bin/env python3" {
            let rel = file
                .strip_prefix(repo_root().join("tests/stand-ins"))
                .expect("under stand-ins");
            let wrapper =
                std::fs::read_to_string(crate::support::stand_in(rel.to_str().expect("utf-8")))
                    .expect("wrapper");
            assert!(wrapper.starts_with("#!/bin/sh\n"), "{wrapper}");
            assert!(
                wrapper.contains(&tool("python3").display().to_string())
                    && wrapper.contains(&file.display().to_string()),
                "{wrapper}"
            );
        }
    }
}

/// nix/package.nix's nativeCheckInputs, as attribute names: the file
/// called with each package argument set to its own name.
fn native_check_inputs() -> BTreeSet<String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let expr = dir.path().join("inputs.nix");
    std::fs::write(
        &expr,
        format!(
            "let f = import {pkg};
                 names = builtins.mapAttrs (n: _: n) (builtins.functionArgs f);
             in (f (names // {{
                  lib = {{ licenses.mit = \"\"; platforms.linux = [ ]; }};
                  rustPlatform.buildRustPackage = args: args;
                  doCheck = true;
                }})).nativeCheckInputs",
            pkg = repo_root().join("nix/package.nix").display()
        ),
    )
    .expect("write");
    let json = nix_eval(&expr).unwrap_or_else(|e| panic!("nix/package.nix: {e}"));
    serde_json::from_str(&json).expect("a list of names")
}

#[test]
fn the_nix_check_lists_the_package_of_every_program_the_suite_needs() {
    let inputs = native_check_inputs();
    assert!(inputs.contains("openssh"), "{inputs:?}");
    for p in PROGRAMS.iter().filter(|p| p.need == Need::Always) {
        assert!(
            inputs.contains(p.nixpkgs),
            "nix/package.nix nativeCheckInputs lacks {} (for {}, {}): {inputs:?}",
            p.nixpkgs,
            p.name,
            p.why
        );
    }
    // The stand-in nixpkgs has each of those packages, with the programs
    // the table expects from it.
    let dir = tempfile::tempdir().expect("tempdir");
    let expr = dir.path().join("exes.nix");
    std::fs::write(
        &expr,
        format!(
            "let pkgs = (import {stub} {{ pveBin = \"\"; proxmoxOpsBin = \"\"; }}).legacyPackages.x86_64-linux;
             in builtins.listToAttrs (map (n: {{ name = n; value = pkgs.${{n}}.exes; }}) [ {names} ])",
            stub = repo_root().join("tests/flake/stub-nixpkgs.nix").display(),
            names = inputs
                .iter()
                .map(|n| format!("\"{n}\""))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    )
    .expect("write");
    let exes: serde_json::Value =
        serde_json::from_str(&nix_eval(&expr).unwrap_or_else(|e| panic!("stub nixpkgs: {e}")))
            .expect("json");
    for p in PROGRAMS.iter().filter(|p| p.need == Need::Always) {
        let list = exes[p.nixpkgs].as_array().expect("exes");
        assert!(
            list.iter().any(|e| e == p.name),
            "tests/flake/stub-nixpkgs.nix: {} has no {} ({list:?})",
            p.nixpkgs,
            p.name
        );
    }
}

/// The real program behind `name` on this machine (python3 through a
/// version manager's shim resolved to the interpreter itself, so nothing
/// but the table's programs is needed to run it).
fn real_program(name: &str) -> PathBuf {
    let found = tool(name);
    if name != "python3" {
        return found;
    }
    let o = Command::new(&found)
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 runs");
    PathBuf::from(String::from_utf8_lossy(&o.stdout).trim())
}

/// Tests that, together, run every kind of thing the suite runs: the
/// simulated Proxmox host, test VMs, each stand-in, a terminal, bash.
const SAMPLE: &[&str] = &[
    "status::a_fleet_as_hosts_nix_says_shows_every_host_and_exits_0",
    "deploy::deploy_builds_once_snapshots_switches_in_waves_and_prunes_old_snapshots",
    "integrate_e2e::a_full_run_integrates_the_vm_and_a_second_run_changes_nothing",
    "tofu_cli::plan_then_apply_applies_the_saved_plan_and_init_runs_once",
    "secrets_sops::updatekeys_rekeys_every_file_so_the_new_host_can_decrypt_and_health_is_clean",
    "tailscale_up::the_key_goes_through_a_0600_temp_file_that_is_removed_after",
    "completions::real_bash_loads_the_bash_script_and_completes_subcommands",
    "edit_cli::rm_on_a_terminal_asks_and_honours_the_answer",
    "render_cli::check_reports_a_stale_file_with_a_diff_and_writes_nothing",
];

#[test]
fn sample_tests_pass_with_only_the_table_s_programs_on_path() {
    let bin = tempfile::tempdir().expect("tempdir");
    for p in PROGRAMS.iter().filter(|p| p.need == Need::Always) {
        std::os::unix::fs::symlink(real_program(p.name), bin.path().join(p.name)).expect("symlink");
    }
    // The lookup finds each of them there, not in a fallback folder.
    for p in PROGRAMS.iter().filter(|p| p.need == Need::Always) {
        assert_eq!(
            find_on(p.name, bin.path().as_os_str()),
            Some(bin.path().join(p.name))
        );
    }
    let o = Command::new(std::env::current_exe().expect("the test binary"))
        .args(SAMPLE)
        .args(["--exact", "--test-threads=4"])
        .env("PATH", bin.path())
        .output()
        .expect("the test binary runs");
    // Its stand-in wrappers (for the python3 in `bin`) go with it.
    let _ = std::fs::remove_dir_all(crate::support::tools::wrapper_folder(
        &bin.path().join("python3"),
    ));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && stdout.contains(&format!("{} passed", SAMPLE.len())),
        "with only {} on PATH:\n{stdout}\n{}",
        bin.path().display(),
        String::from_utf8_lossy(&o.stderr)
    );
}
