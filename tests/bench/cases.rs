//! Decision cost with the case register: a program that prints numbers, not a test.
//!
//! Run: `cargo bench --bench cases`
//!
//! Claim under test (cases/mod.rs, SPEC §8): every case is in memory, so checking an exchange
//! against its registered case is a hash lookup plus a few comparisons, with no round trip to
//! the store. Target: **the decision with a registered case costs < 2 µs more than without,
//! with 10,000 cases in the register.**
//!
//! Set-up, per register size N (100 and 10,000): an SQLite store (under /dev/shm when it
//! exists, so the fsync per transaction is cheap; else a temporary directory) is filled with N
//! open cases through `CaseRegister::change`, one transaction per case, as the case API does:
//! ids `casus-NNNNN` centred on `casus-05000` (for 10,000: `casus-00000` … `casus-09999`),
//! owner `wijkteam-rotterdam`, purposes `wams-onderzoek` and `wams-coordinatie`, agreed
//! partners `uwv`, `svb`, `jeugdhulp`, a household of 2–4 members (synthetic 9999xxxxx BSNs
//! that pass the elfproef; the measured case `casus-05000` has 4, the data subject 999990019
//! among them), and already served under both purposes. "Served" makes it the steady state:
//! only the first exchange of a purpose in a case writes to the store (`record_served`), and
//! that write is not what this benchmark is about.
//!
//! Then the store is opened again and `CaseRegister::open` is timed (claim the household key,
//! load every case): what a replica does at start. The register that loaded last is the one
//! measured.
//!
//! Measured, against the shipped policy set (`policies/`, `schemas/`), for the request the
//! district team makes in the demo: GET `/uwv/v1/personen/999990019/inkomen` for purpose
//! `wams-onderzoek`, case `casus-05000`, data subject `bsn=999990019` (grant
//! `wijkteam-uwv-inkomen-onderzoek`, which `requires: [registered_case]`):
//!
//! - decide: `decide::decide` alone (context parsed once, outside the loop);
//! - decide + admit: the decision and then `cases::admission::admit` on its Permit, as the
//!   pipeline's admission phase does;
//! - admit: the register's check alone, on a Permit decided once;
//! - member id: `HouseholdKey::member` for the subject alone (a keyed HMAC-SHA-256 in hex),
//!   the part of admit that does not depend on the register.
//!
//! Each is one bounded run (at most 2,000,000 calls or 100 ms, after a 20 ms warm-up); the
//! three are run in turn for both sizes, and that round is repeated `ROUNDS` times. The median
//! of the rounds is reported. The added cost is a difference of two measurements, so they are
//! interleaved: a drift of the machine (other builds on this VM) then hits both alike.
//!
//! Caveat, as for `decision`: every loop repeats one request, so the case and the hash buckets
//! it touches stay in the CPU cache. That is what "a hash lookup, no scan" is about; a mixed
//! production load over 10,000 cases would add cache misses, not work.

use doelpoort::cases::admission::{admit, CaseAdmission};
use doelpoort::cases::{CaseRegister, HouseholdKey};
use doelpoort::context::{Bsn, RequestContext};
use doelpoort::metrics::Metrics;
use doelpoort::minimise::{Limits, RequestBody};
use doelpoort::policy::case_rules::CaseRequest;
use doelpoort::policy::compile;
use doelpoort::policy::decide::{self, DecisionRequest, Permit};
use doelpoort::policy::PolicySet;
use doelpoort::problem::{Problem, ProblemCode};
use doelpoort::store::cases::{CaseHead, CaseStatus, CaseWrite};
use doelpoort::store::{Store, StoreLocation, StoreMetrics, StoreSettings};
use http::{HeaderMap, HeaderValue, Method};
use std::convert::Infallible;
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use time::Date;

// The same allocator as the `doelpoort` binary, so the numbers are the gateway's (a member id
// is a new hex string per check; a denial allocates its detail).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Register sizes: the target's 10,000, and 100 to show the check does not grow with it.
const SIZES: [usize; 2] = [100, 10_000];

/// Per run: at most this many calls or this much time, whichever comes first (as `decision`).
const MAX_ITERS: u64 = 2_000_000;
const MAX_RUN: Duration = Duration::from_millis(100);
/// Rounds of (decide, decide + admit, admit) × sizes; the median of the rounds is reported.
/// 7 × (2 sizes × 3 measurements + 1) × 120 ms ≈ 6 s.
const ROUNDS: usize = 7;
/// Times the filled register is loaded from the store (`CaseRegister::open`).
const LOAD_ROUNDS: usize = 5;

/// The target: what the registered case may add to the decision, with 10,000 cases.
const TARGET_ADDED_NS: f64 = 2_000.0;
const TARGET_CASES: usize = 10_000;

