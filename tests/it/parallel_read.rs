//! The read of hosts.nix on two threads (src/fleet/split.rs) against the
//! serial read: wherever a cut is accepted, the value (spans included), the
//! typed fleet and its diagnostics are the serial read's exactly; where the
//! serial read refuses the file, no cut is accepted (so the serial read,
//! and its diagnostic, is what the user sees).

use std::path::Path;
use std::sync::OnceLock;

use proptest::prelude::*;
use proptest::sample::Index;

use crate::support::{nix_eval, repo_root};
use pve_fleet::fleet::{
    load_source, load_text_serially, load_text_split_at, load_text_split_at_cuts, split,
    SourceFile, Value,
};

type Read = (
    Value,
    pve_fleet::fleet::Fleet,
    Vec<pve_fleet::diag::Diagnostic>,
);

/// Fleet and diagnostics have no `PartialEq`: compared as printed.
fn same_read(a: &Read, b: &Read) -> bool {
    a.0 == b.0
        && format!("{:?}", a.1) == format!("{:?}", b.1)
        && format!("{:?}", a.2) == format!("{:?}", b.2)
}

/// Tries every cut in `cuts`; returns how many were accepted. Panics when
/// an accepted cut reads differently from the serial read, or when the
/// serial read refuses the file and a cut is accepted.
fn check_cuts(text: &str, base: &Path, cuts: impl Iterator<Item = usize>) -> usize {
    check_cut_sets(text, base, cuts.map(|cut| vec![cut]))
}

/// [`check_cuts`] for reads cut at several places: each item of `sets` is
/// one read's cuts, in order.
fn check_cut_sets(text: &str, base: &Path, sets: impl Iterator<Item = Vec<usize>>) -> usize {
    let serial = load_text_serially(text, base);
    let mut accepted = 0;
    for cuts in sets {
        let parallel = match cuts.as_slice() {
            // The entry point for one cut, as the older tests call it.
            [cut] => load_text_split_at(text, base, *cut),
            _ => load_text_split_at_cuts(text, base, &cuts),
        };
        let Some(parallel) = parallel else {
            continue;
        };
        match &serial {
            Ok(s) => assert!(
                same_read(s, &parallel),
                "cuts at {cuts:?} read differently:\n{text}"
            ),
            Err(d) => panic!(
                "cuts at {cuts:?} accepted a file the serial read refuses ({}):\n{text}",
                d.message
            ),
        }
        accepted += 1;
    }
    accepted
}

fn line_starts(text: &str) -> impl Iterator<Item = usize> + '_ {
    std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1))
}

fn every_offset(text: &str) -> impl Iterator<Item = usize> + '_ {
    (0..=text.len()).filter(|&i| text.is_char_boundary(i))
}

fn generated(shape: &str, hosts: usize) -> (tempfile::TempDir, String) {
    generated_with(shape, hosts, &[])
}

/// [`generated`] with more options for scripts/gen-fleet.
fn generated_with(shape: &str, hosts: usize, options: &[&str]) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let status = std::process::Command::new("python3")
        .arg(repo_root().join("scripts/gen-fleet"))
        .args(options)
        .args(["--shape", shape, &hosts.to_string()])
        .arg(dir.path())
        .status()
        .expect("run scripts/gen-fleet");
    assert!(status.success(), "gen-fleet failed");
    let text = std::fs::read_to_string(dir.path().join("hosts.nix")).expect("hosts.nix");
    (dir, text)
}

const SHAPES: &[&str] = &[
    "classic",
    "paths-let-line",
    "paths-let-spread",
    "paths-nolet-line",
    "paths-nolet-spread",
    "nopaths-let-line",
    "nopaths-let-spread",
    "nopaths-nolet-line",
    "nopaths-nolet-spread",
    "chain",
    "attrpath",
    "longlist",
];

#[test]
fn every_line_cut_of_every_generated_shape_reads_as_serially() {
    for shape in SHAPES {
        let (dir, text) = generated(shape, 12);
        let accepted = check_cuts(&text, dir.path(), line_starts(&text));
        // Between any two hosts (and the settings) at least.
        assert!(accepted >= 10, "{shape}: only {accepted} cuts accepted");
    }
}

