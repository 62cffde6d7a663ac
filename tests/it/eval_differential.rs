//! Differential tests: our evaluator against the real Nix evaluator
//! (`nix-instantiate --eval --strict --json`, Debian's nix-bin), on
//! hand-written fixtures covering every construct and on random expressions.

use crate::support;
use std::path::Path;

use crate::support::{nix_eval, repo_root};
use pve_fleet::fleet::{evaluate_text, Kind, Value};
use serde_json::Value as Json;

fn ours(file: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(file).expect("fixture readable");
    let base = file.parent().expect("fixture has a folder");
    evaluate_text(&text, base).map_err(|d| d.message)
}

/// Equal as JSON, where a path of ours equals the store path Nix copied it
/// to when the store path's name is the path's file name.
fn same(ours: &Value, nix: &Json) -> bool {
    match (&ours.kind, nix) {
        (Kind::Path(p), Json::String(s)) => {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            s.starts_with("/nix/store/")
                && s.ends_with(&format!("-{name}"))
                && s.len() == "/nix/store/".len() + 33 + name.len()
        }
        (Kind::List(a), Json::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y))
        }
        (Kind::Attrs(a), Json::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(k, attr)| b.get(k.as_str()).is_some_and(|v| same(&attr.value, v)))
        }
        _ => {
            let text = ours.to_nix_json(Path::new("/"));
            serde_json::from_str::<Json>(&text).ok().as_ref() == Some(nix)
        }
    }
}

fn contains_path(v: &Value) -> bool {
    match &v.kind {
        Kind::Path(_) => true,
        Kind::List(l) => l.iter().any(contains_path),
        Kind::Attrs(a) => a.values().any(|x| contains_path(&x.value)),
        _ => false,
    }
}

fn fixtures(folder: &str) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(repo_root().join("tests/fixtures").join(folder))
        .expect("fixture folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "nix"))
        .collect();
    v.sort();
    v
}

