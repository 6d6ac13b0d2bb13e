//! A located YAML tree: every node remembers the line and column it came from.
//!
//! serde stops at the first error, but `aurelia check` must report every problem in a file at
//! once, each with its position. So specs are parsed in two steps: this module turns the YAML
//! event stream (from `saphyr-parser`, pure Rust) into a small tree of [`Node`]s carrying
//! positions, and `load.rs` walks that tree collecting every problem it finds.
//!
//! The builder also guards against hostile input: aliases are expanded against a node budget
//! (a "billion laughs" file fails fast with a clear message instead of eating memory), nesting
//! depth is bounded, duplicate mapping keys are errors (a silently ignored duplicate is a typo
//! that bites later), and `<<` merge keys are supported so anchors can share blocks.

use std::collections::{HashMap, HashSet};

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

use crate::error::Diagnostic;

/// Upper bound on the nodes one document may expand to (aliases included).
pub const NODE_BUDGET: usize = 100_000;
/// Upper bound on nesting depth.
pub const MAX_DEPTH: usize = 64;

/// A position in a source file, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

impl Pos {
    fn of(span: &Span) -> Pos {
        // saphyr's columns are 0-based; lines are 1-based.
        Pos {
            line: span.start.line(),
            col: span.start.col() + 1,
        }
    }
}

