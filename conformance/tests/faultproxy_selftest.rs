//! Self-test of [`FaultProxy`] against a tiny hyper upstream: every fault kind, the
//! `every`/`methods` selection, keep-alive and exact forwarding of headers and bodies.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use s3dedup_conformance::faultproxy::{Fault, FaultCounts, FaultPlan, FaultProxy};
use s3dedup_conformance::http_request;

/// Size of the upstream's GET body.
const OBJECT_LEN: usize = 1 << 20;

fn object() -> Vec<u8> {
    (0..OBJECT_LEN).map(|i| (i % 251) as u8).collect()
}

/// Starts the upstream on its own thread (see [`upstream_service`]). Returns its address
/// and a hit counter.
fn upstream() -> (String, Arc<AtomicU64>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let hits = Arc::new(AtomicU64::new(0));
    let h = hits.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let obj = Bytes::from(object());
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let (h, obj) = (h.clone(), obj.clone());
                let service = hyper::service::service_fn(move |req| {
                    h.fetch_add(1, Ordering::Relaxed);
                    upstream_service(req, obj.clone())
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
    });
    (addr, hits)
}

/// `/echo` answers the request line, headers and body as received; other PUTs answer
/// the body length; anything else answers [`object`].
async fn upstream_service(
    req: Request<Incoming>,
    obj: Bytes,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await?.to_bytes();
    let reply = if parts.uri.path() == "/echo" {
        let mut echo = format!("{} {} {:?}\n", parts.method, parts.uri, parts.version);
        for (k, v) in &parts.headers {
            echo.push_str(&format!("{k}: {v:?}\n"));
        }
        let mut echo = echo.into_bytes();
        echo.extend_from_slice(&body);
        Bytes::from(echo)
    } else if parts.method == "PUT" {
        Bytes::from(body.len().to_string())
    } else {
        obj
    };
    Ok(Response::new(Full::new(reply)))
}

fn setup() -> (FaultProxy, String, Arc<AtomicU64>) {
    let (up, hits) = upstream();
    let proxy = FaultProxy::start(&up).unwrap();
    let addr = proxy.url().trim_start_matches("http://").to_owned();
    (proxy, addr, hits)
}

/// One response read off a keep-alive connection: status, lower-cased head, body
/// (none for a HEAD request).
fn read_response(r: &mut impl BufRead, head_req: bool) -> std::io::Result<(u16, String, Vec<u8>)> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line == "\r\n" {
            break;
        }
        head.push_str(&line.to_ascii_lowercase());
    }
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut body = vec![0; if head_req { 0 } else { content_length(&head) }];
    r.read_exact(&mut body)?;
    Ok((status, head, body))
}

fn content_length(head: &str) -> usize {
    head.lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap())
}

/// Sends a bodiless request on a fresh connection and reads until the proxy closes it.
fn raw_get(addr: &str) -> (std::io::Result<Vec<u8>>, Duration) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    write!(s, "GET /obj HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let t = Instant::now();
    let mut got = Vec::new();
    let r = s.read_to_end(&mut got).map(|_| got);
    (r, t.elapsed())
}

/// Sends `reqs` (raw request bytes, HEAD ones flagged) on one connection to `addr`.
fn exchange(addr: &str, reqs: &[(bool, Vec<u8>)]) -> Vec<(u16, String, Vec<u8>)> {
    let mut s = TcpStream::connect(addr).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    reqs.iter()
        .map(|(head_req, req)| {
            s.write_all(req).unwrap();
            read_response(&mut r, *head_req).unwrap()
        })
        .collect()
}

