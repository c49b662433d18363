//! One exchange: the facts the pipeline establishes about one request, and how it ends.
//!
//! An [`Exchange`] starts with its identifiers (transaction id, trace) and collects facts as
//! the phases establish them: who calls, which partner and operation, under which policy
//! snapshot, purpose and grant, about whom, what the partner answered and which fields were
//! released or withheld. Only the pipeline's spine (`crate::pipeline`) writes into it; each
//! phase returns its facts instead of writing them itself.
//!
//! When the phases are over, [`Exchange::conclude`] turns the exchange and its outcome into
//! a [`Concluded`] exchange: the one value the audit record, the metrics and the access log
//! are projections of. Nothing is recorded that the pipeline did not establish, and the three
//! projections cannot disagree about what happened.
//!
//! This module sits low in the tree: it names the facts, it does not produce them, so the
//! audit log can read a concluded exchange without knowing the pipeline.

use crate::context::{Bsn, RequestContext};
use crate::headers::TRACEPARENT;
use crate::identity::Consumer;
use crate::minimise::PointerList;
use crate::policy::decide::{Denial, Permit};
use crate::policy::{Grant, Operation, PolicySet, Purpose};
use crate::problem::{Problem, ProblemCode, Source};
use crate::token::Approval;
use crate::trace::{new_transaction_id, TraceContext};
use crate::upstream::{Partner, UpstreamError, UpstreamErrorKind, UpstreamResponse};
use http::header::{HeaderMap, HeaderValue};
use http::StatusCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use uuid::Uuid;

/// The facts gathered about one request as it passes the phases.
#[derive(Clone)]
pub struct Exchange {
    pub transaction_id: Uuid,
    pub trace: TraceContext,
    /// `trace` as a header value, formatted once: it goes to the partner and to the caller.
    pub traceparent: HeaderValue,
    /// The caller's `tracestate`, passed on to the partner when the trace is continued.
    pub tracestate: Option<HeaderValue>,
    pub started: Instant,
    /// Wall-clock start, for the audit record.
    pub start_time: SystemTime,
    pub consumer: Option<Arc<Consumer>>,
    pub partner: Option<Arc<Partner>>,
    /// The policy snapshot this exchange is decided under (kept for its whole life).
    pub policy: Option<Arc<PolicySet>>,
    pub operation: Option<Arc<Operation>>,
    pub purpose: Option<Arc<Purpose>>,
    pub grant: Option<Arc<Grant>>,
    pub upstream_status: Option<StatusCode>,
    pub upstream_error: Option<UpstreamErrorKind>,
    /// How long the partner took to answer (for the upstream duration metric).
    pub upstream_elapsed: Option<Duration>,
    /// JSON pointers released to the caller and withheld by minimisation.
    pub fields_released: PointerList,
    pub fields_withheld: PointerList,
    /// The declared context, once its headers were valid (for the audit record).
    pub subject: Option<Bsn>,
    /// The person a refused request was really about, when it was not the declared one
    /// (`subject-mismatch`): recorded too, so that person's report shows the attempt.
    pub requested_subject: Option<Bsn>,
    pub case_id: Option<String>,
    pub actor: Option<String>,
    /// Whether this request is an exchange the audit log records (discovery is not).
    pub audited: bool,
    /// The issuer of the caller's verified token, and the approvals it carried.
    pub token_issuer: Option<String>,
    pub approvals: Vec<Approval>,
    /// A call to the case register's API (partner `doelpoort`): its operation and what it
    /// changed (ids and counts, never a BSN).
    pub register_operation: Option<&'static str>,
    pub register_change: Option<String>,
    /// The `jti` of the assertion this exchange carried: the one the outway signed, or the
    /// one an inway verified.
    pub assertion_jti: Option<String>,
    /// `inway` at a provider's inway (the record says which end wrote it); none at an outway.
    pub role: Option<&'static str>,
    /// At an inway: the organisation the calling gateway asks for (the assertion's `sub`).
    pub requester: Option<String>,
    /// FSC logging's fields, when the exchange used an FSC access token (either end).
    pub fsc: Option<crate::fsc::TransactionLog>,
    /// At an outway: the `Fsc-Error-Code` the partner's inway answered with.
    pub fsc_error_code: Option<String>,
    /// At an outway: what the provider's inway says it released and withheld (its
    /// `Doelbinding-Fields-*` headers), so both logs can be joined.
    pub provider_fields: Option<ProviderFields>,
}

/// What a provider's inway reports it released and withheld, as field paths (array positions
/// as `*`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProviderFields {
    pub released: Vec<String>,
    pub withheld: Vec<String>,
}

impl Exchange {
    /// A new exchange for a request with these headers (the trace is continued or started).
    pub fn begin(headers: &HeaderMap) -> Self {
        let trace = TraceContext::continue_or_start(headers.get(&TRACEPARENT));
        Self {
            transaction_id: new_transaction_id(),
            traceparent: trace.header_value(),
            // Only with the trace it belongs to: a restarted trace starts without state.
            tracestate: trace
                .parent_span_id
                .and_then(|_| crate::trace::tracestate(headers)),
            trace,
            started: Instant::now(),
            start_time: SystemTime::now(),
            consumer: None,
            partner: None,
            policy: None,
            operation: None,
            purpose: None,
            grant: None,
            upstream_status: None,
            upstream_error: None,
            upstream_elapsed: None,
            fields_released: Default::default(),
            fields_withheld: Default::default(),
            subject: None,
            requested_subject: None,
            case_id: None,
            actor: None,
            audited: true,
            token_issuer: None,
            approvals: Vec::new(),
            register_operation: None,
            register_change: None,
            assertion_jti: None,
            role: None,
            requester: None,
            fsc: None,
            fsc_error_code: None,
            provider_fields: None,
        }
    }

