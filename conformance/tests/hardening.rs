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

#[test]
fn a_silent_connection_does_not_hold_its_slot_forever() {
    let g = Gateway::start().unwrap();
    let mut s = TcpStream::connect(g.s3_addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(45))).unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 16];
    let r = s.read(&mut buf);
    let took = started.elapsed();
    assert!(
        matches!(r, Ok(0) | Err(_)) && took < Duration::from_secs(40),
        "a connection that sent nothing was kept {took:?} ({r:?})"
    );
    assert!(
        took >= Duration::from_secs(25),
        "closed after only {took:?}"
    );
}

/// An anonymous `GET /` that gives up after `timeout`: the status, or `None`.
fn quick_get(addr: &str, timeout: Duration) -> Option<u16> {
    let mut s = TcpStream::connect_timeout(&addr.parse().ok()?, timeout).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    s.set_write_timeout(Some(timeout)).ok()?;
    s.write_all(format!("GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())
        .ok()?;
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).ok()?;
    String::from_utf8_lossy(&buf[..n])
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Opens `n` idle connections to `addr` (each sends nothing).
fn hold(addr: &str, n: usize) -> Vec<TcpStream> {
    let addr = addr.parse().unwrap();
    (0..n)
        .filter_map(|_| {
            (0..3).find_map(|_| TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok())
        })
        .collect()
}

fn cpu_share(pid: u32, over: Duration) -> f64 {
    let before = cpu_time(pid).unwrap();
    std::thread::sleep(over);
    (cpu_time(pid).unwrap() - before).as_secs_f64() / over.as_secs_f64()
}

#[test]
fn held_connections_beyond_the_soft_fd_limit_do_not_stop_service() {
    raise_own_fd_limit();
    // Soft 1024 (the usual default), hard 4096: the gateway raises its soft limit.
    let tmp = tempfile::tempdir().unwrap();
    let g =
        Gateway::start_wrapped(tmp.path(), &[], &["prlimit", "--nofile=1024:4096", "--"]).unwrap();
    let held = hold(g.s3_addr(), 1100);
    assert_eq!(held.len(), 1100);
    std::thread::sleep(Duration::from_millis(500));
    let cpu = cpu_share(g.pid(), Duration::from_secs(2));
    let started = Instant::now();
    let status = quick_get(g.s3_addr(), Duration::from_secs(5));
    let took = started.elapsed();
    eprintln!(
        "1100 held connections: gateway CPU {:.0} %, a new request {took:?}",
        cpu * 100.0
    );
    assert_eq!(status, Some(403), "a new client was not served within 5 s");
    assert!(
        took < Duration::from_secs(2),
        "a new client waited {took:?}"
    );
    assert!(cpu < 0.3, "gateway used {:.0} % CPU", cpu * 100.0);
    drop(held);
}

#[test]
fn accept_backs_off_instead_of_spinning_when_descriptors_run_out() {
    raise_own_fd_limit();
    let tmp = tempfile::tempdir().unwrap();
    // More connections allowed than descriptors: accept() fails with EMFILE.
    let g = Gateway::start_wrapped(
        tmp.path(),
        &[("S3DEDUP_MAX_CONNECTIONS", "10000")],
        &["prlimit", "--nofile=160:160", "--"],
    )
    .unwrap();
    // ~150 are accepted before descriptors run out; the rest wait in the backlog.
    let held = hold(g.s3_addr(), 200);
    std::thread::sleep(Duration::from_millis(500));
    let cpu = cpu_share(g.pid(), Duration::from_secs(3));
    eprintln!("out of descriptors: gateway CPU {:.0} %", cpu * 100.0);
    assert!(cpu < 0.3, "accept loop spun at {:.0} % CPU", cpu * 100.0);
    drop(held);
    // Once descriptors are free again, clients are served.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match quick_get(g.s3_addr(), Duration::from_secs(2)) {
            Some(403) => break,
            other if Instant::now() > deadline => panic!("not served again: {other:?}"),
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    let errors = g.metric_sum("s3dedup_accept_errors_total", &[]).unwrap();
    assert!(errors > 0.0, "no accept error was counted");
}

#[test]
fn default_connection_limit_fits_a_low_descriptor_limit() {
    raise_own_fd_limit();
    let tmp = tempfile::tempdir().unwrap();
    let g =
        Gateway::start_wrapped(tmp.path(), &[], &["prlimit", "--nofile=512:512", "--"]).unwrap();
    // 256 served (512 minus the reserve), the rest wait in the listen backlog.
    let held = hold(g.s3_addr(), 320);
    std::thread::sleep(Duration::from_millis(500));
    let cpu = cpu_share(g.pid(), Duration::from_secs(2));
    assert!(cpu < 0.3, "gateway used {:.0} % CPU", cpu * 100.0);
    let log = std::fs::read_to_string(tmp.path().join("gateway.log")).unwrap();
    assert!(
        !log.contains("accept failed"),
        "the limit did not fit: {log}"
    );
    drop(held);
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

/// Finds the object record of an object of `size` bytes with ETag `md5_hex` in the
/// index file (any record version) and overwrites its size field with `new_size`.
/// Returns how many copies were changed (redb may keep freed old copies too).
fn flip_object_size(index: &Path, md5_hex: &str, size: u64, new_size: u64) -> usize {
    let md5 = hex::decode(md5_hex).unwrap();
    let mut file = std::fs::read(index).unwrap();
    let mut changed = 0;
    let mut at = 0;
    while let Some(p) = file[at..].windows(16).position(|w| w == md5.as_slice()) {
        let pos = at + p;
        at = pos + 1;
        if pos < 9 {
            continue;
        }
        let field = pos - 8;
        let version = file[field - 1];
        if matches!(version, 1 | 2) && file[field..pos] == size.to_le_bytes() {
            file[field..pos].copy_from_slice(&new_size.to_le_bytes());
            changed += 1;
        }
    }
    std::fs::write(index, &file).unwrap();
    changed
}

fn fsck(g: &Gateway, dir: &Path) -> (bool, String) {
    let out = Command::new(s3dedup_conformance::binary().unwrap())
        .args(["fsck", "--data-dir"])
        .arg(dir)
        .envs(g.store_env())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test]
async fn a_flipped_size_is_a_500_never_a_short_200() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let mut g = Gateway::start_in(&dir).unwrap();
    bucket(&g, "bkt").await;
    let data: Vec<u8> = (0..10_485_760u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let etag = put(&g, "bkt", "victim", data).await;
    put(&g, "bkt", "bystander", b"still fine".to_vec()).await;
    g.stop().unwrap();
    let n = flip_object_size(&dir.join("index.redb"), &etag, 10_485_760, 6_225_920);
    assert!(n >= 1, "object record not found in the index file");
    let g = Gateway::start_in(&dir).unwrap();
    let c = sdk_client(&g.s3_url);
    let e = c.get_object().bucket("bkt").key("victim").send().await;
    match e {
        Ok(r) => {
            let len = r
                .body
                .collect()
                .await
                .map(|b| b.into_bytes().len())
                .unwrap_or(0);
            panic!("GET of a damaged record answered 200 with {len} bytes");
        }
        Err(e) => assert_eq!(error_status(&e), 500, "{e:?}"),
    }
    let e = c
        .head_object()
        .bucket("bkt")
        .key("victim")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_status(&e), 500);
    // Deleting, copying or overwriting it fails cleanly; the process stays up.
    let e = c
        .delete_object()
        .bucket("bkt")
        .key("victim")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_status(&e), 500);
    let e = c
        .copy_object()
        .bucket("bkt")
        .key("copy")
        .copy_source("bkt/victim")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_status(&e), 500);
    let got = c
        .get_object()
        .bucket("bkt")
        .key("bystander")
        .send()
        .await
        .unwrap();
    assert_eq!(
        &got.body.collect().await.unwrap().into_bytes()[..],
        b"still fine"
    );
    assert!(g.metric_sum("s3dedup_corrupt_records_total", &[]).unwrap() >= 1.0);
    let mut g = g;
    g.stop().unwrap();
    let (ok, out) = fsck(&g, &dir);
    assert!(!ok, "fsck passed a damaged index:\n{out}");
    assert!(out.contains("damaged object bkt/victim"), "{out}");
}

