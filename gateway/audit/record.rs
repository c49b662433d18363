//! The audit record: its JSON shape (SPEC §5, Logboek Dataverwerkingen names), its canonical
//! form, and the hash that chains it to the record before it.
//!
//! A record is written as one line: the canonical JSON of every field except `hash`, with
//! `,"hash":"<hex>"` spliced in before the closing brace. *Canonical* is RFC 8785 (JCS) for the
//! values a record holds (strings, integers, arrays, objects): object members sorted by key,
//! no insignificant whitespace. `hash` is SHA-256 over the canonical bytes, which include
//! `prev_hash` — so changing, removing or reordering any earlier record breaks every later one.
//! A verifier needs nothing but this module's [`canonical_bytes`] (or any JCS implementation).
//!
//! The writer serialises [`Record`] directly: its fields (and those of [`Attributes`]) are
//! declared in sorted key order and optional members are omitted, so serde's compact output
//! *is* the canonical form. A test holds the writer to that.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// `prev_hash` of the very first record of a log.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audit record as written (without `hash`). Field order = canonical (sorted) order.
#[derive(Debug, Serialize)]
pub struct Record<'a> {
    pub attributes: Attributes<'a>,
    pub end_time: &'a str,
    /// The operation (`<partner>/<operation>`), or what the exchange got to before it ended.
    pub name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_span_id: Option<&'a str>,
    pub prev_hash: &'a str,
    pub seq: u64,
    /// This gateway hop's span; the partner sees it as its parent span (`traceparent`).
    pub span_id: &'a str,
    pub start_time: &'a str,
    /// Logboek Dataverwerkingen 1.0.0 §3.2.2.3: `Ok` for an allowed exchange, `Error` for a
    /// failure inside the gateway or a technical failure of the partner, `Unset` otherwise (a
    /// refusal caused by the caller's input, an intent whose outcome is not known yet). See
    /// [`status`].
    pub status: &'a str,
    pub trace_id: &'a str,
}

