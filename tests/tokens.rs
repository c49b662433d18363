//! Signed caller tokens through a real gateway: every attack of the token issue refused with
//! its code and recorded in the audit log, four-eyes approvals, and the case scope.

mod harness;

use base64::Engine as _;
use bytes::Bytes;
use harness::*;
use http::{Request, StatusCode};
use http_body_util::Full;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;

const AUDIENCE: &str = "urn:doelpoort:test";
const ISSUER: &str = "https://idp.test.example";
const OTHER_OIN: &str = "00000001999990002000";

/// The test policy plus a four-eyes grant (`uwv/upload` for purpose `test-doel` needs a
/// `teamleider`'s approval) and a second consumer.
fn policy() -> String {
    TEST_POLICY
        .replace(
            "consumers:\n  - id: wijkteam-test\n    name: Test district team\n",
            "consumers:\n  - id: wijkteam-test\n    name: Test district team\n  - id: schuldhulp-test\n    name: Test debt counselling\n",
        )
        .replace(
            "    without_subject: a test operation about no one\n    request_fields: [a]\n",
            "    without_subject: a test operation about no one\n    request_fields: [a]\n    requires: [actor]\n    four_eyes:\n      role: teamleider\n",
        )
        .replace(
            "  - id: test-ping\n    consumers: [wijkteam-test]",
            "  - id: test-ping\n    consumers: [wijkteam-test, schuldhulp-test]",
        )
}

struct Setup {
    pki: TestPki,
    gateway: doelpoort::server::RunningGateway,
    _partner: doelpoort::demo::MockPartner,
    key: EncodingKey,
    /// `cnf.x5t#S256` of the `consumer` and `unknown` client certificates.
    consumer_cnf: String,
    other_cnf: String,
}

fn cnf_of(pki: &TestPki, stem: &str) -> String {
    let der = doelpoort::tls::load_certificates(&pki.path(&format!("{stem}.crt"))).unwrap();
    doelpoort::token::thumbprint(&doelpoort::identity::Fingerprint::of_der(der[0].as_ref()))
}

