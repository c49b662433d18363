//! Phase *decide*: consumer × operation × purpose (+ context and body) → a [`Permit`], or a
//! denial with its problem code. Deny by default: no operation, no purpose, no grant, no
//! valid grant, missing context, a failed condition or a missing approval all refuse.
//!
//! A `Permit` can only be built here (its fields are private to this module and it has no
//! public constructor), and forwarding requires one: a request that was not decided cannot
//! reach a partner (see [`crate::upstream::UpstreamRequest::new`]). The order of checks is fixed so that the same request always gets the
//! same code, and so that the cheapest, least revealing checks come first.

pub use super::permit::Permit;
use super::{Grant, Operation, PolicySet, Purpose, SubjectSource, Test};
use crate::context::{Bsn, RequestContext};
use crate::minimise::RequestBody;
use crate::problem::{Problem, ProblemCode};
/// The approvals a decision looks at come from the caller's signed token.
pub use crate::token::Approval;
use std::sync::Arc;
use time::Date;

/// What the decision looks at.
pub struct DecisionRequest<'a> {
    pub consumer: &'a str,
    pub partner: &'a str,
    pub method: &'a http::Method,
    /// Partner-side path (after `/<partner>`), canonical.
    pub path: &'a str,
    pub context: &'a RequestContext,
    /// The request body (empty for GET), parsed only if a grant looks at it.
    pub body: &'a RequestBody<'a>,
    pub approvals: &'a [Approval],
    pub today: Date,
}

/// A refusal, with whatever the decision had established before it refused (for the audit
/// record and metrics).
#[derive(Debug, Clone)]
pub struct Denial {
    pub problem: Problem,
    /// For a `subject-mismatch`: the person the request was really about, when that is a
    /// valid BSN (the audit record names them too, so their art. 15 report shows the attempt).
    pub requested_subject: Option<Bsn>,
    pub operation: Option<Arc<Operation>>,
    pub purpose: Option<Arc<Purpose>>,
    pub grant: Option<Arc<Grant>>,
}

struct Partial {
    operation: Option<Arc<Operation>>,
    purpose: Option<Arc<Purpose>>,
    grant: Option<Arc<Grant>>,
}

impl Partial {
    fn deny(&self, code: ProblemCode, detail: impl Into<std::borrow::Cow<'static, str>>) -> Denial {
        self.refuse(Problem::new(code, detail))
    }

    fn refuse(&self, problem: Problem) -> Denial {
        Denial {
            problem,
            requested_subject: None,
            operation: self.operation.clone(),
            purpose: self.purpose.clone(),
            grant: self.grant.clone(),
        }
    }
}

