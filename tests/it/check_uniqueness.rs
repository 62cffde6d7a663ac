//! Issue 11, item 3: every hostname, sshAlias and Proxmox address/node names
//! one machine, and every publicKey belongs to one host. `pve check` on the
//! example fleet with one collision at a time reports it at both places
//! (line and column found here independently), and `pve render` refuses to
//! write known_hosts lines that would let one name vouch for two machines.

use crate::support::check::{check_json, edited_example as with, position};
use crate::support::{example_fleet, pve, stderr};

fn findings(fleet: &tempfile::TempDir, code: &str) -> (i32, Vec<(u64, u64, String)>) {
    let (status, all) = check_json(fleet, &[]);
    let mut got: Vec<(u64, u64, String)> = all
        .iter()
        .filter(|f| f["code"] == code)
        .map(|f| {
            (
                f["line"].as_u64().expect("line"),
                f["column"].as_u64().expect("column"),
                f["message"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    got.sort();
    (status, got)
}

fn at(got: &[(u64, u64, String)]) -> Vec<(u64, u64)> {
    got.iter().map(|(l, c, _)| (*l, *c)).collect()
}

#[test]
fn an_alias_equal_to_another_hosts_hostname_is_an_error_at_both_places() {
    let (fleet, text) = with(&[("sshAlias = \"fw\";", "sshAlias = \"sandbox\";")]);
    let (code, got) = findings(&fleet, "name-collision");
    assert_eq!(code, 1);
    let mut want = vec![
        position(&text, "\"sandbox\";\n    sshAlias = \"sbx\"", 0),
        position(&text, "\"sandbox\";\n    publicKey", 0),
    ];
    want.sort();
    assert_eq!(at(&got), want, "{got:?}");
    assert!(got[0].2.contains("`sandbox`'s hostname"), "{got:?}");
    assert!(got[0].2.contains("`framework`'s sshAlias"), "{got:?}");
}

#[test]
fn a_host_named_like_the_proxmox_host_or_node_is_an_error() {
    let (fleet, text) = with(&[("sshAlias = \"fw\";", "sshAlias = \"192.168.1.12\";")]);
    // (An address is no DNS label either; the collision is named too.)
    let (code, got) = findings(&fleet, "name-collision");
    assert_eq!(code, 1);
    let mut want = vec![
        position(&text, "\"192.168.1.12\"", 0),
        position(&text, "\"192.168.1.12\"", 1),
    ];
    want.sort();
    assert_eq!(at(&got), want, "{got:?}");
    assert!(got.iter().any(|g| g.2.contains("_proxmox.host")), "{got:?}");

    let (fleet, text) = with(&[("hostname = \"framework\";", "hostname = \"prom\";")]);
    let (code, got) = findings(&fleet, "name-collision");
    assert_eq!(code, 1);
    let mut want = vec![
        position(&text, "\"prom\"", 0),
        position(&text, "\"prom\"", 1),
    ];
    want.sort();
    assert_eq!(at(&got), want, "{got:?}");
}

#[test]
fn localhost_is_no_hosts_name() {
    let (fleet, text) = with(&[("sshAlias = \"fw\";", "sshAlias = \"localhost\";")]);
    let (code, got) = findings(&fleet, "name-collision");
    assert_eq!(code, 1);
    assert_eq!(
        at(&got),
        vec![position(&text, "\"localhost\"", 0)],
        "{got:?}"
    );
    assert!(got[0].2.contains("the machine pve runs on"), "{got:?}");
}

#[test]
fn one_public_key_on_two_hosts_is_an_error_at_both_and_render_refuses() {
    let igpu = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPucrnfLpTjCzItnNPvGJ0iqQs2+iTyTXZH5pCBpuvDp";
    let fw = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIP0atvH47232nLwq1b4P7583cj+WGJYHU4vx/4lgtNgl";
    // The same key with a comment still counts as the same key.
    let (fleet, text) = with(&[(fw, &format!("{igpu} root@igpu"))]);
    let (code, got) = findings(&fleet, "duplicate-public-key");
    assert_eq!(code, 1);
    let quoted = format!("\"{igpu}");
    let mut want = vec![position(&text, &quoted, 0), position(&text, &quoted, 1)];
    want.sort();
    assert_eq!(at(&got), want, "{got:?}");
    assert!(got.iter().any(|g| g.2.contains("`framework`")), "{got:?}");
    assert!(got.iter().any(|g| g.2.contains("`igpu`")), "{got:?}");
    let before = std::fs::read(fleet.path().join("vms/known_hosts")).ok();
    let out = pve(fleet.path(), &["render"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("duplicate") || stderr(&out).contains("publicKey"));
    assert_eq!(
        std::fs::read(fleet.path().join("vms/known_hosts")).ok(),
        before
    );
}

#[test]
fn the_example_fleet_has_no_collision() {
    let fleet = example_fleet();
    for code in ["name-collision", "duplicate-public-key"] {
        let (status, got) = findings(&fleet, code);
        assert_eq!(status, 0);
        assert!(got.is_empty(), "{got:?}");
    }
}