/// One fixed day inside the shipped grant's validity (2026-01-01 … 2027-12-31), for compile
/// and decide alike, so the benchmark does not start failing when the grant expires.
const TODAY: Date = time::macros::date!(2026 - 12 - 05);

/// The request: the district team asks UWV for the income of the data subject of a case.
const CONSUMER: &str = "wijkteam-rotterdam";
const PARTNER: &str = "uwv";
const PURPOSE: &str = "wams-onderzoek";
const SUBJECT: &str = "999990019";
/// Passes the elfproef, and is in no household of the register.
const OTHER_PERSON: &str = "999990020";
/// The measured case: in the middle of the register for every size.
const MEASURED: usize = 5_000;

/// What every synthetic case is registered with.
const CASE_PURPOSES: [&str; 2] = ["wams-onderzoek", "wams-coordinatie"];
const CASE_PARTNERS: [&str; 3] = ["uwv", "svb", "jeugdhulp"];

fn case_id(i: usize) -> String {
    format!("casus-{i:05}")
}

/// The case numbers of a register of `n` cases: `n` consecutive ones with `MEASURED` in the
/// middle (for 10,000: 0 … 9,999), so the measured request is the same for every size.
fn case_numbers(n: usize) -> std::ops::Range<usize> {
    let first = MEASURED - n / 2;
    first..first + n
}

/// Every 9999xxxxx number that passes the elfproef (by the gateway's own `Bsn::parse`), but
/// the two the benchmark asks about: ~9,000 synthetic people to make households of.
fn synthetic_people() -> Vec<Bsn> {
    (999_900_000u32..=999_999_999)
        .map(|n| n.to_string())
        .filter(|s| s != SUBJECT && s != OTHER_PERSON)
        .filter_map(|s| Bsn::parse(&s).ok())
        .collect()
}

/// The household of case `i`: 2–4 members (the measured case: 4, the subject among them), as
/// the member ids (keyed HMACs) the register stores, sorted. The same for every register size.
fn household(i: usize, people: &[Bsn], key: &HouseholdKey) -> Vec<String> {
    let size = 2 + i % 3;
    let mut members: Vec<String> = (0..size)
        .map(|k| key.member(&people[(i * 4 + k) % people.len()]))
        .collect();
    if i == MEASURED {
        members[0] = key.member(&Bsn::parse(SUBJECT).unwrap());
    }
    members.sort();
    members.dedup();
    members
}

/// Registers cases `numbers` through the register's own change path (one transaction each).
async fn fill(
    register: &CaseRegister,
    numbers: std::ops::Range<usize>,
    people: &[Bsn],
) -> Duration {
    let start = Instant::now();
    for i in numbers {
        let household = household(i, people, register.key());
        register
            .change("bench_fill", CONSUMER, &case_id(i), move |_, now| {
                Ok::<_, Infallible>(vec![
                    CaseWrite::Put {
                        head: CaseHead {
                            owner: CONSUMER.to_string(),
                            status: CaseStatus::Open,
                            purposes: CASE_PURPOSES.iter().map(|p| p.to_string()).collect(),
                            objections: Vec::new(),
                            created_at: now,
                            updated_at: now,
                            closed_at: None,
                            purge_after: None,
                        },
                        partners: CASE_PARTNERS.iter().map(|p| (p.to_string(), now)).collect(),
                        household,
                    },
                    // Served already: the steady state, where admission does not write.
                    CaseWrite::Served {
                        purpose: CASE_PURPOSES[0].to_string(),
                        at: now,
                    },
                    CaseWrite::Served {
                        purpose: CASE_PURPOSES[1].to_string(),
                        at: now,
                    },
                ])
            })
            .await
            .expect("register a synthetic case");
    }
    start.elapsed()
}

/// Nanoseconds per call of `f`, one run: a 20 ms warm-up, then at most `MAX_ITERS` calls or
/// `MAX_RUN`. The caller repeats it in rounds and takes the median.
fn measure(mut f: impl FnMut()) -> f64 {
    let warm_up = Instant::now();
    while warm_up.elapsed() < Duration::from_millis(20) {
        f();
    }
    let start = Instant::now();
    let mut n = 0u64;
    // Checking the clock costs ~20 ns; checking it every 64 calls keeps it out of the number
    // while still bounding the run in time.
    while n < MAX_ITERS && (!n.is_multiple_of(64) || start.elapsed() < MAX_RUN) {
        f();
        n += 1;
    }
    start.elapsed().as_nanos() as f64 / n as f64
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    sorted[sorted.len() / 2]
}

fn request<'a>(
    path: &'a str,
    context: &'a RequestContext,
    body: &'a RequestBody<'a>,
) -> DecisionRequest<'a> {
    DecisionRequest {
        consumer: CONSUMER,
        partner: PARTNER,
        method: &Method::GET,
        path,
        context,
        body,
        approvals: &[],
        today: TODAY,
    }
}

