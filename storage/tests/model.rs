//! Property test: random operation sequences against a `BTreeMap` model.
//!
//! After every step the index must pass fsck (refcounts equal references, nothing
//! dangling, counters and pack accounting exact); after every reopen, every GC run
//! (grace 0: everything unreferenced goes at once) and at the end, every live object
//! must read back its exact bytes and the listing must equal the model's keys. Deleting
//! everything and collecting must leave no pack in the store.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use md5::{Digest, Md5};
use proptest::prelude::*;
use s3dedup_storage::blob::MemoryBlobStore;
use s3dedup_storage::{Error, ListEntry, ObjectMeta, Store, WriteCondition};

const KEYS: u8 = 5;

#[derive(Debug, Clone)]
struct Data {
    base: u8,
    start: u16,
    len: u16,
    flip: Option<u16>,
    /// Content repeated this many times: chunks that occur several times in one manifest.
    repeat: u8,
}

#[derive(Debug, Clone)]
enum Op {
    Put { key: u8, data: Data },
    Copy { src: u8, dst: u8, replace: bool },
    Delete { key: u8 },
    Create { key: u8 },
    Part { upload: u8, part: u8, data: Data },
    PartCopy { upload: u8, part: u8, src: u8 },
    Complete { upload: u8, mask: u8 },
    Abort { upload: u8 },
    Reopen,
    Gc,
}

fn data() -> impl Strategy<Value = Data> {
    (
        0u8..3,
        any::<u16>(),
        0u16..24_000,
        proptest::option::of(any::<u16>()),
        1u8..4,
    )
        .prop_map(|(base, start, len, flip, repeat)| Data {
            base,
            start,
            len,
            flip,
            repeat,
        })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..KEYS, data()).prop_map(|(key, data)| Op::Put { key, data }),
        2 => (0..KEYS, 0..KEYS, any::<bool>()).prop_map(|(src, dst, replace)| Op::Copy { src, dst, replace }),
        2 => (0..KEYS).prop_map(|key| Op::Delete { key }),
        1 => (0..KEYS).prop_map(|key| Op::Create { key }),
        3 => (any::<u8>(), 1u8..5, data()).prop_map(|(upload, part, data)| Op::Part { upload, part, data }),
        1 => (any::<u8>(), 1u8..5, 0..KEYS).prop_map(|(upload, part, src)| Op::PartCopy { upload, part, src }),
        1 => (any::<u8>(), any::<u8>()).prop_map(|(upload, mask)| Op::Complete { upload, mask }),
        1 => any::<u8>().prop_map(|upload| Op::Abort { upload }),
        1 => Just(Op::Reopen),
        2 => Just(Op::Gc),
    ]
}

struct Bases(Vec<Vec<u8>>);

impl Bases {
    fn new() -> Self {
        Bases(
            (0..3)
                .map(|i| common::random_bytes(100 + i, 40_000))
                .collect(),
        )
    }
    fn make(&self, d: &Data) -> Vec<u8> {
        let base = &self.0[usize::from(d.base)];
        let start = usize::from(d.start) % base.len();
        let len = usize::from(d.len).min(base.len() - start);
        let mut v = base[start..start + len].to_vec();
        if let Some(f) = d.flip
            && !v.is_empty()
        {
            let i = usize::from(f) % v.len();
            v[i] ^= 0x5a;
        }
        v.repeat(usize::from(d.repeat))
    }
}

fn key(k: u8) -> String {
    format!("dir{}/obj-{k}", k % 2)
}

struct Upload {
    id: String,
    key: String,
    parts: BTreeMap<u32, Vec<u8>>,
}

async fn check_all(store: &Store, model: &BTreeMap<String, (Vec<u8>, String)>) {
    for (k, (bytes, etag)) in model {
        let got = common::get(store, "b", k).await;
        assert_eq!(&got, bytes, "object {k} reads back wrong bytes");
        let head = store.head_object("b", k).await.unwrap();
        assert_eq!(&head.etag.to_string(), etag, "etag of {k}");
        assert_eq!(head.size, bytes.len() as u64);
    }
    let page = store.list_objects("b", "", None, None, 1000).await.unwrap();
    let listed: Vec<String> = page
        .entries
        .iter()
        .map(|e| match e {
            ListEntry::Object { key, .. } => key.clone(),
            ListEntry::Prefix(p) => panic!("no delimiter, got prefix {p}"),
        })
        .collect();
    assert_eq!(listed, model.keys().cloned().collect::<Vec<_>>());
    let stats = store.stats().await.unwrap();
    assert_eq!(stats.objects, model.len() as u64);
    assert_eq!(
        stats.logical_bytes,
        model.values().map(|v| v.0.len() as u64).sum::<u64>()
    );
}

