//! Page 2: who sees what — `policy matrix`'s rows, filterable by consumer, partner and
//! purpose (a GET form, so a filtered view can be bookmarked and shared).

use super::page::{html, Frame};
use super::{Ask, Console};
use crate::policy::tools::{matrix_rows, MatrixRow};
use askama::Template;
use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;

/// One filter: its name, label, options and the chosen option.
pub struct Filter {
    pub name: &'static str,
    pub label: &'static str,
    pub options: Vec<String>,
    pub chosen: String,
}

#[derive(Template)]
#[template(path = "matrix.html")]
struct Matrix {
    f: Frame,
    filters: Vec<Filter>,
    rows: Vec<MatrixRow>,
    total: usize,
    loaded: bool,
}

pub fn page(console: &Console, ask: &Ask) -> Response<Full<Bytes>> {
    let set = console.state.policies.current();
    let all = set.as_deref().map(matrix_rows).unwrap_or_default();
    let t = ask.lang.texts();
    let mut filters = Vec::new();
    for (name, label, of) in [
        (
            "consumer",
            t.consumer,
            (|r: &MatrixRow| r.consumer.clone()) as fn(&MatrixRow) -> String,
        ),
        ("partner", t.partner, |r| r.partner.clone()),
        ("purpose", t.purpose, |r| r.purpose.clone()),
    ] {
        let mut options: Vec<String> = all.iter().map(of).collect();
        options.sort();
        options.dedup();
        let chosen = ask
            .get(name)
            .filter(|v| options.iter().any(|o| o == v))
            .unwrap_or_default()
            .to_string();
        filters.push(Filter {
            name,
            label,
            options,
            chosen,
        });
    }
    let total = all.len();
    let rows = all
        .into_iter()
        .filter(|r| {
            [&r.consumer, &r.partner, &r.purpose]
                .iter()
                .zip(&filters)
                .all(|(value, filter)| filter.chosen.is_empty() || **value == filter.chosen)
        })
        .collect();
    html(
        StatusCode::OK,
        &Matrix {
            f: Frame::new(console, ask, "/matrix"),
            filters,
            rows,
            total,
            loaded: set.is_some(),
        },
    )
}
