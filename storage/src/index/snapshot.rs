//! Local index snapshots: consistent copies of every table, taken from one read
//! transaction into a new redb file, so an operator can roll back to a recent index when
//! the live one is damaged (README, "Restoring the index").
//!
//! redb offers no backup of a live file (a raw copy during commits is torn, and
//! savepoints live in the same file, sharing its pages), so a snapshot is a logical
//! copy: every table is opened with its own definition and copied entry by entry. A
//! table this module does not know fails the snapshot (a new table must be added here),
//! and walking every table is also a full read of the index's tree: damage shows as a
//! failed snapshot, counted and logged, long before the next restart.

use std::path::{Path, PathBuf};

use redb::{
    Database, Key, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, TableHandle,
    Value, WriteTransaction,
};

use super::{
    BUCKETS, CHUNKS, COMPLETED_BY_TIME, COMPLETED_UPLOADS, GC_QUEUE, Index, MANIFESTS, META,
    OBJECTS, ORPHAN_PACKS, PACKS, PARTS, STATS, UPLOADS, UPLOADS_BY_KEY, VERSIONS, now_ms,
};
use crate::error::{Error, Result};
use crate::records::{
    BucketRecord, ChunkRecord, CompletedUploadRecord, ManifestSegment, ObjectRecord, PackRecord,
    PartRecord, UploadRecord,
};

/// Snapshot schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotSettings {
    /// Time between snapshots; `None` = no snapshots.
    pub interval: Option<std::time::Duration>,
    /// Snapshots kept (the oldest beyond this are deleted after a new one is written).
    pub keep: usize,
}

impl Default for SnapshotSettings {
    fn default() -> Self {
        SnapshotSettings {
            interval: Some(std::time::Duration::from_secs(3600)),
            keep: 3,
        }
    }
}

/// A written snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// Its file.
    pub path: PathBuf,
    /// Entries copied over all tables.
    pub entries: u64,
    /// Its size in bytes.
    pub bytes: u64,
}

/// Where the snapshots of the index in `data_dir` live.
pub fn snapshot_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("index-snapshots")
}

fn copy_table<K: Key + 'static, V: Value + 'static>(
    src: &ReadTransaction,
    dst: &WriteTransaction,
    def: TableDefinition<K, V>,
    copied: &mut Vec<String>,
) -> Result<u64> {
    let from = src.open_table(def)?;
    let mut to = dst.open_table(def)?;
    let mut n = 0u64;
    for r in from.iter()? {
        let (k, v) = r?;
        to.insert(k.value(), v.value())?;
        n += 1;
    }
    copied.push(def.name().to_owned());
    Ok(n)
}

/// Copies a table of encoded records, decoding each first: a snapshot never takes a
/// record that fails its checksum, so damage cannot roll through all kept snapshots.
fn copy_records<K: Key + 'static>(
    src: &ReadTransaction,
    dst: &WriteTransaction,
    def: TableDefinition<K, &'static [u8]>,
    check: fn(&[u8]) -> Result<()>,
    copied: &mut Vec<String>,
) -> Result<u64> {
    let from = src.open_table(def)?;
    let mut to = dst.open_table(def)?;
    let mut n = 0u64;
    for r in from.iter()? {
        let (k, v) = r?;
        check(v.value()).map_err(|e| {
            Error::corrupt(
                "index",
                format!(
                    "table {}: {e}; snapshot not taken (run s3dedup fsck)",
                    def.name()
                ),
            )
        })?;
        to.insert(k.value(), v.value())?;
        n += 1;
    }
    copied.push(def.name().to_owned());
    Ok(n)
}

fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(Error::backend)
}

impl Index {
    /// Writes a snapshot of the whole index into `dir` as `index-<ms>.redb` (written
    /// under a temporary name, synced, then renamed, so a crash never leaves a partial
    /// snapshot under a snapshot's name).
    ///
    /// # Errors
    /// [`Error::Index`] when a table cannot be read (damage) or written; [`Error::Internal`]
    /// when the index holds a table snapshots do not cover.
    pub(crate) fn snapshot(&self, dir: &Path) -> Result<SnapshotInfo> {
        std::fs::create_dir_all(dir).map_err(Error::backend)?;
        let name = format!("index-{:013}.redb", now_ms());
        self.snapshot_to(&dir.join(&name))
    }

