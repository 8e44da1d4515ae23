//! clamd's reply to `INSTREAM`, parsed strictly.
//!
//! clamd answers one line (NUL-terminated with the `z` command prefix):
//! `stream: OK`, `stream: <signature> FOUND`, or `<message> ERROR`. A verdict is only
//! ever taken from the first two shapes; everything else is an error, so a clamd
//! problem can never read as "clean" (nor as an infection).

use crate::{ScanError, Verdict};

/// Signatures clamd reports when `AlertExceedsMax` is set and a scan limit cut the scan
/// short: the content was not fully scanned, which is a size-limit outcome, not a
/// detection.
const LIMITS_PREFIX: &str = "Heuristics.Limits.Exceeded";

/// Parses one `INSTREAM` reply.
///
/// # Errors
/// [`ScanError::TooLarge`] for clamd's size-limit replies, [`ScanError::Scanner`] for other
/// `ERROR` replies, [`ScanError::Protocol`] for anything unrecognized (empty, not UTF-8,
/// several lines, an unnamed signature).
pub fn parse_reply(raw: &[u8]) -> Result<Verdict, ScanError> {
    let text = std::str::from_utf8(raw)
        .map_err(|_| ScanError::Protocol(String::from_utf8_lossy(raw).into_owned()))?;
    let line = text.trim_end_matches(['\0', '\n', '\r']);
    if line.is_empty() || line.contains(['\0', '\n']) {
        return Err(ScanError::Protocol(text.to_owned()));
    }
    if let Some(msg) = line.strip_suffix(" ERROR") {
        let msg = msg.trim();
        return Err(if msg.contains("size limit exceeded") {
            ScanError::TooLarge(msg.to_owned())
        } else {
            ScanError::Scanner(msg.to_owned())
        });
    }
    let Some(result) = line.strip_prefix("stream: ") else {
        return Err(ScanError::Protocol(line.to_owned()));
    };
    if result == "OK" {
        return Ok(Verdict::Clean);
    }
    match result.strip_suffix(" FOUND") {
        Some(name) if !name.trim().is_empty() && !name.contains(' ') => {
            if name.starts_with(LIMITS_PREFIX) {
                Err(ScanError::TooLarge(name.to_owned()))
            } else {
                Ok(Verdict::Infected(name.to_owned()))
            }
        }
        _ => Err(ScanError::Protocol(line.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_and_found() {
        assert_eq!(parse_reply(b"stream: OK\0"), Ok(Verdict::Clean));
        assert_eq!(parse_reply(b"stream: OK\n"), Ok(Verdict::Clean));
        assert_eq!(
            parse_reply(b"stream: Eicar-Test-Signature FOUND\0"),
            Ok(Verdict::Infected("Eicar-Test-Signature".into()))
        );
        assert_eq!(
            parse_reply(b"stream: S3dedup.Test.EICAR.UNOFFICIAL FOUND\0"),
            Ok(Verdict::Infected("S3dedup.Test.EICAR.UNOFFICIAL".into()))
        );
    }

    #[test]
    fn errors_are_never_verdicts() {
        assert!(matches!(
            parse_reply(b"INSTREAM size limit exceeded. ERROR\0"),
            Err(ScanError::TooLarge(_))
        ));
        assert!(matches!(
            parse_reply(b"stream: Heuristics.Limits.Exceeded.MaxFileSize FOUND\0"),
            Err(ScanError::TooLarge(_))
        ));
        assert!(matches!(
            parse_reply(b"Can't allocate memory ERROR\0"),
            Err(ScanError::Scanner(_))
        ));
        for bad in [
            &b""[..],
            b"\0",
            b"stream: \0",
            b"stream:  FOUND\0",
            b"stream: two words FOUND\0",
            b"stream: OK\0stream: OK\0",
            b"stream: OKAY\0",
            b"OK\0",
            b"PONG\0",
            b"stream: \xff FOUND\0",
            b"UNKNOWN COMMAND\0",
        ] {
            assert!(
                matches!(parse_reply(bad), Err(ScanError::Protocol(_))),
                "{:?} -> {:?}",
                String::from_utf8_lossy(bad),
                parse_reply(bad)
            );
        }
    }
}
