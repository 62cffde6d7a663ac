//! Secrets health through `pve check --format json` on a copy of the example
//! fleet with a `secrets/` folder: a host missing from a file, a stale
//! recipient, files that are fine in every sops format, files that are not
//! sops files, and the fix (`sops updatekeys`, via the stand-in) clearing it.

use std::path::Path;

use crate::support::own_process::in_own_process;
use crate::support::secrets::*;
use crate::support::{example_fleet, pve, stderr, stdout};
use serde_json::Value as Json;

struct Keys {
    admin: AgeKey,
    sandbox: AgeKey,
    framework: AgeKey,
    old: AgeKey,
}

fn keys(dir: &Path) -> Keys {
    let k = dir.join("keys");
    std::fs::create_dir_all(&k).expect("mkdir");
    Keys {
        admin: age_keygen(&k, "admin"),
        sandbox: age_keygen(&k, "sandbox"),
        framework: age_keygen(&k, "framework"),
        old: age_keygen(&k, "old"),
    }
}

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, text).expect("write");
}

fn sops_yaml(k: &Keys) -> String {
    render_style_sops_yaml(
        &k.admin.recipient,
        &[
            ("framework", &k.framework.recipient),
            ("sandbox", &k.sandbox.recipient),
        ],
    )
}

/// The example fleet with one secret file, for the admin alone, and no
/// `.sops.yaml` yet.
fn fleet_with_one_secret() -> (tempfile::TempDir, Keys) {
    let fleet = example_fleet();
    let root = fleet.path();
    let k = keys(root);
    write(
        root,
        "secrets/a.yaml",
        &sops_yaml_file(&[&k.admin.recipient]),
    );
    (fleet, k)
}

/// `pve check --format json` → (exit code, the secret-* findings).
fn check(root: &Path, extra: &[&str]) -> (i32, Vec<Json>) {
    let mut args = vec!["check", "--format", "json"];
    args.extend_from_slice(extra);
    let out = pve(root, &args);
    let all: Vec<Json> = serde_json::from_str(&stdout(&out))
        .unwrap_or_else(|e| panic!("json: {e}\n{}", stderr(&out)));
    let secret = all
        .into_iter()
        .filter(|d| d["code"].as_str().is_some_and(|c| c.starts_with("secret-")))
        .collect();
    (out.status.code().unwrap_or(-1), secret)
}

fn find<'a>(findings: &'a [Json], code: &str, file: &str) -> &'a Json {
    findings
        .iter()
        .find(|d| d["code"] == code && d["message"].as_str().is_some_and(|m| m.starts_with(file)))
        .unwrap_or_else(|| panic!("no {code} for {file} in {findings:#?}"))
}

#[test]
fn every_format_in_order_gives_no_findings() {
    let fleet = example_fleet();
    let root = fleet.path();
    let k = keys(root);
    write(root, "secrets/.sops.yaml", &sops_yaml(&k));
    let all = [
        k.admin.recipient.as_str(),
        &k.framework.recipient,
        &k.sandbox.recipient,
    ];
    write(root, "secrets/common.yaml", &sops_yaml_file(&all));
    write(root, "secrets/common.json", &sops_json_file(&all));
    write(root, "secrets/app.env", &sops_dotenv_file(&all));
    write(root, "secrets/app.ini", &sops_ini_file(&all));
    write(
        root,
        "secrets/hosts/sandbox/wifi.yaml",
        &sops_yaml_file(&[&k.admin.recipient, &k.sandbox.recipient]),
    );
    write(root, "secrets/notes.txt", "not a sops format: ignored\n");
    let (code, findings) = check(root, &["--strict"]);
    assert_eq!(findings, Vec::<Json>::new());
    assert_eq!(code, 0);
}

#[test]
fn a_host_missing_from_a_file_is_an_error_naming_the_file_and_the_fix() {
    let fleet = example_fleet();
    let root = fleet.path();
    let k = keys(root);
    write(root, "secrets/.sops.yaml", &sops_yaml(&k));
    // Encrypted before sandbox was integrated: only the admin can read it.
    write(
        root,
        "secrets/hosts/sandbox/wifi.yaml",
        &sops_yaml_file(&[&k.admin.recipient]),
    );
    let (code, findings) = check(root, &[]);
    assert_eq!(code, 1, "{findings:#?}");
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let d = find(
        &findings,
        "secret-missing-recipient",
        "secrets/hosts/sandbox/wifi.yaml",
    );
    assert_eq!(d["severity"], "error");
    let msg = d["message"].as_str().expect("message");
    assert!(
        msg.contains(&format!("{} (host sandbox)", k.sandbox.recipient)),
        "{msg}"
    );
    assert!(
        msg.contains("the rule `^hosts/sandbox/` in secrets/.sops.yaml"),
        "{msg}"
    );
    assert!(
        msg.contains("that key cannot decrypt the file (a host cannot read its secrets on boot)"),
        "{msg}"
    );
    let help = d["help"].as_str().expect("help");
    assert!(help.contains("pve integrate sandbox"), "{help}");
    assert!(
        help.contains("sops updatekeys --yes secrets/hosts/sandbox/wifi.yaml"),
        "{help}"
    );
    assert!(
        d["file"].as_str().is_some_and(|f| f.ends_with("hosts.nix")),
        "{d}"
    );
    assert_eq!(
        (d["line"].as_u64(), d["column"].as_u64()),
        (Some(1), Some(1))
    );
}

