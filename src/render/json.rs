//! How `config.tf.json` is laid out. A small fleet gets serde_json's
//! pretty printing (two-space indent, one value per line). A large one
//! would make that a 20 MB file of mostly indentation, so above
//! [`LINE_PER_BLOCK_ABOVE`] VMs (or with `pve render --compact`) the file
//! is written one block per line: the three outer levels indented as
//! before, each entry below them (a VM resource, with everything in it) on
//! a single compact line. Either way the bytes follow from hosts.nix alone,
//! and a change to one VM is a change to one line of a diff.

use std::io;

use serde::ser::Impossible;
use serde::Serialize;
#[cfg(test)]
use serde_json::ser::Serializer;
use serde_json::ser::{CharEscape, Formatter, PrettyFormatter};

/// More VMs than this and the file is written one block per line. Below it
/// (every fleet a person reads in full) the layout is the pretty one.
pub const LINE_PER_BLOCK_ABOVE: usize = 500;

/// Levels indented in the one-block-per-line layout: the top-level object,
/// its sections (`resource`, `import`, ...) and their groups (the resource
/// type); everything below is one line per entry.
const INDENTED_LEVELS: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// serde_json's pretty printing.
    Pretty,
    /// The outer levels pretty, each block below on one compact line.
    LinePerBlock,
}

impl Layout {
    /// The layout for a fleet of `vms` VMs, `compact` when asked for.
    pub fn choose(vms: usize, compact: bool) -> Layout {
        if compact || vms > LINE_PER_BLOCK_ABOVE {
            Layout::LinePerBlock
        } else {
            Layout::Pretty
        }
    }
}

/// `value` as JSON text in `layout`, with a final newline. `size_hint` is
/// the expected length (a large file is built in one allocation).
pub fn to_text<T: Serialize>(
    value: &T,
    layout: Layout,
    size_hint: usize,
) -> Result<String, serde_json::Error> {
    let mut out = Vec::with_capacity(size_hint);
    to_writer(value, layout, &mut out)?;
    // serde_json writes UTF-8 only.
    String::from_utf8(out).map_err(|e| serde_json::Error::io(io::Error::other(e)))
}

/// [`to_text`], written to `out` as it is made.
pub fn to_writer<T: Serialize, W: io::Write>(
    value: &T,
    layout: Layout,
    mut out: W,
) -> Result<(), serde_json::Error> {
    match layout {
        Layout::Pretty => value.serialize(&mut Json::new(&mut out, PrettyFormatter::new()))?,
        Layout::LinePerBlock => {
            let f = Indented::new(INDENTED_LEVELS);
            value.serialize(&mut Json::new(&mut out, f))?
        }
    }
    out.write_all(b"\n").map_err(serde_json::Error::io)
}

/// serde_json's `Serializer`, call for call on the same [`Formatter`], but
/// for its strings: serde_json looks every byte up in its escape table,
/// one at a time (at 10,000 hosts, 8.6 MB of strings and keys: 44 % of
/// writing config.tf.json), where this tests eight at once (see
/// [`next_escaped`]). The text is the same to the byte (the tests compare
/// the two). Only what config.tf.json is made of is written: no bytes, no
/// enum variant with data, and keys that are strings.
struct Json<W, F> {
    out: W,
    f: F,
}

impl<W: io::Write, F: Formatter> Json<W, F> {
    fn new(out: W, f: F) -> Self {
        Json { out, f }
    }

    fn str(&mut self, s: &str) -> io::Result<()> {
        self.f.begin_string(&mut self.out)?;
        // Where the run not yet written starts.
        let mut run = 0;
        while let Some(at) = next_escaped(s.as_bytes(), run) {
            if run < at {
                // The cut is at an ASCII byte: both parts are UTF-8.
                self.f.write_string_fragment(&mut self.out, &s[run..at])?;
            }
            self.f
                .write_char_escape(&mut self.out, char_escape(s.as_bytes()[at]))?;
            run = at + 1;
        }
        if run < s.len() {
            self.f.write_string_fragment(&mut self.out, &s[run..])?;
        }
        self.f.end_string(&mut self.out)
    }
}

