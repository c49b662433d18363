//! The exchange pipeline: one request, passed through the phases in order.
//!
//! ```text
//!  accept ─► identify ─► route ─► context ─► read body ─► decide ─► forward ─► release ─► finish
//!  (tls)     (identity)  (route)  (context)              (policy)  (upstream)             │
//!                                                                      metrics + access log ◄┘
//! ```
//!
//! Each phase either adds facts to the [`Exchange`] or ends it with a [`Problem`]. Whatever
//! happens, `finish` runs last: it turns the outcome into the response and projects the
//! exchange onto the metrics and the access log, so nothing is counted that the pipeline did
//! not decide and nothing decided goes uncounted. Later phases (minimise, record) slot in
//! between without changing that shape.
//!
//! Headers cross the gateway by allow-list in both directions: hop-by-hop headers, cookies,
//! `Server`, credentials and anything else not listed here never reach the other organisation.

use crate::config::Limits;
use crate::context::{Bsn, RequestContext};
use crate::identity::{Connection, Consumer, ConsumerDirectory};
use crate::metrics::Metrics;
use crate::minimise::RequestBody;
use crate::policy::decide::{self, DecisionRequest, Permit};
use crate::policy::store::PolicyStore;
use crate::policy::{Grant, Operation, PolicySet, Purpose};
use crate::problem::{Problem, ProblemCode};
use crate::route;
use crate::trace::{new_transaction_id, TraceContext};
use crate::upstream::{
    Partner, PartnerDirectory, UpstreamErrorKind, UpstreamRequest, UpstreamResponse,
};
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use std::sync::Arc;
use std::time::{Instant, SystemTime};
use uuid::Uuid;

pub const FSC_TRANSACTION_ID: HeaderName = HeaderName::from_static("fsc-transaction-id");
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
pub const DOELBINDING_REQUESTER: HeaderName = HeaderName::from_static("doelbinding-requester");
pub const DOELBINDING_PURPOSE: HeaderName = HeaderName::from_static("doelbinding-purpose");
pub const DOELBINDING_LEGAL_BASIS: HeaderName = HeaderName::from_static("doelbinding-legal-basis");
pub const DOELBINDING_ASSERTION: HeaderName = HeaderName::from_static("doelbinding-assertion");
pub const DOELBINDING_PROCESSING_ACTIVITY: HeaderName =
    HeaderName::from_static("doelbinding-processing-activity");
/// Where a consumer asks which grants it holds (on the data listener, answered per certificate).
pub const DISCOVERY_PATH: &str = "/.well-known/doelpoort/grants";

/// Caller headers a partner may see (everything else is dropped).
const FORWARDED_REQUEST_HEADERS: &[HeaderName] = &[header::ACCEPT, header::CONTENT_TYPE];

/// Partner headers a caller may see (everything else is dropped, e.g. `Server`,
/// `X-Powered-By`, `Set-Cookie`, `Via`). `ETag` is dropped too: it names the partner's full
/// representation, not the minimised one the caller gets.
const RELEASED_RESPONSE_HEADERS: &[HeaderName] = &[
    header::CACHE_CONTROL,
    header::LAST_MODIFIED,
    header::EXPIRES,
    header::CONTENT_LANGUAGE,
];

/// Everything the gateway needs to serve exchanges; one immutable snapshot.
pub struct GatewayState {
    pub consumers: ConsumerDirectory,
    pub partners: PartnerDirectory,
    pub limits: Limits,
    pub problem_base: String,
    pub metrics: Arc<Metrics>,
    pub policies: Arc<PolicyStore>,
    pub minimise_limits: crate::minimise::Limits,
    /// Off in every deployed gateway (see [`crate::config::BenchmarkSwitches`]).
    pub benchmark: crate::config::BenchmarkSwitches,
    /// The lawful-basis audit log; `None` only with `audit.mode: off`.
    pub audit: Option<crate::audit::AuditLog>,
    /// Trusted issuers of caller tokens, when configured.
    pub tokens: Option<Arc<crate::token::TokenIssuers>>,
    /// Signs `Doelbinding-Assertion` for every forwarded request.
    pub assertions: crate::assertion::AssertionSigner,
    /// The gateway's own identity in assertions: its OIN, or the instance name without one.
    pub gateway_id: String,
}