#[test]
fn a_stale_recipient_is_a_warning_that_fails_only_with_strict() {
    let fleet = example_fleet();
    let root = fleet.path();
    let k = keys(root);
    write(root, "secrets/.sops.yaml", &sops_yaml(&k));
    // A removed host's old key still wraps the data key of an env file.
    let stale = [
        k.admin.recipient.as_str(),
        &k.framework.recipient,
        &k.old.recipient,
        &k.sandbox.recipient,
    ];
    write(root, "secrets/db.env", &sops_dotenv_file(&stale));
    let (code, findings) = check(root, &[]);
    assert_eq!(code, 0);
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let d = find(&findings, "secret-stale-recipient", "secrets/db.env");
    assert_eq!(d["severity"], "warning");
    let msg = d["message"].as_str().expect("message");
    assert!(msg.contains(&k.old.recipient), "{msg}");
    assert!(
        msg.contains("that key (a removed host or an old key) can still decrypt the file"),
        "{msg}"
    );
    let help = d["help"].as_str().expect("help");
    assert!(
        help.contains("sops updatekeys --yes secrets/db.env"),
        "{help}"
    );
    assert!(help.contains("sops rotate -i secrets/db.env"), "{help}");
    let (code, _) = check(root, &["--strict"]);
    assert_eq!(code, 1);
}

