//! A grant's released fields as a tree, compiled once per grant at policy load:
//! `uitkeringen[*].soort: keep` and `uitkeringen[*].bedrag: bucket 500 1000` become
//! `{uitkeringen: [*]{soort: keep, bedrag: bucket}}`. Minimising walks the response and this
//! tree together; whatever the tree does not name is left out of the output.

use super::transform::{self, Context};
use crate::minimise::transform::Transform;
use crate::policy::fieldpath::{FieldPath, Segment};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Node {
    /// Release this value (and everything beneath it) through the transform.
    Release(Transform),
    /// Descend into an object; only these keys.
    Object(Vec<(String, Node)>),
    /// Descend into every element of an array.
    Each(Box<Node>),
}

/// The compiled release plan of one grant (or the allow-list of a request body).
#[derive(Debug, Clone, PartialEq)]
pub struct FieldTree {
    pub(super) root: Node,
}

impl Default for FieldTree {
    /// Releases nothing (an empty object).
    fn default() -> Self {
        Self {
            root: Node::Object(Vec::new()),
        }
    }
}

impl FieldTree {
    /// Builds the tree; two paths that contradict each other (one releases a whole value, the
    /// other descends into it) are an error naming both.
    pub fn build<'a>(
        fields: impl IntoIterator<Item = (&'a FieldPath, &'a Transform)>,
    ) -> Result<Self, String> {
        let mut tree = Self::default();
        for (path, transform) in fields {
            tree.insert(path, transform)?;
        }
        Ok(tree)
    }

    /// Adds one released field.
    pub fn insert(&mut self, path: &FieldPath, transform: &Transform) -> Result<(), String> {
        insert(&mut self.root, &path.0, transform.clone()).map_err(|()| {
            format!("field '{path}' overlaps another released field: release either the whole value or parts of it")
        })
    }

    /// Writes the granted part of `value` as JSON to `out`, logging pointers. Returns
    /// whether anything was written.
    pub(super) fn write(
        &self,
        value: &Value,
        context: &Context<'_>,
        out: &mut Vec<u8>,
        log: &mut Log,
    ) -> bool {
        write(&self.root, value, context, out, log)
    }
}

/// The *fields* released or withheld, as JSON pointers with every array position written `*`
/// (`/uitkeringen/*/soort`, the form of the grants' field paths), each field once in the order
/// first met, and how many values they stood for.
///
/// Fields, not elements (SPEC §5, 2026-12): the audit record says which fields of the answer
/// left the gateway, not how many benefits or children the person has, and its size no longer
/// grows with the answer. Kept in one flat buffer rather than one allocation per field.
#[derive(Debug, Default, Clone)]
pub struct PointerList {
    text: String,
    ends: Vec<usize>,
    /// Every value pushed, duplicates of a field included (the withheld-values metric).
    values: usize,
    distinct: Distinct,
}

impl PartialEq for PointerList {
    fn eq(&self, other: &Self) -> bool {
        // `distinct` only speeds up `push`: derived from the fields.
        self.text == other.text && self.ends == other.ends && self.values == other.values
    }
}

impl Eq for PointerList {}

impl PointerList {
    /// Adds the value at `pointer`: a field not met before is listed, any value is counted.
    /// The whole document is the empty pointer `""` (RFC 6901), not `/`, which would name a
    /// member with an empty key.
    pub(super) fn push(&mut self, pointer: &str) {
        self.values += 1;
        if self
            .distinct
            .is_new(pointer, fields(&self.text, &self.ends))
        {
            self.text.push_str(pointer);
            self.ends.push(self.text.len());
        }
    }

    /// How many fields.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// How many values the fields stood for (a field in every element of a list of ten
    /// counts ten).
    pub fn values(&self) -> usize {
        self.values
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        fields(&self.text, &self.ends)
    }

    pub fn to_vec(&self) -> Vec<String> {
        self.iter().map(str::to_string).collect()
    }

    pub fn contains(&self, pointer: &str) -> bool {
        self.iter().any(|p| p == pointer)
    }
}

/// The fields of a flat buffer, in order.
fn fields<'a>(text: &'a str, ends: &'a [usize]) -> impl ExactSizeIterator<Item = &'a str> + 'a {
    let mut start = 0;
    ends.iter().map(move |&end| {
        let field = &text[start..end];
        start = end;
        field
    })
}

/// Tells whether a field is new to a list that keeps each field once. A handful of fields is
/// the rule, and a scan of the list finds them fastest; past 16 fields a set takes
/// over, so that an answer with thousands of distinct keys does not cost a quadratic scan.
/// Shared by the minimiser's [`PointerList`] and the audit record's field lists
/// (`policy::fields`).
#[derive(Debug, Default, Clone)]
pub struct Distinct {
    set: Option<std::collections::HashSet<String>>,
}

impl Distinct {
    const SCAN_MAX: usize = 16;