/// The facts gathered about one request as it passes the phases.
pub struct Exchange {
    pub transaction_id: Uuid,
    pub trace: TraceContext,
    /// `trace` as a header value, formatted once: it goes to the partner and to the caller.
    traceparent: HeaderValue,
    pub started: Instant,
    /// Wall-clock start, for the audit record.
    pub started_at: SystemTime,
    pub consumer: Option<Arc<Consumer>>,
    pub partner: Option<Arc<Partner>>,
    /// The policy snapshot this exchange is decided under (kept for its whole life).
    pub policy: Option<Arc<PolicySet>>,
    pub operation: Option<Arc<Operation>>,
    pub purpose: Option<Arc<Purpose>>,
    pub grant: Option<Arc<Grant>>,
    pub upstream_status: Option<StatusCode>,
    pub upstream_error: Option<UpstreamErrorKind>,
    /// JSON pointers released to the caller and withheld by minimisation.
    pub fields_released: crate::minimise::PointerList,
    pub fields_withheld: crate::minimise::PointerList,
    /// The declared context, once its headers were valid (for the audit record).
    pub subject: Option<Bsn>,
    pub case_id: Option<String>,
    pub actor: Option<String>,
    /// Whether this request is an exchange the audit log records (discovery is not).
    pub audited: bool,
    /// The issuer of the caller's verified token, and the approvals it carried.
    pub token_issuer: Option<String>,
    pub approvals: Vec<crate::policy::decide::Approval>,
}

impl Exchange {
    /// Keeps what the audit record needs of the declared context.
    fn note_context(&mut self, context: &RequestContext) {
        self.subject = context.data_subject.as_ref().map(|s| s.bsn().clone());
        self.case_id.clone_from(&context.case_id);
        self.actor.clone_from(&context.actor);
    }

    fn begin(headers: &HeaderMap) -> Self {
        let trace = TraceContext::continue_or_start(headers.get(&TRACEPARENT));
        Self {
            transaction_id: new_transaction_id(),
            traceparent: trace.header_value(),
            trace,
            started: Instant::now(),
            started_at: SystemTime::now(),
            consumer: None,
            partner: None,
            policy: None,
            operation: None,
            purpose: None,
            grant: None,
            upstream_status: None,
            upstream_error: None,
            fields_released: Default::default(),
            fields_withheld: Default::default(),
            subject: None,
            case_id: None,
            actor: None,
            audited: true,
            token_issuer: None,
            approvals: Vec::new(),
        }
    }
}

/// How an exchange ended, as metrics, logs and (later) the audit record name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Forwarded and released.
    Allow,
    /// Refused because of the request (4xx).
    Deny,
    /// Failed on the gateway or partner side (5xx).
    Error,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
            Self::Error => "error",
        }
    }

    fn of(outcome: &Result<Response<Full<Bytes>>, Problem>) -> Self {
        match outcome {
            Ok(_) => Self::Allow,
            Err(p) if p.status().is_server_error() => Self::Error,
            Err(_) => Self::Deny,
        }
    }
}

/// The answer when an exchange task died (a bug): a problem, never a partial response.
pub fn internal_error(state: &GatewayState) -> Response<Full<Bytes>> {
    tracing::error!("an exchange task failed unexpectedly");
    Problem::new(
        ProblemCode::Internal,
        "the gateway failed while handling this request",
    )
    .into_response(&state.problem_base, "")
}

/// Serves one request. `consumer` is the organisation identified from the connection's
/// client certificate (once per connection), or `None` for a trusted but unmapped certificate.
pub async fn handle(
    state: &GatewayState,
    connection: &Connection,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let mut exchange = Exchange::begin(request.headers());
    let outcome = run_phases(state, connection, &mut exchange, request).await;
    let outcome = record(state, &mut exchange, outcome).await;
    finish(state, exchange, outcome)
}

