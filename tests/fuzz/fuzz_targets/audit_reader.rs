//! Fuzz target `audit_reader`: what reads an audit directory back — `record::parse_line`,
//! `segment::contents`, `verify::verify`, `query::query` and the start-up `writer::recover`.
//!
//! Input layout: split at the first two 0xFF bytes into (segment, head.json, anchor.json);
//! the segment is written as `audit-00000000000000000001.jsonl` in a fresh directory (on
//! /dev/shm when it exists), the other parts only when present. An audit file is written by
//! the gateway, but read by operators' tools after anything may have happened to it.
//!
//! Invariants:
//! * nothing panics, whatever the files hold (torn lines, NULs, huge numbers, bad UTF-8);
//! * `contents` splits the bytes faithfully: the lines, the tail and the zeros add up;
//! * a log `verify` accepts is accepted again after `recover` (which may only cut a torn tail
//!   or unused zeros), with the same number of records, and `recover` continues the chain at
//!   the last verified record.
#![no_main]

use doelpoort::audit::{query, record, segment, verify, writer};
use libfuzzer_sys::fuzz_target;

fn scratch() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(dir) = tempfile::tempdir_in(shm) {
            return dir;
        }
    }
    tempfile::tempdir().expect("a temporary directory")
}

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |&b| b == 0xFF);
    let segment_bytes = parts.next().unwrap_or_default();
    let head = parts.next();
    let anchor = parts.next();

    let c = segment::contents(segment_bytes);
    let data_len = segment_bytes
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(segment_bytes.len());
    assert_eq!(c.complete_len + c.tail.len(), data_len);
    for &(_, line) in &c.lines {
        assert!(!line.contains(&b'\n') && !line.contains(&0));
        let _ = record::parse_line(line);
    }

    let dir = scratch();
    let path = dir.path().join(segment::segment_name(1));
    std::fs::write(&path, segment_bytes).unwrap();
    if let Some(h) = head {
        std::fs::write(dir.path().join(segment::HEAD), h).unwrap();
    }
    if let Some(a) = anchor {
        std::fs::write(dir.path().join(segment::ANCHOR), a).unwrap();
    }

    let before = verify::verify(dir.path());
    let _ = query::query(
        dir.path(),
        &query::Filter {
            consumer: Some("wijkteam-rotterdam".into()),
            ..Default::default()
        },
    );
    if let Ok(point) = writer::recover(dir.path()) {
        if let Ok(report) = &before {
            let after = verify::verify(dir.path())
                .unwrap_or_else(|b| panic!("verified before recovery, broken after: {b}"));
            assert_eq!(after.records, report.records);
            if let Some(last) = &report.last {
                assert_eq!(&point, last, "recovery continues at the last verified record");
            }
        }
    }
});
