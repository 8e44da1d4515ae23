//! Rate limits (per key, per IP, requests and bytes) and the failed-authentication
//! lockout, against the real gateway. Other client IPs are 127.0.0.x addresses the test
//! binds its sockets to (Linux routes all of 127/8 to loopback).

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use s3dedup_conformance::{Gateway, error_code, error_status, sdk_client_with, sign_as_root};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn no_retries(b: aws_sdk_s3::config::Builder) -> aws_sdk_s3::config::Builder {
    b.retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
}

/// A root-signed `GET /` sent from `from`; returns (status, head, body).
async fn list_buckets_from(g: &Gateway, from: &str) -> (u16, String) {
    let url = format!("{}/", g.s3_url);
    let signed = sign_as_root(
        "GET",
        &url,
        &[("host", g.s3_addr().to_owned())],
        aws_sigv4::http_request::SignableBody::Bytes(b""),
    );
    let mut req = String::from("GET / HTTP/1.1\r\nconnection: close\r\n");
    for (k, v) in &signed {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::new(from.parse::<IpAddr>().unwrap(), 0))
        .unwrap();
    let mut s = sock.connect(g.s3_addr().parse().unwrap()).await.unwrap();
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ip_is_locked_out_after_failed_authentications_and_the_owner_is_not() {
    let tmp = tempfile::tempdir().unwrap();
    let g = Gateway::start_with(
        tmp.path(),
        &[
            ("S3DEDUP_AUTH_FAILURE_LIMIT", "5"),
            ("S3DEDUP_AUTH_FAILURE_WINDOW", "60s"),
            ("S3DEDUP_AUTH_LOCKOUT", "3s"),
        ],
    )
    .unwrap();
    // The right key from 127.0.0.1 works.
    assert_eq!(list_buckets_from(&g, "127.0.0.1").await.0, 200);
    // Wrong secrets and an unknown key from 127.0.0.1: five failures.
    let wrong = sdk_client_with(&g.s3_url, |b| {
        no_retries(b).credentials_provider(aws_sdk_s3::config::Credentials::new(
            s3dedup_conformance::ACCESS_KEY,
            "not-the-secret-at-all",
            None,
            None,
            "t",
        ))
    });
    let unknown = sdk_client_with(&g.s3_url, |b| {
        no_retries(b).credentials_provider(aws_sdk_s3::config::Credentials::new(
            "NOSUCHKEY0000000",
            "whatever-secret",
            None,
            None,
            "t",
        ))
    });
    for i in 0..5 {
        let c = if i % 2 == 0 { &wrong } else { &unknown };
        let e = c.list_buckets().send().await.unwrap_err();
        assert_eq!(error_status(&e), 403);
        assert!(
            ["SignatureDoesNotMatch", "InvalidAccessKeyId"].contains(&error_code(&e).as_str()),
            "{}",
            error_code(&e)
        );
    }
    // Now even the right key is refused from that IP, with Retry-After...
    let (status, text) = list_buckets_from(&g, "127.0.0.1").await;
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("Too many failed authentications"), "{text}");
    assert!(text.to_ascii_lowercase().contains("retry-after:"), "{text}");
    // ...but not from another address: the key's owner keeps working.
    assert_eq!(list_buckets_from(&g, "127.0.0.2").await.0, 200);
    assert_eq!(g.metric("s3dedup_auth_lockouts_total").unwrap(), 1.0);
    // After the cool-down the IP is served again.
    tokio::time::sleep(Duration::from_millis(3200)).await;
    assert_eq!(list_buckets_from(&g, "127.0.0.1").await.0, 200);
}

fn p99(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[(v.len() * 99 / 100).min(v.len() - 1)]
}

