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

use std::fmt;
use std::fs;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
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

/// Subject / issuer name of the example root CA.
const EXAMPLE_CA_CN: &str = "Doelpoort Voorbeeld Root CA";
/// Organisation of the example root CA; the name itself warns against production use.
const EXAMPLE_CA_O: &str = "Doelpoort voorbeeld-PKI (niet voor productie)";

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

/// One party in the example PKI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExampleParty {
    /// Identifier, used as certificate CN and as file name stem.
    pub id: String,
    /// Organisation name (subject O).
    pub organisation: String,
    /// 20-digit OIN (subject serialNumber).
    pub oin: String,
}

/// Who gets which certificate in the example PKI.
#[derive(Debug, Clone, Copy)]
pub struct ExamplePki<'a> {
    /// The gateway operator (a municipality).
    pub gateway: &'a ExampleParty,
    /// Consumers: one client certificate each.
    pub consumers: &'a [ExampleParty],
    /// Partners (upstream services): one server certificate each.
    pub partners: &'a [ExampleParty],
    /// Leaf validity in days; the root is valid twice as long.
    pub days: u32,
}

/// Writes a complete example PKI into `dir` (creating it; overwriting existing files):
///
/// - `ca.crt`, `ca.key`: root "Doelpoort Voorbeeld Root CA", valid `days * 2` days
/// - `gateway.crt/.key`: gateway server certificate (SAN localhost, 127.0.0.1, ::1; serverAuth)
/// - `gateway-client.crt/.key`: client certificate the gateway presents to partners (clientAuth)
/// - `clients/<consumer.id>.crt/.key`: one client certificate per consumer (clientAuth)
/// - `partners/<partner.id>.crt/.key`: one server certificate per partner (SAN localhost,
///   127.0.0.1, ::1; serverAuth)
/// - `README.md`: what the files are, when they were made and expire, how to regenerate
///
/// Every leaf has subject C=NL, O=organisation, CN=id, serialNumber=OIN.
/// Returns the earliest leaf expiry (unix seconds).
pub fn generate_example(dir: &Path, pki: &ExamplePki<'_>) -> anyhow::Result<i64> {
    // Ids become file names: refuse anything that could escape the target directory.
    for party in std::iter::once(pki.gateway)
        .chain(pki.consumers)
        .chain(pki.partners)
    {
        check_file_stem(&party.id)?;
    }

    fs::create_dir_all(dir).with_context(|| format!("creating directory {}", dir.display()))?;
    let ca =
        CertificateAuthority::generate(EXAMPLE_CA_CN, EXAMPLE_CA_O, pki.days.saturating_mul(2))
            .context("generating example root CA")?;
    let ca_crt = dir.join("ca.crt");
    fs::write(&ca_crt, ca.cert_pem()).with_context(|| format!("writing {}", ca_crt.display()))?;
    write_private(&dir.join("ca.key"), &ca.key_pem())?;

    let mut earliest_expiry = i64::MAX;
    let mut issue = |party: &ExampleParty, usage: Usage, out_dir: &Path, stem: &str| {
        let mut spec = LeafSpec::new(party.id.clone(), usage, pki.days);
        spec.organisation = Some(party.organisation.clone());
        spec.serial_number = Some(party.oin.clone());
        if usage == Usage::Server {
            spec.dns_names = vec!["localhost".to_owned()];
            spec.ip_addresses = vec![
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            ];
        }
        earliest_expiry = earliest_expiry.min(spec.not_after);
        ca.issue(&spec)
            .with_context(|| format!("issuing {stem} certificate"))?
            .write(out_dir, stem)
            .with_context(|| format!("writing {stem} certificate"))
    };

    issue(pki.gateway, Usage::Server, dir, "gateway")?;
    issue(pki.gateway, Usage::Client, dir, "gateway-client")?;
    let clients_dir = dir.join("clients");
    for consumer in pki.consumers {
        issue(consumer, Usage::Client, &clients_dir, &consumer.id)?;
    }
    let partners_dir = dir.join("partners");
    for partner in pki.partners {
        issue(partner, Usage::Server, &partners_dir, &partner.id)?;
    }
    if pki.consumers.is_empty() {
        fs::create_dir_all(&clients_dir)
            .with_context(|| format!("creating directory {}", clients_dir.display()))?;
    }
    if pki.partners.is_empty() {
        fs::create_dir_all(&partners_dir)
            .with_context(|| format!("creating directory {}", partners_dir.display()))?;
    }

    // Signing keys for the demo's caller tokens (an example identity provider) and for the
    // gateway's assertions to partners.
    let tokens_dir = dir.join("tokens");
    fs::create_dir_all(&tokens_dir)
        .with_context(|| format!("creating directory {}", tokens_dir.display()))?;
    let (private, public) = signing_key_pair()?;
    write_private(&tokens_dir.join("demo-idp.key"), &private)?;
    fs::write(tokens_dir.join("demo-idp.pub.pem"), public)?;
    let assertion_dir = dir.join("assertion");
    fs::create_dir_all(&assertion_dir)
        .with_context(|| format!("creating directory {}", assertion_dir.display()))?;
    let (private, _) = signing_key_pair()?;
    write_private(&assertion_dir.join("gateway-assertion.key"), &private)?;

    let readme_path = dir.join("README.md");
    fs::write(&readme_path, readme(pki, unix_now(), earliest_expiry))
        .with_context(|| format!("writing {}", readme_path.display()))?;
    Ok(earliest_expiry)
}

