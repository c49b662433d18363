//! Unit tests of FSC access tokens: the token endpoint's refusals, the inway's checks, and
//! the outway's checks on a manager's answer.

use super::*;
use crate::config::{FscContract, FscInway, FscOutway};
use crate::id::Id;

const GRANT: &str = "$1$3$grant";
const PEER: &str = "00000001999990011000";
const OUTWAY: &str = "00000001999990000000";

struct Fixture {
    _dir: tempfile::TempDir,
    authority: TokenAuthority,
    client: Fingerprint,
    other: Fingerprint,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let ca = crate::pki::CertificateAuthority::generate("Test CA", "tests", 1).unwrap();
    let leaf = ca
        .issue(&crate::pki::LeafSpec::new(
            "inway",
            crate::pki::Usage::Server,
            1,
        ))
        .unwrap();
    leaf.write(dir.path(), "token").unwrap();
    let config = FscInway {
        group_id: "fsc-test".into(),
        address: "https://localhost:8443".into(),
        token_certificate: dir.path().join("token.crt"),
        token_key: dir.path().join("token.key"),
        token_lifetime: Duration::from_secs(300),
        contracts: vec![FscContract {
            grant_hash: GRANT.into(),
            consumer: Id::parse("gemeente").unwrap(),
            service: Id::parse("uwv").unwrap(),
        }],
    };
    Fixture {
        authority: TokenAuthority::load(&config, PEER).unwrap(),
        client: Fingerprint([1; 32]),
        other: Fingerprint([2; 32]),
        _dir: dir,
    }
}

fn form(grant_type: &str, scope: &str, client_id: &str) -> Vec<u8> {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", grant_type)
        .append_pair("scope", scope)
        .append_pair("client_id", client_id)
        .finish()
        .into_bytes()
}

fn issue(
    f: &Fixture,
    body: &[u8],
    consumer: &str,
    peer: Option<&str>,
) -> Result<String, TokenRefusal> {
    let client = TokenClient {
        consumer,
        peer_id: peer,
        fingerprint: &f.client,
    };
    f.authority
        .issue(body, &client, crate::clock::unix_now() as u64)
}

#[test]
fn the_token_endpoint_refuses_what_no_contract_covers() {
    let f = fixture();
    let ok = form("client_credentials", GRANT, OUTWAY);
    assert!(issue(&f, &ok, "gemeente", Some(OUTWAY)).is_ok());
    let refused = |body: &[u8], consumer: &str, peer: Option<&str>| {
        issue(&f, body, consumer, peer).unwrap_err().error
    };
    assert_eq!(
        refused(&form("password", GRANT, OUTWAY), "gemeente", Some(OUTWAY)),
        "unsupported_grant_type"
    );
    assert_eq!(
        refused(
            &form("client_credentials", "$1$3$other", OUTWAY),
            "gemeente",
            Some(OUTWAY)
        ),
        "invalid_scope"
    );
    // The client id must be the certificate's peer id, and the contract must name the caller.
    assert_eq!(refused(&ok, "gemeente", Some(PEER)), "invalid_client");
    assert_eq!(
        refused(&ok, "andere-gemeente", Some(OUTWAY)),
        "invalid_scope"
    );
    assert_eq!(
        refused(b"grant_type=client_credentials", "gemeente", Some(OUTWAY)),
        "invalid_request"
    );
    let twice = [ok.as_slice(), b"&scope=x"].concat();
    assert_eq!(refused(&twice, "gemeente", Some(OUTWAY)), "invalid_request");
}

