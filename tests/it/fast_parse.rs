//! `fast_parse` against the reference front end (rnix + `lower`): for every
//! input it either bails (`None`) or gives exactly the IR lower gives, spans
//! included (its literals written out again as expressions). Inputs: the repository's .nix files, a generated fleet,
//! hand-written edge cases, random expressions in the subset, random
//! mutations of all of those, and hostile input.

use std::path::{Path, PathBuf};

use crate::support::repo_root;
use pve_fleet::fleet::{fast_parse, ir::Expr, lower, syntax};

fn reference(text: &str) -> Option<Expr> {
    let root = syntax::parse(text).ok()?;
    lower::lower(&root.expr()?).ok()
}

/// What happened on one input.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// Same IR as lower.
    Same,
    /// Bailed where lower succeeds.
    Bailed,
    /// Both refuse the input.
    BothRefuse,
}

/// Panics when fast_parse gives an IR lower does not.
fn check(text: &str) -> Outcome {
    let fast = fast_parse::parse(text);
    let slow = reference(text);
    match (fast, slow) {
        (None, None) => Outcome::BothRefuse,
        (None, Some(_)) => Outcome::Bailed,
        (Some(f), slow) => {
            // Plain data is a literal here: written out again, it must be
            // exactly the tree lower gives, spans included.
            let f = f.without_literals();
            assert!(
                slow.as_ref() == Some(&f),
                "fast_parse differs from lower on {text:?}\nfast: {f:#?}\nlower: {slow:#?}"
            );
            Outcome::Same
        }
    }
}

/// [`check`] on a thread with a large stack: rnix and lower recurse deeply
/// on long chains and deep nesting (the evaluator gives them 256 MB), while
/// fast_parse itself runs on the test's ordinary stack.
fn check_big_stack(text: &str) -> Outcome {
    let text = text.to_string();
    std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(move || check(&text))
        .expect("thread")
        .join()
        .expect("fast_parse matches lower")
}

fn nix_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            nix_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "nix") {
            out.push(p);
        }
    }
}

fn repo_nix_texts() -> Vec<(PathBuf, String)> {
    let mut files = vec![repo_root().join("hosts.nix")];
    nix_files(&repo_root().join("tests"), &mut files);
    files.sort();
    files
        .into_iter()
        .filter_map(|p| std::fs::read_to_string(&p).ok().map(|t| (p, t)))
        .collect()
}

fn generated_fleet(hosts: usize) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let status = std::process::Command::new("python3")
        .arg(repo_root().join("scripts/gen-fleet"))
        .arg(hosts.to_string())
        .arg(dir.path())
        .status()
        .expect("run scripts/gen-fleet");
    assert!(status.success(), "gen-fleet failed");
    std::fs::read_to_string(dir.path().join("hosts.nix")).expect("generated hosts.nix")
}

#[test]
fn repo_hosts_nix_is_parsed_exactly() {
    let text = std::fs::read_to_string(repo_root().join("hosts.nix")).expect("hosts.nix");
    assert_eq!(check(&text), Outcome::Same);
}

#[test]
fn repo_nix_files_match_or_bail() {
    let mut counts = [0usize; 3];
    for (path, text) in repo_nix_texts() {
        let o = std::panic::catch_unwind(|| check(&text))
            .unwrap_or_else(|_| panic!("mismatch on {}", path.display()));
        counts[o as usize] += 1;
    }
    eprintln!(
        "repo .nix files: same {}, bailed {}, both refuse {}",
        counts[0], counts[1], counts[2]
    );
    assert!(
        counts[0] >= 40,
        "most fixtures are in the subset: {counts:?}"
    );
}

#[test]
fn generated_fleet_is_parsed_exactly() {
    let text = generated_fleet(200);
    assert_eq!(check(&text), Outcome::Same);
    // The same fleet with Windows line ends and a comment everywhere.
    let crlf = text.replace('\n', " /* c */\r\n");
    assert_eq!(check(&crlf), Outcome::Same);
}