/// `n` GETs paced at 25/s (the calm key stays under its own 50/s): their p99.
async fn gets(c: &aws_sdk_s3::Client, n: usize) -> Duration {
    let mut lat = Vec::new();
    for _ in 0..n {
        tokio::time::sleep(Duration::from_millis(40)).await;
        let t = Instant::now();
        let o = c.get_object().bucket("calm").key("k").send().await.unwrap();
        o.body.collect().await.unwrap();
        lat.push(t.elapsed());
    }
    p99(lat)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_its_rate_a_key_gets_slow_down_and_another_stays_fast() {
    let tmp = tempfile::tempdir().unwrap();
    let g = Gateway::start_with(
        tmp.path(),
        &[
            ("S3DEDUP_RATE_LIMIT_KEY_REQUESTS", "50"),
            ("S3DEDUP_RATE_LIMIT_KEY_BYTES", "1MiB"),
        ],
    )
    .unwrap();
    g.admin_cli_ok(&["tenant", "create", "busy"]);
    g.admin_cli_ok(&["tenant", "create", "calm"]);
    let busy_key = g.create_key(&["--tenant", "busy"]);
    let calm_key = g.create_key(&["--tenant", "calm"]);
    let retries_off = |key: &serde_json::Value| {
        let creds = aws_sdk_s3::config::Credentials::new(
            key["access_key"].as_str().unwrap(),
            key["secret_key"].as_str().unwrap(),
            None,
            None,
            "t",
        );
        sdk_client_with(&g.s3_url, move |b| {
            no_retries(b).credentials_provider(creds)
        })
    };
    let busy = retries_off(&busy_key);
    let calm = retries_off(&calm_key);
    busy.create_bucket().bucket("busy").send().await.unwrap();
    calm.create_bucket().bucket("calm").send().await.unwrap();
    calm.put_object()
        .bucket("calm")
        .key("k")
        .body(ByteStream::from(vec![1u8; 4096]))
        .send()
        .await
        .unwrap();
    gets(&calm, 10).await;
    let idle = gets(&calm, 60).await;

    // The busy key hammers for 3 s from 4 tasks.
    let started = Instant::now();
    let hammer: Vec<_> = (0..4)
        .map(|_| {
            let busy = busy.clone();
            tokio::spawn(async move {
                let (mut ok, mut slow, mut retry_after) = (0u32, 0u32, true);
                while started.elapsed() < Duration::from_secs(3) {
                    match busy.list_objects_v2().bucket("busy").send().await {
                        Ok(_) => ok += 1,
                        Err(e) => {
                            assert_eq!(
                                (error_status(&e), error_code(&e).as_str()),
                                (503, "SlowDown")
                            );
                            retry_after &= e
                                .raw_response()
                                .is_some_and(|r| r.headers().get("retry-after").is_some());
                            slow += 1;
                        }
                    }
                }
                (ok, slow, retry_after)
            })
        })
        .collect();
    let during = gets(&calm, 60).await;
    let (mut ok, mut slow) = (0, 0);
    for h in hammer {
        let (o, s, ra) = h.await.unwrap();
        assert!(ra, "a SlowDown came without Retry-After");
        ok += o;
        slow += s;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "busy key: {ok} served, {slow} SlowDown in {secs:.1} s ({:.0}/s served, limit 50/s); \
         calm key GET p99 idle {idle:?}, while the other is limited {during:?}",
        f64::from(ok) / secs
    );
    assert!(slow > 0, "the limit never refused");
    // 50/s plus the one-second burst (51), over the time measured.
    assert!(
        f64::from(ok) <= 50.0 * secs + 51.0 + 5.0,
        "{ok} served in {secs} s"
    );
    assert!(
        during <= 2 * idle.max(Duration::from_millis(20)),
        "p99 {during:?} vs idle {idle:?}"
    );

    // Bytes: 1 MiB/s. Once the request rate has recovered, a 2 MiB upload passes; the
    // next has to wait for it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    busy.put_object()
        .bucket("busy")
        .key("big")
        .body(ByteStream::from(vec![7u8; 2 << 20]))
        .send()
        .await
        .unwrap();
    let e = busy
        .put_object()
        .bucket("busy")
        .key("next")
        .body(ByteStream::from(vec![7u8; 1024]))
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&e), "SlowDown");
    assert!(
        g.metric_sum("s3dedup_rate_limited_total", &["by=\"key\""])
            .unwrap()
            >= f64::from(slow)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ip_over_its_rate_is_slowed_down_before_authentication() {
    let tmp = tempfile::tempdir().unwrap();
    let g = Gateway::start_with(tmp.path(), &[("S3DEDUP_RATE_LIMIT_IP_REQUESTS", "10")]).unwrap();
    let mut statuses = Vec::new();
    for _ in 0..30 {
        statuses.push(list_buckets_from(&g, "127.0.0.3").await);
    }
    let slowed: Vec<_> = statuses.iter().filter(|(s, _)| *s == 503).collect();
    assert!(
        slowed.len() >= 15,
        "{:?}",
        statuses.iter().map(|s| s.0).collect::<Vec<_>>()
    );
    assert!(
        slowed[0].1.contains("<Code>SlowDown</Code>"),
        "{}",
        slowed[0].1
    );
    assert!(
        slowed[0].1.to_ascii_lowercase().contains("retry-after: 1"),
        "{}",
        slowed[0].1
    );
    // Another address is not affected.
    assert_eq!(list_buckets_from(&g, "127.0.0.4").await.0, 200);
    assert!(
        g.metric_sum("s3dedup_rate_limited_total", &["by=\"ip\""])
            .unwrap()
            >= 15.0
    );
}
