//! CORS: a bucket's rules (PutBucketCors, kept as a bucket document), the preflight
//! `OPTIONS` answer, and the `Access-Control-*` headers of requests that carry an
//! `Origin`, as S3 evaluates them: the first rule whose origin (one `*` wildcard at
//! most), method and every requested header match wins; origins match case-sensitively,
//! headers case-insensitively. Preflights are not signed (browsers send none), so they
//! are answered here, before authentication; they reveal only the bucket's rules'
//! verdict, as on S3.
//!
//! The rule logic is pure (unit-tested below); [`preflight`] and [`decorate`] read the
//! rules from the store.

use http::{HeaderMap, HeaderValue, StatusCode};
use s3dedup_storage::Store;
use serde::{Deserialize, Serialize};

/// The bucket document kind holding a bucket's CORS rules (JSON of [`Rules`]).
pub const CORS_KIND: &str = "cors";
/// Rules per bucket (S3's limit).
pub const MAX_RULES: usize = 100;
/// Methods a rule may allow.
pub const METHODS: [&str; 5] = ["GET", "PUT", "POST", "DELETE", "HEAD"];

/// One CORS rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// `ID`.
    pub id: Option<String>,
    /// `AllowedOrigin`s (each with at most one `*`).
    pub origins: Vec<String>,
    /// `AllowedMethod`s.
    pub methods: Vec<String>,
    /// `AllowedHeader`s (wildcards allowed).
    pub headers: Vec<String>,
    /// `ExposeHeader`s.
    pub expose: Vec<String>,
    /// `MaxAgeSeconds`.
    pub max_age: Option<i32>,
}

/// A bucket's rules, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Rules {
    /// The rules.
    pub rules: Vec<Rule>,
}

/// Why a configuration is refused: (S3 code, message).
pub type Invalid = (&'static str, String);

impl Rules {
    /// Checks a configuration as S3 does.
    ///
    /// # Errors
    /// MalformedXML (no rule, too many, a rule without origin or method),
    /// InvalidRequest (an unsupported method, an origin with two wildcards, a header
    /// with a character no header name has).
    pub fn check(&self) -> Result<(), Invalid> {
        if self.rules.is_empty() || self.rules.len() > MAX_RULES {
            return Err((
                "MalformedXML",
                format!(
                    "A CORS configuration has 1 to {MAX_RULES} rules; this one has {}",
                    self.rules.len()
                ),
            ));
        }
        for r in &self.rules {
            if r.origins.is_empty() || r.methods.is_empty() {
                return Err((
                    "MalformedXML",
                    "Each CORSRule needs an AllowedOrigin and an AllowedMethod".into(),
                ));
            }
            if let Some(m) = r.methods.iter().find(|m| !METHODS.contains(&m.as_str())) {
                return Err((
                    "InvalidRequest",
                    format!(
                        "Found unsupported HTTP method in CORS config. Unsupported method is {m}"
                    ),
                ));
            }
            if let Some(o) = r.origins.iter().find(|o| o.matches('*').count() > 1) {
                return Err((
                    "InvalidRequest",
                    format!("AllowedOrigin \"{o}\" can not have more than one wildcard."),
                ));
            }
            let bad_header = |h: &String| {
                h.is_empty()
                    || !h
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_*.!#$%&'+^`|~".contains(&b))
            };
            if let Some(h) = r.headers.iter().find(|h| bad_header(h)) {
                return Err((
                    "InvalidRequest",
                    format!("AllowedHeader \"{h}\" contains invalid character."),
                ));
            }
        }
        Ok(())
    }

    /// The stored form.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads the stored form (`None` if damaged).
    pub fn decode(b: &[u8]) -> Option<Self> {
        serde_json::from_slice(b).ok()
    }

    /// The first rule allowing `origin` to use `method` with every header of
    /// `requested`.
    pub fn matching(&self, origin: &str, method: &str, requested: &[String]) -> Option<&Rule> {
        self.rules.iter().find(|r| {
            r.origins.iter().any(|o| wildcard(o, origin, false))
                && r.methods.iter().any(|m| m == method)
                && requested
                    .iter()
                    .all(|h| r.headers.iter().any(|p| wildcard(p, h, true)))
        })
    }
}

/// `pattern` (with at most one `*`, matching any run) against `text`.
fn wildcard(pattern: &str, text: &str, fold: bool) -> bool {
    let (p, t) = if fold {
        (pattern.to_ascii_lowercase(), text.to_ascii_lowercase())
    } else {
        (pattern.to_owned(), text.to_owned())
    };
    match p.split_once('*') {
        None => p == t,
        Some((pre, post)) => {
            t.len() >= pre.len() + post.len() && t.starts_with(pre) && t.ends_with(post)
        }
    }
}

/// The `Access-Control-*` headers a matched rule gives `origin`.
fn allow_headers(rule: &Rule, origin: &str, requested: &[String]) -> Vec<(&'static str, String)> {
    let any_origin = rule.origins.iter().any(|o| o == "*");
    let mut h = vec![
        (
            "access-control-allow-origin",
            if any_origin {
                "*".into()
            } else {
                origin.to_owned()
            },
        ),
        ("access-control-allow-methods", rule.methods.join(", ")),
        (
            "vary",
            "Origin, Access-Control-Request-Headers, Access-Control-Request-Method".into(),
        ),
    ];
    if !any_origin {
        h.push(("access-control-allow-credentials", "true".into()));
    }
    if !requested.is_empty() {
        h.push(("access-control-allow-headers", requested.join(", ")));
    }
    if !rule.expose.is_empty() {
        h.push(("access-control-expose-headers", rule.expose.join(", ")));
    }
    if let Some(age) = rule.max_age {
        h.push(("access-control-max-age", age.to_string()));
    }
    h
}

/// A preflight's outcome: the headers to send with 200, or (status, code, message).
pub type Verdict = Result<Vec<(&'static str, String)>, (StatusCode, &'static str, String)>;

/// Evaluates a preflight against a bucket's rules (`None`: it has none).
pub fn evaluate(rules: Option<&Rules>, headers: &HeaderMap) -> Verdict {
    let get = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let bad = |m: String| (StatusCode::BAD_REQUEST, "BadRequest", m);
    let Some(origin) = get("origin") else {
        return Err(bad(
            "Insufficient information. Origin request header needed.".into(),
        ));
    };
    let method = get("access-control-request-method").unwrap_or("");
    if !METHODS.contains(&method) {
        return Err(bad(format!(
            "Invalid Access-Control-Request-Method: {method}"
        )));
    }
    let requested: Vec<String> = get("access-control-request-headers")
        .unwrap_or("")
        .split(',')
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .collect();
    let forbidden = |m: &str| (StatusCode::FORBIDDEN, "AccessForbidden", m.to_owned());
    let Some(rules) = rules else {
        return Err(forbidden(
            "CORSResponse: CORS is not enabled for this bucket.",
        ));
    };
    match rules.matching(origin, method, &requested) {
        Some(rule) => Ok(allow_headers(rule, origin, &requested)),
        None => Err(forbidden(
            "CORSResponse: This CORS request is not allowed. This is usually because the evalution of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.",
        )),
    }
}

async fn rules_of(store: &Store, bucket: &str) -> Option<Rules> {
    match store.bucket_document(bucket, CORS_KIND).await {
        Ok(Some(doc)) => Rules::decode(&doc),
        _ => None,
    }
}

/// The first segment of a request path, percent-decoded (the bucket of a path-style
/// request).
pub fn path_bucket(path: &str) -> Option<String> {
    let seg = path.trim_start_matches('/').split('/').next()?;
    let seg = percent_encoding::percent_decode_str(seg)
        .decode_utf8()
        .ok()?;
    (!seg.is_empty()).then(|| seg.into_owned())
}

/// The bucket a request names, as s3s routes it: with a virtual-hosted-style `domain`,
/// a `Host` of `<bucket>.<domain>` names the bucket; otherwise the path's first
/// segment does.
pub fn bucket_of(headers: &HeaderMap, path: &str, domain: Option<&str>) -> Option<String> {
    let host = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| h.rsplit_once(':').map_or(h, |(name, _)| name));
    if let (Some(d), Some(h)) = (domain, host)
        && let Some(b) = h.strip_suffix(d).and_then(|p| p.strip_suffix('.'))
    {
        return (!b.is_empty()).then(|| b.to_owned());
    }
    path_bucket(path)
}

