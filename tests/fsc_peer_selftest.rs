//! Self-tests of the harness's FSC test peer (tests/harness/fsc_peer.rs) and wire tap
//! (tests/harness/wire.rs): the peer behaves as the FSC standard says a Manager and an Inway
//! do, so that a test against it proves interoperability rather than agreement with itself.

mod harness;

use bytes::Bytes;
use harness::fsc_peer::{
    cert_thumbprint, form_encode, unverified_parts, FscPeer, FscPeerSpec, ERROR_DOMAIN_INWAY,
};
use harness::*;
use http::{Request, StatusCode};
use http_body_util::Full;
use serde_json::json;
use std::time::Duration;

const GRANT: &str =
    "$1$3$s1jAyWmruw1kMdV0wLHOWLbAu73NAk5o4RaEyFsha466ez1Cx05eQj_IG8gxGwEyAnnpSPbPC0CsMczmnQDTKQ";

async fn start_peer(pki: &TestPki) -> FscPeer {
    FscPeer::start(pki, FscPeerSpec::new(GRANT), echo()).await
}

fn outway_client(pki: &TestPki) -> TestClient {
    client_with(client_tls(pki, Some("gateway-client")), Http::One)
}

async fn request_token(peer: &FscPeer, client: &TestClient, form: &[(&str, &str)]) -> TestResponse {
    send(
        client,
        Request::post(format!("{}/v1/token", peer.manager_url()))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(form_encode(form))))
            .unwrap(),
    )
    .await
}

/// A token for the outway (GATEWAY_OIN, `gateway-client`).
async fn token(peer: &FscPeer, client: &TestClient) -> String {
    let response = request_token(
        peer,
        client,
        &[
            ("grant_type", "client_credentials"),
            ("scope", GRANT),
            ("client_id", GATEWAY_OIN),
        ],
    )
    .await;
    assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
    response.json()["access_token"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn call_inway(
    client: &TestClient,
    url: &str,
    authorization: Option<&str>,
    transaction_id: Option<&str>,
) -> TestResponse {
    let mut request = Request::get(format!("{url}/v1/ping?x=1"));
    if let Some(a) = authorization {
        request = request.header("fsc-authorization", a);
    }
    if let Some(t) = transaction_id {
        request = request.header("fsc-transaction-id", t);
    }
    send(client, request.body(Full::new(Bytes::new())).unwrap()).await
}

fn new_transaction_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn assert_inway_error(response: &TestResponse, status: u16, code: &str) {
    let body = String::from_utf8_lossy(&response.body);
    assert_eq!(response.status.as_u16(), status, "{body}");
    assert_eq!(response.headers["fsc-error-code"], code, "{body}");
    assert_eq!(response.headers["content-type"], "application/json");
    assert_eq!(
        response.json(),
        json!({"message": response.json()["message"], "domain": ERROR_DOMAIN_INWAY, "code": code})
    );
    assert!(response.json()["message"].is_string());
    if status == 401 {
        assert_eq!(response.headers["www-authenticate"], "Bearer");
    }
}

#[tokio::test]
async fn a_token_from_the_manager_opens_the_inway() {
    let pki = TestPki::new();
    let peer = start_peer(&pki).await;
    let client = outway_client(&pki);

    let response = request_token(
        &peer,
        &client,
        &[
            ("grant_type", "client_credentials"),
            ("scope", GRANT),
            ("client_id", GATEWAY_OIN),
        ],
    )
    .await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.headers["cache-control"], "no-store");
    let body = response.json();
    assert_eq!(body["token_type"], "bearer");
    let token = body["access_token"].as_str().unwrap().to_string();
    let (header, claims) = unverified_parts(&token);
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["x5t#S256"], cert_thumbprint(&pki, "partner"));
    assert_eq!(claims["gth"], GRANT);
    assert_eq!(claims["gid"], "fsc-test");
    assert_eq!(claims["sub"], GATEWAY_OIN);
    assert_eq!(claims["iss"], PARTNER_OIN);
    assert_eq!(claims["svc"], "dienst");
    assert_eq!(claims["aud"], peer.inway_url());
    assert_eq!(
        claims["cnf"]["x5t#S256"],
        cert_thumbprint(&pki, "gateway-client")
    );
    assert_eq!(claims["add"], json!({}));
    let (exp, nbf) = (
        claims["exp"].as_u64().unwrap(),
        claims["nbf"].as_u64().unwrap(),
    );
    assert_eq!(exp - nbf, 300);
    let recorded = &peer.token_requests()[0];
    assert_eq!(recorded.field("scope"), Some(GRANT));
    assert_eq!(recorded.client_peer_id.as_deref(), Some(GATEWAY_OIN));
    assert_eq!(
        recorded.client_thumbprint,
        cert_thumbprint(&pki, "gateway-client")
    );
    assert_eq!((recorded.status, recorded.error.as_deref()), (200, None));

    // A bare token and a `Bearer` one are both accepted.
    let tx = new_transaction_id();
    let ok = call_inway(&client, &peer.inway_url(), Some(&token), Some(&tx)).await;
    assert_eq!(ok.status, StatusCode::OK, "{:?}", ok.body);
    let bearer = format!("Bearer {token}");
    let tx2 = new_transaction_id();
    let ok = call_inway(&client, &peer.inway_url(), Some(&bearer), Some(&tx2)).await;
    assert_eq!(ok.status, StatusCode::OK, "{:?}", ok.body);

    // The service got the path unchanged and both FSC headers.
    let served = peer.service_requests();
    assert_eq!(served.len(), 2);
    assert_eq!(served[0].path, "/v1/ping");
    assert_eq!(served[0].query.as_deref(), Some("x=1"));
    assert_eq!(served[0].headers["fsc-authorization"], token.as_str());
    assert_eq!(served[0].headers["fsc-transaction-id"], tx.as_str());
    assert_eq!(served[1].headers["fsc-authorization"], bearer.as_str());

    // The inway logged each before calling the service.
    let log = peer.transaction_log();
    assert_eq!(log.len(), 2);
    assert_eq!(
        serde_json::to_value(&log[0]).unwrap(),
        json!({
            "transaction_id": tx,
            "direction": "DIRECTION_INCOMING",
            "grant_hash": GRANT,
            "source": {"type": "SOURCE_TYPE_SOURCE", "outway_peer_id": GATEWAY_OIN},
            "destination": {"type": "DESTINATION_TYPE_DESTINATION", "service_peer_id": PARTNER_OIN},
            "service_name": "dienst",
            "created_at": log[0].created_at,
        })
    );
    let seen = peer.inway_requests();
    assert_eq!(seen.len(), 2);
    assert_eq!((seen[0].status, seen[0].error_code.as_deref()), (200, None));
    assert_eq!(seen[0].header("fsc-transaction-id"), Some(tx.as_str()));
    assert_eq!(seen[0].claims.as_ref().unwrap()["sub"], GATEWAY_OIN);
}

