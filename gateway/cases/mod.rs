//! The case register (SPEC §8): the law guards cases, not single requests.
//!
//! The municipality's case system keeps each case current here (the API on the data listener,
//! [`api`]): its purposes, the household it is about, the partners the client agreed to
//! involve and those the client objected to, motivated overrides, and whether it is open. A
//! grant with `requires: [registered_case]` is then decided against the case ([`admission`]):
//! the case must be known to the caller and open, the data subject a member of its household,
//! the partner within the agreed scope, and the purpose compatible with the purposes the case
//! was already served under. Time-outs are kept per case in a ledger ([`ledger`]).
//!
//! Files: [`api`] (the register's routes, creating, replacing and closing cases), [`call`]
//! (what every register call shares), [`overrides`] (motivated exceptions), [`admission`]
//! (phase *case* on this replica's copy), [`ledger`] (reserving and settling time-outs). The
//! rules themselves are policy: [`crate::policy::case_rules`], [`crate::policy::time_out`].
//!
//! Where things live:
//! - the rows, in the store (SQLite or PostgreSQL, [`crate::store::cases`]), changed only in
//!   the register's serialised transaction, so two replicas cannot both pass a check that one
//!   change would fail;
//! - a copy of every case in memory ([`CaseRegister`]), so the decision costs a hash lookup
//!   and no round trip; each replica follows the store's version and reloads what changed
//!   ([`CaseRegister::follow`]), within a fraction of a second.
//!
//! BSNs are never stored: a household is a set of keyed HMACs ([`HouseholdKey`]), and a case
//! is shown with a household *count*.

pub mod admission;
pub mod api;
pub mod call;
pub mod ledger;
pub mod overrides;

use crate::context::Bsn;
use crate::store::cases::{case_key, CaseStatus, CaseWrite, Changed, StoredCase};
use crate::store::{Store, StoreUnavailable};
use anyhow::{Context as _, Result};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

pub use crate::policy::case_rules::in_scope;
pub use crate::store::cases::{StoredOverride, StoredTimeOut};

/// One case as the decision sees it.
pub type Case = StoredCase;

/// The secret household members' BSNs are kept under. Replicas share it (a mismatch is
/// detected at start: the store records which key made its HMACs).
#[derive(Clone)]
pub struct HouseholdKey {
    /// Keyed once: each member id then costs two SHA-256 blocks, not four.
    keyed: Hmac<Sha256>,
}

