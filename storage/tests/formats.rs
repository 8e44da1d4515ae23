//! Old-format fixtures (DESIGN.md invariant 7): every stored record type, the chunk and
//! pack formats, and a whole data directory written by format version 1 must keep
//! decoding to the same values.
//!
//! The fixtures under `tests/fixtures/v1/` were written by version 1 (records without a
//! checksum); `tests/fixtures/v2/` holds the records of version 2 (the same layouts
//! sealed with a CRC32C); `tests/fixtures/v3/` those of version 3 (chunk records with a
//! damage flag, pack records with live accounting and a deletion state; the other
//! records as in v2); `tests/fixtures/v4/` those of version 4 (object records with
//! their version, bucket records with a versioning state and lock configuration,
//! version entries and delete markers, object lock records); `tests/fixtures/v5/` those
//! of version 5 (upload records with the lock their object gets); `tests/fixtures/v6/`
//! those of version 6 (lock records and upload records with an ACL); `tests/fixtures/v7/`
//! those of version 7 (object records with a part table, upload records with the
//! checksum and tags their object gets, lock records with the version's tags), written by
//! `write_current_fixtures` (run it with `--ignored`
//! only when deliberately adding a new format version's fixtures; never regenerate an
//! old version's).

mod common;

use std::path::{Path, PathBuf};

use bytes::Bytes;
use s3dedup_storage::chunk::{self, ChunkId};
use s3dedup_storage::lock::{LockConfig, LockRecord, Period, Retention, RetentionMode};
use s3dedup_storage::pack::{self, PackBuilder};
use s3dedup_storage::records::{
    BucketRecord, ChunkRecord, ChunkState, ChunkerRecord, Etag, Location, ManifestRef,
    ManifestSegment, ObjectMeta, ObjectRecord, PackRecord, PartRecord, Slice, UploadRecord,
};
use s3dedup_storage::{ChecksumSpec, PartInfo};
use s3dedup_storage::{
    ChunkerParams, DeleteMarker, ObjectMeta as Meta, Version, VersionEntry, Versioning,
    WriteCondition,
};

fn fixtures() -> PathBuf {
    fixtures_of(1)
}

fn fixtures_of(version: u8) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/v{version}"))
}

/// The record format the encoders write today.
const CURRENT: u8 = 7;

/// Decodes a record fixture by its file name and encodes it again (with today's
/// encoder): equal output means the old bytes decoded to the same value.
fn reencode(name: &str, b: &[u8]) -> s3dedup_storage::Result<Vec<u8>> {
    Ok(match name {
        "bucket.bin" | "bucket-versioned.bin" => BucketRecord::decode(b)?.encode(),
        "object.bin" | "object-versioned.bin" | "object-parts.bin" => {
            ObjectRecord::decode(b)?.encode()
        }
        "version-object.bin" | "version-marker.bin" => VersionEntry::decode(b)?.encode(),
        "lock.bin" | "lock-acl.bin" | "lock-tags.bin" => LockRecord::decode(b)?.encode(),
        "pack.bin" | "pack-deleting.bin" | "pack-partly-live.bin" => {
            PackRecord::decode(b)?.encode()
        }
        "upload.bin" | "upload-locked.bin" | "upload-acl.bin" | "upload-checksum.bin" => {
            UploadRecord::decode(b)?.encode()
        }
        "part.bin" => PartRecord::decode(b)?.encode(),
        "manifest-segment.bin" => ManifestSegment::decode(b)?.encode(),
        "chunker.bin" => ChunkerRecord::decode(b)?.encode(),
        "chunk-stored.bin" => chunk::decode(Bytes::copy_from_slice(b), 20).map(|_| b.to_vec())?,
        _ => ChunkRecord::decode(b)?.encode(),
    })
}

fn meta() -> ObjectMeta {
    ObjectMeta {
        content_type: Some("text/plain; charset=utf-8".into()),
        headers: vec![("cache-control".into(), "max-age=60".into())],
        user: vec![
            ("owner".into(), "zoë".into()),
            ("empty".into(), String::new()),
        ],
        checksums: vec![("CRC32C".into(), "yZRlqg==".into())],
    }
}

fn id(n: u8) -> ChunkId {
    ChunkId([n; 32])
}

