//! The writer's start and its retention: continuing the chain after a stop or a crash
//! (cutting a torn tail, refusing a log that lost its end), and pruning old segments.

use crate::audit::record;
use crate::audit::segment::{self, Anchor, ChainPoint};
use anyhow::{Context as _, Result};
use std::fs::File;
use std::io::Write;
use std::path::Path;

/// Prepares `dir` to continue its chain after a stop or a crash; returns the last record.
///
/// Only the newest segment can end in a torn line (the writer appends nowhere else). Its
/// bytes after the last newline belong to a batch whose fsync never completed, so no exchange
/// was answered on it: they are moved to `torn/` for inspection and cut from the segment. The
/// last complete record must verify against its own hash and must not end the log before the
/// last record the writer committed (`head.json`) — otherwise the log was damaged in a way
/// recovery must not paper over, and the gateway refuses to start, changing nothing.
pub fn recover(dir: &Path) -> Result<ChainPoint> {
    let segments = segment::list_segments(dir)?;
    let mut repairs = Vec::new();
    let mut last = None;
    for (_, path) in segments.iter().rev() {
        // Read in chunks, not whole: a segment is up to 64 MiB, and the allocator would keep
        // that peak for the life of the process.
        let scan = std::fs::File::open(path)
            .and_then(|file| segment::scan(file, 1 << 20))
            .with_context(|| format!("cannot read {}", path.display()))?;
        if scan.complete_len < scan.len {
            // A torn record, and after a power loss possibly more of that unacknowledged batch
            // beyond a gap of zeros: everything after the last complete line, minus the zeros.
            repairs.push((path.clone(), scan.complete_len, scan.torn));
        }
        let Some((line_no, line)) = scan.last_line else {
            // An empty segment (created just before a crash) holds nothing; look further back.
            continue;
        };
        let stored = record::parse_line(&line).map_err(|e| {
            anyhow::anyhow!(
                "{}:{line_no}: the last audit record is damaged ({e}); run `doelpoort audit verify {}`",
                path.display(),
                dir.display()
            )
        })?;
        anyhow::ensure!(
            stored.hash_matches && stored.canonical && stored.seq < u64::MAX / 2,
            "{}:{line_no}: the last audit record does not match its hash; run `doelpoort audit verify {}`",
            path.display(),
            dir.display()
        );
        last = Some(ChainPoint {
            seq: stored.seq,
            hash: stored.hash,
        });
        break;
    }
    // No records: a fresh log, or one pruned to nothing (continue from the anchor).
    let last = match last {
        Some(point) => point,
        None => match segment::read_json::<Anchor>(&dir.join(segment::ANCHOR))? {
            Some(anchor) => ChainPoint {
                seq: anchor.seq,
                hash: anchor.hash,
            },
            None => ChainPoint {
                seq: 0,
                hash: record::GENESIS_HASH.into(),
            },
        },
    };
    check_against_head(dir, &last)?;
    for (path, complete_len, tail) in repairs {
        if !tail.is_empty() {
            quarantine_torn(dir, &path, complete_len, &tail)?;
            tracing::warn!(
                segment = %path.display(),
                bytes = tail.len(),
                "the audit log ended in a torn record (a crash during a write); it was never acknowledged and was moved to torn/"
            );
        }
        // Cut the torn record and the unused preallocated zeros: this segment is closed.
        let file = std::fs::OpenOptions::new().write(true).open(&path)?;
        file.set_len(complete_len as u64)?;
        file.sync_all()?;
    }
    Ok(last)
}

/// Refuses to continue a log that ends before the last record the writer committed: records
/// were removed from its end (or the disk lost them), and continuing would write over the
/// evidence. `head.json` may lag the log after a power loss, never lead it.
fn check_against_head(dir: &Path, last: &ChainPoint) -> Result<()> {
    let segment::Head::At(head) = segment::read_head(dir) else {
        return Ok(());
    };
    let path = dir.join(segment::HEAD);
    anyhow::ensure!(
        !head.leads(last),
        "the audit log ends at seq {} but {} records seq {} as committed: records are missing from its end. \
         Investigate (doelpoort audit verify {}); to continue the log deliberately from what is left, move head.json aside",
        last.seq,
        path.display(),
        head.seq,
        dir.display()
    );
    Ok(())
}

fn quarantine_torn(dir: &Path, segment: &Path, offset: usize, bytes: &[u8]) -> Result<()> {
    let torn = dir.join(segment::TORN_DIR);
    std::fs::create_dir_all(&torn)?;
    let name = format!(
        "{}.{offset}.partial",
        segment
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("segment")
    );
    let mut file = File::create(torn.join(name))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}

/// Deletes segments (never `current`) whose last record ended before `cutoff`, oldest first.
pub fn prune_before(dir: &Path, cutoff: &str, current: Option<&Path>) -> Result<u64> {
    let mut pruned = 0;
    let mut anchor = segment::read_json::<Anchor>(&dir.join(segment::ANCHOR))?;
    for (_, path) in segment::list_segments(dir)? {
        if Some(path.as_path()) == current {
            break;
        }
        // Read from the end: pruning runs on the writer thread (at rotation, between group
        // commits), and a whole segment is up to 64 MiB.
        let Some(line) = segment::last_line(&path)? else {
            break;
        };
        let last =
            record::parse_line(&line).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let ended = last.field("end_time").unwrap_or_default().to_string();
        if ended.as_str() >= cutoff {
            break;
        }
        let next = Anchor {
            seq: last.seq,
            hash: last.hash.clone(),
            pruned_until: ended,
            pruned_segments: anchor.as_ref().map_or(0, |a| a.pruned_segments) + 1,
        };
        // The anchor moves first: a crash between the two steps leaves an anchor pointing at
        // a record that still exists, which verification accepts.
        segment::write_atomically(
            &dir.join(segment::ANCHOR),
            (serde_json::to_string_pretty(&next)? + "\n").as_bytes(),
        )?;
        std::fs::remove_file(&path)?;
        segment::sync_dir(dir)?;
        tracing::info!(segment = %path.display(), "pruned an audit segment past its retention period");
        anchor = Some(next);
        pruned += 1;
    }
    Ok(pruned)
}
