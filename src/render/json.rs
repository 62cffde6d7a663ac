//! How `config.tf.json` is laid out. A small fleet gets serde_json's
//! pretty printing (two-space indent, one value per line). A large one
//! would make that a 20 MB file of mostly indentation, so above
//! [`LINE_PER_BLOCK_ABOVE`] VMs (or with `pve render --compact`) the file
//! is written one block per line: the three outer levels indented as
//! before, each entry below them (a VM resource, with everything in it) on
//! a single compact line. Either way the bytes follow from hosts.nix alone,
//! and a change to one VM is a change to one line of a diff.

use std::io;

use serde::Serialize;
use serde_json::ser::{Formatter, Serializer};

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
        Layout::Pretty => value.serialize(&mut Serializer::pretty(&mut out))?,
        Layout::LinePerBlock => {
            let f = Indented::new(INDENTED_LEVELS);
            value.serialize(&mut Serializer::with_formatter(&mut out, f))?
        }
    }
    out.write_all(b"\n").map_err(serde_json::Error::io)
}

/// serde_json's `PrettyFormatter` (two spaces) for containers up to
/// `levels` deep, its `CompactFormatter` inside deeper ones.
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
