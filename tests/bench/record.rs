//! The audit record's own cost: bytes, formatting and hashing per record, for the record an
//! allowed UWV income exchange leaves. A program that prints numbers, not a test.
//!
//! Run: `cargo bench --bench record`
//!
//! The UWV answers of about 2 KB (ten benefits, as in the side-by-side harness) and 100 KB are
//! minimised with the shipped grant `wijkteam-uwv-inkomen-onderzoek`; their released and
//! withheld pointers go into a record with every other attribute such an exchange has (the
//! side-by-side harness's record, member for member), as the writer states them (SPEC §5:
//! fields, array positions as `*`, each once; the minimiser lists them so).
//!
//! Reported: bytes per record line, and the writer's CPU per record for stating the field
//! lists, serialising (canonical JSON) and hashing (SHA-256), measured together (what the
//! writer does), the lists alone and the hash alone. Each measurement is bounded by count and
//! time, after a warm-up; the median of 5 runs is reported. docs/performance.md holds the
//! numbers of the record per element (until 2026-12) beside these.

#[path = "data.rs"]
mod data;
#[path = "inprocess.rs"]
mod inprocess;

use doelpoort::audit::record::{self, Attributes, ConsumerRef, Record};
use doelpoort::minimise::{self, transform, PointerList};
use doelpoort::policy::fields;
use sha2::Digest as _;
use std::borrow::Cow;
use std::hint::black_box;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The field lists as the writer states them.
fn lists<'a>(pointers: &'a PointerList, schema: &serde_json::Value) -> Vec<Cow<'a, str>> {
    fields::stated(pointers.iter(), Some(schema))
}

/// An allowed UWV income exchange's record (the side-by-side harness's, member for member).
fn record_of<'a>(released: &'a [Cow<'a, str>], withheld: &'a [Cow<'a, str>]) -> Record<'a> {
    Record {
        attributes: Attributes {
            actor: Some("medewerker-0042"),
            approvals: Vec::new(),
            assertion_jti: Some("5622020c-45a8-46ae-9cec-d4703ea8d1ee"),
            case_change: None,
            case_id: Some("casus-2026-0001"),
            consumer: Some(ConsumerRef {
                id: "wijkteam-rotterdam",
                name: "wijkteam-rotterdam",
                oin: Some("00000001999990001000"),
            }),
            data_categories: vec!["employment", "financial"],
            decision: "allow",
            fields_released: released.iter().map(|p| p.as_ref()).collect(),
            fields_withheld: withheld.iter().map(|p| p.as_ref()).collect(),
            fsc: None,
            fsc_error_code: None,
            grant: Some("wijkteam-uwv-inkomen-onderzoek"),
            instance: "sidebyside",
            legal_basis: Some("AVG art. 6(1)(e); Wet maatschappelijke ondersteuning 2015, nieuwe paragraaf 3a (wetsvoorstel Wams)"),
            partner: Some("uwv"),
            partner_oin: Some("00000001999990011000"),
            policy_version: Some("b50eff1bf5e8c684"),
            provider_fields_released: None,
            provider_fields_withheld: None,
            purpose: Some("wams-onderzoek"),
            reason: None,
            record: None,
            requested_subject_id: None,
            requester: None,
            role: None,
            token_issuer: None,
            transaction_id: "01a24757-8f30-754d-b27c-51074c01cedb",
            upstream_status: Some(200),
            data_subject_id: Some(
                "2b6e7ab7a8fe02673ba56d5cac121cd89729821bf61a9b2bb7ecdff1e0094257",
            ),
            data_subject_id_type: Some("BSN"),
            processor: None,
            processing_activity_id: Some(
                "https://register.voorbeeldstad.example/verwerkingen/wams-onderzoek",
            ),
            exception_message: None,
            exception_type: None,
        },
        end_time: "2026-12-05T17:54:10.356883Z",
        name: "uwv/inkomen",
        parent_span_id: None,
        prev_hash: "a51ac22261d64d860f1c196d07e7e9c252f1cb8a8a0a226dadba39fd6c314f56",
        seq: 2,
        span_id: "c07ffe901add4eec",
        start_time: "2026-12-05T17:54:10.352209Z",
        status: "Ok",
        trace_id: "e6d71e5d2a3542128c4933b295dbc98c",
    }
}

fn main() {
    let set = inprocess::shipped_policies();
    let (grant, schema) = inprocess::investigation_grant(&set);
    let json_schema = set
        .schemas
        .get("uwv-inkomen.response.schema.json")
        .expect("shipped schema");
    let key = [7u8; 32];
    let context = transform::Context {
        pseudonym_key: Some(&key),
        today: doelpoort::policy::today(),
    };
    let content_type = http::HeaderValue::from_static("application/json");
    println!(
        "# audit record cost, allowed exchange uwv/inkomen (grant wijkteam-uwv-inkomen-onderzoek)"
    );
    println!("| answer | values released + withheld | fields released + withheld | bytes/record | field list bytes | lists + format + hash µs | lists µs | hash µs |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for size in [2_000usize, 100_000] {
        let body = data::uwv_body(size);
        let minimised = minimise::minimise_response(
            &body,
            Some(&content_type),
            &grant.release,
            Some(schema),
            &context,
            &minimise::Limits::default(),
        )
        .expect("valid answer");
        let (released, withheld) = (minimised.released, minimised.withheld);
        let iters = 200_000;
        let (r, w) = (lists(&released, json_schema), lists(&withheld, json_schema));
        let mut line = Vec::new();
        record::write_line(&record_of(&r, &w), &mut line);
        let list_bytes: usize = r.iter().chain(&w).map(|p| p.len() + 3).sum();
        let mut buf = Vec::with_capacity(line.len());
        // What the writer does per record: the lists, the canonical line, its hash.
        let total = inprocess::measure(iters, || {
            buf.clear();
            let r = lists(black_box(&released), json_schema);
            let w = lists(black_box(&withheld), json_schema);
            black_box(record::write_line(&record_of(&r, &w), &mut buf));
        });
        let build = inprocess::measure(iters, || {
            black_box(lists(black_box(&released), json_schema));
            black_box(lists(black_box(&withheld), json_schema));
        });
        let hash = inprocess::measure(iters, || {
            black_box(sha2::Sha256::digest(black_box(&line[..])));
        });
        println!(
            "| {:.0} KB | {} + {} | {} + {} | {} | {list_bytes} | {:.2} | {:.2} | {:.2} |",
            body.len() as f64 / 1000.0,
            released.values(),
            withheld.values(),
            r.len(),
            w.len(),
            line.len(),
            total / 1000.0,
            build / 1000.0,
            hash / 1000.0,
        );
    }
}
