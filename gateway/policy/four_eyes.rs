//! Four eyes (*vier-ogenprincipe*): an exchange whose grant says `four_eyes` needs a colleague's
//! approval, carried in the caller's signed token, and each approval serves one exchange.
//!
//! Everything about it is here, in the order the pipeline applies it:
//! 1. [`approved`] — the decision's rule: an approval by someone other than the actor (ids
//!    compared without regard to letter case), with the grant's role if it names one;
//! 2. [`check_scope`] and [`check_approved_request`] — an approval counts only for what it
//!    names: the approving token must itself carry the purpose and, where the grant depends on
//!    them, the case, the person and the partners involved, and name the operation and the
//!    request body (its canonical SHA-256) it approves;
//! 3. [`ApprovalLedger`] — spent approvals: a replay is refused as a replay before anything
//!    else is said about the request, and an approval is spent only once the body that goes
//!    with it has passed, so a refused body leaves the colleague's approval usable.
//!
//! Spent approvals live in the store ([`crate::store`]), so an approval spent on one replica
//! is refused on every other and after a restart; each replica also remembers what it has seen
//! spent, so a replay to the same replica is refused without a round trip.

use super::permit::Permit;
use super::{FourEyes, SubjectSource};
use crate::minimise::RequestBody;
use crate::problem::{Problem, ProblemCode};
use crate::store::{ApprovalSpend, Store};
use crate::token::{Approval, CallerToken};
use sha2::Digest as _;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// The decision's rule: whether `approvals` hold an approval by a colleague of `actor` (with
/// the role `rule` asks for). Without a known actor, "someone other than the actor" cannot be
/// established, so nothing is approved.
pub fn approved(rule: &FourEyes, actor: Option<&str>, approvals: &[Approval]) -> bool {
    let Some(actor) = actor else {
        return false;
    };
    approvals.iter().any(|a| {
        // Ids differing only in case are the same person in most directories.
        !actor.eq_ignore_ascii_case(&a.by)
            && rule
                .role
                .as_ref()
                .is_none_or(|r| a.role.as_ref() == Some(r))
    })
}

/// An approval counts only for what it names. Under a four-eyes grant the approving token must
/// itself carry the purpose and, where the grant depends on them, the case, the person and the
/// partners involved: headers the caller writes cannot stretch a colleague's approval to
/// another person or case.
pub fn check_scope(permit: &Permit, token: Option<&CallerToken>) -> Result<(), Problem> {
    let grant = permit.grant();
    if grant.four_eyes.is_none() {
        return Ok(());
    }
    let bound = token.is_some_and(|t| {
        t.purpose.is_some()
            && (!grant.requires.case_id || t.case_id.is_some())
            && (permit.operation().subject == SubjectSource::None || t.data_subject.is_some())
            && (!grant.requires.involved_partner || t.case_partners.is_some())
    });
    if !bound {
        return Err(Problem::new(
            ProblemCode::FourEyesRequired,
            "the approval must name what it approves: the signed token must carry purpose, case_id, data_subject and case_partners as this grant needs them",
        ));
    }
    Ok(())
}

/// An approval names the request it approves (`approves`): the operation, and the SHA-256 of
/// the canonical request body, so an approval of one time-out at CJIB cannot be spent on
/// another operation, or on the same one with other claims or dates. A body that cannot be
/// read strictly is refused as such (`context-invalid`), before the approval is spent.
pub fn check_approved_request(
    permit: &Permit,
    token: &CallerToken,
    body: &RequestBody<'_>,
) -> Result<(), Problem> {
    let Some(approves) = token.approves.as_ref() else {
        return Err(Problem::new(
            ProblemCode::FourEyesRequired,
            "the approval must name the request it approves: an approves claim with the operation and the SHA-256 of the request body",
        ));
    };
    if approves.operation != permit.operation().key {
        return Err(Problem::new(
            ProblemCode::FourEyesRequired,
            "the approval is for another operation",
        ));
    }
    let digest = if body.is_empty() {
        None
    } else {
        Some(crate::canonical::digest(body.json()?))
    };
    if approves.request_sha256 != digest {
        return Err(Problem::new(
            ProblemCode::FourEyesRequired,
            "the approval is for another request body",
        ));
    }
    Ok(())
}

/// How long a spent approval is kept in the store after its token expired: far beyond any
/// leeway or clock skew between replicas (approvals live at most 5 minutes).
const SPENT_KEPT_AFTER_EXPIRY: Duration = Duration::from_secs(24 * 3600);

/// Approvals already used, by issuer and `jti`, until their token expires.
pub struct ApprovalLedger {
    /// Clock skew allowed on `exp`: an approval is remembered that much longer.
    leeway: Duration,
    /// Where spending is decided, between replicas and across restarts.
    store: Store,
    /// Approvals this replica has seen spent (by itself or, through a refused spend, by
    /// another): a replay here is refused at once.
    seen: Mutex<HashMap<(String, String), u64>>,
}