/// The register's check for a decided exchange, as the pipeline's admission phase asks it.
fn check(
    register: &CaseRegister,
    set: &PolicySet,
    context: &RequestContext,
    permit: &Permit,
) -> Result<CaseAdmission, Problem> {
    // As the pipeline's case phase does: one lookup, then the rules.
    let case_id = context.case_id.as_deref().expect("case id");
    admit(
        register,
        set,
        register.get(CONSUMER, case_id),
        context.data_subject.as_ref().map(|s| s.bsn()),
        &CaseRequest {
            consumer: CONSUMER,
            partner: PARTNER,
            purpose: permit.purpose(),
            grant: permit.grant(),
            today: TODAY,
        },
    )
}

fn context(case: &str, subject: &str) -> RequestContext {
    let mut h = HeaderMap::new();
    h.insert("doelbinding-purpose", HeaderValue::from_static(PURPOSE));
    h.insert("doelbinding-case-id", HeaderValue::from_str(case).unwrap());
    h.insert(
        "doelbinding-data-subject",
        HeaderValue::from_str(&format!("bsn={subject}")).unwrap(),
    );
    RequestContext::from_headers(&h).expect("valid context")
}

/// One register size: the store, how long filling and loading took, and the loaded register.
struct Register {
    n: usize,
    fill: Duration,
    /// `CaseRegister::open` on the filled store, one per load round.
    loads: Vec<Duration>,
    register: Arc<CaseRegister>,
}

async fn build(
    n: usize,
    dir: &Path,
    key: &HouseholdKey,
    metrics: &StoreMetrics,
    people: &[Bsn],
) -> Register {
    let settings = StoreSettings::new(StoreLocation::Sqlite(dir.join(format!("cases-{n}.sqlite"))));
    let store = Store::open(&settings, "bench", metrics.clone())
        .await
        .expect("open the store");
    let filling = CaseRegister::open(store, key.clone())
        .await
        .expect("open the empty register");
    let fill = fill(&filling, case_numbers(n), people).await;
    assert_eq!(filling.len(), n, "every synthetic case is registered");
    drop(filling);

    // What a replica does at start: open the store (migrations already applied; not timed)
    // and load the register (timed).
    let mut loads = Vec::with_capacity(LOAD_ROUNDS);
    let mut loaded = None;
    for _ in 0..LOAD_ROUNDS {
        let store = Store::open(&settings, "bench", metrics.clone())
            .await
            .expect("reopen the store");
        let start = Instant::now();
        let register = CaseRegister::open(store, key.clone())
            .await
            .expect("load the register");
        loads.push(start.elapsed());
        assert_eq!(register.len(), n, "every case is loaded");
        loaded = Some(register);
    }
    Register {
        n,
        fill,
        loads,
        register: loaded.unwrap(),
    }
}

