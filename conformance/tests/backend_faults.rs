//! A flaky backend: a fault-injecting proxy between the gateway and a real S3 server
//! (s3s-fs) answers 5xx, resets connections, stalls and truncates bodies. Under each
//! fault no PUT may be acknowledged whose packs did not land, no GET may return wrong
//! bytes, and once the faults stop the same gateway process works again, including
//! after its circuit breaker opened.

use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::primitives::ByteStream;
use rand::{RngCore, SeedableRng, rngs::SmallRng};
use s3dedup_conformance::faultproxy::{Fault, FaultPlan, FaultProxy};
use s3dedup_conformance::s3server::S3Server;
use s3dedup_conformance::{Gateway, error_code, error_status, sdk_client_with};

fn data(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    SmallRng::seed_from_u64(seed).fill_bytes(&mut v);
    v
}

/// What clients saw under one fault.
#[derive(Debug, Default)]
struct Tally {
    puts_ok: u32,
    puts_failed: u32,
    gets_ok: u32,
    gets_failed: u32,
    codes: Vec<String>,
}

async fn put(c: &Client, key: &str, body: &[u8]) -> Result<(), String> {
    c.put_object()
        .bucket("bkt")
        .key(key)
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| format!("{} {}", error_status(&e), error_code(&e)))
}