#[tokio::test]
async fn a_flipped_page_and_an_unclean_stop_leave_the_rest_readable() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let mut g = Gateway::start_in(&dir).unwrap();
    bucket(&g, "aaa").await;
    bucket(&g, "mmm").await;
    bucket(&g, "zzz").await;
    let victim: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let etag = put(&g, "aaa", "victim", victim).await;
    // Enough objects after it that later writes touch other leaves of the tree.
    for i in 0..300 {
        put(
            &g,
            "mmm",
            &format!("filler-{i:04}"),
            format!("filler {i}").into_bytes(),
        )
        .await;
    }
    g.stop().unwrap();
    assert!(flip_object_size(&dir.join("index.redb"), &etag, 300_000, 299_999) >= 1);
    let mut g = Gateway::start_in(&dir).unwrap();
    for i in 0..20 {
        put(
            &g,
            "zzz",
            &format!("after-{i}"),
            format!("written after the flip {i}").into_bytes(),
        )
        .await;
    }
    g.kill(); // unclean stop
    let g = Gateway::start_in(&dir).expect("the index must open after an unclean stop");
    let c = sdk_client(&g.s3_url);
    let e = c
        .get_object()
        .bucket("aaa")
        .key("victim")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_status(&e), 500);
    for i in [0, 150, 299] {
        let r = c
            .get_object()
            .bucket("mmm")
            .key(format!("filler-{i:04}"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.body.collect().await.unwrap().into_bytes(),
            format!("filler {i}").into_bytes()
        );
    }
    let r = c
        .get_object()
        .bucket("zzz")
        .key("after-19")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.body.collect().await.unwrap().into_bytes(),
        b"written after the flip 19".to_vec()
    );
}

