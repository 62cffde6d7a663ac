//! `secrets::sops`: updatekeys on every secret file in parallel with every
//! result reported, rotate (with the fallback for sops < 3.9), against the
//! sops stand-in (tests/stand-ins/sops) whose data-key stanzas are real age.

use std::path::{Path, PathBuf};

use crate::support::own_process::in_own_process;
use crate::support::secrets::*;
use pve_fleet::secrets::{self, health, sops::Sops, SopsConfig};

/// The sops stand-in for the library's sops calls, which find the program
/// through `PVE_TOOL_SOPS` in their own environment: the test runs in its
/// own process with it set there.
macro_rules! with_sops_standin {
    ($test:ident) => {
        in_own_process!(
            $test,
            &[("PVE_TOOL_SOPS", Some(sops_standin().as_os_str()))]
        )
    };
}

struct Fleet {
    dir: tempfile::TempDir,
    admin: AgeKey,
    web: AgeKey,
    db: AgeKey,
}

impl Fleet {
    fn root(&self) -> &Path {
        self.dir.path()
    }
    fn secrets(&self) -> PathBuf {
        self.root().join("secrets")
    }
    fn config(&self) -> PathBuf {
        self.secrets().join(".sops.yaml")
    }
    fn log(&self) -> PathBuf {
        self.root().join("sops.log")
    }
    fn sops(&self) -> Sops {
        Sops::new(self.config())
            .age_key_file(&self.admin.file)
            .env("SOPS_STANDIN_LOG", self.log().to_string_lossy())
    }
    fn calls(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.log())
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("log line"))
            .collect()
    }
}

/// A fleet whose secrets were encrypted before host `db` existed: .sops.yaml
/// now gives `db` (and the catch-all gives every host), the files lack it.
fn fleet_missing_db(files: usize) -> Fleet {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = dir.path().join("keys");
    std::fs::create_dir_all(&keys).expect("mkdir");
    let admin = age_keygen(&keys, "admin");
    let web = age_keygen(&keys, "web");
    let db = age_keygen(&keys, "db");
    let f = Fleet {
        dir,
        admin,
        web,
        db,
    };
    std::fs::create_dir_all(f.secrets().join("hosts/web")).expect("mkdir");
    std::fs::write(
        f.config(),
        render_style_sops_yaml(
            &f.admin.recipient,
            &[("db", &f.db.recipient), ("web", &f.web.recipient)],
        ),
    )
    .expect("write");
    std::fs::write(
        f.secrets().join("hosts/web/tls.yaml"),
        sops_yaml_file(&[f.admin.recipient.as_str(), &f.web.recipient]),
    )
    .expect("write");
    for i in 0..files {
        std::fs::write(
            f.secrets().join(format!("shared{i}.yaml")),
            sops_yaml_file(&[f.admin.recipient.as_str(), &f.web.recipient]),
        )
        .expect("write");
    }
    f
}

fn codes(f: &Fleet) -> Vec<&'static str> {
    health::check(f.root(), Path::new("secrets/.sops.yaml"))
        .iter()
        .map(|d| d.code.as_str())
        .collect()
}

#[test]
fn updatekeys_rekeys_every_file_so_the_new_host_can_decrypt_and_health_is_clean() {
    with_sops_standin!(
        updatekeys_rekeys_every_file_so_the_new_host_can_decrypt_and_health_is_clean
    );
    let f = fleet_missing_db(3);
    assert_eq!(
        codes(&f),
        vec!["secret-missing-recipient"; 3],
        "before: the shared files lack db"
    );
    let cfg = SopsConfig::load(&f.config()).expect("config");
    let files = secrets::secret_files(&cfg);
    assert_eq!(files.len(), 4);
    let report = f.sops().updatekeys(&files);
    assert!(report.is_success(), "{report:?}");
    assert_eq!(report.ok, files, "every file reported, in order");
    assert_eq!(codes(&f), Vec::<&str>::new(), "after: no findings");

    let text = std::fs::read_to_string(f.secrets().join("shared0.yaml")).expect("read");
    assert_eq!(
        yaml_recipients(&text),
        [
            f.admin.recipient.as_str(),
            &f.db.recipient,
            &f.web.recipient
        ]
    );
    // The new host's real age identity unwraps the same data key.
    let stanza = yaml_stanza(&text, &f.db.recipient).expect("db stanza");
    assert_eq!(age_decrypt(&f.db.file, &stanza).as_deref(), Some(DATA_KEY));
    // The host-only file was already right: left alone.
    let tls = std::fs::read_to_string(f.secrets().join("hosts/web/tls.yaml")).expect("read");
    assert_eq!(
        yaml_recipients(&tls),
        [f.admin.recipient.as_str(), &f.web.recipient]
    );

    // The identity went through the environment; argv has the global flag first.
    let calls = f.calls();
    assert_eq!(calls.len(), 4);
    for c in &calls {
        let argv: Vec<&str> = c["argv"]
            .as_array()
            .expect("argv")
            .iter()
            .filter_map(|a| a.as_str())
            .collect();
        assert_eq!(
            &argv[..4],
            [
                "--config",
                f.config().to_str().expect("utf8"),
                "updatekeys",
                "--yes"
            ]
        );
        assert!(
            !argv
                .iter()
                .any(|a| a.contains("admin.txt") || a.contains("AGE-SECRET-KEY")),
            "{argv:?}"
        );
        assert_eq!(
            c["env"]["SOPS_AGE_KEY_FILE"],
            f.admin.file.to_str().expect("utf8")
        );
    }
}

