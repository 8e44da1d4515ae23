//! Encryption at rest (engine level; the gateway suite runs the same with a real
//! process): nothing in the backing store shows the plaintext, a chunk's plain SHA-256
//! or a chunk id; a wrong or missing key is refused at open with nothing written; keys
//! rotate (new key added, `rekey`, old key removed, everything reads); encryption turned
//! on for a plaintext store keeps its plain ids, seals what is new, and `rekey` seals
//! the rest.

mod common;

use std::path::Path;
use std::sync::Arc;

use s3dedup_storage::blob::BlobStore;
use s3dedup_storage::chunker::Chunker;
use s3dedup_storage::crypto::Keyring;
use s3dedup_storage::{Error, Store, StoreConfig};

const K1: &str = "1:0101010101010101010101010101010101010101010101010101010101010101";
const K2: &str = "2:0202020202020202020202020202020202020202020202020202020202020202";

fn keys(lines: &[&str]) -> Option<Arc<Keyring>> {
    Some(Arc::new(Keyring::parse(&lines.join("\n")).unwrap()))
}

fn config(keys: Option<Arc<Keyring>>) -> StoreConfig {
    StoreConfig {
        keys,
        ..common::small_config()
    }
}

/// Compressible but varied text (a known plaintext to look for).
fn text(seed: u64, len: usize) -> Vec<u8> {
    let noise = common::random_bytes(seed, len);
    let mut out = Vec::with_capacity(len + 40);
    let mut i = 0;
    while out.len() < len {
        out.extend_from_slice(format!("record {} value {} ok; ", i, noise[i] % 50).as_bytes());
        i += 1;
    }
    out.truncate(len);
    out
}

/// Every blob's bytes in the store directory.
async fn all_blobs(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let blobs = common::fs_blobs(dir);
    let mut out = Vec::new();
    for b in blobs.list("").await.unwrap() {
        out.push((b.name.clone(), blobs.get(&b.name).await.unwrap().to_vec()));
    }
    out
}

/// Plain SHA-256 of each chunk FastCDC cuts from `data` (the small test parameters).
fn plain_chunk_hashes(data: &[u8]) -> Vec<[u8; 32]> {
    Chunker::cut_all(common::small_config().chunker, data)
        .unwrap()
        .iter()
        .map(|b| s3dedup_storage::ChunkId::of(b).0)
        .collect()
}

