//! The rules of the time-out ledger (Verkenning 2019 §3.2.1), as pure functions of a case's
//! ledger: what the case register applies inside its serialised transaction
//! ([`crate::cases::ledger`]) and what `policy test` simulates. A new time-out is:
//! - refused towards a private party (a partner marked `private`);
//! - refused if it overlaps a time-out in force at the same partner for some of the same
//!   claims, unless it is an *extension*: the same claims, a later end; an extension needs
//!   an approval with the rule's extension role, and runs from the day after the current end;
//! - refused if the days on which the case's collection at that partner is suspended would
//!   exceed the rule's `max_total` (no chaining without limit);
//! - refused for a partner registered on the case after the case's time-out started (a
//!   time-out concerns only the parties in view at that moment);
//! - otherwise the entry to reserve. A reservation that never got the partner's answer stops
//!   counting after [`PENDING_TTL`].

use super::{FourEyes, TimeOutRule};
use crate::problem::{Problem, ProblemCode};
use crate::store::cases::{StoredCase as Case, StoredTimeOut};
use crate::token::Approval;
use time::Date;

/// How long a reservation counts without the partner's answer (far beyond any partner
/// timeout): a reservation a crash left behind must not block the case for ever.
pub const PENDING_TTL: i64 = 300;

/// One time-out being asked for.
pub struct TimeOutRequest<'a> {
    pub partner: &'a str,
    pub partner_is_private: bool,
    /// Claim ids; empty: all the person's claims at the partner.
    pub claims: Vec<String>,
    pub ends_on: Date,
    pub today: Date,
    pub actor: Option<&'a str>,
    pub approvals: &'a [Approval],
    pub transaction_id: String,
    /// The household member (keyed HMAC) the time-out is for.
    pub subject: String,
}

fn refuse(detail: String) -> Problem {
    Problem::new(ProblemCode::ConditionFailed, detail)
}

fn date(s: &str) -> Option<Date> {
    Date::parse(s, time::macros::format_description!("[year]-[month]-[day]")).ok()
}

fn format(d: Date) -> String {
    d.format(time::macros::format_description!("[year]-[month]-[day]"))
        .unwrap_or_default()
}

/// Whether two claim sets touch (an empty set is every claim).
fn share_claims(a: &[String], b: &[String]) -> bool {
    a.is_empty() || b.is_empty() || a.iter().any(|c| b.contains(c))
}

fn same_claims(a: &[String], b: &[String]) -> bool {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort();
    a.dedup();
    b.sort();
    b.dedup();
    a == b
}