/// Answers a preflight `OPTIONS` on `bucket`.
pub async fn preflight(
    store: &Store,
    bucket: Option<&str>,
    headers: &HeaderMap,
    request_id: &str,
) -> http::Response<s3s::Body> {
    let rules = match bucket {
        Some(b) => rules_of(store, b).await,
        None => None,
    };
    let (status, body, add) = match evaluate(rules.as_ref(), headers) {
        Ok(h) => (StatusCode::OK, String::new(), h),
        Err((status, code, message)) => {
            let xml = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{}</Message><Method>OPTIONS</Method><ResourceType>BUCKET</ResourceType><RequestId>{request_id}</RequestId></Error>",
                xml_escape(&message)
            );
            (status, xml, Vec::new())
        }
    };
    let mut resp = http::Response::new(s3s::Body::from(body));
    *resp.status_mut() = status;
    for (name, value) in add {
        if let Ok(v) = HeaderValue::from_str(&value) {
            resp.headers_mut().insert(name, v);
        }
    }
    if status != StatusCode::OK {
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/xml"),
        );
    }
    resp
}

/// Adds the `Access-Control-*` headers of the rule matching `origin` and `method` to
/// the response of a request on `bucket` (nothing when none matches).
pub async fn decorate(
    store: &Store,
    bucket: &str,
    method: &http::Method,
    origin: &str,
    headers: &mut HeaderMap,
) {
    let Some(rules) = rules_of(store, bucket).await else {
        return;
    };
    if let Some(rule) = rules.matching(origin, method.as_str(), &[]) {
        for (name, value) in allow_headers(rule, origin, &[]) {
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(name, v);
            }
        }
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(origins: &[&str], methods: &[&str], headers: &[&str]) -> Rule {
        let v = |x: &[&str]| x.iter().map(|s| (*s).to_owned()).collect();
        Rule {
            id: None,
            origins: v(origins),
            methods: v(methods),
            headers: v(headers),
            expose: vec!["ETag".into()],
            max_age: Some(600),
        }
    }

    fn ask(origin: Option<&str>, method: &str, hdrs: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(o) = origin {
            h.insert("origin", o.parse().unwrap());
        }
        h.insert("access-control-request-method", method.parse().unwrap());
        if !hdrs.is_empty() {
            h.insert("access-control-request-headers", hdrs.parse().unwrap());
        }
        h
    }

    #[test]
    fn the_bucket_is_found_as_s3s_routes() {
        let mut h = HeaderMap::new();
        h.insert("host", "photos.s3.example.net:9000".parse().unwrap());
        let d = Some("s3.example.net");
        assert_eq!(bucket_of(&h, "/a/b", d).as_deref(), Some("photos"));
        h.insert("host", "s3.example.net:9000".parse().unwrap());
        assert_eq!(bucket_of(&h, "/a%2Db/k", d).as_deref(), Some("a-b"));
        assert_eq!(bucket_of(&h, "/", d), None);
        h.insert("host", "127.0.0.1:9000".parse().unwrap());
        assert_eq!(bucket_of(&h, "/b/k", None).as_deref(), Some("b"));
    }

    #[test]
    fn rules_are_checked_as_s3_checks_them() {
        let ok = Rules {
            rules: vec![rule(&["https://*.example.com"], &["GET"], &["x-amz-*"])],
        };
        assert!(ok.check().is_ok());
        assert_eq!(Rules::default().check().unwrap_err().0, "MalformedXML");
        let bad_method = Rules {
            rules: vec![rule(&["*"], &["get"], &[])],
        };
        assert_eq!(bad_method.check().unwrap_err().0, "InvalidRequest");
        let two_stars = Rules {
            rules: vec![rule(&["*example*"], &["GET"], &[])],
        };
        assert_eq!(two_stars.check().unwrap_err().0, "InvalidRequest");
        let bad_header = Rules {
            rules: vec![rule(&["*"], &["GET"], &["x:y"])],
        };
        assert_eq!(bad_header.check().unwrap_err().0, "InvalidRequest");
        let many = Rules {
            rules: vec![rule(&["*"], &["GET"], &[]); 101],
        };
        assert_eq!(many.check().unwrap_err().0, "MalformedXML");
        assert_eq!(Rules::decode(&ok.encode()), Some(ok));
    }

    #[test]
    fn preflights_match_the_first_rule_that_allows_everything_asked() {
        let rules = Rules {
            rules: vec![
                rule(
                    &["https://*.example.com"],
                    &["PUT", "POST"],
                    &["Content-Type", "x-amz-*"],
                ),
                rule(&["*"], &["GET"], &[]),
            ],
        };
        let got = evaluate(
            Some(&rules),
            &ask(
                Some("https://app.example.com"),
                "PUT",
                "content-type, X-Amz-Date",
            ),
        )
        .unwrap();
        let get = |n: &str| got.iter().find(|(k, _)| *k == n).map(|(_, v)| v.as_str());
        assert_eq!(
            get("access-control-allow-origin"),
            Some("https://app.example.com")
        );
        assert_eq!(get("access-control-allow-methods"), Some("PUT, POST"));
        assert_eq!(
            get("access-control-allow-headers"),
            Some("content-type, x-amz-date")
        );
        assert_eq!(get("access-control-max-age"), Some("600"));
        assert_eq!(get("access-control-allow-credentials"), Some("true"));
        // A header the rule does not allow: no rule matches PUT.
        let e = evaluate(
            Some(&rules),
            &ask(Some("https://app.example.com"), "PUT", "x-other"),
        );
        assert_eq!(e.unwrap_err().1, "AccessForbidden");
        // Origins are case-sensitive; the wildcard rule allows GET from anywhere.
        let e = evaluate(
            Some(&rules),
            &ask(Some("https://APP.EXAMPLE.COM"), "PUT", ""),
        );
        assert_eq!(e.unwrap_err().0, StatusCode::FORBIDDEN);
        let got = evaluate(Some(&rules), &ask(Some("https://other.org"), "GET", "")).unwrap();
        assert!(got.contains(&("access-control-allow-origin", "*".into())));
        assert!(
            !got.iter()
                .any(|(k, _)| *k == "access-control-allow-credentials")
        );
        // Bad requests, and a bucket without rules.
        assert_eq!(
            evaluate(Some(&rules), &ask(None, "GET", "")).unwrap_err().1,
            "BadRequest"
        );
        assert_eq!(
            evaluate(Some(&rules), &ask(Some("https://a"), "get", ""))
                .unwrap_err()
                .1,
            "BadRequest"
        );
        let e = evaluate(None, &ask(Some("https://a"), "GET", "")).unwrap_err();
        assert_eq!((e.0, e.1), (StatusCode::FORBIDDEN, "AccessForbidden"));
        assert!(e.2.contains("not enabled"));
    }
}
