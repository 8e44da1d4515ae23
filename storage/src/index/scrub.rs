//! Scrub's persistent state in `meta`: the cursor of a run in progress (so a restarted
//! scrub resumes where it stopped) and the summary of the last finished run. Both are
//! versioned little-endian records (a version byte first).

use redb::ReadableDatabase;

use super::{Index, META, PACKS};
use crate::error::{Error, Result};
use crate::records::PackRecord;

const KEY_CURSOR: &str = "scrub_cursor";
const KEY_LAST: &str = "scrub_last";
const VERSION: u8 = 1;

/// Where an unfinished scrub run stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScrubCursor {
    /// When the run started, ms.
    pub started_ms: u64,
    /// Packs with ids up to this one are done.
    pub after: u128,
    /// Counts so far.
    pub totals: ScrubTotals,
}

/// Counts of a scrub run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScrubTotals {
    /// Packs read.
    pub packs: u64,
    /// Chunks verified.
    pub chunks: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Chunks found damaged (and marked).
    pub damaged: u64,
}

/// The last finished scrub run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScrubLast {
    /// When it started and finished, ms.
    pub started_ms: u64,
    /// When it finished, ms.
    pub finished_ms: u64,
    /// Its counts.
    pub totals: ScrubTotals,
}

fn put_totals(out: &mut Vec<u8>, t: &ScrubTotals) {
    for v in [t.packs, t.chunks, t.bytes, t.damaged] {
        out.extend_from_slice(&v.to_le_bytes());
    }
}

fn totals(b: &[u8]) -> ScrubTotals {
    let u = |i: usize| u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
    ScrubTotals {
        packs: u(0),
        chunks: u(1),
        bytes: u(2),
        damaged: u(3),
    }
}

fn bad(what: &'static str) -> Error {
    Error::corrupt(what, "unexpected length or version")
}

impl ScrubCursor {
    fn encode(&self) -> Vec<u8> {
        let mut out = vec![VERSION];
        out.extend_from_slice(&self.started_ms.to_le_bytes());
        out.extend_from_slice(&self.after.to_le_bytes());
        put_totals(&mut out, &self.totals);
        out
    }
    fn decode(b: &[u8]) -> Result<Self> {
        if b.len() != 1 + 8 + 16 + 32 || b[0] != VERSION {
            return Err(bad("scrub cursor"));
        }
        Ok(ScrubCursor {
            started_ms: u64::from_le_bytes(b[1..9].try_into().expect("8 bytes")),
            after: u128::from_le_bytes(b[9..25].try_into().expect("16 bytes")),
            totals: totals(&b[25..]),
        })
    }
}

impl ScrubLast {
    fn encode(&self) -> Vec<u8> {
        let mut out = vec![VERSION];
        out.extend_from_slice(&self.started_ms.to_le_bytes());
        out.extend_from_slice(&self.finished_ms.to_le_bytes());
        put_totals(&mut out, &self.totals);
        out
    }
    fn decode(b: &[u8]) -> Result<Self> {
        if b.len() != 1 + 16 + 32 || b[0] != VERSION {
            return Err(bad("scrub summary"));
        }
        Ok(ScrubLast {
            started_ms: u64::from_le_bytes(b[1..9].try_into().expect("8 bytes")),
            finished_ms: u64::from_le_bytes(b[9..17].try_into().expect("8 bytes")),
            totals: totals(&b[17..]),
        })
    }
}

impl Index {
    /// The cursor of an unfinished scrub, and the last finished one.
    ///
    /// # Errors
    /// [`Error::Index`], or a damaged record.
    pub(crate) fn scrub_state(&self) -> Result<(Option<ScrubCursor>, Option<ScrubLast>)> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        let cursor = meta
            .get(KEY_CURSOR)?
            .map(|v| ScrubCursor::decode(v.value()))
            .transpose()?;
        let last = meta
            .get(KEY_LAST)?
            .map(|v| ScrubLast::decode(v.value()))
            .transpose()?;
        Ok((cursor, last))
    }

    /// Records scrub progress (after each pack).
    pub(crate) fn save_scrub_cursor(
        &self,
        cursor: ScrubCursor,
    ) -> impl Future<Output = Result<()>> + use<> {
        self.committer.submit(move |txn| {
            txn.open_table(META)?
                .insert(KEY_CURSOR, cursor.encode().as_slice())?;
            Ok(())
        })
    }

    /// Ends a scrub run: the cursor goes, the summary stays.
    pub(crate) fn finish_scrub(&self, last: ScrubLast) -> impl Future<Output = Result<()>> + use<> {
        self.committer.submit(move |txn| {
            let mut meta = txn.open_table(META)?;
            meta.remove(KEY_CURSOR)?;
            meta.insert(KEY_LAST, last.encode().as_slice())?;
            Ok(())
        })
    }

    /// The next `n` packs with ids after `after` that are not being deleted.
    ///
    /// # Errors
    /// [`Error::Index`] or a decode error.
    pub(crate) fn packs_after(&self, after: u128, n: usize) -> Result<Vec<(u128, PackRecord)>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(PACKS)?;
        let mut out = Vec::new();
        let start = after.checked_add(1);
        let Some(start) = start else {
            return Ok(out);
        };
        for r in t.range(start..)? {
            let (k, v) = r?;
            let rec = PackRecord::decode(v.value())?;
            if rec.deleting_since_ms.is_none() {
                out.push((k.value(), rec));
                if out.len() >= n {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// How many packs are known (for scrub progress).
    ///
    /// # Errors
    /// [`Error::Index`].
    pub(crate) fn pack_count(&self) -> Result<u64> {
        use redb::ReadableTableMetadata as _;
        let txn = self.db.begin_read()?;
        Ok(txn.open_table(PACKS)?.len()?)
    }
}
