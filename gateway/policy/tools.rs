//! What privacy officers and developers ask of a policy set, without running a gateway:
//! `explain` (why would this request be allowed or refused, and what would it release),
//! `matrix` (who may see what, for the DPIA), and the discovery document a consumer gets from
//! the gateway. The test cases (`policy test`) are in [`super::cases`].

use super::decide::{self, Approval, DecisionRequest, Denial, Permit};
use super::fieldpath::FieldPath;
use super::{schema, Grant, PolicySet};
use crate::context::RequestContext;
use crate::minimise::RequestBody;
use crate::problem::Problem;
use serde_json::{json, Value};
use std::fmt::Write as _;
use time::Date;

/// A request as a tool describes it.
pub struct SimulatedRequest {
    pub consumer: String,
    pub method: http::Method,
    /// Gateway path: `/<partner>/<partner path>`.
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub approvals: Vec<Approval>,
    pub today: Date,
}

/// The outcome of deciding a simulated request.
pub enum Outcome {
    Allow(Permit),
    Deny(Denial),
}

/// Decides a simulated request exactly as the gateway would (same route checks, same context
/// parsing, same decision).
pub fn simulate(set: &PolicySet, request: &SimulatedRequest) -> Outcome {
    let fail = |problem: Problem| {
        Outcome::Deny(Denial {
            problem,
            requested_subject: None,
            operation: None,
            purpose: None,
            grant: None,
        })
    };
    let target = match crate::route::split(&request.path) {
        Ok(t) => t,
        Err(p) => return fail(p),
    };
    let mut headers = http::HeaderMap::new();
    for (name, value) in &request.headers {
        match (
            http::HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()),
            http::HeaderValue::from_str(value),
        ) {
            (Ok(n), Ok(v)) => {
                headers.append(n, v);
            }
            _ => {
                return fail(Problem::new(
                    crate::problem::ProblemCode::ContextInvalid,
                    "a header is not valid HTTP",
                ))
            }
        }
    }
    let context = match RequestContext::from_headers(&headers) {
        Ok(c) => c,
        Err(p) => return fail(p),
    };
    match decide::decide(
        set,
        &DecisionRequest {
            consumer: &request.consumer,
            partner: target.partner,
            method: &request.method,
            path: target.path,
            context: &context,
            body: &RequestBody::new(&request.body, &crate::minimise::Limits::default()),
            approvals: &request.approvals,
            today: request.today,
        },
    ) {
        Ok(permit) => Outcome::Allow(permit),
        Err(denial) => Outcome::Deny(denial),
    }
}

/// Response fields of an operation's schema, each marked released (with transform) or withheld.
pub fn field_plan(
    set: &PolicySet,
    grant: Option<&Grant>,
    schema_name: Option<&str>,
) -> Vec<(FieldPath, String, Option<String>)> {
    let Some(schema) = schema_name.and_then(|n| set.schemas.get(n)) else {
        return Vec::new();
    };
    schema::leaves(schema)
        .into_iter()
        .map(|(leaf, category)| {
            let transform = grant.and_then(|g| {
                g.fields
                    .iter()
                    .filter(|f| leaf.is_within(&f.path))
                    .max_by_key(|f| f.path.0.len())
                    .map(|f| f.transform.describe())
            });
            (leaf, category, transform)
        })
        .collect()
}