/// The record's `attributes`, declared in sorted key order.
#[derive(Debug, Serialize)]
pub struct Attributes<'a> {
    #[serde(rename = "doelpoort.actor", skip_serializing_if = "Option::is_none")]
    pub actor: Option<&'a str>,
    /// Who approved the exchange (four eyes), from the caller's signed token.
    #[serde(rename = "doelpoort.approvals", skip_serializing_if = "Vec::is_empty")]
    pub approvals: Vec<ApprovalRef<'a>>,
    /// The `jti` of the `Doelbinding-Assertion` the exchange carried (SPEC §2).
    #[serde(
        rename = "doelpoort.assertion_jti",
        skip_serializing_if = "Option::is_none"
    )]
    pub assertion_jti: Option<&'a str>,
    /// A change to the case register: what changed (ids and counts, never a BSN).
    #[serde(
        rename = "doelpoort.case_change",
        skip_serializing_if = "Option::is_none"
    )]
    pub case_change: Option<&'a str>,
    #[serde(rename = "doelpoort.case_id", skip_serializing_if = "Option::is_none")]
    pub case_id: Option<&'a str>,
    #[serde(rename = "doelpoort.consumer", skip_serializing_if = "Option::is_none")]
    pub consumer: Option<ConsumerRef<'a>>,
    #[serde(rename = "doelpoort.data_categories")]
    pub data_categories: Vec<&'a str>,
    #[serde(rename = "doelpoort.decision")]
    pub decision: &'a str,
    #[serde(rename = "doelpoort.fields_released")]
    pub fields_released: Vec<&'a str>,
    #[serde(rename = "doelpoort.fields_withheld")]
    pub fields_withheld: Vec<&'a str>,
    /// FSC logging's record fields (logging 1.0), when an FSC access token was used.
    #[serde(rename = "doelpoort.fsc", skip_serializing_if = "Option::is_none")]
    pub fsc: Option<FscRef<'a>>,
    /// The `Fsc-Error-Code` the partner's inway answered with.
    #[serde(
        rename = "doelpoort.fsc_error_code",
        skip_serializing_if = "Option::is_none"
    )]
    pub fsc_error_code: Option<&'a str>,
    #[serde(rename = "doelpoort.grant", skip_serializing_if = "Option::is_none")]
    pub grant: Option<&'a str>,
    /// The gateway instance whose chain this is (replicas each keep their own).
    #[serde(rename = "doelpoort.instance")]
    pub instance: &'a str,
    #[serde(
        rename = "doelpoort.legal_basis",
        skip_serializing_if = "Option::is_none"
    )]
    pub legal_basis: Option<&'a str>,
    #[serde(rename = "doelpoort.partner", skip_serializing_if = "Option::is_none")]
    pub partner: Option<&'a str>,
    /// The partner organisation's OIN (Logboek Dataverwerkingen has no field for the party
    /// called; until 2026-12 it was written in `dpl.core.foreign_operation.processor`).
    #[serde(
        rename = "doelpoort.partner_oin",
        skip_serializing_if = "Option::is_none"
    )]
    pub partner_oin: Option<&'a str>,
    #[serde(
        rename = "doelpoort.policy_version",
        skip_serializing_if = "Option::is_none"
    )]
    pub policy_version: Option<&'a str>,
    /// What the provider's inway reports it released and withheld (SPEC §10).
    #[serde(
        rename = "doelpoort.provider_fields_released",
        skip_serializing_if = "Option::is_none"
    )]
    pub provider_fields_released: Option<Vec<&'a str>>,
    #[serde(
        rename = "doelpoort.provider_fields_withheld",
        skip_serializing_if = "Option::is_none"
    )]
    pub provider_fields_withheld: Option<Vec<&'a str>>,
    #[serde(rename = "doelpoort.purpose", skip_serializing_if = "Option::is_none")]
    pub purpose: Option<&'a str>,
    #[serde(rename = "doelpoort.reason", skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'a str>,
    /// `intent` for the record written before a state-changing request is sent (absent on
    /// the outcome record, which every exchange has).
    #[serde(rename = "doelpoort.record", skip_serializing_if = "Option::is_none")]
    pub record: Option<&'a str>,
    /// For a `subject-mismatch`: the person the request was really about (keyed HMAC, like
    /// `dpl.core.data_subject_id`), so that person's art. 15 report shows the attempt too.
    #[serde(
        rename = "doelpoort.requested_subject_id",
        skip_serializing_if = "Option::is_none"
    )]
    pub requested_subject_id: Option<&'a str>,
    /// At an inway: the organisation the calling gateway asked for (the assertion's `sub`).
    #[serde(
        rename = "doelpoort.requester",
        skip_serializing_if = "Option::is_none"
    )]
    pub requester: Option<&'a str>,
    /// `inway` for a record an inway wrote (absent at an outway).
    #[serde(rename = "doelpoort.role", skip_serializing_if = "Option::is_none")]
    pub role: Option<&'a str>,
    /// The configured issuer whose signed token vouched for the actor and context.
    #[serde(
        rename = "doelpoort.token_issuer",
        skip_serializing_if = "Option::is_none"
    )]
    pub token_issuer: Option<&'a str>,
    #[serde(rename = "doelpoort.transaction_id")]
    pub transaction_id: &'a str,
    #[serde(
        rename = "doelpoort.upstream_status",
        skip_serializing_if = "Option::is_none"
    )]
    pub upstream_status: Option<u16>,
    #[serde(
        rename = "dpl.core.data_subject_id",
        skip_serializing_if = "Option::is_none"
    )]
    pub data_subject_id: Option<&'a str>,
    #[serde(
        rename = "dpl.core.data_subject_id_type",
        skip_serializing_if = "Option::is_none"
    )]
    pub data_subject_id_type: Option<&'a str>,
    /// The calling application (the consumer's configured URL), as §3.2.2.9 defines it: its
    /// presence says that `parent_span_id` is a span of another application.
    #[serde(
        rename = "dpl.core.foreign_operation.processor",
        skip_serializing_if = "Option::is_none"
    )]
    pub processor: Option<&'a str>,
    #[serde(
        rename = "dpl.core.processing_activity_id",
        skip_serializing_if = "Option::is_none"
    )]
    pub processing_activity_id: Option<&'a str>,
    /// On `Error` records (§3.3.2.3): the problem's fixed title, never a partner's text.
    #[serde(rename = "exception.message", skip_serializing_if = "Option::is_none")]
    pub exception_message: Option<&'a str>,
    /// On `Error` records: the problem code, e.g. `upstream-timeout`.
    #[serde(rename = "exception.type", skip_serializing_if = "Option::is_none")]
    pub exception_type: Option<&'a str>,
}