#[test]
fn forwards_untouched_with_keep_alive() {
    let (up, hits) = upstream();
    let proxy = FaultProxy::start(&up).unwrap();
    let addr = proxy.url().trim_start_matches("http://").to_owned();
    // S3-like requests whose head (Host, signature, odd case, repeats, Content-Length: 0)
    // and body must reach the upstream byte for byte.
    let put_body: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let mut put = format!(
        "PUT /echo?partNumber=2&uploadId=a%2Fb HTTP/1.1\r\n\
         Host: bucket.s3.example:9000\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=K/20250101/us-east-1/s3/aws4_request, \
         SignedHeaders=host;x-amz-date, Signature=00ff\r\n\
         X-Amz-Date: 20250101T000000Z\r\n\
         x-amz-meta-Mixed: A  b\r\n\
         X-Amz-Meta-Dup: 1\r\n\
         x-amz-meta-dup: 2\r\n\
         Content-Type: application/octet-stream\r\n\
         Content-Length: {}\r\n\r\n",
        put_body.len()
    )
    .into_bytes();
    put.extend_from_slice(&put_body);
    let get0 = b"GET /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n".to_vec();
    let echoes = [(false, put), (false, get0)];
    let direct = exchange(&up, &echoes);
    let proxied = exchange(&addr, &echoes);
    for (d, p) in direct.iter().zip(&proxied) {
        assert_eq!(d.0, 200);
        let seen = String::from_utf8_lossy(&p.2[..p.2.len().min(600)]).into_owned();
        assert!(d.2 == p.2, "upstream saw a different request:\n{seen}");
    }
    let seen = String::from_utf8_lossy(&proxied[0].2[..600]);
    assert!(seen.contains("host: \"bucket.s3.example:9000\""), "{seen}");
    assert!(
        seen.contains("x-amz-meta-dup: \"1\"\nx-amz-meta-dup: \"2\""),
        "{seen}"
    );
    assert!(String::from_utf8_lossy(&proxied[1].2).contains("content-length: \"0\""));

    // Big bodies both ways and HEAD, all on one keep-alive connection.
    let big = vec![7u8; 3 << 20];
    let mut put = format!(
        "PUT /obj HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n",
        big.len()
    )
    .into_bytes();
    put.extend_from_slice(&big);
    let get = b"GET /obj HTTP/1.1\r\nHost: h\r\n\r\n".to_vec();
    let head = b"HEAD /obj HTTP/1.1\r\nHost: h\r\n\r\n".to_vec();
    let r = exchange(
        &addr,
        &[
            (false, get.clone()),
            (false, put),
            (true, head),
            (false, get),
        ],
    );
    assert!(r[0].0 == 200 && r[0].2 == object(), "GET body differs");
    assert_eq!(
        (r[1].0, &r[1].2),
        (200, &big.len().to_string().into_bytes())
    );
    assert_eq!(
        (r[2].0, content_length(&r[2].1), r[2].2.len()),
        (200, OBJECT_LEN, 0)
    );
    assert!(r[3].0 == 200 && r[3].2 == object(), "GET body differs");

    assert_eq!(hits.load(Ordering::Relaxed), 8);
    let c = proxy.counts();
    assert_eq!((c.requests, c.forwarded, c.injected), (6, 6, 0));
}

#[test]
fn status_503_and_500_are_not_forwarded() {
    let (proxy, addr, hits) = setup();
    proxy.set(FaultPlan::every(Fault::Status503, 1));
    let (status, body) = http_request(&addr, "PUT", "/obj", &[], &[1; 100_000]).unwrap();
    assert_eq!(status, 503);
    assert!(String::from_utf8_lossy(&body).contains("<Code>SlowDown</Code>"));
    proxy.set(FaultPlan::every(Fault::Status500, 1));
    let (status, body) = http_request(&addr, "GET", "/obj", &[], &[]).unwrap();
    assert_eq!(status, 500);
    assert!(String::from_utf8_lossy(&body).contains("<Code>InternalError</Code>"));
    assert_eq!(hits.load(Ordering::Relaxed), 0);
    let c = proxy.counts();
    assert_eq!(
        (c.requests, c.forwarded, c.injected, c.status_5xx),
        (2, 0, 2, 2)
    );
}

