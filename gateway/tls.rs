//! Phase *accept*: TLS contexts for both sides of the gateway, and the caller's identity as
//! read from its verified client certificate.
//!
//! - Inbound: a client certificate is **required** and must chain to one of the configured
//!   trust anchors (and, when CRLs are configured, not be revoked). Expired, not-yet-valid and
//!   wrongly-used (no clientAuth EKU) certificates fail the handshake inside rustls/webpki,
//!   before any HTTP is read. A keyUsage that does not allow digitalSignature is refused too
//!   (webpki does not check it; see `SigningKeyUsage`).
//! - Outbound: every partner gets its own client context: the gateway's client certificate for
//!   that partner and the trust anchors that partner's server certificate must chain to (with
//!   the partner's host name, serverAuth and a key usage that allows signing).
//!
//! Only TLS 1.2 and 1.3 are offered, and only the provider's AEAD suites with ephemeral key
//! exchange (rustls implements no others), so every session is forward secret.
//! Contexts are built once at start-up (and on reload), never per connection.

use crate::config::{Config, ListenerTls, PartnerConfig};
use crate::identity::{Fingerprint, Oin, PeerIdentity};
use anyhow::{anyhow, bail, Context, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore,
    ServerConfig, SignatureScheme,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName, UnixTime,
};
use std::path::Path;
use std::sync::Arc;

/// The crypto provider every context uses. `ring` builds quickly and has fast P-256; the
/// cipher suite list is rustls' default, which contains forward-secret AEAD suites only.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

const PROTOCOLS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

pub fn load_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("cannot read certificates from {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{} is not a PEM certificate file", path.display()))?;
    if certs.is_empty() {
        bail!("{} contains no PEM certificate", path.display());
    }
    Ok(certs)
}

pub fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path)
        .with_context(|| format!("{} does not hold a PEM private key", path.display()))
}

fn load_crls(paths: &[impl AsRef<Path>]) -> Result<Vec<CertificateRevocationListDer<'static>>> {
    let mut crls = Vec::new();
    for path in paths {
        let path = path.as_ref();
        let found = CertificateRevocationListDer::pem_file_iter(path)
            .with_context(|| format!("cannot read CRLs from {}", path.display()))?
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("{} is not a PEM CRL file", path.display()))?;
        if found.is_empty() {
            bail!("{} contains no PEM CRL", path.display());
        }
        crls.extend(found);
    }
    Ok(crls)
}

/// The trust anchors in `paths` (PEM files of CA certificates).
pub fn root_store(paths: &[impl AsRef<Path>]) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for path in paths {
        for cert in load_certificates(path.as_ref())? {
            roots.add(cert).with_context(|| {
                format!("{} is not a usable CA certificate", path.as_ref().display())
            })?;
        }
    }
    Ok(roots)
}

/// The data listener's TLS context: mutual TLS with client certificates required.
pub fn server_config(config: &Config) -> Result<Arc<ServerConfig>> {
    listener_config(&config.tls, &[b"h2", b"http/1.1"])
}

/// The admin listener's TLS context, when `admin_tls` is configured (HTTP/1.1 only).
pub fn admin_server_config(config: &Config) -> Result<Option<Arc<ServerConfig>>> {
    config
        .admin_tls
        .as_ref()
        .map(|tls| listener_config(tls, &[b"http/1.1"]))
        .transpose()
}

/// The privacy officers' console's TLS context (HTTP/1.1 only): officers' certificates must
/// chain to its own trust anchors (and be listed by fingerprint, checked per connection).
pub fn console_server_config(
    console: &crate::config::ConsoleSettings,
) -> Result<Arc<ServerConfig>> {
    listener_config(&console.tls, &[b"http/1.1"])
}

/// A server context that requires a client certificate chaining to `tls.client_ca`.
fn listener_config(tls: &ListenerTls, alpn: &[&[u8]]) -> Result<Arc<ServerConfig>> {
    let provider = provider();
    let roots = Arc::new(root_store(&tls.client_ca)?);
    let crls = load_crls(&tls.crls)?;
    let mut verifier = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
    if !crls.is_empty() {
        // Revocation is checked for the end-entity (the consumer's certificate). A CRL past its
        // nextUpdate is treated as unusable: fail closed rather than trust stale revocation data.
        verifier = verifier
            .with_crls(crls)
            .only_check_end_entity_revocation()
            .enforce_revocation_expiration();
    }
    let verifier =
        Arc::new(SigningKeyUsage(verifier.build().map_err(|e| {
            anyhow!("cannot build the client certificate verifier: {e}")
        })?));
    let certs = load_certificates(&tls.certificate)?;
    let key = load_private_key(&tls.key)?;
    let mut server = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(PROTOCOLS)
        .context("TLS protocol versions")?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .context("the gateway certificate does not match its key")?;
    server.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    // The gateway's order of cipher suites decides, not the client's: a client cannot talk it
    // down to the weakest suite both support.
    server.ignore_client_order = true;
    // Resumption spares repeat callers a full handshake: stateless tickets plus a session
    // cache sized for many backend systems.
    server.session_storage = rustls::server::ServerSessionMemoryCache::new(16 * 1024);
    server.ticketer = rustls::crypto::ring::Ticketer::new()
        .map_err(|e| anyhow!("cannot create a TLS session ticketer: {e}"))?;
    Ok(Arc::new(server))
}