async fn run_phases(
    state: &GatewayState,
    connection: &Connection,
    exchange: &mut Exchange,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Problem> {
    let consumer = identify(connection.consumer.as_ref(), exchange)?;
    let (parts, body) = request.into_parts();
    let target = route::split(parts.uri.path())?;
    if target.partner == ".well-known" {
        // Metadata about the caller's own grants, not an exchange about anyone.
        exchange.audited = false;
        return discovery(state, consumer, &parts.method, parts.uri.path());
    }
    let partner = route_to_partner(state, &parts.method, target.partner, exchange)?;
    let call = Call {
        consumer,
        partner,
        parts: &parts,
        path: target.path,
        today: crate::policy::today(),
    };
    let mut context = RequestContext::from_headers(&parts.headers).inspect_err(|_| {
        // The record still names the person if that header alone was valid.
        exchange.subject = crate::context::declared_subject(&parts.headers);
    })?;
    // Noted before the token is checked (a refused token's record still names case and actor),
    // and again after: the token may have filled in what the headers left out.
    exchange.note_context(&context);
    let token = caller_token(state, connection, &call, &mut context, exchange)?;
    exchange.note_context(&context);
    // The snapshot this exchange is decided under, kept to the end even if a reload happens.
    let policy = state.policies.current().ok_or_else(|| {
        Problem::new(
            ProblemCode::NotGranted,
            "no valid policy set is loaded, so nothing can be granted",
        )
    })?;
    exchange.policy = Some(policy.clone());
    // Read before deciding: grant conditions may look at the body.
    let body = read_body(body, &parts.headers, &state.limits).await?;
    let (permit, body) = decide_and_admit(
        state,
        &policy,
        &call,
        &context,
        token.as_ref(),
        body,
        exchange,
    )?;
    let response = forward(state, &call, &permit, body, exchange).await?;
    minimise(state, &policy, &call, &permit, response, exchange)
}

/// Phase *decide*: the decision, the four-eyes approval it may need, and the body the partner
/// may receive. The caller's body is parsed (once) only if the decision or the request's
/// minimisation needs it; the parse and the caller's bytes end here, before the partner call.
fn decide_and_admit(
    state: &GatewayState,
    policy: &PolicySet,
    call: &Call<'_>,
    context: &RequestContext,
    token: Option<&crate::token::CallerToken>,
    raw: Bytes,
    exchange: &mut Exchange,
) -> Result<(Permit, Bytes), Problem> {
    let body = RequestBody::new(&raw, &state.minimise_limits);
    let approvals = token.map_or(&[][..], |t| t.approvals.as_slice());
    let permit = decide_exchange(policy, call, context, &body, approvals, exchange)?;
    check_approval_scope(&permit, token)?;
    let four_eyes = state
        .tokens
        .as_ref()
        .zip(token)
        .filter(|_| permit.grant().four_eyes.is_some());
    // A replayed approval is refused as a replay, whatever else is wrong with the request.
    if let Some((issuers, token)) = four_eyes {
        issuers.check_approval_unspent(token)?;
    }
    // Before the approval is spent: a body that cannot be checked is refused, and the
    // colleague's approval stays usable for the corrected request.
    let forwarded = allow_request_body(&permit, &body)?;
    if let Some((issuers, token)) = four_eyes {
        issuers.spend_approval(token)?;
    }
    Ok((permit, forwarded))
}

/// Who calls which partner with which request: the facts the later phases share.
struct Call<'a> {
    consumer: &'a Consumer,
    partner: &'a Partner,
    parts: &'a http::request::Parts,
    /// Partner-side path (after `/<partner>`), canonical.
    path: &'a str,
    /// The calendar day the exchange is decided and minimised on (read once, so both phases
    /// agree even across midnight).
    today: time::Date,
}

/// Phase *context*, second half: the caller's signed token, verified, lined up with the
/// headers, and its case scope applied (see [`crate::token`]).
fn caller_token(
    state: &GatewayState,
    connection: &Connection,
    call: &Call<'_>,
    context: &mut RequestContext,
    exchange: &mut Exchange,
) -> Result<Option<crate::token::CallerToken>, Problem> {
    let token = crate::token::TokenVerifier::check(
        state.tokens.as_deref(),
        call.consumer,
        connection.fingerprint.as_ref(),
        &call.parts.headers,
    )?;
    let Some(token) = token else {
        return Ok(None);
    };
    exchange.token_issuer = Some(token.issuer.clone());
    crate::token::reconcile(context, &token)?;
    if let Some(scope) = &token.case_partners {
        if !scope.iter().any(|p| p == &call.partner.id) {
            return Err(Problem::new(
                ProblemCode::NotGranted,
                format!(
                    "partner '{}' is outside the case scope the client agreed to (case_partners in the token)",
                    call.partner.id
                ),
            ));
        }
        if context.case_partners.is_empty() {
            context.case_partners.clone_from(scope);
        } else {
            let mut declared = context.case_partners.clone();
            let mut signed = scope.clone();
            declared.sort();
            signed.sort();
            if declared != signed {
                return Err(Problem::new(
                    ProblemCode::TokenMismatch,
                    "the Doelbinding-Case-Partners header differs from case_partners in the signed token",
                ));
            }
        }
    }
    exchange.approvals.clone_from(&token.approvals);
    Ok(Some(token))
}

