//! The audit log against its promises: chained, durable, recoverable, and every kind of
//! tampering named by `verify`.

use super::segment::{self, list_segments};
use super::verify::verify;
use super::*;
use crate::exchange::{Concluded, Decision};
use crate::problem::ProblemCode;
use std::path::Path;
use std::time::{Duration, SystemTime};

fn settings(root: &Path) -> AuditSettings {
    AuditSettings {
        queue_capacity: 1024,
        ..AuditSettings::durable(root.join("audit"), root.join("subject.key"))
    }
}

fn event(decision: Decision, at: SystemTime) -> AuditEvent {
    let mut facts = crate::exchange::Exchange::begin(&http::HeaderMap::new());
    facts.start_time = at;
    facts.subject = Some(crate::context::Bsn::parse("999990019").unwrap());
    facts.case_id = Some("casus-1".into());
    Arc::new(Concluded {
        facts,
        decision,
        reason: (decision != Decision::Allow).then_some(ProblemCode::NotGranted),
        end_time: at,
        kind: crate::exchange::RecordKind::Outcome,
    })
}

/// Writes `n` records (concurrently, so they share group commits) and returns their seqs.
async fn write(settings: &AuditSettings, n: usize) -> Vec<u64> {
    let log = Arc::new(AuditLog::open(settings, "test", Arc::new(Metrics::new())).unwrap());
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let log = log.clone();
            let decision = if i % 3 == 0 {
                Decision::Deny
            } else {
                Decision::Allow
            };
            tokio::spawn(async move { log.record(event(decision, SystemTime::now())).await })
        })
        .collect();
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.push(t.await.unwrap().expect("the record is written"));
    }
    seqs.sort_unstable();
    seqs
}

/// Writes `n` records one after the other (one per group commit, so rotation can happen
/// between any two).
async fn write_one_by_one(settings: &AuditSettings, n: usize) {
    let log = AuditLog::open(settings, "test", Arc::new(Metrics::new())).unwrap();
    for _ in 0..n {
        log.record(event(Decision::Allow, SystemTime::now()))
            .await
            .unwrap();
    }
}

fn only_segment(dir: &Path) -> std::path::PathBuf {
    let segments = list_segments(dir).unwrap();
    assert_eq!(segments.len(), 1);
    segments[0].1.clone()
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

fn rewrite(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

#[tokio::test]
async fn records_are_chained_and_numbered_without_gaps() {
    let root = tempfile::tempdir().unwrap();
    let s = settings(root.path());
    let seqs = write(&s, 50).await;
    assert_eq!(seqs, (1..=50).collect::<Vec<_>>());
    let report = verify(&s.dir).unwrap();
    assert_eq!(report.records, 50);
    assert_eq!(report.last.unwrap().seq, 50);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    // No BSN in the log: the subject is a keyed HMAC.
    let text = std::fs::read_to_string(only_segment(&s.dir)).unwrap();
    assert!(!text.contains("999990019"));
    assert!(text.contains("\"dpl.core.data_subject_id_type\":\"BSN\""));
}

#[tokio::test]
async fn a_commit_delay_gathers_records_on_their_way_and_loses_none() {
    let root = tempfile::tempdir().unwrap();
    let s = AuditSettings {
        commit_delay: Duration::from_millis(5),
        commit_siblings: 5,
        ..settings(root.path())
    };
    // Rounds of 40 concurrent exchanges, each announced while it runs (as the pipeline does)
    // and handing its record over a little later: the writer waits for them, every record
    // still lands once, in order, and verifies.
    let metrics = Arc::new(Metrics::new());
    let log = Arc::new(AuditLog::open(&s, "test", metrics.clone()).unwrap());
    let mut seqs = Vec::new();
    for _ in 0..5 {
        let tasks: Vec<_> = (0..40u64)
            .map(|i| {
                let log = log.clone();
                let upcoming = log.upcoming();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_micros(50 * i)).await;
                    drop(upcoming);
                    log.record(event(Decision::Allow, SystemTime::now())).await
                })
            })
            .collect();
        for t in tasks {
            seqs.push(t.await.unwrap().expect("the record is written"));
        }
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=200).collect::<Vec<_>>());
    let commits = metrics.audit_batch_records.get_sample_count();
    assert_eq!(metrics.audit_batch_records.get_sample_sum(), 200.0);
    assert!(
        commits <= 50,
        "records on their way share group commits ({commits} commits for 200)"
    );
    drop(log);
    assert_eq!(verify(&s.dir).unwrap().records, 200);
}