/// webpki checks the extended key usage (clientAuth, serverAuth) but not the key usage bits of
/// an end-entity certificate. A certificate whose keyUsage does not allow digitalSignature (say,
/// only keyCertSign or keyEncipherment) may not sign a TLS 1.3 or ECDHE handshake (RFC 5280
/// §4.2.1.3), so it identifies nobody: refused like a certificate with the wrong purpose.
fn may_sign(end_entity: &CertificateDer<'_>) -> Result<(), rustls::Error> {
    let (_, cert) = x509_parser::parse_x509_certificate(end_entity)
        .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
    match cert.key_usage() {
        Ok(None) => Ok(()),
        Ok(Some(usage)) if usage.value.digital_signature() => Ok(()),
        Ok(Some(_)) => Err(rustls::Error::InvalidCertificate(
            CertificateError::InvalidPurpose,
        )),
        Err(_) => Err(rustls::Error::InvalidCertificate(
            CertificateError::BadEncoding,
        )),
    }
}

/// A client certificate must say what it is for and whom it is: webpki accepts a certificate
/// without any extended key usage as good for every purpose, and the gateway identifies a
/// consumer by the OIN in the subject's `serialNumber`. So a client certificate must carry
/// the clientAuth EKU, and at most one `serialNumber`: with two, which organisation calls
/// would depend on which one is read.
fn names_one_client(end_entity: &CertificateDer<'_>) -> Result<(), rustls::Error> {
    let (_, cert) = x509_parser::parse_x509_certificate(end_entity)
        .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
    match cert.extended_key_usage() {
        Ok(Some(eku)) if eku.value.client_auth => {}
        Ok(_) => {
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::InvalidPurpose,
            ))
        }
        Err(_) => {
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::BadEncoding,
            ))
        }
    }
    let serial_numbers = cert
        .subject()
        .iter_by_oid(&x509_parser::oid_registry::OID_X509_SERIALNUMBER)
        .count();
    if serial_numbers > 1 {
        return Err(rustls::Error::InvalidCertificate(
            CertificateError::ApplicationVerificationFailure,
        ));
    }
    Ok(())
}

/// The handshake-signature checks, which both key-usage verifiers leave to webpki as they are
/// (one definition for the client and the server side, whose traits differ).
macro_rules! signature_checks_of_webpki {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.0.verify_tls12_signature(message, cert, dss)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.0.verify_tls13_signature(message, cert, dss)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.supported_verify_schemes()
        }
    };
}

/// A caller's certificate: webpki's checks, then [`may_sign`].
#[derive(Debug)]
struct SigningKeyUsage(Arc<dyn ClientCertVerifier>);

impl ClientCertVerifier for SigningKeyUsage {
    fn offer_client_auth(&self) -> bool {
        self.0.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.0.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.0.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self.0.verify_client_cert(end_entity, intermediates, now)?;
        may_sign(end_entity)?;
        names_one_client(end_entity)?;
        Ok(verified)
    }

    signature_checks_of_webpki!();
}

/// A partner's certificate: webpki's checks (chain, name, serverAuth), then [`may_sign`].
#[derive(Debug)]
struct PartnerKeyUsage(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for PartnerKeyUsage {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.0.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        may_sign(end_entity)?;
        Ok(verified)
    }

    signature_checks_of_webpki!();
}

/// The client context the gateway uses towards one partner.
pub fn partner_client_config(partner: &PartnerConfig) -> Result<ClientConfig> {
    let provider = provider();
    let roots = Arc::new(root_store(&partner.trust)?);
    let verifier = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
        .build()
        .map_err(|e| anyhow!("cannot build the partner certificate verifier: {e}"))?;
    let certs = load_certificates(&partner.client_certificate)?;
    let key = load_private_key(&partner.client_key)?;
    let client = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(PROTOCOLS)
        .context("TLS protocol versions")?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PartnerKeyUsage(verifier)))
        .with_client_auth_cert(certs, key)
        .with_context(|| {
            format!(
                "the client certificate for partner '{}' does not match its key",
                partner.id
            )
        })?;
    Ok(client)
}

