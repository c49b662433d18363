//! `doelpoort demo`: the gateway plus built-in mock chain partners, all on loopback.
//!
//! The mock partners are real mTLS servers: they require the gateway's client certificate,
//! exactly as UWV, SVB, CJIB or a youth-care provider would, and serve the synthetic data in
//! [`data`]. The same [`MockPartner`] server, with a custom handler, is what the integration
//! tests use as an upstream.

mod calls;
pub mod cases;
pub mod data;
pub mod inway;

pub use calls::{example_calls, format_example_calls, ExampleCall};
pub mod tokens;

use crate::config::{Config, ConsumerConfig, Limits, ListenerTls, PartnerConfig};
use crate::identity::Oin;
use crate::pki::ExampleParty;
use crate::server::{self, RunningGateway};
use crate::tls;
use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

/// The organisations of the example PKI and the demo. OINs are fake (…99999…) but well-formed.
pub struct Catalog {
    pub gateway: ExampleParty,
    /// Every consumer that gets a client certificate, including `onbekend`.
    pub consumers: Vec<ExampleParty>,
    pub partners: Vec<ExampleParty>,
    /// Privacy officers with a console certificate.
    pub officers: Vec<ExampleParty>,
}

/// Consumers that get a certificate but are deliberately not configured.
pub const UNCONFIGURED_CONSUMERS: &[&str] = &["onbekend"];

fn party(id: &str, organisation: &str, oin: &str) -> ExampleParty {
    ExampleParty {
        id: id.into(),
        organisation: organisation.into(),
        oin: oin.into(),
    }
}

pub fn catalog() -> Catalog {
    Catalog {
        gateway: party(
            "doelpoort",
            "Gemeente Voorbeeldstad (Doelpoort)",
            "00000001999990000000",
        ),
        consumers: vec![
            party(
                "wijkteam-rotterdam",
                "Gemeente Rotterdam (wijkteam, voorbeeld)",
                "00000001999990001000",
            ),
            party(
                "schuldhulp-utrecht",
                "Gemeente Utrecht (schuldhulpverlening, voorbeeld)",
                "00000001999990002000",
            ),
            party(
                "onbekend",
                "Onbekende Organisatie (voorbeeld)",
                "00000001999990099000",
            ),
        ],
        partners: vec![
            party("uwv", "UWV (voorbeeld)", "00000001999990011000"),
            party("svb", "SVB (voorbeeld)", "00000001999990012000"),
            party("cjib", "CJIB (voorbeeld)", "00000001999990013000"),
            party(
                "jeugdhulp",
                "Jeugdhulp Voorbeeld (voorbeeld)",
                "00000001999990014000",
            ),
            party(
                "escalatieteam",
                "Landelijk escalatieteam (voorbeeld)",
                "00000001999990015000",
            ),
        ],
        // The municipality's data protection officer (FG), under the gateway's organisation.
        officers: vec![party(
            "fg-voorbeeldstad",
            "Gemeente Voorbeeldstad (functionaris gegevensbescherming)",
            "00000001999990000000",
        )],
    }
}

// ---- mock partners ---------------------------------------------------------------------------

/// A request as a mock partner sees it (body fully read).
pub type MockRequest = Request<Bytes>;
pub type MockFuture = Pin<Box<dyn Future<Output = Response<Full<Bytes>>> + Send>>;
/// How a mock partner answers.
pub type MockHandler = Arc<dyn Fn(MockRequest) -> MockFuture + Send + Sync>;

