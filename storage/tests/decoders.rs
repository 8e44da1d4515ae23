//! Every decoder of stored bytes (index records, packs, chunks) takes arbitrary input,
//! truncations and mutations of valid encodings, and answers with a value or an error:
//! never a panic, never an allocation sized by an unchecked stored count.

use bytes::Bytes;
use proptest::prelude::*;
use s3dedup_storage::chunk::{self, ChunkId};
use s3dedup_storage::pack::{self, PackBuilder};
use s3dedup_storage::records::{
    BucketRecord, ChunkRecord, ChunkState, ChunkerRecord, CompletedUploadRecord, Etag, Location,
    ManifestRef, ManifestSegment, ObjectMeta, ObjectRecord, PackRecord, PartRecord, Slice,
    UploadRecord,
};

/// Runs every decoder on `b`; each must return (Ok or Err) without panicking.
fn decode_all(b: &[u8]) {
    let _ = ObjectRecord::decode(b);
    let _ = BucketRecord::decode(b);
    let _ = ChunkRecord::decode(b);
    let _ = PackRecord::decode(b);
    let _ = UploadRecord::decode(b);
    let _ = PartRecord::decode(b);
    let _ = ManifestSegment::decode(b);
    let _ = ManifestSegment::decode_start(b);
    let _ = ChunkerRecord::decode(b);
    let _ = CompletedUploadRecord::decode(b);
    let _ = s3dedup_storage::VersionEntry::decode(b);
    let _ = s3dedup_storage::lock::LockRecord::decode(b);
    let _ = s3dedup_storage::lifecycle::Lifecycle::decode(b);
    let _ = pack::parse(b);
    if b.len() >= pack::TRAILER_LEN {
        let _ = pack::parse_trailer(&b[b.len() - pack::TRAILER_LEN..], b.len() as u64);
    }
    let raw_len = b
        .get(4..8)
        .map_or(0, |l| u32::from_le_bytes(l.try_into().unwrap()));
    let _ = chunk::decode(Bytes::copy_from_slice(b), raw_len);
    let _ = chunk::decode_verified(Bytes::copy_from_slice(b), chunk::checksum(b), raw_len);
}

fn meta() -> ObjectMeta {
    ObjectMeta {
        content_type: Some("text/plain".into()),
        headers: vec![("cache-control".into(), "no-cache".into())],
        user: vec![("k".into(), "v".into())],
        checksums: vec![("CRC32".into(), "AAAAAA==".into())],
    }
}

