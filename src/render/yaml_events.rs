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
    /// `implicit`: without `---`.
    DocumentStart {
        implicit: bool,
    },
    /// `implicit`: without `...`.
    DocumentEnd {
        implicit: bool,
    },
    /// A scalar: its anchor, if any, and its value (UTF-8, unescaped);
    /// `plain` when unquoted (not `'…'`, `"…"`, `|` or `>`), `tagged` when
    /// it has a tag (`!x`, `!!str`).
    Scalar {
        anchor: Option<&'e [u8]>,
        value: &'e [u8],
        plain: bool,
        tagged: bool,
    },
    Alias(&'e [u8]),
    /// The start of a mapping (`true`) or a sequence; `block` in block
    /// style (not `[...]`/`{...}`), `column` where it starts (0-based).
    Start {
        anchor: Option<&'e [u8]>,
        mapping: bool,
        block: bool,
        column: u64,
        tagged: bool,
    },
    End,
    /// Stream start or end.
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
            unsafe_sys::YAML_DOCUMENT_START_EVENT => Event::DocumentStart {
                implicit: e.data.document_start.implicit,
            },
            unsafe_sys::YAML_DOCUMENT_END_EVENT => Event::DocumentEnd {
                implicit: e.data.document_end.implicit,
            },
            unsafe_sys::YAML_SCALAR_EVENT => Event::Scalar {
                anchor: c_bytes(e.data.scalar.anchor),
                value: std::slice::from_raw_parts(
                    e.data.scalar.value,
                    e.data.scalar.length as usize,
                ),
                plain: e.data.scalar.style == unsafe_sys::YAML_PLAIN_SCALAR_STYLE,
                tagged: !e.data.scalar.tag.is_null(),
            },
            unsafe_sys::YAML_ALIAS_EVENT => {
                Event::Alias(c_bytes(e.data.alias.anchor).unwrap_or_default())
            }
            unsafe_sys::YAML_SEQUENCE_START_EVENT => Event::Start {
                anchor: c_bytes(e.data.sequence_start.anchor),
                mapping: false,
                block: e.data.sequence_start.style == unsafe_sys::YAML_BLOCK_SEQUENCE_STYLE,
                column: e.start_mark.column,
                tagged: !e.data.sequence_start.tag.is_null(),
            },
            unsafe_sys::YAML_MAPPING_START_EVENT => Event::Start {
                anchor: c_bytes(e.data.mapping_start.anchor),
                mapping: true,
                block: e.data.mapping_start.style == unsafe_sys::YAML_BLOCK_MAPPING_STYLE,
                column: e.start_mark.column,
                tagged: !e.data.mapping_start.tag.is_null(),
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
    /// The last top-level value is `creation_rules`' list, in block style
    /// at [`RULE_COLUMN`] (see [`SopsTally::read_in_two`]).
    rules_last: bool,
    /// The document ends with `...`.
    explicit_end: bool,
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
    /// `Some(column)` in block style.
    Sequence(Option<u64>),
}

/// The column of the rendered `creation_rules`' items (`  - path_regex`).
const RULE_COLUMN: u64 = 2;

/// Below this size the text is read in one piece: a second thread would
/// cost more than it saves.
const SPLIT_FROM: usize = 64 * 1024;

impl<'r> SopsTally<'r> {
    /// What the tests compare between two reads: the keys, whether one
    /// differs from the recipient meant, and the rules.
    #[cfg(test)]
    pub(crate) fn counts(&self) -> (usize, bool, usize) {
        (self.keys, self.keys_differ, self.rules)
    }

    /// Reads `text` and tallies it against `recipients`; a large text in
    /// two parts on two threads when it can (see [`Self::read_in_two`]),
    /// else (and whenever the two parts do not prove the whole) in one.
    pub fn read(text: &str, recipients: &'r [&'r str]) -> Result<Self, String> {
        if let Some(t) = Self::read_rendered(text, recipients) {
            return Ok(t);
        }
        if text.len() >= SPLIT_FROM {
            if let Some(t) = rule_cut(text).and_then(|cut| Self::read_in_two(text, cut, recipients))
            {
                return Ok(t);
            }
        }
        Self::read_whole(text, recipients)
    }

    /// Reads `text` in one piece: the reference the two parts must match.
    pub fn read_whole(text: &str, recipients: &'r [&'r str]) -> Result<Self, String> {
        let mut t = Self::new(recipients);
        for_each(text, |e| t.event(e))?;
        Ok(t)
    }

    fn new(recipients: &'r [&'r str]) -> Self {
        SopsTally {
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
            rules_last: false,
            explicit_end: false,
        }
    }

    /// `text` tallied without the parser, when every line of it is one the
    /// template writes with plain pieces (every rendered text whose admins,
    /// host names and `_sops.rules` are plain ASCII); `None` for any other
    /// text, which the parser then reads. The lines, in this order (`T`
    /// printable ASCII, 0x20-0x7E; `Q` the same without `'`; `N` an anchor
    /// name, `[A-Za-z0-9_-]+`; `R` a recipient, `[a-z0-9]+`):
    ///
    /// ```text
    /// #T                          (any number)
    /// keys:
    ///   - &N R # T                (one or more)
    /// creation_rules:
    ///   # T                       (any number, before each rule)
    ///   - path_regex: 'Q'         (one or more rules of these four lines)
    ///     key_groups:
    ///       - age:
    ///           - *N              (one or more; N an anchor of `keys`)
    /// ```
    ///
    /// Each line means one thing to any YAML parser: a comment runs from
    /// ` #` (or a `#` that starts the line) to the line's end, whatever `T`
    /// holds; `R` is a plain scalar that the comment after it ends; `Q`
    /// inside single quotes is literal (no `'` to close or double it, no
    /// line break); `N` holds only the characters libyaml allows in an
    /// anchor. The indentation is fixed, so so is the structure: a mapping
    /// of `keys` (a list of the `R`s, in order) and `creation_rules` (a
    /// list of one mapping per `path_regex` line), one document, every
    /// alias naming an anchor before it, no line break but LF. That is all
    /// the parser's read-back proves (the same tally; the tests compare
    /// the two), at a fraction of its cost: libyaml decodes and buffers
    /// every character, ~100 instructions a byte.
    pub fn read_rendered(text: &str, recipients: &'r [&'r str]) -> Option<Self> {
        #[derive(PartialEq)]
        enum At {
            Header,
            Keys,
            Rules,
            Comment,
            KeyGroups,
            AgeKey,
            Age,
            Aliases,
        }
        // Folds without an early exit, which the compiler vectorises.
        let printable = |t: &[u8]| t.iter().fold(true, |ok, b| ok & matches!(b, 0x20..=0x7e));
        let name = |t: &[u8]| {
            !t.is_empty()
                && t.iter().fold(true, |ok, b| {
                    ok & (b.is_ascii_alphanumeric() | matches!(b, b'-' | b'_'))
                })
        };
        let mut t = Self::new(recipients);
        let mut anchors: rustc_hash::FxHashSet<&[u8]> = Default::default();
        let mut at = At::Header;
        let mut lines = text.as_bytes().strip_suffix(b"\n")?;
        while !lines.is_empty() {
            let end = memchr::memchr(b'\n', lines).unwrap_or(lines.len());
            let line = &lines[..end];
            lines = lines.get(end + 1..).unwrap_or_default();
            at = match at {
                At::Header if line == b"keys:" => At::Keys,
                At::Header => printable(line.strip_prefix(b"#")?).then_some(At::Header)?,
                At::Keys if line == b"creation_rules:" && t.keys > 0 => At::Rules,
                At::Keys => {
                    let rest = line.strip_prefix(b"  - &")?;
                    let space = memchr::memchr(b' ', rest)?;
                    let (anchor, rest) = (&rest[..space], &rest[space + 1..]);
                    let plain = rest
                        .iter()
                        .position(|b| !(b.is_ascii_lowercase() || b.is_ascii_digit()))?;
                    let (recipient, comment) = rest.split_at(plain);
                    if plain == 0 || !name(anchor) || !printable(comment.strip_prefix(b" # ")?) {
                        return None;
                    }
                    anchors.insert(anchor);
                    let meant = t.recipients.get(t.keys).map(|r| r.as_bytes());
                    t.keys_differ |= meant != Some(recipient);
                    t.keys += 1;
                    At::Keys
                }
                At::Age | At::Aliases if line.starts_with(b"          - *") => {
                    anchors.contains(&line[13..]).then_some(At::Aliases)?
                }
                At::Age => return None,
                At::Rules | At::Comment | At::Aliases => {
                    if let Some(comment) = line.strip_prefix(b"  # ") {
                        printable(comment).then_some(At::Comment)?
                    } else {
                        let regex = line
                            .strip_prefix(b"  - path_regex: '")?
                            .strip_suffix(b"'")?;
                        if !printable(regex) || regex.contains(&b'\'') {
                            return None;
                        }
                        t.rules += 1;
                        At::KeyGroups
                    }
                }
                At::KeyGroups => (line == b"    key_groups:").then_some(At::AgeKey)?,
                At::AgeKey => (line == b"      - age:").then_some(At::Age)?,
            };
        }
        (at == At::Aliases).then_some(t)
    }

    /// `text` read as a head (`..cut`, on this thread) and a tail (`cut..`,
    /// on another), each a YAML stream of its own (libyaml's parser only
    /// names the anchor an alias refers to, so the tail parses alone).
    /// `None` unless together they prove what the whole would: then the
    /// caller reads the whole, which gives the error (with its position)
    /// or the result as before. A pass means the same tally, because:
    ///
    /// - `cut` is at the start of a line; the head parses to its end, so at
    ///   the cut no quoted scalar and no flow collection (`[`, `{`) is open
    ///   (either would have failed at the head's end), and no simple key is
    ///   pending (keys do not span lines);
    /// - the head's last top-level value is `creation_rules`' block list at
    ///   column 2, and its document does not end with `...`: at the cut the
    ///   whole text's parser is inside that list;
    /// - the tail is one document without `---`, whose only node is a block
    ///   list at column 2 and which has no anchors. Its first item line, at
    ///   column 2, ends in the whole text every deeper node the head left
    ///   open (a scalar or collection nested in an item is indented more)
    ///   and continues `creation_rules`' list; none of the tail's lines
    ///   goes left of column 2 with content (the tail's list would end
    ///   there, and a second node or document is an error on its own), so
    ///   the whole text's parser reads the tail exactly as the tail's own
    ///   did: the same items, the same aliases;
    /// - every alias in the tail names an anchor of the head (the tail has
    ///   none of its own), as the whole read asks of every alias.
    ///
    /// So the keys are the head's, and the rules the head's and the tail's.
    pub fn read_in_two(text: &str, cut: usize, recipients: &'r [&'r str]) -> Option<Self> {
        let at_line_start = cut > 0 && text.as_bytes().get(cut - 1) == Some(&b'\n');
        if !at_line_start || cut >= text.len() {
            return None;
        }
        let (head, tail) = text.split_at(cut);
        let (head, tail) = std::thread::scope(|s| {
            let tail = s.spawn(|| RulesTail::read(tail));
            let head = Self::read_whole(head, recipients);
            (head, tail.join())
        });
        let (mut head, tail) = (head.ok()?, tail.ok()?.ok()?);
        if !head.rules_last || head.explicit_end {
            return None;
        }
        if !tail.aliases.iter().all(|a| head.anchors.contains(a)) {
            return None;
        }
        head.rules += tail.rules;
        Some(head)
    }

    fn event(&mut self, e: Event<'_>) -> Result<(), String> {
        match e {
            Event::DocumentStart { .. } => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err("it holds more than one YAML document".into());
                }
            }
            Event::DocumentEnd { implicit } => self.explicit_end |= !implicit,
            Event::Scalar { anchor, value, .. } => {
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
            Event::Start {
                anchor,
                mapping,
                block,
                column,
                ..
            } => {
                self.anchor(anchor);
                self.node(if mapping {
                    Node::Mapping
                } else {
                    Node::Sequence(block.then_some(column))
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
                self.rules_last = false;
            }
            1 => {
                match (self.section, &n) {
                    (Section::Rules, Node::Sequence(at)) => {
                        self.rules_last = *at == Some(RULE_COLUMN);
                    }
                    (Section::Other, _) | (_, Node::Sequence(_)) => {}
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

/// Where to cut a large text in two (see [`SopsTally::read_in_two`]): at
/// the first rule's comment line (`  # ...`, as the template writes each
/// rule) from the middle on, so both threads read about as much.
fn rule_cut(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut at = bytes.len() / 2;
    loop {
        at += bytes.get(at..)?.iter().position(|b| *b == b'\n')? + 1;
        if bytes.get(at..)?.starts_with(b"  # ") {
            return Some(at);
        }
    }
}

/// The tail of a text cut by [`SopsTally::read_in_two`]: one document,
/// one block list at [`RULE_COLUMN`] (the rest of `creation_rules`), no
/// anchors. Its errors are never shown: the whole text is read instead.
struct RulesTail {
    rules: usize,
    /// The names its aliases give, once each.
    aliases: HashSet<Vec<u8>>,
    documents: usize,
    depth: usize,
}

impl RulesTail {
    fn read(text: &str) -> Result<Self, String> {
        let mut t = RulesTail {
            rules: 0,
            aliases: HashSet::new(),
            documents: 0,
            depth: 0,
        };
        for_each(text, |e| t.event(e))?;
        Ok(t)
    }

    fn event(&mut self, e: Event<'_>) -> Result<(), String> {
        let no = |why: &str| Err(why.to_string());
        match e {
            Event::DocumentStart { implicit } => {
                self.documents += 1;
                if !implicit || self.documents > 1 {
                    return no("a document marker");
                }
            }
            Event::Scalar {
                anchor: Some(_), ..
            }
            | Event::Start {
                anchor: Some(_), ..
            } => {
                return no("an anchor");
            }
            Event::Scalar { .. } => self.node()?,
            Event::Alias(name) => {
                if !self.aliases.contains(name) {
                    self.aliases.insert(name.to_vec());
                }
                self.node()?;
            }
            Event::Start {
                mapping,
                block,
                column,
                ..
            } => {
                if self.depth > 0 {
                    self.node()?;
                } else if mapping || !block || column != RULE_COLUMN {
                    return no("not the rules' list");
                }
                self.depth += 1;
            }
            Event::End => self.depth = self.depth.saturating_sub(1),
            Event::DocumentEnd { .. } | Event::Other => {}
        }
        Ok(())
    }

    fn node(&mut self) -> Result<(), String> {
        match self.depth {
            0 => Err("a scalar on top".into()),
            1 => {
                self.rules += 1;
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// A text laid out as the template lays it out: `hosts` keys, a rule
/// per host, a catch-all; and its recipients in order (tests of the
/// read-back and of `secrets::config` share it).
#[cfg(test)]
pub(crate) fn sops_text(hosts: usize) -> (String, Vec<String>) {
    let mut text = String::from("# header\nkeys:\n  - &admin_a age1admin # admin a\n");
    let mut recipients = vec!["age1admin".to_string()];
    for i in 0..hosts {
        text.push_str(&format!("  - &host_h{i} age1h{i} # host h{i}\n"));
        recipients.push(format!("age1h{i}"));
    }
    text.push_str("creation_rules:\n");
    for i in 0..hosts {
        text.push_str(&format!(
            "  # h{i}: admins and the host\n  - path_regex: '^hosts/h{i}/'\n    key_groups:\n      - age:\n          - *admin_a\n          - *host_h{i}\n"
        ));
    }
    text.push_str("  # everything else\n  - path_regex: '.*'\n    key_groups:\n      - age:\n          - *admin_a\n");
    for i in 0..hosts {
        text.push_str(&format!("          - *host_h{i}\n"));
    }
    (text, recipients)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(text: &str, recipients: &[&str]) -> Result<(usize, bool, usize), String> {
        SopsTally::read(text, recipients).map(|t| t.counts())
    }

    #[test]
    fn counts_keys_and_rules_of_a_sops_file() {
        let text = "keys:\n  - &a age1x # alice\n  - &h age1y\ncreation_rules:\n  - path_regex: '^a/'\n    key_groups:\n      - age:\n          - *a\n          - *h\n  - path_regex: '.*'\n    key_groups: [{age: [*a]}]\n";
        assert_eq!(tally(text, &["age1x", "age1y"]), Ok((2, false, 2)));
        assert_eq!(tally(text, &["age1x", "age1z"]), Ok((2, true, 2)));
        assert_eq!(tally("creation_rules: []\n", &[]), Ok((0, false, 0)));
    }

    fn line_starts(text: &str) -> impl Iterator<Item = usize> + '_ {
        (1..text.len()).filter(|&i| text.as_bytes()[i - 1] == b'\n')
    }

    /// Wherever the text is cut, the two parts pass only when the whole
    /// passes, with the same tally.
    fn parts_agree_with_whole(text: &str, recipients: &[&str]) -> usize {
        let mut split = 0;
        for cut in line_starts(text) {
            let Some(t) = SopsTally::read_in_two(text, cut, recipients) else {
                continue;
            };
            split += 1;
            let whole = SopsTally::read_whole(text, recipients).unwrap_or_else(|e| {
                panic!("the parts pass at {cut}, the whole fails: {e}\n{text}")
            });
            assert_eq!(t.counts(), whole.counts(), "cut at {cut}:\n{text}");
        }
        split
    }

    #[test]
    fn a_rendered_text_reads_the_same_in_two_parts() {
        let (text, recipients) = sops_text(3);
        let r: Vec<&str> = recipients.iter().map(String::as_str).collect();
        // Every cut at a rule's comment, or at an item of it, is taken.
        assert!(parts_agree_with_whole(&text, &r) >= 6);
        assert_eq!(tally(&text, &r), Ok((4, false, 4)));
    }

    #[test]
    fn a_large_text_is_cut_at_a_rule_and_read_in_two() {
        let (text, recipients) = sops_text(1000);
        let r: Vec<&str> = recipients.iter().map(String::as_str).collect();
        assert!(text.len() >= SPLIT_FROM);
        let cut = rule_cut(&text).expect("a cut");
        assert!(text[cut..].starts_with("  # h"), "{}", &text[cut..cut + 20]);
        let t = SopsTally::read_in_two(&text, cut, &r).expect("read in two");
        assert_eq!(t.counts(), (1001, false, 1001));
        assert_eq!(tally(&text, &r), Ok((1001, false, 1001)));
    }

    #[test]
    fn an_injection_in_either_part_still_fails() {
        let (text, recipients) = sops_text(1000);
        let r: Vec<&str> = recipients.iter().map(String::as_str).collect();
        let cut = rule_cut(&text).expect("a cut");
        for at in [cut - 200, cut + 200] {
            let line = at + text[at..].find('\n').expect("a line") + 1;
            for evil in [
                "keys:\n  - &e age1evil\n",
                "  - &e age1evil\n",
                "  - path_regex: 'broken\n",
                "...\n",
                "---\n",
                "  - *nope\n",
            ] {
                let bad = format!("{}{evil}{}", &text[..line], &text[line..]);
                let whole = SopsTally::read_whole(&bad, &r).map(|t| t.counts());
                assert_eq!(tally(&bad, &r), whole, "{evil:?} at {line}");
                assert_ne!(whole, Ok((1001, false, 1001)), "{evil:?} at {line}");
            }
        }
    }

    #[test]
    fn no_cut_passes_where_the_whole_fails() {
        let (text, recipients) = sops_text(3);
        let r: Vec<&str> = recipients.iter().map(String::as_str).collect();
        let rules_at = text.find("creation_rules:").expect("rules");
        let evils = [
            // A key, an anchor or a document among the rules.
            "  - &evil age1evil # x\n",
            "keys:\n  - &k age1x\n",
            "other: 1\n",
            " odd: 1\n",
            "...\n",
            "---\n",
            "...\n---\ncreation_rules:\n",
            // A scalar or list that spans lines across a possible cut.
            "  - path_regex: 'broken\n",
            "  - path_regex: 'a\n  # b'\n",
            "  - path_regex: \"a\n  - b\"\n",
            "  - path_regex: |\n      x\n  # y\n      z\n",
            "  - path_regex: >\n    x\n",
            "  - [a,\n  # c\n  b]\n",
            "  - {a: b,\n  c: d}\n",
            "  - plain\n    more\n",
            // Aliases and anchors the whole read would judge.
            "  - *nope\n",
            "  - &host_h0 age1twice\n  - *host_h0\n",
            "\t- x\n",
            "- x\n",
            "   - x\n",
        ];
        let mut split = 0;
        for evil in evils {
            for at in line_starts(&text).filter(|&i| i > rules_at).step_by(4) {
                let bad = format!("{}{evil}{}", &text[..at], &text[at..]);
                split += parts_agree_with_whole(&bad, &r);
            }
        }
        assert!(split > 0);
    }

    /// `read_rendered`'s tally, checked against the parser's: wherever
    /// it passes, the parser reads the same. Returns whether it passed.
    fn rendered_agrees_with_parser(text: &str, recipients: &[&str]) -> bool {
        let Some(fast) = SopsTally::read_rendered(text, recipients) else {
            return false;
        };
        let whole = SopsTally::read_whole(text, recipients)
            .unwrap_or_else(|e| panic!("read_rendered passes, the parser fails: {e}\n{text}"));
        assert_eq!(fast.counts(), whole.counts(), "{text}");
        true
    }

    #[test]
    fn a_rendered_text_is_tallied_without_the_parser() {
        for hosts in [0, 1, 3, 1000] {
            let (text, recipients) = sops_text(hosts);
            let r: Vec<&str> = recipients.iter().map(String::as_str).collect();
            assert!(rendered_agrees_with_parser(&text, &r), "{hosts} hosts");
            let other = ["age1other"; 1];
            assert!(rendered_agrees_with_parser(&text, &other));
        }
    }

    /// Every text one edit away from a rendered one (a byte changed,
    /// dropped or added anywhere; a line dropped, doubled or added): where
    /// `read_rendered` passes it, the parser reads the same tally.
    #[test]
    fn every_edit_read_without_the_parser_reads_the_same_with_it() {
        let (text, recipients) = sops_text(2);
        let r: Vec<&str> = recipients.iter().map(String::as_str).collect();
        let bytes: Vec<u8> = b" \t\r\n#'\"-:*&!%@`|>?,[]{}\\.aZ09_".to_vec();
        let mut edits: Vec<Vec<u8>> = Vec::new();
        let t = text.as_bytes();
        for i in 0..=t.len() {
            for &b in &bytes {
                edits.push([&t[..i], &[b], &t[i..]].concat());
                if i < t.len() {
                    edits.push([&t[..i], &[b], &t[i + 1..]].concat());
                }
            }
            if i < t.len() {
                edits.push([&t[..i], &t[i + 1..]].concat());
                edits.push([&t[..i], "\u{2028}".as_bytes(), &t[i + 1..]].concat());
            }
        }
        let starts: Vec<usize> = std::iter::once(0).chain(line_starts(&text)).collect();
        for (n, &at) in starts.iter().enumerate() {
            let end = starts.get(n + 1).copied().unwrap_or(t.len());
            edits.push([&t[..at], &t[end..]].concat());
            edits.push([&t[..end], &t[at..]].concat());
            for line in [
                "keys:\n",
                "creation_rules:\n",
                "  - &evil age1evil # x\n",
                "  - path_regex: 'x'\n",
                "    key_groups:\n",
                "      - age:\n",
                "          - *admin_a\n",
                "          - *nope\n",
                "  # c\n",
                "# c\n",
                "\n",
                "---\n",
                "...\n",
                "  - path_regex: '.*'\n    key_groups:\n      - age:\n          - *admin_a\n",
            ] {
                edits.push([&t[..at], line.as_bytes(), &t[at..]].concat());
            }
        }
        let mut passed = 0;
        for edit in &edits {
            let Ok(edit) = std::str::from_utf8(edit) else {
                continue;
            };
            passed += usize::from(rendered_agrees_with_parser(edit, &r));
        }
        // Not vacuous: edits inside comments, names and quotes pass.
        assert!(passed > 1000, "{passed} of {}", edits.len());
    }

    /// A `.sops.yaml` laid out as the template lays it out, from pieces
    /// of any kind (a name, a recipient, a comment, a regex).
    fn template_text(pieces: &[(String, String, String, String)]) -> String {
        let mut text = String::from("# header\nkeys:\n");
        for (anchor, recipient, comment, _) in pieces {
            text.push_str(&format!("  - &{anchor} {recipient} # {comment}\n"));
        }
        text.push_str("creation_rules:\n");
        for (anchor, _, comment, regex) in pieces {
            text.push_str(&format!(
                "  # {comment}\n  - path_regex: '{regex}'\n    key_groups:\n      - age:\n          - *{anchor}\n"
            ));
        }
        text
    }

    proptest::proptest! {
        #[test]
        fn template_texts_of_any_pieces_read_the_same_without_the_parser(
            pieces in proptest::collection::vec(
                (
                    "[a-z_-]{1,4}|[a-zA-Z0-9 &*:#'\"\\[\\]{}|>!%@`,?\t-]{0,6}",
                    "age1[a-z0-9]{1,4}|[a-z0-9 #:'&*\"\\[{,-]{0,6}",
                    ".{0,8}|[ -~]{0,8}",
                    "[ -&(-~]{0,8}|.{0,8}",
                ),
                1..4,
            )
        ) {
            let text = template_text(&pieces);
            let recipients: Vec<&str> = pieces.iter().map(|p| p.1.as_str()).collect();
            rendered_agrees_with_parser(&text, &recipients);
        }
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