/// One YAML node with the position where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub pos: Pos,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A scalar: its text and whether it was written plain (unquoted). Plain scalars are
    /// subject to YAML 1.2 core-schema typing (`null`, `true`, `42`); quoted ones are strings.
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    /// Keys are scalars (complex keys are rejected while building); order is kept.
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// True for `~`, `null`, `Null`, `NULL` and the empty plain scalar.
    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar { text, plain: true } if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// The scalar's text, if this node is a scalar.
    pub fn scalar(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// A short word for the node's kind, for error messages.
    pub fn kind_name(&self) -> &'static str {
        match &self.value {
            Value::Scalar { .. } if self.is_null() => "an empty value",
            Value::Scalar { .. } => "a scalar",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

/// Parses `text` as a single YAML document.
///
/// Returns `Ok(None)` for an empty document (no content at all). Parse errors are fatal for the
/// file (the tree would be meaningless); structural problems found while building (duplicate
/// keys, complex keys) are collected in `diags` and the build goes on.
pub fn parse(text: &str, diags: &mut Vec<Diagnostic>) -> Result<Option<Node>, Diagnostic> {
    let mut b = Builder {
        stack: Vec::new(),
        anchors: Vec::new(),
        nodes: 0,
        root: None,
        docs: 0,
        diags,
    };
    for item in Parser::new_from_str(text) {
        let (event, span) = item.map_err(|e| {
            let m = e.marker();
            let mut pos = Pos {
                line: m.line(),
                col: m.col() + 1,
            };
            if !e.info().contains("tab") {
                return Diagnostic::at(pos, format!("invalid YAML: {}", e.info()));
            }
            // saphyr points at the start of the token it was scanning, which for a tab in the
            // next line's indentation is on the previous line; point at the tab itself.
            if let Some(tab) = first_tab_from_line(text, pos.line) {
                pos = tab;
            }
            Diagnostic::at(pos, format!("invalid YAML: {}", e.info()))
                .hint("indent with spaces; YAML does not allow tabs in indentation")
        })?;
        b.event(event, span)?;
    }
    Ok(b.root)
}

/// The position of the first tab on line `line` (1-based) or after it.
fn first_tab_from_line(text: &str, line: usize) -> Option<Pos> {
    text.lines()
        .enumerate()
        .skip(line.saturating_sub(1))
        .find_map(|(i, l)| {
            l.chars().position(|c| c == '\t').map(|c| Pos {
                line: i + 1,
                col: c + 1,
            })
        })
}

enum Frame {
    Seq {
        pos: Pos,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        pos: Pos,
        anchor: usize,
        entries: Vec<(Node, Node)>,
        /// The keys of `entries` (`None` for a non-scalar key) and the line each is first
        /// defined on: duplicate checks must not be quadratic in the number of keys.
        keys: HashMap<Option<String>, usize>,
        /// Entries from `<<` merge keys; explicit entries override them.
        merged: Vec<(Node, Node)>,
        /// The keys of `merged`.
        merged_keys: HashSet<Option<String>>,
        /// The dotted path of this mapping (`service`, `health`), for messages.
        path: String,
        pending_key: Option<Node>,
    },
}

struct Builder<'d> {
    stack: Vec<Frame>,
    /// Anchored nodes by anchor id (ids are small consecutive integers from the parser).
    anchors: Vec<Option<Node>>,
    nodes: usize,
    root: Option<Node>,
    docs: usize,
    diags: &'d mut Vec<Diagnostic>,
}

impl Builder<'_> {
    fn event(&mut self, event: Event<'_>, span: Span) -> Result<(), Diagnostic> {
        let pos = Pos::of(&span);
        match event {
            Event::DocumentStart(_) => {
                self.docs += 1;
                if self.docs > 1 {
                    return Err(Diagnostic::at(
                        pos,
                        "more than one YAML document in this file".to_string(),
                    )
                    .hint("put each service in its own file (one document, no `---` separators between services)"));
                }
            }
            Event::Scalar(text, style, anchor, _tag) => {
                let node = Node {
                    pos,
                    value: Value::Scalar {
                        text: text.into_owned(),
                        plain: style == ScalarStyle::Plain,
                    },
                };
                self.count(1, pos)?;
                self.remember(anchor, &node);
                self.push(node)?;
            }
            Event::SequenceStart(anchor, _) => {
                self.depth_check(pos)?;
                self.count(1, pos)?;
                self.stack.push(Frame::Seq {
                    pos,
                    anchor,
                    items: Vec::new(),
                });
            }
            Event::MappingStart(anchor, _) => {
                self.depth_check(pos)?;
                self.count(1, pos)?;
                let path = self.child_path();
                self.stack.push(Frame::Map {
                    pos,
                    anchor,
                    entries: Vec::new(),
                    keys: HashMap::new(),
                    merged: Vec::new(),
                    merged_keys: HashSet::new(),
                    path,
                    pending_key: None,
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let node = match self.stack.pop() {
                    Some(Frame::Seq { pos, anchor, items }) => {
                        let n = Node {
                            pos,
                            value: Value::Seq(items),
                        };
                        self.remember(anchor, &n);
                        n
                    }
                    Some(Frame::Map {
                        pos,
                        anchor,
                        mut entries,
                        keys,
                        merged,
                        ..
                    }) => {
                        for (k, v) in merged {
                            if !keys.contains_key(&k.scalar().map(str::to_string)) {
                                entries.push((k, v));
                            }
                        }
                        let n = Node {
                            pos,
                            value: Value::Map(entries),
                        };
                        self.remember(anchor, &n);
                        n
                    }
                    None => return Ok(()),
                };
                self.push(node)?;
            }
            Event::Alias(id) => {
                let Some(Some(target)) = self.anchors.get(id).cloned() else {
                    return Err(Diagnostic::at(
                        pos,
                        "alias to an unknown anchor".to_string(),
                    ));
                };
                self.count(size(&target), pos)?;
                let mut node = target;
                node.pos = pos;
                self.push(node)?;
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
        }
        Ok(())
    }

    fn depth_check(&self, pos: Pos) -> Result<(), Diagnostic> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(Diagnostic::at(
                pos,
                format!("YAML nested deeper than {MAX_DEPTH} levels"),
            ));
        }
        Ok(())
    }

    fn count(&mut self, n: usize, pos: Pos) -> Result<(), Diagnostic> {
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes > NODE_BUDGET {
            return Err(Diagnostic::at(
                pos,
                format!("YAML expands to more than {NODE_BUDGET} nodes (an alias bomb?)"),
            )
            .hint("a service spec is small; remove the repeated aliases"));
        }
        Ok(())
    }

    fn remember(&mut self, anchor: usize, node: &Node) {
        if anchor == 0 {
            return;
        }
        if self.anchors.len() <= anchor {
            self.anchors.resize(anchor + 1, None);
        }
        self.anchors[anchor] = Some(node.clone());
    }

    /// The dotted path of a node about to start under the current frame.
    fn child_path(&self) -> String {
        match self.stack.last() {
            Some(Frame::Map {
                path, pending_key, ..
            }) => {
                let key = pending_key.as_ref().and_then(Node::scalar).unwrap_or("");
                if path.is_empty() {
                    key.to_string()
                } else {
                    format!("{path}.{key}")
                }
            }
            Some(Frame::Seq { .. }) => {
                let parent = match self.stack.iter().rev().nth(1) {
                    Some(Frame::Map { path, .. }) => path.clone(),
                    _ => String::new(),
                };
                format!("{parent}[]")
            }
            None => String::new(),
        }
    }

    fn push(&mut self, node: Node) -> Result<(), Diagnostic> {
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                entries,
                keys,
                merged,
                merged_keys,
                path,
                pending_key,
                ..
            }) => match pending_key.take() {
                None => {
                    if !matches!(node.value, Value::Scalar { .. }) {
                        self.diags.push(Diagnostic::at(
                            node.pos,
                            format!("mapping keys must be plain names, not {}", node.kind_name()),
                        ));
                    }
                    *pending_key = Some(node);
                }
                Some(key) => {
                    let name = key.scalar().unwrap_or_default().to_string();
                    if name == "<<" && key.scalar().is_some() {
                        merge(merged, merged_keys, node, self.diags);
                    } else if let Some(first_line) = keys.get(&Some(name.clone())) {
                        self.diags.push(
                            Diagnostic::at(
                                key.pos,
                                format!(
                                    "duplicate key `{name}` (first defined at line {first_line})"
                                ),
                            )
                            .key(&if path.is_empty() {
                                name.clone()
                            } else {
                                format!("{path}.{name}")
                            })
                            .hint("remove one of them; YAML would silently keep only the last"),
                        );
                    } else {
                        keys.entry(key.scalar().map(str::to_string))
                            .or_insert(key.pos.line);
                        entries.push((key, node));
                    }
                }
            },
        }
        Ok(())
    }
}