async fn setup() -> Setup {
    let pki = TestPki::new();
    let partner = start_partner(
        &pki,
        fixed(StatusCode::OK, r#"{"ok":true}"#, Duration::ZERO),
    )
    .await;
    let (private, public) = doelpoort::pki::signing_key_pair().unwrap();
    std::fs::write(pki.path("issuer.pub.pem"), &public).unwrap();
    // The same key as a JWKS under kid "k1", for the issuer that requires key ids.
    let key = EncodingKey::from_ec_pem(private.as_bytes()).unwrap();
    let mut jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&key, Algorithm::ES256).unwrap();
    jwk.common.key_id = Some("k1".into());
    std::fs::write(
        pki.path("issuer.jwks.json"),
        serde_json::to_string(&json!({ "keys": [jwk] })).unwrap(),
    )
    .unwrap();
    write_policies(&pki, &policy());
    let dir = pki.dir.path().display().to_string();
    let yaml = config_yaml(&pki, &[PartnerSpec::new("uwv", partner.addr)], "")
        .replace(
            "    oin: \"00000001999990001000\"\npartners:",
            &format!(
                "    oin: \"00000001999990001000\"\n    token: required\n    token_issuers: [test-idp, test-jwks]\n  - id: schuldhulp-test\n    oin: \"{UNKNOWN_OIN}\"\n    token: optional\n    token_issuers: [test-idp]\npartners:"
            ),
        )
        + &format!(
            "tokens:\n  audience: {AUDIENCE}\n  leeway: 5s\n  issuers:\n    - id: test-idp\n      issuer: {ISSUER}\n      algorithms: [ES256]\n      keys: [{dir}/issuer.pub.pem]\n    - id: test-jwks\n      issuer: https://jwks.test.example\n      algorithms: [ES256]\n      jwks: {dir}/issuer.jwks.json\n"
        );
    let _ = OTHER_OIN;
    let path = write_config(&pki, &yaml);
    let config = doelpoort::config::Config::load(&path).unwrap_or_else(|d| panic!("{d}"));
    let gateway = doelpoort::server::start(&config).await.unwrap();
    assert!(
        gateway.policies.current().is_some(),
        "{:?}",
        gateway.policies.last_errors()
    );
    let consumer_cnf = cnf_of(&pki, "consumer");
    let other_cnf = cnf_of(&pki, "unknown");
    Setup {
        pki,
        gateway,
        _partner: partner,
        key,
        consumer_cnf,
        other_cnf,
    }
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

impl Setup {
    /// Valid claims for the district team's employee `medewerker-1`.
    fn claims(&self) -> Value {
        json!({
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "medewerker-1",
            "iat": now(),
            "exp": now() + 300,
            "purpose": TEST_PURPOSE,
            "cnf": {"x5t#S256": self.consumer_cnf},
        })
    }

    /// Claims approved by a team leader, for `uwv/upload` with the body `{"a":1}`.
    fn approved_claims(&self) -> Value {
        let mut c = self.claims();
        c["approvals"] = json!([{"sub": "teamleider-7", "role": "teamleider"}]);
        c["jti"] = json!(uuid::Uuid::new_v4().to_string());
        c["approves"] = json!({
            "operation": "uwv/upload",
            "request_sha256": doelpoort::canonical::digest(&json!({"a": 1})),
        });
        c
    }

    fn sign(&self, claims: &Value) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::ES256), claims, &self.key).unwrap()
    }

    async fn call(
        &self,
        stem: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
    ) -> TestResponse {
        self.call_with_body(stem, path, token, headers, br#"{"a":1}"#)
            .await
    }

    /// The district team's system POSTs `body` to `path` with `token`.
    async fn consumer_posts(&self, path: &str, token: &str, body: &'static [u8]) -> TestResponse {
        self.call_with_body("consumer", path, Some(token), &[], body)
            .await
    }

    /// As `call`, with `body` as the body of a POST (paths ending in `/x`).
    async fn call_with_body(
        &self,
        stem: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        post_body: &'static [u8],
    ) -> TestResponse {
        let client = client(&self.pki, stem, Http::One);
        let method = if path.ends_with("/x") { "POST" } else { "GET" };
        let mut b = Request::builder().method(method).uri(format!(
            "https://localhost:{}{path}",
            self.gateway.local_addr.port()
        ));
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let body = if method == "POST" {
            b = b.header("content-type", "application/json");
            Bytes::from_static(post_body)
        } else {
            Bytes::new()
        };
        send(&client, b.body(Full::new(body)).unwrap()).await
    }
}

