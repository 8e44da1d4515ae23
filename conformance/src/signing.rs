//! Requests the SDKs cannot make, signed by hand with the harness's root key.

use crate::{ACCESS_KEY, SECRET_KEY};

/// `headers` (which must include `host`) and the headers that sign `method url` with
/// the harness's root key: SigV4, us-east-1, service s3, with the body's
/// `x-amz-content-sha256`. For requests the SDKs cannot make (malformed bodies,
/// hand-framed aws-chunked uploads).
pub fn sign_as_root(
    method: &str,
    url: &str,
    headers: &[(&str, String)],
    body: aws_sigv4::http_request::SignableBody<'_>,
) -> Vec<(String, String)> {
    use aws_sigv4::http_request::{SignableRequest, SigningSettings, sign};
    use aws_sigv4::sign::v4;
    let identity =
        aws_credential_types::Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "t").into();
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = aws_sigv4::http_request::PayloadChecksumKind::XAmzSha256;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("s3")
        .time(std::time::SystemTime::now())
        .settings(settings)
        .build()
        .expect("signing parameters")
        .into();
    let signable = SignableRequest::new(
        method,
        url,
        headers.iter().map(|(k, v)| (*k, v.as_str())),
        body,
    )
    .expect("signable request");
    let (instructions, _) = sign(signable, &params).expect("signature").into_parts();
    let mut all: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    for (k, v) in instructions.headers() {
        all.push((k.to_owned(), v.to_owned()));
    }
    all
}
