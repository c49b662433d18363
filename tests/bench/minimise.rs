//! Minimisation cost per response size: a program that prints numbers, not a test.
//!
//! Run: `cargo bench --bench minimise`
//!
//! For UWV income answers of about 1 KB, 10 KB, 100 KB and 1 MB (valid against the shipped
//! schema), it minimises with the shipped grant `wijkteam-uwv-inkomen-onderzoek` (kinds of
//! income and benefit, whether there is income, the year a benefit started) and reports the
//! time per response and the throughput of the gateway's path (the streaming pass), and for
//! comparison the reference path (strict parse to a tree, schema validation, rebuild) with its
//! three steps timed separately. Each measurement is bounded by count and
//! time, after a warm-up; the median of 5 runs is reported.

#[path = "data.rs"]
mod data;
#[path = "inprocess.rs"]
mod inprocess;

use doelpoort::minimise::{self, strict, transform};

// The same allocator as the `doelpoort` binary, so the numbers are the gateway's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::hint::black_box;
use std::time::{Duration, Instant};

fn main() {
    let set = inprocess::shipped_policies();
    let (grant, schema) = inprocess::investigation_grant(&set);
    let limits = minimise::Limits::default();
    let key = [7u8; 32];
    let context = transform::Context {
        pseudonym_key: Some(&key),
        today: doelpoort::policy::today(),
    };
    let content_type = http::HeaderValue::from_static("application/json");
    // The gateway's path: the streaming pass (the shipped schema has a shape).
    let streaming = |body: &[u8], tree: &minimise::FieldTree, schema| {
        black_box(
            minimise::minimise_response(
                black_box(body),
                Some(&content_type),
                tree,
                schema,
                &context,
                &limits,
            )
            .expect("valid answer"),
        );
    };

    // For a profiler: only the gateway's path on a 10 KB answer, for 3 s.
    if std::env::var_os("MINIMISE_PROFILE").is_some() {
        let body = data::uwv_body(10_000);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(3) {
            streaming(&body, &grant.release, Some(schema));
        }
        return;
    }
    println!("# minimisation cost, grant wijkteam-uwv-inkomen-onderzoek, UWV income answers");
    assert!(
        schema.streams(),
        "the shipped schema takes the streaming path"
    );
    println!("| size | streaming µs | MB/s | reference path µs | strict parse µs | serde_json Value parse µs | validate µs | rebuild µs | values released | values withheld |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for size in [1_000usize, 10_000, 100_000, 1_000_000] {
        let body = data::uwv_body(size);
        let iters = (20_000_000 / body.len() as u64).max(20);
        let total = inprocess::measure(iters, || streaming(&body, &grant.release, Some(schema)));
        let reference = inprocess::measure(iters, || {
            black_box(
                minimise::reference(
                    black_box(&body),
                    &grant.release,
                    Some(schema),
                    &context,
                    &limits,
                )
                .expect("valid answer"),
            );
        });
        let parse = inprocess::measure(iters, || {
            black_box(strict::parse(black_box(&body), limits.max_depth).expect("valid JSON"));
        });
        let plain = inprocess::measure(iters, || {
            black_box(
                serde_json::from_slice::<serde_json::Value>(black_box(&body)).expect("valid JSON"),
            );
        });
        let value = strict::parse(&body, limits.max_depth).expect("valid JSON");
        let validate = inprocess::measure(iters, || {
            black_box(schema.is_valid(black_box(&value)));
        });
        let rebuild = inprocess::measure(iters, || {
            black_box(minimise::apply(black_box(&value), &grant.release, &context));
        });
        // Diagnostic: the same walk with every field kept, to separate transform cost.
        let keep_all = {
            let paths: Vec<_> = grant.fields.iter().map(|f| f.path.clone()).collect();
            let keep = doelpoort::policy::Transform::Keep;
            minimise::FieldTree::build(paths.iter().map(|p| (p, &keep))).expect("valid tree")
        };
        let rebuild_keep = inprocess::measure(iters, || {
            black_box(minimise::apply(black_box(&value), &keep_all, &context));
        });
        if std::env::var_os("MINIMISE_DIAG").is_some() {
            let nothing = inprocess::measure(iters, || {
                streaming(&body, &minimise::FieldTree::default(), Some(schema))
            });
            let keep = inprocess::measure(iters, || streaming(&body, &keep_all, Some(schema)));
            let no_schema = inprocess::measure(iters, || streaming(&body, &grant.release, None));
            eprintln!(
                "{} B: reference rebuild with keep-only transforms {:.1} µs; streaming: nothing granted {:.1} µs, keep-only {:.1} µs, without schema {:.1} µs",
                body.len(),
                rebuild_keep / 1000.0,
                nothing / 1000.0,
                keep / 1000.0,
                no_schema / 1000.0,
            );
        }
        let out = minimise::apply(&value, &grant.release, &context);
        println!(
            "| {} B | {:.1} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {} |",
            body.len(),
            total / 1000.0,
            body.len() as f64 / (total / 1e9) / 1e6,
            reference / 1000.0,
            parse / 1000.0,
            plain / 1000.0,
            validate / 1000.0,
            rebuild / 1000.0,
            out.released.values(),
            out.withheld.values()
        );
    }
}
