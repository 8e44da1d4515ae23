//! Journal entries: one metadata change each, versioned and sealed with a CRC32C.
//!
//! ```text
//! version u8 (1) | kind u8 | seq u64 | time_ms u64 | fields … | crc32c u32
//! ```
//!
//! Records that already have a versioned encoding (bucket, object, chunk) are embedded
//! in it, so a record layout change is one change. An object entry carries its slices
//! (its manifest) because manifest ids are local to one index.

use crate::codec::{Reader, Writer};
use crate::error::{Error, Result};
use crate::id::ChunkId;
use crate::lock::LockRecord;
use crate::records::{BucketRecord, ChunkRecord, ObjectRecord, Slice, read_slices, write_slices};
use crate::version_entry::DeleteMarker;
use crate::versions::Version;

const ENTRY_V1: u8 = 1;
const KIND_CHUNK_REF: u8 = 8;

/// Whether an encoded entry is a [`Change::ChunkRef`] (read from its kind byte, without
/// decoding it).
pub(crate) fn is_chunk_ref(encoded: &[u8]) -> bool {
    encoded.get(1) == Some(&KIND_CHUNK_REF)
}
/// Most slices one entry carries (~2.5 MiB): a segment or snapshot part never has to
/// hold an entry of unbounded size, whatever the object's.
pub(crate) const ENTRY_SLICES: usize = 1 << 16;

/// The changes that journal bucket/key's new version: one [`Change::Object`] with the
/// first slices, then [`Change::ObjectSlices`] for the rest.
pub(crate) fn object_changes(
    bucket: &str,
    key: &str,
    record: &ObjectRecord,
    slices: &[Slice],
) -> Vec<Change> {
    let mut parts = slices.chunks(ENTRY_SLICES);
    let first = parts.next().unwrap_or_default().to_vec();
    let mut out = vec![Change::Object {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        record: record.clone(),
        slices: first,
    }];
    out.extend(parts.map(|p| Change::ObjectSlices {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        slices: p.to_vec(),
    }));
    out
}

/// One metadata change, as the index made it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Change {
    /// A bucket was created (or its record changed).
    Bucket {
        /// Bucket name.
        name: String,
        /// Its record.
        record: BucketRecord,
    },
    /// A bucket was deleted.
    BucketGone {
        /// Bucket name.
        name: String,
    },
    /// bucket/key now has this version (its `manifest.id` means nothing elsewhere).
    Object {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// The record.
        record: ObjectRecord,
        /// Its manifest.
        slices: Vec<Slice>,
    },
    /// More slices of the object the entry before wrote (a manifest longer than
    /// [`ENTRY_SLICES`] is journaled in several entries of one transaction).
    ObjectSlices {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// The next slices, in order.
        slices: Vec<Slice>,
    },
    /// bucket/key was deleted.
    ObjectGone {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
    },
    /// A chunk was stored or moved: its length, checksum and location (inline chunks
    /// carry their stored bytes). Its refcount here means nothing: a rebuild recounts.
    Chunk {
        /// Chunk id.
        id: ChunkId,
        /// Its record at the time.
        record: ChunkRecord,
    },
    /// In the outbox only: chunk `id` was stored or moved. Shipping resolves it to a
    /// [`Change::Chunk`] with the chunk's record at that time (or [`Change::ChunkGone`]),
    /// so the outbox never holds a second copy of an inline chunk's bytes.
    ChunkRef {
        /// Chunk id.
        id: ChunkId,
    },
    /// The chunk was no longer in the index when its change was shipped.
    ChunkGone {
        /// Chunk id.
        id: ChunkId,
    },
    /// bucket/key's current object became a noncurrent version (an overwrite or a
    /// delete in a versioned bucket): it moves to the key's versions under its seq.
    Demote {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
    },
    /// Noncurrent version `seq` of bucket/key became the current object again.
    Promote {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// Its sequence number.
        seq: u64,
    },
    /// A delete marker was added to bucket/key's versions.
    Marker {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// The marker.
        marker: DeleteMarker,
    },
    /// Version `seq` (noncurrent object or delete marker) of bucket/key was removed.
    VersionGone {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// Its sequence number.
        seq: u64,
    },
    /// The object lock record of version `seq` of bucket/key (empty: removed).
    Lock {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// The version's sequence number.
        seq: u64,
        /// Its lock.
        record: LockRecord,
    },
    /// A bucket's configuration of one kind (`lifecycle` …), encoded by its owner
    /// (empty: removed).
    BucketConfig {
        /// Bucket.
        bucket: String,
        /// What it configures.
        kind: String,
        /// The encoded configuration.
        value: Vec<u8>,
    },
    /// An identity record (`tenant`, `user` as `tenant/user`, `key` by access key id,
    /// `domain` by canonical id, or `retired` by tenant name; see `crate::identity`), encoded by its owner (empty: removed).
    Identity {
        /// `tenant`, `user`, `key`, `domain` or `retired`.
        kind: String,
        /// Its name in that kind.
        name: String,
        /// The encoded record.
        value: Vec<u8>,
    },
    /// A `meta` value a rebuild needs (key records, chunker parameters).
    Meta {
        /// Meta key.
        key: String,
        /// Value.
        value: Vec<u8>,
    },
}