#[test]
fn reset_sends_no_response() {
    let (proxy, addr, hits) = setup();
    proxy.set(FaultPlan::every(Fault::Reset, 1));
    let (r, _) = raw_get(&addr);
    // SO_LINGER 0 makes the close a RST, which the read reports.
    let e = r.expect_err("expected a reset");
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
    assert!(http_request(&addr, "GET", "/obj", &[], &[]).is_err());
    assert_eq!(hits.load(Ordering::Relaxed), 0);
    let c = proxy.counts();
    assert_eq!((c.forwarded, c.injected, c.resets), (0, 2, 2));
}

#[test]
fn truncate_body_sends_half() {
    let (proxy, addr, hits) = setup();
    proxy.set(FaultPlan::every(Fault::TruncateBody, 1));
    let (r, _) = raw_get(&addr);
    let got = r.unwrap();
    let split = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&got[..split]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert_eq!(content_length(&head), OBJECT_LEN);
    assert_eq!(&got[split..], &object()[..OBJECT_LEN / 2]);
    assert_eq!(hits.load(Ordering::Relaxed), 1);
    let c = proxy.counts();
    assert_eq!((c.forwarded, c.injected, c.truncations), (1, 1, 1));
}

#[test]
fn stall_holds_then_closes() {
    let (proxy, addr, hits) = setup();
    proxy.set(FaultPlan::every(Fault::Stall, 1).stall_for(Duration::from_millis(300)));
    let (r, elapsed) = raw_get(&addr);
    assert!(r.unwrap().is_empty(), "got a response");
    assert!(
        elapsed >= Duration::from_millis(290),
        "closed after {elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(2), "closed after {elapsed:?}");
    assert_eq!(hits.load(Ordering::Relaxed), 1);
    let c = proxy.counts();
    assert_eq!((c.forwarded, c.injected, c.stalls), (1, 1, 1));
}

#[test]
fn every_third_request() {
    let (proxy, addr, _) = setup();
    proxy.set(FaultPlan::every(Fault::Status503, 3));
    let statuses: Vec<u16> = (0..9)
        .map(|_| http_request(&addr, "GET", "/obj", &[], &[]).unwrap().0)
        .collect();
    assert_eq!(statuses, [200, 200, 503, 200, 200, 503, 200, 200, 503]);
    let c = proxy.counts();
    assert_eq!((c.requests, c.forwarded, c.injected), (9, 6, 3));
    // A new plan restarts the count.
    proxy.set(FaultPlan::every(Fault::Status503, 2));
    assert_eq!(http_request(&addr, "GET", "/", &[], &[]).unwrap().0, 200);
    assert_eq!(http_request(&addr, "GET", "/", &[], &[]).unwrap().0, 503);
    proxy.set(FaultPlan::none());
    assert_eq!(http_request(&addr, "GET", "/", &[], &[]).unwrap().0, 200);
}

#[test]
fn methods_filter() {
    let (proxy, addr, _) = setup();
    proxy.set(FaultPlan::every(Fault::Status503, 1).methods(&["PUT"]));
    let (status, body) = http_request(&addr, "GET", "/obj", &[], &[]).unwrap();
    assert!(status == 200 && body == object());
    assert_eq!(
        http_request(&addr, "PUT", "/obj", &[], b"x").unwrap().0,
        503
    );
    assert_eq!(proxy.counts().injected, 1);
}

/// The synchronous API works inside an async test, including drop.
#[tokio::test]
async fn usable_from_async_tests() {
    let (proxy, addr, _) = setup();
    proxy.set(FaultPlan::every(Fault::Status500, 1).methods(&["get"]));
    let a = addr.clone();
    let status = tokio::task::spawn_blocking(move || http_request(&a, "GET", "/", &[], &[]))
        .await
        .unwrap()
        .unwrap()
        .0;
    assert_eq!(status, 500);
    assert_eq!(
        proxy.counts(),
        FaultCounts {
            requests: 1,
            injected: 1,
            status_5xx: 1,
            ..FaultCounts::default()
        }
    );
    drop(proxy);
    assert!(
        TcpStream::connect(&addr).is_err(),
        "still listening after drop"
    );
}
