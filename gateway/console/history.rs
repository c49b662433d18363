//! Page 6: the policy versions this gateway has run (`policy_version` in every audit record),
//! and between two of them who gains or loses access to which fields, for which purpose
//! ([`crate::policy::impact`]): the impact report a DPIA, and the officer approving a change,
//! need.

use super::page::{html, Frame};
use super::{Ask, Console};
use crate::policy::impact::{compare, AccessChange};
use askama::Template;
use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;

pub struct Version {
    pub version: String,
    pub loaded_at: String,
    pub grants: usize,
    pub current: bool,
}

#[derive(Template)]
#[template(path = "history.html")]
struct History {
    f: Frame,
    versions: Vec<Version>,
    from: String,
    to: String,
    /// `None` when no comparison was asked or possible.
    changes: Option<Vec<AccessChange>>,
    error: Option<&'static str>,
}

pub fn page(console: &Console, ask: &Ask) -> Response<Full<Bytes>> {
    let history = console.state.policies.history();
    let current = console.state.policies.current().map(|p| p.version.clone());
    let versions: Vec<Version> = history
        .iter()
        .rev()
        .map(|l| Version {
            version: l.set.version.clone(),
            loaded_at: crate::audit::writer::rfc3339(l.loaded_at),
            grants: l.set.grants.len(),
            current: Some(&l.set.version) == current.as_ref(),
        })
        .collect();
    // By default the change that brought the running version: the one before it → now.
    let default_pair = (history.len() >= 2).then(|| {
        (
            history[history.len() - 2].set.version.clone(),
            history[history.len() - 1].set.version.clone(),
        )
    });
    let (from, to) = match (ask.get("van"), ask.get("naar"), default_pair) {
        (Some(f), Some(t), _) => (f.to_string(), t.to_string()),
        (_, _, Some(pair)) => pair,
        _ => (String::new(), String::new()),
    };
    let find = |v: &str| history.iter().find(|l| l.set.version == v);
    let (mut changes, mut error) = (None, None);
    if !from.is_empty() {
        match (find(&from), find(&to)) {
            (Some(a), Some(b)) => changes = Some(compare(&a.set, &b.set)),
            _ => error = Some(ask.lang.texts().unknown_version),
        }
    }
    let status = if error.is_some() {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::OK
    };
    html(
        status,
        &History {
            f: Frame::new(console, ask, "/beleid"),
            versions,
            from,
            to,
            changes,
            error,
        },
    )
}

impl History {
    fn kind(&self, change: &AccessChange) -> &'static str {
        use crate::policy::impact::ChangeKind;
        match change.kind {
            ChangeKind::Granted => self.f.t.kind_granted,
            ChangeKind::Revoked => self.f.t.kind_revoked,
            ChangeKind::Changed => self.f.t.kind_changed,
        }
    }
}
