//! Page 4: the art. 15 report for one person — every exchange about them, with time,
//! organisation, purpose, legal basis, partner, released fields and case — as a printable
//! letter-style page, or as CSV or JSON (`audit query`'s rows and formats).
//!
//! The BSN is posted, never put in a URL; it is turned into the log's keyed HMAC and
//! forgotten. The look-up itself reveals personal data, so it is recorded first (purpose
//! `art-15-verzoek`, the officer as actor, the person as data subject): when that record
//! cannot be written, nothing is shown. The person's own next report therefore lists who
//! looked them up.

use super::page::{html, Frame};
use super::{Ask, AuditSource, Console};
use crate::audit::query::{self, Answer, Filter, Format, Row};
use crate::config::Config;
use crate::context::Bsn;
use crate::exchange::Exchange;
use crate::identity::{Consumer, TokenMode};
use crate::policy::{LegalBasis, Purpose, PurposeHeaders};
use askama::Template;
use bytes::Bytes;
use http::{header, HeaderValue, Method, Response, StatusCode};
use http_body_util::Full;
use std::sync::Arc;

/// The purpose of the console's own record of a look-up.
pub const PURPOSE: &str = "art-15-verzoek";
/// The operation its record names (partner `doelpoort`: the gateway itself).
pub const OPERATION: &str = "console/art-15-report";

/// Who the console is in its own records: the gateway's organisation answering a request
/// for access.
pub fn console_identity(config: &Config) -> Consumer {
    Consumer {
        id: crate::id::Id::parse("console").expect("a valid id"),
        name: "Doelpoort-console (privacyfunctionaris)".to_string(),
        oin: config.gateway_oin.clone(),
        pseudonym_key: [0; 32],
        token: TokenMode::Off,
        token_issuers: Vec::new(),
        processor: None,
        case_admin: false,
    }
}

/// The purpose an art. 15 look-up is recorded under: the controller's legal obligation to
/// answer a request for access (GDPR art. 6(1)(c) with art. 15).
fn purpose() -> Purpose {
    let legal_basis = LegalBasis {
        gdpr: "6(1)(c)".to_string(),
        law: Some("AVG".to_string()),
        article: Some("art. 15 (recht van inzage)".to_string()),
        note: None,
    };
    Purpose {
        id: PURPOSE.to_string(),
        title: "Inzageverzoek van de betrokkene".to_string(),
        legal_basis_text: Some(legal_basis.summary()),
        legal_basis: Some(legal_basis),
        processing_activity: None,
        special_categories: Default::default(),
        retention: None,
        retention_after_closure: None,
        incompatible_with: Vec::new(),
        refused: None,
        header_values: PurposeHeaders {
            purpose: HeaderValue::from_static(PURPOSE),
            legal_basis: None,
            processing_activity: None,
        },
    }
}

#[derive(Template)]
#[template(path = "inzage.html")]
struct Inzage {
    f: Frame,
    from: String,
    to: String,
    error: Option<&'static str>,
    report: Option<Report>,
}

struct Report {
    /// Each row with its released fields as names a reader knows.
    rows: Vec<(Row, String)>,
    warnings: Vec<String>,
    period: String,
    /// The day the report was made.
    date: String,
    transaction_id: String,
}

impl Inzage {
    /// `2026-12-05T13:42:11.502542Z` as a citizen reads it: `2026-12-05 13:42:11 UTC`.
    fn human_time(&self, rfc3339: &str) -> String {
        match rfc3339.get(..19) {
            Some(t) => format!("{} UTC", t.replacen('T', " ", 1)),
            None => rfc3339.to_string(),
        }
    }
}