/// Valid encodings of every record type, a chunk and a pack.
fn samples() -> Vec<Vec<u8>> {
    let mut pb = PackBuilder::new(1024);
    pb.push(ChunkId::of(b"one"), b"one");
    pb.push(ChunkId::of(b"two"), b"two");
    vec![
        ObjectRecord {
            size: 10,
            etag: Etag {
                md5: [1; 16],
                parts: 0,
            },
            mtime_ms: 5,
            meta: meta(),
            manifest: ManifestRef { id: 3, slices: 2 },
            version: s3dedup_storage::Version {
                seq: 9,
                null: false,
            },
            parts: vec![
                s3dedup_storage::PartInfo {
                    size: 6,
                    checksum: Some("AAAAAA==".into()),
                },
                s3dedup_storage::PartInfo {
                    size: 4,
                    checksum: None,
                },
            ],
        }
        .encode(),
        BucketRecord {
            created_ms: 1,
            owner: "o".into(),
            versioning: s3dedup_storage::Versioning::Enabled,
            lock: s3dedup_storage::lock::LockConfig {
                enabled: true,
                default: Some((
                    s3dedup_storage::lock::RetentionMode::Governance,
                    s3dedup_storage::lock::Period::Days(3),
                )),
            },
        }
        .encode(),
        s3dedup_storage::VersionEntry::Marker(s3dedup_storage::DeleteMarker {
            version: s3dedup_storage::Version { seq: 9, null: true },
            mtime_ms: 4,
        })
        .encode(),
        ChunkRecord {
            refcount: 2,
            state: ChunkState::Zero { since_ms: 9 },
            raw_len: 3,
            crc: 7,
            location: Location::Inline(chunk::encode(b"abc").to_vec()),
            damaged: true,
        }
        .encode(),
        PackRecord {
            size: 1,
            chunks: 2,
            committed_ms: 3,
            live_chunks: 1,
            live_bytes: 1,
            deleting_since_ms: Some(5),
        }
        .encode(),
        UploadRecord {
            bucket: "b".into(),
            key: "k".into(),
            initiated_ms: 4,
            meta: meta(),
            lock: s3dedup_storage::LockRequest {
                retention: Some(s3dedup_storage::lock::Retention {
                    mode: s3dedup_storage::lock::RetentionMode::Governance,
                    until_ms: 9,
                }),
                legal_hold: Some(true),
            },
            acl: Some(b"acl".to_vec()),
            checksum: Some(s3dedup_storage::ChecksumSpec {
                algorithm: "SHA256".into(),
                full_object: false,
            }),
            tags: vec![("k".into(), "v".into())],
        }
        .encode(),
        s3dedup_storage::lock::LockRecord {
            retention: None,
            legal_hold: true,
            acl: Some(b"acl".to_vec()),
            tags: vec![("k".into(), "v".into())],
        }
        .encode(),
        PartRecord {
            size: 1,
            md5: [2; 16],
            mtime_ms: 2,
            checksums: vec![],
            manifest: ManifestRef { id: 1, slices: 1 },
        }
        .encode(),
        ManifestSegment {
            start: 0,
            slices: vec![Slice {
                chunk: ChunkId([4; 32]),
                offset: 0,
                len: 3,
            }],
        }
        .encode(),
        CompletedUploadRecord {
            bucket: "b".into(),
            key: "k".into(),
            completed_ms: 1,
            parts_digest: [3; 32],
            etag: Etag {
                md5: [5; 16],
                parts: 2,
            },
        }
        .encode(),
        chunk::encode(b"stored").to_vec(),
        pb.finish().1.to_vec(),
    ]
}

/// A sealed record turned into its unchecked version-1 twin (same layout, no CRC), so
/// mutations reach the field decoders instead of stopping at the checksum.
fn unsealed(b: &[u8]) -> Vec<u8> {
    let mut v = b[..b.len().saturating_sub(4)].to_vec();
    if let Some(first) = v.first_mut() {
        *first = 1;
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(mut b in proptest::collection::vec(any::<u8>(), 0..512), v in 0u8..4) {
        if let Some(first) = b.first_mut() {
            *first = v;
        }
        decode_all(&b);
    }

    #[test]
    fn mutated_and_truncated_encodings_never_panic(
        which in 0usize..11,
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        cut in any::<usize>(),
        unseal in any::<bool>(),
    ) {
        let sample = &samples()[which];
        let mut b = if unseal && which < 9 { unsealed(sample) } else { sample.clone() };
        for (at, x) in flips {
            if !b.is_empty() {
                let i = at % b.len();
                b[i] ^= x;
            }
        }
        decode_all(&b);
        let n = cut % (b.len() + 1);
        decode_all(&b[..n]);
    }

    #[test]
    fn huge_counts_in_unchecked_records_are_refused(count in any::<u32>(), slices in any::<u64>()) {
        // A v1 manifest segment claiming `count` slices with none present.
        let mut seg = vec![1u8];
        seg.extend_from_slice(&0u64.to_le_bytes());
        seg.extend_from_slice(&count.to_le_bytes());
        prop_assert!(count == 0 || ManifestSegment::decode(&seg).is_err());
        // A v1 object record whose slice count is anything: it decodes (the count is
        // checked where manifests are read), and nothing here allocates by it.
        let rec = ObjectRecord {
            size: 1,
            etag: Etag { md5: [0; 16], parts: 0 },
            mtime_ms: 0,
            meta: ObjectMeta::default(),
            manifest: ManifestRef { id: 1, slices },
            version: s3dedup_storage::Version::LEGACY,
            parts: Vec::new(),
        };
        // (v1 is v5's layout without the trailing version, seq u64 and null flag u8,
        // and part table, here an empty one: a u32 count.)
        let v5 = unsealed(&rec.encode());
        let v1 = &v5[..v5.len() - 13];
        prop_assert_eq!(ObjectRecord::decode(v1).unwrap().manifest.slices, slices);
    }
}
