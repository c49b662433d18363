//! Regression tests for an outside attack on the inway (SPEC §10), each failing on the
//! behaviour the attack found and passing on the mended one: transaction ids fresh and used
//! once, assertions whose claims have the forms the audit log can hold (an OIN, a UUID, plain
//! ids without a BSN), no `crit`, `nbf` checked, context and FSC headers once, FSC tokens
//! naming the inway's configured address, a token endpoint for forms only, `audit join`
//! listing every record and escaping what it prints, and a rotated assertion key.

mod harness;

use base64::Engine as _;
use bytes::Bytes;
use harness::ends::{self, transaction_id, Ends, EndsSpec, GRANT_HASH};
use harness::*;
use http::{Request, StatusCode};
use http_body_util::Full;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

// ---- Helpers ----------------------------------------------------------------------------------

fn body(r: &TestResponse) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The JOSE header and claims of a JWT, decoded without checking anything.
fn jwt_parts(token: &str) -> (Value, Value) {
    let part = |i: usize| -> Value {
        let text = token.split('.').nth(i).expect("a JWT has three parts");
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .expect("base64url");
        serde_json::from_slice(&bytes).expect("JSON")
    };
    (part(0), part(1))
}

/// The claims [`Ends::assertion`] would sign, with `change` applied (taken from it, so they
/// stay what the outway's assertions are).
async fn default_claims(ends: &Ends, change: impl FnOnce(&mut Value)) -> Value {
    let mut claims = Value::Null;
    ends.assertion(|c| claims = c.clone(), None).await;
    change(&mut claims);
    claims
}

/// A JWT with exactly this JOSE `header` and these `claims`, signed ES256 with the outway's
/// assertion key.
fn sign_by_hand(ends: &Ends, header: &Value, claims: &Value) -> String {
    let message = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let pem = std::fs::read(ends.pki.path("assertion.key")).unwrap();
    let key = jsonwebtoken::EncodingKey::from_ec_pem(&pem).unwrap();
    let signature =
        jsonwebtoken::crypto::sign(message.as_bytes(), &key, jsonwebtoken::Algorithm::ES256)
            .unwrap();
    format!("{message}.{signature}")
}

/// `status` with Doelpoort's problem `code`.
fn assert_problem(r: &TestResponse, status: u16, code: &str, what: &str) {
    assert_eq!(r.status.as_u16(), status, "{what}: {}", body(r));
    assert_eq!(r.problem_code(), code, "{what}: {}", body(r));
}

/// The answer carries FSC's code `fsc_code` in `Fsc-Error-Code`.
fn assert_fsc_code(r: &TestResponse, fsc_code: &str, what: &str) {
    assert_eq!(
        r.headers
            .get("fsc-error-code")
            .and_then(|v| v.to_str().ok()),
        Some(fsc_code),
        "{what}: Fsc-Error-Code of {}",
        body(r)
    );
}

/// The inway's outcome records (intent records left out) of `tx`.
fn inway_outcomes(ends: &Ends, tx: &str) -> Vec<Value> {
    ends.inway_audit()
        .into_iter()
        .filter(|r| {
            r["attributes"]["doelpoort.transaction_id"] == tx
                && r["attributes"]["doelpoort.record"].is_null()
        })
        .collect()
}

/// `doelpoort audit join <outway-audit> <inway-audit> [extra…]`: exit code and output.
fn audit_join(ends: &Ends, extra: &[&str]) -> (i32, String) {
    let (outway, inway) = (ends.pki.path("outway-audit"), ends.pki.path("inway-audit"));
    let mut args = vec![
        "audit".into(),
        "join".into(),
        outway.into_os_string(),
        inway.into_os_string(),
    ];
    args.extend(extra.iter().map(Into::into));
    run_doelpoort(args)
}

/// `audit join --format json`, one exchange per line.
fn audit_join_json(ends: &Ends, extra: &[&str]) -> (i32, Vec<Value>, String) {
    let mut args = vec!["--format", "json"];
    args.extend_from_slice(extra);
    let (code, out) = audit_join(ends, &args);
    let lines = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}\n{out}")))
        .collect();
    (code, lines, out)
}

/// The transaction id an answer carries.
fn transaction_of(r: &TestResponse) -> String {
    r.headers["fsc-transaction-id"]
        .to_str()
        .unwrap()
        .to_string()
}

