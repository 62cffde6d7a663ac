//! `pve key to-age` and the ssh-to-age conversion: every verified vector of
//! tests/data/ssh-to-age, the key files, and round trips through Debian's
//! real `age`, `age-keygen` and `ssh-keygen`.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use crate::support::{stderr, stdout};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use std::io::Write as _;

use pve_fleet::keys;

fn data(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/ssh-to-age")
        .join(p)
}

fn pve(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pve"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run pve");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait")
}

/// (ssh key line, expected recipient) from a TSV with a header.
fn vectors(file: &str) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(data(file)).expect("vectors");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split('\t').collect();
    let key = header
        .iter()
        .position(|h| *h == "ssh_ed25519_pubkey")
        .expect("key col");
    let rec = header
        .iter()
        .position(|h| *h == "age_recipient")
        .expect("recipient col");
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[key].to_string(), f[rec].to_string())
        })
        .collect()
}

#[test]
fn every_published_vector_converts_exactly() {
    let mut all = vectors("vectors.tsv");
    assert_eq!(all.len(), 42, "vectors.tsv holds 42 verified pairs");
    let fleet = vectors("origin-fleet-vectors.tsv");
    assert_eq!(fleet.len(), 9);
    all.extend(fleet);
    for (key, want) in &all {
        assert_eq!(&keys::ssh_to_age(key).expect(key), want, "{key}");
    }
    // The same through the CLI, one line per key on stdin.
    let input: String = all.iter().map(|(k, _)| format!("{k}\n")).collect();
    let o = pve(&["key", "to-age"], &input);
    assert!(o.status.success(), "{}", stderr(&o));
    let want: String = all.iter().map(|(_, r)| format!("{r}\n")).collect();
    assert_eq!(stdout(&o), want);
}

