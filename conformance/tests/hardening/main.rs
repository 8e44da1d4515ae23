//! Regressions for holes found by probing the released binary from outside: anonymous
//! memory exhaustion, descriptor exhaustion, SigV2 replay, an index trusted blindly, a
//! lost index taken for a new store, retried completions, and limits S3 enforces.
//! Each test runs the real gateway process and talks HTTP to it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};
use s3dedup_conformance::{
    ACCESS_KEY, Gateway, SECRET_KEY, cpu_time, error_code, error_status, http_request, rss_bytes,
    sdk_client,
};

mod connections;
mod index_damage;
mod slow_clients;

fn raise_own_fd_limit() {
    let _ = rlimit::increase_nofile_limit(u64::MAX);
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// RFC 1123 date of `secs` (via date(1): no date crate needed for one format).
fn http_date(secs: i64) -> String {
    let out = Command::new("date")
        .env("LC_ALL", "C")
        .args([
            "-u",
            "-d",
            &format!("@{secs}"),
            "+%a, %d %b %Y %H:%M:%S GMT",
        ])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn hmac_sha1(key: &[u8], msg: &[u8]) -> Vec<u8> {
    use sha1::{Digest, Sha1};
    let mut k = [0u8; 64];
    k[..key.len()].copy_from_slice(key);
    let mut inner = Sha1::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(msg);
    let mut outer = Sha1::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().to_vec()
}

fn sigv2(string_to_sign: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .encode(hmac_sha1(SECRET_KEY.as_bytes(), string_to_sign.as_bytes()))
}

fn pct(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A SigV2 header-signed GET of /bucket/key dated `date`.
fn get_v2(g: &Gateway, path: &str, date: &str) -> (u16, Vec<u8>) {
    let sig = sigv2(&format!("GET\n\n\n{date}\n{path}"));
    http_request(
        g.s3_addr(),
        "GET",
        path,
        &[
            ("Date", date.to_owned()),
            ("Authorization", format!("AWS {ACCESS_KEY}:{sig}")),
        ],
        &[],
    )
    .unwrap()
}

/// A SigV2 presigned GET of /bucket/key expiring at `expires`.
fn presigned_v2(g: &Gateway, path: &str, expires: i64) -> (u16, Vec<u8>) {
    let sig = sigv2(&format!("GET\n\n\n{expires}\n{path}"));
    let q = format!(
        "{path}?AWSAccessKeyId={ACCESS_KEY}&Expires={expires}&Signature={}",
        pct(&sig)
    );
    http_request(g.s3_addr(), "GET", &q, &[], &[]).unwrap()
}

fn body_code(body: &[u8]) -> String {
    let t = String::from_utf8_lossy(body);
    t.split("<Code>")
        .nth(1)
        .and_then(|r| r.split("</Code>").next())
        .unwrap_or("")
        .to_owned()
}

async fn put(g: &Gateway, bucket: &str, key: &str, data: Vec<u8>) -> String {
    let c = sdk_client(&g.s3_url);
    let r = c
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(data))
        .send()
        .await
        .unwrap();
    r.e_tag().unwrap().trim_matches('"').to_owned()
}

async fn bucket(g: &Gateway, name: &str) {
    sdk_client(&g.s3_url)
        .create_bucket()
        .bucket(name)
        .send()
        .await
        .unwrap();
}

#[test]
fn anonymous_form_posts_are_refused_before_their_body() {
    let g = Gateway::start().unwrap();
    let pid = g.pid();
    // Warm up so the baseline includes the runtime's first allocations.
    let _ = http_request(g.s3_addr(), "GET", "/", &[], &[]).unwrap();
    let baseline = rss_bytes(pid).unwrap();
    const CLAIMED: u64 = 1 << 30;
    let addr = g.s3_addr().to_owned();
    let senders: Vec<_> = (0..3)
        .map(|i| {
            let addr = addr.clone();
            std::thread::spawn(move || -> (Option<u16>, u64) {
                let mut s = TcpStream::connect(&addr).unwrap();
                s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
                let boundary = "xYzZY";
                let head = format!(
                    "POST /bucket{i} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {CLAIMED}\r\n\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nk\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\r\n"
                );
                s.write_all(head.as_bytes()).unwrap();
                let chunk = vec![b'a'; 1 << 20];
                let mut sent = head.len() as u64;
                while sent < CLAIMED {
                    match s.write(&chunk) {
                        Ok(n) => sent += n as u64,
                        Err(_) => break,
                    }
                }
                let mut resp = Vec::new();
                s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                let _ = s.read_to_end(&mut resp);
                let status = String::from_utf8_lossy(&resp)
                    .split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse().ok());
                (status, sent)
            })
        })
        .collect();
    let mut peak = baseline;
    while senders.iter().any(|t| !t.is_finished()) {
        peak = peak.max(rss_bytes(pid).unwrap());
        std::thread::sleep(Duration::from_millis(20));
    }
    for t in senders {
        let (status, sent) = t.join().unwrap();
        assert_eq!(
            status,
            Some(501),
            "form POST answered {status:?} after {sent} bytes"
        );
        assert!(
            sent < CLAIMED / 2,
            "the gateway read {sent} bytes of an unauthenticated body"
        );
    }
    let grew = peak.saturating_sub(baseline);
    eprintln!(
        "RSS baseline {} MiB, peak {} MiB (+{} KiB) during 3 unauthenticated 1 GiB form POSTs",
        baseline >> 20,
        peak >> 20,
        grew >> 10
    );
    assert!(grew < 32 << 20, "RSS grew by {} MiB", grew >> 20);
    // The gateway still serves.
    let (status, _) = http_request(g.s3_addr(), "GET", "/", &[], &[]).unwrap();
    assert_eq!(status, 403);
    // A content type s3s would read differently (non-ASCII: s3s skips the value) is
    // refused too, not let through to s3s's buffering form parser.
    let (status, _) = http_request(
        g.s3_addr(),
        "POST",
        "/bucket0",
        &[("Content-Type", "multipart/form-data; boundary=é".to_owned())],
        b"--x\r\n",
    )
    .unwrap();
    assert_eq!(status, 400);
}

#[tokio::test]
async fn sigv2_is_refused_by_default() {
    let g = Gateway::start().unwrap();
    bucket(&g, "sigv2").await;
    put(&g, "sigv2", "k", b"sigv2 body".to_vec()).await;
    let (status, body) = get_v2(&g, "/sigv2/k", &http_date(now_secs()));
    assert_eq!((status, body_code(&body).as_str()), (400, "InvalidRequest"));
    let (status, body) = presigned_v2(&g, "/sigv2/k", now_secs() + 60);
    assert_eq!((status, body_code(&body).as_str()), (400, "InvalidRequest"));
}

#[tokio::test]
async fn sigv2_when_enabled_is_bounded_in_time() {
    let tmp = tempfile::tempdir().unwrap();
    let g = Gateway::start_with(tmp.path(), &[("S3DEDUP_SIGV2", "true")]).unwrap();
    bucket(&g, "sigv2").await;
    put(&g, "sigv2", "k", b"sigv2 body".to_vec()).await;
    let (status, body) = get_v2(&g, "/sigv2/k", &http_date(now_secs()));
    assert_eq!((status, body.as_slice()), (200, &b"sigv2 body"[..]));
    // A request dated 2001 (a captured request replayed) is refused.
    let (status, body) = get_v2(&g, "/sigv2/k", "Mon, 01 Jan 2001 00:00:00 GMT");
    assert_eq!(
        (status, body_code(&body).as_str()),
        (403, "RequestTimeTooSkewed")
    );
    let (status, _) = get_v2(&g, "/sigv2/k", &http_date(now_secs() - 3600));
    assert_eq!(status, 403);
    let (status, body) = presigned_v2(&g, "/sigv2/k", now_secs() + 3600);
    assert_eq!((status, body.as_slice()), (200, &b"sigv2 body"[..]));
    // 75 years: over the 7-day cap SigV4 has.
    let (status, body) = presigned_v2(&g, "/sigv2/k", now_secs() + 75 * 365 * 86_400);
    assert_eq!(
        (status, body_code(&body).as_str()),
        (400, "AuthorizationQueryParametersError")
    );
}

#[tokio::test]
async fn one_auth_mechanism_per_request() {
    use aws_sdk_s3::presigning::PresigningConfig;
    let g = Gateway::start().unwrap();
    bucket(&g, "auth").await;
    put(&g, "auth", "k", b"x".to_vec()).await;
    let url = sdk_client(&g.s3_url)
        .get_object()
        .bucket("auth")
        .key("k")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).unwrap())
        .await
        .unwrap();
    let path = url.uri().trim_start_matches(&g.s3_url).to_owned();
    let (status, _) = http_request(g.s3_addr(), "GET", &path, &[], &[]).unwrap();
    assert_eq!(status, 200, "the presigned URL itself works");
    let (status, body) = http_request(
        g.s3_addr(),
        "GET",
        &path,
        &[(
            "Authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/20261201/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00"
            ),
        )],
        &[],
    )
    .unwrap();
    assert_eq!(
        (status, body_code(&body).as_str()),
        (400, "InvalidArgument")
    );
}

