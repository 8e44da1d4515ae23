//! Compression of new chunks (zstd, on by default): compressible data is stored in a
//! fraction of its size and reads back byte-exact (whole and by range); incompressible
//! data is stored raw; a store written without compression and reopened with it (and
//! back) reads everything; scrub, fsck and `verify_data` work on compressed chunks and
//! a flipped byte inside a compressed chunk is caught, never decompressed into output.

mod common;

use s3dedup_storage::chunk::Compression;
use s3dedup_storage::scrub::ScrubOptions;
use s3dedup_storage::{ByteRange, StoreConfig, pack};

/// Text-like data: compresses well, with enough variety that FastCDC cuts many chunks
/// and no two chunks are equal.
fn text(seed: u64, len: usize) -> Vec<u8> {
    let words: Vec<&[u8]> = [
        &b"storage "[..],
        b"gateway ",
        b"chunk ",
        b"pack ",
        b"dedup\n",
        b"index ",
        b"the ",
        b"refcount ",
    ]
    .to_vec();
    let noise = common::random_bytes(seed, len / 4 + 1);
    let mut out = Vec::with_capacity(len + 16);
    let mut i = 0;
    while out.len() < len {
        out.extend_from_slice(words[usize::from(noise[i % noise.len()]) % words.len()]);
        if i % 13 == 0 {
            out.extend_from_slice(format!("{} ", noise[i % noise.len()]).as_bytes());
        }
        i += 1;
    }
    out.truncate(len);
    out
}

