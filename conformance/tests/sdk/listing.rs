//! Listing (v1, v2, delimiters, pagination, url encoding), copies and deletes.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_copy_delete() {
    let g = Gateway::start().unwrap();
    let c = client(&g);
    c.create_bucket().bucket("lists").send().await.unwrap();
    let mut keys = Vec::new();
    for d in 0..20 {
        for f in 0..100 {
            keys.push(format!("dir{d:02}/f{f:03}"));
        }
    }
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(16));
    let mut tasks = Vec::new();
    for k in keys.clone() {
        let (c, sem) = (c.clone(), sem.clone());
        tasks.push(tokio::spawn(async move {
            let _p = sem.acquire().await.unwrap();
            c.put_object()
                .bucket("lists")
                .key(&k)
                .body(ByteStream::from(k.clone().into_bytes()))
                .send()
                .await
                .unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // v2, page by page, no delimiter.
    let mut got = Vec::new();
    let mut token = None;
    loop {
        let r = c
            .list_objects_v2()
            .bucket("lists")
            .max_keys(333)
            .set_continuation_token(token)
            .send()
            .await
            .unwrap();
        got.extend(r.contents().iter().map(|o| o.key().unwrap().to_owned()));
        if !r.is_truncated().unwrap() {
            break;
        }
        token = r.next_continuation_token().map(str::to_owned);
    }
    keys.sort();
    assert_eq!(got, keys);
    // v2 with delimiter: 20 common prefixes, paged 7 at a time.
    let mut prefixes = Vec::new();
    let mut token = None;
    loop {
        let r = c
            .list_objects_v2()
            .bucket("lists")
            .delimiter("/")
            .max_keys(7)
            .set_continuation_token(token)
            .send()
            .await
            .unwrap();
        prefixes.extend(
            r.common_prefixes()
                .iter()
                .map(|p| p.prefix().unwrap().to_owned()),
        );
        if !r.is_truncated().unwrap() {
            break;
        }
        token = r.next_continuation_token().map(str::to_owned);
    }
    assert_eq!(prefixes.len(), 20);
    // v1 with marker.
    let r = c
        .list_objects()
        .bucket("lists")
        .prefix("dir05/")
        .max_keys(60)
        .send()
        .await
        .unwrap();
    assert_eq!(r.contents().len(), 60);
    assert!(r.is_truncated().unwrap());
    let r2 = c
        .list_objects()
        .bucket("lists")
        .prefix("dir05/")
        .marker(r.next_marker().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r2.contents().len(), 40);

    // Copy (metadata only) and delete.
    c.copy_object()
        .bucket("lists")
        .key("copy")
        .copy_source("lists/dir00/f000")
        .send()
        .await
        .unwrap();
    assert_eq!(get(&c, "lists", "copy").await, b"dir00/f000");
    // Copy-source conditions: a failing one is 412 and copies nothing.
    let e = c
        .copy_object()
        .bucket("lists")
        .key("copy2")
        .copy_source("lists/dir00/f000")
        .copy_source_if_match("\"0000\"")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 412);
    let e = c
        .copy_object()
        .bucket("lists")
        .key("copy2")
        .copy_source("lists/dir00/f000")
        .copy_source_if_none_match(etag_of(&c, "lists", "dir00/f000").await)
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 412);
    assert_eq!(
        status(
            &c.head_object()
                .bucket("lists")
                .key("copy2")
                .send()
                .await
                .unwrap_err()
        ),
        404
    );
    // REPLACE sets new metadata; COPY onto itself without changes is refused.
    c.copy_object()
        .bucket("lists")
        .key("copy")
        .copy_source("lists/copy")
        .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
        .metadata("color", "blue")
        .content_type("text/plain")
        .send()
        .await
        .unwrap();
    let h = c
        .head_object()
        .bucket("lists")
        .key("copy")
        .send()
        .await
        .unwrap();
    assert_eq!(
        h.metadata()
            .and_then(|m| m.get("color"))
            .map(String::as_str),
        Some("blue")
    );
    assert_eq!(h.content_type(), Some("text/plain"));
    let e = c
        .copy_object()
        .bucket("lists")
        .key("copy")
        .copy_source("lists/copy")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidRequest");
    c.delete_object()
        .bucket("lists")
        .key("copy")
        .send()
        .await
        .unwrap();
    assert_eq!(
        status(
            &c.head_object()
                .bucket("lists")
                .key("copy")
                .send()
                .await
                .unwrap_err()
        ),
        404
    );
    // DeleteObjects (the SDK sends a CRC32 checksum, not Content-MD5).
    let ids: Vec<_> = keys[..100]
        .iter()
        .map(|k| ObjectIdentifier::builder().key(k).build().unwrap())
        .collect();
    let r = c
        .delete_objects()
        .bucket("lists")
        .delete(Delete::builder().set_objects(Some(ids)).build().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.deleted().len(), 100);
    let r = c
        .list_objects_v2()
        .bucket("lists")
        .prefix("dir00/")
        .send()
        .await
        .unwrap();
    assert_eq!(r.key_count(), Some(0));
    let e = c.delete_bucket().bucket("lists").send().await.unwrap_err();
    assert_eq!(code(&e), "BucketNotEmpty");
}
