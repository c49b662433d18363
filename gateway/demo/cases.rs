//! The demo's cases (SPEC §8), registered at start through the case register's API like a
//! case system would: over mTLS with the owning consumer's example certificate, so each
//! registration is an audit record in the chain.
//!
//! - `casus-2026-0001` (wijkteam-rotterdam; household 999990019; agreed uwv, svb, jeugdhulp)
//!   and `shv-2026-0042` (schuldhulp-utrecht; household 999990019; agreed uwv, cjib): the
//!   SPEC's cases, so the README's calls keep working;
//! - `casus-2026-0003` (wijkteam-rotterdam; agreed uwv only: the client did not agree to involve
//!   youth care in this case): for `outside-case-scope` and the override. (An *objection* would
//!   be the person's, in every case of the team: casus-2026-0001 agrees youth care.)
//! - `casus-2026-0002` (wijkteam-rotterdam), closed at once: for `case-closed`.

use anyhow::{anyhow, Context as _, Result};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// One demo case: its id, owner, and the body registered.
pub struct DemoCase {
    pub id: &'static str,
    pub owner: &'static str,
    pub body: fn() -> Value,
    /// Closed right after it is registered.
    pub closed: bool,
}

pub const DEMO_CASES: &[DemoCase] = &[
    DemoCase {
        id: "casus-2026-0001",
        owner: "wijkteam-rotterdam",
        body: || {
            json!({
                "purposes": ["wams-onderzoek", "wams-coordinatie"],
                "household": ["999990019"],
                "agreed_partners": ["uwv", "svb", "jeugdhulp"],
                "objections": [],
                "status": "open",
            })
        },
        closed: false,
    },
    DemoCase {
        id: "shv-2026-0042",
        owner: "schuldhulp-utrecht",
        body: || {
            json!({
                "purposes": ["schuldhulpverlening", "time-out", "escalatie"],
                "household": ["999990019"],
                "agreed_partners": ["uwv", "cjib"],
                "objections": [],
                "status": "open",
            })
        },
        closed: false,
    },
    DemoCase {
        id: "casus-2026-0003",
        owner: "wijkteam-rotterdam",
        body: || {
            json!({
                "purposes": ["wams-onderzoek", "wams-coordinatie"],
                "household": ["999990019"],
                "agreed_partners": ["uwv"],
                "objections": [],
                "status": "open",
            })
        },
        closed: false,
    },
    DemoCase {
        id: "casus-2026-0002",
        owner: "wijkteam-rotterdam",
        body: || {
            json!({
                "purposes": ["wams-onderzoek"],
                "household": ["999990019"],
                "agreed_partners": ["uwv"],
                "objections": [],
                "status": "open",
            })
        },
        closed: true,
    },
];

/// Registers the demo cases with the gateway at `gateway`. A case an earlier run registered in
/// this data directory is left as that run (and whoever tried the README's calls) left it:
/// registering it again could collide with cases registered since, e.g. an objection to a
/// partner the demo case agreed to for the same household. A case already closed stays
/// closed: that is the register's rule, and the demo says how to start afresh.
pub async fn register(certs: &Path, gateway: SocketAddr) -> Result<()> {
    for case in DEMO_CASES {
        let client = client(certs, case.owner)?;
        let base = format!(
            "https://localhost:{}/doelpoort/v1/cases/{}",
            gateway.port(),
            case.id
        );
        let (status, _) = send(&client, http::Method::GET, &base, Vec::new()).await?;
        if status == 200 {
            continue;
        }
        let body = serde_json::to_vec(&(case.body)())?;
        let (status, answer) = send(&client, http::Method::PUT, &base, body).await?;
        if status == 403
            && answer["type"]
                .as_str()
                .is_some_and(|t| t.ends_with("/case-closed"))
        {
            if !case.closed {
                tracing::warn!(case = case.id, "demo case is closed in this data directory; start the demo with a fresh --data-dir to reset it");
            }
            continue;
        }
        if !(200..300).contains(&status) {
            return Err(anyhow!(
                "registering demo case {} answered {status}: {}",
                case.id,
                answer["detail"]
            ));
        }
        if case.closed {
            let (status, answer) = send(
                &client,
                http::Method::POST,
                &format!("{base}/close"),
                Vec::new(),
            )
            .await?;
            if status != 200 {
                return Err(anyhow!(
                    "closing demo case {} answered {status}: {}",
                    case.id,
                    answer["detail"]
                ));
            }
        }
    }
    Ok(())
}

type DemoClient = Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

/// A client with `consumer`'s example certificate, trusting the example CA.
fn client(certs: &Path, consumer: &str) -> Result<DemoClient> {
    let partner = crate::config::PartnerConfig {
        id: crate::id::Id::parse(consumer)?,
        name: consumer.to_string(),
        oin: None,
        url: "https://localhost/".parse()?,
        client_certificate: certs.join("clients").join(format!("{consumer}.crt")),
        client_key: certs.join("clients").join(format!("{consumer}.key")),
        trust: vec![certs.join("ca.crt")],
        connect_timeout: Duration::from_secs(2),
        response_timeout: Duration::from_secs(10),
        max_idle_connections: 1,
        fsc: None,
    };
    let tls = crate::tls::partner_client_config(&partner)
        .with_context(|| format!("the example certificate of {consumer}"))?;
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .build();
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

async fn send(
    client: &DemoClient,
    method: http::Method,
    url: &str,
    body: Vec<u8>,
) -> Result<(u16, Value)> {
    let request = http::Request::builder()
        .method(method)
        .uri(url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(crate::context::ACTOR, "demo-start")
        .body(Full::new(Bytes::from(body)))?;
    let response = tokio::time::timeout(Duration::from_secs(10), client.request(request))
        .await
        .context("the gateway did not answer in time")??;
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await?.to_bytes();
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}
