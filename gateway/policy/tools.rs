//! What privacy officers and developers ask of a policy set, without running a gateway:
//! `explain` (why would this request be allowed or refused, and what would it release),
//! `matrix` (who may see what, for the DPIA), and the discovery document a consumer gets from
//! the gateway. The test cases (`policy test`) are in [`super::cases`].

use super::decide::{self, Approval, DecisionRequest, Denial, Permit};
use super::fieldpath::FieldPath;
use super::{schema, Grant, Operation, PolicySet, Purpose};
use crate::context::RequestContext;
use crate::minimise::RequestBody;
use crate::problem::Problem;
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::sync::Arc;
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

/// What deciding a simulated request found: the verdict and why, the grant, the lawful basis
/// that would be logged, and every response field released or withheld. `policy explain`
/// prints it; the console's "Mag ik dit zien?" page shows it. One value, so the two cannot
/// give different answers.
pub struct Explanation {
    pub policy_version: String,
    pub method: String,
    pub path: String,
    pub consumer: String,
    pub operation: Option<Arc<Operation>>,
    pub purpose: Option<Arc<Purpose>>,
    pub grant: Option<Arc<Grant>>,
    /// `None` when allowed; the refusal (its problem) otherwise.
    pub denial: Option<Problem>,
    /// With a sample partner response: what the consumer would receive.
    pub sample: Option<Result<SampleRelease, Problem>>,
    /// The operation's response fields: path, data category, and the transform when released.
    pub fields: Vec<(FieldPath, String, Option<String>)>,
}

/// A sample response as the consumer would receive it.
pub struct SampleRelease {
    pub body: String,
    /// Values released.
    pub released: usize,
    /// Values withheld, and the fields they were in (array positions as `*`).
    pub withheld_values: usize,
    pub withheld: Vec<String>,
}

impl Explanation {
    pub fn allowed(&self) -> bool {
        self.denial.is_none()
    }

    /// `ALLOW`, or `DENY <code> (<status>): <detail>`.
    pub fn verdict(&self) -> String {
        match &self.denial {
            None => "ALLOW".to_string(),
            Some(p) => format!("DENY {} ({}): {}", p.code, p.status().as_u16(), p.detail),
        }
    }

    /// The data categories the grant releases that are special (art. 9/10 GDPR), each with the
    /// exception the purpose names for it.
    pub fn special_categories(&self) -> Vec<(&str, String)> {
        let (Some(p), Some(g)) = (&self.purpose, &self.grant) else {
            return Vec::new();
        };
        g.categories
            .iter()
            .filter_map(|c| {
                p.special_categories
                    .get(c)
                    .map(|e| (c.as_str(), e.summary()))
            })
            .collect()
    }
}

/// Decides a simulated request and describes the outcome (see [`Explanation`]).
pub fn explanation(
    set: &PolicySet,
    request: &SimulatedRequest,
    response: Option<&[u8]>,
) -> Explanation {
    let (operation, purpose, grant, denial) = match simulate(set, request) {
        Outcome::Allow(p) => (
            Some(p.operation().clone()),
            Some(p.purpose().clone()),
            Some(p.grant().clone()),
            None,
        ),
        Outcome::Deny(d) => (d.operation, d.purpose, d.grant, Some(d.problem)),
    };
    let allowed = denial.is_none();
    let sample = match (response, &grant, &operation, allowed) {
        (Some(sample), Some(g), Some(op), true) => {
            Some(release_sample(set, request, op, g, sample))
        }
        _ => None,
    };
    let fields = operation
        .as_ref()
        .map(|op| {
            field_plan(
                set,
                if allowed { grant.as_deref() } else { None },
                op.response_schema.as_deref(),
            )
        })
        .unwrap_or_default();
    Explanation {
        policy_version: set.version.clone(),
        method: request.method.to_string(),
        path: request.path.clone(),
        consumer: request.consumer.clone(),
        operation,
        purpose,
        grant,
        denial,
        sample,
        fields,
    }
}

