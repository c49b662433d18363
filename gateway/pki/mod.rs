//! Example / test PKI generation.
//!
//! This module creates a small, complete PKI with the `openssl` crate: a self-signed root CA,
//! server and client leaf certificates, and CRLs. It backs `doelpoort certs generate DIR` and the
//! integration tests, so that the gateway can be tried out and tested end to end without access
//! to a real PKIoverheid hierarchy.
//!
//! **Example and test use only, never production.** The root key is written to disk unencrypted
//! next to the certificates, there is no HSM, no intermediate CA, no revocation infrastructure
//! and no policy. Production deployments must use certificates from a real (PKIoverheid) CA.
//!
//! Choices:
//! - ECDSA P-256 with SHA-256 everywhere: small and fast, supported by every TLS stack we care
//!   about (rustls/webpki, OpenSSL, curl, browsers), and it is one of the algorithms PKIoverheid
//!   itself issues, so the examples resemble real certificates.
//! - The subject `serialNumber` attribute (OID 2.5.4.5) holds the organisation's 20-digit OIN
//!   (Organisatie-identificatienummer), because that is where PKIoverheid certificates carry it
//!   and where the gateway reads the caller's identity from.

mod example;

#[cfg(test)]
mod tests;

pub use example::{generate_example, ExampleParty, ExamplePki, OFFICER_P12_PASSWORD};

use std::fmt;
use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, ensure, Context};
use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, CrlNumber, ExtendedKeyUsage, KeyUsage,
    SubjectAlternativeName, SubjectKeyIdentifier,
};
use openssl::x509::{X509Builder, X509CrlBuilder, X509Name, X509NameRef, X509RevokedBuilder, X509};

/// Seconds in a day, for turning validity periods in days into unix timestamps.
const DAY: i64 = 86_400;

/// Certificates start being valid this long before "now", so that small clock differences
/// between the machine that generates them and the machines that use them do not matter.
const BACKDATE: i64 = 3_600;

/// What a leaf certificate may be used for (extended key usage).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// TLS server authentication (EKU serverAuth).
    Server,
    /// TLS client authentication (EKU clientAuth).
    Client,
    /// Both serverAuth and clientAuth.
    Both,
}

/// Everything needed to issue one leaf certificate.
#[derive(Debug, Clone)]
pub struct LeafSpec {
    /// Subject CN.
    pub common_name: String,
    /// Subject O.
    pub organisation: Option<String>,
    /// Subject serialNumber attribute (OID 2.5.4.5); holds a 20-digit Dutch OIN.
    pub serial_number: Option<String>,
    /// subjectAltName DNS names.
    pub dns_names: Vec<String>,
    /// subjectAltName IP addresses (v4 and v6).
    pub ip_addresses: Vec<IpAddr>,
    /// Extended key usage.
    pub usage: Usage,
    /// Start of validity, unix seconds.
    pub not_before: i64,
    /// End of validity, unix seconds.
    pub not_after: i64,
}

impl LeafSpec {
    /// A spec valid from one hour ago for `days` days, no SANs, no O, no serialNumber.
    pub fn new(common_name: impl Into<String>, usage: Usage, days: u32) -> Self {
        let not_before = unix_now() - BACKDATE;
        LeafSpec {
            common_name: common_name.into(),
            organisation: None,
            serial_number: None,
            dns_names: Vec::new(),
            ip_addresses: Vec::new(),
            usage,
            not_before,
            not_after: not_before + i64::from(days) * DAY,
        }
    }
}

/// A freshly issued leaf certificate with its private key.
#[derive(Clone)]
pub struct IssuedCertificate {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PKCS#8 PEM (unencrypted).
    pub key_pem: String,
    /// The certificate serial number, big-endian bytes.
    pub serial: Vec<u8>,
}

// Hand-written so that the private key never ends up in logs or panic messages.
impl fmt::Debug for IssuedCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedCertificate")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .field("serial", &hex_string(&self.serial))
            .finish()
    }
}

impl IssuedCertificate {
    /// Writes `<dir>/<stem>.crt` and `<dir>/<stem>.key` (key file mode 0600 on unix), creating
    /// `dir` if needed and overwriting existing files.
    pub fn write(&self, dir: &Path, stem: &str) -> anyhow::Result<()> {
        fs::create_dir_all(dir).with_context(|| format!("creating directory {}", dir.display()))?;
        let cert_path = dir.join(format!("{stem}.crt"));
        fs::write(&cert_path, &self.cert_pem)
            .with_context(|| format!("writing certificate {}", cert_path.display()))?;
        write_private(&dir.join(format!("{stem}.key")), &self.key_pem)
    }
}

