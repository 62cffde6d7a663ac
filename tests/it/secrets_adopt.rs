//! `pve secrets adopt`: an existing `.sops.yaml` into `_sops`, proven by
//! rendering it again and comparing each rule's recipients with the
//! original (both files parsed as YAML here, aliases resolved by the YAML
//! reader, not by pve); duplicate anchors; a stale recipient dropped;
//! refusals; `--dry-run`; hostile files. And hosts that take no secrets.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::support::{self, pve, stderr, stdout};
use serde_yaml_ng::Value as Yaml;

/// (host, ssh key, age recipient) of a real fleet
/// (tests/data/ssh-to-age/origin-fleet-vectors.tsv).
fn vectors() -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(
        support::repo_root().join("tests/data/ssh-to-age/origin-fleet-vectors.tsv"),
    )
    .unwrap();
    text.lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[1].to_string(), f[2].to_string(), f[3].to_string())
        })
        .collect()
}

/// Age recipients of people (Mic92/ssh-to-age's README keys).
const ALICE: &str = "age17044m9wgakla6pzftf4srtl3h5mcsr85jysgt5fg23zpnta8sfdqhzn452";
fn bob() -> String {
    let text =
        std::fs::read_to_string(support::repo_root().join("tests/data/ssh-to-age/vectors.tsv"))
            .unwrap();
    let line = text.lines().nth(2).unwrap();
    line.split('\t').nth(3).unwrap().to_string()
}

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// A sops file's metadata listing `recipients` (all `pve` reads).
fn sops_file(recipients: &[&str]) -> String {
    let mut s = "secret: ENC[AES256_GCM,data:AAAA,iv:BBBB,tag:CCCC,type:str]\nsops:\n    age:\n"
        .to_string();
    for r in recipients {
        s.push_str(&format!("        - recipient: {r}\n          enc: x\n"));
    }
    s.push_str(
        "    mac: ENC[AES256_GCM,data:DDDD,iv:EEEE,tag:FFFF,type:str]\n    version: 3.9.0\n",
    );
    s
}

/// hosts.nix of the real fleet's first `n` hosts, with a `_proxmox` set.
fn hosts_nix(hosts: &[(String, String, String)], extra: &str) -> String {
    let mut s = String::from("# the fleet\n{\n  _proxmox = { host = \"pve.lan\"; };\n\n");
    for (name, key, _) in hosts {
        s.push_str(&format!(
            "  {name} = {{\n    publicKey = \"{key}\";\n  }};\n"
        ));
    }
    s.push_str(extra);
    s.push_str("}\n");
    s
}

/// Recipients per rule, by `path_regex` (first rule with it wins, as in
/// sops), read with a YAML parser: aliases resolved by it.
fn rules_of(yaml: &str) -> Vec<(String, BTreeSet<String>)> {
    let doc: Yaml = serde_yaml_ng::from_str(yaml).unwrap();
    let mut out = Vec::new();
    for rule in doc["creation_rules"].as_sequence().unwrap() {
        let regex = rule
            .get("path_regex")
            .and_then(Yaml::as_str)
            .unwrap_or("")
            .to_string();
        let mut set = BTreeSet::new();
        let mut add = |v: &Yaml| match v {
            Yaml::String(s) => set.extend(
                s.split(',')
                    .map(|x| x.trim().to_string())
                    .filter(|x| !x.is_empty()),
            ),
            Yaml::Sequence(items) => {
                for i in items {
                    set.insert(i.as_str().unwrap().to_string());
                }
            }
            _ => {}
        };
        match rule.get("key_groups").and_then(Yaml::as_sequence) {
            Some(groups) if !groups.is_empty() => {
                for g in groups {
                    if let Some(a) = g.get("age") {
                        add(a);
                    }
                }
            }
            _ => {
                if let Some(a) = rule.get("age") {
                    add(a);
                }
            }
        }
        out.push((regex, set));
    }
    out
}

