//! The case register's rows (SPEC §8): reading them, and changing them in one serialised
//! transaction. What a change may do is decided in [`crate::cases`]; this module only knows
//! tables.
//!
//! A change runs as: begin; bump `case_register.version` (the row lock orders every register
//! write across replicas); read the case as it is now; let the caller's rule decide the
//! writes ([`CaseWrite`]) from that; apply them, stamping the case with the new version;
//! commit. A rule that refuses rolls everything back. Replicas follow by loading the cases
//! whose version is above the one they last saw ([`Store::load_cases`]).

use super::{Pool, Store, StoreUnavailable};

/// Where a case stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaseStatus {
    Open,
    Closed,
    /// Closed and past its retention: only the id and owner remain.
    Purged,
}

impl CaseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Closed => "closed",
            Self::Purged => "purged",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "open" => Self::Open,
            "closed" => Self::Closed,
            // Anything else is treated as gone: nothing is served for it.
            _ => Self::Purged,
        }
    }
}

/// One case as stored, with everything the decision and the reports need.
#[derive(Debug, Clone)]
pub struct StoredCase {
    pub id: String,
    pub owner: String,
    pub status: CaseStatus,
    pub purposes: Vec<String>,
    /// Agreed partners with the moment (unix seconds) each was first registered.
    pub partners: Vec<(String, i64)>,
    pub objections: Vec<String>,
    /// Keyed HMACs (hex) of the household's BSNs.
    pub household: Vec<String>,
    pub overrides: Vec<StoredOverride>,
    /// The purposes the case has been served under.
    pub served: Vec<String>,
    pub time_outs: Vec<StoredTimeOut>,
    pub created_at: i64,
    pub updated_at: i64,
    pub closed_at: Option<i64>,
    pub purge_after: Option<i64>,
    pub version: i64,
}

#[derive(Debug, Clone)]
pub struct StoredOverride {
    pub partner: String,
    pub reason: String,
    pub actor: String,
    pub approvers: Vec<String>,
    pub granted_at: i64,
}

#[derive(Debug, Clone)]
pub struct StoredTimeOut {
    pub id: String,
    pub partner: String,
    /// Claim ids; empty: all the person's claims at the partner.
    pub claims: Vec<String>,
    /// First and last day (YYYY-MM-DD).
    pub starts_on: String,
    pub ends_on: String,
    /// Reserved and sent, not yet confirmed by the partner.
    pub pending: bool,
    pub created_at: i64,
    pub transaction_id: String,
    /// The household member (keyed HMAC) the time-out is for.
    pub subject: String,
}

/// The head of a case being created or replaced.
#[derive(Debug, Clone)]
pub struct CaseHead {
    pub owner: String,
    pub status: CaseStatus,
    pub purposes: Vec<String>,
    pub objections: Vec<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub closed_at: Option<i64>,
    pub purge_after: Option<i64>,
}

/// One write a rule decided on. Applied in order, in the change's transaction.
#[derive(Debug, Clone)]
pub enum CaseWrite {
    /// Create or replace the case: head, agreed partners (with their `since`) and household.
    Put {
        head: CaseHead,
        partners: Vec<(String, i64)>,
        household: Vec<String>,
    },
    Override(StoredOverride),
    /// An override lapses (the household grew, or the client objected anew).
    DropOverride {
        partner: String,
    },
    Served {
        purpose: String,
        at: i64,
    },
    ReserveTimeOut(StoredTimeOut),
    GrantTimeOut {
        id: String,
    },
    DropTimeOut {
        id: String,
    },
    /// Remove everything but the id and owner.
    Purge,
}