#[tokio::test]
async fn a_lone_request_never_waits_for_the_commit_delay() {
    let root = tempfile::tempdir().unwrap();
    // A delay far longer than the test may take: a record that waited for it would time out.
    let s = AuditSettings {
        commit_delay: Duration::from_secs(60),
        commit_siblings: 1,
        ..settings(root.path())
    };
    let log = AuditLog::open(&s, "test", Arc::new(Metrics::new())).unwrap();
    for expected in 1..=3 {
        let upcoming = log.upcoming();
        drop(upcoming);
        let seq = tokio::time::timeout(
            Duration::from_secs(20),
            log.record(event(Decision::Allow, SystemTime::now())),
        )
        .await
        .expect("no exchange on its way: the commit does not wait")
        .unwrap();
        assert_eq!(seq, expected);
    }
    // Below commit_siblings (here 2, one exchange on its way) the commit does not wait either.
    drop(log);
    let s = AuditSettings {
        commit_siblings: 2,
        ..s
    };
    let log = AuditLog::open(&s, "test", Arc::new(Metrics::new())).unwrap();
    let _other = log.upcoming();
    tokio::time::timeout(
        Duration::from_secs(20),
        log.record(event(Decision::Allow, SystemTime::now())),
    )
    .await
    .expect("fewer exchanges on their way than commit_siblings: no wait")
    .unwrap();
}

#[tokio::test]
async fn the_chain_continues_across_restarts_and_segments() {
    let root = tempfile::tempdir().unwrap();
    let mut s = settings(root.path());
    s.segment_max_bytes = 4096; // a few records per segment
    write_one_by_one(&s, 20).await;
    write(&s, 20).await; // a restart: a new segment, chained to the last one
    let segments = list_segments(&s.dir).unwrap();
    assert!(
        segments.len() >= 4,
        "rotation by size: {} segments",
        segments.len()
    );
    let report = verify(&s.dir).unwrap();
    assert_eq!(report.records, 40);
    assert_eq!(report.segments, segments.len());
}