fn config(compression: Compression) -> StoreConfig {
    StoreConfig {
        compression,
        ..common::small_config()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressible_data_is_stored_small_and_reads_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open_fs(dir.path(), config(Compression::default())).await;
    store.create_bucket("b").await.unwrap();
    let data = text(1, 300_000);
    let pending = store.ingest(common::pieces(&data, 5000)).await.unwrap();
    let st = pending.stats;
    assert!(st.new_chunks > 50, "{st:?}");
    assert!(
        st.compressed_chunks * 10 >= st.new_chunks * 9,
        "nearly every text chunk compresses: {st:?}"
    );
    assert!(st.new_stored_bytes * 3 < st.new_bytes, "{st:?}");
    common::commit(&store, "text", pending).await;
    let random = common::random_bytes(9, 100_000);
    let pending = store.ingest(common::pieces(&random, 5000)).await.unwrap();
    assert_eq!(
        pending.stats.compressed_chunks, 0,
        "random data is stored raw: {:?}",
        pending.stats
    );
    assert!(pending.stats.new_stored_bytes >= 100_000);
    common::commit(&store, "random", pending).await;

    assert_eq!(common::get(&store, "b", "text").await, data);
    assert_eq!(common::get(&store, "b", "random").await, random);
    for (a, b) in [(0, 10), (12_345, 200_000), (299_000, 299_999)] {
        let r = store
            .get_object("b", "text", Some(ByteRange::FromTo(a, b)))
            .await
            .unwrap();
        let got = r.collect().await.unwrap();
        assert_eq!(got, data[a as usize..=b as usize], "range {a}-{b}");
    }
    let s = store.stats().await.unwrap();
    assert_eq!(s.unique_bytes, 400_000);
    assert!(
        s.live_stored_bytes < 100_000 + 300_000 / 3,
        "stored {} for 400 000 unique bytes",
        s.live_stored_bytes
    );
    common::assert_fsck_clean(&store).await;
    let v = store.verify_data(|_, _| {}).await.unwrap();
    assert_eq!((v.bad_chunks, v.bad_pack_tables), (0, 0), "{v:?}");
    let scrub = store
        .scrub(ScrubOptions { rate: 0 }, &|_, _, _| {})
        .await
        .unwrap();
    assert_eq!(scrub.totals.damaged, 0, "{scrub:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_written_with_and_without_compression_read_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let a = text(2, 120_000);
    let b = text(3, 120_000);
    {
        let store = common::open_fs(dir.path(), config(Compression::Off)).await;
        store.create_bucket("b").await.unwrap();
        let p = store.ingest(common::pieces(&a, 4096)).await.unwrap();
        assert_eq!(p.stats.compressed_chunks, 0, "off means off");
        assert!(p.stats.new_stored_bytes > p.stats.new_bytes);
        common::commit(&store, "plain", p).await;
    }
    {
        let store = common::open_fs(dir.path(), config(Compression::default())).await;
        assert_eq!(common::get(&store, "b", "plain").await, a);
        // The same content again dedups against the raw chunks (ids name raw bytes).
        let p = store.ingest(common::pieces(&a, 4096)).await.unwrap();
        assert_eq!(p.stats.new_chunks, 0, "{:?}", p.stats);
        drop(p);
        common::put(&store, "b", "zstd", &b).await;
        common::assert_fsck_clean(&store).await;
    }
    let store = common::open_fs(dir.path(), config(Compression::Off)).await;
    assert_eq!(common::get(&store, "b", "plain").await, a);
    assert_eq!(common::get(&store, "b", "zstd").await, b);
    common::assert_fsck_clean(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_in_a_compressed_chunk_is_an_error_not_data() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open_fs(dir.path(), config(Compression::default())).await;
    store.create_bucket("b").await.unwrap();
    let data = text(4, 200_000);
    common::put(&store, "b", "victim", &data).await;
    let (pack_id, _) = store.packs().unwrap().into_iter().next().unwrap();
    let path = dir
        .path()
        .join("store/blobs")
        .join(pack::blob_name(pack_id));
    let mut bytes = std::fs::read(&path).unwrap();
    // Inside the first chunk's zstd payload (magic 8 + header 8 + a few bytes).
    bytes[8 + 8 + 20] ^= 0x04;
    std::fs::write(&path, bytes).unwrap();
    let read = match store.get_object("b", "victim", None).await {
        Ok(r) => r.collect().await,
        Err(e) => Err(e),
    };
    let err = read.expect_err("a damaged chunk must not read");
    assert!(err.to_string().contains("crc32c"), "{err}");
    let scrub = store
        .scrub(ScrubOptions { rate: 0 }, &|_, _, _| {})
        .await
        .unwrap();
    assert_eq!(scrub.totals.damaged, 1, "{scrub:?}");
}

fn fixture_path(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/codec")
        .join(name)
}

/// The raw bytes of the compressed-chunk fixture (no randomness: they must be the same
/// in every future version).
fn fixture_raw() -> Vec<u8> {
    (0..5000u32)
        .flat_map(|i| format!("line {} of the zstd chunk fixture\n", i % 97).into_bytes())
        .take(20_000)
        .collect()
}

/// Invariant 7 for the codec: a compressed chunk as the first release with compression
/// wrote it keeps decoding to the same bytes (zstd may encode differently later; the
/// frame stays readable).
#[test]
fn zstd_chunk_fixture_decodes() {
    let stored = std::fs::read(fixture_path("chunk-v1-zstd.bin")).unwrap();
    assert_eq!(&stored[..2], &[1, 1], "format 1, zstd flag");
    let raw = fixture_raw();
    let crc = s3dedup_storage::chunk::checksum(&stored);
    let back =
        s3dedup_storage::chunk::decode_verified(stored.into(), crc, raw.len() as u32).unwrap();
    assert_eq!(back, raw);
}

#[test]
#[ignore = "wrote the compressed-chunk fixture; never regenerate it"]
fn write_zstd_chunk_fixture() {
    let stored =
        s3dedup_storage::chunk::encode_with(&fixture_raw(), Compression::Zstd { level: 3 });
    std::fs::create_dir_all(fixture_path("")).unwrap();
    std::fs::write(fixture_path("chunk-v1-zstd.bin"), stored).unwrap();
}