/// A certificate authority: its certificate and private key.
#[derive(Debug)]
pub struct CertificateAuthority {
    cert: X509,
    key: PKey<Private>,
}

impl CertificateAuthority {
    /// Generates a self-signed root: C=NL, O=`organisation`, CN=`common_name`;
    /// basicConstraints CA:true (critical), keyUsage keyCertSign+cRLSign (critical),
    /// subjectKeyIdentifier; valid from one hour ago for `days` days.
    pub fn generate(common_name: &str, organisation: &str, days: u32) -> anyhow::Result<Self> {
        let key = generate_key().context("generating CA key")?;
        let name = build_name(organisation.into(), common_name, None)
            .context("building CA subject name")?;
        let not_before = unix_now() - BACKDATE;
        let not_after = not_before + i64::from(days) * DAY;

        let serial = random_serial().context("generating CA serial")?;
        let mut builder = new_cert_builder(&name, &name, &key, &serial, not_before, not_after)
            .context("preparing CA certificate")?;
        let extensions = (|| {
            let ctx = builder.x509v3_context(None, None);
            Ok::<_, openssl::error::ErrorStack>(vec![
                BasicConstraints::new().critical().ca().build()?,
                KeyUsage::new()
                    .critical()
                    .key_cert_sign()
                    .crl_sign()
                    .build()?,
                SubjectKeyIdentifier::new().build(&ctx)?,
            ])
        })()
        .context("building CA certificate extensions")?;
        for ext in extensions {
            builder
                .append_extension(ext)
                .context("adding CA certificate extension")?;
        }
        builder
            .sign(&key, MessageDigest::sha256())
            .context("self-signing CA certificate")?;
        Ok(CertificateAuthority {
            cert: builder.build(),
            key,
        })
    }

