//! `POST /doelpoort/v1/cases/{case_id}/overrides`: a motivated exception for one partner the
//! client did not agree to, or objected to (the seriousness exception of Wams MvT §3.3.2).
//! Two colleagues other than the actor approve it in a signed caller token that names this
//! override: the case, the partner and the reason (the canonical SHA-256 of
//! `{"partner": …, "reason": …}` in `approves.request_sha256`); the token is used once.

use super::call::{
    actor, invalid, joined_at, known_ids, parse, unavailable, unknown_case, view, RegisterCall,
    RegisterFacts, OVERRIDE_OPERATION, PARTNER_ID,
};
use super::{CaseRegister, ChangeError, StoredOverride};
use crate::context::holds_bsn;
use crate::headers::json_answer as json_response;
use crate::problem::{Problem, ProblemCode};
use crate::store::cases::{CaseStatus, CaseWrite};
use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use serde::Deserialize;
use sha2::Digest as _;
use std::collections::BTreeSet;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct OverrideBody {
    partner: String,
    reason: String,
    /// A signed caller token whose approvals (two colleagues other than the actor) approve
    /// this override (`approves.operation`: `doelpoort/case-override`).
    approvals: String,
}

pub(super) async fn add_override(
    register: &CaseRegister,
    call: &RegisterCall<'_>,
    id: &str,
    facts: &mut RegisterFacts,
) -> Result<Response<Full<Bytes>>, Problem> {
    let body: OverrideBody = parse(
        call.body,
        "an override: {\"partner\": \"svb\", \"reason\": \"...\", \"approvals\": \"<signed token>\"}",
    )?;
    let partner = known_ids(std::slice::from_ref(&body.partner), "partner", |p| {
        p != PARTNER_ID && call.policy.partners.contains_key(p)
    })?
    .remove(0);
    let reason = body.reason.trim();
    if reason.chars().count() < 10 || reason.chars().count() > 2000 {
        return Err(invalid(
            "the reason motivates the seriousness of the problems (Wams MvT §3.3.2) in 10 to 2000 characters",
        ));
    }
    // Digits of other scripts (fullwidth, Arabic-Indic) are refused too: they would carry a
    // BSN past the check.
    if holds_bsn(reason)
        || reason
            .chars()
            .any(|c| c.is_numeric() && !c.is_ascii_digit())
    {
        return Err(invalid(
            "the reason must not hold a BSN (nor digits other than 0-9): the register names people only by household",
        ));
    }
    let token = verify_approvals(call, &body, id, facts.actor.as_deref())?;
    let actor = token.actor.clone();
    facts.actor = Some(actor.clone());
    facts.approvals.clone_from(&token.approvals);
    facts.change = Some(format!("override partner={partner}"));
    // The case must be this consumer's and open before an approval is spent on it.
    let current = register
        .get(call.consumer.id.as_str(), id)
        .ok_or_else(unknown_case)?;
    if current.status != CaseStatus::Open {
        return Err(closed());
    }
    // Spent first: a replayed token is answered as a replay whatever else is wrong.
    spend(register, &token).await?;
    if current.overrides.iter().any(|o| o.partner == partner) {
        return Err(already_overridden());
    }
    let approvers: Vec<String> = token.approvals.iter().map(|a| a.by.clone()).collect();
    let owner = call.consumer.id.as_str().to_string();
    let changed = register
        .change("case_override", &owner, id, |current, now| {
            let case = current.ok_or_else(unknown_case)?;
            if case.status != CaseStatus::Open {
                return Err(closed());
            }
            if case.overrides.iter().any(|o| o.partner == partner) {
                return Err(already_overridden());
            }
            Ok(vec![CaseWrite::Override(StoredOverride {
                partner: partner.clone(),
                reason: reason.to_string(),
                actor: actor.clone(),
                approvers: approvers.clone(),
                granted_at: joined_at(Some(case), now),
            })])
        })
        .await;
    match changed {
        Ok(case) => Ok(json_response(StatusCode::CREATED, &view(&case))),
        Err(ChangeError::Refused(problem)) => Err(problem),
        Err(ChangeError::Unavailable(_)) => Err(unavailable()),
    }
}

