//! Property tests: random valid hosts.nix files in random layouts (indent
//! unit, CRLF, `let` wrapper, blank lines, comments, one-line sets, quoted
//! names) and random edits. For each: the bytes outside the edited region
//! are identical, and the real `nix-instantiate --eval --strict --json` of
//! the result equals the old value plus exactly the edit. A second property
//! checks the escaping of names and strings against Nix directly.

use std::collections::BTreeMap;
use std::process::Command;

use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{json, Value as Json};

use pve_fleet::fleet::edit::{self, names};

#[derive(Debug, Clone)]
enum Val {
    Int(u32),
    Str(String),
    Bool(bool),
    List(Vec<Val>),
    Set(Vec<(String, Val)>, bool /* one line */),
}

impl Val {
    fn json(&self) -> Json {
        match self {
            Val::Int(i) => json!(i),
            Val::Str(s) => json!(s),
            Val::Bool(b) => json!(b),
            Val::List(l) => Json::Array(l.iter().map(Val::json).collect()),
            Val::Set(kv, _) => {
                Json::Object(kv.iter().map(|(k, v)| (k.clone(), v.json())).collect())
            }
        }
    }
}

#[derive(Debug, Clone)]
struct Style {
    unit: &'static str,
    nl: &'static str,
    wrap_let: bool,
    blank: bool,
    comments: bool,
    /// `let base = { ... }; in base // { ... }`
    merge: bool,
}

#[derive(Debug, Clone)]
struct Host {
    name: String,
    attrs: Vec<(String, Val)>,
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec!["web", "db", "a1", "x_y", "my-host", "cache", "b", "zz"]).prop_map(String::from),
        1 => prop::sample::select(vec!["1st", "has space", "a.b", "tab\there", "in", "${x}", "q\"", "é", "or", "__curPos", "true", "a'"]).prop_map(String::from),
    ]
}

fn text() -> impl Strategy<Value = String> {
    "[a-z\"\\\\${}\n\t\r é]{0,8}"
}

fn leaf() -> impl Strategy<Value = Val> {
    prop_oneof![
        (0u32..1000).prop_map(Val::Int),
        text().prop_map(Val::Str),
        any::<bool>().prop_map(Val::Bool),
        prop::collection::vec((0u32..9).prop_map(Val::Int), 0..3).prop_map(Val::List),
    ]
}

fn unique<T: Clone>(v: Vec<(String, T)>) -> Vec<(String, T)> {
    let mut seen = std::collections::BTreeSet::new();
    v.into_iter()
        .filter(|(k, _)| seen.insert(k.clone()))
        .collect()
}

fn val() -> impl Strategy<Value = Val> {
    leaf().prop_recursive(2, 8, 3, |inner| {
        (prop::collection::vec((name(), inner), 0..3), any::<bool>())
            .prop_map(|(kv, one)| Val::Set(unique(kv), one))
    })
}

fn host() -> impl Strategy<Value = Host> {
    (name(), prop::collection::vec((name(), val()), 0..4)).prop_map(|(name, attrs)| Host {
        name,
        attrs: unique(attrs),
    })
}

fn style() -> impl Strategy<Value = Style> {
    (
        prop::sample::select(vec!["  ", "    ", "\t"]),
        prop::sample::select(vec!["\n", "\r\n"]),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(unit, nl, wrap_let, blank, comments, merge)| Style {
            unit,
            nl,
            wrap_let,
            blank,
            comments,
            merge,
        })
}

fn file() -> impl Strategy<Value = (Style, Vec<Host>)> {
    (style(), prop::collection::vec(host(), 1..5)).prop_map(|(s, hosts)| {
        let mut seen = std::collections::BTreeSet::new();
        // names starting with `_` are configuration, not hosts
        let mut hosts: Vec<Host> = hosts
            .into_iter()
            .filter(|h| !h.name.starts_with('_') && seen.insert(h.name.clone()))
            .collect();
        if hosts.is_empty() {
            hosts.push(Host {
                name: "db".into(),
                attrs: vec![],
            });
        }
        (s, hosts)
    })
}

