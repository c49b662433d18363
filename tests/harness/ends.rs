//! Both ends of an exchange (SPEC §10): a real outway `doelpoort run` process in front of a
//! real inway `doelpoort run` process, in front of a mock provider service — each with its
//! own configuration, policies and audit log, sharing the test PKI.
//!
//! - The outway is the municipality's gateway: consumer `wijkteam-test` (the `consumer`
//!   certificate) may call `uwv/inkomen` for `test-doel`, and its grant releases everything the
//!   schema has, `werkgever` included.
//! - The inway is UWV's: its one consumer is the outway (`gemeente`, the `gateway-client`
//!   certificate, assertion keys from the outway's admin listener), and its own release profile
//!   never releases `werkgever`. A second consumer `andere-gemeente` (the `consumer`
//!   certificate) exists so tokens can be presented on another caller's connection.
//! - With `fsc`, the inway issues FSC access tokens for one contract and requires them; the
//!   outway fetches them from the inway's token endpoint.

use super::*;

pub const GRANT_HASH: &str = "$1$3$dGVzdC1ncmFudC1oYXNoLWZvci10aGUtaW53YXk";
pub const GROUP_ID: &str = "fsc-test";
/// The person every call is about (passes the elfproef).
pub const BSN: &str = "999990019";
/// The answer of the provider's service: the inway must keep `werkgever` home.
pub const SERVICE_ANSWER: &str =
    r#"{"bsn":"999990019","inkomen":2150,"werkgever":"GEHEIM-werkgever-BV"}"#;
pub const SECRET: &str = "GEHEIM-werkgever-BV";

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "properties": {
    "bsn": {"type": "string", "x-data-category": "identifying"},
    "inkomen": {"type": "integer", "x-data-category": "financial"},
    "werkgever": {"type": "string", "x-data-category": "employment"}
  },
  "required": ["bsn", "inkomen"],
  "additionalProperties": false
}"#;

const PURPOSE: &str = r#"purposes:
  - id: test-doel
    title: Testing the gateway
    legal_basis: {gdpr: 6(1)(e), law: Testwet}
    processing_activity: https://register.test.example/test-doel
partners:
  - id: uwv
    operations:
      - {id: inkomen, method: GET, path: "/v1/personen/{bsn}/inkomen", subject: path bsn, response_schema: inkomen.json}
      - {id: wijzig, method: POST, path: "/v1/personen/{bsn}/wijziging", subject: path bsn}
"#;

fn outway_policy() -> String {
    format!(
        r#"consumers:
  - id: wijkteam-test
    name: Test district team
{PURPOSE}grants:
  - id: gemeente-inkomen
    consumers: [wijkteam-test]
    operation: uwv/inkomen
    purpose: test-doel
    fields: {{bsn: keep, inkomen: keep, werkgever: keep}}
    rationale: the municipality's grant is broad; the provider decides what leaves it
  - id: gemeente-wijzig
    consumers: [wijkteam-test]
    operation: uwv/wijzig
    purpose: test-doel
    request_fields: [a]
    rationale: test
"#
    )
}

fn inway_policy() -> String {
    format!(
        r#"consumers:
  - id: gemeente
    name: Gemeente (test)
  - id: andere-gemeente
    name: Andere gemeente (test)
{PURPOSE}grants:
  - id: uwv-inkomen-profiel
    consumers: [gemeente, andere-gemeente]
    operation: uwv/inkomen
    purpose: test-doel
    fields: {{bsn: keep, inkomen: keep}}
    rationale: UWV's release profile never releases the employer
  - id: uwv-wijzig
    consumers: [gemeente]
    operation: uwv/wijzig
    purpose: test-doel
    request_fields: [a]
    rationale: test
"#
    )
}

/// How a test wants the two ends.
#[derive(Default, Clone)]
pub struct EndsSpec {
    /// The inway requires FSC access tokens; the outway fetches them.
    pub fsc: bool,
    /// Put a recording TLS relay between outway and inway.
    pub tap: bool,
    /// The outway's assertion lifetime (default 60 s).
    pub assertion_lifetime: Option<&'static str>,
    /// The grant hash the outway asks for (default: the inway's contract).
    pub outway_grant_hash: Option<&'static str>,
    /// The inway's listen address (default 127.0.0.1:0).
    pub inway_listen: Option<&'static str>,
    /// The provider's service (default: [`SERVICE_ANSWER`], at once); recorded either way.
    pub service: Option<MockHandler>,
    /// The outway calls the service directly, as if there were no inway (the baseline of the
    /// second hop's cost).
    pub bypass_inway: bool,
}

