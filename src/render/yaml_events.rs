//! A YAML text as a stream of parser events, one at a time: libyaml's
//! parser (the one serde_yaml_ng uses) without serde_yaml_ng's loader,
//! which keeps every event of the document before it deserialises (about
//! 40 MiB for a 10,000-host `.sops.yaml`). The only `unsafe` in pve: the
//! calls into unsafe-libyaml, each as serde_yaml_ng makes them.

use std::collections::HashSet;
use std::ffi::CStr;
use std::mem::MaybeUninit;

use unsafe_libyaml as unsafe_sys;

/// One parser event, borrowed for the length of the callback.
pub enum Event<'e> {
    DocumentStart,
    /// A scalar: its anchor, if any, and its value (UTF-8, unescaped).
    Scalar {
        anchor: Option<&'e [u8]>,
        value: &'e [u8],
    },
    Alias(&'e [u8]),
    /// The start of a mapping (`true`) or a sequence.
    Start {
        anchor: Option<&'e [u8]>,
        mapping: bool,
    },
    End,
    /// Stream start or end, document end.
    Other,
}

/// Calls `each` with every event of `text`, in order; stops at the first
/// error, `each`'s or the parser's (with its line and column, 1-based).
pub fn for_each(
    text: &str,
    mut each: impl FnMut(Event<'_>) -> Result<(), String>,
) -> Result<(), String> {
    // The parser is large and must not move while it reads `text`.
    let mut parser: Box<MaybeUninit<unsafe_sys::yaml_parser_t>> = Box::new(MaybeUninit::uninit());
    let p = parser.as_mut_ptr();
    // SAFETY: `p` points to memory that lives (boxed, unmoved) until the
    // parser is deleted below, as does `text`; events are deleted after
    // their last use, and nothing borrowed from one outlives the callback.
    unsafe {
        if unsafe_sys::yaml_parser_initialize(p).fail {
            return Err("the YAML parser could not start (out of memory)".into());
        }
        unsafe_sys::yaml_parser_set_encoding(p, unsafe_sys::YAML_UTF8_ENCODING);
        unsafe_sys::yaml_parser_set_input_string(p, text.as_ptr(), text.len() as u64);
        let result = events(p, &mut each);
        unsafe_sys::yaml_parser_delete(p);
        result
    }
}

/// The loop of [`for_each`]. SAFETY: `p` is an initialised parser with
/// its input set.
unsafe fn events(
    p: *mut unsafe_sys::yaml_parser_t,
    each: &mut impl FnMut(Event<'_>) -> Result<(), String>,
) -> Result<(), String> {
    loop {
        let mut event = MaybeUninit::<unsafe_sys::yaml_event_t>::uninit();
        let e = event.as_mut_ptr();
        // SAFETY: as the caller promised; `e` is written by the parser
        // when it succeeds, and deleted once.
        unsafe {
            if unsafe_sys::yaml_parser_parse(p, e).fail {
                return Err(parse_error(p));
            }
            let end = (*e).type_ == unsafe_sys::YAML_STREAM_END_EVENT;
            let result = each(convert(&*e));
            unsafe_sys::yaml_event_delete(e);
            result?;
            if end {
                return Ok(());
            }
        }
    }
}

/// SAFETY: `e` is an event the parser just produced (its pointers are
/// valid, and non-null where libyaml promises it).
unsafe fn convert(e: &unsafe_sys::yaml_event_t) -> Event<'_> {
    // SAFETY: the union member read is the one `type_` names.
    unsafe {
        match e.type_ {
            unsafe_sys::YAML_DOCUMENT_START_EVENT => Event::DocumentStart,
            unsafe_sys::YAML_SCALAR_EVENT => Event::Scalar {
                anchor: c_bytes(e.data.scalar.anchor),
                value: std::slice::from_raw_parts(
                    e.data.scalar.value,
                    e.data.scalar.length as usize,
                ),
            },
            unsafe_sys::YAML_ALIAS_EVENT => {
                Event::Alias(c_bytes(e.data.alias.anchor).unwrap_or_default())
            }
            unsafe_sys::YAML_SEQUENCE_START_EVENT => Event::Start {
                anchor: c_bytes(e.data.sequence_start.anchor),
                mapping: false,
            },
            unsafe_sys::YAML_MAPPING_START_EVENT => Event::Start {
                anchor: c_bytes(e.data.mapping_start.anchor),
                mapping: true,
            },
            unsafe_sys::YAML_SEQUENCE_END_EVENT | unsafe_sys::YAML_MAPPING_END_EVENT => Event::End,
            _ => Event::Other,
        }
    }
}

/// SAFETY: `s` is null or a NUL-terminated string that outlives `'a`.
unsafe fn c_bytes<'a>(s: *const u8) -> Option<&'a [u8]> {
    // SAFETY: as the caller promised.
    (!s.is_null()).then(|| unsafe { CStr::from_ptr(s.cast()) }.to_bytes())
}

/// SAFETY: `p` is a parser that just failed.
unsafe fn parse_error(p: *const unsafe_sys::yaml_parser_t) -> String {
    // SAFETY: libyaml sets `problem` (or leaves it null) and its mark.
    unsafe {
        let parser = &*p;
        let problem = c_bytes(parser.problem.cast())
            .map(String::from_utf8_lossy)
            .unwrap_or_else(|| "the YAML parser failed".into());
        let mark = parser.problem_mark;
        format!(
            "{problem} at line {} column {}",
            mark.line + 1,
            mark.column + 1
        )
    }
}

/// What a rendered `.sops.yaml` says, as far as the read-back compares:
/// its keys (compared one by one with the recipients meant) and how many
/// creation rules it has. Strict where the loaded read-back was: one
/// document, a mapping on top, each of `keys`/`creation_rules` once and a
/// list, every key a string, every alias naming an anchor before it.
pub struct SopsTally<'r> {
    recipients: &'r [&'r str],
    pub keys: usize,
    pub keys_differ: bool,
    pub rules: usize,
    anchors: HashSet<Vec<u8>>,
    documents: usize,
    depth: usize,
    section: Section,
    seen: [bool; 2],
    /// Inside the top-level mapping: whether the next node is a key.
    at_key: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum Section {
    Keys,
    Rules,
    Other,
}