#[tokio::test]
async fn a_torn_last_line_is_set_aside_at_start_and_the_chain_continues() {
    let root = tempfile::tempdir().unwrap();
    let s = settings(root.path());
    write(&s, 5).await;
    let path = only_segment(&s.dir);
    let mut bytes = std::fs::read(&path).unwrap();
    let complete = bytes.len();
    // A crash in the middle of the sixth record's write.
    bytes.extend_from_slice(br#"{"attributes":{"doelpoort.actor":"x","#);
    std::fs::write(&path, &bytes).unwrap();
    let report = verify(&s.dir).unwrap();
    assert_eq!(report.records, 5);
    assert!(report.warnings.iter().any(|w| w.contains("incomplete")));

    write(&s, 3).await;
    assert_eq!(std::fs::metadata(&path).unwrap().len() as usize, complete);
    let torn: Vec<_> = std::fs::read_dir(s.dir.join(segment::TORN_DIR))
        .unwrap()
        .collect();
    assert_eq!(torn.len(), 1, "the torn bytes are kept for inspection");
    let report = verify(&s.dir).unwrap();
    assert_eq!(report.records, 8, "nothing lost, nothing invented");
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
}

#[tokio::test]
async fn a_damaged_last_record_stops_the_start() {
    let root = tempfile::tempdir().unwrap();
    let s = settings(root.path());
    write(&s, 3).await;
    let path = only_segment(&s.dir);
    let mut l = lines(&path);
    l[2] = l[2].replacen("\"casus-1\"", "\"casus-2\"", 1);
    rewrite(&path, &l);
    let err = AuditLog::open(&s, "test", Arc::new(Metrics::new()))
        .err()
        .expect("a damaged tail is not papered over");
    assert!(
        format!("{err:#}").contains(":3: the last audit record"),
        "{err:#}"
    );
}

/// Each kind of tampering, on a fresh 10-record log; `verify` must name the right line.
#[tokio::test]
async fn every_kind_of_tampering_is_detected() {
    type Tamper = fn(&Path, &mut Vec<String>);
    let cases: Vec<(&str, Tamper, usize, &str)> = vec![
        (
            "edit a field",
            |_, l| l[4] = l[4].replacen("\"casus-1\"", "\"casus-2\"", 1),
            5,
            "was changed",
        ),
        (
            "delete a record",
            |_, l| drop(l.remove(4)),
            5,
            "are missing",
        ),
        (
            "swap two records",
            |_, l| l.swap(3, 4),
            4,
            "removed or moved",
        ),
        (
            "duplicate a record",
            |_, l| l.insert(4, l[3].clone()),
            5,
            "reordered",
        ),
        (
            "recompute the hash of an edited record",
            |_, l| {
                let edited = l[4].replacen("\"casus-1\"", "\"casus-2\"", 1);
                let stored = record::parse_line(edited.as_bytes()).unwrap();
                let mut canonical = Vec::new();
                record::canonical_bytes(&stored.value, &mut canonical);
                use sha2::Digest;
                let hash = hex::encode(sha2::Sha256::digest(&canonical));
                l[4] = edited.replace(&stored.hash, &hash);
            },
            6,
            "does not chain",
        ),
        (
            "cut records off the end",
            |_, l| l.truncate(7),
            0,
            "cut off the end",
        ),
        (
            "a line cut short",
            |_, l| l[4].truncate(40),
            5,
            "not a JSON record",
        ),
        (
            "a duplicate member in front of the real one",
            |_, l| {
                l[4] = l[4].replacen(
                    "{\"attributes\":{",
                    "{\"attributes\":{\"doelpoort.decision\":\"deny\",",
                    1,
                )
            },
            5,
            "not byte for byte",
        ),
    ];
    for (what, tamper, line, message) in cases {
        let root = tempfile::tempdir().unwrap();
        let s = settings(root.path());
        write(&s, 10).await;
        let path = only_segment(&s.dir);
        let mut l = lines(&path);
        tamper(&path, &mut l);
        rewrite(&path, &l);
        let broken = verify(&s.dir)
            .err()
            .unwrap_or_else(|| panic!("{what}: not detected"));
        assert_eq!(broken.line, line, "{what}: {broken}");
        assert!(broken.message.contains(message), "{what}: {broken}");
    }
}

#[tokio::test]
async fn a_removed_segment_is_detected() {
    let root = tempfile::tempdir().unwrap();
    let mut s = settings(root.path());
    s.segment_max_bytes = 4096;
    write_one_by_one(&s, 30).await;
    let segments = list_segments(&s.dir).unwrap();
    assert!(segments.len() >= 3);
    std::fs::remove_file(&segments[1].1).unwrap();
    let broken = verify(&s.dir).unwrap_err();
    assert_eq!(broken.file, segments[2].1);
    assert!(broken.message.contains("are missing"), "{broken}");
    // The first segment removed (no retention anchor): the log starts too late.
    std::fs::remove_file(&segments[0].1).unwrap();
    let broken = verify(&s.dir).unwrap_err();
    assert!(broken.message.contains("records 1–"), "{broken}");
}

#[tokio::test]
async fn retention_prunes_whole_segments_and_leaves_a_verifiable_anchor() {
    let root = tempfile::tempdir().unwrap();
    let mut s = settings(root.path());
    s.segment_max_bytes = 4096;
    let log = AuditLog::open(&s, "test", Arc::new(Metrics::new())).unwrap();
    let old = SystemTime::now() - Duration::from_secs(400 * 24 * 3600);
    for _ in 0..15 {
        log.record(event(Decision::Allow, old)).await.unwrap();
    }
    for _ in 0..15 {
        log.record(event(Decision::Allow, SystemTime::now()))
            .await
            .unwrap();
    }
    drop(log);
    let before = list_segments(&s.dir).unwrap();
    let cutoff = writer::rfc3339(SystemTime::now() - Duration::from_secs(365 * 24 * 3600));
    let pruned = writer::prune_before(&s.dir, &cutoff, None).unwrap();
    assert!(pruned >= 1);
    let after = list_segments(&s.dir).unwrap();
    assert_eq!(after.len() as u64, before.len() as u64 - pruned);
    let anchor: segment::Anchor = segment::read_json(&s.dir.join(segment::ANCHOR))
        .unwrap()
        .unwrap();
    let report = verify(&s.dir).unwrap();
    assert_eq!(report.first_seq, Some(anchor.seq + 1));
    assert_eq!(report.last.unwrap().seq, 30);
    // A forged anchor does not chain to the first retained record.
    let forged = segment::Anchor {
        hash: record::GENESIS_HASH.into(),
        ..anchor
    };
    std::fs::write(
        s.dir.join(segment::ANCHOR),
        serde_json::to_string(&forged).unwrap(),
    )
    .unwrap();
    assert!(verify(&s.dir)
        .unwrap_err()
        .message
        .contains("does not chain"));
}

#[tokio::test]
async fn a_failed_commit_refuses_the_batch_and_leaves_the_log_whole() {
    let root = tempfile::tempdir().unwrap();
    let s = settings(root.path());
    let metrics = Arc::new(Metrics::new());
    let log = AuditLog::open(&s, "test", metrics.clone()).unwrap();
    log.record(event(Decision::Allow, SystemTime::now()))
        .await
        .unwrap();
    // The segment disappears from under the writer: records written to it would be lost.
    std::fs::remove_file(only_segment(&s.dir)).unwrap();
    // (The writer looks at most once a second.)
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let refused = log.record(event(Decision::Allow, SystemTime::now())).await;
    assert_eq!(refused, Err(AuditError::WriteFailed));
    assert!(!log.is_writable());
    // The writer starts a fresh segment and recovers; the chain shows the loss.
    let seq = log
        .record(event(Decision::Allow, SystemTime::now()))
        .await
        .unwrap();
    assert_eq!(seq, 2, "the refused record took no seq");
    assert!(log.is_writable());
    assert!(verify(&s.dir).unwrap_err().message.contains("records 1–1"));
}

#[tokio::test]
async fn a_full_queue_is_refused_not_waited_on() {
    let root = tempfile::tempdir().unwrap();
    let mut s = settings(root.path());
    s.queue_capacity = 1;
    let log = Arc::new(AuditLog::open(&s, "test", Arc::new(Metrics::new())).unwrap());
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let log = log.clone();
            tokio::spawn(async move { log.record(event(Decision::Allow, SystemTime::now())).await })
        })
        .collect();
    let mut full = 0;
    let mut written = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => written += 1,
            Err(AuditError::QueueFull) => full += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(written > 0 && full > 0, "written {written}, refused {full}");
    assert_eq!(verify(&s.dir).unwrap().records, written);
}