/// The first [`escaped`] byte of `bytes` from `from` on, eight bytes at a
/// time: in each word, a byte below 0x20, or equal to `"` or `\\`, sets
/// its top bit in the mask. A subtraction borrows only out of a byte that
/// is such a byte, and only into the bytes above it, so a byte whose bit
/// is set wrongly always has a real one below it: the lowest bit set is
/// exact.
fn next_escaped(bytes: &[u8], from: usize) -> Option<usize> {
    const ONES: u64 = u64::from_le_bytes([1; 8]);
    const TOPS: u64 = ONES << 7;
    // Top bits of the bytes below `n` (n <= 0x80).
    let below = |w: u64, n: u8| w.wrapping_sub(ONES * u64::from(n)) & !w & TOPS;
    let mut at = from;
    while let Some(word) = bytes.get(at..).and_then(<[u8]>::first_chunk::<8>) {
        let w = u64::from_le_bytes(*word);
        let mask = below(w, 0x20) | below(w ^ (ONES * 0x22), 1) | below(w ^ (ONES * 0x5c), 1);
        if mask != 0 {
            return Some(at + (mask.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    let rest = bytes.get(at..)?;
    rest.iter().position(|&b| escaped(b)).map(|i| at + i)
}

/// The bytes JSON cannot hold as they are (serde_json's escape table).
fn escaped(b: u8) -> bool {
    (b < 0x20) | (b == b'"') | (b == b'\\')
}

/// How serde_json writes `b`, one of the [`escaped`] bytes.
fn char_escape(b: u8) -> CharEscape {
    match b {
        b'"' => CharEscape::Quote,
        b'\\' => CharEscape::ReverseSolidus,
        0x08 => CharEscape::Backspace,
        0x0c => CharEscape::FormFeed,
        b'\n' => CharEscape::LineFeed,
        b'\r' => CharEscape::CarriageReturn,
        b'\t' => CharEscape::Tab,
        b => CharEscape::AsciiControl(b),
    }
}

type Error = serde_json::Error;

/// What this serializer does not write: nothing in config.tf.json is one.
fn unsupported(what: &str) -> Error {
    serde::ser::Error::custom(format!("config.tf.json holds no {what}"))
}

impl<'a, W: io::Write, F: Formatter> serde::Serializer for &'a mut Json<W, F> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Compound<'a, W, F>;
    type SerializeTuple = Compound<'a, W, F>;
    type SerializeTupleStruct = Compound<'a, W, F>;
    type SerializeTupleVariant = Impossible<(), Error>;
    type SerializeMap = Compound<'a, W, F>;
    type SerializeStruct = Compound<'a, W, F>;
    type SerializeStructVariant = Impossible<(), Error>;

    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.f.write_bool(&mut self.out, v).map_err(Error::io)
    }
    fn serialize_i8(self, v: i8) -> Result<(), Error> {
        self.f.write_i8(&mut self.out, v).map_err(Error::io)
    }
    fn serialize_i16(self, v: i16) -> Result<(), Error> {
        self.f.write_i16(&mut self.out, v).map_err(Error::io)
    }
    fn serialize_i32(self, v: i32) -> Result<(), Error> {
        self.f.write_i32(&mut self.out, v).map_err(Error::io)
    }
    fn serialize_i64(self, v: i64) -> Result<(), Error> {
        self.f.write_i64(&mut self.out, v).map_err(Error::io)
    }
    fn serialize_u8(self, v: u8) -> Result<(), Error> {
        self.f.write_u8(&mut self.out, v).map_err(Error::io)
    }
    fn serialize_u16(self, v: u16) -> Result<(), Error> {
        self.f.write_u16(&mut self.out, v).map_err(Error::io)
    }
    fn serialize_u32(self, v: u32) -> Result<(), Error> {
        self.f.write_u32(&mut self.out, v).map_err(Error::io)
    }
    fn serialize_u64(self, v: u64) -> Result<(), Error> {
        self.f.write_u64(&mut self.out, v).map_err(Error::io)
    }
    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        if v.is_finite() {
            self.f.write_f32(&mut self.out, v).map_err(Error::io)
        } else {
            self.serialize_unit()
        }
    }
    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        if v.is_finite() {
            self.f.write_f64(&mut self.out, v).map_err(Error::io)
        } else {
            self.serialize_unit()
        }
    }
    fn serialize_char(self, v: char) -> Result<(), Error> {
        self.serialize_str(v.encode_utf8(&mut [0; 4]))
    }
    fn serialize_str(self, v: &str) -> Result<(), Error> {
        self.str(v).map_err(Error::io)
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<(), Error> {
        Err(unsupported("bytes"))
    }
    fn serialize_none(self) -> Result<(), Error> {
        self.serialize_unit()
    }
    fn serialize_some<T: ?Sized + Serialize>(self, v: &T) -> Result<(), Error> {
        v.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Error> {
        self.f.write_null(&mut self.out).map_err(Error::io)
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Error> {
        self.serialize_unit()
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        v: &T,
    ) -> Result<(), Error> {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), Error> {
        Err(unsupported("enum with data"))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, Error> {
        self.f.begin_array(&mut self.out).map_err(Error::io)?;
        if len == Some(0) {
            self.f.end_array(&mut self.out).map_err(Error::io)?;
        }
        Ok(Compound::new(self, len))
    }
    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleStruct, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Error> {
        Err(unsupported("enum with data"))
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, Error> {
        self.f.begin_object(&mut self.out).map_err(Error::io)?;
        if len == Some(0) {
            self.f.end_object(&mut self.out).map_err(Error::io)?;
        }
        Ok(Compound::new(self, len))
    }
    fn serialize_struct(self, _: &'static str, len: usize) -> Result<Self::SerializeStruct, Error> {
        self.serialize_map(Some(len))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Error> {
        Err(unsupported("enum with data"))
    }
}

/// An array or object being written, as serde_json's `Compound`.
struct Compound<'a, W, F> {
    json: &'a mut Json<W, F>,
    /// Closed already (empty, `len` 0).
    closed: bool,
    first: bool,
}

impl<'a, W: io::Write, F: Formatter> Compound<'a, W, F> {
    fn new(json: &'a mut Json<W, F>, len: Option<usize>) -> Self {
        Compound {
            json,
            closed: len == Some(0),
            first: true,
        }
    }

    fn element<T: ?Sized + Serialize>(&mut self, v: &T) -> Result<(), Error> {
        let j = &mut *self.json;
        j.f.begin_array_value(&mut j.out, self.first)
            .map_err(Error::io)?;
        self.first = false;
        v.serialize(&mut *j)?;
        j.f.end_array_value(&mut j.out).map_err(Error::io)
    }

    fn key<T: ?Sized + Serialize>(&mut self, k: &T) -> Result<(), Error> {
        let j = &mut *self.json;
        j.f.begin_object_key(&mut j.out, self.first)
            .map_err(Error::io)?;
        self.first = false;
        k.serialize(Key(&mut *j))?;
        j.f.end_object_key(&mut j.out).map_err(Error::io)
    }

    fn value<T: ?Sized + Serialize>(&mut self, v: &T) -> Result<(), Error> {
        let j = &mut *self.json;
        j.f.begin_object_value(&mut j.out).map_err(Error::io)?;
        v.serialize(&mut *j)?;
        j.f.end_object_value(&mut j.out).map_err(Error::io)
    }

    fn end_array(self) -> Result<(), Error> {
        if self.closed {
            return Ok(());
        }
        self.json.f.end_array(&mut self.json.out).map_err(Error::io)
    }

    fn end_object(self) -> Result<(), Error> {
        if self.closed {
            return Ok(());
        }
        self.json
            .f
            .end_object(&mut self.json.out)
            .map_err(Error::io)
    }
}

impl<W: io::Write, F: Formatter> serde::ser::SerializeSeq for Compound<'_, W, F> {
    type Ok = ();
    type Error = Error;
    fn serialize_element<T: ?Sized + Serialize>(&mut self, v: &T) -> Result<(), Error> {
        self.element(v)
    }
    fn end(self) -> Result<(), Error> {
        self.end_array()
    }
}

impl<W: io::Write, F: Formatter> serde::ser::SerializeTuple for Compound<'_, W, F> {
    type Ok = ();
    type Error = Error;
    fn serialize_element<T: ?Sized + Serialize>(&mut self, v: &T) -> Result<(), Error> {
        self.element(v)
    }
    fn end(self) -> Result<(), Error> {
        self.end_array()
    }
}

impl<W: io::Write, F: Formatter> serde::ser::SerializeTupleStruct for Compound<'_, W, F> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: ?Sized + Serialize>(&mut self, v: &T) -> Result<(), Error> {
        self.element(v)
    }
    fn end(self) -> Result<(), Error> {
        self.end_array()
    }
}

impl<W: io::Write, F: Formatter> serde::ser::SerializeMap for Compound<'_, W, F> {
    type Ok = ();
    type Error = Error;
    fn serialize_key<T: ?Sized + Serialize>(&mut self, k: &T) -> Result<(), Error> {
        self.key(k)
    }
    fn serialize_value<T: ?Sized + Serialize>(&mut self, v: &T) -> Result<(), Error> {
        self.value(v)
    }
    fn end(self) -> Result<(), Error> {
        self.end_object()
    }
}

