//! Unit tests of issuing certificates and CRLs and of the example PKI.

use super::*;
use openssl::x509::X509Crl;
use std::net::Ipv6Addr;
use x509_parser::extensions::GeneralName;
use x509_parser::oid_registry::OID_X509_SERIALNUMBER;
use x509_parser::pem::parse_x509_pem;

const OIN: &str = "00000001234567890000";

fn test_ca() -> CertificateAuthority {
    CertificateAuthority::generate("Test Root", "Test Org", 10).unwrap()
}

fn attr<'a>(
    mut it: impl Iterator<Item = &'a x509_parser::x509::AttributeTypeAndValue<'a>>,
) -> String {
    it.next().unwrap().as_str().unwrap().to_owned()
}

#[test]
fn client_leaf_has_subject_eku_validity_and_valid_signature() {
    let ca = test_ca();
    let mut spec = LeafSpec::new("consumer-a", Usage::Client, 30);
    spec.organisation = Some("Gemeente Voorbeeld".into());
    spec.serial_number = Some(OIN.into());
    let issued = ca.issue(&spec).unwrap();

    let (_, pem) = parse_x509_pem(issued.cert_pem.as_bytes()).unwrap();
    let cert = pem.parse_x509().unwrap();
    let subject = cert.subject();
    assert_eq!(attr(subject.iter_by_oid(&OID_X509_SERIALNUMBER)), OIN);
    assert_eq!(attr(subject.iter_organization()), "Gemeente Voorbeeld");
    assert_eq!(attr(subject.iter_common_name()), "consumer-a");
    assert_eq!(attr(subject.iter_country()), "NL");
    assert_eq!(cert.issuer().to_string(), "C=NL, O=Test Org, CN=Test Root");
    assert_eq!(cert.version(), x509_parser::x509::X509Version::V3);

    let eku = cert.extended_key_usage().unwrap().unwrap();
    assert!(eku.value.client_auth);
    assert!(!eku.value.server_auth);
    let ku = cert.key_usage().unwrap().unwrap();
    assert!(ku.critical && ku.value.digital_signature() && !ku.value.key_cert_sign());
    assert!(!cert.basic_constraints().unwrap().unwrap().value.ca);

    assert_eq!(cert.validity().not_before.timestamp(), spec.not_before);
    assert_eq!(cert.validity().not_after.timestamp(), spec.not_after);
    assert_eq!(spec.not_after - spec.not_before, 30 * DAY);
    let now = unix_now();
    assert!(spec.not_before < now && now < spec.not_after);

    assert_eq!(cert.raw_serial(), issued.serial.as_slice());
    assert_eq!(issued.serial.len(), 16);

    let ca_key = X509::from_pem(ca.cert_pem().as_bytes())
        .unwrap()
        .public_key()
        .unwrap();
    let leaf = X509::from_pem(issued.cert_pem.as_bytes()).unwrap();
    assert!(leaf.verify(&ca_key).unwrap());
    // And not by some other CA.
    let other = test_ca();
    assert!(!leaf.verify(&other.cert.public_key().unwrap()).unwrap());

    // The key is PKCS#8 and matches the certificate.
    assert!(issued.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    let key = PKey::private_key_from_pem(issued.key_pem.as_bytes()).unwrap();
    assert!(leaf.public_key().unwrap().public_eq(&key));
}

#[test]
fn server_leaf_has_sans() {
    let ca = test_ca();
    let mut spec = LeafSpec::new("partner", Usage::Server, 1);
    spec.dns_names = vec!["localhost".into()];
    spec.ip_addresses = vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()];
    let issued = ca.issue(&spec).unwrap();
    let (_, pem) = parse_x509_pem(issued.cert_pem.as_bytes()).unwrap();
    let cert = pem.parse_x509().unwrap();
    let san = cert.subject_alternative_name().unwrap().unwrap();
    let names = &san.value.general_names;
    assert!(names.contains(&GeneralName::DNSName("localhost")));
    assert!(names.contains(&GeneralName::IPAddress(&[127, 0, 0, 1])));
    let v6: [u8; 16] = Ipv6Addr::LOCALHOST.octets();
    assert!(names.contains(&GeneralName::IPAddress(&v6)));
    assert_eq!(names.len(), 3);
    let eku = cert.extended_key_usage().unwrap().unwrap();
    assert!(eku.value.server_auth && !eku.value.client_auth);
}