/// Decides a time-out against the case's ledger: the entry to reserve, or the refusal.
pub fn decide(
    case: &Case,
    rule: &TimeOutRule,
    request: &TimeOutRequest<'_>,
    now: i64,
) -> Result<StoredTimeOut, Problem> {
    if request.partner_is_private {
        return Err(refuse(format!(
            "partner '{}' is a private party: a time-out is never directed at a private creditor",
            request.partner
        )));
    }
    if request.ends_on < request.today {
        return Err(refuse("a time-out cannot end before it starts".into()));
    }
    // What counts: granted time-outs, and reservations still waiting for their partner.
    let live: Vec<(&StoredTimeOut, Date, Date)> = case
        .time_outs
        .iter()
        .filter(|t| !t.pending || now - t.created_at < PENDING_TTL)
        .filter_map(|t| Some((t, date(&t.starts_on)?, date(&t.ends_on)?)))
        .collect();
    let at_partner: Vec<&(&StoredTimeOut, Date, Date)> = live
        .iter()
        .filter(|(t, _, _)| t.partner == request.partner)
        .collect();
    let overlapping: Vec<&&(&StoredTimeOut, Date, Date)> = at_partner
        .iter()
        .filter(|(t, _, end)| *end >= request.today && share_claims(&t.claims, &request.claims))
        .collect();

    // An extension: the same claims, in force now, asked to end later.
    let mut starts_on = request.today;
    if !overlapping.is_empty() {
        let current_end = overlapping.iter().map(|(_, _, end)| *end).max();
        let extension = overlapping
            .iter()
            .all(|(t, _, _)| same_claims(&t.claims, &request.claims))
            && current_end.is_some_and(|end| request.ends_on > end);
        let Some(current_end) = current_end.filter(|_| extension) else {
            return Err(refuse(format!(
                "a time-out at partner '{}' for some of the same claims is already in force until {}; an extension must name the same claims and end later",
                request.partner,
                current_end.map(format).unwrap_or_default()
            )));
        };
        if let Some(role) = &rule.extension_role {
            let approval = FourEyes {
                role: Some(role.clone()),
            };
            // Besides the four eyes: a second colleague, not the one who gave those.
            let actor = request.actor.map(str::to_lowercase);
            let colleagues: std::collections::BTreeSet<String> = request
                .approvals
                .iter()
                .map(|a| a.by.to_lowercase())
                .filter(|by| Some(by) != actor.as_ref())
                .collect();
            if !super::four_eyes::approved(&approval, request.actor, request.approvals)
                || colleagues.len() < 2
            {
                return Err(Problem::new(
                    ProblemCode::FourEyesRequired,
                    format!("extending a time-out needs, besides the four eyes, an approval by another colleague with role '{role}' (not the actor), in a signed caller token"),
                ));
            }
        }
        starts_on = current_end.next_day().unwrap_or(current_end);
    }

    // The cumulative term at this partner, this one included: the days on which some
    // collection of the case at the partner is suspended (time-outs for other claims that
    // run side by side count once).
    let mut periods: Vec<(Date, Date)> = at_partner
        .iter()
        .map(|(_, start, end)| (*start, *end))
        .chain(std::iter::once((starts_on, request.ends_on)))
        .collect();
    periods.sort();
    let first_start = periods[0].0;
    let limit = (rule.max_total.resolve(first_start) - first_start).whole_days();
    let total = suspended_days(&periods);
    if total > limit {
        return Err(refuse(format!(
            "the time-outs of this case at partner '{}' would last {total} days together; the grant allows at most {} ({limit} days) in all",
            request.partner,
            rule.max_total.describe_term()
        )));
    }

    // Only the parties in view when the case's time-out started.
    let since = case
        .partners
        .iter()
        .find(|(p, _)| p == request.partner)
        .map(|(_, since)| *since)
        .into_iter()
        .chain(
            case.overrides
                .iter()
                .filter(|o| o.partner == request.partner)
                .map(|o| o.granted_at),
        )
        .min();
    let period_started = live
        .iter()
        .filter(|(_, _, end)| *end >= request.today)
        .map(|(t, _, _)| t.created_at)
        .min();
    if let (Some(since), Some(started)) = (since, period_started) {
        if since > started {
            return Err(refuse(format!(
                "partner '{}' became involved in the case after its time-out started; a time-out concerns only the parties in view at that moment",
                request.partner
            )));
        }
    }

    Ok(StoredTimeOut {
        id: uuid::Uuid::now_v7().to_string(),
        partner: request.partner.to_string(),
        claims: request.claims.clone(),
        starts_on: format(starts_on),
        ends_on: format(request.ends_on),
        pending: true,
        created_at: now,
        transaction_id: request.transaction_id.clone(),
        subject: request.subject.clone(),
    })
}

