//! `doelpoort audit verify DIR`: walks the whole chain and names the first broken record.
//!
//! What each kind of tampering looks like from here:
//! - a record edited in place: its hash no longer matches its content;
//! - a record removed: a gap in `seq`, and the next record's `prev_hash` points at it;
//! - records reordered or duplicated: `seq` goes backwards or repeats;
//! - a segment removed: the next segment starts later than the chain expects;
//! - records cut off the end: `head.json` names a later record than the log ends with;
//! - a line cut in the middle (not at the very end): a torn line inside the log.
//!
//! A partial last line of the newest segment is reported as a warning, not a break: it is a
//! record being written right now, or one torn by a crash that the next start repairs.

use super::record::{self, GENESIS_HASH};
use super::segment::{self, Anchor, ChainPoint};
use std::path::{Path, PathBuf};

/// A verified log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub records: u64,
    pub segments: usize,
    /// The first retained record's seq (after pruning, larger than 1).
    pub first_seq: Option<u64>,
    pub last: Option<ChainPoint>,
    pub warnings: Vec<String>,
}

/// The first place the chain is broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    pub file: PathBuf,
    /// 1-based line in `file` (0: the file as a whole).
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for Break {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line > 0 {
            write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
        } else {
            write!(f, "{}: {}", self.file.display(), self.message)
        }
    }
}

fn broken(file: &Path, line: usize, message: impl Into<String>) -> Break {
    Break {
        file: file.to_path_buf(),
        line,
        message: message.into(),
    }
}

/// Verifies the chain in `dir`. `Err` is the first break; an unreadable directory is a break
/// on the directory itself.
///
/// Safe on a live log: the head marker is read before the segments (the writer only moves it
/// forward), and a walk that finds a listed segment gone (pruned meanwhile) starts over.
pub fn verify(dir: &Path) -> Result<Report, Break> {
    let mut attempts = 0;
    loop {
        match verify_once(dir) {
            Err(Failure::Vanished(_)) if attempts < 3 => attempts += 1,
            Err(Failure::Vanished(b) | Failure::Broken(b)) => return Err(b),
            Ok(report) => return Ok(report),
        }
    }
}

enum Failure {
    Broken(Break),
    /// A listed segment disappeared while the walk ran.
    Vanished(Break),
}

impl From<Break> for Failure {
    fn from(b: Break) -> Self {
        Self::Broken(b)
    }
}

fn verify_once(dir: &Path) -> Result<Report, Failure> {
    let head = segment::read_head(dir);
    let anchor_path = dir.join(segment::ANCHOR);
    let anchor = segment::read_json::<Anchor>(&anchor_path)
        .map_err(|e| broken(&anchor_path, 0, format!("{e:#}")))?;
    let segments = segment::list_segments(dir).map_err(|e| broken(dir, 0, format!("{e:#}")))?;
    let mut report = Report {
        records: 0,
        segments: segments.len(),
        first_seq: None,
        last: None,
        warnings: Vec::new(),
    };
    // Where the chain must continue: after the anchor, or from the beginning.
    let mut expected = match &anchor {
        Some(a) => ChainPoint {
            seq: a.seq,
            hash: a.hash.clone(),
        },
        None => ChainPoint {
            seq: 0,
            hash: GENESIS_HASH.into(),
        },
    };
    // A crash between moving the anchor and deleting its segment leaves records up to the
    // anchor still on disk: accepted when that segment chains to exactly the anchor.
    let mut anchor_to_meet: Option<&Anchor> = None;
    if let (Some(a), Some((first, _))) = (&anchor, segments.first()) {
        if *first <= a.seq {
            anchor_to_meet = Some(a);
            expected = ChainPoint {
                seq: first - 1,
                hash: String::new(), // the pruned predecessor: not checked
            };
        }
    }
    let last_index = segments.len().saturating_sub(1);
    let mut chain = Chain::new(expected);
    for (index, (named_first, path)) in segments.iter().enumerate() {
        let expected = &chain.expected;
        if *named_first == 0 || expected.seq >= u64::MAX / 2 {
            return Err(Failure::Broken(broken(
                path,
                0,
                "implausible sequence number",
            )));
        }
        if *named_first != expected.seq + 1 {
            let message = if *named_first > expected.seq + 1 {
                format!(
                    "the chain continues at seq {} but this segment starts at seq {named_first}: records {}–{} are missing (a segment was removed?)",
                    expected.seq + 1,
                    expected.seq + 1,
                    named_first - 1
                )
            } else {
                format!(
                    "this segment starts at seq {named_first}, but seq {} was already seen: segments overlap",
                    named_first
                )
            };
            return Err(Failure::Broken(broken(path, 0, message)));
        }
        let bytes = std::fs::read(path).map_err(|e| {
            let b = broken(path, 0, format!("cannot read: {e}"));
            if e.kind() == std::io::ErrorKind::NotFound {
                Failure::Vanished(b)
            } else {
                Failure::Broken(b)
            }
        })?;
        let segment::Contents {
            lines,
            tail,
            stray_after_end,
            ..
        } = segment::contents(&bytes);
        if lines.is_empty() {
            report
                .warnings
                .push(format!("{}: empty segment", path.display()));
        }
        for &(line_no, line) in &lines {
            let stored =
                record::parse_line(line).map_err(|e| broken(path, line_no, e.to_string()))?;
            chain
                .follow(&stored)
                .map_err(|message| Failure::Broken(broken(path, line_no, message)))?;
            if let Some(a) = anchor_to_meet {
                if stored.seq == a.seq {
                    if stored.hash != a.hash {
                        return Err(Failure::Broken(broken(
                            path,
                            line_no,
                            format!("record seq {} differs from the retention anchor", a.seq),
                        )));
                    }
                    anchor_to_meet = None;
                }
            }
            report.first_seq.get_or_insert(stored.seq);
            report.records += 1;
        }
        if stray_after_end {
            let line_no = lines.len() + 1;
            if index == last_index {
                // The live segment: a batch landing while this walk read the file.
                report.warnings.push(format!(
                    "{}:{line_no}: records were being written while the log was read; run verify again for them",
                    path.display()
                ));
            } else {
                return Err(Failure::Broken(broken(
                    path,
                    line_no,
                    "bytes after the last record, inside the zero-filled space where no record was written",
                )));
            }
        }
        if !tail.is_empty() {
            let line_no = lines.len() + 1;
            if index == last_index {
                report.warnings.push(format!(
                    "{}:{line_no}: the last line is incomplete (a record being written, or torn by a crash; the gateway repairs it at its next start)",
                    path.display()
                ));
            } else {
                return Err(Failure::Broken(broken(
                    path,
                    line_no,
                    "a torn line inside the log (only the newest segment may end mid-record)",
                )));
            }
        }
    }
    if let Some(a) = anchor_to_meet {
        return Err(Failure::Broken(broken(
            &anchor_path,
            0,
            format!(
                "the retention anchor names seq {} but the log never reaches it",
                a.seq
            ),
        )));
    }
    check_head(dir, head, &chain.expected, &mut report)?;
    for tx in chain.open_intents() {
        report.warnings.push(format!(
            "exchange {tx}: outcome unknown (an intent record without its outcome: the gateway stopped while the partner was called, or the exchange is still under way)"
        ));
    }
    if report.records > 0 {
        report.last = Some(chain.expected);
    }
    Ok(report)
}