/// Edge cases that must be parsed (not bailed on) and match lower.
const SUPPORTED: &[&str] = &[
    "{ }",
    "{}",
    "rec { a = 1; b = a; }",
    "{ a = 1; b.c = 2; b.d = 3; }",
    "{ a.b.c = 1; a.b.d = 2; a = { e = 3; }; }",
    "{ a = { b = 1; }; a.c = 2; }",
    "{ a = ({ b = 1; }); a.c = 2; }",
    // The flat set builder, and each way it hands over to the merging one:
    // names out of order, a set written twice, a dotted path before and
    // after single names, `inherit` before a dotted path, and `rec`.
    "{ z = 1; b = 2; a = 3; y = [ 1 ]; c = { x = 2; }; }",
    "{ a = { b = 1; }; a = { c = 2; }; }",
    "{ a = { b = 1; }; x = 1; a = { c = { d = 2; }; }; a.c.e = 3; }",
    "{ x = 1; a.b = 1; y = 2; a.c = 2; z = 3; }",
    "let v = 1; in { inherit v; a.b = v; w = 2; }",
    "rec { b = a; a = { c = 1; }; a.d = 2; }",
    "let a = { x = 1; }; a = { y = 2; }; in a",
    // Plain data and not: the literal flag must match lower's.
    "{ a = { b = [ 1 \"s\" ./p { c = 2.5; } ]; }; d = [ x ]; e = { f = \"${g}\"; }; }",
    "{ a = rec { b = 1; }; c = { d = true; }; e = [ [ ] { } ]; }",
    "{ \"quoted-name\" = 1; \"a b\".c = 2; \"\" = 3; \"\\n\\t\" = 4; }",
    "{ or = 1; x.or = 2; }",
    "{ __curPos = 1; }",
    "let a = 1; b = 2; in { inherit a b; inherit (x) c d; inherit; }",
    "let in 1",
    "let a = 1; in let b = a; in b",
    "{ inherit ((a)) b; }",
    "{ inherit \"q\" or; }",
    "[ ]",
    "[ 1 \"b\" ./c { } [ ] (1 + 2) a.b a.b or c true null ]",
    "[ 1.5 .5 1. 2.5e3 1.5E-2 0.25 007 ]",
    "9223372036854775807",
    "-9223372036854775807",
    "./a/b.nix",
    "../x",
    "/abs/x",
    "./.",
    "a/b",
    "1/2",
    "a.b/c",
    "x / y",
    "x // y",
    "x//y",
    "a/*c*/+b",
    "\"\"",
    "\"plain\"",
    "\"esc \\n \\r \\t \\\\ \\\" \\$ \\{ \\x \\é é\"",
    "\"a ${b} c ${ \"d${e}\" } f\"",
    "\"${a}${b}\"",
    "\"$\" + \"a$b\" + \"$$\" + \"$${a}\" + \"$$${a}\" + \"\\${a}\"",
    "\"multi\nline\r\nstring\"",
    "\"line \\\ncontinued\"",
    "a.b.c",
    "a.\"b\".c",
    "a.b or c",
    "a.b or c.d or e",
    "a.or",
    "a.or or b",
    "(a).b",
    "[ (a).b or (c) ]",
    "a ? b",
    "a ? b.c ? \"d\"",
    "-a ? b",
    "!a ? b",
    "-1",
    "- -1",
    "--1",
    "-a.b",
    "a - -b",
    "a-b",
    "a - b",
    "a -b",
    "a * -b",
    "a ++ -b",
    "!a",
    "!!a",
    "!a + b",
    "!a == b",
    "a == !b",
    "a // !b",
    "a && !b || c",
    "a -> b -> c",
    "a || b && c",
    "a == b && c != d",
    "a < b == c",
    "a == b < c",
    "a <= b",
    "a >= b",
    "a<b",
    "a > b",
    "a->b",
    "1 + 2 * 3 - 4 / 5",
    "1 - 2 - 3",
    "a ++ b ++ c",
    "a // b // c",
    "a + b ++ c",
    "a ++ b ? c",
    "(((1)))",
    "( a ) + ( b )",
    "if a then b else c",
    "if a then if b then c else d else if e then f else g",
    "{ a = if x then 1 else 2; }",
    "# comment\n{ a = 1; } # trailing",
    "/* a */ { /* b */ a /* c */ = /* d */ 1 /* e */ ; /* f */ } /* g */",
    "{\r\n  a = 1;\r\n  b = \"x\";\r\n}\r\n",
    "{\ra = 1;\r}",
    "\t{ a\t=\t1; }\x0b\x0c",
    "{ a = 1; }#no newline at end",
    "/**/1/**/",
    "/***/1",
    "{ x = \"é ü 日本\"; }",
    "{ a = { b = { c = { d = 1; }; }; }; a.b.c.e = 2; }",
    "''''",
    "''\n  hello\n  world\n''",
    "''hello ''",
    "''hello\n ''",
    "''  first\n    second\n  ''",
    "''\n  a ${b} c\n    ${d}\n''",
    "''${a}\n  x''",
    "''  ${a}\n  x\n  ''",
    "''costs ''${price} and ''$HOME''",
    "''it'''s here''",
    "''tab''\\there''\\nnewline''\\\\back''\\é''",
    "''a $ sign and a lone ' quote''",
    "''\r\n  x\r\n''",
    "''\n\n    after blank\n\n      deeper\n  ''",
    "''\t tab first\n  x''",
    "''$$ $${x} $'${a}' ''",
    "{ ''a b'' = 1; x.''c'' = 2; }",
    "[ ''a'' ''b'' ]",
];

