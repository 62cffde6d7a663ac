//! Fully evaluated Nix values. Every value remembers the text range of the
//! expression that produced it, so a diagnostic can point at it and an edit
//! can go straight to its syntax node.

use std::fmt::Write as _;
use std::path::Path;

pub use compact_str::CompactString;
use rowan::TextRange;

#[derive(Debug, Clone, PartialEq)]
pub struct Value {
    pub kind: Kind,
    pub span: TextRange,
}

/// A large fleet holds hundreds of thousands of values, so each variant is
/// kept to at most 24 bytes (a `Value` is 32, see the test at the end):
/// strings of up to 24 bytes (most names, addresses, settings) are stored
/// inline, and paths and lists are boxed at their exact size.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(CompactString),
    /// An absolute, lexically normalised path.
    Path(Box<Path>),
    List(Box<[Value]>),
    Attrs(Attrs),
}

/// An attribute: where its name was written and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Attr {
    pub name_span: TextRange,
    pub value: Value,
}

/// An attribute set: sorted by name (bytewise, as Nix sorts them), in one
/// exact-size allocation (a large fleet has tens of thousands of small
/// sets); a name of up to 24 bytes needs no allocation of its own.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Attrs(Box<[(CompactString, Attr)]>);

impl Attrs {
    /// From entries already sorted by name, without duplicates (as the
    /// evaluator produces them).
    pub fn from_sorted(entries: Vec<(CompactString, Attr)>) -> Self {
        debug_assert!(entries.windows(2).all(|w| w[0].0 < w[1].0));
        Attrs(entries.into_boxed_slice())
    }
    /// The entries, sorted by name (to merge sets read in parts).
    pub fn into_sorted_vec(self) -> Vec<(CompactString, Attr)> {
        self.0.into_vec()
    }
    pub fn get(&self, name: &str) -> Option<&Attr> {
        self.find(name).ok().map(|i| &self.0[i].1)
    }
    /// Where `name` is, or would go.
    fn find(&self, name: &str) -> Result<usize, usize> {
        let name = name.as_bytes();
        if self.0.len() > SMALL_SET {
            return self
                .0
                .binary_search_by(|(n, _)| cmp_bytes(n.as_bytes(), name));
        }
        // A host's sets have about ten names, which mostly differ in their
        // first byte: front to back, most are passed over on it, and the
        // search stops at the first name past `name` (the sort is by bytes,
        // so the answer is the binary search's).
        let first = name.first();
        for (i, (n, _)) in self.0.iter().enumerate() {
            let n = n.as_bytes();
            let order = match n.first().cmp(&first) {
                std::cmp::Ordering::Equal => cmp_bytes(n, name),
                other => other,
            };
            match order {
                std::cmp::Ordering::Less => {}
                std::cmp::Ordering::Equal => return Ok(i),
                std::cmp::Ordering::Greater => return Err(i),
            }
        }
        Err(self.0.len())
    }
    pub fn contains_key(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
    pub fn iter(&self) -> impl Iterator<Item = (&CompactString, &Attr)> {
        self.0.iter().map(|(n, a)| (n, a))
    }
    pub fn keys(&self) -> impl Iterator<Item = &CompactString> {
        self.0.iter().map(|(n, _)| n)
    }
    pub fn values(&self) -> impl Iterator<Item = &Attr> {
        self.0.iter().map(|(_, a)| a)
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    // Changes, for the editor's proofs (a few per run): each rebuilds the
    // set, which keeps lookups simple and the common read path small.

    pub fn insert(&mut self, name: impl Into<CompactString>, attr: Attr) -> Option<Attr> {
        let name = name.into();
        let found = self.find(&name);
        let mut v = std::mem::take(&mut self.0).into_vec();
        let old = match found {
            Ok(i) => Some(std::mem::replace(&mut v[i].1, attr)),
            Err(i) => {
                v.insert(i, (name, attr));
                None
            }
        };
        self.0 = v.into_boxed_slice();
        old
    }

    pub fn remove(&mut self, name: &str) -> Option<Attr> {
        let i = self.find(name).ok()?;
        let mut v = std::mem::take(&mut self.0).into_vec();
        let (_, attr) = v.remove(i);
        self.0 = v.into_boxed_slice();
        Some(attr)
    }

    /// The attribute `name`, inserted from `make` when missing.
    pub fn get_or_insert_with(&mut self, name: &str, make: impl FnOnce() -> Attr) -> &mut Attr {
        let i = match self.find(name) {
            Ok(i) => i,
            Err(i) => {
                let mut v = std::mem::take(&mut self.0).into_vec();
                v.insert(i, (name.into(), make()));
                self.0 = v.into_boxed_slice();
                i
            }
        };
        &mut self.0[i].1
    }
}

/// Sets up to this size are searched front to back ([`Attrs::find`]).
const SMALL_SET: usize = 16;

/// `a.cmp(b)` for names, which are short and mostly differ in their first
/// bytes: a loop here is several times cheaper than the call to `memcmp`
/// that `cmp` makes (lookups of the model's keys are a tenth of a read).
fn cmp_bytes(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    for (x, y) in a.iter().zip(b) {
        if x != y {
            return x.cmp(y);
        }
    }
    a.len().cmp(&b.len())
}

impl<'a> IntoIterator for &'a Attrs {
    type Item = (&'a CompactString, &'a Attr);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (CompactString, Attr)>,
        fn(&'a (CompactString, Attr)) -> (&'a CompactString, &'a Attr),
    >;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(n, a)| (n, a))
    }
}

impl Kind {
    /// A list of `items`, in an allocation of exactly their size. (Collecting
    /// results into a box would grow a vector from four items by doubling
    /// and then shrink it, which the allocator may do in place, keeping the
    /// slack.)
    pub fn try_list<E>(items: impl ExactSizeIterator<Item = Result<Value, E>>) -> Result<Kind, E> {
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            out.push(item?);
        }
        Ok(Kind::List(out.into_boxed_slice()))
    }