pub fn decide(set: &PolicySet, request: &DecisionRequest<'_>) -> Result<Permit, Denial> {
    let mut partial = Partial {
        operation: None,
        purpose: None,
        grant: None,
    };

    // 1. Only operations the policy describes are forwarded at all.
    let Some((operation, params)) =
        set.match_operation(request.partner, request.method, request.path)
    else {
        // A described path asked with another method: say which methods it serves.
        let allowed = set.methods_at(request.partner, request.path);
        if !allowed.is_empty() {
            let allow: Vec<&str> = allowed.iter().map(http::Method::as_str).collect();
            return Err(partial.refuse(Problem::method_not_allowed(
                "the operation at this path is not served with this method",
                allow.join(", "),
            )));
        }
        return Err(partial.deny(
            ProblemCode::UnknownRoute,
            "no operation of this partner matches the method and path; only described operations are forwarded",
        ));
    };
    partial.operation = Some(operation.clone());

    // 2. The purpose: declared, known, not refused.
    let Some(purpose_id) = request.context.purpose.as_deref() else {
        return Err(partial.deny(
            ProblemCode::PurposeMissing,
            "declare the purpose of this exchange in the Doelbinding-Purpose header",
        ));
    };
    let Some(purpose) = set.purposes.get(purpose_id) else {
        return Err(partial.deny(
            ProblemCode::PurposeUnknown,
            "the declared purpose is not in the purpose catalog",
        ));
    };
    partial.purpose = Some(purpose.clone());
    if let Some(reason) = &purpose.refused {
        return Err(partial.deny(
            ProblemCode::NotGranted,
            format!(
                "purpose '{}' is never served through this gateway: {reason}",
                purpose.id
            ),
        ));
    }

    // 3. A grant for consumer × operation × purpose, valid today.
    let grants = set.grants_for(request.consumer, &operation.key, &purpose.id);
    if grants.is_empty() {
        return Err(partial.deny(
            ProblemCode::NotGranted,
            format!(
                "consumer '{}' holds no grant for operation '{}' with purpose '{}'",
                request.consumer, operation.key, purpose.id
            ),
        ));
    }
    let Some(grant) = grants.iter().find(|g| g.is_valid_on(request.today)) else {
        partial.grant = grants.first().cloned();
        return Err(partial.deny(
            ProblemCode::GrantExpired,
            format!("grant '{}' is not valid today", grants[0].id),
        ));
    };
    partial.grant = Some(grant.clone());

    // 4. Context the grant requires.
    let ctx = request.context;
    if grant.requires.case_id && ctx.case_id.is_none() {
        return Err(partial.deny(
            ProblemCode::ContextInvalid,
            "this grant requires the case (Doelbinding-Case-Id)",
        ));
    }
    if grant.requires.actor && ctx.actor.is_none() {
        return Err(partial.deny(
            ProblemCode::ContextInvalid,
            "this grant requires the acting employee (Doelbinding-Actor)",
        ));
    }
    if grant.requires.involved_partner && !ctx.case_partners.iter().any(|p| p == request.partner) {
        return Err(partial.deny(
            ProblemCode::ConditionFailed,
            format!(
                "only partners already involved in the case may be addressed, and '{}' is not among them",
                request.partner
            ),
        ));
    }

    let body_json = || {
        request
            .body
            .json()
            .map_err(|p| partial.deny(p.code, p.detail))
    };
    // 5. The request body matches the operation's request schema: closed objects, types,
    //    enums and formats, so the subject and the conditions below
    //    read only values of the declared shape.
    if let Some(name) = &operation.request_schema {
        // An empty body does not match; one that cannot be read strictly is refused as such
        // (context-invalid); a schema the set could not compile refuses (fail closed).
        let valid = !request.body.is_empty() && {
            let body = body_json()?;
            set.strict_schema(name)
                .is_some_and(|schema| schema.is_valid(body))
        };
        if !valid {
            return Err(partial.deny(
                ProblemCode::RequestInvalid,
                "the request body does not match the operation's request schema",
            ));
        }
    }

    // 6. The data subject: declared, and the one the operation is about ("no fishing").
    match &operation.subject {
        SubjectSource::None => {}
        subject => {
            let Some(declared) = &ctx.data_subject else {
                return Err(partial.deny(
                    ProblemCode::ContextInvalid,
                    "this operation is about one person: declare them in Doelbinding-Data-Subject",
                ));
            };
            let actual = match subject {
                SubjectSource::Path(param) => params
                    .iter()
                    .find(|(name, _)| name == param)
                    .map(|(_, value)| value.to_string()),
                SubjectSource::Body(field) => field
                    .values(body_json()?)
                    .first()
                    .and_then(|v| v.as_str())
                    .map(str::to_string),
                SubjectSource::None => None,
            };
            let actual = actual.as_deref().and_then(|a| Bsn::parse(a).ok());
            if actual.as_ref() != Some(declared.bsn()) {
                return Err(Denial {
                    requested_subject: actual,
                    ..partial.deny(
                        ProblemCode::SubjectMismatch,
                        "the person this request is about is not the declared data subject",
                    )
                });
            }
        }
    }

    // 7. Conditions on the request body. A condition holds only if the field is there in every
    //    place the path names (an array element without it fails the condition).
    if !grant.conditions.is_empty() {
        let body = body_json()?;
        for condition in &grant.conditions {
            let values = condition.field.every_value(body).unwrap_or_default();
            let holds = !values.is_empty()
                && values.iter().all(|value| match &condition.test {
                    Test::AtMost(limit) => {
                        date_of(value).is_some_and(|d| d <= limit.resolve(request.today))
                    }
                    Test::AtLeast(limit) => {
                        date_of(value).is_some_and(|d| d >= limit.resolve(request.today))
                    }
                    Test::OneOf(allowed) => value
                        .as_str()
                        .is_some_and(|s| allowed.iter().any(|a| a == s)),
                    Test::NotOneOf(refused) => value
                        .as_str()
                        .is_some_and(|s| !refused.iter().any(|r| r == s)),
                    Test::EqualsSubject => ctx
                        .data_subject
                        .as_ref()
                        .zip(value.as_str().and_then(|s| Bsn::parse(s).ok()))
                        .is_some_and(|(declared, actual)| declared.bsn() == &actual),
                });
            if !holds {
                return Err(partial.deny(
                    ProblemCode::ConditionFailed,
                    format!(
                        "condition of grant '{}' failed: {}",
                        grant.id, condition.message
                    ),
                ));
            }
        }
    }

    // 8. Four eyes: an approval by someone other than the actor (with the role, if set).
    if let Some(four_eyes) = &grant.four_eyes {
        let approved =
            super::four_eyes::approved(four_eyes, ctx.actor.as_deref(), request.approvals);
        if !approved {
            let role = four_eyes
                .role
                .as_ref()
                .map(|r| format!(" with role '{r}'"))
                .unwrap_or_default();
            return Err(partial.deny(
                ProblemCode::FourEyesRequired,
                format!("this exchange needs an approval by a colleague{role} other than the actor, in a signed caller token"),
            ));
        }
    }

    Ok(Permit::new(
        grant.clone(),
        operation.clone(),
        purpose.clone(),
    ))
}

fn date_of(value: &serde_json::Value) -> Option<Date> {
    value.as_str().and_then(super::compile::parse_date)
}
#[cfg(test)]
#[path = "decide_tests/mod.rs"]
mod tests;