/// An approval counts only for what it names. Under a four-eyes grant the approving token must
/// itself carry the purpose and, where the grant depends on them, the case, the person and the
/// partners involved: headers the caller writes cannot stretch a colleague's approval to
/// another person or case.
fn check_approval_scope(
    permit: &Permit,
    token: Option<&crate::token::CallerToken>,
) -> Result<(), Problem> {
    if permit.grant().four_eyes.is_none() {
        return Ok(());
    }
    let grant = permit.grant();
    let bound = token.is_some_and(|t| {
        t.purpose.is_some()
            && (!grant.requires.case_id || t.case_id.is_some())
            && (permit.operation().subject == crate::policy::SubjectSource::None
                || t.data_subject.is_some())
            && (!grant.requires.involved_partner || t.case_partners.is_some())
    });
    if bound {
        return Ok(());
    }
    Err(Problem::new(
        ProblemCode::FourEyesRequired,
        "the approval must name what it approves: the signed token must carry purpose, case_id, data_subject and case_partners as this grant needs them",
    ))
}

/// Phase *identify*: the consumer was looked up once per connection; here it is required.
fn identify<'c>(
    consumer: Option<&'c Arc<Consumer>>,
    exchange: &mut Exchange,
) -> Result<&'c Arc<Consumer>, Problem> {
    let consumer = consumer.ok_or_else(|| {
        Problem::new(
            ProblemCode::UnknownConsumer,
            "the client certificate is trusted but belongs to no configured consumer",
        )
    })?;
    exchange.consumer = Some(consumer.clone());
    Ok(consumer)
}

/// Phase *route*: a forwardable method and a configured partner.
fn route_to_partner<'s>(
    state: &'s GatewayState,
    method: &Method,
    partner: &str,
    exchange: &mut Exchange,
) -> Result<&'s Arc<Partner>, Problem> {
    if !matches!(
        *method,
        Method::GET | Method::HEAD | Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    ) {
        return Err(Problem::new(
            ProblemCode::MethodNotAllowed,
            "only GET, HEAD, POST, PUT, PATCH and DELETE are forwarded",
        ));
    }
    // The id is caller input: it is deliberately not echoed in the detail.
    let partner = state.partners.get(partner).ok_or_else(|| {
        Problem::new(
            ProblemCode::UnknownRoute,
            "no partner with that id is configured",
        )
    })?;
    exchange.partner = Some(partner.clone());
    Ok(partner)
}

/// Phase *decide*: a `Permit`, or the denial (whose partial facts go into the exchange).
fn decide_exchange(
    policy: &PolicySet,
    call: &Call<'_>,
    context: &RequestContext,
    body: &RequestBody<'_>,
    approvals: &[crate::policy::decide::Approval],
    exchange: &mut Exchange,
) -> Result<Permit, Problem> {
    let permit = decide::decide(
        policy,
        &DecisionRequest {
            consumer: &call.consumer.id,
            partner: &call.partner.id,
            method: &call.parts.method,
            path: call.path,
            context,
            body,
            approvals,
            today: call.today,
        },
    )
    .map_err(|denial| {
        exchange.operation = denial.operation;
        exchange.purpose = denial.purpose;
        exchange.grant = denial.grant;
        denial.problem
    })?;
    exchange.operation = Some(permit.operation().clone());
    exchange.purpose = Some(permit.purpose().clone());
    exchange.grant = Some(permit.grant().clone());
    Ok(permit)
}

