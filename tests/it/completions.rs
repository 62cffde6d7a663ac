//! Shell integration (issue 14, item 9): `pve completions bash|zsh|fish`
//! and the manual pages of `pve man`, generated from the clap tree.

use std::process::Command;

use crate::support::{pve, stdout};

/// The subcommands a completion script must offer, taken from the clap
/// tree itself (not from the script under test).
fn subcommands() -> Vec<String> {
    use clap::CommandFactory;
    pve_fleet::cli::Cli::command()
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .map(|c| c.get_name().to_string())
        .collect()
}

fn script(shell: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = pve(dir.path(), &["completions", shell]);
    assert!(out.status.success(), "{}", crate::support::stderr(&out));
    stdout(&out)
}

#[test]
fn every_shell_gets_a_script_naming_every_subcommand() {
    for shell in ["bash", "zsh", "fish"] {
        let text = script(shell);
        for sub in subcommands() {
            assert!(
                text.contains(&sub),
                "{shell} completions do not name `{sub}`"
            );
        }
    }
    assert!(script("zsh").starts_with("#compdef pve"));
    assert!(script("fish").contains("complete -c pve"));
}

#[test]
fn real_bash_loads_the_bash_script_and_completes_subcommands() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pve.bash");
    std::fs::write(&file, script("bash")).unwrap();
    // Load it, ask bash what completes `pve`, then complete `pve ch`.
    let probe = r#"source "$1" || exit 9
complete -p pve || exit 8
COMP_WORDS=(pve ch); COMP_CWORD=1; COMP_LINE="pve ch"; COMP_POINT=6
_pve pve ch pve
printf '%s\n' "${COMPREPLY[@]}""#;
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", probe, "probe"])
        .arg(&file)
        .output()
        .expect("bash runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("-F _pve pve"), "{text}");
    assert!(
        text.lines().any(|l| l == "check"),
        "`pve ch` completes to check: {text}"
    );
}

#[test]
fn man_writes_a_page_per_command_that_man_reads() {
    let dir = tempfile::tempdir().unwrap();
    let out = pve(dir.path(), &["man", "--out", "pages"]);
    assert!(out.status.success(), "{}", crate::support::stderr(&out));
    let pages = dir.path().join("pages");
    for sub in subcommands() {
        let page = pages.join(format!("pve-{sub}.1"));
        let text = std::fs::read_to_string(&page).unwrap_or_else(|e| panic!("{page:?}: {e}"));
        assert!(
            text.contains(&format!(".TH pve-{sub} 1  \"pve 0.1.0\"")),
            "{page:?}: no title line"
        );
    }
    assert!(pages.join("pve-host-add.1").exists());
    // The hidden `man` command gets no page of its own.
    assert!(!pages.join("pve-man.1").exists());

    // man(1) renders it, when installed (Debian's man-db, nixpkgs' man).
    let Some(man) = crate::support::optional_tool(
        "man",
        "man_writes_a_page_per_command_that_man_reads (rendering)",
    ) else {
        return;
    };
    let rendered = Command::new(man)
        .args(["-l", "-P", "cat"])
        .arg(pages.join("pve.1"))
        .env("MANWIDTH", "80")
        .output();
    if let Ok(r) = rendered {
        let text = String::from_utf8_lossy(&r.stdout);
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        assert!(
            text.contains("pve - Run a NixOS fleet on Proxmox VE"),
            "{text}"
        );
        assert!(
            text.contains("pve-check(1)"),
            "subcommands point at their pages: {text}"
        );
    }
}
