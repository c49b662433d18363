//! The demo's provider end (SPEC §10): youth care and UWV answer through inway Doelpoorts of
//! their own, each with its own release profile (`policies/providers/<partner>/`): whatever
//! the municipality's grant says, youth care's care content (`zorginhoud`, `behandelaar`) and
//! kind of help, and UWV's health data (medical reason, incapacity percentage) and employers,
//! never leave the provider. Youth care's inway speaks FSC (the municipality's gateway fetches
//! an access token for the demo contract from the inway's token endpoint); UWV's is called
//! Doelpoort to Doelpoort, with the assertion alone.
//!
//! The other demo partners are called directly, as partners without an inway are.

use crate::config::{
    Config, ConsumerConfig, FscContract, FscInway, FscOutway, Limits, ListenerTls, PartnerConfig,
    PeerAssertions, Role,
};
use crate::identity::Oin;
use crate::server::{self, RunningGateway};
use anyhow::{anyhow, Result};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// The partners behind an inway in the demo.
pub const INWAY_PARTNERS: &[&str] = &["jeugdhulp", "uwv"];
/// Of those, the ones whose inway speaks FSC.
pub const FSC_PARTNERS: &[&str] = &["jeugdhulp"];
/// The demo's FSC group and the ServiceConnectionGrant hash of its (pretend) contract.
pub const GROUP_ID: &str = "fsc-demo";
pub const GRANT_HASH: &str = "$1$3$ZGVtby1jb250cmFjdC1nZW1lZW50ZS12b29yYmVlbGRzdGFkLWpldWdkaHVscA";
/// How the municipality's gateway is known at the inway.
const CALLER: &str = "gemeente-voorbeeldstad";

/// A free loopback port (the inway must be known before the outway's configuration is made,
/// and the outway's admin address before the inway's).
///
/// Chosen from 20000–31999, below the kernel's ephemeral range (32768–60999 on Linux): a port
/// found free there can be taken by an outgoing connection before the listener binds it (seen
/// with several demos starting at once). A port is handed out once per process: demos
/// started side by side in one process (the tests) could otherwise both be given a port that
/// is free until the first of them binds it (seen once in CI).
pub fn free_port() -> Result<u16> {
    static HANDED_OUT: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    for _ in 0..256 {
        let random = uuid::Uuid::new_v4().as_u128();
        let port = 20_000 + (random % 12_000) as u16;
        let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
        if !handed_out.contains(&port) && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            handed_out.insert(port);
            return Ok(port);
        }
    }
    Err(anyhow!("no free loopback port in 20000–31999"))
}

/// Starts `partner`'s inway in front of its mock service at `service`; it fetches the
/// municipality's assertion keys from `jwks`.
pub async fn start(
    root: &Path,
    data_dir: &Path,
    partner: &str,
    service: SocketAddr,
    jwks: &str,
) -> Result<RunningGateway> {
    let certs = root.join("certs-example");
    let cat = super::catalog();
    let party = cat
        .partners
        .iter()
        .find(|p| p.id == partner)
        .ok_or_else(|| anyhow!("unknown demo partner {partner}"))?;
    let dir = data_dir.join(format!("inway-{partner}"));
    std::fs::create_dir_all(dir.join("audit"))?;
    let id = crate::id::Id::parse(partner)?;
    let caller = crate::id::Id::parse(CALLER)?;
    let port = free_port()?;
    let fsc = FSC_PARTNERS.contains(&partner);
    let config = Config {
        role: Role::Inway,
        fsc: fsc.then(|| FscInway {
            group_id: GROUP_ID.into(),
            address: format!("https://localhost:{port}"),
            token_certificate: certs.join("partners").join(format!("{partner}.crt")),
            token_key: certs.join("partners").join(format!("{partner}.key")),
            token_lifetime: Duration::from_secs(300),
            contracts: vec![FscContract {
                grant_hash: GRANT_HASH.into(),
                consumer: caller.clone(),
                service: id.clone(),
            }],
        }),
        source: None,
        instance: format!("inway-{partner}"),
        #[cfg(feature = "benchmark-switches")]
        benchmark: Default::default(),
        gateway_oin: Some(Oin::parse(&party.oin).map_err(|e| anyhow!(e))?),
        listen: ([127, 0, 0, 1], port).into(),
        admin_listen: None,
        admin_tls: None,
        console: None,
        tokens: None,
        assertions: None,
        tls: ListenerTls {
            certificate: certs.join("partners").join(format!("{partner}.crt")),
            key: certs.join("partners").join(format!("{partner}.key")),
            client_ca: vec![certs.join("ca.crt")],
            crls: vec![],
        },
        limits: Limits::default(),
        problem_base: crate::config::DEFAULT_PROBLEM_BASE.into(),
        consumers: vec![ConsumerConfig {
            id: caller,
            name: cat.gateway.organisation.clone(),
            oin: Some(Oin::parse(&cat.gateway.oin).map_err(|e| anyhow!(e))?),
            fingerprints: vec![],
            token: crate::config::TokenMode::Off,
            token_issuers: vec![],
            processor: None,
            case_admin: false,
            assertions: Some(PeerAssertions {
                jwks: jwks.parse()?,
                trust: vec![],
                issuer: None,
            }),
        }],
        partners: vec![PartnerConfig {
            id,
            name: party.organisation.clone(),
            oin: None,
            url: format!("https://localhost:{}", service.port()).parse()?,
            // The provider's own service trusts the example CA; the inway presents the
            // example gateway's client certificate to it (the demo has no provider-internal PKI).
            client_certificate: certs.join("gateway-client.crt"),
            client_key: certs.join("gateway-client.key"),
            trust: vec![certs.join("ca.crt")],
            connect_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(10),
            max_idle_connections: 16,
            fsc: None,
        }],
        policies: root.join("policies").join("providers").join(partner),
        schemas: root.join("schemas"),
        audit: crate::config::AuditSettings::durable(
            dir.join("audit"),
            dir.join("audit-subject.key"),
        ),
        pseudonym_secret: None,
        household_key: Some(dir.join("household.key")),
        store: crate::store::StoreSettings::new(crate::store::StoreLocation::Sqlite(
            dir.join("store.sqlite"),
        )),
    };
    if !dir.join("household.key").exists() {
        std::fs::copy(certs.join("household.key"), dir.join("household.key"))?;
    }
    server::start(&config).await
}

/// The municipality's partner entry for a partner behind an inway: the inway's address with
/// the partner's prefix, and FSC towards its token endpoint where the inway speaks FSC.
pub fn route_through(partner: &mut PartnerConfig, inway: SocketAddr) -> Result<()> {
    let base = format!("https://localhost:{}", inway.port());
    partner.url = format!("{base}/{}", partner.id).parse()?;
    if !FSC_PARTNERS.contains(&partner.id.as_str()) {
        return Ok(());
    }
    partner.fsc = Some(FscOutway {
        manager: format!("{base}/doelpoort/fsc").parse()?,
        grant_hash: GRANT_HASH.into(),
        group_id: GROUP_ID.into(),
        service: partner.id.to_string(),
    });
    Ok(())
}
