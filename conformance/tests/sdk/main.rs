//! The gateway as a real process, driven by the AWS SDK for Rust (latest, default
//! checksum behaviour: CRC32 in aws-chunked trailers).

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier,
};
use md5::{Digest, Md5};
use rand::{RngCore, SeedableRng, rngs::SmallRng};
use s3dedup_conformance::{Gateway, error_code as code, error_status as status};

mod listing;

fn client(g: &Gateway) -> Client {
    s3dedup_conformance::sdk_client(&g.s3_url)
}

fn data(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    SmallRng::seed_from_u64(seed).fill_bytes(&mut v);
    v
}

async fn etag_of(c: &Client, b: &str, k: &str) -> String {
    c.head_object()
        .bucket(b)
        .key(k)
        .send()
        .await
        .unwrap()
        .e_tag()
        .unwrap()
        .to_owned()
}

async fn get(c: &Client, b: &str, k: &str) -> Vec<u8> {
    let o = c.get_object().bucket(b).key(k).send().await.unwrap();
    o.body.collect().await.unwrap().into_bytes().to_vec()
}

async fn multipart(c: &Client, b: &str, k: &str, body: &[u8], part: usize) -> String {
    let up = c
        .create_multipart_upload()
        .bucket(b)
        .key(k)
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap().to_owned();
    // Upload parts concurrently and in reverse order.
    let mut tasks = Vec::new();
    for (i, chunk) in body.chunks(part).enumerate().rev() {
        let (c, b, k, id, chunk) = (
            c.clone(),
            b.to_owned(),
            k.to_owned(),
            id.clone(),
            chunk.to_vec(),
        );
        tasks.push(tokio::spawn(async move {
            let n = i as i32 + 1;
            let r = c
                .upload_part()
                .bucket(b)
                .key(k)
                .upload_id(id)
                .part_number(n)
                .body(ByteStream::from(chunk))
                .send()
                .await
                .unwrap();
            CompletedPart::builder()
                .part_number(n)
                .e_tag(r.e_tag().unwrap())
                .build()
        }));
    }
    let mut parts = Vec::new();
    for t in tasks {
        parts.push(t.await.unwrap());
    }
    parts.sort_by_key(|p| p.part_number());
    let done = c
        .complete_multipart_upload()
        .bucket(b)
        .key(k)
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .unwrap();
    done.e_tag().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trips_single_and_multipart() {
    let g = Gateway::start().unwrap();
    let c = client(&g);
    c.create_bucket().bucket("rtrip").send().await.unwrap();
    for (i, len) in [0usize, 1, 65_535, 65_536, 65_537, 10 << 20, 200 << 20]
        .into_iter()
        .enumerate()
    {
        let body = data(i as u64, len);
        let key = format!("single-{len}");
        let put = c
            .put_object()
            .bucket("rtrip")
            .key(&key)
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .unwrap();
        assert_eq!(
            put.e_tag().unwrap(),
            format!("\"{}\"", hex::encode(Md5::digest(&body))),
            "{len}"
        );
        assert_eq!(get(&c, "rtrip", &key).await, body, "single {len}");
        let head = c
            .head_object()
            .bucket("rtrip")
            .key(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(head.content_length(), Some(len as i64));
    }
    for len in [10usize << 20, 200 << 20] {
        let body = data(len as u64, len);
        let key = format!("multi-{len}");
        let etag = multipart(&c, "rtrip", &key, &body, 8 << 20).await;
        let n = len.div_ceil(8 << 20);
        let mut md5s = Md5::new();
        for p in body.chunks(8 << 20) {
            md5s.update(Md5::digest(p));
        }
        assert_eq!(etag, format!("\"{}-{n}\"", hex::encode(md5s.finalize())));
        assert_eq!(get(&c, "rtrip", &key).await, body, "multipart {len}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checksums_every_algorithm_and_mismatch() {
    let g = Gateway::start().unwrap();
    let c = client(&g);
    c.create_bucket().bucket("cksum").send().await.unwrap();
    let body = data(9, 300_000);
    for algo in [
        ChecksumAlgorithm::Crc32,
        ChecksumAlgorithm::Crc32C,
        ChecksumAlgorithm::Crc64Nvme,
        ChecksumAlgorithm::Sha1,
        ChecksumAlgorithm::Sha256,
    ] {
        let key = format!("k-{}", algo.as_str());
        c.put_object()
            .bucket("cksum")
            .key(&key)
            .checksum_algorithm(algo.clone())
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .unwrap();
        let o = c
            .get_object()
            .bucket("cksum")
            .key(&key)
            .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
            .send()
            .await
            .unwrap();
        let has = match algo {
            ChecksumAlgorithm::Crc32 => o.checksum_crc32().is_some(),
            ChecksumAlgorithm::Crc32C => o.checksum_crc32_c().is_some(),
            ChecksumAlgorithm::Crc64Nvme => o.checksum_crc64_nvme().is_some(),
            ChecksumAlgorithm::Sha1 => o.checksum_sha1().is_some(),
            _ => o.checksum_sha256().is_some(),
        };
        assert!(
            has,
            "{} checksum returned with checksum mode",
            algo.as_str()
        );
        assert_eq!(o.body.collect().await.unwrap().into_bytes().to_vec(), body);
    }
    // A wrong checksum header is refused and nothing is stored.
    let e = c
        .put_object()
        .bucket("cksum")
        .key("bad")
        .checksum_crc32("AAAAAA==")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "BadDigest");
    let e = c
        .put_object()
        .bucket("cksum")
        .key("bad")
        .content_md5("1B2M2Y8AsgTpgAmY7PhCfg==")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "BadDigest");
    let e = c
        .head_object()
        .bucket("cksum")
        .key("bad")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_and_conditions() {
    let g = Gateway::start().unwrap();
    let c = client(&g);
    c.create_bucket().bucket("range").send().await.unwrap();
    let body = data(3, 200_000);
    c.put_object()
        .bucket("range")
        .key("k")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap();
    let n = body.len();
    for (range, want) in [
        ("bytes=0-0", &body[0..1]),
        (&*format!("bytes={}-{}", n - 1, n - 1), &body[n - 1..]),
        ("bytes=100-", &body[100..]),
        ("bytes=-500", &body[n - 500..]),
        (&*format!("bytes=70000-{}", n + 1000), &body[70_000..]),
    ] {
        let o = c
            .get_object()
            .bucket("range")
            .key("k")
            .range(range)
            .send()
            .await
            .unwrap();
        assert!(o.content_range().is_some(), "{range}");
        assert_eq!(
            o.body.collect().await.unwrap().into_bytes().to_vec(),
            want,
            "{range}"
        );
    }
    let e = c
        .get_object()
        .bucket("range")
        .key("k")
        .range(format!("bytes={n}-"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidRange");
    assert_eq!(status(&e), 416);
    let etag = c
        .head_object()
        .bucket("range")
        .key("k")
        .send()
        .await
        .unwrap()
        .e_tag()
        .unwrap()
        .to_owned();
    let e = c
        .get_object()
        .bucket("range")
        .key("k")
        .if_none_match(&etag)
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 304);
    let e = c
        .get_object()
        .bucket("range")
        .key("k")
        .if_match("\"nope\"")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 412);
    // PUT If-None-Match: * refuses to overwrite.
    let e = c
        .put_object()
        .bucket("range")
        .key("k")
        .if_none_match("*")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 412);
    assert_eq!(get(&c, "range", "k").await, body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_copies_of_50_mib_store_50_mib() {
    let g = Gateway::start().unwrap();
    let c = client(&g);
    c.create_bucket().bucket("dedup").send().await.unwrap();
    let body = data(50, 50 << 20);
    for i in 0..10 {
        c.put_object()
            .bucket("dedup")
            .key(format!("copy-{i}"))
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .unwrap();
    }
    let unique = g.metric("s3dedup_unique_bytes").unwrap();
    let logical = g.metric("s3dedup_logical_bytes").unwrap();
    assert_eq!(logical, (500u64 << 20) as f64);
    let mib = unique / f64::from(1 << 20);
    assert!((49.9..=50.1).contains(&mib), "unique {mib} MiB");
    assert_eq!(get(&c, "dedup", "copy-7").await, body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_s3_errors() {
    let g = Gateway::start().unwrap();
    let c = client(&g);
    for bad in ["ab", "UPPER", "under_score", "-dash", "a..b", "192.168.0.1"] {
        let e = c.create_bucket().bucket(bad).send().await.unwrap_err();
        assert!(matches!(status(&e), 400), "{bad}: {e:?}");
    }
    c.create_bucket().bucket("bad").send().await.unwrap();
    let e = c.create_bucket().bucket("bad").send().await.unwrap_err();
    assert_eq!(code(&e), "BucketAlreadyOwnedByYou");
    let long = "k".repeat(1025);
    let e = c
        .put_object()
        .bucket("bad")
        .key(&long)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "KeyTooLongError");
    let e = c
        .put_object()
        .bucket("nobucket")
        .key("k")
        .body(ByteStream::from(vec![1u8; 1 << 20]))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchBucket");
    let e = c
        .get_object()
        .bucket("nobucket")
        .key("k")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchBucket");
    let e = c
        .get_object()
        .bucket("bad")
        .key("nokey")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchKey");
    // Completing with a wrong ETag or unknown part.
    let up = c
        .create_multipart_upload()
        .bucket("bad")
        .key("mp")
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap();
    c.upload_part()
        .bucket("bad")
        .key("mp")
        .upload_id(id)
        .part_number(1)
        .body(ByteStream::from_static(b"part"))
        .send()
        .await
        .unwrap();
    let parts = CompletedMultipartUpload::builder()
        .parts(
            CompletedPart::builder()
                .part_number(1)
                .e_tag("\"0000\"")
                .build(),
        )
        .build();
    let e = c
        .complete_multipart_upload()
        .bucket("bad")
        .key("mp")
        .upload_id(id)
        .multipart_upload(parts)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidPart");
    c.abort_multipart_upload()
        .bucket("bad")
        .key("mp")
        .upload_id(id)
        .send()
        .await
        .unwrap();
    let e = c
        .list_parts()
        .bucket("bad")
        .key("mp")
        .upload_id(id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchUpload");
    // Nothing above left a half object behind.
    let r = c.list_objects_v2().bucket("bad").send().await.unwrap();
    assert_eq!(r.key_count(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_uploads_keeps_every_acknowledged_object() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = Gateway::start_in(dir.path()).unwrap();
    let c = client(&g);
    c.create_bucket().bucket("crash").send().await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let writer = {
        let c = c.clone();
        tokio::spawn(async move {
            for i in 0u64.. {
                let body = data(1000 + i, 300_000 + (i as usize % 7) * 100_000);
                if c.put_object()
                    .bucket("crash")
                    .key(format!("o{i:04}"))
                    .body(ByteStream::from(body))
                    .send()
                    .await
                    .is_err()
                {
                    return;
                }
                if tx.send(i).is_err() {
                    return;
                }
            }
        })
    };
    let mut acked = Vec::new();
    while let Some(i) = rx.recv().await {
        acked.push(i);
        if acked.len() == 25 {
            g.kill();
            break;
        }
    }
    let _ = writer.await;
    while let Ok(i) = rx.try_recv() {
        acked.push(i);
    }
    let g = Gateway::start_in(dir.path()).unwrap();
    let c = client(&g);
    for &i in &acked {
        let want = data(1000 + i, 300_000 + (i as usize % 7) * 100_000);
        assert_eq!(
            get(&c, "crash", &format!("o{i:04}")).await,
            want,
            "acknowledged object {i}"
        );
    }
    let r = c.list_objects_v2().bucket("crash").send().await.unwrap();
    for o in r.contents() {
        let i: u64 = o.key().unwrap()[1..].parse().unwrap();
        let want = data(1000 + i, 300_000 + (i as usize % 7) * 100_000);
        assert_eq!(
            get(&c, "crash", o.key().unwrap()).await,
            want,
            "visible object {i} is whole"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_part_copy_whole_object_is_metadata_only() {
    let g = Gateway::start().unwrap();
    let c = client(&g);
    c.create_bucket().bucket("upc").send().await.unwrap();
    let src = data(77, 6 << 20);
    c.put_object()
        .bucket("upc")
        .key("src")
        .body(ByteStream::from(src.clone()))
        .send()
        .await
        .unwrap();
    let ingested = g.metric("s3dedup_ingested_bytes_total").unwrap();
    let up = c
        .create_multipart_upload()
        .bucket("upc")
        .key("dst")
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap();
    let p1 = c
        .upload_part_copy()
        .bucket("upc")
        .key("dst")
        .upload_id(id)
        .part_number(1)
        .copy_source("upc/src")
        .send()
        .await
        .unwrap();
    let e1 = p1.copy_part_result().unwrap().e_tag().unwrap().to_owned();
    assert_eq!(e1, format!("\"{}\"", hex::encode(Md5::digest(&src))));
    assert_eq!(
        g.metric("s3dedup_ingested_bytes_total").unwrap(),
        ingested,
        "whole-object part copy read no data"
    );
    // A ranged copy goes through the data path and is still exact.
    let p2 = c
        .upload_part_copy()
        .bucket("upc")
        .key("dst")
        .upload_id(id)
        .part_number(2)
        .copy_source("upc/src")
        .copy_source_range("bytes=100-1099")
        .send()
        .await
        .unwrap();
    let e2 = p2.copy_part_result().unwrap().e_tag().unwrap().to_owned();
    let parts = CompletedMultipartUpload::builder()
        .parts(CompletedPart::builder().part_number(1).e_tag(e1).build())
        .parts(CompletedPart::builder().part_number(2).e_tag(e2).build())
        .build();
    c.complete_multipart_upload()
        .bucket("upc")
        .key("dst")
        .upload_id(id)
        .multipart_upload(parts)
        .send()
        .await
        .unwrap();
    let mut want = src.clone();
    want.extend_from_slice(&src[100..1100]);
    assert_eq!(get(&c, "upc", "dst").await, want);
}

/// CompleteMultipartUpload takes the same write conditions as PutObject (one builder).
#[tokio::test]
async fn complete_multipart_upload_honours_write_conditions() {
    let g = Gateway::start().unwrap();
    let c = client(&g);
    c.create_bucket().bucket("mpcond").send().await.unwrap();
    let complete = |key: &'static str, cond: &'static str, value: &'static str| {
        let c = c.clone();
        async move {
            let id = c
                .create_multipart_upload()
                .bucket("mpcond")
                .key(key)
                .send()
                .await
                .unwrap()
                .upload_id()
                .unwrap()
                .to_owned();
            let part = c
                .upload_part()
                .bucket("mpcond")
                .key(key)
                .upload_id(&id)
                .part_number(1)
                .body(ByteStream::from(data(7, 1000)))
                .send()
                .await
                .unwrap();
            let parts = CompletedMultipartUpload::builder()
                .parts(
                    CompletedPart::builder()
                        .part_number(1)
                        .e_tag(part.e_tag().unwrap())
                        .build(),
                )
                .build();
            let req = c
                .complete_multipart_upload()
                .bucket("mpcond")
                .key(key)
                .upload_id(&id)
                .multipart_upload(parts);
            let req = match cond {
                "if-match" => req.if_match(value),
                "if-none-match" => req.if_none_match(value),
                _ => req,
            };
            req.send().await
        }
    };
    // If-Match: * on a missing key: NoSuchKey (it was ignored before).
    let e = complete("absent", "if-match", "*").await.unwrap_err();
    assert_eq!(code(&e), "NoSuchKey");
    complete("present", "", "").await.unwrap();
    // If-None-Match: * on an existing key: 412.
    let e = complete("present", "if-none-match", "*").await.unwrap_err();
    assert_eq!(status(&e), 412);
    // If-None-Match naming an ETag: not implemented, as for PutObject.
    let e = complete("present", "if-none-match", "\"abc\"")
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NotImplemented");
    // If-Match: * on an existing key: completes.
    complete("present", "if-match", "*").await.unwrap();
}

/// CopyObject's `If-Match` / `If-None-Match` judge the destination, checked in the
/// transaction that writes it (s3s 0.14 does not parse them; the gateway reads the headers).
#[tokio::test]
async fn copy_object_honours_destination_write_conditions() {
    let g = Gateway::start().unwrap();
    let c = client(&g);
    c.create_bucket().bucket("cpcond").send().await.unwrap();
    for (key, body) in [("src", "source bytes"), ("dst", "destination bytes")] {
        c.put_object()
            .bucket("cpcond")
            .key(key)
            .body(ByteStream::from_static(body.as_bytes()))
            .send()
            .await
            .unwrap();
    }
    let dst_etag = c
        .head_object()
        .bucket("cpcond")
        .key("dst")
        .send()
        .await
        .unwrap()
        .e_tag()
        .unwrap()
        .to_owned();
    let copy = |key: &'static str| {
        c.copy_object()
            .bucket("cpcond")
            .key(key)
            .copy_source("cpcond/src")
    };
    let e = copy("dst").if_none_match("*").send().await.unwrap_err();
    assert_eq!(
        status(&e),
        412,
        "If-None-Match: * on an existing destination"
    );
    let e = copy("dst").if_match("\"0123\"").send().await.unwrap_err();
    assert_eq!(status(&e), 412, "If-Match with another ETag");
    let e = copy("absent").if_match("*").send().await.unwrap_err();
    assert_eq!(code(&e), "NoSuchKey", "If-Match on a missing destination");
    assert_eq!(
        get(&c, "cpcond", "dst").await,
        b"destination bytes",
        "nothing overwritten"
    );
    copy("dst").if_match(&dst_etag).send().await.unwrap();
    copy("fresh").if_none_match("*").send().await.unwrap();
    for key in ["dst", "fresh"] {
        assert_eq!(get(&c, "cpcond", key).await, b"source bytes", "{key}");
    }
}