/// (file name, encoded bytes, decoder check) for every record type.
fn records() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "bucket.bin",
            BucketRecord {
                created_ms: 1_700_000_000_123,
                owner: "tenant-a".into(),
                versioning: Versioning::Unversioned,
                lock: LockConfig::default(),
            }
            .encode(),
        ),
        (
            "object.bin",
            ObjectRecord {
                size: 123_456_789,
                etag: Etag {
                    md5: [0xab; 16],
                    parts: 3,
                },
                mtime_ms: 1_700_000_000_456,
                meta: meta(),
                manifest: ManifestRef {
                    id: 42,
                    slices: 2_000,
                },
                version: Version::LEGACY,
                parts: Vec::new(),
            }
            .encode(),
        ),
        (
            "chunk-pack.bin",
            ChunkRecord {
                refcount: 7,
                state: ChunkState::Live,
                raw_len: 65_536,
                crc: 0xdead_beef,
                location: Location::Pack {
                    pack: 0x0123_4567_89ab_cdef_0011_2233_4455_6677,
                    offset: 8,
                    stored_len: 65_544,
                },
                damaged: false,
            }
            .encode(),
        ),
        (
            "chunk-inline-zero.bin",
            ChunkRecord {
                refcount: 0,
                state: ChunkState::Zero {
                    since_ms: 1_700_000_000_789,
                },
                raw_len: 3,
                crc: 0x1234_5678,
                location: Location::Inline(chunk::encode(b"abc").to_vec()),
                damaged: false,
            }
            .encode(),
        ),
        (
            "chunk-deleting.bin",
            ChunkRecord {
                refcount: 0,
                state: ChunkState::Deleting,
                raw_len: 10,
                crc: 1,
                location: Location::Pack {
                    pack: 9,
                    offset: 100,
                    stored_len: 18,
                },
                damaged: false,
            }
            .encode(),
        ),
        (
            "pack.bin",
            // Versions before 3 decode as fully live (the index recounts on upgrade).
            PackRecord {
                size: 16 << 20,
                chunks: 250,
                committed_ms: 1_700_000_001_000,
                live_chunks: 250,
                live_bytes: 16 << 20,
                deleting_since_ms: None,
            }
            .encode(),
        ),
        (
            "upload.bin",
            UploadRecord {
                bucket: "b".into(),
                key: "dir/ключ".into(),
                initiated_ms: 1_700_000_002_000,
                meta: meta(),
                lock: s3dedup_storage::LockRequest::default(),
                acl: None,
                checksum: None,
                tags: Vec::new(),
            }
            .encode(),
        ),
        (
            "part.bin",
            PartRecord {
                size: 5 << 20,
                md5: [0x11; 16],
                mtime_ms: 1_700_000_003_000,
                checksums: vec![("CRC32".into(), "AAAAAA==".into())],
                manifest: ManifestRef { id: 43, slices: 80 },
            }
            .encode(),
        ),
        (
            "manifest-segment.bin",
            ManifestSegment {
                start: 1 << 33,
                slices: vec![
                    Slice {
                        chunk: id(1),
                        offset: 0,
                        len: 65_536,
                    },
                    Slice {
                        chunk: id(2),
                        offset: 100,
                        len: 7,
                    },
                ],
            }
            .encode(),
        ),
        (
            "chunker.bin",
            ChunkerRecord {
                params: ChunkerParams {
                    min: 16_384,
                    avg: 65_536,
                    max: 262_144,
                    level: 2,
                },
            }
            .encode(),
        ),
        (
            "chunk-stored.bin",
            chunk::encode(b"stored chunk payload").to_vec(),
        ),
    ]
}

/// Records whose fields only version 3 can hold (no older fixture of them exists).
fn new_in_v3() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "chunk-damaged.bin",
            ChunkRecord {
                refcount: 2,
                state: ChunkState::Live,
                raw_len: 40_000,
                crc: 0x0bad_f00d,
                location: Location::Pack {
                    pack: 0x0fed_cba9_8765_4321_0011_2233_4455_6677,
                    offset: 1_234,
                    stored_len: 40_008,
                },
                damaged: true,
            }
            .encode(),
        ),
        (
            "pack-deleting.bin",
            PackRecord {
                size: 8 << 20,
                chunks: 120,
                committed_ms: 1_700_000_005_000,
                live_chunks: 0,
                live_bytes: 0,
                deleting_since_ms: Some(1_700_000_006_000),
            }
            .encode(),
        ),
        (
            "pack-partly-live.bin",
            PackRecord {
                size: 8 << 20,
                chunks: 120,
                committed_ms: 1_700_000_005_000,
                live_chunks: 17,
                live_bytes: 1_100_000,
                deleting_since_ms: None,
            }
            .encode(),
        ),
    ]
}