impl ApprovalLedger {
    pub fn new(leeway: Duration, store: Store) -> Self {
        Self {
            leeway,
            store,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Checks the exchange's approval, if its grant needs one: the scope is checked, a replay
    /// known here is refused as a replay whatever else is wrong with the request, the approval
    /// must name this operation and this `body`, then `check_body` (the check of what goes to
    /// the partner) runs. Only if it passes may the approval be spent ([`Self::spend`]), so a
    /// refused body leaves the colleague's approval usable.
    pub fn admit<T>(
        &self,
        permit: &Permit,
        token: Option<&CallerToken>,
        body: &RequestBody<'_>,
        check_body: impl FnOnce() -> Result<T, Problem>,
    ) -> Result<T, Problem> {
        check_scope(permit, token)?;
        if let Some(token) = token.filter(|_| permit.grant().four_eyes.is_some()) {
            self.check_unspent(token)?;
            check_approved_request(permit, token, body)?;
        }
        check_body()
    }

    /// Refuses an approval this replica knows to be spent, without a round trip. The store
    /// still decides (atomically) for approvals spent elsewhere and for concurrent uses.
    fn check_unspent(&self, token: &CallerToken) -> Result<(), Problem> {
        let Some((jti, _)) = &token.approval_use else {
            return Ok(());
        };
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.contains_key(&(token.iss.clone(), jti.clone())) {
            return Err(already_used());
        }
        Ok(())
    }

    /// The approval `token` carries for this exchange, when its grant asks for four eyes.
    fn approval<'t>(
        permit: &Permit,
        token: Option<&'t CallerToken>,
    ) -> Option<(&'t CallerToken, &'t (String, u64))> {
        let token = token.filter(|_| permit.grant().four_eyes.is_some())?;
        Some((token, token.approval_use.as_ref()?))
    }

    /// Whether [`Self::spend`] has an approval to spend (and so a store to ask).
    pub fn spends(permit: &Permit, token: Option<&CallerToken>) -> bool {
        Self::approval(permit, token).is_some()
    }

    /// Spends the approval `token` carries, after [`Self::admit`] passed: an approval is for
    /// one exchange. A second use
    /// (a replay, or a retry) needs a new approval. A store that cannot be reached refuses the
    /// exchange: an approval that cannot be marked spent could be used again elsewhere.
    pub async fn spend(&self, permit: &Permit, token: Option<&CallerToken>) -> Result<(), Problem> {
        let Some((token, (jti, exp))) = Self::approval(permit, token) else {
            return Ok(());
        };
        // Stored under the token's own `iss` (not this replica's name for the issuer), and
        // kept a day past its expiry: replicas with another leeway, or a clock running ahead,
        // must still find it spent.
        // The jti is the caller's text: the store keeps its SHA-256, never the text itself.
        let jti_digest = hex::encode(sha2::Sha256::digest(jti.as_bytes()));
        let spend = ApprovalSpend {
            issuer: &token.iss,
            jti: &jti_digest,
            expires_at: exp.saturating_add(SPENT_KEPT_AFTER_EXPIRY.as_secs()),
        };
        let fresh = self.store.spend_approval(&spend).await.map_err(|_| {
            Problem::new(
                ProblemCode::AuditUnavailable,
                "the store of spent approvals cannot be reached, so the approval cannot be spent",
            )
        })?;
        self.remember(token, *exp);
        if fresh {
            Ok(())
        } else {
            Err(already_used())
        }
    }

    fn remember(&self, token: &CallerToken, exp: u64) {
        let Some((jti, _)) = &token.approval_use else {
            return;
        };
        let now = jsonwebtoken::get_current_timestamp();
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        // Expired approvals cannot be replayed anyway (exp is checked): forget them.
        if seen.len() >= 1024 {
            seen.retain(|_, until| *until + self.leeway.as_secs() >= now);
        }
        seen.insert((token.iss.clone(), jti.clone()), exp);
    }
}

fn already_used() -> Problem {
    Problem::new(
        ProblemCode::FourEyesRequired,
        "this approval has already been used; each exchange needs its own approval",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn approval(by: &str, role: Option<&str>) -> Approval {
        Approval {
            by: by.into(),
            role: role.map(str::to_string),
        }
    }

    #[test]
    fn only_a_colleague_with_the_role_approves() {
        let rule = FourEyes {
            role: Some("teamleider".into()),
        };
        let colleague = [approval("mw-2", Some("teamleider"))];
        assert!(approved(&rule, Some("mw-1"), &colleague));
        assert!(!approved(&rule, None, &colleague), "no actor known");
        assert!(
            !approved(&rule, Some("MW-2"), &colleague),
            "the actor himself"
        );
        assert!(!approved(
            &rule,
            Some("mw-1"),
            &[approval("mw-2", Some("medewerker"))]
        ));
        assert!(!approved(&rule, Some("mw-1"), &[]));
        let any_role = FourEyes { role: None };
        assert!(approved(&any_role, Some("mw-1"), &[approval("mw-2", None)]));
    }
}