#[test]
fn large_generated_fleets_are_planned_and_read_as_serially() {
    for shape in SHAPES {
        let (dir, text) = generated(shape, 400);
        assert!(text.len() >= split::MIN_PARALLEL_BYTES, "{shape} too small");
        let plan = split::plan(&text).unwrap_or_else(|| panic!("{shape}: no plan"));
        assert_eq!(
            check_cut_sets(&text, dir.path(), [plan.cuts].into_iter()),
            1,
            "{shape}"
        );
        // In as many parts as a large fleet, each thread taking several.
        let many = split::plan_in(&text, split::MAX_PARTS).expect("planned");
        assert!(many.cuts.len() >= split::MAX_PARTS / 2, "{shape}: {many:?}");
        assert_eq!(
            check_cut_sets(&text, dir.path(), [many.cuts].into_iter()),
            1,
            "{shape}"
        );
        // And through the public entry point, which decides for itself.
        let file = SourceFile::new(dir.path().join("hosts.nix"), text.clone());
        let loaded = load_source(file).expect("loads");
        let serial = load_text_serially(&text, dir.path()).expect("serial");
        let read = (loaded.value, loaded.fleet, loaded.diagnostics);
        assert!(same_read(&read, &serial), "{shape}");
    }
}

#[test]
fn every_line_cut_of_the_repo_fixtures_reads_as_serially() {
    let mut files = vec![repo_root().join("hosts.nix")];
    for dir in ["tests/fixtures/eval", "tests/fixtures/eval-errors"] {
        let mut more: Vec<_> = std::fs::read_dir(repo_root().join(dir))
            .expect("fixtures")
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "nix"))
            .collect();
        more.sort();
        files.extend(more);
    }
    let mut accepted = 0;
    for f in &files {
        let text = std::fs::read_to_string(f).expect("fixture");
        let base = f.parent().expect("folder");
        accepted += check_cuts(&text, base, line_starts(&text));
    }
    assert!(
        accepted >= 20,
        "only {accepted} cuts accepted in the fixtures"
    );
}

/// `;` `{` `}` `''` `${` in comments and strings, a `let` the hosts read,
/// `inherit`, attribute paths, quoted names.
const TRICKY: &str = r#"# a comment with ; { } '' ${ in it
let
  site = "fra;{";
  keys = [ "k1" ''k2 ; } '' ];
  base = { cores = 2; };
in
{
  /* a block comment ; } { */
  a = { name = "a;}{"; s = "${site}-a"; inherit keys; };
  "b;c" = { x = ''
    text ; } { ''${ not interpolated
    ${site} }
  ''; };
  c.d = 1; c.e = base // { cores = 3; };
  d = [ "}" "{" ";" ]; # ; } trailing
  inherit site;
  e = if base.cores == 2 then "two" else ''x''; f = base.cores + 1;
}
"#;

#[test]
fn every_offset_of_tricky_text_reads_as_serially() {
    let dir = tempfile::tempdir().expect("tempdir");
    let accepted = check_cuts(TRICKY, dir.path(), every_offset(TRICKY));
    assert!(accepted >= 6, "only {accepted} cuts accepted");
}

#[test]
fn tricky_text_read_in_parts_is_what_nix_evaluates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("hosts.nix");
    std::fs::write(&file, TRICKY).expect("write");
    let nix: serde_json::Value =
        serde_json::from_str(&nix_eval(&file).expect("nix evaluates it")).expect("json");
    let cut = TRICKY.find("  d = [").expect("line");
    let (value, ..) = load_text_split_at(TRICKY, dir.path(), cut).expect("cut accepted");
    let ours: serde_json::Value =
        serde_json::from_str(&value.to_nix_json(dir.path())).expect("json");
    assert_eq!(ours, nix);
}

#[test]
fn a_rec_top_set_is_never_cut() {
    let text = "rec {\n  a = 1;\n  b = a + 1;\n  c = b;\n}\n";
    let dir = tempfile::tempdir().expect("tempdir");
    assert_eq!(check_cuts(text, dir.path(), every_offset(text)), 0);
    let text = "let x = 1; in rec {\n  a = x;\n  b = a;\n}\n";
    assert_eq!(check_cuts(text, dir.path(), every_offset(text)), 0);
}

/// Files the serial read refuses are never accepted in parts: a duplicate
/// host in the two parts, an error in one part, an undefined variable.
#[test]
fn refused_files_are_never_accepted_in_parts() {
    let dir = tempfile::tempdir().expect("tempdir");
    for text in [
        "{\n  a = 1;\n  b = 2;\n  a = 3;\n}\n",
        "{\n  a.x = 1;\n  b = 2;\n  a = 3;\n}\n",
        "let k = 1; in {\n  a = k;\n  b = 1 + \"s\";\n  c = k;\n}\n",
        "{\n  a = 1;\n  b = nope;\n  c = 2;\n}\n",
        "{\n  a = 1;\n  b = { x = 1 / 0; };\n  c = 2;\n}\n",
    ] {
        let serial = load_text_serially(text, dir.path());
        assert!(serial.is_err(), "serial read accepts {text}");
        assert_eq!(check_cuts(text, dir.path(), every_offset(text)), 0);
    }
}