/// Inputs that must make fast_parse bail (and must never be parsed
/// differently from lower).
const REFUSED: &[&str] = &[
    "",
    "   ",
    // Repeated names, found when the flat set builder sorts (or when the
    // merging one it handed over to meets them).
    "{ a = 1; b = 2; a = 3; }",
    "{ a = { b = 1; }; a = 2; }",
    "{ a = 1; x.y = 2; a = 3; }",
    "{ a = { b = 1; }; a = { b = 2; }; }",
    "let v = 1; in { inherit v; v = 2; }",
    "let a = 1; a = 2; in a",
    "# only a comment",
    "/* only */",
    "{",
    "{ a = 1 }",
    "{ a = 1; ",
    "[ 1 2",
    "f x",
    "x: x",
    "{ a, b }: a",
    "{ a }",
    "{ }: 1",
    "a@{ }: 1",
    "with x; y",
    "assert true; 1",
    "__curPos",
    "let { a = 1; }",
    "a == b == c",
    "a < b < c",
    "[ -1 ]",
    "a + !b",
    "1 + if a then b else c",
    "a or b",
    "a.b or or",
    "a |> b",
    "a <| b",
    "~/x",
    "<nixpkgs>",
    "./a/",
    "./a//b",
    "./a/${b}",
    "/${a}",
    "http://example.com",
    "''unterminated",
    "''a'",
    "''a''\\",
    "{ ''${a}'' = 1; }",
    "\"unterminated",
    "\"unterminated ${",
    "\"bad ${ a \"",
    "/* unterminated",
    "1.5e",
    "9223372036854775808",
    "-9223372036854775808",
    "{ a = 1; a = 2; }",
    "{ a.b = 1; a = 2; }",
    "{ a = 1; a.b = 2; }",
    "{ inherit a; a = 1; }",
    "{ ${a} = 1; }",
    "{ \"${a}\" = 1; }",
    "a.${b}",
    "a.\"${b}\"",
    "a ? ${b}",
    "1.a",
    "a.1",
    "01.5",
    "a b c",
    "(a]",
    "1 2",
    "é",
    "{ a = 1; }\u{a0}",
    "a\u{2028}",
    "\x01",
    "{ a = 1; };",
    "...",
    "a,b",
    "$a",
    "'",
];

/// A large set in reverse order (a fleet's top level has one entry per
/// host), with and without a repeated name at the very end.
#[test]
fn large_sets_match_lower() {
    let entries: String = (0..3000)
        .rev()
        .map(|i| format!("h{i} = {{ n = {i}; }};\n"))
        .collect();
    assert_eq!(check(&format!("{{ {entries} }}")), Outcome::Same);
    assert_eq!(
        check(&format!("{{ {entries} h7 = {{ m = 1; }}; }}")),
        Outcome::Same
    );
    assert_eq!(
        check(&format!("{{ {entries} h7 = 1; }}")),
        Outcome::BothRefuse
    );
}

#[test]
fn supported_edge_cases_match_lower() {
    let not_handled: Vec<_> = SUPPORTED
        .iter()
        .filter(|t| check(t) != Outcome::Same)
        .collect();
    assert!(not_handled.is_empty(), "not handled: {not_handled:#?}");
}

#[test]
fn refused_inputs_bail() {
    for t in REFUSED {
        check(t);
        assert_eq!(fast_parse::parse(t), None, "{t:?}");
    }
}