#[test]
fn expired_spec_gives_expired_cert() {
    let ca = test_ca();
    let now = unix_now();
    let mut spec = LeafSpec::new("old", Usage::Both, 1);
    spec.not_before = now - 10 * DAY;
    spec.not_after = now - DAY;
    let issued = ca.issue(&spec).unwrap();
    let (_, pem) = parse_x509_pem(issued.cert_pem.as_bytes()).unwrap();
    let cert = pem.parse_x509().unwrap();
    assert!(cert.validity().not_after.timestamp() < now);
    assert!(!cert.validity().is_valid());
    let eku = cert.extended_key_usage().unwrap().unwrap();
    assert!(eku.value.server_auth && eku.value.client_auth);
}

#[test]
fn inverted_validity_is_rejected() {
    let ca = test_ca();
    let mut spec = LeafSpec::new("bad", Usage::Client, 1);
    spec.not_after = spec.not_before;
    assert!(ca.issue(&spec).is_err());
}

#[test]
fn crl_lists_revoked_serial_and_verifies() {
    let ca = test_ca();
    let revoked = ca.issue(&LeafSpec::new("r", Usage::Client, 1)).unwrap();
    let kept = ca.issue(&LeafSpec::new("k", Usage::Client, 1)).unwrap();
    let pem = ca
        .crl_pem(std::slice::from_ref(&revoked.serial), 7)
        .unwrap();
    let crl = X509Crl::from_pem(pem.as_bytes()).unwrap();
    assert!(crl.verify(&ca.cert.public_key().unwrap()).unwrap());
    assert!(!crl.verify(&test_ca().cert.public_key().unwrap()).unwrap());

    let entries = crl.get_revoked().unwrap();
    assert_eq!(entries.len(), 1);
    let listed = entries
        .iter()
        .next()
        .unwrap()
        .serial_number()
        .to_bn()
        .unwrap();
    assert_eq!(listed.to_vec(), revoked.serial);

    let revoked_cert = X509::from_pem(revoked.cert_pem.as_bytes()).unwrap();
    let kept_cert = X509::from_pem(kept.cert_pem.as_bytes()).unwrap();
    assert!(matches!(
        crl.get_by_cert(&revoked_cert),
        openssl::x509::CrlStatus::Revoked(_)
    ));
    assert!(matches!(
        crl.get_by_cert(&kept_cert),
        openssl::x509::CrlStatus::NotRevoked
    ));
    let (critical, _) = crl.extension::<CrlNumber>().unwrap().unwrap();
    assert!(!critical);

    // Also readable by x509-parser (what the gateway uses), with both extensions.
    let der = crl.to_der().unwrap();
    let (_, parsed) = x509_parser::parse_x509_crl(&der).unwrap();
    assert!(parsed.crl_number().is_some());
    assert_eq!(
        parsed
            .iter_revoked_certificates()
            .next()
            .unwrap()
            .raw_serial(),
        revoked.serial.as_slice()
    );
}

#[test]
fn empty_crl_is_fine() {
    let ca = test_ca();
    let pem = ca.crl_pem(&[], 1).unwrap();
    let crl = X509Crl::from_pem(pem.as_bytes()).unwrap();
    assert!(crl.verify(&ca.cert.public_key().unwrap()).unwrap());
    assert!(crl.get_revoked().is_none_or(|r| r.is_empty()));
}

#[test]
fn load_round_trips_and_rejects_mismatched_key() {
    let dir = tempfile::tempdir().unwrap();
    let ca = test_ca();
    let other = test_ca();
    let crt = dir.path().join("ca.crt");
    let key = dir.path().join("ca.key");
    let wrong = dir.path().join("wrong.key");
    fs::write(&crt, ca.cert_pem()).unwrap();
    fs::write(&key, ca.key_pem()).unwrap();
    fs::write(&wrong, other.key_pem()).unwrap();
    let loaded = CertificateAuthority::load(&crt, &key).unwrap();
    assert_eq!(loaded.cert_pem(), ca.cert_pem());
    let issued = loaded.issue(&LeafSpec::new("x", Usage::Client, 1)).unwrap();
    let leaf = X509::from_pem(issued.cert_pem.as_bytes()).unwrap();
    assert!(leaf.verify(&ca.cert.public_key().unwrap()).unwrap());
    assert!(CertificateAuthority::load(&crt, &wrong).is_err());
}