/// Request bodies: only the fields the grant lists go to the partner.
fn allow_request_body(permit: &Permit, body: &RequestBody<'_>) -> Result<Bytes, Problem> {
    if body.is_empty() {
        return Ok(Bytes::new());
    }
    let allow = permit.grant().request_allow.as_ref().ok_or_else(|| {
        Problem::new(
            ProblemCode::ContextInvalid,
            "the grant allows no request body for this operation",
        )
    })?;
    let minimised = crate::minimise::minimise_request(body, allow)?;
    Ok(Bytes::from(minimised.body))
}

/// Phase *forward*: the gateway's own request to the partner, under a `Permit`.
async fn forward(
    state: &GatewayState,
    call: &Call<'_>,
    permit: &Permit,
    body: Bytes,
    exchange: &mut Exchange,
) -> Result<UpstreamResponse, Problem> {
    let (partner, parts) = (call.partner, call.parts);
    let mut headers = forwarded_request_headers(&parts.headers, exchange, call.consumer);
    add_lawful_basis(&mut headers, permit);
    headers.insert(
        DOELBINDING_ASSERTION,
        assertion(state, call, permit, exchange)?,
    );
    let upstream_request = UpstreamRequest {
        method: parts.method.clone(),
        path: call.path.to_string(),
        query: permit.allowed_query(parts.uri.query()),
        headers,
        body,
    };
    let response = partner
        .forward(upstream_request, state.limits.max_response_body_bytes)
        .await
        .map_err(|e| {
            exchange.upstream_error = Some(e.kind);
            e.problem
        })?;
    exchange.upstream_status = Some(response.status);
    if response.status.is_server_error() {
        exchange.upstream_error = Some(UpstreamErrorKind::Status);
    }
    state
        .metrics
        .upstream_duration
        .with_label_values(&[partner.id.as_str()])
        .observe(response.elapsed.as_secs_f64());
    Ok(response)
}

/// Phase *minimise*: only a successful answer is released, and only its granted fields.
fn minimise(
    state: &GatewayState,
    policy: &PolicySet,
    call: &Call<'_>,
    permit: &Permit,
    response: UpstreamResponse,
    exchange: &mut Exchange,
) -> Result<Response<Full<Bytes>>, Problem> {
    check_partner_status(response.status)?;
    let without_body = call.parts.method == Method::HEAD
        || matches!(
            response.status,
            StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED
        );
    if without_body {
        return Ok(release(&response, Bytes::new()));
    }
    if state.benchmark.skip_minimisation {
        return Ok(release(&response, response.body.clone()));
    }
    let schema = permit
        .operation()
        .response_schema
        .as_deref()
        .and_then(|name| policy.strict_schema(name));
    let minimised = crate::minimise::minimise_response(
        &response.body,
        response.headers.get(header::CONTENT_TYPE),
        &permit.grant().release,
        schema,
        &crate::minimise::transform::Context {
            pseudonym_key: Some(&call.consumer.pseudonym_key),
            today: call.today,
        },
        &state.minimise_limits,
    )?;
    if !minimised.withheld.is_empty() {
        let partner = exchange
            .partner
            .as_ref()
            .map_or("unknown", |p| p.id.as_str());
        state
            .metrics
            .fields_withheld
            .with_label_values(&[partner, &permit.operation().id, &permit.purpose().id])
            .inc_by(minimised.withheld.len() as u64);
    }
    let released = release(&response, Bytes::from(minimised.body));
    exchange.fields_released = minimised.released;
    exchange.fields_withheld = minimised.withheld;
    Ok(released)
}

async fn read_body(body: Incoming, headers: &HeaderMap, limits: &Limits) -> Result<Bytes, Problem> {
    let too_large = || {
        Problem::new(
            ProblemCode::RequestTooLarge,
            format!(
                "the request body exceeds {} bytes",
                limits.max_request_body_bytes
            ),
        )
    };
    // Refuse early on a declared length; the streaming limit below catches the rest.
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_request_body_bytes as u64) {
        return Err(too_large());
    }
    let collect = Limited::new(body, limits.max_request_body_bytes).collect();
    match tokio::time::timeout(limits.request_timeout, collect).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Ok(Err(_)) => Err(Problem::new(
            ProblemCode::ContextInvalid,
            "the request body could not be read",
        )),
        Err(_) => Err(Problem::new(
            ProblemCode::RequestTimeout,
            "the request body did not arrive in time",
        )),
    }
}