/// Fails if any blob holds a 32-byte window of `needles`' haystack or any of `hashes`.
fn assert_nothing_revealed(blobs: &[(String, Vec<u8>)], plaintext: &[u8], hashes: &[[u8; 32]]) {
    use std::collections::HashSet;
    let windows: HashSet<&[u8]> = plaintext.windows(32).collect();
    let hashes: HashSet<&[u8]> = hashes.iter().map(|h| &h[..]).collect();
    for (name, bytes) in blobs {
        for w in bytes.windows(32) {
            assert!(!windows.contains(w), "{name} holds plaintext");
            assert!(!hashes.contains(w), "{name} holds a chunk's SHA-256 or id");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_stored_reveals_plaintext_or_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open_fs(dir.path(), config(keys(&[K1]))).await;
    store.create_bucket("b").await.unwrap();
    let data = text(1, 200_000);
    let random = common::random_bytes(2, 50_000);
    common::put(&store, "b", "text", &data).await;
    common::put(&store, "b", "random", &random).await;
    common::put(&store, "b", "tiny", b"a tiny inline object").await;
    assert_eq!(common::get(&store, "b", "text").await, data);
    assert_eq!(common::get(&store, "b", "random").await, random);
    assert_eq!(
        common::get(&store, "b", "tiny").await,
        b"a tiny inline object"
    );
    let ids: Vec<[u8; 32]> = {
        let p = store.ingest(common::pieces(&data, 4096)).await.unwrap();
        assert_eq!(p.stats.new_chunks, 0, "dedup works with keyed ids");
        p.chunk_ids().map(|c| c.0).collect()
    };
    let mut hashes = plain_chunk_hashes(&data);
    assert!(
        !ids.iter().any(|id| hashes.contains(id)),
        "ids are keyed, not SHA-256"
    );
    hashes.extend(ids);
    hashes.extend(plain_chunk_hashes(&random));
    let mut plain = data.clone();
    plain.extend_from_slice(&random);
    let blobs = all_blobs(dir.path()).await;
    assert!(blobs.len() > 3, "{} blobs", blobs.len());
    assert_nothing_revealed(&blobs, &plain, &hashes);
    common::assert_fsck_clean(&store).await;
    let v = store.verify_data(|_, _| {}).await.unwrap();
    assert_eq!((v.bad_chunks, v.bad_pack_tables), (0, 0), "{v:?}");
    let s = store
        .scrub(
            s3dedup_storage::scrub::ScrubOptions { rate: 0 },
            &|_, _, _| {},
        )
        .await
        .unwrap();
    assert_eq!(s.totals.damaged, 0, "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_or_missing_key_is_refused_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = common::open_fs(dir.path(), config(keys(&[K1]))).await;
        store.create_bucket("b").await.unwrap();
        common::put(&store, "b", "x", &text(3, 50_000)).await;
    }
    let stats_before = {
        let store = common::open_fs(dir.path(), config(keys(&[K1]))).await;
        store.stats().await.unwrap()
    };
    let blobs_before = all_blobs(dir.path()).await;
    let wrong = "1:0909090909090909090909090909090909090909090909090909090909090909";
    for (cfg, what) in [
        (config(keys(&[wrong])), "wrong key 1"),
        (config(keys(&[K2])), "only an unknown key"),
        (config(None), "no key"),
    ] {
        let err = Store::open_dir(dir.path(), cfg).await.unwrap_err();
        match (&err, what) {
            (Error::EncryptionRequired { .. }, "no key") | (Error::WrongKey { .. }, _) => {}
            _ => panic!("{what}: {err:?}"),
        }
        assert!(
            !err.to_string().contains("0909"),
            "{what}: never prints a key"
        );
    }
    assert!(
        all_blobs(dir.path()).await == blobs_before,
        "the store is untouched"
    );
    // Neither key was recorded: key 1 still opens, the unknown key 2 still cannot.
    let store = common::open_fs(dir.path(), config(keys(&[K1]))).await;
    assert_eq!(store.stats().await.unwrap(), stats_before);
    assert!(common::get(&store, "b", "x").await == text(3, 50_000));
    drop(store);
    assert!(matches!(
        Store::open_dir(dir.path(), config(keys(&[K2]))).await,
        Err(Error::WrongKey { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_through_rekey() {
    let dir = tempfile::tempdir().unwrap();
    let a = text(4, 150_000);
    let b = text(5, 150_000);
    {
        let store = common::open_fs(dir.path(), config(keys(&[K1]))).await;
        store.create_bucket("b").await.unwrap();
        common::put(&store, "b", "a", &a).await;
        common::put(&store, "b", "tiny", b"inline under key one").await;
    }
    {
        // New key added: it seals new data, key 1 still opens the old.
        let store = common::open_fs(dir.path(), config(keys(&[K1, K2]))).await;
        common::put(&store, "b", "b", &b).await;
        assert_eq!(common::get(&store, "b", "a").await, a);
        let r = store.rekey(&|_| {}).await.unwrap();
        assert_eq!(r.active_key, Some(2));
        assert!(r.packs_stale > 0 && r.chunks_reencoded > 0, "{r:?}");
        assert_eq!(r.inline_reencoded, 1, "{r:?}");
        assert_eq!((r.stale_packs_left, r.stale_inline_left), (0, 0), "{r:?}");
        assert_eq!(r.damaged_chunks, 0, "{r:?}");
        common::assert_fsck_clean(&store).await;
        // Old packs are gone once no read holds them.
        let again = store.rekey(&|_| {}).await.unwrap();
        assert_eq!(again.packs_stale, 0, "{again:?}");
    }
    // Old key removed: everything still reads.
    let store = common::open_fs(dir.path(), config(keys(&[K2]))).await;
    assert_eq!(common::get(&store, "b", "a").await, a);
    assert_eq!(common::get(&store, "b", "b").await, b);
    assert_eq!(
        common::get(&store, "b", "tiny").await,
        b"inline under key one"
    );
    common::assert_fsck_clean(&store).await;
    let v = store.verify_data(|_, _| {}).await.unwrap();
    assert_eq!((v.bad_chunks, v.bad_pack_tables), (0, 0), "{v:?}");
    // Dedup still works after rotation (the id secret survived it).
    let p = store.ingest(common::pieces(&a, 4096)).await.unwrap();
    assert_eq!(p.stats.new_chunks, 0, "{:?}", p.stats);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encryption_turned_on_for_a_plaintext_store() {
    let dir = tempfile::tempdir().unwrap();
    // Random (incompressible) bytes: stored raw, so plaintext would show verbatim.
    let old = common::random_bytes(6, 150_000);
    let new = common::random_bytes(7, 150_000);
    {
        let store = common::open_fs(dir.path(), config(None)).await;
        store.create_bucket("b").await.unwrap();
        common::put(&store, "b", "old", &old).await;
    }
    let store = common::open_fs(dir.path(), config(keys(&[K1]))).await;
    assert!(
        common::get(&store, "b", "old").await == old,
        "old data reads"
    );
    common::put(&store, "b", "new", &new).await;
    // Ids stay plain SHA-256 (fixed at creation): the old chunks still dedup.
    let p = store.ingest(common::pieces(&old, 4096)).await.unwrap();
    assert_eq!(p.stats.new_chunks, 0, "{:?}", p.stats);
    drop(p);
    // Until rekey, the old plaintext is still in the store; the new is not.
    let blobs = all_blobs(dir.path()).await;
    let has = |needle: &[u8]| {
        blobs
            .iter()
            .any(|(_, b)| b.windows(32).any(|w| w == &needle[1000..1032]))
    };
    assert!(has(&old), "plaintext chunks stay until rekey");
    assert!(!has(&new), "new chunks are sealed");
    let r = store.rekey(&|_| {}).await.unwrap();
    assert_eq!((r.stale_packs_left, r.stale_inline_left), (0, 0), "{r:?}");
    drop(store);
    let blobs = all_blobs(dir.path()).await;
    let mut both = old.clone();
    both.extend_from_slice(&new);
    // Plain ids are the store's scheme, but with sealed tables they appear nowhere.
    let mut hashes = plain_chunk_hashes(&old);
    hashes.extend(plain_chunk_hashes(&new));
    assert_nothing_revealed(&blobs, &both, &hashes);
    // From now on the store needs its key.
    assert!(matches!(
        Store::open_dir(dir.path(), config(None)).await,
        Err(Error::EncryptionRequired { .. })
    ));
    let store = common::open_fs(dir.path(), config(keys(&[K1]))).await;
    assert_eq!(common::get(&store, "b", "old").await, old);
    assert_eq!(common::get(&store, "b", "new").await, new);
    common::assert_fsck_clean(&store).await;
}

/// Fixed key of the sealed-format fixtures (test material only).
const FIXTURE_KEY: &str = "7:7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f";

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/codec")
        .join(name)
}

fn fixture_raw() -> Vec<u8> {
    (0..2000u32)
        .flat_map(|i| format!("sealed fixture line {}\n", i % 89).into_bytes())
        .collect()
}

/// Invariant 7 for the sealed formats: a sealed (zstd + AEAD) chunk, a pack with a
/// sealed table (trailer version 2) and the key records, as this release wrote them,
/// keep opening with their key.
#[test]
fn sealed_format_fixtures_open_with_their_key() {
    use s3dedup_storage::chunk::{ChunkCodec, Compression};
    use s3dedup_storage::crypto::{IdScheme, KeyRecords};
    let keys = Arc::new(Keyring::parse(FIXTURE_KEY).unwrap());
    let raw = fixture_raw();
    let id = s3dedup_storage::ChunkId(
        hex::decode(
            std::fs::read_to_string(fixture("chunk-v1-sealed.id"))
                .unwrap()
                .trim(),
        )
        .unwrap()
        .try_into()
        .unwrap(),
    );
    let stored = std::fs::read(fixture("chunk-v1-sealed.bin")).unwrap();
    assert_eq!(&stored[..4], &[1, 3, 7, 0], "format 1, zstd + aead, key 7");
    let codec = ChunkCodec {
        compression: Compression::default(),
        keys: Some(Arc::clone(&keys)),
        ids: IdScheme::Sha256,
        domains: Default::default(),
    };
    let crc = s3dedup_storage::chunk::checksum(&stored);
    let back = codec
        .decode_verified(&id, stored.clone().into(), crc, raw.len() as u32)
        .unwrap();
    assert!(back == raw);
    // Without the key: a typed refusal, not bytes.
    assert!(matches!(
        s3dedup_storage::chunk::decode(stored.into(), raw.len() as u32),
        Err(Error::KeyMissing { id: 7 })
    ));

    let pack = std::fs::read(fixture("pack-v2-sealed.pack")).unwrap();
    let pack_id = u128::from_str_radix(
        std::fs::read_to_string(fixture("pack-v2-sealed.id"))
            .unwrap()
            .trim(),
        16,
    )
    .unwrap();
    let entries = s3dedup_storage::pack::parse_sealed(&pack, pack_id, Some(&keys)).unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].id, id);
    let e = entries[0];
    let chunk = &pack[e.offset as usize..(e.offset + u64::from(e.stored_len)) as usize];
    let back = codec
        .decode_verified(&id, chunk.to_vec().into(), e.crc, raw.len() as u32)
        .unwrap();
    assert!(back == raw);

    let rec = KeyRecords::decode(&std::fs::read(fixture("key-records-v1.bin")).unwrap()).unwrap();
    assert!(rec.keyed);
    assert_eq!(rec.sealed.keys().copied().collect::<Vec<_>>(), vec![7]);
}

#[test]
#[ignore = "wrote the sealed-format fixtures; never regenerate them"]
fn write_sealed_format_fixtures() {
    use s3dedup_storage::chunk::{ChunkCodec, Compression};
    use s3dedup_storage::crypto::{IdScheme, KeyRecords};
    let keys = Arc::new(Keyring::parse(FIXTURE_KEY).unwrap());
    let raw = fixture_raw();
    let id = s3dedup_storage::ChunkId::of(&raw);
    let codec = ChunkCodec {
        compression: Compression::default(),
        keys: Some(Arc::clone(&keys)),
        ids: IdScheme::Sha256,
        domains: Default::default(),
    };
    let stored = codec.encode(&id, &raw);
    std::fs::create_dir_all(fixture("")).unwrap();
    std::fs::write(fixture("chunk-v1-sealed.bin"), &stored).unwrap();
    std::fs::write(fixture("chunk-v1-sealed.id"), format!("{id}\n")).unwrap();
    let (mut enc, magic) =
        s3dedup_storage::pack::PackEncoder::start_sealed(Some(Arc::clone(&keys)));
    let crc = s3dedup_storage::chunk::checksum(&stored);
    let (_, bytes) = enc.push_stored(id, stored, crc);
    let (pack_id, tail, _) = enc.finish();
    let pack = [&magic[..], &bytes[..], &tail[..]].concat();
    std::fs::write(fixture("pack-v2-sealed.pack"), pack).unwrap();
    std::fs::write(fixture("pack-v2-sealed.id"), format!("{pack_id:032x}\n")).unwrap();
    let mut rec = KeyRecords {
        keyed: true,
        ..KeyRecords::default()
    };
    rec.add_missing(&keys, &[5; 32]);
    std::fs::write(fixture("key-records-v1.bin"), rec.encode()).unwrap();
}