#[tokio::test]
async fn the_manager_refuses_what_the_grant_does_not_allow() {
    let pki = TestPki::new();
    let peer = start_peer(&pki).await;
    let outway = outway_client(&pki);
    let consumer = client(&pki, "consumer", Http::One);
    let good = [
        ("grant_type", "client_credentials"),
        ("scope", GRANT),
        ("client_id", GATEWAY_OIN),
    ];
    let with = |name: &str, value: &'static str| -> Vec<(&'static str, &'static str)> {
        good.iter()
            .map(|&(k, v)| if k == name { (k, value) } else { (k, v) })
            .collect()
    };
    type Form = Vec<(&'static str, &'static str)>;
    let cases: Vec<(&TestClient, Form, &str)> = vec![
        (&outway, with("scope", "$1$3$other"), "invalid_scope"),
        (&outway, with("client_id", CONSUMER_OIN), "invalid_client"),
        (
            &outway,
            with("grant_type", "password"),
            "unsupported_grant_type",
        ),
        (&outway, good[..2].to_vec(), "invalid_request"),
        (
            &outway,
            [good.to_vec(), vec![("scope", GRANT)]].concat(),
            "invalid_request",
        ),
        // Right form, but the certificate is not the grant's outway.
        (&consumer, with("client_id", CONSUMER_OIN), "invalid_client"),
        (&consumer, good.to_vec(), "invalid_client"),
    ];
    for (client, form, error) in cases {
        let response = request_token(&peer, client, &form).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{form:?}");
        assert_eq!(response.json()["error"], error, "{form:?}");
        assert!(response.json()["error_description"].is_string());
    }
    // Not a form.
    let response = send(
        &outway,
        Request::post(format!("{}/v1/token", peer.manager_url()))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from("{}")))
            .unwrap(),
    )
    .await;
    assert_eq!(response.json()["error"], "invalid_request");

    peer.set_refuse_tokens(true);
    let response = request_token(&peer, &outway, &good).await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(response.json()["error"], "invalid_scope");
    peer.set_refuse_tokens(false);
    assert_eq!(
        request_token(&peer, &outway, &good).await.status,
        StatusCode::OK
    );
    let recorded = peer.token_requests();
    assert_eq!(recorded.len(), 10);
    assert_eq!(recorded[8].error.as_deref(), Some("invalid_scope"));
    assert!(recorded[9].access_token.is_some());
}