#[test]
fn a_failure_leaves_a_clear_list_of_what_was_and_was_not_rekeyed() {
    with_sops_standin!(a_failure_leaves_a_clear_list_of_what_was_and_was_not_rekeyed);
    let f = fleet_missing_db(3);
    let fail = f.root().join("fail.txt");
    std::fs::write(&fail, "shared1.yaml\n").expect("write");
    let before = std::fs::read(f.secrets().join("shared1.yaml")).expect("read");
    let cfg = SopsConfig::load(&f.config()).expect("config");
    let files = secrets::secret_files(&cfg);
    let done = std::sync::Mutex::new(Vec::new());
    let report = f
        .sops()
        .env("SOPS_STANDIN_FAIL", fail.to_string_lossy())
        .updatekeys_with_progress(&files, |p, r| {
            done.lock()
                .expect("lock")
                .push((p.to_path_buf(), r.is_ok()));
        });
    let done = done.into_inner().expect("lock");
    assert_eq!(done.len(), 4, "progress for every file");
    assert_eq!(done.iter().filter(|(_, ok)| !ok).count(), 1);
    assert_eq!(report.failed.len(), 1, "{report:?}");
    let (path, why) = &report.failed[0];
    assert!(path.ends_with("shared1.yaml"));
    assert!(why.contains("exit code 128"), "{why}");
    // sops' whole message is kept, its first line too (it says what
    // failed; the stand-in prints it as the real sops 3.11 does).
    assert!(
        why.contains("Failed to get the data key required to decrypt the SOPS file."),
        "sops' own words kept: {why}"
    );
    assert!(why.contains("but none were."), "to its end: {why}");
    assert!(why.contains("SOPS_AGE_KEY_FILE"), "says what to do: {why}");
    assert_eq!(report.ok.len(), 3);
    assert_eq!(
        std::fs::read(f.secrets().join("shared1.yaml")).expect("read"),
        before,
        "failed file untouched"
    );
    let summary = report.summary("re-keyed", f.root());
    assert!(
        summary.starts_with("3 of 4 secret files re-keyed\n"),
        "{summary}"
    );
    assert!(
        summary.contains("  FAILED  secrets/shared1.yaml: `sops` failed (exit code 128)"),
        "{summary}"
    );
    assert!(
        summary.contains("  ok      secrets/shared0.yaml"),
        "{summary}"
    );
    // Health now points at exactly the one file left behind.
    let d = health::check(f.root(), Path::new("secrets/.sops.yaml"));
    assert_eq!(d.len(), 1);
    assert!(
        d[0].message
            .starts_with("secrets/shared1.yaml is not encrypted to recipient"),
        "{}",
        d[0].message
    );
}

#[test]
fn without_an_identity_sops_cannot_rekey_and_says_so() {
    with_sops_standin!(without_an_identity_sops_cannot_rekey_and_says_so);
    let f = fleet_missing_db(1);
    let cfg = SopsConfig::load(&f.config()).expect("config");
    let files = secrets::secret_files(&cfg);
    let s = Sops::new(f.config())
        .env("SOPS_STANDIN_LOG", f.log().to_string_lossy())
        .age_key_file(&f.web.file);
    // web can decrypt the data key: fine. db cannot (not a recipient yet).
    assert!(s.updatekeys(&files).is_success());
    let f = fleet_missing_db(1);
    let s = Sops::new(f.config()).age_key_file(&f.db.file);
    let r = s.updatekeys(&secrets::secret_files(
        &SopsConfig::load(&f.config()).expect("cfg"),
    ));
    assert_eq!(r.failed.len(), 1, "{r:?}");
}