    /// The type name Nix uses in its messages ("a string", "a set", ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            Kind::Null => "null",
            Kind::Bool(_) => "a Boolean",
            Kind::Int(_) => "an integer",
            Kind::Float(_) => "a float",
            Kind::Str(_) => "a string",
            Kind::Path(_) => "a path",
            Kind::List(_) => "a list",
            Kind::Attrs(_) => "a set",
        }
    }
}

impl Value {
    pub fn as_attrs(&self) -> Option<&Attrs> {
        match &self.kind {
            Kind::Attrs(a) => Some(a),
            _ => None,
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Str(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_int(&self) -> Option<i64> {
        match self.kind {
            Kind::Int(i) => Some(i),
            _ => None,
        }
    }
    pub fn as_bool(&self) -> Option<bool> {
        match self.kind {
            Kind::Bool(b) => Some(b),
            _ => None,
        }
    }
    pub fn as_list(&self) -> Option<&[Value]> {
        match &self.kind {
            Kind::List(l) => Some(l),
            _ => None,
        }
    }

    /// JSON as `nix-instantiate --eval --strict --json` prints it (keys
    /// sorted, no spaces, floats with six significant digits), except that a
    /// path prints as its text relative to `base` (`./hosts/x.nix`) instead of
    /// being copied into the Nix store.
    pub fn to_nix_json(&self, base: &Path) -> String {
        let mut out = String::new();
        write_json(self, base, &mut out);
        out
    }
}

fn write_json(v: &Value, base: &Path, out: &mut String) {
    match &v.kind {
        Kind::Null => out.push_str("null"),
        Kind::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Kind::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Kind::Float(f) => out.push_str(&format_float(*f)),
        Kind::Str(s) => write_json_string(s, out),
        Kind::Path(p) => write_json_string(&display_path(p, base), out),
        Kind::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(item, base, out);
            }
            out.push(']');
        }
        Kind::Attrs(attrs) => {
            out.push('{');
            for (i, (name, attr)) in attrs.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_string(name, out);
                out.push(':');
                write_json(&attr.value, base, out);
            }
            out.push('}');
        }
    }
}

/// Nix 2.x escapes only quotes, backslashes and control characters.
fn write_json_string(s: &str, out: &mut String) {
    out.reserve(s.len() + 2);
    out.push('"');
    // Runs without a character to escape are copied at once (every byte
    // of a multi-byte character is >= 0x80, so slicing at these ASCII
    // positions keeps characters whole).
    let mut copied = 0;
    while let Some(i) = next_to_escape(s.as_bytes(), copied) {
        let b = s.as_bytes()[i];
        let escaped = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            _ => "",
        };
        out.push_str(&s[copied..i]);
        copied = i + 1;
        if escaped.is_empty() {
            let _ = write!(out, "\\u{:04x}", b);
        } else {
            out.push_str(escaped);
        }
    }
    out.push_str(&s[copied..]);
    out.push('"');
}

