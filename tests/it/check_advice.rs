//! `pve check`'s advice on typos, wrong types and syntax errors (issue 14,
//! items 4 and 5): one finding per mistake, at the mistake, with a fix
//! that fits the key; syntax errors in plain words. Each case is checked
//! through `--format json` (codes and positions, computed here from the
//! edited text) and, for what a person reads, a golden snapshot.

use serde_json::Value as Json;

use crate::support::{example_fleet, out, pve};

/// `pve check ARGS` on the example fleet with its hosts.nix replaced by
/// `text`: (exit code, stdout, stderr), the temp folder shown as [FLEET].
fn check_text(text: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let fleet = example_fleet();
    std::fs::write(fleet.path().join("hosts.nix"), text).expect("write");
    let mut all = vec!["check"];
    all.extend_from_slice(args);
    let o = pve(fleet.path(), &all);
    let (stdout, stderr) = out(&o);
    let at = fleet.path().display().to_string();
    (
        o.status.code(),
        stdout.replace(&at, "[FLEET]"),
        stderr.replace(&at, "[FLEET]"),
    )
}

/// The example fleet's hosts.nix with each `(from, to)` applied once.
fn edited(edits: &[(&str, &str)]) -> String {
    let mut text = std::fs::read_to_string(crate::support::repo_root().join("hosts.nix"))
        .expect("read hosts.nix");
    for (from, to) in edits {
        assert!(text.contains(from), "{from:?} not in hosts.nix");
        text = text.replacen(from, to, 1);
    }
    text
}

/// The JSON findings of `pve check --format json`, and its exit code.
fn findings(text: &str) -> (Option<i32>, Vec<Json>) {
    let (code, stdout, stderr) = check_text(text, &["--format", "json"]);
    let json: Json = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{stdout}\nstderr:\n{stderr}"));
    (code, json.as_array().expect("an array").clone())
}

/// 1-based (line, column) of the first `needle` in `text`, counted here.
fn position_of(text: &str, needle: &str) -> (u64, u64) {
    let offset = text.find(needle).expect("needle in text");
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line as u64, column as u64)
}

fn at(f: &Json) -> (u64, u64) {
    (f["line"].as_u64().unwrap(), f["column"].as_u64().unwrap())
}

fn codes(fs: &[Json]) -> Vec<&str> {
    fs.iter().map(|f| f["code"].as_str().unwrap()).collect()
}

fn human(text: &str) -> String {
    let (code, stdout, stderr) = check_text(text, &[]);
    format!("exit code: {code:?}\n--- stdout\n{stdout}--- stderr\n{stderr}")
}

#[test]
fn misspelled_host_keys_and_settings_get_a_did_you_mean_warning() {
    let text = edited(&[
        ("sshAlias = \"sbx\"", "sshAlais = \"sbx\""),
        ("_sops = {", "_sosp = {"),
        (
            "    user = \"admin\";\n",
            "    deployment = \"far from any key\";\n",
        ),
    ]);
    let (code, fs) = findings(&text);
    assert_eq!(codes(&fs), ["misspelled-key", "misspelled-key"], "{fs:#?}");
    assert_eq!(at(&fs[0]), position_of(&text, "_sosp"));
    assert_eq!(at(&fs[1]), position_of(&text, "sshAlais"));
    assert!(fs.iter().all(|f| f["severity"] == "warning"));
    assert!(fs[1]["help"].as_str().unwrap().contains("`sshAlias`"));
    // Warnings only: the check passes, and fails with --strict.
    assert_eq!(code, Some(0));
    let (strict, _, _) = check_text(&text, &["--strict"]);
    assert_eq!(strict, Some(1));
    insta::assert_snapshot!(human(&text));
}

#[test]
fn a_misspelled_required_key_is_one_error() {
    for (typo, meant) in [("vmdi = 111;", "vmid"), ("corse = 4;", "cores")] {
        let from = if meant == "vmid" {
            "vmid = 111;"
        } else {
            "cores = 4;"
        };
        let text = edited(&[(from, typo)]);
        let (code, fs) = findings(&text);
        assert_eq!(code, Some(1));
        assert_eq!(codes(&fs), ["unknown-key"], "{typo}: {fs:#?}");
        assert_eq!(fs[0]["severity"], "error");
        assert_eq!(at(&fs[0]), position_of(&text, typo));
        let help = fs[0]["help"].as_str().unwrap();
        assert!(help.contains(&format!("`{meant}`")), "{help}");
    }
    insta::assert_snapshot!(human(&edited(&[("vmid = 111;", "vmdi = 111;")])));
}