enum Node<'e> {
    Scalar(&'e [u8]),
    Alias,
    Mapping,
    Sequence,
}

impl<'r> SopsTally<'r> {
    /// Reads `text` and tallies it against `recipients`.
    pub fn read(text: &str, recipients: &'r [&'r str]) -> Result<Self, String> {
        let mut t = SopsTally {
            recipients,
            keys: 0,
            keys_differ: false,
            rules: 0,
            anchors: HashSet::new(),
            documents: 0,
            depth: 0,
            section: Section::Other,
            seen: [false; 2],
            at_key: false,
        };
        for_each(text, |e| t.event(e))?;
        Ok(t)
    }

    fn event(&mut self, e: Event<'_>) -> Result<(), String> {
        match e {
            Event::DocumentStart => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err("it holds more than one YAML document".into());
                }
            }
            Event::Scalar { anchor, value } => {
                self.anchor(anchor);
                self.node(Node::Scalar(value))?;
            }
            Event::Alias(name) => {
                if !self.anchors.contains(name) {
                    return Err(format!(
                        "the alias *{} names no anchor",
                        String::from_utf8_lossy(name)
                    ));
                }
                self.node(Node::Alias)?;
            }
            Event::Start { anchor, mapping } => {
                self.anchor(anchor);
                self.node(if mapping {
                    Node::Mapping
                } else {
                    Node::Sequence
                })?;
                self.depth += 1;
            }
            Event::End => {
                self.depth = self.depth.saturating_sub(1);
                if self.depth == 1 {
                    self.at_key = true;
                }
            }
            Event::Other => {}
        }
        Ok(())
    }

    fn anchor(&mut self, anchor: Option<&[u8]>) {
        if let Some(a) = anchor {
            self.anchors.insert(a.to_vec());
        }
    }

    fn node(&mut self, n: Node<'_>) -> Result<(), String> {
        match self.depth {
            0 => match n {
                Node::Mapping => self.at_key = true,
                _ => return Err("its top level is not a mapping".into()),
            },
            1 if self.at_key => {
                let Node::Scalar(key) = n else {
                    return Err("a top-level key is not a string".into());
                };
                self.section = match key {
                    b"keys" => Section::Keys,
                    b"creation_rules" => Section::Rules,
                    _ => Section::Other,
                };
                if self.section != Section::Other {
                    let seen = &mut self.seen[(self.section == Section::Rules) as usize];
                    if *seen {
                        return Err(format!("it has `{}` twice", String::from_utf8_lossy(key)));
                    }
                    *seen = true;
                }
                self.at_key = false;
            }
            1 => {
                match (self.section, &n) {
                    (Section::Other, _) | (_, Node::Sequence) => {}
                    (Section::Keys, _) => return Err("its `keys` is not a list".into()),
                    (Section::Rules, _) => return Err("its `creation_rules` is not a list".into()),
                }
                // A scalar or alias value ends here; a collection at its end.
                self.at_key = matches!(n, Node::Scalar(_) | Node::Alias);
            }
            2 => match self.section {
                Section::Keys => {
                    let Node::Scalar(value) = n else {
                        return Err("one of its keys is not a string".into());
                    };
                    let meant = self.recipients.get(self.keys).map(|r| r.as_bytes());
                    self.keys_differ |= meant != Some(value);
                    self.keys += 1;
                }
                Section::Rules => self.rules += 1,
                Section::Other => {}
            },
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(text: &str, recipients: &[&str]) -> Result<(usize, bool, usize), String> {
        SopsTally::read(text, recipients).map(|t| (t.keys, t.keys_differ, t.rules))
    }

    #[test]
    fn counts_keys_and_rules_of_a_sops_file() {
        let text = "keys:\n  - &a age1x # alice\n  - &h age1y\ncreation_rules:\n  - path_regex: '^a/'\n    key_groups:\n      - age:\n          - *a\n          - *h\n  - path_regex: '.*'\n    key_groups: [{age: [*a]}]\n";
        assert_eq!(tally(text, &["age1x", "age1y"]), Ok((2, false, 2)));
        assert_eq!(tally(text, &["age1x", "age1z"]), Ok((2, true, 2)));
        assert_eq!(tally("creation_rules: []\n", &[]), Ok((0, false, 0)));
    }

    #[test]
    fn refuses_what_the_loaded_read_back_refused() {
        for (text, why) in [
            ("keys: [a\n", "did not find expected"),
            ("keys: []\n---\nkeys: []\n", "more than one"),
            ("- a\n", "not a mapping"),
            ("keys: a\n", "`keys` is not a list"),
            ("keys: [{a: b}]\n", "not a string"),
            ("keys: []\nkeys: []\n", "twice"),
            ("creation_rules: [*nope]\n", "names no anchor"),
            ("creation_rules: x\n", "`creation_rules` is not a list"),
        ] {
            let err = tally(text, &[]).expect_err(text);
            assert!(err.contains(why), "{text:?}: {err}");
        }
    }
}