#[test]
fn key_line_argument_and_known_hosts_lines() {
    let o = pve(
        &[
            "key",
            "to-age",
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOHz+U0YtjINc54dZiJNclfmEFifF7RXCFlNlTbuZBji joerg@turingmachine",
        ],
        "",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "age17044m9wgakla6pzftf4srtl3h5mcsr85jysgt5fg23zpnta8sfdqhzn452\n"
    );
    // ssh-keyscan output: host first, other key types skipped with a note,
    // comments and blank lines ignored.
    let scan = "# eve.thalheim.io:22 SSH-2.0-OpenSSH\n\
eve.thalheim.io ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7\n\
eve.thalheim.io ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIF/KPU3Z5LSjbBI6hrq25wCcseq2UpqSzUFZRr+ux6LM\n\
\n\
eva.thalheim.io ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTY=\n\
eva.thalheim.io ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIL2vjdqpppuCn7yPdF2muINriAG7zBWrsELKpPWkhn5\n";
    let o = pve(&["key", "to-age"], scan);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "age1hjm3aujg9e79f5yth8a2cejzdjg5n9vnu96l05p70uvfpeltnpms7yy3pp\nage1v8zjc47jmlqwefyu66s0d4ke98qr4vnuj3cpvs4z9npfdw833dxqwjrhzv\n"
    );
    assert!(
        stderr(&o).contains("skipped line 2: ssh-rsa"),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("skipped line 5: ecdsa-sha2-nistp256"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn bad_public_keys_fail_clearly() {
    let cases: &[(&str, &str)] = &[
        (
            "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 me@host",
            "ssh-rsa keys are not supported",
        ),
        ("ssh-ed25519 AAAA!!!!notbase64", "not valid base64"),
        (
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAHwAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            "32 bytes, this one is 31",
        ),
        (
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "not a valid Ed25519 point",
        ),
        (
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "small-order",
        ),
        ("hello world", "no key type"),
    ];
    for (line, want) in cases {
        let o = pve(&["key", "to-age", line], "");
        assert_eq!(o.status.code(), Some(2), "{line}: {}", stderr(&o));
        assert!(stderr(&o).contains(want), "{line}: {}", stderr(&o));
        assert!(stdout(&o).is_empty());
    }
    // On stdin, a corrupt line names its number; only RSA/ECDSA are skipped.
    let o = pve(
        &["key", "to-age"],
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOHz+U0YtjINc54dZiJNclfmEFifF7RXCFlNlTbuZBji\nssh-ed25519 AAAA%%%\n",
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("stdin line 2"), "{}", stderr(&o));
    let o = pve(
        &["key", "to-age"],
        "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7\n",
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no ssh-ed25519 key"), "{}", stderr(&o));
}

const README_SECRET: &str =
    "AGE-SECRET-KEY-1K3VN4N03PTHJWSJSCCMQCN33RY5FSKQPJ4KRRTG3JMQUYE0TUSEQEDH6V8";

#[test]
fn private_key_files_convert_exactly() {
    let f = data("keys/id_ed25519");
    let o = pve(&["key", "to-age", "--private", f.to_str().unwrap()], "");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), format!("{README_SECRET}\n"));
    // Not the clamped form.
    assert!(!stdout(&o).contains("AGE-SECRET-KEY-1KPVN4N03"));

    let f = data("keys/sopsnix-ssh-ed25519-key");
    let o = pve(
        &["key", "to-age", "--private", "-"],
        &std::fs::read_to_string(f).unwrap(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "AGE-SECRET-KEY-1D88T3T22862F5SWX0V7M7CG9Q5T9FA90CCN9NVLJRCQATZ3WGL3QMR7CN4\n"
    );

    // The .pub files convert to the recipients the README lists.
    for (pubfile, want) in [
        (
            "keys/id_ed25519.pub",
            "age17044m9wgakla6pzftf4srtl3h5mcsr85jysgt5fg23zpnta8sfdqhzn452",
        ),
        (
            "keys/id_ed25519_passphrase.pub",
            "age1pa3t6c94xl4z6k02rt0lw2za7e7tdjsse46xjh8y7tluy59qu5tqaqgauq",
        ),
        (
            "keys/sopsnix-ssh-ed25519-key.pub",
            "age1a8pk4akrdamj7nvqy3zywgtny8dxz7t5xzu7u8v9mhrayp9freqsqatyrs",
        ),
    ] {
        let line = std::fs::read_to_string(data(pubfile)).unwrap();
        assert_eq!(keys::ssh_to_age(line.trim()).unwrap(), want, "{pubfile}");
    }
}

#[test]
fn encrypted_private_key_needs_its_passphrase() {
    let f = data("keys/id_ed25519_passphrase");
    let fs = f.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();

    // No passphrase and no terminal: a clear error, nothing printed.
    let o = pve(&["key", "to-age", "--private", fs], "");
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("passphrase protected"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("--passphrase-file"), "{}", stderr(&o));
    assert!(stdout(&o).is_empty());

    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "nottest\n").unwrap();
    let o = pve(
        &[
            "key",
            "to-age",
            "--private",
            fs,
            "--passphrase-file",
            wrong.to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("wrong passphrase"), "{}", stderr(&o));
    assert!(
        !stderr(&o).contains("nottest"),
        "the passphrase is never echoed"
    );

    let right = dir.path().join("right");
    std::fs::write(&right, "test\n").unwrap();
    let o = pve(
        &[
            "key",
            "to-age",
            "--private",
            fs,
            "--passphrase-file",
            right.to_str().unwrap(),
        ],
        "",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "AGE-SECRET-KEY-1EJQ0DZ679RZ4MF6KDC8L8F327SHUULYD5XP53C08ZHYT0KQLNWJQHG7X8P\n"
    );
}

#[test]
fn private_key_errors_never_echo_key_material() {
    let dir = tempfile::tempdir().unwrap();
    let key = std::fs::read_to_string(data("keys/id_ed25519")).unwrap();
    // Damage the body: flip base64 characters in the middle.
    let lines: Vec<&str> = key.lines().collect();
    let mut damaged = lines.clone();
    let body = lines[3].replace('A', "#");
    damaged[3] = &body;
    let p = dir.path().join("damaged");
    std::fs::write(&p, damaged.join("\n")).unwrap();
    let o = pve(&["key", "to-age", "--private", p.to_str().unwrap()], "");
    assert_eq!(o.status.code(), Some(2));
    for l in &lines[1..lines.len() - 1] {
        assert!(
            !stderr(&o).contains(&l[..20]),
            "key material in: {}",
            stderr(&o)
        );
    }
    // An RSA PEM key.
    let rsa = dir.path().join("rsa");
    std::fs::write(&rsa, "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEAsecretbits\n-----END RSA PRIVATE KEY-----\n").unwrap();
    let o = pve(&["key", "to-age", "--private", rsa.to_str().unwrap()], "");
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("RSA keys are not supported"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("secretbits"));
}

fn have(tool: &str) -> bool {
    Command::new(tool).arg("--help").output().is_ok()
}

fn run_ok(cmd: &mut Command) -> Vec<u8> {
    let o = cmd.output().expect("run");
    assert!(
        o.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

/// With Debian's age: a file encrypted to the derived recipient decrypts
/// with the derived identity, and `age-keygen -y identity` gives the
/// derived recipient — for the published key and for fresh ssh-keygen keys
/// (one of them passphrase protected).
#[test]
fn derived_keys_work_with_real_age() {
    assert!(
        have("age") && have("age-keygen"),
        "age must be installed (Debian package `age`)"
    );
    let dir = tempfile::tempdir().unwrap();
    let mut cases: Vec<(PathBuf, Option<&str>)> = vec![(data("keys/id_ed25519"), None)];
    if have("ssh-keygen") {
        for (i, pass, cipher) in [
            ("plain", "", None),
            ("ctr", "s3cret pass", None),
            ("cbc", "s3cret pass", Some("aes256-cbc")),
        ] {
            let p = dir.path().join(format!("k_{i}"));
            let mut cmd = Command::new("ssh-keygen");
            cmd.args(["-q", "-t", "ed25519", "-N", pass, "-C", ""]);
            if let Some(c) = cipher {
                cmd.args(["-Z", c]);
            }
            run_ok(cmd.arg("-f").arg(&p));
            cases.push((p, (!pass.is_empty()).then_some(pass)));
        }
    }
    for (i, (key, pass)) in cases.iter().enumerate() {
        let pem = std::fs::read_to_string(key).unwrap();
        let publine = match key.with_extension("pub").exists() {
            true => std::fs::read_to_string(key.with_extension("pub")).unwrap(),
            false => std::fs::read_to_string(format!("{}.pub", key.display())).unwrap(),
        };
        let recipient = keys::ssh_to_age(publine.trim()).unwrap();
        let identity = keys::private_key_to_age(&pem, pass.map(str::as_bytes)).unwrap();
        let id_file = dir.path().join(format!("id{i}.txt"));
        std::fs::write(&id_file, format!("{}\n", identity.as_str())).unwrap();

        let derived = run_ok(Command::new("age-keygen").arg("-y").arg(&id_file));
        assert_eq!(
            String::from_utf8_lossy(&derived).trim(),
            recipient,
            "{}",
            key.display()
        );

        let plain = dir.path().join(format!("plain{i}"));
        std::fs::write(&plain, b"the sops data key").unwrap();
        let enc = dir.path().join(format!("enc{i}.age"));
        run_ok(
            Command::new("age")
                .args(["-r", &recipient, "-o"])
                .arg(&enc)
                .arg(&plain),
        );
        let dec = run_ok(
            Command::new("age")
                .arg("-d")
                .arg("-i")
                .arg(&id_file)
                .arg(&enc),
        );
        assert_eq!(dec, b"the sops data key");
    }
}

/// A cipher ssh-to-age cannot read either is refused by name.
#[test]
fn unsupported_cipher_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("k");
    run_ok(
        Command::new("ssh-keygen")
            .args([
                "-q",
                "-t",
                "ed25519",
                "-N",
                "pw",
                "-Z",
                "chacha20-poly1305@openssh.com",
                "-f",
            ])
            .arg(&p),
    );
    let pass = dir.path().join("pass");
    std::fs::write(&pass, "pw\n").unwrap();
    let o = pve(
        &[
            "key",
            "to-age",
            "--private",
            p.to_str().unwrap(),
            "--passphrase-file",
            pass.to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("encrypted with `chacha20-poly1305@openssh.com`"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("ssh-keygen -p"), "{}", stderr(&o));
}

/// The sops-nix test file has an age stanza for the recipient derived from
/// its host key: our identity must decrypt it with the real `age`.
#[test]
fn derived_identity_decrypts_the_sops_nix_stanza() {
    let yaml = std::fs::read_to_string(data("keys/sopsnix-secrets.yaml")).unwrap();
    let recipient = "age1a8pk4akrdamj7nvqy3zywgtny8dxz7t5xzu7u8v9mhrayp9freqsqatyrs";
    let start = yaml.find(recipient).expect("stanza for the recipient");
    let rest = &yaml[start..];
    let b = rest.find("-----BEGIN AGE ENCRYPTED FILE-----").unwrap();
    let e = rest.find("-----END AGE ENCRYPTED FILE-----").unwrap()
        + "-----END AGE ENCRYPTED FILE-----".len();
    let armored: String = rest[b..e]
        .lines()
        .map(|l| format!("{}\n", l.trim()))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let enc = dir.path().join("stanza.age");
    std::fs::write(&enc, armored).unwrap();
    let pem = std::fs::read_to_string(data("keys/sopsnix-ssh-ed25519-key")).unwrap();
    let id = dir.path().join("id.txt");
    std::fs::write(
        &id,
        format!(
            "{}\n",
            keys::private_key_to_age(&pem, None).unwrap().as_str()
        ),
    )
    .unwrap();
    let key = run_ok(Command::new("age").arg("-d").arg("-i").arg(&id).arg(&enc));
    assert_eq!(key.len(), 32, "the sops data key is 32 bytes");
}

/// RSA and ECDSA keys in OpenSSH's own format are named and refused.
#[test]
fn rsa_and_ecdsa_private_keys_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (t, bits, want) in [
        ("rsa", "2048", "ssh-rsa keys are not supported"),
        ("ecdsa", "256", "ecdsa-sha2-nistp256 keys are not supported"),
    ] {
        let p = dir.path().join(t);
        run_ok(
            Command::new("ssh-keygen")
                .args(["-q", "-t", t, "-b", bits, "-N", "", "-f"])
                .arg(&p),
        );
        let o = pve(&["key", "to-age", "--private", p.to_str().unwrap()], "");
        assert_eq!(o.status.code(), Some(2), "{t}");
        assert!(stderr(&o).contains(want), "{t}: {}", stderr(&o));
        let pubkey = std::fs::read_to_string(format!("{}.pub", p.display())).unwrap();
        let o = pve(&["key", "to-age", pubkey.trim()], "");
        assert_eq!(o.status.code(), Some(2), "{t}");
        assert!(stderr(&o).contains(want), "{t}: {}", stderr(&o));
    }
}