#[tokio::test]
async fn the_inway_refuses_bad_tokens_and_transaction_ids() {
    let pki = TestPki::new();
    let peer = start_peer(&pki).await;
    let outway = outway_client(&pki);
    let url = peer.inway_url();
    let token = token(&peer, &outway).await;
    let tx = new_transaction_id();
    let (_, claims) = unverified_parts(&token);
    let altered = |change: serde_json::Value| {
        let mut c = claims.clone();
        for (k, v) in change.as_object().unwrap() {
            c[k] = v.clone();
        }
        peer.sign(&c)
    };
    let past = claims["nbf"].as_u64().unwrap() - 600;

    let missing = call_inway(&outway, &url, None, Some(&tx)).await;
    assert_inway_error(&missing, 401, "ERROR_CODE_ACCESS_TOKEN_MISSING");
    let empty = call_inway(&outway, &url, Some("Bearer "), Some(&tx)).await;
    assert_inway_error(&empty, 401, "ERROR_CODE_ACCESS_TOKEN_MISSING");

    // The outway's token, presented with another certificate.
    let consumer = client(&pki, "consumer", Http::One);
    let stolen = call_inway(&consumer, &url, Some(&token), Some(&tx)).await;
    assert_inway_error(&stolen, 401, "ERROR_CODE_ACCESS_TOKEN_INVALID");

    let expired = altered(json!({"nbf": past, "exp": past + 60}));
    let response = call_inway(&outway, &url, Some(&expired), Some(&tx)).await;
    assert_inway_error(&response, 401, "ERROR_CODE_ACCESS_TOKEN_EXPIRED");

    let future = altered(json!({"nbf": past + 1200}));
    let response = call_inway(&outway, &url, Some(&future), Some(&tx)).await;
    assert_inway_error(&response, 401, "ERROR_CODE_ACCESS_TOKEN_INVALID");

    let other_group = altered(json!({"gid": "other-group"}));
    let response = call_inway(&outway, &url, Some(&other_group), Some(&tx)).await;
    assert_inway_error(&response, 403, "ERROR_CODE_WRONG_GROUP_ID_IN_TOKEN");

    let other_service = altered(json!({"svc": "andere-dienst"}));
    let response = call_inway(&outway, &url, Some(&other_service), Some(&tx)).await;
    assert_inway_error(&response, 404, "ERROR_CODE_SERVICE_NOT_FOUND");

    let other_issuer = altered(json!({"iss": CONSUMER_OIN}));
    let response = call_inway(&outway, &url, Some(&other_issuer), Some(&tx)).await;
    assert_inway_error(&response, 401, "ERROR_CODE_ACCESS_TOKEN_INVALID");

    // Signed with another key (the consumer's), same header.
    let forged = {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.x5t_s256 = Some(cert_thumbprint(&pki, "partner"));
        let key = std::fs::read(pki.path("consumer.key")).unwrap();
        jsonwebtoken::encode(
            &header,
            &claims,
            &jsonwebtoken::EncodingKey::from_ec_pem(&key).unwrap(),
        )
        .unwrap()
    };
    let response = call_inway(&outway, &url, Some(&forged), Some(&tx)).await;
    assert_inway_error(&response, 401, "ERROR_CODE_ACCESS_TOKEN_INVALID");
    let response = call_inway(&outway, &url, Some("not.a.jwt"), Some(&tx)).await;
    assert_inway_error(&response, 401, "ERROR_CODE_ACCESS_TOKEN_INVALID");

    let response = call_inway(&outway, &url, Some(&token), None).await;
    assert_inway_error(&response, 400, "MISSING_LOG_RECORD_ID");
    for bad in ["not-a-uuid", &uuid::Uuid::now_v7().simple().to_string()] {
        let response = call_inway(&outway, &url, Some(&token), Some(bad)).await;
        assert_inway_error(&response, 400, "INVALID_LOG_RECORD_ID");
    }

    // Nothing reached the service, nothing was logged; every refusal was recorded.
    assert_eq!(peer.service_requests().len(), 0);
    assert!(peer.transaction_log().is_empty());
    let seen = peer.inway_requests();
    assert_eq!(seen.len(), 13);
    assert!(seen.iter().all(|r| r.error_code.is_some()));
    assert_eq!(seen[2].client_thumbprint, cert_thumbprint(&pki, "consumer"));

    // The genuine token still works.
    let ok = call_inway(&outway, &url, Some(&token), Some(&tx)).await;
    assert_eq!(ok.status, StatusCode::OK);
}