fn sha(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                walk(root, &p, out);
            } else if t.is_file() {
                out.insert(
                    p.strip_prefix(root).unwrap().display().to_string(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    walk(root, root, &mut out);
    out
}

struct Fleet {
    dir: tempfile::TempDir,
    /// The stale recipient: the key of a host that is gone.
    stale: String,
    original: String,
}

/// A fleet shaped like a real one: anchors for admins and hosts, per-path
/// rules (one for some admins only), a catch-all, one stale recipient (a
/// re-created host's old key, `&host_cache`), secret files under the
/// rules.
fn real_fleet() -> Fleet {
    let v = vectors();
    let (current, gone) = v.split_at(8);
    let stale = gone[0].2.clone(); // cache, removed from hosts.nix
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "hosts.nix", &hosts_nix(current, ""));
    let bob = bob();
    let mut y = String::from("# sops-nix\nkeys:\n");
    y.push_str(&format!("  - &admin_alice {ALICE}\n  - &admin_bob {bob}\n"));
    for (name, _, age) in current {
        y.push_str(&format!("  - &host_{name} {age} # {name}\n"));
    }
    y.push_str(&format!("  - &host_cache {stale}\n"));
    let all_hosts: String = current
        .iter()
        .map(|(n, _, _)| format!("          - *host_{n}\n"))
        .collect();
    y.push_str(&format!(
        "creation_rules:
  - path_regex: ^hosts/sandbox/[^/]+\\.(yaml|json|env|ini)$
    key_groups:
      - age:
          - *admin_alice
          - *admin_bob
          - *host_sandbox
  - path_regex: ^hosts/framework/
    key_groups:
      - age:
          - *admin_alice
          - *host_framework
  - path_regex: ^shared/
    key_groups:
      - age:
          - *admin_alice
          - *admin_bob
          - *host_epimetheus
          - *host_framework
          - *host_cache
  - path_regex: .*
    key_groups:
      - age:
          - *admin_alice
          - *admin_bob
{all_hosts}          - *host_cache
"
    ));
    write(dir.path(), "secrets/.sops.yaml", &y);
    let every: Vec<&str> = [ALICE, bob.as_str()]
        .into_iter()
        .chain(current.iter().map(|(_, _, a)| a.as_str()))
        .chain([stale.as_str()])
        .collect();
    let sandbox = current
        .iter()
        .find(|h| h.0 == "sandbox")
        .unwrap()
        .2
        .as_str();
    let framework = current
        .iter()
        .find(|h| h.0 == "framework")
        .unwrap()
        .2
        .as_str();
    let epi = current
        .iter()
        .find(|h| h.0 == "epimetheus")
        .unwrap()
        .2
        .as_str();
    let b = bob.as_str();
    write(
        dir.path(),
        "secrets/hosts/sandbox/wifi.yaml",
        &sops_file(&[ALICE, b, sandbox]),
    );
    write(
        dir.path(),
        "secrets/hosts/framework/vpn.yaml",
        &sops_file(&[ALICE, framework]),
    );
    write(
        dir.path(),
        "secrets/shared/db.yaml",
        &sops_file(&[ALICE, b, epi, framework, &stale]),
    );
    write(dir.path(), "secrets/common.yaml", &sops_file(&every));
    Fleet {
        dir,
        stale,
        original: y,
    }
}

#[test]
fn adopting_a_real_fleet_then_rendering_gives_every_rule_the_same_recipients() {
    let f = real_fleet();
    let root = f.dir.path();
    let check = pve(root, &["check", "--format", "json"]);
    let found: Vec<serde_json::Value> = serde_json::from_str(&stdout(&check)).unwrap();
    let unmanaged = found
        .iter()
        .find(|d| d["code"] == "secret-config-unmanaged")
        .unwrap();
    assert!(
        unmanaged.to_string().contains("run `pve secrets adopt`"),
        "{unmanaged}"
    );

    let out = pve(root, &["secrets", "adopt", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["written"], true);
    assert_eq!(report["rules"], 4);
    // 2 admins + 8 hosts + the stale key; all but the stale key kept.
    assert_eq!(report["recipients"], 11);
    assert_eq!(report["recipients_kept"], 10);
    assert_eq!(report["files_checked"], 4);
    assert_eq!(report["catch_all"], true);
    let admins: Vec<&str> = report["admins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(admins, ["alice", "bob"]);
    let diffs = report["differences"].as_array().unwrap();
    let dropped: Vec<&str> = diffs
        .iter()
        .filter(|d| d["kind"] == "dropped-recipient")
        .map(|d| d["message"].as_str().unwrap())
        .collect();
    assert_eq!(dropped.len(), 1, "{diffs:?}");
    assert!(
        dropped[0].contains(&f.stale) && dropped[0].contains("&host_cache"),
        "{}",
        dropped[0]
    );
    assert!(
        dropped[0].contains("rule 3 `^shared/`") && dropped[0].contains("rule 4 `.*`"),
        "{}",
        dropped[0]
    );

    let r = pve(root, &["render", "sops"]);
    assert!(r.status.success(), "{}", stderr(&r));
    let rendered = std::fs::read_to_string(root.join("secrets/.sops.yaml")).unwrap();
    let before = rules_of(&f.original);
    let after = rules_of(&rendered);
    assert!(
        !rendered.contains(&f.stale),
        "the stale key is gone:\n{rendered}"
    );
    let mut compared = 0;
    for (regex, want) in &before {
        let want: BTreeSet<String> = want.iter().filter(|r| **r != f.stale).cloned().collect();
        let got = &after
            .iter()
            .find(|(r, _)| r == regex)
            .unwrap_or_else(|| panic!("no rule {regex} in\n{rendered}"))
            .1;
        assert_eq!(got, &want, "rule {regex}");
        compared += want.len();
    }
    assert_eq!(compared, 3 + 2 + 4 + 10);
    // The per-path rules come first and in order; the catch-all last.
    let order: Vec<&str> = after.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(
        &order[..3],
        &before[..3]
            .iter()
            .map(|(r, _)| r.as_str())
            .collect::<Vec<_>>()[..]
    );
    assert_eq!(order.last(), Some(&".*"));

    let check = pve(root, &["check", "--format", "json"]);
    let found: Vec<serde_json::Value> = serde_json::from_str(&stdout(&check)).unwrap();
    let codes: Vec<&str> = found.iter().map(|d| d["code"].as_str().unwrap()).collect();
    assert!(!codes.contains(&"secret-config-unmanaged"), "{codes:?}");
    // The stale key is still in the files until they are re-keyed.
    assert!(codes.contains(&"secret-stale-recipient"), "{codes:?}");
}

/// A secret file that the file's catch-all gives every host, under
/// `hosts/dev/`: pve's own rule for `dev` would come first and narrow it,
/// so every rule is kept as written instead.
#[test]
fn a_file_that_pves_per_host_rule_would_narrow_keeps_every_rule_as_written() {
    let f = real_fleet();
    let root = f.dir.path();
    let every = rules_of(&f.original).last().unwrap().1.clone();
    let every: Vec<&str> = every.iter().map(String::as_str).collect();
    write(root, "secrets/hosts/dev/token.yaml", &sops_file(&every));
    let out = pve(root, &["secrets", "adopt", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["catch_all"], false);
    assert_eq!(report["extra_rules"], 4);
    assert_eq!(report["files_checked"], 5);
    let diffs = report["differences"].to_string();
    assert!(
        diffs.contains("rules-kept") && diffs.contains("secrets/hosts/dev/token.yaml"),
        "{diffs}"
    );
    let r = pve(root, &["render", "sops"]);
    assert!(r.status.success(), "{}", stderr(&r));
    let rendered = std::fs::read_to_string(root.join("secrets/.sops.yaml")).unwrap();
    let after = rules_of(&rendered);
    for (i, (regex, want)) in rules_of(&f.original).iter().enumerate() {
        let want: BTreeSet<String> = want.iter().filter(|r| **r != f.stale).cloned().collect();
        assert_eq!(&after[i].0, regex);
        assert_eq!(after[i].1, want, "rule {regex}");
    }
    // No catch-all of pve's after them.
    assert_eq!(after.iter().filter(|(r, _)| r == ".*").count(), 1);
}

#[test]
fn keep_unknown_keeps_the_stale_key_as_an_admin_named_after_its_anchor() {
    let f = real_fleet();
    let out = pve(
        f.dir.path(),
        &["secrets", "adopt", "--keep-unknown", "--dry-run", "--json"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let admins: Vec<(&str, &str)> = report["admins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap(),
                a["recipient"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(
        admins.contains(&("host_cache", f.stale.as_str())),
        "{admins:?}"
    );
    assert_eq!(report["recipients_kept"], 11);
    assert!(stdout(&out).contains("kept-unknown"));
}

#[test]
fn dry_run_prints_the_block_and_writes_nothing() {
    let f = real_fleet();
    let before = sha(f.dir.path());
    let out = pve(f.dir.path(), &["secrets", "adopt", "--dry-run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("would add to"), "{text}");
    assert!(text.contains("_sops = {"), "{text}");
    assert!(text.contains(&format!("alice = \"{ALICE}\";")), "{text}");
    assert!(text.contains("path_regex = \"^hosts/framework/\"; admins = [ \"alice\" ]; hosts = [ \"framework\" ];"), "{text}");
    assert!(text.contains("[dropped-recipient]"), "{text}");
    assert_eq!(sha(f.dir.path()), before, "--dry-run wrote something");
}

#[test]
fn an_existing_sops_block_is_never_replaced() {
    let f = real_fleet();
    let root = f.dir.path();
    let nix = std::fs::read_to_string(root.join("hosts.nix")).unwrap();
    let with = nix.replacen(
        "{\n",
        &format!("{{\n  _sops = {{ admins = {{ me = \"{ALICE}\"; }}; }};\n"),
        1,
    );
    write(root, "hosts.nix", &with);
    let before = sha(root);
    let out = pve(root, &["secrets", "adopt"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("hosts.nix already has `_sops`"),
        "{}",
        stderr(&out)
    );
    assert_eq!(sha(root), before);
}

#[test]
fn duplicate_anchors_are_reported_and_resolved_as_sops_reads_them() {
    let v = vectors();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "hosts.nix", &hosts_nix(&v[..2], ""));
    let (h1, h2) = (&v[0], &v[1]);
    let bob = bob();
    // `&admin` twice: each alias means the anchor defined last before it.
    let y = format!(
        "keys:
  - &admin {ALICE}
  - &host_{} {}
creation_rules:
  - path_regex: ^one/
    age: *admin
  - path_regex: ^two/
    key_groups:
      - age:
          - &admin {bob}
          - *host_{}
  - path_regex: ''
    age: [*admin, *host_{}]
",
        h1.0, h1.2, h1.0, h1.0
    );
    write(root, "secrets/.sops.yaml", &y);
    let out = pve(root, &["secrets", "adopt", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let diffs = report["differences"].to_string();
    assert!(
        diffs.contains("duplicate-anchor") && diffs.contains("&admin is defined 2 times"),
        "{diffs}"
    );
    let names: Vec<&str> = report["admins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["admin", "admin_2"]);
    let r = pve(root, &["render", "sops"]);
    assert!(r.status.success(), "{}", stderr(&r));
    let after = rules_of(&std::fs::read_to_string(root.join("secrets/.sops.yaml")).unwrap());
    let before = rules_of(&y);
    for (regex, want) in &before[..2] {
        let got = &after.iter().find(|(r, _)| r == regex).unwrap().1;
        assert_eq!(got, want, "{regex}");
    }
    // The last rule (only the second admin and one host, not the other
    // host) is no catch-all for every host: kept as written.
    let got = &after.iter().find(|(r, _)| r.is_empty()).unwrap().1;
    assert_eq!(got, &before[2].1);
    assert!(!before[2].1.contains(&h2.2));
}

#[test]
fn hostile_files_give_a_clear_error_and_leave_hosts_nix_alone() {
    let v = vectors();
    type Make = Box<dyn Fn(&Path)>;
    let cases: Vec<(&str, Make, &str)> = vec![
        (
            "not YAML",
            Box::new(|p: &Path| std::fs::write(p, "creation_rules: [\n  - {{ nope").unwrap()),
            "not valid YAML",
        ),
        (
            "huge",
            Box::new(|p: &Path| {
                let f = std::fs::File::create(p).unwrap();
                f.set_len(17 << 20).unwrap();
            }),
            "larger input is refused",
        ),
        (
            "a link to /dev/zero",
            Box::new(|p: &Path| std::os::unix::fs::symlink("/dev/zero", p).unwrap()),
            "larger input is refused",
        ),
        (
            "not age keys",
            Box::new(|p: &Path| {
                std::fs::write(
                    p,
                    "creation_rules:\n  - path_regex: .*\n    age: ssh-ed25519 AAAAC3Nza, age1notakey\n",
                )
                .unwrap()
            }),
            "is not an age recipient",
        ),
    ];
    for (what, make, says) in cases {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "hosts.nix", &hosts_nix(&v[..2], ""));
        std::fs::create_dir_all(root.join("secrets")).unwrap();
        make(&root.join("secrets/.sops.yaml"));
        let before = std::fs::read(root.join("hosts.nix")).unwrap();
        let out = pve(root, &["secrets", "adopt"]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{what}: {err}");
        assert!(
            err.contains("secrets/.sops.yaml"),
            "{what}: names the file: {err}"
        );
        assert!(err.contains(says), "{what}: {err}");
        assert_eq!(
            std::fs::read(root.join("hosts.nix")).unwrap(),
            before,
            "{what}"
        );
    }
}

#[test]
fn other_key_types_and_key_groups_are_reported() {
    let v = vectors();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "hosts.nix", &hosts_nix(&v[..1], ""));
    let bob = bob();
    let y = format!(
        "creation_rules:
  - path_regex: ^x/
    encrypted_regex: ^(data)$
    key_groups:
      - pgp: [FBC7B9E2A4F9289AC0C1D4843D16CEE4A27381B4]
        age: [{ALICE}]
      - age: [{bob}]
  - path_regex: .*
    kms: arn:aws:kms:us-east-1:1:key/x
    age: {ALICE}, {}
",
        v[0].2
    );
    write(root, ".sops.yaml", &y);
    let out = pve(root, &["secrets", "adopt", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let kinds: Vec<&str> = report["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["kind"].as_str().unwrap())
        .collect();
    for k in [
        "rule-option",
        "key-groups",
        "other-key-type",
        "unnamed-admin",
    ] {
        assert!(kinds.contains(&k), "{k} in {kinds:?}");
    }
    let nix = std::fs::read_to_string(root.join("hosts.nix")).unwrap();
    assert!(nix.contains("path = \".sops.yaml\";"), "{nix}");
    let r = pve(root, &["render", "sops"]);
    assert!(r.status.success(), "{}", stderr(&r));
}

// ------------------------------------------------------------ item 6

/// A home-only host (no configurationFile) takes no secrets by default;
/// `secrets = true;` / `false;` decide; `catchAll = false;` drops the last
/// rule. Compared by parsing the rendered YAML.
#[test]
fn hosts_that_take_no_secrets_are_no_recipients_of_the_automatic_rules() {
    let v = vectors();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "hosts/nixos/configuration.nix", "{ }\n");
    write(root, "hosts/laptop/home.nix", "{ }\n");
    let [nixos, laptop, forced, off, plain] = [&v[0], &v[1], &v[2], &v[3], &v[4]];
    let text = |catch_all: &str| {
        format!(
            "{{
  _sops = {{
    admins = {{ alice = \"{ALICE}\"; }};
    rules = [ {{ path_regex = \"^shared/\"; hosts = [ \"{laptop_n}\" ]; }} ];
    {catch_all}
  }};
  {nixos_n} = {{ configurationFile = ./hosts/nixos/configuration.nix; homeFile = ./hosts/laptop/home.nix; publicKey = \"{nixos_k}\"; }};
  {laptop_n} = {{ homeFile = ./hosts/laptop/home.nix; publicKey = \"{laptop_k}\"; }};
  {forced_n} = {{ homeFile = ./hosts/laptop/home.nix; secrets = true; publicKey = \"{forced_k}\"; }};
  {off_n} = {{ configurationFile = ./hosts/nixos/configuration.nix; secrets = false; publicKey = \"{off_k}\"; }};
  {plain_n} = {{ publicKey = \"{plain_k}\"; }};
}}
",
            nixos_n = nixos.0,
            nixos_k = nixos.1,
            laptop_n = laptop.0,
            laptop_k = laptop.1,
            forced_n = forced.0,
            forced_k = forced.1,
            off_n = off.0,
            off_k = off.1,
            plain_n = plain.0,
            plain_k = plain.1,
        )
    };
    write(root, "hosts.nix", &text(""));
    let r = pve(root, &["render", "sops"]);
    assert!(r.status.success(), "{}", stderr(&r));
    let yaml = std::fs::read_to_string(root.join("secrets/.sops.yaml")).unwrap();
    let rules: BTreeMap<String, BTreeSet<String>> = rules_of(&yaml).into_iter().collect();
    let set = |v: &[&str]| -> BTreeSet<String> { v.iter().map(|s| s.to_string()).collect() };
    assert_eq!(
        rules[".*"],
        set(&[ALICE, &nixos.2, &forced.2, &plain.2]),
        "{yaml}"
    );
    assert_eq!(rules[&format!("^hosts/{}/", laptop.0)], set(&[ALICE]));
    assert_eq!(rules[&format!("^hosts/{}/", off.0)], set(&[ALICE]));
    assert_eq!(
        rules[&format!("^hosts/{}/", forced.0)],
        set(&[ALICE, &forced.2])
    );
    assert_eq!(
        rules[&format!("^hosts/{}/", nixos.0)],
        set(&[ALICE, &nixos.2])
    );
    // Named in `_sops.rules`, the home-only host gets that rule.
    assert_eq!(rules["^shared/"], set(&[ALICE, &laptop.2]));
    // The host with `secrets = false` is in no rule, and not in the file.
    assert!(!yaml.contains(&off.2), "{yaml}");

    write(root, "hosts.nix", &text("catchAll = false;"));
    let r = pve(root, &["render", "sops"]);
    assert!(r.status.success(), "{}", stderr(&r));
    let yaml = std::fs::read_to_string(root.join("secrets/.sops.yaml")).unwrap();
    let rules = rules_of(&yaml);
    assert!(rules.iter().all(|(r, _)| r != ".*"), "{yaml}");
    assert_eq!(rules.len(), 1 + 5);
}

#[test]
fn a_secrets_switch_that_is_not_a_boolean_is_a_check_error_at_the_value() {
    let v = vectors();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(
        root,
        "hosts.nix",
        &format!(
            "{{\n  web = {{\n    publicKey = \"{}\";\n    secrets = \"yes\";\n  }};\n}}\n",
            v[0].1
        ),
    );
    let out = pve(root, &["check"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("error[wrong-type]: `web.secrets` must be true or false, not a string"),
        "{err}"
    );
    assert!(err.contains("hosts.nix:4:15"), "{err}");
    assert!(err.contains("help: write e.g. `secrets = true;`"), "{err}");
    let json = pve(root, &["check", "--format", "json"]);
    let found: Vec<serde_json::Value> = serde_json::from_str(&stdout(&json)).unwrap();
    let d = found.iter().find(|d| d["code"] == "wrong-type").unwrap();
    assert_eq!(
        (d["line"].as_u64(), d["column"].as_u64()),
        (Some(4), Some(15)),
        "{d}"
    );
}

/// A host that takes no secrets is in no rule and no file: `pve remove`
/// claims no revocation for it; a host that is a recipient still gets one.
#[test]
fn removing_a_host_that_takes_no_secrets_claims_no_revocation() {
    let v = vectors();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "hosts/laptop/home.nix", "{ }\n");
    write(
        root,
        "hosts.nix",
        &format!(
            "{{\n  _sops = {{ admins = {{ alice = \"{ALICE}\"; }}; }};\n  web = {{ publicKey = \"{}\"; }};\n  laptop = {{ homeFile = ./hosts/laptop/home.nix; publicKey = \"{}\"; }};\n}}\n",
            v[0].1, v[1].1
        ),
    );
    let r = pve(root, &["render"]);
    assert!(r.status.success(), "{}", stderr(&r));
    let yaml = std::fs::read_to_string(root.join("secrets/.sops.yaml")).unwrap();
    assert!(!yaml.contains(&v[1].2), "laptop is no recipient:\n{yaml}");
    let out = pve(root, &["remove", "laptop", "--yes"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("(no age recipient: it can decrypt no secret, nothing to revoke)"),
        "{err}"
    );
    assert!(!err.contains("its age recipient"), "{err}");
    let out = pve(root, &["remove", "web", "--yes"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!("its age recipient {} from .sops.yaml", v[0].2)),
        "{err}"
    );
}

/// `_sops.rules` naming a host that says `secrets = false;`, or an admin
/// `_sops.admins` does not define, stops rendering at the name.
#[test]
fn sops_rules_that_contradict_the_hosts_or_admins_are_refused_at_the_name() {
    let v = vectors();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let fleet = |rule: &str| {
        format!(
            "{{\n  _sops = {{\n    admins = {{ alice = \"{ALICE}\"; }};\n    rules = [ {rule} ];\n  }};\n  web = {{ secrets = false; publicKey = \"{}\"; }};\n}}\n",
            v[0].1
        )
    };
    write(
        root,
        "hosts.nix",
        &fleet("{ path_regex = \"^x/\"; hosts = [ \"web\" ]; }"),
    );
    let out = pve(root, &["render", "sops"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("`_sops.rules` gives secrets to `web`, which says `secrets = false;`"),
        "{err}"
    );
    assert!(err.contains("hosts.nix:4:47"), "{err}");
    write(
        root,
        "hosts.nix",
        &fleet("{ path_regex = \"^x/\"; admins = [ \"alicee\" ]; }"),
    );
    let out = pve(root, &["render", "sops"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("`_sops.rules` names admin `alicee`, which `_sops.admins` does not define"),
        "{err}"
    );
    assert!(err.contains("did you mean `alice`?"), "{err}");
    assert!(!root.join("secrets/.sops.yaml").exists());
}

/// A host whose publicKey is not a usable ssh-ed25519 key (here cut
/// short), as the keys module parsed it when hosts.nix was read: adopt
/// refuses with the key's position and what is wrong with it, and
/// hosts.nix stays as it was.
#[test]
fn a_malformed_host_key_is_refused_at_the_key() {
    let v = vectors();
    let mut hosts = v[..2].to_vec();
    let good = hosts[1].1.clone();
    let cut: String = good.chars().take(good.len() - 8).collect();
    hosts[1].1 = cut.clone();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "hosts.nix", &hosts_nix(&hosts, ""));
    let recipients = [ALICE, v[0].2.as_str(), v[1].2.as_str()];
    write(
        root,
        ".sops.yaml",
        &format!(
            "creation_rules:\n  - path_regex: .*\n    age: {}\n",
            recipients.join(",")
        ),
    );
    write(root, "secrets/common.yaml", &sops_file(&recipients));
    let before = std::fs::read(root.join("hosts.nix")).unwrap();
    let out = pve(root, &["secrets", "adopt"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "`{}.publicKey` is not a valid ssh-ed25519 key: the key data is malformed",
            hosts[1].0
        )),
        "{err}"
    );
    assert!(err.contains("hosts.nix:16:17"), "{err}");
    assert!(err.contains(&cut), "the key is shown: {err}");
    assert_eq!(std::fs::read(root.join("hosts.nix")).unwrap(), before);
}