#[test]
fn the_inway_accepts_only_its_own_bound_tokens() {
    let f = fixture();
    let token = issue(
        &f,
        &form("client_credentials", GRANT, OUTWAY),
        "gemeente",
        Some(OUTWAY),
    )
    .unwrap();
    let value = http::HeaderValue::from_str(&token).unwrap();
    let claims = f
        .authority
        .verify(Some(&value), Some(&f.client), "gemeente")
        .unwrap();
    assert_eq!(
        (
            claims.gth.as_str(),
            claims.svc.as_str(),
            claims.sub.as_str()
        ),
        (GRANT, "uwv", OUTWAY)
    );
    assert_eq!(claims.aud, "https://localhost:8443");
    let bearer = http::HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
    assert!(f
        .authority
        .verify(Some(&bearer), Some(&f.client), "gemeente")
        .is_ok());
    assert_eq!(
        f.authority.verify(None, Some(&f.client), "gemeente"),
        Err(FscError::AccessTokenMissing)
    );
    assert_eq!(
        f.authority.verify(Some(&value), Some(&f.other), "gemeente"),
        Err(FscError::AccessTokenInvalid),
        "bound to another certificate"
    );
    assert_eq!(
        f.authority
            .verify(Some(&value), Some(&f.client), "andere-gemeente"),
        Err(FscError::AccessTokenInvalid),
        "another caller's contract"
    );
    let basic = http::HeaderValue::from_str(&format!("Basic {token}")).unwrap();
    assert_eq!(
        f.authority
            .verify(Some(&basic), Some(&f.client), "gemeente"),
        Err(FscError::AccessTokenInvalid)
    );
    // Signed by another inway: another token key.
    let other = fixture();
    let foreign = issue(
        &other,
        &form("client_credentials", GRANT, OUTWAY),
        "gemeente",
        Some(OUTWAY),
    )
    .unwrap();
    let foreign = http::HeaderValue::from_str(&foreign).unwrap();
    assert_eq!(
        f.authority
            .verify(Some(&foreign), Some(&f.client), "gemeente"),
        Err(FscError::AccessTokenInvalid)
    );
}

#[test]
fn expired_tokens_and_other_groups_are_told_apart() {
    let f = fixture();
    let sign = |claims: &AccessTokenClaims| {
        let mut header = Header::new(Algorithm::ES256);
        header.x5t_s256 = Some(f.authority.x5t.clone());
        let token = jsonwebtoken::encode(&header, claims, &f.authority.encoding).unwrap();
        http::HeaderValue::from_str(&token).unwrap()
    };
    let now = crate::clock::unix_now() as u64;
    let base = AccessTokenClaims {
        gth: GRANT.into(),
        gid: "fsc-test".into(),
        sub: OUTWAY.into(),
        iss: PEER.into(),
        svc: "uwv".into(),
        aud: "https://localhost:8443".into(),
        exp: now + 60,
        nbf: now,
        cnf: Confirmation {
            x5t_s256: thumbprint(&f.client),
        },
        add: Default::default(),
    };
    let verify = |claims: AccessTokenClaims| {
        f.authority
            .verify(Some(&sign(&claims)), Some(&f.client), "gemeente")
    };
    assert!(verify(base.clone()).is_ok());
    assert_eq!(
        verify(AccessTokenClaims {
            exp: now - 60,
            nbf: now - 120,
            ..base.clone()
        }),
        Err(FscError::AccessTokenExpired)
    );
    assert_eq!(
        verify(AccessTokenClaims {
            gid: "other".into(),
            ..base.clone()
        }),
        Err(FscError::WrongGroupIdInToken)
    );
    assert_eq!(
        verify(AccessTokenClaims {
            iss: OUTWAY.into(),
            ..base.clone()
        }),
        Err(FscError::AccessTokenInvalid)
    );
    assert_eq!(
        verify(AccessTokenClaims {
            nbf: now + 600,
            ..base
        }),
        Err(FscError::AccessTokenInvalid)
    );
}