    /// Loads a CA certificate and its private key (PKCS#8 or traditional PEM) from disk and
    /// checks that they belong together.
    pub fn load(cert_pem_path: &Path, key_pem_path: &Path) -> anyhow::Result<Self> {
        let cert_pem = fs::read(cert_pem_path)
            .with_context(|| format!("reading CA certificate {}", cert_pem_path.display()))?;
        let cert = X509::from_pem(&cert_pem)
            .with_context(|| format!("parsing CA certificate {}", cert_pem_path.display()))?;
        let key_pem = fs::read(key_pem_path)
            .with_context(|| format!("reading CA key {}", key_pem_path.display()))?;
        let key = PKey::private_key_from_pem(&key_pem)
            .with_context(|| format!("parsing CA key {}", key_pem_path.display()))?;
        let cert_key = cert
            .public_key()
            .with_context(|| format!("reading public key of {}", cert_pem_path.display()))?;
        if !cert_key.public_eq(&key) {
            bail!(
                "CA key {} does not match CA certificate {}",
                key_pem_path.display(),
                cert_pem_path.display()
            );
        }
        Ok(CertificateAuthority { cert, key })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> String {
        // PEM output is ASCII; a lossy conversion can never actually lose anything.
        self.cert
            .to_pem()
            .map(|pem| String::from_utf8_lossy(&pem).into_owned())
            .unwrap_or_default()
    }

    /// The CA private key, PKCS#8 PEM (unencrypted).
    pub fn key_pem(&self) -> String {
        self.key
            .private_key_to_pem_pkcs8()
            .map(|pem| String::from_utf8_lossy(&pem).into_owned())
            .unwrap_or_default()
    }

    /// Issues a leaf certificate with a fresh P-256 key and a random 16-byte positive serial.
    /// Subject: C=NL, O, CN, serialNumber as given in `spec`.
    pub fn issue(&self, spec: &LeafSpec) -> anyhow::Result<IssuedCertificate> {
        let what = format!("leaf certificate {:?}", spec.common_name);
        ensure!(
            spec.not_after > spec.not_before,
            "{what}: not_after ({}) must be after not_before ({})",
            spec.not_after,
            spec.not_before
        );

        let key = generate_key().with_context(|| format!("{what}: generating key"))?;
        let subject = build_name(
            spec.organisation.as_deref(),
            &spec.common_name,
            spec.serial_number.as_deref(),
        )
        .with_context(|| format!("{what}: building subject name"))?;
        let serial = random_serial().with_context(|| format!("{what}: generating serial"))?;
        let mut builder = new_cert_builder(
            &subject,
            self.cert.subject_name(),
            &key,
            &serial,
            spec.not_before,
            spec.not_after,
        )
        .with_context(|| format!("{what}: preparing certificate"))?;

        let extensions = (|| {
            let mut eku = ExtendedKeyUsage::new();
            match spec.usage {
                Usage::Server => eku.server_auth(),
                Usage::Client => eku.client_auth(),
                Usage::Both => eku.server_auth().client_auth(),
            };
            let ctx = builder.x509v3_context(Some(&self.cert), None);
            let mut exts = vec![
                BasicConstraints::new().build()?,
                KeyUsage::new().critical().digital_signature().build()?,
                eku.build()?,
                SubjectKeyIdentifier::new().build(&ctx)?,
                // keyid when the CA has a subjectKeyIdentifier (ours always do), otherwise
                // issuer+serial, so CAs loaded from elsewhere still work.
                AuthorityKeyIdentifier::new()
                    .keyid(false)
                    .issuer(false)
                    .build(&ctx)?,
            ];
            if !spec.dns_names.is_empty() || !spec.ip_addresses.is_empty() {
                let mut san = SubjectAlternativeName::new();
                for dns in &spec.dns_names {
                    san.dns(dns);
                }
                for ip in &spec.ip_addresses {
                    san.ip(&ip.to_string());
                }
                exts.push(san.build(&ctx)?);
            }
            Ok::<_, openssl::error::ErrorStack>(exts)
        })()
        .with_context(|| format!("{what}: building extensions"))?;
        for ext in extensions {
            builder
                .append_extension(ext)
                .with_context(|| format!("{what}: adding extension"))?;
        }

        builder
            .sign(&self.key, MessageDigest::sha256())
            .with_context(|| format!("{what}: signing"))?;
        let cert = builder.build();

        let cert_pem = cert
            .to_pem()
            .with_context(|| format!("{what}: encoding certificate as PEM"))?;
        let key_pem = key
            .private_key_to_pem_pkcs8()
            .with_context(|| format!("{what}: encoding key as PKCS#8 PEM"))?;
        Ok(IssuedCertificate {
            cert_pem: String::from_utf8(cert_pem)
                .with_context(|| format!("{what}: certificate PEM is not UTF-8"))?,
            key_pem: String::from_utf8(key_pem)
                .with_context(|| format!("{what}: key PEM is not UTF-8"))?,
            serial,
        })
    }

    /// A CRL (PEM) signed by this CA that lists `revoked_serials` (big-endian serial bytes) as
    /// revoked now. lastUpdate = now - 60 s, nextUpdate = now + `days` days.
    ///
    /// The CRL is v2 and carries a CRL number (the current unix time, so regenerated CRLs
    /// always get a higher number) and an authorityKeyIdentifier: rustls-webpki rejects CRLs
    /// without a CRL number, and the openssl crate's `X509CrlBuilder` insists on both.
    pub fn crl_pem(&self, revoked_serials: &[Vec<u8>], days: u32) -> anyhow::Result<String> {
        let now = unix_now();
        let this_update = Asn1Time::from_unix(now - 60).context("CRL: encoding lastUpdate")?;
        let next_update =
            Asn1Time::from_unix(now + i64::from(days) * DAY).context("CRL: encoding nextUpdate")?;
        let revocation_date = Asn1Time::from_unix(now).context("CRL: encoding revocation date")?;

        let mut builder = X509CrlBuilder::new().context("CRL: creating builder")?;
        builder
            .set_issuer_name(self.cert.subject_name())
            .context("CRL: setting issuer")?;
        builder
            .set_last_update(&this_update)
            .context("CRL: setting lastUpdate")?;
        builder
            .set_next_update(&next_update)
            .context("CRL: setting nextUpdate")?;

        // The extension builders need an X509v3 context whose issuer is this CA; the subject
        // certificate of that context is irrelevant for authorityKeyIdentifier.
        let dummy = X509Builder::new().context("CRL: creating extension context")?;
        let aki = AuthorityKeyIdentifier::new()
            .keyid(false)
            .issuer(false)
            .build(&dummy.x509v3_context(Some(&self.cert), None))
            .context("CRL: building authorityKeyIdentifier")?;
        builder
            .append_extension(aki)
            .context("CRL: adding authorityKeyIdentifier")?;
        // CrlNumber::new panics outside 0..2^159; a non-negative unix time is far inside it.
        let crl_number = BigNum::from_dec_str(&now.max(0).to_string())
            .and_then(CrlNumber::new)
            .and_then(CrlNumber::build)
            .context("CRL: building CRL number")?;
        builder
            .append_extension(crl_number)
            .context("CRL: adding CRL number")?;

        for serial in revoked_serials {
            let what = format!("CRL: revoking serial {}", hex_string(serial));
            let serial_int: Asn1Integer = BigNum::from_slice(serial)
                .and_then(|bn| bn.to_asn1_integer())
                .with_context(|| format!("{what}: encoding serial"))?;
            let mut revoked = X509RevokedBuilder::new().with_context(|| what.clone())?;
            revoked
                .set_serial_number(&serial_int)
                .with_context(|| what.clone())?;
            revoked
                .set_revocation_date(&revocation_date)
                .with_context(|| what.clone())?;
            builder
                .add_revoked(revoked.build())
                .with_context(|| what.clone())?;
        }
        builder.sort().context("CRL: sorting entries")?;
        builder
            .sign(&self.key, MessageDigest::sha256())
            .context("CRL: signing")?;
        let crl = builder.build().context("CRL: finishing")?;
        let pem = crl.to_pem().context("CRL: encoding as PEM")?;
        String::from_utf8(pem).context("CRL: PEM is not UTF-8")
    }
}

/// Writes a private key file; mode 0600 on unix, also when the file already existed.
fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    write_private_bytes(path, contents.as_bytes())
}