/// Records whose fields only version 5 can hold.
fn new_in_v5() -> Vec<(&'static str, Vec<u8>)> {
    vec![(
        "upload-locked.bin",
        UploadRecord {
            bucket: "b".into(),
            key: "locked".into(),
            initiated_ms: 1_700_000_002_001,
            meta: meta(),
            lock: s3dedup_storage::LockRequest {
                retention: Some(Retention {
                    mode: RetentionMode::Compliance,
                    until_ms: 1_800_000_000_001,
                }),
                legal_hold: Some(false),
            },
            acl: None,
            checksum: None,
            tags: Vec::new(),
        }
        .encode(),
    )]
}

/// Records whose fields only version 6 can hold (index format 9: ACLs of versions and
/// of multipart uploads' objects).
fn new_in_v6() -> Vec<(&'static str, Vec<u8>)> {
    let acl = b"s3dedup-acl 1\nREAD group all\n".to_vec();
    vec![
        (
            "lock-acl.bin",
            LockRecord {
                retention: None,
                legal_hold: false,
                acl: Some(acl.clone()),
                tags: Vec::new(),
            }
            .encode(),
        ),
        (
            "upload-acl.bin",
            UploadRecord {
                bucket: "b".into(),
                key: "public".into(),
                initiated_ms: 1_700_000_002_002,
                meta: meta(),
                lock: s3dedup_storage::LockRequest::default(),
                acl: Some(acl),
                checksum: None,
                tags: Vec::new(),
            }
            .encode(),
        ),
    ]
}

/// Records whose fields only version 7 can hold (index format 11: part tables of
/// multipart objects, the checksum a multipart upload's object gets).
fn new_in_v7() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "object-parts.bin",
            ObjectRecord {
                size: (5 << 20) + 7,
                etag: Etag {
                    md5: [0x6b; 16],
                    parts: 2,
                },
                mtime_ms: 1_700_000_000_790,
                meta: ObjectMeta {
                    checksums: vec![("CRC64NVME".into(), "AAECAwQFBgc=".into())],
                    ..meta()
                },
                manifest: ManifestRef { id: 44, slices: 4 },
                version: Version {
                    seq: 0x01a2_3476_83a5_0002,
                    null: false,
                },
                parts: vec![
                    PartInfo {
                        size: 5 << 20,
                        checksum: Some("AQIDBAUGBwg=".into()),
                    },
                    PartInfo {
                        size: 7,
                        checksum: None,
                    },
                ],
            }
            .encode(),
        ),
        (
            "upload-checksum.bin",
            UploadRecord {
                bucket: "b".into(),
                key: "summed".into(),
                initiated_ms: 1_700_000_002_003,
                meta: meta(),
                lock: s3dedup_storage::LockRequest::default(),
                acl: None,
                checksum: Some(ChecksumSpec {
                    algorithm: "CRC64NVME".into(),
                    full_object: true,
                }),
                tags: vec![("project".into(), "säule 7".into())],
            }
            .encode(),
        ),
        (
            "lock-tags.bin",
            LockRecord {
                retention: None,
                legal_hold: false,
                acl: None,
                tags: vec![("a".into(), String::new()), ("env".into(), "prod".into())],
            }
            .encode(),
        ),
    ]
}