async fn run(ops: Vec<Op>, cfg: s3dedup_storage::StoreConfig) {
    let dir = tempfile::tempdir().unwrap();
    let blobs = Arc::new(MemoryBlobStore::new());
    let mut store = common::open_mem(dir.path(), Arc::clone(&blobs), cfg.clone()).await;
    store.create_bucket("b").await.unwrap();
    let bases = Bases::new();
    let mut model: BTreeMap<String, (Vec<u8>, String)> = BTreeMap::new();
    let mut uploads: Vec<Upload> = Vec::new();

    for op in ops {
        match op {
            Op::Put { key: k, data } => {
                let bytes = bases.make(&data);
                common::put(&store, "b", &key(k), &bytes).await;
                let etag = hex::encode(Md5::digest(&bytes));
                model.insert(key(k), (bytes, etag));
            }
            Op::Copy { src, dst, replace } => {
                let meta = replace.then(|| ObjectMeta {
                    content_type: Some("text/plain".into()),
                    ..Default::default()
                });
                let r = store
                    .copy_object(
                        ("b", &key(src)),
                        ("b", &key(dst)),
                        meta,
                        WriteCondition::default(),
                    )
                    .await;
                match model.get(&key(src)).cloned() {
                    Some(v) => {
                        r.unwrap();
                        model.insert(key(dst), v);
                    }
                    None => assert!(matches!(r, Err(Error::NoSuchKey { .. })), "{r:?}"),
                }
            }
            Op::Delete { key: k } => {
                let old = store.delete_object("b", &key(k)).await.unwrap();
                assert_eq!(old.is_some(), model.remove(&key(k)).is_some());
            }
            Op::Create { key: k } => {
                let id = store
                    .create_upload("b", &key(k), ObjectMeta::default(), Default::default())
                    .await
                    .unwrap();
                uploads.push(Upload {
                    id,
                    key: key(k),
                    parts: BTreeMap::new(),
                });
            }
            Op::Part { upload, part, data } => {
                if uploads.is_empty() {
                    continue;
                }
                let i = usize::from(upload) % uploads.len();
                let bytes = bases.make(&data);
                let pending = store.ingest(common::pieces(&bytes, 3000)).await.unwrap();
                let rec = store
                    .put_part(&uploads[i].id, u32::from(part), pending, vec![])
                    .await
                    .unwrap();
                assert_eq!(rec.md5, <[u8; 16]>::from(Md5::digest(&bytes)));
                uploads[i].parts.insert(u32::from(part), bytes);
            }
            Op::PartCopy { upload, part, src } => {
                if uploads.is_empty() {
                    continue;
                }
                let i = usize::from(upload) % uploads.len();
                let r = store
                    .copy_object_to_part(("b", &key(src)), &uploads[i].id, u32::from(part))
                    .await;
                match model.get(&key(src)) {
                    None => assert!(matches!(r, Err(Error::NoSuchKey { .. })), "{r:?}"),
                    Some((bytes, etag)) => match r.unwrap() {
                        // Single-part source: copied by reference, MD5 = the source ETag.
                        Some(rec) => {
                            assert_eq!(&hex::encode(rec.md5), etag);
                            uploads[i].parts.insert(u32::from(part), bytes.clone());
                        }
                        None => assert!(etag.contains('-'), "only multipart sources are refused"),
                    },
                }
            }
            Op::Complete { upload, mask } => {
                if uploads.is_empty() {
                    continue;
                }
                let i = usize::from(upload) % uploads.len();
                let chosen: Vec<(u32, Vec<u8>)> = uploads[i]
                    .parts
                    .iter()
                    .filter(|(n, _)| mask & (1 << **n) != 0)
                    .map(|(n, b)| (*n, b.clone()))
                    .collect();
                let listed = chosen
                    .iter()
                    .map(|(n, b)| (*n, format!("\"{}\"", hex::encode(Md5::digest(b)))))
                    .collect::<Vec<_>>();
                let r = store
                    .complete_upload(
                        &uploads[i].id,
                        listed,
                        0,
                        vec![],
                        WriteCondition::default(),
                        None,
                    )
                    .await;
                if chosen.is_empty() {
                    assert!(matches!(r, Err(Error::InvalidArgument(_))), "{r:?}");
                    continue;
                }
                let (_, k, rec) = r.unwrap();
                let up = uploads.remove(i);
                assert_eq!(k, up.key);
                let mut md5s = Md5::new();
                let mut all = Vec::new();
                for (_, b) in &chosen {
                    md5s.update(Md5::digest(b));
                    all.extend_from_slice(b);
                }
                let etag = format!("{}-{}", hex::encode(md5s.finalize()), chosen.len());
                assert_eq!(rec.etag.to_string(), etag);
                model.insert(up.key, (all, etag));
            }
            Op::Abort { upload } => {
                if uploads.is_empty() {
                    continue;
                }
                let i = usize::from(upload) % uploads.len();
                store.abort_upload(&uploads[i].id).await.unwrap();
                let up = uploads.remove(i);
                assert!(matches!(
                    store.upload(&up.id).await,
                    Err(Error::NoSuchUpload(_))
                ));
            }
            Op::Reopen => {
                drop(store);
                store = common::open_mem(dir.path(), Arc::clone(&blobs), cfg.clone()).await;
                check_all(&store, &model).await;
            }
            Op::Gc => {
                gc_now(&store).await;
                check_all(&store, &model).await;
            }
        }
        common::assert_fsck_clean(&store).await;
    }
    check_all(&store, &model).await;
    // Releasing everything must bring every refcount back to zero.
    for u in &uploads {
        store.abort_upload(&u.id).await.unwrap();
    }
    for k in model.keys() {
        store.delete_object("b", k).await.unwrap();
    }
    common::assert_fsck_clean(&store).await;
    gc_now(&store).await;
    common::assert_fsck_clean(&store).await;
    assert_eq!(
        store.blobs().list("packs/").await.unwrap(),
        vec![],
        "packs left after deleting everything and collecting"
    );
    let stats = store.stats().await.unwrap();
    assert_eq!(stats.stored_bytes, 0, "{stats:?}");
    assert_eq!(
        (
            stats.objects,
            stats.logical_bytes,
            stats.unique_bytes,
            stats.chunks
        ),
        (0, 0, 0, 0)
    );
}

