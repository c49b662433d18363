//! The example PKI behind `doelpoort certs generate`: a root CA, the gateway's, consumers' and
//! partners' certificates, signing keys for tokens and assertions, and a README that says
//! what each file is. Example and test use only, never production.

use super::{
    signing_key_pair, unix_now, write_private, write_private_bytes, CertificateAuthority, LeafSpec,
    Usage,
};
use anyhow::{ensure, Context};
use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::time::UNIX_EPOCH;

/// Subject / issuer name of the example root CA.
const EXAMPLE_CA_CN: &str = "Doelpoort Voorbeeld Root CA";
/// Organisation of the example root CA; the name itself warns against production use.
const EXAMPLE_CA_O: &str = "Doelpoort voorbeeld-PKI (niet voor productie)";
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
    /// Privacy officers: one client certificate each for the console, also as PKCS#12 for a
    /// browser (password [`OFFICER_P12_PASSWORD`]).
    pub officers: &'a [ExampleParty],
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
/// - `officers/<officer.id>.crt/.key/.p12`: one console client certificate per officer
/// - `README.md`: what the files are, when they were made and expire, how to regenerate
///
/// Every leaf has subject C=NL, O=organisation, CN=id, serialNumber=OIN.
/// Returns the earliest leaf expiry (unix seconds).
pub fn generate_example(dir: &Path, pki: &ExamplePki<'_>) -> anyhow::Result<i64> {
    // Ids become file names: refuse anything that could escape the target directory.
    for party in std::iter::once(pki.gateway)
        .chain(pki.consumers)
        .chain(pki.partners)
        .chain(pki.officers)
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
    let officers_dir = dir.join("officers");
    for officer in pki.officers {
        issue(officer, Usage::Client, &officers_dir, &officer.id)?;
        write_pkcs12(&officers_dir, &officer.id)?;
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
    // The case register's household key: an example secret, shared by demo replicas.
    write_private(
        &dir.join("household.key"),
        &hex::encode(crate::secrets::random_secret()?),
    )?;

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
    for o in pki.officers {
        s.push_str(&format!(
            "| `officers/{id}.crt`, `officers/{id}.key`, `officers/{id}.p12` | Console client certificate for officer {org}; the `.p12` (password `{OFFICER_P12_PASSWORD}`) imports into a browser |\n",
            id = o.id,
            org = o.organisation,
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
    s.push_str(
        "| `household.key` | secret the case register keeps household members' BSNs under \
         (keyed HMACs); an example, shared by demo replicas |\n",
    );
    s.push_str("\nRegenerate (overwrites everything in this directory):\n\n");
    s.push_str("```sh\ndoelpoort certs generate <dir>\n```\n");
    s
}
/// The password of the example officers' PKCS#12 files (example only, like everything here).
pub const OFFICER_P12_PASSWORD: &str = "doelpoort-voorbeeld";

/// `<dir>/<stem>.p12` from `<stem>.crt` and `<stem>.key`: what a browser imports.
fn write_pkcs12(dir: &Path, stem: &str) -> anyhow::Result<()> {
    use openssl::{pkcs12::Pkcs12, pkey::PKey, x509::X509};
    let cert = X509::from_pem(&fs::read(dir.join(format!("{stem}.crt")))?)?;
    let key = PKey::private_key_from_pem(&fs::read(dir.join(format!("{stem}.key")))?)?;
    let der = Pkcs12::builder()
        .name(stem)
        .pkey(&key)
        .cert(&cert)
        .build2(OFFICER_P12_PASSWORD)
        .context("building the officer's PKCS#12 file")?
        .to_der()?;
    write_private_bytes(&dir.join(format!("{stem}.p12")), &der)
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
