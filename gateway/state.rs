//! What the gateway needs to serve exchanges, built once from a validated configuration.
//!
//! [`GatewayState`] is shared by every connection task behind an `Arc` and never changes;
//! what does change at run time has its own home inside it: the policy set (swapped whole on
//! reload, see [`crate::policy::store`]), the token issuers' keys (reloaded on SIGHUP), the
//! audit log's writer thread, and the store (SPEC §9) with the ledger of spent four-eyes
//! approvals.

use crate::config::{Config, Limits};
use crate::identity::{Consumer, ConsumerDirectory};
use crate::metrics::Metrics;
use crate::policy::four_eyes::ApprovalLedger;
use crate::policy::store::PolicyStore;
use crate::store::Store;
use crate::upstream::PartnerDirectory;
use anyhow::{Context, Result};
use std::sync::Arc;
use std::time::Duration;

/// Everything the gateway needs to serve exchanges; one immutable snapshot.
pub struct GatewayState {
    pub consumers: ConsumerDirectory,
    pub partners: PartnerDirectory,
    pub limits: Limits,
    /// The base of problem `type` URIs (SPEC §2).
    pub problem_base: String,
    pub metrics: Arc<Metrics>,
    pub policies: Arc<PolicyStore>,
    pub minimise_limits: crate::minimise::Limits,
    /// Only in a build with the `benchmark-switches` feature (see
    /// [`crate::config::BenchmarkSwitches`]).
    #[cfg(feature = "benchmark-switches")]
    pub benchmark: crate::config::BenchmarkSwitches,
    /// The lawful-basis audit log; `None` only with `audit.mode: off`.
    pub audit: Option<crate::audit::AuditLog>,
    /// Trusted issuers of caller tokens, when configured.
    pub tokens: Option<Arc<crate::token::TokenIssuers>>,
    /// Four-eyes approvals already spent (each serves one exchange), kept in the store.
    pub approvals: ApprovalLedger,
    /// State shared by replicas (SPEC §9).
    pub store: Store,
    /// The case register (SPEC §8), followed from the store.
    pub cases: Arc<crate::cases::CaseRegister>,
    /// Signs `Doelbinding-Assertion` for every forwarded request.
    pub assertions: crate::assertion::AssertionSigner,
    /// Which end of the exchange this gateway is (SPEC §10).
    pub role: crate::config::Role,
    /// At an inway: the callers' assertion keys and FSC tokens.
    pub inway: Option<Arc<crate::inway::Inway>>,
    /// The gateway's own identity in assertions: its OIN, or the instance name without one.
    pub gateway_id: String,
    /// Unit tests only: the phase whose start panics, to show that such an exchange still
    /// ends with its audit record and metrics (see `crate::pipeline`).
    #[cfg(test)]
    pub(crate) panic_in: Option<&'static str>,
}

impl GatewayState {
    /// Builds the gateway state from a validated configuration: consumers with their
    /// pseudonym keys, partner clients, the audit log (opened and recovered), token issuers,
    /// the assertion signer and the policy store.
    pub async fn build(config: &Config, metrics: Arc<Metrics>) -> Result<Self> {
        let secret = crate::secrets::pseudonym_secret(config.pseudonym_secret.as_deref())?;
        let mut consumers = ConsumerDirectory::default();
        for c in &config.consumers {
            consumers.insert(
                Consumer {
                    id: c.id.clone(),
                    name: c.name.clone(),
                    oin: c.oin.clone(),
                    pseudonym_key: crate::minimise::transform::consumer_key(&secret, &c.id),
                    token: c.token,
                    token_issuers: c.token_issuers.clone(),
                    processor: c.processor.clone(),
                    case_admin: c.case_admin,
                },
                &c.fingerprints,
            );
        }
        for partner in &config.partners {
            metrics.register_partner(&partner.id);
        }
        // The store first: its migrations create the tables a PostgreSQL audit sink writes to.
        let store = Store::open(&config.store, &config.instance, metrics.store())
            .await
            .context("cannot open the store")?;
        let household_key = config.household_key.clone().unwrap_or_else(|| {
            config
                .audit
                .dir
                .parent()
                .unwrap_or(std::path::Path::new("."))
                .join("household.key")
        });
        let cases = crate::cases::CaseRegister::open(
            store.clone(),
            crate::cases::HouseholdKey::load_or_create(&household_key)?,
        )
        .await?;
        let audit = if config.audit.enabled {
            Some(
                crate::audit::AuditLog::open_with(
                    &config.audit,
                    &config.instance,
                    metrics.clone(),
                    Some(&config.store),
                )
                .context("cannot open the audit log")?,
            )
        } else {
            tracing::warn!(
                "audit mode is off: exchanges are NOT recorded (development and benchmarks only)"
            );
            None
        };
        let tokens = config
            .tokens
            .as_ref()
            .map(|t| crate::token::TokenIssuers::load(t).map(Arc::new))
            .transpose()
            .context("cannot load the token issuers' keys")?;
        let assertions = crate::assertion::AssertionSigner::load(config.assertions.as_ref())
            .context("cannot load the assertion signing keys")?;
        let inway = match config.role {
            crate::config::Role::Inway => Some(Arc::new(
                crate::inway::Inway::load(config).context("cannot set up the inway")?,
            )),
            crate::config::Role::Outway => None,
        };
        Ok(Self {
            role: config.role,
            inway,
            tokens,
            approvals: ApprovalLedger::new(
                config.tokens.as_ref().map_or(Duration::ZERO, |t| t.leeway),
                store.clone(),
            ),
            store,
            cases,
            assertions,
            gateway_id: config
                .gateway_oin
                .as_ref()
                .map_or_else(|| config.instance.clone(), |o| o.as_str().to_string()),
            audit,
            consumers,
            partners: PartnerDirectory::build(
                &config.partners,
                config.gateway_oin.as_ref().map(|o| o.as_str()),
            )?,
            limits: config.limits.clone(),
            problem_base: config.problem_base.clone(),
            policies: PolicyStore::open(&config.policies, &config.schemas, metrics.clone()),
            minimise_limits: crate::minimise::Limits {
                max_depth: config.limits.max_json_depth,
            },
            #[cfg(feature = "benchmark-switches")]
            benchmark: config.benchmark.clone(),
            metrics,
            #[cfg(test)]
            panic_in: None,
        })
    }
}
