//! The audit directory on disk: segment files, the head marker and the retention anchor.
//!
//! ```text
//! audit/
//!   manifest.json                       which instance and which subject key (by id)
//!   audit-00000000000000000001.jsonl    records 1…n (the name is the first seq)
//!   audit-00000000000000001843.jsonl    the chain continues: its first prev_hash is the
//!                                       last hash of the segment before
//!   head.json                           seq and hash of the last committed record
//!   anchor.json                         after retention pruning: seq and hash of the last
//!                                       pruned record, where verification starts
//!   torn/                               bytes of a record cut short by a crash (never
//!                                       acknowledged), kept for inspection
//! ```
//!
//! `head.json` lets `audit verify` notice records cut off the end of the log, which the chain
//! alone cannot show. It is rewritten after each group commit without its own fsync: it may lag
//! the log after a power loss, never lead it.

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

pub const HEAD: &str = "head.json";
pub const ANCHOR: &str = "anchor.json";
pub const TORN_DIR: &str = "torn";

/// File name of the segment whose first record has `first_seq`.
pub fn segment_name(first_seq: u64) -> String {
    format!("audit-{first_seq:020}.jsonl")
}

/// The first seq a segment file name announces, if it is a segment name.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("audit-")?.strip_suffix(".jsonl")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// The segments in `dir`, oldest first.
pub fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let entry = entry?;
        if let Some(first) = entry.file_name().to_str().and_then(parse_segment_name) {
            out.push((first, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// A point in the chain: a record's seq and hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainPoint {
    pub seq: u64,
    pub hash: String,
}

impl ChainPoint {
    /// Whether this point (the head marker) is ahead of `last` (the log's end): records the
    /// writer committed are missing. The head may lag the log, never lead it.
    pub fn leads(&self, last: &ChainPoint) -> bool {
        self.seq > last.seq || (self.seq == last.seq && self.hash != last.hash)
    }
}

/// What `head.json` says.
pub enum Head {
    Missing,
    /// Torn by a power loss while being rewritten (it only ever lags, so nothing is lost).
    Unreadable,
    At(ChainPoint),
}

pub fn read_head(dir: &Path) -> Head {
    match std::fs::read(dir.join(HEAD)) {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Head::Missing,
        Ok(bytes) => serde_json::from_slice(&bytes).map_or(Head::Unreadable, Head::At),
        Err(_) => Head::Missing,
    }
}

/// `anchor.json`: where the retained chain starts after pruning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    /// The last pruned record.
    pub seq: u64,
    pub hash: String,
    /// `end_time` of that record.
    pub pruned_until: String,
    pub pruned_segments: u64,
}

pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .with_context(|| format!("{}: unreadable", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Replaces `path` with `bytes` so readers see the old or the new content, never a mix, and
/// the new content survives a crash (file and directory are synced).
/// Options for a file of the audit log: created readable and writable by the gateway's user
/// only, whatever the umask (the log names who asked about whom).
pub fn private_file() -> std::fs::OpenOptions {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).mode(0o600);
    options
}

/// Creates the audit directory (and its parents) for the gateway's user only.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = private_file()
        .truncate(true)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Makes a directory entry (a new or renamed file) durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync directory {}", dir.display()))
}

/// A segment's bytes, read back.
///
/// The segment being written is preallocated with zeros ahead of the last record (so an
/// `fdatasync` only flushes data, not a file-size change: see the writer). Records never
/// contain a NUL byte, so the records end at the first NUL; everything after it must be zero.
#[derive(Debug, PartialEq, Eq)]
pub struct Contents<'a> {
    /// Complete lines (without their newline) with their 1-based line numbers.
    pub lines: Vec<(usize, &'a [u8])>,
    /// Bytes after the last newline and before the zeros: a record being written, or torn by
    /// a crash.
    pub tail: &'a [u8],
    /// Bytes taken by the complete lines: where the next record goes.
    pub complete_len: usize,
    /// Non-zero bytes inside the zero-filled space after the records.
    pub stray_after_end: bool,
}

pub fn contents(bytes: &[u8]) -> Contents<'_> {
    let data_len = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let stray_after_end = bytes[data_len..].iter().any(|&b| b != 0);
    let data = &bytes[..data_len];
    let complete_len = data.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let mut lines: Vec<(usize, &[u8])> = data[..complete_len]
        .split(|&b| b == b'\n')
        .enumerate()
        .map(|(i, line)| (i + 1, line))
        .collect();
    // `split` yields one empty piece after the final newline.
    if lines.last().is_some_and(|(_, l)| l.is_empty()) {
        lines.pop();
    }
    Contents {
        lines,
        tail: &data[complete_len..],
        complete_len,
        stray_after_end,
    }
}