/// Sets that Nix merges across the two parts (`a.x`, later `a.y`; two
/// set literals for `a`) are left to the serial read, which merges them.
#[test]
fn a_set_merged_across_the_parts_is_read_serially() {
    let dir = tempfile::tempdir().expect("tempdir");
    for text in [
        "{\n  a.x = 1;\n  b = 2;\n  a.y = 3;\n}\n",
        "{\n  a = { x = 1; };\n  b = 2;\n  a = { y = 3; };\n}\n",
    ] {
        let cut = text.find("  b").expect("line");
        assert!(load_text_split_at(text, dir.path(), cut).is_none());
        let serial = load_text_serially(text, dir.path()).expect("merges");
        let a = serial.0.as_attrs().and_then(|s| s.get("a")).expect("a");
        assert_eq!(a.value.as_attrs().map(|s| s.len()), Some(2));
    }
}

/// Each part within the evaluation budget, both together over it: the
/// serial read refuses the file, so the parts must not accept it.
#[test]
fn budgets_of_the_parts_are_added_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut lets = String::from("  a0 = [ 1 1 ];\n");
    for k in 1..=18 {
        lets.push_str(&format!("  a{k} = [ a{} a{} ];\n", k - 1, k - 1));
    }
    let over = format!("let\n{lets}in\n{{\n  h1 = a18;\n  h2 = a18;\n}}\n");
    let cut = over.find("  h2").expect("line");
    let serial = load_text_serially(&over, dir.path());
    assert!(serial.is_err_and(|d| d.message.contains("budget")));
    assert!(load_text_split_at(&over, dir.path(), cut).is_none());
    // Each part alone is within it.
    let one = format!("let\n{lets}in\n{{\n  h1 = a18;\n}}\n");
    assert!(load_text_serially(&one, dir.path()).is_ok());
}

/// The prescan's cost of long names, too: each part below the bound, both
/// together above it.
#[test]
fn prescan_costs_of_the_parts_are_added_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = |i: usize, names: usize| {
        let attrs: String = (0..names)
            .map(|j| format!("{}{j} = 1; ", "n".repeat(4090)))
            .collect();
        format!("  h{i} = {{ {attrs}}};\n")
    };
    let fleet = |names: usize| format!("{{\n{}{}}}\n", host(1, names), host(2, names));
    let over = fleet(14);
    let cut = over.find("  h2").expect("line");
    let serial = load_text_serially(&over, dir.path());
    assert!(serial.is_err_and(|d| d.message.contains("refused before parsing")));
    assert!(load_text_split_at(&over, dir.path(), cut).is_none());
    let under = fleet(10);
    let cut = under.find("  h2").expect("line");
    assert_eq!(check_cuts(&under, dir.path(), [cut].into_iter()), 1);
}

/// Small files are read serially; from the threshold on they are cut.
#[test]
fn files_below_the_threshold_are_not_planned() {
    let hosts: String = (0..3800)
        .map(|i| format!("  host{i} = {{ vmid = {i}; }};\n"))
        .collect();
    let body = format!("{{\n{hosts}}}\n");
    assert!(body.len() < split::MIN_PARALLEL_BYTES);
    // Padded by a comment before the set, to exactly `len` bytes.
    let padded = |len: usize| format!("#{}\n{body}", "x".repeat(len - body.len() - 2));
    let below = padded(split::MIN_PARALLEL_BYTES - 1);
    let at = padded(split::MIN_PARALLEL_BYTES);
    assert_eq!(split::plan(&below), None);
    let plan = split::plan(&at).expect("planned at the threshold");
    assert_eq!(plan.cuts.len(), 1, "two parts for a file this small");
    let dir = tempfile::tempdir().expect("tempdir");
    assert_eq!(check_cut_sets(&at, dir.path(), [plan.cuts].into_iter()), 1);
    for text in [below, at] {
        let file = SourceFile::new(dir.path().join("hosts.nix"), text.clone());
        let loaded = load_source(file).expect("loads");
        let serial = load_text_serially(&text, dir.path()).expect("serial");
        assert!(same_read(
            &(loaded.value, loaded.fleet, loaded.diagnostics),
            &serial
        ));
    }
}