fn forwarded_request_headers(
    incoming: &HeaderMap,
    exchange: &Exchange,
    consumer: &Consumer,
) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(8);
    for name in FORWARDED_REQUEST_HEADERS {
        for value in incoming.get_all(name) {
            out.append(name.clone(), value.clone());
        }
    }
    // The gateway must be able to parse what it releases: no compressed partner bodies.
    out.insert(
        header::ACCEPT_ENCODING,
        HeaderValue::from_static("identity"),
    );
    out.insert(
        FSC_TRANSACTION_ID,
        transaction_header(exchange.transaction_id),
    );
    out.insert(TRACEPARENT, exchange.traceparent.clone());
    if let Some(oin) = &consumer.oin {
        if let Ok(v) = HeaderValue::from_str(oin.as_str()) {
            out.insert(DOELBINDING_REQUESTER, v);
        }
    }
    out
}

/// The signed statement of this exchange's lawful basis for the partner (see
/// [`crate::assertion`]). A signing failure refuses the exchange: nothing is forwarded
/// without it.
fn assertion(
    state: &GatewayState,
    call: &Call<'_>,
    permit: &Permit,
    exchange: &Exchange,
) -> Result<HeaderValue, Problem> {
    let purpose = permit.purpose();
    let mut tx = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let audit_record_id = exchange.transaction_id.hyphenated().encode_lower(&mut tx);
    let claims = crate::assertion::AssertionClaims {
        iss: &state.gateway_id,
        sub: call
            .consumer
            .oin
            .as_ref()
            .map_or(call.consumer.id.as_str(), |o| o.as_str()),
        aud: call
            .partner
            .oin
            .as_ref()
            .map_or(call.partner.id.as_str(), |o| o.as_str()),
        purpose: &purpose.id,
        legal_basis: purpose.legal_basis_text.as_deref(),
        processing_activity: purpose.processing_activity.as_deref(),
        case_id: exchange.case_id.as_deref(),
        audit_record_id,
    };
    state
        .assertions
        .sign(&claims)
        .ok()
        .and_then(|token| HeaderValue::from_str(&token).ok())
        .map(|mut value| {
            // Unique per exchange, so HTTP/2 header compression gains nothing by indexing it;
            // sensitive values are sent "never indexed" and kept out of the HPACK tables.
            value.set_sensitive(true);
            value
        })
        .ok_or_else(|| {
            Problem::new(
                ProblemCode::Internal,
                "the gateway could not sign the assertion for the partner",
            )
        })
}

/// The lawful basis the partner can log on its side (values prepared at policy load).
fn add_lawful_basis(out: &mut HeaderMap, permit: &Permit) {
    let purpose = permit.purpose();
    out.insert(DOELBINDING_PURPOSE, purpose.header_values.purpose.clone());
    if let Some(v) = &purpose.header_values.legal_basis {
        out.insert(DOELBINDING_LEGAL_BASIS, v.clone());
    }
    if let Some(v) = &purpose.header_values.processing_activity {
        out.insert(DOELBINDING_PROCESSING_ACTIVITY, v.clone());
    }
}