/// The object's bytes, or why they could not be read (a failed request or a body cut
/// short). Never wrong bytes: the caller compares.
async fn get(c: &Client, key: &str) -> Result<Vec<u8>, String> {
    let out = c
        .get_object()
        .bucket("bkt")
        .key(key)
        .send()
        .await
        .map_err(|e| format!("{} {}", error_status(&e), error_code(&e)))?;
    let bytes = out.body.collect().await.map_err(|e| e.to_string())?;
    Ok(bytes.into_bytes().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flaky_backend_never_yields_false_200s_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let server = S3Server::start(&dir.path().join("s3"), None).unwrap();
    server.create_bucket("faulty").unwrap();
    let proxy = FaultProxy::start(&server.addr).unwrap();
    let mut env = server.gateway_env_via(&proxy.url(), "faulty", "gw/");
    for (k, v) in [
        ("S3DEDUP_STORE_TIMEOUT", "1"),
        ("S3DEDUP_STORE_MAX_ATTEMPTS", "4"),
        ("S3DEDUP_STORE_BREAKER_THRESHOLD", "6"),
        ("S3DEDUP_STORE_BREAKER_COOLDOWN", "1"),
        // Small packs: each object is several backend requests.
        ("S3DEDUP_PACK_TARGET", "1048576"),
        ("S3DEDUP_READ_COALESCE", "262144"),
    ] {
        env.push((k.to_owned(), v.to_owned()));
    }
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let g = Gateway::start_with(&dir.path().join("gw"), &env).unwrap();
    // No client retries: every gateway error is seen and counted.
    let c = sdk_client_with(&g.s3_url, |b| b.retry_config(RetryConfig::disabled()));
    c.create_bucket().bucket("bkt").send().await.unwrap();

    // Objects stored while the backend is healthy, read back under every fault.
    let mut stored: Vec<(String, Vec<u8>)> = Vec::new();
    for i in 0..4u64 {
        let (k, v) = (
            format!("base/{i}"),
            data(i, 300_000 + (i as usize) * 700_000),
        );
        put(&c, &k, &v).await.unwrap();
        stored.push((k, v));
    }

    let faults = [
        (Fault::Status503, 6),
        (Fault::Status500, 6),
        (Fault::Reset, 6),
        (Fault::Stall, 3),
        (Fault::TruncateBody, 6),
    ];
    let mut acked: Vec<(String, Vec<u8>)> = Vec::new();
    let mut wrong_bytes = 0u32;
    let mut report = Vec::new();
    let mut seed = 1000u64;
    for (fault, puts) in faults {
        let before = proxy.counts();
        let retries_before = g.metric_sum("s3dedup_backend_retries_total", &[]).unwrap();
        proxy.set(FaultPlan::every(fault, 3).stall_for(Duration::from_secs(30)));
        let phase_started = Instant::now();
        let mut t = Tally::default();
        let first_of_phase = acked.len();
        for i in 0..puts {
            seed += 1;
            let key = format!("{fault:?}/{i}");
            let body = data(seed, 200_000 + (seed as usize % 7) * 400_000);
            match put(&c, &key, &body).await {
                Ok(()) => {
                    t.puts_ok += 1;
                    acked.push((key, body));
                }
                Err(code) => {
                    // A failed PUT is a 5xx S3 error the client can retry.
                    assert!(code.starts_with('5'), "{fault:?}: PUT failed with {code}");
                    t.puts_failed += 1;
                    t.codes.push(code);
                }
            }
        }
        let puts_took = phase_started.elapsed();
        for (k, v) in stored.iter().chain(&acked[first_of_phase..]) {
            match get(&c, k).await {
                Ok(got) if got == *v => t.gets_ok += 1,
                Ok(_) => wrong_bytes += 1,
                Err(code) => {
                    t.gets_failed += 1;
                    t.codes.push(code);
                }
            }
        }
        proxy.set(FaultPlan::none());
        let after = proxy.counts();
        let retries = g.metric_sum("s3dedup_backend_retries_total", &[]).unwrap() - retries_before;
        let line = format!(
            "{fault:?} (PUTs {puts_took:.1?}, all {:.1?}): {} backend requests, {} faults injected, {retries} gateway retries; \
             client PUTs {} ok / {} failed, GETs {} ok / {} failed; errors seen: {:?}",
            phase_started.elapsed(),
            after.requests - before.requests,
            after.injected - before.injected,
            t.puts_ok,
            t.puts_failed,
            t.gets_ok,
            t.gets_failed,
            dedup(&t.codes),
        );
        println!("{line}");
        report.push(line);
        assert!(
            after.injected > before.injected,
            "{fault:?}: nothing injected"
        );
        assert!(retries > 0.0, "{fault:?}: the gateway never retried");
        // Let the breaker close if this fault opened it.
        wait_ready(&g, Duration::from_secs(10)).await;
    }
    assert_eq!(wrong_bytes, 0, "a GET returned wrong bytes");

    // Faults over: every acknowledged object is in the bucket, byte for byte, and the
    // backend holds packs for them (no false 200s).
    let mut false_200s = 0;
    for (k, v) in stored.iter().chain(&acked) {
        match get(&c, k).await {
            Ok(got) if got == *v => {}
            other => {
                false_200s += 1;
                eprintln!("{k}: {:?}", other.map(|b| b.len()));
            }
        }
    }
    println!(
        "acknowledged PUTs under faults: {}; false 200s: {false_200s}; wrong bytes: {wrong_bytes}",
        acked.len()
    );
    assert_eq!(false_200s, 0);
    assert!(
        !acked.is_empty(),
        "retries should carry most uploads through"
    );

    let t0 = Instant::now();
    eprintln!("[{:?}] down phase", t0.elapsed());
    // Backend down: the breaker opens, requests fail fast with 503, ready says so.
    proxy.set(FaultPlan::every(Fault::Status503, 1));
    let mut last = String::new();
    for i in 0..3 {
        last = put(&c, &format!("down/{i}"), &data(i, 100_000))
            .await
            .unwrap_err();
    }
    eprintln!("[{:?}] 3 puts done", t0.elapsed());
    assert!(last.starts_with("503"), "{last}");
    let started = Instant::now();
    let fast = put(&c, "down/fast", &data(9, 100_000)).await.unwrap_err();
    let fast_ms = started.elapsed().as_millis();
    assert!(fast.starts_with("503"), "{fast}");
    assert!(
        fast_ms < 500,
        "a PUT took {fast_ms} ms with the circuit open"
    );
    assert!(
        g.metric_sum("s3dedup_backend_fast_failures_total", &[])
            .unwrap()
            >= 1.0
    );
    assert_eq!(
        g.metric_sum("s3dedup_backend_circuit_open", &[]).unwrap(),
        1.0
    );
    let (status, body) = g.admin_get("/health/ready").unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("backing store"), "{body}");
    for (k, _) in &stored {
        assert!(get(&c, k).await.is_err(), "{k} read with the backend down");
    }

    eprintln!("[{:?}] gets done", t0.elapsed());
    // Backend back: the same process recovers by itself.
    proxy.set(FaultPlan::none());
    wait_ready(&g, Duration::from_secs(10)).await;
    put(&c, "after/1", &data(77, 2_000_000)).await.unwrap();
    assert_eq!(get(&c, "after/1").await.unwrap(), data(77, 2_000_000));
    for (k, v) in stored.iter().chain(&acked) {
        assert_eq!(get(&c, k).await.as_ref(), Ok(v), "{k} after recovery");
    }
    assert_eq!(
        g.metric_sum("s3dedup_backend_circuit_open", &[]).unwrap(),
        0.0
    );
    eprintln!("[{:?}] recovered", t0.elapsed());
    let totals = proxy.counts();
    println!(
        "totals: {} backend requests, {} faults injected ({} 5xx, {} resets, {} stalls, {} truncations), \
         {} gateway retries, {} fast failures",
        totals.requests,
        totals.injected,
        totals.status_5xx,
        totals.resets,
        totals.stalls,
        totals.truncations,
        g.metric_sum("s3dedup_backend_retries_total", &[]).unwrap(),
        g.metric_sum("s3dedup_backend_fast_failures_total", &[])
            .unwrap(),
    );
}

fn dedup(codes: &[String]) -> Vec<(String, usize)> {
    let mut out: Vec<(String, usize)> = Vec::new();
    for c in codes {
        match out.iter_mut().find(|(k, _)| k == c) {
            Some((_, n)) => *n += 1,
            None => out.push((c.clone(), 1)),
        }
    }
    out
}

async fn wait_ready(g: &Gateway, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let (status, body) = g.admin_get("/health/ready").unwrap();
        if status == 200 {
            return;
        }
        assert!(Instant::now() < deadline, "not ready again: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