/// A numbered change.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    /// Position in the journal (ascending, gap-free per index).
    pub(crate) seq: u64,
    /// When the change committed, ms since the epoch.
    pub(crate) time_ms: u64,
    /// What changed.
    pub(crate) change: Change,
}

impl Entry {
    /// Encodes the entry.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u8(ENTRY_V1);
        let kind = match &self.change {
            Change::Bucket { .. } => 1,
            Change::BucketGone { .. } => 2,
            Change::Object { .. } => 3,
            Change::ObjectGone { .. } => 4,
            Change::Chunk { .. } => 5,
            Change::Meta { .. } => 6,
            Change::ObjectSlices { .. } => 7,
            Change::ChunkRef { .. } => KIND_CHUNK_REF,
            Change::ChunkGone { .. } => 9,
            Change::Demote { .. } => 10,
            Change::Promote { .. } => 11,
            Change::Marker { .. } => 12,
            Change::VersionGone { .. } => 13,
            Change::Lock { .. } => 14,
            Change::BucketConfig { .. } => 15,
            Change::Identity { .. } => 16,
        };
        w.u8(kind).u64(self.seq).u64(self.time_ms);
        match &self.change {
            Change::Bucket { name, record } => {
                w.str(name).bytes(&record.encode());
            }
            Change::BucketGone { name } => {
                w.str(name);
            }
            Change::Object {
                bucket,
                key,
                record,
                slices,
            } => {
                w.str(bucket).str(key).bytes(&record.encode());
                write_slices(&mut w, slices);
            }
            Change::ObjectSlices {
                bucket,
                key,
                slices,
            } => {
                w.str(bucket).str(key);
                write_slices(&mut w, slices);
            }
            Change::ObjectGone { bucket, key } => {
                w.str(bucket).str(key);
            }
            Change::Chunk { id, record } => {
                w.raw(&id.0).bytes(&record.encode());
            }
            Change::Meta { key, value } => {
                w.str(key).bytes(value);
            }
            Change::ChunkRef { id } | Change::ChunkGone { id } => {
                w.raw(&id.0);
            }
            Change::Demote { bucket, key } => {
                w.str(bucket).str(key);
            }
            Change::Promote { bucket, key, seq } | Change::VersionGone { bucket, key, seq } => {
                w.str(bucket).str(key).u64(*seq);
            }
            Change::Marker {
                bucket,
                key,
                marker,
            } => {
                w.str(bucket).str(key).u64(marker.mtime_ms);
                marker.version.write(&mut w);
            }
            Change::Lock {
                bucket,
                key,
                seq,
                record,
            } => {
                w.str(bucket).str(key).u64(*seq).bytes(&record.encode());
            }
            Change::BucketConfig {
                bucket,
                kind,
                value,
            } => {
                w.str(bucket).str(kind).bytes(value);
            }
            Change::Identity { kind, name, value } => {
                w.str(kind).str(name).bytes(value);
            }
        }
        w.seal()
    }

    /// Decodes an entry.
    ///
    /// # Errors
    /// [`Error::Corrupt`] (checksum, truncation, unknown kind) or
    /// [`Error::UnsupportedFormat`] for an entry written by a newer version.
    pub(crate) fn decode(b: &[u8]) -> Result<Self> {
        let (_, mut r) = Reader::open(b, "journal entry", ENTRY_V1, ENTRY_V1)?;
        let kind = r.u8()?;
        let seq = r.u64()?;
        let time_ms = r.u64()?;
        let change = match kind {
            1 => Change::Bucket {
                name: r.string()?,
                record: BucketRecord::decode(r.bytes()?)?,
            },
            2 => Change::BucketGone { name: r.string()? },
            3 => {
                let bucket = r.string()?;
                let key = r.string()?;
                let record = ObjectRecord::decode(r.bytes()?)?;
                let slices = read_slices(&mut r)?;
                Change::Object {
                    bucket,
                    key,
                    record,
                    slices,
                }
            }
            4 => Change::ObjectGone {
                bucket: r.string()?,
                key: r.string()?,
            },
            5 => Change::Chunk {
                id: ChunkId(r.array()?),
                record: ChunkRecord::decode(r.bytes()?)?,
            },
            6 => Change::Meta {
                key: r.string()?,
                value: r.bytes()?.to_vec(),
            },
            7 => Change::ObjectSlices {
                bucket: r.string()?,
                key: r.string()?,
                slices: read_slices(&mut r)?,
            },
            KIND_CHUNK_REF => Change::ChunkRef {
                id: ChunkId(r.array()?),
            },
            9 => Change::ChunkGone {
                id: ChunkId(r.array()?),
            },
            10 => Change::Demote {
                bucket: r.string()?,
                key: r.string()?,
            },
            11 => Change::Promote {
                bucket: r.string()?,
                key: r.string()?,
                seq: r.u64()?,
            },
            12 => {
                let (bucket, key, mtime_ms) = (r.string()?, r.string()?, r.u64()?);
                Change::Marker {
                    bucket,
                    key,
                    marker: DeleteMarker {
                        version: Version::read(&mut r)?,
                        mtime_ms,
                    },
                }
            }
            13 => Change::VersionGone {
                bucket: r.string()?,
                key: r.string()?,
                seq: r.u64()?,
            },
            14 => Change::Lock {
                bucket: r.string()?,
                key: r.string()?,
                seq: r.u64()?,
                record: LockRecord::decode(r.bytes()?)?,
            },
            15 => Change::BucketConfig {
                bucket: r.string()?,
                kind: r.string()?,
                value: r.bytes()?.to_vec(),
            },
            16 => Change::Identity {
                kind: r.string()?,
                name: r.string()?,
                value: r.bytes()?.to_vec(),
            },
            k => {
                return Err(Error::corrupt("journal entry", format!("unknown kind {k}")));
            }
        };
        r.finish()?;
        Ok(Entry {
            seq,
            time_ms,
            change,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{Etag, ManifestRef, ObjectMeta};

    #[test]
    fn a_long_manifest_is_split_and_every_entry_round_trips() {
        let record = ObjectRecord {
            size: 0,
            etag: Etag {
                md5: [7; 16],
                parts: 0,
            },
            mtime_ms: 1,
            meta: ObjectMeta::default(),
            manifest: ManifestRef { id: 0, slices: 0 },
            version: crate::versions::Version {
                seq: 3,
                null: false,
            },
            parts: Vec::new(),
        };
        let slices: Vec<Slice> = (0..ENTRY_SLICES * 2 + 5)
            .map(|i| Slice {
                chunk: ChunkId([(i % 251) as u8; 32]),
                offset: 0,
                len: i as u32,
            })
            .collect();
        let changes = object_changes("b", "k", &record, &slices);
        assert_eq!(changes.len(), 3);
        let mut back = Vec::new();
        for (seq, change) in changes.into_iter().enumerate() {
            let e = Entry {
                seq: seq as u64,
                time_ms: 9,
                change,
            };
            let bytes = e.encode();
            assert!(bytes.len() < 3 << 20);
            let d = Entry::decode(&bytes).unwrap();
            assert_eq!(d, e);
            match d.change {
                Change::Object { slices, .. } | Change::ObjectSlices { slices, .. } => {
                    back.extend(slices);
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(back, slices);
        let versions = [
            Change::Demote {
                bucket: "b".into(),
                key: "k".into(),
            },
            Change::Promote {
                bucket: "b".into(),
                key: "k".into(),
                seq: 7,
            },
            Change::VersionGone {
                bucket: "b".into(),
                key: "k".into(),
                seq: 8,
            },
            Change::BucketConfig {
                bucket: "b".into(),
                kind: "lifecycle".into(),
                value: vec![1, 2, 3],
            },
            Change::Identity {
                kind: "key".into(),
                name: "AK".into(),
                value: vec![4, 5],
            },
            Change::Lock {
                bucket: "b".into(),
                key: "k".into(),
                seq: 8,
                record: LockRecord {
                    retention: Some(crate::lock::Retention {
                        mode: crate::lock::RetentionMode::Compliance,
                        until_ms: 99,
                    }),
                    legal_hold: true,
                    acl: Some(b"s3dedup-acl 1\n".to_vec()),
                    tags: vec![("team".into(), "storage".into())],
                },
            },
            Change::Marker {
                bucket: "b".into(),
                key: "k".into(),
                marker: DeleteMarker {
                    version: Version { seq: 9, null: true },
                    mtime_ms: 10,
                },
            },
        ];
        for change in versions {
            let e = Entry {
                seq: 4,
                time_ms: 5,
                change,
            };
            assert_eq!(Entry::decode(&e.encode()).unwrap(), e);
        }
        // One flipped byte is refused, never misread.
        let mut bytes = Entry {
            seq: 1,
            time_ms: 2,
            change: Change::BucketGone { name: "b".into() },
        }
        .encode();
        bytes[5] ^= 1;
        assert!(Entry::decode(&bytes).is_err());
    }
}
