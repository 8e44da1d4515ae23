//! Slow clients: stalled and trickling bodies cut at `body_idle_timeout`, idle
//! keep-alive connections closed, oversized heads refused, and 500 slowloris and
//! trickle-body connections held while a normal client's p99 stays near idle.

use super::*;

use std::sync::Arc;

use aws_sigv4::http_request::SignableBody;
use s3dedup_conformance::sign_as_root;

/// Short limits so the attacks play out in seconds.
const LIMITS: &[(&str, &str)] = &[
    ("S3DEDUP_BODY_IDLE_TIMEOUT", "2s"),
    ("S3DEDUP_BODY_MIN_RATE", "1KiB"),
    ("S3DEDUP_HEADER_READ_TIMEOUT", "4s"),
    ("S3DEDUP_IDLE_TIMEOUT", "4s"),
];

fn start() -> (tempfile::TempDir, Gateway) {
    start_with(LIMITS)
}

fn start_with(limits: &[(&str, &str)]) -> (tempfile::TempDir, Gateway) {
    let tmp = tempfile::tempdir().unwrap();
    let g = Gateway::start_with(tmp.path(), limits).unwrap();
    (tmp, g)
}

/// The head of a signed PUT of `len` bytes (UNSIGNED-PAYLOAD), ready to be followed by
/// a body that never comes at full speed.
fn signed_put_head(g: &Gateway, path: &str, len: usize) -> Vec<u8> {
    let url = format!("http://{}{path}", g.s3_addr());
    let headers = sign_as_root(
        "PUT",
        &url,
        &[
            ("host", g.s3_addr().to_owned()),
            ("content-length", len.to_string()),
        ],
        SignableBody::UnsignedPayload,
    );
    let mut head = format!("PUT {path} HTTP/1.1\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    head.into_bytes()
}

fn make_bucket(g: &Gateway, name: &str) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        sdk_client(&g.s3_url)
            .create_bucket()
            .bucket(name)
            .send()
            .await
            .unwrap();
    });
}

fn object_exists(g: &Gateway, bucket: &str, key: &str) -> bool {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        sdk_client(&g.s3_url)
            .head_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .is_ok()
    })
}

/// Sends `head` and `first` body bytes, then `drip` bytes every `every` until the
/// server answers or closes; returns (the answer's first line, time from the last full
/// byte of head to the answer).
fn slow_body(s: &mut TcpStream, head: &[u8], drip: usize, every: Duration) -> (String, Duration) {
    s.write_all(head).unwrap();
    s.write_all(&[b'x'; 100]).unwrap();
    let started = Instant::now();
    s.set_read_timeout(Some(every)).unwrap();
    let mut buf = Vec::new();
    loop {
        let mut chunk = [0u8; 4096];
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if drip > 0 && s.write_all(&vec![b'y'; drip]).is_err() {
                    break;
                }
            }
            Err(_) => break,
        }
        assert!(started.elapsed() < Duration::from_secs(30), "never cut");
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    (text, started.elapsed())
}

#[test]
fn stalled_and_trickling_bodies_are_cut_at_the_timeout_and_nothing_is_published() {
    let (_tmp, g) = start();
    make_bucket(&g, "slow");
    // Stalled: 100 bytes of 1 MiB, then nothing.
    let mut s = TcpStream::connect(g.s3_addr()).unwrap();
    let head = signed_put_head(&g, "/slow/stalled", 1 << 20);
    let (answer, took) = slow_body(&mut s, &head, 0, Duration::from_millis(200));
    println!(
        "stalled body: answered after {took:?}: {}",
        answer.lines().next().unwrap_or("")
    );
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("RequestTimeout"), "{answer}");
    // The first window (2 s) had its 100 bytes; the second had none.
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(6),
        "{took:?}"
    );
    assert!(!object_exists(&g, "slow", "stalled"));

    // Trickling: 10 bytes every 200 ms = 50 B/s, far below 1 KiB/s.
    let mut s = TcpStream::connect(g.s3_addr()).unwrap();
    let head = signed_put_head(&g, "/slow/trickle", 1 << 20);
    let (answer, took) = slow_body(&mut s, &head, 10, Duration::from_millis(200));
    println!(
        "trickling body: answered after {took:?}: {}",
        answer.lines().next().unwrap_or("")
    );
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("RequestTimeout"), "{answer}");
    assert!(took < Duration::from_secs(6), "{took:?}");
    assert!(!object_exists(&g, "slow", "trickle"));
    assert!(
        g.metric_sum("s3dedup_connections_cut_total", &["reason=\"slow_body\""])
            .unwrap()
            >= 2.0
    );
    let mut g = g;
    g.stop().unwrap();
    g.assert_fsck("after cut uploads");
}