pub(super) fn closed() -> Problem {
    Problem::new(
        ProblemCode::CaseClosed,
        "the case is closed and cannot be changed",
    )
}

/// The override's token: signed by an issuer this consumer trusts, bound to the calling
/// certificate, approving this override of this case, by two colleagues other than the actor.
fn verify_approvals(
    call: &RegisterCall<'_>,
    body: &OverrideBody,
    case_id: &str,
    declared_actor: Option<&str>,
) -> Result<crate::token::CallerToken, Problem> {
    let verifier = call.tokens.ok_or_else(|| {
        Problem::new(
            ProblemCode::TokenInvalid,
            "no token issuers are configured, so no approval can be checked",
        )
    })?;
    let fingerprint = call.connection.fingerprint.as_ref().ok_or_else(|| {
        Problem::new(
            ProblemCode::TokenInvalid,
            "no client certificate to bind to",
        )
    })?;
    let token =
        verifier
            .current()
            .verify(&body.approvals, &call.consumer.token_issuers, fingerprint)?;
    // The colleagues approve this override: this partner, for this reason.
    let approved = approved_digest(body);
    if token.approves.as_ref().is_none_or(|a| {
        a.operation != OVERRIDE_OPERATION || a.request_sha256.as_deref() != Some(approved.as_str())
    }) {
        return Err(Problem::new(
            ProblemCode::FourEyesRequired,
            format!("the approvals must approve this override: approves.operation {OVERRIDE_OPERATION}, and approves.request_sha256 the digest of {{\"partner\", \"reason\"}} as sent"),
        ));
    }
    if token.case_id.as_deref() != Some(case_id) {
        return Err(Problem::new(
            ProblemCode::TokenMismatch,
            "the approvals are for another case (case_id in the signed token)",
        ));
    }
    // The call's actor (header, or the caller's own token) is the approvals' actor: nobody
    // approves an override they make themselves under another name.
    let declared = actor(call.headers)?.or_else(|| declared_actor.map(str::to_string));
    if declared.is_some_and(|d| d != token.actor) {
        return Err(Problem::new(
            ProblemCode::TokenMismatch,
            "the actor of this call (Doelbinding-Actor or the caller token's sub) differs from the actor (sub) in the approvals' token",
        ));
    }
    let actor = token.actor.to_lowercase();
    let approvers: BTreeSet<String> = token
        .approvals
        .iter()
        .map(|a| a.by.to_lowercase())
        .filter(|by| *by != actor)
        .collect();
    if approvers.len() < 2 {
        return Err(Problem::new(
            ProblemCode::FourEyesRequired,
            "an override needs the approval of two colleagues other than the actor, in a signed caller token",
        ));
    }
    Ok(token)
}

/// An approval is used once: its `jti` is spent in the store, shared by replicas.
async fn spend(register: &CaseRegister, token: &crate::token::CallerToken) -> Result<(), Problem> {
    let Some((jti, exp)) = &token.approval_use else {
        return Err(Problem::new(
            ProblemCode::FourEyesRequired,
            "the approvals' token has no jti, so it cannot be used once",
        ));
    };
    let digest = hex::encode(sha2::Sha256::digest(jti.as_bytes()));
    let spend = crate::store::ApprovalSpend {
        issuer: &token.iss,
        jti: &digest,
        expires_at: exp.saturating_add(24 * 3600),
    };
    match register.store.spend_approval(&spend).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(Problem::new(
            ProblemCode::FourEyesRequired,
            "these approvals have already been used; each override needs its own",
        )),
        Err(_) => Err(unavailable()),
    }
}

/// What the colleagues approve: the canonical digest of the override's partner and reason.
fn approved_digest(body: &OverrideBody) -> String {
    crate::canonical::digest(&serde_json::json!({
        "partner": body.partner,
        "reason": body.reason,
    }))
}

/// One override per partner and case: its motivation stays as it was approved.
fn already_overridden() -> Problem {
    invalid("this case already has an override for that partner; its motivation stays as approved")
}