/// Why an inbound TLS handshake failed, as the `reason` label of
/// `doelpoort_tls_handshake_failures_total` names it. Read from rustls' typed error, never from
/// its message text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeFailure {
    NoClientCertificate,
    CertificateExpired,
    CertificateRevoked,
    CertificateUntrusted,
    /// TLS 1.0/1.1, or a hello without what TLS 1.2+ requires.
    ProtocolVersion,
    /// Anything else: garbage, a broken hello, a reset.
    Other,
}

impl HandshakeFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoClientCertificate => "no_client_certificate",
            Self::CertificateExpired => "certificate_expired",
            Self::CertificateRevoked => "certificate_revoked",
            Self::CertificateUntrusted => "certificate_untrusted",
            Self::ProtocolVersion => "protocol_version",
            Self::Other => "handshake_error",
        }
    }

    /// Classifies the error tokio-rustls returns from an accept (a rustls error inside an
    /// I/O error; anything else is `Other`).
    pub fn of(error: &std::io::Error) -> Self {
        use rustls::{AlertDescription as Alert, CertificateError as Cert, Error, InvalidMessage};
        use rustls::{PeerIncompatible as Incompatible, PeerMisbehaved};
        let Some(error) = error.get_ref().and_then(|e| e.downcast_ref::<Error>()) else {
            return Self::Other;
        };
        match error {
            Error::NoCertificatesPresented => Self::NoClientCertificate,
            Error::InvalidCertificate(Cert::Expired | Cert::ExpiredContext { .. })
            | Error::AlertReceived(Alert::CertificateExpired) => Self::CertificateExpired,
            Error::InvalidCertificate(Cert::Revoked)
            | Error::AlertReceived(Alert::CertificateRevoked) => Self::CertificateRevoked,
            Error::InvalidCertificate(_) => Self::CertificateUntrusted,
            Error::PeerIncompatible(
                Incompatible::Tls12NotOffered
                | Incompatible::Tls12NotOfferedOrEnabled
                | Incompatible::SupportedVersionsExtensionRequired
                | Incompatible::SignatureAlgorithmsExtensionRequired,
            )
            | Error::InvalidMessage(InvalidMessage::UnknownProtocolVersion)
            | Error::PeerMisbehaved(PeerMisbehaved::OfferedEarlyDataWithOldProtocolVersion)
            | Error::AlertReceived(Alert::ProtocolVersion) => Self::ProtocolVersion,
            _ => Self::Other,
        }
    }
}

/// Reads the organisation identity from a (verified) end-entity certificate.
pub fn peer_identity(der: &[u8]) -> Result<PeerIdentity> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| anyhow!("unparseable client certificate: {e}"))?;
    let subject = cert.subject();
    fn first<'a>(
        mut values: impl Iterator<Item = &'a x509_parser::x509::AttributeTypeAndValue<'a>>,
    ) -> Option<String> {
        values
            .next()
            .and_then(|a| a.as_str().ok())
            .map(str::to_string)
    }
    let serial_number =
        first(subject.iter_by_oid(&x509_parser::oid_registry::OID_X509_SERIALNUMBER));
    Ok(PeerIdentity {
        // A serialNumber that is not an OIN (other CAs use it for other numbers) simply
        // identifies nobody; a pinned fingerprint can still map the certificate.
        oin: serial_number.and_then(|s| Oin::parse(&s).ok()),
        organisation: first(subject.iter_organization()),
        common_name: first(subject.iter_common_name()),
        fingerprint: Fingerprint::of_der(der),
    })
}

/// One certificate's subject and expiry, for `doelpoort check` and the expiry metric.
#[derive(Debug, Clone)]
pub struct CertificateValidity {
    pub subject: String,
    pub not_before: i64,
    pub not_after: i64,
}

/// Validity of every certificate in a PEM file.
pub fn certificate_validity(path: &Path) -> Result<Vec<CertificateValidity>> {
    load_certificates(path)?
        .iter()
        .map(|der| {
            let (_, cert) = x509_parser::parse_x509_certificate(der)
                .map_err(|e| anyhow!("{}: unparseable certificate: {e}", path.display()))?;
            Ok(CertificateValidity {
                subject: cert.subject().to_string(),
                not_before: cert.validity().not_before.timestamp(),
                not_after: cert.validity().not_after.timestamp(),
            })
        })
        .collect()
}