/// Records whose fields only version 4 can hold.
fn new_in_v4() -> Vec<(&'static str, Vec<u8>)> {
    let object = ObjectRecord {
        size: 5_000,
        etag: Etag {
            md5: [0x5a; 16],
            parts: 0,
        },
        mtime_ms: 1_700_000_000_789,
        meta: meta(),
        manifest: ManifestRef { id: 43, slices: 3 },
        version: Version {
            seq: 0x01a2_3476_83a5_0001,
            null: false,
        },
        parts: Vec::new(),
    };
    vec![
        (
            "bucket-versioned.bin",
            BucketRecord {
                created_ms: 1_700_000_000_124,
                owner: String::new(),
                versioning: Versioning::Enabled,
                lock: LockConfig {
                    enabled: true,
                    default: Some((RetentionMode::Compliance, Period::Years(7))),
                },
            }
            .encode(),
        ),
        (
            "lock.bin",
            LockRecord {
                retention: Some(Retention {
                    mode: RetentionMode::Governance,
                    until_ms: 1_800_000_000_000,
                }),
                legal_hold: true,
                acl: None,
                tags: Vec::new(),
            }
            .encode(),
        ),
        ("object-versioned.bin", object.encode()),
        ("version-object.bin", VersionEntry::Object(object).encode()),
        (
            "version-marker.bin",
            VersionEntry::Marker(DeleteMarker {
                version: Version {
                    seq: 0x01a2_3476_83a5_0002,
                    null: true,
                },
                mtime_ms: 1_700_000_000_999,
            })
            .encode(),
        ),
    ]
}

/// Every record the current version writes, with its fixture name.
fn current_records() -> Vec<(&'static str, Vec<u8>)> {
    [
        records(),
        new_in_v3(),
        new_in_v4(),
        new_in_v5(),
        new_in_v6(),
        new_in_v7(),
    ]
    .concat()
}

fn sample_pack() -> Bytes {
    let mut b = PackBuilder::new(1024);
    for raw in [&b"first chunk"[..], b"second", b""] {
        b.push(ChunkId::of(raw), raw);
    }
    b.finish().1
}

/// Contents of the v1 data-directory fixture.
fn dir_objects() -> Vec<(&'static str, Vec<u8>)> {
    let big = common::random_bytes(77, 50_000);
    let mut twice = big.clone();
    twice.extend_from_slice(&big[..20_000]);
    vec![
        ("big", big),
        ("tiny", b"tiny object".to_vec()),
        ("empty", vec![]),
        ("dedup", twice),
    ]
}

#[test]
fn current_records_match_their_fixtures() {
    for (name, expected) in current_records() {
        let path = fixtures_of(CURRENT).join(name);
        let fixture = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(fixture, expected, "{name}: v{CURRENT} encoding changed");
        assert_eq!(reencode(name, &fixture).unwrap(), expected, "{name}");
    }
}

#[test]
fn sealed_records_refuse_every_flipped_byte_and_truncation() {
    for (name, good) in current_records() {
        if name == "chunk-stored.bin" {
            continue; // chunk format: its CRC lives in the chunk record (tested below)
        }
        for i in 0..good.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut bad = good.clone();
                bad[i] ^= flip;
                assert!(
                    reencode(name, &bad).is_err(),
                    "{name}: byte {i} ^ {flip:#x} went unnoticed"
                );
            }
        }
        for n in 0..good.len() {
            assert!(
                reencode(name, &good[..n]).is_err(),
                "{name}: truncated to {n}"
            );
        }
    }
}

#[test]
fn v1_records_decode_to_the_same_values() {
    for (name, expected) in records() {
        let path = fixtures().join(name);
        let fixture = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            reencode(name, &fixture).unwrap(),
            expected,
            "{name}: v1 no longer decodes to the same value"
        );
    }
    let r = |n: &str| std::fs::read(fixtures().join(n)).unwrap();
    assert_eq!(
        BucketRecord::decode(&r("bucket.bin")).unwrap().owner,
        "tenant-a"
    );
    let o = ObjectRecord::decode(&r("object.bin")).unwrap();
    assert_eq!(
        (o.size, o.etag.to_string(), o.meta),
        (123_456_789, format!("{}-3", "ab".repeat(16)), meta())
    );
    let c = ChunkRecord::decode(&r("chunk-inline-zero.bin")).unwrap();
    assert_eq!(
        c.state,
        ChunkState::Zero {
            since_ms: 1_700_000_000_789
        }
    );
    let decoded = chunk::decode(
        Bytes::from(match c.location {
            Location::Inline(d) => d,
            other => panic!("{other:?}"),
        }),
        3,
    )
    .unwrap();
    assert_eq!(&decoded[..], b"abc");
    assert_eq!(
        ChunkRecord::decode(&r("chunk-deleting.bin")).unwrap().state,
        ChunkState::Deleting
    );
    assert!(matches!(
        ChunkRecord::decode(&r("chunk-pack.bin")).unwrap().location,
        Location::Pack { offset: 8, .. }
    ));
    assert_eq!(PackRecord::decode(&r("pack.bin")).unwrap().chunks, 250);
    assert_eq!(
        UploadRecord::decode(&r("upload.bin")).unwrap().key,
        "dir/ключ"
    );
    assert_eq!(
        PartRecord::decode(&r("part.bin")).unwrap().manifest.slices,
        80
    );
    let seg = ManifestSegment::decode(&r("manifest-segment.bin")).unwrap();
    assert_eq!(
        (seg.start, seg.slices[1].offset, seg.slices[1].len),
        (1 << 33, 100, 7)
    );
    assert_eq!(
        ChunkerRecord::decode(&r("chunker.bin")).unwrap().params,
        ChunkerParams::default()
    );
    let stored = r("chunk-stored.bin");
    let crc = chunk::checksum(&stored);
    assert_eq!(
        &chunk::decode_verified(Bytes::from(stored), crc, 20).unwrap()[..],
        b"stored chunk payload"
    );
}

