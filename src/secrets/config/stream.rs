//! The creation rules of a `.sops.yaml` read from libyaml's events, one
//! rule at a time, instead of loading the whole file as a YAML value
//! (about 40 MiB and most of `pve check`'s time for a 10,000-host fleet).
//!
//! Only the usual file is read here: one document, a mapping on top, keys
//! that are plain strings, each once, no merge keys (`<<`), no tags,
//! anchors on scalars only, every alias naming one before it, and rules
//! that read without a refusal. Anything else (a YAML error too) gives
//! `None`, and the caller loads the file as before: every refusal and its
//! words stay the loaded read's. On what it does read, the loaded read
//! would give the same rules: the same nodes reach the same
//! [`parse_rule`].

use rustc_hash::{FxHashMap, FxHashSet};

use super::{parse_rule, CreationRule, View, Yaml};
use crate::render::yaml_events::{self, Event};

/// A node of one creation rule, built while the rule is read, dropped once
/// it is a [`CreationRule`].
#[derive(Debug, Clone)]
pub(super) enum Node {
    Str(String),
    Null,
    /// A boolean or number, or a plain scalar that might be one: never a
    /// string to the rule reading (whose every use of a string refuses
    /// anything else, so the loaded read either refuses it too or takes
    /// the same branch).
    Other,
    Seq(Vec<Node>),
    Map(Vec<(String, Node)>),
}

impl Yaml for Node {
    fn view(&self) -> View<'_, Self> {
        match self {
            Node::Str(s) => View::Str(s),
            Node::Null => View::Null,
            Node::Seq(items) => View::Seq(items),
            Node::Other | Node::Map(_) => View::Other,
        }
    }
    fn get(&self, key: &str) -> Option<&Self> {
        match self {
            Node::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
    fn is_mapping(&self) -> bool {
        matches!(self, Node::Map(_))
    }
}

/// Deeper than this is left to the loaded read (its limit is 128).
const MAX_DEPTH: usize = 64;

/// The rules of `text`, or `None` when it is not the usual file (see the
/// module's comment).
pub(super) fn rules(text: &str) -> Option<Vec<CreationRule>> {
    let mut r = Reader::default();
    yaml_events::for_each(text, |e| r.event(e).ok_or_else(String::new)).ok()?;
    (r.documents == 1 && r.rules_read && !r.rules.is_empty()).then_some(r.rules)
}

#[derive(Default)]
struct Reader {
    /// Scalar anchors: name → value as its alias reads.
    anchors: FxHashMap<Vec<u8>, Node>,
    stack: Vec<Frame>,
    documents: usize,
    rules: Vec<CreationRule>,
    /// `creation_rules`' list was read to its end.
    rules_read: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum Role {
    /// The document's mapping.
    Top,
    /// `creation_rules`' list: each item a rule.
    Rules,
    Other,
}

struct Frame {
    mapping: bool,
    role: Role,
    /// Built into a [`Node`]: a rule or inside one.
    build: bool,
    /// A mapping's keys so far (a repeated key is the loaded read's error).
    keys: FxHashSet<String>,
    /// A mapping's key whose value comes next.
    key: Option<String>,
    entries: Vec<(String, Node)>,
    items: Vec<Node>,
}

impl Reader {
    /// `None`: not the usual file.
    fn event(&mut self, e: Event<'_>) -> Option<()> {
        match e {
            Event::DocumentStart { .. } => {
                self.documents += 1;
                (self.documents == 1).then_some(())
            }
            Event::Scalar {
                anchor,
                value,
                plain,
                tagged,
            } => {
                if tagged {
                    return None;
                }
                let node = leaf(std::str::from_utf8(value).ok()?, plain);
                if let Some(a) = anchor {
                    self.anchors.insert(a.to_vec(), node.clone());
                }
                self.scalar(node)
            }
            Event::Alias(name) => {
                let node = self.anchors.get(name)?.clone();
                self.scalar(node)
            }
            Event::Start {
                anchor,
                mapping,
                tagged,
                ..
            } => {
                if tagged || anchor.is_some() || self.stack.len() >= MAX_DEPTH {
                    return None;
                }
                let (role, build) = match self.stack.last() {
                    None if mapping => (Role::Top, false),
                    None => return None,
                    // A collection as a key.
                    Some(p) if p.mapping && p.key.is_none() => return None,
                    Some(p)
                        if p.role == Role::Top && p.key.as_deref() == Some("creation_rules") =>
                    {
                        if mapping {
                            return None;
                        }
                        (Role::Rules, false)
                    }
                    Some(p) => (Role::Other, p.build || p.role == Role::Rules),
                };
                self.stack.push(Frame {
                    mapping,
                    role,
                    build,
                    keys: FxHashSet::default(),
                    key: None,
                    entries: Vec::new(),
                    items: Vec::new(),
                });
                Some(())
            }
            Event::End => {
                let f = self.stack.pop()?;
                if f.role == Role::Rules {
                    if self.rules.is_empty() {
                        return None;
                    }
                    self.rules_read = true;
                }
                let node = match (f.build, f.mapping) {
                    (false, _) => None,
                    (true, true) => Some(Node::Map(f.entries)),
                    (true, false) => Some(Node::Seq(f.items)),
                };
                self.value(node)
            }
            Event::DocumentEnd { .. } | Event::Other => Some(()),
        }
    }

    fn scalar(&mut self, node: Node) -> Option<()> {
        let parent = self.stack.last_mut()?;
        if parent.mapping && parent.key.is_none() {
            let Node::Str(key) = node else {
                return None;
            };
            if key == "<<" || !parent.keys.insert(key.clone()) {
                return None;
            }
            parent.key = Some(key);
            return Some(());
        }
        if parent.role == Role::Top && parent.key.as_deref() == Some("creation_rules") {
            return None;
        }
        let build = parent.build || parent.role == Role::Rules;
        self.value(build.then_some(node))
    }

    /// A finished node (`Some` when built) given to the collection it is in.
    fn value(&mut self, node: Option<Node>) -> Option<()> {
        let Some(parent) = self.stack.last_mut() else {
            // The document's mapping ended.
            return Some(());
        };
        if parent.mapping {
            let key = parent.key.take()?;
            if parent.build {
                parent.entries.push((key, node?));
            }
        } else if parent.role == Role::Rules {
            self.rules.push(parse_rule(&node?).ok()?);
        } else if parent.build {
            parent.items.push(node?);
        }
        Some(())
    }
}

/// A scalar as the loaded read types it: quoted ones are strings; plain
/// ones may be null, a boolean or a number (anything that could be one is
/// [`Node::Other`]).
fn leaf(s: &str, plain: bool) -> Node {
    if !plain {
        return Node::Str(s.to_string());
    }
    match s {
        "" | "~" | "null" | "Null" | "NULL" => Node::Null,
        "true" | "True" | "TRUE" | "false" | "False" | "FALSE" => Node::Other,
        _ if s.starts_with(|c: char| c.is_ascii_digit() || matches!(c, '+' | '-' | '.')) => {
            Node::Other
        }
        _ => Node::Str(s.to_string()),
    }
}
