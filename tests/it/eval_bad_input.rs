//! Hostile and broken hosts.nix files: each gets a clear message naming the
//! file and position, exit code 2, and no panic.

use crate::support;
use std::path::Path;

use crate::support::{pve, stderr};

fn run_on(text: &[u8]) -> (i32, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("hosts.nix");
    std::fs::write(&file, text).expect("write");
    let before = std::fs::read(&file).expect("read");
    let out = pve(dir.path(), &["check"]);
    assert_eq!(
        std::fs::read(&file).expect("read"),
        before,
        "check must not touch hosts.nix"
    );
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "panic: {err}");
    (out.status.code().unwrap_or(-1), err)
}

fn assert_refused(text: &[u8], position: &str, words: &str) {
    let (code, err) = run_on(text);
    assert_eq!(code, 2, "exit code for {words}: {err}");
    assert!(
        err.contains(position),
        "expected position {position} in:\n{err}"
    );
    assert!(err.contains(words), "expected {words:?} in:\n{err}");
}

#[test]
fn an_empty_file() {
    assert_refused(b"", "hosts.nix:1:1", "empty");
    assert_refused(b"  # only a comment\n", "hosts.nix", "empty");
}

#[test]
fn a_syntax_error_points_at_the_token() {
    assert_refused(
        b"{\n  web = {\n    vmid = 1\n  };\n}\n",
        "hosts.nix:4:3",
        "expected `;`",
    );
}

#[test]
fn a_file_that_is_not_utf8() {
    assert_refused(
        b"{\n  a = \"\xff\xfe\";\n}\n",
        "hosts.nix:2:8",
        "not valid UTF-8",
    );
}

#[test]
fn a_50_megabyte_file() {
    let mut text = b"{ a = \"".to_vec();
    text.resize(50 * 1024 * 1024, b'x');
    text.extend_from_slice(b"\"; }");
    let (code, err) = run_on(&text);
    assert_eq!(code, 2);
    assert!(
        err.contains("hosts.nix") && err.contains("refused"),
        "{err}"
    );
}

#[test]
fn nesting_200000_levels_deep_is_bounded() {
    let mut text = "[".repeat(200_000);
    text.push_str(&"]".repeat(200_000));
    assert_refused(
        text.as_bytes(),
        "hosts.nix:1:257",
        "nested more than 256 levels",
    );
    let sets = format!("{}1{}", "{ a = ".repeat(200_000), "; }".repeat(200_000));
    assert_refused(sets.as_bytes(), "hosts.nix:1:", "nested more than");
}

#[test]
fn an_undefined_name_in_interpolation() {
    assert_refused(
        b"{\n  web = { hostname = \"${undefinedName}\"; };\n}\n",
        "hosts.nix:2:25",
        "undefined variable 'undefinedName'",
    );
}

#[test]
fn infinitely_recursive_rec() {
    assert_refused(
        b"rec {\n  a = b;\n  b = a;\n}\n",
        "hosts.nix:",
        "infinite recursion",
    );
}

#[test]
fn a_number_too_large_for_i64() {
    assert_refused(
        b"{ web = { proxmox = { vmid = 99999999999999999999; }; }; }",
        "hosts.nix:1:30",
        "out of range",
    );
}

#[test]
fn a_long_chain_of_references_evaluates_without_overflowing_the_stack() {
    let mut text = String::from("let\n  v0 = 1;\n");
    for i in 1..5000 {
        text.push_str(&format!("  v{i} = v{} + 1;\n", i - 1));
    }
    text.push_str("in { last = v4999; }\n");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("hosts.nix"), &text).expect("write");
    let out = pve(dir.path(), &["eval"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(support::stdout(&out).trim(), r#"{"last":5000}"#);
}

#[test]
fn a_missing_hosts_file_names_where_it_looked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = pve(dir.path(), &["check"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("no hosts.nix in") && err.contains("--hosts") && err.contains("pve init"),
        "a new user is pointed at `pve init`: {err}"
    );
    let out = pve(dir.path(), &["-f", "nope.nix", "check"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("cannot read nope.nix"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn hosts_nix_is_found_in_a_parent_folder() {
    let fleet = support::example_fleet();
    let sub = fleet.path().join("hosts/sandbox");
    let out = pve(&sub, &["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("4 hosts"), "{}", stderr(&out));
    let _ = Path::new("");
}