#[test]
fn generate_example_writes_everything() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pki");
    let gateway = ExampleParty {
        id: "gemeente-voorbeeld".into(),
        organisation: "Gemeente Voorbeeld".into(),
        oin: OIN.into(),
    };
    let consumers = [ExampleParty {
        id: "consumer-a".into(),
        organisation: "Consument A".into(),
        oin: "00000009876543210000".into(),
    }];
    let partners = [ExampleParty {
        id: "partner-b".into(),
        organisation: "Partner B".into(),
        oin: "00000001111111110000".into(),
    }];
    let officers = [ExampleParty {
        id: "fg-a".into(),
        organisation: "Gemeente Voorbeeld, FG".into(),
        oin: OIN.into(),
    }];
    let pki = ExamplePki {
        gateway: &gateway,
        consumers: &consumers,
        partners: &partners,
        officers: &officers,
        days: 5,
    };
    let expiry = generate_example(&out, &pki).unwrap();
    let now = unix_now();
    assert!(expiry > now + 4 * DAY && expiry <= now + 5 * DAY);

    for f in [
        "ca.crt",
        "ca.key",
        "gateway.crt",
        "gateway.key",
        "gateway-client.crt",
        "gateway-client.key",
        "clients/consumer-a.crt",
        "clients/consumer-a.key",
        "partners/partner-b.crt",
        "partners/partner-b.key",
        "officers/fg-a.crt",
        "officers/fg-a.key",
        "officers/fg-a.p12",
        "README.md",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(out.join("gateway.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let ca = CertificateAuthority::load(&out.join("ca.crt"), &out.join("ca.key")).unwrap();
    let ca_key = ca.cert.public_key().unwrap();
    let check = |path: &str, cn: &str, oin: &str, server: bool| {
        let pem = fs::read(out.join(path)).unwrap();
        assert!(X509::from_pem(&pem).unwrap().verify(&ca_key).unwrap());
        let (_, pem) = parse_x509_pem(&pem).unwrap();
        let cert = pem.parse_x509().unwrap();
        assert_eq!(attr(cert.subject().iter_common_name()), cn);
        assert_eq!(
            attr(cert.subject().iter_by_oid(&OID_X509_SERIALNUMBER)),
            oin
        );
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert_eq!((eku.server_auth, eku.client_auth), (server, !server));
        assert_eq!(cert.subject_alternative_name().unwrap().is_some(), server);
        assert!(cert.validity().not_after.timestamp() >= expiry);
    };
    check("gateway.crt", "gemeente-voorbeeld", OIN, true);
    check("gateway-client.crt", "gemeente-voorbeeld", OIN, false);
    check(
        "clients/consumer-a.crt",
        "consumer-a",
        "00000009876543210000",
        false,
    );
    check(
        "partners/partner-b.crt",
        "partner-b",
        "00000001111111110000",
        true,
    );

    check("officers/fg-a.crt", "fg-a", OIN, false);
    // The browser's file holds the same certificate, under the documented password.
    let p12 = openssl::pkcs12::Pkcs12::from_der(&fs::read(out.join("officers/fg-a.p12")).unwrap())
        .unwrap()
        .parse2(super::OFFICER_P12_PASSWORD)
        .unwrap();
    assert_eq!(
        p12.cert.unwrap().to_pem().unwrap(),
        X509::from_pem(&fs::read(out.join("officers/fg-a.crt")).unwrap())
            .unwrap()
            .to_pem()
            .unwrap()
    );

    let readme = fs::read_to_string(out.join("README.md")).unwrap();
    assert!(readme.contains("never use"));
    assert!(readme.contains("doelpoort certs generate"));
    assert!(readme.contains("clients/consumer-a.crt"));

    // Regenerating over an existing directory works.
    generate_example(&out, &pki).unwrap();
}

#[test]
fn generate_example_rejects_path_like_ids() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = ExampleParty {
        id: "../escape".into(),
        organisation: "X".into(),
        oin: OIN.into(),
    };
    let pki = ExamplePki {
        gateway: &gateway,
        consumers: &[],
        partners: &[],
        officers: &[],
        days: 1,
    };
    assert!(generate_example(dir.path(), &pki).is_err());
    assert!(!dir.path().join("ca.key").exists());
}