/// A refused large file gets the serial read's diagnostic, position and
/// all.
#[test]
fn a_large_file_with_an_error_reports_the_serial_diagnostic() {
    let hosts: String = (0..6000)
        .map(|i| format!("  host{i} = {{ vmid = {i}; }};\n"))
        .collect();
    let text = format!("{{\n{hosts}  late = missing;\n}}\n");
    assert!(split::plan(&text).is_some());
    let dir = tempfile::tempdir().expect("tempdir");
    let serial = load_text_serially(&text, dir.path()).expect_err("refused");
    let file = SourceFile::new(dir.path().join("hosts.nix"), text.clone());
    let err = load_source(file).expect_err("refused");
    let shown = err.to_string();
    assert!(shown.contains(&serial.message), "{shown}");
    assert!(shown.contains("hosts.nix:6002:10"), "{shown}");
}

/// A large fleet is cut into many parts, more than there are threads (so
/// that a thread slowed by other programs takes fewer of them).
#[test]
fn a_large_fleet_is_read_in_many_parts_as_serially() {
    let (dir, text) = generated_with("nopaths-nolet-line", 10000, &["--long", "40"]);
    let plan = split::plan(&text).expect("planned");
    assert_eq!(plan.cuts.len() + 1, split::MAX_PARTS);
    assert_eq!(
        check_cut_sets(&text, dir.path(), [plan.cuts].into_iter()),
        1
    );
}

/// Two cuts at every pair of lines of a small fleet, and of the tricky
/// text: each accepted read in three parts is the serial read.
#[test]
fn every_two_line_cuts_read_as_serially() {
    let (dir, text) = generated("nopaths-let-spread", 4);
    let texts = [(text.as_str(), dir.path()), (TRICKY, dir.path())];
    for (text, base) in texts {
        let lines: Vec<usize> = line_starts(text).collect();
        let pairs = lines
            .iter()
            .enumerate()
            .flat_map(|(i, &a)| lines[i + 1..].iter().map(move |&b| vec![a, b]));
        let accepted = check_cut_sets(text, base, pairs);
        assert!(accepted >= 10, "only {accepted} pairs accepted");
    }
}

/// Each generated shape at 12 hosts, kept for the property below.
fn small_fleet(shape: usize) -> &'static (tempfile::TempDir, String) {
    static FLEETS: OnceLock<Vec<(tempfile::TempDir, String)>> = OnceLock::new();
    &FLEETS.get_or_init(|| SHAPES.iter().map(|s| generated(s, 12)).collect())[shape]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Any number of cuts at any lines, or at any offsets, in any shape:
    /// accepted only where the read is the serial one.
    #[test]
    fn cuts_anywhere_read_as_serially(
        shape in 0..SHAPES.len(),
        at_lines in any::<bool>(),
        picks in proptest::collection::vec(any::<Index>(), 1..8),
    ) {
        let (dir, text) = small_fleet(shape);
        let places: Vec<usize> = if at_lines {
            line_starts(text).collect()
        } else {
            every_offset(text).collect()
        };
        let mut cuts: Vec<usize> = picks.iter().map(|i| *i.get(&places)).collect();
        cuts.sort_unstable();
        cuts.dedup();
        check_cut_sets(text, dir.path(), [cuts].into_iter());
    }

    /// Cuts at a random subset of the lines where a host's first binding
    /// starts, so that every read is accepted: in many parts, each read by
    /// the thread that is free first.
    #[test]
    fn many_cuts_between_hosts_read_as_serially(
        shape in 0..SHAPES.len(),
        keep in proptest::collection::vec(any::<bool>(), 16),
    ) {
        let (dir, text) = small_fleet(shape);
        let cuts: Vec<usize> = host_starts(text)
            .into_iter()
            .zip(keep.iter().cycle())
            .filter_map(|(at, k)| k.then_some(at))
            .collect();
        prop_assume!(!cuts.is_empty());
        prop_assert_eq!(check_cut_sets(text, dir.path(), [cuts].into_iter()), 1);
    }
}

/// The lines where a host's first binding starts (`  hostN = ...` or the
/// first of its `  hostN.x = ...`).
fn host_starts(text: &str) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut previous = "";
    for at in line_starts(text) {
        let Some(line) = text[at..].strip_prefix("  host") else {
            continue;
        };
        let name = line.split(['.', ' ']).next().unwrap_or_default();
        if name != previous {
            starts.push(at);
        }
        previous = name;
    }
    starts
}