#[test]
fn updatekeys_runs_files_in_parallel_bounded_by_four() {
    with_sops_standin!(updatekeys_runs_files_in_parallel_bounded_by_four);
    let f = fleet_missing_db(7);
    let cfg = SopsConfig::load(&f.config()).expect("config");
    let files = secrets::secret_files(&cfg);
    assert_eq!(files.len(), 8);
    let spans_file = tempfile::NamedTempFile::new().expect("tmp");
    let report = f
        .sops()
        .env("SOPS_STANDIN_DELAY", "1")
        .env(
            "SOPS_STANDIN_SPANS",
            spans_file.path().display().to_string(),
        )
        .updatekeys(&files);
    assert!(report.is_success(), "{report:?}");
    // How many calls were inside their (1 s) work at the same moment, from
    // the stand-in's own start/end records: what happened, not how long
    // the test took.
    let spans: Vec<(f64, f64)> = std::fs::read_to_string(spans_file.path())
        .expect("spans")
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("span json");
            (
                v["start"].as_f64().expect("start"),
                v["end"].as_f64().expect("end"),
            )
        })
        .collect();
    assert_eq!(spans.len(), 8, "one span per file");
    let most_at_once = spans
        .iter()
        .map(|&(s, _)| spans.iter().filter(|&&(a, b)| a <= s && s < b).count())
        .max()
        .unwrap_or(0);
    assert!(
        most_at_once <= 4,
        "{most_at_once} calls ran at once: {spans:?}"
    );
    assert!(
        most_at_once >= 2,
        "the calls ran one after another: {spans:?}"
    );
}

#[test]
fn rotate_gives_a_new_data_key_to_the_same_recipients() {
    with_sops_standin!(rotate_gives_a_new_data_key_to_the_same_recipients);
    let f = fleet_missing_db(1);
    let file = f.secrets().join("shared0.yaml");
    let report = f.sops().rotate(std::slice::from_ref(&file));
    assert!(report.is_success(), "{report:?}");
    let text = std::fs::read_to_string(&file).expect("read");
    assert_eq!(
        yaml_recipients(&text),
        [f.admin.recipient.as_str(), &f.web.recipient]
    );
    let key = age_decrypt(
        &f.admin.file,
        &yaml_stanza(&text, &f.admin.recipient).expect("stanza"),
    )
    .expect("admin decrypts");
    assert_eq!(key.len(), 32);
    assert_ne!(key, DATA_KEY, "a new data key");
    let calls = f.calls();
    assert_eq!(calls[0]["argv"], serde_json::json!(["--version"]));
    let argv = &calls[1]["argv"];
    assert_eq!(argv[2], "rotate");
    assert_eq!(argv[3], "-i");
}

#[test]
fn rotate_falls_back_to_the_old_flag_on_sops_before_3_9() {
    with_sops_standin!(rotate_falls_back_to_the_old_flag_on_sops_before_3_9);
    let f = fleet_missing_db(1);
    let file = f.secrets().join("shared0.yaml");
    let report = f
        .sops()
        .env("SOPS_STANDIN_VERSION", "3.8.1")
        .rotate(std::slice::from_ref(&file));
    assert!(report.is_success(), "{report:?}");
    // The version is asked first: sops 3.8 given `rotate` would open an
    // editor on a new file called `rotate` (the stand-in leaves that file).
    let calls = f.calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(calls[0]["argv"], serde_json::json!(["--version"]));
    assert_eq!(calls[1]["argv"][2], "-r");
    assert_eq!(calls[1]["argv"][3], "-i");
    assert!(!f.secrets().join("rotate").exists());
    let text = std::fs::read_to_string(&file).expect("read");
    let key = age_decrypt(
        &f.admin.file,
        &yaml_stanza(&text, &f.admin.recipient).expect("stanza"),
    )
    .expect("admin decrypts");
    assert_ne!(key, DATA_KEY, "a new data key");
}

#[test]
fn a_sops_whose_version_cannot_be_told_rotates_nothing() {
    with_sops_standin!(a_sops_whose_version_cannot_be_told_rotates_nothing);
    let f = fleet_missing_db(1);
    let file = f.secrets().join("shared0.yaml");
    let before = std::fs::read(&file).expect("read");
    let report = f
        .sops()
        .env("SOPS_STANDIN_VERSION", "banana")
        .rotate(std::slice::from_ref(&file));
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert_eq!(std::fs::read(&file).expect("read"), before);
    assert_eq!(f.calls().len(), 1, "only --version was asked");
}

#[test]
fn files_a_removed_host_could_read_are_found_from_their_metadata() {
    let f = fleet_missing_db(2);
    let cfg = SopsConfig::load(&f.config()).expect("config");
    let readable = secrets::files_readable_by(&cfg, &f.web.recipient);
    assert_eq!(readable.len(), 3);
    assert!(secrets::files_readable_by(&cfg, &f.db.recipient).is_empty());
}

#[test]
fn the_real_sops_nix_test_file_reads_without_sops() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/secrets/sopsnix-secrets.yaml");
    let m = secrets::metadata::read(&path).expect("metadata");
    assert_eq!(
        m.groups,
        vec![vec![
            "age1yt3tfqlfrwdwx0z0ynwplcr6qxcxfaqycuprpmy89nr83ltx74tqdpszlw".to_string(),
            "age1a8pk4akrdamj7nvqy3zywgtny8dxz7t5xzu7u8v9mhrayp9freqsqatyrs".into(),
        ]]
    );
}