// ---- 1. A transaction id is used once ------------------------------------------------------

#[tokio::test]
async fn inway_refuses_a_reused_transaction_id() {
    let ends = Ends::start(EndsSpec::default()).await;
    let tx = transaction_id();
    let headers = |assertion: String| {
        [
            ("fsc-transaction-id", tx.clone()),
            ("doelbinding-assertion", assertion),
        ]
    };
    let first = ends
        .call_inway(
            "gateway-client",
            &headers(ends.assertion(|_| {}, None).await),
        )
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", body(&first));
    assert_eq!(ends.received.count(), 1);

    // The same id again, with a fresh and valid assertion (a new jti).
    let again = ends
        .call_inway(
            "gateway-client",
            &headers(ends.assertion(|_| {}, None).await),
        )
        .await;
    assert_problem(&again, 400, "context-invalid", "a reused transaction id");
    assert_fsc_code(&again, "INVALID_LOG_RECORD_ID", "a reused transaction id");
    assert_eq!(ends.received.count(), 1, "the service was called twice");
    // The id's exchange keeps its one provider-side record; the refusal is the inway's own.
    let records = inway_outcomes(&ends, &tx);
    assert_eq!(records.len(), 1, "{records:#?}");
    assert_eq!(records[0]["attributes"]["doelpoort.decision"], "allow");
    assert_ne!(transaction_of(&again), tx);
}

// ---- 2. audit join lists every record and flags what does not fit -------------------------

