//! `pve check` on the example fleet with one mistake at a time: each rule
//! fires with its code at the exact line and column, and the exit code
//! follows (1 for errors, warnings only with --strict).

use crate::support::check::{check_json, edited_example, position};
use crate::support::{example_fleet, pve, stderr, stdout};
use serde_json::Value as Json;

/// Replaces `from` (which must occur once) in the example hosts.nix, runs
/// `pve check --format json`, and returns (exit code, findings).
fn check_with(from: &str, to: &str, extra: &[&str]) -> (i32, Vec<Json>, tempfile::TempDir) {
    let (fleet, _) = edited_example(&[(from, to)]);
    let (code, findings) = check_json(&fleet, extra);
    (code, findings, fleet)
}

/// The 1-based line and column of the first occurrence of `needle` in the
/// modified file, found independently of the tool.
fn position_of(fleet: &tempfile::TempDir, needle: &str) -> (u64, u64) {
    let text = std::fs::read_to_string(fleet.path().join("hosts.nix")).expect("read");
    position(&text, needle, 0)
}

struct Case {
    name: &'static str,
    from: &'static str,
    to: &'static str,
    code: &'static str,
    /// Where the finding must point: the first occurrence of this text.
    at: &'static str,
    help_has: &'static str,
}

const CASES: &[Case] = &[
    Case { name: "duplicate vmid", from: "vmid = 109;", to: "vmid = 111;", code: "duplicate-vmid", at: "111;\n      cores = 8", help_has: "free VMID" },
    Case { name: "vmid is the template", from: "vmid = 111;", to: "vmid = 9003;", code: "vmid-is-template", at: "9003;\n", help_has: "template" },
    Case { name: "vmid out of range", from: "vmid = 111;", to: "vmid = 5000;", code: "vmid-range", at: "5000", help_has: "vmidRange" },
    Case { name: "duplicate ssh alias", from: "sshAlias = \"fw\";", to: "sshAlias = \"sbx\";", code: "duplicate-ssh-alias", at: "\"sbx\";\n    publicKey = \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIP0", help_has: "own sshAlias" },
    Case { name: "duplicate hostname", from: "hostname = \"doc2\";", to: "hostname = \"igpu\";", code: "duplicate-hostname", at: "\"igpu\";\n    sshAlias = \"doc2\"", help_has: "own hostname" },
    Case { name: "host name not a DNS label", from: "  framework = {", to: "  \"Frame_Work\" = {", code: "bad-host-name", at: "\"Frame_Work\"", help_has: "lowercase" },
    Case { name: "too many cores", from: "cores = 4;", to: "cores = 0;", code: "cores-range", at: "0;\n      memory = 8192", help_has: "between 1" },
    Case { name: "memory in GiB by mistake", from: "memory = 8192;", to: "memory = 8;", code: "memory-range", at: "8;\n      disk", help_has: "8192" },
    Case { name: "disk 64GB", from: "disk = \"64G\";", to: "disk = \"64GB\";", code: "bad-disk", at: "\"64GB\"", help_has: "\"64G\"" },
    Case { name: "misspelled proxmox key", from: "cores = 4;", to: "core = 4;", code: "unknown-key", at: "core = 4", help_has: "did you mean `cores`" },
    Case { name: "misspelled _proxmox key", from: "defaultStorage = \"nvmeprom\";", to: "defaultStorge = \"nvmeprom\";", code: "unknown-key", at: "defaultStorge", help_has: "defaultStorage" },
    Case { name: "missing vmid", from: "vmid = 111;", to: "", code: "missing-key", at: "{\n      \n      cores = 4", help_has: "vmid" },
    Case { name: "bios on a clone", from: "disk = \"64G\";", to: "disk = \"64G\"; bios = \"ovmf\";", code: "template-mismatch", at: "\"ovmf\";\n      tags", help_has: "SeaBIOS" },
    Case { name: "diskInterface on a clone", from: "disk = \"64G\";", to: "disk = \"64G\"; diskInterface = \"scsi0\";", code: "template-mismatch", at: "\"scsi0\";\n      tags", help_has: "virtio0" },
    Case { name: "machine on a clone", from: "disk = \"64G\";", to: "disk = \"64G\"; machine = \"q35\";", code: "template-mismatch", at: "\"q35\";\n      tags", help_has: "remove `machine`" },
    Case { name: "missing configuration file", from: "./hosts/sandbox/configuration.nix", to: "./hosts/sandbox/configuratoin.nix", code: "missing-file", at: "./hosts/sandbox/configuratoin.nix", help_has: "pve scaffold sandbox" },
    // igpu is not a clone: its file is checked by the files rule, not read.
    Case { name: "missing configuration file, imported VM", from: "./hosts/igpu/configuration.nix", to: "./hosts/igpu/configuratoin.nix", code: "missing-file", at: "./hosts/igpu/configuratoin.nix", help_has: "pve scaffold igpu" },
    Case { name: "missing home file", from: "./hosts/sandbox/home.nix", to: "./hosts/sandbox/hom.nix", code: "missing-file", at: "./hosts/sandbox/hom.nix", help_has: "pve scaffold sandbox" },
    Case { name: "rsa public key", from: "publicKey = \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHg+0cl2eSRJP0uMoScnKY9J6ZvYERwjc843qO2BNqfB\";", to: "publicKey = \"ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ host\";", code: "bad-public-key", at: "\"ssh-rsa", help_has: "ssh_host_ed25519_key.pub" },
    Case { name: "wrong type", from: "cores = 4;", to: "cores = \"4\";", code: "wrong-type", at: "\"4\"", help_has: "`cores = 2;`" },
];