/// Loads cases: those named `case_id`, or changed after version `since`.
macro_rules! load_cases {
    ($exec:expr, $case_id:expr, $since:expr) => {{
        const CASES: &str = "SELECT case_key, owner, status, purposes, objections, created_at, \
             updated_at, closed_at, purge_after, version FROM cases c \
             WHERE (c.case_key = $1 OR c.version > $2)";
        const PARTNERS: &str = "SELECT p.case_key, p.partner, p.since FROM case_partners p \
             JOIN cases c ON c.case_key = p.case_key WHERE (c.case_key = $1 OR c.version > $2)";
        const HOUSEHOLD: &str = "SELECT h.case_key, h.subject_hmac FROM case_household h \
             JOIN cases c ON c.case_key = h.case_key WHERE (c.case_key = $1 OR c.version > $2)";
        const OVERRIDES: &str = "SELECT o.case_key, o.partner, o.reason, o.actor, o.approvers, \
             o.granted_at FROM case_overrides o \
             JOIN cases c ON c.case_key = o.case_key WHERE (c.case_key = $1 OR c.version > $2)";
        const SERVED: &str = "SELECT s.case_key, s.purpose FROM case_purposes_served s \
             JOIN cases c ON c.case_key = s.case_key WHERE (c.case_key = $1 OR c.version > $2)";
        const TIME_OUTS: &str = "SELECT t.case_key, t.id, t.partner, t.claims, t.starts_on, \
             t.ends_on, t.state, t.created_at, t.transaction_id, t.subject FROM case_time_outs t \
             JOIN cases c ON c.case_key = t.case_key WHERE (c.case_key = $1 OR c.version > $2) \
             ORDER BY t.starts_on, t.created_at";
        let heads: Vec<HeadRow> = sqlx::query_as(CASES)
            .bind($case_id)
            .bind($since)
            .fetch_all(&mut *$exec)
            .await?;
        let partners: Vec<(String, String, i64)> = sqlx::query_as(PARTNERS)
            .bind($case_id)
            .bind($since)
            .fetch_all(&mut *$exec)
            .await?;
        let household: Vec<(String, String)> = sqlx::query_as(HOUSEHOLD)
            .bind($case_id)
            .bind($since)
            .fetch_all(&mut *$exec)
            .await?;
        let overrides: Vec<(String, String, String, String, String, i64)> =
            sqlx::query_as(OVERRIDES)
                .bind($case_id)
                .bind($since)
                .fetch_all(&mut *$exec)
                .await?;
        let served: Vec<(String, String)> = sqlx::query_as(SERVED)
            .bind($case_id)
            .bind($since)
            .fetch_all(&mut *$exec)
            .await?;
        let time_outs: Vec<TimeOutRow> = sqlx::query_as(TIME_OUTS)
            .bind($case_id)
            .bind($since)
            .fetch_all(&mut *$exec)
            .await?;
        Ok::<_, sqlx::Error>(assemble(
            heads, partners, household, overrides, served, time_outs,
        ))
    }};
}

type HeadRow = (
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
    Option<i64>,
    Option<i64>,
    i64,
);
type TimeOutRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    i64,
    String,
    String,
);

