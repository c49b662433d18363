//! Phase *identify*: who is calling, as an organisation.
//!
//! The TLS layer (`tls`) hands over a [`PeerIdentity`] read from the verified client
//! certificate. This module maps it to a configured [`Consumer`]: first by the certificate's
//! SHA-256 fingerprint (explicit pinning wins), then by the OIN in the subject serialNumber
//! (how PKIoverheid certificates carry it). A certificate that chains to a trusted CA but maps
//! to no consumer is *not* refused at the TLS level: the exchange is answered with
//! `unknown-consumer` so the refusal is visible, counted and audited.

use crate::id::Id;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// An organisation identification number (OIN): exactly 20 ASCII digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Oin(String);

impl Oin {
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.len() == 20 && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(s.to_string()))
        } else {
            Err(format!(
                "an OIN is exactly 20 digits, got {} characters",
                s.chars().count()
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Oin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// SHA-256 over the DER encoding of a certificate (the `x5t#S256` of RFC 8705, before
/// base64url encoding).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    pub fn of_der(der: &[u8]) -> Self {
        use sha2::{Digest, Sha256};
        Self(Sha256::digest(der).into())
    }

    /// Accepts 64 hex digits, optionally separated by colons (as `openssl x509 -fingerprint`
    /// prints them).
    pub fn parse_hex(s: &str) -> Result<Self, String> {
        let compact: String = s.chars().filter(|c| *c != ':').collect();
        let bytes = hex::decode(&compact)
            .map_err(|_| "a fingerprint is 64 hexadecimal digits (SHA-256)".to_string())?;
        let array: [u8; 32] = bytes
            .try_into()
            .map_err(|_| "a fingerprint is 64 hexadecimal digits (SHA-256)".to_string())?;
        Ok(Self(array))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({})", self.to_hex())
    }
}

/// What a verified client certificate says about the caller. Built once per connection.
#[derive(Debug, Clone)]
pub struct PeerIdentity {
    pub oin: Option<Oin>,
    pub organisation: Option<String>,
    pub common_name: Option<String>,
    pub fingerprint: Fingerprint,
}

/// A configured calling organisation (a municipal backend system).
#[derive(Debug, Clone)]
pub struct Consumer {
    /// Stable id used in policies, metrics and audit records, e.g. `wijkteam-rotterdam`.
    pub id: Id,
    /// Display name, e.g. "Gemeente Rotterdam — wijkteams".
    pub name: String,
    pub oin: Option<Oin>,
    /// This consumer's key for the `pseudonym` transform (derived from the gateway secret).
    pub pseudonym_key: [u8; 32],
    /// Whether its requests carry a signed caller token, and whose.
    pub token: TokenMode,
    pub token_issuers: Vec<String>,
    /// The calling application's URL (`dpl.core.foreign_operation.processor`).
    pub processor: Option<String>,
    /// May keep its own cases in the case register.
    pub case_admin: bool,
}

/// What is known about a connection once its handshake is done: the certificate's
/// fingerprint (tokens are bound to it) and the consumer it maps to, if any.
#[derive(Debug, Clone, Default)]
pub struct Connection {
    pub consumer: Option<std::sync::Arc<Consumer>>,
    pub fingerprint: Option<Fingerprint>,
}

/// Per consumer: may, must or does not present `Authorization: Bearer <JWT>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TokenMode {
    /// A token is ignored (it is never forwarded either).
    #[default]
    Off,
    /// A token, when present, is verified like a required one.
    Optional,
    /// Every request needs a valid token.
    Required,
}

#[cfg(test)]
impl Consumer {
    /// A consumer as unit tests need one: no token, an all-zero pseudonym key.
    pub(crate) fn example(id: &str, name: &str, oin: Option<Oin>) -> Self {
        Self {
            id: Id::parse(id).expect("a valid id"),
            name: name.into(),
            oin,
            pseudonym_key: [0; 32],
            token: TokenMode::Off,
            token_issuers: Vec::new(),
            processor: None,
            case_admin: false,
        }
    }
}

/// Lookup table from certificate facts to consumers; immutable once built.
#[derive(Debug, Default)]
pub struct ConsumerDirectory {
    by_fingerprint: HashMap<Fingerprint, Arc<Consumer>>,
    by_oin: HashMap<Oin, Arc<Consumer>>,
}

impl ConsumerDirectory {
    /// Registers a consumer under its OIN and pinned fingerprints. Duplicates are rejected by
    /// configuration validation before this is called.
    pub fn insert(&mut self, consumer: Consumer, fingerprints: &[Fingerprint]) {
        let consumer = Arc::new(consumer);
        if let Some(oin) = &consumer.oin {
            self.by_oin.insert(oin.clone(), consumer.clone());
        }
        for fp in fingerprints {
            self.by_fingerprint.insert(*fp, consumer.clone());
        }
    }

    /// The consumer with this configured id (a search over all of them: for tests; the data
    /// path identifies by certificate).
    #[cfg(test)]
    pub(crate) fn by_id(&self, id: &str) -> Option<Arc<Consumer>> {
        self.by_oin
            .values()
            .chain(self.by_fingerprint.values())
            .find(|c| c.id == id)
            .cloned()
    }

    /// The consumer this peer is, if any.
    pub fn identify(&self, peer: &PeerIdentity) -> Option<Arc<Consumer>> {
        if let Some(consumer) = self.by_fingerprint.get(&peer.fingerprint) {
            return Some(consumer.clone());
        }
        peer.oin
            .as_ref()
            .and_then(|oin| self.by_oin.get(oin).cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(oin: Option<&str>, fp: u8) -> PeerIdentity {
        PeerIdentity {
            oin: oin.map(|o| Oin::parse(o).unwrap()),
            organisation: None,
            common_name: None,
            fingerprint: Fingerprint([fp; 32]),
        }
    }

    #[test]
    fn oin_is_twenty_digits() {
        assert!(Oin::parse("00000001999990001000").is_ok());
        assert!(Oin::parse("0000000199999000100").is_err());
        assert!(Oin::parse("0000000199999000100a").is_err());
        assert!(Oin::parse("").is_err());
    }

    #[test]
    fn fingerprint_parses_colon_form() {
        let hex64 = "ab".repeat(32);
        let colons = vec!["AB"; 32].join(":");
        assert_eq!(
            Fingerprint::parse_hex(&hex64).unwrap(),
            Fingerprint::parse_hex(&colons).unwrap()
        );
        assert!(Fingerprint::parse_hex("abcd").is_err());
    }

    #[test]
    fn identifies_by_fingerprint_before_oin() {
        let mut dir = ConsumerDirectory::default();
        dir.insert(
            Consumer::example(
                "by-oin",
                "A",
                Some(Oin::parse("00000001999990001000").unwrap()),
            ),
            &[],
        );
        dir.insert(
            Consumer::example("pinned", "B", None),
            &[Fingerprint([7; 32])],
        );
        assert_eq!(
            dir.identify(&peer(Some("00000001999990001000"), 1))
                .unwrap()
                .id,
            "by-oin"
        );
        assert_eq!(
            dir.identify(&peer(Some("00000001999990001000"), 7))
                .unwrap()
                .id,
            "pinned"
        );
        assert!(dir
            .identify(&peer(Some("00000001999990099000"), 1))
            .is_none());
        assert!(dir.identify(&peer(None, 1)).is_none());
    }
}