#[test]
fn idle_keep_alive_connections_are_closed_and_oversized_heads_refused() {
    let (_tmp, g) = start();
    let mut s = TcpStream::connect(g.s3_addr()).unwrap();
    s.write_all(format!("GET /health HTTP/1.1\r\nHost: {}\r\n\r\n", g.s3_addr()).as_bytes())
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 "));
    let answered = Instant::now();
    // Keep-alive: the server keeps the connection open, then closes it when idle.
    let r = s.read(&mut buf);
    let idle = answered.elapsed();
    println!("idle keep-alive connection closed after {idle:?}");
    assert!(matches!(r, Ok(0) | Err(_)), "{r:?}");
    assert!(
        idle >= Duration::from_millis(3500) && idle < Duration::from_secs(8),
        "{idle:?}"
    );

    // A head over max_header_size (64 KiB by default): 431, no body read.
    let big = "a".repeat(70 << 10);
    let (status, _) =
        http_request(g.s3_addr(), "GET", "/", &[("x-amz-meta-big", big)], b"").unwrap();
    assert_eq!(status, 431);
}

/// p99 of `n` samples.
fn p99(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[(v.len() * 99 / 100).min(v.len() - 1)]
}

/// Latency of a normal client: `rounds` × (PUT 64 KiB, GET it), p99 of each.
fn normal_client(g: &Gateway, rounds: usize) -> (Duration, Duration) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = sdk_client(&g.s3_url);
        let body = vec![7u8; 64 << 10];
        let (mut puts, mut gets) = (Vec::new(), Vec::new());
        for i in 0..rounds {
            let key = format!("normal/{i}");
            let t = Instant::now();
            c.put_object()
                .bucket("slow")
                .key(&key)
                .body(ByteStream::from(body.clone()))
                .send()
                .await
                .unwrap();
            puts.push(t.elapsed());
            let t = Instant::now();
            let got = c
                .get_object()
                .bucket("slow")
                .key(&key)
                .send()
                .await
                .unwrap();
            assert_eq!(
                got.body.collect().await.unwrap().into_bytes().len(),
                body.len()
            );
            gets.push(t.elapsed());
        }
        (p99(puts), p99(gets))
    })
}

