//! A grant's released fields as a tree, compiled once per grant at policy load:
//! `uitkeringen[*].soort: keep` and `uitkeringen[*].bedrag: bucket 500 1000` become
//! `{uitkeringen: [*]{soort: keep, bedrag: bucket}}`. Minimising walks the response and this
//! tree together; whatever the tree does not name is left out of the output.

use super::transform::{self, Context};
use crate::policy::fieldpath::{FieldPath, Segment};
use crate::policy::Transform;
use serde_json::{Map, Value};
use std::fmt::Write as _;

#[derive(Debug, Clone, PartialEq)]
enum Node {
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
    root: Node,
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
        let mut root = Node::Object(Vec::new());
        for (path, transform) in fields {
            insert(&mut root, &path.0, transform.clone()).map_err(|()| {
                format!("field '{path}' overlaps another released field: release either the whole value or parts of it")
            })?;
        }
        Ok(Self { root })
    }

    pub(super) fn filter(
        &self,
        value: &Value,
        context: &Context<'_>,
        pointer: &mut String,
        released: &mut Vec<String>,
        withheld: &mut Vec<String>,
    ) -> Option<Value> {
        filter(&self.root, value, context, pointer, released, withheld)
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
fn push_token(pointer: &mut String, token: &str) {
    pointer.push('/');
    for c in token.chars() {
        match c {
            '~' => pointer.push_str("~0"),
            '/' => pointer.push_str("~1"),
            c => pointer.push(c),
        }
    }
}

fn filter(
    node: &Node,
    value: &Value,
    context: &Context<'_>,
    pointer: &mut String,
    released: &mut Vec<String>,
    withheld: &mut Vec<String>,
) -> Option<Value> {
    match node {
        Node::Release(t) => {
            released.push(if pointer.is_empty() {
                "/".into()
            } else {
                pointer.clone()
            });
            Some(transform::apply(t, value, context))
        }
        Node::Object(children) => match value {
            Value::Object(map) => {
                let mut out = Map::new();
                for (key, child_value) in map {
                    let len = pointer.len();
                    push_token(pointer, key);
                    match children.iter().find(|(k, _)| k == key) {
                        Some((_, child)) => {
                            if let Some(v) =
                                filter(child, child_value, context, pointer, released, withheld)
                            {
                                out.insert(key.clone(), v);
                            }
                        }
                        None => withheld.push(pointer.clone()),
                    }
                    pointer.truncate(len);
                }
                // An object with nothing granted in it is left out entirely: even `{}` would
                // tell that the element exists.
                (!out.is_empty()).then_some(Value::Object(out))
            }
            // Anything else (including null) is not the shape the grant describes: withheld.
            // Even a null tells that the element exists, so it is not released either.
            _ => {
                withheld.push(pointer.clone());
                None
            }
        },
        Node::Each(child) => match value {
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let len = pointer.len();
                    let _ = write!(pointer, "/{i}");
                    if let Some(v) = filter(child, item, context, pointer, released, withheld) {
                        out.push(v);
                    }
                    pointer.truncate(len);
                }
                // The list itself is within the grant (an empty list means "none"); its
                // elements appear only with granted content.
                Some(Value::Array(out))
            }
            _ => {
                withheld.push(pointer.clone());
                None
            }
        },
    }
}