/// The rules every chain is held to, wherever it is stored (segment files, or the central
/// store: [`super::central`]): each record follows the one before it, by seq and by
/// `prev_hash`, and is byte for byte what the gateway wrote. Intent records (write-ahead for
/// state-changing exchanges) are matched with the outcomes that close them: an intent left
/// open is reported, not a break of the chain.
pub(super) struct Chain {
    /// The last record followed (the genesis, or the anchor, before the first); an empty
    /// hash means the predecessor was pruned and is not checked.
    pub expected: ChainPoint,
    intents: Vec<String>,
    outcomes: std::collections::HashSet<String>,
}

impl Chain {
    pub fn new(expected: ChainPoint) -> Self {
        Self {
            expected,
            intents: Vec::new(),
            outcomes: std::collections::HashSet::new(),
        }
    }

    /// Follows `stored`, or says why it does not continue the chain.
    pub fn follow(&mut self, stored: &record::StoredRecord) -> Result<(), String> {
        let expected = &self.expected;
        if stored.seq >= u64::MAX / 2 {
            return Err("implausible sequence number".into());
        }
        if stored.seq != expected.seq + 1 {
            return Err(if stored.seq > expected.seq + 1 {
                format!(
                    "seq {} follows seq {}: records {}–{} are missing here (removed or moved)",
                    stored.seq,
                    expected.seq,
                    expected.seq + 1,
                    stored.seq - 1
                )
            } else {
                format!(
                    "seq {} follows seq {}: records were reordered or duplicated",
                    stored.seq, expected.seq
                )
            });
        }
        if !expected.hash.is_empty() && stored.prev_hash != expected.hash {
            return Err(format!(
                "record seq {} does not chain to the record before it (prev_hash differs): that record was changed, removed or replaced",
                stored.seq
            ));
        }
        if !stored.hash_matches {
            return Err(format!(
                "record seq {} was changed after it was written (its hash does not match its content)",
                stored.seq
            ));
        }
        if !stored.canonical {
            return Err(format!(
                "record seq {} was changed after it was written (not byte for byte what the gateway writes: reformatted, or a member added)",
                stored.seq
            ));
        }
        if let Some(tx) = stored.attribute("doelpoort.transaction_id") {
            if stored.is_intent() {
                self.intents.push(tx.to_string());
            } else {
                self.outcomes.insert(tx.to_string());
            }
        }
        self.expected = ChainPoint {
            seq: stored.seq,
            hash: stored.hash.clone(),
        };
        Ok(())
    }

    /// Transaction ids of intents no outcome record closed.
    pub fn open_intents(&self) -> impl Iterator<Item = &str> {
        self.intents
            .iter()
            .filter(|tx| !self.outcomes.contains(*tx))
            .map(String::as_str)
    }
}

/// `head.json` may lag the log (it is not synced, and a live log grows while it is read),
/// never lead it.
fn check_head(
    dir: &Path,
    head: segment::Head,
    last: &ChainPoint,
    report: &mut Report,
) -> Result<(), Break> {
    let path = dir.join(segment::HEAD);
    let head = match head {
        segment::Head::At(head) => head,
        segment::Head::Unreadable => {
            report.warnings.push(format!(
                "{}: unreadable; the end of the log is not checked",
                path.display()
            ));
            return Ok(());
        }
        segment::Head::Missing => {
            report.warnings.push(format!(
                "{}: missing; records cut off the end of the log would not be noticed",
                path.display()
            ));
            return Ok(());
        }
    };
    if !head.leads(last) {
        return Ok(());
    }
    if head.seq > last.seq {
        return Err(broken(
            &path,
            0,
            format!(
                "the log ends at seq {} but the writer had committed up to seq {}: records were cut off the end",
                last.seq, head.seq
            ),
        ));
    }
    Err(broken(
        &path,
        0,
        format!(
            "the last record (seq {}) is not the one the writer committed",
            last.seq
        ),
    ))
}