/// Two running gateways and the provider's service.
pub struct Ends {
    pub pki: TestPki,
    pub outway: GatewayProcess,
    pub outway_port: u16,
    pub outway_admin: String,
    pub inway: GatewayProcess,
    pub inway_addr: SocketAddr,
    pub service: MockPartner,
    pub received: Recorded,
    pub tap: Option<wire::WireTap>,
}

/// A port for an address that must be known before its listener starts (see
/// `doelpoort::demo::inway::free_port`: below the kernel's ephemeral range).
fn free_port() -> u16 {
    doelpoort::demo::inway::free_port().unwrap()
}

impl Ends {
    pub async fn start(spec: EndsSpec) -> Ends {
        let pki = TestPki::new();
        let dir = pki.dir.path().to_path_buf();
        std::fs::create_dir_all(dir.join("schemas")).unwrap();
        std::fs::write(dir.join("schemas/inkomen.json"), SCHEMA).unwrap();
        for (side, policy) in [("outway", outway_policy()), ("inway", inway_policy())] {
            std::fs::create_dir_all(dir.join(format!("{side}-policies"))).unwrap();
            std::fs::write(dir.join(format!("{side}-policies/policy.yaml")), policy).unwrap();
        }
        let (assertion_key, _) = doelpoort::pki::signing_key_pair().unwrap();
        std::fs::write(dir.join("assertion.key"), assertion_key).unwrap();

        let service = spec
            .service
            .clone()
            .unwrap_or_else(|| fixed(StatusCode::OK, SERVICE_ANSWER, Duration::ZERO));
        let (handler, received) = recording(service);
        let service = start_partner(&pki, handler).await;
        // The outway's admin port is chosen first: the inway fetches its JWKS there.
        let outway_admin_port = free_port();
        // The inway's address is in its FSC configuration (the tokens' audience): fixed first.
        let inway_listen = match spec.inway_listen {
            Some(listen) => listen.to_string(),
            None => format!("127.0.0.1:{}", free_port()),
        };
        let inway_port = inway_listen.rsplit(':').next().unwrap().to_string();
        let fsc_block = if spec.fsc {
            format!(
                r#"fsc:
  group_id: {GROUP_ID}
  address: https://localhost:{inway_port}
  token_lifetime: 5m
  contracts:
    - {{grant_hash: "{GRANT_HASH}", consumer: gemeente, service: uwv}}
"#
            )
        } else {
            String::new()
        };
        let inway_yaml = format!(
            r#"# the provider's inway
role: inway
instance: inway
gateway_oin: "{PARTNER_OIN}"
listen: {listen}
admin_listen: 127.0.0.1:0
tls:
  certificate: {d}/partner.crt
  key: {d}/partner.key
  client_ca: [{d}/ca.crt]
limits:
  shutdown_grace: 2s
policies: {d}/inway-policies
schemas: {d}/schemas
audit:
  dir: {d}/inway-audit
  subject_key: {d}/inway-subject.key
store: sqlite:{d}/inway-store.sqlite
consumers:
  - id: gemeente
    oin: "{GATEWAY_OIN}"
    assertion_jwks: http://127.0.0.1:{outway_admin_port}/.well-known/jwks.json
  - id: andere-gemeente
    oin: "{CONSUMER_OIN}"
    assertion_jwks: http://127.0.0.1:{outway_admin_port}/.well-known/jwks.json
    assertion_issuer: "{GATEWAY_OIN}"
partners:
  - id: uwv
    url: https://localhost:{service}
    client_certificate: {d}/gateway-client.crt
    client_key: {d}/gateway-client.key
    trust: [{d}/ca.crt]
    connect_timeout: 1s
    response_timeout: 5s
{fsc_block}"#,
            d = dir.display(),
            listen = inway_listen,
            service = service.addr.port(),
        );
        let inway_config = dir.join("inway.yaml");
        std::fs::write(&inway_config, inway_yaml).unwrap();
        let inway = GatewayProcess::start(&inway_config);
        let inway_addr = inway.wait_until_listening();

        let tap = if spec.tap {
            Some(wire::start(&pki, inway_addr, "partner", "gateway-client").await)
        } else {
            None
        };
        let partner_port = tap.as_ref().map_or(inway_addr.port(), |t| t.addr.port());
        let partner_url = if spec.bypass_inway {
            format!("https://localhost:{}", service.addr.port())
        } else {
            format!("https://localhost:{partner_port}/uwv")
        };
        let partner_fsc = if spec.fsc {
            format!(
                r#"    fsc:
      manager: https://localhost:{partner_port}/doelpoort/fsc
      grant_hash: "{}"
      group_id: {GROUP_ID}
"#,
                spec.outway_grant_hash.unwrap_or(GRANT_HASH)
            )
        } else {
            String::new()
        };
        let outway_yaml = format!(
            r#"# the municipality's outway
instance: outway
gateway_oin: "{GATEWAY_OIN}"
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:{outway_admin_port}
tls:
  certificate: {d}/gateway.crt
  key: {d}/gateway.key
  client_ca: [{d}/ca.crt]
limits:
  shutdown_grace: 2s
policies: {d}/outway-policies
schemas: {d}/schemas
audit:
  dir: {d}/outway-audit
  subject_key: {d}/outway-subject.key
store: sqlite:{d}/outway-store.sqlite
assertions:
  keys: [{d}/assertion.key]
  lifetime: {lifetime}
consumers:
  - id: wijkteam-test
    oin: "{CONSUMER_OIN}"
partners:
  - id: uwv
    oin: "{PARTNER_OIN}"
    url: {partner_url}
    client_certificate: {d}/gateway-client.crt
    client_key: {d}/gateway-client.key
    trust: [{d}/ca.crt]
    connect_timeout: 1s
    response_timeout: 5s
{partner_fsc}"#,
            d = dir.display(),
            lifetime = spec.assertion_lifetime.unwrap_or("60s"),
        );
        let outway_config = dir.join("outway.yaml");
        std::fs::write(&outway_config, outway_yaml).unwrap();
        let outway = GatewayProcess::start(&outway_config);
        let (outway_port, outway_admin) = outway.wait_until_serving();
        Ends {
            pki,
            outway,
            outway_port,
            outway_admin,
            inway,
            inway_addr,
            service,
            received,
            tap,
        }
    }