/// What recovery needs from the newest segment, read in fixed-size chunks: the same reading
/// as [`contents`], without holding a segment (up to `segment_max_bytes`, 64 MiB by default)
/// in memory — the allocator would keep that peak for the life of the process.
#[derive(Debug, PartialEq, Eq)]
pub struct Scan {
    /// The last complete line (without its newline) and its 1-based line number.
    pub last_line: Option<(usize, Vec<u8>)>,
    /// Bytes taken by the complete lines.
    pub complete_len: usize,
    /// Everything after the complete lines up to the last non-zero byte of the file: a torn
    /// record and whatever else of its batch reached the disk. Empty after a clean stop.
    pub torn: Vec<u8>,
    /// The file's length (the complete lines plus torn bytes plus preallocated zeros).
    pub len: usize,
}

/// Reads `reader` once, `chunk` bytes at a time, the way [`contents`] reads a whole segment.
pub fn scan(mut reader: impl std::io::Read, chunk: usize) -> std::io::Result<Scan> {
    let mut buf = vec![0u8; chunk.max(1)];
    let mut len = 0usize;
    let mut lines = 0usize;
    let mut last_line: Option<Vec<u8>> = None;
    // Bytes after the last newline of the records; they become the start of `torn`.
    let mut current: Vec<u8> = Vec::new();
    // `None` while still in the records (before the first NUL).
    let mut after_end: Option<Vec<u8>> = None;
    let mut zeros_pending = 0usize;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        len += n;
        let mut bytes = &buf[..n];
        if after_end.is_none() {
            let records = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
            let data = &bytes[..records];
            if let Some(last_nl) = data.iter().rposition(|&b| b == b'\n') {
                let complete = &data[..last_nl];
                lines += 1 + complete.iter().filter(|&&b| b == b'\n').count();
                last_line = Some(match complete.iter().rposition(|&b| b == b'\n') {
                    Some(prev) => complete[prev + 1..].to_vec(),
                    None => {
                        current.extend_from_slice(complete);
                        std::mem::take(&mut current)
                    }
                });
                current.clear();
                current.extend_from_slice(&data[last_nl + 1..]);
            } else {
                current.extend_from_slice(data);
            }
            if records == bytes.len() {
                continue;
            }
            after_end = Some(std::mem::take(&mut current));
            bytes = &bytes[records..];
        }
        let torn = after_end.as_mut().expect("past the records");
        // Zeros count only when non-zero bytes follow them: trailing zeros are preallocation.
        for &b in bytes {
            if b == 0 {
                zeros_pending += 1;
            } else {
                torn.resize(torn.len() + zeros_pending, 0);
                zeros_pending = 0;
                torn.push(b);
            }
        }
    }
    let torn = after_end.unwrap_or(current);
    let complete_len = len - torn.len() - zeros_pending;
    Ok(Scan {
        last_line: last_line.map(|line| (lines, line)),
        complete_len,
        torn,
        len,
    })
}

/// The last complete line of the segment at `path` (its last record), without holding the
/// segment in memory: read from its end when it ends as the writer closes segments, else
/// (a crash during rotation left zeros or a torn line) scanned in chunks like recovery does.
pub fn last_line(path: &Path) -> Result<Option<Vec<u8>>> {
    if let Some(line) = last_line_of_closed(path)? {
        return Ok(Some(line));
    }
    let scan = std::fs::File::open(path)
        .and_then(|file| scan(file, 1 << 20))
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(scan.last_line.map(|(_, line)| line))
}