/// Each record fixture of format `version` decodes to the value `expected` names (its
/// encoding with today's encoder).
fn assert_fixtures_decode(version: u8, expected: Vec<(&'static str, Vec<u8>)>) {
    for (name, expected) in expected {
        let path = fixtures_of(version).join(name);
        let fixture = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            reencode(name, &fixture).unwrap(),
            expected,
            "{name}: v{version} no longer decodes to the same value"
        );
    }
}

#[test]
fn v2_records_decode_to_the_same_values() {
    assert_fixtures_decode(2, records());
}

#[test]
fn v3_records_decode_to_the_same_values() {
    assert_fixtures_decode(3, [records(), new_in_v3()].concat());
}

#[test]
fn v4_records_decode_to_the_same_values() {
    assert_fixtures_decode(4, [records(), new_in_v3(), new_in_v4()].concat());
}

#[test]
fn v5_records_decode_to_the_same_values() {
    assert_fixtures_decode(
        5,
        [records(), new_in_v3(), new_in_v4(), new_in_v5()].concat(),
    );
}

#[test]
fn v6_records_decode_to_the_same_values() {
    assert_fixtures_decode(
        6,
        [
            records(),
            new_in_v3(),
            new_in_v4(),
            new_in_v5(),
            new_in_v6(),
        ]
        .concat(),
    );
}

#[test]
fn unknown_versions_are_refused_not_guessed() {
    for (name, mut bytes) in current_records() {
        if name == "chunk-stored.bin" {
            bytes[0] = 2;
            assert!(chunk::decode(Bytes::from(bytes), 20).is_err());
            continue;
        }
        bytes[0] = 99;
        let err = match name {
            "bucket.bin" | "bucket-versioned.bin" => BucketRecord::decode(&bytes).err(),
            "object.bin" | "object-versioned.bin" | "object-parts.bin" => {
                ObjectRecord::decode(&bytes).err()
            }
            "version-object.bin" | "version-marker.bin" => VersionEntry::decode(&bytes).err(),
            "lock.bin" | "lock-acl.bin" | "lock-tags.bin" => LockRecord::decode(&bytes).err(),
            "pack.bin" | "pack-deleting.bin" | "pack-partly-live.bin" => {
                PackRecord::decode(&bytes).err()
            }
            "upload.bin" | "upload-locked.bin" | "upload-acl.bin" | "upload-checksum.bin" => {
                UploadRecord::decode(&bytes).err()
            }
            "part.bin" => PartRecord::decode(&bytes).err(),
            "manifest-segment.bin" => ManifestSegment::decode(&bytes).err(),
            "chunker.bin" => ChunkerRecord::decode(&bytes).err(),
            _ => ChunkRecord::decode(&bytes).err(),
        };
        assert!(
            matches!(
                err,
                Some(s3dedup_storage::Error::UnsupportedFormat { version: 99, .. })
            ),
            "{name}: {err:?}"
        );
    }
}