#[test]
fn the_outway_uses_only_the_token_it_asked_for() {
    let config = FscOutway {
        manager: "https://localhost:8443/doelpoort/fsc".parse().unwrap(),
        grant_hash: GRANT.into(),
        group_id: "fsc-test".into(),
        service: "uwv".into(),
    };
    let tokens = OutwayTokens::new(
        config,
        OUTWAY.into(),
        "thumb".into(),
        "https://localhost:8443".into(),
        Some(PEER.into()),
    );
    assert_eq!(
        tokens.endpoint(),
        "https://localhost:8443/doelpoort/fsc/v1/token"
    );
    assert_eq!(
        tokens.request_body(),
        "grant_type=client_credentials&scope=%241%243%24grant&client_id=00000001999990000000"
    );
    let now = 1_800_000_000;
    let claims = |change: &dyn Fn(&mut serde_json::Value)| {
        let mut c = serde_json::json!({
            "gth": GRANT, "gid": "fsc-test", "sub": OUTWAY, "iss": PEER, "svc": "uwv",
            "aud": "https://localhost:8443", "exp": now + 300, "nbf": now,
            "cnf": {"x5t#S256": "thumb"}, "add": {}
        });
        change(&mut c);
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).unwrap());
        serde_json::to_vec(&serde_json::json!({
            "access_token": format!("e30.{payload}.c2ln"), "token_type": "bearer"
        }))
        .unwrap()
    };
    let ok = http::StatusCode::OK;
    assert!(tokens.accept(ok, &claims(&|_| {}), now).is_ok());
    assert!(tokens.cached(now).is_some(), "cached");
    assert!(
        tokens.cached(now + 280).is_none(),
        "not used within 30 s of its end"
    );
    for (what, change) in [
        (
            "group",
            &(|c: &mut serde_json::Value| c["gid"] = "x".into()) as &dyn Fn(&mut serde_json::Value),
        ),
        ("grant", &|c: &mut serde_json::Value| c["gth"] = "x".into()),
        ("service", &|c: &mut serde_json::Value| {
            c["svc"] = "x".into()
        }),
        ("inway", &|c: &mut serde_json::Value| {
            c["aud"] = "https://elsewhere.example".into()
        }),
        ("certificate", &|c: &mut serde_json::Value| {
            c["cnf"]["x5t#S256"] = "x".into()
        }),
        ("expiry", &|c: &mut serde_json::Value| {
            c["exp"] = (now + 10).into()
        }),
        ("not yet valid", &|c: &mut serde_json::Value| {
            c["nbf"] = (now + 600).into()
        }),
        ("another peer", &|c: &mut serde_json::Value| {
            c["sub"] = "00000001999990099000".into()
        }),
        ("another issuer", &|c: &mut serde_json::Value| {
            c["iss"] = "00000001999990012000".into()
        }),
        ("an issuer that is no OIN", &|c: &mut serde_json::Value| {
            c["iss"] = "Zoë\r\n999990019".into()
        }),
    ] {
        assert!(tokens.accept(ok, &claims(change), now).is_err(), "{what}");
    }
    // A token that is not a compact JWS (it could not be sent as a header value unaltered).
    for suffix in ["\r\nX-Evil: 1", "\n", " \u{fc}", ".extra"] {
        let body = claims(&|_| {});
        let mut json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let token = json["access_token"].as_str().unwrap().to_string() + suffix;
        json["access_token"] = token.into();
        let body = serde_json::to_vec(&json).unwrap();
        assert!(tokens.accept(ok, &body, now).is_err(), "{suffix:?}");
    }
    // A long-lived token is used for an hour at most, and dropped when the inway refuses it.
    assert!(tokens
        .accept(ok, &claims(&|c| c["exp"] = (now + 99_999_999).into()), now)
        .is_ok());
    assert!(tokens.cached(now + 3_599).is_some());
    assert!(tokens.cached(now + 3_600).is_none(), "capped at an hour");
    tokens.forget();
    assert!(tokens.cached(now).is_none(), "forgotten");
    assert!(tokens
        .accept(
            http::StatusCode::BAD_REQUEST,
            br#"{"error":"invalid_scope"}"#,
            now
        )
        .unwrap_err()
        .contains("invalid_scope"));
}