#[test]
fn every_fixture_evaluates_exactly_as_nix_does() {
    let files = fixtures("eval");
    assert!(
        files.len() >= 30,
        "at least 30 fixtures, found {}",
        files.len()
    );
    let mut failures = Vec::new();
    for f in &files {
        let nix =
            nix_eval(f).unwrap_or_else(|e| panic!("Nix rejects fixture {}: {e}", f.display()));
        match ours(f) {
            Err(e) => failures.push(format!("{}: we fail: {e}", f.display())),
            Ok(v) => {
                let parsed: Json = serde_json::from_str(&nix).expect("nix prints JSON");
                if !same(&v, &parsed) {
                    failures.push(format!(
                        "{}:\n  nix: {nix}\n  pve: {}",
                        f.display(),
                        v.to_nix_json(Path::new("/"))
                    ));
                } else if !contains_path(&v) {
                    // Byte for byte too: key order, float format, escapes.
                    assert_eq!(v.to_nix_json(Path::new("/")), nix, "{}", f.display());
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn what_nix_rejects_we_reject() {
    for f in fixtures("eval-errors") {
        let nix = nix_eval(&f);
        assert!(nix.is_err(), "Nix accepts {}: {:?}", f.display(), nix);
        let ours = ours(&f);
        assert!(
            ours.is_err(),
            "we accept {}: {:?}",
            f.display(),
            ours.map(|v| v.to_nix_json(Path::new("/")))
        );
    }
}

#[test]
fn constructs_outside_the_subset_are_refused_by_name() {
    for f in fixtures("eval-unsupported") {
        let err = ours(&f).expect_err(&format!("{} must be refused", f.display()));
        let named = ["outside", "overflow"].iter().any(|w| err.contains(w));
        assert!(named, "{}: unclear refusal: {err}", f.display());
    }
}

#[test]
fn integer_overflow_is_an_error_where_nix_2_8_wraps_around() {
    let f = repo_root().join("tests/fixtures/eval-unsupported/overflow-add.nix");
    // Nix 2.8 silently wraps (newer Nix errors); we refuse rather than guess.
    assert_eq!(nix_eval(&f).as_deref(), Ok(r#"{"a":-9223372036854775808}"#));
    assert!(ours(&f)
        .expect_err("overflow refused")
        .contains("integer overflow"));
}

#[test]
fn pve_eval_prints_the_example_fleet_as_nix_does() {
    let root = repo_root();
    let out = support::pve(&root, &["eval"]);
    assert!(out.status.success(), "{}", support::stderr(&out));
    let ours: Json = serde_json::from_str(&support::stdout(&out)).expect("pve eval prints JSON");
    let nix: Json = serde_json::from_str(
        &nix_eval(&root.join("hosts.nix")).expect("nix evaluates the example"),
    )
    .expect("json");
    // Paths differ by design: ours are relative text, Nix's are store paths.
    let strip = |mut j: Json| {
        fn walk(j: &mut Json) {
            match j {
                Json::String(s) if s.starts_with("/nix/store/") || s.starts_with("./") => {
                    let name = s.rsplit('/').next().unwrap_or("").to_string();
                    *s = name
                        .split_once('-')
                        .filter(|_| s.starts_with("/nix"))
                        .map_or(name.clone(), |(_, n)| n.to_string());
                }
                Json::Array(a) => a.iter_mut().for_each(walk),
                Json::Object(o) => o.values_mut().for_each(walk),
                _ => {}
            }
        }
        walk(&mut j);
        j
    };
    assert_eq!(strip(ours.clone()), strip(nix));
    assert_eq!(
        ours["sandbox"]["configurationFile"],
        "./hosts/sandbox/configuration.nix"
    );
}

/// Plain-data sub-trees are turned into values directly; everything
/// around them goes through the lazy evaluator. Both kinds side by side,
/// with relative paths inside plain data, `rec`, `inherit`, a plain set
/// shared by name, sets written twice and dotted paths, against Nix.
#[test]
fn plain_data_and_code_evaluate_exactly_as_nix_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("hosts/a")).expect("mkdir");
    std::fs::write(dir.path().join("hosts/a/c.nix"), "{ }").expect("write");
    std::fs::write(dir.path().join("top.nix"), "{ }").expect("write");
    let text = r#"let
  shared = { cores = 2; tags = [ "x" "y" ]; };
  keys = [ "k1" ];
in {
  literal = { file = ./hosts/a/c.nix; up = ./hosts/../top.nix; n = -0; f = 1.5e3;
              s = "a\n\"b\" \${x}"; i = ''
                ind
              ''; l = [ 1 [ 2 { three = 3; } ] ./top.nix ]; e = { }; el = [ ]; };
  code = { cores = shared.cores + 1; keys = keys; t = true; p = ./hosts/a + "/c.nix"; };
  mixed = { inner = { a = 1; }; uses = keys; deep = { x = [ { y = shared; } ]; }; };
  twice = shared;
  again = shared // { cores = 4; };
  merged = { a = { b = 1; }; x = 0; a = { c = ./top.nix; }; };
  r = rec { a = 1; b = { c = a; }; d = { e = 2; }; };
  inherit keys;
  inherit (shared) tags;
  dotted.x = 1;
  dotted.y = { z = ./top.nix; };
}
"#;
    let file = dir.path().join("hosts.nix");
    std::fs::write(&file, text).expect("write");
    let nix = nix_eval(&file).expect("Nix evaluates the file");
    let nix: Json = serde_json::from_str(&nix).expect("json");
    let ours = ours(&file).expect("we evaluate the file");
    assert!(
        same(&ours, &nix),
        "differs from Nix:\n nix: {nix}\n pve: {}",
        ours.to_nix_json(dir.path())
    );
    assert_eq!(
        ours.as_attrs()
            .and_then(|a| a.get("literal"))
            .and_then(|a| a.value.as_attrs())
            .and_then(|a| a.get("up"))
            .map(|a| a.value.to_nix_json(dir.path())),
        Some("\"./top.nix\"".to_string())
    );
}

// ---------------------------------------------------------------------------
// Random expressions: a typed generator, so every expression is valid and
// 500 of them can go to Nix in one list (one process instead of 500).

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Ty {
    Int,
    Float,
    Bool,
    Str,
    List,
    Set,
}

struct Gen {
    rng: Rng,
    vars: Vec<(String, Ty)>,
    counter: usize,
}

const KEYS: &[&str] = &[
    "a",
    "b",
    "c",
    "web",
    "db",
    "\"my-host\"",
    "vmid",
    "x_1",
    "or",
];

impl Gen {
    fn ws(&mut self) -> String {
        match self.rng.below(8) {
            0 => " /* c */ ".into(),
            1 => " # c\n ".into(),
            2 => "\n\t ".into(),
            _ => " ".into(),
        }
    }

    fn fresh(&mut self) -> String {
        self.counter += 1;
        format!("v{}", self.counter)
    }

    fn var_of(&mut self, ty: Ty) -> Option<String> {
        let candidates: Vec<String> = self
            .vars
            .iter()
            .filter(|(_, t)| *t == ty)
            .map(|(n, _)| n.clone())
            .collect();
        if candidates.is_empty() {
            None
        } else {
            Some(self.rng.pick(&candidates).clone())
        }
    }

    fn expr(&mut self, ty: Ty, depth: u32) -> String {
        if depth == 0 || self.rng.chance(25) {
            return self.leaf(ty);
        }
        let d = depth - 1;
        // Constructs that work for any type.
        match self.rng.below(10) {
            0 => {
                let c = self.expr(Ty::Bool, d);
                let (a, b) = (self.expr(ty, d), self.expr(ty, d));
                return format!("(if {c} then {a} else {b})");
            }
            1 => {
                let name = self.fresh();
                let bty = *self
                    .rng
                    .pick(&[Ty::Int, Ty::Str, Ty::Set, Ty::List, Ty::Bool]);
                let bound = self.expr(bty, d);
                self.vars.push((name.clone(), bty));
                let body = self.expr(ty, d);
                self.vars.pop();
                return format!("(let{}{name} = {bound};{}in {body})", self.ws(), self.ws());
            }
            2 => {
                let v = self.expr(ty, d);
                let other = self.expr(Ty::Int, d);
                return format!("({{ k = {v}; o = {other}; }}.k)");
            }
            3 => {
                let v = self.expr(ty, d);
                return format!("({{ a = 1; }}.missing.x or {v})");
            }
            4 => {
                let v = self.expr(ty, d);
                return format!("((rec {{ p = {v}; q = p; }}).q)");
            }
            5 => {
                let v = self.expr(ty, d);
                return format!("(let src = {{ z = {v}; }}; inherit (src) z; in z)");
            }
            _ => {}
        }
        match ty {
            Ty::Int => match self.rng.below(5) {
                0 => format!("({} + {})", self.expr(Ty::Int, d), self.expr(Ty::Int, d)),
                1 => format!("({} - {})", self.expr(Ty::Int, d), self.expr(Ty::Int, d)),
                2 => format!("({} * {})", self.int_lit(), self.int_lit()),
                3 => format!("({} / {})", self.expr(Ty::Int, d), self.rng.below(9) + 1),
                _ => format!("(-{})", self.expr(Ty::Int, d)),
            },
            Ty::Float => match self.rng.below(3) {
                0 => format!("({} + {})", self.expr(Ty::Float, d), self.expr(Ty::Int, d)),
                1 => format!("({} * {})", self.expr(Ty::Float, d), self.float_lit()),
                _ => format!("({} / {})", self.expr(Ty::Int, d), self.float_lit()),
            },
            Ty::Bool => match self.rng.below(9) {
                0 => format!("({} < {})", self.expr(Ty::Int, d), self.expr(Ty::Int, d)),
                1 => format!("({} == {})", self.expr(Ty::Str, d), self.expr(Ty::Str, d)),
                2 => format!("(!{})", self.expr(Ty::Bool, d)),
                3 => format!("({} && {})", self.expr(Ty::Bool, d), self.expr(Ty::Bool, d)),
                4 => format!("({} || {})", self.expr(Ty::Bool, d), self.expr(Ty::Bool, d)),
                5 => format!("({} -> {})", self.expr(Ty::Bool, d), self.expr(Ty::Bool, d)),
                6 => format!("({} ? {})", self.expr(Ty::Set, d), self.rng.pick(KEYS)),
                7 => format!("({} == {})", self.expr(Ty::List, d), self.expr(Ty::List, d)),
                _ => format!("({} >= {})", self.expr(Ty::Float, d), self.expr(Ty::Int, d)),
            },
            Ty::Str => match self.rng.below(4) {
                0 => format!("({} + {})", self.expr(Ty::Str, d), self.expr(Ty::Str, d)),
                1 => format!("\"pre ${{{}}} post\"", self.expr(Ty::Str, d)),
                2 => {
                    let inner = self.expr(Ty::Str, d);
                    let indent = " ".repeat(self.rng.below(4) as usize + 1);
                    format!("''\n{indent}line ${{{inner}}}\n{indent}  more\n''")
                }
                _ => self.leaf(Ty::Str),
            },
            Ty::List => match self.rng.below(3) {
                0 => format!("({} ++ {})", self.expr(Ty::List, d), self.expr(Ty::List, d)),
                _ => {
                    let n = self.rng.below(4);
                    let items: Vec<String> = (0..n)
                        .map(|_| {
                            let t = *self.rng.pick(&[
                                Ty::Int,
                                Ty::Str,
                                Ty::Bool,
                                Ty::Set,
                                Ty::List,
                                Ty::Float,
                            ]);
                            self.expr(t, d)
                        })
                        .collect();
                    format!("[{}{}{}]", self.ws(), items.join(" "), self.ws())
                }
            },
            Ty::Set => match self.rng.below(4) {
                0 => format!("({} // {})", self.expr(Ty::Set, d), self.expr(Ty::Set, d)),
                1 => {
                    // Nested attribute paths that merge.
                    let (x, y) = (self.expr(Ty::Int, d), self.expr(Ty::Str, d));
                    format!("{{ n.a = {x}; n.b = {y}; m = {{ c = 1; }}; m.d = 2; }}")
                }
                _ => {
                    let n = self.rng.below(4) as usize;
                    let mut keys: Vec<&str> = Vec::new();
                    let mut body = String::new();
                    for _ in 0..n {
                        let k = *self.rng.pick(KEYS);
                        if keys.contains(&k) {
                            continue;
                        }
                        keys.push(k);
                        let t = *self
                            .rng
                            .pick(&[Ty::Int, Ty::Str, Ty::Bool, Ty::Set, Ty::List]);
                        let v = self.expr(t, d);
                        body.push_str(&format!("{}{k} = {v};", self.ws()));
                    }
                    let rec = if self.rng.chance(20) { "rec " } else { "" };
                    format!("{rec}{{{body}{}}}", self.ws())
                }
            },
        }
    }

    fn int_lit(&mut self) -> String {
        let n = self.rng.below(2000) as i64 - 1000;
        if n < 0 {
            format!("({n})")
        } else {
            n.to_string()
        }
    }

    fn float_lit(&mut self) -> String {
        let whole = self.rng.below(100) + 1;
        let frac = self.rng.below(1000);
        format!("{whole}.{frac:03}")
    }

    fn leaf(&mut self, ty: Ty) -> String {
        if self.rng.chance(30) {
            if let Some(v) = self.var_of(ty) {
                return v;
            }
        }
        match ty {
            Ty::Int => self.int_lit(),
            Ty::Float => self.float_lit(),
            Ty::Bool => self.rng.pick(&["true", "false"]).to_string(),
            Ty::Str => self
                .rng
                .pick(&[
                    "\"\"",
                    "\"plain\"",
                    "\"esc\\n\\t\\\"q\\\" \\\\ \\$\"",
                    "\"ünï ✓\"",
                    "''ind ''${x} '''q''",
                    "''\n  a\n    b\n''",
                    "\"$${\"",
                    "\"a$b\"",
                ])
                .to_string(),
            Ty::List => "[ ]".into(),
            Ty::Set => "{ }".into(),
        }
    }
}

#[test]
fn random_expressions_evaluate_exactly_as_nix_does() {
    let seed = std::env::var("PVE_EVAL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        });
    let cases = std::env::var("PVE_EVAL_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(500);
    let mut gen = Gen {
        rng: Rng(seed),
        vars: Vec::new(),
        counter: 0,
    };
    let exprs: Vec<String> = (0..cases)
        .map(|_| {
            let ty = *gen
                .rng
                .pick(&[Ty::Int, Ty::Float, Ty::Bool, Ty::Str, Ty::List, Ty::Set]);
            gen.expr(ty, 4)
        })
        .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("random.nix");
    std::fs::write(&file, format!("[\n{}\n]\n", exprs.join("\n"))).expect("write");
    let nix = nix_eval(&file)
        .unwrap_or_else(|e| panic!("seed {seed}: Nix rejects a generated file: {e}"));
    let ours =
        ours(&file).unwrap_or_else(|e| panic!("seed {seed}: we reject a generated file: {e}"));
    let ours_json = ours.to_nix_json(dir.path());
    if ours_json != nix {
        // Find the first expression that differs, for a readable failure.
        let nix_items: Vec<Json> = serde_json::from_str::<Json>(&nix)
            .ok()
            .and_then(|j| j.as_array().cloned())
            .unwrap_or_default();
        let our_items = ours.as_list().unwrap_or_default();
        for (i, (a, b)) in our_items.iter().zip(&nix_items).enumerate() {
            let a_text = a.to_nix_json(dir.path());
            if serde_json::to_string(b).ok().as_deref() != Some(a_text.as_str()) {
                panic!(
                    "seed {seed}, case {i}:\n{}\n  nix: {b}\n  pve: {a_text}",
                    exprs[i]
                );
            }
        }
        panic!("seed {seed}: outputs differ\n nix: {nix}\n pve: {ours_json}");
    }
    eprintln!("{cases} random expressions agree with Nix (seed {seed})");
}

/// Every form of plain data the fast parser turns straight into a value
/// (nested sets and lists, dotted paths merged, a `let` list read by
/// several hosts, strings of both kinds, floats, negative numbers, empty
/// sets and lists), and files that rebind `true`, `false` or `null`
/// (read by the reference front end), against Nix.
#[test]
fn literal_data_evaluates_exactly_as_nix_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let texts = [
        r#"{ a = { b = { c = [ 1 [ 2 { d = 3; } ] "s" ]; }; e = [ ]; f = { }; }; }"#,
        r#"{ h.a = 1; h.b.c = [ true false null ]; h.b.d = { e = 2.5; }; h = { x = -1; }; }"#,
        r#"let keys = [ "k1" "k2" ]; in { h1 = { k = keys; n = 1; }; h2 = { k = keys; }; h3.k = keys; all = [ keys keys ]; }"#,
        "{ s = ''\n    indented\n      more\n  ''; e = \"\"; q = \"a\\n\\\"b\\\" \\${x}\"; f = [ 1.5e3 0.25 .5 ]; n = [ (-1) (-2) (-0.5) ]; m = -3; }",
        r#"{ a = [ { } [ ] [ [ ] ] ]; b = { c = { }; }; }"#,
        r#"let true = 1; in { a = [ true false ]; b = { c = true; }; }"#,
        r#"let null = "n"; x = { v = null; }; in [ x null ]"#,
        r#"rec { false = 0; a = { b = false; }; l = [ false ]; }"#,
        r#"{ true = 1; false = 2; a = [ true false null ]; }"#,
        r#"let l = [ 1 { a = 2; } ]; s = { x = [ 3 ]; }; in { a = l ++ [ 4 ]; b = s // { y = 5; }; c = s.x; d = l == [ 1 { a = 2; } ]; inherit (s) x; }"#,
    ];
    for (i, text) in texts.iter().enumerate() {
        let file = dir.path().join(format!("case{i}.nix"));
        std::fs::write(&file, text).expect("write");
        let nix = nix_eval(&file).expect("Nix evaluates the file");
        let nix: Json = serde_json::from_str(&nix).expect("json");
        let ours = ours(&file).unwrap_or_else(|e| panic!("we evaluate {text}: {e}"));
        assert!(
            same(&ours, &nix),
            "differs from Nix on {text}:\n nix: {nix}\n pve: {}",
            ours.to_nix_json(dir.path())
        );
    }
}