/// The first byte at or after `from` that JSON needs escaped: a quote, a
/// backslash or a control character. `pve eval` writes every string of
/// the fleet through here, so it looks at eight bytes at a time; a word
/// that may hold one is searched byte by byte.
fn next_to_escape(bytes: &[u8], from: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // The high bit of some byte is set if a byte of `w` is below `n`
    // (n <= 0x80), and never otherwise.
    let below = |w: u64, n: u8| w.wrapping_sub(ONES * u64::from(n)) & !w & HIGH;
    let zero = |w: u64| below(w, 1);
    let rest = bytes.get(from..)?;
    let (words, _) = rest.as_chunks::<8>();
    let mut clean = 0;
    for word in words {
        let w = u64::from_le_bytes(*word);
        if below(w, 0x20) | zero(w ^ (ONES * u64::from(b'"'))) | zero(w ^ (ONES * u64::from(b'\\')))
            != 0
        {
            break;
        }
        clean += 8;
    }
    let at = rest[clean..]
        .iter()
        .position(|&b| b < 0x20 || b == b'"' || b == b'\\')?;
    Some(from + clean + at)
}

/// A path as the user wrote it: `./x` relative to `base` when it lies below
/// it, otherwise absolute.
pub fn display_path(p: &Path, base: &Path) -> String {
    match p.strip_prefix(base) {
        Ok(rel) if rel.as_os_str().is_empty() => "./.".to_string(),
        Ok(rel) => format!("./{}", rel.display()),
        Err(_) => p.display().to_string(),
    }
}

/// C++ `ostream << double` with the default precision, as Nix prints floats
/// (`%g` with six significant digits: 0.1 + 0.2 is `0.3`, 1e20 is `1e+20`).
pub fn format_float(f: f64) -> String {
    if f.is_nan() {
        return if f.is_sign_negative() { "-nan" } else { "nan" }.to_string();
    }
    if f.is_infinite() {
        return if f < 0.0 { "-inf" } else { "inf" }.to_string();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    // Round to six significant digits first; the exponent of the rounded
    // value decides between fixed and scientific notation, as %g does.
    let sci = format!("{f:.5e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let m = trim_fraction(mantissa);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{m}e{sign}{:02}", exp.abs())
    } else {
        let decimals = (5 - exp).max(0) as usize;
        trim_fraction(&format!("{f:.decimals$}")).to_string()
    }
}

