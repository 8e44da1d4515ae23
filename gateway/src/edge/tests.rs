//! The edge checks, case by case.

use super::*;

const NOW: i64 = 1_796_000_000; // 2026-11-30

fn req(method: &str, uri: &str, headers: &[(&str, &str)]) -> Result<(), Refusal> {
    req_with(method, uri, headers, EdgePolicy::default())
}

fn req_with(
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    policy: EdgePolicy,
) -> Result<(), Refusal> {
    let mut h = HeaderMap::new();
    for (k, v) in headers {
        h.append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    check(
        &method.parse().unwrap(),
        &uri.parse().unwrap(),
        &h,
        policy,
        NOW,
    )
}

fn code(r: Result<(), Refusal>) -> (u16, &'static str) {
    let e = r.expect_err("refused");
    (e.status.as_u16(), e.code)
}

fn http_date(secs: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(secs).unwrap();
    let mut out = Vec::new();
    s3s::dto::Timestamp::from(t)
        .format(s3s::dto::TimestampFormat::HttpDate, &mut out)
        .unwrap();
    String::from_utf8(out).unwrap()
}

const V4: &str = "AWS4-HMAC-SHA256 Credential=AK/20261130/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00";

#[test]
fn ordinary_requests_pass() {
    assert!(req("GET", "/b/k", &[("authorization", V4)]).is_ok());
    assert!(
        req(
            "PUT",
            "/b/k?partNumber=1&uploadId=x",
            &[("authorization", V4)]
        )
        .is_ok()
    );
    assert!(req("GET", "/", &[]).is_ok());
    let presigned = "/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AK%2F20261130%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20261130T000000Z&X-Amz-Expires=604800&X-Amz-SignedHeaders=host&X-Amz-Signature=00";
    assert!(req("GET", presigned, &[]).is_ok());
}

#[test]
fn an_empty_content_md5_is_an_invalid_digest() {
    assert_eq!(
        code(req("PUT", "/b/k", &[("content-md5", "")])),
        (400, "InvalidDigest")
    );
    assert_eq!(
        code(req("PUT", "/b/k", &[("content-md5", "  ")])),
        (400, "InvalidDigest")
    );
}

#[test]
fn unknown_methods_are_405() {
    assert_eq!(code(req("PATCH", "/b/k", &[])), (405, "MethodNotAllowed"));
    assert_eq!(
        code(req("PROPFIND", "/b/k", &[])),
        (405, "MethodNotAllowed")
    );
}

#[test]
fn header_section_is_bounded() {
    let big = "x".repeat(MAX_HEADER_BYTES);
    assert_eq!(
        code(req("GET", "/b/k", &[("x-amz-meta-a", &big)])),
        (400, "RequestHeaderSectionTooLarge")
    );
    let fits = "x".repeat(MAX_HEADER_BYTES / 2);
    assert!(req("GET", "/b/k", &[("x-amz-meta-a", &fits)]).is_ok());
}

#[test]
fn form_posts_are_refused_before_the_body() {
    let ct = ("content-type", "multipart/form-data; boundary=xyz");
    assert_eq!(code(req("POST", "/b", &[ct])), (501, "NotImplemented"));
    // Other POSTs (DeleteObjects, multipart) go on.
    assert!(req("POST", "/b?delete", &[("content-type", "application/xml")]).is_ok());
}

#[test]
fn sigv2_is_off_by_default() {
    let auth = ("authorization", "AWS AK:c2lnbmF0dXJl");
    let date = http_date(NOW);
    let d = ("date", date.as_str());
    assert_eq!(
        code(req("GET", "/b/k", &[auth, d])),
        (400, "InvalidRequest")
    );
    let q = format!("/b/k?AWSAccessKeyId=AK&Expires={}&Signature=abc", NOW + 60);
    assert_eq!(code(req("GET", &q, &[])), (400, "InvalidRequest"));
}

#[test]
fn sigv2_when_enabled_bounds_time() {
    let on = EdgePolicy {
        sigv2: true,
        ..EdgePolicy::default()
    };
    let auth = ("authorization", "AWS AK:c2lnbmF0dXJl");
    let fresh = http_date(NOW - 60);
    assert!(req_with("GET", "/b/k", &[auth, ("date", &fresh)], on).is_ok());
    let old = http_date(NOW - MAX_SKEW_SECS - 1);
    assert_eq!(
        code(req_with("GET", "/b/k", &[auth, ("date", &old)], on)),
        (403, "RequestTimeTooSkewed")
    );
    assert_eq!(
        code(req_with(
            "GET",
            "/b/k",
            &[auth, ("date", "Mon, 01 Jan 2001 00:00:00 GMT")],
            on
        )),
        (403, "RequestTimeTooSkewed")
    );
    assert_eq!(
        code(req_with("GET", "/b/k", &[auth], on)),
        (403, "AccessDenied")
    );
    let amz = ("x-amz-date", "20261130T004500Z");
    assert!(req_with("GET", "/b/k", &[auth, amz], on).is_ok());
    let week = format!(
        "/b/k?AWSAccessKeyId=AK&Expires={}&Signature=abc",
        NOW + MAX_PRESIGN_SECS
    );
    assert!(req_with("GET", &week, &[], on).is_ok());
    let years = format!(
        "/b/k?AWSAccessKeyId=AK&Expires={}&Signature=abc",
        NOW + 75 * 31_557_600
    );
    assert_eq!(
        code(req_with("GET", &years, &[], on)),
        (400, "AuthorizationQueryParametersError")
    );
}

#[test]
fn one_auth_mechanism_per_request() {
    let q = "/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AK%2F20261130%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Signature=00";
    assert_eq!(
        code(req("GET", q, &[("authorization", V4)])),
        (400, "InvalidArgument")
    );
    let on = EdgePolicy {
        sigv2: true,
        ..EdgePolicy::default()
    };
    let q2 = format!("/b/k?AWSAccessKeyId=AK&Expires={}&Signature=abc", NOW + 60);
    assert_eq!(
        code(req_with("GET", &q2, &[("authorization", V4)], on)),
        (400, "InvalidArgument")
    );
}

#[test]
fn presign_expiry_is_capped() {
    let q = "/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AK%2F20261130%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Expires=604801&X-Amz-Signature=00";
    assert_eq!(
        code(req("GET", q, &[])),
        (400, "AuthorizationQueryParametersError")
    );
    for bad in ["-1", "soon"] {
        let q = q.replace("604801", bad);
        assert_eq!(
            code(req("GET", &q, &[])),
            (400, "AuthorizationQueryParametersError"),
            "{bad}"
        );
    }
    let ok = q.replace("604801", "604800");
    assert!(req("GET", &ok, &[]).is_ok());
}

#[test]
fn scope_must_name_s3() {
    let sts = V4.replace("/s3/", "/sts/");
    assert_eq!(
        code(req("GET", "/b/k", &[("authorization", &sts)])),
        (403, "SignatureDoesNotMatch")
    );
    let q = "/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AK%2F20261130%2Fus-east-1%2Fec2%2Faws4_request&X-Amz-Signature=00";
    assert_eq!(code(req("GET", q, &[])), (403, "SignatureDoesNotMatch"));
}

#[test]
fn a_region_s3s_refuses_is_answered_with_the_right_one() {
    let us = V4.replace("/us-east-1/", "/US/");
    let r = req("GET", "/b/k", &[("authorization", &us)]).unwrap_err();
    assert_eq!(
        (r.status.as_u16(), r.code),
        (400, "AuthorizationHeaderMalformed")
    );
    assert!(
        r.xml("id").contains("<Region>us-east-1</Region>"),
        "{}",
        r.xml("id")
    );
    assert!(req("GET", "/b/k", &[("authorization", V4)]).is_ok());
}

#[test]
fn smuggled_headers_and_escaped_names_are_seen_as_s3s_sees_them() {
    let mut h = HeaderMap::new();
    h.append(
        "content-type",
        http::HeaderValue::from_bytes(b"\xff").unwrap(),
    );
    h.append(
        "content-type",
        "multipart/form-data; boundary=x".parse().unwrap(),
    );
    let r = check(
        &Method::POST,
        &"/b".parse().unwrap(),
        &h,
        EdgePolicy::default(),
        NOW,
    );
    assert_eq!(code(r), (400, "InvalidArgument"));
    let mut h = HeaderMap::new();
    h.append(
        "content-type",
        http::HeaderValue::from_bytes("multipart/form-data; boundary=é".as_bytes()).unwrap(),
    );
    let r = check(
        &Method::POST,
        &"/b".parse().unwrap(),
        &h,
        EdgePolicy::default(),
        NOW,
    );
    assert_eq!(code(r), (400, "InvalidArgument"));
    let two_auth = [("authorization", "junk"), ("authorization", "AWS AK:sig")];
    assert_eq!(
        code(req("GET", "/b/k", &two_auth)),
        (400, "InvalidArgument")
    );
    let q = format!(
        "/b/k?AWSAccessKeyId=AK&Expires={}&Signatur%65=abc",
        NOW + 60
    );
    assert_eq!(code(req("GET", &q, &[])), (400, "InvalidRequest"));
    let q = "/b/k?X-Amz-Credential=AK%2F20261130%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Signature=00&X-Amz-Expire%73=999999999";
    assert_eq!(
        code(req("GET", q, &[])),
        (400, "AuthorizationQueryParametersError")
    );
    let on = EdgePolicy {
        sigv2: true,
        ..EdgePolicy::default()
    };
    let q = "/b/k?AWSAccessKeyId=AK&Expires=-9223372036854775808&Signature=abc";
    assert!(
        req_with("GET", q, &[], on).is_ok(),
        "expired: s3s refuses it"
    );
}

#[test]
fn http_dates_parse() {
    // s3cmd's SigV2 x-amz-date.
    assert_eq!(
        http_date_secs("Mon, 30 Nov 2026 00:00:00 +0000"),
        Some(1_795_996_800)
    );
    assert_eq!(http_date_secs(&http_date(NOW)), Some(NOW));
    assert_eq!(http_date_secs("20261130T000000Z"), Some(1_795_996_800));
    assert_eq!(http_date_secs("garbage"), None);
}