impl HouseholdKey {
    /// Reads the key from `path`; makes a new random one there if the file does not exist.
    pub fn load_or_create(path: &Path) -> Result<Self> {
        if !path.exists() {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
            }
            crate::secrets::write_new_secret(path)?;
        }
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the household key {}", path.display()))?;
        let bytes = hex::decode(text.trim())
            .ok()
            .filter(|b| b.len() == 32)
            .with_context(|| {
                format!(
                    "the household key {} is not 32 bytes written as 64 hex digits",
                    path.display()
                )
            })?;
        Ok(Self::from_bytes(&bytes))
    }

    pub fn from_bytes(key: &[u8]) -> Self {
        Self {
            keyed: Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length"),
        }
    }

    fn mac(&self) -> Hmac<Sha256> {
        self.keyed.clone()
    }

    /// The member id a BSN is stored and looked up as (hex).
    pub fn member(&self, bsn: &Bsn) -> String {
        let mut mac = self.mac();
        mac.update(b"doelpoort/household/v1\0");
        mac.update(bsn.as_str().as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Names the key without revealing it.
    pub fn id(&self) -> String {
        let mut mac = self.mac();
        mac.update(b"doelpoort/household-key-id/v1");
        hex::encode(&mac.finalize().into_bytes()[..8])
    }
}

/// The register: the store, and every case in memory for the hot path.
pub struct CaseRegister {
    pub(crate) store: Store,
    key: HouseholdKey,
    /// Owner → case id → case: each consumer's own namespace, looked up without building a
    /// key on the hot path.
    cases: RwLock<HashMap<String, HashMap<String, Arc<Case>>>>,
    /// The store's register version this copy has caught up with.
    version: AtomicI64,
    /// One refresh at a time (a write's own refresh and the follower's).
    refreshing: tokio::sync::Mutex<()>,
}

/// Why a register change did not happen.
#[derive(Debug)]
pub enum ChangeError<E> {
    /// The register's rule refused.
    Refused(E),
    Unavailable(StoreUnavailable),
}

impl CaseRegister {
    /// Opens the register on `store`: checks the household key against the one the store's
    /// HMACs were made with, and loads every case.
    pub async fn open(store: Store, key: HouseholdKey) -> Result<Arc<Self>> {
        let matches = store
            .claim_household_key(&key.id())
            .await
            .context("cannot read the case register")?;
        anyhow::ensure!(
            matches,
            "the case register's households were recorded with another household key (key id {} is not the register's): give every replica the same household_key",
            key.id()
        );
        let register = Arc::new(Self {
            store,
            key,
            cases: RwLock::new(HashMap::new()),
            version: AtomicI64::new(-1),
            refreshing: tokio::sync::Mutex::new(()),
        });
        register
            .refresh()
            .await
            .context("cannot load the case register")?;
        Ok(register)
    }

    /// `owner`'s case with this id, as this replica knows it (purged cases are gone). Each
    /// consumer has its own namespace of case ids.
    pub fn get(&self, owner: &str, id: &str) -> Option<Arc<Case>> {
        self.cases
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(owner)?
            .get(id)
            .cloned()
    }

    /// Every case this replica knows, by owner and id (for the console's register view).
    pub fn all(&self) -> Vec<Arc<Case>> {
        let cases = self.cases.read().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<Arc<Case>> = cases
            .values()
            .flat_map(|own| own.values().cloned())
            .collect();
        all.sort_by(|a, b| (&a.owner, &a.id).cmp(&(&b.owner, &b.id)));
        all
    }

    /// How many cases are in memory.
    pub fn len(&self) -> usize {
        self.cases
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(HashMap::len)
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn key(&self) -> &HouseholdKey {
        &self.key
    }

    /// Catches up with the store: reloads the cases changed since the version last seen.
    pub async fn refresh(&self) -> Result<(), StoreUnavailable> {
        let _one = self.refreshing.lock().await;
        let version = self.store.case_register_version().await?;
        let seen = self.version.load(Ordering::Acquire);
        if version == seen {
            return Ok(());
        }
        let changed = self.store.load_cases(seen).await?;
        {
            let mut cases = self.cases.write().unwrap_or_else(|e| e.into_inner());
            for case in changed {
                let own = cases.entry(case.owner.clone()).or_default();
                if case.status == CaseStatus::Purged {
                    own.remove(&case.id);
                } else {
                    own.insert(case.id.clone(), Arc::new(case));
                }
            }
        }
        self.version.fetch_max(version, Ordering::AcqRel);
        Ok(())
    }

    /// Follows the store for the life of the runtime: a change made through another replica
    /// is seen here within `every` (plus one round trip).
    /// On PostgreSQL a notification (`LISTEN doelpoort_cases`) wakes it at once; the poll
    /// stays as the fallback for a lost notification or connection, and is all SQLite has.
    pub fn follow(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let listening = Arc::downgrade(self);
        let poll = self.every(every, |register| async move {
            // A store that cannot be reached is reported by the store's own probe; the copy
            // in memory stays as it was until the store answers again.
            let _ = register.refresh().await;
        });
        tokio::spawn(async move {
            let listener = match listening.upgrade() {
                Some(register) => register.store.case_changes().await,
                None => None,
            };
            if let Some(mut listener) = listener {
                // Ends with an error when the connection is lost; the poll carries on.
                while listener.recv().await.is_ok() {
                    let Some(register) = listening.upgrade() else {
                        break;
                    };
                    let _ = register.refresh().await;
                }
            }
            let _ = poll.await;
        })
    }

    /// Runs `work` every `every` for as long as the register exists.
    fn every<F, W>(self: &Arc<Self>, every: Duration, work: W) -> tokio::task::JoinHandle<()>
    where
        W: Fn(Arc<Self>) -> F + Send + 'static,
        F: std::future::Future<Output = ()> + Send,
    {
        let register = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(register) = register.upgrade() else {
                    return;
                };
                work(register).await;
            }
        })
    }

    /// Changes one case in the store (see [`Store::change_case`]) and brings this replica's
    /// copy up to date before returning, so the caller's next request sees its change.
    pub async fn change<E>(
        &self,
        operation: &'static str,
        owner: &str,
        case_id: &str,
        rule: impl FnOnce(Option<&Case>, i64) -> Result<Vec<CaseWrite>, E>,
    ) -> Result<Arc<Case>, ChangeError<E>> {
        self.change_seeing(operation, owner, case_id, None, |case, _, now| {
            rule(case, now)
        })
        .await
    }

    /// [`Self::change`], where the rule also sees the time-outs `member` has in the owner's
    /// other cases (see [`Store::change_case_seeing`]).
    pub async fn change_seeing<E>(
        &self,
        operation: &'static str,
        owner: &str,
        case_id: &str,
        member: Option<&str>,
        rule: impl FnOnce(Option<&Case>, &[StoredTimeOut], i64) -> Result<Vec<CaseWrite>, E>,
    ) -> Result<Arc<Case>, ChangeError<E>> {
        let now = crate::clock::unix_now();
        let key = case_key(owner, case_id);
        let seeing = member.map(|m| (owner, m));
        match self
            .store
            .change_case_seeing(operation, &key, seeing, now, rule)
            .await
        {
            Err(e) => Err(ChangeError::Unavailable(e)),
            Ok(Changed::Refused(e)) => Err(ChangeError::Refused(e)),
            Ok(Changed::Committed(_)) => {
                self.refresh().await.map_err(ChangeError::Unavailable)?;
                // A purged case is no longer in memory; the caller gets what was stored.
                Ok(self.get(owner, case_id).unwrap_or_else(|| {
                    Arc::new(Case {
                        status: CaseStatus::Purged,
                        ..empty_case(case_id)
                    })
                }))
            }
        }
    }

    /// Purges the closed cases whose retention ended before `now` (unix seconds): their
    /// household, partners, overrides and ledger are deleted; the id and owner remain so the
    /// id is never given out again (its owner gets `case-closed`). The audit records stay.
    /// Returns how many.
    pub async fn purge(&self, now: i64) -> Result<usize, StoreUnavailable> {
        let purged = purge_due(&self.store, now).await?;
        self.refresh().await?;
        Ok(purged)
    }

    /// Purges due cases every `every`, for the life of the runtime.
    pub fn spawn_purge(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        self.every(every, |register| async move {
            match register.purge(crate::clock::unix_now()).await {
                Ok(0) | Err(_) => {}
                Ok(n) => tracing::info!(cases = n, "closed cases purged after their retention"),
            }
        })
    }

    /// The objections `owner`'s other open cases (not `except`) record for any of `members`.
    pub fn objections_for(
        &self,
        owner: &str,
        except: &str,
        members: &std::collections::BTreeSet<String>,
    ) -> std::collections::BTreeSet<String> {
        self.cases
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(owner)
            .into_iter()
            .flat_map(HashMap::values)
            .filter(|c| c.id != except && c.status == CaseStatus::Open)
            .filter(|c| c.household.iter().any(|m| members.contains(m)))
            .flat_map(|c| c.objections.iter().cloned())
            .collect()
    }

    /// The cases a person is a member of (for the art. 15 report), from this copy.
    pub fn cases_of(&self, bsn: &Bsn) -> Vec<Arc<Case>> {
        let member = self.key.member(bsn);
        let mut found: Vec<Arc<Case>> = self
            .cases
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .flat_map(HashMap::values)
            .filter(|c| c.household.binary_search(&member).is_ok())
            .cloned()
            .collect();
        found.sort_by(|a, b| a.id.cmp(&b.id));
        found
    }
}

