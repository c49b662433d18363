//! The privacy officers' console (`console:`): its own listener, with mTLS, and the officers
//! whose certificates may open it.
//!
//! The console shows personal data (the art. 15 report), so a certificate that merely chains
//! to the console's trust anchors is not enough: the officer's certificate must also be listed
//! here by fingerprint. Consumers' client certificates often come from the same CA.

use super::raw::RawConsole;
use super::validate::Validator;
use super::ListenerTls;
use crate::id::Id;
use crate::identity::Fingerprint;
use std::collections::HashSet;
use std::net::SocketAddr;

/// The console's listener and its officers.
#[derive(Debug, Clone)]
pub struct ConsoleSettings {
    pub listen: SocketAddr,
    /// The listener's certificate, and the trust anchors of officers' certificates.
    pub tls: ListenerTls,
    pub officers: Vec<Officer>,
}

/// A privacy officer (or auditor, or case worker) who may open the console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Officer {
    /// Recorded as the actor of the console's own audit records (art. 15 look-ups).
    pub id: Id,
    pub name: String,
    pub fingerprints: Vec<Fingerprint>,
}

impl Validator<'_> {
    pub(super) fn console(&mut self, raw: &RawConsole) -> ConsoleSettings {
        let listen = self
            .socket_addr(&raw.listen)
            .unwrap_or(([127, 0, 0, 1], 8445).into());
        let tls = self.listener_tls(&raw.tls);
        if raw.officers.is_empty() {
            self.error(
                &raw.listen.referenced,
                "the console needs at least one officer under 'officers' (id, name, fingerprints)",
            );
        }
        let mut ids = HashSet::new();
        let mut seen = HashSet::new();
        let mut officers = Vec::new();
        for o in &raw.officers {
            let id = match Id::parse(&o.id.value) {
                Ok(id) => id,
                Err(_) => {
                    self.error(&o.id.referenced, format!("an officer id is {}", Id::FORM));
                    continue;
                }
            };
            if !ids.insert(o.id.value.clone()) {
                self.error(
                    &o.id.referenced,
                    format!("officer '{}' is listed twice", o.id.value),
                );
            }
            if o.fingerprints.is_empty() {
                self.error(
                    &o.id.referenced,
                    format!(
                        "officer '{}' needs at least one certificate fingerprint (SHA-256, hex) under 'fingerprints'",
                        o.id.value
                    ),
                );
            }
            let mut fingerprints = Vec::new();
            for f in &o.fingerprints {
                match Fingerprint::parse_hex(&f.value) {
                    Ok(fp) if seen.insert(fp) => fingerprints.push(fp),
                    Ok(_) => self.error(
                        &f.referenced,
                        "this fingerprint is already listed for another officer",
                    ),
                    Err(e) => self.error(&f.referenced, e),
                }
            }
            officers.push(Officer {
                id,
                name: o.name.value.clone(),
                fingerprints,
            });
        }
        ConsoleSettings {
            listen,
            tls,
            officers,
        }
    }
}