/// GC with no grace: everything unreferenced goes now; nothing referenced may.
async fn gc_now(store: &Store) {
    let opts = s3dedup_storage::gc::GcOptions {
        grace: std::time::Duration::ZERO,
        ..Default::default()
    };
    store.gc(opts, &|_, _| {}).await.expect("gc");
    // No upload or read is in flight: every pack in the store is known and holds a
    // live chunk.
    let known: std::collections::BTreeSet<u128> = store
        .packs()
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let listed: std::collections::BTreeSet<u128> = store
        .blobs()
        .list("packs/")
        .await
        .unwrap()
        .iter()
        .filter_map(|b| s3dedup_storage::pack::parse_blob_name(&b.name))
        .collect();
    assert_eq!(listed, known, "store and index disagree after gc");
    for (id, p) in store.packs().unwrap() {
        assert!(p.live_chunks > 0, "pack {id:032x} kept without live chunks");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn store_matches_model(ops in proptest::collection::vec(op(), 1..40)) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(run(ops, common::small_config()));
    }

    /// The same with encryption on (keyed ids, sealed chunks and pack tables).
    #[test]
    fn encrypted_store_matches_model(ops in proptest::collection::vec(op(), 1..40)) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let cfg = s3dedup_storage::StoreConfig {
            keys: Some(Arc::new(s3dedup_storage::crypto::Keyring::generate())),
            ..common::small_config()
        };
        rt.block_on(run(ops, cfg));
    }
}