/// `policy explain`: a report a privacy officer can read. With a sample partner `response`,
/// it also shows exactly what would be released from it.
pub fn explain(set: &PolicySet, request: &SimulatedRequest, response: Option<&[u8]>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "policy version: {}", set.version);
    let _ = writeln!(
        out,
        "request:        {} {} as {}",
        request.method, request.path, request.consumer
    );
    let (operation, purpose, grant, verdict) = match simulate(set, request) {
        Outcome::Allow(p) => (
            Some(p.operation().clone()),
            Some(p.purpose().clone()),
            Some(p.grant().clone()),
            "ALLOW".to_string(),
        ),
        Outcome::Deny(d) => (
            d.operation,
            d.purpose,
            d.grant,
            format!(
                "DENY {} ({}): {}",
                d.problem.code,
                d.problem.status().as_u16(),
                d.problem.detail
            ),
        ),
    };
    if let Some(op) = &operation {
        let _ = writeln!(
            out,
            "operation:      {} — {} {}{}",
            op.key,
            op.method,
            op.template.as_str(),
            op.title
                .as_ref()
                .map(|t| format!(" ({t})"))
                .unwrap_or_default()
        );
    }
    if let Some(p) = &purpose {
        let _ = writeln!(out, "purpose:        {} — {}", p.id, p.title);
    }
    let _ = writeln!(out, "decision:       {verdict}");
    if let Some(g) = &grant {
        let _ = writeln!(
            out,
            "grant:          {} ({}:{})",
            g.id,
            g.source.file.display(),
            g.source.line
        );
        let _ = writeln!(out, "rationale:      {}", g.rationale.replace('\n', " "));
    }
    if verdict == "ALLOW" {
        if let Some(p) = &purpose {
            let basis = p.legal_basis_text.clone().unwrap_or_else(|| "-".into());
            let _ = writeln!(out, "lawful basis that would be logged:");
            let _ = writeln!(out, "  legal basis:         {basis}");
            let _ = writeln!(
                out,
                "  processing activity: {}",
                p.processing_activity.as_deref().unwrap_or("-")
            );
            for (category, exception) in grant
                .iter()
                .flat_map(|g| g.categories.iter())
                .filter_map(|c| p.special_categories.get(c).map(|e| (c, e)))
            {
                let _ = writeln!(out, "  {category} data under: {}", exception.summary());
            }
        }
    }
    if let (Some(sample), Some(g), Some(op), true) =
        (response, &grant, &operation, verdict == "ALLOW")
    {
        let schema = op
            .response_schema
            .as_deref()
            .and_then(|n| set.strict_schema(n));
        let context = crate::minimise::transform::Context {
            pseudonym_key: Some(&[0u8; 32]),
            today: request.today,
        };
        let json = http::HeaderValue::from_static("application/json");
        let _ = writeln!(out, "sample response, as the consumer would receive it:");
        match crate::minimise::minimise_response(
            sample,
            Some(&json),
            &g.release,
            schema,
            &context,
            &crate::minimise::Limits::default(),
        ) {
            Ok(m) => {
                let pretty = serde_json::from_slice::<Value>(&m.body)
                    .and_then(|v| serde_json::to_string_pretty(&v))
                    .unwrap_or_default();
                for line in pretty.lines() {
                    let _ = writeln!(out, "  {line}");
                }
                let _ = writeln!(
                    out,
                    "  ({} value(s) released, {} withheld: {})",
                    m.released.len(),
                    m.withheld.len(),
                    m.withheld.iter().collect::<Vec<_>>().join(", ")
                );
            }
            Err(p) => {
                let _ = writeln!(out, "  nothing: {} ({})", p.code, p.detail);
            }
        }
    }
    if let Some(op) = &operation {
        let allowed = verdict == "ALLOW";
        let plan = field_plan(
            set,
            if allowed { grant.as_deref() } else { None },
            op.response_schema.as_deref(),
        );
        if !plan.is_empty() {
            let _ = writeln!(
                out,
                "response fields ({}):",
                op.response_schema.as_deref().unwrap_or_default()
            );
            for (path, category, transform) in plan {
                match transform {
                    Some(t) => {
                        let _ = writeln!(
                            out,
                            "  released  {:<44} {:<15} {t}",
                            path.to_string(),
                            category
                        );
                    }
                    None => {
                        let _ = writeln!(out, "  withheld  {:<44} {category}", path.to_string());
                    }
                }
            }
        }
    }
    out
}

// ---- matrix ----------------------------------------------------------------------------------

/// One row of the matrix: a consumer's grant on one operation for one purpose.
struct Row<'a> {
    consumer: &'a str,
    grant: &'a Grant,
}

fn rows(set: &PolicySet) -> Vec<Row<'_>> {
    let mut rows = Vec::new();
    for consumer in set.consumers.keys() {
        for grant in set.grants_of(consumer) {
            rows.push(Row { consumer, grant });
        }
    }
    rows
}

fn validity(grant: &Grant) -> String {
    match (grant.valid_from, grant.valid_until) {
        (None, None) => "always".into(),
        (Some(f), None) => format!("from {f}"),
        (None, Some(u)) => format!("until {u}"),
        (Some(f), Some(u)) => format!("{f} – {u}"),
    }
}

fn conditions(grant: &Grant) -> Vec<String> {
    let mut out: Vec<String> = grant.conditions.iter().map(|c| c.message.clone()).collect();
    if grant.requires.case_id {
        out.push("case id required".into());
    }
    if grant.requires.actor {
        out.push("actor required".into());
    }
    if grant.requires.involved_partner {
        out.push("partner already involved in the case".into());
    }
    if let Some(f) = &grant.four_eyes {
        out.push(match &f.role {
            Some(r) => format!("four eyes ({r})"),
            None => "four eyes".into(),
        });
    }
    out
}

