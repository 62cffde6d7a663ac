//! `pve check` on the example fleet with one mistake written in: the
//! edit, the JSON findings, and where a finding must point (line and
//! column found here, independently of the tool).

use serde_json::Value as Json;

use super::{example_fleet, pve, stderr, stdout};

/// The example fleet with each `(from, to)` replaced in hosts.nix (each
/// `from` must occur once); returns the fleet and the new hosts.nix.
pub fn edited_example(edits: &[(&str, &str)]) -> (tempfile::TempDir, String) {
    let fleet = example_fleet();
    let path = fleet.path().join("hosts.nix");
    let mut text = std::fs::read_to_string(&path).expect("read");
    for (from, to) in edits {
        assert_eq!(
            text.matches(from).count(),
            1,
            "fixture text {from:?} must occur once"
        );
        text = text.replacen(from, to, 1);
    }
    std::fs::write(&path, &text).expect("write");
    (fleet, text)
}

/// `pve check --format json EXTRA`: (exit code, findings).
pub fn check_json(fleet: &tempfile::TempDir, extra: &[&str]) -> (i32, Vec<Json>) {
    let mut args = vec!["check", "--format", "json"];
    args.extend_from_slice(extra);
    let out = pve(fleet.path(), &args);
    let findings: Vec<Json> = serde_json::from_str(&stdout(&out))
        .unwrap_or_else(|e| panic!("json: {e}\n{}", stderr(&out)));
    (out.status.code().unwrap_or(-1), findings)
}

/// The 1-based (line, column) of the `nth` occurrence of `needle` in
/// `text`.
pub fn position(text: &str, needle: &str, nth: usize) -> (u64, u64) {
    let offset = text
        .match_indices(needle)
        .nth(nth)
        .unwrap_or_else(|| panic!("{needle:?} #{nth} not in file"))
        .0;
    let line = text[..offset].matches('\n').count() as u64 + 1;
    let col = text[..offset]
        .rsplit('\n')
        .next()
        .map_or(0, |l| l.chars().count()) as u64
        + 1;
    (line, col)
}