#[test]
fn each_mistake_is_reported_at_its_place_with_help() {
    for case in CASES {
        let (code, findings, fleet) = check_with(case.from, case.to, &[]);
        assert_eq!(code, 1, "{}: exit code", case.name);
        let hit = findings
            .iter()
            .find(|f| f["code"] == case.code)
            .unwrap_or_else(|| panic!("{}: no {} finding in {findings:#?}", case.name, case.code));
        let (line, col) = position_of(&fleet, case.at);
        assert_eq!(
            (hit["line"].as_u64(), hit["column"].as_u64()),
            (Some(line), Some(col)),
            "{}: position of {hit}",
            case.name
        );
        assert_eq!(hit["severity"], "error", "{}", case.name);
        assert!(
            hit["file"]
                .as_str()
                .is_some_and(|f| f.ends_with("hosts.nix")),
            "{}",
            case.name
        );
        let help = hit["help"].as_str().unwrap_or_default();
        assert!(
            help.contains(case.help_has),
            "{}: help {help:?} lacks {:?}",
            case.name,
            case.help_has
        );
    }
}

#[test]
fn the_example_fleet_is_clean() {
    let fleet = example_fleet();
    let out = pve(fleet.path(), &["check", "--strict"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("4 hosts, 0 errors, 0 warnings"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_placeholder_key_warns_and_fails_only_when_strict() {
    let from = "publicKey = \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHg+0cl2eSRJP0uMoScnKY9J6ZvYERwjc843qO2BNqfB\";";
    let to = "publicKey = \"ssh-ed25519 AAAA... placeholder\";";
    let (code, findings, _f) = check_with(from, to, &[]);
    assert_eq!(code, 0, "{findings:?}");
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0]["code"], "placeholder-key");
    assert_eq!(findings[0]["severity"], "warning");
    let (code, _, _f) = check_with(from, to, &["--strict"]);
    assert_eq!(code, 1);
}

#[test]
fn duplicate_vmid_points_at_both_places_in_human_output() {
    let fleet = example_fleet();
    let path = fleet.path().join("hosts.nix");
    let text =
        std::fs::read_to_string(&path)
            .expect("read")
            .replacen("vmid = 109;", "vmid = 111;", 1);
    std::fs::write(&path, &text).expect("write");
    let out = pve(fleet.path(), &["check"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    let (l1, c1) = position_of(&fleet, "111;\n      cores = 4");
    let (l2, _) = position_of(&fleet, "111;\n      cores = 8");
    assert!(err.contains("error[duplicate-vmid]"), "{err}");
    // rustc style: the location, the source line and a caret, then help.
    assert!(err.contains(&format!("hosts.nix:{l2}:")), "{err}");
    assert!(
        err.contains(&format!("{l1} |")) && err.contains(&format!("{l2} |")),
        "both lines shown: {err}"
    );
    assert!(err.contains("^^^") && err.contains("= help:"), "{err}");
    let _ = c1;
}

#[test]
fn a_clone_whose_configuration_enables_systemd_boot_or_disko_is_refused() {
    let fleet = example_fleet();
    let cfg = fleet.path().join("hosts/sandbox/configuration.nix");
    let text = std::fs::read_to_string(&cfg).expect("read");
    std::fs::write(
        &cfg,
        text.replace(
            "systemd-boot.enable = false;",
            "systemd-boot.enable = true;",
        ),
    )
    .expect("write");
    let out = pve(fleet.path(), &["check", "--format", "json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("\"systemd-boot\""),
        "{}",
        stdout(&out)
    );
    std::fs::write(
        &cfg,
        text.replace(
            "./hardware-configuration.nix\n",
            "./hardware-configuration.nix\n    inputs.disko.nixosModules.disko\n",
        ),
    )
    .expect("write");
    let out = pve(fleet.path(), &["check", "--format", "json"]);
    assert!(stdout(&out).contains("\"disko\""), "{}", stdout(&out));
}

#[test]
fn a_clone_without_hardware_configuration_needs_integrate() {
    let fleet = example_fleet();
    std::fs::remove_file(
        fleet
            .path()
            .join("hosts/sandbox/hardware-configuration.nix"),
    )
    .expect("rm");
    let out = pve(fleet.path(), &["check", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "a warning only");
    assert!(
        stdout(&out).contains("needs-integrate") && stdout(&out).contains("pve integrate sandbox"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn unknown_host_attributes_belong_to_other_modules_and_pass() {
    let (code, findings, _f) = check_with(
        "user = \"admin\";",
        "user = \"admin\"; deployIdentity = false; extra.nested = [ 1 ];",
        &[],
    );
    assert_eq!(code, 0, "{findings:?}");
}
