//! Page 1: the purposes, each with its legal basis, processing activity, special-category
//! exceptions and retention, and under it every grant: who, which operation, the fields (each
//! linked to its schema field) with their transforms, the conditions, the validity and the
//! legal reasoning the privacy officer wrote in the policy file.

use super::page::{html, Frame};
use super::{Ask, Console};
use crate::policy::{tools, Grant, PolicySet, Purpose};
use askama::Template;
use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use std::sync::Arc;

pub struct PurposeView {
    pub purpose: Arc<Purpose>,
    pub special: Vec<(String, String, Option<String>)>,
    pub grants: Vec<GrantView>,
}

pub struct GrantView {
    pub grant: Arc<Grant>,
    pub schema: Option<String>,
    /// Path, transform, and the anchor of the field on its schema page.
    pub fields: Vec<(String, String, String)>,
    pub conditions: Vec<String>,
    pub validity: String,
    pub source: String,
}

#[derive(Template)]
#[template(path = "purposes.html")]
struct Purposes {
    f: Frame,
    purposes: Vec<PurposeView>,
    loaded: bool,
}

pub fn page(console: &Console, ask: &Ask) -> Response<Full<Bytes>> {
    let set = console.state.policies.current();
    let purposes = set.as_deref().map(views).unwrap_or_default();
    html(
        StatusCode::OK,
        &Purposes {
            f: Frame::new(console, ask, "/doelen"),
            purposes,
            loaded: set.is_some(),
        },
    )
}

fn views(set: &PolicySet) -> Vec<PurposeView> {
    set.purposes
        .values()
        .map(|p| PurposeView {
            purpose: p.clone(),
            special: p
                .special_categories
                .iter()
                .map(|(c, e)| (c.clone(), e.summary(), e.note.clone()))
                .collect(),
            grants: set
                .grants
                .iter()
                .filter(|g| g.purpose == p.id)
                .map(|g| {
                    let schema = set
                        .operations
                        .get(&g.operation)
                        .and_then(|o| o.response_schema.clone());
                    GrantView {
                        fields: g
                            .fields
                            .iter()
                            .map(|f| {
                                let path = f.path.to_string();
                                (path.clone(), f.transform.describe(), anchor(&path))
                            })
                            .collect(),
                        schema,
                        conditions: tools::conditions(g),
                        validity: tools::validity(g),
                        source: format!(
                            "{}:{}",
                            g.source
                                .file
                                .file_name()
                                .map(|n| n.to_string_lossy().into_owned())
                                .unwrap_or_default(),
                            g.source.line
                        ),
                        grant: g.clone(),
                    }
                })
                .collect(),
        })
        .collect()
}

/// The id of a field's row on its schema page.
pub fn anchor(path: &str) -> String {
    let mut id = String::from("veld");
    for c in path.chars() {
        id.push(if c.is_ascii_alphanumeric() { c } else { '-' });
    }
    id
}

#[derive(Template)]
#[template(path = "schema.html")]
struct SchemaPage {
    f: Frame,
    name: String,
    /// Path, data category, anchor; `None` when the schema is not known.
    fields: Option<Vec<(String, String, String)>>,
}

pub fn schema(console: &Console, ask: &Ask, name: &str) -> Response<Full<Bytes>> {
    let set = console.state.policies.current();
    let fields = set
        .as_deref()
        .and_then(|s| s.schemas.get(name))
        .map(|schema| {
            crate::policy::schema::leaves(schema)
                .into_iter()
                .map(|(path, category)| {
                    let path = path.to_string();
                    let id = anchor(&path);
                    (path, category, id)
                })
                .collect()
        });
    let status = if fields.is_some() {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    };
    html(
        status,
        &SchemaPage {
            f: Frame::new(console, ask, "/doelen"),
            name: name.to_string(),
            fields,
        },
    )
}