#[test]
fn deep_nesting_bails_without_overflow() {
    for open in [
        "[",
        "{ a = ",
        "(",
        "\"${",
        "let a = 1; in ",
        "-",
        "!",
        "if a then ",
    ] {
        let text = open.repeat(100_000);
        assert_eq!(fast_parse::parse(&text), None, "{open:?}");
    }
    let deep = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
    assert_eq!(fast_parse::parse(&deep), None);
    // Moderate nesting is fine and matches lower.
    let ok = format!("{}1{}", "[ ".repeat(150), " ]".repeat(150));
    assert!(fast_parse::parse(&ok).is_some());
    assert_eq!(check_big_stack(&ok), Outcome::Same);
    let ok = format!("{}1{}", "{ a = ".repeat(60), "; }".repeat(60));
    assert!(fast_parse::parse(&ok).is_some());
    assert_eq!(check_big_stack(&ok), Outcome::Same);
    // Long operator chains grow the tree without nesting.
    let chain = vec!["1"; 100_000].join(" + ");
    assert_eq!(fast_parse::parse(&chain), None);
    let chain = vec!["1"; 500].join(" + ");
    assert!(fast_parse::parse(&chain).is_some());
    assert_eq!(check_big_stack(&chain), Outcome::Same);
    let chain = vec!["a"; 100_000].join(" ? b");
    assert_eq!(fast_parse::parse(&chain), None);
}

#[test]
fn every_prefix_of_hosts_nix_matches_or_bails() {
    let text = std::fs::read_to_string(repo_root().join("hosts.nix")).expect("hosts.nix");
    let mut same = 0;
    for (i, _) in text.char_indices() {
        if check(&text[..i]) == Outcome::Same {
            same += 1;
        }
    }
    eprintln!("prefixes of hosts.nix parsed: {same}");
}

// ------------------------------------------------------------------ random

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len())]
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// Random expressions in (and around) the subset, with random trivia.
struct Gen {
    rng: Rng,
}

const NAMES: &[&str] = &["a", "b", "c", "x-y", "z'", "_u", "true", "null", "or"];
const TRIVIA: &[&str] = &[
    "", "", "", " ", " ", "  ", "\n", "\r\n", "\t", "# c\n", "/* c */", "/**/", "\r",
];
const BINOPS: &[&str] = &[
    "+", "-", "*", "/", "++", "//", "==", "!=", "<", ">", "<=", ">=", "&&", "||", "->",
];