/// The last line of a closed segment, read from its end: segments the writer has closed end
/// in a newline, with no preallocated zeros. `None` when this one does not, or holds no
/// complete line.
fn last_line_of_closed(path: &Path) -> Result<Option<Vec<u8>>> {
    use std::os::unix::fs::FileExt;
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let len = file.metadata()?.len();
    let mut window = 16 * 1024u64;
    loop {
        let start = len.saturating_sub(window);
        let mut bytes = vec![0u8; (len - start) as usize];
        file.read_exact_at(&mut bytes, start)?;
        if bytes.last() != Some(&b'\n') || bytes.contains(&0) {
            return Ok(None);
        }
        let body = &bytes[..bytes.len() - 1];
        match body.iter().rposition(|&b| b == b'\n') {
            Some(prev) => return Ok(Some(body[prev + 1..].to_vec())),
            None if start == 0 => return Ok(Some(body.to_vec())),
            None => window *= 4,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn audit_files_and_directories_are_the_gateways_alone() {
        use std::os::unix::fs::PermissionsExt as _;
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("audit");
        super::create_private_dir(&dir).unwrap();
        super::write_atomically(&dir.join("manifest.json"), b"{}").unwrap();
        super::private_file().open(dir.join("head.json")).unwrap();
        for path in [
            dir.clone(),
            dir.join("manifest.json"),
            dir.join("head.json"),
        ] {
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "{} is {mode:o}", path.display());
        }
    }

    use super::*;

    #[test]
    fn segment_names_round_trip_and_sort() {
        assert_eq!(segment_name(1), "audit-00000000000000000001.jsonl");
        assert_eq!(parse_segment_name(&segment_name(1843)), Some(1843));
        for other in [
            "audit-1.jsonl",
            "head.json",
            "audit-0000000000000000000x.jsonl",
        ] {
            assert_eq!(parse_segment_name(other), None, "{other}");
        }
    }

    #[test]
    fn lines_torn_tail_and_preallocated_zeros() {
        let c = contents(b"a\nbb\nccc");
        assert_eq!(c.lines, vec![(1, &b"a"[..]), (2, &b"bb"[..])]);
        assert_eq!((c.tail, c.complete_len), (&b"ccc"[..], 5));
        let c = contents(b"a\n\0\0\0");
        assert_eq!(c.lines, vec![(1, &b"a"[..])]);
        assert!(c.tail.is_empty() && !c.stray_after_end);
        let c = contents(b"a\nb\0\0");
        assert_eq!((c.tail, c.complete_len), (&b"b"[..], 2));
        assert!(contents(b"a\n\0x\0").stray_after_end);
        let c = contents(b"");
        assert!(c.lines.is_empty() && c.tail.is_empty());
    }

    /// What `scan` finds, said the way `contents` says it.
    fn scan_as_contents(bytes: &[u8]) -> Scan {
        let c = contents(bytes);
        let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        Scan {
            last_line: c.lines.last().map(|&(n, l)| (n, l.to_vec())),
            complete_len: c.complete_len,
            torn: bytes[c.complete_len..end.max(c.complete_len)].to_vec(),
            len: bytes.len(),
        }
    }

    #[test]
    fn scan_reads_torn_tails_and_zeros_like_contents() {
        for bytes in [
            &b""[..],
            b"a\nbb\nccc",
            b"a\n\0\0\0",
            b"a\nb\0\0",
            b"a\n\0x\0",
            b"\0\0a\n",
            b"abc",
            b"a\nbb\n",
        ] {
            for chunk in [1, 2, 3, 64] {
                assert_eq!(
                    scan(bytes, chunk).unwrap(),
                    scan_as_contents(bytes),
                    "{bytes:?} in chunks of {chunk}"
                );
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn scan_agrees_with_contents(
            bytes in proptest::collection::vec(proptest::sample::select(vec![b'a', b'\n', 0u8]), 0..200),
            chunk in 1usize..40,
        ) {
            proptest::prop_assert_eq!(scan(&bytes[..], chunk).unwrap(), scan_as_contents(&bytes));
        }
    }

    #[test]
    fn the_last_line_of_a_closed_segment_is_read_from_its_end() {
        let dir = std::env::temp_dir().join(format!("doelpoort-last-line-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("segment");
        let long = "x".repeat(40_000);
        for (text, expected) in [
            (format!("a\nbb\n{long}\n"), Some(long.as_str())),
            (format!("{long}\n"), Some(long.as_str())),
            ("a\nbb\n".to_string(), Some("bb")),
            // Not closed by the writer: `last_line` scans these instead.
            ("a\nbb".to_string(), None),
            ("a\n\0\0".to_string(), None),
            (String::new(), None),
        ] {
            std::fs::write(&path, &text).unwrap();
            assert_eq!(
                last_line_of_closed(&path).unwrap(),
                expected.map(|l| l.as_bytes().to_vec()),
                "{:?}",
                &text[..text.len().min(20)]
            );
        }
        for (text, expected) in [
            ("a\nbb\n", Some("bb")),
            ("a\nbb", Some("a")),
            ("a\n\0\0", Some("a")),
            ("", None),
        ] {
            std::fs::write(&path, text).unwrap();
            assert_eq!(
                last_line(&path).unwrap(),
                expected.map(|l| l.as_bytes().to_vec()),
                "{text:?}"
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