    /// Writes a snapshot of the whole index to `path` (through `path.tmp`, synced and
    /// renamed; the directory is synced too).
    ///
    /// # Errors
    /// As [`Index::snapshot`].
    pub(crate) fn snapshot_to(&self, path: &Path) -> Result<SnapshotInfo> {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut tmp_name = path.as_os_str().to_owned();
        tmp_name.push(".tmp");
        let tmp = PathBuf::from(tmp_name);
        let path = path.to_owned();
        let _ = std::fs::remove_file(&tmp);
        let result = self.copy_into(&tmp);
        let entries = match result {
            Ok(n) => n,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(Error::backend)?;
        std::fs::rename(&tmp, &path).map_err(Error::backend)?;
        sync_dir(dir)?;
        let bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
        Ok(SnapshotInfo {
            path,
            entries,
            bytes,
        })
    }

    fn copy_into(&self, dest: &Path) -> Result<u64> {
        let src = self.db.begin_read()?;
        let out = Database::create(dest)?;
        let dst = out.begin_write()?;
        let mut copied = Vec::new();
        let c = &mut copied;
        let mut n = 0;
        n += copy_table(&src, &dst, META, c)?;
        {
            // Marks the copy as a snapshot: an index restored from it never sweeps
            // unknown packs newer than this (they may hold data written after it).
            let mut meta = dst.open_table(META)?;
            let taken = now_ms();
            let earlier = meta
                .get(super::gc::KEY_SNAPSHOT_TAKEN)?
                .and_then(|v| v.value().try_into().ok().map(u64::from_le_bytes));
            let at = earlier.map_or(taken, |e: u64| e.min(taken));
            meta.insert(super::gc::KEY_SNAPSHOT_TAKEN, at.to_le_bytes().as_slice())?;
        }
        n += copy_table(&src, &dst, STATS, c)?;
        n += copy_records(
            &src,
            &dst,
            BUCKETS,
            |b| BucketRecord::decode(b).map(drop),
            c,
        )?;
        n += copy_records(
            &src,
            &dst,
            OBJECTS,
            |b| ObjectRecord::decode(b).map(drop),
            c,
        )?;
        n += copy_records(
            &src,
            &dst,
            VERSIONS,
            |b| crate::version_entry::VersionEntry::decode(b).map(drop),
            c,
        )?;
        n += copy_records(
            &src,
            &dst,
            super::LOCKS,
            |b| crate::lock::LockRecord::decode(b).map(drop),
            c,
        )?;
        n += copy_records(
            &src,
            &dst,
            super::BUCKET_CONFIGS,
            super::configs::check_sealed,
            c,
        )?;
        n += copy_records(
            &src,
            &dst,
            super::IDENTITIES,
            super::configs::check_sealed,
            c,
        )?;
        n += copy_table(&src, &dst, super::usage::BUCKET_USAGE, c)?;
        n += copy_table(&src, &dst, super::usage::TENANT_USAGE, c)?;
        n += copy_records(
            &src,
            &dst,
            MANIFESTS,
            |b| ManifestSegment::decode(b).map(drop),
            c,
        )?;
        n += copy_records(&src, &dst, CHUNKS, |b| ChunkRecord::decode(b).map(drop), c)?;
        n += copy_table(&src, &dst, GC_QUEUE, c)?;
        n += copy_records(&src, &dst, PACKS, |b| PackRecord::decode(b).map(drop), c)?;
        n += copy_table(&src, &dst, ORPHAN_PACKS, c)?;
        n += copy_records(
            &src,
            &dst,
            UPLOADS,
            |b| UploadRecord::decode(b).map(drop),
            c,
        )?;
        n += copy_table(&src, &dst, UPLOADS_BY_KEY, c)?;
        n += copy_records(&src, &dst, PARTS, |b| PartRecord::decode(b).map(drop), c)?;
        n += copy_records(
            &src,
            &dst,
            COMPLETED_UPLOADS,
            |b| CompletedUploadRecord::decode(b).map(drop),
            c,
        )?;
        n += copy_table(&src, &dst, COMPLETED_BY_TIME, c)?;
        n += copy_records(
            &src,
            &dst,
            super::journal::OUTBOX,
            |b| crate::journal::entry::Entry::decode(b).map(drop),
            c,
        )?;
        n += copy_table(&src, &dst, super::journal::STATE, c)?;
        for t in src.list_tables()? {
            if !copied.iter().any(|c| c == t.name()) {
                return Err(Error::Internal(format!(
                    "index table {:?} is not covered by snapshots",
                    t.name()
                )));
            }
        }
        if src.list_multimap_tables()?.next().is_some() {
            return Err(Error::Internal(
                "index multimap tables are not covered by snapshots".into(),
            ));
        }
        dst.commit()?;
        Ok(n)
    }
}

/// Deletes the oldest snapshots in `dir` beyond `keep` (and leftover temporary files).
///
/// # Errors
/// [`Error::Backend`] when the directory cannot be read.
pub(crate) fn prune_snapshots(dir: &Path, keep: usize) -> Result<Vec<PathBuf>> {
    let mut snaps = Vec::new();
    for e in std::fs::read_dir(dir).map_err(Error::backend)? {
        let p = e.map_err(Error::backend)?.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with("index-") && name.ends_with(".redb.tmp") {
            let _ = std::fs::remove_file(&p);
        } else if name.starts_with("index-") && name.ends_with(".redb") {
            snaps.push(p);
        }
    }
    snaps.sort();
    let excess = snaps.len().saturating_sub(keep);
    let removed: Vec<PathBuf> = snaps.into_iter().take(excess).collect();
    for p in &removed {
        std::fs::remove_file(p).map_err(Error::backend)?;
    }
    Ok(removed)
}