impl Gen {
    fn ws(&mut self) -> &'static str {
        self.rng.pick(TRIVIA)
    }

    fn name(&mut self) -> String {
        match self.rng.below(8) {
            0 => format!("\"{}\"", self.str_body(0)),
            _ => self.rng.pick(NAMES).to_string(),
        }
    }

    fn attrpath(&mut self) -> String {
        let mut p = self.name();
        while self.rng.chance(25) {
            let ws = self.ws();
            p = format!("{p}{ws}.{}", self.name());
        }
        p
    }

    fn str_body(&mut self, depth: usize) -> String {
        let mut s = String::new();
        for _ in 0..self.rng.below(5) {
            match self.rng.below(14) {
                0 if depth < 4 => s += &format!("${{{}}}", self.expr(depth + 1)),
                1 => s += "\\n",
                2 => s += "\\\"",
                3 => s += "\\$",
                4 => s += "$",
                5 => s += "$$",
                6 => s += "\\\\",
                7 => s += "é",
                8 => s += "\\t{",
                9 => s += "\n",
                10 => s += "}",
                _ => s += self.rng.pick(&["a", "hello", " ", "x-1"]),
            }
        }
        s
    }

    /// The inside of an indented string: indentation, blank lines, its
    /// escapes, lone quotes and dollars, interpolations.
    fn ind_body(&mut self, depth: usize) -> String {
        let mut s = String::new();
        for _ in 0..self.rng.below(8) {
            match self.rng.below(16) {
                0 if depth < 4 => s += &format!("${{{}}}", self.expr(depth + 1)),
                1 => s += "''$",
                2 => s += "'''",
                3 => s += "''\\n",
                4 => s += "'",
                5 => s += "$",
                6 => s += "$$",
                7 => s += "\r\n",
                8 => s += "\t",
                9 => s += "é",
                10 | 11 => s += "\n",
                12 => s += "  ",
                13 => s += "    ",
                14 => s += "''\\",
                _ => s += self.rng.pick(&["a", "hello", " ", "x-1", "\\"]),
            }
        }
        s
    }

    fn atom(&mut self, depth: usize) -> String {
        let leaf = depth > 5 || self.rng.chance(40);
        let choice = if leaf {
            self.rng.below(5)
        } else {
            self.rng.below(11)
        };
        match choice {
            0 => self.rng.pick(NAMES).to_string(),
            1 => self
                .rng
                .pick(&[
                    "0",
                    "1",
                    "42",
                    "007",
                    "1.5",
                    ".5",
                    "2.",
                    "1e3",
                    "9223372036854775807",
                ])
                .to_string(),
            2 if self.rng.chance(30) => format!("''{}''", self.ind_body(depth)),
            2 => format!("\"{}\"", self.str_body(depth)),
            3 => self
                .rng
                .pick(&["./a/b.nix", "../x", "/abs/y", "a/b", "./."])
                .to_string(),
            4 => self.rng.pick(&["{ }", "[ ]", "(a)"]).to_string(),
            5 => {
                let mut s = String::from("[");
                for _ in 0..self.rng.below(4) {
                    let ws = self.ws();
                    s += &format!("{ws} {}", self.simple(depth + 1));
                }
                s + " ]"
            }
            6 | 7 => self.set(depth),
            8 => format!("({})", self.expr(depth + 1)),
            9 => format!("rec {}", self.set(depth)),
            _ => format!("({}{})", self.ws(), self.expr(depth + 1)),
        }
    }

    fn set(&mut self, depth: usize) -> String {
        let mut s = String::from("{");
        s += &self.bindings(depth);
        s + "}"
    }

    fn bindings(&mut self, depth: usize) -> String {
        let mut s = String::new();
        for _ in 0..self.rng.below(4) {
            let ws = self.ws();
            s += ws;
            match self.rng.below(8) {
                0 => {
                    s += "inherit";
                    if self.rng.chance(50) {
                        s += &format!(" ({})", self.expr(depth + 1));
                    }
                    for _ in 0..self.rng.below(3) {
                        s += " ";
                        s += &self.name();
                    }
                    s += ";";
                }
                _ => {
                    let path = self.attrpath();
                    let value = self.expr(depth + 1);
                    let ws = self.ws();
                    s += &format!(" {path}{ws}= {value}{ws};");
                }
            }
        }
        s + " "
    }

    fn simple(&mut self, depth: usize) -> String {
        let a = self.atom(depth);
        if self.rng.chance(15) {
            let mut s = format!("{a}.{}", self.attrpath());
            if self.rng.chance(40) {
                s += &format!(" or {}", self.atom(depth + 1));
            }
            s
        } else {
            a
        }
    }

    fn operand(&mut self, depth: usize) -> String {
        let s = self.simple(depth);
        match self.rng.below(12) {
            0 => format!("-{s}"),
            1 => format!("- {s}"),
            2 => format!("!{s}"),
            3 => format!("{s} ? {}", self.attrpath()),
            _ => s,
        }
    }

    fn expr(&mut self, depth: usize) -> String {
        if depth > 5 {
            return self.operand(depth);
        }
        match self.rng.below(12) {
            0 => format!(
                "let{} {} in {}",
                self.ws(),
                self.bindings(depth),
                self.expr(depth + 1)
            ),
            1 => format!(
                "if {} then {} else {}",
                self.expr(depth + 1),
                self.expr(depth + 1),
                self.expr(depth + 1)
            ),
            2..=5 => {
                let mut s = self.operand(depth + 1);
                for _ in 0..self.rng.below(3) + 1 {
                    let op = self.rng.pick(BINOPS);
                    let (w1, w2) = (self.ws(), self.ws());
                    s = format!("{s}{w1}{op}{w2}{}", self.operand(depth + 1));
                }
                s
            }
            _ => self.operand(depth),
        }
    }
}

fn random_cases(seed: u64, n: usize) -> Vec<String> {
    let mut g = Gen { rng: Rng(seed) };
    (0..n)
        .map(|_| {
            let (a, b) = (g.ws(), g.ws());
            format!("{a}{}{b}", g.expr(0))
        })
        .collect()
}