fn main() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (set, diagnostics) = compile::load(&repo.join("policies"), &repo.join("schemas"), TODAY);
    let Some(set) = set else {
        eprintln!("the shipped policy set does not compile:");
        for d in diagnostics {
            eprintln!("{d}");
        }
        std::process::exit(1);
    };

    // /dev/shm: the store's fsync per transaction costs next to nothing, so filling 10,000
    // cases one transaction each takes seconds, not minutes. Loading reads the same pages
    // either way once they are in the page cache.
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::Builder::new()
            .prefix("doelpoort-bench-cases-")
            .tempdir_in(shm)
    } else {
        tempfile::tempdir()
    }
    .expect("tempdir");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let key = HouseholdKey::from_bytes(&[7u8; 32]);
    let metrics = Metrics::new().store();
    let people = synthetic_people();
    let registers: Vec<Register> = SIZES
        .iter()
        .map(|&n| runtime.block_on(build(n, dir.path(), &key, &metrics, &people)))
        .collect();

    // The request, parsed once; checked before anything is timed, since a benchmark of a
    // refusal would measure nothing useful.
    let path = format!("/v1/personen/{SUBJECT}/inkomen");
    let no_body = RequestBody::new(&[], &Limits::default());
    let ctx = context(&case_id(MEASURED), SUBJECT);
    let permit = match decide::decide(&set, &request(&path, &ctx, &no_body)) {
        Ok(permit) => permit,
        Err(denial) => panic!("the request is not granted: {:?}", denial.problem.code),
    };
    assert_eq!(permit.grant().id.as_str(), "wijkteam-uwv-inkomen-onderzoek");
    assert!(permit.grant().requires.registered_case);
    let outsider = context(&case_id(MEASURED), OTHER_PERSON);
    let outsider_path = format!("/v1/personen/{OTHER_PERSON}/inkomen");
    let outsider_permit =
        decide::decide(&set, &request(&outsider_path, &outsider, &no_body)).expect("granted");
    for r in &registers {
        let admitted = check(&r.register, &set, &ctx, &permit).expect("admitted");
        assert_eq!(admitted.case.household.len(), 4);
        assert!(!admitted.first_of_purpose, "steady state: no write");
        // The household check is real: someone outside the case's household is refused.
        let refused = check(&r.register, &set, &outsider, &outsider_permit).err();
        assert_eq!(
            refused.map(|p| p.code),
            Some(ProblemCode::NotInHousehold),
            "N = {}",
            r.n
        );
    }

    // [size][round]
    let mut decide_ns = vec![Vec::new(); registers.len()];
    let mut both_ns = vec![Vec::new(); registers.len()];
    let mut admit_ns = vec![Vec::new(); registers.len()];
    // The part of admit that does not touch the register: the subject's member id (a keyed
    // HMAC-SHA-256, hex). Shows how much of admit is the hash lookup and comparisons.
    let mut member_ns = Vec::new();
    let subject = Bsn::parse(SUBJECT).unwrap();
    for _ in 0..ROUNDS {
        member_ns.push(measure(|| {
            black_box(key.member(black_box(&subject)));
        }));
        for (s, r) in registers.iter().enumerate() {
            // black_box on the inputs keeps the compiler from hoisting lookups out of the
            // loop; on the output, from dropping the work.
            decide_ns[s].push(measure(|| {
                black_box(decide::decide(
                    black_box(&set),
                    black_box(&request(&path, &ctx, &no_body)),
                ))
                .ok();
            }));
            both_ns[s].push(measure(|| {
                let permit =
                    decide::decide(black_box(&set), black_box(&request(&path, &ctx, &no_body)))
                        .unwrap();
                black_box(check(
                    black_box(&r.register),
                    &set,
                    black_box(&ctx),
                    &permit,
                ))
                .ok();
            }));
            admit_ns[s].push(measure(|| {
                black_box(check(
                    black_box(&r.register),
                    black_box(&set),
                    black_box(&ctx),
                    black_box(&permit),
                ))
                .ok();
            }));
        }
    }

    println!(
        "# case register: decision cost with registered cases (ns per operation, median of {ROUNDS} rounds)"
    );
    println!();
    println!(
        "| cases | decide | decide + admit | admit | added (decide + admit − decide) | added, per-round range |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    let mut added = Vec::new();
    for (s, r) in registers.iter().enumerate() {
        let (a, b, c) = (
            median(&decide_ns[s]),
            median(&both_ns[s]),
            median(&admit_ns[s]),
        );
        let per_round: Vec<f64> = both_ns[s]
            .iter()
            .zip(&decide_ns[s])
            .map(|(b, a)| b - a)
            .collect();
        let lo = per_round.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = per_round.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        println!(
            "| {} | {a:.0} | {b:.0} | {c:.0} | {:.0} | {lo:.0} … {hi:.0} |",
            r.n,
            b - a
        );
        added.push((r.n, b - a, c));
    }
    println!();
    println!(
        "of admit: the subject's member id (keyed HMAC-SHA-256, hex) alone {:.0} ns",
        median(&member_ns)
    );
    println!();
    println!("| cases | fill (one transaction per case) | µs per case | CaseRegister::open, median of {LOAD_ROUNDS} | min | max |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for r in &registers {
        let mut loads: Vec<f64> = r.loads.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        loads.sort_by(|a, b| a.total_cmp(b));
        println!(
            "| {} | {:.2} s | {:.0} | {:.1} ms | {:.1} ms | {:.1} ms |",
            r.n,
            r.fill.as_secs_f64(),
            r.fill.as_secs_f64() * 1e6 / r.n as f64,
            median(&loads),
            loads[0],
            loads[loads.len() - 1]
        );
    }
    println!();
    println!(
        "store: SQLite in {} ({})",
        dir.path().display(),
        if shm.is_dir() {
            "tmpfs"
        } else {
            "temporary directory"
        }
    );
    let (small, large) = (added[0], added[added.len() - 1]);
    println!(
        "admit, {} vs {} cases: {:.2}×; added cost {:.0} vs {:.0} ns",
        large.0,
        small.0,
        large.2 / small.2,
        large.1,
        small.1
    );
    let (n, cost, _) = *added
        .iter()
        .find(|(n, _, _)| *n == TARGET_CASES)
        .expect("the target's size is measured");
    println!(
        "target: added cost < {TARGET_ADDED_NS:.0} ns with {n} cases: {cost:.0} ns … {}",
        if cost < TARGET_ADDED_NS {
            "PASS"
        } else {
            "FAIL"
        }
    );
    // The stores' pools close inside the runtime they were opened in.
    runtime.block_on(async move { drop(registers) });
}