/// The generated README.md for an example PKI directory.
fn readme(pki: &ExamplePki<'_>, generated: i64, expires: i64) -> String {
    let mut s = String::new();
    s.push_str("# Doelpoort example PKI\n\n");
    s.push_str(
        "**Example only — never use these certificates or keys in production.** \
         The keys are unencrypted and the root CA key lies right next to the certificates.\n\n",
    );
    s.push_str(&format!("- Generated: {}\n", format_unix(generated)));
    s.push_str(&format!(
        "- Leaf certificates expire: {} ({} days after issue; the root CA lasts twice as long)\n\n",
        format_unix(expires),
        pki.days
    ));
    s.push_str("All keys are ECDSA P-256, all signatures SHA-256. Leaf subjects are ");
    s.push_str("C=NL, O=<organisation>, CN=<id>, serialNumber=<OIN>.\n\n");
    s.push_str("| File | What |\n|---|---|\n");
    s.push_str(&format!(
        "| `ca.crt`, `ca.key` | Root CA \"{EXAMPLE_CA_CN}\"; trust anchor for clients and partners |\n"
    ));
    s.push_str(&format!(
        "| `gateway.crt`, `gateway.key` | Gateway server certificate for `{}` (OIN {}); \
         SAN localhost, 127.0.0.1, ::1 |\n",
        pki.gateway.id, pki.gateway.oin
    ));
    s.push_str(
        "| `gateway-client.crt`, `gateway-client.key` | Client certificate the gateway presents \
         to partners (same subject) |\n",
    );
    for c in pki.consumers {
        s.push_str(&format!(
            "| `clients/{id}.crt`, `clients/{id}.key` | Client certificate for consumer {org} (OIN {oin}) |\n",
            id = c.id,
            org = c.organisation,
            oin = c.oin
        ));
    }
    for p in pki.partners {
        s.push_str(&format!(
            "| `partners/{id}.crt`, `partners/{id}.key` | Server certificate for partner {org} \
             (OIN {oin}); SAN localhost, 127.0.0.1, ::1 |\n",
            id = p.id,
            org = p.organisation,
            oin = p.oin
        ));
    }
    s.push_str(
        "| `tokens/demo-idp.key`, `tokens/demo-idp.pub.pem` | ES256 key pair of the demo identity \
         provider that signs caller tokens (`doelpoort token`) |\n",
    );
    s.push_str(
        "| `assertion/gateway-assertion.key` | ES256 key the gateway signs `Doelbinding-Assertion` \
         with; its public half is served at the admin listener's `/.well-known/jwks.json` |\n",
    );
    s.push_str("\nRegenerate (overwrites everything in this directory):\n\n");
    s.push_str("```sh\ndoelpoort certs generate <dir>\n```\n");
    s
}

/// Writes a private key file; mode 0600 on unix, also when the file already existed.
fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
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
    file.write_all(contents.as_bytes())
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

/// Ids are used as file names; allow only a conservative character set.
fn check_file_stem(id: &str) -> anyhow::Result<()> {
    let ok = !id.is_empty()
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    ensure!(
        ok,
        "party id {id:?} cannot be used as a file name (allowed: letters, digits, '-', '_', '.'; not starting with '.')"
    );
    Ok(())
}

/// Current time in unix seconds (0 if the clock is before 1970).
fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Unix seconds as RFC 3339 (UTC), or the raw number if out of range.
fn format_unix(t: i64) -> String {
    match u64::try_from(t) {
        Ok(secs) => {
            humantime::format_rfc3339_seconds(UNIX_EPOCH + std::time::Duration::from_secs(secs))
                .to_string()
        }
        Err(_) => format!("{t} (unix time)"),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::x509::X509Crl;
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
        let pki = ExamplePki {
            gateway: &gateway,
            consumers: &consumers,
            partners: &partners,
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
            days: 1,
        };
        assert!(generate_example(dir.path(), &pki).is_err());
        assert!(!dir.path().join("ca.key").exists());
    }
}