#[test]
fn v1_pack_parses() {
    let fixture = std::fs::read(fixtures().join("sample.pack")).unwrap();
    assert_eq!(fixture, sample_pack().to_vec(), "v1 pack encoding changed");
    let entries = pack::parse(&fixture).unwrap();
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[0].id, ChunkId::of(b"first chunk"));
    let e = entries[1];
    let stored = Bytes::from(fixture)
        .slice(e.offset as usize..(e.offset + u64::from(e.stored_len)) as usize);
    assert_eq!(
        &chunk::decode_verified(stored, e.crc, 6).unwrap()[..],
        b"second"
    );
}

#[tokio::test]
async fn v1_data_directory_opens_and_reads_back() {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&fixtures().join("datadir"), tmp.path());
    // Opened with different chunker parameters than it was written with: the new ones
    // are recorded, and old manifests stay valid.
    let store = common::open_fs(tmp.path(), s3dedup_storage::StoreConfig::default()).await;
    assert_eq!(
        store.recorded_chunker_params().unwrap(),
        ChunkerParams::default()
    );
    for (key, bytes) in dir_objects() {
        assert_eq!(common::get(&store, "fixtures", key).await, bytes, "{key}");
    }
    let mp = store.head_object("fixtures", "multipart").await.unwrap();
    assert_eq!(mp.etag.parts, 2);
    assert_eq!(
        common::get(&store, "fixtures", "multipart").await,
        [vec![1u8; 3000], vec![2u8; 2000]].concat()
    );
    assert_eq!(
        store.head_object("fixtures", "tiny").await.unwrap().meta,
        Meta {
            content_type: Some("text/plain".into()),
            ..Default::default()
        }
    );
    let uploads = store.list_uploads("fixtures", "", None, 10).await.unwrap();
    assert_eq!(uploads.len(), 1);
    assert_eq!(
        store
            .list_parts(&uploads[0].upload_id, 0, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    common::assert_fsck_clean(&store).await;
    // The old data keeps working for writes too.
    common::put(&store, "fixtures", "new", b"written by the current version").await;
    store.delete_object("fixtures", "big").await.unwrap();
    common::assert_fsck_clean(&store).await;
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())) {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

#[test]
#[ignore = "writes the current version's record fixtures; run only for a new format version"]
fn write_current_fixtures() {
    let dir = fixtures_of(CURRENT);
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in current_records() {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

/// How the v1 fixtures were written (kept as the record of what v1 holds; writing them
/// again today would write v2 records, so it refuses to run).
#[tokio::test]
#[ignore = "wrote the v1 fixtures; never regenerate them"]
async fn write_v1_fixtures() {
    assert_eq!(CURRENT, 1, "v1 fixtures are history: never rewrite them");
    let dir = fixtures();
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in records() {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    std::fs::write(dir.join("sample.pack"), sample_pack()).unwrap();

    let data = dir.join("datadir");
    let _ = std::fs::remove_dir_all(&data);
    let store = common::open_fs(&data, common::small_config()).await;
    store.create_bucket("fixtures").await.unwrap();
    for (key, bytes) in dir_objects() {
        common::put(&store, "fixtures", key, &bytes).await;
    }
    let m = Meta {
        content_type: Some("text/plain".into()),
        ..Default::default()
    };
    let p = store
        .ingest_bytes(Bytes::from_static(b"tiny object"))
        .await
        .unwrap();
    store
        .put_object("fixtures", "tiny", p, m, WriteCondition::default())
        .await
        .unwrap();
    let up = store
        .create_upload("fixtures", "multipart", Meta::default(), Default::default())
        .await
        .unwrap();
    let mut listed = Vec::new();
    for (n, fill) in [(1u32, 1u8), (2, 2)] {
        let p = store
            .ingest_bytes(Bytes::from(vec![fill; if n == 1 { 3000 } else { 2000 }]))
            .await
            .unwrap();
        let rec = store.put_part(&up, n, p, vec![]).await.unwrap();
        listed.push((n, rec.etag().to_string()));
    }
    store
        .complete_upload(&up, listed, 0, vec![], WriteCondition::default(), None)
        .await
        .unwrap();
    let open = store
        .create_upload(
            "fixtures",
            "in-progress",
            Meta::default(),
            Default::default(),
        )
        .await
        .unwrap();
    let p = store
        .ingest_bytes(Bytes::from(vec![9u8; 5000]))
        .await
        .unwrap();
    store.put_part(&open, 1, p, vec![]).await.unwrap();
    drop(store);
    let _ = std::fs::remove_dir_all(data.join("store/tmp"));
}