fn json_list(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

fn to_json(list: &[String]) -> String {
    serde_json::to_string(list).unwrap_or_else(|_| "[]".into())
}

fn time_out_of(t: TimeOutRow) -> StoredTimeOut {
    StoredTimeOut {
        id: t.1,
        partner: t.2,
        claims: json_list(&t.3),
        starts_on: t.4,
        ends_on: t.5,
        pending: t.6 == "pending",
        created_at: t.7,
        transaction_id: t.8,
        subject: t.9,
    }
}

/// The store's name for a case: `<owner>/<case id>`. Each consumer has its own namespace of
/// case ids (consumer ids hold no `/`).
pub fn case_key(owner: &str, case_id: &str) -> String {
    format!("{owner}/{case_id}")
}

fn assemble(
    heads: Vec<HeadRow>,
    partners: Vec<(String, String, i64)>,
    household: Vec<(String, String)>,
    overrides: Vec<(String, String, String, String, String, i64)>,
    served: Vec<(String, String)>,
    time_outs: Vec<TimeOutRow>,
) -> Vec<StoredCase> {
    let mut cases: std::collections::HashMap<String, StoredCase> = heads
        .into_iter()
        .map(|h| {
            (
                h.0.clone(),
                StoredCase {
                    // The key is `<owner>/<case id>`; owners have no `/` in their ids.
                    id: h
                        .0
                        .split_once('/')
                        .map_or(h.0.as_str(), |(_, id)| id)
                        .to_string(),
                    owner: h.1,
                    status: CaseStatus::parse(&h.2),
                    purposes: json_list(&h.3),
                    objections: json_list(&h.4),
                    partners: Vec::new(),
                    household: Vec::new(),
                    overrides: Vec::new(),
                    served: Vec::new(),
                    time_outs: Vec::new(),
                    created_at: h.5,
                    updated_at: h.6,
                    closed_at: h.7,
                    purge_after: h.8,
                    version: h.9,
                },
            )
        })
        .collect();
    for (case, partner, since) in partners {
        if let Some(c) = cases.get_mut(&case) {
            c.partners.push((partner, since));
        }
    }
    for (case, hmac) in household {
        if let Some(c) = cases.get_mut(&case) {
            c.household.push(hmac);
        }
    }
    for (case, partner, reason, actor, approvers, granted_at) in overrides {
        if let Some(c) = cases.get_mut(&case) {
            c.overrides.push(StoredOverride {
                partner,
                reason,
                actor,
                approvers: json_list(&approvers),
                granted_at,
            });
        }
    }
    for (case, purpose) in served {
        if let Some(c) = cases.get_mut(&case) {
            c.served.push(purpose);
        }
    }
    for t in time_outs {
        if let Some(c) = cases.get_mut(&t.0) {
            c.time_outs.push(time_out_of(t));
        }
    }
    let mut list: Vec<StoredCase> = cases.into_values().collect();
    for c in &mut list {
        c.partners.sort();
        c.household.sort();
        c.served.sort();
    }
    list.sort_by(|a, b| a.id.cmp(&b.id));
    list
}

/// Applies one write to `case_id`, stamped `version`.
macro_rules! apply_write {
    ($tx:expr, $case_id:expr, $version:expr, $write:expr) => {{
        match $write {
            CaseWrite::Put {
                head,
                partners,
                household,
            } => {
                const UPSERT: &str = "INSERT INTO cases (case_key, owner, status, purposes, \
                     objections, household_count, created_at, updated_at, closed_at, \
                     purge_after, version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                     ON CONFLICT (case_key) DO UPDATE SET owner = excluded.owner, \
                     status = excluded.status, purposes = excluded.purposes, \
                     objections = excluded.objections, \
                     household_count = excluded.household_count, \
                     created_at = excluded.created_at, updated_at = excluded.updated_at, \
                     closed_at = excluded.closed_at, purge_after = excluded.purge_after, \
                     version = excluded.version";
                sqlx::query(UPSERT)
                    .bind($case_id)
                    .bind(&head.owner)
                    .bind(head.status.as_str())
                    .bind(to_json(&head.purposes))
                    .bind(to_json(&head.objections))
                    .bind(household.len() as i64)
                    .bind(head.created_at)
                    .bind(head.updated_at)
                    .bind(head.closed_at)
                    .bind(head.purge_after)
                    .bind($version)
                    .execute(&mut *$tx)
                    .await?;
                sqlx::query("DELETE FROM case_partners WHERE case_key = $1")
                    .bind($case_id)
                    .execute(&mut *$tx)
                    .await?;
                for (partner, since) in partners {
                    sqlx::query(
                        "INSERT INTO case_partners (case_key, partner, since) VALUES ($1, $2, $3)",
                    )
                    .bind($case_id)
                    .bind(partner)
                    .bind(*since)
                    .execute(&mut *$tx)
                    .await?;
                }
                sqlx::query("DELETE FROM case_household WHERE case_key = $1")
                    .bind($case_id)
                    .execute(&mut *$tx)
                    .await?;
                for hmac in household {
                    sqlx::query(
                        "INSERT INTO case_household (case_key, subject_hmac) VALUES ($1, $2) \
                         ON CONFLICT DO NOTHING",
                    )
                    .bind($case_id)
                    .bind(hmac)
                    .execute(&mut *$tx)
                    .await?;
                }
            }
            CaseWrite::Override(o) => {
                sqlx::query(
                    "INSERT INTO case_overrides (case_key, partner, reason, actor, approvers, \
                     granted_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (case_key, partner) \
                     DO UPDATE SET reason = excluded.reason, actor = excluded.actor, \
                     approvers = excluded.approvers, granted_at = excluded.granted_at",
                )
                .bind($case_id)
                .bind(&o.partner)
                .bind(&o.reason)
                .bind(&o.actor)
                .bind(to_json(&o.approvers))
                .bind(o.granted_at)
                .execute(&mut *$tx)
                .await?;
            }
            CaseWrite::DropOverride { partner } => {
                sqlx::query("DELETE FROM case_overrides WHERE case_key = $1 AND partner = $2")
                    .bind($case_id)
                    .bind(partner)
                    .execute(&mut *$tx)
                    .await?;
            }
            CaseWrite::Served { purpose, at } => {
                sqlx::query(
                    "INSERT INTO case_purposes_served (case_key, purpose, first_served_at) \
                     VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                )
                .bind($case_id)
                .bind(purpose)
                .bind(*at)
                .execute(&mut *$tx)
                .await?;
            }
            CaseWrite::ReserveTimeOut(t) => {
                sqlx::query(
                    "INSERT INTO case_time_outs (id, case_key, partner, claims, starts_on, \
                     ends_on, state, created_at, transaction_id, subject) \
                     VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8, $9)",
                )
                .bind(&t.id)
                .bind($case_id)
                .bind(&t.partner)
                .bind(to_json(&t.claims))
                .bind(&t.starts_on)
                .bind(&t.ends_on)
                .bind(t.created_at)
                .bind(&t.transaction_id)
                .bind(&t.subject)
                .execute(&mut *$tx)
                .await?;
            }
            CaseWrite::GrantTimeOut { id } => {
                sqlx::query("UPDATE case_time_outs SET state = 'granted' WHERE id = $1")
                    .bind(id)
                    .execute(&mut *$tx)
                    .await?;
            }
            CaseWrite::DropTimeOut { id } => {
                sqlx::query("DELETE FROM case_time_outs WHERE id = $1")
                    .bind(id)
                    .execute(&mut *$tx)
                    .await?;
            }
            CaseWrite::Purge => {
                for table in [
                    "DELETE FROM case_partners WHERE case_key = $1",
                    "DELETE FROM case_household WHERE case_key = $1",
                    "DELETE FROM case_overrides WHERE case_key = $1",
                    "DELETE FROM case_purposes_served WHERE case_key = $1",
                    "DELETE FROM case_time_outs WHERE case_key = $1",
                ] {
                    sqlx::query(table).bind($case_id).execute(&mut *$tx).await?;
                }
                sqlx::query(
                    "UPDATE cases SET status = 'purged', purposes = '[]', objections = '[]', \
                     household_count = 0 WHERE case_key = $1",
                )
                .bind($case_id)
                .execute(&mut *$tx)
                .await?;
            }
        }
        // Every write marks the case changed, so replicas reload it.
        sqlx::query("UPDATE cases SET version = $1 WHERE case_key = $2")
            .bind($version)
            .bind($case_id)
            .execute(&mut *$tx)
            .await?;
        Ok::<(), sqlx::Error>(())
    }};
}

/// The PostgreSQL channel register changes are announced on.
const CASE_CHANNEL: &str = "doelpoort_cases";

/// What a change ended with.
pub enum Changed<E> {
    /// Committed as register version `.0`.
    Committed(i64),
    /// The rule refused; nothing was written.
    Refused(E),
}

impl Store {
    /// The register's version: every change raises it by one.
    pub async fn case_register_version(&self) -> Result<i64, StoreUnavailable> {
        self.timed("case_version", async {
            const SQL: &str = "SELECT version FROM case_register WHERE id = 1";
            on_pool!(&self.pool, p => sqlx::query_as::<_, (i64,)>(SQL).fetch_one(p).await.map(|r| r.0))
        })
        .await
    }

    /// The cases changed after register version `since` (every case for `since` < 0),
    /// purged ones included so that followers forget them.
    pub async fn load_cases(&self, since: i64) -> Result<Vec<StoredCase>, StoreUnavailable> {
        self.timed("case_load", async {
            on_pool!(&self.pool, p => {
                let mut conn = p.acquire().await?;
                load_cases!(conn, "", since)
            })
        })
        .await
    }

    /// Records which key the household HMACs are made with, or checks it is the one already
    /// recorded: `Ok(false)` when another key made the register's HMACs.
    pub async fn claim_household_key(&self, key_id: &str) -> Result<bool, StoreUnavailable> {
        self.timed("household_key", async {
            const CLAIM: &str = "UPDATE case_register SET household_key_id = $1 \
                 WHERE id = 1 AND household_key_id IS NULL";
            const READ: &str = "SELECT household_key_id FROM case_register WHERE id = 1";
            on_pool!(&self.pool, p => {
                sqlx::query(CLAIM).bind(key_id).execute(p).await?;
                let (recorded,): (Option<String>,) = sqlx::query_as(READ).fetch_one(p).await?;
                Ok::<bool, sqlx::Error>(recorded.as_deref() == Some(key_id))
            })
        })
        .await
    }

    /// Changes one case (`key`: see [`case_key`]) in the register's serialised transaction:
    /// `rule` sees the case as it is now (`None`: never registered) and the time, and returns
    /// the writes or a refusal.
    pub async fn change_case<E>(
        &self,
        operation: &'static str,
        key: &str,
        now: i64,
        rule: impl FnOnce(Option<&StoredCase>, i64) -> Result<Vec<CaseWrite>, E>,
    ) -> Result<Changed<E>, StoreUnavailable> {
        self.change_case_seeing(operation, key, None, now, |case, _, now| rule(case, now))
            .await
    }

    /// [`Self::change_case`], where the rule also sees the time-outs that `member` (a
    /// household member id) has in the owner's *other* cases: a time-out is one person's, not
    /// one case's.
    pub async fn change_case_seeing<E>(
        &self,
        operation: &'static str,
        key: &str,
        member: Option<(&str, &str)>,
        now: i64,
        rule: impl FnOnce(Option<&StoredCase>, &[StoredTimeOut], i64) -> Result<Vec<CaseWrite>, E>,
    ) -> Result<Changed<E>, StoreUnavailable> {
        const BUMP: &str =
            "UPDATE case_register SET version = version + 1 WHERE id = 1 RETURNING version";
        const RELATED: &str = "SELECT t.case_key, t.id, t.partner, t.claims, t.starts_on, \
             t.ends_on, t.state, t.created_at, t.transaction_id, t.subject \
             FROM case_time_outs t JOIN cases c ON c.case_key = t.case_key \
             WHERE t.subject = $1 AND c.owner = $2 AND t.case_key <> $3";
        let case_id = key;
        let mut rule = Some(rule);
        self.timed(operation, async {
            on_pool!(&self.pool, p => {
                let mut tx = p.begin().await?;
                let (version,): (i64,) = sqlx::query_as(BUMP).fetch_one(&mut *tx).await?;
                let current = load_cases!(tx, case_id, i64::MAX)?;
                let related: Vec<StoredTimeOut> = match member {
                    None => Vec::new(),
                    Some((owner, subject)) => sqlx::query_as::<_, TimeOutRow>(RELATED)
                        .bind(subject)
                        .bind(owner)
                        .bind(case_id)
                        .fetch_all(&mut *tx)
                        .await?
                        .into_iter()
                        .map(time_out_of)
                        .collect(),
                };
                let rule = rule.take().expect("the rule runs once");
                match rule(current.first(), &related, now) {
                    Err(refusal) => {
                        tx.rollback().await?;
                        Ok(Changed::Refused(refusal))
                    }
                    Ok(writes) => {
                        for write in &writes {
                            apply_write!(tx, case_id, version, write)?;
                        }
                        tx.commit().await?;
                        Ok(Changed::Committed(version))
                    }
                }
            })
        })
        .await
        .inspect(|changed| {
            if matches!(changed, Changed::Committed(_)) {
                self.announce_case_change();
            }
        })
    }

    /// Tells the other replicas that the register changed (PostgreSQL `NOTIFY`; they also poll,
    /// so a lost notification delays them at most one poll).
    fn announce_case_change(&self) {
        if let Pool::Postgres(pool) = &self.pool {
            let pool = pool.clone();
            tokio::spawn(async move {
                let _ = sqlx::query("SELECT pg_notify('doelpoort_cases', '')")
                    .execute(&pool)
                    .await;
            });
        }
    }

    /// On PostgreSQL, a listener that wakes when another replica changed the register.
    pub async fn case_changes(&self) -> Option<sqlx::postgres::PgListener> {
        let Pool::Postgres(pool) = &self.pool else {
            return None;
        };
        let mut listener = sqlx::postgres::PgListener::connect_with(pool).await.ok()?;
        listener.listen(CASE_CHANNEL).await.ok()?;
        Some(listener)
    }

    /// The closed cases whose retention ended before `now`, to be purged.
    pub async fn cases_due_for_purge(&self, now: i64) -> Result<Vec<String>, StoreUnavailable> {
        self.timed("case_purge", async {
            const SQL: &str = "SELECT case_key FROM cases WHERE status = 'closed' \
                 AND purge_after IS NOT NULL AND purge_after <= $1 ORDER BY case_key";
            on_pool!(&self.pool, p => sqlx::query_as::<_, (String,)>(SQL)
                .bind(now)
                .fetch_all(p)
                .await
                .map(|rows| rows.into_iter().map(|r| r.0).collect()))
        })
        .await
    }
}