/// The number of days covered by `periods` (sorted by start), overlaps counted once.
fn suspended_days(periods: &[(Date, Date)]) -> i64 {
    let mut total = 0;
    let mut current: Option<(Date, Date)> = None;
    for &(start, end) in periods {
        current = match current {
            Some((s, e)) if start <= e.next_day().unwrap_or(e) => Some((s, e.max(end))),
            Some((s, e)) => {
                total += (e - s).whole_days() + 1;
                Some((start, end))
            }
            None => Some((start, end)),
        };
    }
    if let Some((s, e)) = current {
        total += (e - s).whole_days() + 1;
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn approval(by: &str, role: &str) -> Approval {
        Approval {
            by: by.into(),
            role: Some(role.into()),
        }
    }
    use crate::policy::fieldpath::FieldPath;
    use crate::policy::RelativeDate;
    use crate::store::cases::CaseStatus;
    use time::macros::date;

    const T0: i64 = 1_800_000_000;

    fn rule(extension_role: Option<&str>) -> TimeOutRule {
        TimeOutRule {
            ends: FieldPath::parse("einddatum").unwrap(),
            claims: Some(FieldPath::parse("vorderingen[*].vordering_id").unwrap()),
            max_total: RelativeDate::parse_term("8 months").unwrap(),
            extension_role: extension_role.map(str::to_string),
        }
    }

    fn case(partners: &[(&str, i64)], time_outs: Vec<StoredTimeOut>) -> Case {
        Case {
            id: "c".into(),
            owner: "o".into(),
            status: CaseStatus::Open,
            purposes: vec!["time-out".into()],
            partners: partners.iter().map(|(p, s)| (p.to_string(), *s)).collect(),
            objections: vec![],
            household: vec![],
            overrides: vec![],
            served: vec![],
            time_outs,
            created_at: 0,
            updated_at: 0,
            closed_at: None,
            purge_after: None,
            version: 1,
        }
    }

    fn granted(partner: &str, claims: &[&str], from: &str, to: &str, at: i64) -> StoredTimeOut {
        StoredTimeOut {
            id: format!("{partner}-{from}"),
            partner: partner.into(),
            claims: claims.iter().map(|c| c.to_string()).collect(),
            starts_on: from.into(),
            ends_on: to.into(),
            pending: false,
            created_at: at,
            transaction_id: "t".into(),
            subject: "m".into(),
        }
    }

    fn ask<'a>(
        partner: &'a str,
        claims: &[&str],
        ends: Date,
        approvals: &'a [Approval],
    ) -> TimeOutRequest<'a> {
        TimeOutRequest {
            partner,
            partner_is_private: false,
            claims: claims.iter().map(|c| c.to_string()).collect(),
            ends_on: ends,
            today: date!(2027 - 01 - 10),
            actor: Some("mw-1"),
            approvals,
            transaction_id: "t2".into(),
            subject: "m".into(),
        }
    }

    fn code(result: Result<StoredTimeOut, Problem>) -> &'static str {
        result.err().map_or("granted", |p| p.code.as_str())
    }

    #[test]
    fn an_overlapping_time_out_for_the_same_claim_is_refused() {
        let c = case(
            &[("cjib", 0)],
            vec![granted("cjib", &["A", "B"], "2027-01-01", "2027-03-01", T0)],
        );
        let r = rule(None);
        assert_eq!(
            code(decide(
                &c,
                &r,
                &ask("cjib", &["B"], date!(2027 - 04 - 01), &[]),
                T0 + 10
            )),
            "condition-failed"
        );
        // Another claim at the same partner is a time-out of its own.
        assert_eq!(
            code(decide(
                &c,
                &r,
                &ask("cjib", &["C"], date!(2027 - 02 - 01), &[]),
                T0 + 10
            )),
            "granted"
        );
    }

    #[test]
    fn an_extension_needs_its_role_and_starts_after_the_current_end() {
        let c = case(
            &[("cjib", 0)],
            vec![granted("cjib", &["A"], "2027-01-01", "2027-03-01", T0)],
        );
        let r = rule(Some("afdelingshoofd"));
        let request = ask("cjib", &["A"], date!(2027 - 05 - 01), &[]);
        assert_eq!(
            code(decide(&c, &r, &request, T0 + 10)),
            "four-eyes-required"
        );
        // One colleague for both approvals is not two.
        let alone = [
            approval("tl-1", "teamleider"),
            approval("TL-1", "afdelingshoofd"),
        ];
        assert_eq!(
            code(decide(
                &c,
                &r,
                &ask("cjib", &["A"], date!(2027 - 05 - 01), &alone),
                T0 + 10
            )),
            "four-eyes-required"
        );
        let approvals = [
            approval("tl-1", "teamleider"),
            approval("mw-9", "afdelingshoofd"),
        ];
        let entry = decide(
            &c,
            &r,
            &ask("cjib", &["A"], date!(2027 - 05 - 01), &approvals),
            T0 + 10,
        )
        .unwrap();
        assert_eq!(
            (entry.starts_on.as_str(), entry.ends_on.as_str()),
            ("2027-03-02", "2027-05-01")
        );
        // Ending no later than the current one is no extension.
        assert_eq!(
            code(decide(
                &c,
                &r,
                &ask("cjib", &["A"], date!(2027 - 02 - 01), &approvals),
                T0 + 10
            )),
            "condition-failed"
        );
    }

    #[test]
    fn the_cumulative_term_is_bounded() {
        // 2026-07-01 .. 2026-10-31 and 2026-11-01 .. 2027-01-09 already: a new one to 2027-04-01
        // would pass 8 months from the first start.
        let c = case(
            &[("uwv", 0)],
            vec![
                granted("uwv", &[], "2026-07-01", "2026-10-31", T0),
                granted("uwv", &[], "2026-11-01", "2027-01-09", T0),
            ],
        );
        let r = rule(None);
        assert_eq!(
            code(decide(
                &c,
                &r,
                &ask("uwv", &[], date!(2027 - 04 - 01), &[]),
                T0 + 10
            )),
            "condition-failed"
        );
        assert_eq!(
            code(decide(
                &c,
                &r,
                &ask("uwv", &[], date!(2027 - 02 - 28), &[]),
                T0 + 10
            )),
            "granted"
        );
    }

    #[test]
    fn a_partner_involved_after_the_time_out_started_is_not_suspended() {
        let c = case(
            &[("cjib", T0 - 100), ("uwv", T0 + 50)],
            vec![granted("cjib", &["A"], "2027-01-01", "2027-03-01", T0)],
        );
        let r = rule(None);
        assert_eq!(
            code(decide(
                &c,
                &r,
                &ask("uwv", &[], date!(2027 - 02 - 01), &[]),
                T0 + 100
            )),
            "condition-failed"
        );
        let earlier = case(
            &[("cjib", T0 - 100), ("uwv", T0 - 50)],
            vec![granted("cjib", &["A"], "2027-01-01", "2027-03-01", T0)],
        );
        assert_eq!(
            code(decide(
                &earlier,
                &r,
                &ask("uwv", &[], date!(2027 - 02 - 01), &[]),
                T0 + 100
            )),
            "granted"
        );
    }

    #[test]
    fn never_a_private_party_and_a_stale_reservation_stops_counting() {
        let c = case(&[("incasso", 0)], vec![]);
        let mut request = ask("incasso", &[], date!(2027 - 02 - 01), &[]);
        request.partner_is_private = true;
        assert_eq!(
            code(decide(&c, &rule(None), &request, T0)),
            "condition-failed"
        );

        let mut pending = granted("cjib", &["A"], "2027-01-10", "2027-03-01", T0);
        pending.pending = true;
        let c = case(&[("cjib", 0)], vec![pending]);
        let again = ask("cjib", &["A"], date!(2027 - 02 - 01), &[]);
        assert_eq!(
            code(decide(&c, &rule(None), &again, T0 + 10)),
            "condition-failed"
        );
        assert_eq!(
            code(decide(&c, &rule(None), &again, T0 + PENDING_TTL + 1)),
            "granted"
        );
    }

    #[test]
    fn time_outs_for_other_claims_side_by_side_count_once() {
        let c = case(
            &[("cjib", 0)],
            vec![
                granted("cjib", &["A"], "2027-01-10", "2027-05-09", T0),
                granted("cjib", &["B"], "2027-01-10", "2027-05-09", T0),
            ],
        );
        // Four months twice side by side are four months; a third claim to 2027-09-09 makes
        // eight (the grant's maximum), one day more is refused.
        let r = rule(None);
        let third = |ends| decide(&c, &r, &ask("cjib", &["C"], ends, &[]), T0 + 10);
        assert_eq!(code(third(date!(2027 - 09 - 09))), "granted");
        assert_eq!(code(third(date!(2027 - 09 - 10))), "condition-failed");
    }
}