/// TLS context of a mock partner: its server certificate, and client certificates required
/// from `client_ca` (the gateway's).
pub fn mock_partner_tls(cert: &Path, key: &Path, client_ca: &Path) -> Result<Arc<ServerConfig>> {
    let provider = tls::provider();
    let mut roots = rustls::RootCertStore::empty();
    for ca in tls::load_certificates(client_ca)? {
        roots.add(ca)?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| anyhow!("mock partner verifier: {e}"))?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(tls::load_certificates(cert)?, tls::load_private_key(key)?)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A running mock partner.
pub struct MockPartner {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl MockPartner {
    pub async fn start(
        addr: SocketAddr,
        tls: Arc<ServerConfig>,
        handler: MockHandler,
    ) -> Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let acceptor = TlsAcceptor::from(tls);
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let handler = handler.clone();
                tokio::spawn(async move {
                    let Ok(Ok(stream)) =
                        tokio::time::timeout(Duration::from_secs(5), acceptor.accept(tcp)).await
                    else {
                        return;
                    };
                    let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let handler = handler.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = match Limited::new(body, 4 << 20).collect().await {
                                Ok(b) => b.to_bytes(),
                                Err(_) => {
                                    return Ok::<_, Infallible>(json_response(
                                        StatusCode::BAD_REQUEST,
                                        &serde_json::json!({"fout": "body"}),
                                    ))
                                }
                            };
                            Ok(handler(Request::from_parts(parts, body)).await)
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self { addr, task })
    }

    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for MockPartner {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// The handler serving [`data`] for one demo partner.
pub fn demo_handler(partner: &'static str) -> MockHandler {
    Arc::new(move |req: MockRequest| {
        let answer = data::answer(partner, req.method(), req.uri().path(), req.body());
        Box::pin(async move { json_response(answer.status, &answer.body) })
    })
}

// ---- the demo --------------------------------------------------------------------------------

#[derive(Clone)]
pub struct DemoOptions {
    /// Directory holding certs-example/, policies/ and schemas/ (the repository root).
    pub root: PathBuf,
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Where shared state lives: `None` is the embedded SQLite store in `data_dir`; a
    /// PostgreSQL URL lets several demo gateways act as replicas of one deployment.
    pub store: Option<crate::store::StoreLocation>,
    /// This gateway's instance id (each replica needs its own): `demo` by default.
    pub instance: Option<String>,
    /// Where the audit log goes: files in `data_dir` (default), or the store's PostgreSQL.
    pub audit_sink: crate::config::AuditSink,
    /// The privacy officers' console, opened with the example officer's certificate.
    pub console_listen: Option<SocketAddr>,
}

/// A running demo: the gateway and its mock partners.
pub struct Demo {
    pub gateway: RunningGateway,
    pub partners: Vec<MockPartner>,
    /// The providers' inways (see [`inway`]), by partner id.
    pub inways: Vec<(String, RunningGateway)>,
    pub config: Config,
}

const DEMO_PARTNERS: [&str; 5] = ["uwv", "svb", "cjib", "jeugdhulp", "escalatieteam"];

/// Checks that the committed example PKI is present and not expired.
fn check_example_certificates(certs: &Path) -> Result<()> {
    let ca = certs.join("ca.crt");
    if !ca.is_file() {
        bail!(
            "no example PKI in {}: create one with `doelpoort certs generate {}`",
            certs.display(),
            certs.display()
        );
    }
    let now = crate::clock::unix_now();
    let mut files = vec![
        ca,
        certs.join("gateway.crt"),
        certs.join("gateway-client.crt"),
    ];
    files.extend(
        DEMO_PARTNERS
            .iter()
            .map(|p| certs.join("partners").join(format!("{p}.crt"))),
    );
    files.extend(
        catalog()
            .consumers
            .iter()
            .map(|c| certs.join("clients").join(format!("{}.crt", c.id))),
    );
    files.extend(
        catalog()
            .officers
            .iter()
            .map(|o| officer_certificate(certs, &o.id)),
    );
    for file in files {
        for v in tls::certificate_validity(&file)? {
            if v.not_after <= now {
                bail!(
                    "the example certificate {} has expired; regenerate the example PKI with\n\n    doelpoort certs generate {}\n",
                    file.display(),
                    certs.display()
                );
            }
        }
    }
    Ok(())
}

/// The gateway configuration the demo runs with (mock partner addresses filled in).
pub fn demo_config(
    options: &DemoOptions,
    partner_addrs: &[(String, SocketAddr)],
) -> Result<Config> {
    let certs = options.root.join("certs-example");
    let cat = catalog();
    let consumers = cat
        .consumers
        .iter()
        .filter(|c| !UNCONFIGURED_CONSUMERS.contains(&c.id.as_str()))
        .map(|c| {
            Ok(ConsumerConfig {
                id: crate::id::Id::parse(&c.id)?,
                name: c.organisation.clone(),
                oin: Some(Oin::parse(&c.oin).map_err(|e| anyhow!(e))?),
                fingerprints: vec![],
                // Tokens are optional in the demo: the plain calls work without one, and a
                // token (`doelpoort token`) adds the employee's approvals.
                token: crate::config::TokenMode::Optional,
                token_issuers: vec!["demo-idp".into()],
                processor: Some(format!("https://{}.example/", c.id)),
                // SPEC §8: both demo municipalities keep their cases in the register.
                case_admin: matches!(c.id.as_str(), "wijkteam-rotterdam" | "schuldhulp-utrecht"),
                assertions: None,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let partners = partner_addrs
        .iter()
        .map(|(id, addr)| {
            let party = cat
                .partners
                .iter()
                .find(|p| &p.id == id)
                .ok_or_else(|| anyhow!("unknown demo partner {id}"))?;
            Ok(PartnerConfig {
                id: crate::id::Id::parse(id)?,
                name: party.organisation.clone(),
                oin: Some(Oin::parse(&party.oin).map_err(|e| anyhow!(e))?),
                url: format!("https://localhost:{}", addr.port()).parse()?,
                client_certificate: certs.join("gateway-client.crt"),
                client_key: certs.join("gateway-client.key"),
                trust: vec![certs.join("ca.crt")],
                connect_timeout: Duration::from_secs(2),
                response_timeout: Duration::from_secs(10),
                max_idle_connections: 64,
                fsc: None,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Config {
        role: crate::config::Role::Outway,
        fsc: None,
        source: None,
        instance: options.instance.clone().unwrap_or_else(|| "demo".into()),
        #[cfg(feature = "benchmark-switches")]
        benchmark: Default::default(),
        gateway_oin: Some(Oin::parse(&cat.gateway.oin).map_err(|e| anyhow!(e))?),
        listen: options.listen,
        admin_listen: Some(options.admin_listen),
        admin_tls: None,
        console: options
            .console_listen
            .map(|listen| demo_console(&certs, listen))
            .transpose()?,
        tokens: Some(crate::config::TokenConfig {
            audience: tokens::DEMO_AUDIENCE.into(),
            leeway: Duration::from_secs(30),
            max_lifetime: crate::config::TokenConfig::DEFAULT_MAX_LIFETIME,
            issuers: vec![crate::config::IssuerConfig {
                id: "demo-idp".into(),
                issuer: tokens::DEMO_ISSUER.into(),
                algorithms: vec![jsonwebtoken::Algorithm::ES256],
                keys: vec![tokens::issuer_public_key(&certs)],
                jwks: None,
            }],
        }),
        assertions: Some(crate::config::AssertionConfig {
            keys: vec![tokens::assertion_key(&certs)],
            lifetime: Duration::from_secs(60),
            cache_size: crate::config::AssertionConfig::DEFAULT_CACHE_SIZE,
        }),
        tls: ListenerTls {
            certificate: certs.join("gateway.crt"),
            key: certs.join("gateway.key"),
            client_ca: vec![certs.join("ca.crt")],
            crls: vec![],
        },
        limits: Limits::default(),
        problem_base: crate::config::DEFAULT_PROBLEM_BASE.into(),
        consumers,
        partners,
        policies: options.root.join("policies"),
        schemas: options.root.join("schemas"),
        audit: crate::config::AuditSettings {
            sink: options.audit_sink,
            ..crate::config::AuditSettings::durable(
                options.data_dir.join("audit"),
                options.data_dir.join("audit-subject.key"),
            )
        },
        pseudonym_secret: Some(options.data_dir.join("pseudonym.secret")),
        // A copy of the example secret (certs-example/household.key, committed like the
        // example keys), so that demo replicas sharing a store judge households alike, and
        // `audit query` finds it next to the audit directory.
        household_key: Some(options.data_dir.join("household.key")),
        store: crate::store::StoreSettings::new(options.store.clone().unwrap_or_else(|| {
            crate::store::StoreLocation::Sqlite(options.data_dir.join("store.sqlite"))
        })),
    })
}

/// The console of the demo: the gateway's certificate, and the example officers, recognised
/// by their certificates in `certs-example/officers/`.
fn demo_console(certs: &Path, listen: SocketAddr) -> Result<crate::config::ConsoleSettings> {
    let officers = catalog()
        .officers
        .iter()
        .map(|o| {
            let file = officer_certificate(certs, &o.id);
            let der = tls::load_certificates(&file)
                .with_context(|| {
                    format!(
                        "the example officer certificate {} is missing; regenerate the example PKI with `doelpoort certs generate {}`",
                        file.display(),
                        certs.display()
                    )
                })?
                .into_iter()
                .next()
                .ok_or_else(|| anyhow!("{} holds no certificate", file.display()))?;
            Ok(crate::config::Officer {
                id: crate::id::Id::parse(&o.id)?,
                name: o.organisation.clone(),
                fingerprints: vec![crate::identity::Fingerprint::of_der(der.as_ref())],
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(crate::config::ConsoleSettings {
        listen,
        tls: ListenerTls {
            certificate: certs.join("gateway.crt"),
            key: certs.join("gateway.key"),
            client_ca: vec![certs.join("ca.crt")],
            crls: vec![],
        },
        officers,
    })
}

/// Where the example PKI keeps an officer's console certificate (`.crt`, `.key`, `.p12`).
pub fn officer_certificate(certs: &Path, officer: &str) -> PathBuf {
    certs.join("officers").join(format!("{officer}.crt"))
}

/// Starts the mock partners and the gateway.
pub async fn start(options: &DemoOptions) -> Result<Demo> {
    let certs = options.root.join("certs-example");
    check_example_certificates(&certs)?;
    std::fs::create_dir_all(options.data_dir.join("audit")).with_context(|| {
        format!(
            "cannot create the demo data directory {}",
            options.data_dir.display()
        )
    })?;
    let household_key = options.data_dir.join("household.key");
    if !household_key.exists() {
        std::fs::copy(certs.join("household.key"), &household_key)
            .context("cannot copy the example household key (certs-example/household.key)")?;
    }
    // A stable pseudonym secret for the demo, made once per data directory.
    let secret = options.data_dir.join("pseudonym.secret");
    if !secret.exists() {
        crate::secrets::write_new_secret(&secret)?;
    }
    // The partners check the gateway's assertions against its published keys.
    let signer = crate::assertion::AssertionSigner::load(Some(&crate::config::AssertionConfig {
        keys: vec![tokens::assertion_key(&certs)],
        lifetime: Duration::from_secs(60),
        cache_size: 0,
    }))
    .context("the example assertion key (certs-example/assertion/)")?;
    let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_slice(signer.jwks())?;
    let cat = catalog();
    let mut partners = Vec::new();
    let mut addrs = Vec::new();
    for id in DEMO_PARTNERS {
        let tls = mock_partner_tls(
            &certs.join("partners").join(format!("{id}.crt")),
            &certs.join("partners").join(format!("{id}.key")),
            &certs.join("ca.crt"),
        )?;
        let partner_oin = cat
            .partners
            .iter()
            .find(|p| p.id == id)
            .map(|p| p.oin.clone())
            .unwrap_or_default();
        let handler = tokens::verifying_assertions(
            demo_handler(id),
            jwks.clone(),
            cat.gateway.oin.clone(),
            partner_oin,
        );
        let partner = MockPartner::start(([127, 0, 0, 1], 0).into(), tls, handler).await?;
        addrs.push((id.to_string(), partner.addr));
        partners.push(partner);
    }
    // The inways fetch the gateway's assertion keys from its admin listener, so its address
    // is fixed before either starts.
    let mut options = DemoOptions { ..options.clone() };
    if options.admin_listen.port() == 0 {
        options.admin_listen.set_port(inway::free_port()?);
    }
    let jwks = format!("http://{}/.well-known/jwks.json", options.admin_listen);
    let mut inways = Vec::new();
    for (id, addr) in addrs.iter_mut() {
        if inway::INWAY_PARTNERS.contains(&id.as_str()) {
            let running = inway::start(&options.root, &options.data_dir, id, *addr, &jwks).await?;
            *addr = running.local_addr;
            inways.push((id.clone(), running));
        }
    }
    let mut config = demo_config(&options, &addrs)?;
    for partner in config.partners.iter_mut() {
        if let Some((_, running)) = inways.iter().find(|(id, _)| *id == partner.id.as_str()) {
            inway::route_through(partner, running.local_addr)?;
        }
    }
    let gateway = server::start(&config).await?;
    cases::register(&certs, gateway.local_addr)
        .await
        .context("cannot register the demo cases")?;
    Ok(Demo {
        gateway,
        partners,
        inways,
        config,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_oins_are_valid_and_unique() {
        let cat = catalog();
        let mut seen = std::collections::HashSet::new();
        for p in std::iter::once(&cat.gateway)
            .chain(&cat.consumers)
            .chain(&cat.partners)
        {
            assert!(Oin::parse(&p.oin).is_ok(), "{}", p.id);
            assert!(seen.insert(p.oin.clone()), "duplicate OIN {}", p.oin);
        }
        for id in DEMO_PARTNERS {
            assert!(cat.partners.iter().any(|p| p.id == id));
        }
    }

    /// `schemas/examples/` holds the mock partners' answers for `policy explain --response`;
    /// they must stay what the demo really serves.
    #[test]
    fn shipped_sample_responses_are_the_mock_answers() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/examples");
        for (file, partner, path) in [
            (
                "uwv-inkomen.999990019.json",
                "uwv",
                "/v1/personen/999990019/inkomen",
            ),
            (
                "cjib-vorderingen.999990019.json",
                "cjib",
                "/v1/personen/999990019/vorderingen",
            ),
            (
                "jeugdhulp-trajecten.999990019.json",
                "jeugdhulp",
                "/v1/jeugdigen/999990019/trajecten",
            ),
        ] {
            let text = std::fs::read_to_string(root.join(file)).unwrap();
            let sample: serde_json::Value = serde_json::from_str(&text).unwrap();
            let answer = data::answer(partner, &http::Method::GET, path, b"");
            assert_eq!(sample, answer.body, "{file} differs from the mock answer");
        }
    }

    #[test]
    fn an_expired_example_pki_says_how_to_regenerate() {
        use crate::pki::{ExamplePki, LeafSpec, Usage};
        let dir = tempfile::tempdir().unwrap();
        let cat = catalog();
        crate::pki::generate_example(
            dir.path(),
            &ExamplePki {
                gateway: &cat.gateway,
                consumers: &cat.consumers,
                partners: &cat.partners,
                officers: &cat.officers,
                days: 30,
            },
        )
        .unwrap();
        check_example_certificates(dir.path()).unwrap();
        // Replace one leaf with an expired one, issued by the same CA.
        let ca = crate::pki::CertificateAuthority::load(
            &dir.path().join("ca.crt"),
            &dir.path().join("ca.key"),
        )
        .unwrap();
        let now = crate::clock::unix_now();
        let mut spec = LeafSpec::new("doelpoort", Usage::Server, 1);
        spec.not_before = now - 10 * 86_400;
        spec.not_after = now - 86_400;
        ca.issue(&spec)
            .unwrap()
            .write(dir.path(), "gateway")
            .unwrap();
        let err = check_example_certificates(dir.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("has expired"), "{err}");
        assert!(err.contains("doelpoort certs generate"), "{err}");
    }
}