/// How many cases the random tests run (`PVE_FAST_CASES` scales them).
fn cases(default: usize) -> usize {
    std::env::var("PVE_FAST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn seed() -> u64 {
    std::env::var("PVE_FAST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x9E37_79B9_7F4A_7C15)
}

#[test]
fn random_expressions_match_lower() {
    let seed = seed();
    let cases = random_cases(seed, cases(20_000));
    let mut counts = [0usize; 3];
    for t in &cases {
        let o = check(t);
        if o == Outcome::Bailed && std::env::var_os("PVE_FAST_SHOW").is_some() {
            eprintln!("BAILED {t:?}");
        }
        counts[o as usize] += 1;
    }
    let [same, bailed, refused] = counts;
    eprintln!(
        "random (seed {seed}): {} cases, same {same}, bailed where lower succeeds {bailed}, both refuse {refused}",
        cases.len()
    );
    // The generator stays mostly inside the subset; fast_parse must take
    // nearly all of what lower accepts. (It leaves to lower every file
    // whose `let` or `rec` binds `true` or `null`, two of the generator's
    // nine names, about one case in a hundred here.)
    assert!(same > cases.len() / 3, "too few accepted: {counts:?}");
    assert!(bailed * 30 <= same + bailed, "bails too often: {counts:?}");
}

/// Random edits of valid files: an input near the subset's edge is where a
/// parser that is not sure must say so.
#[test]
fn mutated_inputs_match_or_bail() {
    let seed = seed();
    let mut rng = Rng(seed ^ 0xDEAD_BEEF);
    let mut seeds: Vec<String> = repo_nix_texts().into_iter().map(|(_, t)| t).collect();
    seeds.extend(SUPPORTED.iter().map(|s| s.to_string()));
    seeds.extend(random_cases(seed.wrapping_add(1), 2_000));
    const PIECES: &[&str] = &[
        "-", "!", "(", ")", "{", "}", "[", "]", ";", ".", "or", "?", "/", "//", "\"", "${", "$",
        "\\", "\r", "\n", "#", "/*", "*/", ":", "@", "'", "''", "é", "1", ".5", "a", " ", "...",
        "=", "==", "<", ">", "+", "++", "*", "&&", "||", "->", "in", "let", "rec", "inherit", "if",
        "then", "else", "~", "<a>", "0", "e", ",", "\x0b", "\u{a0}", "a/b", "1/", "/2", "./", "x:",
        "\t", "''$", "'''", "''\\", "\\\"", "__curPos", "with", "\"a\"", "-1", "1.5e3", "0.", "<=",
    ];
    let mut counts = [0usize; 3];
    for i in 0..cases(30_000) {
        let mut t = seeds[i % seeds.len()].clone();
        for _ in 0..rng.below(3) + 1 {
            let bounds: Vec<usize> = t.char_indices().map(|(i, _)| i).chain([t.len()]).collect();
            let at = bounds[rng.below(bounds.len())];
            match rng.below(3) {
                0 => t.insert_str(at, rng.pick(PIECES)),
                1 => {
                    let end = bounds[(bounds.partition_point(|&b| b < at) + rng.below(4))
                        .min(bounds.len() - 1)];
                    t.replace_range(at..end, "");
                }
                _ => {
                    let end = bounds[(bounds.partition_point(|&b| b < at) + rng.below(4))
                        .min(bounds.len() - 1)];
                    let piece = rng.pick(PIECES);
                    t.replace_range(at..end, piece);
                }
            }
        }
        let o = check(&t);
        if o == Outcome::Bailed && std::env::var_os("PVE_FAST_SHOW").is_some() {
            eprintln!("BAILED {t:?}");
        }
        counts[o as usize] += 1;
    }
    eprintln!(
        "mutations (seed {seed}): same {}, bailed {}, both refuse {}",
        counts[0], counts[1], counts[2]
    );
}

#[test]
fn hostile_inputs_bail_without_panicking() {
    let text = std::fs::read_to_string(repo_root().join("hosts.nix")).expect("hosts.nix");
    let huge = [
        "\"".repeat(100_001),
        "/*".repeat(50_000),
        "${".repeat(50_000),
        "''".repeat(50_001),
        "\"\\".repeat(50_000),
    ];
    for t in &huge {
        assert_eq!(fast_parse::parse(t), None);
    }
    let small = [
        "\"".repeat(1_001),
        "\r".to_string(),
        "\u{feff}{ }".to_string(),
        "{ a = \"\\".to_string(),
        "{ a = \"${".to_string(),
        "{ a = ''${".to_string(),
        text.replace(';', "\u{a0};"),
        text.replace('=', ":"),
        "\0".repeat(10),
    ];
    for t in &small {
        assert_eq!(fast_parse::parse(t), None, "{t:?}");
        check_big_stack(t);
    }
}