/// Purges the closed cases in `store` whose retention ended before `now` (see
/// [`CaseRegister::purge`]); usable without a register (`doelpoort case purge`).
pub async fn purge_due(store: &Store, now: i64) -> Result<usize, StoreUnavailable> {
    let due = store.cases_due_for_purge(now).await?;
    let mut purged = 0;
    for id in due {
        let changed = store
            .change_case("case_purge", &id, now, |case, now| {
                // Checked again inside the transaction: the case may have changed.
                let due = case.is_some_and(|c| {
                    c.status == CaseStatus::Closed && c.purge_after.is_some_and(|t| t <= now)
                });
                if due {
                    Ok(vec![CaseWrite::Purge])
                } else {
                    Err(())
                }
            })
            .await?;
        if matches!(changed, Changed::Committed(_)) {
            purged += 1;
        }
    }
    Ok(purged)
}

/// A case with nothing in it but its id.
fn empty_case(id: &str) -> Case {
    Case {
        id: id.to_string(),
        owner: String::new(),
        status: CaseStatus::Purged,
        purposes: Vec::new(),
        partners: Vec::new(),
        objections: Vec::new(),
        household: Vec::new(),
        overrides: Vec::new(),
        served: Vec::new(),
        time_outs: Vec::new(),
        created_at: 0,
        updated_at: 0,
        closed_at: None,
        purge_after: None,
        version: 0,
    }
}