#[test]
fn five_hundred_slow_connections_do_not_slow_a_normal_client() {
    raise_own_fd_limit();
    // Limits long enough that all 500 are held at once before the first cut.
    let (_tmp, g) = start_with(&[
        ("S3DEDUP_BODY_IDLE_TIMEOUT", "4s"),
        ("S3DEDUP_BODY_MIN_RATE", "1KiB"),
        ("S3DEDUP_HEADER_READ_TIMEOUT", "6s"),
    ]);
    make_bucket(&g, "slow");
    // Warm up, then measure idle.
    normal_client(&g, 20);
    let (idle_put, idle_get) = normal_client(&g, 200);
    let rss_idle = rss_bytes(g.pid()).unwrap();

    // 250 slowloris connections (a header line every second) and 250 trickle bodies (10
    // bytes a second), each reopened when the gateway cuts it.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let cuts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut threads = Vec::new();
    let started = Instant::now();
    for i in 0..500usize {
        let (stop, cuts) = (Arc::clone(&stop), Arc::clone(&cuts));
        let addr = g.s3_addr().to_owned();
        let head = (i % 2 == 1).then(|| signed_put_head(&g, &format!("/slow/attack-{i}"), 1 << 20));
        threads.push(std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok(mut s) = TcpStream::connect(&addr) else {
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                };
                let first: Vec<u8> = match &head {
                    None => format!("GET /slow/x HTTP/1.1\r\nHost: {addr}\r\n").into_bytes(),
                    Some(h) => [h.as_slice(), b"0123456789"].concat(),
                };
                let mut ok = s.write_all(&first).is_ok();
                let mut n = 0;
                while ok && !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_secs(1));
                    n += 1;
                    let drip: Vec<u8> = match &head {
                        None => format!("x-slow-{n}: 1\r\n").into_bytes(),
                        Some(_) => b"0123456789".to_vec(),
                    };
                    ok = s.write_all(&drip).is_ok();
                    // The server's answer or close ends this connection.
                    s.set_nonblocking(true).unwrap();
                    let mut b = [0u8; 256];
                    if s.read(&mut b).is_ok() {
                        ok = false;
                    }
                    s.set_nonblocking(false).unwrap();
                }
                if !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    cuts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let held = g
        .metric_sum("s3dedup_connections", &["listener=\"s3\""])
        .unwrap();
    let opened_in = started.elapsed();
    // All 500 held (no cut yet): a normal client's latency.
    let (held_put, held_get) = normal_client(&g, 200);
    let rss_held = rss_bytes(g.pid()).unwrap();
    let first_phase = started.elapsed();
    // Then while they are being cut and reopened (trickles at ~4 s, slowloris at ~6 s).
    std::thread::sleep(Duration::from_secs(7).saturating_sub(started.elapsed()));
    let (churn_put, churn_get) = normal_client(&g, 200);
    let rss_churn = rss_bytes(g.pid()).unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let cut = cuts.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "slow connections held at once: {held} (after {opened_in:?}); cut and reopened: {cut}\n\
         normal client p99 idle: PUT {idle_put:?} GET {idle_get:?}\n\
         with 500 held (until {first_phase:?}): PUT {held_put:?} GET {held_get:?}\n\
         while they are cut and reopened: PUT {churn_put:?} GET {churn_get:?}\n\
         gateway RSS idle {} MiB, 500 held {} MiB, churn {} MiB",
        rss_idle >> 20,
        rss_held >> 20,
        rss_churn >> 20
    );
    assert!(
        held >= 480.0,
        "the gateway held only {held} slow connections"
    );
    assert!(
        first_phase < Duration::from_secs(4),
        "the first phase overlapped the cuts"
    );
    assert!(cut >= 250, "slow connections were not cut: {cut}");
    // Within 2× of idle; a floor of 20 ms on the idle figure keeps scheduler noise on a
    // 2-core machine (client, attackers and gateway share it) from deciding the result.
    let bound = |idle: Duration| 2 * idle.max(Duration::from_millis(20));
    for (what, busy, idle) in [
        ("PUT, 500 held", held_put, idle_put),
        ("GET, 500 held", held_get, idle_get),
        ("PUT, churn", churn_put, idle_put),
        ("GET, churn", churn_get, idle_get),
    ] {
        assert!(busy <= bound(idle), "{what}: p99 {busy:?} vs idle {idle:?}");
    }
    assert!(
        rss_held.max(rss_churn) < rss_idle + (64 << 20),
        "RSS grew from {rss_idle} to {rss_held}/{rss_churn}"
    );
    for i in (1..500).step_by(2) {
        assert!(
            !object_exists(&g, "slow", &format!("attack-{i}")),
            "attack-{i} published"
        );
    }
}
