//! `checks.allow` (per host) and `_checks.allow` (the fleet) set a rule's
//! findings aside, as clippy's `allow`: by rule name or by code, counted
//! in the summary ("1 allowed"), marked `"allowed": true` in JSON, never
//! for what makes rendering impossible; an unknown name is a warning with
//! a did-you-mean.

use crate::support::{stderr, stdout};

/// Two hosts asking for 0 cores (`cores-range`, rule `resources`); `ALLOW`
/// is replaced by the case's allow lines.
const FLEET: &str = "{
  _proxmox = { host = \"192.0.2.1\"; node = \"pve\"; templateVmid = 9000; };
  FLEET_ALLOW
  web = {
    hostname = \"web\";
    WEB_ALLOW
    proxmox = { vmid = 120; cores = 0; memory = 2048; };
  };
  db = {
    hostname = \"db\";
    proxmox = { vmid = 121; cores = 0; memory = 2048; };
  };
}
";

/// `pve check` (with `extra` flags) on the fleet with these allow lines.
fn check(fleet_allow: &str, web_allow: &str, extra: &[&str]) -> (i32, String, String) {
    let d = tempfile::tempdir().expect("tmp");
    let path = d.path().join("hosts.nix");
    let text = FLEET
        .replace("FLEET_ALLOW", fleet_allow)
        .replace("WEB_ALLOW", web_allow);
    std::fs::write(&path, text).expect("write");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_pve"))
        .arg("--hosts")
        .arg(&path)
        .arg("check")
        .args(extra)
        .output()
        .expect("runs");
    let dir = d.path().display().to_string();
    (
        o.status.code().expect("exit code"),
        stdout(&o).replace(&dir, "[fleet]"),
        stderr(&o).replace(&dir, "[fleet]"),
    )
}

fn summary(stderr: &str) -> &str {
    stderr.lines().last().expect("a summary line")
}

#[test]
fn a_host_allow_silences_its_rule_for_that_host_only() {
    let (code, _, err) = check("", "", &[]);
    assert_eq!(code, 1);
    assert_eq!(err.matches("error[cores-range]").count(), 2, "{err}");

    let (code, _, err) = check("", "checks.allow = [ \"resources\" ];", &[]);
    assert_eq!(code, 1, "db still fails:\n{err}");
    assert_eq!(err.matches("error[cores-range]").count(), 1, "{err}");
    assert!(err.contains("`db` asks for 0 cores"), "{err}");
    assert!(!err.contains("`web` asks for 0 cores"), "{err}");
    insta::assert_snapshot!("check_allow_summary", summary(&err));
}

#[test]
fn a_fleet_allow_by_code_silences_every_host_and_the_check_passes() {
    let (code, _, err) = check("_checks.allow = [ \"cores-range\" ];", "", &[]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("cores-range"), "{err}");
    assert_eq!(
        summary(&err),
        "[fleet]/hosts.nix: 2 hosts, 0 errors, 0 warnings, 2 allowed"
    );

    // JSON: the allowed findings are there, marked; the others are not.
    let (code, out, _) = check(
        "_checks.allow = [ \"cores-range\" ];",
        "",
        &["--format", "json"],
    );
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    let findings = v.as_array().expect("a list");
    assert_eq!(findings.len(), 2, "{out}");
    for f in findings {
        assert_eq!(f["code"], "cores-range");
        assert_eq!(f["allowed"], true);
    }
    // Without the allow, no finding carries the marker.
    let (_, out, _) = check("", "", &["--format", "json"]);
    assert!(!out.contains("\"allowed\""), "{out}");
}

#[test]
fn unknown_or_unallowable_names_are_warnings_and_allow_nothing() {
    let (code, _, err) = check("_checks.allow = [ \"resorces\" \"missing-key\" ];", "", &[]);
    assert_eq!(code, 1, "nothing was allowed:\n{err}");
    assert_eq!(err.matches("error[cores-range]").count(), 2, "{err}");
    assert!(
        err.contains("warning[unknown-allow]: `resorces` is no `pve check` rule or finding code"),
        "{err}"
    );
    assert!(err.contains("did you mean `resources`?"), "{err}");
    assert!(
        err.contains("`missing-key` cannot be allowed: without it nothing can be rendered"),
        "{err}"
    );
    assert!(
        summary(&err).ends_with("2 errors, 2 warnings"),
        "{}",
        summary(&err)
    );
}

#[test]
fn a_missing_required_key_stays_an_error_under_allow() {
    // `required` names the rule of missing keys: it cannot be allowed.
    let d = tempfile::tempdir().expect("tmp");
    let path = d.path().join("hosts.nix");
    std::fs::write(
        &path,
        "{\n  _proxmox = { host = \"192.0.2.1\"; node = \"pve\"; templateVmid = 9000; };\n  \
         _checks.allow = [ \"required\" ];\n  web = { proxmox = { vmid = 120; }; };\n}\n",
    )
    .expect("write");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_pve"))
        .arg("--hosts")
        .arg(&path)
        .arg("check")
        .output()
        .expect("runs");
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("error[missing-key]"), "{err}");
    assert!(err.contains("`required` cannot be allowed"), "{err}");
}

#[test]
fn show_allowed_lists_what_an_allow_set_aside() {
    let allow = "checks.allow = [ \"resources\" ];";
    let (_, _, plain) = check("", allow, &[]);
    assert!(!plain.contains("allowed:"), "{plain}");
    let (code, _, err) = check("", allow, &["--show-allowed"]);
    assert_eq!(code, 1, "db still fails:\n{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("allowed:")).collect();
    // At web's `cores = 0`, counted in the fleet as written.
    let web = FLEET.replace("FLEET_ALLOW", "").replace("WEB_ALLOW", allow);
    let line = web
        .lines()
        .position(|l| l.contains("vmid = 120"))
        .expect("web's proxmox line")
        + 1;
    let col = web
        .lines()
        .nth(line - 1)
        .expect("line")
        .find("cores = 0")
        .expect("cores")
        + "cores = ".len()
        + 1;
    assert_eq!(
        lines,
        [format!(
            "allowed: [fleet]/hosts.nix:{line}:{col}: error[cores-range]: `web` asks for 0 cores"
        )
        .as_str()],
        "{err}"
    );
}

#[test]
fn an_allow_that_is_not_a_list_of_names_is_an_error_where_it_stands() {
    let (code, _, err) = check("", "checks.allow = \"resources\";", &[]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(
            "error[wrong-type]: `checks.allow` must be a list of rule names or codes, not a string"
        ),
        "{err}"
    );
    // At the string (line 6: `    checks.allow = "resources";`, column 20).
    assert!(err.contains("hosts.nix:6:20"), "{err}");
    assert!(
        err.contains("write it as a list of strings: `checks.allow = [ \"disko\" ];`"),
        "{err}"
    );
    // Nothing was allowed: both hosts' findings count.
    assert_eq!(err.matches("error[cores-range]").count(), 2, "{err}");

    let (code, _, err) = check("_checks.allow = [ \"resources\" 3 ];", "", &[]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(
            "an entry of `_checks.allow` must be a rule name or code (a string), not an integer"
        ),
        "{err}"
    );
    // The string entry still works.
    assert_eq!(err.matches("error[cores-range]").count(), 0, "{err}");
}