#[test]
fn dotenv_and_json_files_are_rekeyed_too() {
    with_sops_standin!(dotenv_and_json_files_are_rekeyed_too);
    let f = fleet_missing_db(0);
    let old = [f.admin.recipient.as_str(), &f.web.recipient];
    std::fs::write(f.secrets().join("app.env"), sops_dotenv_file(&old)).expect("write");
    std::fs::write(f.secrets().join("api.json"), sops_json_file(&old)).expect("write");
    assert_eq!(codes(&f), vec!["secret-missing-recipient"; 2]);
    let cfg = SopsConfig::load(&f.config()).expect("config");
    let report = f.sops().updatekeys(&secrets::secret_files(&cfg));
    assert!(report.is_success(), "{report:?}");
    assert_eq!(codes(&f), Vec::<&str>::new());
    // The db host's real identity opens the data key in both formats.
    let env = std::fs::read_to_string(f.secrets().join("app.env")).expect("read");
    let meta = secrets::metadata::parse(&env, secrets::metadata::Format::Dotenv).expect("meta");
    let i = meta.groups[0]
        .iter()
        .position(|r| r == &f.db.recipient)
        .expect("db listed");
    let enc = env
        .lines()
        .find_map(|l| l.strip_prefix(&format!("sops_age__list_{i}__map_enc=")))
        .expect("enc line")
        .replace("\\n", "\n");
    assert_eq!(age_decrypt(&f.db.file, &enc).as_deref(), Some(DATA_KEY));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(f.secrets().join("api.json")).expect("read"))
            .expect("json");
    let stanza = json["sops"]["age"]
        .as_array()
        .expect("age")
        .iter()
        .find(|k| k["recipient"] == f.db.recipient.as_str())
        .expect("db stanza")["enc"]
        .as_str()
        .expect("enc")
        .to_string();
    assert_eq!(age_decrypt(&f.db.file, &stanza).as_deref(), Some(DATA_KEY));
    assert_eq!(
        json["token"], "ENC[AES256_GCM,data:abc=,iv:def=,tag:ghi=,type:str]",
        "values untouched"
    );
}

#[test]
fn flat_rules_first_match_wins_and_no_match_is_sops_error() {
    with_sops_standin!(flat_rules_first_match_wins_and_no_match_is_sops_error);
    let f = fleet_missing_db(0);
    // Flat `age` keys (a comma-separated string, and an inline list with an
    // alias), no key_groups; the first matching rule wins.
    std::fs::write(
        f.config(),
        format!(
            "keys:\n  - &db {db}\ncreation_rules:\n  - path_regex: ^db\\.yaml$\n    age: [{admin}, *db]\n  - path_regex: ^web\n    age: '{admin},{web}'\n",
            db = f.db.recipient,
            admin = f.admin.recipient,
            web = f.web.recipient
        ),
    )
    .expect("write");
    std::fs::remove_file(f.secrets().join("hosts/web/tls.yaml")).expect("rm");
    let only_admin = [f.admin.recipient.as_str()];
    for name in ["db.yaml", "web.yaml", "other.yaml"] {
        std::fs::write(f.secrets().join(name), sops_yaml_file(&only_admin)).expect("write");
    }
    let cfg = SopsConfig::load(&f.config()).expect("config");
    let files = secrets::secret_files(&cfg);
    let names: Vec<_> = files.iter().filter_map(|p| p.file_name()).collect();
    assert_eq!(
        names,
        ["db.yaml", "web.yaml"],
        "other.yaml matches no rule: not a secret file to re-key"
    );
    assert_eq!(codes(&f), vec!["secret-missing-recipient"; 2]);
    let report = f.sops().updatekeys(&files);
    assert!(report.is_success(), "{report:?}");
    assert_eq!(codes(&f), Vec::<&str>::new());
    let db = std::fs::read_to_string(f.secrets().join("db.yaml")).expect("read");
    assert_eq!(
        yaml_recipients(&db),
        [f.admin.recipient.as_str(), &f.db.recipient]
    );
    let web = std::fs::read_to_string(f.secrets().join("web.yaml")).expect("read");
    assert_eq!(
        yaml_recipients(&web),
        [f.admin.recipient.as_str(), &f.web.recipient]
    );
    // Asked anyway, sops refuses a file no rule matches, with its own words.
    let report = f.sops().updatekeys(&[f.secrets().join("other.yaml")]);
    assert_eq!(report.failed.len(), 1);
    assert!(
        report.failed[0]
            .1
            .contains("no matching creation rules found"),
        "{report:?}"
    );
}