/// A body the gateway refuses to read: the same key twice.
const DUPLICATE_KEY: &[u8] = br#"{"a":1,"a":2}"#;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[tokio::test]
async fn every_token_attack_is_refused_with_its_code_and_recorded() {
    let s = setup().await;
    let ping = "/uwv/v1/ping";
    let mut expected: Vec<(&str, TestResponse, u16, &str)> = Vec::new();

    // The reference: a valid token is accepted.
    let good = s.sign(&s.claims());
    let r = s.call("consumer", ping, Some(&good), &[]).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    expected.push(("valid token", r, 200, ""));

    // 1. No token where one is required.
    let r = s
        .call(
            "consumer",
            ping,
            None,
            &[("doelbinding-purpose", TEST_PURPOSE)],
        )
        .await;
    expected.push(("no token", r, 401, "token-invalid"));

    // 2. alg none.
    let none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(s.claims().to_string().as_bytes())
    );
    let r = s.call("consumer", ping, Some(&none), &[]).await;
    expected.push(("alg none", r, 401, "token-invalid"));

    // 3. HS256 "signed" with the issuer's public key as the shared secret.
    let public = std::fs::read(s.pki.path("issuer.pub.pem")).unwrap();
    let hs = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &s.claims(),
        &EncodingKey::from_secret(&public),
    )
    .unwrap();
    let r = s.call("consumer", ping, Some(&hs), &[]).await;
    expected.push(("HS256 with the public key", r, 401, "token-invalid"));

    // 4. Expired; 5. not yet valid; 6. wrong audience; 7. unknown issuer.
    let mut c = s.claims();
    c["exp"] = json!(now() - 3600);
    c["iat"] = json!(now() - 7200);
    let r = s.call("consumer", ping, Some(&s.sign(&c)), &[]).await;
    expected.push(("expired", r, 401, "token-invalid"));
    // A token that would live until 2100, and one marking a header extension as critical
    // (RFC 7515 §4.1.11: an extension the gateway does not understand refuses the token).
    let mut c = s.claims();
    c["exp"] = json!(4_102_444_800u64);
    let r = s.call("consumer", ping, Some(&s.sign(&c)), &[]).await;
    expected.push(("living until 2100", r, 401, "token-invalid"));
    let mut header = Header::new(Algorithm::ES256);
    header.crit = Some(vec!["urn:example:must-understand".into()]);
    let critical = jsonwebtoken::encode(&header, &s.claims(), &s.key).unwrap();
    let r = s.call("consumer", ping, Some(&critical), &[]).await;
    expected.push((
        "an unknown critical header extension",
        r,
        401,
        "token-invalid",
    ));
    let mut c = s.claims();
    c["nbf"] = json!(now() + 3600);
    let r = s.call("consumer", ping, Some(&s.sign(&c)), &[]).await;
    expected.push(("not yet valid", r, 401, "token-invalid"));
    let mut c = s.claims();
    c["aud"] = json!("urn:doelpoort:elders");
    let r = s.call("consumer", ping, Some(&s.sign(&c)), &[]).await;
    expected.push(("wrong audience", r, 401, "token-invalid"));
    let mut c = s.claims();
    c["iss"] = json!("https://idp.evil.example");
    let r = s.call("consumer", ping, Some(&s.sign(&c)), &[]).await;
    expected.push(("unknown issuer", r, 401, "token-invalid"));

    // 8. Unknown key id at an issuer that publishes a JWKS (and the known one works).
    let mut c = s.claims();
    c["iss"] = json!("https://jwks.test.example");
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("k2".into());
    let unknown_kid = jsonwebtoken::encode(&header, &c, &s.key).unwrap();
    let r = s.call("consumer", ping, Some(&unknown_kid), &[]).await;
    expected.push(("unknown kid", r, 401, "token-invalid"));
    header.kid = Some("k1".into());
    let known_kid = jsonwebtoken::encode(&header, &c, &s.key).unwrap();
    let r = s.call("consumer", ping, Some(&known_kid), &[]).await;
    expected.push(("known kid", r, 200, ""));

    // 9. A token bound to another certificate.
    let mut c = s.claims();
    c["cnf"]["x5t#S256"] = json!(s.other_cnf);
    let r = s.call("consumer", ping, Some(&s.sign(&c)), &[]).await;
    expected.push(("bound to another certificate", r, 401, "token-invalid"));

    // 10. The district team's token replayed by another consumer's system.
    let r = s.call("unknown", ping, Some(&good), &[]).await;
    expected.push(("replayed from another consumer", r, 401, "token-invalid"));

    // 11. Header and claim disagree.
    let r = s
        .call(
            "consumer",
            ping,
            Some(&good),
            &[("doelbinding-purpose", "ander-doel")],
        )
        .await;
    expected.push(("purpose header ≠ claim", r, 403, "token-mismatch"));
    let r = s
        .call(
            "consumer",
            ping,
            Some(&good),
            &[("doelbinding-actor", "medewerker-2")],
        )
        .await;
    expected.push(("actor header ≠ sub", r, 403, "token-mismatch"));

    // 12. Four eyes: self-approval refused, no approval refused, a team leader's approval works.
    let upload = "/uwv/v1/x";
    let mut c = s.claims();
    c["approvals"] = json!([{"sub": "medewerker-1", "role": "teamleider"}]);
    c["jti"] = json!(uuid::Uuid::new_v4().to_string());
    let r = s.call("consumer", upload, Some(&s.sign(&c)), &[]).await;
    expected.push(("self-approval", r, 403, "four-eyes-required"));
    let r = s.call("consumer", upload, Some(&good), &[]).await;
    expected.push(("no approval", r, 403, "four-eyes-required"));
    let mut c = s.claims();
    c["approvals"] = json!([{"sub": "teamleider-7", "role": "medewerker"}]);
    c["jti"] = json!(uuid::Uuid::new_v4().to_string());
    let r = s.call("consumer", upload, Some(&s.sign(&c)), &[]).await;
    expected.push(("approval without the role", r, 403, "four-eyes-required"));
    let mut c = s.claims();
    c["approvals"] = json!([{"sub": "Medewerker-1", "role": "teamleider"}]);
    c["jti"] = json!(uuid::Uuid::new_v4().to_string());
    let r = s.call("consumer", upload, Some(&s.sign(&c)), &[]).await;
    expected.push((
        "self-approval, other letter case",
        r,
        403,
        "four-eyes-required",
    ));
    let mut c = s.claims();
    c["approvals"] = json!([{"sub": "teamleider-7", "role": "teamleider"}]);
    c["jti"] = json!(uuid::Uuid::new_v4().to_string());
    c.as_object_mut().unwrap().remove("purpose");
    let r = s
        .call(
            "consumer",
            upload,
            Some(&s.sign(&c)),
            &[("doelbinding-purpose", TEST_PURPOSE)],
        )
        .await;
    expected.push((
        "approval that does not name the purpose",
        r,
        403,
        "four-eyes-required",
    ));
    let mut c = s.claims();
    c["approvals"] = json!([{"sub": "teamleider-7", "role": "teamleider"}]);
    c["jti"] = json!(uuid::Uuid::new_v4().to_string());
    c["exp"] = json!(now() + 3600);
    let r = s.call("consumer", upload, Some(&s.sign(&c)), &[]).await;
    expected.push(("long-lived approval", r, 401, "token-invalid"));
    let mut c = s.claims();
    c["case_id"] = json!("casus-999990019");
    let r = s.call("consumer", ping, Some(&s.sign(&c)), &[]).await;
    expected.push(("a BSN in the case claim", r, 401, "token-invalid"));
    // An approval names the request it approves: nothing, another operation, another body.
    let mut c = s.approved_claims();
    c.as_object_mut().unwrap().remove("approves");
    let r = s.call("consumer", upload, Some(&s.sign(&c)), &[]).await;
    expected.push((
        "an approval that names no request",
        r,
        403,
        "four-eyes-required",
    ));
    let mut c = s.approved_claims();
    c["approves"]["operation"] = json!("uwv/ping");
    let r = s.call("consumer", upload, Some(&s.sign(&c)), &[]).await;
    expected.push((
        "an approval for another operation",
        r,
        403,
        "four-eyes-required",
    ));
    let mut c = s.approved_claims();
    c["approves"]["request_sha256"] = json!(doelpoort::canonical::digest(&json!({"a": 2})));
    let r = s.call("consumer", upload, Some(&s.sign(&c)), &[]).await;
    expected.push(("an approval for another body", r, 403, "four-eyes-required"));
    let approved = s.sign(&s.approved_claims());
    // A body the gateway cannot check is refused without spending the approval.
    let r = s.consumer_posts(upload, &approved, DUPLICATE_KEY).await;
    expected.push((
        "approved, but a duplicate key in the body",
        r,
        400,
        "context-invalid",
    ));
    let r = s.call("consumer", upload, Some(&approved), &[]).await;
    expected.push(("approved by a team leader", r, 200, ""));
    let r = s.call("consumer", upload, Some(&approved), &[]).await;
    expected.push(("the same approval used again", r, 403, "four-eyes-required"));
    let r = s.consumer_posts(upload, &approved, DUPLICATE_KEY).await;
    expected.push((
        "the same approval again, with a body that cannot be checked",
        r,
        403,
        "four-eyes-required",
    ));
    let mut c = s.claims();
    c["approvals"] = json!([{"sub": "teamleider-7", "role": "teamleider"}]);
    let r = s.call("consumer", upload, Some(&s.sign(&c)), &[]).await;
    expected.push(("an approval without jti", r, 401, "token-invalid"));

    // 13. Case scope: the client agreed to involve SVB only.
    let mut c = s.claims();
    c["case_partners"] = json!(["svb"]);
    let r = s.call("consumer", ping, Some(&s.sign(&c)), &[]).await;
    expected.push(("partner outside the case scope", r, 403, "not-granted"));

    // Each answer, and one audit record per exchange with the same reason.
    let records: HashMap<String, Value> = audit_records(&s.pki.path("audit"))
        .into_iter()
        .map(|r| {
            let tx = r["attributes"]["doelpoort.transaction_id"]
                .as_str()
                .unwrap()
                .to_string();
            (tx, r)
        })
        .collect();
    for (what, response, status, code) in &expected {
        assert_eq!(
            response.status.as_u16(),
            *status,
            "{what}: {}",
            String::from_utf8_lossy(&response.body)
        );
        if !code.is_empty() {
            assert_eq!(&response.problem_code(), code, "{what}");
        }
        // RFC 6750 §3: every 401 names the scheme and the error.
        if *status == 401 {
            assert_eq!(
                response
                    .headers
                    .get("www-authenticate")
                    .and_then(|v| v.to_str().ok()),
                Some(r#"Bearer error="invalid_token""#),
                "{what}"
            );
        }
        let tx = response.headers["fsc-transaction-id"].to_str().unwrap();
        let record = records
            .get(tx)
            .unwrap_or_else(|| panic!("{what}: no audit record"));
        let reason = record["attributes"]["doelpoort.reason"]
            .as_str()
            .unwrap_or("");
        assert_eq!(reason, *code, "{what}: audit reason");
    }
    // What the record says about the approved exchange.
    let tx = expected
        .iter()
        .find(|(what, ..)| *what == "approved by a team leader")
        .map(|(_, r, ..)| {
            r.headers["fsc-transaction-id"]
                .to_str()
                .unwrap()
                .to_string()
        })
        .unwrap();
    let record = &records[&tx]["attributes"];
    assert_eq!(record["doelpoort.token_issuer"], "test-idp");
    assert_eq!(record["doelpoort.actor"], "medewerker-1");
    assert_eq!(
        record["doelpoort.approvals"],
        json!([{"by": "teamleider-7", "role": "teamleider"}])
    );
    // No token content in the log.
    let text: String = records.values().map(|r| r.to_string()).collect();
    assert!(
        !text.contains(&good[..40]),
        "a token leaked into the audit log"
    );
    s.gateway.shutdown().await;
}