/// `policy matrix`, Markdown.
pub fn matrix_markdown(set: &PolicySet) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Who may see what\n");
    let _ = writeln!(out, "Policy version `{}`. Generated by `doelpoort policy matrix`; every grant of every consumer, with the fields it releases.\n", set.version);
    let _ = writeln!(out, "| consumer | partner operation | purpose | legal basis | fields released (transform) | data categories | conditions | valid | grant |");
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|");
    let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
    for row in rows(set) {
        let g = row.grant;
        let purpose = set.purposes.get(&g.purpose);
        let basis = purpose
            .and_then(|p| p.legal_basis_text.clone())
            .unwrap_or_default();
        let fields: Vec<String> = g
            .fields
            .iter()
            .map(|f| format!("`{}` ({})", f.path, f.transform.describe()))
            .collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            cell(row.consumer),
            cell(&g.operation),
            cell(&g.purpose),
            cell(&basis),
            if fields.is_empty() {
                "—".into()
            } else {
                fields.join("<br>")
            },
            g.categories.iter().cloned().collect::<Vec<_>>().join(", "),
            cell(&conditions(g).join("; ")),
            validity(g),
            cell(&g.id),
        );
    }
    let _ = writeln!(out, "\n## Withheld per grant\n");
    for row in rows(set) {
        let g = row.grant;
        let schema_name = set
            .operations
            .get(&g.operation)
            .and_then(|o| o.response_schema.clone());
        let withheld: Vec<String> = field_plan(set, Some(g), schema_name.as_deref())
            .into_iter()
            .filter(|(_, _, t)| t.is_none())
            .map(|(p, c, _)| format!("`{p}` ({c})"))
            .collect();
        if !withheld.is_empty() {
            let _ = writeln!(
                out,
                "- **{}** → {} for {}: {}",
                row.consumer,
                g.operation,
                g.purpose,
                withheld.join(", ")
            );
        }
    }
    out
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `policy matrix --format html`: one self-contained page.
pub fn matrix_html(set: &PolicySet) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Doelpoort — who may see what</title>\n<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #999;padding:4px 8px;vertical-align:top;text-align:left}}th{{background:#eee}}code{{font-size:90%}}</style></head><body>\n<h1>Who may see what</h1>\n<p>Policy version <code>{}</code>.</p>\n<table>\n<tr><th>consumer</th><th>partner operation</th><th>purpose</th><th>legal basis</th><th>fields released (transform)</th><th>withheld</th><th>data categories</th><th>conditions</th><th>valid</th><th>grant</th></tr>\n",
        html_escape(&set.version)
    );
    for row in rows(set) {
        let g = row.grant;
        let basis = set
            .purposes
            .get(&g.purpose)
            .and_then(|p| p.legal_basis_text.clone())
            .unwrap_or_default();
        let schema_name = set
            .operations
            .get(&g.operation)
            .and_then(|o| o.response_schema.clone());
        let plan = field_plan(set, Some(g), schema_name.as_deref());
        let released: Vec<String> = g
            .fields
            .iter()
            .map(|f| {
                format!(
                    "<code>{}</code> ({})",
                    html_escape(&f.path.to_string()),
                    html_escape(&f.transform.describe())
                )
            })
            .collect();
        let withheld: Vec<String> = plan
            .iter()
            .filter(|(_, _, t)| t.is_none())
            .map(|(p, c, _)| {
                format!(
                    "<code>{}</code> ({})",
                    html_escape(&p.to_string()),
                    html_escape(c)
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            html_escape(row.consumer),
            html_escape(&g.operation),
            html_escape(&g.purpose),
            html_escape(&basis),
            released.join("<br>"),
            withheld.join("<br>"),
            html_escape(&g.categories.iter().cloned().collect::<Vec<_>>().join(", ")),
            html_escape(&conditions(g).join("; ")),
            html_escape(&validity(g)),
            html_escape(&g.id),
        );
    }
    out.push_str("</table>\n</body></html>\n");
    out
}

// ---- discovery -------------------------------------------------------------------------------

/// What `GET /.well-known/doelpoort/grants` answers to one consumer.
pub fn discovery_document(set: &PolicySet, consumer: &str) -> Value {
    let grants: Vec<Value> = set
        .grants_of(consumer)
        .map(|g| {
            let op = set.operations.get(&g.operation);
            let purpose = set.purposes.get(&g.purpose);
            json!({
                "grant": g.id,
                "partner": op.map(|o| o.partner.clone()),
                "operation": op.map(|o| o.id.clone()),
                "method": op.map(|o| o.method.to_string()),
                "path": op.map(|o| format!("/{}{}", o.partner, o.template.as_str())),
                "purpose": g.purpose,
                "purpose_title": purpose.map(|p| p.title.clone()),
                "legal_basis": purpose.and_then(|p| p.legal_basis_text.as_deref()),
                "fields": g.fields.iter().map(|f| json!({"path": f.path.to_string(), "transform": f.transform.describe()})).collect::<Vec<_>>(),
                "query": g.query,
                "request_fields": g.request_fields.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "requires": conditions(g),
                "valid_from": g.valid_from.map(|d| d.to_string()),
                "valid_until": g.valid_until.map(|d| d.to_string()),
            })
        })
        .collect();
    json!({
        "consumer": consumer,
        "policy_version": set.version,
        "grants": grants,
    })
}
