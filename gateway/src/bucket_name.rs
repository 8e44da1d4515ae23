//! S3's bucket naming rules, pure.

/// Which of S3's bucket naming rules `name` breaks, if any.
pub fn problem(name: &str) -> Option<&'static str> {
    let b = name.as_bytes();
    let rule = if !(3..=63).contains(&b.len()) {
        "a bucket name must be 3 to 63 characters long"
    } else if !b
        .iter()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'.' || *c == b'-')
    {
        "a bucket name may hold only lowercase letters, digits, dots and hyphens"
    } else if !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
        "a bucket name must begin and end with a letter or digit"
    } else if name.contains("..") || name.contains(".-") || name.contains("-.") {
        "a bucket name must not have two adjacent dots, or a dot next to a hyphen"
    } else if name.parse::<std::net::Ipv4Addr>().is_ok() {
        "a bucket name must not look like an IP address"
    } else if name.starts_with("xn--") || name.starts_with("sthree-") {
        "a bucket name must not begin with xn-- or sthree-"
    } else if name.ends_with("-s3alias") || name.ends_with("--ol-s3") {
        "a bucket name must not end with -s3alias or --ol-s3"
    } else {
        return None;
    };
    Some(rule)
}
