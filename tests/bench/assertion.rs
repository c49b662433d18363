//! What the `Doelbinding-Assertion` costs per forwarded exchange (SPEC §2): signed for every
//! exchange, reused within one exchange context, and the worst case for the cache, where
//! every exchange is a new context (and the cache, once full, holds only live contexts).
//!
//! `cargo bench --bench assertion` prints ns per exchange for each. Bounded: a fixed number of
//! exchanges per case, on one thread.

use doelpoort::assertion::{AssertionClaims, AssertionSigner, Confirmation};
use doelpoort::config::AssertionConfig;
use std::time::{Duration, Instant};

const EXCHANGES: u32 = 20_000;

fn signer(dir: &std::path::Path, cache_size: usize) -> AssertionSigner {
    let (private, _) = doelpoort::pki::signing_key_pair().unwrap();
    let key = dir.join(format!("key-{cache_size}.pem"));
    std::fs::write(&key, private).unwrap();
    AssertionSigner::load(Some(&AssertionConfig {
        keys: vec![key],
        lifetime: Duration::from_secs(60),
        cache_size,
    }))
    .unwrap()
}

fn claims(case_id: &str) -> AssertionClaims<'_> {
    AssertionClaims {
        iss: "00000001999990000000",
        sub: "00000001999990001000",
        aud: "00000001999990011000",
        purpose: "wams-onderzoek",
        legal_basis: Some("AVG art. 6(1)(e); Wet maatschappelijke ondersteuning 2015"),
        processing_activity: Some("https://register.voorbeeldstad.example/verwerkingen/wams"),
        case_id: Some(case_id),
        data_subject: Some("bsn=999990019"),
        cnf: Confirmation {
            x5t_s256: "DpAyDYakmVAQ4oOJC3UYLRk_ONRCqMj00TeGJemMiLA",
        },
    }
}

fn run(name: &str, mut exchange: impl FnMut(u32)) {
    for i in 0..1_000 {
        exchange(u32::MAX - i); // warm up
    }
    let start = Instant::now();
    for i in 0..EXCHANGES {
        exchange(i);
    }
    let per = start.elapsed().as_nanos() / u128::from(EXCHANGES);
    println!("{name:<58} {per:>8} ns/exchange");
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    println!("Doelbinding-Assertion per forwarded exchange ({EXCHANGES} exchanges each)");
    let every = signer(dir.path(), 0);
    run("signed per exchange (assertions.cache_size: 0)", |_| {
        every.for_context(&claims("casus-1"), None).unwrap();
    });
    let cached = signer(dir.path(), 10_000);
    run("one context, reused (cache hit)", |_| {
        cached.for_context(&claims("casus-1"), None).unwrap();
    });
    let worst = signer(dir.path(), 10_000);
    run("every exchange a new context (cache filling)", |i| {
        worst
            .for_context(&claims(&format!("casus-{i}")), None)
            .unwrap();
    });
    let full = signer(dir.path(), 1_000);
    for i in 0..1_000 {
        full.for_context(&claims(&format!("vol-{i}")), None)
            .unwrap();
    }
    run(
        "every exchange a new context, cache full of live ones",
        |i| {
            full.for_context(&claims(&format!("casus-{i}")), None)
                .unwrap();
        },
    );
    println!("contexts cached at the end: {}", worst.cached_contexts());
}