fn trim_fraction(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn find_is_the_binary_search(
            names in proptest::collection::btree_set("[a-c]{0,3}|[a-zA-Z_é]{0,6}", 0..40),
            probe in "[a-c]{0,3}|[a-zA-Z_é]{0,6}",
        ) {
            let entries: Vec<(CompactString, Attr)> = names
                .iter()
                .map(|n| {
                    let value = Value { kind: Kind::Null, span: TextRange::default() };
                    let attr = Attr { name_span: TextRange::default(), value };
                    (CompactString::from(n.as_str()), attr)
                })
                .collect();
            let want = entries.binary_search_by(|(n, _)| n.as_bytes().cmp(probe.as_bytes()));
            let attrs = Attrs::from_sorted(entries);
            proptest::prop_assert_eq!(attrs.find(&probe), want);
            for (i, n) in names.iter().enumerate() {
                proptest::prop_assert_eq!(attrs.find(n), Ok(i));
            }
        }
    }

    #[test]
    fn values_stay_small() {
        // A 10,000-host fleet holds about 400,000 values and 130,000
        // attribute entries: eight bytes more on either is megabytes.
        assert_eq!(std::mem::size_of::<CompactString>(), 24);
        assert_eq!(std::mem::size_of::<Kind>(), 24);
        assert_eq!(std::mem::size_of::<Value>(), 32);
        assert_eq!(std::mem::size_of::<Attr>(), 40);
        assert_eq!(std::mem::size_of::<(CompactString, Attr)>(), 64);
    }

    #[test]
    fn names_sort_bytewise_and_short_ones_stay_inline() {
        let attr = |n: usize| Attr {
            name_span: TextRange::default(),
            value: Value {
                kind: Kind::Int(n as i64),
                span: TextRange::default(),
            },
        };
        let mut set = Attrs::default();
        // Nix orders names by their bytes: upper case before lower case,
        // `_` between them, a multi-byte character last.
        for (i, name) in [
            "b",
            "é",
            "_x",
            "a-very-long-attribute-name-on-the-heap",
            "B",
        ]
        .into_iter()
        .enumerate()
        {
            assert!(set.insert(name, attr(i)).is_none());
        }
        let names: Vec<&str> = set.keys().map(CompactString::as_str).collect();
        assert_eq!(
            names,
            [
                "B",
                "_x",
                "a-very-long-attribute-name-on-the-heap",
                "b",
                "é"
            ]
        );
        assert!(!set
            .keys()
            .next()
            .is_some_and(CompactString::is_heap_allocated));
        assert_eq!(set.get("b").map(|a| &a.value.kind), Some(&Kind::Int(0)));
        assert!(set.insert("b", attr(9)).is_some());
        assert_eq!(set.remove("b").map(|a| a.value.kind), Some(Kind::Int(9)));
        assert!(!set.contains_key("b"));
    }

    #[test]
    fn debug_prints_as_with_string_pathbuf_and_vec() {
        // What the derived Debug printed before the compact types (a test
        // message or a future snapshot may show a value).
        let debug = |kind: Kind| format!("{kind:?}");
        let quoted = format!("{:?}", String::from("a\"b"));
        assert_eq!(debug(Kind::Str("a\"b".into())), format!("Str({quoted})"));
        let path = format!("{:?}", std::path::PathBuf::from("/a b"));
        assert_eq!(
            debug(Kind::Path(Path::new("/a b").into())),
            format!("Path({path})")
        );
        let item = Value {
            kind: Kind::Null,
            span: TextRange::default(),
        };
        let list = format!("{:?}", vec![item.clone()]);
        assert_eq!(debug(Kind::List(Box::new([item]))), format!("List({list})"));
    }

    #[test]
    fn floats_print_like_nix_2_8() {
        // Each expected text was printed by nix-instantiate 2.8 for the same value.
        let cases = [
            (1.0, "1"),
            (1.5, "1.5"),
            (0.1 + 0.2, "0.3"),
            (1e20, "1e+20"),
            (123456789.123, "1.23457e+08"),
            (-2.5, "-2.5"),
            (1.0e-7, "1e-07"),
        ];
        for (f, want) in cases {
            assert_eq!(format_float(f), want, "{f}");
        }
    }

    #[test]
    fn strings_escape_as_nix_prints_them() {
        let mut out = String::new();
        write_json_string("a\"b\\c\nd\re\tf\u{1}g é ${x} \u{7f}", &mut out);
        // Nix 2.8 escapes only quotes, backslashes and control characters
        // below 0x20 (DEL and non-ASCII pass through).
        let want = "\"a\\\"b\\\\c\\nd\\re\\tf\\u0001g é ${x} \u{7f}\"";
        assert_eq!(out, want);
        let back: String = serde_json::from_str(&out).unwrap_or_default();
        assert_eq!(back, "a\"b\\c\nd\re\tf\u{1}g é ${x} \u{7f}");
    }

    /// Escapes byte by byte, as `write_json_string` did before it looked at
    /// words: what it must still print.
    fn escape_simply(s: &str) -> String {
        let mut out = String::from('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    #[test]
    fn escapes_found_at_every_place_in_a_word() {
        // Each special byte at each offset of the first, second and last
        // word, among ASCII, a multi-byte character and DEL.
        for special in ["\"", "\\", "\n", "\u{1}", "\u{1f}"] {
            for len in 0..20 {
                for at in 0..=len {
                    let mut s: String = "aé\u{7f} ~".chars().cycle().take(len).collect();
                    let at = (0..=at).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0);
                    s.insert_str(at, special);
                    let mut out = String::new();
                    write_json_string(&s, &mut out);
                    assert_eq!(out, escape_simply(&s), "{s:?}");
                }
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn escapes_as_byte_by_byte(s in "(\\PC|[\"\\\\\u{0}-\u{1f}\u{7f}~ ])*") {
            let mut out = String::new();
            write_json_string(&s, &mut out);
            proptest::prop_assert_eq!(out, escape_simply(&s));
        }
    }

    #[test]
    fn paths_print_relative_to_the_fleet_root() {
        let base = Path::new("/fleet");
        assert_eq!(
            display_path(Path::new("/fleet/hosts/a.nix"), base),
            "./hosts/a.nix"
        );
        assert_eq!(display_path(Path::new("/etc/x"), base), "/etc/x");
    }
}