pub async fn page(console: &Console, ask: &Ask) -> Response<Full<Bytes>> {
    let t = ask.lang.texts();
    let mut form = Inzage {
        f: Frame::new(console, ask, "/inzage"),
        from: ask.posted("from").unwrap_or_default().to_string(),
        to: ask.posted("to").unwrap_or_default().to_string(),
        error: None,
        report: None,
    };
    if ask.method != Method::POST {
        return html(StatusCode::OK, &form);
    }
    let refuse = |mut form: Inzage, status, message| {
        form.error = Some(message);
        html(status, &form)
    };
    let Ok(bsn) = Bsn::parse(ask.posted("bsn").unwrap_or_default()) else {
        return refuse(form, StatusCode::UNPROCESSABLE_ENTITY, t.bsn_invalid);
    };
    let format = match ask.posted("format") {
        None | Some("html") => None,
        Some("csv") => Some((Format::Csv, "text/csv; charset=utf-8", "csv")),
        Some("json") => Some((Format::Json, "application/json", "json")),
        Some(_) => return refuse(form, StatusCode::UNPROCESSABLE_ENTITY, t.unknown_format),
    };
    let (Ok(from), Ok(to)) = (day(ask.posted("from")), day(ask.posted("to"))) else {
        return refuse(form, StatusCode::UNPROCESSABLE_ENTITY, t.bound_invalid);
    };
    if let (Some(f), Some(t_)) = (from, to) {
        if f > t_ {
            return refuse(form, StatusCode::UNPROCESSABLE_ENTITY, t.bound_order);
        }
    }
    let (Ok(from), Ok(to)) = (
        from.map(|d| query::bound(&d.to_string(), false))
            .transpose(),
        to.map(|d| query::bound(&d.to_string(), true)).transpose(),
    ) else {
        return refuse(form, StatusCode::UNPROCESSABLE_ENTITY, t.bound_invalid);
    };
    if matches!(console.audit, AuditSource::Off) {
        return refuse(form, StatusCode::SERVICE_UNAVAILABLE, t.audit_off);
    }
    // First the record of this look-up; only then the answer.
    let Some(transaction_id) = record_lookup(console, ask, &bsn).await else {
        return refuse(form, StatusCode::SERVICE_UNAVAILABLE, t.audit_failed);
    };
    let source = console.audit.clone();
    let answer = tokio::task::spawn_blocking(move || lookup(&source, &bsn, from, to)).await;
    let Ok(Ok(answer)) = answer else {
        if let Ok(Err(e)) = &answer {
            tracing::error!(target: "doelpoort::console", error = %e, "art. 15 report: cannot read the audit log");
        }
        return refuse(form, StatusCode::SERVICE_UNAVAILABLE, t.query_failed);
    };
    match format {
        // A file would not carry the warning that the log is damaged: only the page does.
        Some(_) if !answer.warnings.is_empty() => {
            refuse(form, StatusCode::CONFLICT, t.chain_broken_download)
        }
        Some((format, content_type, extension)) => {
            download(&answer.rows, format, content_type, extension)
        }
        None => {
            let period = match (&form.from.is_empty(), &form.to.is_empty()) {
                (true, true) => t.letter_whole_log.to_string(),
                _ => format!("{} – {}", form.from, form.to),
            };
            form.report = Some(Report {
                rows: answer
                    .rows
                    .into_iter()
                    .map(|r| {
                        let names = query::field_names(&r.fields_released).join(", ");
                        (r, names)
                    })
                    .collect(),
                warnings: answer.warnings,
                period,
                date: crate::audit::writer::rfc3339(std::time::SystemTime::now())
                    .get(..10)
                    .unwrap_or_default()
                    .to_string(),
                transaction_id,
            });
            html(StatusCode::OK, &form)
        }
    }
}

/// A date as the form asks for it (`YYYY-MM-DD`), or nothing.
fn day(text: Option<&str>) -> Result<Option<time::Date>, ()> {
    // Exactly `YYYY-MM-DD`: no sign, no wider year (the parser would take `+2026-12-05`).
    let shaped = |d: &str| {
        d.len() == 10
            && d.bytes().enumerate().all(|(i, b)| {
                if i == 4 || i == 7 {
                    b == b'-'
                } else {
                    b.is_ascii_digit()
                }
            })
    };
    if text.is_some_and(|d| !shaped(d)) {
        return Err(());
    }
    text.map(|d| {
        time::Date::parse(d, time::macros::format_description!("[year]-[month]-[day]"))
            .map_err(|_| ())
    })
    .transpose()
}

/// Writes the record of this look-up and waits until it is durable; its transaction id, or
/// `None` when it could not be written.
async fn record_lookup(console: &Console, ask: &Ask, bsn: &Bsn) -> Option<String> {
    let log = console.state.audit.as_ref()?;
    let mut exchange = Exchange::begin(&http::HeaderMap::new());
    exchange.consumer = Some(console.identity.clone());
    exchange.policy = console.state.policies.current();
    exchange.purpose = Some(Arc::new(purpose()));
    exchange.register_operation = Some(OPERATION);
    exchange.subject = Some(bsn.clone());
    exchange.actor = Some(ask.officer.id.to_string());
    let transaction_id = exchange.transaction_id.hyphenated().to_string();
    let concluded = Arc::new(exchange.conclude(Ok(())));
    match log.record(concluded).await {
        Ok(_) => Some(transaction_id),
        Err(e) => {
            tracing::error!(target: "doelpoort::console", error = %e, "art. 15 look-up refused: its record could not be written");
            None
        }
    }
}

fn lookup(
    source: &AuditSource,
    bsn: &Bsn,
    from: Option<String>,
    to: Option<String>,
) -> anyhow::Result<Answer> {
    match source {
        AuditSource::Files(dir) => {
            let key = crate::audit::subject::key_for_query(dir, None)?;
            query::query(
                dir,
                &Filter {
                    from,
                    to,
                    ..Filter::subject(&key, bsn)
                },
            )
        }
        AuditSource::Postgres(url) => {
            let key = crate::audit::central::key_for_query(url, None)?;
            crate::audit::central::query(
                url,
                &Filter {
                    from,
                    to,
                    ..Filter::subject(&key, bsn)
                },
            )
        }
        AuditSource::Off => anyhow::bail!("the audit log is off"),
    }
}

fn download(
    rows: &[Row],
    format: Format,
    content_type: &'static str,
    extension: &str,
) -> Response<Full<Bytes>> {
    let mut response =
        super::page::with_type(StatusCode::OK, content_type, query::render(rows, format));
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"inzage-art15.{extension}\""
    )) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, v);
    }
    response
}