#[test]
fn both_at_once_in_json_and_ini_files() {
    let fleet = example_fleet();
    let root = fleet.path();
    let k = keys(root);
    write(root, "secrets/.sops.yaml", &sops_yaml(&k));
    let swapped = [
        k.admin.recipient.as_str(),
        &k.old.recipient,
        &k.sandbox.recipient,
    ];
    write(root, "secrets/api.json", &sops_json_file(&swapped));
    write(root, "secrets/legacy.ini", &sops_ini_file(&swapped));
    let (code, findings) = check(root, &[]);
    assert_eq!(code, 1);
    let codes: Vec<(&str, &str)> = findings
        .iter()
        .map(|d| {
            (
                d["code"].as_str().unwrap_or(""),
                d["message"]
                    .as_str()
                    .unwrap_or("")
                    .split(' ')
                    .next()
                    .unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        codes,
        [
            // `pve check` lists errors before warnings; files in order.
            ("secret-missing-recipient", "secrets/api.json"),
            ("secret-missing-recipient", "secrets/legacy.ini"),
            ("secret-stale-recipient", "secrets/api.json"),
            ("secret-stale-recipient", "secrets/legacy.ini"),
        ]
    );
    let missing = find(&findings, "secret-missing-recipient", "secrets/api.json");
    assert!(missing["message"]
        .as_str()
        .is_some_and(|m| m.contains("(host framework)")));
}

#[test]
fn files_that_are_not_sops_files_are_unreadable_errors() {
    let fleet = example_fleet();
    let root = fleet.path();
    let k = keys(root);
    write(root, "secrets/.sops.yaml", &sops_yaml(&k));
    write(root, "secrets/plain.yaml", "password: hunter2\n");
    write(root, "secrets/broken.json", "{\"sops\": ");
    let (code, findings) = check(root, &[]);
    assert_eq!(code, 1);
    assert_eq!(findings.len(), 2, "{findings:#?}");
    let plain = find(&findings, "secret-unreadable", "secrets/plain.yaml");
    assert!(
        plain["message"]
            .as_str()
            .is_some_and(|m| m.contains("not encrypted with sops")),
        "{plain}"
    );
    assert!(plain["help"]
        .as_str()
        .is_some_and(|h| h.contains("sops encrypt -i secrets/plain.yaml")));
    let broken = find(&findings, "secret-unreadable", "secrets/broken.json");
    assert!(
        broken["message"]
            .as_str()
            .is_some_and(|m| m.contains("not valid sops JSON")),
        "{broken}"
    );
}

#[test]
fn a_broken_or_absent_sops_yaml_is_reported_once() {
    let (fleet, _) = fleet_with_one_secret();
    let root = fleet.path();
    let (code, findings) = check(root, &[]);
    assert_eq!(code, 1);
    assert_eq!(findings.len(), 1);
    let d = find(&findings, "secret-unreadable", "secrets/.sops.yaml");
    assert!(
        d["message"]
            .as_str()
            .is_some_and(|m| m
                .contains("does not exist, so the recipients of 1 secret file cannot be checked")),
        "{d}"
    );
    assert!(d["help"].as_str().is_some_and(|h| h.contains("pve render")));

    write(
        root,
        "secrets/.sops.yaml",
        "creation_rules:\n  - path_regex: '(unclosed'\n    age: age1x\n",
    );
    let (_, findings) = check(root, &[]);
    assert_eq!(findings.len(), 1);
    let d = find(&findings, "secret-unreadable", "secrets/.sops.yaml");
    assert!(
        d["message"]
            .as_str()
            .is_some_and(|m| m.contains("creation rule 1: bad path_regex")),
        "{d}"
    );
}

/// A `path_regex` that parses but is past regex's compiled size limit
/// (as sops' Go regexp would refuse a pattern it cannot compile): `pve
/// check` fails naming the file, the rule and the pattern, and no file of
/// the fleet changes.
#[test]
fn a_path_regex_too_big_to_compile_fails_the_check_and_changes_nothing() {
    let (fleet, k) = fleet_with_one_secret();
    let root = fleet.path();
    write(
        root,
        "secrets/.sops.yaml",
        &format!(
            "creation_rules:\n  - path_regex: '^\\w{{1000}}'\n    age: {}\n",
            k.admin.recipient
        ),
    );
    let before = crate::support::files(root, &[]);
    let (code, findings) = check(root, &[]);
    assert_eq!((code, findings.len()), (1, 1), "{findings:#?}");
    let d = find(&findings, "secret-unreadable", "secrets/.sops.yaml");
    let message = d["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("creation rule 1: bad path_regex \"^\\\\w{1000}\"")
            && message.contains("exceeds size limit"),
        "{d}"
    );
    assert_eq!(crate::support::files(root, &[]), before);
}

#[test]
fn no_secrets_folder_means_no_findings_and_sops_path_is_honoured() {
    let fleet = example_fleet();
    let root = fleet.path();
    let (code, findings) = check(root, &[]);
    assert_eq!((code, findings.len()), (0, 0));

    // `_sops.path` moves .sops.yaml (and the folder of secrets it covers).
    let k = keys(root);
    let hosts = std::fs::read_to_string(root.join("hosts.nix")).expect("read");
    let hosts = hosts.replacen(
        "_sops = {",
        "_sops = {\n    path = \"vault/.sops.yaml\";",
        1,
    );
    std::fs::write(root.join("hosts.nix"), hosts).expect("write");
    write(root, "vault/.sops.yaml", &sops_yaml(&k));
    write(root, "vault/x.yaml", &sops_yaml_file(&[&k.admin.recipient]));
    write(
        root,
        "secrets/ignored.yaml",
        "password: not checked, not under _sops.path\n",
    );
    let (code, findings) = check(root, &[]);
    assert_eq!(code, 1);
    assert_eq!(findings.len(), 1, "{findings:#?}");
    find(&findings, "secret-missing-recipient", "vault/x.yaml");
}

#[test]
fn updatekeys_through_the_stand_in_clears_the_finding() {
    // The library's sops call finds the stand-in through its own environment.
    in_own_process!(
        updatekeys_through_the_stand_in_clears_the_finding,
        &[("PVE_TOOL_SOPS", Some(sops_standin().as_os_str()))]
    );
    let fleet = example_fleet();
    let root = fleet.path();
    let k = keys(root);
    write(root, "secrets/.sops.yaml", &sops_yaml(&k));
    write(
        root,
        "secrets/hosts/sandbox/wifi.yaml",
        &sops_yaml_file(&[&k.admin.recipient]),
    );
    write(
        root,
        "secrets/shared.yaml",
        &sops_yaml_file(&[&k.admin.recipient, &k.old.recipient]),
    );
    let (code, findings) = check(root, &[]);
    assert_eq!((code, findings.len()), (1, 3), "{findings:#?}");
    // As `pve integrate` will: re-key every secret file with the admin key.
    let out = std::process::Command::new(sops_standin())
        .current_dir(root.join("secrets"))
        .env("SOPS_AGE_KEY_FILE", &k.admin.file)
        .args(["updatekeys", "--yes", "hosts/sandbox/wifi.yaml"])
        .output()
        .expect("stand-in runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, findings) = check(root, &[]);
    assert_eq!(
        (code, findings.len()),
        (1, 2),
        "wifi.yaml fixed, shared.yaml not yet: {findings:#?}"
    );
    let cfg = pve_fleet::secrets::SopsConfig::load(&root.join("secrets/.sops.yaml")).expect("cfg");
    let report = pve_fleet::secrets::sops::Sops::new(root.join("secrets/.sops.yaml"))
        .age_key_file(&k.admin.file)
        .updatekeys(&pve_fleet::secrets::secret_files(&cfg));
    assert!(report.is_success(), "{report:?}");
    let (code, findings) = check(root, &["--strict"]);
    assert_eq!((code, findings.len()), (0, 0), "{findings:#?}");
    let text = std::fs::read_to_string(root.join("secrets/hosts/sandbox/wifi.yaml")).expect("read");
    let stanza = yaml_stanza(&text, &k.sandbox.recipient).expect("sandbox stanza");
    assert_eq!(
        age_decrypt(&k.sandbox.file, &stanza).as_deref(),
        Some(DATA_KEY),
        "the host really can decrypt now"
    );
}