/// `GET /.well-known/doelpoort/grants`: the grants the calling consumer holds, and what each
/// releases. Answered for the calling certificate only; no other consumer's grants are shown.
fn discovery(
    state: &GatewayState,
    consumer: &Consumer,
    method: &Method,
    path: &str,
) -> Result<Response<Full<Bytes>>, Problem> {
    if path != DISCOVERY_PATH {
        return Err(Problem::new(
            ProblemCode::UnknownRoute,
            "unknown well-known resource",
        ));
    }
    if method != Method::GET {
        return Err(Problem::new(ProblemCode::MethodNotAllowed, "GET only"));
    }
    let policy = state
        .policies
        .current()
        .ok_or_else(|| Problem::new(ProblemCode::NotGranted, "no valid policy set is loaded"))?;
    let body = crate::policy::tools::discovery_document(&policy, &consumer.id);
    let bytes = serde_json::to_vec_pretty(&body).unwrap_or_default();
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

fn transaction_header(id: Uuid) -> HeaderValue {
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let text = id.hyphenated().encode_lower(&mut buf);
    // A hyphenated UUID is always a valid header value.
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// Only a successful partner answer is released at all; anything else becomes a problem and
/// the partner's body (which may hold personal data or internals) is dropped.
fn check_partner_status(status: StatusCode) -> Result<(), Problem> {
    if status.is_client_error() {
        return Err(Problem::partner_rejected(status));
    }
    if !(status.is_success() || status == StatusCode::NOT_MODIFIED) {
        // 5xx, 1xx leftovers and redirects.
        return Err(Problem::new(
            ProblemCode::UpstreamUnavailable,
            format!("the partner answered {status}; its response body is not released"),
        ));
    }
    Ok(())
}

/// The response to the caller: the partner's status, the allow-listed partner headers, and
/// the (minimised) body. A non-empty body is always the gateway's own JSON serialisation.
fn release(upstream: &UpstreamResponse, body: Bytes) -> Response<Full<Bytes>> {
    let has_body = !body.is_empty();
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = upstream.status;
    let headers = response.headers_mut();
    for name in RELEASED_RESPONSE_HEADERS {
        for value in upstream.headers.get_all(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    if has_body {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    response
}

/// Phase *record*: the exchange's audit record, durably written before anything is released.
/// If it cannot be written, the exchange is refused with `audit-unavailable` instead — a
/// response nobody can account for is never sent.
async fn record(
    state: &GatewayState,
    exchange: &mut Exchange,
    outcome: Result<Response<Full<Bytes>>, Problem>,
) -> Result<Response<Full<Bytes>>, Problem> {
    let Some(audit) = &state.audit else {
        return outcome;
    };
    if !exchange.audited {
        return outcome;
    }
    let event = crate::audit::AuditEvent {
        transaction_id: exchange.transaction_id,
        trace: exchange.trace,
        start_time: exchange.started_at,
        end_time: SystemTime::now(),
        consumer: exchange.consumer.clone(),
        partner: exchange.partner.clone(),
        policy: exchange.policy.clone(),
        operation: exchange.operation.clone(),
        purpose: exchange.purpose.clone(),
        grant: exchange.grant.clone(),
        decision: Decision::of(&outcome),
        reason: outcome.as_ref().err().map(|p| p.code),
        subject: exchange.subject.take(),
        case_id: exchange.case_id.take(),
        actor: exchange.actor.take(),
        approvals: std::mem::take(&mut exchange.approvals),
        token_issuer: exchange.token_issuer.take(),
        upstream_status: exchange.upstream_status.map(|s| s.as_u16()),
        // The pointer lists are only needed by the record; move them.
        fields_released: std::mem::take(&mut exchange.fields_released),
        fields_withheld: std::mem::take(&mut exchange.fields_withheld),
    };
    match audit.record(event).await {
        Ok(_seq) => outcome,
        Err(e) => {
            state.metrics.audit_failures.inc();
            tracing::error!(
                target: "doelpoort::audit",
                transaction_id = %exchange.transaction_id,
                error = %e,
                "exchange refused: its audit record could not be written"
            );
            Err(Problem::new(
                ProblemCode::AuditUnavailable,
                "the exchange cannot be recorded in the audit log, so it is refused",
            ))
        }
    }
}

fn finish(
    state: &GatewayState,
    exchange: Exchange,
    outcome: Result<Response<Full<Bytes>>, Problem>,
) -> Response<Full<Bytes>> {
    let decision = Decision::of(&outcome);
    let reason = outcome.as_ref().err().map(|p| p.code.as_str());
    let tx = transaction_header(exchange.transaction_id);
    let mut response = match outcome {
        Ok(response) => response,
        Err(problem) => problem.into_response(&state.problem_base, tx.to_str().unwrap_or_default()),
    };
    response.headers_mut().insert(FSC_TRANSACTION_ID, tx);
    response
        .headers_mut()
        .insert(TRACEPARENT, exchange.traceparent.clone());

    let consumer = exchange
        .consumer
        .as_ref()
        .map_or("unknown", |c| c.id.as_str());
    let partner = exchange
        .partner
        .as_ref()
        .map_or("unknown", |p| p.id.as_str());
    // Label values come from configuration and policy only (bounded), never from the request.
    let operation = exchange
        .operation
        .as_ref()
        .map_or("unknown", |o| o.id.as_str());
    let purpose = exchange
        .purpose
        .as_ref()
        .map_or("unknown", |p| p.id.as_str());
    let elapsed = exchange.started.elapsed();
    let metrics = &state.metrics;
    metrics
        .requests_total
        .with_label_values(&[consumer, partner, operation, purpose, decision.as_str()])
        .inc();
    metrics
        .request_duration
        .with_label_values(&[partner, decision.as_str()])
        .observe(elapsed.as_secs_f64());
    if let Some(code) = reason {
        metrics
            .problems_total
            .with_label_values(&[consumer, partner, code])
            .inc();
    }
    if let Some(kind) = exchange.upstream_error {
        metrics
            .upstream_errors
            .with_label_values(&[partner, kind.as_str()])
            .inc();
    }
    // The access log: configured names, codes and numbers only — never the path (it holds
    // BSNs), headers, or bodies.
    tracing::info!(
        target: "doelpoort::access",
        transaction_id = %exchange.transaction_id,
        trace_id = %exchange.trace.trace_id_hex(),
        consumer,
        partner,
        operation,
        purpose,
        grant = exchange.grant.as_ref().map_or("", |g| g.id.as_str()),
        policy_version = exchange.policy.as_ref().map_or("", |p| p.version.as_str()),
        decision = decision.as_str(),
        reason = reason.unwrap_or(""),
        status = response.status().as_u16(),
        upstream_status = exchange.upstream_status.map_or(0, |s| s.as_u16()),
        duration_us = elapsed.as_micros() as u64,
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange() -> Exchange {
        Exchange::begin(&HeaderMap::new())
    }

    #[test]
    fn forwards_only_allow_listed_request_headers() {
        let mut incoming = HeaderMap::new();
        for (name, value) in [
            ("accept", "application/json"),
            ("connection", "keep-alive, x-secret"),
            ("x-secret", "1"),
            ("te", "trailers"),
            ("upgrade", "h2c"),
            ("transfer-encoding", "chunked"),
            ("proxy-authorization", "Basic Zm9v"),
            ("authorization", "Bearer abc"),
            ("cookie", "a=b"),
            ("doelbinding-actor", "medewerker-17"),
            ("host", "gateway.example"),
        ] {
            incoming.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        let consumer = Consumer {
            id: "c".into(),
            name: "C".into(),
            oin: Some(crate::identity::Oin::parse("00000001999990001000").unwrap()),
            ..Default::default()
        };
        let out = forwarded_request_headers(&incoming, &exchange(), &consumer);
        let mut names: Vec<&str> = out.keys().map(HeaderName::as_str).collect();
        names.sort();
        assert_eq!(
            names,
            [
                "accept",
                "accept-encoding",
                "doelbinding-requester",
                "fsc-transaction-id",
                "traceparent"
            ]
        );
        assert_eq!(out["doelbinding-requester"], "00000001999990001000");
    }

    #[test]
    fn releases_only_allow_listed_response_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(header::SERVER, HeaderValue::from_static("partner/1.0"));
        headers.insert(header::SET_COOKIE, HeaderValue::from_static("s=1"));
        headers.insert("x-powered-by", HeaderValue::from_static("php"));
        headers.insert(header::ETAG, HeaderValue::from_static("\"v1\""));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        let upstream = UpstreamResponse {
            status: StatusCode::OK,
            headers,
            body: Bytes::from_static(b"{\"bsn\":\"999990019\"}"),
            elapsed: std::time::Duration::ZERO,
        };
        let response = release(&upstream, Bytes::from_static(b"{}"));
        let mut names: Vec<&str> = response.headers().keys().map(HeaderName::as_str).collect();
        names.sort();
        assert_eq!(names, ["cache-control", "content-type"]);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    }

    #[test]
    fn partner_errors_are_not_relayed() {
        let err = check_partner_status(StatusCode::INTERNAL_SERVER_ERROR).unwrap_err();
        assert_eq!(err.code, ProblemCode::UpstreamUnavailable);
        let err = check_partner_status(StatusCode::NOT_FOUND).unwrap_err();
        assert_eq!(err.status(), StatusCode::NOT_FOUND);
        let err = check_partner_status(StatusCode::FOUND).unwrap_err();
        assert_eq!(err.code, ProblemCode::UpstreamUnavailable);
        assert!(check_partner_status(StatusCode::OK).is_ok());
        assert!(check_partner_status(StatusCode::NOT_MODIFIED).is_ok());
    }
}