    /// A call through the outway, as the district team: `GET /uwv/v1/personen/<BSN>/inkomen`.
    pub async fn call(&self) -> TestResponse {
        let client = client(&self.pki, "consumer", Http::One);
        let request = Request::get(format!(
            "https://localhost:{}/uwv/v1/personen/{BSN}/inkomen",
            self.outway_port
        ))
        .header("doelbinding-purpose", TEST_PURPOSE)
        .header("doelbinding-data-subject", format!("bsn={BSN}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
        send(&client, request).await
    }

    pub fn outway_audit(&self) -> Vec<serde_json::Value> {
        audit_records(&self.pki.path("outway-audit"))
    }

    pub fn inway_audit(&self) -> Vec<serde_json::Value> {
        audit_records(&self.pki.path("inway-audit"))
    }

    /// The `kid` the outway signs with (from its JWKS), so a test can mint assertions under
    /// the outway's key (`assertion.key`).
    pub async fn outway_kid(&self) -> String {
        let (_, jwks) = admin_get(&self.outway_admin, "/.well-known/jwks.json").await;
        let jwks: serde_json::Value = serde_json::from_str(&jwks).unwrap();
        jwks["keys"][0]["kid"].as_str().unwrap().to_string()
    }

    /// An assertion as the outway would sign it for the inway, with `change` applied to the
    /// claims, signed with `key` (PEM; the outway's own by default).
    pub async fn assertion(
        &self,
        change: impl FnOnce(&mut serde_json::Value),
        key: Option<&str>,
    ) -> String {
        let now = doelpoort::clock::unix_now() as u64;
        let client_der = doelpoort::tls::load_certificates(&self.pki.path("gateway-client.crt"))
            .unwrap()
            .remove(0);
        let thumbprint = doelpoort::token::thumbprint(&doelpoort::identity::Fingerprint::of_der(
            client_der.as_ref(),
        ));
        let mut claims = serde_json::json!({
            "iss": GATEWAY_OIN, "sub": CONSUMER_OIN, "aud": PARTNER_OIN,
            "purpose": TEST_PURPOSE, "legal_basis": "AVG art. 6(1)(e); Testwet",
            "data_subject": format!("bsn={BSN}"),
            "cnf": {"x5t#S256": thumbprint},
            "iat": now, "exp": now + 60, "jti": uuid::Uuid::new_v4().to_string(),
        });
        change(&mut claims);
        let own = std::fs::read_to_string(self.pki.path("assertion.key")).unwrap();
        let key = jsonwebtoken::EncodingKey::from_ec_pem(key.unwrap_or(&own).as_bytes()).unwrap();
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(self.outway_kid().await);
        jsonwebtoken::encode(&header, &claims, &key).unwrap()
    }

    /// A request straight to the inway, as a gateway with certificate `stem` would send it.
    pub async fn call_inway(&self, stem: &str, headers: &[(&str, String)]) -> TestResponse {
        let client = client(&self.pki, stem, Http::One);
        let mut request = Request::get(format!(
            "https://localhost:{}/uwv/v1/personen/{BSN}/inkomen",
            self.inway_addr.port()
        ));
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        send(&client, request.body(Full::new(Bytes::new())).unwrap()).await
    }

    /// An FSC access token from the inway's token endpoint, for certificate `stem`.
    pub async fn fsc_token(&self, stem: &str, client_id: &str) -> (u16, serde_json::Value) {
        let client = client(&self.pki, stem, Http::One);
        let form = format!(
            "grant_type=client_credentials&scope={}&client_id={client_id}",
            GRANT_HASH.replace('$', "%24")
        );
        let request = Request::post(format!(
            "https://localhost:{}/doelpoort/fsc/v1/token",
            self.inway_addr.port()
        ))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(form)))
        .unwrap();
        let r = send(&client, request).await;
        (
            r.status.as_u16(),
            serde_json::from_slice(&r.body).unwrap_or_default(),
        )
    }
}

