//! Every command's help teaches (issue 14, item 9): each flag and argument
//! has a help line and each command an example. The walk is over clap's
//! own command tree, so commands added later are covered without a change
//! here.

use clap::CommandFactory;

/// Every command's path and the command, depth first.
fn walk(cmd: &clap::Command, path: String, out: &mut Vec<(String, clap::Command)>) {
    // clap's own `help` subcommands print the others' help.
    for sub in cmd.get_subcommands().filter(|c| c.get_name() != "help") {
        walk(sub, format!("{path} {}", sub.get_name()), out);
    }
    out.push((path, cmd.clone()));
}

fn commands() -> Vec<(String, clap::Command)> {
    let mut out = Vec::new();
    let mut root = pve_fleet::cli::Cli::command();
    root.build();
    walk(&root, "pve".into(), &mut out);
    out
}

#[test]
fn every_flag_and_argument_has_a_help_line() {
    let mut missing = Vec::new();
    for (path, cmd) in commands() {
        for arg in cmd.get_arguments() {
            let builtin = matches!(arg.get_id().as_str(), "help" | "version");
            if !builtin && arg.get_help().is_none() && arg.get_long_help().is_none() {
                missing.push(format!("{path} {}", arg.get_id()));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "without a help line:\n{}",
        missing.join("\n")
    );
}

#[test]
fn every_command_has_an_example_of_its_own() {
    let mut missing = Vec::new();
    for (path, cmd) in commands() {
        let after = [cmd.get_after_help(), cmd.get_after_long_help()]
            .into_iter()
            .flatten()
            .map(|s| s.to_string())
            .collect::<String>();
        // The example runs this very command (not another binary's).
        let own = after.lines().any(|l| l.trim_start().starts_with(&path));
        if !own {
            missing.push(path);
        }
    }
    assert!(
        missing.is_empty(),
        "without an example of their own:\n{}",
        missing.join("\n")
    );
}