fn release_sample(
    set: &PolicySet,
    request: &SimulatedRequest,
    op: &Operation,
    g: &Grant,
    sample: &[u8],
) -> Result<SampleRelease, Problem> {
    let schema = op
        .response_schema
        .as_deref()
        .and_then(|n| set.strict_schema(n));
    let context = crate::minimise::transform::Context {
        pseudonym_key: Some(&[0u8; 32]),
        today: request.today,
    };
    let json_schema = op
        .response_schema
        .as_deref()
        .and_then(|n| set.schemas.get(n));
    let json = http::HeaderValue::from_static("application/json");
    crate::minimise::minimise_response(
        sample,
        Some(&json),
        &g.release,
        schema,
        &context,
        &crate::minimise::Limits::default(),
    )
    .map(|m| SampleRelease {
        body: serde_json::from_slice::<Value>(&m.body)
            .and_then(|v| serde_json::to_string_pretty(&v))
            .unwrap_or_default(),
        released: m.released.values(),
        withheld_values: m.withheld.values(),
        // As the audit record states them: never the answer's own keys (see policy::fields).
        withheld: super::fields::stated(m.withheld.iter(), json_schema)
            .into_iter()
            .map(|f| f.into_owned())
            .collect(),
    })
}

/// `policy explain`: a report a privacy officer can read. With a sample partner `response`,
/// it also shows exactly what would be released from it.
pub fn explain(set: &PolicySet, request: &SimulatedRequest, response: Option<&[u8]>) -> String {
    let e = explanation(set, request, response);
    let mut out = String::new();
    let _ = writeln!(out, "policy version: {}", e.policy_version);
    let _ = writeln!(
        out,
        "request:        {} {} as {}",
        e.method, e.path, e.consumer
    );
    if let Some(op) = &e.operation {
        let _ = writeln!(out, "operation:      {}", op.label());
    }
    if let Some(p) = &e.purpose {
        let _ = writeln!(out, "purpose:        {} — {}", p.id, p.title);
    }
    let _ = writeln!(out, "decision:       {}", e.verdict());
    if let Some(g) = &e.grant {
        let _ = writeln!(
            out,
            "grant:          {} ({}:{})",
            g.id,
            g.source.file.display(),
            g.source.line
        );
        let _ = writeln!(out, "rationale:      {}", g.rationale.replace('\n', " "));
    }
    if let (Some(p), true) = (&e.purpose, e.allowed()) {
        let basis = p.legal_basis_text.clone().unwrap_or_else(|| "-".into());
        let _ = writeln!(out, "lawful basis that would be logged:");
        let _ = writeln!(out, "  legal basis:         {basis}");
        let _ = writeln!(
            out,
            "  processing activity: {}",
            p.processing_activity.as_deref().unwrap_or("-")
        );
        for (category, exception) in e.special_categories() {
            let _ = writeln!(out, "  {category} data under: {exception}");
        }
    }
    if let Some(sample) = &e.sample {
        let _ = writeln!(out, "sample response, as the consumer would receive it:");
        match sample {
            Ok(m) => {
                for line in m.body.lines() {
                    let _ = writeln!(out, "  {line}");
                }
                let _ = writeln!(
                    out,
                    "  ({} value(s) released, {} withheld, in: {})",
                    m.released,
                    m.withheld_values,
                    m.withheld.join(", ")
                );
            }
            Err(p) => {
                let _ = writeln!(out, "  nothing: {} ({})", p.code, p.detail);
            }
        }
    }
    if let (Some(op), false) = (&e.operation, e.fields.is_empty()) {
        let _ = writeln!(
            out,
            "response fields ({}):",
            op.response_schema.as_deref().unwrap_or_default()
        );
        for (path, category, transform) in &e.fields {
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
    out
}

// ---- matrix ----------------------------------------------------------------------------------

/// One row of the matrix: a consumer's grant on one operation for one purpose, as readers see
/// it (`policy matrix` in every format, and the console's matrix page).
pub struct MatrixRow {
    pub consumer: String,
    pub partner: String,
    pub operation: String,
    pub purpose: String,
    pub legal_basis: String,
    /// Released field paths, each with its transform.
    pub released: Vec<(String, String)>,
    /// Withheld field paths of the response schema, each with its data category.
    pub withheld: Vec<(String, String)>,
    pub categories: String,
    pub conditions: Vec<String>,
    pub validity: String,
    pub grant: String,
}

/// Every grant of every consumer, in the matrix's order.
pub fn matrix_rows(set: &PolicySet) -> Vec<MatrixRow> {
    let mut rows = Vec::new();
    for consumer in set.consumers.keys() {
        for g in set.grants_of(consumer) {
            let schema_name = set
                .operations
                .get(&g.operation)
                .and_then(|o| o.response_schema.clone());
            rows.push(MatrixRow {
                consumer: consumer.clone(),
                partner: g
                    .operation
                    .split('/')
                    .next()
                    .unwrap_or_default()
                    .to_string(),
                operation: g.operation.clone(),
                purpose: g.purpose.clone(),
                legal_basis: set
                    .purposes
                    .get(&g.purpose)
                    .and_then(|p| p.legal_basis_text.clone())
                    .unwrap_or_default(),
                released: g
                    .fields
                    .iter()
                    .map(|f| (f.path.to_string(), f.transform.describe()))
                    .collect(),
                withheld: field_plan(set, Some(g), schema_name.as_deref())
                    .into_iter()
                    .filter(|(_, _, t)| t.is_none())
                    .map(|(p, c, _)| (p.to_string(), c))
                    .collect(),
                categories: g.categories.iter().cloned().collect::<Vec<_>>().join(", "),
                conditions: conditions(g),
                validity: validity(g),
                grant: g.id.clone(),
            });
        }
    }
    rows
}

/// When a grant is valid, in words.
pub fn validity(grant: &Grant) -> String {
    match (grant.valid_from, grant.valid_until) {
        (None, None) => "always".into(),
        (Some(f), None) => format!("from {f}"),
        (None, Some(u)) => format!("until {u}"),
        (Some(f), Some(u)) => format!("{f} – {u}"),
    }
}

/// What a grant requires besides its purpose, in words.
pub fn conditions(grant: &Grant) -> Vec<String> {
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
    let rows = matrix_rows(set);
    for row in &rows {
        let fields: Vec<String> = row
            .released
            .iter()
            .map(|(p, t)| format!("`{p}` ({t})"))
            .collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            cell(&row.consumer),
            cell(&row.operation),
            cell(&row.purpose),
            cell(&row.legal_basis),
            if fields.is_empty() {
                "—".into()
            } else {
                fields.join("<br>")
            },
            row.categories,
            cell(&row.conditions.join("; ")),
            row.validity,
            cell(&row.grant),
        );
    }
    let _ = writeln!(out, "\n## Withheld per grant\n");
    for row in rows.iter().filter(|r| !r.withheld.is_empty()) {
        let withheld: Vec<String> = row
            .withheld
            .iter()
            .map(|(p, c)| format!("`{p}` ({c})"))
            .collect();
        let _ = writeln!(
            out,
            "- **{}** → {} for {}: {}",
            row.consumer,
            row.operation,
            row.purpose,
            withheld.join(", ")
        );
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
    let code_list = |list: &[(String, String)]| {
        list.iter()
            .map(|(p, note)| format!("<code>{}</code> ({})", html_escape(p), html_escape(note)))
            .collect::<Vec<_>>()
            .join("<br>")
    };
    for row in matrix_rows(set) {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            html_escape(&row.consumer),
            html_escape(&row.operation),
            html_escape(&row.purpose),
            html_escape(&row.legal_basis),
            code_list(&row.released),
            code_list(&row.withheld),
            html_escape(&row.categories),
            html_escape(&row.conditions.join("; ")),
            html_escape(&row.validity),
            html_escape(&row.grant),
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