#[test]
fn a_wrong_type_is_one_error_at_the_value_with_a_value_for_that_key() {
    let text = edited(&[
        ("cores = 4;", "cores = \"four\";"),
        ("memory = 8192;", "memory = true;"),
        ("memory = 16384;", "memory = \"16G\";"),
        ("tags = [ \"sandbox\" \"nixos\" ];", "tags = \"sandbox\";"),
    ]);
    let (code, fs) = findings(&text);
    assert_eq!(code, Some(1));
    assert_eq!(codes(&fs), ["wrong-type"; 4], "{fs:#?}");
    let expect = [
        ("\"four\"", "`cores = 2;`"),
        ("true;\n      disk", "`memory = 8192;`"),
        ("\"sandbox\";\n      description", "`tags = [ \"web\" ];`"),
        ("\"16G\"", "`memory = 8192;`"),
    ];
    for (f, (value, help)) in fs.iter().zip(expect) {
        assert_eq!(at(f), position_of(&text, value), "{f:#}");
        assert!(f["help"].as_str().unwrap().contains(help), "{f:#}");
    }
    insta::assert_snapshot!(human(&text));
}

/// Broken files: (name, text, where the error must point, words it must
/// say). Every message is checked for parser jargon.
const SYNTAX: &[(&str, &str, &str, &str)] = &[
    (
        "missing-semicolon",
        "{\n  a = 1\n}\n",
        "}",
        "expected `;`, found `}`",
    ),
    (
        "missing-value",
        "{\n  a = ;\n}\n",
        ";",
        "expected a value, found `;`",
    ),
    (
        "number-as-name",
        "{\n  1 = 2;\n}\n",
        "1 =",
        "expected an attribute name",
    ),
    (
        "double-semicolon",
        "{\n  a = 1;;\n}\n",
        ";\n",
        "expected an attribute name",
    ),
    ("colon", "{\n  a: 1;\n}\n", ":", "expected `=`, found `:`"),
    (
        "unterminated-string",
        "{\n  a = \"x;\n  b = 1;\n}\n",
        "\"x",
        "string is never closed",
    ),
    (
        "unterminated-indented",
        "{\n  a = ''x;\n  b = 1;\n}\n",
        "''",
        "string is never closed",
    ),
    (
        "unclosed-interpolation",
        "{\n  a = \"${b\";\n}\n",
        "${",
        "`${` is never closed",
    ),
    (
        "unclosed-brace",
        "{\n  a = { b = 1; };\n",
        "",
        "the file ends",
    ),
    ("extra-bracket", "{\n  a = 1;\n}\n]\n", "]", "after the end"),
    (
        "byte-order-mark",
        "\u{feff}{\n  a = 1;\n}\n",
        "\u{feff}",
        "byte-order mark",
    ),
];

#[test]
fn syntax_errors_are_in_plain_words_where_the_mistake_is() {
    for (name, text, needle, words) in SYNTAX {
        let (code, fs) = findings(text);
        assert_eq!(code, Some(2), "{name}");
        assert_eq!(codes(&fs), ["syntax"], "{name}");
        let expected = if needle.is_empty() {
            // The end of the file: the line after the last line break.
            (text.matches('\n').count() as u64 + 1, 1)
        } else {
            position_of(text, needle)
        };
        assert_eq!(at(&fs[0]), expected, "{name}");
        let message = fs[0]["message"].as_str().unwrap();
        let help = fs[0]["help"].as_str().unwrap_or("");
        assert!(message.contains(words), "{name}: {message}");
        for jargon in ["interpol", "cur pos", "or or", "token", "node", "EOF"] {
            assert!(
                !message.contains(jargon) && !help.contains(jargon),
                "{name}: {jargon:?} in {message} / {help}"
            );
        }
    }
}

#[test]
fn syntax_errors_read_like_this() {
    for name in ["unterminated-string", "unclosed-brace", "byte-order-mark"] {
        let (_, text, _, _) = SYNTAX.iter().find(|c| c.0 == name).unwrap();
        insta::assert_snapshot!(format!("syntax_{name}"), human(text));
    }
}

#[test]
fn json_format_reports_syntax_and_eval_errors_on_stdout() {
    let (code, stdout, stderr) = check_text("{\n  a = \"x;\n}\n", &["--format", "json"]);
    assert_eq!(code, Some(2));
    assert_eq!(stderr, "", "nothing on stderr");
    let fs: Json = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(fs[0]["code"], "syntax");
    assert_eq!(fs[0]["file"], "[FLEET]/hosts.nix");
    assert_eq!(
        (fs[0]["line"].as_u64(), fs[0]["column"].as_u64()),
        (Some(2), Some(7))
    );

    let (code, fs) = findings("{\n  a = undefinedName;\n}\n");
    assert_eq!(code, Some(2));
    assert_eq!(codes(&fs), ["eval"]);
    assert!(fs[0]["message"].as_str().unwrap().contains("undefinedName"));
    assert_eq!(at(&fs[0]), (2, 7));
}