impl Ends {
    /// Both ends with FSC: the inway issues and requires access tokens.
    pub async fn with_fsc() -> Ends {
        Ends::start(EndsSpec {
            fsc: true,
            ..Default::default()
        })
        .await
    }

    /// An access token from the inway's token endpoint for the outway's certificate.
    pub async fn outway_token(&self) -> String {
        let (status, body) = self.fsc_token("gateway-client", GATEWAY_OIN).await;
        assert_eq!(status, 200, "{body}");
        body["access_token"].as_str().unwrap().to_string()
    }

    /// A request straight to the inway as the outway (`gateway-client`) sends it: a new
    /// transaction id and `assertion`. The answer and the transaction id.
    pub async fn to_inway(&self, assertion: String) -> (TestResponse, String) {
        let tx = transaction_id();
        let r = self
            .call_inway(
                "gateway-client",
                &[
                    ("fsc-transaction-id", tx.clone()),
                    ("doelbinding-assertion", assertion),
                ],
            )
            .await;
        (r, tx)
    }

    /// An FSC access token as the inway's own token key signs them (`partner.key`, named by
    /// the thumbprint of `partner.crt`): for the outway's certificate, valid now for 5
    /// minutes, for the inway's address, with `change` applied to the claims.
    pub fn mint_fsc_token(&self, change: impl FnOnce(&mut serde_json::Value)) -> String {
        let now = doelpoort::clock::unix_now() as u64;
        let mut claims = serde_json::json!({
            "gth": GRANT_HASH, "gid": GROUP_ID, "sub": GATEWAY_OIN, "iss": PARTNER_OIN,
            "svc": "uwv", "aud": format!("https://localhost:{}", self.inway_addr.port()),
            "exp": now + 300, "nbf": now - 10,
            "cnf": {"x5t#S256": super::fsc_peer::cert_thumbprint(&self.pki, "gateway-client")},
            "add": {},
        });
        change(&mut claims);
        let key = std::fs::read(self.pki.path("partner.key")).unwrap();
        let key = jsonwebtoken::EncodingKey::from_ec_pem(&key).unwrap();
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.x5t_s256 = Some(super::fsc_peer::cert_thumbprint(&self.pki, "partner"));
        jsonwebtoken::encode(&header, &claims, &key).unwrap()
    }
}

/// A fresh transaction id as an outway makes them (UUIDv7).
pub fn transaction_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