#[tokio::test]
async fn limits_s3_enforces() {
    let g = Gateway::start().unwrap();
    let c = sdk_client(&g.s3_url);
    bucket(&g, "lim").await;
    // User metadata: 2 KB in all (keys + values).
    let e = c
        .put_object()
        .bucket("lim")
        .key("meta")
        .metadata("big", "v".repeat(3000))
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        (error_status(&e), error_code(&e).as_str()),
        (400, "MetadataTooLarge")
    );
    c.put_object()
        .bucket("lim")
        .key("meta")
        .metadata("a", "v".repeat(2047))
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect("exactly 2 KB of metadata is allowed");
    let e = c
        .create_multipart_upload()
        .bucket("lim")
        .key("mp")
        .metadata("big", "v".repeat(3000))
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&e), "MetadataTooLarge");
    // One 300 KB header.
    let (status, _) = http_request(
        g.s3_addr(),
        "GET",
        "/lim/meta",
        &[("x-amz-meta-huge", "h".repeat(300_000))],
        &[],
    )
    .unwrap();
    assert!(
        status == 400 || status == 431,
        "a 300 KB header answered {status}"
    );
    // DeleteObjects: at most 1000 keys.
    let ids: Vec<ObjectIdentifier> = (0..1001)
        .map(|i| {
            ObjectIdentifier::builder()
                .key(format!("k{i}"))
                .build()
                .unwrap()
        })
        .collect();
    let e = c
        .delete_objects()
        .bucket("lim")
        .delete(Delete::builder().set_objects(Some(ids)).build().unwrap())
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        (error_status(&e), error_code(&e).as_str()),
        (400, "MalformedXML")
    );
    // A DeleteObjects body far over any S3 limit is a 400, not a 500.
    let long_key = "x".repeat(1000);
    let ids: Vec<ObjectIdentifier> = (0..1000)
        .map(|i| {
            ObjectIdentifier::builder()
                .key(format!("{long_key}{i}"))
                .build()
                .unwrap()
        })
        .collect();
    let r = c
        .delete_objects()
        .bucket("lim")
        .delete(Delete::builder().set_objects(Some(ids)).build().unwrap())
        .send()
        .await;
    if let Err(e) = r {
        assert!(error_status(&e) < 500, "{e:?}");
    }
    // Keys XML 1.0 cannot carry are refused at PUT.
    let e = c
        .put_object()
        .bucket("lim")
        .key("bad\u{1}key")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        (error_status(&e), error_code(&e).as_str()),
        (400, "InvalidArgument")
    );
    let listed = c.list_objects_v2().bucket("lim").send().await.unwrap();
    assert_eq!(listed.contents().len(), 1, "only the valid key is listed");
    // A SigV4 scope for another service, and an unknown method.
    let (status, body) = http_request(
        g.s3_addr(),
        "GET",
        "/lim/meta",
        &[
            ("x-amz-date", "20261201T000000Z".to_owned()),
            ("x-amz-content-sha256", "UNSIGNED-PAYLOAD".to_owned()),
            (
                "Authorization",
                format!(
                    "AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/20261201/us-east-1/sts/aws4_request, SignedHeaders=host;x-amz-date, Signature=00"
                ),
            ),
        ],
        &[],
    )
    .unwrap();
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
    let (status, _) = http_request(g.s3_addr(), "PATCH", "/lim/meta", &[], &[]).unwrap();
    assert_eq!(status, 405);
}