#[tokio::test]
async fn a_log_cut_at_its_end_is_not_continued() {
    let root = tempfile::tempdir().unwrap();
    let s = settings(root.path());
    write(&s, 10).await;
    let path = only_segment(&s.dir);
    let mut l = lines(&path);
    l.truncate(7);
    rewrite(&path, &l);
    let before = std::fs::read(&path).unwrap();
    let err = AuditLog::open(&s, "test", Arc::new(Metrics::new()))
        .err()
        .expect("records missing from the end stop the start");
    assert!(
        format!("{err:#}").contains("records are missing from its end"),
        "{err:#}"
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the evidence is left as it was"
    );
}

#[tokio::test]
async fn a_different_subject_key_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let s = settings(root.path());
    write(&s, 2).await;
    // The key file is lost (e.g. a volume not mounted) and would be silently replaced.
    std::fs::remove_file(&s.subject_key).unwrap();
    let err = AuditLog::open(&s, "test", Arc::new(Metrics::new()))
        .err()
        .expect("a new key would hide every earlier record from a query");
    assert!(
        format!("{err:#}").contains("restore the key file"),
        "{err:#}"
    );
    assert!(!s.subject_key.exists(), "no replacement key was made");
    // Another key put in its place is refused too.
    subject::SubjectKey::load_or_create(&s.subject_key).unwrap();
    let err = AuditLog::open(&s, "test", Arc::new(Metrics::new()))
        .err()
        .expect("a different key");
    assert!(
        format!("{err:#}").contains("not the subject key"),
        "{err:#}"
    );
}