#[tokio::test]
async fn a_stopped_inway_is_unreachable() {
    let pki = TestPki::new();
    let peer = start_peer(&pki).await;
    let outway = outway_client(&pki);
    let token = token(&peer, &outway).await;
    let tx = new_transaction_id();
    let ok = call_inway(&outway, &peer.inway_url(), Some(&token), Some(&tx)).await;
    assert_eq!(ok.status, StatusCode::OK);
    peer.stop_inway().await;
    assert!(tokio::net::TcpStream::connect(peer.inway).await.is_err());
    // The pooled connection is gone too.
    let request = Request::get(format!("{}/v1/ping", peer.inway_url()))
        .header("fsc-authorization", token.as_str())
        .header("fsc-transaction-id", tx.as_str())
        .body(Full::new(Bytes::new()))
        .unwrap();
    let result = tokio::time::timeout(Duration::from_secs(5), outway.request(request))
        .await
        .expect("fails fast");
    assert!(result.is_err());
    // The manager still answers.
    assert_eq!(
        request_token(
            &peer,
            &outway,
            &[
                ("grant_type", "client_credentials"),
                ("scope", GRANT),
                ("client_id", GATEWAY_OIN)
            ]
        )
        .await
        .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_wire_tap_records_both_directions() {
    let pki = TestPki::new();
    let partner = start_partner(
        &pki,
        fixed(
            StatusCode::OK,
            r#"{"ok":"UPSTREAM-SAYS-HI"}"#,
            Duration::ZERO,
        ),
    )
    .await;
    let tap = wire::start(&pki, partner.addr, "partner", "gateway-client").await;
    let client = outway_client(&pki);
    let response = send(
        &client,
        Request::get(format!("{}/v1/ping", tap.url()))
            .header("x-marker", "CLIENT-SAYS-HI")
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.version, http::Version::HTTP_11);
    assert_eq!(&response.body[..], br#"{"ok":"UPSTREAM-SAYS-HI"}"#);
    let up = String::from_utf8(tap.to_upstream()).unwrap();
    assert!(up.starts_with("GET /v1/ping HTTP/1.1\r\n"), "{up}");
    assert!(tap.contains_to_upstream(b"x-marker: CLIENT-SAYS-HI"));
    assert!(String::from_utf8(tap.from_upstream())
        .unwrap()
        .starts_with("HTTP/1.1 200 OK\r\n"));
    assert!(tap.contains_from_upstream(b"UPSTREAM-SAYS-HI"));
    assert!(!tap.contains_from_upstream(b"NEVER-SENT"));
    assert_eq!(tap.connections(), 1);
}

#[tokio::test]
async fn a_certificate_bound_token_passes_the_tap() {
    let pki = TestPki::new();
    let peer = start_peer(&pki).await;
    let tap = wire::start(&pki, peer.inway, "partner", "gateway-client").await;
    peer.set_token_audience(&tap.url());
    let outway = outway_client(&pki);
    let token = token(&peer, &outway).await;
    assert_eq!(unverified_parts(&token).1["aud"], tap.url());
    let tx = new_transaction_id();
    let response = call_inway(&outway, &tap.url(), Some(&token), Some(&tx)).await;
    assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
    assert!(tap.contains_to_upstream(format!("fsc-transaction-id: {tx}").as_bytes()));
    assert!(tap.contains_to_upstream(token.as_bytes()));
    assert_eq!(peer.transaction_log()[0].transaction_id, tx);
}