    /// Whether `field` is not among `listed` (every field listed so far); a new field is
    /// remembered, so the caller must then list it.
    pub fn is_new<'s>(
        &mut self,
        field: &str,
        mut listed: impl ExactSizeIterator<Item = &'s str>,
    ) -> bool {
        if let Some(set) = &mut self.set {
            return !set.contains(field) && set.insert(field.to_owned());
        }
        if listed.len() < Self::SCAN_MAX {
            return !listed.any(|l| l == field);
        }
        let mut set: std::collections::HashSet<String> = listed.map(str::to_owned).collect();
        let new = set.insert(field.to_owned());
        self.set = Some(set);
        new
    }
}

/// The walk's state: where we are (as a JSON pointer) and what was released or withheld.
#[derive(Default)]
pub(super) struct Log {
    pub(super) pointer: String,
    pub(super) released: PointerList,
    pub(super) withheld: PointerList,
}

impl Log {
    /// A log with room for the pointers of a body of `bytes` bytes.
    pub(super) fn with_capacity(bytes: usize) -> Self {
        // Fields, not values: a few dozen at most for all but odd answers.
        let list = || PointerList {
            text: String::with_capacity((bytes / 8).min(1024)),
            ends: Vec::with_capacity((bytes / 256).min(32)),
            ..PointerList::default()
        };
        Self {
            pointer: String::with_capacity(64),
            released: list(),
            withheld: list(),
        }
    }

    pub(super) fn withhold(&mut self) {
        self.withheld.push(&self.pointer);
    }
}

fn insert(node: &mut Node, path: &[Segment], transform: Transform) -> Result<(), ()> {
    let Some((first, rest)) = path.split_first() else {
        return match node {
            // An empty object node is a fresh slot: it becomes the release.
            Node::Object(children) if children.is_empty() => {
                *node = Node::Release(transform);
                Ok(())
            }
            _ => Err(()),
        };
    };
    match (first, node) {
        (_, Node::Release(_)) => Err(()),
        (Segment::Key(key), Node::Object(children)) => {
            let child = match children.iter().position(|(k, _)| k == key) {
                Some(i) => &mut children[i].1,
                None => {
                    children.push((key.clone(), Node::Object(Vec::new())));
                    let last = children.len() - 1;
                    &mut children[last].1
                }
            };
            insert(child, rest, transform)
        }
        (Segment::Key(_), Node::Each(_)) => Err(()),
        (Segment::Each, node) => {
            // A fresh slot becomes an array step; an existing array step is shared.
            if matches!(node, Node::Object(children) if children.is_empty()) {
                *node = Node::Each(Box::new(Node::Object(Vec::new())));
            }
            match node {
                Node::Each(child) => insert(child, rest, transform),
                _ => Err(()),
            }
        }
    }
}

/// Appends one RFC 6901 reference token.
pub(super) fn push_token(pointer: &mut String, token: &str) {
    pointer.push('/');
    if !token.bytes().any(|b| b == b'~' || b == b'/') {
        pointer.push_str(token);
        return;
    }
    for c in token.chars() {
        match c {
            '~' => pointer.push_str("~0"),
            '/' => pointer.push_str("~1"),
            c => pointer.push(c),
        }
    }
}

pub(super) fn write_json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    // Writing to a Vec cannot fail and a serde_json::Value always serialises.
    let _ = serde_json::to_writer(&mut *out, value);
}

/// Writes the granted part of `value`; returns whether anything was written. Objects and
/// array elements with nothing granted in them are left out entirely (even `{}` or `null`
/// would tell that they exist); a list itself is kept, possibly empty.
fn write(
    node: &Node,
    value: &Value,
    context: &Context<'_>,
    out: &mut Vec<u8>,
    log: &mut Log,
) -> bool {
    match node {
        Node::Release(t) => {
            log.released.push(&log.pointer);
            match t {
                // The common case writes straight from the parsed value, without a copy.
                Transform::Keep => write_json(out, value),
                t => write_json(out, &transform::apply(t, value, context)),
            }
            true
        }
        Node::Object(children) => {
            let Value::Object(map) = value else {
                log.withhold();
                return false;
            };
            let start = out.len();
            out.push(b'{');
            let mut empty = true;
            for (key, child_value) in map {
                let len = log.pointer.len();
                push_token(&mut log.pointer, key);
                match children.iter().find(|(k, _)| k == key) {
                    Some((_, child)) => {
                        let mark = out.len();
                        if !empty {
                            out.push(b',');
                        }
                        write_json(out, key.as_str());
                        out.push(b':');
                        if write(child, child_value, context, out, log) {
                            empty = false;
                        } else {
                            out.truncate(mark);
                        }
                    }
                    None => log.withhold(),
                }
                log.pointer.truncate(len);
            }
            if empty {
                out.truncate(start);
                return false;
            }
            out.push(b'}');
            true
        }
        Node::Each(child) => {
            let Value::Array(items) = value else {
                log.withhold();
                return false;
            };
            out.push(b'[');
            let mut empty = true;
            for item in items {
                let len = log.pointer.len();
                // Every element is the same field (see [`PointerList`]).
                log.pointer.push_str("/*");
                let mark = out.len();
                if !empty {
                    out.push(b',');
                }
                if write(child, item, context, out, log) {
                    empty = false;
                } else {
                    out.truncate(mark);
                }
                log.pointer.truncate(len);
            }
            out.push(b']');
            true
        }
    }
}