/// The rendered file, and for each host its block (comment line through the
/// line break after `};`) and each top-level attribute's value span.
struct Rendered {
    text: String,
    blocks: Vec<(usize, usize)>,
    values: Vec<Vec<(usize, usize)>>,
}

fn render_val(v: &Val, s: &Style, depth: usize, out: &mut String) {
    match v {
        Val::Int(i) => out.push_str(&i.to_string()),
        Val::Str(t) => out.push_str(&names::string_literal(t)),
        Val::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Val::List(l) => {
            out.push('[');
            for x in l {
                out.push(' ');
                render_val(x, s, depth, out);
            }
            out.push_str(" ]");
        }
        Val::Set(kv, one) if *one || kv.is_empty() => {
            out.push('{');
            for (k, x) in kv {
                out.push_str(&format!(" {} = ", names::attr_name(k)));
                render_val(x, s, depth, out);
                out.push(';');
            }
            out.push_str(" }");
        }
        Val::Set(kv, _) => {
            out.push('{');
            for (k, x) in kv {
                out.push_str(s.nl);
                out.push_str(&s.unit.repeat(depth + 1));
                out.push_str(&format!("{} = ", names::attr_name(k)));
                render_val(x, s, depth + 1, out);
                out.push(';');
            }
            out.push_str(s.nl);
            out.push_str(&s.unit.repeat(depth));
            out.push('}');
        }
    }
}

fn render(s: &Style, hosts: &[Host]) -> Rendered {
    let nl = s.nl;
    let u = s.unit;
    let mut t = String::new();
    if s.merge {
        t.push_str(&format!("let{nl}{u}base = {{ _base = {{ }}; web = {{ from = \"base\"; }}; }};{nl}in{nl}base // "));
    } else if s.wrap_let {
        t.push_str(&format!("# a fleet{nl}let{nl}{u}k = 1;{nl}in{nl}"));
    }
    t.push('{');
    t.push_str(nl);
    t.push_str(&format!(
        "{u}_proxmox = {{ node = \"prom\"; }}; # config{nl}"
    ));
    let (mut blocks, mut values) = (Vec::new(), Vec::new());
    for (i, h) in hosts.iter().enumerate() {
        if s.blank {
            t.push_str(nl);
        }
        let start = t.len();
        if s.comments {
            t.push_str(&format!("{u}# host {i}{nl}"));
        }
        t.push_str(&format!("{u}{} = {{", names::attr_name(&h.name)));
        let mut spans = Vec::new();
        for (k, v) in &h.attrs {
            t.push_str(&format!("{nl}{u}{u}{} = ", names::attr_name(k)));
            let vs = t.len();
            render_val(v, s, 2, &mut t);
            spans.push((vs, t.len()));
            t.push(';');
            if s.comments {
                t.push_str(" # v");
            }
        }
        t.push_str(&format!("{nl}{u}}};{nl}"));
        blocks.push((start, t.len()));
        values.push(spans);
    }
    t.push('}');
    t.push_str(nl);
    Rendered {
        text: t,
        blocks,
        values,
    }
}

/// A value as typed on a command line: two-space indentation, `\n`.
fn plain(v: &Val) -> String {
    let style = Style {
        unit: "  ",
        nl: "\n",
        wrap_let: false,
        blank: false,
        comments: false,
        merge: false,
    };
    let mut out = String::new();
    render_val(v, &style, 0, &mut out);
    out
}

fn model(s: &Style, hosts: &[Host]) -> Json {
    let mut m = serde_json::Map::new();
    if s.merge {
        m.insert("_base".into(), json!({}));
        m.insert("web".into(), json!({"from": "base"}));
    }
    m.insert("_proxmox".into(), json!({"node": "prom"}));
    for h in hosts {
        m.insert(
            h.name.clone(),
            Json::Object(h.attrs.iter().map(|(k, v)| (k.clone(), v.json())).collect()),
        );
    }
    Json::Object(m)
}