impl<W: io::Write, F: Formatter> serde::ser::SerializeStruct for Compound<'_, W, F> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        k: &'static str,
        v: &T,
    ) -> Result<(), Error> {
        self.key(k)?;
        self.value(v)
    }
    fn end(self) -> Result<(), Error> {
        self.end_object()
    }
}

/// An object's key: a string (serde_json also quotes numbers and bools,
/// which config.tf.json has none of as keys).
struct Key<'a, W, F>(&'a mut Json<W, F>);

macro_rules! no_key {
    ($($name:ident($($t:ty),*) -> $ret:ty;)*) => {
        $(fn $name(self, $(_: $t),*) -> Result<$ret, Error> {
            Err(unsupported("key but a string"))
        })*
    };
}

impl<W: io::Write, F: Formatter> serde::Serializer for Key<'_, W, F> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Impossible<(), Error>;
    type SerializeTuple = Impossible<(), Error>;
    type SerializeTupleStruct = Impossible<(), Error>;
    type SerializeTupleVariant = Impossible<(), Error>;
    type SerializeMap = Impossible<(), Error>;
    type SerializeStruct = Impossible<(), Error>;
    type SerializeStructVariant = Impossible<(), Error>;

    fn serialize_str(self, v: &str) -> Result<(), Error> {
        self.0.str(v).map_err(Error::io)
    }
    fn serialize_char(self, v: char) -> Result<(), Error> {
        self.serialize_str(v.encode_utf8(&mut [0; 4]))
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        v: &T,
    ) -> Result<(), Error> {
        v.serialize(self)
    }
    no_key! {
        serialize_bool(bool) -> ();
        serialize_i8(i8) -> ();
        serialize_i16(i16) -> ();
        serialize_i32(i32) -> ();
        serialize_i64(i64) -> ();
        serialize_u8(u8) -> ();
        serialize_u16(u16) -> ();
        serialize_u32(u32) -> ();
        serialize_u64(u64) -> ();
        serialize_f32(f32) -> ();
        serialize_f64(f64) -> ();
        serialize_bytes(&[u8]) -> ();
        serialize_none() -> ();
        serialize_unit() -> ();
        serialize_unit_struct(&'static str) -> ();
        serialize_seq(Option<usize>) -> Self::SerializeSeq;
        serialize_tuple(usize) -> Self::SerializeTuple;
        serialize_tuple_struct(&'static str, usize) -> Self::SerializeTupleStruct;
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Self::SerializeTupleVariant;
        serialize_map(Option<usize>) -> Self::SerializeMap;
        serialize_struct(&'static str, usize) -> Self::SerializeStruct;
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Self::SerializeStructVariant;
    }
    fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> Result<(), Error> {
        Err(unsupported("key but a string"))
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), Error> {
        Err(unsupported("key but a string"))
    }
}

/// serde_json's `PrettyFormatter` (two spaces) for containers up to
/// `levels` deep, its `CompactFormatter` inside deeper ones.
#[derive(Clone)]
struct Indented {
    levels: usize,
    /// Containers open right now.
    depth: usize,
    has_value: bool,
}

impl Indented {
    fn new(levels: usize) -> Self {
        Indented {
            levels,
            depth: 0,
            has_value: false,
        }
    }

    /// Whether the innermost open container is laid out over lines.
    fn pretty(&self) -> bool {
        self.depth <= self.levels
    }

    fn newline_indent<W: ?Sized + io::Write>(&self, w: &mut W, depth: usize) -> io::Result<()> {
        w.write_all(b"\n")?;
        for _ in 0..depth {
            w.write_all(b"  ")?;
        }
        Ok(())
    }

    fn begin<W: ?Sized + io::Write>(&mut self, w: &mut W, open: &[u8]) -> io::Result<()> {
        self.depth += 1;
        self.has_value = false;
        w.write_all(open)
    }

    fn end<W: ?Sized + io::Write>(&mut self, w: &mut W, close: &[u8]) -> io::Result<()> {
        let pretty = self.pretty();
        self.depth -= 1;
        if pretty && self.has_value {
            self.newline_indent(w, self.depth)?;
        }
        w.write_all(close)
    }

    fn item<W: ?Sized + io::Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if !first {
            w.write_all(b",")?;
        }
        if self.pretty() {
            self.newline_indent(w, self.depth)?;
        }
        Ok(())
    }
}

impl Formatter for Indented {
    fn begin_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.begin(w, b"[")
    }
    fn end_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.end(w, b"]")
    }
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.item(w, first)
    }
    fn end_array_value<W: ?Sized + io::Write>(&mut self, _w: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }
    fn begin_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.begin(w, b"{")
    }
    fn end_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.end(w, b"}")
    }
    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.item(w, first)
    }
    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(if self.pretty() { b": " } else { b":" })
    }
    fn end_object_value<W: ?Sized + io::Write>(&mut self, _w: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> serde_json::Value {
        json!({
            "resource": { "vm": {
                "a": { "cpu": [ { "cores": 2 } ], "name": "a", "tags": [] },
                "b": { "cpu": [ { "cores": 4 } ], "name": "b", "e": {} }
            } },
            "output": { "o": { "value": "x" } },
            "top": [ 1, [ 2, 3 ] ],
            "empty": {}
        })
    }

    #[test]
    fn indented_without_a_limit_is_serde_pretty_to_the_byte() {
        let v = sample();
        let mut ours = Vec::new();
        v.serialize(&mut Serializer::with_formatter(
            &mut ours,
            Indented::new(usize::MAX),
        ))
        .unwrap();
        assert_eq!(
            String::from_utf8(ours).unwrap(),
            serde_json::to_string_pretty(&v).unwrap()
        );
    }

    #[test]
    fn each_block_below_the_third_level_is_one_line() {
        let text = to_text(&sample(), Layout::LinePerBlock, 0).unwrap();
        let want = r#"{
  "empty": {},
  "output": {
    "o": {
      "value": "x"
    }
  },
  "resource": {
    "vm": {
      "a": {"cpu":[{"cores":2}],"name":"a","tags":[]},
      "b": {"cpu":[{"cores":4}],"e":{},"name":"b"}
    }
  },
  "top": [
    1,
    [
      2,
      3
    ]
  ]
}
"#;
        assert_eq!(text, want);
        // The same value, whatever the layout.
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, sample());
    }

    /// `value` by serde_json's own serializer and by [`Json`], each with
    /// its own copy of `f`.
    fn both<T: Serialize, F: Formatter + Clone>(value: &T, f: F) -> (String, String) {
        let mut theirs = Vec::new();
        value
            .serialize(&mut Serializer::with_formatter(&mut theirs, f.clone()))
            .unwrap();
        let mut ours = Vec::new();
        value.serialize(&mut Json::new(&mut ours, f)).unwrap();
        (
            String::from_utf8(theirs).unwrap(),
            String::from_utf8(ours).unwrap(),
        )
    }

    /// Every layout: pretty, one block per line at each depth, compact.
    fn agree<T: Serialize>(value: &T) {
        let (theirs, ours) = both(value, PrettyFormatter::new());
        assert_eq!(ours, theirs);
        for levels in [0, 1, 2, 3, 4, usize::MAX] {
            let (theirs, ours) = both(value, Indented::new(levels));
            assert_eq!(ours, theirs, "{levels} levels");
        }
        let (theirs, ours) = both(value, serde_json::ser::CompactFormatter);
        assert_eq!(ours, theirs);
    }

    #[test]
    fn json_writes_what_serde_json_writes_for_every_kind_of_value() {
        #[derive(Serialize)]
        enum Kind {
            Plain,
        }
        #[derive(Serialize)]
        struct Id(u32);
        #[derive(Serialize)]
        struct Block {
            none: Option<String>,
            some: Option<&'static str>,
            #[serde(rename = "ty\"pe")]
            kind: Kind,
            id: Id,
            pair: (i8, u16),
            floats: Vec<f64>,
            small: f32,
            chars: [char; 3],
            empty: Vec<u8>,
            map: std::collections::BTreeMap<String, i64>,
            empty_map: std::collections::BTreeMap<String, i64>,
        }
        agree(&Block {
            none: None,
            some: Some("a\u{0}\"\\\u{7f}\u{2028}é\n\t\r\u{8}\u{c}\u{1f}"),
            kind: Kind::Plain,
            id: Id(7),
            pair: (-3, 65535),
            floats: vec![0.0, -1.5, 1e300, f64::NAN, f64::INFINITY, 0.1],
            small: 0.3,
            chars: ['"', 'x', '\u{1}'],
            empty: Vec::new(),
            map: [("b\\".to_string(), -1), ("a".to_string(), i64::MIN)].into(),
            empty_map: Default::default(),
        });
        agree(&sample());
    }

    /// Every byte JSON escapes, and every other, at every place in a
    /// word and with another one after it: the first is found.
    #[test]
    fn next_escaped_finds_the_first_byte_to_escape() {
        let bytes = [
            0x00, 0x01, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x5b, 0x5c, 0x5d, 0x7f, 0x80, 0xff,
        ];
        let len = 19;
        for i in 0..len {
            for j in i..len {
                for &a in &bytes {
                    for &b in &bytes {
                        let mut text = vec![b'a'; len];
                        text[i] = a;
                        text[j] = b;
                        for from in [0, 1, i, i + 1] {
                            let naive = (from..len).find(|&k| escaped(text[k]));
                            assert_eq!(next_escaped(&text, from), naive, "{text:?} from {from}");
                        }
                    }
                }
            }
        }
    }

    fn value() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        use serde_json::Value;
        let text = prop_oneof![
            ".{0,40}",
            proptest::collection::vec(
                prop_oneof![
                    Just('"'),
                    Just('\\'),
                    Just('a'),
                    Just('é'),
                    (0u8..0x20).prop_map(char::from)
                ],
                0..24
            )
            .prop_map(|c| c.into_iter().collect::<String>()),
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            text.clone().prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::btree_map(text.clone(), inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        #[test]
        fn json_writes_what_serde_json_writes(v in value()) {
            agree(&v);
        }
    }

    #[test]
    fn the_layout_follows_the_fleet_size_or_the_flag() {
        assert_eq!(Layout::choose(3, false), Layout::Pretty);
        assert_eq!(Layout::choose(LINE_PER_BLOCK_ABOVE, false), Layout::Pretty);
        assert_eq!(
            Layout::choose(LINE_PER_BLOCK_ABOVE + 1, false),
            Layout::LinePerBlock
        );
        assert_eq!(Layout::choose(3, true), Layout::LinePerBlock);
    }
}