/// The Logboek Dataverwerkingen status of a record (1.0.0 §3.2.2.3): `Error` only for a fault
/// inside the gateway or a technical failure on the way to the partner; a refusal because of
/// what the caller sent (or a partner's own refusal of it) is `Unset`, like an intent.
pub fn status(intent: bool, decision: &str, reason: Option<&str>) -> &'static str {
    match (intent, decision, reason) {
        (true, ..) => "Unset",
        (false, "allow", _) => "Ok",
        (false, "error", Some("partner-rejected")) => "Unset",
        (false, "error", _) => "Error",
        _ => "Unset",
    }
}

/// One entry of `doelpoort.approvals` (members in canonical order).
#[derive(Debug, Serialize)]
pub struct ApprovalRef<'a> {
    pub by: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'a str>,
}

/// `doelpoort.fsc`: FSC logging's record (members in canonical order).
#[derive(Debug, Serialize)]
pub struct FscRef<'a> {
    pub destination: FscDestination<'a>,
    pub direction: &'a str,
    pub grant_hash: &'a str,
    pub service_name: &'a str,
    pub source: FscSource<'a>,
}

impl<'a> FscRef<'a> {
    pub fn of(log: &'a crate::fsc::TransactionLog) -> Self {
        Self {
            destination: FscDestination {
                service_peer_id: &log.destination,
                kind: "DESTINATION_TYPE_DESTINATION",
            },
            direction: log.direction.as_str(),
            grant_hash: &log.grant_hash,
            service_name: &log.service,
            source: FscSource {
                outway_peer_id: &log.source,
                kind: "SOURCE_TYPE_SOURCE",
            },
        }
    }
}

#[derive(Debug, Serialize)]
pub struct FscDestination<'a> {
    pub service_peer_id: &'a str,
    #[serde(rename = "type")]
    pub kind: &'a str,
}

#[derive(Debug, Serialize)]
pub struct FscSource<'a> {
    pub outway_peer_id: &'a str,
    #[serde(rename = "type")]
    pub kind: &'a str,
}

/// `doelpoort.consumer`: which organisation called (configured id, name and OIN).
#[derive(Debug, Serialize, Deserialize, Clone, Default)]
pub struct ConsumerRef<'a> {
    pub id: &'a str,
    pub name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oin: Option<&'a str>,
}

/// Serialises `record` canonically into `out` and appends the hash member and a newline.
/// Returns the record's hash (hex).
pub fn write_line(record: &Record<'_>, out: &mut Vec<u8>) -> String {
    let start = out.len();
    // Serialising plain strings, integers and vectors into a Vec cannot fail.
    serde_json::to_writer(&mut *out, record).expect("an audit record serialises");
    let hash = hex::encode(Sha256::digest(&out[start..]));
    out.pop(); // the closing brace
    out.extend_from_slice(b",\"hash\":\"");
    out.extend_from_slice(hash.as_bytes());
    out.extend_from_slice(b"\"}\n");
    hash
}

pub use crate::canonical::canonical_bytes;

/// A record as read back from a segment, checked against its own hash.
#[derive(Debug, Clone)]
pub struct StoredRecord {
    pub seq: u64,
    pub prev_hash: String,
    pub hash: String,
    /// Whether `hash` is the SHA-256 of the canonical record (without `hash`).
    pub hash_matches: bool,
    /// Whether the line is byte for byte what the writer writes (canonical form, `hash`
    /// last). A line can hash correctly yet not be canonical — reformatted, or with a
    /// duplicate member that a JSON reader taking the first value would see differently.
    pub canonical: bool,
    pub value: Value,
}

/// Why a line is not a record at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineError {
    NotJson(String),
    MissingField(&'static str),
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotJson(e) => write!(f, "not a JSON record ({e})"),
            Self::MissingField(name) => write!(f, "the record has no valid `{name}`"),
        }
    }
}