fn nix_eval(text: &str) -> Json {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("hosts.nix");
    std::fs::write(&path, text).expect("write");
    let out = Command::new("nix-instantiate")
        .args(["--eval", "--strict", "--json"])
        .arg(&path)
        .output()
        .expect("nix-instantiate must be installed (Debian: nix-bin)");
    assert!(
        out.status.success(),
        "nix-instantiate failed: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("nix json")
}

/// The changed region of `old`: (start, end) after the common prefix and
/// suffix, and whether `new` is `old` with text inserted only.
fn changed(old: &str, new: &str) -> (usize, usize) {
    let p = old
        .bytes()
        .zip(new.bytes())
        .take_while(|(a, b)| a == b)
        .count();
    let max_q = old.len().min(new.len()) - p;
    let q = old
        .bytes()
        .rev()
        .zip(new.bytes().rev())
        .take(max_q)
        .take_while(|(a, b)| a == b)
        .count();
    (p, old.len() - q)
}

#[derive(Debug, Clone)]
enum Op {
    SetExisting(Index, Index, Val),
    SetNew(Index, String, Val),
    Add(String, Vec<(String, Val)>),
    Remove(Index),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (any::<Index>(), any::<Index>(), val()).prop_map(|(h, a, v)| Op::SetExisting(h, a, v)),
        (any::<Index>(), name(), val()).prop_map(|(h, n, v)| Op::SetNew(h, n, v)),
        (name(), prop::collection::vec((name(), leaf()), 0..3))
            .prop_map(|(n, a)| Op::Add(n, unique(a))),
        any::<Index>().prop_map(Op::Remove),
    ]
}