#[tokio::test]
async fn an_optional_token_is_verified_when_present() {
    let s = setup().await;
    // schuldhulp-test (the `unknown` certificate) may call without a token…
    let r = s
        .call(
            "unknown",
            "/uwv/v1/ping",
            None,
            &[("doelbinding-purpose", TEST_PURPOSE)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // …but a token it presents must hold up.
    let mut c = s.claims();
    c["cnf"]["x5t#S256"] = json!(s.other_cnf);
    let r = s
        .call("unknown", "/uwv/v1/ping", Some(&s.sign(&c)), &[])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    c["exp"] = json!(now() - 3600);
    c["iat"] = json!(now() - 7200);
    let r = s
        .call("unknown", "/uwv/v1/ping", Some(&s.sign(&c)), &[])
        .await;
    assert_eq!(r.problem_code(), "token-invalid");
    s.gateway.shutdown().await;
}

/// The partner side of the contract: every forwarded request carries an assertion that
/// verifies against the JWKS the admin listener publishes.
#[tokio::test]
async fn the_partner_receives_an_assertion_it_can_verify() {
    let pki = TestPki::new();
    let (handler, recorded) = recording(fixed(StatusCode::OK, r#"{"ok":true}"#, Duration::ZERO));
    let partner = start_partner(&pki, handler).await;
    let gateway = start_gateway(&pki, &[PartnerSpec::new("uwv", partner.addr)], "").await;
    let client = client(&pki, "consumer", Http::One);
    let r = send(
        &client,
        Request::get(url(&gateway, "/uwv/v1/ping"))
            .header("doelbinding-purpose", TEST_PURPOSE)
            .header("doelbinding-case-id", "casus-9")
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let received = recorded.last();
    let assertion = received.headers["doelbinding-assertion"].to_str().unwrap();

    let (status, jwks) = admin_get(
        &gateway.admin_addr.unwrap().to_string(),
        "/.well-known/jwks.json",
    )
    .await;
    assert_eq!(status, 200);
    let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_str(&jwks).unwrap();
    let header = jsonwebtoken::decode_header(assertion).unwrap();
    assert_eq!(header.alg, Algorithm::ES256);
    let key = jwks
        .find(header.kid.as_deref().unwrap())
        .expect("signed by a published key");
    let mut validation = jsonwebtoken::Validation::new(Algorithm::ES256);
    validation.set_audience(&[PARTNER_OIN]);
    validation.set_issuer(&[GATEWAY_OIN]);
    let claims = jsonwebtoken::decode::<Value>(
        assertion,
        &jsonwebtoken::DecodingKey::from_jwk(key).unwrap(),
        &validation,
    )
    .expect("the assertion verifies")
    .claims;
    assert_eq!(claims["sub"], CONSUMER_OIN);
    assert_eq!(claims["purpose"], TEST_PURPOSE);
    assert_eq!(claims["legal_basis"], "AVG art. 6(1)(e); Testwet");
    assert_eq!(
        claims["processing_activity"],
        "https://register.test.example/test-doel"
    );
    assert_eq!(claims["case_id"], "casus-9");
    // Its own id (SPEC §2: the audit record names it; the per-exchange link is the
    // transaction id), bound to the certificate the gateway presents to the partner.
    let jti = claims["jti"].as_str().unwrap();
    assert!(uuid::Uuid::try_parse(jti).is_ok(), "jti {jti}");
    assert_ne!(jti, r.headers["fsc-transaction-id"].to_str().unwrap());
    assert_eq!(
        claims["cnf"]["x5t#S256"].as_str().unwrap().len(),
        43,
        "a base64url SHA-256 thumbprint"
    );
    let lifetime = claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap();
    assert!(lifetime <= 60, "short-lived: {lifetime} s");
    gateway.shutdown().await;
}

/// An identity provider rotates its keys: a new JWKS file is picked up on SIGHUP, without a
/// restart; until then a token under the new key is refused.
#[tokio::test]
async fn sighup_reloads_the_issuers_keys() {
    let s = setup().await;
    let (private, _) = doelpoort::pki::signing_key_pair().unwrap();
    let new_key = EncodingKey::from_ec_pem(private.as_bytes()).unwrap();
    let mut jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&new_key, Algorithm::ES256).unwrap();
    jwk.common.key_id = Some("k2".into());
    let mut claims = s.claims();
    claims["iss"] = json!("https://jwks.test.example");
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("k2".into());
    let token = jsonwebtoken::encode(&header, &claims, &new_key).unwrap();
    let r = s.call("consumer", "/uwv/v1/ping", Some(&token), &[]).await;
    assert_eq!(r.problem_code(), "token-invalid", "not before the reload");

    std::fs::write(
        s.pki.path("issuer.jwks.json"),
        serde_json::to_string(&json!({ "keys": [jwk] })).unwrap(),
    )
    .unwrap();
    rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::HUP).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = s.call("consumer", "/uwv/v1/ping", Some(&token), &[]).await;
        if r.status == StatusCode::OK {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the new key was not picked up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    s.gateway.shutdown().await;
}