/// Writes a file only its owner may read (mode 0600 on unix).
fn write_private_bytes(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("opening key file {}", path.display()))?;
    // `mode` only applies to newly created files; tighten an existing one before writing.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .with_context(|| format!("setting permissions on {}", path.display()))?;
    }
    file.write_all(contents)
        .with_context(|| format!("writing key file {}", path.display()))
}

/// A new ECDSA P-256 key.
fn generate_key() -> anyhow::Result<PKey<Private>> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    let ec = EcKey::generate(&group)?;
    Ok(PKey::from_ec_key(ec)?)
}

/// 16 random bytes, usable as a positive DER INTEGER without padding: the top bit is cleared
/// (positive) and the next one set (no leading zero byte that DER would strip), so the bytes
/// in the certificate are exactly the bytes returned here. That leaves 126 bits of randomness.
fn random_serial() -> anyhow::Result<Vec<u8>> {
    let mut serial = BigNum::new()?;
    serial.rand(128, MsbOption::MAYBE_ZERO, false)?;
    let mut bytes = serial.to_vec_padded(16)?;
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(bytes)
}

/// Builds C=NL, O (if any), CN, serialNumber (if any).
fn build_name(
    organisation: Option<&str>,
    common_name: &str,
    serial_number: Option<&str>,
) -> anyhow::Result<X509Name> {
    let mut name = X509Name::builder()?;
    name.append_entry_by_nid(Nid::COUNTRYNAME, "NL")?;
    if let Some(o) = organisation {
        name.append_entry_by_nid(Nid::ORGANIZATIONNAME, o)
            .with_context(|| format!("organisation {o:?}"))?;
    }
    name.append_entry_by_nid(Nid::COMMONNAME, common_name)
        .with_context(|| format!("common name {common_name:?}"))?;
    if let Some(sn) = serial_number {
        // X520SerialNumber is a PrintableString; OpenSSL picks that type for this attribute
        // and fails on characters outside it.
        name.append_entry_by_nid(Nid::SERIALNUMBER, sn)
            .with_context(|| format!("serialNumber {sn:?}"))?;
    }
    Ok(name.build())
}

/// A v3 certificate builder with serial, names, public key and validity set; the caller adds
/// extensions and signs.
fn new_cert_builder(
    subject: &X509NameRef,
    issuer: &X509NameRef,
    key: &PKey<Private>,
    serial: &[u8],
    not_before: i64,
    not_after: i64,
) -> anyhow::Result<X509Builder> {
    let mut builder = X509Builder::new()?;
    builder.set_version(2)?; // X.509 v3 (the version field is zero-based)
    let serial = BigNum::from_slice(serial)?.to_asn1_integer()?;
    builder.set_serial_number(&serial)?;
    builder.set_subject_name(subject)?;
    builder.set_issuer_name(issuer)?;
    builder.set_pubkey(key)?;
    let not_before = Asn1Time::from_unix(not_before)
        .with_context(|| format!("encoding not_before {not_before}"))?;
    builder.set_not_before(&not_before)?;
    let not_after = Asn1Time::from_unix(not_after)
        .with_context(|| format!("encoding not_after {not_after}"))?;
    builder.set_not_after(&not_after)?;
    Ok(builder)
}

/// Current time in unix seconds (0 if the clock is before 1970).
fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh EC P-256 key pair for signing JWTs (caller tokens in tests and the demo, the
/// gateway's assertions): the private key as PKCS#8 PEM, the public key as SPKI PEM.
pub fn signing_key_pair() -> anyhow::Result<(String, String)> {
    let key = generate_key()?;
    Ok((
        String::from_utf8(key.private_key_to_pem_pkcs8()?)?,
        String::from_utf8(key.public_key_to_pem()?)?,
    ))
}