/// Collects a `<<` merge key's entries (the first mapping to define a key wins, as in YAML's
/// merge spec); they are added to the mapping at its end, under its explicit keys.
fn merge(
    entries: &mut Vec<(Node, Node)>,
    keys: &mut HashSet<Option<String>>,
    value: Node,
    diags: &mut Vec<Diagnostic>,
) {
    let sources: Vec<Node> = match value.value {
        Value::Map(_) => vec![value],
        Value::Seq(items) => items,
        _ => {
            diags.push(Diagnostic::at(
                value.pos,
                "`<<` merge key needs a mapping or a list of mappings".to_string(),
            ));
            return;
        }
    };
    for src in sources {
        match src.value {
            Value::Map(src_entries) => {
                for (k, v) in src_entries {
                    if keys.insert(k.scalar().map(str::to_string)) {
                        entries.push((k, v));
                    }
                }
            }
            _ => diags.push(Diagnostic::at(
                src.pos,
                "`<<` merge key needs a mapping or a list of mappings".to_string(),
            )),
        }
    }
}

fn size(node: &Node) -> usize {
    match &node.value {
        Value::Scalar { .. } => 1,
        Value::Seq(items) => 1 + items.iter().map(size).sum::<usize>(),
        Value::Map(entries) => {
            1 + entries
                .iter()
                .map(|(k, v)| size(k) + size(v))
                .sum::<usize>()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(s: &str) -> (Option<Node>, Vec<Diagnostic>) {
        let mut d = Vec::new();
        let n = parse(s, &mut d).expect("parses");
        (n, d)
    }

    #[test]
    fn positions_are_one_based() {
        let (n, _) = tree("a:\n  b: 1\n");
        let Value::Map(e) = n.expect("doc").value else {
            panic!("map")
        };
        assert_eq!(e[0].0.pos, Pos { line: 1, col: 1 });
        let Value::Map(inner) = &e[0].1.value else {
            panic!("map")
        };
        assert_eq!(inner[0].0.pos, Pos { line: 2, col: 3 });
        assert_eq!(inner[0].1.pos, Pos { line: 2, col: 6 });
    }

    #[test]
    fn duplicate_keys_are_reported() {
        let (_, d) = tree("a: 1\nb: 2\na: 3\n");
        assert_eq!(d.len(), 1);
        assert!(d[0].message.contains("duplicate key `a`"), "{:?}", d[0]);
        assert_eq!(d[0].line, 3);
        let (_, d) = tree("service:\n  name: a\n  name: b\n");
        assert_eq!(d[0].key.as_deref(), Some("service.name"));
    }

    #[test]
    fn merge_keys_fill_missing_entries() {
        let (n, d) = tree("base: &b {x: 1, y: 2}\nm:\n  <<: *b\n  y: 3\n");
        assert!(d.is_empty(), "{d:?}");
        let Value::Map(e) = n.expect("doc").value else {
            panic!()
        };
        let Value::Map(m) = &e[1].1.value else {
            panic!()
        };
        let keys: Vec<_> = m.iter().map(|(k, v)| (k.scalar(), v.scalar())).collect();
        assert!(keys.contains(&(Some("x"), Some("1"))));
        assert!(keys.contains(&(Some("y"), Some("3"))));
    }

    #[test]
    fn alias_bomb_is_stopped() {
        let mut s = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = i - 1;
            s.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let mut d = Vec::new();
        let err = parse(&s, &mut d).expect_err("bomb");
        assert!(err.message.contains("alias bomb"), "{err:?}");
    }

    #[test]
    fn deep_nesting_is_stopped() {
        let s = "[".repeat(200) + &"]".repeat(200);
        let mut d = Vec::new();
        let err = parse(&s, &mut d).expect_err("deep");
        assert!(err.message.contains("nested deeper"), "{err:?}");
    }

    #[test]
    fn two_documents_are_an_error() {
        let mut d = Vec::new();
        let err = parse("a: 1\n---\nb: 2\n", &mut d).expect_err("two docs");
        assert!(err.message.contains("more than one YAML document"));
    }
}