#[tokio::test]
async fn snapshots_roll_the_index_back() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let env = [
        ("S3DEDUP_INDEX_SNAPSHOT_INTERVAL", "1"),
        ("S3DEDUP_INDEX_SNAPSHOTS", "2"),
    ];
    let mut g = Gateway::start_with(&dir, &env).unwrap();
    bucket(&g, "snap").await;
    put(&g, "snap", "kept", b"in the snapshot".to_vec()).await;
    let snaps = dir.join("index-snapshots");
    let deadline = Instant::now() + Duration::from_secs(20);
    let list = |d: &Path| -> Vec<std::path::PathBuf> {
        let mut v: Vec<_> = std::fs::read_dir(d)
            .map(|r| r.filter_map(|e| Some(e.ok()?.path())).collect())
            .unwrap_or_default();
        v.retain(|p| p.extension().is_some_and(|e| e == "redb"));
        v.sort();
        v
    };
    while list(&snaps).len() < 2 {
        assert!(
            Instant::now() < deadline,
            "no snapshots in {}",
            snaps.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(3));
    assert!(list(&snaps).len() <= 2, "more snapshots kept than asked");
    g.stop().unwrap();
    // The documented procedure: stop, move the damaged index aside, copy the newest
    // snapshot in, start, fsck.
    let newest = list(&snaps).pop().unwrap();
    std::fs::rename(dir.join("index.redb"), dir.join("index.redb.damaged")).unwrap();
    std::fs::copy(&newest, dir.join("index.redb")).unwrap();
    let (ok, out) = fsck(&g, &dir);
    assert!(ok, "{out}");
    let g = Gateway::start_with(&dir, &env).unwrap();
    let r = sdk_client(&g.s3_url)
        .get_object()
        .bucket("snap")
        .key("kept")
        .send()
        .await
        .unwrap();
    assert_eq!(
        &r.body.collect().await.unwrap().into_bytes()[..],
        b"in the snapshot"
    );
}

#[tokio::test]
async fn a_retried_completion_gets_the_same_answer() {
    let g = Gateway::start().unwrap();
    let c = sdk_client(&g.s3_url);
    bucket(&g, "multi").await;
    let up = c
        .create_multipart_upload()
        .bucket("multi")
        .key("k")
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap();
    let part = c
        .upload_part()
        .bucket("multi")
        .key("k")
        .upload_id(id)
        .part_number(1)
        .body(ByteStream::from(vec![7u8; 100_000]))
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
    let complete = || {
        c.complete_multipart_upload()
            .bucket("multi")
            .key("k")
            .upload_id(id)
            .multipart_upload(parts.clone())
            .send()
    };
    let first = complete().await.unwrap();
    let again = complete().await.expect("a retried completion succeeds");
    assert_eq!(first.e_tag(), again.e_tag());
    // Another part list for the same id is not the same request.
    let other = CompletedMultipartUpload::builder()
        .parts(
            CompletedPart::builder()
                .part_number(2)
                .e_tag(part.e_tag().unwrap())
                .build(),
        )
        .build();
    let e = c
        .complete_multipart_upload()
        .bucket("multi")
        .key("k")
        .upload_id(id)
        .multipart_upload(other)
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&e), "NoSuchUpload");
    // Nothing was stored twice: one object with the first answer's ETag, fsck clean.
    let listed = c.list_objects_v2().bucket("multi").send().await.unwrap();
    assert_eq!(listed.contents().len(), 1);
    assert_eq!(listed.contents()[0].e_tag(), first.e_tag());
    let mut g = g;
    g.stop().unwrap();
    let (ok, out) = fsck(&g, &g.data_dir);
    assert!(ok, "{out}");
}

#[tokio::test]
async fn a_lost_index_is_not_taken_for_a_new_store() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let mut g = Gateway::start_in(&dir).unwrap();
    bucket(&g, "lost").await;
    put(&g, "lost", "k", vec![5u8; 200_000]).await;
    g.stop().unwrap();
    let index = dir.join("index.redb");
    std::fs::rename(&index, dir.join("index.redb.saved")).unwrap();
    let e = Gateway::start_in(&dir).expect_err("started over a store whose index is gone");
    assert!(format!("{e:#}").contains("not a new store"), "{e:#}");
    std::fs::write(&index, b"").unwrap();
    let e = Gateway::start_in(&dir).expect_err("started over an empty index");
    assert!(format!("{e:#}").contains("not a new store"), "{e:#}");
    // Put back, it serves again.
    std::fs::rename(dir.join("index.redb.saved"), &index).unwrap();
    let g = Gateway::start_in(&dir).unwrap();
    let r = sdk_client(&g.s3_url)
        .get_object()
        .bucket("lost")
        .key("k")
        .send()
        .await
        .unwrap();
    assert_eq!(r.body.collect().await.unwrap().into_bytes().len(), 200_000);
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
