//! A case as `policy test` simulates it: the privacy officer writes the case the register
//! would hold (`case:` in a test case), and a request the policy allows under a grant with
//! `registered_case` is then checked against it with the gateway's own rules
//! ([`super::case_rules`], and [`super::time_out`] for a time-out grant).
//!
//! ```yaml
//! case:
//!   registered: true            # false: the case is not in the register
//!   owner: wijkteam-rotterdam   # default: the test's consumer
//!   status: open                # or closed
//!   purposes: [wams-onderzoek]
//!   household: ["999990019"]
//!   agreed_partners: [uwv]
//!   objections: [jeugdhulp]
//!   overrides: [svb]            # partners with a motivated override
//!   served: [wams-coordinatie]  # purposes the case was already served under
//!   time_outs:
//!     - {partner: cjib, claims: [CJIB-1], starts_on: 2026-11-01, ends_on: 2027-01-31}
//!   partners_since:             # when a partner was agreed (default: long before)
//!     uwv: 2026-12-01
//! ```

use super::decide::Permit;
use super::PolicySet;
use crate::context::DataSubject;
use crate::problem::Problem;
use crate::store::cases::{CaseStatus, StoredCase, StoredOverride, StoredTimeOut};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use time::Date;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatedCase {
    #[serde(default = "yes")]
    registered: bool,
    #[serde(default)]
    owner: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    purposes: Vec<String>,
    #[serde(default)]
    household: Vec<String>,
    #[serde(default)]
    agreed_partners: Vec<String>,
    #[serde(default)]
    objections: Vec<String>,
    #[serde(default)]
    overrides: Vec<String>,
    #[serde(default)]
    served: Vec<String>,
    #[serde(default)]
    time_outs: Vec<SimulatedTimeOut>,
    #[serde(default)]
    partners_since: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SimulatedTimeOut {
    partner: String,
    #[serde(default)]
    claims: Vec<String>,
    starts_on: String,
    ends_on: String,
}

fn yes() -> bool {
    true
}

/// A moment as a unix time (start of the day, UTC).
fn at(day: Date) -> i64 {
    day.midnight().assume_utc().unix_timestamp()
}

impl SimulatedCase {
    /// The case as the register would hold it (household members stand for themselves: the
    /// simulation needs no key), with time-outs granted at the start of their first day.
    fn stored(&self, consumer: &str, today: Date) -> Result<StoredCase, String> {
        let day = |s: &str| {
            super::compile::parse_date(s).ok_or_else(|| format!("{s:?} is not a date (YYYY-MM-DD)"))
        };
        let long_ago = at(today) - 10 * 365 * 86_400;
        let mut partners = Vec::new();
        for p in &self.agreed_partners {
            let since = match self.partners_since.get(p) {
                Some(d) => at(day(d)?),
                None => long_ago,
            };
            partners.push((p.clone(), since));
        }
        let mut time_outs = Vec::new();
        for t in &self.time_outs {
            time_outs.push(StoredTimeOut {
                id: format!("{}-{}", t.partner, t.starts_on),
                partner: t.partner.clone(),
                claims: t.claims.clone(),
                starts_on: t.starts_on.clone(),
                ends_on: t.ends_on.clone(),
                pending: false,
                created_at: at(day(&t.starts_on)?),
                transaction_id: String::new(),
                subject: String::new(),
            });
        }
        let mut household = self.household.clone();
        household.sort();
        Ok(StoredCase {
            id: String::new(),
            owner: self.owner.clone().unwrap_or_else(|| consumer.to_string()),
            status: match self.status.as_deref() {
                None | Some("open") => CaseStatus::Open,
                Some("closed") => CaseStatus::Closed,
                Some(other) => return Err(format!("case status {other:?} is open or closed")),
            },
            purposes: self.purposes.clone(),
            partners,
            objections: self.objections.clone(),
            household,
            overrides: self
                .overrides
                .iter()
                .map(|p| StoredOverride {
                    partner: p.clone(),
                    reason: String::new(),
                    actor: String::new(),
                    approvers: Vec::new(),
                    granted_at: long_ago,
                })
                .collect(),
            served: self.served.clone(),
            time_outs,
            created_at: long_ago,
            updated_at: long_ago,
            closed_at: None,
            purge_after: None,
            version: 1,
        })
    }

    /// The register's answer to an exchange the policy allowed: `Ok(Err(problem))` is a
    /// refusal; `Err` means the test case itself is not well written.
    pub fn check(
        &self,
        set: &PolicySet,
        permit: &Permit,
        exchange: &Exchange<'_>,
    ) -> Result<Result<(), Problem>, String> {
        let grant = permit.grant();
        if !grant.requires.registered_case {
            return Ok(Ok(()));
        }
        let case = self.stored(exchange.consumer, exchange.today)?;
        let member = exchange.subject.map(|s| s.bsn().as_str().to_string());
        let subject_matters = !matches!(permit.operation().subject, super::SubjectSource::None);
        let admitted = super::case_rules::admit(
            self.registered.then_some(&case),
            member.as_deref().filter(|_| subject_matters),
            set,
            &super::case_rules::CaseRequest {
                consumer: exchange.consumer,
                partner: &permit.operation().partner,
                purpose: permit.purpose(),
                grant,
                today: exchange.today,
            },
        );
        if let Err(problem) = admitted {
            return Ok(Err(problem));
        }
        let Some(rule) = &grant.time_out else {
            return Ok(Ok(()));
        };
        let body = exchange.body.ok_or("a time-out test case needs its body")?;
        let ends_on = rule
            .ends
            .values(body)
            .first()
            .and_then(|v| v.as_str())
            .and_then(super::compile::parse_date)
            .ok_or("the time-out's end date is missing from the body")?;
        let claims = rule.claims.as_ref().map_or_else(Vec::new, |path| {
            path.values(body)
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        });
        let partner = &permit.operation().partner;
        let decided = super::time_out::decide(
            &case,
            rule,
            &super::time_out::TimeOutRequest {
                partner,
                partner_is_private: set.partners.get(partner).is_some_and(|p| p.private),
                claims,
                ends_on,
                today: exchange.today,
                actor: exchange.actor,
                approvals: exchange.approvals,
                transaction_id: String::new(),
                subject: String::new(),
            },
            at(exchange.today) + 12 * 3600,
        );
        Ok(decided.map(drop))
    }
}

/// What the simulated exchange brings to the register.
pub struct Exchange<'a> {
    pub consumer: &'a str,
    pub subject: Option<&'a DataSubject>,
    pub actor: Option<&'a str>,
    pub body: Option<&'a Value>,
    pub approvals: &'a [crate::token::Approval],
    pub today: Date,
}
