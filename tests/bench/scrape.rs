//! Scrape benchmark: does Prometheus scraping `/metrics` slow the data path? A program that
//! prints numbers, not a test.
//!
//! Run: `cargo bench --bench scrape -- [--seconds S] [--rounds R] [--interval-ms MS]`
//!
//! One gateway (full pipeline, audit off so the disk adds no noise) on its own single-threaded
//! runtime — the admin listener shares that thread, so a scrape competes with exchanges
//! directly. 16 keep-alive mTLS connections load it for S seconds (+1 s warm-up), alternately
//! without and with a scraper that GETs `/metrics` every MS milliseconds (default 1000: fifteen
//! times more often than a typical 15 s Prometheus interval). R rounds (default 3) of each, so
//! VM drift hits both sides alike; the median ratio is reported. Separately, the
//! CPU one scrape costs the gateway thread, measured over 200 scrapes with no load.

#[path = "data.rs"]
mod data;
#[path = "rig.rs"]
mod rig;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn options() -> (u64, usize, u64) {
    let args: Vec<String> = std::env::args().collect();
    let (mut seconds, mut rounds, mut interval) = (4, 3, 1000);
    for pair in args.windows(2) {
        let value = pair[1].parse::<u64>().ok();
        match (pair[0].as_str(), value) {
            ("--seconds", Some(v)) => seconds = v.clamp(2, 60),
            ("--rounds", Some(v)) => rounds = v.clamp(1, 10) as usize,
            ("--interval-ms", Some(v)) => interval = v.clamp(10, 60_000),
            _ => {}
        }
    }
    (seconds, rounds, interval)
}

/// One blocking GET /metrics; returns the body length.
fn scrape(admin: SocketAddr) -> usize {
    let mut tcp = std::net::TcpStream::connect(admin).unwrap();
    tcp.write_all(b"GET /metrics HTTP/1.1\r\nhost: admin\r\nconnection: close\r\n\r\n")
        .unwrap();
    let mut body = Vec::new();
    tcp.read_to_end(&mut body).unwrap();
    body.len()
}

/// Scrapes every `interval` until `stop`; counts scrapes.
fn scraper(admin: SocketAddr, interval: Duration, stop: Arc<AtomicBool>, count: Arc<AtomicU64>) {
    while !stop.load(Ordering::Relaxed) {
        scrape(admin);
        count.fetch_add(1, Ordering::Relaxed);
        let until = Instant::now() + interval;
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

fn main() {
    let (seconds, rounds, interval_ms) = options();
    let dir = tempfile::tempdir().unwrap();
    rig::write_pki(dir.path());
    let body: &'static [u8] = Box::leak(data::uwv_body(2048).into_boxed_slice());
    let partner = rig::start_partner(dir.path(), body);
    let path = dir.path().join("bench.yaml");
    std::fs::write(&path, rig::config_yaml(dir.path(), partner, "  mode: off")).unwrap();
    let gateway = rig::BenchGateway::start(&path);
    let tls = rig::client_tls(dir.path(), "consumer");
    let client = rig::single_thread_runtime();
    let url = "/uwv/v1/personen/999990019/inkomen";

    println!(
        "# scrape benchmark: 16 connections, {seconds} s per run, {rounds} rounds, scrape every {interval_ms} ms"
    );
    println!("| round | without scraping req/s | with scraping req/s | scrapes | ratio |");
    println!("|---:|---:|---:|---:|---:|");
    let mut ratios = Vec::new();
    for round in 1..=rounds {
        let without = client.block_on(rig::load(gateway.addr, tls.clone(), url, 16, seconds));
        let stop = Arc::new(AtomicBool::new(false));
        let count = Arc::new(AtomicU64::new(0));
        let thread = {
            let (stop, count) = (stop.clone(), count.clone());
            let admin = gateway.admin;
            std::thread::spawn(move || {
                scraper(admin, Duration::from_millis(interval_ms), stop, count)
            })
        };
        let with = client.block_on(rig::load(gateway.addr, tls.clone(), url, 16, seconds));
        stop.store(true, Ordering::Relaxed);
        thread.join().unwrap();
        let (a, b) = (
            without.requests as f64 / seconds as f64,
            with.requests as f64 / seconds as f64,
        );
        println!(
            "| {round} | {a:.0} | {b:.0} | {} | {:.3} |",
            count.load(Ordering::Relaxed),
            b / a
        );
        ratios.push(b / a);
    }
    ratios.sort_by(f64::total_cmp);
    println!();
    println!(
        "median with/without scraping: {:.3}",
        ratios[ratios.len() / 2]
    );

    // The cost of one scrape on the gateway thread, without load.
    let n = 200;
    let before = gateway.cpu_ns();
    let started = Instant::now();
    let mut bytes = 0;
    for _ in 0..n {
        bytes = scrape(gateway.admin);
    }
    let per_scrape_us = (gateway.cpu_ns() - before) as f64 / 1000.0 / n as f64;
    println!(
        "one scrape: {per_scrape_us:.0} µs of gateway CPU, {:.0} µs wall, {bytes} bytes; at a 15 s scrape interval that is {:.4} % of one core",
        started.elapsed().as_micros() as f64 / n as f64,
        per_scrape_us / 15e6 * 100.0
    );
}