/// Parses one line (without its newline) and recomputes its hash.
pub fn parse_line(line: &[u8]) -> Result<StoredRecord, LineError> {
    let mut value: Value =
        serde_json::from_slice(line).map_err(|e| LineError::NotJson(e.to_string()))?;
    let object = value
        .as_object_mut()
        .ok_or(LineError::NotJson("not an object".into()))?;
    let hash = match object.remove("hash") {
        Some(Value::String(h)) => h,
        _ => return Err(LineError::MissingField("hash")),
    };
    let seq = object
        .get("seq")
        .and_then(Value::as_u64)
        .ok_or(LineError::MissingField("seq"))?;
    let prev_hash = object
        .get("prev_hash")
        .and_then(Value::as_str)
        .ok_or(LineError::MissingField("prev_hash"))?
        .to_string();
    let mut expected = Vec::with_capacity(line.len());
    canonical_bytes(&value, &mut expected);
    let hash_matches = hex::encode(Sha256::digest(&expected)) == hash;
    // What the writer would have written: the canonical bytes with the hash spliced in.
    expected.pop();
    expected.extend_from_slice(b",\"hash\":\"");
    expected.extend_from_slice(hash.as_bytes());
    expected.extend_from_slice(b"\"}");
    let canonical = expected == line;
    Ok(StoredRecord {
        seq,
        prev_hash,
        hash,
        hash_matches,
        canonical,
        value,
    })
}

