//! Page 7: the case register (SPEC §8) as this replica knows it — per case its agreed
//! purposes and partners, objections, overrides (who, why, approved by whom), time-outs and
//! dates. Household members appear as a count: the register holds only keyed HMACs, and the
//! console shows nothing that could identify a person.

use super::page::{html, Frame};
use super::{Ask, Console};
use crate::cases::Case;
use askama::Template;
use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

#[derive(Template)]
#[template(path = "cases.html")]
struct Cases {
    f: Frame,
    owners: Vec<String>,
    owner: String,
    case_id: String,
    cases: Vec<Arc<Case>>,
    total: usize,
    bsn_in_filter: bool,
}

pub fn page(console: &Console, ask: &Ask) -> Response<Full<Bytes>> {
    let all = console.state.cases.all();
    let mut owners: Vec<String> = all.iter().map(|c| c.owner.clone()).collect();
    owners.dedup();
    let owner = ask
        .get("owner")
        .filter(|o| owners.iter().any(|x| x == o))
        .unwrap_or_default()
        .to_string();
    // A case id never holds a BSN (the register refuses one); nor does a filter echo one.
    let asked = ask.get("case").unwrap_or_default();
    let bsn_in_filter = crate::context::holds_bsn(asked);
    let case_id = if bsn_in_filter {
        String::new()
    } else {
        asked.to_string()
    };
    let total = all.len();
    let cases = all
        .into_iter()
        .filter(|c| owner.is_empty() || c.owner == owner)
        .filter(|c| case_id.is_empty() || c.id.contains(case_id.as_str()))
        .collect();
    html(
        StatusCode::OK,
        &Cases {
            f: Frame::new(console, ask, "/zaken"),
            owners,
            owner,
            case_id,
            cases,
            total,
            bsn_in_filter,
        },
    )
}

impl Cases {
    /// Free text a case system wrote (an override's reason), without control characters.
    fn clean(&self, text: &str) -> String {
        text.chars().filter(|c| !c.is_control()).collect()
    }

    /// Unix seconds as RFC 3339 (UTC).
    fn at(&self, secs: &i64) -> String {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(*secs).unwrap_or(0));
        crate::audit::writer::rfc3339(t)
    }
}