    /// Keeps what the audit record needs of the declared context.
    pub fn note_context(&mut self, context: &RequestContext) {
        self.subject = context.data_subject.as_ref().map(|s| s.bsn().clone());
        self.case_id.clone_from(&context.case_id);
        self.actor.clone_from(&context.actor);
    }

    /// Keeps what the decision established: all of it for a permit, as far as it got for a
    /// denial.
    pub fn note_decision(&mut self, decision: &Result<Permit, Denial>) {
        match decision {
            Ok(permit) => {
                self.operation = Some(permit.operation().clone());
                self.purpose = Some(permit.purpose().clone());
                self.grant = Some(permit.grant().clone());
            }
            Err(denial) => {
                self.requested_subject.clone_from(&denial.requested_subject);
                self.operation.clone_from(&denial.operation);
                self.purpose.clone_from(&denial.purpose);
                self.grant.clone_from(&denial.grant);
            }
        }
    }

    /// Keeps what the partner's answer (or the failure to get one) tells the record and the
    /// metrics: a 5xx counts as an upstream error too.
    pub fn note_upstream(&mut self, answer: &Result<UpstreamResponse, UpstreamError>) {
        match answer {
            Ok(response) => {
                self.upstream_status = Some(response.status);
                self.upstream_elapsed = Some(response.elapsed);
                if response.status.is_server_error() {
                    self.upstream_error = Some(UpstreamErrorKind::Status);
                }
            }
            Err(e) => self.upstream_error = Some(e.kind),
        }
    }

    /// Ends the exchange: its facts, with the verdict its outcome carries, as the one value
    /// the audit record, metrics and access log project from.
    pub fn conclude(self, outcome: Result<(), &Problem>) -> Concluded {
        Concluded {
            decision: Decision::of(outcome),
            reason: outcome.err().map(|p| p.code),
            end_time: SystemTime::now(),
            kind: RecordKind::Outcome,
            facts: self,
        }
    }

    /// What is known just before a state-changing request goes to the partner: the decision
    /// was to forward it, the outcome is not known yet. Written (durably) before the partner
    /// is called, so a crash in between leaves a record that says so.
    pub fn intent(&self) -> Concluded {
        Concluded {
            decision: Decision::Allow,
            reason: None,
            end_time: SystemTime::now(),
            kind: RecordKind::Intent,
            facts: self.clone(),
        }
    }
}

/// An exchange that has ended: everything the pipeline established (its [`Exchange`], read
/// through `Deref`), and its verdict. The audit record, the metrics and the access log are each
/// a projection of this one value.
pub struct Concluded {
    pub facts: Exchange,
    pub decision: Decision,
    pub reason: Option<ProblemCode>,
    pub end_time: SystemTime,
    pub kind: RecordKind,
}

/// Which record of an exchange a [`Concluded`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// How the exchange ended: every exchange has exactly one.
    Outcome,
    /// Before a state-changing request (any method but GET and HEAD) is sent: the partner is
    /// about to act. Followed by the outcome record of the same transaction; alone, it says
    /// the outcome is unknown (the gateway stopped while the partner was called).
    Intent,
}

impl std::ops::Deref for Concluded {
    type Target = Exchange;
    fn deref(&self) -> &Exchange {
        &self.facts
    }
}

impl Concluded {
    /// Bounded labels for metrics and the access log: configured ids, or `unknown` for what
    /// the exchange did not get to. Never a value from the request.
    pub fn consumer_id(&self) -> &str {
        self.consumer.as_ref().map_or("unknown", |c| c.id.as_str())
    }
    pub fn partner_id(&self) -> &str {
        match (&self.partner, self.register_operation) {
            (Some(p), _) => p.id.as_str(),
            (None, Some(_)) => crate::cases::api::PARTNER_ID,
            (None, None) => "unknown",
        }
    }
    pub fn operation_id(&self) -> &str {
        match (&self.operation, self.register_operation) {
            (Some(o), _) => o.id.as_str(),
            // `doelpoort/cases.put` → `cases.put`
            (None, Some(op)) => op.split_once('/').map_or(op, |(_, id)| id),
            (None, None) => "unknown",
        }
    }
    pub fn purpose_id(&self) -> &str {
        self.purpose.as_ref().map_or("unknown", |p| p.id.as_str())
    }

    /// The response schema of the operation, in the policy version the exchange ran under:
    /// what names the fields of `fields_released` and `fields_withheld`.
    pub fn response_schema(&self) -> Option<&serde_json::Value> {
        let name = self.operation.as_ref()?.response_schema.as_deref()?;
        self.policy.as_ref()?.schemas.get(name)
    }
}

/// How an exchange ended, as the audit record, metrics and logs name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Forwarded and released.
    Allow,
    /// Refused because of the caller's request.
    Deny,
    /// Failed on the partner's or the gateway's side, or the partner refused the request.
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

    /// The decision an outcome stands for: a problem the caller caused is a denial; one that
    /// arose at the partner or in the gateway is an error (a partner's 4xx is the partner's
    /// refusal, not the gateway's).
    pub fn of(outcome: Result<(), &Problem>) -> Self {
        match outcome {
            Ok(()) => Self::Allow,
            Err(problem) => match problem.source() {
                Source::Caller => Self::Deny,
                Source::Partner | Source::Gateway => Self::Error,
            },
        }
    }
}
