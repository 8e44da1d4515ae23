//! Raw-protocol edge cases a well-behaved SDK never produces: malformed XML, a client
//! that disconnects mid-upload, and the admin endpoints.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use s3dedup_conformance::{ACCESS_KEY, Gateway, SECRET_KEY, error_code as code};

fn client(g: &Gateway) -> Client {
    s3dedup_conformance::sdk_client(&g.s3_url)
}

fn presign_cfg() -> PresigningConfig {
    PresigningConfig::expires_in(Duration::from_secs(300)).unwrap()
}

/// Path and query of a presigned URL, for the raw client.
fn path_of(uri: &str) -> String {
    let rest = uri.split_once("://").map_or(uri, |(_, r)| r);
    rest.find('/')
        .map_or("/".to_owned(), |i| rest[i..].to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_xml_is_malformed_xml() {
    let g = Gateway::start().unwrap();
    let c = client(&g);
    c.create_bucket().bucket("xml").send().await.unwrap();
    c.put_object()
        .bucket("xml")
        .key("keep")
        .body(ByteStream::from_static(b"keep"))
        .send()
        .await
        .unwrap();

    // The SDK serialises valid XML; swap in broken XML before it signs the request.
    let broken = |xml: &'static [u8]| {
        move |req: &mut aws_sdk_s3::config::http::HttpRequest| {
            *req.body_mut() = aws_sdk_s3::primitives::SdkBody::from(xml);
            req.headers_mut()
                .insert("content-length", xml.len().to_string());
            req.headers_mut().remove("content-md5");
            for h in [
                "x-amz-checksum-crc32",
                "x-amz-checksum-crc32c",
                "x-amz-checksum-crc64nvme",
                "x-amz-sdk-checksum-algorithm",
            ] {
                req.headers_mut().remove(h);
            }
        }
    };
    let e = c
        .delete_objects()
        .bucket("xml")
        .delete(
            Delete::builder()
                .objects(ObjectIdentifier::builder().key("keep").build().unwrap())
                .build()
                .unwrap(),
        )
        .customize()
        .mutate_request(broken(b"<Delete><Object><Key>keep</Key></Obj"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "MalformedXML", "{e:?}");

    let up = c
        .create_multipart_upload()
        .bucket("xml")
        .key("mp")
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap();
    c.upload_part()
        .bucket("xml")
        .key("mp")
        .upload_id(id)
        .part_number(1)
        .body(ByteStream::from_static(b"p"))
        .send()
        .await
        .unwrap();
    for xml in [
        &b"<CompleteMultipartUpload><Part>"[..],
        b"<CompleteMultipartUpload></CompleteMultipartUpload>",
    ] {
        let e = c
            .complete_multipart_upload()
            .bucket("xml")
            .key("mp")
            .upload_id(id)
            .customize()
            .mutate_request(broken(xml))
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e), "MalformedXML", "{e:?}");
    }

    // Nothing was deleted or published.
    assert!(
        c.head_object()
            .bucket("xml")
            .key("keep")
            .send()
            .await
            .is_ok()
    );
    assert!(
        c.head_object()
            .bucket("xml")
            .key("mp")
            .send()
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_disconnecting_mid_upload_leaves_nothing() {
    let g = Gateway::start().unwrap();
    let c = client(&g);
    c.create_bucket().bucket("cut").send().await.unwrap();
    c.put_object()
        .bucket("cut")
        .key("other")
        .body(ByteStream::from(vec![7u8; 3 << 20]))
        .send()
        .await
        .unwrap();
    let before = (
        g.metric("s3dedup_chunks").unwrap(),
        g.metric("s3dedup_unique_bytes").unwrap(),
        g.metric("s3dedup_objects").unwrap(),
    );

    let put = c
        .put_object()
        .bucket("cut")
        .key("half")
        .presigned(presign_cfg())
        .await
        .unwrap();
    {
        let mut s = TcpStream::connect(g.s3_addr()).unwrap();
        let head = format!(
            "PUT {} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n\r\n",
            path_of(put.uri()),
            g.s3_addr(),
            40 << 20
        );
        s.write_all(head.as_bytes()).unwrap();
        let chunk = vec![0x5au8; 1 << 20];
        for _ in 0..20 {
            s.write_all(&chunk).unwrap();
        }
        // Drop the connection with half the body sent.
    }
    // The gateway notices the disconnect, fails the upload, and publishes nothing.
    let mut settled = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (_, text) = g.admin_get("/metrics").unwrap();
        if text.contains("operation=\"PutObject\",status=\"400\"") {
            settled = true;
            break;
        }
    }
    assert!(settled, "the cut-off upload was never answered");
    let e = c
        .head_object()
        .bucket("cut")
        .key("half")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(404));
    let after = (
        g.metric("s3dedup_chunks").unwrap(),
        g.metric("s3dedup_unique_bytes").unwrap(),
        g.metric("s3dedup_objects").unwrap(),
    );
    assert_eq!(before, after, "refcounted state changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoints_and_clean_shutdown() {
    let mut g = Gateway::start().unwrap();
    assert_eq!(g.admin_get("/health/live").unwrap().0, 200);
    assert_eq!(g.admin_get("/health/ready").unwrap().0, 200);
    assert_eq!(g.admin_get("/nope").unwrap().0, 404);
    let c = client(&g);
    c.create_bucket().bucket("adm").send().await.unwrap();
    c.put_object()
        .bucket("adm")
        .key("k")
        .body(ByteStream::from_static(b"hello"))
        .send()
        .await
        .unwrap();
    let (_, text) = g.admin_get("/metrics").unwrap();
    for series in [
        "s3dedup_requests_total{operation=\"PutObject\",status=\"200\"} 1",
        "s3dedup_request_duration_seconds_bucket",
        "s3dedup_logical_bytes 5",
        "s3dedup_objects 1",
        "s3dedup_unique_bytes 5",
        "s3dedup_stored_bytes",
        "s3dedup_chunks 1",
    ] {
        assert!(text.contains(series), "missing {series} in:\n{text}");
    }
    // Unknown credentials are refused with the S3 code clients expect.
    let bad = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(&g.s3_url)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("NOPE", "nope", None, None, "test"))
        .force_path_style(true)
        .build();
    let e = Client::from_conf(bad)
        .list_buckets()
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        e.as_service_error()
            .and_then(aws_sdk_s3::error::ProvideErrorMetadata::code),
        Some("InvalidAccessKeyId")
    );
    let status = g.stop().unwrap();
    assert!(
        status.success(),
        "SIGTERM should stop the gateway cleanly: {status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presigned_urls_work_and_over_long_expiry_is_refused() {
    let g = Gateway::start().unwrap();
    let c = client(&g);
    c.create_bucket().bucket("pre").send().await.unwrap();
    let put = c
        .put_object()
        .bucket("pre")
        .key("k")
        .presigned(presign_cfg())
        .await
        .unwrap();
    let (status, _) = s3dedup_conformance::http_request(
        g.s3_addr(),
        "PUT",
        &path_of(put.uri()),
        &[],
        b"via presigned PUT",
    )
    .unwrap();
    assert_eq!(status, 200);
    let get = c
        .get_object()
        .bucket("pre")
        .key("k")
        .presigned(presign_cfg())
        .await
        .unwrap();
    let (status, body) =
        s3dedup_conformance::http_request(g.s3_addr(), "GET", &path_of(get.uri()), &[], b"")
            .unwrap();
    assert_eq!((status, &body[..]), (200, &b"via presigned PUT"[..]));
    // S3 refuses presigned URLs valid for more than 7 days.
    let long = path_of(get.uri()).replace("X-Amz-Expires=300", "X-Amz-Expires=604801");
    assert_ne!(long, path_of(get.uri()));
    let (status, body) =
        s3dedup_conformance::http_request(g.s3_addr(), "GET", &long, &[], b"").unwrap();
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("AuthorizationQueryParametersError"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtual_hosted_style_with_a_domain() {
    let dir = tempfile::tempdir().unwrap();
    let g = Gateway::start_with(dir.path(), &[("S3DEDUP_DOMAIN", "s3.test")]).unwrap();
    let port = g.s3_addr().rsplit(':').next().unwrap().to_owned();
    // Path style keeps working.
    let c = client(&g);
    c.create_bucket().bucket("vhost").send().await.unwrap();
    // A virtual-hosted client: the bucket is in the Host header. Presigning needs no DNS,
    // and the raw request goes to the loopback address with that Host.
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(format!("http://s3.test:{port}"))
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test"))
        .force_path_style(false)
        .build();
    let v = Client::from_conf(conf);
    let put = v
        .put_object()
        .bucket("vhost")
        .key("dir/k")
        .presigned(presign_cfg())
        .await
        .unwrap();
    assert!(
        put.uri()
            .starts_with(&format!("http://vhost.s3.test:{port}/dir/k")),
        "{}",
        put.uri()
    );
    let host = vec![("Host", format!("vhost.s3.test:{port}"))];
    let (status, body) = s3dedup_conformance::http_request(
        g.s3_addr(),
        "PUT",
        &path_of(put.uri()),
        &host,
        b"virtual",
    )
    .unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let o = c
        .get_object()
        .bucket("vhost")
        .key("dir/k")
        .send()
        .await
        .unwrap();
    assert_eq!(
        &o.body.collect().await.unwrap().into_bytes()[..],
        b"virtual"
    );
}

/// An aws-chunked upload (`STREAMING-UNSIGNED-PAYLOAD-TRAILER`, as the SDKs send by
/// default) signed by hand, with the CRC32 in the trailer right or wrong.
fn chunked_put(g: &Gateway, key: &str, payload: &[u8], crc32_b64: &str) -> (u16, String) {
    let url = format!("{}/trail/{key}", g.s3_url);
    let headers = [
        ("host", g.s3_addr().to_owned()),
        ("content-encoding", "aws-chunked".to_owned()),
        ("x-amz-decoded-content-length", payload.len().to_string()),
        ("x-amz-trailer", "x-amz-checksum-crc32".to_owned()),
    ];
    let signed = s3dedup_conformance::sign_as_root(
        "PUT",
        &url,
        &headers,
        aws_sigv4::http_request::SignableBody::StreamingUnsignedPayloadTrailer,
    );
    let all: Vec<(&str, String)> = signed
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    // Two data chunks, the terminating chunk, then the trailer.
    let (a, b) = payload.split_at(payload.len() / 2);
    let mut body = Vec::new();
    for part in [a, b] {
        body.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        body.extend_from_slice(part);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("0\r\nx-amz-checksum-crc32:{crc32_b64}\r\n\r\n").as_bytes());
    let (status, resp) = s3dedup_conformance::http_request(
        g.s3_addr(),
        "PUT",
        &format!("/trail/{key}"),
        &all,
        &body,
    )
    .unwrap();
    (status, String::from_utf8_lossy(&resp).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_chunked_trailer_checksums_are_verified_on_the_decoded_payload() {
    use base64::Engine as _;
    let g = Gateway::start().unwrap();
    let c = client(&g);
    c.create_bucket().bucket("trail").send().await.unwrap();
    let payload: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let crc = crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32IsoHdlc, &payload) as u32;
    let right = base64::engine::general_purpose::STANDARD.encode(crc.to_be_bytes());
    let wrong = base64::engine::general_purpose::STANDARD.encode((crc ^ 1).to_be_bytes());

    let (status, body) = chunked_put(&g, "good", &payload, &right);
    assert_eq!(status, 200, "{body}");
    let o = c
        .get_object()
        .bucket("trail")
        .key("good")
        .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    assert_eq!(o.checksum_crc32(), Some(right.as_str()));
    assert_eq!(
        o.content_encoding(),
        None,
        "aws-chunked is not a property of the object"
    );
    assert_eq!(
        o.body.collect().await.unwrap().into_bytes().to_vec(),
        payload,
        "the framing was not stored"
    );

    let (status, body) = chunked_put(&g, "bad", &payload, &wrong);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("BadDigest"), "{body}");
    assert!(
        c.head_object()
            .bucket("trail")
            .key("bad")
            .send()
            .await
            .is_err(),
        "nothing published"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_retries_after_a_connection_drop_mid_upload() {
    let g = Gateway::start().unwrap();
    client(&g)
        .create_bucket()
        .bucket("retry")
        .send()
        .await
        .unwrap();
    // The first two connections die after 2 MiB of an 8 MiB PUT; the SDK retries.
    let proxy = s3dedup_conformance::CuttingProxy::start(g.s3_addr(), 2, 2 << 20).unwrap();
    let c = s3dedup_conformance::sdk_client_with(&proxy.url, |b| {
        b.retry_config(aws_sdk_s3::config::retry::RetryConfig::standard().with_max_attempts(5))
    });
    let body: Vec<u8> = (0..8u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    c.put_object()
        .bucket("retry")
        .key("k")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(proxy.remaining_cuts(), 0, "both cuts happened");
    let got = c
        .get_object()
        .bucket("retry")
        .key("k")
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.body.collect().await.unwrap().into_bytes().to_vec(),
        body
    );
    assert_eq!(g.metric("s3dedup_objects").unwrap(), 1.0);
    assert_eq!(
        g.metric("s3dedup_logical_bytes").unwrap(),
        (8u64 << 20) as f64
    );
}