impl StoredRecord {
    /// An attribute as a string (`None` when absent or not a string).
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.value.get("attributes")?.get(name)?.as_str()
    }

    /// Whether this is an intent record (written before a state-changing request is sent;
    /// see [`crate::exchange::RecordKind`]) rather than an exchange's outcome.
    pub fn is_intent(&self) -> bool {
        self.attribute("doelpoort.record") == Some("intent")
    }

    pub fn attribute_list(&self, name: &str) -> Vec<&str> {
        self.value
            .get("attributes")
            .and_then(|a| a.get(name))
            .and_then(Value::as_array)
            .map(|items| items.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    }

    pub fn field(&self, name: &str) -> Option<&str> {
        self.value.get(name)?.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample<'a>(prev: &'a str, seq: u64) -> Record<'a> {
        Record {
            attributes: Attributes {
                actor: Some("medewerker-17"),
                approvals: vec![ApprovalRef {
                    by: "teamleider-3",
                    role: Some("teamleider"),
                }],
                assertion_jti: Some("0f8fad5b-d9cb-469f-a165-70867728950e"),
                fsc: Some(FscRef {
                    destination: FscDestination {
                        service_peer_id: "00000001999990011000",
                        kind: "DESTINATION_TYPE_DESTINATION",
                    },
                    direction: "DIRECTION_OUTGOING",
                    grant_hash: "$1$3$abc",
                    service_name: "uwv",
                    source: FscSource {
                        outway_peer_id: "00000001999990000000",
                        kind: "SOURCE_TYPE_SOURCE",
                    },
                }),
                fsc_error_code: Some("ERROR_CODE_SERVICE_UNREACHABLE"),
                provider_fields_released: Some(vec!["/uitkeringen/*/soort"]),
                provider_fields_withheld: Some(vec![]),
                requester: Some("00000001999990001000"),
                role: Some("inway"),
                case_change: None,
                case_id: Some("casus-2026-001"),
                consumer: Some(ConsumerRef {
                    id: "wijkteam-rotterdam",
                    name: "Gemeente Rotterdam — wijkteams",
                    oin: Some("00000001999990001000"),
                }),
                data_categories: vec!["financial"],
                decision: "allow",
                fields_released: vec!["/uitkeringen/0/soort", ""],
                fields_withheld: vec!["/uitkeringen/0/reden"],
                grant: Some("g"),
                instance: "gw-1",
                legal_basis: Some("AVG art. 6(1)(e); Wmo 2015 \"Wams\""),
                partner: Some("uwv"),
                partner_oin: Some("00000001999990011000"),
                policy_version: Some("abc"),
                purpose: Some("wams-onderzoek"),
                reason: None,
                record: None,
                requested_subject_id: None,
                token_issuer: Some("idp"),
                transaction_id: "0190-…",
                upstream_status: Some(200),
                data_subject_id: Some("ff"),
                data_subject_id_type: Some("BSN"),
                processor: Some("https://wijkteam.example/"),
                processing_activity_id: Some("https://register.example/x"),
                // Only on Error records; here to hold the sorted order of every member.
                exception_message: Some("Upstream timeout"),
                exception_type: Some("upstream-timeout"),
            },
            end_time: "2026-11-24T10:00:00.000200Z",
            name: "uwv/inkomen",
            parent_span_id: None,
            prev_hash: prev,
            seq,
            span_id: "0102030405060708",
            start_time: "2026-11-24T10:00:00.000100Z",
            status: "Ok",
            trace_id: "0102030405060708090a0b0c0d0e0f10",
        }
    }

    #[test]
    fn the_written_line_is_canonical_and_verifies() {
        let mut out = Vec::new();
        let hash = write_line(&sample(GENESIS_HASH, 1), &mut out);
        assert_eq!(out.last(), Some(&b'\n'));
        let stored = parse_line(&out[..out.len() - 1]).unwrap();
        assert!(
            stored.hash_matches,
            "writer output must equal the canonical form"
        );
        assert!(stored.canonical);
        assert_eq!(stored.hash, hash);
        assert_eq!(stored.seq, 1);
        assert_eq!(stored.prev_hash, GENESIS_HASH);
        // The canonical form of what was written (minus hash) is byte-identical to it.
        let mut canonical = Vec::new();
        canonical_bytes(&stored.value, &mut canonical);
        let written = std::str::from_utf8(&out).unwrap();
        let without_hash = format!("{}}}", &written[..written.find(",\"hash\"").unwrap()]);
        assert_eq!(std::str::from_utf8(&canonical).unwrap(), without_hash);
    }

    #[test]
    fn any_change_breaks_the_hash() {
        let mut out = Vec::new();
        write_line(&sample(GENESIS_HASH, 1), &mut out);
        let text = String::from_utf8(out).unwrap();
        for (from, to) in [
            ("\"allow\"", "\"deny\""),
            ("/uitkeringen/0/soort", "/uitkeringen/0/bedrag"),
            ("\"seq\":1", "\"seq\":2"),
        ] {
            let edited = text.replacen(from, to, 1);
            let stored = parse_line(edited.trim_end().as_bytes()).unwrap();
            assert!(!stored.hash_matches, "{from} → {to} went unnoticed");
        }
        // Reformatting keeps the canonical hash, but the line is no longer what was written.
        let value: Value = serde_json::from_str(text.trim_end()).unwrap();
        let pretty = serde_json::to_string_pretty(&value).unwrap();
        let stored = parse_line(pretty.as_bytes()).unwrap();
        assert!(stored.hash_matches && !stored.canonical);
        // A duplicate member in front: serde keeps the last value, so the hash matches, but a
        // reader that takes the first would see "deny".
        let doubled = text.replacen(
            "\"doelpoort.decision\":\"allow\"",
            "\"doelpoort.decision\":\"deny\",\"doelpoort.decision\":\"allow\"",
            1,
        );
        let stored = parse_line(doubled.trim_end().as_bytes()).unwrap();
        assert!(stored.hash_matches && !stored.canonical);
    }

    #[test]
    fn canonical_form_sorts_members_by_utf16() {
        let value: Value =
            serde_json::from_str(r#"{"b":1,"a":[{"d":"x","c":null}],"é":true}"#).unwrap();
        let mut out = Vec::new();
        canonical_bytes(&value, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"a":[{"c":null,"d":"x"}],"b":1,"é":true}"#
        );
    }

    #[test]
    fn lines_that_are_not_records_are_named() {
        assert!(matches!(
            parse_line(b"{\"seq\":1"),
            Err(LineError::NotJson(_))
        ));
        assert_eq!(
            parse_line(br#"{"seq":1,"prev_hash":"0"}"#).unwrap_err(),
            LineError::MissingField("hash")
        );
    }
}