/// 48 cases by default (each costs two `nix-instantiate` runs, ~20 ms
/// each); `PVE_PROPTEST_CASES=1000` for a longer hunt.
fn cases() -> u32 {
    std::env::var("PVE_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn random_edits_change_exactly_what_was_asked((s, hosts) in file(), op in op()) {
        let r = render(&s, &hosts);
        let old = &r.text;
        let mut want = model(&s, &hosts);
        // the generator itself must agree with Nix
        prop_assert_eq!(&nix_eval(old), &want);
        let new = match &op {
            Op::SetExisting(hi, ai, v) => {
                let h = hi.index(hosts.len());
                if hosts[h].attrs.is_empty() { return Ok(()); }
                let a = ai.index(hosts[h].attrs.len());
                let (k, _) = &hosts[h].attrs[a];
                // given as people type it; it must land indented for its place
                let typed = plain(v);
                let mut vt = String::new();
                render_val(v, &s, 2, &mut vt);
                let new = edit::set_attr(old, &[&hosts[h].name, k], &typed)
                    .map_err(|e| TestCaseError::fail(format!("{e}")))?;
                let (vs, ve) = r.values[h][a];
                prop_assert_eq!(&new, &format!("{}{vt}{}", &old[..vs], &old[ve..]), "only the value may change");
                want[&hosts[h].name][k] = v.json();
                new
            }
            Op::SetNew(hi, n, v) => {
                let h = hi.index(hosts.len());
                if hosts[h].attrs.iter().any(|(k, _)| k == n) { return Ok(()); }
                let new = edit::set_attr(old, &[&hosts[h].name, n], &plain(v))
                    .map_err(|e| TestCaseError::fail(format!("{e}")))?;
                let (p, q) = changed(old, &new);
                prop_assert_eq!(p, q, "not a pure insertion");
                let (bs, be) = r.blocks[h];
                prop_assert!(p > bs && p < be, "inserted at {p}, outside the host {bs}..{be}");
                want[&hosts[h].name][n] = v.json();
                new
            }
            Op::Add(n, attrs) => {
                if n.starts_with('_') || want.get(n).is_some() { return Ok(()); }
                let h = Host { name: n.clone(), attrs: attrs.clone() };
                let new = edit::add_host(old, n, &plain(&Val::Set(h.attrs.clone(), false)))
                    .map_err(|e| TestCaseError::fail(format!("{e}")))?;
                let (p, q) = changed(old, &new);
                prop_assert_eq!(p, q, "not a pure insertion");
                want[n] = Json::Object(attrs.iter().map(|(k, v)| (k.clone(), v.json())).collect());
                new
            }
            Op::Remove(hi) => {
                let h = hi.index(hosts.len());
                if s.merge && hosts[h].name == "web" {
                    // `base` would still provide it: refused, not half-done
                    let e = edit::remove_host(old, "web").expect_err("shadowed host");
                    prop_assert_eq!(e.kind, edit::ErrorKind::Verify);
                    return Ok(());
                }
                let new = edit::remove_host(old, &hosts[h].name)
                    .map_err(|e| TestCaseError::fail(format!("{e}")))?;
                let (bs, be) = r.blocks[h];
                let blank = if s.blank { s.nl.len() } else { 0 };
                // the host's lines, and the blank line before or after it
                let after = format!("{}{}", &old[..bs], &old[(be + blank).min(old.len())..]);
                let before = format!("{}{}", &old[..bs - blank], &old[be..]);
                prop_assert!(new == after || new == before, "removed more or less than the host {bs}..{be}:\n{new}");
                if let Json::Object(m) = &mut want { m.remove(&hosts[h].name); }
                new
            }
        };
        // string literals escape their line breaks: every raw one is the file's
        let (lf, crlf) = (new.matches('\n').count(), new.matches("\r\n").count());
        prop_assert_eq!(if s.nl == "\r\n" { lf } else { 0 }, crlf, "mixed line endings:\n{:?}", new);
        prop_assert_eq!(&nix_eval(&new), &want, "after {:?}:\n{}", op, new);
    }

    #[test]
    fn names_and_strings_read_back_exactly(words in prop::collection::vec("(?s).{0,6}", 1..16)) {
        let words: Vec<String> = words.into_iter().map(|w| w.replace('\0', "")).collect();
        let mut text = String::from("[\n");
        for w in &words {
            text.push_str(&format!("  {{ {} = {}; }}\n", names::attr_name(w), names::string_literal(w)));
        }
        text.push_str("]\n");
        let got = nix_eval(&text);
        let want: Vec<Json> = words.iter().map(|w| { let mut m = serde_json::Map::new(); m.insert(w.clone(), json!(w)); Json::Object(m) }).collect();
        prop_assert_eq!(got, Json::Array(want), "{}", text);
        // our own evaluator agrees
        let ours = pve_fleet::fleet::evaluate_text(&text, std::path::Path::new("/")).map_err(|d| TestCaseError::fail(d.message))?;
        prop_assert_eq!(ours.to_nix_json(std::path::Path::new("/")), serde_json::to_string(&Json::Array(words.iter().map(|w| { let mut m = BTreeMap::new(); m.insert(w.clone(), w.clone()); json!(m) }).collect())).expect("json"));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Damaged files (a random slice cut out of a valid one): every operation
    /// either refuses or returns text that parses and evaluates; never panics.
    #[test]
    fn damaged_files_are_refused_or_edited_soundly(
        (s, hosts) in file(),
        cut in (any::<Index>(), 0usize..12),
        op in op(),
    ) {
        let r = render(&s, &hosts);
        let mut text = r.text.clone();
        let start = cut.0.index(text.len());
        let end = (start + cut.1).min(text.len());
        if !text.is_char_boundary(start) || !text.is_char_boundary(end) { return Ok(()); }
        text.replace_range(start..end, "");
        let result = match &op {
            Op::SetExisting(hi, _, v) | Op::SetNew(hi, _, v) => {
                let h = &hosts[hi.index(hosts.len())];
                edit::set_attr(&text, &[&h.name, "x"], &plain(v))
            }
            Op::Add(n, _) => edit::add_host(&text, n, "{ a = 1; }"),
            Op::Remove(hi) => edit::remove_host(&text, &hosts[hi.index(hosts.len())].name),
        };
        if let Ok(new) = result {
            prop_assert!(pve_fleet::fleet::evaluate_text(&new, std::path::Path::new("/")).is_ok(), "{}", new);
        }
    }
}