#[tokio::test]
async fn audit_join_shows_every_provider_record_and_flags_mismatches() {
    let mut ends = Ends::start(EndsSpec::default()).await;

    // A normal exchange through the outway: both sides agree, nothing to flag.
    let r = ends.call().await;
    assert_eq!(r.status, StatusCode::OK, "{}", body(&r));
    let tx = transaction_of(&r);
    let (code, lines, out) = audit_join_json(&ends, &["--transaction-id", &tx]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(lines.len(), 1, "{out}");
    assert_eq!(lines[0]["findings"], json!([]), "{out}");
    assert_eq!(lines[0]["consumer_side"].as_array().unwrap().len(), 1);
    assert_eq!(lines[0]["provider_side"].as_array().unwrap().len(), 1);

    // An exchange only the inway knows (a direct call): listed, no consumer side, no finding.
    let (direct, direct_tx) = ends.to_inway(ends.assertion(|_| {}, None).await).await;
    assert_eq!(direct.status, StatusCode::OK, "{}", body(&direct));
    let (code, lines, out) = audit_join_json(&ends, &["--transaction-id", &direct_tx]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(lines.len(), 1, "{out}");
    assert_eq!(lines[0]["consumer_side"], json!([]), "{out}");
    assert_eq!(lines[0]["provider_side"].as_array().unwrap().len(), 1);
    assert_eq!(lines[0]["findings"], json!([]), "{out}");

    // A second provider-side record under the outway's id, naming another organisation. The
    // running inway refuses the id now (test 1), so it cannot be made by reusing it there; an
    // inway's memory of ids is per process (gateway/inway/mod.rs, `Inway::first_use`: replicas
    // each keep their own), so a restarted inway — like a second replica — still takes it
    // within the id's two minutes. That is what `audit join` is for: it must show both records
    // and flag them. (If the inway's memory of ids ever survives a restart, this part needs
    // another way to write the second record; never a forged log — the chain would not verify.)
    ends.inway.child.kill().unwrap();
    ends.inway.child.wait().unwrap();
    ends.inway = GatewayProcess::start(&ends.pki.path("inway.yaml"));
    assert_eq!(ends.inway.wait_until_listening(), ends.inway_addr);
    let other_org = "00000001999990002000";
    let reuse = ends
        .call_inway(
            "gateway-client",
            &[
                ("fsc-transaction-id", tx.clone()),
                (
                    "doelbinding-assertion",
                    ends.assertion(|c| c["sub"] = other_org.into(), None).await,
                ),
            ],
        )
        .await;
    assert_eq!(
        reuse.status,
        StatusCode::OK,
        "the restarted inway took the id again: {}",
        body(&reuse)
    );
    assert_eq!(inway_outcomes(&ends, &tx).len(), 2);

    let (code, lines, out) = audit_join_json(&ends, &["--transaction-id", &tx]);
    assert_eq!(code, 1, "findings make the exit code 1: {out}");
    assert_eq!(lines.len(), 1, "{out}");
    let joined = &lines[0];
    let provider = joined["provider_side"].as_array().unwrap();
    assert_eq!(provider.len(), 2, "every provider record is listed: {out}");
    let requesters: Vec<&Value> = provider.iter().map(|p| &p["requester"]).collect();
    assert!(requesters.contains(&&json!(CONSUMER_OIN)), "{out}");
    assert!(requesters.contains(&&json!(other_org)), "{out}");
    let findings = joined["findings"].as_array().unwrap();
    for expected in [
        "the provider side has more than one record of this transaction id",
        "the provider side names another organisation than the consumer side",
        "the sides name different assertions (jti)",
    ] {
        assert!(findings.contains(&json!(expected)), "{expected}: {out}");
    }

    // The table says so too, and the whole join (every exchange) exits 1.
    let (code, table) = audit_join(&ends, &[]);
    assert_eq!(code, 1, "{table}");
    assert!(
        table.contains("! the provider side has more than one record"),
        "{table}"
    );
}

// ---- 3. audit join's table cannot be drawn on by a caller ---------------------------------

#[tokio::test]
async fn audit_join_escapes_control_characters() {
    let ends = Ends::start(EndsSpec::default()).await;
    let r = ends.call().await;
    assert_eq!(r.status, StatusCode::OK, "{}", body(&r));

    // Claims that would draw a line of their own in the table: the inway refuses them all.
    let injected = "x\nexchange 00000000-0000-0000-0000-000000000000 (fake)";
    for (claim, value) in [
        ("sub", injected),
        ("purpose", injected),
        ("case_id", injected),
        ("case_id", "x\ny"),
    ] {
        let assertion = ends.assertion(|c| c[claim] = value.into(), None).await;
        let (r, _) = ends.to_inway(assertion).await;
        let status = r.status.as_u16();
        assert!(
            status == 400 || status == 401,
            "{claim} {value:?} answered {status}: {}",
            body(&r)
        );
    }
    assert_eq!(ends.received.count(), 1, "the service was called");

    let (code, table) = audit_join(&ends, &[]);
    assert_eq!(code, 0, "{table}");
    assert!(table.contains(&format!("exchange {}", transaction_of(&r))));
    for line in table.lines() {
        if let Some(rest) = line.strip_prefix("exchange ") {
            let id = uuid::Uuid::try_parse(rest)
                .unwrap_or_else(|_| panic!("a line the log did not make: {line:?}\n{table}"));
            assert_eq!(id.get_version_num(), 7, "{line}");
        }
    }
    assert!(!table.contains("(fake)"), "{table}");
}

// ---- 4. The assertion's claims have the forms the audit log can hold ------------------------

#[tokio::test]
async fn inway_refuses_an_assertion_sub_that_is_not_an_oin() {
    let ends = Ends::start(EndsSpec::default()).await;
    let assertion = ends
        .assertion(|c| c["sub"] = "x\nexchange fake".into(), None)
        .await;
    let (r, tx) = ends.to_inway(assertion).await;
    assert_problem(&r, 401, "token-invalid", "sub not an OIN");
    assert_eq!(ends.received.count(), 0, "the service was called");
    let records = inway_outcomes(&ends, &tx);
    assert_eq!(records.len(), 1, "{records:#?}");
    assert_eq!(records[0]["attributes"]["doelpoort.decision"], "deny");
    assert!(records[0]["attributes"]["doelpoort.requester"].is_null());
}

#[tokio::test]
async fn inway_refuses_bsn_shaped_or_malformed_ids_in_the_assertion() {
    let ends = Ends::start(EndsSpec::default()).await;
    // The control: the same assertion, unbent, is accepted.
    let (r, _) = ends.to_inway(ends.assertion(|_| {}, None).await).await;
    assert_eq!(r.status, StatusCode::OK, "{}", body(&r));

    let long_jti = "a".repeat(3000);
    let cases: [(&str, Value); 7] = [
        ("case_id", json!("casus-999990019")),
        ("case_id", json!("")),
        ("case_id", json!("c".repeat(65))),
        ("case_id", json!("x\ny")),
        ("jti", json!("999990019")),
        ("jti", json!(long_jti)),
        ("sub", json!("999990019")),
    ];
    for (claim, value) in cases {
        let what = format!("{claim} = {:.40}", value.to_string());
        let assertion = ends.assertion(|c| c[claim] = value, None).await;
        let (r, tx) = ends.to_inway(assertion).await;
        assert_problem(&r, 401, "token-invalid", &what);
        assert_eq!(inway_outcomes(&ends, &tx).len(), 1, "{what}: not recorded");
    }
    assert_eq!(ends.received.count(), 1, "the service was called");

    for record in ends.inway_audit() {
        for attribute in [
            "doelpoort.case_id",
            "doelpoort.requester",
            "doelpoort.assertion_jti",
        ] {
            let value = record["attributes"][attribute].to_string();
            assert!(
                !value.contains(ends::BSN),
                "{attribute} holds the BSN: {record}"
            );
        }
    }
}

// ---- 5. Context and FSC headers once ---------------------------------------------------------

#[tokio::test]
async fn inway_refuses_context_and_fsc_headers_sent_twice() {
    let ends = Ends::start(EndsSpec::default()).await;
    let two_assertions = [
        ("fsc-transaction-id", transaction_id()),
        ("doelbinding-assertion", ends.assertion(|_| {}, None).await),
        ("doelbinding-assertion", ends.assertion(|_| {}, None).await),
    ];
    let r = ends.call_inway("gateway-client", &two_assertions).await;
    assert_problem(&r, 400, "context-invalid", "two assertions");

    let two_purposes = [
        ("fsc-transaction-id", transaction_id()),
        ("doelbinding-assertion", ends.assertion(|_| {}, None).await),
        ("doelbinding-purpose", TEST_PURPOSE.to_string()),
        ("doelbinding-purpose", TEST_PURPOSE.to_string()),
    ];
    let r = ends.call_inway("gateway-client", &two_purposes).await;
    assert_problem(&r, 400, "context-invalid", "two purposes");
    assert_eq!(ends.received.count(), 0, "the service was called");

    // The control: one of each is accepted.
    let once = [
        ("fsc-transaction-id", transaction_id()),
        ("doelbinding-assertion", ends.assertion(|_| {}, None).await),
        ("doelbinding-purpose", TEST_PURPOSE.to_string()),
    ];
    let r = ends.call_inway("gateway-client", &once).await;
    assert_eq!(r.status, StatusCode::OK, "{}", body(&r));

    // With FSC: two access tokens.
    let ends = Ends::start(EndsSpec {
        fsc: true,
        ..Default::default()
    })
    .await;
    let token = ends.outway_token().await;
    let two_tokens = [
        ("fsc-transaction-id", transaction_id()),
        ("doelbinding-assertion", ends.assertion(|_| {}, None).await),
        ("fsc-authorization", token.clone()),
        ("fsc-authorization", ends.outway_token().await),
    ];
    let r = ends.call_inway("gateway-client", &two_tokens).await;
    assert_problem(&r, 400, "context-invalid", "two FSC tokens");
    assert_eq!(ends.received.count(), 0, "the service was called");
    let one_token = [
        ("fsc-transaction-id", transaction_id()),
        ("doelbinding-assertion", ends.assertion(|_| {}, None).await),
        ("fsc-authorization", token),
    ];
    let r = ends.call_inway("gateway-client", &one_token).await;
    assert_eq!(r.status, StatusCode::OK, "{}", body(&r));
}

// ---- 6. FSC tokens name the inway's configured address ------------------------------------

/// A POST to the inway's token endpoint with the outway's certificate, a valid form, and
/// `headers`.
async fn token_request(ends: &Ends, headers: &[(&str, &str)]) -> TestResponse {
    let form = format!(
        "grant_type=client_credentials&scope={}&client_id={GATEWAY_OIN}",
        GRANT_HASH.replace('$', "%24")
    );
    let mut request = Request::post(format!(
        "https://localhost:{}/doelpoort/fsc/v1/token",
        ends.inway_addr.port()
    ));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::new(Bytes::from(form))).unwrap();
    send(&client(&ends.pki, "gateway-client", Http::One), request).await
}

#[tokio::test]
async fn fsc_token_aud_is_the_configured_inway_address() {
    let ends = Ends::with_fsc().await;
    let address = format!("https://localhost:{}", ends.inway_addr.port());
    let form = ("content-type", "application/x-www-form-urlencoded");

    let r = token_request(&ends, &[form]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", body(&r));
    let (_, claims) = jwt_parts(r.json()["access_token"].as_str().unwrap());
    assert_eq!(claims["aud"], address.as_str(), "{claims}");

    // The Host the caller names is not the inway's address.
    let r = token_request(&ends, &[form, ("host", "evil.example:444")]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", body(&r));
    let (_, claims) = jwt_parts(r.json()["access_token"].as_str().unwrap());
    assert_eq!(claims["aud"], address.as_str(), "{claims}");
}

#[tokio::test]
async fn inway_refuses_a_token_for_another_inway() {
    let ends = Ends::with_fsc().await;
    let call = |token: String| async {
        let headers = [
            ("fsc-transaction-id", transaction_id()),
            ("doelbinding-assertion", ends.assertion(|_| {}, None).await),
            ("fsc-authorization", token),
        ];
        ends.call_inway("gateway-client", &headers).await
    };
    // The control: minted this way for this inway, the token is accepted.
    let ours = ends.mint_fsc_token(|_| {});
    let r = call(ours).await;
    assert_eq!(r.status, StatusCode::OK, "{}", body(&r));
    assert_eq!(ends.received.count(), 1);

    let theirs = ends.mint_fsc_token(|c| c["aud"] = "https://other-inway.example:443".into());
    let r = call(theirs).await;
    assert_problem(&r, 401, "token-invalid", "a token for another inway");
    assert_fsc_code(
        &r,
        "ERROR_CODE_ACCESS_TOKEN_INVALID",
        "a token for another inway",
    );
    assert_eq!(ends.received.count(), 1, "the service was called");
}

// ---- 7. and 8. JOSE crit; nbf ------------------------------------------------------------------

#[tokio::test]
async fn inway_refuses_an_assertion_with_crit() {
    let ends = Ends::start(EndsSpec::default()).await;
    let kid = ends.outway_kid().await;
    let claims = default_claims(&ends, |_| {}).await;

    // The control: signed by hand without `crit`, the assertion is accepted.
    let plain = json!({"alg": "ES256", "typ": "JWT", "kid": kid});
    let (r, _) = ends.to_inway(sign_by_hand(&ends, &plain, &claims)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", body(&r));
    assert_eq!(ends.received.count(), 1);

    // A critical extension the inway does not understand (RFC 7515 §4.1.11: MUST reject).
    let claims = default_claims(&ends, |_| {}).await;
    let critical = json!({
        "alg": "ES256", "typ": "JWT", "kid": kid,
        "crit": ["urn:example:x"], "urn:example:x": true,
    });
    let (r, _) = ends.to_inway(sign_by_hand(&ends, &critical, &claims)).await;
    assert_problem(&r, 401, "token-invalid", "an assertion with crit");
    assert_eq!(ends.received.count(), 1, "the service was called");
}

#[tokio::test]
async fn inway_refuses_an_assertion_not_yet_valid() {
    let ends = Ends::start(EndsSpec::default()).await;
    let now = doelpoort::clock::unix_now() as u64;
    // The control: an nbf in the past is fine.
    let (r, _) = ends
        .to_inway(ends.assertion(|c| c["nbf"] = (now - 1).into(), None).await)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", body(&r));

    let (r, tx) = ends
        .to_inway(
            ends.assertion(|c| c["nbf"] = (now + 100).into(), None)
                .await,
        )
        .await;
    assert_problem(&r, 401, "token-invalid", "nbf 100 s ahead");
    assert_eq!(ends.received.count(), 1, "the service was called");
    assert_eq!(inway_outcomes(&ends, &tx).len(), 1);
}

// ---- 9. Transaction ids are fresh RFC 9562 UUIDv7s -------------------------------------------

#[tokio::test]
async fn inway_refuses_transaction_ids_that_are_not_rfc9562_uuidv7() {
    let ends = Ends::start(EndsSpec::default()).await;
    let now = doelpoort::clock::unix_now() as u64;
    let mut other_variant: Vec<char> = uuid::Uuid::now_v7().to_string().chars().collect();
    other_variant[19] = 'c';
    let other_variant: String = other_variant.into_iter().collect();
    let ten_minutes_ago =
        uuid::Uuid::new_v7(uuid::Timestamp::from_unix(uuid::NoContext, now - 600, 0)).to_string();
    let ids = [
        (
            "time zero",
            "00000000-0000-7000-8000-000000000000".to_string(),
        ),
        (
            "time max",
            "ffffffff-ffff-7fff-bfff-ffffffffffff".to_string(),
        ),
        ("variant c", other_variant),
        ("ten minutes old", ten_minutes_ago),
        ("a v4", uuid::Uuid::new_v4().to_string()),
    ];
    for (what, id) in ids {
        let headers = [
            ("fsc-transaction-id", id.clone()),
            ("doelbinding-assertion", ends.assertion(|_| {}, None).await),
        ];
        let r = ends.call_inway("gateway-client", &headers).await;
        let what = format!("{what} ({id})");
        assert_problem(&r, 400, "context-invalid", &what);
        assert_fsc_code(&r, "INVALID_LOG_RECORD_ID", &what);
        assert_eq!(ends.received.count(), 0, "{what}: the service was called");
    }
    // The control: a fresh one is accepted.
    let (r, _) = ends.to_inway(ends.assertion(|_| {}, None).await).await;
    assert_eq!(r.status, StatusCode::OK, "{}", body(&r));
}

// ---- 10. The token endpoint takes forms only -------------------------------------------------

#[tokio::test]
async fn token_endpoint_takes_forms_only() {
    let ends = Ends::with_fsc().await;
    for (what, headers) in [
        ("text/plain", &[("content-type", "text/plain")][..]),
        ("no content type", &[][..]),
    ] {
        let r = token_request(&ends, headers).await;
        assert_problem(&r, 400, "context-invalid", what);
    }
    // The control: the same form, declared as one.
    let r = token_request(
        &ends,
        &[(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", body(&r));
}

// ---- 11. A rotated assertion key -------------------------------------------------------------

#[tokio::test]
async fn a_rotated_assertion_key_reaches_the_inway_on_first_use() {
    let mut ends = Ends::start(EndsSpec::default()).await;
    let old_kid = ends.outway_kid().await;
    let r = ends.call().await;
    assert_eq!(r.status, StatusCode::OK, "{}", body(&r));
    // The inway fetched the outway's keys for that call at the latest.
    let fetched_by = Instant::now();

    // The outway rotates: a new key signs, the old one is still published.
    let (new_key, _) = doelpoort::pki::signing_key_pair().unwrap();
    std::fs::write(ends.pki.path("assertion-new.key"), new_key).unwrap();
    let config = ends.pki.path("outway.yaml");
    let yaml = std::fs::read_to_string(&config).unwrap();
    let old = format!("keys: [{}]", ends.pki.path("assertion.key").display());
    assert!(yaml.contains(&old), "{yaml}");
    let rotated = format!(
        "keys: [{}, {}]",
        ends.pki.path("assertion-new.key").display(),
        ends.pki.path("assertion.key").display()
    );
    std::fs::write(&config, yaml.replace(&old, &rotated)).unwrap();
    ends.outway.child.kill().unwrap();
    ends.outway.child.wait().unwrap();
    ends.outway = GatewayProcess::start(&config);
    (ends.outway_port, ends.outway_admin) = ends.outway.wait_until_serving();
    let new_kid = ends.outway_kid().await;
    assert_ne!(new_kid, old_kid);

    // An unknown kid makes the inway fetch again, at most once per 10 s after a fetch
    // (gateway/inway/jwks.rs, MIN_REFETCH): wait for that, no longer.
    let limiter = jwks_min_refetch() + Duration::from_millis(500);
    if let Some(left) = limiter.checked_sub(fetched_by.elapsed()) {
        tokio::time::sleep(left).await;
    }
    let r = ends.call().await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}\ninway's log: {}",
        body(&r),
        ends.inway.raw_logs.lock().unwrap().join("\n")
    );
    let sent = ends.received.last().headers["doelbinding-assertion"]
        .to_str()
        .unwrap()
        .to_string();
    let (header, _) = jwt_parts(&sent);
    assert_eq!(header["kid"], new_kid.as_str(), "signed with the new key");
    assert_eq!(ends.received.count(), 2);
}

fn jwks_min_refetch() -> Duration {
    doelpoort::inway::jwks::MIN_REFETCH
}
