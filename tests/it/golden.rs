//! Golden snapshots (insta; committed under tests/it/snapshots): what a
//! user reads, compared whole rather than by `contains`: `pve --help` and
//! every subcommand's help, and the human diagnostics of `pve check` on
//! malformed and hostile fleets (location, source excerpt, help).
//!
//! A change shows as a diff; when it is meant, review the `.snap.new`
//! files (`cargo insta review`, or read and rename them). With `CI` set or
//! `INSTA_UPDATE=no` (.ci/run) a mismatch fails and nothing is written.
//! The rendered files of the example fleet need no snapshot here: they are
//! compared with the committed ones (render_cli).

use std::process::Command;

use crate::support::{example_fleet, out, pve};

/// `pve ARGS --help`, at clap's default width (no terminal), in an empty
/// environment.
fn help(path: &[&str]) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_pve"))
        .args(path)
        .arg("--help")
        // No PVE_*/PROXMOX_* value of the caller shows as `[env: X=value]`.
        .env_clear()
        .output()
        .expect("pve runs");
    let (stdout, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(0), "pve {path:?} --help: {stderr}");
    stdout
}

/// The subcommands a help text lists (its `Commands:` section), `help`
/// aside.
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| *l != "Commands:")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(String::from)
        .collect()
}

#[test]
fn help_of_pve_and_of_every_subcommand() {
    let mut todo = vec![Vec::<String>::new()];
    let mut seen = 0;
    while let Some(path) = todo.pop() {
        let args: Vec<&str> = path.iter().map(String::as_str).collect();
        let text = help(&args);
        for sub in subcommands(&text) {
            let mut p = path.clone();
            p.push(sub);
            todo.push(p);
        }
        let name = if path.is_empty() {
            "help".to_string()
        } else {
            format!("help_{}", path.join("_"))
        };
        insta::assert_snapshot!(name, text, &format!("pve {} --help", args.join(" ")));
        seen += 1;
    }
    // pve, its commands, and those of `host`, `key` and `vm`.
    assert!(seen > 20, "only {seen} help texts found");
}

/// `pve check` on the example fleet with `hosts.nix` changed by `edit`:
/// exit code and everything printed, the temp folder written [FLEET].
fn check_output(edit: impl FnOnce(&str) -> String) -> String {
    let fleet = example_fleet();
    let path = fleet.path().join("hosts.nix");
    let text = std::fs::read_to_string(&path).expect("read");
    let changed = edit(&text);
    assert_ne!(changed, text, "the edit changed nothing");
    std::fs::write(&path, changed).expect("write");
    let o = pve(fleet.path(), &["check"]);
    let (stdout, stderr) = out(&o);
    let shown = format!(
        "exit code: {:?}\n--- stdout\n{stdout}--- stderr\n{stderr}",
        o.status.code()
    );
    shown.replace(&fleet.path().display().to_string(), "[FLEET]")
}

/// Replaces the first `from` (which must be there) with `to`.
fn replace(from: &'static str, to: &'static str) -> impl FnOnce(&str) -> String {
    move |text| {
        assert!(text.contains(from), "{from:?} not in hosts.nix");
        text.replacen(from, to, 1)
    }
}

#[test]
fn check_a_value_of_the_wrong_type() {
    insta::assert_snapshot!(check_output(replace(
        "hostname = \"sandbox\";",
        "hostname = 42;"
    )));
}

#[test]
fn check_a_vmid_used_twice() {
    insta::assert_snapshot!(check_output(replace("vmid = 109;", "vmid = 111;")));
}

#[test]
fn check_a_syntax_error() {
    insta::assert_snapshot!(check_output(replace(
        "    hostname = \"sandbox\";",
        "    hostname = \"sandbox\""
    )));
}

#[test]
fn check_an_undefined_name() {
    insta::assert_snapshot!(check_output(replace("cores = 4;", "cores = fourCores;")));
}

#[test]
fn check_a_host_name_with_terminal_control_characters() {
    insta::assert_snapshot!(check_output(replace(
        "  sandbox = {",
        "  \"sb\u{1b}]0;pwned\u{7}\u{1b}[2J\nx\" = {"
    )));
}

#[test]
fn check_a_file_that_is_not_nix_at_all() {
    insta::assert_snapshot!(check_output(|_| {
        "<html>\n  <body>not a fleet</body>\n</html>\n".to_string()
    }));
}
